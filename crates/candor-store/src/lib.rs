//! Candor's storage: one [`Store`] trait, a SQLite backend (the embedded default) and a
//! PostgreSQL backend (production), each with its own migrations, and one conformance suite
//! (`tests/it`) that both must pass.
//!
//! Invariants kept here:
//! - every query names its tenant; no query crosses tenants;
//! - subject data is read only with a [`Grant`], and only the categories the grant allows come
//!   back (filtering happens here, not in callers);
//! - personal values are written only as [`Sealed`] bytes; aliases only as blind indexes;
//! - the audit log is append-only and hash-chained per chain (one chain per tenant, one global).

/// Calls the backend's implementation of a trait method ([`Store`] and the traits beside it).
macro_rules! dispatch {
    ($self:ident, $s:ident => $e:expr) => {
        match $self {
            AnyStore::Sqlite($s) => $e.await,
            AnyStore::Postgres($s) => $e.await,
        }
    };
}

pub mod assistant;
mod audit;
mod backend;
pub mod postgres;
pub mod pricing;
pub mod sqlite;
mod web;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;

use serde::Serialize;
use serde_json::Value;

pub use assistant::{
    AssistantStore, ConversationRow, ConversationSweep, MessageRow, ProductRow, TicketRow,
    TurnWrite,
};
pub use audit::{AuditBreak, chain_name, entry_hash, verify_chain};
use candor_crypto::{BlindIndex, IdentifierKind, Sealed};
use candor_policy::Grant;
use candor_types::{
    Category, ConsentRecord, EventId, EventKind, KeyId, Purpose, Scope, SubjectId, TenantId,
    Timestamp,
};
pub use postgres::PgStore;
pub use pricing::{
    CheckLog, CheckRow, CheckWrite, PinKey, PriceAlertRow, PriceAuditRow, PriceCancel,
    PricePointRow, PriceRow, PriceSweep, PricingStore, PriorPrices, ProxyRow,
};
pub use sqlite::SqliteStore;
pub use web::{
    ConsentCount, ContactRow, HeldSummary, Overview, SessionRow, SessionSeed, SigninLink, StaffRow,
    WebStore,
};

/// Storage failures. Messages never contain stored values (they may be personal data).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    #[error("conflict: {0}")]
    Conflict(String),
    /// A fairness gate refuses the step (the model's latest audit failed, or there is none).
    #[error("refused by the fairness gate: {0}")]
    Gate(String),
    #[error("stored data is inconsistent: {0}")]
    Corrupt(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

impl StoreError {
    fn is_unique_violation(e: &sqlx::Error) -> bool {
        matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[derive(Clone, Debug)]
pub struct TenantRow {
    pub id: TenantId,
    pub name: String,
    pub wrapped_key: Sealed,
    pub created_at: Timestamp,
}

#[derive(Clone, Debug)]
pub struct NewApiKey {
    pub id: KeyId,
    pub tenant: TenantId,
    pub scope: Scope,
    pub hash: [u8; 32],
    pub label: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ApiKeyRow {
    pub id: KeyId,
    pub tenant: TenantId,
    pub scope: Scope,
    pub label: Option<String>,
    pub created_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
}

/// A subject: its id and wrapped data key (`None` once crypto-shredded).
#[derive(Clone, Debug)]
pub struct SubjectRow {
    pub id: SubjectId,
    pub wrapped_key: Option<Sealed>,
    pub created_at: Timestamp,
}

/// A blind-indexed identifier that points to a subject.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Alias {
    pub kind: IdentifierKind,
    pub blind: BlindIndex,
}

/// A subject to create if none of its aliases exists yet.
#[derive(Clone, Debug)]
pub struct NewSubject {
    pub id: SubjectId,
    pub wrapped_key: Sealed,
    pub aliases: Vec<Alias>,
}

/// A personal field of a subject (a trait such as `traits.email`), always sealed.
#[derive(Clone, Debug)]
pub struct FieldRow {
    pub subject: SubjectId,
    pub path: String,
    pub category: Category,
    pub sealed: Sealed,
    pub updated_at: Timestamp,
}

/// An event as written: its fields grouped by data category, personal categories sealed.
#[derive(Clone, Debug)]
pub struct EventRow {
    pub id: EventId,
    pub message_id: String,
    pub subject: SubjectId,
    pub kind: EventKind,
    pub name: Option<String>,
    pub category: Category,
    /// Purposes whose grant allowed storing the event.
    pub purposes: Vec<Purpose>,
    pub plain: BTreeMap<Category, Value>,
    pub sealed: BTreeMap<Category, Sealed>,
    pub occurred_at: Timestamp,
    pub received_at: Timestamp,
}

/// An event as read through a grant: only the allowed categories are present.
#[derive(Clone, Debug)]
pub struct EventView {
    pub id: EventId,
    pub message_id: String,
    pub kind: String,
    pub name: Option<String>,
    pub category: Category,
    pub plain: BTreeMap<Category, Value>,
    pub sealed: BTreeMap<Category, Sealed>,
    pub occurred_at: Timestamp,
    pub received_at: Timestamp,
}

/// An audit entry to append. `details` must never hold personal data.
#[derive(Clone, Debug, Serialize)]
pub struct AuditDraft {
    pub tenant: Option<TenantId>,
    pub actor: String,
    pub action: String,
    pub target: Option<String>,
    pub details: Value,
}

/// A stored audit entry.
#[derive(Clone, Debug, Serialize)]
pub struct AuditEntry {
    pub chain: String,
    pub seq: i64,
    pub at: Timestamp,
    pub actor: String,
    pub action: String,
    pub target: Option<String>,
    pub details: String,
    #[serde(serialize_with = "ser_hex")]
    pub prev_hash: Vec<u8>,
    #[serde(serialize_with = "ser_hex")]
    pub hash: Vec<u8>,
}

fn ser_hex<S: serde::Serializer>(b: &[u8], s: S) -> std::result::Result<S::Ok, S::Error> {
    let mut out = String::with_capacity(b.len() * 2);
    for x in b {
        out.push_str(&format!("{x:02x}"));
    }
    s.serialize_str(&out)
}

/// What the ingestion planner sees inside the write transaction.
#[derive(Debug, Default)]
pub struct IngestSnapshot {
    /// Each requested subject's consent ledger, oldest first.
    pub ledgers: HashMap<SubjectId, Vec<ConsentRecord>>,
    /// Requested message ids that are already stored.
    pub existing_message_ids: HashSet<String>,
    /// (number of ledger records, sum of their sequence numbers) for the requested subjects:
    /// the ledger is append-only with never-reused sequence numbers, so any change moves it.
    pub fingerprint: (i64, i64),
    /// Requested subjects erased since they were resolved (their key is gone).
    pub erased: HashSet<SubjectId>,
}

/// A write planned outside the transaction from a snapshot, used as is if the snapshot's
/// fingerprint and the existing message ids are unchanged inside the transaction.
#[derive(Debug)]
pub struct Prepared {
    pub fingerprint: (i64, i64),
    pub existing_message_ids: HashSet<String>,
    pub write: IngestWrite,
}

/// Everything one ingestion request writes, in one transaction.
#[derive(Debug, Default)]
pub struct IngestWrite {
    pub consents: Vec<(SubjectId, ConsentRecord)>,
    pub fields: Vec<FieldRow>,
    pub events: Vec<EventRow>,
    pub audit: Vec<AuditDraft>,
    /// Identifiers learnt from traits (an email address), pointed at their person.
    pub aliases: Vec<(SubjectId, Alias)>,
    /// Journey enrolments and exits the events cause, applied in order after the events.
    pub journeys: Vec<JourneyOp>,
    /// Order lines of `Order Completed` events as price history (without their buyer).
    pub prices: Vec<PriceRow>,
    /// Orders an `Order Cancelled` event cancelled: their lines stop counting as prices.
    pub price_cancels: Vec<PriceCancel>,
    /// Products named by product events (`name`, `category`, `price`, `url`) for the
    /// assistant's catalog; no personal data.
    pub products: Vec<ProductRow>,
}

/// What an ingested event does to journeys.
#[derive(Clone, Debug, PartialEq)]
pub enum JourneyOp {
    /// A trigger: the journey's first step (see [`Store::enroll_steps`]).
    Enroll(NewStep),
    /// An exit event at `at`: pending steps of these journeys triggered at or before `at` end.
    Exit {
        subject: SubjectId,
        journeys: Vec<String>,
        at: Timestamp,
        reason: String,
    },
}

/// One job's outcome in a group: the write and, per planned event, whether it was inserted;
/// `None` when the planner wrote nothing.
pub type Committed = Option<(IngestWrite, Vec<bool>)>;

/// A single-job ingest's outcome: the planner's extra output, the write, inserted flags.
pub type Ingested<T> = (T, IngestWrite, Vec<bool>);

/// A planner: called inside the write transaction with the snapshot; `None` writes nothing.
/// It may be called again if a group transaction is retried, so it must be repeatable.
pub type PlanFn = Box<dyn Fn(&IngestSnapshot) -> Option<IngestWrite> + Send + Sync>;

/// One ingestion request's share of a group transaction.
pub struct IngestJob {
    pub tenant: TenantId,
    pub subjects: Vec<SubjectId>,
    pub message_ids: Vec<String>,
    /// Optimistically prepared write (see [`Prepared`]); `plan` runs only if it is stale.
    pub prepared: Option<Prepared>,
    pub plan: PlanFn,
}

impl std::fmt::Debug for IngestJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IngestJob")
            .field("tenant", &self.tenant)
            .field("subjects", &self.subjects.len())
            .field("message_ids", &self.message_ids.len())
            .finish_non_exhaustive()
    }
}

/// Rows removed by one retention pass.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SweepCounts {
    pub events_deleted: u64,
    pub event_parts_removed: u64,
    pub fields_deleted: u64,
}

