//! The SQL shared by both backends. Both speak `$N` placeholders (SQLite accepts them), use
//! text ids, integer milliseconds and byte blobs; the few dialect differences (row locks,
//! migration locking) are macro parameters. Backend modules add connection handling and DDL.

use std::collections::BTreeMap;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use candor_crypto::{IdentifierKind, Sealed};
use candor_types::{Category, Purpose};
use serde_json::Value;

use crate::{Result, StoreError};

pub(crate) fn parse<T: FromStr>(what: &str, s: &str) -> Result<T> {
    s.parse()
        .map_err(|_| StoreError::Corrupt(format!("unreadable {what} in storage")))
}

pub(crate) fn kind_str(k: IdentifierKind) -> &'static str {
    k.as_str()
}

pub(crate) fn parse_kind(s: &str) -> Result<IdentifierKind> {
    Ok(match s {
        "user_id" => IdentifierKind::UserId,
        "anonymous_id" => IdentifierKind::AnonymousId,
        "email" => IdentifierKind::Email,
        "phone" => IdentifierKind::Phone,
        _ => return Err(StoreError::Corrupt("unknown alias kind".into())),
    })
}

pub(crate) fn blind_from(bytes: &[u8]) -> Result<candor_crypto::BlindIndex> {
    let arr: [u8; 32] = bytes
        .try_into()
        .map_err(|_| StoreError::Corrupt("blind index of wrong length".into()))?;
    Ok(candor_crypto::BlindIndex(arr))
}

pub(crate) fn parts_of(
    plain: &BTreeMap<Category, Value>,
    sealed: &BTreeMap<Category, Sealed>,
) -> String {
    let mut cats: Vec<&str> = plain
        .keys()
        .chain(sealed.keys())
        .map(Category::as_str)
        .collect();
    cats.sort_unstable();
    cats.dedup();
    format!(",{},", cats.join(","))
}

pub(crate) fn encode_sealed(sealed: &BTreeMap<Category, Sealed>) -> String {
    let m: BTreeMap<&str, String> = sealed
        .iter()
        .map(|(c, s)| (c.as_str(), STANDARD.encode(s.as_bytes())))
        .collect();
    serde_json::to_string(&m).unwrap_or_else(|_| "{}".into())
}

pub(crate) fn decode_plain(text: &str) -> Result<BTreeMap<Category, Value>> {
    serde_json::from_str(text).map_err(|_| StoreError::Corrupt("event fields unreadable".into()))
}

pub(crate) fn decode_sealed(text: &str) -> Result<BTreeMap<Category, Sealed>> {
    let m: BTreeMap<Category, String> = serde_json::from_str(text)
        .map_err(|_| StoreError::Corrupt("sealed event fields unreadable".into()))?;
    m.into_iter()
        .map(|(c, b64)| {
            STANDARD
                .decode(b64)
                .map(|b| (c, Sealed::from_stored(b)))
                .map_err(|_| StoreError::Corrupt("sealed event fields unreadable".into()))
        })
        .collect()
}

/// Parses consent rows aggregated as a JSON array of
/// `[subject_id, purpose, action, source, notice_version, notice_hash, jurisdiction, at]`.
pub(crate) fn parse_ledger_json(
    text: &str,
) -> Result<Vec<(candor_types::SubjectId, candor_types::ConsentRecord)>> {
    type Raw = (
        String,
        String,
        String,
        String,
        Option<String>,
        Option<String>,
        Option<String>,
        i64,
    );
    let rows: Vec<Raw> = serde_json::from_str(text)
        .map_err(|_| StoreError::Corrupt("consent ledger unreadable".into()))?;
    rows.into_iter()
        .map(|(s, p, a, src, nv, nh, j, at)| {
            Ok((
                parse("subject id", &s)?,
                candor_types::ConsentRecord {
                    purpose: parse("purpose", &p)?,
                    action: parse("consent action", &a)?,
                    source: parse("consent source", &src)?,
                    notice_version: nv,
                    notice_hash: nh,
                    jurisdiction: j,
                    at: candor_types::Timestamp(at),
                },
            ))
        })
        .collect()
}

/// One event row as bound into an INSERT.
pub(crate) struct EventInsert {
    pub id: String,
    pub message_id: String,
    pub subject: String,
    pub kind: &'static str,
    pub name: Option<String>,
    pub category: String,
    pub purposes: String,
    pub parts: String,
    pub plain: String,
    pub sealed: String,
    pub occurred_at: i64,
    pub received_at: i64,
}

pub(crate) fn join_purposes(p: &[Purpose]) -> String {
    p.iter().map(Purpose::as_str).collect::<Vec<_>>().join(",")
}

