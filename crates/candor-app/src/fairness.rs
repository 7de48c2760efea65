//! Fairness audits as use cases: audit a model on labelled data (the validation audit that
//! gates its lifecycle), record an admin's override of a failed audit, and monitor live
//! decisions whose outcomes are now known, raising alerts when a gate is breached.
//!
//! Audit documents hold group metrics, counts and curves; never a person's values.

use candor_fairness::report::{AuditInput, AuditReport, Feature, audit, summary};
use candor_fairness::scores::reweighing_weights;
use candor_fairness::{Attribute, MISSING};
use candor_ml::lead::{Estimator, ScoringModel};
use candor_ml::table::RawTable;
use candor_store::{AuditDraft, ModelAuditRow, NewAlert, NewModelAudit, Store, StoreError};
use candor_types::{TenantId, Timestamp};
use serde::Serialize;
use serde_json::{Value, json};

use crate::{App, AppError, AppResult, ErrorKind};

/// Bootstrap resamples for the intervals of an audit.
pub const DEFAULT_RESAMPLES: usize = 1000;
/// The most decisions one monitoring run reads.
const MAX_MONITORED: usize = 1_000_000;
/// What the report says about per-group thresholds.
pub const GROUP_THRESHOLD_WARNING: &str = "Per-group thresholds equalise selection rates, but \
applying them needs the protected attribute at scoring time. Candor's scoring never reads \
protected attributes (they are for audits only), so these thresholds are shown to measure what \
parity would cost, not applied; using them is a legal decision for your compliance officer.";

/// A validation audit of a model on labelled data.
#[derive(Clone, Debug)]
pub struct AuditRequest {
    pub version: i64,
    pub target: String,
    /// The target value that counts as the outcome, when it is not yes/no-like.
    pub positive: Option<String>,
    /// Protected columns of the data (numeric ones are banded as the policy says).
    pub protected: Vec<String>,
    /// The score at which a row counts as selected.
    pub threshold: f64,
    pub resamples: usize,
    pub seed: u64,
    /// Where the data came from (file name), for the record.
    pub source: String,
}

/// A recorded audit: its id, verdict, the model's status afterwards and the whole document.
#[derive(Clone, Debug, Serialize)]
pub struct RecordedAudit {
    pub id: i64,
    pub version: i64,
    pub passed: bool,
    pub status: String,
    pub document: Value,
}

/// The model's fairness record for its card and API view.
#[derive(Clone, Debug, Default, Serialize)]
pub struct FairnessRecord {
    /// The latest validation audit (the one that gates the lifecycle).
    pub validation: Option<ModelAuditRow>,
    /// Recent monitoring audits, newest first, without their full reports.
    pub monitoring: Vec<MonitoringSummary>,
}

#[derive(Clone, Debug, Serialize)]
pub struct MonitoringSummary {
    pub id: i64,
    pub passed: bool,
    pub period_start: Option<Timestamp>,
    pub period_end: Option<Timestamp>,
    pub rows: u64,
    pub failed_gates: Vec<String>,
}

impl MonitoringSummary {
    /// The summary of a recorded monitoring audit: its period, rows and failed gates.
    pub fn of(a: &ModelAuditRow) -> Self {
        MonitoringSummary {
            id: a.id,
            passed: a.passed,
            period_start: a.period_start,
            period_end: a.period_end,
            rows: a.report["report"]["rows"].as_u64().unwrap_or(0),
            failed_gates: a.report["report"]["verdicts"]
                .as_array()
                .map(|v| {
                    v.iter()
                        .filter(|x| x["passed"] == false)
                        .map(|x| {
                            format!(
                                "{} ({})",
                                x["gate"].as_str().unwrap_or(""),
                                x["subject"].as_str().unwrap_or("")
                            )
                        })
                        .collect()
                })
                .unwrap_or_default(),
        }
    }
}

