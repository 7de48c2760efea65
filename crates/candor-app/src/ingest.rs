//! Ingestion of Segment-shaped events: validate → resolve subjects → decide purposes against
//! the consent snapshot (inside the write transaction) → minimize → seal → store.
//!
//! Rules, in order, for each event:
//! 1. invalid messages are `rejected` with a code; duplicates (`messageId` seen) are `duplicate`;
//! 2. consent carried by the event (`context.consent.categoryPreferences`) and a `Sec-GPC: 1`
//!    header are appended to the ledger first, so they govern the event that carries them;
//! 3. the event is kept only if a permitted, non-audit purpose reads its category; otherwise it
//!    is `dropped` with the denials as reason. Audit purposes read what others collected, plus
//!    protected traits: they never justify collecting behaviour;
//! 4. of a kept event, only fields whose category a purpose collecting that event reads are
//!    stored, and traits only if some permitted purpose reads their category;
//!    sealed categories are encrypted with the subject's data key, bound to the event id.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use candor_crypto::{DataKey, IdentifierKind, TenantKey};
use candor_policy::{Denial, Policy};
use candor_store::{
    Alias, AuditDraft, EventRow, FieldRow, IngestJob, IngestWrite, Prepared, Store,
};
use candor_types::{
    Category, ConsentAction, ConsentRecord, ConsentSource, ConsentState, EventId, EventKind,
    IncomingEvent, Purpose, SubjectId, TenantId, Timestamp,
};
use serde::Serialize;
use serde_json::Value;

use crate::{App, AppError, AppResult, Principal};

/// Options of one ingestion request.
#[derive(Clone, Copy, Debug, Default)]
pub struct IngestOptions {
    /// The request carried `Sec-GPC: 1`.
    pub gpc: bool,
    /// The endpoint fixes the call type (`/v1/track`); `None` for `/v1/batch`.
    pub forced_kind: Option<EventKind>,
}

/// The outcome for one event of a request.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct EventResult {
    pub index: usize,
    #[serde(rename = "messageId", skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// `accepted`, `duplicate`, `dropped` or `rejected`.
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Fields not stored because no permitted purpose may read them (minimization).
    #[serde(rename = "droppedFields", skip_serializing_if = "Vec::is_empty")]
    pub dropped_fields: Vec<String>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct IngestReport {
    pub accepted: usize,
    pub duplicate: usize,
    pub dropped: usize,
    pub rejected: usize,
    pub results: Vec<EventResult>,
}

/// One valid event with its resolved identity.
struct Valid {
    index: usize,
    event: IncomingEvent,
    message_id: String,
    client_message_id: bool,
    aliases: Vec<Alias>,
    /// `traits.email` as a blind index, recorded when the trait is stored.
    email: Option<Alias>,
    /// Order lines (`Order Completed`) and a cancelled order (`Order Cancelled`) as price
    /// history, written if the event is.
    prices: (
        Vec<candor_store::PriceRow>,
        Option<candor_store::PriceCancel>,
    ),
    /// Products the event names, for the assistant's catalog, written if the event is.
    products: Vec<candor_store::ProductRow>,
}

enum Planned {
    Duplicate,
    Dropped {
        reason: &'static str,
        message: String,
    },
    Accepted {
        subject: SubjectId,
        category: Category,
        purposes: Vec<Purpose>,
        /// Paths (`properties.price`) of the fields kept, with their categories.
        kept: Vec<(String, Category)>,
        traits: Vec<(String, Category)>,
        dropped_fields: Vec<String>,
    },
}

/// What the planner closure owns.
struct PlanInput {
    app: App,
    valid: Vec<Valid>,
    subjects: Vec<Option<SubjectId>>,
    keys: HashMap<SubjectId, DataKey>,
    erased: HashSet<SubjectId>,
    now: Timestamp,
    gpc: bool,
    actor: String,
    tenant: TenantId,
}

impl PlanInput {
    fn pairs(&self) -> Vec<(&Valid, Option<SubjectId>)> {
        self.valid
            .iter()
            .zip(self.subjects.iter().copied())
            .collect()
    }

