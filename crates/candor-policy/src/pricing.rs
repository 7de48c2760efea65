//! `[pricing]`: the guard every price passes before a customer sees it, and the check itself.
//!
//! Candor does not set prices. A store's pricing engine proposes one, names the signals it
//! used, and [`PricingPolicy::check`] answers: allow, adjust to a bound, or refuse (and show
//! the unpersonalized price instead). The rules, in order:
//!
//! 1. Each signal is classified by name (and by the field it came from): **protected** (a
//!    protected attribute or a name of one), **proxy** (named in `proxy_signals`, or flagged by
//!    proxy detection), **vulnerability** (`vulnerability_signals`: device, battery, a
//!    new-parent or health-related browsing signal), **market** (`market_signals`: demand,
//!    stock, competitors, time) or, deny by default, **personal** (anything else).
//! 2. A protected, proxy or vulnerability signal refuses the proposal.
//! 3. A personal signal refuses it too unless `personal_pricing = true`, the person is named,
//!    and the policy grants the pricing purpose (`profiling` by default) for them: a person
//!    who objected to profiling, withdrew or never gave consent where it is needed, restricted
//!    processing or was erased gets the unpersonalized price.
//! 4. The price to show is kept within the caps around the list price (per category or
//!    overall); an essential category is never priced above its list price.
//! 5. A price not shaped by personal data, in a named segment, is the segment's price for the
//!    window: the first one shown there is pinned, later checks get the same.
//! 6. The disclosure is attached exactly when personal data shaped the price shown.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use candor_types::Currency;

use crate::Denial;

/// The New York Algorithmic Pricing Disclosure Act's wording (General Business Law § 349-a).
pub const NY_DISCLOSURE: &str = "THIS PRICE WAS SET BY AN ALGORITHM USING YOUR PERSONAL DATA";

/// Caps for one product category (`[pricing.categories.NAME]`); unset fields take the
/// overall `[pricing]` values.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CategoryCaps {
    /// Most a price may be above list, in basis points (1000 = 10 %).
    pub max_increase_bp: Option<u32>,
    /// Most a price may be below list, in basis points.
    pub max_decrease_bp: Option<u32>,
    /// Never above the list price (no surge).
    pub essential: bool,
}

/// `[pricing]` in `candor.toml`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PricingPolicy {
    /// Prices shaped by one person's data are refused unless this is true.
    pub personal_pricing: bool,
    /// The purpose a personal-data price needs a grant for (the person's consent).
    pub purpose: String,
    pub max_increase_bp: u32,
    pub max_decrease_bp: u32,
    /// Categories never priced above list (lower case).
    pub essential_categories: BTreeSet<String>,
    /// Per-category caps (keys lower case).
    pub categories: BTreeMap<String, CategoryCaps>,
    /// Signals that describe the market, not a person (normalized names).
    pub market_signals: BTreeSet<String>,
    /// Signals that exploit a person's situation: always refused.
    pub vulnerability_signals: BTreeSet<String>,
    /// Signals known to stand in for a protected attribute: always refused.
    pub proxy_signals: BTreeSet<String>,
    /// Names that mean a protected characteristic wherever they appear in a signal's name
    /// (besides the policy's protected attributes): always refused.
    pub protected_signals: BTreeSet<String>,
    /// The policy's protected attributes as signal names: each path and its last part
    /// (`traits_age`, `age`), filled in when the policy is read.
    pub protected_names: BTreeSet<String>,
    /// Everyone in a segment sees the same price within a window of this length (ms).
    pub segment_window_ms: i64,
    pub disclosure: String,
    pub disclosure_version: String,
    /// The "prior price" period of an announced reduction (EU Omnibus Directive: 30 days).
    pub prior_price_days: u32,
    /// How long price history and anonymous checks are kept.
    pub history_days: u32,
    /// A group paying more than this many times the reference group's price (or less than
    /// its inverse) for the same product in the same period is flagged.
    pub max_dispersion_ratio: f64,
    /// Groups with fewer order lines are reported as too small.
    pub min_group_lines: u32,
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_string()).collect()
}

