//! `bench/erasure`: erase one subject among 1M subjects and 10M events, and export a subject
//! with 10k events, on SQLite and PostgreSQL.
//!
//! The background (1M subjects with an alias and a consent each, 10M events) is generated
//! inside the database with SQL, in index order. The subjects that are measured are created
//! through Candor's own ingestion (real keys, sealed fields, consents), so erasure and export
//! do all their real work: the erasure is `App::erase_subject` (request record, tombstone,
//! suppression, deletes, destroyed key, audit entry, receipt) and the export is
//! `App::export_subject` (every table, decrypted, streamed). The ceiling for erasure is the
//! same rows deleted with bare `DELETE` statements in one transaction.
//!
//! Run: `bash bench/run erasure` (or `cargo run --release -p candor-bench-erasure`).
//! Options (environment): `BENCH_SUBJECTS` (1000000), `BENCH_EVENTS` (10000000),
//! `BENCH_EXPORT_EVENTS` (10000), `BENCH_RUNS` (7), `BENCH_BACKENDS` (`sqlite,postgres`),
//! `CANDOR_TEST_PG_URL` (a fresh database is made next to it), `BENCH_STRICT=1`.

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use candor_app::{App, IngestOptions, Principal, SystemClock};
use candor_crypto::MasterKey;
use candor_policy::{DEFAULT_POLICY, Policy};
use candor_store::{AnyStore, PgStore, SqliteStore, Store};
use candor_types::{Scope, TenantId};
use serde_json::{Value, json};

use candor_testkit::bench::env_usize;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const ERASE_TARGET_MS: f64 = 100.0;
const EXPORT_TARGET_MS: f64 = 1000.0;
/// Events of each subject that is erased (a typical customer).
const ERASED_EVENTS: usize = 50;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

macro_rules! progress {
    ($start:expr, $($arg:tt)*) => {
        eprintln!("[{:>7.1} s] {}", $start.elapsed().as_secs_f64(), format_args!($($arg)*))
    };
}

/// The background rows, generated in the database in index order.
fn background_sql(sqlite: bool, tenant: &str, subjects: usize, events: usize) -> Vec<String> {
    let (s, e) = (subjects.max(1) - 1, events.max(1) - 1);
    let per = (events / subjects.max(1)).max(1);
    if sqlite {
        let series = |n: usize| {
            format!("WITH RECURSIVE c(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM c WHERE x < {n})")
        };
        vec![
            format!(
                "{} INSERT INTO subjects (tenant_id, id, wrapped_key, created_at) \
                SELECT '{tenant}', printf('00000000-0000-7000-8000-%012d', x), randomblob(60), 0 FROM c",
                series(s)
            ),
            format!(
                "{} INSERT INTO subject_aliases (tenant_id, kind, blind, subject_id) \
                SELECT '{tenant}', 'user_id', randomblob(32), printf('00000000-0000-7000-8000-%012d', x) FROM c",
                series(s)
            ),
            format!(
                "{} INSERT INTO consents (tenant_id, subject_id, purpose, action, source, at) \
                SELECT '{tenant}', printf('00000000-0000-7000-8000-%012d', x), 'analytics', 'granted', 'banner', 0 FROM c",
                series(s)
            ),
            format!(
                "{} INSERT INTO events (tenant_id, id, message_id, subject_id, kind, name, category, purposes, parts, plain, sealed, occurred_at, received_at) \
                SELECT '{tenant}', printf('10000000-0000-7000-8000-%012d', x), printf('bg-%012d', x), \
                printf('00000000-0000-7000-8000-%012d', x / {per}), 'track', 'Product Viewed', 'behavioural', \
                'analytics', 'behavioural', '{{\"behavioural\":{{\"properties\":{{\"product_id\":\"p\"}}}}}}', '{{}}', \
                1700000000000 + x, 1700000000000 + x FROM c",
                series(e)
            ),
        ]
    } else {
        vec![
            format!(
                "INSERT INTO subjects (tenant_id, id, wrapped_key, created_at) \
                SELECT '{tenant}', '00000000-0000-7000-8000-' || lpad(x::text, 12, '0'), decode(md5(x::text), 'hex'), 0 \
                FROM generate_series(0, {s}) x"
            ),
            format!(
                "INSERT INTO subject_aliases (tenant_id, kind, blind, subject_id) \
                SELECT '{tenant}', 'user_id', sha256(x::text::bytea), '00000000-0000-7000-8000-' || lpad(x::text, 12, '0') \
                FROM generate_series(0, {s}) x"
            ),
            format!(
                "INSERT INTO consents (tenant_id, subject_id, purpose, action, source, at) \
                SELECT '{tenant}', '00000000-0000-7000-8000-' || lpad(x::text, 12, '0'), 'analytics', 'granted', 'banner', 0 \
                FROM generate_series(0, {s}) x"
            ),
            format!(
                "INSERT INTO events (tenant_id, id, message_id, subject_id, kind, name, category, purposes, parts, plain, sealed, occurred_at, received_at) \
                SELECT '{tenant}', '10000000-0000-7000-8000-' || lpad(x::text, 12, '0'), 'bg-' || lpad(x::text, 12, '0'), \
                '00000000-0000-7000-8000-' || lpad((x / {per})::text, 12, '0'), 'track', 'Product Viewed', 'behavioural', \
                'analytics', 'behavioural', '{{\"behavioural\":{{\"properties\":{{\"product_id\":\"p\"}}}}}}', '{{}}', \
                1700000000000 + x, 1700000000000 + x FROM generate_series(0, {e}) x"
            ),
            "ANALYZE".to_string(),
        ]
    }
}

