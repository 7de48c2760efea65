//! Operator use cases: tenants, API keys, authentication, policy loads, the audit log and
//! retention.

use candor_store::{
    AuditBreak, AuditDraft, NewApiKey, Store, SweepCounts, TenantRow, verify_chain,
};
use candor_types::{KeyId, Scope, TenantId, Timestamp};
use serde::Serialize;
use serde_json::json;

use crate::{App, AppError, AppResult, ErrorKind, Principal};

/// One chain of the audit log, verified.
#[derive(Clone, Debug, Serialize)]
pub struct ChainReport {
    pub chain: String,
    pub entries: i64,
}

#[derive(Clone, Debug, Serialize)]
pub struct VerifyReport {
    pub chains: Vec<ChainReport>,
}

#[derive(Clone, Debug, Serialize)]
pub struct TenantSweep {
    pub tenant: String,
    pub category: String,
    pub cutoff: Timestamp,
    pub counts: SweepCounts,
}

fn valid_tenant_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

impl App {
    /// Records in the global audit chain that this policy (by content hash) is in force.
    pub async fn record_policy_load(&self, actor: &str) -> AppResult<()> {
        self.store()
            .append_audit(vec![AuditDraft {
                tenant: None,
                actor: actor.to_owned(),
                action: "policy.loaded".into(),
                target: None,
                details: json!({ "sha256": self.policy().source_hash() }),
            }])
            .await?;
        Ok(())
    }

    pub async fn create_tenant(&self, name: &str, actor: &str) -> AppResult<TenantRow> {
        if !valid_tenant_name(name) {
            return Err(AppError::bad_request(
                "invalid_tenant_name",
                "tenant names are 1-64 characters: letters, digits, '-', '_' and '.'",
            ));
        }
        let id = TenantId::new();
        let (_, wrapped) = self.master().new_tenant_key(id)?;
        let row = TenantRow {
            id,
            name: name.to_owned(),
            wrapped_key: wrapped,
            created_at: self.clock().now(),
        };
        self.store()
            .create_tenant(
                &row,
                AuditDraft {
                    tenant: None,
                    actor: actor.to_owned(),
                    action: "tenant.created".into(),
                    target: Some(id.to_string()),
                    details: json!({ "name": name }),
                },
            )
            .await?;
        Ok(row)
    }

    /// Finds a tenant by name or id.
    pub async fn find_tenant(&self, name_or_id: &str) -> AppResult<TenantRow> {
        if let Ok(id) = name_or_id.parse::<TenantId>()
            && let Some(t) = self.store().tenant(id).await?
        {
            return Ok(t);
        }
        self.store()
            .tenant_by_name(name_or_id)
            .await?
            .ok_or_else(|| AppError::not_found("tenant"))
    }

    /// Creates an API key; returns its id and the secret, which is shown once and never stored.
    pub async fn create_key(
        &self,
        tenant: TenantId,
        scope: Scope,
        label: Option<String>,
        actor: &str,
    ) -> AppResult<(KeyId, String)> {
        let key = self.api_keys().new_key(scope)?;
        let id = KeyId::new();
        self.store()
            .create_api_key(
                &NewApiKey {
                    id,
                    tenant,
                    scope,
                    hash: key.hash,
                    label: label.clone(),
                },
                AuditDraft {
                    tenant: Some(tenant),
                    actor: actor.to_owned(),
                    action: "key.created".into(),
                    target: Some(id.to_string()),
                    details: json!({ "scope": scope.as_str(), "label": label }),
                },
            )
            .await?;
        Ok((id, key.secret.to_string()))
    }

    pub async fn revoke_key(&self, principal: &Principal, id: KeyId) -> AppResult<()> {
        principal.require(Scope::Admin)?;
        let done = self
            .store()
            .revoke_api_key(
                principal.tenant,
                id,
                self.clock().now(),
                AuditDraft {
                    tenant: Some(principal.tenant),
                    actor: principal.actor(),
                    action: "key.revoked".into(),
                    target: Some(id.to_string()),
                    details: json!({}),
                },
            )
            .await?;
        // The revoked key stops at once here (other processes: within `KEY_TTL`).
        self.forget_keys();
        if done {
            Ok(())
        } else {
            Err(AppError::not_found("API key"))
        }
    }

    /// Resolves an API key secret to its principal.
    pub async fn authenticate(&self, secret: &str) -> AppResult<Principal> {
        if secret.is_empty() || secret.len() > 200 {
            return Err(AppError::unauthorized());
        }
        let hash = self.api_keys().hash(secret);
        if let Some(p) = self.cached_key(&hash) {
            return Ok(p);
        }
        let row = self
            .store()
            .api_key_by_hash(&hash)
            .await?
            .ok_or_else(AppError::unauthorized)?;
        let p = Principal {
            tenant: row.tenant,
            scope: row.scope,
            key_id: row.id,
            staff: false,
        };
        self.cache_key(hash, p);
        Ok(p)
    }

