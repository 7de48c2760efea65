//! PostgreSQL backend: the production store, shared by several stateless `candor serve` nodes.
//!
//! Consent changes lock the subject row (`FOR UPDATE`) and ingestion takes a share lock on
//! the subjects it writes for, so an event can never be stored under consent that a concurrent
//! withdrawal already revoked. Migrations run under a transaction-scoped advisory lock, so
//! nodes starting together do not race.

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Pool, Postgres};

use crate::backend::impl_store;

/// The PostgreSQL store.
#[derive(Clone, Debug)]
pub struct PgStore {
    pool: Pool<Postgres>,
}

const MIGRATIONS: &[(i64, &str, &str)] = &[(
    1,
    "core",
    include_str!("../migrations/postgres/0001_core.sql"),
)];

impl PgStore {
    pub async fn connect(url: &str) -> Result<Self> {
        let opts: PgConnectOptions = url.parse()?;
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(opts)
            .await?;
        Ok(Self { pool })
    }

    fn reader(&self) -> &Pool<Postgres> {
        &self.pool
    }

    async fn write_tx(&self) -> Result<Tx> {
        Ok(self.pool.begin().await?)
    }

    fn migrations() -> &'static [(i64, &'static str, &'static str)] {
        MIGRATIONS
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

impl_store!(
    PgStore,
    Postgres,
    share_lock = " FOR SHARE",
    update_lock = " FOR UPDATE",
    migration_lock = "SELECT pg_advisory_xact_lock(7273617)"
);
