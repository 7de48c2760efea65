//! What the benchmarks share: options from the environment, and an HTTP/1.1 client on a
//! kept-alive loopback connection (no client library between the load and the server).

use anyhow::{Context, Result};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpStream;

/// A whole number from the environment (`1_000_000` allowed), or `default`.
pub fn env_usize(name: &str, default: usize) -> Result<usize> {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .replace('_', "")
            .parse()
            .with_context(|| format!("{name}={v:?} is not a whole number")),
        Err(_) => Ok(default),
    }
}

/// The `q` quantile of sorted values (nearest rank); NaN when there are none.
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

/// One JSON `POST` on a kept-alive connection; the status and body of the answer.
pub async fn post(
    stream: &mut BufReader<TcpStream>,
    path: &str,
    auth: &str,
    body: &[u8],
) -> Result<(u16, Vec<u8>)> {
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: bench\r\nAuthorization: {auth}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.get_mut().write_all(head.as_bytes()).await?;
    stream.get_mut().write_all(body).await?;
    read_response(stream).await
}

/// One `GET` on a kept-alive connection; the status and body of the answer.
pub async fn get(
    stream: &mut BufReader<TcpStream>,
    path: &str,
    auth: &str,
) -> Result<(u16, Vec<u8>)> {
    let head = format!("GET {path} HTTP/1.1\r\nHost: bench\r\nAuthorization: {auth}\r\n\r\n");
    stream.get_mut().write_all(head.as_bytes()).await?;
    read_response(stream).await
}

/// Reads one answer (status line, headers, a `Content-Length` body).
async fn read_response(stream: &mut BufReader<TcpStream>) -> Result<(u16, Vec<u8>)> {
    let mut line = String::new();
    stream.read_line(&mut line).await?;
    let status: u16 = line.split(' ').nth(1).unwrap_or("0").parse().unwrap_or(0);
    let mut len = 0usize;
    loop {
        line.clear();
        stream.read_line(&mut line).await?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':')
            && k.eq_ignore_ascii_case("content-length")
        {
            len = v.trim().parse().unwrap_or(0);
        }
    }
    let mut out = vec![0u8; len];
    stream.read_exact(&mut out).await?;
    Ok((status, out))
}
