//! PostgreSQL backend: the production store, shared by several stateless `candor serve` nodes.
//!
//! Consent changes lock the subject row (`FOR UPDATE`) and ingestion takes a share lock on
//! the subjects it writes for, so an event can never be stored under consent that a concurrent
//! withdrawal already revoked. Migrations run under a transaction-scoped advisory lock, so
//! nodes starting together do not race.

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Pool, Postgres};

use crate::assistant::impl_assistant_store;
use crate::backend::impl_store;
use crate::pricing::impl_pricing_store;
use crate::web::impl_web_store;

/// The PostgreSQL store.
#[derive(Clone, Debug)]
pub struct PgStore {
    pool: Pool<Postgres>,
}

const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "core",
        include_str!("../migrations/postgres/0001_core.sql"),
    ),
    (
        2,
        "models",
        include_str!("../migrations/postgres/0002_models.sql"),
    ),
    (
        3,
        "fairness",
        include_str!("../migrations/postgres/0003_fairness.sql"),
    ),
    (
        4,
        "rights",
        include_str!("../migrations/postgres/0004_rights.sql"),
    ),
    (
        5,
        "recs",
        include_str!("../migrations/postgres/0005_recs.sql"),
    ),
    (
        6,
        "catalog",
        include_str!("../migrations/postgres/0006_catalog.sql"),
    ),
    (
        7,
        "journeys",
        include_str!("../migrations/postgres/0007_journeys.sql"),
    ),
    (
        8,
        "one_pending_step",
        include_str!("../migrations/postgres/0008_one_pending_step.sql"),
    ),
    (
        9,
        "web",
        include_str!("../migrations/postgres/0009_web.sql"),
    ),
    (
        10,
        "pricing",
        include_str!("../migrations/postgres/0010_pricing.sql"),
    ),
    (
        11,
        "assistant",
        include_str!("../migrations/postgres/0011_assistant.sql"),
    ),
];

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

type Q<'q> = sqlx::query::Query<'q, Postgres, <Postgres as sqlx::Database>::Arguments>;

/// A list parameter as one array: one statement text, one cached plan, whatever the length.
fn bind_texts<'q>(q: Q<'q>, values: &[String]) -> Q<'q> {
    q.bind(values.to_vec())
}

fn bind_blobs<'q>(q: Q<'q>, values: &[Vec<u8>]) -> Q<'q> {
    q.bind(values.to_vec())
}

/// Largest `UNNEST` insert, in bytes of row data. sqlx 0.9 does not set `TCP_NODELAY` on its
/// PostgreSQL sockets: a message larger than the socket's initial send buffer (16 KiB by
/// default) is written in parts, and Nagle's algorithm holds the tail until the server's
/// delayed ACK (~40 ms). Measured: 100-row statements ran at 6k events/s, 12 KiB ones at 14k.
/// Unix-socket URLs (`?host=/var/run/postgresql`) do not have the problem.
const INSERT_BYTES: usize = 12 * 1024;

/// Few round trips per batch: rows travel as parallel arrays through `UNNEST`, in chunks small
/// enough to leave in one write (see [`INSERT_BYTES`]).
async fn insert_events(
    tx: &mut Tx,
    tenant: &str,
    rows: &[crate::backend::EventInsert],
) -> Result<HashSet<String>> {
    let mut inserted = HashSet::with_capacity(rows.len());
    let mut start = 0;
    while start < rows.len() {
        let mut end = start;
        let mut bytes = 0;
        while end < rows.len() && (end == start || bytes + row_bytes(&rows[end]) <= INSERT_BYTES) {
            bytes += row_bytes(&rows[end]);
            end += 1;
        }
        inserted.extend(insert_chunk(tx, tenant, &rows[start..end]).await?);
        start = end;
    }
    Ok(inserted)
}

fn row_bytes(e: &crate::backend::EventInsert) -> usize {
    e.id.len()
        + e.message_id.len()
        + e.subject.len()
        + e.plain.len()
        + e.sealed.len()
        + e.parts.len()
        + e.purposes.len()
        + 64
}

