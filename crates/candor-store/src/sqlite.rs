//! SQLite backend: one file in WAL mode, the embedded default.
//!
//! Writes go through a single connection (`BEGIN IMMEDIATE`, so a transaction never has to
//! upgrade a read lock), reads through a small pool. `synchronous = FULL`: a commit that
//! returned is on disk, so an acknowledged event survives a crash or power loss.

use std::path::{Path, PathBuf};
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Pool, Sqlite};

use crate::assistant::impl_assistant_store;
use crate::backend::impl_store;
use crate::pricing::impl_pricing_store;
use crate::web::impl_web_store;

/// The SQLite store.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    writer: Pool<Sqlite>,
    readers: Pool<Sqlite>,
    path: PathBuf,
}

const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "core",
        include_str!("../migrations/sqlite/0001_core.sql"),
    ),
    (
        2,
        "models",
        include_str!("../migrations/sqlite/0002_models.sql"),
    ),
    (
        3,
        "fairness",
        include_str!("../migrations/sqlite/0003_fairness.sql"),
    ),
    (
        4,
        "rights",
        include_str!("../migrations/sqlite/0004_rights.sql"),
    ),
    (
        5,
        "recs",
        include_str!("../migrations/sqlite/0005_recs.sql"),
    ),
    (
        6,
        "catalog",
        include_str!("../migrations/sqlite/0006_catalog.sql"),
    ),
    (
        7,
        "journeys",
        include_str!("../migrations/sqlite/0007_journeys.sql"),
    ),
    (
        8,
        "one_pending_step",
        include_str!("../migrations/sqlite/0008_one_pending_step.sql"),
    ),
    (9, "web", include_str!("../migrations/sqlite/0009_web.sql")),
    (
        10,
        "pricing",
        include_str!("../migrations/sqlite/0010_pricing.sql"),
    ),
    (
        11,
        "assistant",
        include_str!("../migrations/sqlite/0011_assistant.sql"),
    ),
];

impl SqliteStore {
    /// The settings every connection uses (durability, cache, page size). Public so that a
    /// benchmark's raw-insert ceiling runs under exactly the same ones.
    pub fn connect_options(path: &Path) -> SqliteConnectOptions {
        SqliteConnectOptions::new()
            .filename(path)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true)
            .pragma("cache_size", "-65536")
            .pragma("temp_store", "memory")
            // Overwrite freed content, so a destroyed data key does not linger in free pages.
            .pragma("secure_delete", "on")
            .pragma("page_size", "8192")
    }

    /// Opens (creating if needed) the database file and applies no migrations yet.
    pub async fn open(path: &Path) -> Result<Self> {
        let base = Self::connect_options(path);
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(base.clone().create_if_missing(true))
            .await?;
        let readers = SqlitePoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(base.read_only(true))
            .await?;
        Ok(Self {
            writer,
            readers,
            path: path.to_owned(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn reader(&self) -> &Pool<Sqlite> {
        &self.readers
    }

    async fn write_tx(&self) -> Result<Tx> {
        Ok(self.writer.begin_with("BEGIN IMMEDIATE").await?)
    }

    fn migrations() -> &'static [(i64, &'static str, &'static str)] {
        MIGRATIONS
    }

    /// Closes both pools (checkpointing the WAL).
    pub async fn close(&self) {
        self.readers.close().await;
        self.writer.close().await;
    }
}

type Q<'q> = sqlx::query::Query<'q, Sqlite, <Sqlite as sqlx::Database>::Arguments>;

/// A list parameter: SQLite has no arrays, so lists travel as one JSON array (`json_each`).
fn bind_texts<'q>(q: Q<'q>, values: &[String]) -> Q<'q> {
    q.bind(serde_json::Value::from(values.to_vec()).to_string())
}

/// Blobs travel hex-encoded in a JSON array (`unhex(value)` in the query).
fn bind_blobs<'q>(q: Q<'q>, values: &[Vec<u8>]) -> Q<'q> {
    let hex: Vec<String> = values
        .iter()
        .map(|b| b.iter().map(|x| format!("{x:02x}")).collect())
        .collect();
    q.bind(serde_json::Value::from(hex).to_string())
}

/// Rows per multi-row INSERT (13 parameters each; SQLite allows 32,766 per statement).
const INSERT_CHUNK: usize = 200;

/// Multi-row inserts: sqlx runs SQLite on a worker thread, so every statement (and every
/// returned row) is a thread hand-off; one statement per 200 rows keeps a batch to one or two.
async fn insert_events(
    tx: &mut Tx,
    tenant: &str,
    rows: &[crate::backend::EventInsert],
) -> Result<HashSet<String>> {
    let mut inserted = HashSet::with_capacity(rows.len());
    for chunk in rows.chunks(INSERT_CHUNK) {
        let mut sql = String::with_capacity(200 + chunk.len() * 64);
        sql.push_str(
            "INSERT INTO events (tenant_id, id, message_id, subject_id, kind, name, category, purposes, parts, plain, sealed, occurred_at, received_at) VALUES ",
        );
        for i in 0..chunk.len() {
            if i > 0 {
                sql.push(',');
            }
            sql.push('(');
            for c in 0..13 {
                if c > 0 {
                    sql.push(',');
                }
                // Anonymous `?`: numbered parameters make SQLite's name lookup quadratic.
                let _ = (i, c);
                sql.push('?');
            }
            sql.push(')');
        }
        sql.push_str(" ON CONFLICT (tenant_id, message_id) DO NOTHING");
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for e in chunk {
            q = q
                .bind(tenant)
                .bind(&e.id)
                .bind(&e.message_id)
                .bind(&e.subject)
                .bind(e.kind)
                .bind(&e.name)
                .bind(&e.category)
                .bind(&e.purposes)
                .bind(&e.parts)
                .bind(&e.plain)
                .bind(&e.sealed)
                .bind(e.occurred_at)
                .bind(e.received_at);
        }
        let n = q.execute(&mut **tx).await?.rows_affected();
        if n as usize == chunk.len() {
            inserted.extend(chunk.iter().map(|e| e.message_id.clone()));
        } else {
            // Some were duplicates: the rows carrying our fresh ids are the inserted ones.
            let ids: Vec<String> = chunk.iter().map(|e| e.id.clone()).collect();
            let q = sqlx::query(
                "SELECT message_id FROM events WHERE tenant_id = $1 AND id IN (SELECT value FROM json_each($2))",
            )
            .bind(tenant);
            for r in bind_texts(q, &ids).fetch_all(&mut **tx).await? {
                inserted.insert(r.try_get::<String, _>("message_id")?);
            }
        }
    }
    Ok(inserted)
}

