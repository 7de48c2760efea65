//! The consent ledger API: grant and withdraw per purpose (the same call, either word), read the
//! current state with each purpose's decision, and the full history.

use candor_crypto::IdentifierKind;
use candor_store::{Alias, AuditDraft, Store};
use candor_types::{
    ConsentAction, ConsentRecord, ConsentSource, ConsentState, Scope, SubjectId, TenantId,
};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::{App, AppError, AppResult, Principal};

/// A consent change as the API receives it.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsentInput {
    /// `granted` or `withdrawn`.
    pub state: String,
    pub notice_version: Option<String>,
    /// SHA-256 (hex) of the notice text shown.
    pub notice_hash: Option<String>,
    /// `banner`, `api` (default) or `import`.
    pub source: Option<String>,
    /// A jurisdiction named in the policy, e.g. `eu`, `us_ca`.
    pub jurisdiction: Option<String>,
}

/// One purpose's current status for a subject.
#[derive(Clone, Debug, Serialize)]
pub struct PurposeStatus {
    pub purpose: String,
    pub basis: String,
    /// The latest ledger answer: `granted`, `withdrawn`, or `null` if never asked.
    pub consent: Option<&'static str>,
    /// What the policy decides now.
    pub allowed: bool,
    pub reason: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct ConsentView {
    pub subject: String,
    pub jurisdiction: String,
    pub purposes: Vec<PurposeStatus>,
    pub history: Vec<ConsentRecord>,
}

fn is_hex64(s: &str) -> bool {
    s.len() == 64 && s.chars().all(|c| c.is_ascii_hexdigit())
}

impl App {
    /// Appends one consent record for `purpose` (creating the subject if it is new).
    pub async fn set_consent(
        &self,
        principal: &Principal,
        external_id: &str,
        purpose: &str,
        input: ConsentInput,
    ) -> AppResult<ConsentView> {
        principal.require(Scope::Server)?;
        let purpose = self.purpose(purpose)?;
        let action: ConsentAction = input
            .state
            .parse()
            .map_err(|m: String| AppError::bad_request("invalid_consent_state", m))?;
        let source = match input.source.as_deref() {
            None => ConsentSource::Api,
            Some(s) => match s.parse() {
                Ok(src @ (ConsentSource::Api | ConsentSource::Banner | ConsentSource::Import)) => {
                    src
                }
                _ => {
                    return Err(AppError::bad_request(
                        "invalid_consent_source",
                        "source must be banner, api or import",
                    ));
                }
            },
        };
        if let Some(j) = &input.jurisdiction
            && !self.policy().has_jurisdiction(j)
        {
            return Err(AppError::bad_request(
                "unknown_jurisdiction",
                format!("`{j}` is not a jurisdiction defined in the policy"),
            ));
        }
        if let Some(h) = &input.notice_hash
            && !is_hex64(h)
        {
            return Err(AppError::bad_request(
                "invalid_notice_hash",
                "notice_hash must be the SHA-256 of the notice text, as 64 hex digits",
            ));
        }
        if input.notice_version.as_ref().is_some_and(|v| v.len() > 100) {
            return Err(AppError::bad_request(
                "invalid_notice_version",
                "notice_version is longer than 100 characters",
            ));
        }
        if external_id.is_empty() || external_id.chars().count() > candor_types::event::MAX_ID_LEN {
            return Err(AppError::bad_request(
                "invalid_subject_id",
                "subject id must be 1-256 characters",
            ));
        }
        let subject = match self.resolve_subject(principal.tenant, external_id).await {
            Ok(s) => s,
            Err(e) if e.code == "not_found" => {
                let tk = self.tenant_key(principal.tenant).await?;
                let alias = Alias {
                    kind: IdentifierKind::UserId,
                    blind: tk.blind_index(IdentifierKind::UserId, external_id),
                };
                let mut created = self
                    .create_subjects(
                        principal.tenant,
                        &tk,
                        [(candor_types::SubjectId::new(), vec![alias])],
                    )
                    .await?;
                created
                    .remove(&alias)
                    .ok_or_else(|| AppError::internal("consent", &"subject not created"))?
            }
            Err(e) => return Err(e),
        };
        if subject.wrapped_key.is_none() {
            return Err(AppError::new(
                crate::ErrorKind::Conflict,
                "subject_erased",
                "this person's data was erased",
            ));
        }
        let record = ConsentRecord {
            purpose: purpose.clone(),
            action,
            source,
            notice_version: input.notice_version,
            notice_hash: input.notice_hash,
            jurisdiction: input.jurisdiction,
            at: self.clock().now(),
        };
        let audit = AuditDraft {
            tenant: Some(principal.tenant),
            actor: principal.actor(),
            action: format!("consent.{}", action.as_str()),
            target: Some(subject.id.to_string()),
            details: json!({
                "purpose": purpose, "source": source.as_str(),
                "notice_version": record.notice_version, "jurisdiction": record.jurisdiction,
            }),
        };
        self.store()
            .append_consents(principal.tenant, subject.id, vec![record], vec![audit])
            .await?;
        self.metrics()
            .consent_change(purpose.as_str(), action.as_str());
        self.consent_view_of(principal.tenant, subject.id).await
    }

    /// Current consent per purpose, with the policy's decision, and the full ledger.
    pub async fn consent_view(
        &self,
        principal: &Principal,
        external_id: &str,
    ) -> AppResult<ConsentView> {
        principal.require(Scope::Server)?;
        let subject = self.resolve_subject(principal.tenant, external_id).await?;
        self.consent_view_of(principal.tenant, subject.id).await
    }

    pub(crate) async fn consent_view_of(
        &self,
        tenant: TenantId,
        subject: SubjectId,
    ) -> AppResult<ConsentView> {
        let history = self.store().consent_ledger(tenant, subject).await?;
        let state = ConsentState::from_ledger(&history);
        let purposes = self
            .policy()
            .purposes()
            .map(|def| {
                let decision = self.policy().decide(tenant, subject, &def.name, &state);
                PurposeStatus {
                    purpose: def.name.to_string(),
                    basis: def.basis.to_string(),
                    consent: state
                        .answer(&def.name)
                        .map(|g| if g { "granted" } else { "withdrawn" }),
                    allowed: decision.is_ok(),
                    reason: match decision {
                        Ok(g) => g.reasons().join("; "),
                        Err(d) => d.reason,
                    },
                }
            })
            .collect();
        Ok(ConsentView {
            subject: subject.to_string(),
            jurisdiction: state
                .jurisdiction()
                .unwrap_or(self.policy().default_jurisdiction())
                .to_owned(),
            purposes,
            history,
        })
    }
}