impl Default for PricingPolicy {
    fn default() -> Self {
        PricingPolicy {
            personal_pricing: false,
            purpose: "profiling".into(),
            max_increase_bp: 1000,
            max_decrease_bp: 5000,
            essential_categories: set(&["baby", "groceries", "health", "medicine", "utilities"]),
            categories: BTreeMap::new(),
            market_signals: set(&[
                "demand",
                "stock_level",
                "inventory",
                "competitor_price",
                "time_of_day",
                "day_of_week",
                "season",
                "weather",
                "cost",
                "clearance",
                "promotion",
            ]),
            vulnerability_signals: set(&[
                "device_type",
                "device_model",
                "operating_system",
                "browser",
                "battery_level",
                "new_parent",
                "pregnancy_browsing",
                "health_browsing",
                "bereavement",
                "debt",
                "urgency",
                "late_night_browsing",
            ]),
            proxy_signals: set(&["postcode", "zip_code", "first_name", "surname", "language"]),
            protected_signals: set(&[
                "age",
                "birthday",
                "birth",
                "gender",
                "sex",
                "marital",
                "race",
                "ethnicity",
                "religion",
                "disability",
                "pregnancy",
                "pregnant",
                "orientation",
                "nationality",
            ]),
            protected_names: BTreeSet::new(),
            segment_window_ms: 3_600_000,
            disclosure: NY_DISCLOSURE.into(),
            disclosure_version: "ny-gbl-349-a".into(),
            prior_price_days: 30,
            history_days: 400,
            max_dispersion_ratio: 1.25,
            min_group_lines: 5,
        }
    }
}

/// A signal name as compared: lower case, `-`, `.` and spaces as `_`, trimmed.
pub fn normalize_signal(name: &str) -> String {
    name.trim()
        .chars()
        .map(|c| match c {
            '-' | ' ' | '.' => '_',
            c => c.to_ascii_lowercase(),
        })
        .collect()
}

/// A signal the store's pricing engine used: its name and, when it says so, the field of the
/// person it was derived from (`traits.age`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signal {
    pub name: String,
    pub source: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SignalClass {
    Market,
    Personal,
    Protected,
    Proxy,
    Vulnerability,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PriceVerdict {
    /// Show the proposed price.
    Allow,
    /// Show the proposed price moved to a bound (cap, essential category, segment price).
    Adjust,
    /// The proposal may not be used: show the unpersonalized price instead.
    Refuse,
}

impl PriceVerdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Adjust => "adjust",
            Self::Refuse => "refuse",
        }
    }
}

/// Why a check came out as it did: a stable code and a sentence.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PriceReason {
    pub code: &'static str,
    pub message: String,
}

/// What the check is given. Prices are minor units of one currency, all positive.
#[derive(Clone, Debug)]
pub struct PriceProposal<'a> {
    /// The currency of every price (it words the reasons).
    pub currency: Currency,
    pub category: Option<&'a str>,
    pub list: i64,
    pub proposed: i64,
    /// What everyone without personalization would be shown, when the engine says so. A
    /// proposal that differs from it was shaped by the person's data.
    pub unpersonalized: Option<i64>,
    pub signals: &'a [Signal],
    /// `None`: nobody named. `Some(Ok)`: the pricing purpose is granted for the person;
    /// `Some(Err)`: it is not, with the policy's reason.
    pub subject: Option<Result<(), &'a Denial>>,
    /// The segment's pinned price for this window, if one is named and pinned.
    pub segment_price: Option<i64>,
    /// Signal names flagged by proxy detection (normalized).
    pub flagged_proxies: &'a BTreeSet<String>,
}

/// The answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PriceOutcome {
    pub verdict: PriceVerdict,
    /// The price to show, in minor units.
    pub price: i64,
    /// Personal data shaped the price shown (then `disclosure` is set).
    pub personalized: bool,
    pub disclosure: Option<String>,
    pub reasons: Vec<PriceReason>,
    pub signals: Vec<(String, SignalClass)>,
    /// The lowest and highest price allowed for the product, in minor units.
    pub bounds: (i64, i64),
    /// The shown price is a segment's (pin it when it is not pinned yet).
    pub segment_bound: bool,
}

impl PricingPolicy {
    /// How the policy sees a signal. `protected_paths` are the policy's protected attributes
    /// (`traits.age`); `is_protected_path` says whether a source field maps to a protected
    /// category.
    pub fn classify(
        &self,
        signal: &Signal,
        protected_paths: &[&str],
        is_protected_path: &dyn Fn(&str) -> bool,
        flagged: &BTreeSet<String>,
    ) -> SignalClass {
        let name = normalize_signal(&signal.name);
        let names_it = |n: &str| {
            self.protected_signals.contains(n)
                || self.protected_names.contains(n)
                || protected_paths.iter().any(|p| {
                    let p = p.rsplit('.').next().unwrap_or(p);
                    p.len() == n.len() && normalize_signal(p) == n
                })
        };
        let protected_name =
            names_it(&name) || name.split('_').any(|t| !t.is_empty() && names_it(t));
        let protected_source = signal.source.as_deref().is_some_and(|s| {
            is_protected_path(s.trim()) || protected_paths.iter().any(|p| *p == s.trim())
        });
        if protected_name || protected_source {
            SignalClass::Protected
        } else if self.proxy_signals.contains(&name) || flagged.contains(&name) {
            SignalClass::Proxy
        } else if self.vulnerability_signals.contains(&name) {
            SignalClass::Vulnerability
        } else if self.market_signals.contains(&name) {
            SignalClass::Market
        } else {
            SignalClass::Personal
        }
    }