/// Generates the [`crate::Store`] implementation for one backend.
///
/// The backend type must provide `self.reader()` (a pool for reads), `self.write_tx()` (a
/// transaction that may write) and `migrations()` (versioned DDL).
macro_rules! impl_store {
    (
        $store:ty,
        $db:ty,
        share_lock = $share:literal,
        update_lock = $update:literal,
        skip_locked = $skip_locked:literal,
        migration_lock = $mlock:literal,
        text_in = $text_in:literal,
        blob_in = $blob_in:literal,
        consents_json = $consents_json:literal,
        check_sql = $check_sql:literal
    ) => {
        use std::collections::{BTreeMap, HashMap, HashSet};

        use sqlx::{Row as _, Transaction};

        use candor_crypto::Sealed;
        use candor_policy::Grant;
        use candor_types::{
            Category, ConsentRecord, EventId, KeyId, SubjectId, TenantId,
            Timestamp,
        };

        use crate::audit::{chain_name, entry_hash};
        use crate::backend::{
            blind_from, decode_plain, decode_sealed, encode_sealed, join_purposes, kind_str,
            parse, parse_kind, parse_ledger_json, parts_of,
        };
        use crate::backend::EventInsert;
        use crate::{
            EmailMark, EmailRow, JourneyOp, JourneyRow, NewStep, StepOutcome, StepRow,
            Alias, AlertRow, ApiKeyRow, AuditDraft, AuditEntry, AuditOverride, ContestRow, DecisionRow, ErasureCounts, ModelAuditRow, NewAlert, NewModelAudit, RequestRow, SubjectState, EventView, FieldRow, IngestJob,
            IngestSnapshot, IngestWrite, ModelRow, ModelTransition, NewApiKey, NewModel, NewSubject,
            Result, Store, StoreError, SubjectRow, SweepCounts, TenantRow,
        };

        type Tx = Transaction<'static, $db>;

        macro_rules! step_cols {
            () => {
                "id, tenant_id, subject_id, journey, step, email, trigger_id, triggered_at, due_at, status, reason, finished_at"
            };
        }
        macro_rules! email_cols {
            () => {
                "id, subject_id, step_id, journey, message_id, token_hash, sent_at, ai_content, tracking, opened_at, clicked_at, bounced_at, complained_at, unsubscribed_at"
            };
        }

        fn step_row(r: &<$db as sqlx::Database>::Row) -> Result<StepRow> {
            Ok(StepRow {
                id: r.try_get("id")?,
                tenant: parse("tenant", &r.try_get::<String, _>("tenant_id")?)?,
                subject: parse("subject", &r.try_get::<String, _>("subject_id")?)?,
                journey: r.try_get("journey")?,
                step: i32::try_from(r.try_get::<i64, _>("step")?).unwrap_or(i32::MAX),
                email: r.try_get("email")?,
                trigger_id: r.try_get("trigger_id")?,
                triggered_at: Timestamp(r.try_get("triggered_at")?),
                due_at: Timestamp(r.try_get("due_at")?),
                status: r.try_get("status")?,
                reason: r.try_get("reason")?,
                finished_at: r.try_get::<Option<i64>, _>("finished_at")?.map(Timestamp),
            })
        }

        fn email_row(r: &<$db as sqlx::Database>::Row) -> Result<EmailRow> {
            let at = |c: &str| -> Result<Option<Timestamp>> { Ok(r.try_get::<Option<i64>, _>(c)?.map(Timestamp)) };
            Ok(EmailRow {
                id: r.try_get("id")?,
                subject: parse("subject", &r.try_get::<String, _>("subject_id")?)?,
                step_id: r.try_get("step_id")?,
                journey: r.try_get("journey")?,
                message_id: r.try_get("message_id")?,
                token_hash: r.try_get("token_hash")?,
                sent_at: Timestamp(r.try_get("sent_at")?),
                ai_content: r.try_get::<i64, _>("ai_content")? != 0,
                tracking: r.try_get::<i64, _>("tracking")? != 0,
                opened_at: at("opened_at")?,
                clicked_at: at("clicked_at")?,
                bounced_at: at("bounced_at")?,
                complained_at: at("complained_at")?,
                unsubscribed_at: at("unsubscribed_at")?,
            })
        }

        type DbRow = <$db as sqlx::Database>::Row;

        type Conn = <$db as sqlx::Database>::Connection;

        /// Ends a transaction that changed `n` rows: audits the change if there was one.
        async fn commit_audited(mut tx: Tx, n: u64, audit: AuditDraft, at: Timestamp) -> Result<bool> {
            if n > 0 {
                audit_tx(&mut tx, vec![audit], at).await?;
            }
            tx.commit().await?;
            Ok(n > 0)
        }

        async fn audit_tx(tx: &mut Tx, drafts: Vec<AuditDraft>, at: Timestamp) -> Result<()> {
            for d in drafts {
                let chain = chain_name(d.tenant);
                sqlx::query(
                    "INSERT INTO audit_head (chain, seq, hash) VALUES ($1, 0, $2) ON CONFLICT (chain) DO NOTHING",
                )
                .bind(&chain)
                .bind(vec![0u8; 32])
                .execute(&mut **tx)
                .await?;
                let head = sqlx::query(concat!(
                    "SELECT seq, hash FROM audit_head WHERE chain = $1",
                    $update
                ))
                .bind(&chain)
                .fetch_one(&mut **tx)
                .await?;
                let prev_seq: i64 = head.try_get("seq")?;
                let prev_hash: Vec<u8> = head.try_get("hash")?;
                let seq = prev_seq + 1;
                let details = d.details.to_string();
                let hash = entry_hash(
                    &prev_hash,
                    &chain,
                    seq,
                    at,
                    &d.actor,
                    &d.action,
                    d.target.as_deref(),
                    &details,
                );
                sqlx::query(
                    "INSERT INTO audit_log (chain, seq, at, actor, action, target, details, prev_hash, hash) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                )
                .bind(&chain)
                .bind(seq)
                .bind(at.0)
                .bind(&d.actor)
                .bind(&d.action)
                .bind(&d.target)
                .bind(&details)
                .bind(&prev_hash)
                .bind(&hash[..])
                .execute(&mut **tx)
                .await?;
                sqlx::query("UPDATE audit_head SET seq = $1, hash = $2 WHERE chain = $3")
                    .bind(seq)
                    .bind(&hash[..])
                    .bind(&chain)
                    .execute(&mut **tx)
                    .await?;
            }
            Ok(())
        }

        fn tenant_from(r: &DbRow) -> Result<TenantRow> {
            Ok(TenantRow {
                id: parse("tenant id", &r.try_get::<String, _>("id")?)?,
                name: r.try_get("name")?,
                wrapped_key: Sealed::from_stored(r.try_get("wrapped_key")?),
                created_at: Timestamp(r.try_get("created_at")?),
            })
        }

        fn key_from(r: &DbRow) -> Result<ApiKeyRow> {
            Ok(ApiKeyRow {
                id: parse("key id", &r.try_get::<String, _>("id")?)?,
                tenant: parse("tenant id", &r.try_get::<String, _>("tenant_id")?)?,
                scope: parse("scope", &r.try_get::<String, _>("scope")?)?,
                label: r.try_get("label")?,
                created_at: Timestamp(r.try_get("created_at")?),
                revoked_at: r.try_get::<Option<i64>, _>("revoked_at")?.map(Timestamp),
            })
        }

        fn subject_from(r: &DbRow) -> Result<SubjectRow> {
            Ok(SubjectRow {
                id: parse("subject id", &r.try_get::<String, _>("id")?)?,
                wrapped_key: r
                    .try_get::<Option<Vec<u8>>, _>("wrapped_key")?
                    .map(Sealed::from_stored),
                created_at: Timestamp(r.try_get("created_at")?),
            })
        }

        fn consent_from(r: &DbRow) -> Result<(SubjectId, ConsentRecord)> {
            Ok((
                parse("subject id", &r.try_get::<String, _>("subject_id")?)?,
                ConsentRecord {
                    purpose: parse("purpose", &r.try_get::<String, _>("purpose")?)?,
                    action: parse("consent action", &r.try_get::<String, _>("action")?)?,
                    source: parse("consent source", &r.try_get::<String, _>("source")?)?,
                    notice_version: r.try_get("notice_version")?,
                    notice_hash: r.try_get("notice_hash")?,
                    jurisdiction: r.try_get("jurisdiction")?,
                    at: Timestamp(r.try_get("at")?),
                },
            ))
        }

        async fn insert_consent(
            tx: &mut Tx,
            tenant: TenantId,
            subject: SubjectId,
            c: &ConsentRecord,
        ) -> Result<()> {
            sqlx::query(
                "INSERT INTO consents (tenant_id, subject_id, purpose, action, source, notice_version, notice_hash, jurisdiction, at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(tenant.to_string())
            .bind(subject.to_string())
            .bind(c.purpose.as_str())
            .bind(c.action.as_str())
            .bind(c.source.as_str())
            .bind(&c.notice_version)
            .bind(&c.notice_hash)
            .bind(&c.jurisdiction)
            .bind(c.at.0)
            .execute(&mut **tx)
            .await?;
            // Withdrawing personalization removes the person's recommendation factors in the
            // same transaction: nothing personal is left to recommend from.
            if c.action == candor_types::ConsentAction::Withdrawn && c.purpose.as_str() == crate::RECS_PURPOSE {
                sqlx::query("DELETE FROM rec_factors WHERE tenant_id = $1 AND subject_id = $2")
                    .bind(tenant.to_string())
                    .bind(subject.to_string())
                    .execute(&mut **tx)
                    .await?;
            }
            Ok(())
        }

        const ALIAS_SQL: &str = concat!(
            "SELECT a.kind, a.blind, s.id, s.wrapped_key, s.created_at FROM subject_aliases a \
             JOIN subjects s ON s.tenant_id = a.tenant_id AND s.id = a.subject_id \
             WHERE a.tenant_id = $1 AND a.blind ",
            $blob_in
        );

        fn alias_rows(rows: Vec<DbRow>, out: &mut HashMap<Alias, SubjectRow>) -> Result<()> {
            for r in rows {
                let alias = Alias {
                    kind: parse_kind(&r.try_get::<String, _>("kind")?)?,
                    blind: blind_from(&r.try_get::<Vec<u8>, _>("blind")?)?,
                };
                out.insert(alias, subject_from(&r)?);
            }
            Ok(())
        }

        /// Subjects for the aliases that exist. The list travels as one parameter.
        async fn aliases_on(
            conn: &mut Conn,
            tenant: TenantId,
            aliases: &[Alias],
        ) -> Result<HashMap<Alias, SubjectRow>> {
            let blinds: Vec<Vec<u8>> = aliases.iter().map(|a| a.blind.0.to_vec()).collect();
            let q = bind_blobs(sqlx::query(ALIAS_SQL).bind(tenant.to_string()), &blinds);
            let mut out = HashMap::new();
            alias_rows(q.fetch_all(&mut *conn).await?, &mut out)?;
            Ok(out)
        }

        /// Share-locks the subjects against concurrent consent changes (PostgreSQL; SQLite's
        /// single writer already excludes them). A statement of its own: under READ COMMITTED
        /// the reads after it see every consent change that committed while it waited.
        async fn lock_subjects(conn: &mut Conn, tenant: TenantId, subjects: &[String]) -> Result<()> {
            if !$share.is_empty() {
                let q = sqlx::query(concat!("SELECT id FROM subjects WHERE tenant_id = $1 AND id ", $text_in, $share));
                bind_texts(q.bind(tenant.to_string()), subjects).fetch_all(&mut *conn).await?;
            }
            Ok(())
        }

        /// The ledger fingerprint and which message ids exist, in one statement.
        async fn check_on(
            conn: &mut Conn,
            tenant: TenantId,
            subjects: &[String],
            message_ids: &[String],
        ) -> Result<((i64, i64), HashSet<String>, i64)> {
            let q = sqlx::query($check_sql).bind(tenant.to_string());
            let row = bind_texts(bind_texts(q, subjects), message_ids)
                .fetch_one(&mut *conn)
                .await?;
            let existing: Vec<String> = serde_json::from_str(&row.try_get::<String, _>("existing")?)
                .map_err(|_| StoreError::Corrupt("message ids unreadable".into()))?;
            Ok((
                (row.try_get::<i64, _>("n")?, row.try_get::<i64, _>("s")?),
                existing.into_iter().collect(),
                row.try_get::<i64, _>("gone")?,
            ))
        }

        /// What a planner needs: the subjects' ledgers (one JSON row: one hand-off instead of
        /// one per record), their fingerprint, and which message ids exist.
        async fn snapshot_on(
            conn: &mut Conn,
            tenant: TenantId,
            subjects: &[String],
            message_ids: &[String],
        ) -> Result<IngestSnapshot> {
            let mut snapshot = IngestSnapshot::default();
            let q = sqlx::query($consents_json);
            let row = bind_texts(q.bind(tenant.to_string()), subjects).fetch_one(&mut *conn).await?;
            for (s, c) in parse_ledger_json(&row.try_get::<String, _>("ledger")?)? {
                snapshot.ledgers.entry(s).or_default().push(c);
            }
            snapshot.fingerprint = (row.try_get::<i64, _>("n")?, row.try_get::<i64, _>("s")?);
            let q = sqlx::query(concat!(
                "SELECT message_id FROM events WHERE tenant_id = $1 AND message_id ", $text_in
            ));
            for r in bind_texts(q.bind(tenant.to_string()), message_ids).fetch_all(&mut *conn).await? {
                snapshot.existing_message_ids.insert(r.try_get("message_id")?);
            }
            // Subjects erased after they were resolved: their events are dropped, not stored.
            let q = sqlx::query(concat!(
                "SELECT id FROM subjects WHERE tenant_id = $1 AND wrapped_key IS NULL AND id ", $text_in
            ));
            for r in bind_texts(q.bind(tenant.to_string()), subjects).fetch_all(&mut *conn).await? {
                snapshot.erased.insert(parse("subject id", &r.try_get::<String, _>("id")?)?);
            }
            Ok(snapshot)
        }

        /// Records a decision unless its person's data key is gone (`Conflict` then: nothing
        /// is recorded about an erased person).
        async fn insert_decision(tx: &mut Tx, tenant: TenantId, d: &DecisionRow) -> Result<()> {
            let n = sqlx::query(
                "INSERT INTO decisions (tenant_id, id, subject_id, purpose, kind, model_version, inputs_digest, sealed, created_at) \
                 SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9 FROM subjects \
                 WHERE tenant_id = $1 AND id = $3 AND wrapped_key IS NOT NULL",
            )
            .bind(tenant.to_string())
            .bind(&d.id)
            .bind(d.subject.to_string())
            .bind(&d.purpose)
            .bind(&d.kind)
            .bind(d.model_version)
            .bind(&d.inputs_digest)
            .bind(d.sealed.as_bytes())
            .bind(d.created_at.0)
            .execute(&mut **tx)
            .await?
            .rows_affected();
            if n == 0 {
                return Err(StoreError::Conflict("the subject's data key is gone".into()));
            }
            Ok(())
        }

        /// Ends a pending step triggered at or before `before` as `exited` (a held-out step
        /// keeps its mark: `holdout: <reason>`).
        async fn exit_step(tx: &mut Tx, tenant: TenantId, id: &str, reason: &str, at: Timestamp, before: Timestamp) -> Result<u64> {
            Ok(sqlx::query(
                "UPDATE journey_steps SET status = 'exited', finished_at = $4, \
                 reason = CASE WHEN reason = 'holdout' THEN 'holdout: ' || $3 ELSE $3 END \
                 WHERE tenant_id = $1 AND id = $2 AND status = 'pending' AND triggered_at <= $5",
            )
            .bind(tenant.to_string())
            .bind(id)
            .bind(reason)
            .bind(at.0)
            .bind(before.0)
            .execute(&mut **tx)
            .await?
            .rows_affected())
        }

        /// Applies an ingest's journey enrolments and exits in event order. One query first
        /// reads which (person, journey) pairs have a pending step; statements that would
        /// certainly change nothing (an exit with nothing pending, a trigger while a step is
        /// pending) are not sent. The statements keep their own guards, so the map only saves
        /// round trips. The rows are not locked (a row lock is a write on PostgreSQL, and it
        /// cost more than the statements saved): if the scheduler finishes a journey's last
        /// step between this read and a trigger for it, that trigger does not re-enrol the
        /// person (the next trigger will).
        async fn apply_journey_ops(tx: &mut Tx, tenant: TenantId, ops: &[JourneyOp], now: Timestamp) -> Result<()> {
            let mut subjects: Vec<String> = ops
                .iter()
                .map(|op| match op {
                    JourneyOp::Enroll(st) => st.subject.to_string(),
                    JourneyOp::Exit { subject, .. } => subject.to_string(),
                })
                .collect();
            subjects.sort();
            subjects.dedup();
            // Every step of these people, filtered here: a `status = 'pending'` condition lets
            // PostgreSQL's planner, on a young table with stale statistics, walk the partial
            // due-date index over every pending step of the tenant for each batch.
            let q = sqlx::query(concat!(
                "SELECT id, subject_id, journey, status FROM journey_steps WHERE tenant_id = $1 AND subject_id ", $text_in
            ));
            // The pending step's id; absent: certainly none.
            let mut pending: HashMap<(String, String), String> = HashMap::new();
            for r in bind_texts(q.bind(tenant.to_string()), &subjects).fetch_all(&mut **tx).await? {
                if r.try_get::<String, _>("status")? == "pending" {
                    pending.insert((r.try_get("subject_id")?, r.try_get("journey")?), r.try_get("id")?);
                }
            }
            // Enrolments are gathered and inserted in one statement; an exit that concerns a
            // gathered one flushes them first, so the order of events is kept. (A gathered
            // step the insert refuses, e.g. a repeated trigger, is not pending; an exit for it
            // then changes nothing.)
            let tenant_s = tenant.to_string();
            let mut gathered: Vec<NewStep> = Vec::new();
            let mut gathered_keys: HashSet<(String, String)> = HashSet::new();
            for op in ops {
                match op {
                    JourneyOp::Enroll(st) => {
                        let k = (st.subject.to_string(), st.journey.clone());
                        if pending.contains_key(&k) {
                            continue;
                        }
                        pending.insert(k.clone(), st.id.clone());
                        gathered_keys.insert(k);
                        gathered.push(st.clone());
                    }
                    JourneyOp::Exit { subject, journeys, at, reason } => {
                        for j in journeys {
                            let k = (subject.to_string(), j.clone());
                            let Some(id) = pending.get(&k).cloned() else {
                                continue;
                            };
                            if gathered_keys.contains(&k) {
                                insert_steps(tx, &tenant_s, &gathered).await?;
                                gathered.clear();
                                gathered_keys.clear();
                            }
                            if exit_step(tx, tenant, &id, reason, now, *at).await? > 0 {
                                pending.remove(&k);
                            }
                        }
                    }
                }
            }
            if !gathered.is_empty() {
                insert_steps(tx, &tenant_s, &gathered).await?;
            }
            Ok(())
        }

        /// Email addresses as blind indexes (privacy-center sign-in, console search). A person's
        /// newest address replaces their previous one; an address that belongs to another live
        /// person stays theirs (the conflict is audited, nothing is moved); one that belonged
        /// to an erased person may be taken. Statements run in blind-index order, so that two
        /// writes touching the same addresses cannot deadlock.
        async fn apply_email_aliases(tx: &mut Tx, tenant: TenantId, aliases: &[(SubjectId, Alias)]) -> Result<()> {
            if aliases.is_empty() {
                return Ok(());
            }
            let t = tenant.to_string();
            // The last address of each person in this write, then by address.
            let mut latest: BTreeMap<SubjectId, Alias> = BTreeMap::new();
            for (s, a) in aliases {
                latest.insert(*s, *a);
            }
            let mut by_blind: BTreeMap<[u8; 32], (SubjectId, Alias)> = BTreeMap::new();
            for (s, a) in latest {
                by_blind.insert(a.blind.0, (s, a));
            }
            let mut conflicts = Vec::new();
            for (blind, (subject, alias)) in by_blind {
                let sid = subject.to_string();
                // One statement says who owns the address now: a row comes back when it was
                // inserted, taken from the erased, or already this person's; none when another
                // live person keeps it.
                let taken = sqlx::query(
                    "INSERT INTO subject_aliases (tenant_id, kind, blind, subject_id) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (tenant_id, blind) DO UPDATE SET subject_id = excluded.subject_id \
                     WHERE subject_aliases.subject_id = $5 OR subject_aliases.subject_id = excluded.subject_id \
                     RETURNING subject_id",
                )
                .bind(&t)
                .bind(kind_str(alias.kind))
                .bind(&blind[..])
                .bind(&sid)
                .bind(crate::SUPPRESSED)
                .fetch_optional(&mut **tx)
                .await?
                .is_some();
                if taken {
                    sqlx::query(
                        "DELETE FROM subject_aliases WHERE tenant_id = $1 AND subject_id = $2 AND kind = $3 AND blind <> $4",
                    )
                    .bind(&t)
                    .bind(&sid)
                    .bind(kind_str(alias.kind))
                    .bind(&blind[..])
                    .execute(&mut **tx)
                    .await?;
                } else {
                    let owner: String = sqlx::query("SELECT subject_id FROM subject_aliases WHERE tenant_id = $1 AND blind = $2")
                        .bind(&t)
                        .bind(&blind[..])
                        .fetch_one(&mut **tx)
                        .await?
                        .try_get("subject_id")?;
                    conflicts.push(AuditDraft {
                        tenant: Some(tenant),
                        actor: "system:ingest".into(),
                        action: "alias.conflict".into(),
                        target: Some(sid),
                        details: serde_json::json!({ "kind": kind_str(alias.kind), "kept_with": owner }),
                    });
                }
            }
            if !conflicts.is_empty() {
                audit_tx(tx, conflicts, Timestamp::now()).await?;
            }
            Ok(())
        }

        async fn write_tx(tx: &mut Tx, tenant: TenantId, write: &IngestWrite, now: Timestamp) -> Result<Vec<bool>> {
            for (subject, c) in &write.consents {
                insert_consent(tx, tenant, *subject, c).await?;
            }
            for f in &write.fields {
                sqlx::query(
                    "INSERT INTO subject_fields (tenant_id, subject_id, path, category, sealed, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (tenant_id, subject_id, path) \
                     DO UPDATE SET category = excluded.category, sealed = excluded.sealed, updated_at = excluded.updated_at",
                )
                .bind(tenant.to_string())
                .bind(f.subject.to_string())
                .bind(&f.path)
                .bind(f.category.as_str())
                .bind(f.sealed.as_bytes())
                .bind(f.updated_at.0)
                .execute(&mut **tx)
                .await?;
            }
            let rows: Vec<EventInsert> = write
                .events
                .iter()
                .map(|e| {
                    Ok(EventInsert {
                        id: e.id.to_string(),
                        message_id: e.message_id.clone(),
                        subject: e.subject.to_string(),
                        kind: e.kind.as_str(),
                        name: e.name.clone(),
                        category: e.category.as_str().to_owned(),
                        purposes: join_purposes(&e.purposes),
                        parts: parts_of(&e.plain, &e.sealed),
                        plain: serde_json::to_string(&e.plain)
                            .map_err(|_| StoreError::Corrupt("event not serializable".into()))?,
                        sealed: encode_sealed(&e.sealed),
                        occurred_at: e.occurred_at.0,
                        received_at: e.received_at.0,
                    })
                })
                .collect::<Result<_>>()?;
            apply_email_aliases(tx, tenant, &write.aliases).await?;
            let inserted = insert_events(tx, &tenant.to_string(), &rows).await?;
            if !write.journeys.is_empty() {
                apply_journey_ops(tx, tenant, &write.journeys, now).await?;
            }
            pricing_impl::apply_ingest_prices(tx, &tenant.to_string(), &write.prices, &write.price_cancels).await?;
            if !write.products.is_empty() {
                assistant_impl::upsert_products_tx(tx, &tenant.to_string(), &write.products).await?;
            }
            audit_tx(tx, write.audit.clone(), now).await?;
            Ok(rows.iter().map(|r| inserted.contains(&r.message_id)).collect())
        }

        impl Store for $store {
            async fn migrate(&self) -> Result<()> {
                let mut tx = self.write_tx().await?;
                sqlx::query($mlock).execute(&mut *tx).await?;
                sqlx::query(
                    "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)",
                )
                .execute(&mut *tx)
                .await?;
                let applied: HashSet<i64> = sqlx::query("SELECT version FROM schema_migrations")
                    .fetch_all(&mut *tx)
                    .await?
                    .iter()
                    .map(|r| r.try_get::<i64, _>("version"))
                    .collect::<std::result::Result<_, _>>()?;
                for (version, name, sql) in Self::migrations() {
                    if applied.contains(version) {
                        continue;
                    }
                    tracing::info!(version, name, "applying migration");
                    sqlx::raw_sql(*sql).execute(&mut *tx).await?;
                    sqlx::query(
                        "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
                    )
                    .bind(*version)
                    .bind(*name)
                    .bind(Timestamp::now().0)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn create_tenant(&self, row: &TenantRow, audit: AuditDraft) -> Result<()> {
                let mut tx = self.write_tx().await?;
                let res = sqlx::query(
                    "INSERT INTO tenants (id, name, wrapped_key, created_at) VALUES ($1, $2, $3, $4)",
                )
                .bind(row.id.to_string())
                .bind(&row.name)
                .bind(row.wrapped_key.as_bytes())
                .bind(row.created_at.0)
                .execute(&mut *tx)
                .await;
                match res {
                    Err(e) if StoreError::is_unique_violation(&e) => {
                        return Err(StoreError::Conflict(format!(
                            "a tenant named `{}` already exists",
                            row.name
                        )));
                    }
                    other => {
                        other?;
                    }
                }
                audit_tx(&mut tx, vec![audit], row.created_at).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn tenant(&self, id: TenantId) -> Result<Option<TenantRow>> {
                sqlx::query("SELECT id, name, wrapped_key, created_at FROM tenants WHERE id = $1")
                    .bind(id.to_string())
                    .fetch_optional(self.reader())
                    .await?
                    .as_ref()
                    .map(tenant_from)
                    .transpose()
            }

            async fn tenant_by_name(&self, name: &str) -> Result<Option<TenantRow>> {
                sqlx::query("SELECT id, name, wrapped_key, created_at FROM tenants WHERE name = $1")
                    .bind(name)
                    .fetch_optional(self.reader())
                    .await?
                    .as_ref()
                    .map(tenant_from)
                    .transpose()
            }

            async fn list_tenants(&self) -> Result<Vec<TenantRow>> {
                sqlx::query("SELECT id, name, wrapped_key, created_at FROM tenants ORDER BY created_at, name")
                    .fetch_all(self.reader())
                    .await?
                    .iter()
                    .map(tenant_from)
                    .collect()
            }

            async fn create_api_key(&self, key: &NewApiKey, audit: AuditDraft) -> Result<()> {
                let now = Timestamp::now();
                let mut tx = self.write_tx().await?;
                sqlx::query(
                    "INSERT INTO api_keys (id, tenant_id, scope, key_hash, label, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(key.id.to_string())
                .bind(key.tenant.to_string())
                .bind(key.scope.as_str())
                .bind(&key.hash[..])
                .bind(&key.label)
                .bind(now.0)
                .execute(&mut *tx)
                .await?;
                audit_tx(&mut tx, vec![audit], now).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn api_key_by_hash(&self, hash: &[u8; 32]) -> Result<Option<ApiKeyRow>> {
                sqlx::query(
                    "SELECT id, tenant_id, scope, label, created_at, revoked_at FROM api_keys \
                     WHERE key_hash = $1 AND revoked_at IS NULL",
                )
                .bind(&hash[..])
                .fetch_optional(self.reader())
                .await?
                .as_ref()
                .map(key_from)
                .transpose()
            }

            async fn list_api_keys(&self, tenant: TenantId) -> Result<Vec<ApiKeyRow>> {
                sqlx::query(
                    "SELECT id, tenant_id, scope, label, created_at, revoked_at FROM api_keys \
                     WHERE tenant_id = $1 ORDER BY created_at",
                )
                .bind(tenant.to_string())
                .fetch_all(self.reader())
                .await?
                .iter()
                .map(key_from)
                .collect()
            }

            async fn revoke_api_key(
                &self,
                tenant: TenantId,
                id: KeyId,
                at: Timestamp,
                audit: AuditDraft,
            ) -> Result<bool> {
                let mut tx = self.write_tx().await?;
                let n = sqlx::query(
                    "UPDATE api_keys SET revoked_at = $1 WHERE tenant_id = $2 AND id = $3 AND revoked_at IS NULL",
                )
                .bind(at.0)
                .bind(tenant.to_string())
                .bind(id.to_string())
                .execute(&mut *tx)
                .await?
                .rows_affected();
                commit_audited(tx, n, audit, at).await
            }

            async fn find_subjects(
                &self,
                tenant: TenantId,
                aliases: &[Alias],
            ) -> Result<HashMap<Alias, SubjectRow>> {
                let mut conn = self.reader().acquire().await?;
                aliases_on(&mut conn, tenant, aliases).await
            }

            async fn ensure_subjects(
                &self,
                tenant: TenantId,
                new: Vec<NewSubject>,
                at: Timestamp,
            ) -> Result<HashMap<Alias, SubjectRow>> {
                let mut tx = self.write_tx().await?;
                let all: Vec<Alias> = new.iter().flat_map(|n| n.aliases.iter().copied()).collect();
                let mut known = aliases_on(&mut tx, tenant, &all).await?;
                for n in &new {
                    let existing = n.aliases.iter().find_map(|a| known.get(a).cloned());
                    let existing_key = existing.as_ref().and_then(|s| s.wrapped_key.clone());
                    let (subject_id, created) = match existing {
                        Some(s) => (s.id, false),
                        None => {
                            sqlx::query(
                                "INSERT INTO subjects (tenant_id, id, wrapped_key, created_at) VALUES ($1, $2, $3, $4)",
                            )
                            .bind(tenant.to_string())
                            .bind(n.id.to_string())
                            .bind(n.wrapped_key.as_bytes())
                            .bind(at.0)
                            .execute(&mut *tx)
                            .await?;
                            (n.id, true)
                        }
                    };
                    let mut linked = 0;
                    for a in &n.aliases {
                        if known.contains_key(a) {
                            continue;
                        }
                        linked += sqlx::query(
                            "INSERT INTO subject_aliases (tenant_id, kind, blind, subject_id) VALUES ($1, $2, $3, $4) \
                             ON CONFLICT (tenant_id, blind) DO NOTHING",
                        )
                        .bind(tenant.to_string())
                        .bind(kind_str(a.kind))
                        .bind(&a.blind.0[..])
                        .bind(subject_id.to_string())
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                    }
                    if created && linked == 0 {
                        // Another writer linked every alias first: drop the orphan.
                        sqlx::query("DELETE FROM subjects WHERE tenant_id = $1 AND id = $2")
                            .bind(tenant.to_string())
                            .bind(n.id.to_string())
                            .execute(&mut *tx)
                            .await?;
                    }
                    if linked < n.aliases.iter().filter(|a| !known.contains_key(a)).count() as u64 {
                        // A concurrent writer won some alias: re-read the truth.
                        known = aliases_on(&mut tx, tenant, &all).await?;
                    } else {
                        let row = SubjectRow { id: subject_id, wrapped_key: if created { Some(n.wrapped_key.clone()) } else { existing_key.clone() }, created_at: at };
                        for a in &n.aliases {
                            known.entry(*a).or_insert_with(|| row.clone());
                        }
                    }
                }
                tx.commit().await?;
                Ok(known)
            }

            async fn subject(&self, tenant: TenantId, id: SubjectId) -> Result<Option<SubjectRow>> {
                sqlx::query(
                    "SELECT id, wrapped_key, created_at FROM subjects WHERE tenant_id = $1 AND id = $2",
                )
                .bind(tenant.to_string())
                .bind(id.to_string())
                .fetch_optional(self.reader())
                .await?
                .as_ref()
                .map(subject_from)
                .transpose()
            }

            async fn shred_subject_key(
                &self,
                tenant: TenantId,
                id: SubjectId,
                audit: AuditDraft,
            ) -> Result<bool> {
                let mut tx = self.write_tx().await?;
                // The row lock waits for ingestion in flight (it holds a share lock).
                let n = sqlx::query(
                    "UPDATE subjects SET wrapped_key = NULL WHERE tenant_id = $1 AND id = $2 AND wrapped_key IS NOT NULL",
                )
                .bind(tenant.to_string())
                .bind(id.to_string())
                .execute(&mut *tx)
                .await?
                .rows_affected();
                commit_audited(tx, n, audit, Timestamp::now()).await
            }

            async fn ingest_snapshot(
                &self,
                tenant: TenantId,
                subjects: &[SubjectId],
                message_ids: &[String],
            ) -> Result<IngestSnapshot> {
                let subjects: Vec<String> = subjects.iter().map(|s| s.to_string()).collect();
                let mut conn = self.reader().acquire().await?;
                snapshot_on(&mut conn, tenant, &subjects, message_ids).await
            }

            async fn ingest_group(
                &self,
                jobs: &mut [IngestJob],
            ) -> Result<Vec<crate::Committed>> {
                let now = Timestamp::now();
                let started = std::time::Instant::now();
                let mut tx = self.write_tx().await?;
                let mut out = Vec::with_capacity(jobs.len());
                let (mut checked, mut replanned, mut write_ms) = (0.0, 0usize, 0.0);
                for job in jobs.iter_mut() {
                    // A write prepared from an earlier snapshot is used if nothing it depended
                    // on has changed since; otherwise the job is planned again here.
                    let mut write = None;
                    let t = std::time::Instant::now();
                    let subjects: Vec<String> = job.subjects.iter().map(|s| s.to_string()).collect();
                    lock_subjects(&mut tx, job.tenant, &subjects).await?;
                    if let Some(prepared) = job.prepared.take() {
                        let (fingerprint, existing, gone) =
                            check_on(&mut tx, job.tenant, &subjects, &job.message_ids).await?;
                        if gone == 0
                            && fingerprint == prepared.fingerprint
                            && existing == prepared.existing_message_ids
                        {
                            write = Some(prepared.write);
                        }
                    }
                    checked += t.elapsed().as_secs_f64() * 1e3;
                    let write = match write {
                        Some(w) => w,
                        None => {
                            replanned += 1;
                            let snapshot = snapshot_on(&mut tx, job.tenant, &subjects, &job.message_ids).await?;
                            match (job.plan)(&snapshot) {
                                Some(w) => w,
                                None => {
                                    out.push(None);
                                    continue;
                                }
                            }
                        }
                    };
                    let t = std::time::Instant::now();
                    let inserted = write_tx(&mut tx, job.tenant, &write, now).await?;
                    write_ms += t.elapsed().as_secs_f64() * 1e3;
                    out.push(Some((write, inserted)));
                }
                let t = std::time::Instant::now();
                tx.commit().await?;
                tracing::debug!(
                    jobs = jobs.len(),
                    replanned,
                    check_ms = checked,
                    write_ms,
                    commit_ms = t.elapsed().as_secs_f64() * 1e3,
                    total_ms = started.elapsed().as_secs_f64() * 1e3,
                    "ingest group"
                );
                Ok(out)
            }

            async fn append_consents(
                &self,
                tenant: TenantId,
                subject: SubjectId,
                records: Vec<ConsentRecord>,
                audit: Vec<AuditDraft>,
            ) -> Result<()> {
                let mut tx = self.write_tx().await?;
                let found = sqlx::query(concat!(
                    "SELECT id FROM subjects WHERE tenant_id = $1 AND id = $2",
                    $update
                ))
                .bind(tenant.to_string())
                .bind(subject.to_string())
                .fetch_optional(&mut *tx)
                .await?;
                if found.is_none() {
                    return Err(StoreError::NotFound);
                }
                for r in &records {
                    insert_consent(&mut tx, tenant, subject, r).await?;
                }
                audit_tx(&mut tx, audit, Timestamp::now()).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn consent_ledger(
                &self,
                tenant: TenantId,
                subject: SubjectId,
            ) -> Result<Vec<ConsentRecord>> {
                sqlx::query(
                    "SELECT subject_id, purpose, action, source, notice_version, notice_hash, jurisdiction, at \
                     FROM consents WHERE tenant_id = $1 AND subject_id = $2 ORDER BY seq",
                )
                .bind(tenant.to_string())
                .bind(subject.to_string())
                .fetch_all(self.reader())
                .await?
                .iter()
                .map(|r| consent_from(r).map(|(_, c)| c))
                .collect()
            }

            async fn events_for(&self, grant: &Grant, limit: u32) -> Result<Vec<EventView>> {
                let rows = sqlx::query(
                    "SELECT id, message_id, kind, name, category, plain, sealed, occurred_at, received_at \
                     FROM events WHERE tenant_id = $1 AND subject_id = $2 ORDER BY occurred_at DESC, id DESC LIMIT $3",
                )
                .bind(grant.tenant().to_string())
                .bind(grant.subject().to_string())
                .bind(i64::from(limit))
                .fetch_all(self.reader())
                .await?;
                events_granted(&rows, grant)
            }

            async fn fields_for(&self, grant: &Grant) -> Result<Vec<FieldRow>> {
                let rows = sqlx::query(
                    "SELECT path, category, sealed, updated_at FROM subject_fields \
                     WHERE tenant_id = $1 AND subject_id = $2 ORDER BY path",
                )
                .bind(grant.tenant().to_string())
                .bind(grant.subject().to_string())
                .fetch_all(self.reader())
                .await?;
                let mut out = Vec::new();
                for r in rows {
                    let category: Category = parse("category", &r.try_get::<String, _>("category")?)?;
                    if !grant.allows(&category) {
                        continue;
                    }
                    out.push(FieldRow {
                        subject: grant.subject(),
                        path: r.try_get("path")?,
                        category,
                        sealed: Sealed::from_stored(r.try_get("sealed")?),
                        updated_at: Timestamp(r.try_get("updated_at")?),
                    });
                }
                Ok(out)
            }

            async fn append_audit(&self, entries: Vec<AuditDraft>) -> Result<()> {
                let mut tx = self.write_tx().await?;
                audit_tx(&mut tx, entries, Timestamp::now()).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn audit_entries(
                &self,
                chain: &str,
                after: i64,
                limit: u32,
            ) -> Result<Vec<AuditEntry>> {
                sqlx::query(
                    "SELECT chain, seq, at, actor, action, target, details, prev_hash, hash FROM audit_log \
                     WHERE chain = $1 AND seq > $2 ORDER BY seq LIMIT $3",
                )
                .bind(chain)
                .bind(after)
                .bind(i64::from(limit))
                .fetch_all(self.reader())
                .await?
                .iter()
                .map(audit_entry_from)
                .collect()
            }

            async fn audit_chains(&self) -> Result<Vec<(String, i64, Vec<u8>)>> {
                sqlx::query("SELECT chain, seq, hash FROM audit_head ORDER BY chain")
                    .fetch_all(self.reader())
                    .await?
                    .iter()
                    .map(|r| Ok((r.try_get("chain")?, r.try_get("seq")?, r.try_get("hash")?)))
                    .collect()
            }

            async fn sweep_category(
                &self,
                tenant: TenantId,
                category: &Category,
                cutoff: Timestamp,
            ) -> Result<SweepCounts> {
                let mut counts = SweepCounts::default();
                let mut tx = self.write_tx().await?;
                counts.events_deleted = sqlx::query(
                    "DELETE FROM events WHERE tenant_id = $1 AND category = $2 AND occurred_at < $3",
                )
                .bind(tenant.to_string())
                .bind(category.as_str())
                .bind(cutoff.0)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                let rows = sqlx::query(
                    "SELECT id, plain, sealed FROM events WHERE tenant_id = $1 AND occurred_at < $2 \
                     AND parts LIKE $3",
                )
                .bind(tenant.to_string())
                .bind(cutoff.0)
                .bind(format!("%,{},%", category.as_str()))
                .fetch_all(&mut *tx)
                .await?;
                for r in rows {
                    let id: String = r.try_get("id")?;
                    let mut plain: BTreeMap<Category, serde_json::Value> =
                        decode_plain(&r.try_get::<String, _>("plain")?)?;
                    let mut sealed: BTreeMap<Category, Sealed> =
                        decode_sealed(&r.try_get::<String, _>("sealed")?)?;
                    plain.remove(category);
                    sealed.remove(category);
                    let plain_text = serde_json::to_string(&plain)
                        .map_err(|_| StoreError::Corrupt("event not serializable".into()))?;
                    sqlx::query(
                        "UPDATE events SET plain = $1, sealed = $2, parts = $3 WHERE tenant_id = $4 AND id = $5",
                    )
                    .bind(plain_text)
                    .bind(encode_sealed(&sealed))
                    .bind(parts_of(&plain, &sealed))
                    .bind(tenant.to_string())
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                    counts.event_parts_removed += 1;
                }
                counts.fields_deleted = sqlx::query(
                    "DELETE FROM subject_fields WHERE tenant_id = $1 AND category = $2 AND updated_at < $3",
                )
                .bind(tenant.to_string())
                .bind(category.as_str())
                .bind(cutoff.0)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                tx.commit().await?;
                Ok(counts)
            }

            async fn count_events(&self, tenant: TenantId) -> Result<i64> {
                Ok(sqlx::query("SELECT COUNT(*) AS n FROM events WHERE tenant_id = $1")
                    .bind(tenant.to_string())
                    .fetch_one(self.reader())
                    .await?
                    .try_get("n")?)
            }

            async fn insert_model(&self, tenant: TenantId, new: &NewModel, at: Timestamp, audit: AuditDraft) -> Result<i64> {
                let mut tx = self.write_tx().await?;
                // Versions are numbered per tenant: concurrent registrations wait on the tenant row.
                sqlx::query(concat!("SELECT id FROM tenants WHERE id = $1", $update))
                    .bind(tenant.to_string())
                    .fetch_optional(&mut *tx)
                    .await?
                    .ok_or(StoreError::NotFound)?;
                let version: i64 = sqlx::query(
                    "SELECT COALESCE(MAX(version), 0) + 1 AS v FROM models WHERE tenant_id = $1",
                )
                .bind(tenant.to_string())
                .fetch_one(&mut *tx)
                .await?
                .try_get("v")?;
                sqlx::query(
                    "INSERT INTO models (tenant_id, version, name, kind, status, digest, artifact, card, created_at) \
                     VALUES ($1, $2, $3, $4, 'draft', $5, $6, $7, $8)",
                )
                .bind(tenant.to_string())
                .bind(version)
                .bind(&new.name)
                .bind(&new.kind)
                .bind(&new.digest)
                .bind(&new.artifact)
                .bind(new.card.to_string())
                .bind(at.0)
                .execute(&mut *tx)
                .await?;
                let mut audit = audit;
                audit.target = Some(format!("model:{version}"));
                audit_tx(&mut tx, vec![audit], at).await?;
                tx.commit().await?;
                Ok(version)
            }

            async fn model(&self, tenant: TenantId, version: i64) -> Result<Option<ModelRow>> {
                sqlx::query(
                    "SELECT version, name, kind, status, digest, artifact, card, created_at FROM models \
                     WHERE tenant_id = $1 AND version = $2",
                )
                .bind(tenant.to_string())
                .bind(version)
                .fetch_optional(self.reader())
                .await?
                .as_ref()
                .map(|r| model_from(tenant, r, true))
                .transpose()
            }

            async fn list_models(&self, tenant: TenantId) -> Result<Vec<ModelRow>> {
                sqlx::query(
                    "SELECT version, name, kind, status, digest, card, created_at FROM models \
                     WHERE tenant_id = $1 ORDER BY version",
                )
                .bind(tenant.to_string())
                .fetch_all(self.reader())
                .await?
                .iter()
                .map(|r| model_from(tenant, r, false))
                .collect()
            }

            async fn active_model(&self, tenant: TenantId, name: &str) -> Result<Option<ModelRow>> {
                sqlx::query(
                    "SELECT version, name, kind, status, digest, card, created_at FROM models \
                     WHERE tenant_id = $1 AND name = $2 AND status = 'active'",
                )
                .bind(tenant.to_string())
                .bind(name)
                .fetch_optional(self.reader())
                .await?
                .as_ref()
                .map(|r| model_from(tenant, r, false))
                .transpose()
            }

            async fn serving_model(&self, tenant: TenantId, name: &str) -> Result<Option<(i64, String)>> {
                sqlx::query(
                    "SELECT version, digest FROM models WHERE tenant_id = $1 AND name = $2 AND status <> 'retired' \
                     ORDER BY CASE WHEN status = 'active' THEN 0 ELSE 1 END, version DESC LIMIT 1",
                )
                .bind(tenant.to_string())
                .bind(name)
                .fetch_optional(self.reader())
                .await?
                .map(|r| Ok((r.try_get("version")?, r.try_get("digest")?)))
                .transpose()
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
                let mut tx = self.write_tx().await?;
                let row = sqlx::query(concat!(
                    "SELECT name, status FROM models WHERE tenant_id = $1 AND version = $2",
                    $update
                ))
                .bind(tenant.to_string())
                .bind(version)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or(StoreError::NotFound)?;
                let name: String = row.try_get("name")?;
                let from: String = row.try_get("status")?;
                if from == "draft" && (to == "approved" || to == "active") {
                    return Err(StoreError::Gate(format!(
                        "model {version} is a draft without a passed fairness audit; audit it \
                         (candor audit), or an admin may override a failed audit with a reason"
                    )));
                }
                if !allowed_from.contains(&from.as_str()) {
                    return Err(StoreError::Conflict(format!(
                        "model {version} is {from}; it can become {to} only from {}",
                        allowed_from.join(" or ")
                    )));
                }
                if to == "approved" || to == "active" {
                    match latest_validation(&mut tx, tenant, version).await? {
                        None => {
                            return Err(StoreError::Gate(format!(
                                "model {version} has no fairness audit; run one first"
                            )));
                        }
                        Some((id, false, false)) => {
                            return Err(StoreError::Gate(format!(
                                "model {version} failed fairness audit {id}; an admin may record an override with a reason"
                            )));
                        }
                        Some(_) => {}
                    }
                }
                let mut audits = Vec::new();
                if to == "active" {
                    let current: Vec<i64> = sqlx::query(concat!(
                        "SELECT version FROM models WHERE tenant_id = $1 AND name = $2 AND status = 'active'",
                        $update
                    ))
                    .bind(tenant.to_string())
                    .bind(&name)
                    .fetch_all(&mut *tx)
                    .await?
                    .iter()
                    .map(|r| r.try_get("version"))
                    .collect::<std::result::Result<_, _>>()?;
                    for old in current {
                        sqlx::query("UPDATE models SET status = 'retired' WHERE tenant_id = $1 AND version = $2")
                            .bind(tenant.to_string())
                            .bind(old)
                            .execute(&mut *tx)
                            .await?;
                        let why = format!("replaced by version {version}");
                        insert_transition(&mut tx, tenant, old, "active", "retired", actor, &why, at).await?;
                        audits.push(AuditDraft {
                            tenant: Some(tenant),
                            actor: actor.to_string(),
                            action: "model.retired".into(),
                            target: Some(format!("model:{old}")),
                            details: serde_json::json!({ "replaced_by": version }),
                        });
                    }
                }
                sqlx::query("UPDATE models SET status = $1 WHERE tenant_id = $2 AND version = $3")
                    .bind(to)
                    .bind(tenant.to_string())
                    .bind(version)
                    .execute(&mut *tx)
                    .await?;
                insert_transition(&mut tx, tenant, version, &from, to, actor, reason, at).await?;
                audits.push(audit);
                audit_tx(&mut tx, audits, at).await?;
                tx.commit().await?;
                Ok(from)
            }

            async fn model_transitions(&self, tenant: TenantId, version: i64) -> Result<Vec<ModelTransition>> {
                sqlx::query(
                    "SELECT version, from_status, to_status, actor, reason, at FROM model_transitions \
                     WHERE tenant_id = $1 AND version = $2 ORDER BY seq",
                )
                .bind(tenant.to_string())
                .bind(version)
                .fetch_all(self.reader())
                .await?
                .iter()
                .map(|r| {
                    Ok(ModelTransition {
                        version: r.try_get("version")?,
                        from: r.try_get("from_status")?,
                        to: r.try_get("to_status")?,
                        actor: r.try_get("actor")?,
                        reason: r.try_get("reason")?,
                        at: Timestamp(r.try_get("at")?),
                    })
                })
                .collect()
            }

            async fn insert_decisions(&self, tenant: TenantId, rows: &[DecisionRow], audit: Vec<AuditDraft>) -> Result<()> {
                let mut tx = self.write_tx().await?;
                let mut at = Timestamp(0);
                for d in rows {
                    at = at.max(d.created_at);
                    insert_decision(&mut tx, tenant, d).await?;
                }
                audit_tx(&mut tx, audit, at).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn decisions_for(&self, tenant: TenantId, subject: SubjectId, limit: u32) -> Result<Vec<DecisionRow>> {
                sqlx::query(
                    "SELECT id, subject_id, purpose, kind, model_version, inputs_digest, sealed, created_at FROM decisions \
                     WHERE tenant_id = $1 AND subject_id = $2 ORDER BY created_at DESC, id DESC LIMIT $3",
                )
                .bind(tenant.to_string())
                .bind(subject.to_string())
                .bind(i64::from(limit))
                .fetch_all(self.reader())
                .await?
                .iter()
                .map(decision_from)
                .collect()
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
                let (after_at, after_id) = after.unwrap_or((Timestamp(i64::MIN), String::new()));
                sqlx::query(
                    "SELECT id, subject_id, purpose, kind, model_version, inputs_digest, sealed, created_at FROM decisions \
                     WHERE tenant_id = $1 AND kind = $2 AND created_at >= $3 AND created_at < $4 \
                     AND (created_at > $5 OR (created_at = $5 AND id > $6)) \
                     ORDER BY created_at, id LIMIT $7",
                )
                .bind(tenant.to_string())
                .bind(kind)
                .bind(from.0)
                .bind(to.0)
                .bind(after_at.0)
                .bind(after_id)
                .bind(i64::from(limit))
                .fetch_all(self.reader())
                .await?
                .iter()
                .map(decision_from)
                .collect()
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
                let mut tx = self.write_tx().await?;
                let status: String = sqlx::query(concat!(
                    "SELECT status FROM models WHERE tenant_id = $1 AND version = $2",
                    $update
                ))
                .bind(tenant.to_string())
                .bind(new.version)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or(StoreError::NotFound)?
                .try_get("status")?;
                let id: i64 = sqlx::query(
                    "INSERT INTO model_audits (tenant_id, version, kind, passed, report, actor, created_at, period_start, period_end) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING seq",
                )
                .bind(tenant.to_string())
                .bind(new.version)
                .bind(&new.kind)
                .bind(new.passed)
                .bind(new.report.to_string())
                .bind(actor)
                .bind(at.0)
                .bind(new.period.map(|p| p.0.0))
                .bind(new.period.map(|p| p.1.0))
                .fetch_one(&mut *tx)
                .await?
                .try_get("seq")?;
                for a in alerts {
                    sqlx::query(
                        "INSERT INTO fairness_alerts (tenant_id, version, audit_seq, gate, subject, value, limit_value, created_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                    )
                    .bind(tenant.to_string())
                    .bind(new.version)
                    .bind(id)
                    .bind(&a.gate)
                    .bind(&a.subject)
                    .bind(a.value)
                    .bind(a.limit)
                    .bind(at.0)
                    .execute(&mut *tx)
                    .await?;
                }
                if new.kind == "validation" {
                    let step = match (status.as_str(), new.passed) {
                        ("draft", true) => Some(("audited", format!("fairness audit {id} passed"))),
                        ("audited", false) => Some(("draft", format!("fairness audit {id} failed"))),
                        _ => None,
                    };
                    if let Some((to, why)) = step {
                        set_status(&mut tx, tenant, new.version, to).await?;
                        insert_transition(&mut tx, tenant, new.version, &status, to, actor, &why, at).await?;
                    }
                }
                let mut audit = audit;
                audit.details["audit_id"] = serde_json::json!(id);
                audit_tx(&mut tx, vec![audit], at).await?;
                tx.commit().await?;
                Ok(id)
            }

            async fn model_audits(
                &self,
                tenant: TenantId,
                version: i64,
                kind: Option<&str>,
                limit: u32,
            ) -> Result<Vec<ModelAuditRow>> {
                sqlx::query(
                    "SELECT seq, version, kind, passed, report, actor, created_at, period_start, period_end, \
                     override_actor, override_reason, override_at FROM model_audits \
                     WHERE tenant_id = $1 AND version = $2 AND ($3 = '' OR kind = $3) ORDER BY seq DESC LIMIT $4",
                )
                .bind(tenant.to_string())
                .bind(version)
                .bind(kind.unwrap_or(""))
                .bind(i64::from(limit))
                .fetch_all(self.reader())
                .await?
                .iter()
                .map(audit_row_from)
                .collect()
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
                let mut tx = self.write_tx().await?;
                let status: String = sqlx::query(concat!(
                    "SELECT status FROM models WHERE tenant_id = $1 AND version = $2",
                    $update
                ))
                .bind(tenant.to_string())
                .bind(version)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or(StoreError::NotFound)?
                .try_get("status")?;
                let id = match latest_validation(&mut tx, tenant, version).await? {
                    None => {
                        return Err(StoreError::Conflict(format!(
                            "model {version} has no fairness audit to override"
                        )));
                    }
                    Some((id, true, _)) => {
                        return Err(StoreError::Conflict(format!(
                            "fairness audit {id} of model {version} passed; there is nothing to override"
                        )));
                    }
                    Some((id, false, true)) => {
                        return Err(StoreError::Conflict(format!(
                            "fairness audit {id} of model {version} is already overridden"
                        )));
                    }
                    Some((id, false, false)) => id,
                };
                sqlx::query(
                    "UPDATE model_audits SET override_actor = $1, override_reason = $2, override_at = $3 \
                     WHERE tenant_id = $4 AND seq = $5",
                )
                .bind(actor)
                .bind(reason)
                .bind(at.0)
                .bind(tenant.to_string())
                .bind(id)
                .execute(&mut *tx)
                .await?;
                if status == "draft" {
                    set_status(&mut tx, tenant, version, "audited").await?;
                    let why = format!("override of failed fairness audit {id}: {reason}");
                    insert_transition(&mut tx, tenant, version, "draft", "audited", actor, &why, at).await?;
                }
                let mut audit = audit;
                audit.details["audit_id"] = serde_json::json!(id);
                audit_tx(&mut tx, vec![audit], at).await?;
                tx.commit().await?;
                Ok(id)
            }

            async fn erase_subject(
                &self,
                tenant: TenantId,
                id: SubjectId,
                at: Timestamp,
                audit: AuditDraft,
            ) -> Result<ErasureCounts> {
                let mut tx = self.write_tx().await?;
                let t = tenant.to_string();
                let sid = id.to_string();
                // The row lock waits for ingestion in flight (it holds a share lock); ingestion
                // that starts later sees the tombstone and drops the person's events.
                let row = sqlx::query(concat!(
                    "SELECT erased_at, wrapped_key IS NOT NULL AS keyed FROM subjects WHERE tenant_id = $1 AND id = $2",
                    $update
                ))
                .bind(&t)
                .bind(&sid)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or(StoreError::NotFound)?;
                if sid == crate::SUPPRESSED {
                    return Err(StoreError::NotFound);
                }
                let mut counts = ErasureCounts {
                    already_erased: row.try_get::<Option<i64>, _>("erased_at")?.is_some(),
                    key_destroyed: row.try_get::<bool, _>("keyed")?,
                    ..ErasureCounts::default()
                };
                sqlx::query(
                    "INSERT INTO subjects (tenant_id, id, wrapped_key, created_at, erased_at) VALUES ($1, $2, NULL, $3, $3) \
                     ON CONFLICT (tenant_id, id) DO NOTHING",
                )
                .bind(&t)
                .bind(crate::SUPPRESSED)
                .bind(at.0)
                .execute(&mut *tx)
                .await?;
                counts.identifiers_suppressed = sqlx::query(
                    "UPDATE subject_aliases SET subject_id = $3 WHERE tenant_id = $1 AND subject_id = $2",
                )
                .bind(&t)
                .bind(&sid)
                .bind(crate::SUPPRESSED)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                counts.decision_contests = sqlx::query("DELETE FROM decision_contests WHERE tenant_id = $1 AND subject_id = $2")
                    .bind(&t).bind(&sid).execute(&mut *tx).await?.rows_affected();
                counts.rec_factors = sqlx::query("DELETE FROM rec_factors WHERE tenant_id = $1 AND subject_id = $2")
                    .bind(&t).bind(&sid).execute(&mut *tx).await?.rows_affected();
                counts.journey_steps = sqlx::query("DELETE FROM journey_steps WHERE tenant_id = $1 AND subject_id = $2")
                    .bind(&t).bind(&sid).execute(&mut *tx).await?.rows_affected();
                counts.emails = sqlx::query("DELETE FROM emails WHERE tenant_id = $1 AND subject_id = $2")
                    .bind(&t).bind(&sid).execute(&mut *tx).await?.rows_affected();
                counts.contact_requests = sqlx::query("DELETE FROM contact_requests WHERE tenant_id = $1 AND subject_id = $2")
                    .bind(&t).bind(&sid).execute(&mut *tx).await?.rows_affected();
                counts.assistant_messages = sqlx::query("DELETE FROM assistant_messages WHERE tenant_id = $1 AND subject_id = $2")
                    .bind(&t).bind(&sid).execute(&mut *tx).await?.rows_affected();
                counts.assistant_tickets = sqlx::query("DELETE FROM assistant_tickets WHERE tenant_id = $1 AND subject_id = $2")
                    .bind(&t).bind(&sid).execute(&mut *tx).await?.rows_affected();
                counts.assistant_conversations = sqlx::query("DELETE FROM assistant_conversations WHERE tenant_id = $1 AND subject_id = $2")
                    .bind(&t).bind(&sid).execute(&mut *tx).await?.rows_affected();
                // Signed-in browsers and unused links end with the person.
                counts.web_sessions = sqlx::query("DELETE FROM web_sessions WHERE tenant_id = $1 AND subject_id = $2")
                    .bind(&t).bind(&sid).execute(&mut *tx).await?.rows_affected();
                sqlx::query("DELETE FROM signin_links WHERE tenant_id = $1 AND subject_id = $2")
                    .bind(&t).bind(&sid).execute(&mut *tx).await?;
                counts.decisions = sqlx::query("DELETE FROM decisions WHERE tenant_id = $1 AND subject_id = $2")
                    .bind(&t).bind(&sid).execute(&mut *tx).await?.rows_affected();
                // Events are indexed by subject alone (ids are global); the tenant is checked too.
                counts.events = sqlx::query("DELETE FROM events WHERE subject_id = $2 AND tenant_id = $1")
                    .bind(&t).bind(&sid).execute(&mut *tx).await?.rows_affected();
                counts.subject_fields = sqlx::query("DELETE FROM subject_fields WHERE tenant_id = $1 AND subject_id = $2")
                    .bind(&t).bind(&sid).execute(&mut *tx).await?.rows_affected();
                counts.consents = sqlx::query("DELETE FROM consents WHERE tenant_id = $1 AND subject_id = $2")
                    .bind(&t).bind(&sid).execute(&mut *tx).await?.rows_affected();
                counts.dsr_requests_scrubbed = sqlx::query(
                    "UPDATE dsr_requests SET sealed = NULL, token_hash = NULL WHERE tenant_id = $1 AND subject_id = $2 \
                     AND (sealed IS NOT NULL OR token_hash IS NOT NULL)",
                )
                .bind(&t).bind(&sid).execute(&mut *tx).await?.rows_affected();
                sqlx::query(
                    "UPDATE subjects SET wrapped_key = NULL, restricted_at = NULL, erased_at = COALESCE(erased_at, $3) \
                     WHERE tenant_id = $1 AND id = $2",
                )
                .bind(&t).bind(&sid).bind(at.0).execute(&mut *tx).await?;
                let mut audit = audit;
                audit.details["erased"] = serde_json::to_value(&counts).unwrap_or_default();
                audit_tx(&mut tx, vec![audit], at).await?;
                tx.commit().await?;
                Ok(counts)
            }

            async fn upsert_fields(&self, tenant: TenantId, fields: Vec<FieldRow>, aliases: &[(SubjectId, Alias)], audit: AuditDraft) -> Result<()> {
                let mut tx = self.write_tx().await?;
                for f in &fields {
                    let live = sqlx::query(concat!(
                        "SELECT id FROM subjects WHERE tenant_id = $1 AND id = $2 AND wrapped_key IS NOT NULL",
                        $update
                    ))
                    .bind(tenant.to_string())
                    .bind(f.subject.to_string())
                    .fetch_optional(&mut *tx)
                    .await?;
                    if live.is_none() {
                        return Err(StoreError::NotFound);
                    }
                    sqlx::query(
                        "INSERT INTO subject_fields (tenant_id, subject_id, path, category, sealed, updated_at) \
                         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (tenant_id, subject_id, path) \
                         DO UPDATE SET category = excluded.category, sealed = excluded.sealed, updated_at = excluded.updated_at",
                    )
                    .bind(tenant.to_string())
                    .bind(f.subject.to_string())
                    .bind(&f.path)
                    .bind(f.category.as_str())
                    .bind(f.sealed.as_bytes())
                    .bind(f.updated_at.0)
                    .execute(&mut *tx)
                    .await?;
                }
                apply_email_aliases(&mut tx, tenant, aliases).await?;
                audit_tx(&mut tx, vec![audit], Timestamp::now()).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn subject_state(&self, tenant: TenantId, id: SubjectId) -> Result<Option<SubjectState>> {
                sqlx::query(
                    "SELECT id, created_at, erased_at, restricted_at FROM subjects WHERE tenant_id = $1 AND id = $2",
                )
                .bind(tenant.to_string())
                .bind(id.to_string())
                .fetch_optional(self.reader())
                .await?
                .map(|r| {
                    Ok(SubjectState {
                        id: parse("subject id", &r.try_get::<String, _>("id")?)?,
                        created_at: Timestamp(r.try_get("created_at")?),
                        erased_at: r.try_get::<Option<i64>, _>("erased_at")?.map(Timestamp),
                        restricted_at: r.try_get::<Option<i64>, _>("restricted_at")?.map(Timestamp),
                    })
                })
                .transpose()
            }

            async fn set_restricted(&self, tenant: TenantId, id: SubjectId, at: Option<Timestamp>, audit: AuditDraft) -> Result<()> {
                let mut tx = self.write_tx().await?;
                let n = sqlx::query(
                    "UPDATE subjects SET restricted_at = $3 WHERE tenant_id = $1 AND id = $2 AND wrapped_key IS NOT NULL",
                )
                .bind(tenant.to_string())
                .bind(id.to_string())
                .bind(at.map(|t| t.0))
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if n == 0 {
                    return Err(StoreError::NotFound);
                }
                audit_tx(&mut tx, vec![audit], at.unwrap_or_else(Timestamp::now)).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn subject_aliases(&self, tenant: TenantId, id: SubjectId) -> Result<Vec<(String, Vec<u8>)>> {
                sqlx::query("SELECT kind, blind FROM subject_aliases WHERE tenant_id = $1 AND subject_id = $2 ORDER BY kind, blind")
                    .bind(tenant.to_string())
                    .bind(id.to_string())
                    .fetch_all(self.reader())
                    .await?
                    .iter()
                    .map(|r| Ok((r.try_get("kind")?, r.try_get("blind")?)))
                    .collect()
            }

            async fn events_page(&self, grant: &Grant, after: Option<(Timestamp, EventId)>, limit: u32) -> Result<Vec<EventView>> {
                let (after_at, after_id) = match after {
                    Some((t, id)) => (t.0, id.to_string()),
                    None => (i64::MIN, String::new()),
                };
                let rows = sqlx::query(
                    "SELECT id, message_id, kind, name, category, plain, sealed, occurred_at, received_at \
                     FROM events WHERE subject_id = $2 AND tenant_id = $1 \
                     AND (occurred_at > $3 OR (occurred_at = $3 AND id > $4)) \
                     ORDER BY occurred_at, id LIMIT $5",
                )
                .bind(grant.tenant().to_string())
                .bind(grant.subject().to_string())
                .bind(after_at)
                .bind(after_id)
                .bind(i64::from(limit))
                .fetch_all(self.reader())
                .await?;
                events_granted(&rows, grant)
            }

            async fn save_request(&self, tenant: TenantId, row: &RequestRow, expected: Option<&str>, audit: AuditDraft) -> Result<()> {
                let mut tx = self.write_tx().await?;
                let n = match expected {
                    None => sqlx::query(
                        "INSERT INTO dsr_requests (tenant_id, id, subject_id, kind, regime, status, received_at, acknowledge_by, \
                         acknowledged_at, due_at, extended, extension_notice, token_hash, token_expires_at, verified_at, verified_by, \
                         completed_at, rejection_reason, sealed, result) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)",
                    ),
                    Some(_) => sqlx::query(
                        "UPDATE dsr_requests SET subject_id = $3, kind = $4, regime = $5, status = $6, received_at = $7, \
                         acknowledge_by = $8, acknowledged_at = $9, due_at = $10, extended = $11, extension_notice = $12, \
                         token_hash = $13, token_expires_at = $14, verified_at = $15, verified_by = $16, completed_at = $17, \
                         rejection_reason = $18, sealed = $19, result = $20 \
                         WHERE tenant_id = $1 AND id = $2 AND status = $21",
                    ),
                }
                .bind(tenant.to_string())
                .bind(&row.id)
                .bind(row.subject.to_string())
                .bind(&row.kind)
                .bind(&row.regime)
                .bind(&row.status)
                .bind(row.received_at.0)
                .bind(row.acknowledge_by.map(|t| t.0))
                .bind(row.acknowledged_at.map(|t| t.0))
                .bind(row.due_at.0)
                .bind(row.extended)
                .bind(&row.extension_notice)
                .bind(&row.token_hash)
                .bind(row.token_expires_at.map(|t| t.0))
                .bind(row.verified_at.map(|t| t.0))
                .bind(&row.verified_by)
                .bind(row.completed_at.map(|t| t.0))
                .bind(&row.rejection_reason)
                .bind(row.sealed.as_ref().map(|s| s.as_bytes().to_vec()))
                .bind(row.result.as_ref().map(|v| v.to_string()))
                .bind(expected.unwrap_or(""))
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if n == 0 {
                    return Err(StoreError::Conflict(format!(
                        "request {} changed meanwhile; read it again",
                        row.id
                    )));
                }
                audit_tx(&mut tx, vec![audit], Timestamp::now()).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn request(&self, tenant: TenantId, id: &str) -> Result<Option<RequestRow>> {
                sqlx::query("SELECT * FROM dsr_requests WHERE tenant_id = $1 AND id = $2")
                    .bind(tenant.to_string())
                    .bind(id)
                    .fetch_optional(self.reader())
                    .await?
                    .as_ref()
                    .map(request_from)
                    .transpose()
            }

            async fn list_requests(&self, tenant: TenantId, open_only: bool, limit: u32) -> Result<Vec<RequestRow>> {
                sqlx::query(
                    "SELECT * FROM dsr_requests WHERE tenant_id = $1 \
                     AND ($2 = 0 OR status NOT IN ('completed', 'rejected')) ORDER BY due_at, id LIMIT $3",
                )
                .bind(tenant.to_string())
                .bind(i64::from(open_only))
                .bind(i64::from(limit))
                .fetch_all(self.reader())
                .await?
                .iter()
                .map(request_from)
                .collect()
            }

            async fn requests_for(&self, tenant: TenantId, subject: SubjectId) -> Result<Vec<RequestRow>> {
                sqlx::query("SELECT * FROM dsr_requests WHERE tenant_id = $1 AND subject_id = $2 ORDER BY received_at, id")
                    .bind(tenant.to_string())
                    .bind(subject.to_string())
                    .fetch_all(self.reader())
                    .await?
                    .iter()
                    .map(request_from)
                    .collect()
            }

            async fn insert_contest(&self, tenant: TenantId, row: &ContestRow, audit: AuditDraft) -> Result<()> {
                let mut tx = self.write_tx().await?;
                let t = tenant.to_string();
                sqlx::query(concat!(
                    "SELECT id FROM decisions WHERE tenant_id = $1 AND id = $2 AND subject_id = $3",
                    $update
                ))
                .bind(&t)
                .bind(&row.decision_id)
                .bind(row.subject.to_string())
                .fetch_optional(&mut *tx)
                .await?
                .ok_or(StoreError::NotFound)?;
                let open: i64 = sqlx::query(
                    "SELECT COUNT(*) AS n FROM decision_contests WHERE tenant_id = $1 AND decision_id = $2 AND status = 'open'",
                )
                .bind(&t)
                .bind(&row.decision_id)
                .fetch_one(&mut *tx)
                .await?
                .try_get("n")?;
                if open > 0 {
                    return Err(StoreError::Conflict("this decision is already contested and under review".into()));
                }
                sqlx::query(
                    "INSERT INTO decision_contests (tenant_id, id, decision_id, subject_id, status, sealed, created_at, due_at) \
                     VALUES ($1, $2, $3, $4, 'open', $5, $6, $7)",
                )
                .bind(&t)
                .bind(&row.id)
                .bind(&row.decision_id)
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
                let mut tx = self.write_tx().await?;
                let n = sqlx::query(
                    "UPDATE decision_contests SET status = $3, reviewer = $4, note_sealed = $5, outcome_label = $6, resolved_at = $7 \
                     WHERE tenant_id = $1 AND id = $2 AND status = 'open'",
                )
                .bind(tenant.to_string())
                .bind(id)
                .bind(status)
                .bind(reviewer)
                .bind(note.as_bytes())
                .bind(label)
                .bind(at.0)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if n == 0 {
                    return Err(StoreError::Conflict(format!("contest {id} is not open")));
                }
                audit_tx(&mut tx, vec![audit], at).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn contest(&self, tenant: TenantId, id: &str) -> Result<Option<ContestRow>> {
                sqlx::query("SELECT * FROM decision_contests WHERE tenant_id = $1 AND id = $2")
                    .bind(tenant.to_string())
                    .bind(id)
                    .fetch_optional(self.reader())
                    .await?
                    .as_ref()
                    .map(contest_from)
                    .transpose()
            }

            async fn list_contests(&self, tenant: TenantId, status: Option<&str>, limit: u32) -> Result<Vec<ContestRow>> {
                sqlx::query(
                    "SELECT * FROM decision_contests WHERE tenant_id = $1 AND ($2 = '' OR status = $2) ORDER BY due_at, id LIMIT $3",
                )
                .bind(tenant.to_string())
                .bind(status.unwrap_or(""))
                .bind(i64::from(limit))
                .fetch_all(self.reader())
                .await?
                .iter()
                .map(contest_from)
                .collect()
            }

            async fn contests_for(&self, tenant: TenantId, subject: SubjectId) -> Result<Vec<ContestRow>> {
                sqlx::query("SELECT * FROM decision_contests WHERE tenant_id = $1 AND subject_id = $2 ORDER BY created_at, id")
                    .bind(tenant.to_string())
                    .bind(subject.to_string())
                    .fetch_all(self.reader())
                    .await?
                    .iter()
                    .map(contest_from)
                    .collect()
            }

            async fn insert_rec_factors(&self, tenant: TenantId, version: i64, rows: &[(SubjectId, Sealed)]) -> Result<()> {
                let mut tx = self.write_tx().await?;
                for (subject, sealed) in rows {
                    // Only live subjects: an erased person gets no factors.
                    sqlx::query(
                        "INSERT INTO rec_factors (tenant_id, model_version, subject_id, sealed) \
                         SELECT $1, $2, $3, $4 FROM subjects WHERE tenant_id = $1 AND id = $3 AND wrapped_key IS NOT NULL \
                         ON CONFLICT (tenant_id, model_version, subject_id) DO UPDATE SET sealed = excluded.sealed",
                    )
                    .bind(tenant.to_string())
                    .bind(version)
                    .bind(subject.to_string())
                    .bind(sealed.as_bytes())
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn rec_factors(&self, tenant: TenantId, version: i64, subject: SubjectId) -> Result<Option<Sealed>> {
                Ok(sqlx::query("SELECT sealed FROM rec_factors WHERE tenant_id = $1 AND model_version = $2 AND subject_id = $3")
                    .bind(tenant.to_string())
                    .bind(version)
                    .bind(subject.to_string())
                    .fetch_optional(self.reader())
                    .await?
                    .map(|r| r.try_get::<Vec<u8>, _>("sealed"))
                    .transpose()?
                    .map(Sealed::from_stored))
            }

            async fn rec_subjects(&self, tenant: TenantId, version: i64, after: Option<SubjectId>, limit: u32) -> Result<Vec<(SubjectId, Sealed)>> {
                sqlx::query(
                    "SELECT subject_id, sealed FROM rec_factors WHERE tenant_id = $1 AND model_version = $2 AND subject_id > $3 \
                     ORDER BY subject_id LIMIT $4",
                )
                .bind(tenant.to_string())
                .bind(version)
                .bind(after.map(|s| s.to_string()).unwrap_or_default())
                .bind(i64::from(limit))
                .fetch_all(self.reader())
                .await?
                .iter()
                .map(|r| Ok((parse("subject id", &r.try_get::<String, _>("subject_id")?)?, Sealed::from_stored(r.try_get("sealed")?))))
                .collect()
            }

            async fn rec_factors_for(&self, tenant: TenantId, subject: SubjectId) -> Result<Vec<(i64, Sealed)>> {
                sqlx::query("SELECT model_version, sealed FROM rec_factors WHERE tenant_id = $1 AND subject_id = $2 ORDER BY model_version")
                    .bind(tenant.to_string())
                    .bind(subject.to_string())
                    .fetch_all(self.reader())
                    .await?
                    .iter()
                    .map(|r| Ok((r.try_get("model_version")?, Sealed::from_stored(r.try_get("sealed")?))))
                    .collect()
            }

            async fn set_item_stock(&self, tenant: TenantId, item: &str, in_stock: bool, at: Timestamp, audit: AuditDraft) -> Result<()> {
                let mut tx = self.write_tx().await?;
                sqlx::query(
                    "INSERT INTO catalog_items (tenant_id, item_id, in_stock, updated_at) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (tenant_id, item_id) DO UPDATE SET in_stock = excluded.in_stock, updated_at = excluded.updated_at",
                )
                .bind(tenant.to_string())
                .bind(item)
                .bind(in_stock)
                .bind(at.0)
                .execute(&mut *tx)
                .await?;
                audit_tx(&mut tx, vec![audit], at).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn enroll_steps(&self, tenant: TenantId, steps: &[NewStep]) -> Result<u64> {
                let mut tx = self.write_tx().await?;
                let mut n = 0;
                for st in steps {
                    n += insert_steps(&mut tx, &tenant.to_string(), std::slice::from_ref(st)).await?;
                }
                tx.commit().await?;
                Ok(n)
            }

            async fn exit_steps(&self, tenant: TenantId, subject: SubjectId, journeys: &[String], reason: &str, at: Timestamp) -> Result<u64> {
                let mut tx = self.write_tx().await?;
                // Through the person's index (see `apply_journey_ops`), then by id.
                let rows = sqlx::query("SELECT id, journey, status FROM journey_steps WHERE tenant_id = $1 AND subject_id = $2")
                    .bind(tenant.to_string())
                    .bind(subject.to_string())
                    .fetch_all(&mut *tx)
                    .await?;
                let mut n = 0;
                for r in &rows {
                    if r.try_get::<String, _>("status")? == "pending" && journeys.contains(&r.try_get::<String, _>("journey")?) {
                        n += exit_step(&mut tx, tenant, &r.try_get::<String, _>("id")?, reason, at, at).await?;
                    }
                }
                tx.commit().await?;
                Ok(n)
            }

            async fn claim_due_steps(&self, now: Timestamp, lease_ms: i64, limit: u32) -> Result<Vec<StepRow>> {
                let mut tx = self.write_tx().await?;
                let rows = sqlx::query(concat!(
                    "UPDATE journey_steps SET claimed_until = $2 WHERE id IN (\
                     SELECT id FROM journey_steps WHERE status = 'pending' AND due_at <= $1 AND claimed_until < $1 \
                     ORDER BY due_at LIMIT $3", $skip_locked, ") \
                     RETURNING id, tenant_id, subject_id, journey, step, email, trigger_id, triggered_at, due_at, status, reason, finished_at",
                ))
                .bind(now.0)
                .bind(now.0.saturating_add(lease_ms))
                .bind(i64::from(limit))
                .fetch_all(&mut *tx)
                .await?;
                tx.commit().await?;
                let mut out: Vec<StepRow> = rows.iter().map(step_row).collect::<Result<_>>()?;
                out.sort_by_key(|s| s.due_at);
                Ok(out)
            }

            async fn finish_step(&self, tenant: TenantId, step_id: &str, outcome: &StepOutcome, decision: Option<&DecisionRow>, next: Option<&NewStep>, audit: AuditDraft, at: Timestamp) -> Result<bool> {
                let mut tx = self.write_tx().await?;
                let (status, reason) = match outcome {
                    StepOutcome::Sent(_) => ("sent", None),
                    StepOutcome::Skipped(r) => ("skipped", Some(r.as_str())),
                    StepOutcome::Exited(r) => ("exited", Some(r.as_str())),
                    StepOutcome::Holdout => ("holdout", Some("holdout")),
                    StepOutcome::Called => ("called", None),
                };
                let done = sqlx::query(
                    "UPDATE journey_steps SET status = $3, reason = $4, finished_at = $5 \
                     WHERE tenant_id = $1 AND id = $2 AND status = 'pending'",
                )
                .bind(tenant.to_string())
                .bind(step_id)
                .bind(status)
                .bind(reason)
                .bind(at.0)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if done == 0 {
                    return Ok(false);
                }
                if let StepOutcome::Sent(e) = outcome {
                    sqlx::query(
                        "INSERT INTO emails (id, tenant_id, subject_id, step_id, journey, message_id, token_hash, sent_at, ai_content, tracking) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                    )
                    .bind(&e.id)
                    .bind(tenant.to_string())
                    .bind(e.subject.to_string())
                    .bind(&e.step_id)
                    .bind(&e.journey)
                    .bind(&e.message_id)
                    .bind(&e.token_hash)
                    .bind(e.sent_at.0)
                    .bind(i64::from(e.ai_content))
                    .bind(i64::from(e.tracking))
                    .execute(&mut *tx)
                    .await?;
                }
                if let Some(d) = decision {
                    insert_decision(&mut tx, tenant, d).await?;
                }
                if let Some(st) = next {
                    insert_steps(&mut tx, &tenant.to_string(), std::slice::from_ref(st)).await?;
                }
                audit_tx(&mut tx, vec![audit], at).await?;
                tx.commit().await?;
                Ok(true)
            }

            async fn reopen_step(&self, tenant: TenantId, step_id: &str, due_at: Timestamp) -> Result<()> {
                let mut tx = self.write_tx().await?;
                let email: Option<String> = sqlx::query("SELECT id FROM emails WHERE tenant_id = $1 AND step_id = $2")
                    .bind(tenant.to_string())
                    .bind(step_id)
                    .fetch_optional(&mut *tx)
                    .await?
                    .map(|r| r.try_get("id"))
                    .transpose()?;
                if let Some(id) = email {
                    for q in ["DELETE FROM emails WHERE tenant_id = $1 AND id = $2", "DELETE FROM decisions WHERE tenant_id = $1 AND id = $2"] {
                        sqlx::query(q).bind(tenant.to_string()).bind(&id).execute(&mut *tx).await?;
                    }
                }
                sqlx::query(
                    "UPDATE journey_steps SET status = 'pending', reason = NULL, finished_at = NULL, due_at = $3, claimed_until = 0 \
                     WHERE tenant_id = $1 AND id = $2 AND status = 'sent'",
                )
                .bind(tenant.to_string())
                .bind(step_id)
                .bind(due_at.0)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn defer_step(&self, tenant: TenantId, step_id: &str, due_at: Timestamp) -> Result<()> {
                let mut tx = self.write_tx().await?;
                sqlx::query("UPDATE journey_steps SET due_at = $3, claimed_until = 0 WHERE tenant_id = $1 AND id = $2 AND status = 'pending'")
                    .bind(tenant.to_string())
                    .bind(step_id)
                    .bind(due_at.0)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn emails_sent_since(&self, tenant: TenantId, subject: SubjectId, since: Timestamp) -> Result<u32> {
                let n: i64 = sqlx::query("SELECT COUNT(*) AS n FROM emails WHERE tenant_id = $1 AND subject_id = $2 AND sent_at >= $3")
                    .bind(tenant.to_string())
                    .bind(subject.to_string())
                    .bind(since.0)
                    .fetch_one(self.reader())
                    .await?
                    .try_get("n")?;
                Ok(u32::try_from(n).unwrap_or(u32::MAX))
            }

            async fn email_by_token(&self, token_hash: &[u8]) -> Result<Option<(TenantId, EmailRow)>> {
                sqlx::query(concat!("SELECT tenant_id, ", email_cols!(), " FROM emails WHERE token_hash = $1"))
                    .bind(token_hash)
                    .fetch_optional(self.reader())
                    .await?
                    .map(|r| Ok((parse::<TenantId>("tenant", &r.try_get::<String, _>("tenant_id")?)?, email_row(&r)?)))
                    .transpose()
            }

            async fn email_by_message_id(&self, tenant: TenantId, message_id: &str) -> Result<Option<EmailRow>> {
                sqlx::query(concat!("SELECT ", email_cols!(), " FROM emails WHERE tenant_id = $1 AND message_id = $2"))
                    .bind(tenant.to_string())
                    .bind(message_id)
                    .fetch_optional(self.reader())
                    .await?
                    .map(|r| email_row(&r))
                    .transpose()
            }

            async fn mark_email(&self, tenant: TenantId, email_id: &str, mark: EmailMark, at: Timestamp) -> Result<()> {
                let sql = match mark {
                    EmailMark::Opened => "UPDATE emails SET opened_at = COALESCE(opened_at, $3) WHERE tenant_id = $1 AND id = $2",
                    EmailMark::Clicked => "UPDATE emails SET clicked_at = COALESCE(clicked_at, $3) WHERE tenant_id = $1 AND id = $2",
                    EmailMark::Bounced => "UPDATE emails SET bounced_at = COALESCE(bounced_at, $3) WHERE tenant_id = $1 AND id = $2",
                    EmailMark::Complained => "UPDATE emails SET complained_at = COALESCE(complained_at, $3) WHERE tenant_id = $1 AND id = $2",
                    EmailMark::Unsubscribed => "UPDATE emails SET unsubscribed_at = COALESCE(unsubscribed_at, $3) WHERE tenant_id = $1 AND id = $2",
                };
                let mut tx = self.write_tx().await?;
                sqlx::query(sql)
                    .bind(tenant.to_string())
                    .bind(email_id)
                    .bind(at.0)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn journeys_for(&self, tenant: TenantId, subject: SubjectId) -> Result<(Vec<StepRow>, Vec<EmailRow>)> {
                let steps = sqlx::query(concat!("SELECT ", step_cols!(), " FROM journey_steps WHERE tenant_id = $1 AND subject_id = $2 ORDER BY triggered_at, step"))
                    .bind(tenant.to_string())
                    .bind(subject.to_string())
                    .fetch_all(self.reader())
                    .await?
                    .iter()
                    .map(step_row)
                    .collect::<Result<Vec<_>>>()?;
                let emails = sqlx::query(concat!("SELECT ", email_cols!(), " FROM emails WHERE tenant_id = $1 AND subject_id = $2 ORDER BY sent_at"))
                    .bind(tenant.to_string())
                    .bind(subject.to_string())
                    .fetch_all(self.reader())
                    .await?
                    .iter()
                    .map(email_row)
                    .collect::<Result<Vec<_>>>()?;
                Ok((steps, emails))
            }

            async fn journey_rows(&self, tenant: TenantId, journey: &str, conversion: &str, window_ms: i64) -> Result<Vec<JourneyRow>> {
                // Conversion and segment come from event metadata (name, time), no personal
                // values: an order within the window after the email (or, in the holdout,
                // after the step was due), and the orders before the trigger.
                // One read of the steps with their facts (the email's send time through its
                // step's unique key).
                let rows = sqlx::query(concat!(
                    "SELECT ", step_cols!(), ", \
                       CASE WHEN status IN ('sent', 'holdout') THEN EXISTS (SELECT 1 FROM events e \
                         WHERE e.subject_id = s.subject_id AND e.tenant_id = s.tenant_id AND e.name = $3 \
                         AND e.occurred_at > COALESCE((SELECT m.sent_at FROM emails m WHERE m.step_id = s.id), s.due_at) \
                         AND e.occurred_at <= COALESCE((SELECT m.sent_at FROM emails m WHERE m.step_id = s.id), s.due_at) + $4) \
                       ELSE false END AS converted, \
                       (SELECT COUNT(*) FROM events e WHERE e.subject_id = s.subject_id AND e.tenant_id = s.tenant_id AND e.name = $3 \
                         AND e.occurred_at < s.triggered_at) AS prior \
                     FROM journey_steps s WHERE tenant_id = $1 AND journey = $2 ORDER BY triggered_at, step",
                ))
                .bind(tenant.to_string())
                .bind(journey)
                .bind(conversion)
                .bind(window_ms)
                .fetch_all(self.reader())
                .await?;
                let mut emails: HashMap<String, EmailRow> = sqlx::query(concat!("SELECT ", email_cols!(), " FROM emails WHERE tenant_id = $1 AND journey = $2"))
                    .bind(tenant.to_string())
                    .bind(journey)
                    .fetch_all(self.reader())
                    .await?
                    .iter()
                    .map(|r| email_row(r).map(|e| (e.step_id.clone(), e)))
                    .collect::<Result<_>>()?;
                rows.iter()
                    .map(|r| {
                        let step = step_row(r)?;
                        Ok(JourneyRow {
                            email: emails.remove(&step.id),
                            converted: r.try_get::<bool, _>("converted")?,
                            prior_conversions: r.try_get::<i64, _>("prior")?,
                            step,
                        })
                    })
                    .collect()
            }

            async fn out_of_stock(&self, tenant: TenantId) -> Result<Vec<String>> {
                sqlx::query("SELECT item_id FROM catalog_items WHERE tenant_id = $1 AND in_stock = $2 ORDER BY item_id")
                    .bind(tenant.to_string())
                    .bind(false)
                    .fetch_all(self.reader())
                    .await?
                    .iter()
                    .map(|r| Ok(r.try_get("item_id")?))
                    .collect()
            }

            async fn fairness_alerts(&self, tenant: TenantId, before: Option<i64>, limit: u32) -> Result<Vec<AlertRow>> {
                sqlx::query(
                    "SELECT seq, version, audit_seq, gate, subject, value, limit_value, created_at FROM fairness_alerts \
                     WHERE tenant_id = $1 AND seq < $2 ORDER BY seq DESC LIMIT $3",
                )
                .bind(tenant.to_string())
                .bind(before.unwrap_or(i64::MAX))
                .bind(i64::from(limit))
                .fetch_all(self.reader())
                .await?
                .iter()
                .map(|r| {
                    Ok(AlertRow {
                        id: r.try_get("seq")?,
                        version: r.try_get("version")?,
                        audit_id: r.try_get("audit_seq")?,
                        gate: r.try_get("gate")?,
                        subject: r.try_get("subject")?,
                        value: r.try_get("value")?,
                        limit: r.try_get("limit_value")?,
                        created_at: Timestamp(r.try_get("created_at")?),
                    })
                })
                .collect()
            }

            async fn list_subjects(&self, tenant: TenantId, after: Option<SubjectId>, limit: u32) -> Result<Vec<SubjectRow>> {
                sqlx::query(
                    "SELECT id, wrapped_key, created_at FROM subjects WHERE tenant_id = $1 AND id > $2 ORDER BY id LIMIT $3",
                )
                .bind(tenant.to_string())
                .bind(after.map(|s| s.to_string()).unwrap_or_default())
                .bind(i64::from(limit))
                .fetch_all(self.reader())
                .await?
                .iter()
                .map(|r| {
                    Ok(SubjectRow {
                        id: parse("subject id", &r.try_get::<String, _>("id")?)?,
                        wrapped_key: r.try_get::<Option<Vec<u8>>, _>("wrapped_key")?.map(Sealed::from_stored),
                        created_at: Timestamp(r.try_get("created_at")?),
                    })
                })
                .collect()
            }
        }

        /// Event rows as a grant may see them: rows of other categories are skipped, and of the
        /// rest only the grant's categories are kept.
        fn events_granted(rows: &[DbRow], grant: &Grant) -> Result<Vec<EventView>> {
            let mut out = Vec::with_capacity(rows.len());
            for r in rows {
                let category: Category = parse("category", &r.try_get::<String, _>("category")?)?;
                if !grant.allows(&category) {
                    continue;
                }
                let mut plain = decode_plain(&r.try_get::<String, _>("plain")?)?;
                plain.retain(|c, _| grant.allows(c));
                let mut sealed = decode_sealed(&r.try_get::<String, _>("sealed")?)?;
                sealed.retain(|c, _| grant.allows(c));
                out.push(EventView {
                    id: parse::<EventId>("event id", &r.try_get::<String, _>("id")?)?,
                    message_id: r.try_get("message_id")?,
                    kind: r.try_get("kind")?,
                    name: r.try_get("name")?,
                    category,
                    plain,
                    sealed,
                    occurred_at: Timestamp(r.try_get("occurred_at")?),
                    received_at: Timestamp(r.try_get("received_at")?),
                });
            }
            Ok(out)
        }

        fn decision_from(r: &DbRow) -> Result<DecisionRow> {
            Ok(DecisionRow {
                id: r.try_get("id")?,
                subject: parse("subject id", &r.try_get::<String, _>("subject_id")?)?,
                purpose: r.try_get("purpose")?,
                kind: r.try_get("kind")?,
                model_version: r.try_get("model_version")?,
                inputs_digest: r.try_get("inputs_digest")?,
                sealed: Sealed::from_stored(r.try_get("sealed")?),
                created_at: Timestamp(r.try_get("created_at")?),
            })
        }

        fn request_from(r: &DbRow) -> Result<RequestRow> {
            let ts = |c: &str| -> Result<Option<Timestamp>> { Ok(r.try_get::<Option<i64>, _>(c)?.map(Timestamp)) };
            let result: Option<String> = r.try_get("result")?;
            Ok(RequestRow {
                id: r.try_get("id")?,
                subject: parse("subject id", &r.try_get::<String, _>("subject_id")?)?,
                kind: r.try_get("kind")?,
                regime: r.try_get("regime")?,
                status: r.try_get("status")?,
                received_at: Timestamp(r.try_get("received_at")?),
                acknowledge_by: ts("acknowledge_by")?,
                acknowledged_at: ts("acknowledged_at")?,
                due_at: Timestamp(r.try_get("due_at")?),
                extended: r.try_get("extended")?,
                extension_notice: r.try_get("extension_notice")?,
                token_hash: r.try_get("token_hash")?,
                token_expires_at: ts("token_expires_at")?,
                verified_at: ts("verified_at")?,
                verified_by: r.try_get("verified_by")?,
                completed_at: ts("completed_at")?,
                rejection_reason: r.try_get("rejection_reason")?,
                sealed: r.try_get::<Option<Vec<u8>>, _>("sealed")?.map(Sealed::from_stored),
                result: match result {
                    Some(s) => Some(serde_json::from_str(&s).map_err(|_| StoreError::Corrupt("unreadable request result".into()))?),
                    None => None,
                },
            })
        }

        fn audit_entry_from(r: &DbRow) -> Result<AuditEntry> {
            Ok(AuditEntry {
                chain: r.try_get("chain")?,
                seq: r.try_get("seq")?,
                at: Timestamp(r.try_get("at")?),
                actor: r.try_get("actor")?,
                action: r.try_get("action")?,
                target: r.try_get("target")?,
                details: r.try_get("details")?,
                prev_hash: r.try_get("prev_hash")?,
                hash: r.try_get("hash")?,
            })
        }

        fn contest_from(r: &DbRow) -> Result<ContestRow> {
            Ok(ContestRow {
                id: r.try_get("id")?,
                decision_id: r.try_get("decision_id")?,
                subject: parse("subject id", &r.try_get::<String, _>("subject_id")?)?,
                status: r.try_get("status")?,
                sealed: Sealed::from_stored(r.try_get("sealed")?),
                created_at: Timestamp(r.try_get("created_at")?),
                due_at: Timestamp(r.try_get("due_at")?),
                reviewer: r.try_get("reviewer")?,
                note_sealed: r.try_get::<Option<Vec<u8>>, _>("note_sealed")?.map(Sealed::from_stored),
                outcome_label: r.try_get("outcome_label")?,
                resolved_at: r.try_get::<Option<i64>, _>("resolved_at")?.map(Timestamp),
            })
        }

        fn audit_row_from(r: &DbRow) -> Result<ModelAuditRow> {
            let report: String = r.try_get("report")?;
            let override_actor: Option<String> = r.try_get("override_actor")?;
            Ok(ModelAuditRow {
                id: r.try_get("seq")?,
                version: r.try_get("version")?,
                kind: r.try_get("kind")?,
                passed: r.try_get("passed")?,
                report: serde_json::from_str(&report)
                    .map_err(|_| StoreError::Corrupt("unreadable audit report".into()))?,
                actor: r.try_get("actor")?,
                created_at: Timestamp(r.try_get("created_at")?),
                period_start: r.try_get::<Option<i64>, _>("period_start")?.map(Timestamp),
                period_end: r.try_get::<Option<i64>, _>("period_end")?.map(Timestamp),
                override_: match override_actor {
                    Some(actor) => Some(AuditOverride {
                        actor,
                        reason: r.try_get::<Option<String>, _>("override_reason")?.unwrap_or_default(),
                        at: Timestamp(r.try_get::<Option<i64>, _>("override_at")?.unwrap_or_default()),
                    }),
                    None => None,
                },
            })
        }

        /// The latest validation audit of a model: (id, passed, overridden).
        async fn latest_validation(tx: &mut Tx, tenant: TenantId, version: i64) -> Result<Option<(i64, bool, bool)>> {
            let row = sqlx::query(
                "SELECT seq, passed, override_actor FROM model_audits \
                 WHERE tenant_id = $1 AND version = $2 AND kind = 'validation' ORDER BY seq DESC LIMIT 1",
            )
            .bind(tenant.to_string())
            .bind(version)
            .fetch_optional(&mut **tx)
            .await?;
            match row {
                Some(r) => Ok(Some((
                    r.try_get("seq")?,
                    r.try_get("passed")?,
                    r.try_get::<Option<String>, _>("override_actor")?.is_some(),
                ))),
                None => Ok(None),
            }
        }

        async fn set_status(tx: &mut Tx, tenant: TenantId, version: i64, to: &str) -> Result<()> {
            sqlx::query("UPDATE models SET status = $1 WHERE tenant_id = $2 AND version = $3")
                .bind(to)
                .bind(tenant.to_string())
                .bind(version)
                .execute(&mut **tx)
                .await?;
            Ok(())
        }

        fn model_from(tenant: TenantId, r: &DbRow, with_artifact: bool) -> Result<ModelRow> {
            let card: String = r.try_get("card")?;
            Ok(ModelRow {
                tenant,
                version: r.try_get("version")?,
                name: r.try_get("name")?,
                kind: r.try_get("kind")?,
                status: r.try_get("status")?,
                digest: r.try_get("digest")?,
                artifact: if with_artifact { r.try_get("artifact")? } else { Vec::new() },
                card: serde_json::from_str(&card).map_err(|_| StoreError::Corrupt("unreadable model card".into()))?,
                created_at: Timestamp(r.try_get("created_at")?),
            })
        }

        #[allow(clippy::too_many_arguments)]
        async fn insert_transition(
            tx: &mut Tx,
            tenant: TenantId,
            version: i64,
            from: &str,
            to: &str,
            actor: &str,
            reason: &str,
            at: Timestamp,
        ) -> Result<()> {
            sqlx::query(
                "INSERT INTO model_transitions (tenant_id, version, from_status, to_status, actor, reason, at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(tenant.to_string())
            .bind(version)
            .bind(from)
            .bind(to)
            .bind(actor)
            .bind(reason)
            .bind(at.0)
            .execute(&mut **tx)
            .await?;
            Ok(())
        }
    };
}

pub(crate) use impl_store;
