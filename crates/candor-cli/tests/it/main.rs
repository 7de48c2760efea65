//! End-to-end tests of the `candor` binary: a real process, a real socket, real databases.

#![allow(clippy::unwrap_used)]

mod assistant;
mod dsr;
mod http;
mod journeys;
mod ml;
mod pricing;
mod recs;
mod web;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use candor_testkit::{BACKENDS, Backend, TempDir, fresh_pg_database};
use serde_json::json;

fn candor(dir: &Path, db: Option<&str>, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_candor"));
    cmd.arg("--dir")
        .arg(dir)
        .args(args)
        .env_remove("CANDOR_DATABASE_URL")
        .env("RUST_LOG", "warn");
    if let Some(url) = db {
        cmd.arg("--database-url").arg(url);
    }
    cmd.output().unwrap()
}

/// `../shared/data`'s Online Retail (CI has it; elsewhere the tests that need it say so).
pub(crate) fn online_retail() -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data/online_retail/online_retail.csv.gz");
    if p.exists() {
        Some(p)
    } else {
        println!("SKIPPED-DATA: {} not found", p.display());
        None
    }
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[track_caller]
fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status,
        stdout(o),
        stderr(o)
    );
    stdout(o)
}

/// A deployment directory and, for PostgreSQL, its database URL.
struct Deployment {
    dir: TempDir,
    db: Option<String>,
    backend: Backend,
}

impl Drop for Deployment {
    fn drop(&mut self) {
        if let Some(url) = &self.db {
            candor_testkit::drop_pg_database(url);
        }
    }
}

impl Deployment {
    async fn new(backend: Backend) -> Option<Self> {
        let db = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => Some(fresh_pg_database().await?),
        };
        Some(Self {
            dir: TempDir::new("candor-cli"),
            db,
            backend,
        })
    }

    fn run(&self, args: &[&str]) -> Output {
        candor(&self.dir.0, self.db.as_deref(), args)
    }

    fn url(&self) -> String {
        match &self.db {
            Some(url) => url.clone(),
            None => format!("sqlite://{}", self.dir.0.join("candor.db").display()),
        }
    }

    async fn exec(&self, sql: &str) -> u64 {
        candor_testkit::exec_sql(&self.url(), sql).await
    }

    async fn message_ids(&self) -> Vec<String> {
        candor_testkit::query_strings(&self.url(), "SELECT message_id FROM events").await
    }
}

#[tokio::test]
async fn init_writes_a_private_master_key_and_prints_the_admin_key_once() {
    for backend in BACKENDS {
        let Some(d) = Deployment::new(backend).await else {
            continue;
        };
        let out = ok(&d.run(&["init"]));
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 1, "stdout is the key alone: {out:?}");
        assert!(lines[0].starts_with("cnd_admin_"), "{out}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(d.dir.0.join("master.key"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{backend:?}");
        }
        let policy = std::fs::read_to_string(d.dir.0.join("candor.toml")).unwrap();
        assert!(policy.contains("# ") && policy.contains("[purposes.analytics]"));
        // init twice refuses and leaves the key alone
        let key_before = std::fs::read(d.dir.0.join("master.key")).unwrap();
        let again = d.run(&["init"]);
        assert!(!again.status.success());
        assert!(
            stderr(&again).contains("already initialized"),
            "{}",
            stderr(&again)
        );
        assert_eq!(
            std::fs::read(d.dir.0.join("master.key")).unwrap(),
            key_before
        );
        // the key is a secret: never in the logs or the database
        assert!(!stderr(&again).contains(lines[0]));
        // a master key readable by others is refused
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(
                d.dir.0.join("master.key"),
                std::fs::Permissions::from_mode(0o644),
            )
            .unwrap();
            let o = d.run(&["log", "verify"]);
            assert!(
                !o.status.success() && stderr(&o).contains("chmod 600"),
                "{}",
                stderr(&o)
            );
            std::fs::set_permissions(
                d.dir.0.join("master.key"),
                std::fs::Permissions::from_mode(0o600),
            )
            .unwrap();
        }
    }
}

