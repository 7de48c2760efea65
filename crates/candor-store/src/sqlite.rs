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

impl_store!(
    SqliteStore,
    Sqlite,
    share_lock = "",
    update_lock = "",
    migration_lock = "SELECT 1"
);
