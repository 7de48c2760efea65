//! Price audits: what groups actually paid for the same product in the same period, from a
//! file of order lines or from the orders Candor holds, and how much each pricing signal
//! reveals a protected attribute.
//!
//! Dispersion (see [`candor_fairness::dispersion`]): per product and period, each group's
//! price per unit, its ratio to the largest group's, a 95% bootstrap interval, and flags by
//! `[pricing] max_dispersion_ratio`. Groups are countries and segments and, in monitoring,
//! the protected traits the `fairness_audit` purpose may read (the read is audited). A
//! monitoring audit's flagged groups become alerts. Documents hold group prices and counts,
//! never a person's values.

use std::collections::{BTreeMap, HashMap};

use candor_fairness::dispersion::{DispersionInput, DispersionReport, dispersion};
use candor_fairness::{Attribute, MISSING};
use candor_ml::table::RawTable;
use candor_store::{AuditDraft, PriceAlertRow, PriceAuditRow, PricingStore, ProxyRow, Store};
use candor_types::{Currency, EventId, TenantId, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::{App, AppError, AppResult, ErrorKind};

/// Where the columns of an order-lines file are (defaults: UCI Online Retail).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PriceColumns {
    pub product: String,
    pub name: Option<String>,
    pub price: String,
    pub quantity: Option<String>,
    pub time: String,
    /// What the groups are (a country, a segment).
    pub group: String,
    /// Rows whose value here starts with `C` are cancellations and left out.
    pub invoice: Option<String>,
}

impl Default for PriceColumns {
    fn default() -> Self {
        PriceColumns {
            product: "StockCode".into(),
            name: Some("Description".into()),
            price: "UnitPrice".into(),
            quantity: Some("Quantity".into()),
            time: "InvoiceDate".into(),
            group: "Country".into(),
            invoice: Some("InvoiceNo".into()),
        }
    }
}

/// Where the columns are in one table.
struct Positions {
    product: usize,
    price: usize,
    time: usize,
    group: usize,
    name: Option<usize>,
    quantity: Option<usize>,
    invoice: Option<usize>,
}

impl PriceColumns {
    fn positions(&self, table: &RawTable) -> AppResult<Positions> {
        let col = |name: &str| {
            table.column(name).ok_or_else(|| {
                AppError::bad_request(
                    "column_invalid",
                    format!("column {name:?} is not in the file"),
                )
            })
        };
        let opt = |name: &Option<String>| name.as_deref().map(col).transpose();
        Ok(Positions {
            product: col(&self.product)?,
            price: col(&self.price)?,
            time: col(&self.time)?,
            group: col(&self.group)?,
            name: opt(&self.name)?,
            quantity: opt(&self.quantity)?,
            invoice: opt(&self.invoice)?,
        })
    }
}

/// How long a period of the audit is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PeriodUnit {
    Week,
    Month,
    Quarter,
    /// The whole file or period as one.
    All,
}

impl std::str::FromStr for PeriodUnit {
    type Err = AppError;
    fn from_str(s: &str) -> AppResult<Self> {
        match s {
            "week" => Ok(Self::Week),
            "month" => Ok(Self::Month),
            "quarter" => Ok(Self::Quarter),
            "all" => Ok(Self::All),
            _ => Err(AppError::bad_request(
                "period_invalid",
                format!("the period is week, month, quarter or all, not {s:?}"),
            )),
        }
    }
}

impl PeriodUnit {
    /// The period an instant falls in, as a label that sorts in time order.
    pub fn label(self, at: Timestamp) -> String {
        let Ok(t) = jiff::Timestamp::from_millisecond(at.0) else {
            return "?".into();
        };
        let d = t.to_zoned(jiff::tz::TimeZone::UTC).date();
        match self {
            Self::Month => format!("{:04}-{:02}", d.year(), d.month()),
            Self::Quarter => format!("{:04}-Q{}", d.year(), (d.month() - 1) / 3 + 1),
            Self::Week => {
                let w = d.iso_week_date();
                format!("{:04}-W{:02}", w.year(), w.week())
            }
            Self::All => "all".into(),
        }
    }
}