#[tokio::test]
async fn tenants_and_keys_print_scriptable_values() {
    for backend in BACKENDS {
        let Some(d) = Deployment::new(backend).await else {
            continue;
        };
        ok(&d.run(&["init"]));
        let id = ok(&d.run(&["tenants", "create", "shop-2"]));
        assert!(uuid::Uuid::parse_str(id.trim()).is_ok(), "{id}");
        assert_eq!(id.lines().count(), 1);
        for scope in ["write", "server", "admin"] {
            let key = ok(&d.run(&["keys", "create", "--tenant", "shop-2", "--scope", scope]));
            assert_eq!(key.lines().count(), 1);
            assert!(key.starts_with(&format!("cnd_{scope}_")), "{key}");
        }
        let by_id = ok(&d.run(&["keys", "create", "--tenant", id.trim(), "--scope", "write"]));
        assert!(by_id.starts_with("cnd_write_"));
        let o = d.run(&["keys", "create", "--tenant", "nope", "--scope", "write"]);
        assert!(
            !o.status.success() && stderr(&o).contains("tenant not found"),
            "{}",
            stderr(&o)
        );
        let o = d.run(&["keys", "create", "--tenant", "shop-2", "--scope", "root"]);
        assert!(
            !o.status.success() && stderr(&o).contains("unknown scope"),
            "{}",
            stderr(&o)
        );
        let o = d.run(&["tenants", "create", "shop-2"]);
        assert!(!o.status.success() && stderr(&o).contains("already exists"));
        let o = d.run(&["tenants", "create", "bad name!"]);
        assert!(!o.status.success());
        let list = ok(&d.run(&["tenants", "list"]));
        assert!(list.contains("default") && list.contains("shop-2"));
    }
}