    /// The lowest and highest price allowed around `list` for a category, and whether the
    /// category is essential. Bounds round toward the list price, so a cap is never exceeded
    /// by rounding.
    pub fn bounds(&self, category: Option<&str>, list: i64) -> (i64, i64, bool) {
        let caps = category.and_then(|c| self.categories.get(&c.to_lowercase()));
        let essential = caps.is_some_and(|c| c.essential)
            || category.is_some_and(|c| self.essential_categories.contains(&c.to_lowercase()));
        let inc = caps
            .and_then(|c| c.max_increase_bp)
            .unwrap_or(self.max_increase_bp);
        let dec = caps
            .and_then(|c| c.max_decrease_bp)
            .unwrap_or(self.max_decrease_bp);
        let frac = |bp: u32| (i128::from(list) * i128::from(bp) / 10_000) as i64;
        let upper = if essential { list } else { list + frac(inc) };
        let lower = (list - frac(dec)).max(1);
        (lower, upper, essential)
    }

    /// Checks one proposed price (see the module's rules).
    pub fn check(
        &self,
        p: &PriceProposal<'_>,
        protected_paths: &[&str],
        is_protected_path: &dyn Fn(&str) -> bool,
    ) -> PriceOutcome {
        let mut reasons = Vec::new();
        let signals: Vec<(String, SignalClass)> = p
            .signals
            .iter()
            .map(|s| {
                (
                    s.name.clone(),
                    self.classify(s, protected_paths, is_protected_path, p.flagged_proxies),
                )
            })
            .collect();
        let named = |class: SignalClass| -> Vec<&str> {
            signals
                .iter()
                .filter(|(_, c)| *c == class)
                .map(|(n, _)| n.as_str())
                .collect()
        };
        for (class, code, what) in [
            (
                SignalClass::Protected,
                "protected_signal",
                "derived from a protected characteristic",
            ),
            (
                SignalClass::Proxy,
                "proxy_signal",
                "a flagged proxy of a protected characteristic",
            ),
            (
                SignalClass::Vulnerability,
                "vulnerability_signal",
                "a signal of the person's situation that pricing may not exploit",
            ),
        ] {
            let names = named(class);
            if !names.is_empty() {
                reasons.push(PriceReason {
                    code,
                    message: format!(
                        "the price used {} ({what}); prices never depend on it",
                        names.join(", ")
                    ),
                });
            }
        }
        let mut personal: Vec<String> = named(SignalClass::Personal)
            .into_iter()
            .map(str::to_string)
            .collect();
        if personal.is_empty()
            && let Some(u) = p.unpersonalized
            && u != p.proposed
        {
            personal.push("a price that differs from the unpersonalized one".into());
        }
        let mut refused = !reasons.is_empty();
        let mut personalized = false;
        if !refused && !personal.is_empty() {
            let who = personal.join(", ");
            if !self.personal_pricing {
                refused = true;
                reasons.push(PriceReason {
                    code: "personal_pricing_off",
                    message: format!(
                        "the price used personal data ({who}) and the policy does not allow personal-data pricing"
                    ),
                });
            } else {
                match p.subject {
                    None => {
                        refused = true;
                        reasons.push(PriceReason {
                            code: "subject_required",
                            message: format!(
                                "the price used personal data ({who}) without naming the person, so their consent cannot be checked"
                            ),
                        });
                    }
                    Some(Err(d)) => {
                        refused = true;
                        reasons.push(PriceReason {
                            code: "consent_denied",
                            message: format!(
                                "the price used personal data ({who}) and `{}` is not allowed for this person: {}",
                                self.purpose, d.reason
                            ),
                        });
                    }
                    Some(Ok(())) => personalized = true,
                }
            }
        }
        let (lower, upper, essential) = self.bounds(p.category, p.list);
        let fallback = p.unpersonalized.unwrap_or(p.list);
        let mut price = if refused { fallback } else { p.proposed };
        let money = |x: i64| format!("{} {}", p.currency.format(x), p.currency.code());
        if !personalized
            && let Some(pinned) = p.segment_price
            && pinned != price
        {
            reasons.push(PriceReason {
                code: "segment_price",
                message: format!(
                    "everyone in this segment is shown the same price within the window: {}",
                    money(pinned)
                ),
            });
            price = pinned;
        }
        if price > upper {
            reasons.push(if essential {
                PriceReason {
                    code: "essential_no_surge",
                    message: "an essential product is never priced above its list price".into(),
                }
            } else {
                PriceReason {
                    code: "above_cap",
                    message: format!(
                        "the price is capped at {} ({} above list)",
                        money(upper),
                        percent(self.cap_bp(p.category, true))
                    ),
                }
            });
            price = upper;
        } else if price < lower {
            reasons.push(PriceReason {
                code: "below_floor",
                message: format!(
                    "the price may not go below {} ({} below list)",
                    money(lower),
                    percent(self.cap_bp(p.category, false))
                ),
            });
            price = lower;
        }
        let verdict = if refused {
            PriceVerdict::Refuse
        } else if price != p.proposed {
            PriceVerdict::Adjust
        } else {
            PriceVerdict::Allow
        };
        PriceOutcome {
            verdict,
            price,
            personalized,
            disclosure: personalized.then(|| self.disclosure.clone()),
            reasons,
            signals,
            bounds: (lower, upper),
            segment_bound: !personalized,
        }
    }