/// Encodes one protected column: numbers (every present value numeric, more than 10 distinct)
/// are cut into the policy's bands (`<30`, `30–44`, …); anything else is a category. Empty
/// values are the missing group.
pub fn protected_attribute(name: &str, values: &[&str], bands: &[f64]) -> (Attribute, bool) {
    let present: Vec<&str> = values
        .iter()
        .map(|v| v.trim())
        .filter(|v| !v.is_empty())
        .collect();
    let numeric = !present.is_empty()
        && present
            .iter()
            .all(|v| v.parse::<f64>().is_ok_and(f64::is_finite))
        && {
            let mut d: Vec<&str> = present.clone();
            d.sort_unstable();
            d.dedup();
            d.len() > 10
        };
    if !numeric || bands.is_empty() {
        return (
            Attribute::from_values(name, values.iter().map(|v| Some(*v))),
            false,
        );
    }
    let labels = band_labels(bands);
    let banded: Vec<Option<u32>> = values
        .iter()
        .map(|v| {
            let x: f64 = v.trim().parse().ok()?;
            Some(bands.partition_point(|&b| b <= x) as u32)
        })
        .collect();
    // Labels in band order, so reports list bands from youngest to oldest.
    let mut labels = labels;
    let missing = labels.len() as u32;
    let codes: Vec<u32> = banded
        .iter()
        .map(|b| match b {
            Some(b) => *b,
            None => missing,
        })
        .collect();
    if codes.contains(&missing) {
        labels.push(MISSING.to_string());
    }
    let attr = Attribute {
        name: name.to_string(),
        codes,
        labels,
    };
    (attr, true)
}

fn band_labels(bands: &[f64]) -> Vec<String> {
    let n = |x: f64| format!("{x}");
    let mut out = vec![format!("<{}", n(bands[0]))];
    for w in bands.windows(2) {
        out.push(format!("{}–{}", n(w[0]), n(w[1] - 1.0)));
    }
    out.push(format!("{}+", n(bands[bands.len() - 1])));
    out
}

/// Calibrated probabilities of a model for every row of an encoded matrix.
pub fn probabilities(model: &ScoringModel, x: &[f64]) -> Vec<f64> {
    let nf = model.n_features();
    let raw: Vec<f64> = match &model.estimator {
        Estimator::Gbdt { ensemble } => ensemble.predict_raw_batch(x),
        Estimator::Logistic { model: m } => x.chunks(nf).map(|r| m.predict_raw(r)).collect(),
    };
    raw.into_iter().map(|r| model.probability(r)).collect()
}

/// What one audit of a table needs besides the model.
pub struct TableAudit<'a> {
    pub target: &'a str,
    pub positive: Option<&'a str>,
    pub protected: &'a [String],
    pub threshold: f64,
    pub resamples: usize,
    pub seed: u64,
    /// Only these rows (e.g. a holdout); all rows for `None`.
    pub rows: Option<&'a [usize]>,
}

