//! Price checks: the guard every price passes before a customer sees it.
//!
//! `check_price` validates one proposal, classifies its signals, asks for the person's grant
//! only when personal data may have shaped the price, applies the segment's pinned price and
//! the caps ([`candor_policy::pricing`] has the rules), and answers with the price to show,
//! the reasons, the disclosure when one is due and, for an announced reduction, the lowest
//! price of the prior period. Each check is recorded: a check personal data shaped (or
//! would have, had the person allowed it) is a decision about that person, sealed with their
//! key; any other check is an anonymous row with its explanation, and the price it showed
//! enters the product's history when it changes.
//!
//! Single checks are recorded by a group commit within some 10 ms after the answer (like
//! served recommendation lists: reads of checks, decisions and exports flush it first, and
//! `candor serve` flushes it at shutdown); batch checks are committed before they are
//! answered. A segment's pin is claimed in the database before the answer (first check wins
//! across nodes), then cached until its window ends.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{Duration, Instant};

use candor_crypto::TenantKey;
use candor_policy::pricing::{
    PricePoint, PriceProposal, PriceReason, Signal, SignalClass, check_discount, normalize_signal,
    prior_lowest,
};
use candor_policy::{Denial, Grant};
use candor_store::{
    AuditDraft, CheckLog, CheckRow, CheckWrite, DecisionRow, PinKey, PriceCancel, PriceRow,
    PricingStore, Store,
};
use candor_types::{Currency, EventId, IncomingEvent, Scope, TenantId, Timestamp};
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::{App, AppError, AppResult, ErrorKind, Principal};

/// The kind of decision a price check about a person is stored as.
pub const PRICE_DECISION: &str = "price_check";
/// Most checks in one batch.
pub const MAX_BATCH: usize = 10_000;
/// Most signals one check may name.
const MAX_SIGNALS: usize = 64;
/// How long the flagged proxies of a tenant are reused before they are read again.
const PROXY_TTL: Duration = Duration::from_secs(2);
/// A price is re-entered into the history at least this often while it stays the same, so
/// several nodes' change points never stay stale for longer.
const HISTORY_REFRESH_MS: i64 = Timestamp::DAY_MS;
/// How long the check writer gathers checks before committing them.
const CHECK_LINGER: Duration = Duration::from_millis(10);

const FIELDS: &[&str] = &[
    "product",
    "category",
    "currency",
    "listPrice",
    "proposedPrice",
    "unpersonalizedPrice",
    "userId",
    "anonymousId",
    "segment",
    "signals",
    "presentedAsDiscount",
    "referencePrice",
];

/// One proposal, validated.
#[derive(Clone, Debug, PartialEq)]
pub struct CheckInput {
    pub product: String,
    pub category: Option<String>,
    pub currency: Currency,
    pub list: i64,
    pub proposed: i64,
    pub unpersonalized: Option<i64>,
    /// The store's `userId` (or `anonymousId`) of the person the price is for.
    pub who: Option<String>,
    pub segment: Option<String>,
    pub signals: Vec<Signal>,
    /// Presented as a reduction, with the reference ("was") price the store meant to show.
    pub discount: Option<Option<i64>>,
}

fn bad(code: &'static str, message: impl Into<String>) -> AppError {
    AppError::bad_request(code, message)
}

fn text_field(
    o: &Map<String, Value>,
    key: &str,
    max: usize,
    code: &'static str,
) -> AppResult<Option<String>> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if !s.trim().is_empty() && s.chars().count() <= max => {
            Ok(Some(s.trim().to_string()))
        }
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(_) => Err(bad(
            code,
            format!("`{key}` is a text of 1 to {max} characters"),
        )),
    }
}

fn amount(
    o: &Map<String, Value>,
    key: &str,
    currency: Currency,
    required: bool,
) -> AppResult<Option<i64>> {
    let v = match o.get(key) {
        None | Some(Value::Null) if !required => return Ok(None),
        None | Some(Value::Null) => {
            return Err(bad("price_invalid", format!("`{key}` is required")));
        }
        Some(v) => v,
    };
    let text = Currency::amount_text(v).ok_or_else(|| {
        bad(
            "price_invalid",
            format!("`{key}` is an amount such as \"12.50\" or 12.5"),
        )
    })?;
    let minor = currency.parse_exact(&text).map_err(|e| match e {
        candor_types::MoneyError::Precision { .. } => {
            bad("price_precision", format!("`{key}`: {e}"))
        }
        e => bad("price_invalid", format!("`{key}`: {e}")),
    })?;
    if minor <= 0 {
        return Err(bad("price_invalid", format!("`{key}` must be above zero")));
    }
    Ok(Some(minor))
}

