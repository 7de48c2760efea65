//! Email journeys: enrolment when a trigger event is ingested, a durable scheduler that sends
//! due steps, the checks made at send time, unsubscribe, and measurement.
//!
//! - **Enrolment** happens in the ingest transaction (an acknowledged trigger is never lost):
//!   a trigger enrols the person in the journey's first step; an exit event ends their pending
//!   steps that were triggered at or before it. A trigger whose first email would already be
//!   more than [`LATE_LIMIT_MS`] late (an import of old history) enrols nobody.
//! - **Holdout**: a fixed share of each journey's entrants, chosen by a hash of person and
//!   journey (so the same person is always in or out), is recorded and never emailed.
//! - **Sending** ([`App::send_due_steps`]): due steps are claimed with a lease (`FOR UPDATE
//!   SKIP LOCKED` on PostgreSQL, so several nodes share the work). For each, at send time:
//!   the `marketing_email` grant (consent, objection, restriction, erasure), the frequency cap,
//!   an address, quiet hours in the person's time zone. The email is handed to the relay in two
//!   halves around the commit of its record (see [`crate::smtp`]), so a crash or restart sends
//!   nothing twice.
//! - **Unsubscribe** ([`App::unsubscribe`]): the per-recipient token of `List-Unsubscribe`
//!   withdraws `marketing_email` consent at once and ends the person's pending steps.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use candor_crypto::sha256_hex;
use candor_policy::{JourneyDef, Policy};
use candor_store::{
    AuditDraft, DecisionRow, EmailMark, EmailRow, JourneyOp, JourneyRow, NewStep, StepOutcome,
    StepRow, Store,
};
use candor_types::{
    ConsentAction, ConsentRecord, ConsentSource, EventId, Purpose, SubjectId, TenantId, Timestamp,
};
use serde::Serialize;
use serde_json::{Value, json};
use sha2::Digest as _;

use crate::card::esc;
use crate::mail::{self, EmailContext, Envelope, Product, Recommended, Templates};
use crate::smtp::{SmtpClient, SmtpConfig, SmtpError};
use crate::{App, AppError, AppResult, ErrorKind, Principal};

/// A trigger whose first email would be later than this is not enrolled (old history).
pub const LATE_LIMIT_MS: i64 = Timestamp::DAY_MS;
/// How long a claimed step is reserved for the node that claimed it.
const LEASE_MS: i64 = 30_000;
/// How often an idle scheduler looks for due steps.
const POLL: Duration = Duration::from_millis(250);
/// A relay that cannot be reached: the step is tried again after this.
const RETRY_MS: i64 = 60_000;
/// Steps settled at once (and relay sessions open) per scheduler.
const IN_FLIGHT: usize = 4;
/// The purpose every journey email needs at send time.
pub const EMAIL_PURPOSE: &str = "marketing_email";
/// The event that counts as a conversion.
pub const CONVERSION_EVENT: &str = "Order Completed";
const ACTOR: &str = "system:journeys";

/// Whether a person is in a journey's holdout: a stable hash of person and journey.
pub fn in_holdout(subject: SubjectId, journey: &str, share: f64) -> bool {
    if share <= 0.0 {
        return false;
    }
    let h = sha2::Sha256::digest(format!("holdout:{journey}:{subject}").as_bytes());
    let mut b = [0u8; 8];
    b.copy_from_slice(&h[..8]);
    (u64::from_be_bytes(b) as f64 / u64::MAX as f64) < share
}

/// A step of a person in the journey's holdout (while pending, `reason` says so).
fn is_holdout(step: &StepRow) -> bool {
    step.status == "holdout"
        || step
            .reason
            .as_deref()
            .is_some_and(|r| r.starts_with("holdout"))
}

/// What one ingested event does to journeys: exits first (so an order both ends and restarts
/// win-back), then enrolment.
pub(crate) fn journey_ops(
    policy: &Policy,
    subject: SubjectId,
    name: Option<&str>,
    trigger_id: &str,
    at: Timestamp,
    now: Timestamp,
) -> Vec<JourneyOp> {
    let Some(name) = name else {
        return Vec::new();
    };
    let mut ops = Vec::new();
    let exits: Vec<String> = policy
        .journeys()
        .iter()
        .filter(|j| j.exit_on.iter().any(|e| e == name))
        .map(|j| j.name.clone())
        .collect();
    if !exits.is_empty() {
        ops.push(JourneyOp::Exit {
            subject,
            journeys: exits,
            at,
            reason: format!("{name} since the trigger"),
        });
    }
    for j in policy.journeys().iter().filter(|j| j.trigger == name) {
        let Some(first) = j.steps.first() else {
            continue;
        };
        let due_at = Timestamp(at.0.saturating_add(first.wait_ms));
        if due_at.0 < now.0 - LATE_LIMIT_MS {
            continue;
        }
        ops.push(JourneyOp::Enroll(NewStep {
            id: uuid::Uuid::now_v7().to_string(),
            subject,
            journey: j.name.clone(),
            step: 0,
            email: first.action(),
            trigger_id: trigger_id.to_string(),
            triggered_at: at,
            due_at,
            holdout: in_holdout(subject, &j.name, j.holdout),
        }));
    }
    ops
}

/// When a send at `now` may happen given quiet hours `(from, to)` in `tz`: `now` itself, or
/// the end of the quiet period.
pub fn next_send_time(now: Timestamp, tz: &jiff::tz::TimeZone, quiet: (u8, u8)) -> Timestamp {
    let (from, to) = quiet;
    if from == to {
        return now;
    }
    let Ok(ts) = jiff::Timestamp::from_millisecond(now.0) else {
        return now;
    };
    let local = ts.to_zoned(tz.clone());
    let h = local.hour() as u8;
    let quiet_now = if from < to {
        h >= from && h < to
    } else {
        h >= from || h < to
    };
    if !quiet_now {
        return now;
    }
    let end = local
        .date()
        .at(to as i8, 0, 0, 0)
        .to_zoned(tz.clone())
        .ok()
        .and_then(|z| {
            if z.timestamp() > ts {
                Some(z)
            } else {
                z.tomorrow()
                    .ok()
                    .and_then(|d| d.date().at(to as i8, 0, 0, 0).to_zoned(tz.clone()).ok())
            }
        });
    end.map_or(now, |z| Timestamp(z.timestamp().as_millisecond()))
}

