//! Lead scoring: training into the model registry, the model lifecycle, scoring subjects
//! through the `profiling` purpose, and decisions stored with their explanations.
//!
//! Rules:
//! - a protected attribute (policy `protected_attributes`, or a `[fields]` rule to a protected
//!   category) is never a feature: naming one as a feature, or leaving it in the file without
//!   `--protected`/`--exclude`, is an error before anything is trained;
//! - rows of subjects without a `profiling` grant are dropped from training (when the file names
//!   its subject column), and such subjects are not scored;
//! - a subject is scored only by an `active` model (or an explicitly named `approved` one);
//! - every score is stored as a decision: purpose, model version, digest of the inputs, and the
//!   outcome with its explanation sealed with the subject's data key.

use std::collections::HashMap;

use candor_crypto::sha256_hex;
use candor_ml::gbdt::Round;
use candor_ml::lead::{Reason, ScoringModel, TrainOptions, TrainResult, top_reasons};
use candor_ml::table::{RawTable, Selection};
use candor_store::{AuditDraft, DecisionRow, ModelRow, ModelTransition, NewModel, Store};
use candor_types::{SubjectId, TenantId, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::{App, AppError, AppResult, ErrorKind};

/// The registry name of lead-scoring models.
pub const LEAD_MODEL: &str = "lead_score";
/// Events read per subject to compute features.
const EVENTS_PER_SUBJECT: u32 = 20_000;
/// Most subjects per scoring request.
pub const MAX_SCORE_BATCH: usize = 1000;

/// What `candor train` / the API asks for.
#[derive(Clone, Debug)]
pub struct TrainRequest {
    pub target: String,
    pub exclude: Vec<String>,
    pub protected: Vec<String>,
    pub features: Option<Vec<String>>,
    /// Column holding the store's user id: rows of subjects without a profiling grant are
    /// dropped. Never a feature.
    pub subject_column: Option<String>,
    pub options: TrainOptions,
    /// Where the data came from (file name), for the model card.
    pub source: String,
    /// The target value that counts as the outcome, when it is not yes/no-like.
    pub positive: Option<String>,
    /// What the target means, e.g. "subscribed within the campaign".
    pub horizon: Option<String>,
    /// Mitigation: reweigh rows (Kamiran & Calders) over the protected columns so that the
    /// outcome is independent of the group in the training data. An unweighted model is
    /// trained too, and both are audited on the holdout for the card's before/after.
    pub reweigh: bool,
    /// The score at which the before/after audits count a lead as selected.
    pub audit_threshold: f64,
}

/// The stored artifact of a lead model.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LeadArtifact {
    pub model: ScoringModel,
    pub horizon: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct TrainedModel {
    pub version: i64,
    pub digest: String,
    pub result: TrainResult,
    pub dropped_without_consent: usize,
    /// Reweighing: the weights and the holdout audits before and after (`None` without it).
    pub mitigation: Option<Value>,
}

/// A model as the API shows it: the registry row, its card and its lifecycle.
#[derive(Clone, Debug, Serialize)]
pub struct ModelView {
    #[serde(flatten)]
    pub row: ModelRow,
    pub transitions: Vec<ModelTransition>,
    /// The latest validation audit (with its override, if any) and recent monitoring.
    pub fairness: crate::fairness::FairnessRecord,
}

/// One subject to score: the store's user id and optional lead attributes (CRM fields) for
/// model columns that are not computed from events.
#[derive(Clone, Debug, Deserialize)]
pub struct ScoreInput {
    #[serde(rename = "userId")]
    pub user_id: String,
    #[serde(default)]
    pub attributes: serde_json::Map<String, Value>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ReasonView {
    pub statement: String,
    pub feature: String,
    pub contribution: f64,
}

impl From<&Reason> for ReasonView {
    fn from(r: &Reason) -> Self {
        ReasonView {
            statement: r.statement.clone(),
            feature: r.column.clone(),
            contribution: r.contribution,
        }
    }
}

/// The outcome of scoring one subject.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ScoreResult {
    #[serde(rename = "userId")]
    pub user_id: String,
    /// `scored` or `not_scored`.
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub probability: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tier: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub horizon: Option<String>,
    #[serde(rename = "reasonsUp", default, skip_serializing_if = "Vec::is_empty")]
    pub reasons_up: Vec<ReasonView>,
    #[serde(rename = "reasonsDown", default, skip_serializing_if = "Vec::is_empty")]
    pub reasons_down: Vec<ReasonView>,
    #[serde(rename = "modelVersion", skip_serializing_if = "Option::is_none")]
    pub model_version: Option<i64>,
    #[serde(rename = "decisionId", skip_serializing_if = "Option::is_none")]
    pub decision_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl ScoreResult {
    fn not_scored(user_id: &str, reason: &str, message: String) -> Self {
        ScoreResult {
            user_id: user_id.to_string(),
            status: "not_scored".into(),
            probability: None,
            tier: None,
            horizon: None,
            reasons_up: vec![],
            reasons_down: vec![],
            model_version: None,
            decision_id: None,
            reason: Some(reason.to_string()),
            message: Some(message),
        }
    }
}

/// A stored decision, opened for the subject or staff.
#[derive(Clone, Debug, Serialize)]
pub struct DecisionView {
    pub id: String,
    pub purpose: String,
    pub kind: String,
    #[serde(rename = "modelVersion")]
    pub model_version: Option<i64>,
    #[serde(rename = "inputsDigest")]
    pub inputs_digest: String,
    #[serde(rename = "createdAt")]
    pub created_at: Timestamp,
    /// Outcome and explanation; `null` if the subject's key was destroyed.
    pub outcome: Option<Value>,
}

/// What a lead-scoring model is for, on every card.
const INTENDED_USE: &str = "Ranking leads and customers by how likely the outcome is, to decide whom \
marketing contacts first and with what message. Not for decisions with legal or similarly \
significant effects on people (credit, employment, housing, insurance, individual prices): those \
need a different model, a different legal basis and a human in the loop.";

/// The limits of a lead-scoring model, on every card.
fn limitations(data: &str) -> Vec<String> {
    vec![
        format!("Trained on {data}; it can be less accurate for people unlike them."),
        "Protected attributes are never features, but other features can reveal them: see the \
         proxies in the fairness audit."
            .into(),
        "Fairness is checked for the protected attributes audited, their pairs, and groups large \
         enough to measure; smaller groups are not judged."
            .into(),
        "Probabilities are calibrated on held-out rows and drift as behaviour changes: monitor \
         live decisions and retrain."
            .into(),
        "Reasons describe what moved the model's score, not what causes people to buy.".into(),
    ]
}

/// A lifecycle reason: required, at most 2000 bytes, trimmed.
pub(crate) fn check_reason(reason: &str) -> AppResult<&str> {
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(AppError::bad_request(
            "reason_required",
            "a reason is required and is kept in the audit log",
        ));
    }
    if reason.len() > 2000 {
        return Err(AppError::bad_request(
            "reason_too_long",
            "the reason must be at most 2000 bytes",
        ));
    }
    Ok(reason)
}

pub(crate) fn ml_error(e: candor_ml::MlError) -> AppError {
    AppError::bad_request(e.code(), e.to_string())
}

impl App {
    /// Columns that are protected attributes under the policy (by last path segment or path).
    fn protected_columns<'a>(&self, headers: &'a [String]) -> Vec<&'a String> {
        let protected: Vec<&str> = self.policy().protected_attributes().collect();
        headers
            .iter()
            .filter(|h| {
                protected
                    .iter()
                    .any(|p| *p == h.as_str() || p.rsplit('.').next() == Some(h.as_str()))
                    || self.policy().is_protected_path(&format!("traits.{h}"))
            })
            .collect()
    }

    /// Trains a lead model from a table and registers it as a draft. Nothing is registered if
    /// any check or the training fails.
    pub async fn train_lead_model(
        &self,
        tenant: TenantId,
        actor: &str,
        mut table: RawTable,
        req: TrainRequest,
        on_round: &mut (dyn FnMut(Round) + Send),
    ) -> AppResult<TrainedModel> {
        for col in self.protected_columns(&table.headers) {
            if req.features.as_ref().is_some_and(|f| f.contains(col)) {
                return Err(AppError::bad_request(
                    "protected_feature",
                    format!(
                        "{col:?} is a protected attribute under the policy and cannot be a model feature"
                    ),
                ));
            }
            if !req.protected.contains(col) && !req.exclude.contains(col) && req.target != *col {
                return Err(AppError::bad_request(
                    "protected_feature",
                    format!(
                        "{col:?} is a protected attribute under the policy; pass it with --protected \
                         (kept out of the model, available to fairness audits) or --exclude"
                    ),
                ));
            }
        }
        let mut exclude = req.exclude.clone();
        let mut dropped = 0usize;
        if let Some(col) = &req.subject_column {
            let idx = table.column(col).ok_or_else(|| {
                AppError::bad_request(
                    "column_invalid",
                    format!("subject column {col:?} is not in the file"),
                )
            })?;
            if !exclude.contains(col) {
                exclude.push(col.clone());
            }
            let purpose = self.purpose("profiling")?;
            let mut keep = Vec::with_capacity(table.rows.len());
            let mut cache: HashMap<String, bool> = HashMap::new();
            for row in std::mem::take(&mut table.rows) {
                let id = row[idx].clone();
                let ok = match cache.get(&id) {
                    Some(ok) => *ok,
                    None => {
                        let found = match id.parse::<SubjectId>() {
                            Ok(sid) => self
                                .store()
                                .subject(tenant, sid)
                                .await?
                                .ok_or_else(|| AppError::not_found("subject")),
                            Err(_) => self.resolve_subject(tenant, &id).await,
                        };
                        let ok = match found {
                            Ok(s) => {
                                s.wrapped_key.is_some()
                                    && self.grant(tenant, s.id, &purpose).await.is_ok()
                            }
                            Err(e) if e.kind == ErrorKind::NotFound => false,
                            Err(e) => return Err(e),
                        };
                        cache.insert(id, ok);
                        ok
                    }
                };
                if ok {
                    keep.push(row);
                } else {
                    dropped += 1;
                }
            }
            table.rows = keep;
            if table.rows.is_empty() {
                return Err(AppError::bad_request(
                    "no_consented_rows",
                    "no row belongs to a subject who allows profiling; nothing can be trained",
                ));
            }
        }
        let sel = Selection {
            target: &req.target,
            exclude: &exclude,
            protected: &req.protected,
            features: req.features.as_deref(),
            positive: req.positive.as_deref(),
        };
        let opts = req.options.clone();
        let mut mitigation = Value::Null;
        let mut result = if req.reweigh {
            let (weights, how) = crate::fairness::reweigh_table(
                &table,
                &req.target,
                req.positive.as_deref(),
                &req.protected,
                &self.policy().fairness().age_bands,
            )?;
            let gates = self.policy().fairness().clone();
            tokio::task::block_in_place(|| {
                let before =
                    candor_ml::lead::train_from_table(&table, &sel, None, &opts, &mut |_| {})
                        .map_err(ml_error)?;
                let after = candor_ml::lead::train_from_table(
                    &table,
                    &sel,
                    Some(&weights),
                    &opts,
                    on_round,
                )
                .map_err(ml_error)?;
                let k = opts.holdout_every;
                let rows: Vec<usize> = if k >= 2 {
                    (0..table.rows.len()).filter(|i| (i + 1) % k == 0).collect()
                } else {
                    (0..table.rows.len()).collect()
                };
                let audit = |m: &ScoringModel| {
                    crate::fairness::audit_table(
                        &gates,
                        m,
                        &table,
                        &crate::fairness::TableAudit {
                            target: &req.target,
                            positive: req.positive.as_deref(),
                            protected: &req.protected,
                            threshold: req.audit_threshold,
                            resamples: 0,
                            seed: 1,
                            rows: Some(&rows),
                        },
                    )
                    .map(|(r, _)| crate::fairness::headline(&r))
                };
                let mut b = audit(&before.model)?;
                let mut a = audit(&after.model)?;
                b["holdout_auc"] = json!(before.holdout.as_ref().map(|h| h.auc));
                a["holdout_auc"] = json!(after.holdout.as_ref().map(|h| h.auc));
                mitigation = how;
                mitigation["threshold"] = json!(req.audit_threshold);
                mitigation["before"] = b;
                mitigation["after"] = a;
                Ok::<_, AppError>(after)
            })?
        } else {
            tokio::task::block_in_place(|| {
                candor_ml::lead::train_from_table(&table, &sel, None, &opts, on_round)
            })
            .map_err(ml_error)?
        };
        crate::features::apply_descriptions(&mut result.model.schema);
        let horizon = req
            .horizon
            .clone()
            .unwrap_or_else(|| format!("outcome `{}` as defined in the training data", req.target));
        let artifact = LeadArtifact {
            model: result.model.clone(),
            horizon: horizon.clone(),
        };
        let bytes = serde_json::to_vec(&artifact).map_err(|e| AppError::internal("train", &e))?;
        let digest = sha256_hex(&bytes);
        let card = json!({
            "kind": LEAD_MODEL,
            "source": req.source,
            "target": req.target,
            "horizon": horizon,
            "data": result.data,
            "dropped_without_profiling_consent": dropped,
            "parameters": opts,
            "trees": result.trees,
            "holdout": result.holdout,
            "baseline_logistic_regression": result.baseline,
            "importance": result.importance,
            "features": result.model.schema.features,
            "mitigation": &mitigation,
            "intended_use": INTENDED_USE,
            "limitations": limitations(&format!("{} ({} rows)", req.source, result.data.rows)),
        });
        let version = self
            .store()
            .insert_model(
                tenant,
                &NewModel { name: LEAD_MODEL.into(), kind: "gbdt".into(), digest: digest.clone(), artifact: bytes, card },
                self.clock().now(),
                AuditDraft {
                    tenant: Some(tenant),
                    actor: actor.to_string(),
                    action: "model.registered".into(),
                    target: None,
                    details: json!({ "name": LEAD_MODEL, "digest": digest, "rows": result.data.rows }),
                },
            )
            .await?;
        Ok(TrainedModel {
            version,
            digest,
            result,
            dropped_without_consent: dropped,
            mitigation: (!mitigation.is_null()).then_some(mitigation),
        })
    }

    /// Registers a model trained elsewhere (LightGBM text or XGBoost JSON) as a draft lead
    /// model, scored and explained by the same engine. Its columns are the model's feature
    /// names; LightGBM's pandas categories become categorical columns.
    pub async fn import_lead_model(
        &self,
        tenant: TenantId,
        actor: &str,
        text: &str,
        format: &str,
        source: &str,
        horizon: Option<String>,
    ) -> AppResult<TrainedModel> {
        use candor_ml::table::{ColumnKind, ColumnSpec, FeatureSpec, Schema};
        let (imported, categories) = match format {
            "lightgbm" => (
                candor_ml::import::load_lightgbm(text).map_err(ml_error)?,
                candor_ml::import::lightgbm_categories(text).map_err(ml_error)?,
            ),
            "xgboost" => (
                candor_ml::import::load_xgboost(text).map_err(ml_error)?,
                vec![],
            ),
            other => {
                return Err(AppError::bad_request(
                    "model_format_invalid",
                    format!("unknown model format {other:?} (lightgbm or xgboost)"),
                ));
            }
        };
        if imported.ensemble.link != candor_ml::tree::Link::Logistic {
            return Err(AppError::bad_request(
                "model_format_invalid",
                "a lead-scoring model must be a binary classifier (logistic output)",
            ));
        }
        if let Some(col) = self.protected_columns(&imported.feature_names).first() {
            return Err(AppError::bad_request(
                "protected_feature",
                format!(
                    "the model uses {col:?}, a protected attribute under the policy; it cannot be registered"
                ),
            ));
        }
        let mut columns = Vec::new();
        let mut features = Vec::new();
        for (i, name) in imported.feature_names.iter().enumerate() {
            let (kind, spec) = match categories.get(i).cloned().flatten() {
                Some(values) if !values.is_empty() => (
                    ColumnKind::Categorical {
                        values: values.clone(),
                    },
                    FeatureSpec {
                        levels: Some(values),
                        categorical: true,
                        ..FeatureSpec::numeric(name)
                    },
                ),
                _ => (ColumnKind::Numeric, FeatureSpec::numeric(name)),
            };
            columns.push(ColumnSpec {
                name: name.clone(),
                kind,
            });
            features.push(spec);
        }
        let mut schema = Schema { columns, features };
        crate::features::apply_descriptions(&mut schema);
        let trees = imported.ensemble.trees.len();
        let model = ScoringModel {
            schema,
            estimator: candor_ml::lead::Estimator::Gbdt {
                ensemble: imported.ensemble,
            },
            calibrator: None,
            tiers: candor_ml::lead::Tiers::default(),
        };
        let horizon = horizon.unwrap_or_else(|| "as defined when the model was trained".into());
        let artifact = LeadArtifact {
            model: model.clone(),
            horizon: horizon.clone(),
        };
        let bytes = serde_json::to_vec(&artifact).map_err(|e| AppError::internal("import", &e))?;
        let digest = sha256_hex(&bytes);
        let card = json!({
            "kind": LEAD_MODEL,
            "source": source,
            "imported_from": imported.source,
            "horizon": horizon,
            "trees": trees,
            "features": model.schema.features,
            "holdout": null,
            "intended_use": INTENDED_USE,
            "limitations": limitations(&format!("data Candor has not seen (imported from {})", imported.source)),
        });
        let version = self
            .store()
            .insert_model(
                tenant,
                &NewModel {
                    name: LEAD_MODEL.into(),
                    kind: format!("imported-{format}"),
                    digest: digest.clone(),
                    artifact: bytes,
                    card,
                },
                self.clock().now(),
                AuditDraft {
                    tenant: Some(tenant),
                    actor: actor.to_string(),
                    action: "model.imported".into(),
                    target: None,
                    details: json!({ "name": LEAD_MODEL, "digest": digest, "from": imported.source }),
                },
            )
            .await?;
        let n_features = model.schema.features.len();
        Ok(TrainedModel {
            version,
            digest,
            result: TrainResult {
                data: candor_ml::lead::DataSummary {
                    rows: 0,
                    positives: 0,
                    train_rows: 0,
                    holdout_rows: 0,
                    holdout_rule: "imported".into(),
                    columns_used: model
                        .schema
                        .columns
                        .iter()
                        .map(|c| c.name.clone())
                        .collect(),
                    excluded: vec![],
                    protected: vec![],
                    features: n_features,
                },
                model,
                holdout: None,
                baseline: None,
                trees,
                importance: vec![],
            },
            dropped_without_consent: 0,
            mitigation: None,
        })
    }

    pub async fn model_view(&self, tenant: TenantId, version: i64) -> AppResult<ModelView> {
        let mut row = self
            .store()
            .model(tenant, version)
            .await?
            .ok_or_else(|| AppError::not_found("model"))?;
        row.artifact.clear();
        let transitions = self.store().model_transitions(tenant, version).await?;
        let fairness = self.fairness_record(tenant, version).await?;
        Ok(ModelView {
            row,
            transitions,
            fairness,
        })
    }

    /// Loads a model's artifact (checking its digest).
    pub async fn lead_artifact(
        &self,
        tenant: TenantId,
        version: i64,
    ) -> AppResult<(ModelRow, LeadArtifact)> {
        let row = self
            .store()
            .model(tenant, version)
            .await?
            .ok_or_else(|| AppError::not_found("model"))?;
        self.open_artifact(row)
    }

    fn open_artifact(&self, row: ModelRow) -> AppResult<(ModelRow, LeadArtifact)> {
        if sha256_hex(&row.artifact) != row.digest {
            return Err(AppError::internal("model", &"artifact digest mismatch"));
        }
        let art: LeadArtifact =
            serde_json::from_slice(&row.artifact).map_err(|e| AppError::internal("model", &e))?;
        Ok((row, art))
    }

    /// Moves a model through its lifecycle, with a reason kept in the audit log. Approval and
    /// activation need the model's latest fairness audit to have passed or been overridden
    /// (the store checks it in the same transaction: `fairness_gate`).
    pub async fn transition_model(
        &self,
        tenant: TenantId,
        actor: &str,
        version: i64,
        action: &str,
        reason: &str,
    ) -> AppResult<ModelView> {
        let (from, to): (&[&str], &str) = match action {
            "approve" => (&["audited"], "approved"),
            "activate" => (&["approved"], "active"),
            "retire" => (&["draft", "audited", "approved", "active"], "retired"),
            other => {
                return Err(AppError::bad_request(
                    "unknown_action",
                    format!("`{other}` is not a model action (approve, activate, retire)"),
                ));
            }
        };
        let reason = check_reason(reason)?;
        let audit = AuditDraft {
            tenant: Some(tenant),
            actor: actor.to_string(),
            action: format!("model.{to}"),
            target: Some(format!("model:{version}")),
            details: json!({ "reason": reason }),
        };
        self.store()
            .transition_model(
                tenant,
                version,
                from,
                to,
                actor,
                reason,
                self.clock().now(),
                audit,
            )
            .await
            .map_err(|e| match e {
                candor_store::StoreError::NotFound => AppError::not_found("model"),
                candor_store::StoreError::Conflict(m) => {
                    AppError::new(ErrorKind::Conflict, "invalid_transition", m)
                }
                other => other.into(),
            })?;
        // Recommendation serving re-reads which model serves.
        self.cache_serving(tenant, None);
        self.model_view(tenant, version).await
    }

    /// The model to score with: the named version if it is approved or active, else the
    /// active one. Parsed artifacts are cached by digest; the status is read every time.
    async fn scoring_model(
        &self,
        tenant: TenantId,
        version: Option<i64>,
    ) -> AppResult<(ModelRow, std::sync::Arc<LeadArtifact>)> {
        let row = match version {
            Some(v) => {
                let row = self
                    .store()
                    .model(tenant, v)
                    .await?
                    .ok_or_else(|| AppError::not_found("model"))?;
                if row.status != "active" && row.status != "approved" {
                    return Err(AppError::new(
                        ErrorKind::Conflict,
                        "model_not_approved",
                        format!(
                            "model {v} is {}; only approved or active models score people",
                            row.status
                        ),
                    ));
                }
                row
            }
            None => self
                .store()
                .active_model(tenant, LEAD_MODEL)
                .await?
                .ok_or_else(|| {
                    AppError::new(
                        ErrorKind::Conflict,
                        "no_active_model",
                        "no lead-scoring model is active; train one and approve and activate it",
                    )
                })?,
        };
        if let Some(art) = self.cached_model(&row.digest) {
            return Ok((row, art));
        }
        let row = if row.artifact.is_empty() {
            self.store()
                .model(tenant, row.version)
                .await?
                .ok_or_else(|| AppError::not_found("model"))?
        } else {
            row
        };
        let (mut row, art) = self.open_artifact(row)?;
        if let candor_ml::lead::Estimator::Gbdt { ensemble } = &art.model.estimator {
            ensemble.prepare_explanations();
        }
        let art = std::sync::Arc::new(art);
        self.cache_model(&row.digest, art.clone());
        row.artifact = Vec::new();
        Ok((row, art))
    }

    /// Scores subjects. Each needs a `profiling` grant; others come back `not_scored` with the
    /// denial's code. Each score is stored as a decision.
    pub async fn score_subjects(
        &self,
        tenant: TenantId,
        actor: &str,
        inputs: &[ScoreInput],
        version: Option<i64>,
    ) -> AppResult<Vec<ScoreResult>> {
        if inputs.is_empty() || inputs.len() > MAX_SCORE_BATCH {
            return Err(AppError::bad_request(
                "batch_size",
                format!("send between 1 and {MAX_SCORE_BATCH} subjects per request"),
            ));
        }
        for input in inputs {
            if let Some((k, _)) = input
                .attributes
                .iter()
                .find(|(_, v)| v.is_array() || v.is_object())
            {
                return Err(AppError::bad_request(
                    "attribute_invalid",
                    format!("attribute {k:?} must be a string, number, boolean or null"),
                ));
            }
        }
        let (row, art) = self.scoring_model(tenant, version).await?;
        let model = &art.model;
        let purpose = self.purpose("profiling")?;
        let tk = self.tenant_key(tenant).await?;
        let now = self.clock().now();
        let mut out = Vec::with_capacity(inputs.len());
        let mut decisions = Vec::new();
        let mut audits = Vec::new();
        for input in inputs {
            let subject = match self.resolve_subject(tenant, &input.user_id).await {
                Ok(s) => s,
                Err(e) if e.kind == ErrorKind::NotFound => {
                    out.push(ScoreResult::not_scored(
                        &input.user_id,
                        "unknown_subject",
                        "no subject with this userId".into(),
                    ));
                    continue;
                }
                Err(e) => return Err(e),
            };
            let grant = match self.grant(tenant, subject.id, &purpose).await {
                Ok(g) => g,
                Err(d) => {
                    out.push(ScoreResult::not_scored(
                        &input.user_id,
                        d.code,
                        d.reason.clone(),
                    ));
                    continue;
                }
            };
            let Some(wrapped) = &subject.wrapped_key else {
                out.push(ScoreResult::not_scored(
                    &input.user_id,
                    "erased",
                    "the subject's data was erased".into(),
                ));
                continue;
            };
            let key = tk.unwrap_data_key(subject.id, wrapped)?;
            let events = self.store().events_for(&grant, EVENTS_PER_SUBJECT).await?;
            let computed = crate::features::event_features(&events, now);
            let row_values = build_row(model, &computed, &input.attributes)?;
            let scored = model
                .score_row(&row_values)
                .map_err(|e| AppError::internal("score", &e))?;
            let (up, down) = top_reasons(&scored.reasons, 3);
            let decision_id = uuid_v7();
            let inputs_digest =
                sha256_hex(&serde_json::to_vec(&row_values_json(&row_values)).unwrap_or_default());
            let tier = scored.tier.to_string();
            let outcome = json!({
                "probability": scored.probability,
                "tier": tier,
                "horizon": art.horizon,
                "raw": scored.raw,
                "baseValue": scored.base_value,
                "reasons": scored.reasons.iter().map(ReasonView::from).collect::<Vec<_>>(),
            });
            let sealed = key.seal(
                &format!("decision:{decision_id}"),
                &serde_json::to_vec(&outcome).map_err(|e| AppError::internal("score", &e))?,
            )?;
            decisions.push(DecisionRow {
                id: decision_id.clone(),
                subject: subject.id,
                purpose: purpose.to_string(),
                kind: LEAD_MODEL.into(),
                model_version: Some(row.version),
                inputs_digest,
                sealed,
                created_at: now,
            });
            audits.push(AuditDraft {
                tenant: Some(tenant),
                actor: actor.to_string(),
                action: "decision.recorded".into(),
                target: Some(subject.id.to_string()),
                details: json!({ "decision": decision_id, "kind": LEAD_MODEL, "model_version": row.version, "purpose": purpose.as_str() }),
            });
            out.push(ScoreResult {
                user_id: input.user_id.clone(),
                status: "scored".into(),
                probability: Some(scored.probability),
                tier: Some(tier),
                horizon: Some(art.horizon.clone()),
                reasons_up: up.into_iter().map(ReasonView::from).collect(),
                reasons_down: down.into_iter().map(ReasonView::from).collect(),
                model_version: Some(row.version),
                decision_id: Some(decision_id),
                reason: None,
                message: None,
            });
        }
        if !decisions.is_empty() {
            self.store()
                .insert_decisions(tenant, &decisions, audits)
                .await
                .map_err(|e| match e {
                    candor_store::StoreError::Conflict(m) => {
                        AppError::new(ErrorKind::Conflict, "subject_erased", m)
                    }
                    other => other.into(),
                })?;
        }
        Ok(out)
    }

    /// A subject's decisions, newest first, opened with their data key (an audited PII read).
    pub async fn decisions_for<'w>(
        &self,
        tenant: TenantId,
        actor: &str,
        who: impl Into<crate::access::Who<'w>>,
        limit: u32,
    ) -> AppResult<(SubjectId, Vec<DecisionView>)> {
        let subject = self.resolve_subject(tenant, who).await?;
        // Lists served moments ago are in the decision queue: commit them first.
        self.flush_decisions().await?;
        let rows = self
            .store()
            .decisions_for(tenant, subject.id, limit)
            .await?;
        let key = match &subject.wrapped_key {
            Some(w) => Some(
                self.tenant_key(tenant)
                    .await?
                    .unwrap_data_key(subject.id, w)?,
            ),
            None => None,
        };
        let mut out = Vec::with_capacity(rows.len());
        for d in rows {
            let outcome = match &key {
                Some(k) => {
                    let bytes = k.open(&format!("decision:{}", d.id), &d.sealed)?;
                    Some(
                        serde_json::from_slice(&bytes)
                            .map_err(|e| AppError::internal("decision", &e))?,
                    )
                }
                None => None,
            };
            out.push(DecisionView {
                id: d.id,
                purpose: d.purpose,
                kind: d.kind,
                model_version: d.model_version,
                inputs_digest: d.inputs_digest,
                created_at: d.created_at,
                outcome,
            });
        }
        if !out.is_empty() {
            self.store()
                .append_audit(vec![AuditDraft {
                    tenant: Some(tenant),
                    actor: actor.to_string(),
                    action: "pii.read".into(),
                    target: Some(subject.id.to_string()),
                    details: json!({ "what": "decisions", "count": out.len() }),
                }])
                .await?;
        }
        Ok((subject.id, out))
    }
}

