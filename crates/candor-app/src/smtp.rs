//! A small SMTP client (RFC 5321) for handing journey emails to the relay: plain, STARTTLS or
//! implicit TLS (rustls), `AUTH PLAIN`, one connection reused for many messages.
//!
//! A message is sent in two halves so the scheduler can record it in between: [`SmtpClient::begin`]
//! sends the envelope and the whole body except the terminating `.`; [`SmtpClient::commit`] sends
//! the `.` and reads the relay's verdict. A relay does not accept a message whose `.` never came
//! (RFC 5321 §4.1.1.4), so a crash before the commit sends nothing; the scheduler records the
//! email *before* the commit, so the window in which a crash could lose (never duplicate) an
//! email is one write of three bytes.

use std::sync::Arc;
use std::time::Duration;

use candor_policy::{SmtpPolicy, SmtpTls};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// How long one command may take before the connection is given up.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// Why an SMTP exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum SmtpError {
    /// The relay answered with a 4xx (try again later) or 5xx (permanent) reply.
    #[error("the relay answered {code} {text}")]
    Reply { code: u16, text: String },
    #[error("SMTP connection failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("the relay did not answer in time")]
    Timeout,
    #[error("SMTP protocol error: {0}")]
    Protocol(String),
    #[error("TLS setup failed: {0}")]
    Tls(String),
}

impl SmtpError {
    /// A permanent refusal (5xx): retrying the same message will not help.
    pub fn is_permanent(&self) -> bool {
        matches!(self, SmtpError::Reply { code, .. } if *code >= 500)
    }
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Where to connect and how to log in. The password is read from the environment variable the
/// policy names, when the client is built, and never printed.
#[derive(Clone)]
pub struct SmtpConfig {
    pub policy: SmtpPolicy,
    pub credentials: Option<(String, String)>,
    /// Extra trusted roots (a relay with a private CA), PEM.
    pub extra_roots: Vec<rustls::pki_types::CertificateDer<'static>>,
}

impl std::fmt::Debug for SmtpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpConfig")
            .field("host", &self.policy.host)
            .field("port", &self.policy.port)
            .field("tls", &self.policy.tls)
            .field("credentials", &self.credentials.as_ref().map(|_| "[set]"))
            .finish()
    }
}

impl SmtpConfig {
    /// Reads credentials (and `ca_file`) named by the policy from the environment.
    pub fn from_policy(policy: &SmtpPolicy) -> Result<Self, String> {
        let var = |name: &Option<String>| -> Result<Option<String>, String> {
            match name {
                None => Ok(None),
                Some(n) => std::env::var(n).map(Some).map_err(|_| {
                    format!("[smtp] names the environment variable {n}, which is not set")
                }),
            }
        };
        let user = var(&policy.username_env)?;
        let pass = var(&policy.password_env)?;
        let credentials = match (user, pass) {
            (Some(u), Some(p)) => Some((u, p)),
            (None, None) => None,
            _ => return Err("[smtp] needs both username_env and password_env, or neither".into()),
        };
        let mut extra_roots = Vec::new();
        if let Some(path) = &policy.ca_file {
            use rustls::pki_types::pem::PemObject as _;
            for c in rustls::pki_types::CertificateDer::pem_file_iter(path)
                .map_err(|e| format!("[smtp] ca_file {path}: {e}"))?
            {
                extra_roots.push(c.map_err(|e| format!("[smtp] ca_file {path}: {e}"))?);
            }
        }
        Ok(SmtpConfig {
            policy: policy.clone(),
            credentials,
            extra_roots,
        })
    }

    pub(crate) fn tls_connector(&self) -> Result<tokio_rustls::TlsConnector, SmtpError> {
        tls_client(&self.extra_roots).map_err(SmtpError::Tls)
    }

    fn server_name(&self) -> Result<rustls::pki_types::ServerName<'static>, SmtpError> {
        rustls::pki_types::ServerName::try_from(self.policy.host.clone())
            .map_err(|e| SmtpError::Tls(format!("server name {}: {e}", self.policy.host)))
    }
}

/// One SMTP reply: code and text lines.
#[derive(Debug)]
pub struct Reply {
    pub code: u16,
    pub lines: Vec<String>,
}

/// An open, greeted (and, if configured, secured and authenticated) SMTP session.
pub struct SmtpClient {
    io: BufReader<Box<dyn Io>>,
    /// A message was begun and neither committed nor abandoned.
    in_data: bool,
}

async fn timed<T>(
    f: impl std::future::Future<Output = Result<T, SmtpError>>,
) -> Result<T, SmtpError> {
    tokio::time::timeout(COMMAND_TIMEOUT, f)
        .await
        .map_err(|_| SmtpError::Timeout)?
}

