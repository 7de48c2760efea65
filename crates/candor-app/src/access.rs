//! The purpose-bound access layer: the only read path to subject data.
//!
//! `grant` asks the policy (which alone can mint a [`Grant`]); the store's reads take the
//! grant and return only its categories; sealed values are opened with the subject's data key.
//! Any error while deciding is a denial.

use std::collections::BTreeMap;

use candor_crypto::IdentifierKind;
use candor_policy::{Denial, Grant};
use candor_store::{AuditDraft, Store, SubjectRow};
use candor_types::{ConsentState, Purpose, Scope, SubjectId, TenantId, Timestamp};
use serde::Serialize;
use serde_json::{Value, json};

use crate::ingest::event_part_label;
use crate::{App, AppError, AppResult, Principal};

/// One event as a purpose may see it.
#[derive(Clone, Debug, Serialize)]
pub struct EventData {
    pub id: String,
    #[serde(rename = "messageId")]
    pub message_id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub name: Option<String>,
    pub category: String,
    #[serde(rename = "occurredAt")]
    pub occurred_at: Timestamp,
    #[serde(rename = "receivedAt")]
    pub received_at: Timestamp,
    /// Stored fields by data category, only the categories the purpose may read.
    pub fields: BTreeMap<String, Value>,
}

/// What one purpose may read about one subject, and why.
#[derive(Clone, Debug, Serialize)]
pub struct SubjectData {
    pub subject: SubjectId,
    pub purpose: String,
    pub basis: String,
    pub jurisdiction: String,
    pub categories: Vec<String>,
    pub reasons: Vec<String>,
    pub profile: BTreeMap<String, Value>,
    pub events: Vec<EventData>,
}

/// How a caller names a person: by the store's user id (or anonymous id), as the API does, or
/// by Candor's own id, as the privacy center does (its session knows whom it signed in).
#[derive(Clone, Copy, Debug)]
pub enum Who<'a> {
    External(&'a str),
    Subject(SubjectId),
}

impl Who<'_> {
    /// How the person is named back to the caller (a served list's `user_id`).
    pub fn label(&self) -> String {
        match self {
            Who::External(s) => (*s).to_string(),
            Who::Subject(id) => id.to_string(),
        }
    }
}

impl<'a> From<&'a str> for Who<'a> {
    fn from(s: &'a str) -> Self {
        Who::External(s)
    }
}

impl<'a> From<&'a String> for Who<'a> {
    fn from(s: &'a String) -> Self {
        Who::External(s)
    }
}

impl From<SubjectId> for Who<'static> {
    fn from(id: SubjectId) -> Self {
        Who::Subject(id)
    }
}

