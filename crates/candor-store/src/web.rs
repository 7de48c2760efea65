//! What the staff console and the privacy center keep: staff accounts, browser sessions,
//! one-time sign-in links, customers' messages to a person, and the overview's aggregates.
//! A trait of its own beside [`crate::Store`], implemented for both backends by
//! [`impl_web_store`] (invoked after `impl_store!`, whose helpers it uses).

use std::future::Future;

use serde::Serialize;

use candor_crypto::Sealed;
use candor_types::{SubjectId, TenantId, Timestamp};

use crate::{AnyStore, AuditDraft, AuditEntry, Result};

/// A staff account of the console.
#[derive(Clone, Debug, Serialize)]
pub struct StaffRow {
    pub id: String,
    pub tenant: TenantId,
    pub login: String,
    /// `admin`, `marketer`, `reviewer` or `compliance`.
    pub role: String,
    #[serde(skip)]
    pub password_hash: String,
    pub created_at: Timestamp,
    pub disabled_at: Option<Timestamp>,
}

/// A signed-in browser. `token_hash` is the keyed hash of the cookie's secret.
#[derive(Clone, Debug)]
pub struct SessionRow {
    pub token_hash: Vec<u8>,
    pub tenant: TenantId,
    /// `staff` (console) or `customer` (privacy center).
    pub kind: String,
    pub staff_id: Option<String>,
    pub subject: Option<SubjectId>,
    pub csrf: String,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
}

/// A new session before it is bound to its tenant and person: its cookie secret's hash, its
/// CSRF token and its times. A sign-in link binds it in the store, to the link's person.
#[derive(Clone, Debug)]
pub struct SessionSeed {
    pub token_hash: Vec<u8>,
    /// `staff` (console) or `customer` (privacy center).
    pub kind: String,
    pub csrf: String,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
}

impl SessionSeed {
    pub fn bind(
        self,
        tenant: TenantId,
        staff_id: Option<String>,
        subject: Option<SubjectId>,
    ) -> SessionRow {
        SessionRow {
            token_hash: self.token_hash,
            tenant,
            kind: self.kind,
            staff_id,
            subject,
            csrf: self.csrf,
            created_at: self.created_at,
            expires_at: self.expires_at,
        }
    }
}

/// A customer's message to a person ("talk to a human"), sealed with their data key.
#[derive(Clone, Debug)]
pub struct ContactRow {
    pub id: String,
    pub subject: SubjectId,
    pub sealed: Sealed,
    /// `open` or `closed`.
    pub status: String,
    pub created_at: Timestamp,
    pub due_at: Timestamp,
    pub closed_at: Option<Timestamp>,
    pub closed_by: Option<String>,
}

/// Profile fields (path, category) and event counts by category of one person.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HeldSummary {
    pub fields: Vec<(String, String)>,
    pub events: Vec<(String, i64)>,
}

/// A sign-in link as the person's export shows it (its token hash is not shown).
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct SigninLink {
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    pub used_at: Option<Timestamp>,
}

/// People whose latest answer for a purpose is `state`, by jurisdiction.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct ConsentCount {
    pub purpose: String,
    /// Empty when the answer named none (e.g. a consent banner without a region).
    pub jurisdiction: String,
    /// `granted` or `withdrawn`.
    pub state: String,
    pub subjects: i64,
}

/// The console's overview: counts only, no personal values.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Overview {
    /// People with data (not erased).
    pub subjects: i64,
    /// Tombstones of erased people.
    pub erased: i64,
    /// People who sent a Global Privacy Control signal.
    pub gpc_subjects: i64,
    pub events: i64,
    /// Events received per UTC day since the period's start: (day start, count).
    pub received_by_day: Vec<(Timestamp, i64)>,
    /// Events by name (or kind, for identify/page), most frequent first.
    pub events_by_name: Vec<(String, i64)>,
    pub consents: Vec<ConsentCount>,
}