async fn read_reply<R: AsyncBufReadExt + Unpin>(r: &mut R) -> Result<Reply, SmtpError> {
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).await? == 0 {
            return Err(SmtpError::Protocol(
                "the relay closed the connection".into(),
            ));
        }
        let l = line.trim_end_matches(['\r', '\n']);
        let code = l
            .get(..3)
            .and_then(|c| c.parse::<u16>().ok())
            .ok_or_else(|| SmtpError::Protocol(format!("not an SMTP reply: {l:.80}")))?;
        let last = l.as_bytes().get(3) != Some(&b'-');
        lines.push(l.get(4..).unwrap_or("").to_string());
        if last {
            return Ok(Reply { code, lines });
        }
    }
}

fn expect(reply: Reply, ok: impl Fn(u16) -> bool) -> Result<Reply, SmtpError> {
    if ok(reply.code) {
        Ok(reply)
    } else {
        Err(SmtpError::Reply {
            code: reply.code,
            text: reply.lines.join(" "),
        })
    }
}

/// The host name Candor greets with (`EHLO`): the sender's domain.
fn helo_name(from: &str) -> String {
    from.rsplit('@')
        .next()
        .map(|d| d.trim_end_matches('>').trim())
        .filter(|d| !d.is_empty())
        .unwrap_or("localhost")
        .to_string()
}

impl SmtpClient {
    /// Connects, reads the greeting, says EHLO, upgrades to TLS and logs in as configured.
    pub async fn connect(cfg: &SmtpConfig) -> Result<Self, SmtpError> {
        timed(Self::connect_inner(cfg)).await
    }

    async fn connect_inner(cfg: &SmtpConfig) -> Result<Self, SmtpError> {
        let p = &cfg.policy;
        let tcp = TcpStream::connect((p.host.as_str(), p.port)).await?;
        tcp.set_nodelay(true)?;
        let helo = helo_name(&p.from);
        let io: Box<dyn Io> = match p.tls {
            SmtpTls::Tls => Box::new(
                cfg.tls_connector()?
                    .connect(cfg.server_name()?, tcp)
                    .await
                    .map_err(|e| SmtpError::Tls(e.to_string()))?,
            ),
            SmtpTls::None => Box::new(tcp),
            SmtpTls::StartTls => {
                let mut plain = BufReader::new(tcp);
                expect(read_reply(&mut plain).await?, |c| c == 220)?;
                let ehlo = Self::ehlo_on(&mut plain, &helo).await?;
                if !ehlo
                    .lines
                    .iter()
                    .any(|l| l.eq_ignore_ascii_case("STARTTLS"))
                {
                    return Err(SmtpError::Tls(
                        "the relay does not offer STARTTLS; refusing to send in clear".into(),
                    ));
                }
                plain.get_mut().write_all(b"STARTTLS\r\n").await?;
                expect(read_reply(&mut plain).await?, |c| c == 220)?;
                let tls = cfg
                    .tls_connector()?
                    .connect(cfg.server_name()?, plain.into_inner())
                    .await
                    .map_err(|e| SmtpError::Tls(e.to_string()))?;
                let mut c = SmtpClient {
                    io: BufReader::new(Box::new(tls)),
                    in_data: false,
                };
                let ehlo = Self::ehlo_on(&mut c.io, &helo).await?;
                c.login(cfg, &ehlo).await?;
                return Ok(c);
            }
        };
        let mut c = SmtpClient {
            io: BufReader::new(io),
            in_data: false,
        };
        expect(read_reply(&mut c.io).await?, |code| code == 220)?;
        let ehlo = Self::ehlo_on(&mut c.io, &helo).await?;
        c.login(cfg, &ehlo).await?;
        Ok(c)
    }

    async fn ehlo_on<S: AsyncBufReadExt + AsyncWrite + Unpin>(
        s: &mut S,
        helo: &str,
    ) -> Result<Reply, SmtpError> {
        s.write_all(format!("EHLO {helo}\r\n").as_bytes()).await?;
        expect(read_reply(s).await?, |c| c == 250)
    }

