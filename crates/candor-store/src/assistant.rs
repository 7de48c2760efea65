//! What the shopping assistant keeps: the catalog it searches (products from events and
//! imports; no personal data), conversations, their messages and hand-offs to a human.
//!
//! Messages are stored after redaction; when a conversation names a person their bodies are
//! sealed with that person's data key (erasure shreds them with the key and deletes the rows).
//! A conversation nobody is named in keeps its redacted text as it is.
//!
//! A trait of its own beside [`crate::Store`], implemented for both backends by
//! [`impl_assistant_store`] (invoked after `impl_store!`, whose helpers it uses).

use std::future::Future;

use serde::Serialize;

use candor_types::{SubjectId, TenantId, Timestamp};

use crate::{AnyStore, AuditDraft, DecisionRow, Result};

/// One product of the catalog.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ProductRow {
    pub product_id: String,
    pub name: String,
    pub description: String,
    pub category: Option<String>,
    /// In minor units of `currency`.
    pub price: Option<i64>,
    pub currency: Option<String>,
    pub url: Option<String>,
    /// `event` or `import`. An import is not overwritten by events.
    pub source: String,
    pub updated_at: Timestamp,
}

/// A conversation's state.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ConversationRow {
    pub id: String,
    pub subject: Option<SubjectId>,
    /// The subject was named by the store's backend (a server key), so order status may be
    /// told.
    pub verified: bool,
    /// `open`, `handoff` (a person is on it) or `closed`.
    pub status: String,
    /// Replies in a row that did not understand the customer.
    pub misunderstandings: i64,
    /// The sequence number the next message takes.
    pub next_seq: i64,
    pub disclosure_version: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// One message. `body` is the redacted text, sealed when `sealed`; `meta` is JSON text
/// (intent, sources, whether personal data was used, the decision id) without personal values.
#[derive(Clone, Debug, PartialEq)]
pub struct MessageRow {
    pub conversation_id: String,
    pub seq: i64,
    pub id: String,
    pub subject: Option<SubjectId>,
    /// `customer`, `assistant` or `staff`.
    pub role: String,
    pub body: Vec<u8>,
    pub sealed: bool,
    pub meta: String,
    pub created_at: Timestamp,
}

/// A hand-off to a human.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TicketRow {
    pub id: String,
    pub conversation_id: String,
    pub subject: Option<SubjectId>,
    /// `requested`, `sensitive:<topic>`, `low_confidence` or `misunderstood`.
    pub reason: String,
    /// `open`, `answered` or `closed`.
    pub status: String,
    pub created_at: Timestamp,
    pub answered_at: Option<Timestamp>,
    pub answered_by: Option<String>,
}

/// What one turn of a conversation writes, in one transaction with other turns.
#[derive(Clone, Debug)]
pub struct TurnWrite {
    pub tenant: TenantId,
    /// The state after the turn. `next_seq` is the new value.
    pub conversation: ConversationRow,
    /// The `next_seq` the conversation had when the turn was planned (`None`: a new one). A
    /// turn planned on a state that changed since is refused (`Conflict`).
    pub expect_seq: Option<i64>,
    pub messages: Vec<MessageRow>,
    pub ticket: Option<TicketRow>,
    pub decisions: Vec<DecisionRow>,
    pub audit: Vec<AuditDraft>,
}

/// What the retention sweep removed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ConversationSweep {
    pub conversations: u64,
    pub messages: u64,
    pub tickets: u64,
}