impl CheckInput {
    /// Validates one check's JSON. Unknown fields are refused (a misspelt field would
    /// otherwise be silently ignored).
    pub fn from_json(v: &Value) -> AppResult<Self> {
        let Value::Object(o) = v else {
            return Err(bad("not_an_object", "a price check is a JSON object"));
        };
        if let Some(k) = o.keys().find(|k| !FIELDS.contains(&k.as_str())) {
            return Err(bad(
                "invalid_request",
                format!("unknown field `{k}`: expected {}", FIELDS.join(", ")),
            ));
        }
        let product = text_field(o, "product", 200, "product_invalid")?
            .ok_or_else(|| bad("product_invalid", "`product` is required"))?;
        let currency = match o.get("currency") {
            Some(Value::String(s)) => {
                Currency::parse(s).map_err(|e| bad("currency_invalid", e.to_string()))?
            }
            _ => {
                return Err(bad(
                    "currency_invalid",
                    "`currency` is required: an ISO 4217 code such as \"EUR\"",
                ));
            }
        };
        let list = amount(o, "listPrice", currency, true)?.unwrap_or(0);
        let proposed = amount(o, "proposedPrice", currency, true)?.unwrap_or(0);
        let unpersonalized = amount(o, "unpersonalizedPrice", currency, false)?;
        let who = match text_field(o, "userId", 200, "subject_invalid")? {
            Some(u) => Some(u),
            None => text_field(o, "anonymousId", 200, "subject_invalid")?,
        };
        let signals = match o.get("signals") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) if items.len() <= MAX_SIGNALS => items
                .iter()
                .map(|s| {
                    let (name, source) = match s {
                        Value::String(n) => (n.as_str(), None),
                        Value::Object(so) => {
                            if let Some(k) = so.keys().find(|k| *k != "name" && *k != "source") {
                                return Err(bad(
                                    "signal_invalid",
                                    format!("unknown signal field `{k}`: expected name, source"),
                                ));
                            }
                            let name = so.get("name").and_then(Value::as_str).unwrap_or("");
                            let source = match so.get("source") {
                                None | Some(Value::Null) => None,
                                Some(Value::String(x)) if x.len() <= 200 => Some(x.clone()),
                                Some(_) => {
                                    return Err(bad(
                                        "signal_invalid",
                                        "a signal's `source` is the field it came from, such as \"traits.age\"",
                                    ));
                                }
                            };
                            (name, source)
                        }
                        _ => {
                            return Err(bad(
                                "signal_invalid",
                                "a signal is a name or {\"name\": …, \"source\": …}",
                            ));
                        }
                    };
                    if normalize_signal(name).is_empty() || name.chars().count() > 64 {
                        return Err(bad("signal_invalid", "a signal's name is 1 to 64 characters"));
                    }
                    Ok(Signal {
                        name: name.trim().to_string(),
                        source,
                    })
                })
                .collect::<AppResult<Vec<_>>>()?,
            Some(_) => {
                return Err(bad(
                    "signal_invalid",
                    format!("`signals` is an array of at most {MAX_SIGNALS} signals"),
                ));
            }
        };
        let discount = match o.get("presentedAsDiscount") {
            None | Some(Value::Null) | Some(Value::Bool(false)) => None,
            Some(Value::Bool(true)) => Some(amount(o, "referencePrice", currency, false)?),
            Some(_) => {
                return Err(bad(
                    "invalid_request",
                    "`presentedAsDiscount` is true or false",
                ));
            }
        };
        if discount.is_none() && o.get("referencePrice").is_some_and(|v| !v.is_null()) {
            return Err(bad(
                "invalid_request",
                "`referencePrice` needs `presentedAsDiscount: true`",
            ));
        }
        Ok(CheckInput {
            product,
            category: text_field(o, "category", 100, "category_invalid")?,
            currency,
            list,
            proposed,
            unpersonalized,
            who,
            segment: text_field(o, "segment", 100, "segment_invalid")?,
            signals,
            discount,
        })
    }

    /// Personal data may have shaped the proposal: a signal the policy classes as personal,
    /// protected, proxy or vulnerability, or a price that differs from the unpersonalized one.
    fn may_be_personal(&self, app: &App, flagged: &BTreeSet<String>) -> bool {
        self.unpersonalized.is_some_and(|u| u != self.proposed)
            || self
                .signals
                .iter()
                .any(|s| app.policy().classify_signal(s, flagged) != SignalClass::Market)
    }
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct DisclosureView {
    pub text: String,
    pub version: String,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct SignalView {
    pub name: String,
    pub class: SignalClass,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct BoundsView {
    pub min: String,
    pub max: String,
}

/// An announced reduction, checked against the prior period's lowest price.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct DiscountView {
    /// The reduction may be announced.
    pub allowed: bool,
    #[serde(rename = "referencePrice")]
    pub reference_price: Option<String>,
    #[serde(rename = "lowestPriorPrice")]
    pub lowest_prior_price: Option<String>,
    /// When the lowest price was observed.
    #[serde(rename = "lowestPriorAt")]
    pub lowest_prior_at: Option<Timestamp>,
    #[serde(rename = "percentOff")]
    pub percent_off: Option<i64>,
    #[serde(rename = "priorDays")]
    pub prior_days: u32,
    pub reasons: Vec<PriceReason>,
}

/// The answer to one check.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct PriceCheckView {
    #[serde(rename = "checkId")]
    pub check_id: String,
    /// Set when the check is a decision about the person (personal data shaped it, or would
    /// have had they allowed it).
    #[serde(rename = "decisionId")]
    pub decision_id: Option<String>,
    pub product: String,
    pub currency: Currency,
    pub verdict: &'static str,
    /// The price to show.
    pub price: String,
    #[serde(rename = "priceMinor")]
    pub price_minor: i64,
    #[serde(rename = "listPrice")]
    pub list_price: String,
    #[serde(rename = "proposedPrice")]
    pub proposed_price: String,
    /// Personal data shaped the price shown; then `disclosure` must be shown with it.
    pub personalized: bool,
    pub disclosure: Option<DisclosureView>,
    pub reasons: Vec<PriceReason>,
    pub signals: Vec<SignalView>,
    pub bounds: BoundsView,
    pub segment: Option<String>,
    pub discount: Option<DiscountView>,
}

/// One result of a batch: what to show and why (bounds and signals are left out; the
/// recorded check has them).
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct BatchItemView {
    #[serde(rename = "checkId")]
    pub check_id: String,
    #[serde(rename = "decisionId", skip_serializing_if = "Option::is_none")]
    pub decision_id: Option<String>,
    pub product: String,
    pub currency: Currency,
    pub verdict: &'static str,
    pub price: String,
    #[serde(rename = "priceMinor")]
    pub price_minor: i64,
    pub personalized: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disclosure: Option<DisclosureView>,
    pub reasons: Vec<PriceReason>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub discount: Option<DiscountView>,
}

impl From<PriceCheckView> for BatchItemView {
    fn from(v: PriceCheckView) -> Self {
        BatchItemView {
            check_id: v.check_id,
            decision_id: v.decision_id,
            product: v.product,
            currency: v.currency,
            verdict: v.verdict,
            price: v.price,
            price_minor: v.price_minor,
            personalized: v.personalized,
            disclosure: v.disclosure,
            reasons: v.reasons,
            discount: v.discount,
        }
    }
}

/// The answer to a batch.
#[derive(Clone, Debug, Serialize)]
pub struct BatchView {
    pub results: Vec<BatchItemView>,
    pub allowed: usize,
    pub adjusted: usize,
    pub refused: usize,
}

/// The explanation of an anonymous check beside its columns.
#[derive(Serialize)]
struct CheckDetail<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    category: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    unpersonalized: Option<String>,
    signals: Vec<(&'a str, SignalClass)>,
    reasons: &'a [PriceReason],
    #[serde(skip_serializing_if = "Option::is_none")]
    discount: Option<&'a DiscountView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    batch: Option<&'a str>,
}

/// Segment pins by tenant and key.
type PinMap = HashMap<(TenantId, PinKey), i64>;