/// What a dispersion audit covers.
#[derive(Clone, Debug)]
pub struct DispersionOptions {
    pub period: PeriodUnit,
    /// The products with the most order lines (0: every product).
    pub top: usize,
    pub resamples: u32,
    pub seed: u64,
    pub from: Option<Timestamp>,
    pub to: Option<Timestamp>,
    /// The currency of a file's prices (only labels the report).
    pub currency: Option<Currency>,
}

impl Default for DispersionOptions {
    fn default() -> Self {
        DispersionOptions {
            period: PeriodUnit::Month,
            top: 20,
            resamples: 1000,
            seed: 20_111,
            from: None,
            to: None,
            currency: None,
        }
    }
}

/// A live monitoring run over the orders Candor holds.
#[derive(Clone, Debug)]
pub struct PriceMonitorRequest {
    pub from: Timestamp,
    pub to: Timestamp,
    pub options: DispersionOptions,
}

/// A recorded price audit: its id, its document and the flagged products.
#[derive(Clone, Debug, Serialize)]
pub struct RecordedPriceAudit {
    pub id: String,
    pub kind: String,
    pub document: Value,
    pub flagged_products: Vec<String>,
    pub alerts: usize,
}

/// One order line, parsed.
#[derive(Clone, Debug)]
struct Line {
    product: String,
    at: Timestamp,
    price: f64,
    quantity: f64,
}

/// Reads a CSV sample or order file (`,` `;` or tab, quotes, BOM).
pub fn read_table(bytes: &[u8]) -> AppResult<RawTable> {
    candor_ml::table::read_csv(bytes)
        .map_err(|e| AppError::bad_request("invalid_csv", e.to_string()))
}

use crate::recs::parse_time;

/// The reports of several groupings of the same lines, restricted to the top products.
fn reports(
    app: &App,
    lines: &[Line],
    groupings: &[(String, Vec<String>)],
    opts: &DispersionOptions,
) -> (Vec<DispersionReport>, Vec<String>) {
    let pricing = app.policy().pricing();
    let mut by_product: HashMap<&str, usize> = HashMap::new();
    for l in lines {
        *by_product.entry(l.product.as_str()).or_default() += 1;
    }
    let mut ranked: Vec<(&str, usize)> = by_product.into_iter().collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    if opts.top > 0 {
        ranked.truncate(opts.top);
    }
    let products: Vec<String> = ranked.iter().map(|(p, _)| (*p).to_string()).collect();
    let code_of: HashMap<&str, u32> = products
        .iter()
        .enumerate()
        .map(|(i, p)| (p.as_str(), i as u32))
        .collect();
    let keep: Vec<usize> = (0..lines.len())
        .filter(|&i| code_of.contains_key(lines[i].product.as_str()))
        .collect();
    let mut periods: Vec<String> = keep
        .iter()
        .map(|&i| opts.period.label(lines[i].at))
        .collect();
    let mut period_labels = periods.clone();
    period_labels.sort();
    period_labels.dedup();
    let period_code: HashMap<&str, u32> = period_labels
        .iter()
        .enumerate()
        .map(|(i, p)| (p.as_str(), i as u32))
        .collect();
    let period: Vec<u32> = periods.drain(..).map(|p| period_code[p.as_str()]).collect();
    let product: Vec<u32> = keep
        .iter()
        .map(|&i| code_of[lines[i].product.as_str()])
        .collect();
    let price: Vec<f64> = keep.iter().map(|&i| lines[i].price).collect();
    let quantity: Vec<f64> = keep.iter().map(|&i| lines[i].quantity).collect();
    let out = groupings
        .iter()
        .map(|(name, groups)| {
            let attr = Attribute::from_values(
                name,
                keep.iter()
                    .map(|&i| Some(groups[i].as_str()).filter(|g| !g.is_empty())),
            );
            dispersion(&DispersionInput {
                attribute: name,
                product: &product,
                product_labels: &products,
                period: &period,
                period_labels: &period_labels,
                group: &attr.codes,
                group_labels: &attr.labels,
                price: &price,
                quantity: &quantity,
                max_ratio: pricing.max_dispersion_ratio,
                min_lines: pricing.min_group_lines,
                resamples: opts.resamples,
                level: 0.95,
                seed: opts.seed,
            })
        })
        .collect();
    (out, products)
}

