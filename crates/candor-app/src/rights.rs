//! Data-subject rights: requests with their deadlines and identity checks, erasure that reaches
//! everything (with a receipt), the export of everything held, restriction and objection,
//! contested decisions with human review, and the plain-language "why" of a decision.
//!
//! Audit entries name the request, the subject's pseudonymous id and counts; never a person's
//! values. What a request carries that is personal (a rectification's new values) is sealed
//! with the subject's data key.

use std::collections::BTreeMap;

use candor_crypto::{DataKey, Sealed, sha256_hex};
use candor_store::{
    AuditDraft, ContestRow, ErasureCounts, RequestRow, SUBJECT_TABLES, Store, StoreError,
    SubjectRow,
};
use candor_types::deadline::{Regime, deadlines};
use candor_types::{
    ConsentAction, ConsentRecord, ConsentSource, EventId, Purpose, SubjectId, TenantId, Timestamp,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::access::Who;
use crate::{App, AppError, AppResult, ErrorKind};

/// The kinds of request Candor handles.
pub const REQUEST_KINDS: &[&str] = &[
    "access",
    "portability",
    "rectification",
    "erasure",
    "restriction",
    "objection_marketing",
    "objection_profiling",
    "do_not_sell",
    "limit_sensitive",
];
/// How long a one-time verification token is valid.
const TOKEN_DAYS: u32 = 7;
/// Days a reviewer has to answer a contested decision.
pub const CONTEST_SLA_DAYS: u32 = 7;
/// Events per page of an export.
const EXPORT_PAGE: u32 = 1000;

/// A new request, from the subject (through the store's backend) or from staff.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewRequest {
    #[serde(rename = "userId")]
    pub user_id: String,
    pub kind: String,
    /// `gdpr` or `ccpa`; by default from the subject's jurisdiction (`us_ca` → CCPA).
    pub regime: Option<String>,
    /// Rectification only: `{"traits": {"name": "…"}}`, the corrected values.
    pub details: Option<Value>,
}

/// A request as shown to staff (no token, no sealed details).
#[derive(Clone, Debug, Serialize)]
pub struct RequestView {
    #[serde(flatten)]
    pub row: RequestRow,
    pub overdue: bool,
}

/// What a new request returns: the request, and the one-time token to deliver to the
/// subject's verified contact (shown once, stored only as a keyed hash).
#[derive(Clone, Debug, Serialize)]
pub struct CreatedRequest {
    pub request: RequestView,
    pub verification_token: String,
}

/// How a request's identity check was passed.
#[derive(Clone, Debug)]
pub enum Verification {
    /// The one-time token the subject received.
    Token(String),
    /// Staff verified the person another way (recorded with the note).
    Staff(String),
}

/// The receipt of an erasure: what was erased, when, and what remains (nothing personal).
#[derive(Clone, Debug, Serialize)]
pub struct ErasureReceipt {
    pub receipt_id: String,
    pub subject: SubjectId,
    pub erased_at: Timestamp,
    pub erased: ErasureCounts,
    pub remains: Vec<String>,
}

/// A contest as shown to reviewers and to the subject.
#[derive(Clone, Debug, Serialize)]
pub struct ContestView {
    pub id: String,
    pub decision_id: String,
    pub subject: SubjectId,
    pub status: String,
    pub statement: Option<String>,
    pub created_at: Timestamp,
    pub due_at: Timestamp,
    pub overdue: bool,
    pub reviewer: Option<String>,
    pub note: Option<String>,
    pub outcome_label: Option<i64>,
    pub resolved_at: Option<Timestamp>,
}

fn is_final(status: &str) -> bool {
    status == "completed" || status == "rejected"
}

fn view(row: RequestRow, now: Timestamp) -> RequestView {
    let overdue = !is_final(&row.status)
        && (row.due_at < now
            || (row.acknowledged_at.is_none() && row.acknowledge_by.is_some_and(|a| a < now)));
    RequestView { row, overdue }
}

/// A person's own words (a contest, a message to a human): trimmed, 1–5000 characters (as
/// the forms' `maxlength` counts).
pub(crate) fn own_words<'a>(
    text: &'a str,
    code: &'static str,
    message: &'static str,
) -> AppResult<&'a str> {
    let text = text.trim();
    if text.is_empty() || text.chars().count() > 5000 {
        return Err(AppError::bad_request(code, message));
    }
    Ok(text)
}

fn store_conflict(code: &'static str) -> impl Fn(StoreError) -> AppError {
    move |e| match e {
        StoreError::NotFound => AppError::not_found("request"),
        StoreError::Conflict(m) => AppError::new(ErrorKind::Conflict, code, m),
        other => other.into(),
    }
}

impl App {
    fn audit(
        &self,
        tenant: TenantId,
        actor: &str,
        action: &str,
        target: String,
        details: Value,
    ) -> AuditDraft {
        AuditDraft {
            tenant: Some(tenant),
            actor: actor.to_string(),
            action: action.to_string(),
            target: Some(target),
            details,
        }
    }