async fn insert_chunk(
    tx: &mut Tx,
    tenant: &str,
    rows: &[crate::backend::EventInsert],
) -> Result<Vec<String>> {
    let col = |f: &dyn Fn(&crate::backend::EventInsert) -> String| -> Vec<String> {
        rows.iter().map(f).collect()
    };
    let names: Vec<Option<String>> = rows.iter().map(|e| e.name.clone()).collect();
    let occurred: Vec<i64> = rows.iter().map(|e| e.occurred_at).collect();
    let received: Vec<i64> = rows.iter().map(|e| e.received_at).collect();
    let inserted = sqlx::query(
        "INSERT INTO events (tenant_id, id, message_id, subject_id, kind, name, category, purposes, parts, plain, sealed, occurred_at, received_at) \
         SELECT $1, * FROM UNNEST($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::bigint[], $13::bigint[]) \
         ON CONFLICT (tenant_id, message_id) DO NOTHING RETURNING message_id",
    )
    .bind(tenant)
    .bind(col(&|e| e.id.clone()))
    .bind(col(&|e| e.message_id.clone()))
    .bind(col(&|e| e.subject.clone()))
    .bind(col(&|e| e.kind.to_owned()))
    .bind(names)
    .bind(col(&|e| e.category.clone()))
    .bind(col(&|e| e.purposes.clone()))
    .bind(col(&|e| e.parts.clone()))
    .bind(col(&|e| e.plain.clone()))
    .bind(col(&|e| e.sealed.clone()))
    .bind(occurred)
    .bind(received)
    .fetch_all(&mut **tx)
    .await?;
    inserted
        .iter()
        .map(|r| Ok(r.try_get::<String, _>("message_id")?))
        .collect()
}

/// Journey steps in one statement (`UNNEST`), unless their person is gone or the insert would
/// break a unique key (idempotency, one pending step per person and journey).
async fn insert_steps(tx: &mut Tx, tenant: &str, steps: &[crate::NewStep]) -> Result<u64> {
    let col =
        |f: &dyn Fn(&crate::NewStep) -> String| -> Vec<String> { steps.iter().map(f).collect() };
    let num: Vec<i64> = steps.iter().map(|s| i64::from(s.step)).collect();
    let triggered: Vec<i64> = steps.iter().map(|s| s.triggered_at.0).collect();
    let due: Vec<i64> = steps.iter().map(|s| s.due_at.0).collect();
    let reason: Vec<Option<String>> = steps
        .iter()
        .map(|s| s.holdout.then(|| "holdout".to_string()))
        .collect();
    Ok(sqlx::query(
        "INSERT INTO journey_steps (id, tenant_id, subject_id, journey, step, email, trigger_id, triggered_at, due_at, status, claimed_until, reason) \
         SELECT u.id, $1, u.subject_id, u.journey, u.step, u.email, u.trigger_id, u.triggered_at, u.due_at, 'pending', 0, u.reason \
         FROM UNNEST($2::text[], $3::text[], $4::text[], $5::bigint[], $6::text[], $7::text[], $8::bigint[], $9::bigint[], $10::text[]) \
           AS u(id, subject_id, journey, step, email, trigger_id, triggered_at, due_at, reason) \
         WHERE EXISTS (SELECT 1 FROM subjects s WHERE s.tenant_id = $1 AND s.id = u.subject_id AND s.wrapped_key IS NOT NULL) \
         ON CONFLICT DO NOTHING",
    )
    .bind(tenant)
    .bind(col(&|s| s.id.clone()))
    .bind(col(&|s| s.subject.to_string()))
    .bind(col(&|s| s.journey.clone()))
    .bind(num)
    .bind(col(&|s| s.email.clone()))
    .bind(col(&|s| s.trigger_id.clone()))
    .bind(triggered)
    .bind(due)
    .bind(reason)
    .execute(&mut **tx)
    .await?
    .rows_affected())
}

