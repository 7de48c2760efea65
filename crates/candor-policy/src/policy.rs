//! The validated policy and what other crates ask of it.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;
use std::str::FromStr;

use candor_types::{Category, EventKind, Purpose};
use serde::Serialize;

use crate::error::{PolicyError, PolicyErrors};

/// The lawful basis a purpose relies on (GDPR Art. 6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Basis {
    /// The subject's consent, recorded in the consent ledger.
    Consent,
    /// Necessary to perform a contract with the subject (e.g. delivering an order).
    Contract,
    /// The store's legitimate interest; the subject may object.
    LegitimateInterest,
    /// Required by law (e.g. keeping invoices).
    LegalObligation,
}

impl Basis {
    /// The name used in the policy file.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Consent => "consent",
            Self::Contract => "contract",
            Self::LegitimateInterest => "legitimate_interest",
            Self::LegalObligation => "legal_obligation",
        }
    }
}

impl FromStr for Basis {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "consent" => Ok(Self::Consent),
            "contract" => Ok(Self::Contract),
            "legitimate_interest" => Ok(Self::LegitimateInterest),
            "legal_obligation" => Ok(Self::LegalObligation),
            other => Err(format!(
                "unknown basis `{other}`: expected consent, contract, legitimate_interest or legal_obligation"
            )),
        }
    }
}

impl fmt::Display for Basis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a jurisdiction treats consent-based purposes when the subject has said nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Regime {
    /// Nothing is allowed until the subject grants consent (GDPR, ePrivacy).
    OptIn,
    /// Allowed until the subject opts out (CCPA/CPRA), except the jurisdiction's `opt_in_purposes`.
    OptOut,
}

impl Regime {
    /// The name used in the policy file.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OptIn => "opt_in",
            Self::OptOut => "opt_out",
        }
    }
}

impl FromStr for Regime {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "opt_in" => Ok(Self::OptIn),
            "opt_out" => Ok(Self::OptOut),
            other => Err(format!(
                "unknown regime `{other}`: expected opt_in or opt_out"
            )),
        }
    }
}

impl fmt::Display for Regime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `[purposes.<name>]`: why data is used, on which basis, and which categories it may read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PurposeDef {
    pub name: Purpose,
    pub description: String,
    pub basis: Basis,
    /// The data categories this purpose may read; nothing else.
    pub categories: BTreeSet<Category>,
    /// Names in Segment's `context.consent.categoryPreferences` that stand for this purpose.
    pub segment_categories: Vec<String>,
    /// A Global Privacy Control signal (`Sec-GPC: 1`) is an opt-out of this purpose.
    pub gpc_opt_out: bool,
    /// A fairness-audit purpose: the only kind that may read protected categories.
    pub audit: bool,
}

/// `[categories.<name>]`: a kind of data, how long it is kept and how it is stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CategoryDef {
    pub name: Category,
    pub description: String,
    /// Data of this category older than this is deleted by the retention sweep.
    pub retention_days: u32,
    /// Stored only encrypted with the subject's data key.
    pub sealed: bool,
    /// Protected attributes: readable only by `audit = true` purposes, never model features.
    pub protected: bool,
}

/// `[jurisdictions.<name>]`: the consent rules of one legal area.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct JurisdictionDef {
    pub name: String,
    pub description: String,
    pub regime: Regime,
    /// Consent-based purposes that need an explicit grant even under an opt-out regime.
    pub opt_in_purposes: BTreeSet<Purpose>,
}

/// A validated policy file (`candor.toml`). Build it with [`Policy::parse`] or [`Policy::load`].
#[derive(Clone, Debug)]
pub struct Policy {
    pub(crate) source_hash: String,
    pub(crate) default_jurisdiction: String,
    pub(crate) jurisdictions: BTreeMap<String, JurisdictionDef>,
    pub(crate) categories: Vec<CategoryDef>,
    pub(crate) purposes: Vec<PurposeDef>,
    pub(crate) event_default: Category,
    pub(crate) events: BTreeMap<String, Category>,
    /// Exact `[fields]` rules, e.g. `traits.email`.
    pub(crate) fields: BTreeMap<String, Category>,
    /// Wildcard `[fields]` rules keyed by their prefix: `traits.*` is stored as `traits`.
    pub(crate) wildcards: BTreeMap<String, Category>,
    pub(crate) protected_attributes: Vec<String>,
    pub(crate) fairness: FairnessPolicy,
    pub(crate) recommendations: RecsPolicy,
    pub(crate) pricing: crate::pricing::PricingPolicy,
    pub(crate) assistant: crate::assistant::AssistantPolicy,
    pub(crate) smtp: Option<crate::email::SmtpPolicy>,
    pub(crate) webhooks: Vec<crate::email::WebhookPolicy>,
    pub(crate) email: crate::email::EmailPolicy,
    pub(crate) journeys: Vec<crate::email::JourneyDef>,
}