/// Plain words: what was audited and what was flagged.
pub fn dispersion_summary(doc: &Value) -> Vec<String> {
    let max = doc["max_ratio"].as_f64().unwrap_or(0.0);
    let mut out = Vec::new();
    for r in doc["attributes"].as_array().into_iter().flatten() {
        let attr = r["attribute"].as_str().unwrap_or("group");
        let products = r["products"].as_array().map_or(0, Vec::len);
        let flagged: Vec<&str> = r["flagged_products"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        if flagged.is_empty() {
            out.push(format!(
                "By {attr}: no group of the {products} products paid more than {max}× or less than 1/{max} of what the largest group paid, beyond what chance explains."
            ));
        } else {
            out.push(format!(
                "By {attr}: {} of {products} products have a group paying more than {max}× or less than 1/{max} of the largest group's price, with a 95% interval that excludes 1: {}.",
                flagged.len(),
                flagged.join(", ")
            ));
        }
    }
    out
}

/// The document of a dispersion audit.
fn document(
    app: &App,
    kind: &str,
    reports: &[DispersionReport],
    names: &BTreeMap<String, String>,
    opts: &DispersionOptions,
    extra: Value,
) -> Value {
    let pricing = app.policy().pricing();
    let mut flagged: Vec<String> = reports
        .iter()
        .flat_map(|r| r.flagged_products.iter().cloned())
        .collect();
    flagged.sort();
    flagged.dedup();
    let mut doc = json!({
        "kind": kind,
        "period_unit": opts.period,
        "top": opts.top,
        "currency": opts.currency.map(|c| c.code()),
        "max_ratio": pricing.max_dispersion_ratio,
        "min_lines": pricing.min_group_lines,
        "resamples": opts.resamples,
        "seed": opts.seed,
        "level": 0.95,
        "names": names,
        "attributes": reports,
        "flagged_products": flagged,
    });
    if let (Some(d), Some(e)) = (doc.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            d.insert(k.clone(), v.clone());
        }
    }
    doc["summary"] = json!(dispersion_summary(&doc));
    doc
}