/// The relay connection and the templates, built once from the policy.
pub struct Mailer {
    config: SmtpConfig,
    /// TLS for webhook calls (the same roots as the relay's).
    tls: tokio_rustls::TlsConnector,
    /// Webhook signing secrets, read from the environment at start.
    secrets: BTreeMap<String, String>,
    templates: Templates,
    /// Idle relay sessions, reused by the next send.
    idle: tokio::sync::Mutex<Vec<SmtpClient>>,
    /// The earliest time the next message may go (the send-rate bound).
    next_slot: tokio::sync::Mutex<tokio::time::Instant>,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Mailer {
    /// Checks the policy's `[smtp]`, credentials and templates: every journey step names a
    /// template that exists.
    pub fn from_policy(policy: &Policy) -> Result<Self, String> {
        let smtp = policy
            .smtp()
            .ok_or("email needs [smtp] in the policy file")?;
        let config = SmtpConfig::from_policy(smtp)?;
        let templates = Templates::load(
            policy
                .email()
                .templates
                .as_deref()
                .map(std::path::Path::new),
        )?;
        let mut secrets = BTreeMap::new();
        for j in policy.journeys() {
            for s in &j.steps {
                if let Some(w) = &s.webhook {
                    if let Some(env) = policy.webhook(w).and_then(|h| h.secret_env.as_ref()) {
                        let secret = std::env::var(env).map_err(|_| {
                            format!("[webhooks.{w}] names the environment variable {env}, which is not set")
                        })?;
                        secrets.insert(w.clone(), secret);
                    }
                    continue;
                }
                if !templates.has(&s.email) {
                    return Err(format!(
                        "journey {:?} sends the email template {:?}, which does not exist",
                        j.name, s.email
                    ));
                }
            }
        }
        let tls = config.tls_connector().map_err(|e| e.to_string())?;
        Ok(Mailer {
            config,
            tls,
            secrets,
            templates,
            idle: tokio::sync::Mutex::new(Vec::new()),
            next_slot: tokio::sync::Mutex::new(tokio::time::Instant::now()),
        })
    }

    /// An idle session, or a new one.
    async fn take_client(&self) -> Result<SmtpClient, SmtpError> {
        if let Some(c) = self.idle.lock().await.pop() {
            return Ok(c);
        }
        SmtpClient::connect(&self.config).await
    }

    async fn put_client(&self, c: SmtpClient) {
        self.idle.lock().await.push(c);
    }

    /// Sends one transactional message (a sign-in link) now: no journey, no consent check
    /// (it is what the person asked for), the relay's answer or the reason it failed.
    pub async fn send_notice(&self, to: &str, subject: &str, text: &str) -> Result<(), String> {
        if !crate::mail::valid_address(to) {
            return Err("not a valid email address".into());
        }
        let from = crate::mail::address_of(&self.config.policy.from).to_string();
        let id = format!("<{}@{}>", EventId::new(), crate::mail::domain_of(&from));
        let message = crate::mail::build_notice(
            &self.config.policy.from,
            to,
            &id,
            jiff::Timestamp::now(),
            subject,
            text,
        );
        self.pace().await;
        let mut client = self.take_client().await.map_err(|e| e.to_string())?;
        let sent = match client.begin(&from, to, &message).await {
            Ok(()) => client.commit().await.map(|_| ()),
            Err(e) => Err(e),
        };
        match sent {
            Ok(()) => {
                self.put_client(client).await;
                Ok(())
            }
            Err(e) => {
                client.quit().await;
                Err(e.to_string())
            }
        }
    }

    /// Waits for the next send slot (at most `max_per_second` messages per second).
    async fn pace(&self) {
        let gap =
            Duration::from_secs_f64(1.0 / f64::from(self.config.policy.max_per_second.max(1)));
        let at = {
            let mut next = self.next_slot.lock().await;
            let now = tokio::time::Instant::now();
            let at = (*next).max(now);
            *next = at + gap;
            at
        };
        tokio::time::sleep_until(at).await;
    }
}

/// What one pass of the scheduler did.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct SendReport {
    pub claimed: usize,
    pub sent: usize,
    pub skipped: usize,
    pub deferred: usize,
    /// Due in the holdout: recorded, not sent.
    pub held: usize,
    /// Webhook steps answered 2xx.
    pub called: usize,
    /// Could not reach the relay or it refused for now: tried again later.
    pub retried: usize,
}

enum Done {
    Called,
    Held,
    Sent,
    Skipped,
    Deferred,
    Retried,
}

/// One journey's measurement.
#[derive(Clone, Debug, Default, Serialize)]
pub struct JourneyStats {
    pub entered: u64,
    /// Entrants in the holdout (both arms wait and exit alike).
    pub holdout: u64,
    /// Holdout steps that came due (the holdout's "would have been sent").
    pub holdout_due: u64,
    pub sent: u64,
    pub delivered: u64,
    /// Opens are recorded only for people who allow analytics; `tracked` is how many of the
    /// sent emails could report an open.
    pub tracked: u64,
    pub opened: u64,
    pub clicked: u64,
    pub converted: u64,
    pub holdout_converted: u64,
    pub unsubscribed: u64,
    pub bounced: u64,
    pub complaints: u64,
    pub exited: u64,
    pub pending: u64,
    /// Webhook steps answered 2xx.
    pub webhooks_called: u64,
    pub skipped: BTreeMap<String, u64>,
    pub conversion_rate: Option<f64>,
    pub holdout_conversion_rate: Option<f64>,
    /// Conversion rate of those emailed minus that of the holdout, with its 95% interval.
    pub uplift: Option<candor_ml::uplift::Effect>,
    pub complaint_rate: Option<f64>,
    pub unsubscribe_rate: Option<f64>,
}