/// Flagged proxy names of a tenant and when they were read.
type Flagged = (Instant, Arc<BTreeSet<String>>);
/// (tenant, product, currency) of a price shown.
type ShownKey = (TenantId, String, &'static str);

/// Per-process pricing state: the check writer, flagged proxies, pins and last shown prices.
#[derive(Default)]
pub(crate) struct PricingState {
    queue: OnceLock<tokio::sync::mpsc::Sender<CheckJob>>,
    flagged: RwLock<HashMap<TenantId, Flagged>>,
    /// Segment pins of this process, shared with the check writer (which adopts the stored
    /// pin when another process pinned first).
    pins: Arc<Mutex<PinMap>>,
    /// The last price shown per product and when it entered the history.
    shown: Mutex<HashMap<ShownKey, (i64, i64)>>,
}

/// What checks write: anonymous rows, history rows, pins, audit entries.
#[derive(Default)]
struct Rows {
    checks: Vec<CheckRow>,
    history: Vec<PriceRow>,
    pins: Vec<(PinKey, i64)>,
    audit: Vec<AuditDraft>,
}

impl Rows {
    fn extend(&mut self, other: Rows) {
        self.checks.extend(other.checks);
        self.history.extend(other.history);
        self.pins.extend(other.pins);
        self.audit.extend(other.audit);
    }

    /// The write of these rows as one log entry of `kind`.
    fn into_write(self, id: String, kind: &str) -> CheckWrite {
        let created_at = self
            .checks
            .iter()
            .map(|c| c.created_at)
            .max()
            .unwrap_or(Timestamp(0));
        CheckWrite {
            log: (!self.checks.is_empty()).then(|| CheckLog {
                id,
                kind: kind.to_string(),
                created_at,
                checks: self.checks,
            }),
            history: self.history,
            pins: self.pins,
            audit: self.audit,
        }
    }
}

struct CheckJob {
    tenant: TenantId,
    rows: Rows,
    done: Option<tokio::sync::oneshot::Sender<()>>,
}

/// What a check needs besides its input: the flagged proxies, the person's grant if asked,
/// the segment's pin and the prior period's prices.
struct Context {
    flagged: Arc<BTreeSet<String>>,
    /// The person, if named and found, and the pricing purpose's grant for them.
    subject: Option<(Option<candor_store::SubjectRow>, Result<Grant, Denial>)>,
    pin: Option<i64>,
    prior: Option<PricePoint>,
}

/// The outcome of one check before it is recorded.
struct Checked {
    view: PriceCheckView,
    outcome: candor_policy::PriceOutcome,
    /// The person, when the check is a decision about them.
    decided: Option<(candor_store::SubjectRow, String)>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

impl App {
    fn pricing_state(&self) -> &PricingState {
        &self.inner.pricing
    }

    /// Signal names flagged as proxies of a protected attribute: by the tenant's proxy
    /// audits of pricing signals, and features flagged by the active lead model's latest
    /// validation audit. Read again every [`PROXY_TTL`].
    pub(crate) async fn flagged_proxies(
        &self,
        tenant: TenantId,
    ) -> AppResult<Arc<BTreeSet<String>>> {
        if let Ok(cache) = self.pricing_state().flagged.read()
            && let Some((at, set)) = cache.get(&tenant)
            && at.elapsed() < PROXY_TTL
        {
            return Ok(set.clone());
        }
        let mut set: BTreeSet<String> = self
            .store()
            .price_proxies(tenant)
            .await?
            .into_iter()
            .filter(|p| p.flagged)
            .map(|p| normalize_signal(&p.signal))
            .collect();
        if let Some(limit) = self.policy().fairness().max_proxy_cramers_v
            && let Some(model) = self.store().active_model(tenant, crate::LEAD_MODEL).await?
            && let Some(audit) = self
                .store()
                .model_audits(tenant, model.version, Some("validation"), 1)
                .await?
                .into_iter()
                .next()
        {
            for p in audit.report["report"]["proxies"]
                .as_array()
                .into_iter()
                .flatten()
            {
                if p["cramers_v"].as_f64().is_some_and(|v| v > limit)
                    && let Some(f) = p["feature"].as_str()
                {
                    set.insert(normalize_signal(f));
                }
            }
        }
        let set = Arc::new(set);
        if let Ok(mut cache) = self.pricing_state().flagged.write() {
            cache.insert(tenant, (Instant::now(), set.clone()));
        }
        Ok(set)
    }

    /// Forgets the cached proxies of a tenant (after a proxy audit in this process).
    pub(crate) fn forget_flagged(&self, tenant: TenantId) {
        if let Ok(mut cache) = self.pricing_state().flagged.write() {
            cache.remove(&tenant);
        }
    }

    fn pin_key(&self, input: &CheckInput, now: Timestamp) -> Option<PinKey> {
        let window = self.policy().pricing().segment_window_ms;
        input.segment.as_ref().map(|segment| PinKey {
            product: input.product.clone(),
            currency: input.currency.code().to_string(),
            segment: segment.clone(),
            list_price: input.list,
            window_start: Timestamp(now.0 - now.0.rem_euclid(window)),
        })
    }

    async fn cached_pin(&self, tenant: TenantId, key: &PinKey) -> AppResult<Option<i64>> {
        if let Some(p) = lock(&self.pricing_state().pins).get(&(tenant, key.clone())) {
            return Ok(Some(*p));
        }
        let pinned = self.store().pin(tenant, key).await?;
        if let Some(p) = pinned {
            self.remember_pin(tenant, key, p);
        }
        Ok(pinned)
    }

    fn remember_pin(&self, tenant: TenantId, key: &PinKey, price: i64) {
        let mut pins = lock(&self.pricing_state().pins);
        if pins.len() > 200_000 {
            // Windows that ended are never asked for again.
            let now = self.clock().now().0;
            let window = self.policy().pricing().segment_window_ms;
            pins.retain(|(_, k), _| k.window_start.0 + window > now);
        }
        pins.insert((tenant, key.clone()), price);
    }

    /// Takes the segment's pin for `price` unless one is taken; returns the pinned price and,
    /// on SQLite, the pin the check writer must store. SQLite serves one process: the pin is
    /// taken in memory (first check wins) and stored with the check. PostgreSQL may serve
    /// several nodes: the pin is claimed in the database before the answer.
    async fn take_pin(
        &self,
        tenant: TenantId,
        key: &PinKey,
        price: i64,
        now: Timestamp,
    ) -> AppResult<(i64, Option<(PinKey, i64)>)> {
        if self.store().backend_name() == "sqlite" {
            let mut pins = lock(&self.pricing_state().pins);
            let p = *pins.entry((tenant, key.clone())).or_insert(price);
            return Ok((p, Some((key.clone(), p))));
        }
        let p = self.store().claim_pin(tenant, key, price, now).await?;
        self.remember_pin(tenant, key, p);
        Ok((p, None))
    }

    /// The person a check names and the pricing purpose's grant for them. A person Candor
    /// does not know, or who was erased, has no grant.
    async fn pricing_grant(
        &self,
        tenant: TenantId,
        who: &str,
    ) -> (Option<candor_store::SubjectRow>, Result<Grant, Denial>) {
        let purpose_name = &self.policy().pricing().purpose;
        let deny = |code: &'static str, reason: &str| Denial {
            purpose: purpose_name.clone(),
            code,
            reason: reason.to_string(),
        };
        let Some(purpose) = self.policy().parse_purpose(purpose_name) else {
            return (
                None,
                Err(deny(
                    "unknown_purpose",
                    "the policy does not define the pricing purpose",
                )),
            );
        };
        match self.resolve_subject(tenant, who).await {
            Ok(s) => {
                let g = self.grant(tenant, s.id, &purpose).await;
                (Some(s), g)
            }
            Err(e) if e.code == "subject_erased" => {
                (None, Err(deny("erased", "the person's data was erased")))
            }
            Err(e) if e.kind == ErrorKind::NotFound => (
                None,
                Err(deny(
                    "unknown_subject",
                    "Candor holds no consent of this person",
                )),
            ),
            Err(e) => {
                tracing::error!(error = %e.message, "pricing grant unreadable; denying");
                (
                    None,
                    Err(deny(
                        "error",
                        "consent could not be checked; access is denied",
                    )),
                )
            }
        }
    }

    /// Runs the rules for one input in its context (no I/O).
    fn evaluate(&self, input: &CheckInput, ctx: &Context) -> Checked {
        let pricing = self.policy().pricing();
        let c = input.currency;
        let subject = ctx.subject.as_ref().map(|(_, g)| match g {
            Ok(_) => Ok(()),
            Err(d) => Err(d),
        });
        let outcome = self.policy().check_price(&PriceProposal {
            currency: c,
            category: input.category.as_deref(),
            list: input.list,
            proposed: input.proposed,
            unpersonalized: input.unpersonalized,
            signals: &input.signals,
            subject,
            segment_price: ctx.pin,
            flagged_proxies: &ctx.flagged,
        });
        let discount = input.discount.map(|claimed| {
            check_discount(
                c,
                outcome.price,
                ctx.prior.map(|p| p.price),
                claimed,
                pricing.prior_price_days,
            )
        });
        let decided = ctx.subject.as_ref().and_then(|(s, _)| {
            s.clone()
                .filter(|_| input.may_be_personal(self, &ctx.flagged))
        });
        let check_id = EventId::new().to_string();
        let view = PriceCheckView {
            decision_id: decided.as_ref().map(|_| check_id.clone()),
            check_id: check_id.clone(),
            product: input.product.clone(),
            currency: c,
            verdict: outcome.verdict.as_str(),
            price: c.format(outcome.price),
            price_minor: outcome.price,
            list_price: c.format(input.list),
            proposed_price: c.format(input.proposed),
            personalized: outcome.personalized,
            disclosure: outcome.disclosure.as_ref().map(|text| DisclosureView {
                text: text.clone(),
                version: pricing.disclosure_version.clone(),
            }),
            reasons: outcome.reasons.clone(),
            signals: outcome
                .signals
                .iter()
                .map(|(name, class)| SignalView {
                    name: name.clone(),
                    class: *class,
                })
                .collect(),
            bounds: BoundsView {
                min: c.format(outcome.bounds.0),
                max: c.format(outcome.bounds.1),
            },
            segment: input.segment.clone(),
            discount: discount.as_ref().map(|d| DiscountView {
                allowed: d.allowed,
                reference_price: d.reference.map(|x| c.format(x)),
                lowest_prior_price: ctx.prior.map(|p| c.format(p.price)),
                lowest_prior_at: ctx.prior.map(|p| Timestamp(p.at)),
                percent_off: d.percent_off,
                prior_days: pricing.prior_price_days,
                reasons: d.reasons.clone(),
            }),
        };
        Checked {
            view,
            outcome,
            decided: decided.map(|s| (s, check_id)),
        }
    }

    /// The prior period's lowest price for each (product, currency) presented as a discount.
    async fn priors(
        &self,
        tenant: TenantId,
        inputs: &[&CheckInput],
        now: Timestamp,
    ) -> AppResult<HashMap<(String, String), PricePoint>> {
        let mut keys: Vec<(String, String)> = inputs
            .iter()
            .filter(|i| i.discount.is_some())
            .map(|i| (i.product.clone(), i.currency.code().to_string()))
            .collect();
        keys.sort();
        keys.dedup();
        if keys.is_empty() {
            return Ok(HashMap::new());
        }
        let days = self.policy().pricing().prior_price_days;
        let got = self
            .store()
            .prior_prices(tenant, &keys, now.minus_days(days), now)
            .await?;
        let point = |p: candor_store::PricePointRow| PricePoint {
            at: p.at.0,
            price: p.price,
        };
        Ok(got
            .into_iter()
            .filter_map(|(k, p)| {
                let window: Vec<PricePoint> = p.lowest_in_window.map(point).into_iter().collect();
                prior_lowest(&window, p.before_window.map(point)).map(|low| (k, low))
            })
            .collect())
    }

    /// Checks one proposed price (server key). See the module.
    pub async fn check_price(
        &self,
        principal: &Principal,
        body: &Value,
    ) -> AppResult<PriceCheckView> {
        principal.require(Scope::Server)?;
        let input = CheckInput::from_json(body)?;
        let tenant = principal.tenant;
        let now = self.clock().now();
        let flagged = self.flagged_proxies(tenant).await?;
        let subject = match &input.who {
            Some(who) if input.may_be_personal(self, &flagged) => {
                Some(self.pricing_grant(tenant, who).await)
            }
            _ => None,
        };
        let pin_key = self.pin_key(&input, now);
        let pin = match &pin_key {
            Some(k) => self.cached_pin(tenant, k).await?,
            None => None,
        };
        let prior = self
            .priors(tenant, &[&input], now)
            .await?
            .remove(&(input.product.clone(), input.currency.code().to_string()));
        let mut ctx = Context {
            flagged,
            subject,
            pin,
            prior,
        };
        let mut checked = self.evaluate(&input, &ctx);
        // The first price shown in a segment's window becomes its price; if another check
        // pinned one first, this one follows it. SQLite serves one process: the pin is taken
        // here and stored by the check writer. PostgreSQL may serve several: the pin is
        // claimed in the database before the answer.
        let mut new_pin = None;
        if let Some(k) = &pin_key
            && ctx.pin.is_none()
            && checked.outcome.segment_bound
        {
            let (pinned, persist) = self.take_pin(tenant, k, checked.outcome.price, now).await?;
            new_pin = persist;
            if pinned != checked.outcome.price {
                ctx.pin = Some(pinned);
                checked = self.evaluate(&input, &ctx);
            }
        }
        let (mut rows, decision) = self
            .records(tenant, &principal.actor(), &input, &checked, now, None)
            .await?;
        rows.pins.extend(new_pin);
        if let Some((row, draft)) = decision {
            self.record_decision_soon(tenant, row, draft).await?;
        }
        if !rows.checks.is_empty() || !rows.audit.is_empty() || !rows.pins.is_empty() {
            self.queue_checks(tenant, rows).await?;
        }
        self.metrics()
            .price_check(checked.view.verdict, checked.view.personalized);
        Ok(checked.view)
    }

    /// Checks up to [`MAX_BATCH`] prices (catalogue-wide repricing). Every item is validated
    /// first: one invalid item refuses the batch and nothing is recorded. Recorded before the
    /// answer.
    pub async fn check_prices(&self, principal: &Principal, body: &Value) -> AppResult<BatchView> {
        principal.require(Scope::Server)?;
        let items = match body.get("checks") {
            Some(Value::Array(a)) if !a.is_empty() && a.len() <= MAX_BATCH => a,
            _ => {
                return Err(bad(
                    "batch_size",
                    format!("`checks` is an array of 1 to {MAX_BATCH} price checks"),
                ));
            }
        };
        if let Some(Value::Object(o)) = Some(body)
            && let Some(k) = o.keys().find(|k| *k != "checks")
        {
            return Err(bad(
                "invalid_request",
                format!("unknown field `{k}`: a batch is {{\"checks\": [...]}}"),
            ));
        }
        let inputs = items
            .iter()
            .enumerate()
            .map(|(i, v)| {
                CheckInput::from_json(v).map_err(|mut e| {
                    e.message = format!("check {i}: {}", e.message);
                    e
                })
            })
            .collect::<AppResult<Vec<_>>>()?;
        self.check_batch(principal.tenant, &principal.actor(), &inputs)
            .await
    }

    /// Checks validated inputs as one batch, recorded before it returns (the CLI's
    /// `candor pricing check` and [`App::check_prices`]).
    pub async fn check_batch(
        &self,
        tenant: TenantId,
        actor: &str,
        inputs: &[CheckInput],
    ) -> AppResult<BatchView> {
        if inputs.is_empty() || inputs.len() > MAX_BATCH {
            return Err(bad(
                "batch_size",
                format!("a batch has 1 to {MAX_BATCH} price checks"),
            ));
        }
        let actor = actor.to_string();
        let now = self.clock().now();
        let flagged = self.flagged_proxies(tenant).await?;
        let refs: Vec<&CheckInput> = inputs.iter().collect();
        let priors = self.priors(tenant, &refs, now).await?;
        let batch_id = EventId::new().to_string();
        let mut grants: HashMap<String, (Option<candor_store::SubjectRow>, Result<Grant, Denial>)> =
            HashMap::new();
        let mut rows = Rows::default();
        let mut decisions = Vec::new();
        let mut results = Vec::with_capacity(inputs.len());
        for input in inputs {
            let subject = match &input.who {
                Some(who) if input.may_be_personal(self, &flagged) => {
                    if !grants.contains_key(who) {
                        let g = self.pricing_grant(tenant, who).await;
                        grants.insert(who.clone(), g);
                    }
                    grants.get(who).cloned()
                }
                _ => None,
            };
            let pin_key = self.pin_key(input, now);
            let pin = match &pin_key {
                Some(k) => self.cached_pin(tenant, k).await?,
                None => None,
            };
            let mut ctx = Context {
                flagged: flagged.clone(),
                subject,
                pin,
                prior: priors
                    .get(&(input.product.clone(), input.currency.code().to_string()))
                    .copied(),
            };
            let mut checked = self.evaluate(input, &ctx);
            if let Some(k) = &pin_key
                && ctx.pin.is_none()
                && checked.outcome.segment_bound
            {
                let (pinned, persist) =
                    self.take_pin(tenant, k, checked.outcome.price, now).await?;
                rows.pins.extend(persist);
                if pinned != checked.outcome.price {
                    ctx.pin = Some(pinned);
                    checked = self.evaluate(input, &ctx);
                }
            }
            let (r, d) = self
                .records(tenant, &actor, input, &checked, now, Some(&batch_id))
                .await?;
            rows.extend(r);
            decisions.extend(d);
            results.push(BatchItemView::from(checked.view));
        }
        let count = |v: &str| results.iter().filter(|r| r.verdict == v).count();
        let (allowed, adjusted, refused) = (count("allow"), count("adjust"), count("refuse"));
        rows.audit.push(AuditDraft {
            tenant: Some(tenant),
            actor: actor.clone(),
            action: "prices.batch_checked".into(),
            target: Some(format!("batch:{batch_id}")),
            details: json!({
                "checks": results.len(),
                "allowed": allowed,
                "adjusted": adjusted,
                "refused": refused,
                "decisions": decisions.len(),
            }),
        });
        if !decisions.is_empty() {
            let (decided, drafts): (Vec<_>, Vec<_>) = decisions.into_iter().unzip();
            self.store()
                .insert_decisions(tenant, &decided, drafts)
                .await?;
        }
        self.store()
            .insert_checks(tenant, rows.into_write(batch_id, "batch"))
            .await?;
        let personal = results.iter().filter(|r| r.personalized).count() as u64;
        self.metrics().price_checks(&[
            ("allow", false, allowed as u64),
            ("adjust", false, adjusted as u64),
            ("refuse", false, refused as u64),
            ("allow", true, personal),
        ]);
        Ok(BatchView {
            results,
            allowed,
            adjusted,
            refused,
        })
    }

    /// What one check writes: an anonymous row and a history row when its price changed, or a
    /// sealed decision about the person; an audit entry when a signal was refused outright.
    async fn records(
        &self,
        tenant: TenantId,
        actor: &str,
        input: &CheckInput,
        checked: &Checked,
        now: Timestamp,
        batch: Option<&str>,
    ) -> AppResult<(Rows, Option<(DecisionRow, AuditDraft)>)> {
        let view = &checked.view;
        let mut audit = Vec::new();
        let refused_signals: Vec<&SignalView> = view
            .signals
            .iter()
            .filter(|s| {
                matches!(
                    s.class,
                    SignalClass::Protected | SignalClass::Proxy | SignalClass::Vulnerability
                )
            })
            .collect();
        if !refused_signals.is_empty() {
            audit.push(AuditDraft {
                tenant: Some(tenant),
                actor: actor.to_string(),
                action: "price.refused".into(),
                target: Some(format!("product:{}", input.product)),
                details: json!({
                    "check": view.check_id,
                    "signals": refused_signals,
                    "reasons": view.reasons.iter().map(|r| r.code).collect::<Vec<_>>(),
                }),
            });
        }
        if let Some((s, decision_id)) = &checked.decided {
            let Some(wrapped) = &s.wrapped_key else {
                return Ok((
                    Rows {
                        audit,
                        ..Rows::default()
                    },
                    None,
                ));
            };
            let key = self
                .tenant_key(tenant)
                .await?
                .unwrap_data_key(s.id, wrapped)?;
            let explanation = json!({
                "kind": PRICE_DECISION,
                "product": input.product,
                "category": input.category,
                "currency": input.currency.code(),
                "list_price": view.list_price,
                "proposed_price": view.proposed_price,
                "price": view.price,
                "verdict": view.verdict,
                "personalized": view.personalized,
                "disclosure": view.disclosure,
                "reasons": view.reasons,
                "signals": view.signals,
                "segment": input.segment,
                "discount": view.discount,
                "batch": batch,
            });
            let bytes =
                serde_json::to_vec(&explanation).map_err(|e| AppError::internal("pricing", &e))?;
            let digest = candor_crypto::sha256_hex(
                &serde_json::to_vec(&json!({
                    "product": input.product, "currency": input.currency.code(),
                    "list": input.list, "proposed": input.proposed,
                    "unpersonalized": input.unpersonalized,
                    "signals": input.signals.iter().map(|s| (&s.name, &s.source)).collect::<Vec<_>>(),
                }))
                .map_err(|e| AppError::internal("pricing", &e))?,
            );
            let row = DecisionRow {
                id: decision_id.clone(),
                subject: s.id,
                purpose: self.policy().pricing().purpose.clone(),
                kind: PRICE_DECISION.into(),
                model_version: None,
                inputs_digest: digest,
                sealed: key.seal(&format!("decision:{decision_id}"), &bytes)?,
                created_at: now,
            };
            let draft = AuditDraft {
                tenant: Some(tenant),
                actor: actor.to_string(),
                action: "decision.recorded".into(),
                target: Some(s.id.to_string()),
                details: json!({
                    "decision": decision_id,
                    "kind": PRICE_DECISION,
                    "purpose": self.policy().pricing().purpose,
                    "verdict": view.verdict,
                    "personalized": view.personalized,
                }),
            };
            return Ok((
                Rows {
                    audit,
                    ..Rows::default()
                },
                Some((row, draft)),
            ));
        }
        let mut history = Vec::new();
        if !checked.outcome.personalized {
            let code = input.currency.code();
            let mut shown = lock(&self.pricing_state().shown);
            let k = (tenant, input.product.clone(), code);
            let fresh = shown.get(&k).is_none_or(|(p, at)| {
                *p != checked.outcome.price || now.0 - at >= HISTORY_REFRESH_MS
            });
            if fresh {
                if shown.len() > 1_000_000 {
                    shown.clear();
                }
                shown.insert(k, (checked.outcome.price, now.0));
                history.push(PriceRow {
                    id: view.check_id.clone(),
                    kind: "check".into(),
                    product: input.product.clone(),
                    currency: code.to_string(),
                    price: checked.outcome.price,
                    at: now,
                    quantity: None,
                    country: None,
                    segment: input.segment.clone(),
                    order_ref: None,
                    cancelled_at: None,
                });
            }
        }
        // The columns hold product, prices, verdict and segment; the detail the rest.
        let detail = serde_json::to_string(&CheckDetail {
            category: input.category.as_deref(),
            unpersonalized: input.unpersonalized.map(|u| input.currency.format(u)),
            signals: view
                .signals
                .iter()
                .map(|s| (s.name.as_str(), s.class))
                .collect(),
            reasons: &view.reasons,
            discount: view.discount.as_ref(),
            batch,
        })
        .map_err(|e| AppError::internal("pricing", &e))?;
        let check = CheckRow {
            id: view.check_id.clone(),
            product: input.product.clone(),
            currency: input.currency.code().to_string(),
            list_price: input.list,
            proposed: input.proposed,
            price: checked.outcome.price,
            verdict: view.verdict.to_string(),
            segment: input.segment.clone(),
            detail,
            created_at: now,
        };
        Ok((
            Rows {
                checks: vec![check],
                history,
                pins: Vec::new(),
                audit,
            },
            None,
        ))
    }

    fn check_queue(&self) -> &tokio::sync::mpsc::Sender<CheckJob> {
        self.pricing_state().queue.get_or_init(|| {
            let (tx, rx) = tokio::sync::mpsc::channel(8192);
            tokio::spawn(check_batches(
                self.store().clone(),
                self.pricing_state().pins.clone(),
                rx,
            ));
            tx
        })
    }

    async fn queue_checks(&self, tenant: TenantId, rows: Rows) -> AppResult<()> {
        self.check_queue()
            .send(CheckJob {
                tenant,
                rows,
                done: None,
            })
            .await
            .map_err(|_| AppError::internal("pricing", &"the check writer stopped"))
    }

    /// Waits until every check queued before the call is committed.
    pub async fn flush_checks(&self) -> AppResult<()> {
        let Some(tx) = self.pricing_state().queue.get() else {
            return Ok(());
        };
        let (done, wait) = tokio::sync::oneshot::channel();
        tx.send(CheckJob {
            tenant: TenantId(uuid::Uuid::nil()),
            rows: Rows::default(),
            done: Some(done),
        })
        .await
        .map_err(|_| AppError::internal("pricing", &"the check writer stopped"))?;
        wait.await
            .map_err(|_| AppError::internal("pricing", &"the check writer stopped"))
    }

    /// Recent anonymous checks with their explanations (admin), newest first.
    pub async fn price_checks(
        &self,
        principal: &Principal,
        product: Option<&str>,
        limit: u32,
    ) -> AppResult<Vec<CheckRow>> {
        principal.require(Scope::Admin)?;
        self.flush_checks().await?;
        Ok(self
            .store()
            .price_checks(principal.tenant, product, limit.clamp(1, 1000))
            .await?)
    }

    /// A product's price history (server key) and the lowest price of the prior period now.
    pub async fn price_history_view(
        &self,
        principal: &Principal,
        product: &str,
        currency: &str,
        days: u32,
    ) -> AppResult<Value> {
        principal.require(Scope::Server)?;
        let c = Currency::parse(currency).map_err(|e| bad("currency_invalid", e.to_string()))?;
        if !(1..=3650).contains(&days) {
            return Err(bad("days_invalid", "`days` is from 1 to 3650"));
        }
        self.flush_checks().await?;
        let now = self.clock().now();
        let rows = self
            .store()
            .price_history(
                principal.tenant,
                product,
                Some(c.code()),
                now.minus_days(days),
                Timestamp(now.0 + 1),
                10_000,
            )
            .await?;
        let prior_days = self.policy().pricing().prior_price_days;
        let input = CheckInput {
            product: product.to_string(),
            category: None,
            currency: c,
            list: 1,
            proposed: 1,
            unpersonalized: None,
            who: None,
            segment: None,
            signals: Vec::new(),
            discount: Some(None),
        };
        let prior = self
            .priors(principal.tenant, &[&input], now)
            .await?
            .remove(&(product.to_string(), c.code().to_string()));
        Ok(json!({
            "product": product,
            "currency": c.code(),
            "history": rows.iter().map(|r| json!({
                "id": r.id,
                "kind": r.kind,
                "price": c.format(r.price),
                "priceMinor": r.price,
                "at": r.at,
                "quantity": r.quantity,
                "country": r.country,
                "segment": r.segment,
                "cancelledAt": r.cancelled_at,
            })).collect::<Vec<_>>(),
            "lowestPrior": prior.map(|p| json!({
                "price": c.format(p.price),
                "priceMinor": p.price,
                "at": Timestamp(p.at),
                "days": prior_days,
            })),
        }))
    }

    /// Imports price history (server key): `{"prices": [{product, currency, price, at,
    /// orderId?, quantity?, country?, id?}], "cancellations": [{orderId, at}]}`. Rows with
    /// an order id are order lines (a later cancellation removes them); others are list
    /// prices in effect from `at`. Replaying the same rows changes nothing.
    pub async fn import_prices(&self, principal: &Principal, body: &Value) -> AppResult<Value> {
        principal.require(Scope::Server)?;
        let tenant = principal.tenant;
        let tk = self.tenant_key(tenant).await?;
        let now = self.clock().now();
        let prices = match body.get("prices") {
            None | Some(Value::Null) => &Vec::new(),
            Some(Value::Array(a)) if a.len() <= 100_000 => a,
            Some(_) => {
                return Err(bad(
                    "batch_size",
                    "`prices` is an array of at most 100000 prices",
                ));
            }
        };
        let cancels_in = match body.get("cancellations") {
            None | Some(Value::Null) => &Vec::new(),
            Some(Value::Array(a)) if a.len() <= 100_000 => a,
            Some(_) => {
                return Err(bad(
                    "batch_size",
                    "`cancellations` is an array of at most 100000 orders",
                ));
            }
        };
        let at_of = |o: &Map<String, Value>, i: usize| -> AppResult<Timestamp> {
            let t = o
                .get("at")
                .and_then(Value::as_str)
                .and_then(Timestamp::parse_rfc3339)
                .ok_or_else(|| {
                    bad(
                        "invalid_time",
                        format!("item {i}: `at` is an RFC 3339 time"),
                    )
                })?;
            if t > now {
                return Err(bad(
                    "invalid_time",
                    format!("item {i}: `at` is in the future"),
                ));
            }
            Ok(t)
        };
        let mut rows = Vec::with_capacity(prices.len());
        for (i, p) in prices.iter().enumerate() {
            let Value::Object(o) = p else {
                return Err(bad("not_an_object", format!("price {i} is not an object")));
            };
            let product = text_field(o, "product", 200, "product_invalid")?.ok_or_else(|| {
                bad(
                    "product_invalid",
                    format!("price {i}: `product` is required"),
                )
            })?;
            let c = o
                .get("currency")
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    bad(
                        "currency_invalid",
                        format!("price {i}: `currency` is required"),
                    )
                })
                .and_then(|s| {
                    Currency::parse(s)
                        .map_err(|e| bad("currency_invalid", format!("price {i}: {e}")))
                })?;
            let price = amount(o, "price", c, true)
                .map_err(|mut e| {
                    e.message = format!("price {i}: {}", e.message);
                    e
                })?
                .unwrap_or(0);
            let at = at_of(o, i)?;
            let order = text_field(o, "orderId", 200, "invalid_request")?;
            let quantity = match o.get("quantity") {
                None | Some(Value::Null) => None,
                Some(q) => match q.as_f64() {
                    Some(x) if x > 0.0 && x.is_finite() => Some(x),
                    _ => {
                        return Err(bad(
                            "invalid_request",
                            format!("price {i}: `quantity` is above zero"),
                        ));
                    }
                },
            };
            let order_ref = order
                .as_deref()
                .map(|o| tk.reference_hash("order", o).to_vec());
            let id = match (text_field(o, "id", 200, "invalid_request")?, &order_ref) {
                (Some(id), _) => format!("i:{id}"),
                (None, Some(r)) => format!("o:{}:{product}", hex::encode(&r[..12])),
                (None, None) => format!(
                    "i:{}",
                    candor_crypto::sha256_hex(
                        format!("{product}\u{0}{}\u{0}{price}\u{0}{}", c.code(), at.0).as_bytes()
                    )
                ),
            };
            rows.push(PriceRow {
                id,
                kind: if order_ref.is_some() {
                    "order"
                } else {
                    "import"
                }
                .into(),
                product,
                currency: c.code().to_string(),
                price,
                at,
                quantity,
                country: text_field(o, "country", 100, "invalid_request")?,
                segment: None,
                order_ref,
                cancelled_at: None,
            });
        }
        let mut cancels = Vec::with_capacity(cancels_in.len());
        for (i, c) in cancels_in.iter().enumerate() {
            let Value::Object(o) = c else {
                return Err(bad(
                    "not_an_object",
                    format!("cancellation {i} is not an object"),
                ));
            };
            let order = text_field(o, "orderId", 200, "invalid_request")?.ok_or_else(|| {
                bad(
                    "invalid_request",
                    format!("cancellation {i}: `orderId` is required"),
                )
            })?;
            cancels.push(PriceCancel {
                order_ref: tk.reference_hash("order", &order).to_vec(),
                at: at_of(o, i)?,
            });
        }
        let inserted = self
            .store()
            .insert_prices(
                tenant,
                &rows,
                &cancels,
                vec![AuditDraft {
                    tenant: Some(tenant),
                    actor: principal.actor(),
                    action: "prices.imported".into(),
                    target: None,
                    details: json!({ "prices": rows.len(), "cancellations": cancels.len() }),
                }],
            )
            .await?;
        Ok(json!({
            "received": rows.len(),
            "inserted": inserted,
            "duplicates": rows.len() as u64 - inserted,
            "cancellations": cancels.len(),
        }))
    }
}

