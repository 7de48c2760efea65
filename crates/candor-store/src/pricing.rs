//! What the price guard keeps: price history (prices shown to everyone, order lines without
//! their buyer, imports), anonymous checks with their explanations, segment pins, proxy
//! detection results, dispersion audits and their alerts. No row names a person: a price
//! that personal data shaped is a decision, sealed with the person's key in `decisions`.
//!
//! A trait of its own beside [`crate::Store`], implemented for both backends by
//! [`impl_pricing_store`] (invoked after `impl_store!`, whose helpers it uses).

use std::collections::HashMap;
use std::future::Future;

use serde::Serialize;

use candor_types::{TenantId, Timestamp};

use crate::{AnyStore, AuditDraft, Result};

/// One price of a product's history, in minor units of its currency.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PriceRow {
    /// Idempotency key: a check's id, `o:<order hash>:<line>` for order lines, or the
    /// import's key.
    pub id: String,
    /// `check`, `order` or `import`.
    pub kind: String,
    pub product: String,
    pub currency: String,
    pub price: i64,
    pub at: Timestamp,
    pub quantity: Option<f64>,
    pub country: Option<String>,
    pub segment: Option<String>,
    /// Keyed hash of the order id (cancellations find the order's lines by it).
    #[serde(skip)]
    pub order_ref: Option<Vec<u8>>,
    pub cancelled_at: Option<Timestamp>,
}

/// An order that was cancelled: its lines no longer count as prices applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PriceCancel {
    pub order_ref: Vec<u8>,
    pub at: Timestamp,
}

/// A price check that no personal data shaped, with its explanation (JSON: reasons, signals
/// by class, discount, category, batch). Checks shaped by personal data are decisions.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CheckRow {
    pub id: String,
    pub product: String,
    pub currency: String,
    pub list_price: i64,
    pub proposed: i64,
    pub price: i64,
    /// `allow`, `adjust` or `refuse`.
    pub verdict: String,
    pub segment: Option<String>,
    /// The explanation as JSON text (an object), stored as it is.
    #[serde(serialize_with = "raw_json")]
    pub detail: String,
    pub created_at: Timestamp,
}

fn raw_json<S: serde::Serializer>(text: &str, s: S) -> std::result::Result<S::Ok, S::Error> {
    let v: serde_json::Value = serde_json::from_str(text).unwrap_or(serde_json::Value::Null);
    serde::Serialize::serialize(&v, s)
}

/// Checks recorded together: the single checks of one group commit, or one batch.
#[derive(Clone, Debug, PartialEq)]
pub struct CheckLog {
    pub id: String,
    /// `checks` or `batch`.
    pub kind: String,
    pub created_at: Timestamp,
    pub checks: Vec<CheckRow>,
}

/// What a group of checks writes in one transaction.
#[derive(Clone, Debug, Default)]
pub struct CheckWrite {
    pub log: Option<CheckLog>,
    /// Prices shown that entered the history (they changed).
    pub history: Vec<PriceRow>,
    /// Segment prices to pin (first shown wins; the stored price comes back).
    pub pins: Vec<(PinKey, i64)>,
    pub audit: Vec<AuditDraft>,
}

/// The price in effect at a time and when it was observed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct PricePointRow {
    pub price: i64,
    pub at: Timestamp,
}

/// What a prior-period lowest price is computed from, for one product and currency.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PriorPrices {
    /// The lowest price observed in the window (the latest if several).
    pub lowest_in_window: Option<PricePointRow>,
    /// The last price observed before the window: still in effect when it opened.
    pub before_window: Option<PricePointRow>,
}

/// The key of a segment's price for one window.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PinKey {
    pub product: String,
    pub currency: String,
    pub segment: String,
    pub list_price: i64,
    pub window_start: Timestamp,
}

/// How much one signal reveals one protected attribute.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ProxyRow {
    pub signal: String,
    pub attribute: String,
    pub cramers_v: f64,
    pub mutual_information: f64,
    pub auc: f64,
    pub flagged: bool,
    pub audit_id: String,
    pub audited_at: Timestamp,
}

/// A recorded price audit: dispersion (from a file or monitoring live orders) or proxies.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PriceAuditRow {
    pub id: String,
    /// `file`, `monitoring` or `proxies`.
    pub kind: String,
    pub attribute: String,
    pub period_start: Option<Timestamp>,
    pub period_end: Option<Timestamp>,
    pub flagged_products: i64,
    pub report: serde_json::Value,
    pub actor: String,
    pub created_at: Timestamp,
}