/// A model to register (it starts as a draft).
#[derive(Clone, Debug)]
pub struct NewModel {
    pub name: String,
    pub kind: String,
    /// SHA-256 of the artifact, hex.
    pub digest: String,
    /// The serialized model.
    pub artifact: Vec<u8>,
    /// Training data summary, features, parameters, metrics: no personal data.
    pub card: Value,
}

/// A registered model version. `artifact` is empty in listings.
#[derive(Clone, Debug, Serialize)]
pub struct ModelRow {
    #[serde(skip)]
    pub tenant: TenantId,
    pub version: i64,
    pub name: String,
    pub kind: String,
    /// `draft`, `audited`, `approved`, `active` or `retired`.
    pub status: String,
    pub digest: String,
    #[serde(skip)]
    pub artifact: Vec<u8>,
    pub card: Value,
    pub created_at: Timestamp,
}

/// One lifecycle step of a model, with who did it and why.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct ModelTransition {
    pub version: i64,
    pub from: String,
    pub to: String,
    pub actor: String,
    pub reason: String,
    pub at: Timestamp,
}

/// A fairness audit to record: `validation` (gates the model's lifecycle) or `monitoring` (over
/// live decisions in `period`). The report holds group metrics and counts, no personal values.
#[derive(Clone, Debug)]
pub struct NewModelAudit {
    pub version: i64,
    pub kind: String,
    pub passed: bool,
    pub report: Value,
    pub period: Option<(Timestamp, Timestamp)>,
}

/// A gate breached by a monitoring audit.
#[derive(Clone, Debug)]
pub struct NewAlert {
    pub gate: String,
    pub subject: String,
    /// `None` when the value could not be computed (too few groups to compare).
    pub value: Option<f64>,
    pub limit: f64,
}

/// An admin's override of a failed validation audit.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct AuditOverride {
    pub actor: String,
    pub reason: String,
    pub at: Timestamp,
}

/// A recorded fairness audit.
#[derive(Clone, Debug, Serialize)]
pub struct ModelAuditRow {
    pub id: i64,
    pub version: i64,
    pub kind: String,
    pub passed: bool,
    pub report: Value,
    pub actor: String,
    pub created_at: Timestamp,
    pub period_start: Option<Timestamp>,
    pub period_end: Option<Timestamp>,
    #[serde(rename = "override")]
    pub override_: Option<AuditOverride>,
}

/// A recorded fairness alert.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct AlertRow {
    pub id: i64,
    pub version: i64,
    pub audit_id: i64,
    pub gate: String,
    pub subject: String,
    pub value: Option<f64>,
    pub limit: f64,
    pub created_at: Timestamp,
}

/// Every table that holds a subject's data, by name: the export has one section per table
/// and erasure reaches each (a test enumerates the schema against this list).
pub const SUBJECT_TABLES: &[&str] = &[
    "subjects",
    "subject_aliases",
    "subject_fields",
    "consents",
    "events",
    "decisions",
    "decision_contests",
    "dsr_requests",
    "rec_factors",
    "journey_steps",
    "emails",
    "contact_requests",
    "web_sessions",
    "signin_links",
    "assistant_conversations",
    "assistant_messages",
    "assistant_tickets",
];

/// The purpose recommendation factors serve: withdrawing it deletes them.
pub const RECS_PURPOSE: &str = "personalization";

/// The subject every erased person's identifiers point to: the nil id, never holding a key.
pub const SUPPRESSED: &str = "00000000-0000-0000-0000-000000000000";

/// What one erasure removed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ErasureCounts {
    pub events: u64,
    pub subject_fields: u64,
    pub consents: u64,
    pub decisions: u64,
    pub decision_contests: u64,
    pub rec_factors: u64,
    pub journey_steps: u64,
    pub emails: u64,
    pub contact_requests: u64,
    pub assistant_conversations: u64,
    pub assistant_messages: u64,
    pub assistant_tickets: u64,
    pub web_sessions: u64,
    /// Requests keep their dates and outcome as proof; their sealed details are deleted.
    pub dsr_requests_scrubbed: u64,
    /// Identifiers (keyed hashes) moved to the suppression list.
    pub identifiers_suppressed: u64,
    pub key_destroyed: bool,
    /// The subject had been erased before: nothing was left.
    pub already_erased: bool,
}