/// Audits `model` on `table`: scores every row, groups by the protected columns (and their
/// pairwise intersections), tests each model feature as a proxy, applies the policy's gates.
pub fn audit_table(
    app_policy: &candor_policy::FairnessPolicy,
    model: &ScoringModel,
    table: &RawTable,
    req: &TableAudit,
) -> AppResult<(AuditReport, Value)> {
    if req.protected.is_empty() {
        return Err(AppError::bad_request(
            "protected_required",
            "name at least one protected column to audit (e.g. --protected age,marital)",
        ));
    }
    if !(req.threshold > 0.0 && req.threshold <= 1.0) {
        return Err(AppError::bad_request(
            "threshold_invalid",
            "the threshold is a score between 0 (exclusive) and 1",
        ));
    }
    if table.rows.is_empty() {
        return Err(AppError::bad_request("empty_file", "the file has no rows"));
    }
    let cols: Vec<usize> = req
        .protected
        .iter()
        .map(|c| {
            table.column(c).ok_or_else(|| {
                AppError::bad_request(
                    "column_invalid",
                    format!("protected column {c:?} is not in the file"),
                )
            })
        })
        .collect::<AppResult<_>>()?;
    let y_all = candor_ml::table::parse_target(table, req.target, req.positive)
        .map_err(crate::scoring::ml_error)?;
    let x_all = model
        .schema
        .encode(table)
        .map_err(crate::scoring::ml_error)?;
    let nf = model.n_features();
    let all: Vec<usize>;
    let rows: &[usize] = match req.rows {
        Some(r) => r,
        None => {
            all = (0..table.rows.len()).collect();
            &all
        }
    };
    let x: Vec<f64> = if req.rows.is_some() {
        rows.iter()
            .flat_map(|&i| x_all[i * nf..(i + 1) * nf].iter().copied())
            .collect()
    } else {
        x_all
    };
    let scores = probabilities(model, &x);
    let y_true: Vec<u8> = rows.iter().map(|&i| u8::from(y_all[i] > 0.5)).collect();
    let y_pred: Vec<u8> = scores
        .iter()
        .map(|&s| u8::from(s >= req.threshold))
        .collect();
    let mut attrs = Vec::new();
    let mut meta = Vec::new();
    for (name, &c) in req.protected.iter().zip(&cols) {
        let values: Vec<&str> = rows.iter().map(|&i| table.rows[i][c].as_str()).collect();
        let (attr, banded) = protected_attribute(name, &values, &app_policy.age_bands);
        meta.push(json!({ "column": name, "banded": banded, "groups": attr.labels }));
        attrs.push(attr);
    }
    let columns: Vec<Vec<f64>> = (0..nf)
        .map(|j| x.chunks(nf).map(|r| r[j]).collect())
        .collect();
    let features: Vec<Feature> = model
        .schema
        .features
        .iter()
        .zip(&columns)
        .map(|(f, v)| Feature {
            name: &f.name,
            values: v,
            categorical: f.categorical,
        })
        .collect();
    let report = audit(&AuditInput {
        y_true: &y_true,
        y_pred: &y_pred,
        scores: Some(&scores),
        threshold: req.threshold,
        attributes: &attrs,
        features: &features,
        gates: app_policy,
        resamples: req.resamples,
        level: 0.95,
        seed: req.seed,
    });
    Ok((report, Value::Array(meta)))
}

/// The document stored for an audit and shown by the report: every number and the words.
fn document(kind: &str, version: i64, report: &AuditReport, extra: Value) -> Value {
    let mut doc = json!({
        "kind": kind,
        "model_version": version,
        "passed": report.passed,
        "summary": summary(report),
        "report": report,
        "group_thresholds_warning": GROUP_THRESHOLD_WARNING,
        "resamples": report.resamples,
    });
    if let (Some(d), Some(e)) = (doc.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            d.insert(k.clone(), v.clone());
        }
    }
    doc
}

/// Kamiran & Calders' reweighing weights for a training table: one weight per row from the
/// intersection of the protected columns and the target.
pub fn reweigh_table(
    table: &RawTable,
    target: &str,
    positive: Option<&str>,
    protected: &[String],
    bands: &[f64],
) -> AppResult<(Vec<f64>, Value)> {
    if protected.is_empty() {
        return Err(AppError::bad_request(
            "protected_required",
            "reweighing needs the protected columns (--protected)",
        ));
    }
    let y = candor_ml::table::parse_target(table, target, positive)
        .map_err(crate::scoring::ml_error)?;
    let y: Vec<u8> = y.iter().map(|&v| u8::from(v > 0.5)).collect();
    let mut combined: Option<Attribute> = None;
    for name in protected {
        let c = table.column(name).ok_or_else(|| {
            AppError::bad_request(
                "column_invalid",
                format!("protected column {name:?} is not in the file"),
            )
        })?;
        let values: Vec<&str> = table.rows.iter().map(|r| r[c].as_str()).collect();
        let (a, _) = protected_attribute(name, &values, bands);
        combined = Some(match combined {
            None => a,
            Some(prev) => Attribute::intersect(&prev, &a),
        });
    }
    let Some(attr) = combined else {
        return Err(AppError::bad_request(
            "protected_required",
            "reweighing needs the protected columns (--protected)",
        ));
    };
    let w = reweighing_weights(&attr.codes, attr.labels.len(), &y);
    // The weight of each (group, label) cell, for the card.
    let mut cells = std::collections::BTreeMap::new();
    for ((&c, &t), &wt) in attr.codes.iter().zip(&y).zip(&w) {
        cells
            .entry(format!(
                "{} / {}",
                attr.labels[c as usize],
                if t == 1 { "positive" } else { "negative" }
            ))
            .or_insert(wt);
    }
    Ok((
        w,
        json!({ "method": "reweighing (Kamiran & Calders 2012)", "groups": attr.name, "weights": cells }),
    ))
}

