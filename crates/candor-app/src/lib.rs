//! Candor's use cases. Everything a transport (HTTP, CLI) does goes through [`App`].
//!
//! Subject data is reached only through [`App::grant`] → a [`Grant`] minted by the policy →
//! store reads that take the grant. There is no other read path to events or personal fields.

mod access;
pub mod assistant;
mod audit_html;
mod card;
mod clock;
mod consent;
mod error;
pub mod fairness;
pub mod features;
mod ingest;
pub mod journeys;
mod mail;
mod metrics;
mod ops;
pub mod pricing;
pub mod pricing_audit;
pub mod pricing_html;
pub mod recs;
pub mod rights;
mod scoring;
mod smtp;
pub mod uplift_html;
pub mod web;
pub mod webhook;
mod writer;

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};

use candor_crypto::{ApiKeyHasher, MasterKey, TenantKey};
use candor_policy::Policy;
use candor_store::AnyStore;
use candor_types::{KeyId, Scope, TenantId};

pub use access::{EventData, SubjectData, Who};
pub use audit_html::audit_report_html;
pub use card::model_card_html;
pub use clock::{Clock, ManualClock, SystemClock};
pub use consent::{ConsentInput, ConsentView, PurposeStatus};
pub use error::{AppError, AppResult, ErrorKind};
pub use fairness::{AuditRequest, FairnessRecord, MonitorRequest, RecordedAudit};
pub use ingest::{EventResult, IngestOptions, IngestReport};
pub use metrics::Metrics;
pub use ops::{ChainReport, TenantSweep, VerifyReport};
pub use rights::{
    ContestView, CreatedRequest, ErasureReceipt, NewRequest, RequestView, Verification,
};
pub use scoring::{
    DecisionView, FeatureExport, LEAD_MODEL, LeadArtifact, MAX_SCORE_BATCH, ModelView, ReasonView,
    ScoreInput, ScoreResult, TrainRequest, TrainedModel,
};

/// Who is calling: the tenant and scope of an authenticated API key, or a staff member
/// signed in to the console (whose role the console checks before it calls the app).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Principal {
    pub tenant: TenantId,
    pub scope: Scope,
    /// The API key's id, or the staff account's.
    pub key_id: KeyId,
    pub staff: bool,
}

impl Principal {
    pub fn require(&self, needed: Scope) -> AppResult<()> {
        if self.scope.allows(needed) {
            Ok(())
        } else {
            Err(AppError::forbidden_scope(needed))
        }
    }

    /// How the principal is named in the audit log.
    pub fn actor(&self) -> String {
        if self.staff {
            format!("staff:{}", self.key_id)
        } else {
            format!("key:{}", self.key_id)
        }
    }
}

struct Inner {
    store: AnyStore,
    policy: Policy,
    master: MasterKey,
    api_keys: ApiKeyHasher,
    clock: Arc<dyn Clock>,
    metrics: Metrics,
    tenant_keys: RwLock<HashMap<TenantId, TenantKey>>,
    /// Parsed lead models by artifact digest (artifacts never change), so scoring does not
    /// reload, re-parse and rebuild TreeSHAP tables on every request.
    models: RwLock<HashMap<String, Arc<scoring::LeadArtifact>>>,
    /// Parsed recommendation models by artifact digest.
    recs: RwLock<HashMap<String, Arc<recs::RecsArtifact>>>,
    /// What recommendation serving reads on every request, per tenant: the serving model and
    /// the items it may not recommend. Re-read after [`recs::SERVING_TTL`], at once after this
    /// process changes either.
    recs_serving: RwLock<HashMap<TenantId, Arc<recs::Serving>>>,
    /// Group commit of served-list decisions (see [`App::record_decision`]).
    decisions: OnceLock<tokio::sync::mpsc::Sender<DecisionJob>>,
    writer: OnceLock<writer::Writer>,
    /// The SMTP relay and email templates, checked on first use.
    mailer: OnceLock<Arc<journeys::Mailer>>,
    /// Where sign-in emails are written when there is no relay (see [`App::set_outbox`]).
    outbox: OnceLock<std::path::PathBuf>,
    /// Reports of past campaigns shown in the console (see [`App::set_reports_dir`]).
    reports: OnceLock<std::path::PathBuf>,
    /// The price guard's writer and caches.
    pricing: pricing::PricingState,
    /// The assistant's catalog and help indexes, its turn writer.
    assistant: assistant::AssistantState,
    /// Authenticated API keys by their hash, for [`KEY_TTL`]: a key revoked through this
    /// process stops at once, one revoked through another within the TTL.
    keys: RwLock<HashMap<[u8; 32], (std::time::Instant, Principal)>>,
}

/// How long an authenticated API key is trusted before it is looked up again.
pub const KEY_TTL: std::time::Duration = std::time::Duration::from_secs(1);

