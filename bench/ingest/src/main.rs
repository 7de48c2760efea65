//! `bench/ingest`: events per second through `POST /v1/batch` (loopback HTTP, batches of 100,
//! consent check and encryption on), and in the same run the ceiling: the same rows inserted
//! straight into the database with prepared statements, one transaction per batch.
//!
//! Run: `cargo run --release -p candor-bench-ingest` (or `bash bench/run`).
//! Options (environment): `BENCH_BATCHES` (default 1000), `BENCH_CLIENTS` (8), `BENCH_RUNS` (3),
//! `BENCH_BACKENDS` (`sqlite,postgres`). PostgreSQL: a fresh database on `CANDOR_TEST_PG_URL`.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use base64::Engine as _;
use candor_app::{App, SystemClock};
use candor_crypto::MasterKey;
use candor_policy::{DEFAULT_POLICY, Policy};
use candor_store::{AnyStore, PgStore, SqliteStore, Store};
use candor_testkit::TempDir;

use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const BATCH: usize = 100;
const USERS: usize = 2000;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One Segment message as a storefront would send it: consent travels with the event,
/// the IP is personal (sealed), the product fields are behavioural.
fn message(run: &str, b: usize, i: usize) -> serde_json::Value {
    let n = b * BATCH + i;
    json!({
        "type": "track",
        "messageId": format!("{run}-{b}-{i}"),
        "userId": format!("customer-{}", n % USERS),
        "event": if i.is_multiple_of(10) { "Product Added" } else { "Product Viewed" },
        "properties": {"product_id": format!("sku-{}", n % 4070), "price": 12.5, "currency": "GBP", "category": "home"},
        "context": {
            "ip": format!("203.0.113.{}", n % 250),
            "userAgent": "Mozilla/5.0 (X11; Linux x86_64)",
            "page": {"path": "/products/sku", "url": "https://shop.example/products/sku"},
            "consent": {"categoryPreferences": {"Analytics": true, "Marketing": true}}
        },
        "timestamp": "2026-11-01T10:00:00.000Z"
    })
}

fn batch_body(run: &str, b: usize) -> String {
    let batch: Vec<_> = (0..BATCH).map(|i| message(run, b, i)).collect();
    json!({ "batch": batch }).to_string()
}

/// Keep-alive HTTP/1.1 POST; returns the status.
async fn post(stream: &mut BufReader<TcpStream>, auth: &str, body: &str) -> Result<u16> {
    let head = format!(
        "POST /v1/batch HTTP/1.1\r\nHost: bench\r\nAuthorization: Basic {auth}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let s = stream.get_mut();
    let mut req = Vec::with_capacity(head.len() + body.len());
    req.extend_from_slice(head.as_bytes());
    req.extend_from_slice(body.as_bytes());
    s.write_all(&req).await?;
    let mut line = String::new();
    stream.read_line(&mut line).await?;
    let status: u16 = line.split(' ').nth(1).context("status")?.parse()?;
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
            len = v.trim().parse()?;
        }
    }
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body).await?;
    if status != 200 {
        anyhow::bail!("status {status}: {}", String::from_utf8_lossy(&body));
    }
    let v: serde_json::Value = serde_json::from_slice(&body)?;
    anyhow::ensure!(v["accepted"] == BATCH, "not all accepted: {v}");
    Ok(status)
}

async fn connect(addr: std::net::SocketAddr) -> Result<TcpStream> {
    let s = TcpStream::connect(addr).await?;
    s.set_nodelay(true)?;
    Ok(s)
}

async fn open_store(backend: &str, dir: &TempDir) -> Result<(AnyStore, Option<String>)> {
    let (store, url) = match backend {
        "sqlite" => (
            AnyStore::Sqlite(
                SqliteStore::open(&dir.0.join(format!("candor-{}.db", uuid::Uuid::new_v4())))
                    .await?,
            ),
            None,
        ),
        _ => {
            let url = scratch_pg_database().await?;
            (AnyStore::Postgres(PgStore::connect(&url).await?), Some(url))
        }
    };
    store.migrate().await?;
    Ok((store, url))
}