/// Price history rows as arrays (`UNNEST`), in statements under [`INSERT_BYTES`].
async fn insert_price_history(
    tx: &mut Tx,
    tenant: &str,
    rows: &[crate::pricing::PriceRow],
) -> Result<u64> {
    let mut n = 0;
    let mut start = 0;
    while start < rows.len() {
        let mut end = start;
        let mut bytes = 0;
        while end < rows.len() && (end == start || bytes < INSERT_BYTES) {
            let r = &rows[end];
            bytes += 64 + r.id.len() + r.product.len() + r.order_ref.as_ref().map_or(0, Vec::len);
            end += 1;
        }
        let chunk = &rows[start..end];
        start = end;
        let col = |f: &dyn Fn(&crate::pricing::PriceRow) -> Option<String>| -> Vec<Option<String>> {
            chunk.iter().map(f).collect()
        };
        n += sqlx::query(
            "INSERT INTO price_history (tenant_id, id, kind, product, currency, price, at, quantity, country, segment, order_ref, cancelled_at) \
             SELECT $1, u.id, u.kind, u.product, u.currency, u.price, u.at, u.quantity, u.country, u.segment, u.order_ref, u.cancelled_at \
             FROM UNNEST($2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::bigint[], $8::float8[], $9::text[], $10::text[], $11::bytea[], $12::bigint[]) \
               AS u(id, kind, product, currency, price, at, quantity, country, segment, order_ref, cancelled_at) \
             ON CONFLICT DO NOTHING",
        )
        .bind(tenant)
        .bind(col(&|r| Some(r.id.clone())))
        .bind(col(&|r| Some(r.kind.clone())))
        .bind(col(&|r| Some(r.product.clone())))
        .bind(col(&|r| Some(r.currency.clone())))
        .bind(chunk.iter().map(|r| r.price).collect::<Vec<i64>>())
        .bind(chunk.iter().map(|r| r.at.0).collect::<Vec<i64>>())
        .bind(chunk.iter().map(|r| r.quantity).collect::<Vec<Option<f64>>>())
        .bind(col(&|r| r.country.clone()))
        .bind(col(&|r| r.segment.clone()))
        .bind(chunk.iter().map(|r| r.order_ref.clone()).collect::<Vec<Option<Vec<u8>>>>())
        .bind(chunk.iter().map(|r| r.cancelled_at.map(|t| t.0)).collect::<Vec<Option<i64>>>())
        .execute(&mut **tx)
        .await?
        .rows_affected();
    }
    Ok(n)
}

impl_store!(
    PgStore,
    Postgres,
    share_lock = " FOR SHARE",
    update_lock = " FOR UPDATE",
    skip_locked = " FOR UPDATE SKIP LOCKED",
    migration_lock = "SELECT pg_advisory_xact_lock(7273617)",
    text_in = "= ANY($2)",
    blob_in = "= ANY($2)",
    consents_json = "SELECT COALESCE(json_agg(json_build_array(subject_id, purpose, action, source, notice_version, notice_hash, jurisdiction, at) ORDER BY seq), '[]')::text AS ledger, \
        COUNT(*) AS n, CAST(COALESCE(SUM(seq), 0) AS BIGINT) AS s \
        FROM consents WHERE tenant_id = $1 AND subject_id = ANY($2)",
    check_sql = "SELECT COUNT(*) AS n, CAST(COALESCE(SUM(seq), 0) AS BIGINT) AS s, \
        (SELECT COALESCE(json_agg(message_id), '[]')::text FROM events WHERE tenant_id = $1 AND message_id = ANY($3)) AS existing, \
        (SELECT COUNT(*) FROM subjects WHERE tenant_id = $1 AND id = ANY($2) AND wrapped_key IS NULL) AS gone \
        FROM consents WHERE tenant_id = $1 AND subject_id = ANY($2)"
);

impl_web_store!(PgStore, update_lock = " FOR UPDATE");

impl_pricing_store!(PgStore, pin_commit = "SET LOCAL synchronous_commit TO OFF");

impl_assistant_store!(PgStore, update_lock = " FOR UPDATE");
