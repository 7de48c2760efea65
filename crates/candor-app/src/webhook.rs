//! A journey step that calls a webhook: one HTTPS (or loopback HTTP) POST of a JSON body, with
//! `Idempotency-Key` (the step id: a retried call carries the same key) and, when a secret is
//! configured, `X-Candor-Signature: sha256=<hex HMAC of the body>`.

use std::time::Duration;

use hmac::{KeyInit as _, Mac as _};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// How long a webhook may take.
const TIMEOUT: Duration = Duration::from_secs(10);

/// Why a call failed: the status of a refusal, or a transport problem (retried).
#[derive(Debug)]
pub enum CallError {
    Status(u16),
    Transport(String),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Status(s) => write!(f, "the webhook answered {s}"),
            CallError::Transport(e) => write!(f, "the webhook could not be reached: {e}"),
        }
    }
}

/// `https://host[:port]/path` → (tls, host, port, path).
pub(crate) fn parse_url(url: &str) -> Option<(bool, String, u16, String)> {
    let (tls, rest) = if let Some(r) = url.strip_prefix("https://") {
        (true, r)
    } else {
        (false, url.strip_prefix("http://")?)
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || authority.starts_with('[') => {
            (h.trim_matches(['[', ']']).to_string(), p.parse().ok()?)
        }
        _ => (authority.to_string(), if tls { 443 } else { 80 }),
    };
    if host.is_empty() || path.bytes().any(|b| b <= b' ') {
        return None;
    }
    Some((tls, host, port, path.to_string()))
}

/// The signature header's value for `body`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// POSTs `body` (within [`TIMEOUT`]); `Ok` on a 2xx answer.
pub async fn post(
    url: &str,
    body: &[u8],
    idempotency_key: &str,
    secret: Option<&str>,
    tls: &tokio_rustls::TlsConnector,
) -> Result<u16, CallError> {
    tokio::time::timeout(TIMEOUT, async {
        let t = |e: std::io::Error| CallError::Transport(e.to_string());
        let (https, host, port, path) =
            parse_url(url).ok_or_else(|| CallError::Transport("not a valid URL".into()))?;
        let mut head = format!(
            "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nIdempotency-Key: {idempotency_key}\r\nUser-Agent: candor\r\nConnection: close\r\n",
            body.len()
        );
        if let Some(s) = secret {
            head.push_str(&format!("X-Candor-Signature: {}\r\n", signature(s, body)));
        }
        head.push_str("\r\n");
        let tcp = TcpStream::connect((host.as_str(), port)).await.map_err(t)?;
        let mut request = head.into_bytes();
        request.extend_from_slice(body);
        let status_line = if https {
            let name = rustls::pki_types::ServerName::try_from(host.clone())
                .map_err(|e| CallError::Transport(e.to_string()))?;
            let mut s = tls.connect(name, tcp).await.map_err(t)?;
            s.write_all(&request).await.map_err(t)?;
            read_status(&mut BufReader::new(s)).await?
        } else {
            let mut s = tcp;
            s.write_all(&request).await.map_err(t)?;
            read_status(&mut BufReader::new(s)).await?
        };
        if (200..300).contains(&status_line) {
            Ok(status_line)
        } else {
            Err(CallError::Status(status_line))
        }
    })
    .await
    .map_err(|_| CallError::Transport("timed out".into()))?
}

async fn read_status<R: AsyncBufReadExt + AsyncReadExt + Unpin>(
    r: &mut R,
) -> Result<u16, CallError> {
    let mut line = String::new();
    r.read_line(&mut line)
        .await
        .map_err(|e| CallError::Transport(e.to_string()))?;
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| CallError::Transport("not an HTTP answer".into()))?;
    // Drain (bounded) so the peer sees its answer read.
    let mut sink = Vec::new();
    let _ = r.take(64 * 1024).read_to_end(&mut sink).await;
    Ok(status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            parse_url("https://crm.example.org/hooks/candor"),
            Some((true, "crm.example.org".into(), 443, "/hooks/candor".into()))
        );
        assert_eq!(
            parse_url("http://127.0.0.1:9000"),
            Some((false, "127.0.0.1".into(), 9000, "/".into()))
        );
        // The assistant's model endpoint: a base URL with a path.
        assert_eq!(
            parse_url("http://127.0.0.1:11434/v1"),
            Some((false, "127.0.0.1".into(), 11434, "/v1".into()))
        );
        assert_eq!(parse_url("ftp://x"), None);
        assert_eq!(parse_url("https://x/a b"), None);
    }

    #[test]
    fn signature_is_hmac_sha256_hex() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