/// The headline of an audit for a before/after comparison.
pub fn headline(report: &AuditReport) -> Value {
    json!({
        "passed": report.passed,
        "attributes": report.attributes.iter().map(|a| json!({
            "attribute": a.audit.attribute,
            "selection_rate_ratio": a.audit.demographic_parity.as_ref().map(|d| d.ratio),
            "demographic_parity_difference": a.audit.demographic_parity.as_ref().map(|d| d.difference),
            "equalized_odds_difference": a.audit.equalized_odds_difference,
        })).collect::<Vec<_>>(),
    })
}

/// Live monitoring: decisions of a model in a period whose outcome window has closed.
#[derive(Clone, Debug)]
pub struct MonitorRequest {
    /// The model whose decisions to audit; the active one for `None`.
    pub version: Option<i64>,
    pub from: Timestamp,
    pub to: Timestamp,
    /// The event that counts as the outcome (e.g. `Order Completed`).
    pub outcome_event: String,
    /// How long after a decision the outcome may happen.
    pub within_days: u32,
    pub threshold: f64,
    pub resamples: usize,
}

impl App {
    /// Audits a model on labelled data and records the audit. Passing moves a draft model to
    /// `audited`; failing keeps it from approval and activation until an admin overrides.
    pub async fn audit_model(
        &self,
        tenant: TenantId,
        actor: &str,
        table: &RawTable,
        req: &AuditRequest,
    ) -> AppResult<RecordedAudit> {
        let (_, art) = self.lead_artifact(tenant, req.version).await?;
        let gates = self.policy().fairness().clone();
        let (report, protected) = tokio::task::block_in_place(|| {
            audit_table(
                &gates,
                &art.model,
                table,
                &TableAudit {
                    target: &req.target,
                    positive: req.positive.as_deref(),
                    protected: &req.protected,
                    threshold: req.threshold,
                    resamples: req.resamples,
                    seed: req.seed,
                    rows: None,
                },
            )
        })?;
        let doc = document(
            "validation",
            req.version,
            &report,
            json!({
                "source": req.source,
                "target": req.target,
                "positive": req.positive,
                "protected": protected,
                "gates": gates,
            }),
        );
        self.record_audit(tenant, actor, req.version, "validation", &report, doc, None)
            .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn record_audit(
        &self,
        tenant: TenantId,
        actor: &str,
        version: i64,
        kind: &str,
        report: &AuditReport,
        doc: Value,
        period: Option<(Timestamp, Timestamp)>,
    ) -> AppResult<RecordedAudit> {
        let failed: Vec<&candor_fairness::gates::Verdict> =
            report.verdicts.iter().filter(|v| !v.passed).collect();
        let alerts: Vec<NewAlert> = if kind == "monitoring" {
            failed
                .iter()
                .map(|v| NewAlert {
                    gate: v.gate.clone(),
                    subject: v.subject.clone(),
                    value: v.value.is_finite().then_some(v.value),
                    limit: v.limit,
                })
                .collect()
        } else {
            Vec::new()
        };
        let id = self
            .store()
            .insert_model_audit(
                tenant,
                &NewModelAudit {
                    version,
                    kind: kind.into(),
                    passed: report.passed,
                    report: doc.clone(),
                    period,
                },
                &alerts,
                actor,
                self.clock().now(),
                AuditDraft {
                    tenant: Some(tenant),
                    actor: actor.to_string(),
                    action: format!("model.fairness_{kind}"),
                    target: Some(format!("model:{version}")),
                    details: json!({
                        "passed": report.passed,
                        "rows": report.rows,
                        "failed_gates": failed.len(),
                        "alerts": alerts.len(),
                    }),
                },
            )
            .await
            .map_err(|e| match e {
                StoreError::NotFound => AppError::not_found("model"),
                other => other.into(),
            })?;
        for a in &alerts {
            tracing::warn!(
                tenant = %tenant,
                model_version = version,
                audit = id,
                gate = %a.gate,
                subject = %a.subject,
                value = ?a.value,
                limit = a.limit,
                "fairness alert: a gate is breached on live decisions"
            );
        }
        let status = self
            .store()
            .model(tenant, version)
            .await?
            .map(|m| m.status)
            .unwrap_or_default();
        Ok(RecordedAudit {
            id,
            version,
            passed: report.passed,
            status,
            document: doc,
        })
    }

    /// Records an admin's override of the model's failed latest validation audit.
    pub async fn override_fairness(
        &self,
        tenant: TenantId,
        actor: &str,
        version: i64,
        reason: &str,
    ) -> AppResult<crate::ModelView> {
        let reason = crate::scoring::check_reason(reason)?;
        self.store()
            .override_model_audit(
                tenant,
                version,
                actor,
                reason,
                self.clock().now(),
                AuditDraft {
                    tenant: Some(tenant),
                    actor: actor.to_string(),
                    action: "model.fairness_override".into(),
                    target: Some(format!("model:{version}")),
                    details: json!({ "reason": reason }),
                },
            )
            .await
            .map_err(|e| match e {
                StoreError::NotFound => AppError::not_found("model"),
                StoreError::Conflict(m) => {
                    AppError::new(ErrorKind::Conflict, "nothing_to_override", m)
                }
                other => other.into(),
            })?;
        self.model_view(tenant, version).await
    }

    /// A model's audits, newest first (full documents).
    pub async fn model_audits(
        &self,
        tenant: TenantId,
        version: i64,
        kind: Option<&str>,
        limit: u32,
    ) -> AppResult<Vec<ModelAuditRow>> {
        if let Some(k) = kind
            && k != "validation"
            && k != "monitoring"
        {
            return Err(AppError::bad_request(
                "kind_invalid",
                "the audit kind is `validation` or `monitoring`",
            ));
        }
        self.store()
            .model(tenant, version)
            .await?
            .ok_or_else(|| AppError::not_found("model"))?;
        Ok(self
            .store()
            .model_audits(tenant, version, kind, limit.clamp(1, 500))
            .await?)
    }

    /// The fairness record shown on a model's card.
    pub async fn fairness_record(
        &self,
        tenant: TenantId,
        version: i64,
    ) -> AppResult<FairnessRecord> {
        let validation = self
            .store()
            .model_audits(tenant, version, Some("validation"), 1)
            .await?
            .into_iter()
            .next();
        let monitoring = self
            .store()
            .model_audits(tenant, version, Some("monitoring"), 12)
            .await?
            .into_iter()
            .map(|a| MonitoringSummary::of(&a))
            .collect();
        Ok(FairnessRecord {
            validation,
            monitoring,
        })
    }

    /// Alerts of the tenant, newest first.
    pub async fn fairness_alerts(
        &self,
        tenant: TenantId,
        before: Option<i64>,
        limit: u32,
    ) -> AppResult<Vec<candor_store::AlertRow>> {
        Ok(self
            .store()
            .fairness_alerts(tenant, before, limit.clamp(1, 500))
            .await?)
    }

    /// Audits a model's live decisions made in `[from, to)` whose outcome window has closed:
    /// the outcome is whether `outcome_event` happened within `within_days` of the decision,
    /// the groups come from the protected traits the `fairness_audit` purpose may read.
    /// Decisions of erased subjects, of subjects the purpose may not read, and those whose
    /// window is still open are counted and left out. Breached gates become alerts.
    pub async fn monitor_fairness(
        &self,
        tenant: TenantId,
        actor: &str,
        req: &MonitorRequest,
    ) -> AppResult<RecordedAudit> {
        if req.from >= req.to {
            return Err(AppError::bad_request(
                "period_invalid",
                "the period must start before it ends",
            ));
        }
        if !(req.threshold > 0.0 && req.threshold <= 1.0) {
            return Err(AppError::bad_request(
                "threshold_invalid",
                "the threshold is a score between 0 (exclusive) and 1",
            ));
        }
        let version = match req.version {
            Some(v) => {
                self.store()
                    .model(tenant, v)
                    .await?
                    .ok_or_else(|| AppError::not_found("model"))?;
                v
            }
            None => {
                self.store()
                    .active_model(tenant, crate::LEAD_MODEL)
                    .await?
                    .ok_or_else(|| {
                        AppError::new(
                            ErrorKind::Conflict,
                            "no_active_model",
                            "no lead-scoring model is active; name a version to monitor",
                        )
                    })?
                    .version
            }
        };
        let now = self.clock().now();
        let window = i64::from(req.within_days) * Timestamp::DAY_MS;
        let protected: Vec<String> = self
            .policy()
            .protected_attributes()
            .map(str::to_string)
            .collect();
        let (mut scores, mut y_true) = (Vec::new(), Vec::new());
        let mut values: Vec<Vec<Option<String>>> = vec![Vec::new(); protected.len()];
        let mut pending = 0u64;
        let mut opened = 0u64;
        let mut reader = self
            .audited_decisions(tenant, crate::LEAD_MODEL, version, req.from, req.to)
            .await?;
        'pages: while let Some(page) = reader
            .next_page(|d| {
                let open = d.created_at.0 + window > now.0;
                pending += u64::from(open);
                open
            })
            .await?
        {
            for OpenedDecision {
                row: d,
                grant,
                key,
                outcome,
            } in page
            {
                let Some(p) = outcome["probability"].as_f64() else {
                    continue;
                };
                let mut traits: Vec<Option<String>> = vec![None; protected.len()];
                for f in self.store().fields_for(&grant).await? {
                    if let Some(k) = protected.iter().position(|p| *p == f.path) {
                        let v: Value = serde_json::from_slice(&key.open(&f.path, &f.sealed)?)
                            .map_err(|e| AppError::internal("fairness", &e))?;
                        opened += 1;
                        traits[k] = match v {
                            Value::String(s) => Some(s),
                            Value::Number(n) => Some(n.to_string()),
                            Value::Bool(b) => Some(b.to_string()),
                            _ => None,
                        };
                    }
                }
                let events = self.store().events_for(&grant, 20_000).await?;
                let happened = events.iter().any(|e| {
                    e.name.as_deref() == Some(req.outcome_event.as_str())
                        && e.occurred_at >= d.created_at
                        && e.occurred_at.0 <= d.created_at.0 + window
                });
                scores.push(p);
                y_true.push(u8::from(happened));
                for (k, t) in traits.into_iter().enumerate() {
                    values[k].push(t);
                }
                if scores.len() >= MAX_MONITORED {
                    break 'pages;
                }
            }
        }
        if scores.is_empty() {
            return Err(AppError::new(
                ErrorKind::Conflict,
                "no_known_outcomes",
                format!(
                    "no decision of model {version} in the period has a known outcome yet \
                     ({pending} still inside their {}-day window)",
                    req.within_days
                ),
            ));
        }
        let gates = self.policy().fairness().clone();
        let mut attrs = Vec::new();
        let mut meta = Vec::new();
        for (path, vals) in protected.iter().zip(&values) {
            if vals.iter().all(Option::is_none) {
                continue;
            }
            let name = path.rsplit('.').next().unwrap_or(path);
            let strs: Vec<&str> = vals.iter().map(|v| v.as_deref().unwrap_or("")).collect();
            let (attr, banded) = protected_attribute(name, &strs, &gates.age_bands);
            meta.push(json!({ "column": path, "banded": banded, "groups": attr.labels }));
            attrs.push(attr);
        }
        if attrs.is_empty() {
            return Err(AppError::new(
                ErrorKind::Conflict,
                "no_protected_data",
                "none of the decided subjects has a protected trait the fairness_audit purpose may read",
            ));
        }
        let y_pred: Vec<u8> = scores
            .iter()
            .map(|&s| u8::from(s >= req.threshold))
            .collect();
        let report = audit(&AuditInput {
            y_true: &y_true,
            y_pred: &y_pred,
            scores: Some(&scores),
            threshold: req.threshold,
            attributes: &attrs,
            features: &[],
            gates: &gates,
            resamples: req.resamples,
            level: 0.95,
            seed: req.from.0 as u64,
        });
        if opened > 0 {
            self.store()
                .append_audit(vec![AuditDraft {
                    tenant: Some(tenant),
                    actor: actor.to_string(),
                    action: "pii.read".into(),
                    target: Some(format!("model:{version}")),
                    details: json!({
                        "purpose": "fairness_audit",
                        "what": "protected traits of decided subjects",
                        "subjects": scores.len(),
                        "sealed_values": opened,
                    }),
                }])
                .await?;
        }
        let doc = document(
            "monitoring",
            version,
            &report,
            json!({
                "period": { "from": req.from.to_rfc3339(), "to": req.to.to_rfc3339() },
                "outcome": { "event": req.outcome_event, "within_days": req.within_days },
                "protected": meta,
                "gates": gates,
                "left_out": {
                    "outcome_window_open": pending,
                    "not_readable_for_fairness_audit": reader.unreadable,
                    "erased": reader.erased,
                    "other_model_versions": reader.other_models,
                },
            }),
        );
        self.record_audit(
            tenant,
            actor,
            version,
            "monitoring",
            &report,
            doc,
            Some((req.from, req.to)),
        )
        .await
    }
}

/// A decision of an audited period, opened with its person's key under the `fairness_audit`
/// grant.
pub(crate) struct OpenedDecision {
    pub row: candor_store::DecisionRow,
    pub grant: candor_policy::Grant,
    pub key: candor_crypto::DataKey,
    pub outcome: Value,
}

/// Reads the decisions of one model version made in a period, a page at a time, each opened
/// for the `fairness_audit` purpose. What it cannot read is counted, not returned: decisions
/// of other versions, of erased people and of people the purpose may not read (objection).
pub(crate) struct AuditedDecisions<'a> {
    app: &'a App,
    tenant: TenantId,
    kind: &'a str,
    version: i64,
    from: Timestamp,
    to: Timestamp,
    purpose: candor_types::Purpose,
    tk: candor_crypto::TenantKey,
    cursor: Option<(Timestamp, String)>,
    pub other_models: u64,
    pub erased: u64,
    pub unreadable: u64,
}