/// `[recommendations]`: product categories that are never personalized (sensitive: what a
/// person buys there can reveal health, pregnancy, religion or sexuality) and categories never
/// recommended at all.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct RecsPolicy {
    pub sensitive_categories: Vec<String>,
    pub exclude_categories: Vec<String>,
}

impl Default for RecsPolicy {
    fn default() -> Self {
        RecsPolicy {
            sensitive_categories: ["health", "baby", "religion", "sexuality", "adult"]
                .map(String::from)
                .to_vec(),
            exclude_categories: Vec::new(),
        }
    }
}

/// `[fairness]`: the limits every model's audit must meet before it may decide about people,
/// and how numeric protected attributes are banded for audits.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct FairnessPolicy {
    /// Lowest acceptable selection-rate ratio (min / max over groups); 0.8 is the four-fifths rule.
    pub min_selection_rate_ratio: Option<f64>,
    pub max_demographic_parity_difference: Option<f64>,
    pub max_equalized_odds_difference: Option<f64>,
    pub max_equal_opportunity_difference: Option<f64>,
    /// Groups with fewer rows are reported as too small, not as numbers.
    pub min_group_size: u64,
    /// Features revealing a protected attribute more than this (Cramér's V) are flagged.
    pub max_proxy_cramers_v: Option<f64>,
    /// Band boundaries for ages (`[30, 45, 60]` gives <30, 30–44, 45–59, 60+).
    pub age_bands: Vec<f64>,
}

impl Default for FairnessPolicy {
    fn default() -> Self {
        FairnessPolicy {
            min_selection_rate_ratio: Some(0.8),
            max_demographic_parity_difference: None,
            max_equalized_odds_difference: Some(0.1),
            max_equal_opportunity_difference: None,
            min_group_size: 30,
            max_proxy_cramers_v: Some(0.3),
            age_bands: vec![30.0, 45.0, 60.0],
        }
    }
}

impl Policy {
    /// Parses and validates policy text. `file_name` only labels the errors.
    pub fn parse(file_name: &str, text: &str) -> Result<Self, PolicyErrors> {
        crate::parse::parse(file_name, text)
    }

    /// Reads and validates a policy file. An unreadable file is one error at 1:1.
    pub fn load(path: &Path) -> Result<Self, PolicyErrors> {
        let file = path.display().to_string();
        match std::fs::read_to_string(path) {
            Ok(text) => Self::parse(&file, &text),
            Err(e) => Err(PolicyErrors(vec![PolicyError {
                file,
                line: 1,
                column: 1,
                message: format!("cannot read the policy file: {e}"),
            }])),
        }
    }

    /// Hex SHA-256 of the policy text, recorded in the audit log when the policy is loaded.
    pub fn source_hash(&self) -> String {
        self.source_hash.clone()
    }

    /// All purposes, in file order.
    pub fn purposes(&self) -> impl Iterator<Item = &PurposeDef> {
        self.purposes.iter()
    }

    /// The definition of a purpose, if the policy defines it.
    pub fn purpose(&self, p: &Purpose) -> Option<&PurposeDef> {
        self.purposes.iter().find(|d| &d.name == p)
    }

    /// `Some` only if `s` is a valid purpose name AND the policy defines it.
    pub fn parse_purpose(&self, s: &str) -> Option<Purpose> {
        let p = s.parse().ok()?;
        self.purpose(&p).map(|d| d.name.clone())
    }

    /// All categories, in file order.
    pub fn categories(&self) -> impl Iterator<Item = &CategoryDef> {
        self.categories.iter()
    }

    /// The definition of a category, if the policy defines it.
    pub fn category(&self, c: &Category) -> Option<&CategoryDef> {
        self.categories.iter().find(|d| &d.name == c)
    }

    /// The jurisdiction applied when a subject's jurisdiction is unknown.
    pub fn default_jurisdiction(&self) -> &str {
        &self.default_jurisdiction
    }

    /// Whether the policy defines jurisdiction `j`.
    pub fn has_jurisdiction(&self, j: &str) -> bool {
        self.jurisdictions.contains_key(j)
    }

    /// The definition of jurisdiction `j`, if the policy defines it.
    pub fn jurisdiction(&self, j: &str) -> Option<&JurisdictionDef> {
        self.jurisdictions.get(j)
    }

    /// Purposes a Segment consent category (`"Analytics"`, ...) stands for; ASCII case-insensitive.
    pub fn purposes_for_segment_category(&self, name: &str) -> Vec<&Purpose> {
        self.purposes
            .iter()
            .filter(|d| {
                d.segment_categories
                    .iter()
                    .any(|s| s.eq_ignore_ascii_case(name))
            })
            .map(|d| &d.name)
            .collect()
    }