/// Storage of the catalog and of conversations.
pub trait AssistantStore: Send + Sync {
    /// Inserts or updates products (`event` rows never replace an `import`ed one).
    fn upsert_products(
        &self,
        tenant: TenantId,
        rows: &[ProductRow],
        audit: Vec<AuditDraft>,
    ) -> impl Future<Output = Result<u64>> + Send;
    fn products(&self, tenant: TenantId) -> impl Future<Output = Result<Vec<ProductRow>>> + Send;
    /// How many products there are and when the catalog last changed (caches compare it).
    fn catalog_stamp(&self, tenant: TenantId) -> impl Future<Output = Result<(i64, i64)>> + Send;
    /// Writes turns in one transaction. Each turn succeeds, or fails alone: `Conflict` when
    /// its conversation changed since it was planned, `NotFound` when its person was erased.
    fn write_turns(
        &self,
        turns: &[TurnWrite],
    ) -> impl Future<Output = Result<Vec<Result<()>>>> + Send;
    fn conversation(
        &self,
        tenant: TenantId,
        id: &str,
    ) -> impl Future<Output = Result<Option<ConversationRow>>> + Send;
    fn messages(
        &self,
        tenant: TenantId,
        conversation: &str,
    ) -> impl Future<Output = Result<Vec<MessageRow>>> + Send;
    fn tickets(
        &self,
        tenant: TenantId,
        status: Option<&str>,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<TicketRow>>> + Send;
    fn ticket(
        &self,
        tenant: TenantId,
        id: &str,
    ) -> impl Future<Output = Result<Option<TicketRow>>> + Send;
    /// A staff member's answer: the message is appended to the ticket's conversation (`seq`
    /// must be the conversation's `next_seq`, else `Conflict`) and the ticket is `answered`
    /// (or `closed` when `close`).
    fn answer_ticket(
        &self,
        tenant: TenantId,
        ticket: &str,
        message: MessageRow,
        close: bool,
        actor: &str,
        audit: AuditDraft,
    ) -> impl Future<Output = Result<MessageRow>> + Send;
    fn conversations_for(
        &self,
        tenant: TenantId,
        subject: SubjectId,
    ) -> impl Future<Output = Result<Vec<ConversationRow>>> + Send;
    fn messages_for(
        &self,
        tenant: TenantId,
        subject: SubjectId,
    ) -> impl Future<Output = Result<Vec<MessageRow>>> + Send;
    fn tickets_for(
        &self,
        tenant: TenantId,
        subject: SubjectId,
    ) -> impl Future<Output = Result<Vec<TicketRow>>> + Send;
    /// Deletes conversations (with their messages and tickets) last active before `before`.
    fn sweep_conversations(
        &self,
        tenant: TenantId,
        before: Timestamp,
    ) -> impl Future<Output = Result<ConversationSweep>> + Send;
}

/// Products per upsert statement: one statement for what an ingest request names, and small
/// enough (some 5 KiB) to leave PostgreSQL's socket in one write.
pub(crate) const PRODUCT_CHUNK: usize = 50;

/// One row per product, in first-seen order; a product named again takes the later values
/// where it has them (the upsert's own rule, applied within the batch first: one statement
/// may not touch a row twice).
pub(crate) fn merge_products(rows: &[ProductRow]) -> Vec<ProductRow> {
    let mut at: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    let mut out: Vec<ProductRow> = Vec::with_capacity(rows.len());
    for r in rows {
        match at.get(r.product_id.as_str()) {
            None => {
                at.insert(&r.product_id, out.len());
                out.push(r.clone());
            }
            Some(&i) => {
                let e = &mut out[i];
                e.name.clone_from(&r.name);
                if !r.description.is_empty() {
                    e.description.clone_from(&r.description);
                }
                e.category = r.category.clone().or(e.category.take());
                e.price = r.price.or(e.price);
                e.currency = r.currency.clone().or(e.currency.take());
                e.url = r.url.clone().or(e.url.take());
                e.source.clone_from(&r.source);
                e.updated_at = r.updated_at;
            }
        }
    }
    out
}

impl AssistantStore for AnyStore {
    async fn upsert_products(
        &self,
        tenant: TenantId,
        rows: &[ProductRow],
        audit: Vec<AuditDraft>,
    ) -> Result<u64> {
        dispatch!(self, s => s.upsert_products(tenant, rows, audit))
    }
    async fn products(&self, tenant: TenantId) -> Result<Vec<ProductRow>> {
        dispatch!(self, s => s.products(tenant))
    }
    async fn catalog_stamp(&self, tenant: TenantId) -> Result<(i64, i64)> {
        dispatch!(self, s => s.catalog_stamp(tenant))
    }
    async fn write_turns(&self, turns: &[TurnWrite]) -> Result<Vec<Result<()>>> {
        dispatch!(self, s => s.write_turns(turns))
    }
    async fn conversation(&self, tenant: TenantId, id: &str) -> Result<Option<ConversationRow>> {
        dispatch!(self, s => s.conversation(tenant, id))
    }
    async fn messages(&self, tenant: TenantId, conversation: &str) -> Result<Vec<MessageRow>> {
        dispatch!(self, s => s.messages(tenant, conversation))
    }
    async fn tickets(
        &self,
        tenant: TenantId,
        status: Option<&str>,
        limit: u32,
    ) -> Result<Vec<TicketRow>> {
        dispatch!(self, s => s.tickets(tenant, status, limit))
    }
    async fn ticket(&self, tenant: TenantId, id: &str) -> Result<Option<TicketRow>> {
        dispatch!(self, s => s.ticket(tenant, id))
    }
    async fn answer_ticket(
        &self,
        tenant: TenantId,
        ticket: &str,
        message: MessageRow,
        close: bool,
        actor: &str,
        audit: AuditDraft,
    ) -> Result<MessageRow> {
        dispatch!(self, s => s.answer_ticket(tenant, ticket, message, close, actor, audit))
    }
    async fn conversations_for(
        &self,
        tenant: TenantId,
        subject: SubjectId,
    ) -> Result<Vec<ConversationRow>> {
        dispatch!(self, s => s.conversations_for(tenant, subject))
    }
    async fn messages_for(&self, tenant: TenantId, subject: SubjectId) -> Result<Vec<MessageRow>> {
        dispatch!(self, s => s.messages_for(tenant, subject))
    }
    async fn tickets_for(&self, tenant: TenantId, subject: SubjectId) -> Result<Vec<TicketRow>> {
        dispatch!(self, s => s.tickets_for(tenant, subject))
    }
    async fn sweep_conversations(
        &self,
        tenant: TenantId,
        before: Timestamp,
    ) -> Result<ConversationSweep> {
        dispatch!(self, s => s.sweep_conversations(tenant, before))
    }
}

macro_rules! impl_assistant_store {
    ($store:ty, update_lock = $update:literal) => {
        mod assistant_impl {
            use sqlx::Row as _;

            use candor_types::{SubjectId, TenantId, Timestamp};

            use super::{$store, DbRow, audit_tx, insert_decision};
            use crate::assistant::{
                AssistantStore, ConversationRow, ConversationSweep, MessageRow, ProductRow,
                TicketRow, TurnWrite,
            };
            use crate::backend::parse;
            use crate::{AuditDraft, Result, StoreError};

            fn subject_of(r: &DbRow) -> Result<Option<SubjectId>> {
                r.try_get::<Option<String>, _>("subject_id")?
                    .map(|s| parse("subject id", &s))
                    .transpose()
            }

            fn product_from(r: &DbRow) -> Result<ProductRow> {
                Ok(ProductRow {
                    product_id: r.try_get("product_id")?,
                    name: r.try_get("name")?,
                    description: r.try_get("description")?,
                    category: r.try_get("category")?,
                    price: r.try_get("price")?,
                    currency: r.try_get("currency")?,
                    url: r.try_get("url")?,
                    source: r.try_get("source")?,
                    updated_at: Timestamp(r.try_get("updated_at")?),
                })
            }

            fn conversation_from(r: &DbRow) -> Result<ConversationRow> {
                Ok(ConversationRow {
                    id: r.try_get("id")?,
                    subject: subject_of(r)?,
                    verified: r.try_get("verified")?,
                    status: r.try_get("status")?,
                    misunderstandings: r.try_get("misunderstandings")?,
                    next_seq: r.try_get("next_seq")?,
                    disclosure_version: r.try_get("disclosure_version")?,
                    created_at: Timestamp(r.try_get("created_at")?),
                    updated_at: Timestamp(r.try_get("updated_at")?),
                })
            }

            fn message_from(r: &DbRow) -> Result<MessageRow> {
                Ok(MessageRow {
                    conversation_id: r.try_get("conversation_id")?,
                    seq: r.try_get("seq")?,
                    id: r.try_get("id")?,
                    subject: subject_of(r)?,
                    role: r.try_get("role")?,
                    body: r.try_get("body")?,
                    sealed: r.try_get("sealed")?,
                    meta: r.try_get("meta")?,
                    created_at: Timestamp(r.try_get("created_at")?),
                })
            }

            fn ticket_from(r: &DbRow) -> Result<TicketRow> {
                Ok(TicketRow {
                    id: r.try_get("id")?,
                    conversation_id: r.try_get("conversation_id")?,
                    subject: subject_of(r)?,
                    reason: r.try_get("reason")?,
                    status: r.try_get("status")?,
                    created_at: Timestamp(r.try_get("created_at")?),
                    answered_at: r.try_get::<Option<i64>, _>("answered_at")?.map(Timestamp),
                    answered_by: r.try_get("answered_by")?,
                })
            }

            async fn insert_message(tx: &mut super::Tx, tenant: &str, m: &MessageRow) -> Result<()> {
                sqlx::query(
                    "INSERT INTO assistant_messages (tenant_id, conversation_id, seq, id, subject_id, role, body, sealed, meta, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                )
                .bind(tenant)
                .bind(&m.conversation_id)
                .bind(m.seq)
                .bind(&m.id)
                .bind(m.subject.map(|s| s.to_string()))
                .bind(&m.role)
                .bind(&m.body)
                .bind(m.sealed)
                .bind(&m.meta)
                .bind(m.created_at.0)
                .execute(&mut **tx)
                .await?;
                Ok(())
            }

            /// One turn inside the batch's transaction: `Ok(Err(_))` refuses this turn alone
            /// (nothing of it was written).
            async fn turn(tx: &mut super::Tx, w: &TurnWrite) -> Result<Result<()>> {
                let t = w.tenant.to_string();
                let c = &w.conversation;
                if let Some(s) = c.subject {
                    let live = sqlx::query(concat!(
                        "SELECT id FROM subjects WHERE tenant_id = $1 AND id = $2 AND wrapped_key IS NOT NULL",
                        $update
                    ))
                    .bind(&t)
                    .bind(s.to_string())
                    .fetch_optional(&mut **tx)
                    .await?;
                    if live.is_none() {
                        return Ok(Err(StoreError::NotFound));
                    }
                }
                let n = match w.expect_seq {
                    None => sqlx::query(
                        "INSERT INTO assistant_conversations (tenant_id, id, subject_id, verified, status, misunderstandings, next_seq, disclosure_version, created_at, updated_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (tenant_id, id) DO NOTHING",
                    )
                    .bind(&t)
                    .bind(&c.id)
                    .bind(c.subject.map(|s| s.to_string()))
                    .bind(c.verified)
                    .bind(&c.status)
                    .bind(c.misunderstandings)
                    .bind(c.next_seq)
                    .bind(&c.disclosure_version)
                    .bind(c.created_at.0)
                    .bind(c.updated_at.0)
                    .execute(&mut **tx)
                    .await?
                    .rows_affected(),
                    Some(seq) => sqlx::query(
                        "UPDATE assistant_conversations SET status = $3, misunderstandings = $4, next_seq = $5, updated_at = $6 \
                         WHERE tenant_id = $1 AND id = $2 AND next_seq = $7",
                    )
                    .bind(&t)
                    .bind(&c.id)
                    .bind(&c.status)
                    .bind(c.misunderstandings)
                    .bind(c.next_seq)
                    .bind(c.updated_at.0)
                    .bind(seq)
                    .execute(&mut **tx)
                    .await?
                    .rows_affected(),
                };
                if n == 0 {
                    return Ok(Err(StoreError::Conflict("the conversation changed".into())));
                }
                for m in &w.messages {
                    insert_message(tx, &t, m).await?;
                }
                if let Some(k) = &w.ticket {
                    sqlx::query(
                        "INSERT INTO assistant_tickets (tenant_id, id, conversation_id, subject_id, reason, status, created_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    )
                    .bind(&t)
                    .bind(&k.id)
                    .bind(&k.conversation_id)
                    .bind(k.subject.map(|s| s.to_string()))
                    .bind(&k.reason)
                    .bind(&k.status)
                    .bind(k.created_at.0)
                    .execute(&mut **tx)
                    .await?;
                }
                for d in &w.decisions {
                    insert_decision(tx, w.tenant, d).await?;
                }
                Ok(Ok(()))
            }

            impl AssistantStore for $store {
                async fn upsert_products(&self, tenant: TenantId, rows: &[ProductRow], audit: Vec<AuditDraft>) -> Result<u64> {
                    let mut tx = self.write_tx().await?;
                    let n = upsert_products_tx(&mut tx, &tenant.to_string(), rows).await?;
                    if !audit.is_empty() {
                        let at = rows.iter().map(|r| r.updated_at).max().unwrap_or(Timestamp(0));
                        audit_tx(&mut tx, audit, at).await?;
                    }
                    tx.commit().await?;
                    Ok(n)
                }

                async fn products(&self, tenant: TenantId) -> Result<Vec<ProductRow>> {
                    sqlx::query("SELECT * FROM catalog_products WHERE tenant_id = $1 ORDER BY product_id")
                        .bind(tenant.to_string())
                        .fetch_all(self.reader())
                        .await?
                        .iter()
                        .map(product_from)
                        .collect()
                }

                async fn catalog_stamp(&self, tenant: TenantId) -> Result<(i64, i64)> {
                    let r = sqlx::query(
                        "SELECT COUNT(*) AS n, COALESCE(MAX(updated_at), 0) AS at FROM catalog_products WHERE tenant_id = $1",
                    )
                    .bind(tenant.to_string())
                    .fetch_one(self.reader())
                    .await?;
                    Ok((r.try_get("n")?, r.try_get("at")?))
                }

                async fn write_turns(&self, turns: &[TurnWrite]) -> Result<Vec<Result<()>>> {
                    let mut tx = self.write_tx().await?;
                    let mut out = Vec::with_capacity(turns.len());
                    let mut audit = Vec::new();
                    let mut at = Timestamp(0);
                    for w in turns {
                        let r = turn(&mut tx, w).await?;
                        if r.is_ok() {
                            audit.extend(w.audit.iter().cloned());
                            at = at.max(w.conversation.updated_at);
                        }
                        out.push(r);
                    }
                    audit_tx(&mut tx, audit, at).await?;
                    tx.commit().await?;
                    Ok(out)
                }

                async fn conversation(&self, tenant: TenantId, id: &str) -> Result<Option<ConversationRow>> {
                    sqlx::query("SELECT * FROM assistant_conversations WHERE tenant_id = $1 AND id = $2")
                        .bind(tenant.to_string())
                        .bind(id)
                        .fetch_optional(self.reader())
                        .await?
                        .as_ref()
                        .map(conversation_from)
                        .transpose()
                }

                async fn messages(&self, tenant: TenantId, conversation: &str) -> Result<Vec<MessageRow>> {
                    sqlx::query("SELECT * FROM assistant_messages WHERE tenant_id = $1 AND conversation_id = $2 ORDER BY seq")
                        .bind(tenant.to_string())
                        .bind(conversation)
                        .fetch_all(self.reader())
                        .await?
                        .iter()
                        .map(message_from)
                        .collect()
                }

                async fn tickets(&self, tenant: TenantId, status: Option<&str>, limit: u32) -> Result<Vec<TicketRow>> {
                    sqlx::query(
                        "SELECT * FROM assistant_tickets WHERE tenant_id = $1 AND ($2 = '' OR status = $2) ORDER BY created_at, id LIMIT $3",
                    )
                    .bind(tenant.to_string())
                    .bind(status.unwrap_or(""))
                    .bind(i64::from(limit))
                    .fetch_all(self.reader())
                    .await?
                    .iter()
                    .map(ticket_from)
                    .collect()
                }

                async fn ticket(&self, tenant: TenantId, id: &str) -> Result<Option<TicketRow>> {
                    sqlx::query("SELECT * FROM assistant_tickets WHERE tenant_id = $1 AND id = $2")
                        .bind(tenant.to_string())
                        .bind(id)
                        .fetch_optional(self.reader())
                        .await?
                        .as_ref()
                        .map(ticket_from)
                        .transpose()
                }

                async fn answer_ticket(&self, tenant: TenantId, ticket: &str, message: MessageRow, close: bool, actor: &str, audit: AuditDraft) -> Result<MessageRow> {
                    let t = tenant.to_string();
                    let at = message.created_at;
                    let mut tx = self.write_tx().await?;
                    let n = sqlx::query(
                        "UPDATE assistant_tickets SET status = $3, answered_at = $4, answered_by = $5 \
                         WHERE tenant_id = $1 AND id = $2 AND conversation_id = $6 AND status <> 'closed'",
                    )
                    .bind(&t)
                    .bind(ticket)
                    .bind(if close { "closed" } else { "answered" })
                    .bind(at.0)
                    .bind(actor)
                    .bind(&message.conversation_id)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                    if n == 0 {
                        return Err(StoreError::NotFound);
                    }
                    let n = sqlx::query(
                        "UPDATE assistant_conversations SET next_seq = next_seq + 1, updated_at = $3, \
                         status = CASE WHEN status = 'closed' THEN status ELSE 'handoff' END \
                         WHERE tenant_id = $1 AND id = $2 AND next_seq = $4",
                    )
                    .bind(&t)
                    .bind(&message.conversation_id)
                    .bind(at.0)
                    .bind(message.seq)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                    if n == 0 {
                        return Err(StoreError::Conflict("the conversation changed".into()));
                    }
                    insert_message(&mut tx, &t, &message).await?;
                    audit_tx(&mut tx, vec![audit], at).await?;
                    tx.commit().await?;
                    Ok(message)
                }

                async fn conversations_for(&self, tenant: TenantId, subject: SubjectId) -> Result<Vec<ConversationRow>> {
                    sqlx::query("SELECT * FROM assistant_conversations WHERE tenant_id = $1 AND subject_id = $2 ORDER BY created_at, id")
                        .bind(tenant.to_string())
                        .bind(subject.to_string())
                        .fetch_all(self.reader())
                        .await?
                        .iter()
                        .map(conversation_from)
                        .collect()
                }

                async fn messages_for(&self, tenant: TenantId, subject: SubjectId) -> Result<Vec<MessageRow>> {
                    sqlx::query("SELECT * FROM assistant_messages WHERE tenant_id = $1 AND subject_id = $2 ORDER BY conversation_id, seq")
                        .bind(tenant.to_string())
                        .bind(subject.to_string())
                        .fetch_all(self.reader())
                        .await?
                        .iter()
                        .map(message_from)
                        .collect()
                }

                async fn tickets_for(&self, tenant: TenantId, subject: SubjectId) -> Result<Vec<TicketRow>> {
                    sqlx::query("SELECT * FROM assistant_tickets WHERE tenant_id = $1 AND subject_id = $2 ORDER BY created_at, id")
                        .bind(tenant.to_string())
                        .bind(subject.to_string())
                        .fetch_all(self.reader())
                        .await?
                        .iter()
                        .map(ticket_from)
                        .collect()
                }

                async fn sweep_conversations(&self, tenant: TenantId, before: Timestamp) -> Result<ConversationSweep> {
                    let t = tenant.to_string();
                    let mut tx = self.write_tx().await?;
                    // Messages and tickets of the idle conversations, then the conversations.
                    let mut swept = [0u64; 2];
                    for (n, q) in swept.iter_mut().zip([
                        "DELETE FROM assistant_messages WHERE tenant_id = $1 AND conversation_id IN \
                         (SELECT id FROM assistant_conversations WHERE tenant_id = $1 AND updated_at < $2)",
                        "DELETE FROM assistant_tickets WHERE tenant_id = $1 AND conversation_id IN \
                         (SELECT id FROM assistant_conversations WHERE tenant_id = $1 AND updated_at < $2)",
                    ]) {
                        *n = sqlx::query(q).bind(&t).bind(before.0).execute(&mut *tx).await?.rows_affected();
                    }
                    let [messages, tickets] = swept;
                    let conversations = sqlx::query("DELETE FROM assistant_conversations WHERE tenant_id = $1 AND updated_at < $2")
                        .bind(&t)
                        .bind(before.0)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                    tx.commit().await?;
                    Ok(ConversationSweep { conversations, messages, tickets })
                }
            }

            /// Upserts products inside a transaction (ingest calls it with its event rows).
            /// Upserts products inside a transaction (ingest calls it with its event rows):
            /// [`PRODUCT_CHUNK`](crate::assistant::PRODUCT_CHUNK) rows per statement, a product
            /// named twice merged first as two upserts in a row would.
            pub(crate) async fn upsert_products_tx(tx: &mut super::Tx, tenant: &str, rows: &[ProductRow]) -> Result<u64> {
                let rows = crate::assistant::merge_products(rows);
                let mut n = 0;
                for chunk in rows.chunks(crate::assistant::PRODUCT_CHUNK) {
                    let mut sql = String::from(
                        "INSERT INTO catalog_products (tenant_id, product_id, name, description, category, price, currency, url, source, updated_at) VALUES ",
                    );
                    for i in 0..chunk.len() {
                        let b = i * 10;
                        if i > 0 {
                            sql.push(',');
                        }
                        sql.push_str(&format!(
                            "(${},${},${},${},${},${},${},${},${},${})",
                            b + 1, b + 2, b + 3, b + 4, b + 5, b + 6, b + 7, b + 8, b + 9, b + 10
                        ));
                    }
                    sql.push_str(
                        " ON CONFLICT (tenant_id, product_id) DO UPDATE SET name = excluded.name, \
                         description = CASE WHEN excluded.description = '' THEN catalog_products.description ELSE excluded.description END, \
                         category = COALESCE(excluded.category, catalog_products.category), \
                         price = COALESCE(excluded.price, catalog_products.price), \
                         currency = COALESCE(excluded.currency, catalog_products.currency), \
                         url = COALESCE(excluded.url, catalog_products.url), \
                         source = excluded.source, updated_at = excluded.updated_at \
                         WHERE excluded.source = 'import' OR (catalog_products.source = 'event' AND ( \
                         catalog_products.name <> excluded.name \
                         OR (excluded.description <> '' AND catalog_products.description <> excluded.description) \
                         OR (excluded.category IS NOT NULL AND catalog_products.category IS DISTINCT FROM excluded.category) \
                         OR (excluded.price IS NOT NULL AND catalog_products.price IS DISTINCT FROM excluded.price) \
                         OR (excluded.url IS NOT NULL AND catalog_products.url IS DISTINCT FROM excluded.url)))",
                    );
                    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
                    for r in chunk {
                        q = q
                            .bind(tenant)
                            .bind(&r.product_id)
                            .bind(&r.name)
                            .bind(&r.description)
                            .bind(&r.category)
                            .bind(r.price)
                            .bind(&r.currency)
                            .bind(&r.url)
                            .bind(&r.source)
                            .bind(r.updated_at.0);
                    }
                    n += q.execute(&mut **tx).await?.rows_affected();
                }
                Ok(n)
            }
        }
    };
}

pub(crate) use impl_assistant_store;

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, name: &str, category: Option<&str>, price: Option<i64>) -> ProductRow {
        ProductRow {
            product_id: id.into(),
            name: name.into(),
            description: String::new(),
            category: category.map(str::to_owned),
            price,
            currency: price.map(|_| "GBP".to_owned()),
            url: None,
            source: "event".into(),
            updated_at: Timestamp(1),
        }
    }

    #[test]
    fn a_product_named_twice_merges_like_two_upserts() {
        let merged = merge_products(&[
            row("a", "Mug", Some("kitchen"), None),
            row("b", "Tin", None, Some(300)),
            row("a", "Blue mug", None, Some(450)),
        ]);
        assert_eq!(merged.len(), 2);
        assert_eq!(merged[0], row("a", "Blue mug", Some("kitchen"), Some(450)));
        assert_eq!(merged[1], row("b", "Tin", None, Some(300)));
    }
}