/// Journey steps in one statement (rows as one JSON array), unless their person is gone or
/// the insert would break a unique key (idempotency, one pending step per person and journey).
async fn insert_steps(tx: &mut Tx, tenant: &str, steps: &[crate::NewStep]) -> Result<u64> {
    let rows: Vec<serde_json::Value> = steps
        .iter()
        .map(|s| {
            serde_json::json!([
                s.id,
                s.subject.to_string(),
                s.journey,
                s.step,
                s.email,
                s.trigger_id,
                s.triggered_at.0,
                s.due_at.0,
                s.holdout.then_some("holdout")
            ])
        })
        .collect();
    Ok(sqlx::query(
        "INSERT INTO journey_steps (id, tenant_id, subject_id, journey, step, email, trigger_id, triggered_at, due_at, status, claimed_until, reason) \
         SELECT json_extract(value, '$[0]'), $1, json_extract(value, '$[1]'), json_extract(value, '$[2]'), json_extract(value, '$[3]'), \
           json_extract(value, '$[4]'), json_extract(value, '$[5]'), json_extract(value, '$[6]'), json_extract(value, '$[7]'), 'pending', 0, json_extract(value, '$[8]') \
         FROM json_each($2) \
         WHERE EXISTS (SELECT 1 FROM subjects s WHERE s.tenant_id = $1 AND s.id = json_extract(value, '$[1]') AND s.wrapped_key IS NOT NULL) \
         ON CONFLICT DO NOTHING",
    )
    .bind(tenant)
    .bind(serde_json::Value::from(rows).to_string())
    .execute(&mut **tx)
    .await?
    .rows_affected())
}

/// Rows per multi-row price history INSERT (12 parameters each).
const PRICE_CHUNK: usize = 500;

/// Price history rows as multi-row `VALUES` with anonymous parameters: SQLite binds them
/// without parsing any JSON (a third of the cost of extracting from `json_each`).
async fn insert_price_history(
    tx: &mut Tx,
    tenant: &str,
    rows: &[crate::pricing::PriceRow],
) -> Result<u64> {
    let mut n = 0;
    for chunk in rows.chunks(PRICE_CHUNK) {
        let mut sql = String::with_capacity(160 + chunk.len() * 26);
        sql.push_str(
            "INSERT INTO price_history (tenant_id, id, kind, product, currency, price, at, quantity, country, segment, order_ref, cancelled_at) VALUES ",
        );
        for i in 0..chunk.len() {
            if i > 0 {
                sql.push(',');
            }
            sql.push_str("(?,?,?,?,?,?,?,?,?,?,?,?)");
        }
        sql.push_str(" ON CONFLICT DO NOTHING");
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for r in chunk {
            q = q
                .bind(tenant)
                .bind(&r.id)
                .bind(&r.kind)
                .bind(&r.product)
                .bind(&r.currency)
                .bind(r.price)
                .bind(r.at.0)
                .bind(r.quantity)
                .bind(&r.country)
                .bind(&r.segment)
                .bind(&r.order_ref)
                .bind(r.cancelled_at.map(|t| t.0));
        }
        n += q.execute(&mut **tx).await?.rows_affected();
    }
    Ok(n)
}

impl_store!(
    SqliteStore,
    Sqlite,
    share_lock = "",
    update_lock = "",
    skip_locked = "",
    migration_lock = "SELECT 1",
    text_in = "IN (SELECT value FROM json_each($2))",
    blob_in = "IN (SELECT unhex(value) FROM json_each($2))",
    consents_json = "SELECT COALESCE(json_group_array(json_array(subject_id, purpose, action, source, notice_version, notice_hash, jurisdiction, at)), '[]') AS ledger, \
        COUNT(*) AS n, COALESCE(SUM(seq), 0) AS s \
        FROM (SELECT * FROM consents WHERE tenant_id = $1 AND subject_id IN (SELECT value FROM json_each($2)) ORDER BY seq)",
    check_sql = "SELECT \
        (SELECT COUNT(*) FROM consents WHERE tenant_id = $1 AND subject_id IN (SELECT value FROM json_each($2))) AS n, \
        (SELECT COALESCE(SUM(seq), 0) FROM consents WHERE tenant_id = $1 AND subject_id IN (SELECT value FROM json_each($2))) AS s, \
        (SELECT COALESCE(json_group_array(message_id), '[]') FROM events WHERE tenant_id = $1 AND message_id IN (SELECT value FROM json_each($3))) AS existing, \
        (SELECT COUNT(*) FROM subjects WHERE tenant_id = $1 AND id IN (SELECT value FROM json_each($2)) AND wrapped_key IS NULL) AS gone"
);

impl_web_store!(SqliteStore, update_lock = "");

impl_pricing_store!(SqliteStore, pin_commit = "SELECT 1");

impl_assistant_store!(SqliteStore, update_lock = "");