impl JourneyStats {
    fn add(&mut self, r: &JourneyRow) {
        let held = is_holdout(&r.step);
        if r.step.step == 0 {
            self.entered += 1;
            self.holdout += u64::from(held);
        }
        match r.step.status.as_str() {
            "holdout" => {
                self.holdout_due += 1;
                self.holdout_converted += u64::from(r.converted);
            }
            "sent" => {
                self.sent += 1;
                self.converted += u64::from(r.converted);
            }
            "exited" => self.exited += 1,
            "pending" => self.pending += 1,
            "called" => self.webhooks_called += 1,
            _ => {
                *self
                    .skipped
                    .entry(r.step.reason.clone().unwrap_or_default())
                    .or_default() += 1;
            }
        }
        if let Some(e) = &r.email {
            self.delivered += u64::from(e.bounced_at.is_none());
            self.tracked += u64::from(e.tracking);
            self.opened += u64::from(e.opened_at.is_some());
            self.clicked += u64::from(e.clicked_at.is_some());
            self.unsubscribed += u64::from(e.unsubscribed_at.is_some());
            self.bounced += u64::from(e.bounced_at.is_some());
            self.complaints += u64::from(e.complained_at.is_some());
        }
    }

    fn finish(&mut self) {
        let rate = |n: u64, d: u64| (d > 0).then(|| n as f64 / d as f64);
        self.conversion_rate = rate(self.converted, self.sent);
        self.holdout_conversion_rate = rate(self.holdout_converted, self.holdout_due);
        let sums = |n: u64, x: u64| candor_ml::uplift::Sums {
            n,
            sum: x as f64,
            sum_sq: x as f64,
        };
        self.uplift = (self.sent > 0 && self.holdout_due > 0).then(|| {
            candor_ml::uplift::effect(
                &sums(self.sent, self.converted),
                &sums(self.holdout_due, self.holdout_converted),
                true,
            )
        });
        self.complaint_rate = rate(self.complaints, self.delivered);
        self.unsubscribe_rate = rate(self.unsubscribed, self.delivered);
    }
}

/// A journey's definition and measurement, overall and by customer segment.
#[derive(Clone, Debug, Serialize)]
pub struct JourneyReport {
    pub journey: JourneyDef,
    pub overall: JourneyStats,
    /// `new` (no order before the trigger), `returning` (1–2), `loyal` (3 or more).
    pub by_segment: BTreeMap<String, JourneyStats>,
}

/// The segment of a person at their trigger, from their orders before it.
pub fn segment(prior_orders: i64) -> &'static str {
    match prior_orders {
        0 => "new",
        1 | 2 => "returning",
        _ => "loyal",
    }
}