async fn exec_all(
    url: &str,
    sqlite_path: Option<&std::path::Path>,
    sql: &[String],
    start: &Instant,
) -> Result<()> {
    use sqlx::Connection as _;
    for q in sql {
        let t = Instant::now();
        match sqlite_path {
            Some(p) => {
                let mut c =
                    sqlx::SqliteConnection::connect_with(&SqliteStore::connect_options(p)).await?;
                sqlx::query(sqlx::AssertSqlSafe(q.clone()))
                    .execute(&mut c)
                    .await?;
                c.close().await?;
            }
            None => {
                let mut c = sqlx::PgConnection::connect(url).await?;
                sqlx::query(sqlx::AssertSqlSafe(q.clone()))
                    .execute(&mut c)
                    .await?;
                c.close().await?;
            }
        }
        let head: String = q.chars().take(40).collect();
        progress!(start, "  {head}… {:.1} s", t.elapsed().as_secs_f64());
    }
    Ok(())
}

/// Creates a customer through Candor's ingestion: consent in the events, traits, `n` events.
async fn customer(app: &App, p: &Principal, user: &str, n: usize) -> Result<()> {
    let consent =
        json!({"consent": {"categoryPreferences": {"Analytics": true, "Marketing": true}}});
    let mut msgs: Vec<Value> = vec![
        json!({"type": "identify", "userId": user, "messageId": format!("{user}-id"),
        "traits": {"email": format!("{user}@example.org"), "name": "Bench Customer"}, "context": consent}),
    ];
    for i in 0..n {
        msgs.push(
            json!({"type": "track", "userId": user, "messageId": format!("{user}-{i}"),
            "event": "Product Viewed", "properties": {"product_id": format!("p{i}"), "price": 12.5},
            "context": consent}),
        );
    }
    for chunk in msgs.chunks(500) {
        let r = app
            .ingest(p, chunk.to_vec(), IngestOptions::default())
            .await
            .map_err(|e| anyhow::anyhow!("{} [{}]", e.message, e.code))?;
        if r.accepted != chunk.len() {
            bail!("ingestion accepted {} of {}", r.accepted, chunk.len());
        }
    }
    Ok(())
}

struct Figures {
    backend: &'static str,
    erase_ms: f64,
    erase_max_ms: f64,
    ceiling_ms: f64,
    export_ms: f64,
    export_events: usize,
}