impl App {
    /// Finds a subject by the store's `userId` (or, failing that, `anonymousId`), or by id.
    pub async fn resolve_subject<'w>(
        &self,
        tenant: TenantId,
        who: impl Into<Who<'w>>,
    ) -> AppResult<SubjectRow> {
        let s = match who.into() {
            Who::External(external_id) => {
                let tk = self.tenant_key(tenant).await?;
                let aliases = [IdentifierKind::UserId, IdentifierKind::AnonymousId].map(|kind| {
                    candor_store::Alias {
                        kind,
                        blind: tk.blind_index(kind, external_id),
                    }
                });
                let found = self.store().find_subjects(tenant, &aliases).await?;
                aliases
                    .iter()
                    .find_map(|a| found.get(a).cloned())
                    .ok_or_else(|| AppError::not_found("subject"))?
            }
            Who::Subject(id) => self
                .store()
                .subject(tenant, id)
                .await?
                .ok_or_else(|| AppError::not_found("subject"))?,
        };
        // An erased person's identifiers point to the suppression subject: they are gone.
        if s.id.to_string() == candor_store::SUPPRESSED {
            return Err(AppError::new(
                crate::ErrorKind::NotFound,
                "subject_erased",
                "this person's data was erased",
            ));
        }
        Ok(s)
    }

    /// Asks the policy whether `purpose` may use `subject`'s data now. Errors deny.
    pub async fn grant(
        &self,
        tenant: TenantId,
        subject: SubjectId,
        purpose: &Purpose,
    ) -> Result<Grant, Denial> {
        let [g] = self.grants(tenant, subject, [purpose]).await;
        g
    }

    /// [`App::grant`] for several purposes, reading the person's state and consent once.
    pub async fn grants<const N: usize>(
        &self,
        tenant: TenantId,
        subject: SubjectId,
        purposes: [&Purpose; N],
    ) -> [Result<Grant, Denial>; N] {
        let deny_all = |code: &'static str, reason: String| {
            purposes.map(|p| {
                Err(Denial {
                    purpose: p.to_string(),
                    code,
                    reason: reason.clone(),
                })
            })
        };
        // Restriction of processing (GDPR Art. 18) and erasure deny every purpose.
        match self.store().subject_state(tenant, subject).await {
            Ok(Some(st)) if st.erased_at.is_some() => {
                return deny_all("erased", "the person's data was erased".into());
            }
            Ok(Some(st)) if st.restricted_at.is_some() => {
                return deny_all(
                    "restricted",
                    format!(
                        "the person restricted processing on {}; their data is only stored",
                        st.restricted_at.map(|t| t.to_string()).unwrap_or_default()
                    ),
                );
            }
            Ok(_) => {}
            Err(e) => {
                tracing::error!(error = %e, "subject state unreadable; denying");
                return deny_all(
                    "error",
                    "the person's state could not be checked; access is denied".into(),
                );
            }
        }
        match self.store().consent_ledger(tenant, subject).await {
            Ok(ledger) => {
                let state = ConsentState::from_ledger(&ledger);
                purposes.map(|p| self.policy().decide(tenant, subject, p, &state))
            }
            Err(e) => {
                tracing::error!(error = %e, "consent ledger unreadable; denying");
                deny_all(
                    "error",
                    "consent could not be checked; access is denied".into(),
                )
            }
        }
    }

    /// Crypto-shreds a subject: destroys their data key, so every value sealed with it
    /// (identifiers, personal traits, personal event fields) is unreadable from now on, in the
    /// live database and in every backup; nothing new is stored for them. Admin only; audited.
    pub async fn shred_subject(
        &self,
        principal: &Principal,
        external_id: &str,
    ) -> AppResult<SubjectId> {
        principal.require(Scope::Admin)?;
        let subject = self.resolve_subject(principal.tenant, external_id).await?;
        self.store()
            .shred_subject_key(
                principal.tenant,
                subject.id,
                AuditDraft {
                    tenant: Some(principal.tenant),
                    actor: principal.actor(),
                    action: "subject.key_destroyed".into(),
                    target: Some(subject.id.to_string()),
                    details: json!({}),
                },
            )
            .await?;
        Ok(subject.id)
    }

    /// Opens what a grant allows of a person (with their data key, if it still exists): their
    /// profile fields and up to `limit` recent events, with the number of sealed values opened
    /// (for the `pii.read` audit).
    pub(crate) async fn open_subject(
        &self,
        key: Option<&candor_crypto::DataKey>,
        grant: &Grant,
        limit: u32,
    ) -> AppResult<(BTreeMap<String, Value>, Vec<EventData>, usize)> {
        let mut opened = 0usize;
        let mut profile = BTreeMap::new();
        for f in self.store().fields_for(grant).await? {
            let Some(k) = key else { continue };
            let bytes = k.open(&f.path, &f.sealed)?;
            let v: Value =
                serde_json::from_slice(&bytes).map_err(|e| AppError::internal("access", &e))?;
            profile.insert(f.path, v);
            opened += 1;
        }
        let mut events = Vec::new();
        for e in self.store().events_for(grant, limit).await? {
            let mut fields: BTreeMap<String, Value> = e
                .plain
                .into_iter()
                .map(|(c, v)| (c.to_string(), v))
                .collect();
            if let Some(k) = key {
                for (c, s) in e.sealed {
                    let bytes = k.open(&event_part_label(e.id, &c), &s)?;
                    let v: Value = serde_json::from_slice(&bytes)
                        .map_err(|e| AppError::internal("access", &e))?;
                    fields.insert(c.to_string(), v);
                    opened += 1;
                }
            }
            events.push(EventData {
                id: e.id.to_string(),
                message_id: e.message_id,
                kind: e.kind,
                name: e.name,
                category: e.category.to_string(),
                occurred_at: e.occurred_at,
                received_at: e.received_at,
                fields,
            });
        }
        Ok((profile, events, opened))
    }

    /// Parses a purpose name against the policy.
    pub fn purpose(&self, name: &str) -> AppResult<Purpose> {
        self.policy().parse_purpose(name).ok_or_else(|| {
            AppError::bad_request(
                "unknown_purpose",
                format!("`{name}` is not a purpose defined in the policy"),
            )
        })
    }

    /// Reads what `purpose` may see of a subject. Opening sealed data is audited as a PII read.
    pub async fn read_subject(
        &self,
        principal: &Principal,
        external_id: &str,
        purpose: &str,
        limit: u32,
    ) -> AppResult<SubjectData> {
        principal.require(Scope::Server)?;
        let purpose = self.purpose(purpose)?;
        let subject = self.resolve_subject(principal.tenant, external_id).await?;
        let grant = self
            .grant(principal.tenant, subject.id, &purpose)
            .await
            .map_err(AppError::denied)?;
        let key = self.data_key(principal.tenant, &subject).await?;
        let (profile, events, opened) = self.open_subject(key.as_ref(), &grant, limit).await?;
        if opened > 0 {
            self.store()
                .append_audit(vec![AuditDraft {
                    tenant: Some(principal.tenant),
                    actor: principal.actor(),
                    action: "pii.read".into(),
                    target: Some(subject.id.to_string()),
                    details: json!({
                        "purpose": grant.purpose(),
                        "categories": grant.categories(),
                        "sealed_values": opened,
                    }),
                }])
                .await?;
        }
        Ok(SubjectData {
            subject: subject.id,
            purpose: grant.purpose().to_string(),
            basis: grant.basis().to_string(),
            jurisdiction: grant.jurisdiction().to_owned(),
            categories: grant.categories().iter().map(|c| c.to_string()).collect(),
            reasons: grant.reasons().to_vec(),
            profile,
            events,
        })
    }
}