fn new_token() -> (String, Vec<u8>) {
    use base64::Engine as _;
    let mut bytes = [0u8; 32];
    bytes[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    bytes[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let hash = token_hash(&token);
    (token, hash)
}

/// SHA-256 of a token: only the hash is stored.
pub fn token_hash(token: &str) -> Vec<u8> {
    sha2::Sha256::digest(token.as_bytes()).to_vec()
}

fn str_of(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Products named by an event's properties: `products: [{product_id, name, price}]` (Segment's
/// e-commerce spec) or a single `product_id`/`name`/`price`.
fn products_of(props: &serde_json::Map<String, Value>) -> Vec<Product> {
    let one = |p: &serde_json::Map<String, Value>| -> Option<Product> {
        let id = ["product_id", "productId", "sku", "id"]
            .iter()
            .find_map(|k| p.get(*k).and_then(str_of))?;
        Some(Product {
            name: p.get("name").and_then(str_of).unwrap_or_else(|| id.clone()),
            price: p.get("price").and_then(str_of),
            id,
        })
    };
    match props.get("products").and_then(Value::as_array) {
        Some(list) => list
            .iter()
            .filter_map(Value::as_object)
            .filter_map(one)
            .take(20)
            .collect(),
        None => one(props).into_iter().collect(),
    }
}

impl App {
    /// The relay and templates, checked once. Fails if journeys are configured and `[smtp]`,
    /// its credentials or a template are missing.
    pub fn mailer(&self) -> AppResult<&Arc<Mailer>> {
        if let Some(m) = self.inner.mailer.get() {
            return Ok(m);
        }
        let m = Mailer::from_policy(self.policy())
            .map_err(|e| AppError::new(ErrorKind::Unavailable, "email_not_configured", e))?;
        Ok(self.inner.mailer.get_or_init(|| Arc::new(m)))
    }

    /// Runs the scheduler until `stop` turns true: sends due steps, sleeps briefly when none
    /// are due.
    pub async fn run_journeys(&self, mut stop: tokio::sync::watch::Receiver<bool>) {
        loop {
            if *stop.borrow() {
                break;
            }
            let batch = self
                .mailer()
                .map(|m| m.config.policy.max_per_second.clamp(10, 500))
                .unwrap_or(10);
            let busy = match self.send_due_steps(batch).await {
                Ok(r) => r.claimed > 0,
                Err(e) => {
                    tracing::error!(error = %e, "journey scheduler pass failed");
                    false
                }
            };
            if !busy {
                tokio::select! {
                    _ = tokio::time::sleep(POLL) => {}
                    _ = stop.changed() => {}
                }
            }
        }
        if let Ok(m) = self.mailer() {
            let idle: Vec<SmtpClient> = std::mem::take(&mut *m.idle.lock().await);
            for c in idle {
                c.quit().await;
            }
        }
    }

    /// One scheduler pass: claims up to `limit` due steps and settles each.
    pub async fn send_due_steps(&self, limit: u32) -> AppResult<SendReport> {
        let mailer = self.mailer()?.clone();
        let now = self.clock().now();
        let steps = self.store().claim_due_steps(now, LEASE_MS, limit).await?;
        let mut report = SendReport {
            claimed: steps.len(),
            ..Default::default()
        };
        // Several people's steps in flight (each with its own relay session), so the relay's
        // round trips and the database's commits overlap. One person's steps go one after the
        // other: the frequency cap counts the email just sent.
        let mut by_subject: BTreeMap<(TenantId, SubjectId), Vec<StepRow>> = BTreeMap::new();
        for st in steps {
            by_subject
                .entry((st.tenant, st.subject))
                .or_default()
                .push(st);
        }
        use futures_util::StreamExt as _;
        let outcomes: Vec<Done> = futures_util::stream::iter(by_subject.into_values())
            .map(|group| {
                let mailer = mailer.clone();
                async move {
                    let mut out = Vec::with_capacity(group.len());
                    for step in group {
                        out.push(match self.settle_step(&mailer, &step).await {
                            Ok(d) => d,
                            Err(e) => {
                                tracing::error!(error = %e, step = %step.id, "journey step failed; retried later");
                                // Even the retry may fail (the store is down): the lease
                                // then brings the step back.
                                let _ = self.retry(&step, now).await;
                                Done::Retried
                            }
                        });
                    }
                    futures_util::stream::iter(out)
                }
            })
            .buffer_unordered(IN_FLIGHT)
            .flatten()
            .collect()
            .await;
        for done in outcomes {
            match done {
                Done::Held => report.held += 1,
                Done::Called => report.called += 1,
                Done::Sent => report.sent += 1,
                Done::Skipped => report.skipped += 1,
                Done::Deferred => report.deferred += 1,
                Done::Retried => report.retried += 1,
            }
        }
        if report.sent > 0 {
            self.metrics().emails_sent(report.sent as u64);
        }
        Ok(report)
    }

    fn next_step(
        &self,
        def: Option<&JourneyDef>,
        step: &StepRow,
        now: Timestamp,
    ) -> Option<NewStep> {
        let next = def?.steps.get(usize::try_from(step.step).ok()? + 1)?;
        Some(NewStep {
            id: uuid::Uuid::now_v7().to_string(),
            subject: step.subject,
            journey: step.journey.clone(),
            step: step.step + 1,
            email: next.action(),
            trigger_id: step.trigger_id.clone(),
            triggered_at: step.triggered_at,
            due_at: Timestamp(now.0.saturating_add(next.wait_ms)),
            holdout: is_holdout(step),
        })
    }

    /// Finishes a claimed step with its audit entry (actor: the scheduler, target: the person,
    /// details: journey and step plus `details`). `false` if it was no longer pending.
    #[allow(clippy::too_many_arguments)]
    async fn finish(
        &self,
        step: &StepRow,
        outcome: StepOutcome,
        decision: Option<&DecisionRow>,
        next: Option<&NewStep>,
        action: &str,
        details: Value,
        now: Timestamp,
    ) -> AppResult<bool> {
        let mut d = json!({ "journey": step.journey, "step": step.step });
        if let (Some(d), Value::Object(extra)) = (d.as_object_mut(), details) {
            d.extend(extra);
        }
        Ok(self
            .store()
            .finish_step(
                step.tenant,
                &step.id,
                &outcome,
                decision,
                next,
                AuditDraft {
                    tenant: Some(step.tenant),
                    actor: ACTOR.into(),
                    action: action.into(),
                    target: Some(step.subject.to_string()),
                    details: d,
                },
                now,
            )
            .await?)
    }

    async fn skip(
        &self,
        step: &StepRow,
        reason: &str,
        next: Option<&NewStep>,
        now: Timestamp,
    ) -> AppResult<Done> {
        self.finish(
            step,
            StepOutcome::Skipped(reason.to_string()),
            None,
            next,
            "email.skipped",
            json!({ "reason": reason }),
            now,
        )
        .await?;
        Ok(Done::Skipped)
    }

    /// Puts a step back for [`RETRY_MS`] (the relay or a webhook could not take it now).
    async fn retry(&self, step: &StepRow, now: Timestamp) -> AppResult<Done> {
        self.store()
            .defer_step(step.tenant, &step.id, Timestamp(now.0 + RETRY_MS))
            .await?;
        Ok(Done::Retried)
    }

    /// Checks, renders and sends one claimed step.
    async fn settle_step(&self, mailer: &Mailer, step: &StepRow) -> AppResult<Done> {
        let now = self.clock().now();
        let tenant = step.tenant;
        let policy = self.policy();
        let def = policy.journeys().iter().find(|j| j.name == step.journey);
        let next = self.next_step(def, step, now);
        if def.is_none() {
            return self.skip(step, "journey_removed", None, now).await;
        }
        if is_holdout(step) {
            // Due, and held out: recorded as the email that was not sent.
            self.finish(
                step,
                StepOutcome::Holdout,
                None,
                next.as_ref(),
                "email.held_out",
                json!({}),
                now,
            )
            .await?;
            return Ok(Done::Held);
        }
        if let Some(name) = step.email.strip_prefix("webhook:") {
            return self
                .call_webhook(mailer, step, name, def, next.as_ref(), now)
                .await;
        }
        let Some(subject) = self.store().subject(tenant, step.subject).await? else {
            return self.skip(step, "erased", None, now).await;
        };
        // The person's state and consent, read once for the email, its recommendations and
        // open tracking.
        let (email, personalization) = (
            self.purpose(EMAIL_PURPOSE)?,
            self.purpose(candor_store::RECS_PURPOSE)?,
        );
        // Opens are tracked only for people who allow analytics (if the policy has it).
        let analytics = self.policy().parse_purpose("analytics");
        let [grant, personal, tracked] = self
            .grants(
                tenant,
                step.subject,
                [
                    &email,
                    &personalization,
                    analytics.as_ref().unwrap_or(&email),
                ],
            )
            .await;
        let grant = match grant {
            Ok(g) => g,
            Err(d) => return self.skip(step, d.code, next.as_ref(), now).await,
        };
        let Some(key) = self.data_key(tenant, &subject).await? else {
            return self.skip(step, "erased", None, now).await;
        };
        let email_policy = policy.email();
        let since = Timestamp(now.0 - i64::from(email_policy.per_days) * Timestamp::DAY_MS);
        let recent = self
            .store()
            .emails_sent_since(tenant, step.subject, since)
            .await?;
        if recent >= email_policy.max_marketing_emails {
            return self.skip(step, "frequency_cap", next.as_ref(), now).await;
        }
        let (profile, events, opened) = self.open_subject(Some(&key), &grant, 200).await?;
        let Some(to) = profile
            .get("traits.email")
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|a| mail::valid_address(a))
            .map(str::to_owned)
        else {
            return self.skip(step, "no_address", next.as_ref(), now).await;
        };
        let tz = profile
            .get("traits.timezone")
            .and_then(Value::as_str)
            .and_then(|z| jiff::tz::TimeZone::get(z).ok())
            .or_else(|| jiff::tz::TimeZone::get(&email_policy.time_zone).ok())
            .unwrap_or(jiff::tz::TimeZone::UTC);
        let send_at = next_send_time(now, &tz, email_policy.quiet_hours);
        if send_at > now {
            self.store().defer_step(tenant, &step.id, send_at).await?;
            return Ok(Done::Deferred);
        }
        let name = ["traits.firstName", "traits.first_name", "traits.name"]
            .iter()
            .find_map(|k| profile.get(*k).and_then(Value::as_str))
            .and_then(|n| n.split_whitespace().next())
            .map(str::to_owned);
        let mut props = serde_json::Map::new();
        if let Some(e) = events.iter().find(|e| e.message_id == step.trigger_id) {
            for v in e.fields.values() {
                if let Some(p) = v.get("properties").and_then(Value::as_object) {
                    props.extend(p.clone());
                }
            }
        }
        let items = products_of(&props);
        // Recommendations only under `personalization`; without it the email has none.
        let mut recommendations = Vec::new();
        let mut rec_basis = None;
        if personal.is_ok() {
            match self
                .recommend_for(
                    tenant,
                    ACTOR,
                    Some((subject, personal)),
                    &step.subject.to_string(),
                    4,
                )
                .await
            {
                Ok(list) => {
                    rec_basis = Some(json!({
                        "personalized": list.personalized,
                        "model": list.model,
                        "model_version": list.model_version,
                        "decision": list.decision_id,
                    }));
                    if list.personalized {
                        recommendations = list
                            .items
                            .into_iter()
                            .filter(|r| !items.iter().any(|i| i.id == r.item))
                            .map(|r| Recommended {
                                item: r.item,
                                name: r.name,
                                reason: r.reason,
                            })
                            .collect();
                    }
                }
                Err(e) => tracing::debug!(error = %e, "no recommendations for the email"),
            }
        }
        let ai_content = !recommendations.is_empty();
        let tracking = analytics.is_some() && tracked.is_ok();
        let ctx = EmailContext {
            name,
            items,
            recommendations,
            shop_url: email_policy
                .shop_url
                .clone()
                .unwrap_or_else(|| email_policy.public_url.clone()),
        };
        let rendered = match mailer.templates.render(&step.email, &ctx) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "email template failed");
                return self.skip(step, "template_error", next.as_ref(), now).await;
            }
        };
        let smtp = &mailer.config.policy;
        let domain = mail::domain_of(&smtp.from).to_string();
        let email_id = uuid::Uuid::now_v7().to_string();
        let message_id = format!("<{email_id}@{domain}>");
        let (token, hash) = new_token();
        let base = &email_policy.public_url;
        let unsubscribe_url = format!("{base}/u/{token}");
        let why_url = format!("{base}/e/{token}/why");
        let pixel = format!("{base}/e/{token}/open");
        let mailto = format!(
            "mailto:{}?subject=unsubscribe%20{token}",
            smtp.unsubscribe_mailto
                .clone()
                .unwrap_or_else(|| format!("unsubscribe@{domain}"))
        );
        let message = mail::build_message(
            &Envelope {
                from: &smtp.from,
                to: &to,
                message_id: &message_id,
                date: jiff::Timestamp::from_millisecond(now.0).unwrap_or_default(),
                unsubscribe_url: &unsubscribe_url,
                unsubscribe_mailto: &mailto,
                why_url: &why_url,
                postal_address: &smtp.postal_address,
                ai_note: ai_content,
                journey: &step.journey,
                pixel_url: tracking.then_some(pixel.as_str()),
            },
            &rendered,
        );
        // The decision: why this person got this email, for the "why" page and their export.
        let trigger = def.map(|d| d.trigger.clone()).unwrap_or_default();
        let explanation = json!({
            "kind": "journey_email",
            "journey": step.journey,
            "step": step.step,
            "template": step.email,
            "trigger": { "event": trigger, "at": step.triggered_at },
            "sent_at": now,
            "consent": { "purpose": EMAIL_PURPOSE, "reasons": grant.reasons(), "checked_at": now },
            "frequency": { "sent_in_window": recent, "limit": email_policy.max_marketing_emails, "days": email_policy.per_days },
            "recommendations": rec_basis,
            "ai_content": ai_content,
            "tracking": tracking,
        });
        let decision = DecisionRow {
            id: email_id.clone(),
            subject: step.subject,
            purpose: EMAIL_PURPOSE.into(),
            kind: "journey_email".into(),
            model_version: None,
            inputs_digest: sha256_hex(
                format!("{}:{}:{}", step.journey, step.step, step.trigger_id).as_bytes(),
            ),
            sealed: key.seal(
                &format!("decision:{email_id}"),
                &serde_json::to_vec(&explanation)
                    .map_err(|e| AppError::internal("journeys", &e))?,
            )?,
            created_at: now,
        };
        let record = EmailRow {
            id: email_id.clone(),
            subject: step.subject,
            step_id: step.id.clone(),
            journey: step.journey.clone(),
            message_id: message_id.clone(),
            token_hash: hash,
            sent_at: now,
            ai_content,
            tracking,
            opened_at: None,
            clicked_at: None,
            bounced_at: None,
            complained_at: None,
            unsubscribed_at: None,
        };
        // Hand over all but the final dot; record; then the dot.
        mailer.pace().await;
        let mut client = match mailer.take_client().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "SMTP relay unreachable; the step is retried");
                return self.retry(step, now).await;
            }
        };
        let from = mail::address_of(&smtp.from).to_string();
        if let Err(e) = client.begin(&from, &to, &message).await {
            if e.is_permanent() {
                // The relay refused the recipient: nothing was sent; the session is reusable.
                mailer.put_client(client).await;
                let reason = match &e {
                    SmtpError::Reply { code, .. } => format!("refused_{code}"),
                    _ => "refused".into(),
                };
                return self.skip(step, &reason, next.as_ref(), now).await;
            }
            tracing::warn!(error = %e, "SMTP send failed; the step is retried");
            return self.retry(step, now).await;
        }
        let recorded = self
            .finish(
                step,
                StepOutcome::Sent(Box::new(record)),
                Some(&decision),
                next.as_ref(),
                "email.sent",
                json!({ "email": email_id, "ai_content": ai_content, "sealed_values_read": opened }),
                now,
            )
            .await;
        match recorded {
            Ok(true) => {}
            other => {
                // Not recorded (finished elsewhere, erased, or the store failed): the session is
                // dropped before the final dot, so the relay discards the message.
                drop(client);
                other?;
                return Ok(Done::Skipped);
            }
        }
        match client.commit().await {
            Ok(_) => {
                mailer.put_client(client).await;
                Ok(Done::Sent)
            }
            Err(e @ SmtpError::Reply { .. }) if !e.is_permanent() => {
                // Refused for now: not accepted, so it may be sent again.
                tracing::warn!(error = %e, "relay deferred the message; retried later");
                mailer.put_client(client).await;
                self.store()
                    .reopen_step(tenant, &step.id, Timestamp(now.0 + RETRY_MS))
                    .await?;
                Ok(Done::Retried)
            }
            Err(e @ SmtpError::Reply { .. }) => {
                tracing::warn!(error = %e, "relay refused the message");
                mailer.put_client(client).await;
                self.store()
                    .mark_email(tenant, &email_id, EmailMark::Bounced, now)
                    .await?;
                Ok(Done::Sent)
            }
            Err(e) => {
                // The dot went out but the answer did not come back: the relay may have
                // accepted it, so it is not sent again.
                tracing::warn!(error = %e, "no answer after the message; not resent");
                Ok(Done::Sent)
            }
        }
    }

    /// A webhook step: the person's grant for the webhook's purpose, then one POST carrying
    /// only the configured fields the grant lets it read.
    async fn call_webhook(
        &self,
        mailer: &Mailer,
        step: &StepRow,
        name: &str,
        def: Option<&JourneyDef>,
        next: Option<&NewStep>,
        now: Timestamp,
    ) -> AppResult<Done> {
        let tenant = step.tenant;
        let Some(hook) = self.policy().webhook(name) else {
            return self.skip(step, "webhook_removed", next, now).await;
        };
        let Some(subject) = self.store().subject(tenant, step.subject).await? else {
            return self.skip(step, "erased", None, now).await;
        };
        let purpose = self.purpose(&hook.purpose)?;
        let grant = match self.grant(tenant, step.subject, &purpose).await {
            Ok(g) => g,
            Err(d) => return self.skip(step, d.code, next, now).await,
        };
        let key = self.data_key(tenant, &subject).await?;
        let (profile, _, opened) = self.open_subject(key.as_ref(), &grant, 0).await?;
        let fields: BTreeMap<&str, &Value> = hook
            .fields
            .iter()
            .filter_map(|f| profile.get(f).map(|v| (f.as_str(), v)))
            .collect();
        let body = serde_json::to_vec(&json!({
            "id": step.id,
            "journey": step.journey,
            "step": step.step,
            "trigger": { "event": def.map(|d| d.trigger.as_str()), "at": step.triggered_at },
            "subject": step.subject,
            "purpose": hook.purpose,
            "fields": fields,
            "at": now,
        }))
        .map_err(|e| AppError::internal("journeys", &e))?;
        let sent: Vec<&str> = fields.keys().copied().collect();
        match crate::webhook::post(
            &hook.url,
            &body,
            &step.id,
            mailer.secrets.get(name).map(String::as_str),
            &mailer.tls,
        )
        .await
        {
            Ok(_) => {
                self.finish(
                    step,
                    StepOutcome::Called,
                    None,
                    next,
                    "webhook.called",
                    json!({
                        "webhook": name, "purpose": hook.purpose, "fields": sent,
                        "sealed_values_read": opened,
                    }),
                    now,
                )
                .await?;
                Ok(Done::Called)
            }
            Err(crate::webhook::CallError::Status(s))
                if (400..500).contains(&s) && s != 408 && s != 429 =>
            {
                self.skip(step, &format!("webhook_refused_{s}"), next, now)
                    .await
            }
            Err(e) => {
                tracing::warn!(error = %e, webhook = name, "webhook call failed; retried later");
                self.retry(step, now).await
            }
        }
    }

    async fn email_for_token(&self, token: &str) -> AppResult<(TenantId, EmailRow)> {
        if token.len() != 43
            || !token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(AppError::not_found("email"));
        }
        self.store()
            .email_by_token(&token_hash(token))
            .await?
            .ok_or_else(|| AppError::not_found("email"))
    }

    /// One-click unsubscribe (RFC 8058): withdraws `marketing_email` consent now, ends the
    /// person's pending journey steps and marks the email. Repeating it changes nothing more.
    pub async fn unsubscribe(&self, token: &str, via: &str) -> AppResult<()> {
        let (tenant, email) = self.email_for_token(token).await?;
        self.withdraw_email_consent(
            tenant,
            &email,
            "email.unsubscribed",
            via,
            EmailMark::Unsubscribed,
        )
        .await
    }

    async fn withdraw_email_consent(
        &self,
        tenant: TenantId,
        email: &EmailRow,
        action: &str,
        via: &str,
        mark: EmailMark,
    ) -> AppResult<()> {
        let now = self.clock().now();
        let purpose: Purpose = self.purpose(EMAIL_PURPOSE)?;
        let record = ConsentRecord {
            purpose: purpose.clone(),
            action: ConsentAction::Withdrawn,
            source: ConsentSource::Api,
            notice_version: None,
            notice_hash: None,
            jurisdiction: None,
            at: now,
        };
        let audit = AuditDraft {
            tenant: Some(tenant),
            actor: format!("subject:{via}"),
            action: action.to_string(),
            target: Some(email.subject.to_string()),
            details: json!({ "email": email.id, "journey": email.journey, "purpose": EMAIL_PURPOSE, "via": via }),
        };
        match self
            .store()
            .append_consents(tenant, email.subject, vec![record], vec![audit])
            .await
        {
            Ok(()) => {}
            // Erased meanwhile: nothing is left to email.
            Err(candor_store::StoreError::Conflict(_)) => return Ok(()),
            Err(e) => return Err(e.into()),
        }
        self.metrics().consent_change(EMAIL_PURPOSE, "withdrawn");
        let journeys: Vec<String> = self
            .policy()
            .journeys()
            .iter()
            .map(|j| j.name.clone())
            .collect();
        self.store()
            .exit_steps(tenant, email.subject, &journeys, "unsubscribed", now)
            .await?;
        self.store()
            .mark_email(tenant, &email.id, mark, now)
            .await?;
        Ok(())
    }

    /// Records an open (tracking pixel), only if the person allowed tracking.
    pub async fn email_opened(&self, token: &str) -> AppResult<()> {
        let (tenant, email) = self.email_for_token(token).await?;
        if email.tracking {
            self.store()
                .mark_email(tenant, &email.id, EmailMark::Opened, self.clock().now())
                .await?;
        }
        Ok(())
    }

    /// Why the person got this email, from the decision recorded when it was sent.
    pub async fn email_why(&self, token: &str) -> AppResult<Value> {
        let (tenant, email) = self.email_for_token(token).await?;
        let subject = self
            .store()
            .subject(tenant, email.subject)
            .await?
            .ok_or_else(|| AppError::not_found("email"))?;
        let key = self
            .data_key(tenant, &subject)
            .await?
            .ok_or_else(|| AppError::not_found("email"))?;
        let d = self
            .store()
            .decisions_for(tenant, email.subject, 10_000)
            .await?
            .into_iter()
            .find(|d| d.id == email.id)
            .ok_or_else(|| AppError::not_found("decision"))?;
        let bytes = key.open(&format!("decision:{}", d.id), &d.sealed)?;
        let explanation: Value =
            serde_json::from_slice(&bytes).map_err(|e| AppError::internal("journeys", &e))?;
        let journey = explanation["journey"].as_str().unwrap_or_default();
        let why = email_why_statements(&explanation);
        Ok(json!({
            "email": email.id,
            "journey": journey,
            "sent_at": email.sent_at,
            "why": why,
            "decision": explanation,
            "unsubscribed": email.unsubscribed_at.is_some(),
        }))
    }

    /// Bounces and complaints reported by the relay or mailbox providers, by Message-ID. A
    /// complaint also withdraws `marketing_email` consent (the person said "spam").
    pub async fn email_event(
        &self,
        principal: &Principal,
        message_id: &str,
        kind: &str,
    ) -> AppResult<()> {
        principal.require(candor_types::Scope::Server)?;
        let mark = match kind {
            "bounce" => EmailMark::Bounced,
            "complaint" => EmailMark::Complained,
            "unsubscribe" => EmailMark::Unsubscribed,
            "click" => EmailMark::Clicked,
            other => {
                return Err(AppError::bad_request(
                    "invalid_email_event",
                    format!("`{other}` is not bounce, complaint, unsubscribe or click"),
                ));
            }
        };
        let email = self
            .store()
            .email_by_message_id(principal.tenant, message_id)
            .await?
            .ok_or_else(|| AppError::not_found("email"))?;
        match mark {
            EmailMark::Complained | EmailMark::Unsubscribed => {
                let action = if mark == EmailMark::Complained {
                    "email.complaint"
                } else {
                    "email.unsubscribed"
                };
                self.withdraw_email_consent(principal.tenant, &email, action, kind, mark)
                    .await
            }
            EmailMark::Clicked if !email.tracking => Ok(()),
            _ => {
                self.store()
                    .mark_email(principal.tenant, &email.id, mark, self.clock().now())
                    .await?;
                Ok(())
            }
        }
    }

    /// Every configured journey with its measurement, overall and by segment.
    pub async fn journey_reports(&self, principal: &Principal) -> AppResult<Vec<JourneyReport>> {
        principal.require(candor_types::Scope::Server)?;
        let window = i64::from(self.policy().email().conversion_days) * Timestamp::DAY_MS;
        let mut out = Vec::new();
        for j in self.policy().journeys() {
            let rows = self
                .store()
                .journey_rows(principal.tenant, &j.name, CONVERSION_EVENT, window)
                .await?;
            let mut overall = JourneyStats::default();
            let mut by_segment: BTreeMap<String, JourneyStats> = BTreeMap::new();
            for r in &rows {
                overall.add(r);
                by_segment
                    .entry(segment(r.prior_conversions).to_string())
                    .or_default()
                    .add(r);
            }
            overall.finish();
            by_segment.values_mut().for_each(JourneyStats::finish);
            out.push(JourneyReport {
                journey: j.clone(),
                overall,
                by_segment,
            });
        }
        Ok(out)
    }
}