/// Storage of the console and the privacy center.
pub trait WebStore: Send + Sync {
    /// Creates a staff account (`Conflict` when the login is taken).
    fn insert_staff(
        &self,
        row: &StaffRow,
        audit: AuditDraft,
    ) -> impl Future<Output = Result<()>> + Send;
    fn staff_by_login(&self, login: &str) -> impl Future<Output = Result<Option<StaffRow>>> + Send;
    fn staff_by_id(&self, id: &str) -> impl Future<Output = Result<Option<StaffRow>>> + Send;
    fn list_staff(&self, tenant: TenantId) -> impl Future<Output = Result<Vec<StaffRow>>> + Send;
    fn insert_session(&self, row: &SessionRow) -> impl Future<Output = Result<()>> + Send;
    /// The session with this token hash, unless it expired before `now`.
    fn session(
        &self,
        token_hash: &[u8],
        now: Timestamp,
    ) -> impl Future<Output = Result<Option<SessionRow>>> + Send;
    fn delete_session(&self, token_hash: &[u8]) -> impl Future<Output = Result<()>> + Send;
    /// Stores a sign-in link unless `max_per_hour` were already made for the person in the
    /// hour before `now` (then `Conflict`).
    fn insert_signin_link(
        &self,
        tenant: TenantId,
        subject: SubjectId,
        token_hash: &[u8],
        now: Timestamp,
        expires_at: Timestamp,
        max_per_hour: i64,
    ) -> impl Future<Output = Result<()>> + Send;
    /// Marks a link used and opens `session`, bound to the link's tenant and person, in one
    /// transaction: only once, only before it expires, only while the person is not erased
    /// (their row is locked, so an erasure waits or comes first).
    fn redeem_signin_link(
        &self,
        token_hash: &[u8],
        now: Timestamp,
        session: SessionSeed,
    ) -> impl Future<Output = Result<Option<SessionRow>>> + Send;
    fn insert_contact(
        &self,
        tenant: TenantId,
        row: &ContactRow,
        audit: AuditDraft,
    ) -> impl Future<Output = Result<()>> + Send;
    /// Messages by status (all for `None`), oldest due first.
    fn list_contacts(
        &self,
        tenant: TenantId,
        status: Option<&str>,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<ContactRow>>> + Send;
    fn contacts_for(
        &self,
        tenant: TenantId,
        subject: SubjectId,
    ) -> impl Future<Output = Result<Vec<ContactRow>>> + Send;
    /// Closes an open message (`NotFound` for no such open message).
    fn close_contact(
        &self,
        tenant: TenantId,
        id: &str,
        actor: &str,
        at: Timestamp,
        audit: AuditDraft,
    ) -> impl Future<Output = Result<()>> + Send;
    /// What is held about a person, without opening any of it: their profile fields (path,
    /// category) and their events counted by category.
    fn held_summary(
        &self,
        tenant: TenantId,
        subject: SubjectId,
    ) -> impl Future<Output = Result<HeldSummary>> + Send;
    /// A person's privacy-center sessions (for their export).
    fn sessions_for(
        &self,
        tenant: TenantId,
        subject: SubjectId,
    ) -> impl Future<Output = Result<Vec<SessionRow>>> + Send;
    /// A person's sign-in links: (created, expires, used), for their export.
    fn links_for(
        &self,
        tenant: TenantId,
        subject: SubjectId,
    ) -> impl Future<Output = Result<Vec<SigninLink>>> + Send;
    /// Deletes sessions and sign-in links that expired before `now`.
    fn purge_sessions(&self, now: Timestamp) -> impl Future<Output = Result<u64>> + Send;
    fn overview(
        &self,
        tenant: TenantId,
        since: Timestamp,
    ) -> impl Future<Output = Result<Overview>> + Send;
    /// The newest `limit` entries of an audit chain, newest first.
    fn audit_tail(
        &self,
        chain: &str,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<AuditEntry>>> + Send;
}

impl WebStore for AnyStore {
    async fn insert_staff(&self, row: &StaffRow, audit: AuditDraft) -> Result<()> {
        dispatch!(self, s => s.insert_staff(row, audit))
    }
    async fn staff_by_login(&self, login: &str) -> Result<Option<StaffRow>> {
        dispatch!(self, s => s.staff_by_login(login))
    }
    async fn staff_by_id(&self, id: &str) -> Result<Option<StaffRow>> {
        dispatch!(self, s => s.staff_by_id(id))
    }
    async fn list_staff(&self, tenant: TenantId) -> Result<Vec<StaffRow>> {
        dispatch!(self, s => s.list_staff(tenant))
    }
    async fn insert_session(&self, row: &SessionRow) -> Result<()> {
        dispatch!(self, s => s.insert_session(row))
    }
    async fn session(&self, token_hash: &[u8], now: Timestamp) -> Result<Option<SessionRow>> {
        dispatch!(self, s => s.session(token_hash, now))
    }
    async fn delete_session(&self, token_hash: &[u8]) -> Result<()> {
        dispatch!(self, s => s.delete_session(token_hash))
    }
    async fn insert_signin_link(
        &self,
        tenant: TenantId,
        subject: SubjectId,
        token_hash: &[u8],
        now: Timestamp,
        expires_at: Timestamp,
        max_per_hour: i64,
    ) -> Result<()> {
        dispatch!(self, s => s.insert_signin_link(tenant, subject, token_hash, now, expires_at, max_per_hour))
    }
    async fn redeem_signin_link(
        &self,
        token_hash: &[u8],
        now: Timestamp,
        session: SessionSeed,
    ) -> Result<Option<SessionRow>> {
        dispatch!(self, s => s.redeem_signin_link(token_hash, now, session))
    }
    async fn insert_contact(
        &self,
        tenant: TenantId,
        row: &ContactRow,
        audit: AuditDraft,
    ) -> Result<()> {
        dispatch!(self, s => s.insert_contact(tenant, row, audit))
    }
    async fn list_contacts(
        &self,
        tenant: TenantId,
        status: Option<&str>,
        limit: u32,
    ) -> Result<Vec<ContactRow>> {
        dispatch!(self, s => s.list_contacts(tenant, status, limit))
    }
    async fn contacts_for(&self, tenant: TenantId, subject: SubjectId) -> Result<Vec<ContactRow>> {
        dispatch!(self, s => s.contacts_for(tenant, subject))
    }
    async fn close_contact(
        &self,
        tenant: TenantId,
        id: &str,
        actor: &str,
        at: Timestamp,
        audit: AuditDraft,
    ) -> Result<()> {
        dispatch!(self, s => s.close_contact(tenant, id, actor, at, audit))
    }
    async fn held_summary(&self, tenant: TenantId, subject: SubjectId) -> Result<HeldSummary> {
        dispatch!(self, s => s.held_summary(tenant, subject))
    }
    async fn sessions_for(&self, tenant: TenantId, subject: SubjectId) -> Result<Vec<SessionRow>> {
        dispatch!(self, s => s.sessions_for(tenant, subject))
    }
    async fn links_for(&self, tenant: TenantId, subject: SubjectId) -> Result<Vec<SigninLink>> {
        dispatch!(self, s => s.links_for(tenant, subject))
    }
    async fn purge_sessions(&self, now: Timestamp) -> Result<u64> {
        dispatch!(self, s => s.purge_sessions(now))
    }
    async fn overview(&self, tenant: TenantId, since: Timestamp) -> Result<Overview> {
        dispatch!(self, s => s.overview(tenant, since))
    }
    async fn audit_tail(&self, chain: &str, limit: u32) -> Result<Vec<AuditEntry>> {
        dispatch!(self, s => s.audit_tail(chain, limit))
    }
}

/// Implements [`WebStore`] for a backend, inside the module where `impl_store!` ran.
macro_rules! impl_web_store {
    ($store:ty, update_lock = $update:literal) => {
        mod web_impl {
            use sqlx::Row as _;

            use candor_crypto::Sealed;
            use candor_types::{SubjectId, TenantId, Timestamp};

            use super::{$store, DbRow, audit_entry_from, audit_tx};
            use crate::backend::parse;
            use crate::web::{ConsentCount, ContactRow, HeldSummary, Overview, SessionRow, SessionSeed, SigninLink, StaffRow, WebStore};
            use crate::{AuditDraft, AuditEntry, Result, StoreError};

            const DAY_MS: i64 = 86_400_000;

            fn staff_from(r: &DbRow) -> Result<StaffRow> {
                Ok(StaffRow {
                    id: r.try_get("id")?,
                    tenant: parse("tenant id", &r.try_get::<String, _>("tenant_id")?)?,
                    login: r.try_get("login")?,
                    role: r.try_get("role")?,
                    password_hash: r.try_get("password_hash")?,
                    created_at: Timestamp(r.try_get("created_at")?),
                    disabled_at: r.try_get::<Option<i64>, _>("disabled_at")?.map(Timestamp),
                })
            }

            fn session_from(r: &DbRow) -> Result<SessionRow> {
                let subject: Option<String> = r.try_get("subject_id")?;
                Ok(SessionRow {
                    token_hash: r.try_get("token_hash")?,
                    tenant: parse("tenant id", &r.try_get::<String, _>("tenant_id")?)?,
                    kind: r.try_get("kind")?,
                    staff_id: r.try_get("staff_id")?,
                    subject: subject.map(|s| parse("subject id", &s)).transpose()?,
                    csrf: r.try_get("csrf")?,
                    created_at: Timestamp(r.try_get("created_at")?),
                    expires_at: Timestamp(r.try_get("expires_at")?),
                })
            }

            async fn insert_session_on(tx: &mut super::Tx, row: &SessionRow) -> Result<()> {
                sqlx::query(
                    "INSERT INTO web_sessions (token_hash, tenant_id, kind, staff_id, subject_id, csrf, created_at, expires_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(&row.token_hash)
                .bind(row.tenant.to_string())
                .bind(&row.kind)
                .bind(&row.staff_id)
                .bind(row.subject.map(|s| s.to_string()))
                .bind(&row.csrf)
                .bind(row.created_at.0)
                .bind(row.expires_at.0)
                .execute(&mut **tx)
                .await?;
                Ok(())
            }

            fn contact_from(r: &DbRow) -> Result<ContactRow> {
                Ok(ContactRow {
                    id: r.try_get("id")?,
                    subject: parse("subject id", &r.try_get::<String, _>("subject_id")?)?,
                    sealed: Sealed::from_stored(r.try_get("sealed")?),
                    status: r.try_get("status")?,
                    created_at: Timestamp(r.try_get("created_at")?),
                    due_at: Timestamp(r.try_get("due_at")?),
                    closed_at: r.try_get::<Option<i64>, _>("closed_at")?.map(Timestamp),
                    closed_by: r.try_get("closed_by")?,
                })
            }

            impl WebStore for $store {
                async fn insert_staff(&self, row: &StaffRow, audit: AuditDraft) -> Result<()> {
                    let mut tx = self.write_tx().await?;
                    let taken = sqlx::query("SELECT id FROM staff_accounts WHERE login = $1")
                        .bind(&row.login)
                        .fetch_optional(&mut *tx)
                        .await?;
                    if taken.is_some() {
                        return Err(StoreError::Conflict("a staff account with this login exists".into()));
                    }
                    sqlx::query(
                        "INSERT INTO staff_accounts (id, tenant_id, login, role, password_hash, created_at) \
                         VALUES ($1, $2, $3, $4, $5, $6)",
                    )
                    .bind(&row.id)
                    .bind(row.tenant.to_string())
                    .bind(&row.login)
                    .bind(&row.role)
                    .bind(&row.password_hash)
                    .bind(row.created_at.0)
                    .execute(&mut *tx)
                    .await?;
                    audit_tx(&mut tx, vec![audit], row.created_at).await?;
                    tx.commit().await?;
                    Ok(())
                }

                async fn staff_by_login(&self, login: &str) -> Result<Option<StaffRow>> {
                    sqlx::query("SELECT * FROM staff_accounts WHERE login = $1")
                        .bind(login)
                        .fetch_optional(self.reader())
                        .await?
                        .as_ref()
                        .map(staff_from)
                        .transpose()
                }

                async fn staff_by_id(&self, id: &str) -> Result<Option<StaffRow>> {
                    sqlx::query("SELECT * FROM staff_accounts WHERE id = $1")
                        .bind(id)
                        .fetch_optional(self.reader())
                        .await?
                        .as_ref()
                        .map(staff_from)
                        .transpose()
                }

                async fn list_staff(&self, tenant: TenantId) -> Result<Vec<StaffRow>> {
                    sqlx::query("SELECT * FROM staff_accounts WHERE tenant_id = $1 ORDER BY login")
                        .bind(tenant.to_string())
                        .fetch_all(self.reader())
                        .await?
                        .iter()
                        .map(staff_from)
                        .collect()
                }

                async fn insert_session(&self, row: &SessionRow) -> Result<()> {
                    let mut tx = self.write_tx().await?;
                    insert_session_on(&mut tx, row).await?;
                    tx.commit().await?;
                    Ok(())
                }

                async fn session(&self, token_hash: &[u8], now: Timestamp) -> Result<Option<SessionRow>> {
                    sqlx::query("SELECT * FROM web_sessions WHERE token_hash = $1 AND expires_at > $2")
                        .bind(token_hash)
                        .bind(now.0)
                        .fetch_optional(self.reader())
                        .await?
                        .as_ref()
                        .map(session_from)
                        .transpose()
                }

                async fn delete_session(&self, token_hash: &[u8]) -> Result<()> {
                    let mut tx = self.write_tx().await?;
                    sqlx::query("DELETE FROM web_sessions WHERE token_hash = $1")
                        .bind(token_hash)
                        .execute(&mut *tx)
                        .await?;
                    tx.commit().await?;
                    Ok(())
                }

                async fn insert_signin_link(
                    &self,
                    tenant: TenantId,
                    subject: SubjectId,
                    token_hash: &[u8],
                    now: Timestamp,
                    expires_at: Timestamp,
                    max_per_hour: i64,
                ) -> Result<()> {
                    let mut tx = self.write_tx().await?;
                    let (t, s) = (tenant.to_string(), subject.to_string());
                    // The person's row lock serializes two requests for the same person.
                    sqlx::query(concat!(
                        "SELECT id FROM subjects WHERE tenant_id = $1 AND id = $2 AND wrapped_key IS NOT NULL",
                        $update
                    ))
                    .bind(&t)
                    .bind(&s)
                    .fetch_optional(&mut *tx)
                    .await?
                    .ok_or(StoreError::NotFound)?;
                    let recent: i64 = sqlx::query(
                        "SELECT COUNT(*) AS n FROM signin_links WHERE tenant_id = $1 AND subject_id = $2 AND created_at > $3",
                    )
                    .bind(&t)
                    .bind(&s)
                    .bind(now.0 - 3_600_000)
                    .fetch_one(&mut *tx)
                    .await?
                    .try_get("n")?;
                    if recent >= max_per_hour {
                        return Err(StoreError::Conflict("too many sign-in links in the last hour".into()));
                    }
                    sqlx::query(
                        "INSERT INTO signin_links (token_hash, tenant_id, subject_id, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
                    )
                    .bind(token_hash)
                    .bind(&t)
                    .bind(&s)
                    .bind(now.0)
                    .bind(expires_at.0)
                    .execute(&mut *tx)
                    .await?;
                    tx.commit().await?;
                    Ok(())
                }

                async fn redeem_signin_link(&self, token_hash: &[u8], now: Timestamp, session: SessionSeed) -> Result<Option<SessionRow>> {
                    let mut tx = self.write_tx().await?;
                    let row = sqlx::query(
                        "UPDATE signin_links SET used_at = $2 WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2 \
                         RETURNING tenant_id, subject_id",
                    )
                    .bind(token_hash)
                    .bind(now.0)
                    .fetch_optional(&mut *tx)
                    .await?;
                    let Some(row) = row else {
                        return Ok(None);
                    };
                    let (t, s): (String, String) = (row.try_get("tenant_id")?, row.try_get("subject_id")?);
                    let live = sqlx::query(concat!(
                        "SELECT id FROM subjects WHERE tenant_id = $1 AND id = $2 AND wrapped_key IS NOT NULL",
                        $update
                    ))
                    .bind(&t)
                    .bind(&s)
                    .fetch_optional(&mut *tx)
                    .await?;
                    if live.is_none() {
                        tx.commit().await?;
                        return Ok(None);
                    }
                    let session = session.bind(parse("tenant id", &t)?, None, Some(parse("subject id", &s)?));
                    insert_session_on(&mut tx, &session).await?;
                    tx.commit().await?;
                    Ok(Some(session))
                }

                async fn insert_contact(&self, tenant: TenantId, row: &ContactRow, audit: AuditDraft) -> Result<()> {
                    let mut tx = self.write_tx().await?;
                    sqlx::query(
                        "INSERT INTO contact_requests (tenant_id, id, subject_id, sealed, status, created_at, due_at) \
                         VALUES ($1, $2, $3, $4, 'open', $5, $6)",
                    )
                    .bind(tenant.to_string())
                    .bind(&row.id)
                    .bind(row.subject.to_string())
                    .bind(row.sealed.as_bytes())
                    .bind(row.created_at.0)
                    .bind(row.due_at.0)
                    .execute(&mut *tx)
                    .await?;
                    audit_tx(&mut tx, vec![audit], row.created_at).await?;
                    tx.commit().await?;
                    Ok(())
                }

                async fn list_contacts(&self, tenant: TenantId, status: Option<&str>, limit: u32) -> Result<Vec<ContactRow>> {
                    sqlx::query(
                        "SELECT * FROM contact_requests WHERE tenant_id = $1 AND ($2 = '' OR status = $2) ORDER BY due_at, id LIMIT $3",
                    )
                    .bind(tenant.to_string())
                    .bind(status.unwrap_or(""))
                    .bind(i64::from(limit))
                    .fetch_all(self.reader())
                    .await?
                    .iter()
                    .map(contact_from)
                    .collect()
                }

                async fn contacts_for(&self, tenant: TenantId, subject: SubjectId) -> Result<Vec<ContactRow>> {
                    sqlx::query("SELECT * FROM contact_requests WHERE tenant_id = $1 AND subject_id = $2 ORDER BY created_at, id")
                        .bind(tenant.to_string())
                        .bind(subject.to_string())
                        .fetch_all(self.reader())
                        .await?
                        .iter()
                        .map(contact_from)
                        .collect()
                }

                async fn close_contact(&self, tenant: TenantId, id: &str, actor: &str, at: Timestamp, audit: AuditDraft) -> Result<()> {
                    let mut tx = self.write_tx().await?;
                    let n = sqlx::query(
                        "UPDATE contact_requests SET status = 'closed', closed_at = $3, closed_by = $4 \
                         WHERE tenant_id = $1 AND id = $2 AND status = 'open'",
                    )
                    .bind(tenant.to_string())
                    .bind(id)
                    .bind(at.0)
                    .bind(actor)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                    if n == 0 {
                        return Err(StoreError::NotFound);
                    }
                    audit_tx(&mut tx, vec![audit], at).await?;
                    tx.commit().await?;
                    Ok(())
                }

                async fn held_summary(&self, tenant: TenantId, subject: SubjectId) -> Result<HeldSummary> {
                    let (t, s) = (tenant.to_string(), subject.to_string());
                    let fields = sqlx::query(
                        "SELECT path, category FROM subject_fields WHERE tenant_id = $1 AND subject_id = $2 ORDER BY path",
                    )
                    .bind(&t)
                    .bind(&s)
                    .fetch_all(self.reader())
                    .await?
                    .iter()
                    .map(|r| Ok((r.try_get("path")?, r.try_get("category")?)))
                    .collect::<Result<Vec<_>>>()?;
                    let events = sqlx::query(
                        "SELECT category, COUNT(*) AS n FROM events WHERE subject_id = $2 AND tenant_id = $1 \
                         GROUP BY category ORDER BY category",
                    )
                    .bind(&t)
                    .bind(&s)
                    .fetch_all(self.reader())
                    .await?
                    .iter()
                    .map(|r| Ok((r.try_get("category")?, r.try_get("n")?)))
                    .collect::<Result<Vec<_>>>()?;
                    Ok(HeldSummary { fields, events })
                }

                async fn sessions_for(&self, tenant: TenantId, subject: SubjectId) -> Result<Vec<SessionRow>> {
                    sqlx::query("SELECT * FROM web_sessions WHERE tenant_id = $1 AND subject_id = $2 ORDER BY created_at")
                        .bind(tenant.to_string())
                        .bind(subject.to_string())
                        .fetch_all(self.reader())
                        .await?
                        .iter()
                        .map(session_from)
                        .collect()
                }

                async fn links_for(&self, tenant: TenantId, subject: SubjectId) -> Result<Vec<SigninLink>> {
                    sqlx::query(
                        "SELECT created_at, expires_at, used_at FROM signin_links WHERE tenant_id = $1 AND subject_id = $2 ORDER BY created_at",
                    )
                    .bind(tenant.to_string())
                    .bind(subject.to_string())
                    .fetch_all(self.reader())
                    .await?
                    .iter()
                    .map(|r| {
                        Ok(SigninLink {
                            created_at: Timestamp(r.try_get("created_at")?),
                            expires_at: Timestamp(r.try_get("expires_at")?),
                            used_at: r.try_get::<Option<i64>, _>("used_at")?.map(Timestamp),
                        })
                    })
                    .collect()
                }

                async fn purge_sessions(&self, now: Timestamp) -> Result<u64> {
                    let mut tx = self.write_tx().await?;
                    let a = sqlx::query("DELETE FROM web_sessions WHERE expires_at <= $1")
                        .bind(now.0)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                    // Links are kept a day past expiry: the hourly limit counts them.
                    let b = sqlx::query("DELETE FROM signin_links WHERE expires_at <= $1")
                        .bind(now.0 - DAY_MS)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                    tx.commit().await?;
                    Ok(a + b)
                }

                async fn overview(&self, tenant: TenantId, since: Timestamp) -> Result<Overview> {
                    let t = tenant.to_string();
                    let pool = self.reader();
                    let counts = sqlx::query(
                        "SELECT \
                           (SELECT COUNT(*) FROM subjects WHERE tenant_id = $1 AND wrapped_key IS NOT NULL) AS live, \
                           (SELECT COUNT(*) FROM subjects WHERE tenant_id = $1 AND erased_at IS NOT NULL AND id <> $2) AS erased, \
                           (SELECT COUNT(DISTINCT subject_id) FROM consents WHERE tenant_id = $1 AND source = 'gpc') AS gpc, \
                           (SELECT COUNT(*) FROM events WHERE tenant_id = $1) AS events",
                    )
                    .bind(&t)
                    .bind(crate::SUPPRESSED)
                    .fetch_one(pool)
                    .await?;
                    let received_by_day = sqlx::query(
                        "SELECT received_at / 86400000 AS day, COUNT(*) AS n FROM events \
                         WHERE tenant_id = $1 AND received_at >= $2 GROUP BY received_at / 86400000 ORDER BY day",
                    )
                    .bind(&t)
                    .bind(since.0)
                    .fetch_all(pool)
                    .await?
                    .iter()
                    .map(|r| Ok((Timestamp(r.try_get::<i64, _>("day")? * DAY_MS), r.try_get("n")?)))
                    .collect::<Result<Vec<_>>>()?;
                    let events_by_name = sqlx::query(
                        "SELECT CASE WHEN name IS NULL THEN kind ELSE name END AS label, COUNT(*) AS n FROM events \
                         WHERE tenant_id = $1 GROUP BY CASE WHEN name IS NULL THEN kind ELSE name END ORDER BY n DESC, label LIMIT 20",
                    )
                    .bind(&t)
                    .fetch_all(pool)
                    .await?
                    .iter()
                    .map(|r| Ok((r.try_get("label")?, r.try_get("n")?)))
                    .collect::<Result<Vec<_>>>()?;
                    let consents = sqlx::query(
                        "SELECT purpose, COALESCE(jurisdiction, '') AS jurisdiction, action, COUNT(*) AS n FROM \
                           (SELECT purpose, jurisdiction, action, \
                              ROW_NUMBER() OVER (PARTITION BY subject_id, purpose ORDER BY seq DESC) AS rn \
                            FROM consents WHERE tenant_id = $1) latest \
                         WHERE rn = 1 GROUP BY purpose, COALESCE(jurisdiction, ''), action \
                         ORDER BY purpose, COALESCE(jurisdiction, ''), action",
                    )
                    .bind(&t)
                    .fetch_all(pool)
                    .await?
                    .iter()
                    .map(|r| {
                        Ok(ConsentCount {
                            purpose: r.try_get("purpose")?,
                            jurisdiction: r.try_get("jurisdiction")?,
                            state: r.try_get("action")?,
                            subjects: r.try_get("n")?,
                        })
                    })
                    .collect::<Result<Vec<_>>>()?;
                    Ok(Overview {
                        subjects: counts.try_get("live")?,
                        erased: counts.try_get("erased")?,
                        gpc_subjects: counts.try_get("gpc")?,
                        events: counts.try_get("events")?,
                        received_by_day,
                        events_by_name,
                        consents,
                    })
                }

                async fn audit_tail(&self, chain: &str, limit: u32) -> Result<Vec<AuditEntry>> {
                    sqlx::query(
                        "SELECT chain, seq, at, actor, action, target, details, prev_hash, hash FROM audit_log \
                         WHERE chain = $1 ORDER BY seq DESC LIMIT $2",
                    )
                    .bind(chain)
                    .bind(i64::from(limit))
                    .fetch_all(self.reader())
                    .await?
                    .iter()
                    .map(audit_entry_from)
                    .collect()
                }
            }
        }
    };
}

pub(crate) use impl_web_store;