/// Events/s through the HTTP API.
async fn candor_run(
    backend: &str,
    dir: &TempDir,
    batches: usize,
    clients: usize,
    run: usize,
) -> Result<f64> {
    let (store, pg_url) = open_store(backend, dir).await?;
    let policy =
        Policy::parse("candor.toml", DEFAULT_POLICY).map_err(|e| anyhow::anyhow!("{e}"))?;
    let app = App::new(store, policy, MasterKey::generate()?, Arc::new(SystemClock));
    let tenant = app.create_tenant("bench", "bench").await?;
    let (_, key) = app
        .create_key(tenant.id, candor_types::Scope::Write, None, "bench")
        .await?;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{key}:"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(candor_http::serve(
        listener,
        app.clone(),
        std::future::pending(),
    ));

    // Warm-up: every customer once (creates subjects, records their consent).
    let warm = USERS / BATCH;
    let mut conn = BufReader::new(connect(addr).await?);
    for b in 0..warm {
        post(&mut conn, &auth, &batch_body(&format!("warm{run}"), b)).await?;
    }
    if let Some(url) = pg_url {
        // A production database has planner statistics; a fresh one gets them here rather
        // than whenever autovacuum gets round to it mid-run.
        use sqlx::Connection as _;
        let mut c = sqlx::PgConnection::connect(&url).await?;
        sqlx::query("ANALYZE").execute(&mut c).await?;
    }
    let bodies: Vec<String> = (0..batches)
        .map(|b| batch_body(&format!("r{run}"), b))
        .collect();
    let bodies = Arc::new(bodies);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let bodies = bodies.clone();
        let auth = auth.clone();
        tasks.push(tokio::spawn(async move {
            let mut conn = BufReader::new(connect(addr).await?);
            let mut b = c;
            while b < bodies.len() {
                post(&mut conn, &auth, &bodies[b]).await?;
                b += clients;
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let secs = start.elapsed().as_secs_f64();
    server.abort();
    let stored = app.store().count_events(tenant.id).await?;
    anyhow::ensure!(
        stored as usize == (warm + batches) * BATCH,
        "stored {stored}"
    );
    Ok((batches * BATCH) as f64 / secs)
}

/// One stored row, shaped like the ones Candor writes for the messages above.
struct Row {
    id: String,
    message_id: String,
    subject: String,
    plain: String,
    sealed: String,
}

fn ceiling_rows(batches: usize, run: usize) -> Vec<Vec<Row>> {
    let subjects: Vec<String> = (0..USERS)
        .map(|_| uuid::Uuid::now_v7().to_string())
        .collect();
    let sealed_blob = base64::engine::general_purpose::STANDARD.encode([7u8; 1 + 24 + 16 + 34]);
    (0..batches)
        .map(|b| {
            (0..BATCH)
                .map(|i| {
                    let m = message(&format!("c{run}"), b, i);
                    let plain = json!({"behavioural": {"properties": m["properties"], "context": {"page": m["context"]["page"], "userAgent": m["context"]["userAgent"]}}});
                    Row {
                        id: uuid::Uuid::now_v7().to_string(),
                        message_id: m["messageId"].as_str().unwrap_or_default().to_owned(),
                        subject: subjects[(b * BATCH + i) % USERS].clone(),
                        plain: plain.to_string(),
                        sealed: json!({"contact": sealed_blob}).to_string(),
                    }
                })
                .collect()
        })
        .collect()
}

const INSERT: &str = "INSERT INTO events (tenant_id, id, message_id, subject_id, kind, name, category, purposes, parts, plain, sealed, occurred_at, received_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)";

macro_rules! insert_batch {
    ($conn:expr, $tenant:expr, $rows:expr) => {{
        let mut tx = sqlx::Connection::begin(&mut *$conn).await?;
        for r in $rows {
            sqlx::query(INSERT)
                .bind($tenant)
                .bind(&r.id)
                .bind(&r.message_id)
                .bind(&r.subject)
                .bind("track")
                .bind("Product Viewed")
                .bind("behavioural")
                .bind("analytics,marketing_email")
                .bind(",behavioural,contact,")
                .bind(&r.plain)
                .bind(&r.sealed)
                .bind(1_793_000_000_000i64)
                .bind(1_793_000_000_000i64)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
    }};
}

/// Rows/s inserted straight into the database: prepared statements, one transaction per batch,
/// same durability settings as Candor's store.
async fn ceiling_run(
    backend: &str,
    dir: &TempDir,
    batches: usize,
    clients: usize,
    run: usize,
) -> Result<f64> {
    use sqlx::ConnectOptions as _;
    let tenant = uuid::Uuid::now_v7().to_string();
    let rows = Arc::new(ceiling_rows(batches, run));
    match backend {
        "sqlite" => {
            let path = dir.0.join(format!("ceiling-{}.db", uuid::Uuid::new_v4()));
            let s = SqliteStore::open(&path).await?;
            s.migrate().await?;
            s.close().await;
            let mut conn = SqliteStore::connect_options(&path).connect().await?;
            let start = Instant::now();
            for batch in rows.iter() {
                insert_batch!(&mut conn, &tenant, batch);
            }
            Ok((batches * BATCH) as f64 / start.elapsed().as_secs_f64())
        }
        _ => {
            let url = scratch_pg_database().await?;
            let s = PgStore::connect(&url).await?;
            s.migrate().await?;
            s.close().await;
            let start = Instant::now();
            let mut tasks = Vec::new();
            for c in 0..clients {
                let rows = rows.clone();
                let url = url.clone();
                let tenant = tenant.clone();
                tasks.push(tokio::spawn(async move {
                    let mut conn = url
                        .parse::<sqlx::postgres::PgConnectOptions>()?
                        .connect()
                        .await?;
                    let mut b = c;
                    while b < rows.len() {
                        insert_batch!(&mut conn, &tenant, &rows[b]);
                        b += clients;
                    }
                    anyhow::Ok(())
                }));
            }
            for t in tasks {
                t.await??;
            }
            Ok((batches * BATCH) as f64 / start.elapsed().as_secs_f64())
        }
    }
}

static CREATED: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// A fresh PostgreSQL database, remembered so that it is dropped at the end.
async fn scratch_pg_database() -> Result<String> {
    let url = candor_testkit::fresh_pg_database()
        .await
        .context("PostgreSQL unreachable")?;
    if let Ok(mut v) = CREATED.lock() {
        v.push(url.clone());
    }
    Ok(url)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[tokio::main]
async fn main() -> Result<()> {
    if std::env::var("BENCH_LOG").is_ok() {
        tracing_subscriber::fmt()
            .with_env_filter(std::env::var("BENCH_LOG").unwrap_or_default())
            .with_writer(std::io::stderr)
            .init();
    }
    let batches = env_usize("BENCH_BATCHES", 1000);
    let clients = env_usize("BENCH_CLIENTS", 8);
    let runs = env_usize("BENCH_RUNS", 3);
    let backends = std::env::var("BENCH_BACKENDS").unwrap_or_else(|_| "sqlite,postgres".into());
    let dir = TempDir::new("candor-bench");
    println!(
        "bench/ingest: {batches} batches x {BATCH} events, {clients} HTTP clients (keep-alive, loopback), median of {runs} runs"
    );
    println!(
        "candor: POST /v1/batch with consent carried per event, policy decision per purpose, minimization, XChaCha20-Poly1305 sealing of the IP"
    );
    println!(
        "ceiling: the same rows, prepared INSERTs, one transaction per batch (SQLite: one writer; PostgreSQL: {clients} connections)\n"
    );
    println!(
        "{:<10} {:>16} {:>16} {:>8} {:>12}",
        "backend", "candor ev/s", "ceiling rows/s", "ratio", "target"
    );
    let mut failed = false;
    for backend in backends.split(',').map(str::trim).filter(|b| !b.is_empty()) {
        let mut c = Vec::new();
        let mut r = Vec::new();
        for run in 0..runs {
            // interleave so both sides see the same machine conditions
            if std::env::var("BENCH_SKIP_CEILING").is_ok() {
                r.push(f64::NAN);
            } else {
                r.push(ceiling_run(backend, &dir, batches, clients, run).await?);
            }
            c.push(candor_run(backend, &dir, batches, clients, run).await?);
        }
        let (c, r) = (median(c), median(r));
        let ratio = c / r;
        let ok = ratio >= 0.5 && c >= 20_000.0;
        failed |= !ok;
        println!(
            "{backend:<10} {c:>16.0} {r:>16.0} {ratio:>8.2} {:>12}",
            if ok { "met" } else { "NOT MET" }
        );
    }
    println!("\ntarget: candor >= 50% of the ceiling and >= 20,000 events/s");
    for url in CREATED.lock().map(|v| v.clone()).unwrap_or_default() {
        candor_testkit::drop_pg_database(&url);
    }
    if failed && std::env::var("BENCH_STRICT").is_ok_and(|v| v == "1") {
        std::process::exit(1);
    }
    Ok(())
}
