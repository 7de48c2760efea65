//! `bench/journeys`, on SQLite and PostgreSQL:
//! 1. **Trigger events → enrolled steps**: `BENCH_EVENTS` cart events (default 1,000,000: 80%
//!    `Checkout Started`, 20% `Order Completed`) for `BENCH_SUBJECTS` people (100,000) through
//!    `App::ingest` (consent, minimization, sealing, the journey enrolment and exits in the same
//!    transaction), against the same events with no journey configured: the cost of journeys.
//! 2. **Due steps claimed** per second by the scheduler (`claim_due_steps`, batches of 1,000).
//! 3. **Emails sent** to a local SMTP server (aiosmtpd) per second, `BENCH_EMAILS` (5,000), with
//!    every send-time check, rendering, the sealed decision and the two-phase SMTP hand-over;
//!    beside Python's `smtplib` handing the same number of prepared messages to the same server
//!    over one connection (the server's ceiling with a client that checks nothing).
//!
//! Run: `bash bench/run journeys`. `BENCH_BACKENDS` (`sqlite,postgres`).

#![allow(clippy::unwrap_used)]

use std::io::{BufRead as _, Write as _};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use candor_app::{App, IngestOptions, Principal, SystemClock};
use candor_crypto::MasterKey;
use candor_policy::{DEFAULT_POLICY, Policy};
use candor_store::{AnyStore, PgStore, SqliteStore, Store};
use candor_testkit::TempDir;
use candor_types::{Scope, Timestamp};
use serde_json::{Value, json};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const BATCH: usize = 500;
const CLIENTS: usize = 4;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn python() -> Result<PathBuf> {
    candor_testkit::peers_python().context("the peers' virtualenv is needed (aiosmtpd)")
}

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

struct Sink {
    child: Child,
    port: u16,
    _dir: TempDir,
}

impl Sink {
    fn start() -> Result<Sink> {
        let dir = TempDir::new("candor-bench-smtp");
        let mut child = Command::new(python()?)
            .arg(workspace().join("crates/candor-cli/tests/peers/smtp_sink.py"))
            .arg(&dir.0)
            .arg("--count")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.as_mut().context("stdout")?).read_line(&mut line)?;
        let port = line
            .trim()
            .strip_prefix("listening ")
            .and_then(|p| p.parse().ok())
            .context("the SMTP sink did not start")?;
        Ok(Sink {
            child,
            port,
            _dir: dir,
        })
    }

    /// Stops the server; how many messages it accepted.
    fn stop(mut self) -> Result<usize> {
        drop(self.child.stdin.take());
        let mut out = String::new();
        let mut r = std::io::BufReader::new(self.child.stdout.take().context("stdout")?);
        r.read_line(&mut out)?;
        self.child.wait()?;
        out.trim()
            .strip_prefix("received ")
            .and_then(|n| n.parse().ok())
            .context("the sink did not report its count")
    }
}

/// PostgreSQL databases this run created, dropped at the end.
static CREATED: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

async fn open(backend: &str, dir: &TempDir, policy: &str) -> Result<(App, Principal)> {
    let store = match backend {
        "sqlite" => AnyStore::Sqlite(
            SqliteStore::open(&dir.0.join(format!("candor-{}.db", uuid::Uuid::new_v4()))).await?,
        ),
        _ => {
            let url = candor_testkit::fresh_pg_database()
                .await
                .context("PostgreSQL unreachable")?;
            if let Ok(mut v) = CREATED.lock() {
                v.push(url.clone());
            }
            AnyStore::Postgres(PgStore::connect(&url).await?)
        }
    };
    store.migrate().await?;
    let policy = Policy::parse("candor.toml", policy).map_err(|e| anyhow::anyhow!("{e}"))?;
    let app = App::new(store, policy, MasterKey::generate()?, Arc::new(SystemClock));
    let tenant = app
        .create_tenant("bench", "bench")
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .id;
    let key = app
        .create_key(tenant, Scope::Write, None, "bench")
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .1;
    let p = app
        .authenticate(&key)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok((app, p))
}

fn policy(smtp_port: u16, journeys: &str) -> String {
    format!(
        "{}\n[smtp]\nhost = \"127.0.0.1\"\nport = {smtp_port}\ntls = \"none\"\nfrom = \"Shop <shop@example.org>\"\npostal_address = \"1 Market Street, Springfield\"\nmax_per_second = 100000\n{journeys}",
        DEFAULT_POLICY.replace("quiet_hours = [21, 8]", "quiet_hours = [0, 0]")
    )
}

const CONSENT: &str =
    r#"{"consent": {"categoryPreferences": {"Marketing": true, "Analytics": true}}}"#;

fn cart_event(run: &str, i: usize, subjects: usize) -> Value {
    let event = if i % 5 == 4 {
        "Order Completed"
    } else {
        "Checkout Started"
    };
    json!({"type": "track", "userId": format!("c{}", i % subjects), "messageId": format!("{run}-{i}"),
        "event": event, "properties": {"products": [{"product_id": format!("sku-{}", i % 4070), "price": 12.5}]},
        "context": serde_json::from_str::<Value>(CONSENT).unwrap()})
}