/// A subject's tombstone and restriction state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SubjectState {
    pub id: SubjectId,
    pub created_at: Timestamp,
    pub erased_at: Option<Timestamp>,
    pub restricted_at: Option<Timestamp>,
}

/// A data-subject request as stored.
#[derive(Clone, Debug, Serialize)]
pub struct RequestRow {
    pub id: String,
    pub subject: SubjectId,
    pub kind: String,
    pub regime: String,
    pub status: String,
    pub received_at: Timestamp,
    pub acknowledge_by: Option<Timestamp>,
    pub acknowledged_at: Option<Timestamp>,
    pub due_at: Timestamp,
    pub extended: bool,
    pub extension_notice: Option<String>,
    #[serde(skip)]
    pub token_hash: Option<Vec<u8>>,
    pub token_expires_at: Option<Timestamp>,
    pub verified_at: Option<Timestamp>,
    pub verified_by: Option<String>,
    pub completed_at: Option<Timestamp>,
    pub rejection_reason: Option<String>,
    #[serde(skip)]
    pub sealed: Option<Sealed>,
    pub result: Option<Value>,
}

/// A contest of a decision as stored.
#[derive(Clone, Debug)]
pub struct ContestRow {
    pub id: String,
    pub decision_id: String,
    pub subject: SubjectId,
    pub status: String,
    pub sealed: Sealed,
    pub created_at: Timestamp,
    pub due_at: Timestamp,
    pub reviewer: Option<String>,
    pub note_sealed: Option<Sealed>,
    pub outcome_label: Option<i64>,
    pub resolved_at: Option<Timestamp>,
}

/// A step of a journey a person is due for.
#[derive(Clone, Debug, PartialEq)]
pub struct NewStep {
    pub id: String,
    pub subject: SubjectId,
    pub journey: String,
    pub step: i32,
    pub email: String,
    /// The triggering event's id: with subject, journey and step, the idempotency key.
    pub trigger_id: String,
    pub triggered_at: Timestamp,
    pub due_at: Timestamp,
    /// In the journey's holdout: it waits and exits like any step (`reason = 'holdout'` while
    /// pending) and is settled as `holdout`, never sent.
    pub holdout: bool,
}

/// A journey step as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct StepRow {
    pub id: String,
    pub tenant: TenantId,
    pub subject: SubjectId,
    pub journey: String,
    pub step: i32,
    pub email: String,
    pub trigger_id: String,
    pub triggered_at: Timestamp,
    pub due_at: Timestamp,
    /// `pending`, `sent`, `called`, `skipped`, `exited` or `holdout`.
    pub status: String,
    pub reason: Option<String>,
    pub finished_at: Option<Timestamp>,
}

/// An email handed to the relay.
#[derive(Clone, Debug, PartialEq)]
pub struct EmailRow {
    pub id: String,
    pub subject: SubjectId,
    pub step_id: String,
    pub journey: String,
    pub message_id: String,
    /// SHA-256 of the per-recipient unsubscribe token.
    pub token_hash: Vec<u8>,
    pub sent_at: Timestamp,
    /// Its content was chosen by a model (recommendations).
    pub ai_content: bool,
    /// Opens and clicks may be recorded (the person allows analytics).
    pub tracking: bool,
    pub opened_at: Option<Timestamp>,
    pub clicked_at: Option<Timestamp>,
    pub bounced_at: Option<Timestamp>,
    pub complained_at: Option<Timestamp>,
    pub unsubscribed_at: Option<Timestamp>,
}

/// What happened to a claimed step.
#[derive(Clone, Debug)]
pub enum StepOutcome {
    Sent(Box<EmailRow>),
    /// Not sent, for the reason given (no consent, cap, no address, ...).
    Skipped(String),
    /// The person left the journey (an exit event since the trigger).
    Exited(String),
    /// Due, and in the journey's holdout: recorded, never sent.
    Holdout,
    /// A webhook step whose call was answered 2xx.
    Called,
}

/// A journey step with its email and what followed, for measurement.
#[derive(Clone, Debug, PartialEq)]
pub struct JourneyRow {
    pub step: StepRow,
    pub email: Option<EmailRow>,
    /// The person did the conversion event within the window after the email (or, for a
    /// holdout step, after the time it would have been sent).
    pub converted: bool,
    /// Conversion events the person did before the trigger (the segment: new, returning, loyal).
    pub prior_conversions: i64,
}

/// Something that happened to an email after it was sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EmailMark {
    Opened,
    Clicked,
    Bounced,
    Complained,
    Unsubscribed,
}

/// An automated decision about a subject. The outcome and explanation are sealed with the
/// subject's data key; the rest is metadata without personal values.
#[derive(Clone, Debug)]
pub struct DecisionRow {
    pub id: String,
    pub subject: SubjectId,
    pub purpose: String,
    pub kind: String,
    pub model_version: Option<i64>,
    /// SHA-256 of the inputs the decision used, hex.
    pub inputs_digest: String,
    pub sealed: Sealed,
    pub created_at: Timestamp,
}

/// The storage contract. Both backends implement it and pass the same conformance suite.
pub trait Store: Send + Sync {
    /// Applies pending migrations (idempotent; safe when several nodes start at once).
    fn migrate(&self) -> impl Future<Output = Result<()>> + Send;

    fn create_tenant(
        &self,
        row: &TenantRow,
        audit: AuditDraft,
    ) -> impl Future<Output = Result<()>> + Send;
    fn tenant(&self, id: TenantId) -> impl Future<Output = Result<Option<TenantRow>>> + Send;
    fn tenant_by_name(&self, name: &str) -> impl Future<Output = Result<Option<TenantRow>>> + Send;
    fn list_tenants(&self) -> impl Future<Output = Result<Vec<TenantRow>>> + Send;

    fn create_api_key(
        &self,
        key: &NewApiKey,
        audit: AuditDraft,
    ) -> impl Future<Output = Result<()>> + Send;
    /// The live (not revoked) key with this hash.
    fn api_key_by_hash(
        &self,
        hash: &[u8; 32],
    ) -> impl Future<Output = Result<Option<ApiKeyRow>>> + Send;
    fn list_api_keys(
        &self,
        tenant: TenantId,
    ) -> impl Future<Output = Result<Vec<ApiKeyRow>>> + Send;
    fn revoke_api_key(
        &self,
        tenant: TenantId,
        id: KeyId,
        at: Timestamp,
        audit: AuditDraft,
    ) -> impl Future<Output = Result<bool>> + Send;

    /// Subjects for the given aliases (those that exist), keyed by alias.
    fn find_subjects(
        &self,
        tenant: TenantId,
        aliases: &[Alias],
    ) -> impl Future<Output = Result<HashMap<Alias, SubjectRow>>> + Send;
    /// Creates the subjects whose aliases do not exist yet; where another writer created one
    /// first, that one wins. Returns the subject for every alias of every request.
    fn ensure_subjects(
        &self,
        tenant: TenantId,
        new: Vec<NewSubject>,
        at: Timestamp,
    ) -> impl Future<Output = Result<HashMap<Alias, SubjectRow>>> + Send;
    fn subject(
        &self,
        tenant: TenantId,
        id: SubjectId,
    ) -> impl Future<Output = Result<Option<SubjectRow>>> + Send;
    /// Crypto-shredding: destroys the subject's wrapped data key, so everything sealed with it
    /// is unreadable from then on (in backups too). `false` if it was already destroyed.
    fn shred_subject_key(
        &self,
        tenant: TenantId,
        id: SubjectId,
        audit: AuditDraft,
    ) -> impl Future<Output = Result<bool>> + Send;

