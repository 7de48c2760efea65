//! The optional language model: one OpenAI-compatible `POST {base_url}/chat/completions`
//! (Ollama, vLLM, llama.cpp's server, hosted APIs), non-streaming, within the policy's
//! timeout. The caller has redacted everything it sends; this module only speaks HTTP/1.1.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use candor_policy::LlmPolicy;

/// Why a call gave no usable answer.
#[derive(Debug, PartialEq, Eq)]
pub enum LlmError {
    Timeout,
    Status(u16),
    Transport(String),
    /// The answer was not a chat completion.
    Protocol(String),
}

impl LlmError {
    pub fn code(&self) -> &'static str {
        match self {
            LlmError::Timeout => "timeout",
            LlmError::Status(_) => "status",
            LlmError::Transport(_) => "transport",
            LlmError::Protocol(_) => "protocol",
        }
    }
}

/// The request body for `messages` (role, content), as the protocol has it.
pub fn request_body(p: &LlmPolicy, messages: &[(&str, String)]) -> Vec<u8> {
    let messages: Vec<Value> = messages
        .iter()
        .map(|(role, content)| json!({ "role": role, "content": content }))
        .collect();
    json!({
        "model": p.model,
        "messages": messages,
        "max_tokens": p.max_tokens,
        "temperature": p.temperature,
        "stream": false,
    })
    .to_string()
    .into_bytes()
}

/// Sends `body` and returns the first choice's message content.
pub async fn complete(
    p: &LlmPolicy,
    api_key: Option<&str>,
    body: &[u8],
    tls: &tokio_rustls::TlsConnector,
) -> Result<String, LlmError> {
    let call = async {
        let t = |e: std::io::Error| LlmError::Transport(e.kind().to_string());
        let (https, host, port, base) = crate::webhook::parse_url(&p.base_url)
            .ok_or_else(|| LlmError::Transport("base_url is not a valid URL".into()))?;
        let base = base.trim_end_matches('/');
        let mut head = format!(
            "POST {base}/chat/completions HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nAccept: application/json\r\nContent-Length: {}\r\nUser-Agent: candor\r\nConnection: close\r\n",
            body.len()
        );
        if let Some(k) = api_key {
            head.push_str(&format!("Authorization: Bearer {k}\r\n"));
        }
        head.push_str("\r\n");
        let mut request = head.into_bytes();
        request.extend_from_slice(body);
        let tcp = TcpStream::connect((host.as_str(), port)).await.map_err(t)?;
        let _ = tcp.set_nodelay(true);
        let mut answer = Vec::new();
        if https {
            let name = rustls::pki_types::ServerName::try_from(host.clone())
                .map_err(|e| LlmError::Transport(e.to_string()))?;
            let mut s = tls.connect(name, tcp).await.map_err(t)?;
            s.write_all(&request).await.map_err(t)?;
            let _ = (&mut s).take(4 << 20).read_to_end(&mut answer).await;
        } else {
            let mut s = tcp;
            s.write_all(&request).await.map_err(t)?;
            s.take(4 << 20).read_to_end(&mut answer).await.map_err(t)?;
        }
        parse_answer(&answer)
    };
    tokio::time::timeout(Duration::from_millis(p.timeout_ms), call)
        .await
        .map_err(|_| LlmError::Timeout)?
}

/// An HTTP/1.1 answer (whole, the connection closed) → the completion's text.
fn parse_answer(raw: &[u8]) -> Result<String, LlmError> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| LlmError::Protocol("no HTTP answer".into()))?;
    let head = String::from_utf8_lossy(&raw[..split]);
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| LlmError::Protocol("no status line".into()))?;
    let chunked = lines.any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    if !(200..300).contains(&status) {
        return Err(LlmError::Status(status));
    }
    let mut body = raw[split + 4..].to_vec();
    if chunked {
        body = dechunk(&body).ok_or_else(|| LlmError::Protocol("bad chunked body".into()))?;
    }
    let v: Value = serde_json::from_slice(&body)
        .map_err(|_| LlmError::Protocol("the body is not JSON".into()))?;
    v.pointer("/choices/0/message/content")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| LlmError::Protocol("no choices[0].message.content".into()))
}

fn dechunk(mut b: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = b.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&b[..eol]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        b = &b[eol + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(b.get(..size)?);
        b = b.get(size + 2..)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers() {
        let ok = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{\"choices\":[{\"message\":{\"role\":\"assistant\",\"content\":\"Hi\"}}]}";
        assert_eq!(parse_answer(ok), Ok("Hi".into()));
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nf\r\n{\"choices\":[{\"m\r\n26\r\nessage\":{\"role\":\"x\",\"content\":\"Yo\"}}]}\r\n0\r\n\r\n";
        assert_eq!(parse_answer(chunked), Ok("Yo".into()));
        assert_eq!(
            parse_answer(b"HTTP/1.1 503 Busy\r\n\r\n"),
            Err(LlmError::Status(503))
        );
        assert!(matches!(
            parse_answer(b"HTTP/1.1 200 OK\r\n\r\n{}"),
            Err(LlmError::Protocol(_))
        ));
    }
}