/// A price check about a person in plain words, from what it recorded.
pub fn price_why(outcome: &Value) -> String {
    let product = outcome["product"].as_str().unwrap_or("a product");
    let currency = outcome["currency"].as_str().unwrap_or("");
    let price = outcome["price"].as_str().unwrap_or("?");
    let reasons: Vec<&str> = outcome["reasons"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["message"].as_str())
        .collect();
    let mut text = if outcome["personalized"].as_bool() == Some(true) {
        let used: Vec<&str> = outcome["signals"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|s| s["class"] == "personal")
            .filter_map(|s| s["name"].as_str())
            .collect();
        format!(
            "The price of {product} shown to you ({price} {currency}) was set by an algorithm using your personal data ({}), because you allow it. It stayed within the store's limits around the list price of {} {currency}.",
            if used.is_empty() {
                "how it differs from the general price".to_string()
            } else {
                used.join(", ")
            },
            outcome["list_price"].as_str().unwrap_or("?"),
        )
    } else {
        format!(
            "You were shown the general price of {product}, {price} {currency}: your personal data did not set it."
        )
    };
    if !reasons.is_empty() {
        text.push_str(&format!(" Candor's checks: {}.", reasons.join("; ")));
    }
    text.push_str(" Protected characteristics such as age or gender never set a price. You can contest this decision and a person will review it.");
    text
}