/// A training table built from events (see [`App::export_event_features`]).
#[derive(Clone, Debug)]
pub struct FeatureExport {
    pub headers: Vec<String>,
    pub rows: Vec<Vec<String>>,
    /// Subjects left out because profiling is not allowed for them.
    pub skipped: usize,
    /// Rows whose label is a reviewer's correction of a contested decision.
    pub relabelled: usize,
}

impl App {
    /// Event features of every subject with a `profiling` grant, as of `as_of`, labelled by
    /// whether `label_event` happened in the `horizon_days` after it, or by the label a
    /// reviewer gave when overriding a contested decision. Subjects without events before
    /// `as_of` are left out. Columns: `subject_id`, the features, `label`.
    pub async fn export_event_features(
        &self,
        tenant: TenantId,
        actor: &str,
        as_of: Timestamp,
        label_event: &str,
        horizon_days: u32,
    ) -> AppResult<FeatureExport> {
        let purpose = self.purpose("profiling")?;
        let end = as_of.0 + i64::from(horizon_days) * 86_400_000;
        let mut headers = vec!["subject_id".to_string()];
        headers.extend(
            crate::features::EVENT_FEATURES
                .iter()
                .map(|(n, _, _)| n.to_string()),
        );
        headers.push("label".into());
        let mut relabelled = 0usize;
        // A reviewer who overrode a contested decision gave the corrected outcome: it replaces
        // the observed label (the person's own account, checked by a human).
        let corrected = self.contest_labels(tenant).await?;
        let mut rows = Vec::new();
        let mut skipped = 0usize;
        let mut after = None;
        loop {
            let page = self.store().list_subjects(tenant, after, 500).await?;
            let Some(last) = page.last() else { break };
            after = Some(last.id);
            for subject in page {
                if subject.wrapped_key.is_none() {
                    continue;
                }
                let grant = match self.grant(tenant, subject.id, &purpose).await {
                    Ok(g) => g,
                    Err(_) => {
                        skipped += 1;
                        continue;
                    }
                };
                let events = self.store().events_for(&grant, EVENTS_PER_SUBJECT).await?;
                if !events.iter().any(|e| e.occurred_at <= as_of) {
                    continue;
                }
                let f = crate::features::event_features(&events, as_of);
                let label = events.iter().any(|e| {
                    e.name.as_deref() == Some(label_event)
                        && e.occurred_at.0 > as_of.0
                        && e.occurred_at.0 <= end
                });
                let mut row = vec![subject.id.to_string()];
                for (n, _, _) in crate::features::EVENT_FEATURES {
                    let v = f.get(n).copied().unwrap_or(f64::NAN);
                    row.push(if v.is_finite() {
                        candor_ml::table::format_value(v)
                    } else {
                        String::new()
                    });
                }
                let label = match corrected.get(&subject.id) {
                    Some(l) => {
                        relabelled += 1;
                        *l == 1
                    }
                    None => label,
                };
                row.push(if label { "yes".into() } else { "no".into() });
                rows.push(row);
            }
        }
        self.store()
            .append_audit(vec![AuditDraft {
                tenant: Some(tenant),
                actor: actor.to_string(),
                action: "features.exported".into(),
                target: None,
                details: json!({ "purpose": purpose.as_str(), "subjects": rows.len(), "skipped_without_grant": skipped, "as_of": as_of.0 }),
            }])
            .await?;
        Ok(FeatureExport {
            headers,
            rows,
            skipped,
            relabelled,
        })
    }
}