    /// Group commit: runs several ingestion jobs in ONE transaction, in order. For each job it
    /// reads the subjects' consent ledgers and which message ids exist (seeing the writes of
    /// earlier jobs in the group), calls the job's planner, and writes what it returns. One
    /// commit (one fsync) covers the group. Returns, per job, the write and for each planned
    /// event whether it was inserted (`false`: duplicate message id).
    fn ingest_group(
        &self,
        jobs: &mut [IngestJob],
    ) -> impl Future<Output = Result<Vec<Committed>>> + Send;

    /// The planner's view (ledgers, existing message ids, fingerprint) read outside any write
    /// transaction, for preparing a write optimistically.
    fn ingest_snapshot(
        &self,
        tenant: TenantId,
        subjects: &[SubjectId],
        message_ids: &[String],
    ) -> impl Future<Output = Result<IngestSnapshot>> + Send;

    /// One ingestion transaction for one job (see [`Store::ingest_group`]); `plan` may fail
    /// with its own error, and then nothing is written.
    fn ingest<F, T, E>(
        &self,
        tenant: TenantId,
        subjects: Vec<SubjectId>,
        message_ids: Vec<String>,
        plan: F,
    ) -> impl Future<Output = Result<std::result::Result<Ingested<T>, E>>> + Send
    where
        F: FnOnce(&IngestSnapshot) -> std::result::Result<(IngestWrite, T), E> + Send + 'static,
        T: Send + 'static,
        E: Send + 'static,
    {
        async move {
            type Slot<T, E> = std::sync::Mutex<Option<std::result::Result<T, E>>>;
            let plan = std::sync::Mutex::new(Some(plan));
            let result: std::sync::Arc<Slot<T, E>> =
                std::sync::Arc::new(std::sync::Mutex::new(None));
            let out = result.clone();
            let mut job = IngestJob {
                tenant,
                subjects,
                message_ids,
                prepared: None,
                plan: Box::new(move |snap| {
                    let f = plan.lock().ok()?.take()?;
                    match f(snap) {
                        Ok((write, extra)) => {
                            if let Ok(mut o) = out.lock() {
                                *o = Some(Ok(extra));
                            }
                            Some(write)
                        }
                        Err(e) => {
                            if let Ok(mut o) = out.lock() {
                                *o = Some(Err(e));
                            }
                            None
                        }
                    }
                }),
            };
            let mut done = self.ingest_group(std::slice::from_mut(&mut job)).await?;
            let taken = result.lock().ok().and_then(|mut r| r.take());
            match (done.pop().flatten(), taken) {
                (Some((write, inserted)), Some(Ok(extra))) => Ok(Ok((extra, write, inserted))),
                (_, Some(Err(e))) => Ok(Err(e)),
                _ => Err(StoreError::Corrupt(
                    "ingest planner produced no result".into(),
                )),
            }
        }
    }

    /// Appends consent records for one subject (the ledger is append-only) with audit entries.
    fn append_consents(
        &self,
        tenant: TenantId,
        subject: SubjectId,
        records: Vec<ConsentRecord>,
        audit: Vec<AuditDraft>,
    ) -> impl Future<Output = Result<()>> + Send;
    fn consent_ledger(
        &self,
        tenant: TenantId,
        subject: SubjectId,
    ) -> impl Future<Output = Result<Vec<ConsentRecord>>> + Send;