    async fn login(&mut self, cfg: &SmtpConfig, ehlo: &Reply) -> Result<(), SmtpError> {
        let Some((user, pass)) = &cfg.credentials else {
            return Ok(());
        };
        if cfg.policy.tls == SmtpTls::None && !is_loopback(&cfg.policy.host) {
            return Err(SmtpError::Tls(
                "refusing to send SMTP credentials without TLS; set tls = \"starttls\" or \"tls\""
                    .into(),
            ));
        }
        let offers_plain = ehlo.lines.iter().any(|l| {
            let u = l.to_ascii_uppercase();
            u.starts_with("AUTH") && u.split_whitespace().any(|m| m == "PLAIN")
        });
        if !offers_plain {
            return Err(SmtpError::Protocol(
                "the relay does not offer AUTH PLAIN".into(),
            ));
        }
        use base64::Engine as _;
        let token = base64::engine::general_purpose::STANDARD
            .encode(format!("\0{user}\0{pass}").as_bytes());
        self.write(format!("AUTH PLAIN {token}\r\n").as_bytes())
            .await?;
        // The reply never contains the credentials; on failure only the code is kept.
        let r = read_reply(&mut self.io).await?;
        if r.code != 235 {
            return Err(SmtpError::Reply {
                code: r.code,
                text: "authentication failed".into(),
            });
        }
        Ok(())
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), SmtpError> {
        self.io.get_mut().write_all(bytes).await?;
        Ok(())
    }

    async fn command(&mut self, line: &str, ok: impl Fn(u16) -> bool) -> Result<Reply, SmtpError> {
        self.write(line.as_bytes()).await?;
        self.write(b"\r\n").await?;
        expect(read_reply(&mut self.io).await?, ok)
    }

    /// Sends the envelope and the message up to (not including) its terminating `.`. A 5xx
    /// here (a refused recipient) leaves the session usable for the next message.
    pub async fn begin(&mut self, from: &str, to: &str, message: &[u8]) -> Result<(), SmtpError> {
        if self.in_data {
            return Err(SmtpError::Protocol(
                "a message is already in progress".into(),
            ));
        }
        for addr in [from, to] {
            if addr
                .bytes()
                .any(|b| b == b'\r' || b == b'\n' || b == b'<' || b == b'>')
            {
                return Err(SmtpError::Protocol(
                    "address contains forbidden characters".into(),
                ));
            }
        }
        timed(async {
            self.command(&format!("MAIL FROM:<{from}>"), |c| c == 250)
                .await?;
            if let Err(e) = self
                .command(&format!("RCPT TO:<{to}>"), |c| c == 250 || c == 251)
                .await
            {
                let _ = self.command("RSET", |c| c == 250).await;
                return Err(e);
            }
            self.command("DATA", |c| c == 354).await?;
            self.in_data = true;
            let stuffed = dot_stuff(message);
            self.write(&stuffed).await?;
            self.io.get_mut().flush().await?;
            Ok(())
        })
        .await
    }

    /// Ends the message begun with [`Self::begin`]; the relay's acceptance (250) or refusal.
    pub async fn commit(&mut self) -> Result<Reply, SmtpError> {
        if !self.in_data {
            return Err(SmtpError::Protocol("no message in progress".into()));
        }
        self.in_data = false;
        timed(async {
            self.write(b".\r\n").await?;
            self.io.get_mut().flush().await?;
            expect(read_reply(&mut self.io).await?, |c| c == 250)
        })
        .await
    }

    /// Says goodbye.
    pub async fn quit(mut self) {
        if !self.in_data {
            let _ = timed(self.command("QUIT", |_| true)).await;
        }
    }
}

fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// CRLF line endings, a leading `.` doubled (RFC 5321 §4.5.2), ending with CRLF.
fn dot_stuff(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 64);
    let mut at_line_start = true;
    let mut prev = 0u8;
    for &b in message {
        if b == b'\n' && prev != b'\r' {
            out.push(b'\r');
        }
        if at_line_start && b == b'.' {
            out.push(b'.');
        }
        out.push(b);
        at_line_start = b == b'\n';
        prev = b;
    }
    if !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// A TLS client trusting the public web PKI (and `extra_roots`): the SMTP relay, webhooks and
/// the assistant's language model connect with it.
pub(crate) fn tls_client(
    extra_roots: &[rustls::pki_types::CertificateDer<'static>],
) -> Result<tokio_rustls::TlsConnector, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    for c in extra_roots {
        roots.add(c.clone()).map_err(|e| e.to_string())?;
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_stuffing_doubles_leading_dots_and_normalises_line_ends() {
        assert_eq!(dot_stuff(b".a\n..b\r\nc.d"), b"..a\r\n...b\r\nc.d\r\n");
        assert_eq!(dot_stuff(b"x\r\n"), b"x\r\n");
    }

    #[test]
    fn helo_is_the_sender_domain() {
        assert_eq!(helo_name("Shop <shop@example.org>"), "example.org");
        assert_eq!(helo_name("nobody"), "nobody");
    }
}