impl App {
    pub(crate) async fn audited_decisions<'a>(
        &'a self,
        tenant: TenantId,
        kind: &'a str,
        version: i64,
        from: Timestamp,
        to: Timestamp,
    ) -> AppResult<AuditedDecisions<'a>> {
        Ok(AuditedDecisions {
            app: self,
            tenant,
            kind,
            version,
            from,
            to,
            purpose: self.purpose("fairness_audit")?,
            tk: self.tenant_key(tenant).await?,
            cursor: None,
            other_models: 0,
            erased: 0,
            unreadable: 0,
        })
    }
}

impl AuditedDecisions<'_> {
    /// The next page of opened decisions (possibly empty), or `None` at the end. `skip` leaves
    /// a decision out before its person is read.
    pub(crate) async fn next_page(
        &mut self,
        mut skip: impl FnMut(&candor_store::DecisionRow) -> bool,
    ) -> AppResult<Option<Vec<OpenedDecision>>> {
        let app = self.app;
        let page = app
            .store()
            .decisions_in(
                self.tenant,
                self.kind,
                self.from,
                self.to,
                self.cursor.clone(),
                1000,
            )
            .await?;
        let Some(last) = page.last() else {
            return Ok(None);
        };
        self.cursor = Some((last.created_at, last.id.clone()));
        let mut out = Vec::with_capacity(page.len());
        for d in page {
            if d.model_version != Some(self.version) {
                self.other_models += 1;
                continue;
            }
            if skip(&d) {
                continue;
            }
            let subject = app.store().subject(self.tenant, d.subject).await?;
            let Some((id, wrapped)) = subject.and_then(|s| Some((s.id, s.wrapped_key?))) else {
                self.erased += 1;
                continue;
            };
            let Ok(grant) = app.grant(self.tenant, id, &self.purpose).await else {
                self.unreadable += 1;
                continue;
            };
            let key = self.tk.unwrap_data_key(id, &wrapped)?;
            let outcome: Value =
                serde_json::from_slice(&key.open(&format!("decision:{}", d.id), &d.sealed)?)
                    .map_err(|e| AppError::internal("decision", &e))?;
            out.push(OpenedDecision {
                row: d,
                grant,
                key,
                outcome,
            });
        }
        Ok(Some(out))
    }
}