    /// Purposes that a Global Privacy Control signal opts out of.
    pub fn gpc_purposes(&self) -> Vec<&Purpose> {
        self.purposes
            .iter()
            .filter(|d| d.gpc_opt_out)
            .map(|d| &d.name)
            .collect()
    }

    /// The category of an event: `[events].identify` for identify calls, `[events].page` for
    /// page calls, `[events]."<name>"` for track calls; `[events].default` otherwise.
    pub fn event_category(&self, kind: EventKind, name: Option<&str>) -> &Category {
        let key = match kind {
            EventKind::Identify => Some("identify"),
            EventKind::Page => Some("page"),
            EventKind::Track => name,
        };
        key.and_then(|k| self.events.get(k))
            .unwrap_or(&self.event_default)
    }

    /// The category of one field of an event, e.g. `traits.email` or `context.page.url`:
    /// an exact `[fields]` rule, else the nearest wildcard (`context.page.*`, then `context.*`),
    /// else the event's category.
    pub fn field_category<'a>(&'a self, event_category: &'a Category, path: &str) -> &'a Category {
        self.field_rule(path).unwrap_or(event_category)
    }

    /// Whether a field path is a protected attribute: listed in `protected_attributes`, or
    /// mapped by `[fields]` to a protected category.
    pub fn is_protected_path(&self, path: &str) -> bool {
        self.protected_attributes.iter().any(|p| p == path)
            || self
                .field_rule(path)
                .and_then(|c| self.category(c))
                .is_some_and(|c| c.protected)
    }

    /// The `[fairness]` limits (defaults when the section is absent).
    pub fn fairness(&self) -> &FairnessPolicy {
        &self.fairness
    }

    /// `[pricing]`: the price guard (defaults when the section is absent).
    pub fn pricing(&self) -> &crate::pricing::PricingPolicy {
        &self.pricing
    }

    /// `[assistant]`: disclosure, help articles, hand-off, transcript retention, the LLM.
    pub fn assistant(&self) -> &crate::assistant::AssistantPolicy {
        &self.assistant
    }

    /// Checks a proposed price against `[pricing]` with this policy's protected attributes.
    pub fn check_price(
        &self,
        proposal: &crate::pricing::PriceProposal<'_>,
    ) -> crate::pricing::PriceOutcome {
        let paths: Vec<&str> = self.protected_attributes().collect();
        self.pricing
            .check(proposal, &paths, &|p: &str| self.is_protected_path(p))
    }

    /// How `[pricing]` classes one signal, with this policy's protected attributes.
    pub fn classify_signal(
        &self,
        signal: &crate::pricing::Signal,
        flagged: &BTreeSet<String>,
    ) -> crate::pricing::SignalClass {
        let paths: Vec<&str> = self.protected_attributes().collect();
        self.pricing.classify(
            signal,
            &paths,
            &|p: &str| self.is_protected_path(p),
            flagged,
        )
    }

    /// `[smtp]`, if email is configured.
    pub fn smtp(&self) -> Option<&crate::email::SmtpPolicy> {
        self.smtp.as_ref()
    }

    /// `[email]`: frequency cap, quiet hours, public URL.
    pub fn email(&self) -> &crate::email::EmailPolicy {
        &self.email
    }

    /// The configured `[[journeys]]`.
    pub fn journeys(&self) -> &[crate::email::JourneyDef] {
        &self.journeys
    }

    /// `[webhooks.NAME]`, by name.
    pub fn webhook(&self, name: &str) -> Option<&crate::email::WebhookPolicy> {
        self.webhooks.iter().find(|w| w.name == name)
    }

    /// Product categories never personalized (lower case).
    pub fn sensitive_categories(&self) -> impl Iterator<Item = &str> {
        self.recommendations
            .sensitive_categories
            .iter()
            .map(String::as_str)
    }

    /// Product categories never recommended (lower case).
    pub fn excluded_categories(&self) -> impl Iterator<Item = &str> {
        self.recommendations
            .exclude_categories
            .iter()
            .map(String::as_str)
    }

    /// The `protected_attributes` paths, in file order.
    pub fn protected_attributes(&self) -> impl Iterator<Item = &str> {
        self.protected_attributes.iter().map(String::as_str)
    }

    /// The category `[fields]` gives a path, without falling back to the event's category.
    pub(crate) fn field_rule(&self, path: &str) -> Option<&Category> {
        field_rule(&self.fields, &self.wildcards, path)
    }
}

/// Exact rule first, then wildcards from the longest prefix to the shortest.
pub(crate) fn field_rule<'a>(
    fields: &'a BTreeMap<String, Category>,
    wildcards: &'a BTreeMap<String, Category>,
    path: &str,
) -> Option<&'a Category> {
    if let Some(c) = fields.get(path) {
        return Some(c);
    }
    let mut prefix = path;
    while let Some(i) = prefix.rfind('.') {
        prefix = &prefix[..i];
        if let Some(c) = wildcards.get(prefix) {
            return Some(c);
        }
    }
    None
}