fn uuid_v7() -> String {
    candor_types::EventId::new().to_string()
}

fn row_values_json(row: &[f64]) -> Vec<Option<f64>> {
    row.iter().map(|v| v.is_finite().then_some(*v)).collect()
}

/// The model's input row: event features by name, then lead attributes for other columns.
fn build_row(
    model: &ScoringModel,
    computed: &HashMap<&'static str, f64>,
    attributes: &serde_json::Map<String, Value>,
) -> AppResult<Vec<f64>> {
    let mut row = Vec::with_capacity(model.n_features());
    for (col, feat) in model.schema.columns.iter().zip(&model.schema.features) {
        if let Some(v) = computed.get(col.name.as_str()) {
            row.push(*v);
            continue;
        }
        let cell = match attributes.get(&col.name) {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            Some(Value::Bool(b)) => {
                if *b {
                    "yes".into()
                } else {
                    "no".into()
                }
            }
            Some(_) => {
                return Err(AppError::bad_request(
                    "attribute_invalid",
                    format!(
                        "attribute {:?} must be a string, number or boolean",
                        col.name
                    ),
                ));
            }
        };
        let table = RawTable {
            headers: vec![col.name.clone()],
            rows: vec![vec![cell]],
            delimiter: b',',
        };
        let one = candor_ml::table::Schema {
            columns: vec![col.clone()],
            features: vec![feat.clone()],
        };
        let v = one
            .encode(&table)
            .map_err(|e| AppError::bad_request("attribute_invalid", e.to_string()))?;
        row.push(v.first().copied().unwrap_or(f64::NAN));
    }
    Ok(row)
}
