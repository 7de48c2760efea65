//! SQLite backend: one file in WAL mode, the embedded default.
//!
//! Writes go through a single connection (`BEGIN IMMEDIATE`, so a transaction never has to
//! upgrade a read lock), reads through a small pool. `synchronous = FULL`: a commit that
//! returned is on disk, so an acknowledged event survives a crash or power loss.

use std::path::{Path, PathBuf};
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Pool, Sqlite};

use crate::backend::impl_store;

/// The SQLite store.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    writer: Pool<Sqlite>,
    readers: Pool<Sqlite>,
    path: PathBuf,
}

const MIGRATIONS: &[(i64, &str, &str)] = &[(
    1,
    "core",
    include_str!("../migrations/sqlite/0001_core.sql"),
)];

impl SqliteStore {
    /// Opens (creating if needed) the database file and applies no migrations yet.
    pub async fn open(path: &Path) -> Result<Self> {
        let base = SqliteConnectOptions::new()
            .filename(path)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
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

/// Prepared single-row inserts: in-process SQLite has no round trips to save.
async fn insert_events(
    tx: &mut Tx,
    tenant: &str,
    rows: &[crate::backend::EventInsert],
) -> Result<HashSet<String>> {
    let mut inserted = HashSet::with_capacity(rows.len());
    for e in rows {
        let n = sqlx::query(
            "INSERT INTO events (tenant_id, id, message_id, subject_id, kind, name, category, purposes, parts, plain, sealed, occurred_at, received_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) ON CONFLICT (tenant_id, message_id) DO NOTHING",
        )
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
        .bind(e.received_at)
        .execute(&mut **tx)
        .await?
        .rows_affected();
        if n > 0 {
            inserted.insert(e.message_id.clone());
        }
    }
    Ok(inserted)
}

impl_store!(
    SqliteStore,
    Sqlite,
    share_lock = "",
    update_lock = "",
    migration_lock = "SELECT 1",
    text_in = "IN (SELECT value FROM json_each($2))",
    blob_in = "IN (SELECT unhex(value) FROM json_each($2))"
);