/// A group paying a flagged price, raised by a monitoring audit.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PriceAlertRow {
    pub id: String,
    pub audit_id: String,
    pub attribute: String,
    pub product: String,
    pub period: String,
    pub group: String,
    pub ratio: f64,
    pub max_ratio: f64,
    pub created_at: Timestamp,
}

/// Rows removed by one pricing retention pass.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PriceSweep {
    pub checks: u64,
    pub history: u64,
    pub pins: u64,
}

/// Storage of the price guard.
pub trait PricingStore: Send + Sync {
    /// History rows (an existing id is left alone: replays change nothing) and cancelled
    /// orders, in one transaction; lines of a cancelled order are marked, whichever came
    /// first. Returns the rows inserted.
    fn insert_prices(
        &self,
        tenant: TenantId,
        rows: &[PriceRow],
        cancels: &[PriceCancel],
        audit: Vec<AuditDraft>,
    ) -> impl Future<Output = Result<u64>> + Send;
    /// Anonymous checks (one log row), the history rows they add and the pins they set, in
    /// one transaction. Returns each pin as stored (another check's if it came first).
    fn insert_checks(
        &self,
        tenant: TenantId,
        write: CheckWrite,
    ) -> impl Future<Output = Result<Vec<(PinKey, i64)>>> + Send;
    /// For each (product, currency): the lowest price in `[from, to)` and the last one before
    /// `from`, cancelled order lines left out.
    fn prior_prices(
        &self,
        tenant: TenantId,
        keys: &[(String, String)],
        from: Timestamp,
        to: Timestamp,
    ) -> impl Future<Output = Result<HashMap<(String, String), PriorPrices>>> + Send;
    /// A product's history in `[from, to)`, oldest first (cancelled lines included, marked).
    fn price_history(
        &self,
        tenant: TenantId,
        product: &str,
        currency: Option<&str>,
        from: Timestamp,
        to: Timestamp,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<PriceRow>>> + Send;
    /// Anonymous checks, newest first (of one product, or all), at most `limit`.
    fn price_checks(
        &self,
        tenant: TenantId,
        product: Option<&str>,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<CheckRow>>> + Send;
    /// The segment's price for the window, if pinned.
    fn pin(
        &self,
        tenant: TenantId,
        key: &PinKey,
    ) -> impl Future<Output = Result<Option<i64>>> + Send;
    /// Pins `price` unless another check pinned one first; returns the pinned price.
    fn claim_pin(
        &self,
        tenant: TenantId,
        key: &PinKey,
        price: i64,
        at: Timestamp,
    ) -> impl Future<Output = Result<i64>> + Send;
    /// Records a proxy audit: its results replace earlier ones for the same signals.
    fn record_proxies(
        &self,
        tenant: TenantId,
        rows: &[ProxyRow],
        audit_row: &PriceAuditRow,
        audit: AuditDraft,
    ) -> impl Future<Output = Result<()>> + Send;
    fn price_proxies(&self, tenant: TenantId)
    -> impl Future<Output = Result<Vec<ProxyRow>>> + Send;
    /// Records a dispersion audit with the alerts it raised.
    fn insert_price_audit(
        &self,
        tenant: TenantId,
        row: &PriceAuditRow,
        alerts: &[PriceAlertRow],
        audit: AuditDraft,
    ) -> impl Future<Output = Result<()>> + Send;
    /// Audits newest first, without their reports (`report` is null).
    fn price_audits(
        &self,
        tenant: TenantId,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<PriceAuditRow>>> + Send;
    fn price_audit(
        &self,
        tenant: TenantId,
        id: &str,
    ) -> impl Future<Output = Result<Option<PriceAuditRow>>> + Send;
    /// Alerts newest first.
    fn price_alerts(
        &self,
        tenant: TenantId,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<PriceAlertRow>>> + Send;
    /// Deletes checks and history older than `before` (keeping, per product and currency,
    /// the last price before it: still in effect) and pins whose window ended before
    /// `pins_before`.
    fn sweep_prices(
        &self,
        tenant: TenantId,
        before: Timestamp,
        pins_before: Timestamp,
    ) -> impl Future<Output = Result<PriceSweep>> + Send;
}

impl PricingStore for AnyStore {
    async fn insert_prices(
        &self,
        tenant: TenantId,
        rows: &[PriceRow],
        cancels: &[PriceCancel],
        audit: Vec<AuditDraft>,
    ) -> Result<u64> {
        dispatch!(self, s => s.insert_prices(tenant, rows, cancels, audit))
    }
    async fn insert_checks(
        &self,
        tenant: TenantId,
        write: CheckWrite,
    ) -> Result<Vec<(PinKey, i64)>> {
        dispatch!(self, s => s.insert_checks(tenant, write))
    }
    async fn prior_prices(
        &self,
        tenant: TenantId,
        keys: &[(String, String)],
        from: Timestamp,
        to: Timestamp,
    ) -> Result<HashMap<(String, String), PriorPrices>> {
        dispatch!(self, s => s.prior_prices(tenant, keys, from, to))
    }
    async fn price_history(
        &self,
        tenant: TenantId,
        product: &str,
        currency: Option<&str>,
        from: Timestamp,
        to: Timestamp,
        limit: u32,
    ) -> Result<Vec<PriceRow>> {
        dispatch!(self, s => s.price_history(tenant, product, currency, from, to, limit))
    }
    async fn price_checks(
        &self,
        tenant: TenantId,
        product: Option<&str>,
        limit: u32,
    ) -> Result<Vec<CheckRow>> {
        dispatch!(self, s => s.price_checks(tenant, product, limit))
    }
    async fn pin(&self, tenant: TenantId, key: &PinKey) -> Result<Option<i64>> {
        dispatch!(self, s => s.pin(tenant, key))
    }
    async fn claim_pin(
        &self,
        tenant: TenantId,
        key: &PinKey,
        price: i64,
        at: Timestamp,
    ) -> Result<i64> {
        dispatch!(self, s => s.claim_pin(tenant, key, price, at))
    }
    async fn record_proxies(
        &self,
        tenant: TenantId,
        rows: &[ProxyRow],
        audit_row: &PriceAuditRow,
        audit: AuditDraft,
    ) -> Result<()> {
        dispatch!(self, s => s.record_proxies(tenant, rows, audit_row, audit))
    }
    async fn price_proxies(&self, tenant: TenantId) -> Result<Vec<ProxyRow>> {
        dispatch!(self, s => s.price_proxies(tenant))
    }
    async fn insert_price_audit(
        &self,
        tenant: TenantId,
        row: &PriceAuditRow,
        alerts: &[PriceAlertRow],
        audit: AuditDraft,
    ) -> Result<()> {
        dispatch!(self, s => s.insert_price_audit(tenant, row, alerts, audit))
    }
    async fn price_audits(&self, tenant: TenantId, limit: u32) -> Result<Vec<PriceAuditRow>> {
        dispatch!(self, s => s.price_audits(tenant, limit))
    }
    async fn price_audit(&self, tenant: TenantId, id: &str) -> Result<Option<PriceAuditRow>> {
        dispatch!(self, s => s.price_audit(tenant, id))
    }
    async fn price_alerts(&self, tenant: TenantId, limit: u32) -> Result<Vec<PriceAlertRow>> {
        dispatch!(self, s => s.price_alerts(tenant, limit))
    }
    async fn sweep_prices(
        &self,
        tenant: TenantId,
        before: Timestamp,
        pins_before: Timestamp,
    ) -> Result<PriceSweep> {
        dispatch!(self, s => s.sweep_prices(tenant, before, pins_before))
    }
}

/// Implements [`PricingStore`] for a backend, inside the module where `impl_store!` ran and
/// `insert_price_history` (the backend's bulk insert) is defined. `pin_commit` runs first in
/// a pin's own transaction (PostgreSQL commits it without waiting for the WAL flush: a pin
/// lost in a crash is pinned again).
macro_rules! impl_pricing_store {
    (
        $store:ty,
        pin_commit = $pin_commit:literal
    ) => {
        mod pricing_impl {
            use std::collections::HashMap;

            use sqlx::Row as _;

            use candor_types::{TenantId, Timestamp};

            use super::{$store, DbRow, audit_tx};
            use crate::pricing::{
                CheckRow, CheckWrite, PinKey, PriceAlertRow, PriceAuditRow, PriceCancel,
                PricePointRow, PriceRow, PriceSweep, PricingStore, PriorPrices, ProxyRow,
            };
            use crate::{AuditDraft, Result, StoreError};

            const HISTORY_COLS: &str = "id, kind, product, currency, price, at, quantity, country, segment, order_ref, cancelled_at";

            fn history_from(r: &DbRow) -> Result<PriceRow> {
                Ok(PriceRow {
                    id: r.try_get("id")?,
                    kind: r.try_get("kind")?,
                    product: r.try_get("product")?,
                    currency: r.try_get("currency")?,
                    price: r.try_get("price")?,
                    at: Timestamp(r.try_get("at")?),
                    quantity: r.try_get("quantity")?,
                    country: r.try_get("country")?,
                    segment: r.try_get("segment")?,
                    order_ref: r.try_get("order_ref")?,
                    cancelled_at: r.try_get::<Option<i64>, _>("cancelled_at")?.map(Timestamp),
                })
            }

            /// The checks of one log row: `[id, product, currency, list, proposed, price,
            /// verdict, segment, detail, created_at]` each.
            fn checks_from(r: &DbRow) -> Result<Vec<CheckRow>> {
                let text: String = r.try_get("entries")?;
                type Entry = (String, String, String, i64, i64, i64, String, Option<String>, Box<serde_json::value::RawValue>, i64);
                let entries: Vec<Entry> = serde_json::from_str(&text)
                    .map_err(|_| StoreError::Corrupt("price check log unreadable".into()))?;
                Ok(entries
                    .into_iter()
                    .map(|(id, product, currency, list_price, proposed, price, verdict, segment, detail, at)| CheckRow {
                        id,
                        product,
                        currency,
                        list_price,
                        proposed,
                        price,
                        verdict,
                        segment,
                        detail: detail.get().to_string(),
                        created_at: Timestamp(at),
                    })
                    .collect())
            }

            fn proxy_from(r: &DbRow) -> Result<ProxyRow> {
                Ok(ProxyRow {
                    signal: r.try_get("signal")?,
                    attribute: r.try_get("attribute")?,
                    cramers_v: r.try_get("cramers_v")?,
                    mutual_information: r.try_get("mutual_information")?,
                    auc: r.try_get("auc")?,
                    flagged: r.try_get::<i64, _>("flagged")? != 0,
                    audit_id: r.try_get("audit_id")?,
                    audited_at: Timestamp(r.try_get("audited_at")?),
                })
            }

            fn audit_from(r: &DbRow, with_report: bool) -> Result<PriceAuditRow> {
                let report = if with_report {
                    let text: String = r.try_get("report")?;
                    serde_json::from_str(&text)
                        .map_err(|_| StoreError::Corrupt("price audit unreadable".into()))?
                } else {
                    serde_json::Value::Null
                };
                Ok(PriceAuditRow {
                    id: r.try_get("id")?,
                    kind: r.try_get("kind")?,
                    attribute: r.try_get("attribute")?,
                    period_start: r.try_get::<Option<i64>, _>("period_start")?.map(Timestamp),
                    period_end: r.try_get::<Option<i64>, _>("period_end")?.map(Timestamp),
                    flagged_products: r.try_get("flagged_products")?,
                    report,
                    actor: r.try_get("actor")?,
                    created_at: Timestamp(r.try_get("created_at")?),
                })
            }

            fn alert_from(r: &DbRow) -> Result<PriceAlertRow> {
                Ok(PriceAlertRow {
                    id: r.try_get("id")?,
                    audit_id: r.try_get("audit_id")?,
                    attribute: r.try_get("attribute")?,
                    product: r.try_get("product")?,
                    period: r.try_get("period")?,
                    group: r.try_get("group_label")?,
                    ratio: r.try_get("ratio")?,
                    max_ratio: r.try_get("max_ratio")?,
                    created_at: Timestamp(r.try_get("created_at")?),
                })
            }

            /// History rows; an existing id is left as it is (the backend's bulk insert).
            pub(crate) async fn insert_history(tx: &mut super::Tx, tenant: &str, rows: &[PriceRow]) -> Result<u64> {
                super::insert_price_history(tx, tenant, rows).await
            }

            /// Records cancelled orders and marks their lines (whichever arrived first).
            pub(crate) async fn cancel_orders(tx: &mut super::Tx, tenant: &str, cancels: &[PriceCancel]) -> Result<()> {
                for c in cancels {
                    sqlx::query(
                        "INSERT INTO price_cancellations (tenant_id, order_ref, at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                    )
                    .bind(tenant)
                    .bind(&c.order_ref)
                    .bind(c.at.0)
                    .execute(&mut **tx)
                    .await?;
                }
                Ok(())
            }

            /// Marks lines of orders whose cancellation is recorded (new lines of an order
            /// cancelled earlier, or the lines of a new cancellation).
            pub(crate) async fn mark_cancelled(tx: &mut super::Tx, tenant: &str, refs: &[Vec<u8>]) -> Result<()> {
                for r in refs {
                    sqlx::query(
                        "UPDATE price_history SET cancelled_at = (SELECT c.at FROM price_cancellations c WHERE c.tenant_id = $1 AND c.order_ref = $2) \
                         WHERE tenant_id = $1 AND order_ref = $2 AND cancelled_at IS NULL \
                         AND EXISTS (SELECT 1 FROM price_cancellations c WHERE c.tenant_id = $1 AND c.order_ref = $2)",
                    )
                    .bind(tenant)
                    .bind(r)
                    .execute(&mut **tx)
                    .await?;
                }
                Ok(())
            }

            /// Everything an ingest adds to price history: order lines, then cancellations.
            pub(crate) async fn apply_ingest_prices(tx: &mut super::Tx, tenant: &str, rows: &[PriceRow], cancels: &[PriceCancel]) -> Result<()> {
                if rows.is_empty() && cancels.is_empty() {
                    return Ok(());
                }
                insert_history(tx, tenant, rows).await?;
                cancel_orders(tx, tenant, cancels).await?;
                let mut refs: Vec<Vec<u8>> = rows.iter().filter_map(|r| r.order_ref.clone()).chain(cancels.iter().map(|c| c.order_ref.clone())).collect();
                refs.sort();
                refs.dedup();
                mark_cancelled(tx, tenant, &refs).await
            }

            impl PricingStore for $store {
                async fn insert_prices(&self, tenant: TenantId, rows: &[PriceRow], cancels: &[PriceCancel], audit: Vec<AuditDraft>) -> Result<u64> {
                    let mut tx = self.write_tx().await?;
                    let t = tenant.to_string();
                    let n = insert_history(&mut tx, &t, rows).await?;
                    cancel_orders(&mut tx, &t, cancels).await?;
                    let mut refs: Vec<Vec<u8>> = rows.iter().filter_map(|r| r.order_ref.clone()).chain(cancels.iter().map(|c| c.order_ref.clone())).collect();
                    refs.sort();
                    refs.dedup();
                    mark_cancelled(&mut tx, &t, &refs).await?;
                    audit_tx(&mut tx, audit, Timestamp::now()).await?;
                    tx.commit().await?;
                    Ok(n)
                }

                async fn insert_checks(&self, tenant: TenantId, write: CheckWrite) -> Result<Vec<(PinKey, i64)>> {
                    let mut tx = self.write_tx().await?;
                    let t = tenant.to_string();
                    let mut at = Timestamp(0);
                    if let Some(log) = &write.log {
                        at = log.created_at;
                        // One row: the checks as a JSON array, each explanation embedded as
                        // the object it is (no second escaping).
                        let text = |s: &str| serde_json::Value::from(s).to_string();
                        let mut entries = String::with_capacity(log.checks.len() * 160 + 2);
                        entries.push('[');
                        let mut n = [0i64; 3];
                        for (i, c) in log.checks.iter().enumerate() {
                            if i > 0 {
                                entries.push(',');
                            }
                            let detail = if c.detail.starts_with('{') { c.detail.as_str() } else { "{}" };
                            entries.push_str(&format!(
                                "[{},{},{},{},{},{},{},{},{},{}]",
                                text(&c.id),
                                text(&c.product),
                                text(&c.currency),
                                c.list_price,
                                c.proposed,
                                c.price,
                                text(&c.verdict),
                                c.segment.as_deref().map_or_else(|| "null".to_string(), text),
                                detail,
                                c.created_at.0
                            ));
                            match c.verdict.as_str() {
                                "allow" => n[0] += 1,
                                "adjust" => n[1] += 1,
                                _ => n[2] += 1,
                            }
                        }
                        entries.push(']');
                        sqlx::query(
                            "INSERT INTO price_check_log (tenant_id, id, kind, checks, allowed, adjusted, refused, entries, created_at) \
                             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                        )
                        .bind(&t)
                        .bind(&log.id)
                        .bind(&log.kind)
                        .bind(log.checks.len() as i64)
                        .bind(n[0])
                        .bind(n[1])
                        .bind(n[2])
                        .bind(entries)
                        .bind(log.created_at.0)
                        .execute(&mut *tx)
                        .await?;
                    }
                    insert_history(&mut tx, &t, &write.history).await?;
                    let mut pinned = Vec::with_capacity(write.pins.len());
                    for (key, price) in &write.pins {
                        pinned.push((key.clone(), claim_pin_on(&mut tx, &t, key, *price, at).await?));
                    }
                    audit_tx(&mut tx, write.audit, at.max(Timestamp(1))).await?;
                    tx.commit().await?;
                    Ok(pinned)
                }

                async fn prior_prices(&self, tenant: TenantId, keys: &[(String, String)], from: Timestamp, to: Timestamp) -> Result<HashMap<(String, String), PriorPrices>> {
                    let t = tenant.to_string();
                    let mut out = HashMap::with_capacity(keys.len());
                    let mut conn = self.reader().acquire().await?;
                    for (product, currency) in keys {
                        let rows = sqlx::query(
                            "SELECT 'w' AS part, price, at FROM (SELECT price, at FROM price_history \
                               WHERE tenant_id = $1 AND product = $2 AND currency = $3 AND at >= $4 AND at < $5 AND cancelled_at IS NULL \
                               ORDER BY price, at DESC LIMIT 1) w \
                             UNION ALL \
                             SELECT 'b' AS part, price, at FROM (SELECT price, at FROM price_history \
                               WHERE tenant_id = $1 AND product = $2 AND currency = $3 AND at < $4 AND cancelled_at IS NULL \
                               ORDER BY at DESC LIMIT 1) b",
                        )
                        .bind(&t)
                        .bind(product)
                        .bind(currency)
                        .bind(from.0)
                        .bind(to.0)
                        .fetch_all(&mut *conn)
                        .await?;
                        let mut p = PriorPrices::default();
                        for r in rows {
                            let point = PricePointRow { price: r.try_get("price")?, at: Timestamp(r.try_get("at")?) };
                            if r.try_get::<String, _>("part")? == "w" {
                                p.lowest_in_window = Some(point);
                            } else {
                                p.before_window = Some(point);
                            }
                        }
                        out.insert((product.clone(), currency.clone()), p);
                    }
                    Ok(out)
                }

                async fn price_history(&self, tenant: TenantId, product: &str, currency: Option<&str>, from: Timestamp, to: Timestamp, limit: u32) -> Result<Vec<PriceRow>> {
                    sqlx::query(sqlx::AssertSqlSafe(format!(
                        "SELECT {HISTORY_COLS} FROM price_history WHERE tenant_id = $1 AND product = $2 AND ($3 = '' OR currency = $3) \
                         AND at >= $4 AND at < $5 ORDER BY at, id LIMIT $6"
                    )))
                    .bind(tenant.to_string())
                    .bind(product)
                    .bind(currency.unwrap_or(""))
                    .bind(from.0)
                    .bind(to.0)
                    .bind(i64::from(limit))
                    .fetch_all(self.reader())
                    .await?
                    .iter()
                    .map(history_from)
                    .collect()
                }

                async fn price_checks(&self, tenant: TenantId, product: Option<&str>, limit: u32) -> Result<Vec<CheckRow>> {
                    let mut out = Vec::new();
                    let mut before = i64::MAX;
                    let t = tenant.to_string();
                    'pages: loop {
                        let page = sqlx::query(
                            "SELECT entries, created_at FROM price_check_log WHERE tenant_id = $1 AND created_at < $2 \
                             ORDER BY created_at DESC LIMIT 20",
                        )
                        .bind(&t)
                        .bind(before)
                        .fetch_all(self.reader())
                        .await?;
                        if page.is_empty() {
                            break;
                        }
                        for r in &page {
                            before = r.try_get("created_at")?;
                            let mut checks = checks_from(r)?;
                            checks.reverse();
                            for c in checks {
                                if product.is_none_or(|p| p == c.product) {
                                    out.push(c);
                                    if out.len() >= limit as usize {
                                        break 'pages;
                                    }
                                }
                            }
                        }
                    }
                    Ok(out)
                }

                async fn pin(&self, tenant: TenantId, key: &PinKey) -> Result<Option<i64>> {
                    Ok(sqlx::query(
                        "SELECT price FROM price_pins WHERE tenant_id = $1 AND product = $2 AND currency = $3 AND segment = $4 \
                         AND list_price = $5 AND window_start = $6",
                    )
                    .bind(tenant.to_string())
                    .bind(&key.product)
                    .bind(&key.currency)
                    .bind(&key.segment)
                    .bind(key.list_price)
                    .bind(key.window_start.0)
                    .fetch_optional(self.reader())
                    .await?
                    .map(|r| r.try_get("price"))
                    .transpose()?)
                }

                async fn claim_pin(&self, tenant: TenantId, key: &PinKey, price: i64, at: Timestamp) -> Result<i64> {
                    let mut tx = self.write_tx().await?;
                    sqlx::query($pin_commit).execute(&mut *tx).await?;
                    let pinned = claim_pin_on(&mut tx, &tenant.to_string(), key, price, at).await?;
                    tx.commit().await?;
                    Ok(pinned)
                }

                async fn record_proxies(&self, tenant: TenantId, rows: &[ProxyRow], audit_row: &PriceAuditRow, audit: AuditDraft) -> Result<()> {
                    let mut tx = self.write_tx().await?;
                    let t = tenant.to_string();
                    for r in rows {
                        sqlx::query(
                            "INSERT INTO price_proxies (tenant_id, signal, attribute, cramers_v, mutual_information, auc, flagged, audit_id, audited_at) \
                             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                             ON CONFLICT (tenant_id, signal, attribute) DO UPDATE SET cramers_v = excluded.cramers_v, \
                               mutual_information = excluded.mutual_information, auc = excluded.auc, flagged = excluded.flagged, \
                               audit_id = excluded.audit_id, audited_at = excluded.audited_at",
                        )
                        .bind(&t)
                        .bind(&r.signal)
                        .bind(&r.attribute)
                        .bind(r.cramers_v)
                        .bind(r.mutual_information)
                        .bind(r.auc)
                        .bind(i64::from(r.flagged))
                        .bind(&r.audit_id)
                        .bind(r.audited_at.0)
                        .execute(&mut *tx)
                        .await?;
                    }
                    insert_audit_row(&mut tx, &t, audit_row).await?;
                    audit_tx(&mut tx, vec![audit], audit_row.created_at).await?;
                    tx.commit().await?;
                    Ok(())
                }

                async fn price_proxies(&self, tenant: TenantId) -> Result<Vec<ProxyRow>> {
                    sqlx::query("SELECT * FROM price_proxies WHERE tenant_id = $1 ORDER BY signal, attribute")
                        .bind(tenant.to_string())
                        .fetch_all(self.reader())
                        .await?
                        .iter()
                        .map(proxy_from)
                        .collect()
                }

                async fn insert_price_audit(&self, tenant: TenantId, row: &PriceAuditRow, alerts: &[PriceAlertRow], audit: AuditDraft) -> Result<()> {
                    let mut tx = self.write_tx().await?;
                    let t = tenant.to_string();
                    insert_audit_row(&mut tx, &t, row).await?;
                    for a in alerts {
                        sqlx::query(
                            "INSERT INTO price_alerts (tenant_id, id, audit_id, attribute, product, period, group_label, ratio, max_ratio, created_at) \
                             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                        )
                        .bind(&t)
                        .bind(&a.id)
                        .bind(&a.audit_id)
                        .bind(&a.attribute)
                        .bind(&a.product)
                        .bind(&a.period)
                        .bind(&a.group)
                        .bind(a.ratio)
                        .bind(a.max_ratio)
                        .bind(a.created_at.0)
                        .execute(&mut *tx)
                        .await?;
                    }
                    audit_tx(&mut tx, vec![audit], row.created_at).await?;
                    tx.commit().await?;
                    Ok(())
                }

                async fn price_audits(&self, tenant: TenantId, limit: u32) -> Result<Vec<PriceAuditRow>> {
                    sqlx::query(
                        "SELECT id, kind, attribute, period_start, period_end, flagged_products, actor, created_at FROM price_audits \
                         WHERE tenant_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2",
                    )
                    .bind(tenant.to_string())
                    .bind(i64::from(limit))
                    .fetch_all(self.reader())
                    .await?
                    .iter()
                    .map(|r| audit_from(r, false))
                    .collect()
                }

                async fn price_audit(&self, tenant: TenantId, id: &str) -> Result<Option<PriceAuditRow>> {
                    sqlx::query("SELECT * FROM price_audits WHERE tenant_id = $1 AND id = $2")
                        .bind(tenant.to_string())
                        .bind(id)
                        .fetch_optional(self.reader())
                        .await?
                        .as_ref()
                        .map(|r| audit_from(r, true))
                        .transpose()
                }

                async fn price_alerts(&self, tenant: TenantId, limit: u32) -> Result<Vec<PriceAlertRow>> {
                    sqlx::query("SELECT * FROM price_alerts WHERE tenant_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2")
                        .bind(tenant.to_string())
                        .bind(i64::from(limit))
                        .fetch_all(self.reader())
                        .await?
                        .iter()
                        .map(alert_from)
                        .collect()
                }

                async fn sweep_prices(&self, tenant: TenantId, before: Timestamp, pins_before: Timestamp) -> Result<PriceSweep> {
                    let mut tx = self.write_tx().await?;
                    let t = tenant.to_string();
                    let checks = sqlx::query("DELETE FROM price_check_log WHERE tenant_id = $1 AND created_at < $2")
                        .bind(&t)
                        .bind(before.0)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                    // The newest price before the cut stays: it is still the price in effect.
                    let history = sqlx::query(
                        "DELETE FROM price_history WHERE tenant_id = $1 AND at < $2 AND EXISTS ( \
                           SELECT 1 FROM price_history newer WHERE newer.tenant_id = price_history.tenant_id \
                           AND newer.product = price_history.product AND newer.currency = price_history.currency \
                           AND newer.cancelled_at IS NULL AND newer.at < $2 \
                           AND (newer.at > price_history.at OR (newer.at = price_history.at AND newer.id > price_history.id)))",
                    )
                    .bind(&t)
                    .bind(before.0)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                    sqlx::query("DELETE FROM price_cancellations WHERE tenant_id = $1 AND at < $2")
                        .bind(&t)
                        .bind(before.0)
                        .execute(&mut *tx)
                        .await?;
                    let pins = sqlx::query("DELETE FROM price_pins WHERE tenant_id = $1 AND window_start < $2")
                        .bind(&t)
                        .bind(pins_before.0)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                    tx.commit().await?;
                    Ok(PriceSweep { checks, history, pins })
                }
            }

            /// Pins `price` unless a pin exists; returns the stored one.
            async fn claim_pin_on(tx: &mut super::Tx, tenant: &str, key: &PinKey, price: i64, at: Timestamp) -> Result<i64> {
                sqlx::query(
                    "INSERT INTO price_pins (tenant_id, product, currency, segment, list_price, window_start, price, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
                )
                .bind(tenant)
                .bind(&key.product)
                .bind(&key.currency)
                .bind(&key.segment)
                .bind(key.list_price)
                .bind(key.window_start.0)
                .bind(price)
                .bind(at.0)
                .execute(&mut **tx)
                .await?;
                Ok(sqlx::query(
                    "SELECT price FROM price_pins WHERE tenant_id = $1 AND product = $2 AND currency = $3 AND segment = $4 \
                     AND list_price = $5 AND window_start = $6",
                )
                .bind(tenant)
                .bind(&key.product)
                .bind(&key.currency)
                .bind(&key.segment)
                .bind(key.list_price)
                .bind(key.window_start.0)
                .fetch_one(&mut **tx)
                .await?
                .try_get("price")?)
            }

            async fn insert_audit_row(tx: &mut super::Tx, tenant: &str, row: &PriceAuditRow) -> Result<()> {
                sqlx::query(
                    "INSERT INTO price_audits (tenant_id, id, kind, attribute, period_start, period_end, flagged_products, report, actor, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                )
                .bind(tenant)
                .bind(&row.id)
                .bind(&row.kind)
                .bind(&row.attribute)
                .bind(row.period_start.map(|t| t.0))
                .bind(row.period_end.map(|t| t.0))
                .bind(row.flagged_products)
                .bind(row.report.to_string())
                .bind(&row.actor)
                .bind(row.created_at.0)
                .execute(&mut **tx)
                .await?;
                Ok(())
            }
        }
    };
}

pub(crate) use impl_pricing_store;