fn flagged_of(doc: &Value) -> Vec<String> {
    doc["flagged_products"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect()
}

impl App {
    /// Audits price dispersion in a file of order lines (cancellations, non-positive
    /// quantities and prices left out, counted), grouped by one column, and records it.
    pub async fn audit_price_file(
        &self,
        tenant: TenantId,
        actor: &str,
        table: &RawTable,
        cols: &PriceColumns,
        opts: &DispersionOptions,
        source: &str,
    ) -> AppResult<RecordedPriceAudit> {
        let Positions {
            product: pc,
            price: prc,
            time: tc,
            group: gc,
            name: nc,
            quantity: qc,
            invoice: ic,
        } = cols.positions(table)?;
        let mut lines = Vec::with_capacity(table.rows.len());
        let mut groups = Vec::with_capacity(table.rows.len());
        let mut names: BTreeMap<String, String> = BTreeMap::new();
        let (mut cancelled, mut invalid, mut outside) = (0u64, 0u64, 0u64);
        for (r, row) in table.rows.iter().enumerate() {
            if ic.is_some_and(|k| row[k].trim().starts_with('C')) {
                cancelled += 1;
                continue;
            }
            let price: Option<f64> = row[prc].trim().parse().ok();
            let quantity: Option<f64> = match qc {
                Some(k) => row[k].trim().parse().ok(),
                None => Some(1.0),
            };
            let (Some(price), Some(quantity)) = (price, quantity) else {
                invalid += 1;
                continue;
            };
            if !(price > 0.0 && price.is_finite() && quantity > 0.0 && quantity.is_finite()) {
                invalid += 1;
                continue;
            }
            let at = parse_time(&row[tc]).ok_or_else(|| {
                AppError::bad_request(
                    "time_invalid",
                    format!("row {}: {:?} is not a time", r + 2, row[tc]),
                )
            })?;
            if opts.from.is_some_and(|f| at < f) || opts.to.is_some_and(|t| at >= t) {
                outside += 1;
                continue;
            }
            let product = row[pc].trim().to_string();
            if product.is_empty() {
                invalid += 1;
                continue;
            }
            if let Some(k) = nc
                && !names.contains_key(&product)
                && !row[k].trim().is_empty()
            {
                names.insert(product.clone(), row[k].trim().to_string());
            }
            lines.push(Line {
                product,
                at,
                price,
                quantity,
            });
            groups.push(row[gc].trim().to_string());
        }
        if lines.is_empty() {
            return Err(AppError::bad_request(
                "no_rows",
                "no order line of the file is left to audit",
            ));
        }
        let (reps, products) = reports(self, &lines, &[(cols.group.clone(), groups)], opts);
        names.retain(|k, _| products.contains(k));
        let doc = document(
            self,
            "file",
            &reps,
            &names,
            opts,
            json!({
                "source": source,
                "columns": cols,
                "rows": { "read": table.rows.len(), "used": lines.len(), "cancelled": cancelled, "invalid": invalid, "outside_period": outside },
            }),
        );
        self.record_price_audit(tenant, actor, "file", &cols.group, None, doc, false)
            .await
    }

    /// Audits what groups paid in the orders Candor holds (`Order Completed` events in
    /// `[from, to)`), by country (`context.location.country`), by segment (new, returning,
    /// loyal by the person's earlier orders) and by each protected trait the
    /// `fairness_audit` purpose may read. People the purpose may not read are left out,
    /// counted. Flagged groups become alerts.
    pub async fn monitor_prices(
        &self,
        tenant: TenantId,
        actor: &str,
        req: &PriceMonitorRequest,
    ) -> AppResult<RecordedPriceAudit> {
        if req.from >= req.to {
            return Err(AppError::bad_request(
                "period_invalid",
                "the period must start before it ends",
            ));
        }
        let purpose = self.purpose("fairness_audit")?;
        let protected: Vec<String> = self
            .policy()
            .protected_attributes()
            .map(str::to_string)
            .collect();
        let bands = self.policy().fairness().age_bands.clone();
        let tk = self.tenant_key(tenant).await?;
        let mut lines = Vec::new();
        let mut country = Vec::new();
        let mut segment = Vec::new();
        let mut traits: Vec<Vec<String>> = vec![Vec::new(); protected.len()];
        let (mut people, mut unreadable, mut opened) = (0u64, 0u64, 0usize);
        let mut after = None;
        loop {
            let page = self.store().list_subjects(tenant, after, 500).await?;
            let Some(last) = page.last() else { break };
            after = Some(last.id);
            for s in page {
                let Some(wrapped) = &s.wrapped_key else {
                    continue;
                };
                let Ok(grant) = self.grant(tenant, s.id, &purpose).await else {
                    unreadable += 1;
                    continue;
                };
                let key = tk.unwrap_data_key(s.id, wrapped)?;
                let (profile, events, n) = self.open_subject(Some(&key), &grant, 20_000).await?;
                let mut orders: Vec<&crate::EventData> = events
                    .iter()
                    .filter(|e| e.name.as_deref() == Some("Order Completed"))
                    .collect();
                if orders
                    .iter()
                    .all(|e| e.occurred_at < req.from || e.occurred_at >= req.to)
                {
                    continue;
                }
                people += 1;
                opened += n;
                orders.sort_by_key(|e| e.occurred_at);
                let mine: Vec<String> = protected
                    .iter()
                    .map(|p| match profile.get(p) {
                        Some(Value::String(s)) => s.clone(),
                        Some(Value::Number(n)) => n.to_string(),
                        Some(Value::Bool(b)) => b.to_string(),
                        _ => String::new(),
                    })
                    .collect();
                for (prior, e) in orders.iter().enumerate() {
                    if e.occurred_at < req.from || e.occurred_at >= req.to {
                        continue;
                    }
                    // Fields by category, each {"properties": …, "context": …}: merge them.
                    let part = |top: &str, key: &str| {
                        e.fields
                            .values()
                            .find_map(|v| v.get(top)?.get(key).cloned())
                    };
                    let Some(cur) = part("properties", "currency")
                        .and_then(|c| c.as_str().and_then(|c| Currency::parse(c).ok()))
                    else {
                        continue;
                    };
                    let where_ = part("context", "location")
                        .and_then(|l| l.get("country").and_then(Value::as_str).map(str::to_string))
                        .unwrap_or_default();
                    for p in part("properties", "products")
                        .and_then(|p| p.as_array().cloned())
                        .unwrap_or_default()
                    {
                        let Some(product) =
                            ["product_id", "sku", "id"]
                                .iter()
                                .find_map(|k| match p.get(*k) {
                                    Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
                                    Some(Value::Number(n)) => Some(n.to_string()),
                                    _ => None,
                                })
                        else {
                            continue;
                        };
                        let Some(price) = p
                            .get("price")
                            .and_then(Currency::amount_text)
                            .and_then(|t| cur.parse_rounded(&t).ok())
                            .filter(|x| *x > 0)
                        else {
                            continue;
                        };
                        let quantity = p
                            .get("quantity")
                            .and_then(Value::as_f64)
                            .filter(|q| *q > 0.0)
                            .unwrap_or(1.0);
                        lines.push(Line {
                            product: format!("{product} ({})", cur.code()),
                            at: e.occurred_at,
                            price: price as f64 / 10f64.powi(i32::from(cur.decimals())),
                            quantity,
                        });
                        country.push(where_.clone());
                        segment.push(crate::journeys::segment(prior as i64).to_string());
                        for (k, t) in mine.iter().enumerate() {
                            traits[k].push(t.clone());
                        }
                    }
                }
            }
        }
        if opened > 0 {
            self.store()
                .append_audit(vec![AuditDraft {
                    tenant: Some(tenant),
                    actor: actor.to_string(),
                    action: "pii.read".into(),
                    target: Some("pricing:dispersion".into()),
                    details: json!({
                        "purpose": "fairness_audit",
                        "what": "orders and protected traits of buyers, for a price dispersion audit",
                        "subjects": people,
                        "sealed_values": opened,
                    }),
                }])
                .await?;
        }
        if lines.is_empty() {
            return Err(AppError::new(
                ErrorKind::Conflict,
                "no_orders",
                "no order with prices in the period is readable for the fairness_audit purpose",
            ));
        }
        let mut groupings = vec![
            ("country".to_string(), country),
            ("segment".to_string(), segment),
        ];
        for (path, vals) in protected.iter().zip(traits) {
            if vals.iter().all(String::is_empty) {
                continue;
            }
            let name = path.rsplit('.').next().unwrap_or(path).to_string();
            let strs: Vec<&str> = vals.iter().map(String::as_str).collect();
            let (attr, _) = crate::fairness::protected_attribute(&name, &strs, &bands);
            let labels: Vec<String> = attr
                .codes
                .iter()
                .map(|&c| {
                    let l = &attr.labels[c as usize];
                    if l == MISSING {
                        String::new()
                    } else {
                        l.clone()
                    }
                })
                .collect();
            groupings.push((name, labels));
        }
        let (reps, _) = reports(self, &lines, &groupings, &req.options);
        let doc = document(
            self,
            "monitoring",
            &reps,
            &BTreeMap::new(),
            &req.options,
            json!({
                "period": { "from": req.from.to_rfc3339(), "to": req.to.to_rfc3339() },
                "people": people,
                "lines": lines.len(),
                "left_out": { "not_readable_for_fairness_audit": unreadable },
            }),
        );
        self.record_price_audit(
            tenant,
            actor,
            "monitoring",
            "country, segment, protected",
            Some((req.from, req.to)),
            doc,
            true,
        )
        .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn record_price_audit(
        &self,
        tenant: TenantId,
        actor: &str,
        kind: &str,
        attribute: &str,
        period: Option<(Timestamp, Timestamp)>,
        mut doc: Value,
        alerts: bool,
    ) -> AppResult<RecordedPriceAudit> {
        let id = EventId::new().to_string();
        let now = self.clock().now();
        doc["id"] = json!(id);
        doc["created_at"] = json!(now.to_rfc3339());
        let flagged = flagged_of(&doc);
        let mut rows = Vec::new();
        if alerts {
            for r in doc["attributes"].as_array().into_iter().flatten() {
                for c in r["cells"].as_array().into_iter().flatten() {
                    for g in c["groups"].as_array().into_iter().flatten() {
                        if g["flagged"].as_bool() == Some(true) {
                            rows.push(PriceAlertRow {
                                id: EventId::new().to_string(),
                                audit_id: id.clone(),
                                attribute: r["attribute"].as_str().unwrap_or("").to_string(),
                                product: c["product"].as_str().unwrap_or("").to_string(),
                                period: c["period"].as_str().unwrap_or("").to_string(),
                                group: g["group"].as_str().unwrap_or("").to_string(),
                                ratio: g["ratio"].as_f64().unwrap_or(f64::NAN),
                                max_ratio: doc["max_ratio"].as_f64().unwrap_or(f64::NAN),
                                created_at: now,
                            });
                        }
                    }
                }
            }
        }
        let row = PriceAuditRow {
            id: id.clone(),
            kind: kind.to_string(),
            attribute: attribute.to_string(),
            period_start: period.map(|p| p.0),
            period_end: period.map(|p| p.1),
            flagged_products: flagged.len() as i64,
            report: doc.clone(),
            actor: actor.to_string(),
            created_at: now,
        };
        self.store()
            .insert_price_audit(
                tenant,
                &row,
                &rows,
                AuditDraft {
                    tenant: Some(tenant),
                    actor: actor.to_string(),
                    action: "pricing.audited".into(),
                    target: Some(format!("price_audit:{id}")),
                    details: json!({
                        "kind": kind,
                        "flagged_products": flagged.len(),
                        "alerts": rows.len(),
                    }),
                },
            )
            .await?;
        for a in &rows {
            tracing::warn!(
                product = %a.product,
                attribute = %a.attribute,
                group = %a.group,
                ratio = a.ratio,
                "price dispersion alert"
            );
        }
        Ok(RecordedPriceAudit {
            id,
            kind: kind.to_string(),
            document: doc,
            flagged_products: flagged,
            alerts: rows.len(),
        })
    }

    /// Proxy detection for pricing signals: how much each signal column of a sample reveals
    /// each protected column (Cramér's V, mutual information, AUC alone). Signals above the
    /// policy's `[fairness] max_proxy_cramers_v` are flagged, and every price check that
    /// names one from then on is refused. Recorded and audited; the sample is not kept.
    pub async fn audit_price_signals(
        &self,
        tenant: TenantId,
        actor: &str,
        table: &RawTable,
        signals: &[String],
        protected: &[String],
        source: &str,
    ) -> AppResult<RecordedPriceAudit> {
        if signals.is_empty() || protected.is_empty() {
            return Err(AppError::bad_request(
                "column_invalid",
                "name at least one signal column and one protected column",
            ));
        }
        let col = |name: &str| {
            table.column(name).ok_or_else(|| {
                AppError::bad_request(
                    "column_invalid",
                    format!("column {name:?} is not in the file"),
                )
            })
        };
        let limit = self.policy().fairness().max_proxy_cramers_v.unwrap_or(0.3);
        let bands = self.policy().fairness().age_bands.clone();
        let attrs = protected
            .iter()
            .map(|p| {
                let k = col(p)?;
                let vals: Vec<&str> = table.rows.iter().map(|r| r[k].as_str()).collect();
                Ok(crate::fairness::protected_attribute(p, &vals, &bands).0)
            })
            .collect::<AppResult<Vec<_>>>()?;
        let id = EventId::new().to_string();
        let now = self.clock().now();
        let mut rows = Vec::new();
        for s in signals {
            let k = col(s)?;
            let cells: Vec<&str> = table.rows.iter().map(|r| r[k].trim()).collect();
            let numeric = cells
                .iter()
                .filter(|c| !c.is_empty())
                .all(|c| c.parse::<f64>().is_ok_and(f64::is_finite));
            let values: Vec<f64> = if numeric {
                cells
                    .iter()
                    .map(|c| c.parse().unwrap_or(f64::NAN))
                    .collect()
            } else {
                let mut codes: HashMap<&str, f64> = HashMap::new();
                cells
                    .iter()
                    .map(|c| {
                        if c.is_empty() {
                            return f64::NAN;
                        }
                        let n = codes.len() as f64;
                        *codes.entry(c).or_insert(n)
                    })
                    .collect()
            };
            for a in &attrs {
                let p = candor_fairness::proxy::proxy_strength(s, &values, !numeric, a);
                rows.push(ProxyRow {
                    signal: candor_policy::pricing::normalize_signal(s),
                    attribute: a.name.clone(),
                    cramers_v: p.cramers_v,
                    mutual_information: p.mutual_information,
                    auc: p.auc,
                    flagged: p.cramers_v > limit,
                    audit_id: id.clone(),
                    audited_at: now,
                });
            }
        }
        let mut flagged: Vec<String> = rows
            .iter()
            .filter(|r| r.flagged)
            .map(|r| r.signal.clone())
            .collect();
        flagged.sort();
        flagged.dedup();
        let doc = json!({
            "kind": "proxies",
            "id": id,
            "created_at": now.to_rfc3339(),
            "source": source,
            "rows": table.rows.len(),
            "max_cramers_v": limit,
            "signals": rows,
            "flagged_products": [],
            "flagged_signals": flagged,
            "summary": [if flagged.is_empty() {
                format!("No signal reveals a protected attribute beyond Cramér's V {limit}.")
            } else {
                format!("Flagged as proxies (Cramér's V above {limit}): {}. Price checks that use them are refused.", flagged.join(", "))
            }],
        });
        let audit_row = PriceAuditRow {
            id: id.clone(),
            kind: "proxies".into(),
            attribute: protected.join(", "),
            period_start: None,
            period_end: None,
            flagged_products: 0,
            report: doc.clone(),
            actor: actor.to_string(),
            created_at: now,
        };
        self.store()
            .record_proxies(
                tenant,
                &rows,
                &audit_row,
                AuditDraft {
                    tenant: Some(tenant),
                    actor: actor.to_string(),
                    action: "pricing.proxies_audited".into(),
                    target: Some(format!("price_audit:{id}")),
                    details: json!({ "signals": signals.len(), "flagged": flagged }),
                },
            )
            .await?;
        self.forget_flagged(tenant);
        Ok(RecordedPriceAudit {
            id,
            kind: "proxies".into(),
            document: doc,
            flagged_products: flagged,
            alerts: 0,
        })
    }

    /// Imports a file of order lines as price history (cancellation rows, and lines without
    /// a positive price or quantity, left out and counted). Replaying the file changes
    /// nothing. `progress` is told the rows done.
    pub async fn import_price_file(
        &self,
        tenant: TenantId,
        actor: &str,
        table: &RawTable,
        cols: &PriceColumns,
        currency: Currency,
        progress: &(dyn Fn(usize) + Sync),
    ) -> AppResult<Value> {
        let tk = self.tenant_key(tenant).await?;
        let Positions {
            product: pc,
            price: prc,
            time: tc,
            group: gc,
            quantity: qc,
            invoice: ic,
            ..
        } = cols.positions(table)?;
        let (mut skipped, mut inserted) = (0u64, 0u64);
        let mut rows = Vec::new();
        for (r, row) in table.rows.iter().enumerate() {
            if ic.is_some_and(|k| row[k].trim().starts_with('C')) {
                skipped += 1;
                continue;
            }
            let price = currency
                .parse_rounded(row[prc].trim())
                .ok()
                .filter(|p| *p > 0);
            let quantity = match qc {
                Some(k) => row[k].trim().parse::<f64>().ok().filter(|q| *q > 0.0),
                None => Some(1.0),
            };
            let product = row[pc].trim();
            let (Some(price), Some(quantity)) = (price, quantity) else {
                skipped += 1;
                continue;
            };
            if product.is_empty() {
                skipped += 1;
                continue;
            }
            let at = parse_time(&row[tc]).ok_or_else(|| {
                AppError::bad_request(
                    "time_invalid",
                    format!("row {}: {:?} is not a time", r + 2, row[tc]),
                )
            })?;
            let order_ref = ic.map(|k| tk.reference_hash("order", row[k].trim()).to_vec());
            let id = match &order_ref {
                Some(o) => format!("o:{}:{}", hex::encode(&o[..12]), r),
                None => format!(
                    "f:{}:{r}",
                    hex::encode(&tk.reference_hash("file", product)[..6])
                ),
            };
            rows.push(candor_store::PriceRow {
                id,
                kind: "order".into(),
                product: product.to_string(),
                currency: currency.code().to_string(),
                price,
                at,
                quantity: Some(quantity),
                country: Some(row[gc].trim().to_string()).filter(|c| !c.is_empty()),
                segment: None,
                order_ref,
                cancelled_at: None,
            });
            if rows.len() == 20_000 {
                inserted += self
                    .store()
                    .insert_prices(tenant, &rows, &[], vec![])
                    .await?;
                rows.clear();
                progress(r + 1);
            }
        }
        let n = rows.len();
        inserted += self
            .store()
            .insert_prices(
                tenant,
                &rows,
                &[],
                vec![AuditDraft {
                    tenant: Some(tenant),
                    actor: actor.to_string(),
                    action: "prices.imported".into(),
                    target: None,
                    details: json!({ "rows": table.rows.len(), "inserted": inserted + n as u64, "skipped": skipped }),
                }],
            )
            .await?;
        progress(table.rows.len());
        Ok(
            json!({ "rows": table.rows.len(), "inserted": inserted, "skipped": skipped, "currency": currency.code() }),
        )
    }

    /// Recorded price audits (newest first), one audit's document, and the alerts.
    pub async fn price_audits(&self, tenant: TenantId) -> AppResult<Vec<PriceAuditRow>> {
        Ok(self.store().price_audits(tenant, 200).await?)
    }

    pub async fn price_audit(&self, tenant: TenantId, id: &str) -> AppResult<PriceAuditRow> {
        self.store()
            .price_audit(tenant, id)
            .await?
            .ok_or_else(|| AppError::not_found("price audit"))
    }

    pub async fn price_alerts(&self, tenant: TenantId) -> AppResult<Vec<PriceAlertRow>> {
        Ok(self.store().price_alerts(tenant, 1000).await?)
    }
}