    /// Plans and seals every event against a snapshot of ledgers and known message ids.
    fn run(
        &self,
        ledgers: &HashMap<SubjectId, Vec<ConsentRecord>>,
        existing: &HashSet<String>,
        erased_since: &HashSet<SubjectId>,
    ) -> AppResult<(IngestWrite, Vec<Planned>)> {
        let policy = self.app.policy();
        let pairs = self.pairs();
        let erased: HashSet<SubjectId> = self.erased.union(erased_since).copied().collect();
        let p = plan(
            policy,
            self.tenant,
            self.now,
            self.gpc,
            &pairs,
            ledgers,
            existing,
            &erased,
        );
        materialize(
            policy,
            &pairs,
            p,
            &self.keys,
            self.now,
            &self.actor,
            self.tenant,
        )
    }
}

struct Plan {
    per_event: Vec<Planned>,
    consents: Vec<(SubjectId, ConsentRecord)>,
    /// Subjects that receive any write.
    touched: BTreeSet<SubjectId>,
}

/// Decides every event against the ledgers; pure (no I/O, no crypto).
#[allow(clippy::too_many_arguments)]
fn plan(
    policy: &Policy,
    tenant: TenantId,
    now: Timestamp,
    gpc: bool,
    events: &[(&Valid, Option<SubjectId>)],
    ledgers: &HashMap<SubjectId, Vec<ConsentRecord>>,
    existing: &HashSet<String>,
    erased: &HashSet<SubjectId>,
) -> Plan {
    let mut states: HashMap<SubjectId, ConsentState> = HashMap::new();
    let mut seen: HashSet<&str> = HashSet::new();
    let mut out = Plan {
        per_event: Vec::with_capacity(events.len()),
        consents: Vec::new(),
        touched: BTreeSet::new(),
    };
    for (v, subject) in events {
        if v.client_message_id
            && (existing.contains(&v.message_id) || !seen.insert(v.message_id.as_str()))
        {
            out.per_event.push(Planned::Duplicate);
            continue;
        }
        let Some(subject) = *subject else {
            out.per_event.push(Planned::Dropped {
                reason: "no_consent",
                message: "no purpose permits storing this event".into(),
            });
            continue;
        };
        if erased.contains(&subject) {
            out.per_event.push(Planned::Dropped {
                reason: "subject_erased",
                message: "this person's data was erased; nothing new is stored".into(),
            });
            continue;
        }
        let state = states.entry(subject).or_insert_with(|| {
            ConsentState::from_ledger(ledgers.get(&subject).into_iter().flatten())
        });
        // Consent carried by the event, then the GPC signal, go to the ledger first.
        let mut changes: Vec<ConsentRecord> = Vec::new();
        for (seg_category, granted) in v.event.category_preferences() {
            for purpose in policy.purposes_for_segment_category(&seg_category) {
                if state.answer(purpose) != Some(granted) {
                    changes.push(record(purpose, granted, ConsentSource::Event, now));
                }
            }
        }
        if gpc {
            for purpose in policy.gpc_purposes() {
                if state.answer(purpose) != Some(false)
                    && !changes.iter().any(|c| &c.purpose == purpose)
                {
                    changes.push(record(purpose, false, ConsentSource::Gpc, now));
                }
            }
        }
        // An event may say "grant" while GPC says "withdraw" for the same purpose: GPC wins.
        if gpc {
            for c in &mut changes {
                if policy.gpc_purposes().contains(&&c.purpose) && c.action == ConsentAction::Granted
                {
                    c.action = ConsentAction::Withdrawn;
                    c.source = ConsentSource::Gpc;
                }
            }
            changes
                .retain(|c| state.answer(&c.purpose) != Some(c.action == ConsentAction::Granted));
        }
        for c in changes {
            state.apply(c.clone());
            out.consents.push((subject, c));
            out.touched.insert(subject);
        }

        let mut collect: BTreeSet<Category> = BTreeSet::new();
        let mut audit_reads: BTreeSet<Category> = BTreeSet::new();
        let mut granted: Vec<(Purpose, BTreeSet<Category>)> = Vec::new();
        let mut denials: Vec<Denial> = Vec::new();
        for def in policy.purposes() {
            match policy.decide(tenant, subject, &def.name, state) {
                Ok(g) if def.audit => audit_reads.extend(g.categories().iter().cloned()),
                Ok(g) => {
                    collect.extend(g.categories().iter().cloned());
                    granted.push((def.name.clone(), g.categories().clone()));
                }
                Err(d) => denials.push(d),
            }
        }
        let category = policy
            .event_category(v.event.kind, v.event.name.as_deref())
            .clone();
        if !collect.contains(&category) {
            let why: Vec<String> = denials
                .iter()
                .filter(|d| {
                    policy
                        .parse_purpose(&d.purpose)
                        .and_then(|p| policy.purpose(&p))
                        .is_some_and(|def| !def.audit && def.categories.contains(&category))
                })
                .map(|d| format!("{}: {}", d.purpose, d.reason))
                .collect();
            out.per_event.push(Planned::Dropped {
                reason: "no_consent",
                message: format!(
                    "no permitted purpose may collect `{category}` data for this person ({})",
                    if why.is_empty() {
                        "none defined".to_owned()
                    } else {
                        why.join("; ")
                    }
                ),
            });
            continue;
        }
        // Fields of the event are kept only for the purposes that collect the event itself:
        // an order keeps its email for `service`, a product view keeps no contact data even
        // though `service` may read contact data elsewhere.
        let mut event_reads: BTreeSet<Category> = BTreeSet::new();
        let mut purposes = Vec::new();
        for (p, cats) in &granted {
            if cats.contains(&category) {
                purposes.push(p.clone());
                event_reads.extend(cats.iter().cloned());
            }
        }
        let mut kept = Vec::new();
        let mut traits = Vec::new();
        let mut dropped_fields = Vec::new();
        for (top, map) in [
            ("properties", &v.event.properties),
            ("context", &v.event.context),
        ] {
            for k in map.keys() {
                if top == "context" && (k == "consent" || k == "traits") {
                    continue;
                }
                let path = format!("{top}.{k}");
                let c = policy.field_category(&category, &path);
                if event_reads.contains(c) {
                    kept.push((path, c.clone()));
                } else {
                    dropped_fields.push(path);
                }
            }
        }
        for k in v.event.traits.keys() {
            let path = format!("traits.{k}");
            let c = policy.field_category(&category, &path);
            if collect.contains(c) || (audit_reads.contains(c) && policy.is_protected_path(&path)) {
                traits.push((path, c.clone()));
            } else {
                dropped_fields.push(path);
            }
        }
        out.touched.insert(subject);
        out.per_event.push(Planned::Accepted {
            subject,
            category,
            purposes,
            kept,
            traits,
            dropped_fields,
        });
    }
    out
}