    fn cap_bp(&self, category: Option<&str>, increase: bool) -> u32 {
        let caps = category.and_then(|c| self.categories.get(&c.to_lowercase()));
        if increase {
            caps.and_then(|c| c.max_increase_bp)
                .unwrap_or(self.max_increase_bp)
        } else {
            caps.and_then(|c| c.max_decrease_bp)
                .unwrap_or(self.max_decrease_bp)
        }
    }
}

fn percent(bp: u32) -> String {
    if bp.is_multiple_of(100) {
        format!("{}%", bp / 100)
    } else {
        format!("{:.2}%", f64::from(bp) / 100.0)
    }
}

/// An announced price reduction against the lowest price of the prior period (EU Omnibus
/// Directive, Art. 6a of Directive 98/6/EC).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DiscountCheck {
    /// The reduction may be announced.
    pub allowed: bool,
    /// The price a reduction must be announced against: the prior period's lowest.
    pub reference: Option<i64>,
    /// Percent off the reference, rounded down to a whole percent (never overstated).
    pub percent_off: Option<i64>,
    pub reasons: Vec<PriceReason>,
}

/// Checks an announced reduction of `price` given the prior period's lowest price and the
/// reference the store meant to show ("was" price).
pub fn check_discount(
    currency: Currency,
    price: i64,
    prior_lowest: Option<i64>,
    claimed_reference: Option<i64>,
    days: u32,
) -> DiscountCheck {
    let money = |x: i64| format!("{} {}", currency.format(x), currency.code());
    let Some(low) = prior_lowest else {
        return DiscountCheck {
            allowed: false,
            reference: None,
            percent_off: None,
            reasons: vec![PriceReason {
                code: "no_prior_price",
                message: format!(
                    "no price of the product is known for the prior {days} days, so a reduction cannot be announced"
                ),
            }],
        };
    };
    let mut reasons = Vec::new();
    if let Some(claimed) = claimed_reference
        && claimed != low
    {
        reasons.push(PriceReason {
            code: "reference_not_prior_lowest",
            message: format!(
                "a reduction is announced against the lowest price of the prior {days} days ({}), not {}",
                money(low),
                money(claimed)
            ),
        });
    }
    if price >= low {
        reasons.push(PriceReason {
            code: "not_a_reduction",
            message: format!(
                "the price is not below the lowest price of the prior {days} days ({})",
                money(low)
            ),
        });
        return DiscountCheck {
            allowed: false,
            reference: Some(low),
            percent_off: None,
            reasons,
        };
    }
    let off = (i128::from(low - price) * 100 / i128::from(low)) as i64;
    DiscountCheck {
        allowed: true,
        reference: Some(low),
        percent_off: Some(off),
        reasons,
    }
}

/// One price in effect from `at`: the history a prior-period lowest is computed from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PricePoint {
    pub at: i64,
    pub price: i64,
}

/// The lowest price in effect during `[at - days, at)`: every price observed in the window
/// and the one in effect when the window opened (the last one before it: a gap without
/// observations keeps the previous price). `None` when nothing was in effect. Returns the
/// price and when it was observed.
pub fn prior_lowest(
    in_window: &[PricePoint],
    before_window: Option<PricePoint>,
) -> Option<PricePoint> {
    in_window
        .iter()
        .copied()
        .chain(before_window)
        .min_by_key(|p| (p.price, std::cmp::Reverse(p.at)))
}