    /// A live (not erased) subject by the store's user id.
    async fn live_subject<'w>(
        &self,
        tenant: TenantId,
        who: impl Into<Who<'w>>,
    ) -> AppResult<SubjectRow> {
        let s = self.resolve_subject(tenant, who).await?;
        if s.wrapped_key.is_none() {
            return Err(AppError::new(
                ErrorKind::Conflict,
                "subject_erased",
                "this person's data was erased",
            ));
        }
        Ok(s)
    }

    /// A live person and their data key.
    pub(crate) async fn live_key<'w>(
        &self,
        tenant: TenantId,
        who: impl Into<Who<'w>>,
    ) -> AppResult<(SubjectRow, DataKey)> {
        let s = self.live_subject(tenant, who).await?;
        let key = self
            .data_key(tenant, &s)
            .await?
            .ok_or_else(|| AppError::not_found("subject"))?;
        Ok((s, key))
    }

    /// The person's data key (`None` once it is destroyed).
    pub(crate) async fn data_key(
        &self,
        tenant: TenantId,
        s: &SubjectRow,
    ) -> AppResult<Option<DataKey>> {
        match &s.wrapped_key {
            Some(w) => Ok(Some(
                self.tenant_key(tenant).await?.unwrap_data_key(s.id, w)?,
            )),
            None => Ok(None),
        }
    }

    async fn subject_row(&self, tenant: TenantId, id: SubjectId) -> AppResult<SubjectRow> {
        self.store()
            .subject(tenant, id)
            .await?
            .ok_or_else(|| AppError::not_found("subject"))
    }

    // ----------------------------------------------------------------------------------------
    // Requests
    // ----------------------------------------------------------------------------------------

    /// Records a request as `received`, computes its deadlines and issues the one-time token
    /// for the identity check.
    pub async fn create_request(
        &self,
        tenant: TenantId,
        actor: &str,
        req: &NewRequest,
    ) -> AppResult<CreatedRequest> {
        if !REQUEST_KINDS.contains(&req.kind.as_str()) {
            return Err(AppError::bad_request(
                "kind_invalid",
                format!(
                    "`{}` is not a request kind ({})",
                    req.kind,
                    REQUEST_KINDS.join(", ")
                ),
            ));
        }
        let subject = self.live_subject(tenant, &req.user_id).await?;
        let regime = match req.regime.as_deref() {
            Some(r) => Regime::parse(r).ok_or_else(|| {
                AppError::bad_request("regime_invalid", "the regime is `gdpr` or `ccpa`")
            })?,
            None => {
                let ledger = self.store().consent_ledger(tenant, subject.id).await?;
                let state = candor_types::ConsentState::from_ledger(&ledger);
                let j = state
                    .jurisdiction()
                    .unwrap_or(self.policy().default_jurisdiction());
                if j.starts_with("us") {
                    Regime::Ccpa
                } else {
                    Regime::Gdpr
                }
            }
        };
        let sealed = match (&req.kind[..], &req.details) {
            ("rectification", Some(d)) if d["traits"].is_object() => {
                let key = self
                    .data_key(tenant, &subject)
                    .await?
                    .ok_or_else(|| AppError::not_found("subject"))?;
                Some(key.seal("dsr:details", d.to_string().as_bytes())?)
            }
            ("rectification", _) => {
                return Err(AppError::bad_request(
                    "details_required",
                    "a rectification carries the corrected values: {\"traits\": {…}}",
                ));
            }
            (_, Some(_)) => {
                return Err(AppError::bad_request(
                    "details_invalid",
                    "only a rectification carries details",
                ));
            }
            _ => None,
        };
        let now = self.clock().now();
        let d = deadlines(regime, now);
        let token = self
            .api_keys()
            .new_token("dsr")
            .map_err(|e| AppError::internal("token", &e))?;
        let row = RequestRow {
            id: EventId::new().to_string(),
            subject: subject.id,
            kind: req.kind.clone(),
            regime: regime.as_str().into(),
            status: "received".into(),
            received_at: now,
            acknowledge_by: d.acknowledge_by,
            acknowledged_at: None,
            due_at: d.due,
            extended: false,
            extension_notice: None,
            token_hash: Some(token.hash.to_vec()),
            token_expires_at: Some(now.plus_days(TOKEN_DAYS)),
            verified_at: None,
            verified_by: None,
            completed_at: None,
            rejection_reason: None,
            sealed,
            result: None,
        };
        self.store()
            .save_request(
                tenant,
                &row,
                None,
                self.audit(
                    tenant,
                    actor,
                    "dsr.received",
                    format!("request:{}", row.id),
                    json!({ "kind": row.kind, "regime": row.regime, "subject": subject.id, "due": row.due_at }),
                ),
            )
            .await?;
        Ok(CreatedRequest {
            request: view(row, now),
            verification_token: token.secret.to_string(),
        })
    }

    /// Saves a request that is still in status `expected`, with its audit entry (the step as
    /// the action, no personal values in `details`).
    async fn save_step(
        &self,
        tenant: TenantId,
        actor: &str,
        row: &RequestRow,
        expected: &str,
        action: &str,
        details: Value,
    ) -> AppResult<()> {
        self.store()
            .save_request(
                tenant,
                row,
                Some(expected),
                self.audit(
                    tenant,
                    actor,
                    action,
                    format!("request:{}", row.id),
                    details,
                ),
            )
            .await
            .map_err(store_conflict("invalid_transition"))
    }

    async fn load_request(&self, tenant: TenantId, id: &str) -> AppResult<RequestRow> {
        self.store()
            .request(tenant, id)
            .await?
            .ok_or_else(|| AppError::not_found("request"))
    }

    /// Passes a request's identity check: the subject's one-time token, or staff's recorded
    /// verification.
    pub async fn verify_request(
        &self,
        tenant: TenantId,
        actor: &str,
        id: &str,
        how: Verification,
    ) -> AppResult<RequestView> {
        let mut row = self.load_request(tenant, id).await?;
        if row.status != "received" {
            return Err(AppError::new(
                ErrorKind::Conflict,
                "invalid_transition",
                format!(
                    "request {id} is {}; only a received request is verified",
                    row.status
                ),
            ));
        }
        let now = self.clock().now();
        let by = match &how {
            Verification::Token(t) => {
                let expected = row.token_hash.clone().unwrap_or_default();
                let ok = !expected.is_empty()
                    && candor_crypto::constant_time_eq(&self.api_keys().hash(t), &expected)
                    && row.token_expires_at.is_some_and(|e| e >= now);
                if !ok {
                    return Err(AppError::new(
                        ErrorKind::Forbidden,
                        "verification_failed",
                        "the token is wrong or has expired",
                    ));
                }
                "subject:one-time-token".to_string()
            }
            Verification::Staff(note) => {
                let note = crate::scoring::check_reason(note)?;
                format!("staff:{actor}: {note}")
            }
        };
        row.status = "verified".into();
        row.verified_at = Some(now);
        row.verified_by = Some(by.clone());
        row.token_hash = None;
        self.save_step(tenant, actor, &row, "received", "dsr.verified", json!({ "method": if matches!(how, Verification::Token(_)) { "token" } else { "staff" } }))
            .await?;
        Ok(view(row, now))
    }

    /// Records the CCPA acknowledgement (sent by the store to the person).
    pub async fn acknowledge_request(
        &self,
        tenant: TenantId,
        actor: &str,
        id: &str,
    ) -> AppResult<RequestView> {
        let mut row = self.load_request(tenant, id).await?;
        if is_final(&row.status) || row.acknowledged_at.is_some() {
            return Err(AppError::new(
                ErrorKind::Conflict,
                "invalid_transition",
                "nothing to acknowledge",
            ));
        }
        let status = row.status.clone();
        let now = self.clock().now();
        row.acknowledged_at = Some(now);
        self.save_step(tenant, actor, &row, &status, "dsr.acknowledged", json!({}))
            .await?;
        Ok(view(row, now))
    }

    /// Extends the deadline once, as the regime allows, with the notice given to the person.
    pub async fn extend_request(
        &self,
        tenant: TenantId,
        actor: &str,
        id: &str,
        notice: &str,
    ) -> AppResult<RequestView> {
        let notice = crate::scoring::check_reason(notice)?;
        let mut row = self.load_request(tenant, id).await?;
        if is_final(&row.status) || row.extended {
            return Err(AppError::new(
                ErrorKind::Conflict,
                "invalid_transition",
                "a request is extended at most once, before it is answered",
            ));
        }
        let regime = Regime::parse(&row.regime).unwrap_or(Regime::Gdpr);
        let status = row.status.clone();
        row.extended = true;
        row.extension_notice = Some(notice.to_string());
        row.due_at = deadlines(regime, row.received_at).extended_due;
        self.save_step(
            tenant,
            actor,
            &row,
            &status,
            "dsr.extended",
            json!({ "due": row.due_at }),
        )
        .await?;
        Ok(view(row, self.clock().now()))
    }

    /// Rejects a request with the reason given to the person.
    pub async fn reject_request(
        &self,
        tenant: TenantId,
        actor: &str,
        id: &str,
        reason: &str,
    ) -> AppResult<RequestView> {
        let reason = crate::scoring::check_reason(reason)?;
        let mut row = self.load_request(tenant, id).await?;
        if is_final(&row.status) {
            return Err(AppError::new(
                ErrorKind::Conflict,
                "invalid_transition",
                format!("request {id} is {}", row.status),
            ));
        }
        let status = row.status.clone();
        let now = self.clock().now();
        row.status = "rejected".into();
        row.rejection_reason = Some(reason.to_string());
        row.completed_at = Some(now);
        row.token_hash = None;
        self.save_step(
            tenant,
            actor,
            &row,
            &status,
            "dsr.rejected",
            json!({ "reason": reason }),
        )
        .await?;
        Ok(view(row, now))
    }

    /// Carries out a verified request: in progress, then completed with its result.
    pub async fn process_request(
        &self,
        tenant: TenantId,
        actor: &str,
        id: &str,
    ) -> AppResult<RequestView> {
        let mut row = self.load_request(tenant, id).await?;
        if row.status != "verified" {
            return Err(AppError::new(
                ErrorKind::Conflict,
                "not_verified",
                format!(
                    "request {id} is {}; only a verified request is carried out",
                    row.status
                ),
            ));
        }
        row.status = "in_progress".into();
        self.save_step(
            tenant,
            actor,
            &row,
            "verified",
            "dsr.in_progress",
            json!({}),
        )
        .await?;
        let subject = self.subject_row(tenant, row.subject).await?;
        let result = match row.kind.as_str() {
            "access" | "portability" => {
                json!({ "export": format!("/v1/subjects/{}/export", row.subject), "tables": SUBJECT_TABLES })
            }
            "erasure" => {
                let receipt = self.erase(tenant, actor, row.subject).await?;
                serde_json::to_value(&receipt).map_err(|e| AppError::internal("dsr", &e))?
            }
            "rectification" => {
                let key = self.data_key(tenant, &subject).await?.ok_or_else(|| {
                    AppError::new(
                        ErrorKind::Conflict,
                        "subject_erased",
                        "this person's data was erased",
                    )
                })?;
                let details: Value = match &row.sealed {
                    Some(s) => serde_json::from_slice(&key.open("dsr:details", s)?)
                        .map_err(|e| AppError::internal("dsr", &e))?,
                    None => Value::Null,
                };
                let n = self
                    .rectify(tenant, actor, &subject, &key, &details["traits"])
                    .await?;
                json!({ "fields_corrected": n })
            }
            "restriction" => {
                self.store()
                    .set_restricted(
                        tenant,
                        row.subject,
                        Some(self.clock().now()),
                        self.audit(
                            tenant,
                            actor,
                            "subject.restricted",
                            row.subject.to_string(),
                            json!({ "request": id }),
                        ),
                    )
                    .await?;
                json!({ "restricted": true })
            }
            kind => {
                let purposes = self.objection_purposes(kind);
                self.withdraw(tenant, actor, row.subject, &purposes, id)
                    .await?;
                json!({ "withdrawn": purposes.iter().map(|p| p.as_str()).collect::<Vec<_>>() })
            }
        };
        let now = self.clock().now();
        row.status = "completed".into();
        row.completed_at = Some(now);
        row.sealed = None;
        row.result = Some(result.clone());
        self.save_step(
            tenant,
            actor,
            &row,
            "in_progress",
            "dsr.completed",
            json!({ "kind": row.kind }),
        )
        .await?;
        Ok(view(row, now))
    }

    /// The purposes an objection or CCPA request withdraws.
    fn objection_purposes(&self, kind: &str) -> Vec<Purpose> {
        let policy = self.policy();
        policy
            .purposes()
            .filter(|d| match kind {
                "objection_marketing" => d.name.as_str() == "marketing_email" || d.gpc_opt_out,
                "objection_profiling" => {
                    d.name.as_str() == "profiling" || d.name.as_str() == "personalization"
                }
                "do_not_sell" => d.gpc_opt_out,
                // Limiting the use of sensitive data: no purpose may read a protected category.
                "limit_sensitive" => d
                    .categories
                    .iter()
                    .any(|c| policy.category(c).is_some_and(|c| c.protected)),
                _ => false,
            })
            .map(|d| d.name.clone())
            .collect()
    }

    async fn withdraw(
        &self,
        tenant: TenantId,
        actor: &str,
        subject: SubjectId,
        purposes: &[Purpose],
        request: &str,
    ) -> AppResult<()> {
        let now = self.clock().now();
        let records: Vec<ConsentRecord> = purposes
            .iter()
            .map(|p| ConsentRecord {
                purpose: p.clone(),
                action: ConsentAction::Withdrawn,
                source: ConsentSource::Request,
                notice_version: Some(format!("request:{request}")),
                notice_hash: None,
                jurisdiction: None,
                at: now,
            })
            .collect();
        let audit = purposes
            .iter()
            .map(|p| {
                self.audit(
                    tenant,
                    actor,
                    "consent.withdrawn",
                    subject.to_string(),
                    json!({ "purpose": p.as_str(), "source": "request", "request": request }),
                )
            })
            .collect();
        self.store()
            .append_consents(tenant, subject, records, audit)
            .await?;
        Ok(())
    }

    async fn rectify(
        &self,
        tenant: TenantId,
        actor: &str,
        subject: &SubjectRow,
        key: &DataKey,
        traits: &Value,
    ) -> AppResult<usize> {
        let Some(map) = traits.as_object() else {
            return Ok(0);
        };
        let now = self.clock().now();
        let mut fields = Vec::new();
        for (k, v) in map {
            let path = format!("traits.{k}");
            let event = self
                .policy()
                .event_category(candor_types::EventKind::Identify, None);
            let category = self.policy().field_category(event, &path).clone();
            let sealed = key.seal(&path, v.to_string().as_bytes())?;
            fields.push(candor_store::FieldRow {
                subject: subject.id,
                path,
                category,
                sealed,
                updated_at: now,
            });
        }
        let n = fields.len();
        // A corrected address signs in from now on; the old one no longer does.
        let mut aliases = Vec::new();
        if let Some(email) = map.get("email").and_then(Value::as_str)
            && crate::mail::valid_address(email.trim())
        {
            let kind = candor_crypto::IdentifierKind::Email;
            let tk = self.tenant_key(tenant).await?;
            aliases.push((
                subject.id,
                candor_store::Alias {
                    kind,
                    blind: tk.blind_index(kind, email),
                },
            ));
        }
        self.store()
            .upsert_fields(
                tenant,
                fields,
                &aliases,
                self.audit(
                    tenant,
                    actor,
                    "subject.rectified",
                    subject.id.to_string(),
                    json!({ "fields": n }),
                ),
            )
            .await?;
        Ok(n)
    }

    /// Requests of the tenant: open ones by due date (with `overdue`), or all.
    pub async fn list_requests(
        &self,
        tenant: TenantId,
        open_only: bool,
        overdue_only: bool,
    ) -> AppResult<Vec<RequestView>> {
        let now = self.clock().now();
        Ok(self
            .store()
            .list_requests(tenant, open_only || overdue_only, 10_000)
            .await?
            .into_iter()
            .map(|r| view(r, now))
            .filter(|v| !overdue_only || v.overdue)
            .collect())
    }

    pub async fn request_view(&self, tenant: TenantId, id: &str) -> AppResult<RequestView> {
        Ok(view(
            self.load_request(tenant, id).await?,
            self.clock().now(),
        ))
    }

    // ----------------------------------------------------------------------------------------
    // Erasure
    // ----------------------------------------------------------------------------------------

    /// Erases the person with this user id (staff-initiated): see [`Store::erase_subject`].
    /// It is recorded as an erasure request verified by staff and completed with its receipt,
    /// so that the request list is the whole record.
    pub async fn erase_subject<'w>(
        &self,
        tenant: TenantId,
        actor: &str,
        who: impl Into<Who<'w>>,
    ) -> AppResult<ErasureReceipt> {
        let s = self.resolve_subject(tenant, who).await?;
        let now = self.clock().now();
        let d = deadlines(Regime::Gdpr, now);
        let mut row = RequestRow {
            id: EventId::new().to_string(),
            subject: s.id,
            kind: "erasure".into(),
            regime: Regime::Gdpr.as_str().into(),
            status: "in_progress".into(),
            received_at: now,
            acknowledge_by: None,
            acknowledged_at: None,
            due_at: d.due,
            extended: false,
            extension_notice: None,
            token_hash: None,
            token_expires_at: None,
            verified_at: Some(now),
            verified_by: Some(format!("staff:{actor}: staff-initiated erasure")),
            completed_at: None,
            rejection_reason: None,
            sealed: None,
            result: None,
        };
        self.store()
            .save_request(
                tenant,
                &row,
                None,
                self.audit(
                    tenant,
                    actor,
                    "dsr.received",
                    format!("request:{}", row.id),
                    json!({ "kind": "erasure", "subject": s.id, "initiated_by": "staff" }),
                ),
            )
            .await?;
        let receipt = self.erase(tenant, actor, s.id).await?;
        row.status = "completed".into();
        row.completed_at = Some(self.clock().now());
        row.result =
            Some(serde_json::to_value(&receipt).map_err(|e| AppError::internal("dsr", &e))?);
        self.store()
            .save_request(
                tenant,
                &row,
                Some("in_progress"),
                self.audit(
                    tenant,
                    actor,
                    "dsr.completed",
                    format!("request:{}", row.id),
                    json!({ "kind": "erasure" }),
                ),
            )
            .await?;
        Ok(receipt)
    }

    async fn erase(
        &self,
        tenant: TenantId,
        actor: &str,
        subject: SubjectId,
    ) -> AppResult<ErasureReceipt> {
        // Decisions still queued are committed first, so the erasure reaches them too.
        self.flush_decisions().await?;
        let now = self.clock().now();
        let receipt_id = EventId::new().to_string();
        let counts = self
            .store()
            .erase_subject(
                tenant,
                subject,
                now,
                self.audit(
                    tenant,
                    actor,
                    "subject.erased",
                    subject.to_string(),
                    json!({ "receipt": receipt_id }),
                ),
            )
            .await
            .map_err(|e| match e {
                StoreError::NotFound => AppError::not_found("subject"),
                other => other.into(),
            })?;
        Ok(ErasureReceipt {
            receipt_id,
            subject,
            erased_at: now,
            erased: counts,
            remains: vec![
                "a tombstone: the pseudonymous subject id and the dates of creation and erasure, so that events racing the erasure are dropped".into(),
                "keyed hashes (HMAC) of the person's identifiers in the suppression list, so that later events do not silently re-create them".into(),
                "the requests' dates, kinds and outcomes, as proof that they were answered (their personal details are deleted)".into(),
                "audit-log entries naming the pseudonymous id, never a personal value".into(),
            ],
        })
    }

    // ----------------------------------------------------------------------------------------
    // Export
    // ----------------------------------------------------------------------------------------

    /// Streams everything held about the subject as one JSON document, one section per
    /// table of [`SUBJECT_TABLES`], decrypted. Chunks go to `out`; events are read in pages.
    /// The read is audited (`pii.read`, counts only).
    pub async fn export_subject(
        &self,
        tenant: TenantId,
        actor: &str,
        subject: SubjectId,
        out: &tokio::sync::mpsc::Sender<Vec<u8>>,
    ) -> AppResult<BTreeMap<&'static str, usize>> {
        self.flush_decisions().await?;
        let s = self.subject_row(tenant, subject).await?;
        let key = self.data_key(tenant, &s).await?;
        let state = self.store().subject_state(tenant, subject).await?;
        let grant = self.policy().rights_grant(tenant, subject, "access");
        let send = |bytes: Vec<u8>| async move {
            out.send(bytes).await.map_err(|_| {
                AppError::new(
                    ErrorKind::BadRequest,
                    "export_cancelled",
                    "the export was cancelled",
                )
            })
        };
        let mut counts: BTreeMap<&'static str, usize> = BTreeMap::new();
        let open = |label: &str, sealed: &Sealed| -> AppResult<Value> {
            match &key {
                Some(k) => serde_json::from_slice(&k.open(label, sealed)?)
                    .map_err(|e| AppError::internal("export", &e)),
                None => Ok(Value::Null),
            }
        };
        send(
            format!(
                "{{\"subject\":{},\"exported_at\":{},\"erased\":{},\"tables\":{{",
                json!(subject),
                json!(self.clock().now().to_rfc3339()),
                key.is_none()
            )
            .into_bytes(),
        )
        .await?;
        // subjects
        let subjects = vec![json!({
            "id": subject,
            "created_at": s.created_at.to_rfc3339(),
            "erased_at": state.as_ref().and_then(|x| x.erased_at).map(|t| t.to_rfc3339()),
            "restricted_at": state.as_ref().and_then(|x| x.restricted_at).map(|t| t.to_rfc3339()),
        })];
        counts.insert("subjects", 1);
        send(format!("\"subjects\":{}", json!(subjects)).into_bytes()).await?;
        // subject_aliases
        let aliases: Vec<Value> = self
            .store()
            .subject_aliases(tenant, subject)
            .await?
            .into_iter()
            .map(|(kind, blind)| json!({ "kind": kind, "keyed_hash": hex::encode(blind),
                "note": "Candor keeps only a keyed hash of this identifier, never the identifier itself" }))
            .collect();
        counts.insert("subject_aliases", aliases.len());
        send(format!(",\"subject_aliases\":{}", json!(aliases)).into_bytes()).await?;
        // subject_fields
        let mut fields = Vec::new();
        for f in self.store().fields_for(&grant).await? {
            fields.push(
                json!({ "path": f.path, "category": f.category, "value": open(&f.path, &f.sealed)?,
                "updated_at": f.updated_at.to_rfc3339() }),
            );
        }
        counts.insert("subject_fields", fields.len());
        send(format!(",\"subject_fields\":{}", json!(fields)).into_bytes()).await?;
        // consents
        let consents: Vec<Value> = self
            .store()
            .consent_ledger(tenant, subject)
            .await?
            .into_iter()
            .map(|c| json!(c))
            .collect();
        counts.insert("consents", consents.len());
        send(format!(",\"consents\":{}", json!(consents)).into_bytes()).await?;
        // events, streamed in pages
        send(b",\"events\":[".to_vec()).await?;
        let mut cursor = None;
        let mut n = 0usize;
        loop {
            let page = self
                .store()
                .events_page(&grant, cursor, EXPORT_PAGE)
                .await?;
            let Some(last) = page.last() else { break };
            cursor = Some((last.occurred_at, last.id));
            let mut chunk = String::new();
            for e in &page {
                let mut parts: BTreeMap<String, Value> = e
                    .plain
                    .iter()
                    .map(|(c, v)| (c.to_string(), v.clone()))
                    .collect();
                for (c, sealed) in &e.sealed {
                    parts.insert(
                        c.to_string(),
                        open(&crate::ingest::event_part_label(e.id, c), sealed)?,
                    );
                }
                if n > 0 {
                    chunk.push(',');
                }
                chunk.push_str(
                    &json!({ "id": e.id, "messageId": e.message_id, "type": e.kind, "name": e.name,
                        "category": e.category, "occurredAt": e.occurred_at.to_rfc3339(),
                        "receivedAt": e.received_at.to_rfc3339(), "fields": parts })
                    .to_string(),
                );
                n += 1;
            }
            send(chunk.into_bytes()).await?;
            if page.len() < EXPORT_PAGE as usize {
                break;
            }
        }
        counts.insert("events", n);
        send(b"]".to_vec()).await?;
        // decisions with their explanations
        let mut decisions = Vec::new();
        for d in self.store().decisions_for(tenant, subject, 100_000).await? {
            let outcome = open(&format!("decision:{}", d.id), &d.sealed)?;
            decisions.push(json!({ "id": d.id, "purpose": d.purpose, "kind": d.kind, "model_version": d.model_version,
                "created_at": d.created_at.to_rfc3339(), "outcome": outcome, "why": why_text(&outcome) }));
        }
        counts.insert("decisions", decisions.len());
        send(format!(",\"decisions\":{}", json!(decisions)).into_bytes()).await?;
        // decision_contests
        let mut contests = Vec::new();
        for c in self.store().contests_for(tenant, subject).await? {
            contests.push(json!(self.contest_view(c, key.as_ref())?));
        }
        counts.insert("decision_contests", contests.len());
        send(format!(",\"decision_contests\":{}", json!(contests)).into_bytes()).await?;
        // rec_factors: the person's recommendation factors and purchase history per model.
        let mut recs = Vec::new();
        for (version, sealed) in self.store().rec_factors_for(tenant, subject).await? {
            recs.push(json!({ "model_version": version, "value": open(&format!("recs:{version}"), &sealed)? }));
        }
        counts.insert("rec_factors", recs.len());
        send(format!(",\"rec_factors\":{}", json!(recs)).into_bytes()).await?;
        // journey_steps and emails: what journeys the person was in and what they were sent.
        let (steps, emails) = self.store().journeys_for(tenant, subject).await?;
        let steps: Vec<Value> = steps
            .iter()
            .map(|st| {
                json!({ "journey": st.journey, "step": st.step, "email": st.email,
                    "triggered_at": st.triggered_at.to_rfc3339(), "due_at": st.due_at.to_rfc3339(),
                    "status": st.status, "reason": st.reason,
                    "finished_at": st.finished_at.map(|t| t.to_rfc3339()) })
            })
            .collect();
        counts.insert("journey_steps", steps.len());
        send(format!(",\"journey_steps\":{}", json!(steps)).into_bytes()).await?;
        let when = |t: Option<Timestamp>| t.map(|t| t.to_rfc3339());
        let emails: Vec<Value> = emails
            .iter()
            .map(|e| {
                json!({ "journey": e.journey, "message_id": e.message_id,
                    "sent_at": e.sent_at.to_rfc3339(), "ai_content": e.ai_content,
                    "opened_at": when(e.opened_at), "clicked_at": when(e.clicked_at),
                    "bounced_at": when(e.bounced_at), "complained_at": when(e.complained_at),
                    "unsubscribed_at": when(e.unsubscribed_at) })
            })
            .collect();
        counts.insert("emails", emails.len());
        send(format!(",\"emails\":{}", json!(emails)).into_bytes()).await?;
        // dsr_requests
        let now = self.clock().now();
        let requests: Vec<Value> = self
            .store()
            .requests_for(tenant, subject)
            .await?
            .into_iter()
            .map(|r| json!(view(r, now)))
            .collect();
        counts.insert("dsr_requests", requests.len());
        send(format!(",\"dsr_requests\":{}", json!(requests)).into_bytes()).await?;
        // contact_requests: messages to a human from the privacy center
        let mut contacts = Vec::new();
        for c in candor_store::WebStore::contacts_for(self.store(), tenant, subject).await? {
            contacts.push(json!({ "id": c.id, "status": c.status,
                "message": open(&format!("contact:{}", c.id), &c.sealed)?,
                "created_at": c.created_at.to_rfc3339(), "due_at": c.due_at.to_rfc3339(),
                "closed_at": c.closed_at.map(|t| t.to_rfc3339()) }));
        }
        counts.insert("contact_requests", contacts.len());
        send(format!(",\"contact_requests\":{}", json!(contacts)).into_bytes()).await?;
        // assistant_conversations, assistant_messages, assistant_tickets: the shopping
        // assistant's transcripts (stored redacted) and hand-offs to a person
        let (convs, msgs, tickets) = self.assistant_export(tenant, subject, key.as_ref()).await?;
        counts.insert("assistant_conversations", convs.len());
        counts.insert("assistant_messages", msgs.len());
        counts.insert("assistant_tickets", tickets.len());
        send(
            format!(
                ",\"assistant_conversations\":{},\"assistant_messages\":{},\"assistant_tickets\":{}",
                json!(convs),
                json!(msgs),
                json!(tickets)
            )
            .into_bytes(),
        )
        .await?;
        // web_sessions and signin_links: when the person signed in to the privacy center
        let sessions: Vec<Value> =
            candor_store::WebStore::sessions_for(self.store(), tenant, subject)
                .await?
                .into_iter()
                .map(|s| {
                    json!({ "kind": s.kind, "created_at": s.created_at.to_rfc3339(),
                "expires_at": s.expires_at.to_rfc3339() })
                })
                .collect();
        counts.insert("web_sessions", sessions.len());
        send(format!(",\"web_sessions\":{}", json!(sessions)).into_bytes()).await?;
        let links: Vec<Value> = candor_store::WebStore::links_for(self.store(), tenant, subject)
            .await?
            .into_iter()
            .map(|l| json!({ "created_at": l.created_at.to_rfc3339(),
                "expires_at": l.expires_at.to_rfc3339(), "used_at": l.used_at.map(|t| t.to_rfc3339()) }))
            .collect();
        counts.insert("signin_links", links.len());
        send(format!(",\"signin_links\":{}}}}}", json!(links)).into_bytes()).await?;
        self.store()
            .append_audit(vec![self.audit(tenant, actor, "pii.read", subject.to_string(),
                json!({ "what": "export", "purpose": candor_policy::RIGHTS_PURPOSE, "rows": counts }))])
            .await?;
        Ok(counts)
    }

    // ----------------------------------------------------------------------------------------
    // Contests and explanations
    // ----------------------------------------------------------------------------------------

    fn contest_view(&self, c: ContestRow, key: Option<&DataKey>) -> AppResult<ContestView> {
        let open = |label: &str, s: &Sealed| -> AppResult<Option<String>> {
            match key {
                Some(k) => Ok(Some(
                    String::from_utf8_lossy(&k.open(label, s)?).into_owned(),
                )),
                None => Ok(None),
            }
        };
        let now = self.clock().now();
        Ok(ContestView {
            statement: open(&format!("contest:{}", c.id), &c.sealed)?,
            note: match &c.note_sealed {
                Some(s) => open(&format!("contest-note:{}", c.id), s)?,
                None => None,
            },
            overdue: c.status == "open" && c.due_at < now,
            id: c.id,
            decision_id: c.decision_id,
            subject: c.subject,
            status: c.status,
            created_at: c.created_at,
            due_at: c.due_at,
            reviewer: c.reviewer,
            outcome_label: c.outcome_label,
            resolved_at: c.resolved_at,
        })
    }

    /// The subject contests a decision with their view: it joins the review queue.
    pub async fn contest_decision<'w>(
        &self,
        tenant: TenantId,
        actor: &str,
        who: impl Into<Who<'w>>,
        decision_id: &str,
        statement: &str,
    ) -> AppResult<ContestView> {
        let statement = own_words(
            statement,
            "statement_invalid",
            "say in up to 5000 characters why the decision is wrong",
        )?;
        let (s, key) = self.live_key(tenant, who).await?;
        let now = self.clock().now();
        let id = EventId::new().to_string();
        let row = ContestRow {
            sealed: key.seal(&format!("contest:{id}"), statement.as_bytes())?,
            id: id.clone(),
            decision_id: decision_id.to_string(),
            subject: s.id,
            status: "open".into(),
            created_at: now,
            due_at: now.plus_days(CONTEST_SLA_DAYS),
            reviewer: None,
            note_sealed: None,
            outcome_label: None,
            resolved_at: None,
        };
        self.store()
            .insert_contest(
                tenant,
                &row,
                self.audit(
                    tenant,
                    actor,
                    "decision.contested",
                    s.id.to_string(),
                    json!({ "contest": id, "decision": decision_id }),
                ),
            )
            .await
            .map_err(|e| match e {
                StoreError::NotFound => AppError::not_found("decision"),
                StoreError::Conflict(m) => {
                    AppError::new(ErrorKind::Conflict, "already_contested", m)
                }
                other => other.into(),
            })?;
        self.contest_view(row, Some(&key))
    }

    /// A reviewer upholds or overrides a contested decision, with a note for the person and,
    /// when overriding, the corrected outcome (0/1) as a label for the next training run.
    pub async fn review_contest(
        &self,
        tenant: TenantId,
        actor: &str,
        id: &str,
        outcome: &str,
        note: &str,
        label: Option<i64>,
    ) -> AppResult<ContestView> {
        let status = match outcome {
            "uphold" | "upheld" => "upheld",
            "override" | "overridden" => "overridden",
            _ => {
                return Err(AppError::bad_request(
                    "outcome_invalid",
                    "the outcome is `uphold` or `override`",
                ));
            }
        };
        if label.is_some_and(|l| l != 0 && l != 1) {
            return Err(AppError::bad_request(
                "label_invalid",
                "the label is 0 or 1",
            ));
        }
        let note = crate::scoring::check_reason(note)?;
        let c = self
            .store()
            .contest(tenant, id)
            .await?
            .ok_or_else(|| AppError::not_found("contest"))?;
        let s = self.subject_row(tenant, c.subject).await?;
        let key = self
            .data_key(tenant, &s)
            .await?
            .ok_or_else(|| AppError::not_found("contest"))?;
        let now = self.clock().now();
        let sealed_note = key.seal(&format!("contest-note:{id}"), note.as_bytes())?;
        let label = if status == "overridden" { label } else { None };
        self.store()
            .resolve_contest(
                tenant,
                id,
                status,
                actor,
                &sealed_note,
                label,
                now,
                self.audit(
                    tenant,
                    actor,
                    &format!("decision.contest_{status}"),
                    c.subject.to_string(),
                    json!({ "contest": id, "decision": c.decision_id, "label": label }),
                ),
            )
            .await
            .map_err(|e| match e {
                StoreError::Conflict(m) => AppError::new(ErrorKind::Conflict, "contest_closed", m),
                other => other.into(),
            })?;
        let c = self
            .store()
            .contest(tenant, id)
            .await?
            .ok_or_else(|| AppError::not_found("contest"))?;
        self.contest_view(c, Some(&key))
    }

    /// The review queue (or contests of any status), oldest due first. Reading statements is
    /// an audited PII read.
    pub async fn contests(
        &self,
        tenant: TenantId,
        actor: &str,
        status: Option<&str>,
    ) -> AppResult<Vec<ContestView>> {
        if let Some(s) = status
            && !["open", "upheld", "overridden"].contains(&s)
        {
            return Err(AppError::bad_request(
                "status_invalid",
                "the status is open, upheld or overridden",
            ));
        }
        let rows = self.store().list_contests(tenant, status, 1000).await?;
        let mut out = Vec::with_capacity(rows.len());
        for c in rows {
            let s = self.subject_row(tenant, c.subject).await?;
            let key = self.data_key(tenant, &s).await?;
            out.push(self.contest_view(c, key.as_ref())?);
        }
        if !out.is_empty() {
            self.store()
                .append_audit(vec![self.audit(
                    tenant,
                    actor,
                    "pii.read",
                    "contests".into(),
                    json!({ "what": "contest statements", "count": out.len() }),
                )])
                .await?;
        }
        Ok(out)
    }

    /// Labels from overridden contests: subject → corrected outcome, for training exports.
    pub async fn contest_labels(&self, tenant: TenantId) -> AppResult<BTreeMap<SubjectId, i64>> {
        Ok(self
            .store()
            .list_contests(tenant, Some("overridden"), 100_000)
            .await?
            .into_iter()
            .filter_map(|c| Some((c.subject, c.outcome_label?)))
            .collect())
    }

    /// One decision explained to the person it concerns, with its contest if any.
    pub async fn explain_decision(
        &self,
        tenant: TenantId,
        actor: &str,
        user_id: &str,
        decision_id: &str,
    ) -> AppResult<Value> {
        let (subject, decisions) = self.decisions_for(tenant, actor, user_id, 10_000).await?;
        let d = decisions
            .into_iter()
            .find(|d| d.id == decision_id)
            .ok_or_else(|| AppError::not_found("decision"))?;
        let outcome = d.outcome.clone().unwrap_or(Value::Null);
        let s = self.subject_row(tenant, subject).await?;
        let key = self.data_key(tenant, &s).await?;
        let contest = self
            .store()
            .contests_for(tenant, subject)
            .await?
            .into_iter()
            .rfind(|c| c.decision_id == decision_id)
            .map(|c| self.contest_view(c, key.as_ref()))
            .transpose()?;
        Ok(json!({
            "decision": d,
            "why": why_text(&outcome),
            "contest": contest,
            "how_to_contest": format!("POST /v1/subjects/{user_id}/decisions/{decision_id}/contest with your view; a person reviews it within {CONTEST_SLA_DAYS} days"),
        }))
    }
}