/// The decision of a journey email in plain sentences.
pub fn email_why_statements(explanation: &Value) -> Vec<String> {
    let journey = explanation["journey"].as_str().unwrap_or_default();
    let trigger = explanation["trigger"]["event"]
        .as_str()
        .unwrap_or("an event");
    let mut why = vec![format!(
        "You are in our \"{}\" emails because of a \"{trigger}\" on {}.",
        journey.replace('_', " "),
        explanation["trigger"]["at"]
            .as_str()
            .unwrap_or("a recent date"),
    )];
    why.push(format!(
        "Before sending, at {}, we checked that you agree to marketing emails: {}.",
        explanation["sent_at"].as_str().unwrap_or_default(),
        explanation["consent"]["reasons"]
            .as_array()
            .map(|r| r
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join("; "))
            .unwrap_or_default()
    ));
    why.push(format!(
        "We send at most {} marketing emails in {} days; you had received {} before this one.",
        explanation["frequency"]["limit"],
        explanation["frequency"]["days"],
        explanation["frequency"]["sent_in_window"]
    ));
    if explanation["ai_content"].as_bool() == Some(true) {
        why.push("Some products in it were chosen by an automated recommendation system from your purchases, because you agreed to personalised recommendations.".into());
    } else {
        why.push("No automated system chose its content for you.".into());
    }
    why
}