fn record(
    purpose: &Purpose,
    granted: bool,
    source: ConsentSource,
    now: Timestamp,
) -> ConsentRecord {
    ConsentRecord {
        purpose: purpose.clone(),
        action: if granted {
            ConsentAction::Granted
        } else {
            ConsentAction::Withdrawn
        },
        source,
        notice_version: None,
        notice_hash: None,
        jurisdiction: None,
        at: now,
    }
}

/// Label binding a sealed event part to its event and category.
pub(crate) fn event_part_label(id: EventId, category: &Category) -> String {
    format!("event:{id}:{category}")
}

/// The value at `properties.x` / `context.x` / `traits.x` of an event, split into its parts.
fn field<'a>(e: &'a IncomingEvent, path: &'a str) -> Option<(&'a str, &'a str, &'a Value)> {
    let (top, key) = path.split_once('.')?;
    let map = match top {
        "properties" => &e.properties,
        "context" => &e.context,
        "traits" => &e.traits,
        _ => return None,
    };
    map.get(key).map(|v| (top, key, v))
}

/// Seals a plan into rows. Fails only if the crypto fails (then nothing is written).
fn materialize(
    policy: &Policy,
    valid: &[(&Valid, Option<SubjectId>)],
    plan: Plan,
    keys: &HashMap<SubjectId, DataKey>,
    now: Timestamp,
    actor: &str,
    tenant: TenantId,
) -> Result<(IngestWrite, Vec<Planned>), AppError> {
    let mut write = IngestWrite {
        consents: plan.consents,
        ..Default::default()
    };
    for (subject, c) in &write.consents {
        write.audit.push(AuditDraft {
            tenant: Some(tenant),
            actor: actor.to_owned(),
            action: format!("consent.{}", c.action.as_str()),
            target: Some(subject.to_string()),
            details: serde_json::json!({
                "purpose": c.purpose, "source": c.source.as_str(), "via": "ingest"
            }),
        });
    }
    for ((v, _), p) in valid.iter().zip(&plan.per_event) {
        let Planned::Accepted {
            subject,
            category,
            purposes,
            kept,
            traits,
            ..
        } = p
        else {
            continue;
        };
        let key = keys
            .get(subject)
            .ok_or_else(|| AppError::internal("ingest", &"data key missing for subject"))?;
        let id = EventId::new();
        // Fields by category, then by `properties` / `context`, borrowed from the event.
        let mut by_cat: BTreeMap<&Category, BTreeMap<&str, BTreeMap<&str, &Value>>> =
            BTreeMap::new();
        for (path, c) in kept {
            if let Some((top, k, val)) = field(&v.event, path) {
                by_cat
                    .entry(c)
                    .or_default()
                    .entry(top)
                    .or_default()
                    .insert(k, val);
            }
        }
        let mut plain = BTreeMap::new();
        let mut sealed = BTreeMap::new();
        for (c, fields) in by_cat {
            let is_sealed = policy.category(c).is_none_or(|d| d.sealed);
            if is_sealed {
                let bytes =
                    serde_json::to_vec(&fields).map_err(|e| AppError::internal("ingest", &e))?;
                sealed.insert(c.clone(), key.seal(&event_part_label(id, c), &bytes)?);
            } else {
                let value =
                    serde_json::to_value(&fields).map_err(|e| AppError::internal("ingest", &e))?;
                plain.insert(c.clone(), value);
            }
        }
        for (path, c) in traits {
            let Some((_, _, val)) = field(&v.event, path) else {
                continue;
            };
            let bytes = serde_json::to_vec(val).map_err(|e| AppError::internal("ingest", &e))?;
            write.fields.push(FieldRow {
                subject: *subject,
                path: path.clone(),
                category: c.clone(),
                sealed: key.seal(path, &bytes)?,
                updated_at: now,
            });
            if path == "traits.email"
                && let Some(a) = v.email
            {
                write.aliases.push((*subject, a));
            }
        }
        let occurred = v.event.timestamp.map_or(now, |t| t.min(now));
        write.prices.extend(v.prices.0.iter().cloned());
        write.price_cancels.extend(v.prices.1.iter().cloned());
        write.products.extend(v.products.iter().cloned());
        write.journeys.extend(crate::journeys::journey_ops(
            policy,
            *subject,
            v.event.name.as_deref(),
            &v.message_id,
            occurred,
            now,
        ));
        write.events.push(EventRow {
            id,
            message_id: v.message_id.clone(),
            subject: *subject,
            kind: v.event.kind,
            name: v.event.name.clone(),
            category: category.clone(),
            purposes: purposes.clone(),
            plain,
            sealed,
            occurred_at: occurred,
            received_at: now,
        });
    }
    Ok((write, plan.per_event))
}