/// The application: store, policy, keys and clock. Cheap to clone.
#[derive(Clone)]
pub struct App {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("backend", &self.inner.store.backend_name())
            .finish_non_exhaustive()
    }
}

impl App {
    pub fn new(store: AnyStore, policy: Policy, master: MasterKey, clock: Arc<dyn Clock>) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                policy,
                api_keys: master.api_key_hasher(),
                master,
                clock,
                metrics: Metrics::default(),
                tenant_keys: RwLock::new(HashMap::new()),
                models: RwLock::new(HashMap::new()),
                recs: RwLock::new(HashMap::new()),
                recs_serving: RwLock::new(HashMap::new()),
                decisions: OnceLock::new(),
                writer: OnceLock::new(),
                mailer: OnceLock::new(),
                outbox: OnceLock::new(),
                reports: OnceLock::new(),
                pricing: pricing::PricingState::default(),
                assistant: assistant::AssistantState::default(),
                keys: RwLock::new(HashMap::new()),
            }),
        }
    }

    pub fn store(&self) -> &AnyStore {
        &self.inner.store
    }

    pub fn policy(&self) -> &Policy {
        &self.inner.policy
    }

    pub fn clock(&self) -> &dyn Clock {
        self.inner.clock.as_ref()
    }

    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// The group-commit writer, started on first use (inside the runtime).
    pub(crate) fn writer(&self) -> &writer::Writer {
        self.inner
            .writer
            .get_or_init(|| writer::Writer::start(self.inner.store.clone()))
    }

    pub(crate) fn api_keys(&self) -> &ApiKeyHasher {
        &self.inner.api_keys
    }

    pub(crate) fn master(&self) -> &MasterKey {
        &self.inner.master
    }

    /// Creates subjects (each with a fresh data key) for aliases nobody has yet; where a
    /// concurrent writer created one first, that one is returned. Keyed by alias.
    pub(crate) async fn create_subjects(
        &self,
        tenant: TenantId,
        tk: &TenantKey,
        new: impl IntoIterator<Item = (candor_types::SubjectId, Vec<candor_store::Alias>)>,
    ) -> AppResult<HashMap<candor_store::Alias, candor_store::SubjectRow>> {
        use candor_store::Store as _;
        let rows = new
            .into_iter()
            .map(|(id, aliases)| {
                let (_, wrapped_key) = tk.new_data_key(id)?;
                Ok(candor_store::NewSubject {
                    id,
                    wrapped_key,
                    aliases,
                })
            })
            .collect::<AppResult<Vec<_>>>()?;
        Ok(self
            .store()
            .ensure_subjects(tenant, rows, self.clock().now())
            .await?)
    }

    pub(crate) fn cached_key(&self, hash: &[u8; 32]) -> Option<Principal> {
        let cache = self.inner.keys.read().ok()?;
        let (at, p) = cache.get(hash)?;
        (at.elapsed() < KEY_TTL).then_some(*p)
    }

    pub(crate) fn cache_key(&self, hash: [u8; 32], p: Principal) {
        if let Ok(mut cache) = self.inner.keys.write() {
            if cache.len() > 10_000 {
                cache.retain(|_, (at, _)| at.elapsed() < KEY_TTL);
            }
            cache.insert(hash, (std::time::Instant::now(), p));
        }
    }

    /// Forgets every cached key (after a revocation in this process).
    pub(crate) fn forget_keys(&self) {
        if let Ok(mut cache) = self.inner.keys.write() {
            cache.clear();
        }
    }

    pub(crate) fn cached_model(&self, digest: &str) -> Option<Arc<scoring::LeadArtifact>> {
        self.inner.models.read().ok()?.get(digest).cloned()
    }

    pub(crate) fn cache_model(&self, digest: &str, artifact: Arc<scoring::LeadArtifact>) {
        if let Ok(mut cache) = self.inner.models.write() {
            cache.insert(digest.to_owned(), artifact);
        }
    }

    fn decision_queue(&self) -> &tokio::sync::mpsc::Sender<DecisionJob> {
        self.inner.decisions.get_or_init(|| {
            let (tx, rx) = tokio::sync::mpsc::channel(4096);
            tokio::spawn(decision_batches(self.store().clone(), rx));
            tx
        })
    }

    /// Records one decision through the group commit without waiting for it: used for served
    /// recommendation lists, whose record is committed within one batch (some 10 ms) after
    /// the answer. Reads of a person's decisions, exports and erasure flush the queue first;
    /// `candor serve` flushes it at shutdown. Lead scores are written before they are answered.
    pub(crate) async fn record_decision_soon(
        &self,
        tenant: TenantId,
        row: candor_store::DecisionRow,
        audit: candor_store::AuditDraft,
    ) -> AppResult<()> {
        self.decision_queue()
            .send(DecisionJob {
                tenant,
                entry: Some((row, audit)),
                done: None,
            })
            .await
            .map_err(|_| AppError::internal("decisions", &"the decision writer stopped"))
    }

    /// Waits until every decision (and price check) queued before the call is committed.
    pub async fn flush_decisions(&self) -> AppResult<()> {
        self.flush_checks().await?;
        let Some(tx) = self.inner.decisions.get() else {
            return Ok(());
        };
        let (done, wait) = tokio::sync::oneshot::channel();
        tx.send(DecisionJob {
            tenant: TenantId(uuid::Uuid::nil()),
            entry: None,
            done: Some(done),
        })
        .await
        .map_err(|_| AppError::internal("decisions", &"the decision writer stopped"))?;
        wait.await
            .map_err(|_| AppError::internal("decisions", &"the decision writer stopped"))?
    }

    pub(crate) fn cached_recs(&self, digest: &str) -> Option<Arc<recs::RecsArtifact>> {
        self.inner.recs.read().ok()?.get(digest).cloned()
    }

    pub(crate) fn cache_recs(&self, digest: &str, artifact: Arc<recs::RecsArtifact>) {
        if let Ok(mut cache) = self.inner.recs.write() {
            cache.insert(digest.to_owned(), artifact);
        }
    }

    pub(crate) fn cached_serving(&self, tenant: TenantId) -> Option<Arc<recs::Serving>> {
        let s = self.inner.recs_serving.read().ok()?.get(&tenant).cloned()?;
        (s.read_at.elapsed() < recs::SERVING_TTL).then_some(s)
    }

    pub(crate) fn cache_serving(&self, tenant: TenantId, serving: Option<Arc<recs::Serving>>) {
        if let Ok(mut cache) = self.inner.recs_serving.write() {
            match serving {
                Some(s) => cache.insert(tenant, s),
                None => cache.remove(&tenant),
            };
        }
    }

    /// The tenant's key, unwrapped once and kept in memory.
    pub(crate) async fn tenant_key(&self, tenant: TenantId) -> AppResult<TenantKey> {
        if let Ok(cache) = self.inner.tenant_keys.read()
            && let Some(k) = cache.get(&tenant)
        {
            return Ok(k.clone());
        }
        use candor_store::Store as _;
        let row = self
            .store()
            .tenant(tenant)
            .await?
            .ok_or_else(|| AppError::not_found("tenant"))?;
        let key = self.master().unwrap_tenant_key(tenant, &row.wrapped_key)?;
        if let Ok(mut cache) = self.inner.tenant_keys.write() {
            cache.insert(tenant, key.clone());
        }
        Ok(key)
    }
}