/// A page email recipients read (narrow, no scripts): `title` is also its heading.
fn recipient_page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title><style>body{{font-family:sans-serif;max-width:36em;margin:3em auto;padding:0 1em;line-height:1.5}}button{{font-size:1em;padding:.5em 1.2em}}</style></head><body><h1>{title}</h1>{body}</body></html>"
    )
}

/// The page the visible unsubscribe link opens: one button (a GET never unsubscribes, because
/// mail scanners follow links), or the confirmation.
pub fn unsubscribe_page_html(token: &str, done: bool) -> String {
    if done {
        recipient_page(
            "You are unsubscribed",
            "<p>You will get no more marketing emails from us. Emails about your orders still reach you.</p>",
        )
    } else {
        recipient_page(
            "Unsubscribe",
            &format!(
                "<p>Stop all marketing emails to this address?</p><form method=\"post\" action=\"/u/{}\"><input type=\"hidden\" name=\"List-Unsubscribe\" value=\"One-Click\"><button type=\"submit\">Unsubscribe</button></form>",
                esc(token)
            ),
        )
    }
}

/// "Why did I get this email?" as a page.
pub fn why_page_html(why: &Value, token: &str) -> String {
    let items: String = why["why"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(|s| format!("<li>{}</li>", esc(s)))
                .collect()
        })
        .unwrap_or_default();
    let unsub = if why["unsubscribed"].as_bool() == Some(true) {
        "<p>You have unsubscribed: no more marketing emails will be sent.</p>".to_string()
    } else {
        format!(
            "<p><a href=\"/u/{}\">Unsubscribe from all marketing emails</a></p>",
            esc(token)
        )
    };
    recipient_page(
        "Why did I get this email?",
        &format!(
            "<ul>{items}</ul>{unsub}<p>You can also ask us for a copy of your data or for its erasure.</p>"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holdout_is_stable_and_near_its_share() {
        let people: Vec<SubjectId> = (0..20_000).map(|_| SubjectId::new()).collect();
        let held = people
            .iter()
            .filter(|s| in_holdout(**s, "cart", 0.1))
            .count();
        assert!((1_700..2_300).contains(&held), "{held}");
        assert!(
            people
                .iter()
                .all(|s| in_holdout(*s, "cart", 0.1) == in_holdout(*s, "cart", 0.1))
        );
        assert!(!people.iter().any(|s| in_holdout(*s, "cart", 0.0)));
    }

    fn at(s: &str) -> Timestamp {
        Timestamp(s.parse::<jiff::Timestamp>().expect("time").as_millisecond())
    }

    #[test]
    fn quiet_hours_move_sends_to_their_end_in_the_persons_zone() {
        let berlin = jiff::tz::TimeZone::get("Europe/Berlin").expect("tz");
        // 22:30 UTC is 23:30 in Berlin (winter): quiet until 08:00 Berlin = 07:00 UTC.
        assert_eq!(
            next_send_time(at("2026-01-10T22:30:00Z"), &berlin, (21, 8)),
            at("2026-01-11T07:00:00Z")
        );
        // 05:00 UTC = 06:00 Berlin: quiet until 07:00 UTC the same day.
        assert_eq!(
            next_send_time(at("2026-01-10T05:00:00Z"), &berlin, (21, 8)),
            at("2026-01-10T07:00:00Z")
        );
        // Noon is not quiet; equal hours mean no quiet hours.
        let noon = at("2026-01-10T12:00:00Z");
        assert_eq!(next_send_time(noon, &berlin, (21, 8)), noon);
        let late = at("2026-01-10T23:00:00Z");
        assert_eq!(next_send_time(late, &berlin, (0, 0)), late);
        // A window inside one day.
        assert_eq!(
            next_send_time(
                at("2026-01-10T12:30:00Z"),
                &jiff::tz::TimeZone::UTC,
                (12, 14)
            ),
            at("2026-01-10T14:00:00Z")
        );
    }

    #[test]
    fn products_from_segment_ecommerce_properties() {
        let v: Value =
            json!({"products": [{"product_id": "p1", "name": "Mug", "price": 9.5}, {"sku": "p2"}]});
        let p = products_of(v.as_object().expect("object"));
        assert_eq!(p.len(), 2);
        assert_eq!(
            (p[0].id.as_str(), p[0].price.as_deref()),
            ("p1", Some("9.5"))
        );
        assert_eq!(p[1].name, "p2");
        let one: Value = json!({"product_id": "x", "name": "Lamp"});
        assert_eq!(
            products_of(one.as_object().expect("object"))[0].name,
            "Lamp"
        );
    }
}