/// The blind index of `traits.email`, when the event carries an address.
fn email_alias(tk: &TenantKey, e: &IncomingEvent) -> Option<Alias> {
    let email = e.traits.get("email")?.as_str()?.trim();
    (email.contains('@') && email.len() <= 320).then(|| Alias {
        kind: IdentifierKind::Email,
        blind: tk.blind_index(IdentifierKind::Email, email),
    })
}

fn aliases_of(tk: &TenantKey, e: &IncomingEvent) -> Vec<Alias> {
    let mut out = Vec::with_capacity(2);
    if let Some(u) = &e.user_id {
        out.push(Alias {
            kind: IdentifierKind::UserId,
            blind: tk.blind_index(IdentifierKind::UserId, u),
        });
    }
    if let Some(a) = &e.anonymous_id {
        out.push(Alias {
            kind: IdentifierKind::AnonymousId,
            blind: tk.blind_index(IdentifierKind::AnonymousId, a),
        });
    }
    out
}

impl App {
    /// Ingests Segment messages for the principal's tenant. Invalid messages are reported per
    /// event and never stored; everything that is stored is written in one transaction.
    pub async fn ingest(
        &self,
        principal: &Principal,
        messages: Vec<Value>,
        opts: IngestOptions,
    ) -> AppResult<IngestReport> {
        let tenant = principal.tenant;
        let tk = self.tenant_key(tenant).await?;
        let now = self.clock().now();
        let mut report = IngestReport::default();
        let mut results: Vec<Option<EventResult>> = vec![None; messages.len()];
        let mut valid = Vec::with_capacity(messages.len());
        for (index, m) in messages.into_iter().enumerate() {
            let client_mid = m
                .get("messageId")
                .and_then(Value::as_str)
                .map(str::to_owned);
            match IncomingEvent::from_json(m, opts.forced_kind) {
                Ok(event) => {
                    let aliases = aliases_of(&tk, &event);
                    // Only the store's backend (a server key) vouches for an address: a
                    // browser-safe write key could otherwise point someone's address, and so
                    // their privacy-center sign-in, at another person.
                    let email = if principal.scope.allows(candor_types::Scope::Server) {
                        email_alias(&tk, &event)
                    } else {
                        None
                    };
                    let (message_id, client_message_id) = match &event.message_id {
                        Some(id) => (id.clone(), true),
                        None => (format!("candor-{}", EventId::new()), false),
                    };
                    let occurred = event.timestamp.map_or(now, |t| t.min(now));
                    let prices = crate::pricing::order_prices(&tk, &event, &message_id, occurred);
                    // Stamped when received: the catalog's cache compares the newest stamp.
                    let products = crate::assistant::event_products(&event, now);
                    valid.push(Valid {
                        index,
                        event,
                        message_id,
                        client_message_id,
                        aliases,
                        email,
                        prices,
                        products,
                    });
                }
                Err(e) => {
                    results[index] = Some(EventResult {
                        index,
                        message_id: client_mid,
                        status: "rejected",
                        reason: Some(e.code()),
                        message: Some(e.to_string()),
                        dropped_fields: Vec::new(),
                    });
                }
            }
        }

        // Resolve known subjects; plan unknown identities against an empty ledger to learn
        // which of them need a subject at all (nothing is created for a dropped-only visitor).
        let all_aliases: Vec<Alias> = {
            let mut seen = HashSet::new();
            valid
                .iter()
                .flat_map(|v| v.aliases.iter().copied())
                .filter(|a| seen.insert(*a))
                .collect()
        };
        let mut known = self.store().find_subjects(tenant, &all_aliases).await?;
        let mut provisional: HashMap<Alias, SubjectId> = HashMap::new();
        let subject_for = |v: &Valid,
                           known: &HashMap<Alias, candor_store::SubjectRow>,
                           provisional: &HashMap<Alias, SubjectId>|
         -> Option<SubjectId> {
            v.aliases
                .iter()
                .find_map(|a| known.get(a).map(|s| s.id))
                .or_else(|| v.aliases.iter().find_map(|a| provisional.get(a).copied()))
        };
        for v in &valid {
            if subject_for(v, &known, &provisional).is_none() {
                let id = SubjectId::new();
                for a in &v.aliases {
                    provisional.insert(*a, id);
                }
            }
        }
        if !provisional.is_empty() {
            let pairs: Vec<(&Valid, Option<SubjectId>)> = valid
                .iter()
                .map(|v| (v, subject_for(v, &known, &provisional)))
                .collect();
            let dry = plan(
                self.policy(),
                tenant,
                now,
                opts.gpc,
                &pairs,
                &HashMap::new(),
                &HashSet::new(),
                &HashSet::new(),
            );
            let mut new: BTreeMap<SubjectId, Vec<Alias>> = BTreeMap::new();
            for (v, s) in &pairs {
                if let Some(s) = s
                    && dry.touched.contains(s)
                    && !v.aliases.iter().any(|a| known.contains_key(a))
                {
                    let entry = new.entry(*s).or_default();
                    for a in &v.aliases {
                        if !entry.contains(a) {
                            entry.push(*a);
                        }
                    }
                }
            }
            if !new.is_empty() {
                known.extend(self.create_subjects(tenant, &tk, new).await?);
            }
        }
        // Identities still unknown keep their provisional id: planned against an empty ledger
        // they can only be dropped (the dry run decided nothing is written for them), and the
        // drop names the denials.
        let pairs: Vec<(&Valid, Option<SubjectId>)> = valid
            .iter()
            .map(|v| (v, subject_for(v, &known, &provisional)))
            .collect();
        let mut keys: HashMap<SubjectId, DataKey> = HashMap::new();
        let mut erased: HashSet<SubjectId> = HashSet::new();
        for s in known.values() {
            if keys.contains_key(&s.id) || erased.contains(&s.id) {
                continue;
            }
            match &s.wrapped_key {
                Some(w) => {
                    keys.insert(s.id, tk.unwrap_data_key(s.id, w)?);
                }
                None => {
                    erased.insert(s.id);
                }
            }
        }
        let subjects: Vec<SubjectId> = keys.keys().copied().collect();
        let message_ids: Vec<String> = valid
            .iter()
            .filter(|v| v.client_message_id)
            .map(|v| v.message_id.clone())
            .collect();
        let n_events = valid.len();
        let event_subjects: Vec<Option<SubjectId>> = pairs.iter().map(|(_, s)| *s).collect();
        drop(pairs);
        // Everything the planner needs, owned: it runs inside the writer's transaction and may
        // run twice if a group is retried.
        let input = Arc::new(PlanInput {
            app: self.clone(),
            valid,
            subjects: event_subjects,
            keys,
            erased,
            now,
            gpc: opts.gpc,
            actor: principal.actor(),
            tenant,
        });
        // Plan optimistically on a snapshot read outside the writer; the writer uses this
        // write as is if the ledgers and message ids it depended on are unchanged.
        let pre = self
            .store()
            .ingest_snapshot(tenant, &subjects, &message_ids)
            .await?;
        let (pre_write, pre_planned) =
            input.run(&pre.ledgers, &pre.existing_message_ids, &pre.erased)?;
        let slot: Arc<Mutex<Option<AppResult<Vec<Planned>>>>> = Arc::new(Mutex::new(None));
        let (plan_input, plan_slot) = (input.clone(), slot.clone());
        let job = IngestJob {
            tenant,
            subjects,
            message_ids,
            prepared: Some(Prepared {
                fingerprint: pre.fingerprint,
                existing_message_ids: pre.existing_message_ids,
                write: pre_write,
            }),
            plan: Box::new(move |snap| {
                let (write, result) =
                    match plan_input.run(&snap.ledgers, &snap.existing_message_ids, &snap.erased) {
                        Ok((w, planned)) => (Some(w), Ok(planned)),
                        Err(e) => (None, Err(e)),
                    };
                if let Ok(mut s) = plan_slot.lock() {
                    *s = Some(result);
                }
                write
            }),
        };
        let committed = self.writer().submit(job, n_events).await?;
        // The planner ran again only if the prepared write was stale.
        let planned = match slot.lock().ok().and_then(|mut s| s.take()) {
            Some(result) => result?,
            None => pre_planned,
        };
        let Some((write, inserted)) = committed else {
            return Err(AppError::internal("ingest", &"planner wrote nothing"));
        };
        let pairs = input.pairs();
        for (_, c) in &write.consents {
            self.metrics()
                .consent_change(c.purpose.as_str(), c.action.as_str());
        }
        let mut inserted = inserted.into_iter();
        for ((v, _), p) in pairs.iter().zip(planned) {
            let mid = Some(v.message_id.clone()).filter(|_| v.client_message_id);
            let r = match p {
                Planned::Duplicate => EventResult {
                    index: v.index,
                    message_id: mid,
                    status: "duplicate",
                    reason: Some("duplicate_message_id"),
                    message: None,
                    dropped_fields: Vec::new(),
                },
                Planned::Dropped { reason, message } => EventResult {
                    index: v.index,
                    message_id: mid,
                    status: "dropped",
                    reason: Some(reason),
                    message: Some(message),
                    dropped_fields: Vec::new(),
                },
                Planned::Accepted { dropped_fields, .. } => {
                    let fresh = inserted.next().unwrap_or(false);
                    EventResult {
                        index: v.index,
                        message_id: mid,
                        status: if fresh { "accepted" } else { "duplicate" },
                        reason: if fresh {
                            None
                        } else {
                            Some("duplicate_message_id")
                        },
                        message: None,
                        dropped_fields,
                    }
                }
            };
            results[v.index] = Some(r);
        }
        let mut counts: BTreeMap<(&str, &str), u64> = BTreeMap::new();
        for r in results.into_iter().flatten() {
            match r.status {
                "accepted" => report.accepted += 1,
                "duplicate" => report.duplicate += 1,
                "dropped" => report.dropped += 1,
                _ => report.rejected += 1,
            }
            *counts
                .entry((r.status, r.reason.unwrap_or("ok")))
                .or_default() += 1;
            report.results.push(r);
        }
        self.metrics().events(counts);
        Ok(report)
    }
}