async fn run_backend(
    backend: &'static str,
    subjects: usize,
    events: usize,
    export_events: usize,
    runs: usize,
    start: &Instant,
) -> Result<Figures> {
    let dir = candor_testkit::TempDir::new("candor-bench-erasure");
    let (store, url, sqlite_path) = match backend {
        "sqlite" => {
            let path = dir.0.join("candor.db");
            (
                AnyStore::Sqlite(SqliteStore::open(&path).await?),
                String::new(),
                Some(path),
            )
        }
        _ => {
            let url = candor_testkit::fresh_pg_database()
                .await
                .context("PostgreSQL unreachable")?;
            (AnyStore::Postgres(PgStore::connect(&url).await?), url, None)
        }
    };
    store.migrate().await?;
    let policy =
        Policy::parse("candor.toml", DEFAULT_POLICY).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let app = App::new(
        store.clone(),
        policy,
        MasterKey::generate()?,
        Arc::new(SystemClock),
    );
    let tenant: TenantId = app
        .create_tenant("bench", "bench")
        .await
        .map_err(|e| anyhow::anyhow!(e.message))?
        .id;
    let (_, key) = app
        .create_key(tenant, Scope::Admin, None, "bench")
        .await
        .map_err(|e| anyhow::anyhow!(e.message))?;
    let principal = app
        .authenticate(&key)
        .await
        .map_err(|e| anyhow::anyhow!(e.message))?;

    progress!(
        start,
        "{backend}: generating {subjects} subjects and {events} events"
    );
    exec_all(
        &url,
        sqlite_path.as_deref(),
        &background_sql(sqlite_path.is_some(), &tenant.to_string(), subjects, events),
        start,
    )
    .await?;

    progress!(
        start,
        "{backend}: {runs} customers to erase, one with {export_events} events to export"
    );
    for r in 0..runs {
        customer(&app, &principal, &format!("erase-{r}"), ERASED_EVENTS).await?;
        customer(&app, &principal, &format!("ceiling-{r}"), ERASED_EVENTS).await?;
    }
    customer(&app, &principal, "export-me", export_events).await?;
    if sqlite_path.is_none() {
        exec_all(&url, None, &["ANALYZE".to_string()], start).await?;
    }

    // Erasure through Candor.
    let mut erase = Vec::new();
    for r in 0..runs {
        let t = Instant::now();
        let receipt = app
            .erase_subject(tenant, "bench", &format!("erase-{r}"))
            .await
            .map_err(|e| anyhow::anyhow!("{} [{}]", e.message, e.code))?;
        erase.push(t.elapsed().as_secs_f64() * 1e3);
        if receipt.erased.events != ERASED_EVENTS as u64 + 1 {
            bail!("erasure removed {} events", receipt.erased.events);
        }
    }
    // The ceiling: the same rows removed with bare deletes in one transaction.
    let mut ceiling = Vec::new();
    for r in 0..runs {
        let id = app
            .resolve_subject(tenant, &format!("ceiling-{r}"))
            .await
            .map_err(|e| anyhow::anyhow!(e.message))?
            .id
            .to_string();
        let t = tenant.to_string();
        let stmts = [
            "DELETE FROM events WHERE subject_id = $2 AND tenant_id = $1",
            "DELETE FROM subject_fields WHERE tenant_id = $1 AND subject_id = $2",
            "DELETE FROM consents WHERE tenant_id = $1 AND subject_id = $2",
            "DELETE FROM subject_aliases WHERE tenant_id = $1 AND subject_id = $2",
            "UPDATE subjects SET wrapped_key = NULL WHERE tenant_id = $1 AND id = $2",
        ];
        let started = Instant::now();
        match &store {
            AnyStore::Sqlite(_) => {
                use sqlx::Connection as _;
                let p = sqlite_path.as_deref().context("sqlite path")?;
                let mut c =
                    sqlx::SqliteConnection::connect_with(&SqliteStore::connect_options(p)).await?;
                let t0 = Instant::now();
                let mut tx = c.begin().await?;
                for s in stmts {
                    sqlx::query(s).bind(&t).bind(&id).execute(&mut *tx).await?;
                }
                tx.commit().await?;
                ceiling.push(t0.elapsed().as_secs_f64() * 1e3);
                let _ = started;
            }
            AnyStore::Postgres(_) => {
                use sqlx::Connection as _;
                let mut c = sqlx::PgConnection::connect(&url).await?;
                let t0 = Instant::now();
                let mut tx = c.begin().await?;
                for s in stmts {
                    sqlx::query(s).bind(&t).bind(&id).execute(&mut *tx).await?;
                }
                tx.commit().await?;
                ceiling.push(t0.elapsed().as_secs_f64() * 1e3);
            }
        }
    }
    // Export of the 10k-event customer, whole document received.
    let subject = app
        .resolve_subject(tenant, "export-me")
        .await
        .map_err(|e| anyhow::anyhow!(e.message))?
        .id;
    let mut export = Vec::new();
    let mut exported = 0;
    for _ in 0..runs.min(5) {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(64);
        let a = app.clone();
        let t = Instant::now();
        let task =
            tokio::spawn(async move { a.export_subject(tenant, "bench", subject, &tx).await });
        let mut bytes = 0usize;
        while let Some(c) = rx.recv().await {
            bytes += c.len();
        }
        let counts = task
            .await?
            .map_err(|e| anyhow::anyhow!("{} [{}]", e.message, e.code))?;
        export.push(t.elapsed().as_secs_f64() * 1e3);
        exported = counts.get("events").copied().unwrap_or(0);
        if bytes == 0 {
            bail!("empty export");
        }
    }
    if let Some(u) = sqlite_path.is_none().then_some(url) {
        drop(app);
        drop(store);
        candor_testkit::drop_pg_database(&u);
    }
    Ok(Figures {
        backend,
        erase_max_ms: erase.iter().copied().fold(0.0, f64::max),
        erase_ms: median(erase),
        ceiling_ms: median(ceiling),
        export_ms: median(export),
        export_events: exported,
    })
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let start = Instant::now();
    let subjects = env_usize("BENCH_SUBJECTS", 1_000_000)?;
    let events = env_usize("BENCH_EVENTS", 10_000_000)?;
    let export_events = env_usize("BENCH_EXPORT_EVENTS", 10_000)?;
    let runs = env_usize("BENCH_RUNS", 7)?.max(1);
    let strict = std::env::var("BENCH_STRICT").is_ok_and(|v| v == "1");
    let backends: Vec<&'static str> = std::env::var("BENCH_BACKENDS")
        .unwrap_or_else(|_| "sqlite,postgres".into())
        .split(',')
        .filter_map(|b| match b.trim() {
            "sqlite" => Some("sqlite"),
            "postgres" => Some("postgres"),
            _ => None,
        })
        .collect();
    let mut figures = Vec::new();
    for b in backends {
        figures.push(run_backend(b, subjects, events, export_events, runs, &start).await?);
    }
    println!(
        "bench/erasure — one subject among {subjects} subjects and {events} background events; median of {runs} runs"
    );
    let mut missed = Vec::new();
    for f in &figures {
        println!(
            "{:<9} erase (App::erase_subject, {} events + traits + consents + request + receipt): {:>7.2} ms (max {:.2}) · bare DELETEs of the same rows: {:>6.2} ms → {:.2}× the ceiling's time · target {ERASE_TARGET_MS} ms",
            f.backend,
            ERASED_EVENTS + 1,
            f.erase_ms,
            f.erase_max_ms,
            f.ceiling_ms,
            f.erase_ms / f.ceiling_ms
        );
        println!(
            "{:<9} export of a subject with {} events (every table, decrypted, streamed): {:>7.1} ms · target {EXPORT_TARGET_MS} ms",
            f.backend, f.export_events, f.export_ms
        );
        if f.erase_ms > ERASE_TARGET_MS {
            missed.push(format!("{} erase {:.1} ms", f.backend, f.erase_ms));
        }
        if f.export_ms > EXPORT_TARGET_MS {
            missed.push(format!("{} export {:.0} ms", f.backend, f.export_ms));
        }
    }
    if missed.is_empty() {
        println!("targets: met (erase < {ERASE_TARGET_MS} ms, export < {EXPORT_TARGET_MS} ms)");
    } else {
        println!("targets missed: {}", missed.join("; "));
        if strict {
            std::process::exit(1);
        }
    }
    Ok(())
}