    /// The subject's events, newest first, with only the categories `grant` allows.
    fn events_for(
        &self,
        grant: &Grant,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<EventView>>> + Send;
    /// The subject's personal fields in the categories `grant` allows.
    fn fields_for(&self, grant: &Grant) -> impl Future<Output = Result<Vec<FieldRow>>> + Send;

    fn append_audit(&self, entries: Vec<AuditDraft>) -> impl Future<Output = Result<()>> + Send;
    /// Entries of one chain with `seq > after`, in order, at most `limit`.
    fn audit_entries(
        &self,
        chain: &str,
        after: i64,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<AuditEntry>>> + Send;
    fn audit_chains(&self) -> impl Future<Output = Result<Vec<(String, i64, Vec<u8>)>>> + Send;

    /// Deletes whole events of `category` that occurred before `cutoff`, removes parts of
    /// `category` from other events older than `cutoff`, and deletes fields of that category
    /// not updated since `cutoff`.
    fn sweep_category(
        &self,
        tenant: TenantId,
        category: &Category,
        cutoff: Timestamp,
    ) -> impl Future<Output = Result<SweepCounts>> + Send;

    /// Number of stored events of a tenant (for metrics and tests).
    fn count_events(&self, tenant: TenantId) -> impl Future<Output = Result<i64>> + Send;

    /// Registers a model as the next version (1, 2, …) of the tenant, status `draft`.
    fn insert_model(
        &self,
        tenant: TenantId,
        new: &NewModel,
        at: Timestamp,
        audit: AuditDraft,
    ) -> impl Future<Output = Result<i64>> + Send;
    fn model(
        &self,
        tenant: TenantId,
        version: i64,
    ) -> impl Future<Output = Result<Option<ModelRow>>> + Send;
    /// All versions, oldest first, without artifacts.
    fn list_models(&self, tenant: TenantId) -> impl Future<Output = Result<Vec<ModelRow>>> + Send;
    /// The active version of a model name, without its artifact (load it with [`Store::model`]).
    fn active_model(
        &self,
        tenant: TenantId,
        name: &str,
    ) -> impl Future<Output = Result<Option<ModelRow>>> + Send;
    /// The version and digest of a model name to serve: the active version, else the newest.
    /// Reads only the columns stored before the artifact (SQLite walks a row's overflow pages
    /// to reach columns after a large blob).
    fn serving_model(
        &self,
        tenant: TenantId,
        name: &str,
    ) -> impl Future<Output = Result<Option<(i64, String)>>> + Send;
    /// Moves a model to `to` if its status is one of `allowed_from` (else `Conflict`),
    /// recording the step; activating retires the model of the same name that was active.
    /// Returns the previous status.
    #[allow(clippy::too_many_arguments)]
    fn transition_model(
        &self,
        tenant: TenantId,
        version: i64,
        allowed_from: &[&str],
        to: &str,
        actor: &str,
        reason: &str,
        at: Timestamp,
        audit: AuditDraft,
    ) -> impl Future<Output = Result<String>> + Send;
    fn model_transitions(
        &self,
        tenant: TenantId,
        version: i64,
    ) -> impl Future<Output = Result<Vec<ModelTransition>>> + Send;

    /// Records decisions in one transaction; fails (`Conflict`) if a subject was erased.
    fn insert_decisions(
        &self,
        tenant: TenantId,
        rows: &[DecisionRow],
        audit: Vec<AuditDraft>,
    ) -> impl Future<Output = Result<()>> + Send;
    /// A subject's decisions, newest first.
    fn decisions_for(
        &self,
        tenant: TenantId,
        subject: SubjectId,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<DecisionRow>>> + Send;
    /// Subjects of a tenant in id order, after `after`.
    fn list_subjects(
        &self,
        tenant: TenantId,
        after: Option<SubjectId>,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<SubjectRow>>> + Send;
    /// Decisions of one kind made in `[from, to)`, oldest first, after the `(created_at, id)`
    /// cursor.
    #[allow(clippy::too_many_arguments)]
    fn decisions_in(
        &self,
        tenant: TenantId,
        kind: &str,
        from: Timestamp,
        to: Timestamp,
        after: Option<(Timestamp, String)>,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<DecisionRow>>> + Send;

    /// Records a fairness audit and its alerts in one transaction. A validation audit moves a
    /// `draft` model to `audited` when it passes, and an `audited` one back to `draft` when it
    /// fails (recorded as lifecycle steps). Returns the audit's id.
    fn insert_model_audit(
        &self,
        tenant: TenantId,
        new: &NewModelAudit,
        alerts: &[NewAlert],
        actor: &str,
        at: Timestamp,
        audit: AuditDraft,
    ) -> impl Future<Output = Result<i64>> + Send;
    /// A model's audits of `kind` (all kinds for `None`), newest first.
    fn model_audits(
        &self,
        tenant: TenantId,
        version: i64,
        kind: Option<&str>,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<ModelAuditRow>>> + Send;
    /// Records an override of the model's latest validation audit, which must have failed
    /// and not been overridden (else `Conflict`); a `draft` model becomes `audited`.
    #[allow(clippy::too_many_arguments)]
    fn override_model_audit(
        &self,
        tenant: TenantId,
        version: i64,
        actor: &str,
        reason: &str,
        at: Timestamp,
        audit: AuditDraft,
    ) -> impl Future<Output = Result<i64>> + Send;
    /// Erases a subject in one transaction: deletes their events, fields, consents, decisions
    /// and contests, scrubs their requests, moves their identifiers to the suppression list,
    /// destroys their data key and keeps a tombstone. Waits for ingestion in flight (row lock).
    fn erase_subject(
        &self,
        tenant: TenantId,
        id: SubjectId,
        at: Timestamp,
        audit: AuditDraft,
    ) -> impl Future<Output = Result<ErasureCounts>> + Send;
    /// Writes (or replaces) sealed fields of live subjects, audited: rectification. `aliases`: a corrected email address
    /// (see the ingest's rules for addresses).
    fn upsert_fields(
        &self,
        tenant: TenantId,
        fields: Vec<FieldRow>,
        aliases: &[(SubjectId, Alias)],
        audit: AuditDraft,
    ) -> impl Future<Output = Result<()>> + Send;
    fn subject_state(
        &self,
        tenant: TenantId,
        id: SubjectId,
    ) -> impl Future<Output = Result<Option<SubjectState>>> + Send;
    /// Sets or lifts the restriction of processing, recorded with `audit`.
    fn set_restricted(
        &self,
        tenant: TenantId,
        id: SubjectId,
        at: Option<Timestamp>,
        audit: AuditDraft,
    ) -> impl Future<Output = Result<()>> + Send;
    /// The subject's aliases: (kind, blind index).
    fn subject_aliases(
        &self,
        tenant: TenantId,
        id: SubjectId,
    ) -> impl Future<Output = Result<Vec<(String, Vec<u8>)>>> + Send;
    /// Events of the grant's subject in (occurred_at, id) order after the cursor, only the
    /// grant's categories: the export's stream.
    fn events_page(
        &self,
        grant: &Grant,
        after: Option<(Timestamp, EventId)>,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<EventView>>> + Send;
    /// Inserts a request, or updates it if its status is still `expected` (else `Conflict`).
    fn save_request(
        &self,
        tenant: TenantId,
        row: &RequestRow,
        expected: Option<&str>,
        audit: AuditDraft,
    ) -> impl Future<Output = Result<()>> + Send;
    fn request(
        &self,
        tenant: TenantId,
        id: &str,
    ) -> impl Future<Output = Result<Option<RequestRow>>> + Send;
    /// Requests of a tenant: open ones (not completed or rejected) for `open_only`, by due date.
    fn list_requests(
        &self,
        tenant: TenantId,
        open_only: bool,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<RequestRow>>> + Send;
    fn requests_for(
        &self,
        tenant: TenantId,
        subject: SubjectId,
    ) -> impl Future<Output = Result<Vec<RequestRow>>> + Send;
    /// Inserts a contest (the decision must belong to the subject, else `NotFound`; one open
    /// contest per decision, else `Conflict`).
    fn insert_contest(
        &self,
        tenant: TenantId,
        row: &ContestRow,
        audit: AuditDraft,
    ) -> impl Future<Output = Result<()>> + Send;
    /// Resolves an open contest (else `Conflict`).
    #[allow(clippy::too_many_arguments)]
    fn resolve_contest(
        &self,
        tenant: TenantId,
        id: &str,
        status: &str,
        reviewer: &str,
        note: &Sealed,
        label: Option<i64>,
        at: Timestamp,
        audit: AuditDraft,
    ) -> impl Future<Output = Result<()>> + Send;
    fn contest(
        &self,
        tenant: TenantId,
        id: &str,
    ) -> impl Future<Output = Result<Option<ContestRow>>> + Send;
    /// Contests by status (all for `None`), oldest due first.
    fn list_contests(
        &self,
        tenant: TenantId,
        status: Option<&str>,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<ContestRow>>> + Send;
    fn contests_for(
        &self,
        tenant: TenantId,
        subject: SubjectId,
    ) -> impl Future<Output = Result<Vec<ContestRow>>> + Send;

    /// Stores sealed recommendation factors of people (one row per person and model version),
    /// replacing earlier rows of the same version.
    fn insert_rec_factors(
        &self,
        tenant: TenantId,
        version: i64,
        rows: &[(SubjectId, Sealed)],
    ) -> impl Future<Output = Result<()>> + Send;
    fn rec_factors(
        &self,
        tenant: TenantId,
        version: i64,
        subject: SubjectId,
    ) -> impl Future<Output = Result<Option<Sealed>>> + Send;
    /// Every person with factors in a model version, in id order after `after`.
    fn rec_subjects(
        &self,
        tenant: TenantId,
        version: i64,
        after: Option<SubjectId>,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<(SubjectId, Sealed)>>> + Send;
    /// A person's factors in every model version (export).
    fn rec_factors_for(
        &self,
        tenant: TenantId,
        subject: SubjectId,
    ) -> impl Future<Output = Result<Vec<(i64, Sealed)>>> + Send;

    /// Sets whether an item is in stock (audited).
    fn set_item_stock(
        &self,
        tenant: TenantId,
        item: &str,
        in_stock: bool,
        at: Timestamp,
        audit: AuditDraft,
    ) -> impl Future<Output = Result<()>> + Send;
    /// Items marked out of stock.
    fn out_of_stock(&self, tenant: TenantId) -> impl Future<Output = Result<Vec<String>>> + Send;

    /// Enrols people in journeys: a step is inserted unless its idempotency key exists or the
    /// person already has a pending step of that journey. Holdout steps are stored finished.
    /// Returns how many were inserted.
    fn enroll_steps(
        &self,
        tenant: TenantId,
        steps: &[NewStep],
    ) -> impl Future<Output = Result<u64>> + Send;
    /// Ends a person's pending steps of these journeys as `exited` (every step, whatever its
    /// trigger time: an unsubscribe or objection).
    fn exit_steps(
        &self,
        tenant: TenantId,
        subject: SubjectId,
        journeys: &[String],
        reason: &str,
        at: Timestamp,
    ) -> impl Future<Output = Result<u64>> + Send;
    /// Claims up to `limit` pending steps due by `now` (any tenant) for `lease_ms`: another
    /// node skips them (`FOR UPDATE SKIP LOCKED` on PostgreSQL); a crashed node's lease ends.
    fn claim_due_steps(
        &self,
        now: Timestamp,
        lease_ms: i64,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<StepRow>>> + Send;
    /// Finishes a claimed step in one transaction with its email record and decision, the
    /// journey's next step and an audit entry. `false` (and nothing written) if it is no longer
    /// pending (another node finished it, or the person was erased).
    #[allow(clippy::too_many_arguments)]
    fn finish_step(
        &self,
        tenant: TenantId,
        step_id: &str,
        outcome: &StepOutcome,
        decision: Option<&DecisionRow>,
        next: Option<&NewStep>,
        audit: AuditDraft,
        at: Timestamp,
    ) -> impl Future<Output = Result<bool>> + Send;
    /// Undoes a send the relay refused: the email record and decision go, the step is pending
    /// again, due at `due_at`.
    fn reopen_step(
        &self,
        tenant: TenantId,
        step_id: &str,
        due_at: Timestamp,
    ) -> impl Future<Output = Result<()>> + Send;
    /// Puts a claimed step back, due at `due_at` (quiet hours, a full cap window).
    fn defer_step(
        &self,
        tenant: TenantId,
        step_id: &str,
        due_at: Timestamp,
    ) -> impl Future<Output = Result<()>> + Send;
    /// Marketing emails sent to a person since `since`.
    fn emails_sent_since(
        &self,
        tenant: TenantId,
        subject: SubjectId,
        since: Timestamp,
    ) -> impl Future<Output = Result<u32>> + Send;
    /// The email an unsubscribe token (its SHA-256) belongs to, with its tenant.
    fn email_by_token(
        &self,
        token_hash: &[u8],
    ) -> impl Future<Output = Result<Option<(TenantId, EmailRow)>>> + Send;
    /// The email with this Message-ID.
    fn email_by_message_id(
        &self,
        tenant: TenantId,
        message_id: &str,
    ) -> impl Future<Output = Result<Option<EmailRow>>> + Send;
    /// Records an open, click, bounce, complaint or unsubscribe (the first time counts).
    fn mark_email(
        &self,
        tenant: TenantId,
        email_id: &str,
        mark: EmailMark,
        at: Timestamp,
    ) -> impl Future<Output = Result<()>> + Send;
    /// A person's journey steps and emails (for their export).
    fn journeys_for(
        &self,
        tenant: TenantId,
        subject: SubjectId,
    ) -> impl Future<Output = Result<(Vec<StepRow>, Vec<EmailRow>)>> + Send;
    /// A journey's steps, their emails and conversions (`conversion` within `window_ms`).
    fn journey_rows(
        &self,
        tenant: TenantId,
        journey: &str,
        conversion: &str,
        window_ms: i64,
    ) -> impl Future<Output = Result<Vec<JourneyRow>>> + Send;

    /// Alerts of a tenant, newest first, with ids below `before` (all for `None`).
    fn fairness_alerts(
        &self,
        tenant: TenantId,
        before: Option<i64>,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<AlertRow>>> + Send;
}

/// The backend chosen at start-up.
#[derive(Clone, Debug)]
pub enum AnyStore {
    Sqlite(SqliteStore),
    Postgres(PgStore),
}

impl AnyStore {
    /// Opens `postgres://…` / `postgresql://…` URLs with PostgreSQL, anything else
    /// (`sqlite://path` or a plain path) with SQLite.
    pub async fn open(url: &str) -> Result<Self> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Self::Postgres(PgStore::connect(url).await?))
        } else {
            let path = url.strip_prefix("sqlite://").unwrap_or(url);
            Ok(Self::Sqlite(
                SqliteStore::open(std::path::Path::new(path)).await?,
            ))
        }
    }

    pub fn backend_name(&self) -> &'static str {
        match self {
            Self::Sqlite(_) => "sqlite",
            Self::Postgres(_) => "postgres",
        }
    }
}

impl Store for AnyStore {
    async fn migrate(&self) -> Result<()> {
        dispatch!(self, s => s.migrate())
    }
    async fn create_tenant(&self, row: &TenantRow, audit: AuditDraft) -> Result<()> {
        dispatch!(self, s => s.create_tenant(row, audit))
    }
    async fn tenant(&self, id: TenantId) -> Result<Option<TenantRow>> {
        dispatch!(self, s => s.tenant(id))
    }
    async fn tenant_by_name(&self, name: &str) -> Result<Option<TenantRow>> {
        dispatch!(self, s => s.tenant_by_name(name))
    }
    async fn list_tenants(&self) -> Result<Vec<TenantRow>> {
        dispatch!(self, s => s.list_tenants())
    }
    async fn create_api_key(&self, key: &NewApiKey, audit: AuditDraft) -> Result<()> {
        dispatch!(self, s => s.create_api_key(key, audit))
    }
    async fn api_key_by_hash(&self, hash: &[u8; 32]) -> Result<Option<ApiKeyRow>> {
        dispatch!(self, s => s.api_key_by_hash(hash))
    }
    async fn list_api_keys(&self, tenant: TenantId) -> Result<Vec<ApiKeyRow>> {
        dispatch!(self, s => s.list_api_keys(tenant))
    }
    async fn revoke_api_key(
        &self,
        tenant: TenantId,
        id: KeyId,
        at: Timestamp,
        audit: AuditDraft,
    ) -> Result<bool> {
        dispatch!(self, s => s.revoke_api_key(tenant, id, at, audit))
    }
    async fn find_subjects(
        &self,
        tenant: TenantId,
        aliases: &[Alias],
    ) -> Result<HashMap<Alias, SubjectRow>> {
        dispatch!(self, s => s.find_subjects(tenant, aliases))
    }
    async fn ensure_subjects(
        &self,
        tenant: TenantId,
        new: Vec<NewSubject>,
        at: Timestamp,
    ) -> Result<HashMap<Alias, SubjectRow>> {
        dispatch!(self, s => s.ensure_subjects(tenant, new, at))
    }
    async fn subject(&self, tenant: TenantId, id: SubjectId) -> Result<Option<SubjectRow>> {
        dispatch!(self, s => s.subject(tenant, id))
    }
    async fn shred_subject_key(
        &self,
        tenant: TenantId,
        id: SubjectId,
        audit: AuditDraft,
    ) -> Result<bool> {
        dispatch!(self, s => s.shred_subject_key(tenant, id, audit))
    }
    async fn ingest_group(&self, jobs: &mut [IngestJob]) -> Result<Vec<Committed>> {
        dispatch!(self, s => s.ingest_group(jobs))
    }
    async fn ingest_snapshot(
        &self,
        tenant: TenantId,
        subjects: &[SubjectId],
        message_ids: &[String],
    ) -> Result<IngestSnapshot> {
        dispatch!(self, s => s.ingest_snapshot(tenant, subjects, message_ids))
    }
    async fn append_consents(
        &self,
        tenant: TenantId,
        subject: SubjectId,
        records: Vec<ConsentRecord>,
        audit: Vec<AuditDraft>,
    ) -> Result<()> {
        dispatch!(self, s => s.append_consents(tenant, subject, records, audit))
    }
    async fn consent_ledger(
        &self,
        tenant: TenantId,
        subject: SubjectId,
    ) -> Result<Vec<ConsentRecord>> {
        dispatch!(self, s => s.consent_ledger(tenant, subject))
    }
    async fn events_for(&self, grant: &Grant, limit: u32) -> Result<Vec<EventView>> {
        dispatch!(self, s => s.events_for(grant, limit))
    }
    async fn fields_for(&self, grant: &Grant) -> Result<Vec<FieldRow>> {
        dispatch!(self, s => s.fields_for(grant))
    }
    async fn append_audit(&self, entries: Vec<AuditDraft>) -> Result<()> {
        dispatch!(self, s => s.append_audit(entries))
    }
    async fn audit_entries(&self, chain: &str, after: i64, limit: u32) -> Result<Vec<AuditEntry>> {
        dispatch!(self, s => s.audit_entries(chain, after, limit))
    }
    async fn audit_chains(&self) -> Result<Vec<(String, i64, Vec<u8>)>> {
        dispatch!(self, s => s.audit_chains())
    }
    async fn sweep_category(
        &self,
        tenant: TenantId,
        category: &Category,
        cutoff: Timestamp,
    ) -> Result<SweepCounts> {
        dispatch!(self, s => s.sweep_category(tenant, category, cutoff))
    }
    async fn count_events(&self, tenant: TenantId) -> Result<i64> {
        dispatch!(self, s => s.count_events(tenant))
    }
    async fn insert_model(
        &self,
        tenant: TenantId,
        new: &NewModel,
        at: Timestamp,
        audit: AuditDraft,
    ) -> Result<i64> {
        dispatch!(self, s => s.insert_model(tenant, new, at, audit))
    }
    async fn model(&self, tenant: TenantId, version: i64) -> Result<Option<ModelRow>> {
        dispatch!(self, s => s.model(tenant, version))
    }
    async fn list_models(&self, tenant: TenantId) -> Result<Vec<ModelRow>> {
        dispatch!(self, s => s.list_models(tenant))
    }
    async fn active_model(&self, tenant: TenantId, name: &str) -> Result<Option<ModelRow>> {
        dispatch!(self, s => s.active_model(tenant, name))
    }
    async fn serving_model(&self, tenant: TenantId, name: &str) -> Result<Option<(i64, String)>> {
        dispatch!(self, s => s.serving_model(tenant, name))
    }
    async fn transition_model(
        &self,
        tenant: TenantId,
        version: i64,
        allowed_from: &[&str],
        to: &str,
        actor: &str,
        reason: &str,
        at: Timestamp,
        audit: AuditDraft,
    ) -> Result<String> {
        dispatch!(self, s => s.transition_model(tenant, version, allowed_from, to, actor, reason, at, audit))
    }
    async fn model_transitions(
        &self,
        tenant: TenantId,
        version: i64,
    ) -> Result<Vec<ModelTransition>> {
        dispatch!(self, s => s.model_transitions(tenant, version))
    }
    async fn insert_decisions(
        &self,
        tenant: TenantId,
        rows: &[DecisionRow],
        audit: Vec<AuditDraft>,
    ) -> Result<()> {
        dispatch!(self, s => s.insert_decisions(tenant, rows, audit))
    }
    async fn decisions_for(
        &self,
        tenant: TenantId,
        subject: SubjectId,
        limit: u32,
    ) -> Result<Vec<DecisionRow>> {
        dispatch!(self, s => s.decisions_for(tenant, subject, limit))
    }
    async fn list_subjects(
        &self,
        tenant: TenantId,
        after: Option<SubjectId>,
        limit: u32,
    ) -> Result<Vec<SubjectRow>> {
        dispatch!(self, s => s.list_subjects(tenant, after, limit))
    }
    async fn decisions_in(
        &self,
        tenant: TenantId,
        kind: &str,
        from: Timestamp,
        to: Timestamp,
        after: Option<(Timestamp, String)>,
        limit: u32,
    ) -> Result<Vec<DecisionRow>> {
        dispatch!(self, s => s.decisions_in(tenant, kind, from, to, after, limit))
    }
    async fn insert_model_audit(
        &self,
        tenant: TenantId,
        new: &NewModelAudit,
        alerts: &[NewAlert],
        actor: &str,
        at: Timestamp,
        audit: AuditDraft,
    ) -> Result<i64> {
        dispatch!(self, s => s.insert_model_audit(tenant, new, alerts, actor, at, audit))
    }
    async fn model_audits(
        &self,
        tenant: TenantId,
        version: i64,
        kind: Option<&str>,
        limit: u32,
    ) -> Result<Vec<ModelAuditRow>> {
        dispatch!(self, s => s.model_audits(tenant, version, kind, limit))
    }
    async fn override_model_audit(
        &self,
        tenant: TenantId,
        version: i64,
        actor: &str,
        reason: &str,
        at: Timestamp,
        audit: AuditDraft,
    ) -> Result<i64> {
        dispatch!(self, s => s.override_model_audit(tenant, version, actor, reason, at, audit))
    }
    async fn erase_subject(
        &self,
        tenant: TenantId,
        id: SubjectId,
        at: Timestamp,
        audit: AuditDraft,
    ) -> Result<ErasureCounts> {
        dispatch!(self, s => s.erase_subject(tenant, id, at, audit))
    }
    async fn upsert_fields(
        &self,
        tenant: TenantId,
        fields: Vec<FieldRow>,
        aliases: &[(SubjectId, Alias)],
        audit: AuditDraft,
    ) -> Result<()> {
        dispatch!(self, s => s.upsert_fields(tenant, fields, aliases, audit))
    }
    async fn subject_state(&self, tenant: TenantId, id: SubjectId) -> Result<Option<SubjectState>> {
        dispatch!(self, s => s.subject_state(tenant, id))
    }
    async fn set_restricted(
        &self,
        tenant: TenantId,
        id: SubjectId,
        at: Option<Timestamp>,
        audit: AuditDraft,
    ) -> Result<()> {
        dispatch!(self, s => s.set_restricted(tenant, id, at, audit))
    }
    async fn subject_aliases(
        &self,
        tenant: TenantId,
        id: SubjectId,
    ) -> Result<Vec<(String, Vec<u8>)>> {
        dispatch!(self, s => s.subject_aliases(tenant, id))
    }
    async fn events_page(
        &self,
        grant: &Grant,
        after: Option<(Timestamp, EventId)>,
        limit: u32,
    ) -> Result<Vec<EventView>> {
        dispatch!(self, s => s.events_page(grant, after, limit))
    }
    async fn save_request(
        &self,
        tenant: TenantId,
        row: &RequestRow,
        expected: Option<&str>,
        audit: AuditDraft,
    ) -> Result<()> {
        dispatch!(self, s => s.save_request(tenant, row, expected, audit))
    }
    async fn request(&self, tenant: TenantId, id: &str) -> Result<Option<RequestRow>> {
        dispatch!(self, s => s.request(tenant, id))
    }
    async fn list_requests(
        &self,
        tenant: TenantId,
        open_only: bool,
        limit: u32,
    ) -> Result<Vec<RequestRow>> {
        dispatch!(self, s => s.list_requests(tenant, open_only, limit))
    }
    async fn requests_for(&self, tenant: TenantId, subject: SubjectId) -> Result<Vec<RequestRow>> {
        dispatch!(self, s => s.requests_for(tenant, subject))
    }
    async fn insert_contest(
        &self,
        tenant: TenantId,
        row: &ContestRow,
        audit: AuditDraft,
    ) -> Result<()> {
        dispatch!(self, s => s.insert_contest(tenant, row, audit))
    }
    async fn resolve_contest(
        &self,
        tenant: TenantId,
        id: &str,
        status: &str,
        reviewer: &str,
        note: &Sealed,
        label: Option<i64>,
        at: Timestamp,
        audit: AuditDraft,
    ) -> Result<()> {
        dispatch!(self, s => s.resolve_contest(tenant, id, status, reviewer, note, label, at, audit))
    }
    async fn contest(&self, tenant: TenantId, id: &str) -> Result<Option<ContestRow>> {
        dispatch!(self, s => s.contest(tenant, id))
    }
    async fn list_contests(
        &self,
        tenant: TenantId,
        status: Option<&str>,
        limit: u32,
    ) -> Result<Vec<ContestRow>> {
        dispatch!(self, s => s.list_contests(tenant, status, limit))
    }
    async fn contests_for(&self, tenant: TenantId, subject: SubjectId) -> Result<Vec<ContestRow>> {
        dispatch!(self, s => s.contests_for(tenant, subject))
    }
    async fn insert_rec_factors(
        &self,
        tenant: TenantId,
        version: i64,
        rows: &[(SubjectId, Sealed)],
    ) -> Result<()> {
        dispatch!(self, s => s.insert_rec_factors(tenant, version, rows))
    }
    async fn rec_factors(
        &self,
        tenant: TenantId,
        version: i64,
        subject: SubjectId,
    ) -> Result<Option<Sealed>> {
        dispatch!(self, s => s.rec_factors(tenant, version, subject))
    }
    async fn rec_subjects(
        &self,
        tenant: TenantId,
        version: i64,
        after: Option<SubjectId>,
        limit: u32,
    ) -> Result<Vec<(SubjectId, Sealed)>> {
        dispatch!(self, s => s.rec_subjects(tenant, version, after, limit))
    }
    async fn rec_factors_for(
        &self,
        tenant: TenantId,
        subject: SubjectId,
    ) -> Result<Vec<(i64, Sealed)>> {
        dispatch!(self, s => s.rec_factors_for(tenant, subject))
    }
    async fn set_item_stock(
        &self,
        tenant: TenantId,
        item: &str,
        in_stock: bool,
        at: Timestamp,
        audit: AuditDraft,
    ) -> Result<()> {
        dispatch!(self, s => s.set_item_stock(tenant, item, in_stock, at, audit))
    }
    async fn out_of_stock(&self, tenant: TenantId) -> Result<Vec<String>> {
        dispatch!(self, s => s.out_of_stock(tenant))
    }
    async fn enroll_steps(&self, tenant: TenantId, steps: &[NewStep]) -> Result<u64> {
        dispatch!(self, s => s.enroll_steps(tenant, steps))
    }
    async fn exit_steps(
        &self,
        tenant: TenantId,
        subject: SubjectId,
        journeys: &[String],
        reason: &str,
        at: Timestamp,
    ) -> Result<u64> {
        dispatch!(self, s => s.exit_steps(tenant, subject, journeys, reason, at))
    }
    async fn claim_due_steps(
        &self,
        now: Timestamp,
        lease_ms: i64,
        limit: u32,
    ) -> Result<Vec<StepRow>> {
        dispatch!(self, s => s.claim_due_steps(now, lease_ms, limit))
    }
    async fn finish_step(
        &self,
        tenant: TenantId,
        step_id: &str,
        outcome: &StepOutcome,
        decision: Option<&DecisionRow>,
        next: Option<&NewStep>,
        audit: AuditDraft,
        at: Timestamp,
    ) -> Result<bool> {
        dispatch!(self, s => s.finish_step(tenant, step_id, outcome, decision, next, audit, at))
    }
    async fn reopen_step(&self, tenant: TenantId, step_id: &str, due_at: Timestamp) -> Result<()> {
        dispatch!(self, s => s.reopen_step(tenant, step_id, due_at))
    }
    async fn defer_step(&self, tenant: TenantId, step_id: &str, due_at: Timestamp) -> Result<()> {
        dispatch!(self, s => s.defer_step(tenant, step_id, due_at))
    }
    async fn emails_sent_since(
        &self,
        tenant: TenantId,
        subject: SubjectId,
        since: Timestamp,
    ) -> Result<u32> {
        dispatch!(self, s => s.emails_sent_since(tenant, subject, since))
    }
    async fn email_by_token(&self, token_hash: &[u8]) -> Result<Option<(TenantId, EmailRow)>> {
        dispatch!(self, s => s.email_by_token(token_hash))
    }
    async fn email_by_message_id(
        &self,
        tenant: TenantId,
        message_id: &str,
    ) -> Result<Option<EmailRow>> {
        dispatch!(self, s => s.email_by_message_id(tenant, message_id))
    }
    async fn mark_email(
        &self,
        tenant: TenantId,
        email_id: &str,
        mark: EmailMark,
        at: Timestamp,
    ) -> Result<()> {
        dispatch!(self, s => s.mark_email(tenant, email_id, mark, at))
    }
    async fn journeys_for(
        &self,
        tenant: TenantId,
        subject: SubjectId,
    ) -> Result<(Vec<StepRow>, Vec<EmailRow>)> {
        dispatch!(self, s => s.journeys_for(tenant, subject))
    }
    async fn journey_rows(
        &self,
        tenant: TenantId,
        journey: &str,
        conversion: &str,
        window_ms: i64,
    ) -> Result<Vec<JourneyRow>> {
        dispatch!(self, s => s.journey_rows(tenant, journey, conversion, window_ms))
    }
    async fn fairness_alerts(
        &self,
        tenant: TenantId,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<AlertRow>> {
        dispatch!(self, s => s.fairness_alerts(tenant, before, limit))
    }
}