#[test]
fn policy_check_reports_file_line_and_column() {
    let dir = TempDir::new("candor-policy");
    let good = dir.0.join("good.toml");
    std::fs::write(&good, candor_policy::DEFAULT_POLICY).unwrap();
    let o = candor(&dir.0, None, &["policy", "check", good.to_str().unwrap()]);
    assert!(ok(&o).contains("ok"));
    // a protected category read by a marketing purpose, and a category without retention
    let bad_text = candor_policy::DEFAULT_POLICY
        .replace("categories = [\"contact\", \"behavioural\", \"transactional\"]\nsegment_categories = [\"Marketing\"", "categories = [\"contact\", \"protected\", \"transactional\"]\nsegment_categories = [\"Marketing\"")
        .replace("retention_days = 395", "");
    assert_ne!(bad_text, candor_policy::DEFAULT_POLICY);
    let bad = dir.0.join("bad.toml");
    std::fs::write(&bad, &bad_text).unwrap();
    let o = candor(&dir.0, None, &["policy", "check", bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    let protected_line = bad_text
        .lines()
        .position(|l| l.contains("\"protected\", \"transactional\""))
        .unwrap()
        + 1;
    assert!(
        err.contains(&format!("bad.toml:{protected_line}:")),
        "{err}"
    );
    assert!(err.contains("retention"), "{err}");
    let o = candor(
        &dir.0,
        None,
        &[
            "policy",
            "check",
            dir.0.join("missing.toml").to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(1));
}

#[tokio::test]
async fn log_verify_catches_an_edited_and_a_deleted_entry() {
    for backend in BACKENDS {
        for tamper in ["edit", "delete"] {
            let Some(d) = Deployment::new(backend).await else {
                continue;
            };
            ok(&d.run(&["init"]));
            for i in 0..4 {
                ok(&d.run(&["tenants", "create", &format!("t{i}")]));
            }
            let out = ok(&d.run(&["log", "verify"]));
            assert!(out.contains("audit log ok"), "{out}");
            let sql = match tamper {
                "edit" => {
                    "UPDATE audit_log SET details = '{\"name\":\"mallory\"}' WHERE chain = 'global' AND seq = 3"
                }
                _ => "DELETE FROM audit_log WHERE chain = 'global' AND seq = 2",
            };
            assert_eq!(d.exec(sql).await, 1);
            let o = d.run(&["log", "verify"]);
            assert_eq!(
                o.status.code(),
                Some(1),
                "{backend:?} {tamper}: {}",
                stdout(&o)
            );
            let err = stderr(&o);
            let seq = if tamper == "edit" { 3 } else { 2 };
            assert!(
                err.contains(&format!("`global` is broken at entry {seq}")),
                "{backend:?} {tamper}: {err}"
            );
        }
    }
}

/// A running `candor serve`, killed on drop.
struct Server {
    child: Child,
    addr: String,
    /// Everything it wrote to stderr so far.
    log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Server {
    /// Waits until a line of the log contains `needle` (or the timeout).
    fn wait_for_log(&self, needle: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !self.log.lock().unwrap().iter().any(|l| l.contains(needle))
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(d: &Deployment) -> Server {
    start_with_env(d, &[])
}

fn start_with_env(d: &Deployment, env: &[(&str, &str)]) -> Server {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_candor"));
    cmd.envs(env.iter().copied());
    cmd.arg("--dir")
        .arg(&d.dir.0)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Some(url) = &d.db {
        cmd.arg("--database-url").arg(url);
    }
    let mut child = cmd.spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log_w = log.clone();
    std::thread::spawn(move || {
        use std::io::BufRead as _;
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            log_w.lock().unwrap().push(line.clone());
            if let Some(rest) = line.strip_prefix("candor listening on http://") {
                let _ = tx.send(
                    rest.split_whitespace()
                        .next()
                        .unwrap_or_default()
                        .to_owned(),
                );
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("server did not start");
    Server { child, addr, log }
}

fn batch(prefix: &str, n: usize) -> String {
    let msgs: Vec<_> = (0..n)
        .map(|i| json!({"type": "track", "userId": format!("user-{}", i % 7), "messageId": format!("{prefix}-{i}"),
            "event": "Product Viewed", "properties": {"product_id": format!("p{i}")},
            "context": {"consent": {"categoryPreferences": {"Analytics": true}}}}))
        .collect();
    json!({ "batch": msgs }).to_string()
}

#[tokio::test]
async fn serve_answers_over_a_real_socket_and_kill_9_loses_no_acknowledged_event() {
    for backend in BACKENDS {
        let Some(d) = Deployment::new(backend).await else {
            continue;
        };
        let key = ok(&d.run(&["init"])).trim().to_owned();
        let server = start(&d);
        let (status, body) = http::request(&server.addr, "GET", "/healthz", None, None).unwrap();
        assert_eq!(status, 200, "{body}");
        // acknowledged batches, sent until the process is killed mid-stream
        let addr = server.addr.clone();
        let sender_key = key.clone();
        let acked = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let acked_w = acked.clone();
        let sender = std::thread::spawn(move || {
            for b in 0..10_000 {
                let prefix = format!("b{b}");
                match http::request(
                    &addr,
                    "POST",
                    "/v1/batch",
                    Some(&sender_key),
                    Some(&batch(&prefix, 20)),
                ) {
                    Ok((200, body)) => {
                        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
                        assert_eq!(v["accepted"], 20, "{body}");
                        acked_w
                            .lock()
                            .unwrap()
                            .extend((0..20).map(|i| format!("{prefix}-{i}")));
                    }
                    _ => return,
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        while acked.lock().unwrap().len() < 400 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        let mut server = server;
        // SIGKILL: no shutdown hook runs
        server.child.kill().unwrap();
        server.child.wait().unwrap();
        sender.join().unwrap();
        let acked = acked.lock().unwrap().clone();
        assert!(
            acked.len() >= 400,
            "{backend:?}: only {} acknowledged",
            acked.len()
        );
        let stored: std::collections::HashSet<String> = d.message_ids().await.into_iter().collect();
        let lost: Vec<_> = acked.iter().filter(|m| !stored.contains(*m)).collect();
        assert!(
            lost.is_empty(),
            "{backend:?}: {} acknowledged events lost, e.g. {:?}",
            lost.len(),
            &lost[..lost.len().min(5)]
        );
        // the server restarts on the same data, the log verifies, and retries are duplicates
        let server = start(&d);
        let (_, body) = http::request(
            &server.addr,
            "POST",
            "/v1/batch",
            Some(&key),
            Some(&batch("b0", 20)),
        )
        .unwrap();
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["duplicate"], 20, "{body}");
        drop(server);
        let out = ok(&d.run(&["log", "verify"]));
        assert!(out.contains("audit log ok"));
        let _: &PathBuf = &d.dir.0;
        let _ = d.backend;
    }
}