/// Order lines of an `Order Completed` event as price history (without the buyer), and the
/// order an `Order Cancelled` event cancels. `currency` and each product's `price` come from
/// the event (Segment's Ecommerce v2 spec); lines without them are left out.
pub(crate) fn order_prices(
    tk: &TenantKey,
    e: &IncomingEvent,
    message_id: &str,
    at: Timestamp,
) -> (Vec<PriceRow>, Option<PriceCancel>) {
    let order_id = e.properties.get("order_id").and_then(|v| match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    });
    match e.name.as_deref() {
        Some("Order Cancelled") => (
            Vec::new(),
            order_id.map(|o| PriceCancel {
                order_ref: tk.reference_hash("order", &o).to_vec(),
                at,
            }),
        ),
        Some("Order Completed") => {
            let Some(currency) = e
                .properties
                .get("currency")
                .and_then(Value::as_str)
                .and_then(|c| Currency::parse(c).ok())
            else {
                return (Vec::new(), None);
            };
            let order_ref = match &order_id {
                Some(o) => tk.reference_hash("order", o).to_vec(),
                None => tk.reference_hash("message", message_id).to_vec(),
            };
            let country = e
                .context
                .get("location")
                .and_then(|l| l.get("country"))
                .and_then(Value::as_str)
                .map(str::to_string);
            let lines = e
                .properties
                .get("products")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let rows = lines
                .iter()
                .enumerate()
                .filter_map(|(i, l)| {
                    let product =
                        ["product_id", "sku", "id"]
                            .iter()
                            .find_map(|k| match l.get(*k) {
                                Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
                                Some(Value::Number(n)) => Some(n.to_string()),
                                _ => None,
                            })?;
                    let price = currency
                        .parse_rounded(&Currency::amount_text(l.get("price")?)?)
                        .ok()
                        .filter(|p| *p > 0)?;
                    let quantity = l
                        .get("quantity")
                        .and_then(Value::as_f64)
                        .filter(|q| *q > 0.0)
                        .unwrap_or(1.0);
                    Some(PriceRow {
                        id: format!("o:{}:{i}", hex::encode(&order_ref[..12])),
                        kind: "order".into(),
                        product,
                        currency: currency.code().to_string(),
                        price,
                        at,
                        quantity: Some(quantity),
                        country: country.clone(),
                        segment: None,
                        order_ref: Some(order_ref.clone()),
                        cancelled_at: None,
                    })
                })
                .collect();
            (rows, None)
        }
        _ => (Vec::new(), None),
    }
}