/// Ingests `events` messages from `CLIENTS` concurrent callers; seconds.
async fn ingest_all(
    app: &App,
    p: &Principal,
    run: &str,
    events: usize,
    subjects: usize,
) -> Result<f64> {
    let batches = events.div_ceil(BATCH);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..CLIENTS {
        let (app, p, next, run) = (app.clone(), *p, next.clone(), run.to_string());
        tasks.push(tokio::spawn(async move {
            loop {
                let b = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if b >= batches {
                    return Ok::<(), anyhow::Error>(());
                }
                let msgs: Vec<Value> = (b * BATCH..((b + 1) * BATCH).min(events))
                    .map(|i| cart_event(&run, i, subjects))
                    .collect();
                let r = app
                    .ingest(&p, msgs, IngestOptions::default())
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                if r.rejected > 0 || r.dropped > 0 {
                    bail!("events not accepted: {:?}", r.results.first());
                }
                if b % 200 == 0 {
                    eprint!("\r  {} / {events} events", (b + 1) * BATCH);
                }
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    eprint!("\r{:60}\r", "");
    Ok(start.elapsed().as_secs_f64())
}

async fn enrolment(backend: &str, events: usize, subjects: usize) -> Result<()> {
    let dir = TempDir::new("candor-bench-journeys");
    let journeys = "[[journeys]]\ntemplate = \"abandoned_cart\"\n\n[[journeys]]\ntemplate = \"browse_abandonment\"\n";
    // With journeys first: a run that comes second on the same machine pays for the first one's
    // leftovers (checkpoints, autovacuum), which would flatter the comparison.
    let (app, p) = open(backend, &dir, &policy(9, journeys)).await?;
    let secs = ingest_all(&app, &p, "j", events, subjects).await?;
    let (plain, pp) = open(backend, &dir, &policy(9, "")).await?;
    let base = ingest_all(&plain, &pp, "plain", events, subjects).await?;
    // Every pending step is due in 4 hours: claim them all as the scheduler would.
    let later = Timestamp(Timestamp::now().0 + 5 * 3_600_000);
    let start = Instant::now();
    let mut claimed = 0usize;
    loop {
        let got = app.store().claim_due_steps(later, 600_000, 1000).await?;
        if got.is_empty() {
            break;
        }
        claimed += got.len();
    }
    let claim_secs = start.elapsed().as_secs_f64();
    println!(
        "{backend:8} enrolment: {events} cart events, {subjects} people: {:.0} events/s with journeys vs {:.0} without ({:.2}× the time); {claimed} steps enrolled (one pending per person and journey)",
        events as f64 / secs,
        events as f64 / base,
        secs / base
    );
    println!(
        "{backend:8} due steps claimed: {claimed} in {claim_secs:.2} s = {:.0} steps/s",
        claimed as f64 / claim_secs
    );
    Ok(())
}

async fn sending(backend: &str, n: usize) -> Result<()> {
    let dir = TempDir::new("candor-bench-journeys");
    let sink = Sink::start()?;
    let (app, p) = open(
        backend,
        &dir,
        &policy(
            sink.port,
            "[[journeys]]\ntemplate = \"abandoned_cart\"\nwait = \"0s\"\n",
        ),
    )
    .await?;
    let consent: Value = serde_json::from_str(CONSENT)?;
    for chunk in (0..n).collect::<Vec<_>>().chunks(BATCH / 2) {
        let mut msgs = Vec::new();
        for i in chunk {
            msgs.push(json!({"type": "identify", "userId": format!("s{i}"), "traits": {"email": format!("s{i}@example.org"), "firstName": "Sam"}, "context": consent}));
            msgs.push(json!({"type": "track", "userId": format!("s{i}"), "messageId": format!("cart-{i}"), "event": "Checkout Started",
                "properties": {"products": [{"product_id": "sku-1", "name": "Blue Mug", "price": 9.5}]}, "context": consent}));
        }
        app.ingest(&p, msgs, IngestOptions::default())
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    let start = Instant::now();
    let mut sent = 0;
    while sent < n {
        let r = app
            .send_due_steps(500)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        if r.claimed == 0 {
            bail!("{backend}: only {sent} of {n} emails were due");
        }
        sent += r.sent;
        eprint!("\r  {sent} / {n} emails");
    }
    let secs = start.elapsed().as_secs_f64();
    eprint!("\r{:60}\r", "");
    let received = sink.stop()?;
    if received != n {
        bail!("{backend}: the SMTP server received {received} of {n}");
    }
    // The peer, on a fresh server of the same kind.
    let sink = Sink::start()?;
    let out = Command::new(python()?)
        .arg(workspace().join("bench/journeys/peers.py"))
        .arg(sink.port.to_string())
        .arg(n.to_string())
        .output()?;
    if !out.status.success() {
        bail!("peers.py failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let peer: Value = serde_json::from_slice(&out.stdout)?;
    let peer_secs = peer["seconds"].as_f64().context("peer seconds")?;
    let peer_received = sink.stop()?;
    println!(
        "{backend:8} send: {n} emails in {secs:.2} s = {:.0} emails/s (consent, cap, address, render, sealed decision, two-phase SMTP); smtplib, prepared messages: {:.0}/s ({peer_received} received); Candor / smtplib time: {:.2}×",
        n as f64 / secs,
        n as f64 / peer_secs,
        secs / peer_secs
    );
    std::io::stdout().flush()?;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let events = env_usize("BENCH_EVENTS", 1_000_000);
    let subjects = env_usize("BENCH_SUBJECTS", 100_000);
    let emails = env_usize("BENCH_EMAILS", 5_000);
    let backends = std::env::var("BENCH_BACKENDS").unwrap_or_else(|_| "sqlite,postgres".into());
    println!("bench/journeys: {events} events, {subjects} people, {emails} emails; 2 cores");
    let mut result = Ok(());
    for backend in backends.split(',') {
        if let Err(e) = enrolment(backend, events, subjects).await {
            result = Err(e);
            break;
        }
        if let Err(e) = sending(backend, emails).await {
            result = Err(e);
            break;
        }
    }
    for url in CREATED.lock().map(|v| v.clone()).unwrap_or_default() {
        candor_testkit::drop_pg_database(&url);
    }
    result
}