pub(crate) struct DecisionJob {
    tenant: TenantId,
    /// `None`: a flush marker, answered once everything before it is committed.
    entry: Option<(candor_store::DecisionRow, candor_store::AuditDraft)>,
    done: Option<tokio::sync::oneshot::Sender<AppResult<()>>>,
}

/// Writes queued decisions in batches (one transaction per tenant and batch). A batch that
/// fails as a whole (e.g. one person was erased meanwhile) is retried one decision at a time;
/// a decision about an erased person is dropped (nothing is recorded for them).
/// How long the decision writer waits for more decisions before committing a batch.
const DECISION_LINGER: std::time::Duration = std::time::Duration::from_millis(10);

async fn decision_batches(store: AnyStore, mut rx: tokio::sync::mpsc::Receiver<DecisionJob>) {
    use candor_store::Store as _;
    while let Some(first) = rx.recv().await {
        // Gather what arrives within `DECISION_LINGER` (or until a flush asks): one commit
        // (one fsync) per batch instead of per list.
        let deadline = tokio::time::Instant::now() + DECISION_LINGER;
        let mut flushing = first.entry.is_none();
        let mut jobs = vec![first];
        while jobs.len() < 512 && !flushing {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(j)) => {
                    flushing = j.entry.is_none();
                    jobs.push(j);
                }
                Ok(None) | Err(_) => break,
            }
        }
        let mut by_tenant: HashMap<
            TenantId,
            Vec<(candor_store::DecisionRow, candor_store::AuditDraft)>,
        > = HashMap::new();
        let mut flushes = Vec::new();
        for j in jobs {
            match j.entry {
                Some(e) => by_tenant.entry(j.tenant).or_default().push(e),
                None => flushes.extend(j.done),
            }
        }
        for (tenant, entries) in by_tenant {
            let rows: Vec<_> = entries.iter().map(|e| e.0.clone()).collect();
            let audits: Vec<_> = entries.iter().map(|e| e.1.clone()).collect();
            if let Err(e) = store.insert_decisions(tenant, &rows, audits).await {
                tracing::debug!(error = %e, "decision batch retried one by one");
                for (row, audit) in entries {
                    if let Err(e) = store
                        .insert_decisions(tenant, std::slice::from_ref(&row), vec![audit])
                        .await
                    {
                        tracing::warn!(error = %e, decision = %row.id, "decision not recorded");
                    }
                }
            }
        }
        for f in flushes {
            let _ = f.send(Ok(()));
        }
    }
}