    /// Walks every audit chain from its first entry and checks each link and hash.
    /// `Ok(Err(break))` names the first broken entry.
    pub async fn verify_audit_log(&self) -> AppResult<Result<VerifyReport, AuditBreak>> {
        self.verify_chains(None).await
    }

    /// [`App::verify_audit_log`] for one chain (a tenant's), or all of them.
    pub(crate) async fn verify_chains(
        &self,
        only: Option<&str>,
    ) -> AppResult<Result<VerifyReport, AuditBreak>> {
        let mut chains = Vec::new();
        for (chain, head_seq, head_hash) in self.store().audit_chains().await? {
            if only.is_some_and(|o| o != chain) {
                continue;
            }
            let mut v = verify_chain(&chain);
            loop {
                let page = self
                    .store()
                    .audit_entries(&chain, v.last_seq(), 1000)
                    .await?;
                if page.is_empty() {
                    break;
                }
                for e in &page {
                    if let Err(b) = v.feed(e) {
                        return Ok(Err(b));
                    }
                }
            }
            match v.finish(head_seq, &head_hash) {
                Ok(n) => chains.push(ChainReport { chain, entries: n }),
                Err(b) => return Ok(Err(b)),
            }
        }
        Ok(Ok(VerifyReport { chains }))
    }

    /// Deletes, in every tenant, data older than its category's retention period.
    pub async fn sweep_retention(&self) -> AppResult<Vec<TenantSweep>> {
        let now = self.clock().now();
        let mut out = Vec::new();
        for t in self.store().list_tenants().await? {
            let mut total = SweepCounts::default();
            for c in self.policy().categories() {
                let cutoff = now.minus_days(c.retention_days);
                let counts = self.store().sweep_category(t.id, &c.name, cutoff).await?;
                total.events_deleted += counts.events_deleted;
                total.event_parts_removed += counts.event_parts_removed;
                total.fields_deleted += counts.fields_deleted;
                if counts != SweepCounts::default() {
                    out.push(TenantSweep {
                        tenant: t.id.to_string(),
                        category: c.name.to_string(),
                        cutoff,
                        counts,
                    });
                }
            }
            if total != SweepCounts::default() {
                self.store()
                    .append_audit(vec![AuditDraft {
                        tenant: Some(t.id),
                        actor: "system:retention".into(),
                        action: "retention.swept".into(),
                        target: None,
                        details: serde_json::to_value(&total)
                            .map_err(|e| AppError::internal("retention", &e))?,
                    }])
                    .await?;
            }
        }
        // Price history and anonymous checks past `[pricing] history_days`; segment pins of
        // windows that ended.
        let pricing = self.policy().pricing();
        for t in self.store().list_tenants().await? {
            let swept = candor_store::PricingStore::sweep_prices(
                self.store(),
                t.id,
                now.minus_days(pricing.history_days),
                candor_types::Timestamp(now.0 - 2 * pricing.segment_window_ms),
            )
            .await?;
            if swept.checks + swept.history > 0 {
                self.store()
                    .append_audit(vec![AuditDraft {
                        tenant: Some(t.id),
                        actor: "system:retention".into(),
                        action: "retention.swept".into(),
                        target: Some("pricing".into()),
                        details: serde_json::to_value(&swept)
                            .map_err(|e| AppError::internal("retention", &e))?,
                    }])
                    .await?;
            }
        }
        // Assistant conversations past `[assistant] retention_days` since their last message.
        let days = self.policy().assistant().retention_days;
        for t in self.store().list_tenants().await? {
            let swept = candor_store::AssistantStore::sweep_conversations(
                self.store(),
                t.id,
                now.minus_days(days),
            )
            .await?;
            if swept.conversations > 0 {
                self.store()
                    .append_audit(vec![AuditDraft {
                        tenant: Some(t.id),
                        actor: "system:retention".into(),
                        action: "retention.swept".into(),
                        target: Some("assistant".into()),
                        details: serde_json::to_value(&swept)
                            .map_err(|e| AppError::internal("retention", &e))?,
                    }])
                    .await?;
            }
        }
        // Expired browser sessions and sign-in links hold nothing worth keeping.
        candor_store::WebStore::purge_sessions(self.store(), now).await?;
        Ok(out)
    }
}

impl From<AuditBreak> for AppError {
    fn from(b: AuditBreak) -> Self {
        AppError::new(ErrorKind::Conflict, "audit_chain_broken", b.to_string())
    }
}