/// Writes queued checks in batches: one transaction per tenant and batch.
async fn check_batches(
    store: candor_store::AnyStore,
    pins: Arc<Mutex<PinMap>>,
    mut rx: tokio::sync::mpsc::Receiver<CheckJob>,
) {
    while let Some(first) = rx.recv().await {
        let deadline = tokio::time::Instant::now() + CHECK_LINGER;
        let mut flushing = first.done.is_some();
        let mut jobs = vec![first];
        while jobs.len() < 2048 && !flushing {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(j)) => {
                    flushing = j.done.is_some();
                    jobs.push(j);
                }
                Ok(None) | Err(_) => break,
            }
        }
        let mut by_tenant: HashMap<TenantId, Rows> = HashMap::new();
        let mut flushes = Vec::new();
        for j in jobs {
            if let Some(d) = j.done {
                flushes.push(d);
                continue;
            }
            by_tenant.entry(j.tenant).or_default().extend(j.rows);
        }
        for (tenant, r) in by_tenant {
            let n = r.checks.len();
            match store
                .insert_checks(tenant, r.into_write(EventId::new().to_string(), "checks"))
                .await
            {
                // Another process pinned first: its price is the segment's from now on.
                Ok(stored) => {
                    let mut map = lock(&pins);
                    for (k, p) in stored {
                        map.insert((tenant, k), p);
                    }
                }
                Err(e) => tracing::warn!(error = %e, checks = n, "price checks not recorded"),
            }
        }
        for f in flushes {
            let _ = f.send(());
        }
    }
}