/// A lead score in plain language, from what the model actually used.
pub fn why_text(outcome: &Value) -> String {
    match outcome["kind"].as_str() {
        Some("journey_email") => {
            return crate::journeys::email_why_statements(outcome).join(" ");
        }
        Some("price_check") => {
            return crate::pricing::price_why(outcome);
        }
        Some("recommendations") => {
            let names: Vec<&str> = outcome["items"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|i| i["name"].as_str())
                        .take(5)
                        .collect()
                })
                .unwrap_or_default();
            return format!(
                "These products were recommended to you by a model, from your own purchases, because you allow personalised recommendations: {}. Products of sensitive categories are never personalised. Without that consent you get the same lists as everyone.",
                names.join("; ")
            );
        }
        _ => {}
    }
    let Some(p) = outcome["probability"].as_f64() else {
        return "This decision's details were erased with the person's data.".into();
    };
    // Reasons come strongest first; the sign of the contribution is the direction.
    let reasons = outcome["reasons"].as_array().cloned().unwrap_or_default();
    let pick = |raises: bool| -> Vec<String> {
        reasons
            .iter()
            .filter(|r| {
                let c = r["contribution"].as_f64().unwrap_or(0.0);
                if raises { c > 0.0 } else { c < 0.0 }
            })
            .take(3)
            .filter_map(|r| r["statement"].as_str().map(str::to_string))
            .collect()
    };
    let (up, down) = (pick(true), pick(false));
    let mut text = format!(
        "We estimated a {:.0}% chance of {} (tier {}).",
        p * 100.0,
        outcome["horizon"].as_str().unwrap_or("the outcome"),
        outcome["tier"].as_str().unwrap_or("?")
    );
    if !up.is_empty() {
        text.push_str(&format!(" What raised it: {}.", up.join("; ")));
    }
    if !down.is_empty() {
        text.push_str(&format!(" What lowered it: {}.", down.join("; ")));
    }
    text.push_str(" Protected characteristics such as age or gender are never used. You can contest this decision and a person will review it.");
    text
}

/// The SHA-256 of a receipt, for the person to keep.
pub fn receipt_digest(r: &ErasureReceipt) -> String {
    sha256_hex(serde_json::to_string(r).unwrap_or_default().as_bytes())
}

/// One export section (an array of JSON objects) as CSV: a column per top-level key in order
/// of first appearance; strings as they are, other values as JSON.
pub fn section_csv(rows: &[Value]) -> String {
    let mut cols: Vec<String> = Vec::new();
    for r in rows {
        if let Some(o) = r.as_object() {
            for k in o.keys() {
                if !cols.contains(k) {
                    cols.push(k.clone());
                }
            }
        }
    }
    let cell = |v: &Value| -> String {
        let s = match v {
            Value::Null => String::new(),
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        if s.contains([',', '"', '\n', '\r']) {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s
        }
    };
    let mut out = cols
        .iter()
        .map(|c| cell(&Value::String(c.clone())))
        .collect::<Vec<_>>()
        .join(",");
    out.push('\n');
    for r in rows {
        let line: Vec<String> = cols.iter().map(|c| cell(&r[c])).collect();
        out.push_str(&line.join(","));
        out.push('\n');
    }
    out
}
