//! Reads `candor.toml` from a span-preserving TOML tree and validates it, collecting every error.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::str::FromStr;

use candor_types::{Category, NameError, Purpose};
use serde_spanned::Spanned;
use sha2::{Digest, Sha256};
use toml::de::{DeString, DeTable, DeValue};

use crate::assistant::{AssistantPolicy, LlmPolicy};
use crate::email::{
    BUILT_IN_JOURNEYS, EmailPolicy, JourneyDef, JourneyStep, SmtpPolicy, SmtpTls, WebhookPolicy,
    built_in_journey, parse_duration,
};
use crate::error::{PolicyError, PolicyErrors};
use crate::policy::{
    Basis, CategoryDef, FairnessPolicy, JurisdictionDef, Policy, PurposeDef, RecsPolicy, Regime,
    field_rule,
};
use crate::pricing::{CategoryCaps, PricingPolicy};

type Key<'i> = Spanned<DeString<'i>>;
type Val<'i> = Spanned<DeValue<'i>>;
/// A purpose with its `categories` entries and where each is written.
type PurposeEntries = (PurposeDef, Vec<(Category, Range<usize>)>);

const CATEGORY_KEYS: &[&str] = &["description", "retention_days", "sealed", "protected"];
const PURPOSE_KEYS: &[&str] = &[
    "description",
    "basis",
    "categories",
    "segment_categories",
    "gpc_opt_out",
    "audit",
];
const JURISDICTION_KEYS: &[&str] = &["description", "regime", "opt_in_purposes"];
const FIELD_ROOTS: &[&str] = &["traits", "properties", "context"];

pub(crate) fn parse(file: &str, text: &str) -> Result<Policy, PolicyErrors> {
    let mut c = Checker::default();
    let (doc, syntax) = DeTable::parse_recoverable(text);
    if !syntax.is_empty() {
        for e in &syntax {
            c.err(e.span().unwrap_or(0..0), e.message());
        }
        return Err(c.finish(file, text));
    }
    let root = doc.get_ref();

    c.version(root.get("version"));
    let categories = c.categories(root.get("categories"));
    let known_categories: BTreeSet<Category> = categories.iter().map(|d| d.name.clone()).collect();
    let purposes = c.purposes(root.get("purposes"), &known_categories);
    let known_purposes: BTreeSet<Purpose> = purposes.iter().map(|(d, _)| d.name.clone()).collect();
    let jurisdictions = c.jurisdictions(root.get("jurisdictions"), &known_purposes);
    let default_jurisdiction =
        c.default_jurisdiction(root.get("default_jurisdiction"), &jurisdictions);
    let (event_default, events) = c.events(root.get("events"), &known_categories);
    let (fields, wildcards) = c.fields(root.get("fields"), &known_categories);
    let fairness = c.fairness(root.get("fairness"));
    let recommendations = c.recommendations(root.get("recommendations"));
    let pricing = c.pricing(root.get("pricing"), &purposes);
    let assistant = c.assistant(root.get("assistant"), &purposes);
    let smtp = c.smtp(root.get("smtp"));
    let email = c.email(root.get("email"));
    let webhooks = c.webhooks(root.get("webhooks"), &known_purposes);
    let journeys = c.journeys(root.get("journeys"), &webhooks);
    if !journeys.is_empty() && smtp.is_none() {
        c.err(
            root.get("journeys").map_or(0..0, Spanned::span),
            "journeys send email: configure [smtp] (host, port, tls, from, postal_address)",
        );
    }

    // Protected categories: those marked so, and any a protected attribute is mapped to.
    let mut protected: BTreeSet<Category> = categories
        .iter()
        .filter(|d| d.protected)
        .map(|d| d.name.clone())
        .collect();
    let mut protected_attributes = Vec::new();
    if let Some(v) = root.get("protected_attributes") {
        for (path, span) in c.strings(v, "protected_attributes") {
            if !c.field_path(path, span.clone(), false) {
                continue;
            }
            match field_rule(&fields, &wildcards, path) {
                None => c.err(
                    span,
                    format!("protected attribute `{path}` has no category: map it in [fields]"),
                ),
                Some(cat) => {
                    if !categories.iter().any(|d| &d.name == cat && d.protected) {
                        c.err(
                            span,
                            format!(
                                "protected attribute `{path}` maps to category `{cat}`, which is not `protected = true`"
                            ),
                        );
                    }
                    protected.insert(cat.clone());
                }
            }
            protected_attributes.push(path.to_owned());
        }
    }
    for (def, entries) in &purposes {
        if def.audit {
            continue;
        }
        for (cat, span) in entries.iter().filter(|(cat, _)| protected.contains(cat)) {
            c.err(
                span.clone(),
                format!(
                    "purpose `{}` may not read protected category `{cat}`: only purposes with `audit = true` may",
                    def.name
                ),
            );
        }
    }

    let mut pricing = pricing;
    for path in &protected_attributes {
        pricing
            .protected_names
            .insert(crate::pricing::normalize_signal(path));
        pricing
            .protected_names
            .insert(crate::pricing::normalize_signal(
                path.rsplit('.').next().unwrap_or(path),
            ));
    }
    match (event_default, default_jurisdiction) {
        (Some(event_default), Some(default_jurisdiction)) if c.errors.is_empty() => Ok(Policy {
            source_hash: hex::encode(Sha256::digest(text.as_bytes())),
            default_jurisdiction,
            jurisdictions,
            categories,
            purposes: purposes.into_iter().map(|(d, _)| d).collect(),
            event_default,
            events,
            fields,
            wildcards,
            protected_attributes,
            fairness,
            recommendations,
            pricing,
            assistant,
            smtp,
            email,
            journeys,
            webhooks,
        }),
        _ => Err(c.finish(file, text)),
    }
}

/// The entries of a table in file order (the tree itself is sorted by key).
fn entries<'a, 'i>(t: &'a DeTable<'i>) -> Vec<(&'a Key<'i>, &'a Val<'i>)> {
    let mut v: Vec<_> = t.iter().collect();
    v.sort_by_key(|(k, _)| k.span().start);
    v
}

/// Errors found so far, each at a byte offset of the text.
#[derive(Default)]
struct Checker {
    errors: Vec<(usize, String)>,
}

impl Checker {
    fn err(&mut self, span: Range<usize>, message: impl Into<String>) {
        self.errors.push((span.start, message.into()));
    }

    fn finish(mut self, file: &str, text: &str) -> PolicyErrors {
        if self.errors.is_empty() {
            self.errors.push((0, "the policy is incomplete".into()));
        }
        self.errors.sort_by_key(|(at, _)| *at);
        PolicyErrors(
            self.errors
                .into_iter()
                .map(|(at, m)| PolicyError::at(file, text, at, m))
                .collect(),
        )
    }

    fn table<'a, 'i>(&mut self, v: &'a Val<'i>, what: &str) -> Option<&'a DeTable<'i>> {
        match v.get_ref() {
            DeValue::Table(t) => Some(t),
            other => {
                self.err(
                    v.span(),
                    format!("{what} must be a table, not {}", a(other)),
                );
                None
            }
        }
    }

    fn string<'a>(&mut self, v: &'a Val<'_>, what: &str) -> Option<&'a str> {
        match v.get_ref() {
            DeValue::String(s) => Some(s),
            other => {
                self.err(
                    v.span(),
                    format!("`{what}` must be a string, not {}", a(other)),
                );
                None
            }
        }
    }

    fn strings<'a>(&mut self, v: &'a Val<'_>, what: &str) -> Vec<(&'a str, Range<usize>)> {
        let DeValue::Array(items) = v.get_ref() else {
            self.err(v.span(), format!("`{what}` must be an array of strings"));
            return Vec::new();
        };
        let mut out = Vec::new();
        for item in items.iter() {
            match item.get_ref() {
                DeValue::String(s) => out.push((s.as_ref(), item.span())),
                other => self.err(
                    item.span(),
                    format!(
                        "`{what}` must be an array of strings; this entry is {}",
                        a(other)
                    ),
                ),
            }
        }
        out
    }

    fn opt_string(&mut self, t: &DeTable<'_>, key: &str) -> String {
        t.get(key)
            .and_then(|v| self.string(v, key))
            .unwrap_or_default()
            .to_owned()
    }

    fn opt_bool(&mut self, t: &DeTable<'_>, key: &str) -> bool {
        match t.get(key).map(|v| (v.get_ref(), v.span())) {
            None => false,
            Some((DeValue::Boolean(b), _)) => *b,
            Some((other, span)) => {
                self.err(
                    span,
                    format!("`{key}` must be true or false, not {}", a(other)),
                );
                false
            }
        }
    }

    fn name<T: FromStr<Err = NameError>>(&mut self, s: &str, span: Range<usize>) -> Option<T> {
        s.parse()
            .map_err(|e: NameError| self.err(span, e.to_string()))
            .ok()
    }

    fn known_keys(&mut self, t: &DeTable<'_>, allowed: &[&str], section: &str) {
        for (k, _) in entries(t) {
            if !allowed.contains(&k.get_ref().as_ref()) {
                self.err(
                    k.span(),
                    format!(
                        "unknown key `{}` in [{section}]: expected {}",
                        k.get_ref(),
                        allowed.join(", ")
                    ),
                );
            }
        }
    }

    /// The named tables of a section such as `[purposes]`, in file order, with valid names.
    fn sections<'a, 'i, T: FromStr<Err = NameError>>(
        &mut self,
        v: Option<&'a Val<'i>>,
        section: &str,
    ) -> Vec<(T, &'a Key<'i>, &'a DeTable<'i>)> {
        let Some(t) = v.and_then(|v| self.table(v, &format!("[{section}]"))) else {
            if v.is_none() {
                self.err(
                    0..0,
                    format!("the policy defines no {section}: add a [{section}.<name>] table"),
                );
            }
            return Vec::new();
        };
        if t.is_empty() {
            self.err(
                v.map_or(0..0, Spanned::span),
                format!("[{section}] is empty"),
            );
        }
        let mut out = Vec::new();
        for (k, v) in entries(t) {
            let table = self.table(v, &format!("[{section}.{}]", k.get_ref()));
            if let (Some(name), Some(table)) = (self.name(k.get_ref(), k.span()), table) {
                out.push((name, k, table));
            }
        }
        out
    }

    /// A number (integer or float) with its span, or an error.
    fn number(&mut self, v: &Val<'_>, key: &str) -> Option<f64> {
        let parsed = match v.get_ref() {
            DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix())
                .ok()
                .map(|x| x as f64),
            DeValue::Float(f) => f.as_str().parse::<f64>().ok(),
            _ => None,
        };
        match parsed {
            Some(x) if x.is_finite() => Some(x),
            _ => {
                self.err(
                    v.span(),
                    format!("`{key}` must be a number, not {}", a(v.get_ref())),
                );
                None
            }
        }
    }

    fn int(&mut self, t: &DeTable<'_>, key: &str, min: i64, max: i64) -> Option<i64> {
        let v = t.get(key)?;
        let n = self.number(v, key)?;
        if n.fract() != 0.0 || n < min as f64 || n > max as f64 {
            self.err(
                v.span(),
                format!("`{key}` must be a whole number from {min} to {max}"),
            );
            return None;
        }
        Some(n as i64)
    }

    fn smtp(&mut self, v: Option<&Val<'_>>) -> Option<SmtpPolicy> {
        let v = v?;
        let t = self.table(v, "smtp")?;
        self.known_keys(
            t,
            &[
                "host",
                "port",
                "tls",
                "from",
                "postal_address",
                "username_env",
                "password_env",
                "max_per_second",
                "unsubscribe_mailto",
                "ca_file",
            ],
            "smtp",
        );
        for key in ["host", "from", "postal_address"] {
            if t.get(key).is_none() {
                self.err(v.span(), format!("[smtp] needs `{key}`"));
            }
        }
        let tls = match t.get("tls") {
            None => SmtpTls::StartTls,
            Some(x) => match self.string(x, "tls") {
                Some("none") => SmtpTls::None,
                Some("starttls") => SmtpTls::StartTls,
                Some("tls") => SmtpTls::Tls,
                Some(other) => {
                    self.err(
                        x.span(),
                        format!("`tls` is none, starttls or tls, not {other:?}"),
                    );
                    SmtpTls::StartTls
                }
                None => SmtpTls::StartTls,
            },
        };
        let from = self.opt_string(t, "from");
        if t.get("from").is_some() && (!from.contains('@') || from.contains(['\r', '\n'])) {
            self.err(
                t.get("from").map_or(0..0, Spanned::span),
                "`from` must be an email address, e.g. \"Shop <shop@example.org>\"",
            );
        }
        let opt =
            |c: &mut Self, key: &str| t.get(key).and_then(|x| c.string(x, key)).map(str::to_owned);
        Some(SmtpPolicy {
            host: self.opt_string(t, "host"),
            port: self
                .int(t, "port", 1, 65535)
                .map_or(if tls == SmtpTls::Tls { 465 } else { 587 }, |p| p as u16),
            tls,
            from,
            postal_address: self.opt_string(t, "postal_address"),
            username_env: opt(self, "username_env"),
            password_env: opt(self, "password_env"),
            max_per_second: self.int(t, "max_per_second", 1, 100_000).unwrap_or(20) as u32,
            unsubscribe_mailto: opt(self, "unsubscribe_mailto"),
            ca_file: opt(self, "ca_file"),
        })
    }

    /// An `http(s)://` address without its trailing `/`.
    fn web_address(&mut self, t: &DeTable<'_>, key: &str) -> Option<String> {
        let v = t.get(key)?;
        let x = self.string(v, key)?;
        if !(x.starts_with("https://") || x.starts_with("http://")) {
            self.err(
                v.span(),
                format!("`{key}` must start with https:// (or http://)"),
            );
        }
        Some(x.trim_end_matches('/').to_owned())
    }

    fn email(&mut self, v: Option<&Val<'_>>) -> EmailPolicy {
        let mut e = EmailPolicy::default();
        let Some(v) = v else { return e };
        let Some(t) = self.table(v, "email") else {
            return e;
        };
        self.known_keys(
            t,
            &[
                "public_url",
                "max_marketing_emails",
                "per_days",
                "quiet_hours",
                "time_zone",
                "conversion_days",
                "templates",
                "shop_url",
            ],
            "email",
        );
        if let Some(x) = self.web_address(t, "shop_url") {
            e.shop_url = Some(x);
        }
        if let Some(x) = t.get("templates").and_then(|x| self.string(x, "templates")) {
            e.templates = Some(x.to_owned());
        }
        if let Some(x) = self.web_address(t, "public_url") {
            e.public_url = x;
        }
        if let Some(n) = self.int(t, "max_marketing_emails", 0, 1000) {
            e.max_marketing_emails = n as u32;
        }
        if let Some(n) = self.int(t, "per_days", 1, 365) {
            e.per_days = n as u32;
        }
        if let Some(n) = self.int(t, "conversion_days", 1, 365) {
            e.conversion_days = n as u32;
        }
        if let Some(x) = t.get("quiet_hours") {
            let hours: Vec<Option<f64>> = match x.get_ref() {
                DeValue::Array(items) => items
                    .iter()
                    .map(|i| self.number(i, "quiet_hours"))
                    .collect(),
                _ => Vec::new(),
            };
            match hours[..] {
                [Some(a), Some(b)]
                    if (0.0..24.0).contains(&a)
                        && (0.0..24.0).contains(&b)
                        && a.fract() == 0.0
                        && b.fract() == 0.0 =>
                {
                    e.quiet_hours = (a as u8, b as u8);
                }
                _ => self.err(
                    x.span(),
                    "`quiet_hours` is [from, to], local hours 0–23 (e.g. [21, 8]; [0, 0] for none)",
                ),
            }
        }
        if let Some(x) = t.get("time_zone").and_then(|x| self.string(x, "time_zone")) {
            if jiff::tz::TimeZone::get(x).is_err() {
                self.err(
                    t.get("time_zone").map_or(0..0, Spanned::span),
                    format!("`time_zone` {x:?} is not a known IANA time zone"),
                );
            }
            e.time_zone = x.to_owned();
        }
        e
    }

    fn webhooks(
        &mut self,
        v: Option<&Val<'_>>,
        purposes: &BTreeSet<Purpose>,
    ) -> Vec<WebhookPolicy> {
        let Some(v) = v else { return Vec::new() };
        let Some(t) = self.table(v, "[webhooks]") else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (k, w) in entries(t) {
            let name = k.get_ref().to_string();
            let Some(wt) = self.table(w, &format!("[webhooks.{name}]")) else {
                continue;
            };
            self.known_keys(
                wt,
                &["url", "purpose", "fields", "secret_env"],
                &format!("webhooks.{name}"),
            );
            let url = self.opt_string(wt, "url");
            let loopback = ["http://127.0.0.1", "http://localhost", "http://[::1]"]
                .iter()
                .any(|p| url.starts_with(p));
            if !(url.starts_with("https://") || loopback) {
                self.err(
                    wt.get("url").map_or(w.span(), Spanned::span),
                    format!(
                        "[webhooks.{name}] needs `url`, https:// (http:// only to this machine)"
                    ),
                );
            }
            let purpose = wt
                .get("purpose")
                .and_then(|x| self.string(x, "purpose"))
                .unwrap_or("marketing_email")
                .to_string();
            if !purposes.iter().any(|p| p.as_str() == purpose) {
                self.err(
                    wt.get("purpose").map_or(w.span(), Spanned::span),
                    format!("[webhooks.{name}] purpose `{purpose}` is not defined in [purposes]"),
                );
            }
            let fields = match wt.get("fields") {
                Some(f) => {
                    let mut out = Vec::new();
                    for (path, span) in self.strings(f, "fields") {
                        if self.field_path(path, span, false) {
                            out.push(path.to_owned());
                        }
                    }
                    out
                }
                None => Vec::new(),
            };
            let secret_env = wt
                .get("secret_env")
                .and_then(|x| self.string(x, "secret_env"))
                .map(str::to_owned);
            out.push(WebhookPolicy {
                name,
                url,
                purpose,
                fields,
                secret_env,
            });
        }
        out
    }

    /// `steps = [{ wait = "1h", email = "…" }, { wait = "1d", webhook = "…" }]`.
    fn journey_steps(&mut self, v: &Val<'_>, webhooks: &[WebhookPolicy]) -> Vec<JourneyStep> {
        let DeValue::Array(items) = v.get_ref() else {
            self.err(
                v.span(),
                "`steps` is an array of { wait, email } or { wait, webhook }",
            );
            return Vec::new();
        };
        let mut out = Vec::new();
        for item in items.iter() {
            let Some(t) = self.table(item, "a step") else {
                continue;
            };
            self.known_keys(t, &["wait", "email", "webhook"], "journeys.steps");
            let wait_ms = match t.get("wait") {
                None => 0,
                Some(x) => match self.string(x, "wait").and_then(parse_duration) {
                    Some(ms) => ms,
                    None => {
                        self.err(
                            x.span(),
                            "`wait` is a duration such as \"1s\", \"4h\" or \"2w\"",
                        );
                        0
                    }
                },
            };
            let email = t
                .get("email")
                .and_then(|x| self.string(x, "email"))
                .map(str::to_owned);
            let webhook = t
                .get("webhook")
                .and_then(|x| self.string(x, "webhook"))
                .map(str::to_owned);
            match (email, webhook) {
                (Some(email), None) => out.push(JourneyStep {
                    wait_ms,
                    email,
                    webhook: None,
                }),
                (None, Some(w)) => {
                    if !webhooks.iter().any(|h| h.name == w) {
                        self.err(
                            item.span(),
                            format!("step calls webhook `{w}`, which has no [webhooks.{w}]"),
                        );
                    }
                    out.push(JourneyStep {
                        wait_ms,
                        email: String::new(),
                        webhook: Some(w),
                    });
                }
                _ => self.err(item.span(), "a step has either `email` or `webhook`"),
            }
        }
        if out.is_empty() {
            self.err(v.span(), "`steps` needs at least one step");
        }
        out
    }

    fn journeys(&mut self, v: Option<&Val<'_>>, webhooks: &[WebhookPolicy]) -> Vec<JourneyDef> {
        let Some(v) = v else { return Vec::new() };
        let DeValue::Array(items) = v.get_ref() else {
            self.err(v.span(), "journeys are [[journeys]] tables");
            return Vec::new();
        };
        let mut out: Vec<JourneyDef> = Vec::new();
        for item in items.iter() {
            let Some(t) = self.table(item, "[[journeys]]") else {
                continue;
            };
            self.known_keys(
                t,
                &[
                    "template", "name", "trigger", "wait", "exit_on", "holdout", "email", "steps",
                ],
                "journeys",
            );
            let mut j = match t.get("template").and_then(|x| self.string(x, "template")) {
                Some(name) => match built_in_journey(name) {
                    Some(j) => j,
                    None => {
                        self.err(
                            t.get("template").map_or(0..0, Spanned::span),
                            format!(
                                "no built-in journey {name:?}; built in: {}",
                                BUILT_IN_JOURNEYS.join(", ")
                            ),
                        );
                        continue;
                    }
                },
                None => {
                    for key in ["name", "trigger", "email"] {
                        if t.get(key).is_none() && !(key == "email" && t.get("steps").is_some()) {
                            self.err(
                                item.span(),
                                format!("a journey without `template` needs `{key}` (and `wait`)"),
                            );
                        }
                    }
                    JourneyDef {
                        name: String::new(),
                        trigger: String::new(),
                        steps: vec![JourneyStep {
                            wait_ms: 0,
                            email: String::new(),
                            webhook: None,
                        }],
                        exit_on: Vec::new(),
                        holdout: 0.0,
                    }
                }
            };
            if let Some(x) = t.get("name").and_then(|x| self.string(x, "name")) {
                j.name = x.to_owned();
            }
            if let Some(x) = t.get("trigger").and_then(|x| self.string(x, "trigger")) {
                j.trigger = x.to_owned();
            }
            if let Some(x) = t.get("email").and_then(|x| self.string(x, "email")) {
                j.steps[0].email = x.to_owned();
            }
            if let Some(x) = t.get("wait") {
                match self.string(x, "wait").and_then(parse_duration) {
                    Some(ms) => j.steps[0].wait_ms = ms,
                    None => self.err(
                        x.span(),
                        "`wait` is a duration such as \"1s\", \"30m\", \"4h\", \"3d\" or \"2w\"",
                    ),
                }
            }
            if let Some(x) = t.get("steps") {
                if t.get("email").is_some() || t.get("wait").is_some() {
                    self.err(
                        x.span(),
                        "give either `steps` or `wait` and `email`, not both",
                    );
                }
                j.steps = self.journey_steps(x, webhooks);
            }
            if let Some(x) = t.get("exit_on") {
                j.exit_on = self
                    .strings(x, "exit_on")
                    .into_iter()
                    .map(|(s, _)| s.to_owned())
                    .collect();
            }
            if let Some(x) = t.get("holdout")
                && let Some(h) = self.number(x, "holdout")
            {
                if (0.0..1.0).contains(&h) {
                    j.holdout = h;
                } else {
                    self.err(
                        x.span(),
                        "`holdout` is a share from 0 to below 1 (e.g. 0.1)",
                    );
                }
            }
            let valid_name = !j.name.is_empty()
                && j.name.len() <= 64
                && j.name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
            if !valid_name {
                self.err(
                    item.span(),
                    format!("journey name {:?} must be 1–64 of a–z, 0–9 and _", j.name),
                );
            } else if out.iter().any(|o| o.name == j.name) {
                self.err(
                    item.span(),
                    format!("journey {:?} is defined twice; give one a `name`", j.name),
                );
            }
            out.push(j);
        }
        out
    }

    fn recommendations(&mut self, v: Option<&Val<'_>>) -> RecsPolicy {
        let mut r = RecsPolicy::default();
        let Some(v) = v else { return r };
        let Some(t) = self.table(v, "recommendations") else {
            return r;
        };
        self.known_keys(
            t,
            &["sensitive_categories", "exclude_categories"],
            "recommendations",
        );
        if let Some(v) = t.get("sensitive_categories") {
            r.sensitive_categories = self
                .strings(v, "sensitive_categories")
                .into_iter()
                .map(|(s, _)| s.to_lowercase())
                .collect();
        }
        if let Some(v) = t.get("exclude_categories") {
            r.exclude_categories = self
                .strings(v, "exclude_categories")
                .into_iter()
                .map(|(s, _)| s.to_lowercase())
                .collect();
        }
        r
    }

    /// A share of the list price (`0.1` is 10 %) as basis points, at most `max`.
    fn share_bp(&mut self, t: &DeTable<'_>, key: &str, max: f64) -> Option<u32> {
        let v = t.get(key)?;
        let x = self.number(v, key)?;
        let bp = (x * 10_000.0).round();
        if !(0.0..=max).contains(&x) {
            self.err(
                v.span(),
                format!("`{key}` is a share of the list price from 0 to {max}, not {x}"),
            );
            return None;
        }
        if (x * 10_000.0 - bp).abs() > 1e-6 {
            self.err(
                v.span(),
                format!("`{key}` has at most four decimals (basis points), not {x}"),
            );
            return None;
        }
        Some(bp as u32)
    }

    fn signal_names(&mut self, t: &DeTable<'_>, key: &str) -> Option<BTreeSet<String>> {
        let v = t.get(key)?;
        Some(
            self.strings(v, key)
                .into_iter()
                .map(|(s, _)| crate::pricing::normalize_signal(s))
                .filter(|s| !s.is_empty())
                .collect(),
        )
    }

    /// `key` of `t` as text of 1 to `max` bytes, trimmed.
    fn text_field(&mut self, t: &DeTable<'_>, key: &str, max: usize) -> Option<String> {
        let x = t.get(key)?;
        let text = self.string(x, key)?;
        if text.trim().is_empty() || text.len() > max {
            self.err(x.span(), format!("`{key}` is 1 to {max} characters"));
            None
        } else {
            Some(text.trim().to_owned())
        }
    }

    /// `key` of `t` as the name of a purpose the policy defines that is not an audit purpose.
    fn purpose_field(
        &mut self,
        t: &DeTable<'_>,
        key: &str,
        purposes: &[PurposeEntries],
    ) -> Option<String> {
        let x = t.get(key)?;
        let name = self.string(x, key)?;
        match purposes.iter().find(|(d, _)| d.name.as_str() == name) {
            None => self.err(
                x.span(),
                format!("`{key}` names `{name}`, which [purposes] does not define"),
            ),
            Some((d, _)) if d.audit => self.err(
                x.span(),
                format!("`{key}` may not be the audit purpose `{name}`"),
            ),
            Some(_) => return Some(name.to_owned()),
        }
        None
    }

    fn assistant(&mut self, v: Option<&Val<'_>>, purposes: &[PurposeEntries]) -> AssistantPolicy {
        let mut a = AssistantPolicy::default();
        let Some(v) = v else { return a };
        let Some(t) = self.table(v, "assistant") else {
            return a;
        };
        self.known_keys(
            t,
            &[
                "disclosure",
                "disclosure_version",
                "purpose",
                "service_purpose",
                "help",
                "sensitive_topics",
                "max_misunderstandings",
                "min_confidence",
                "retention_days",
                "handoff_message",
                "llm",
            ],
            "assistant",
        );
        for (key, slot, max) in [
            ("disclosure", &mut a.disclosure, 1000),
            ("disclosure_version", &mut a.disclosure_version, 100),
            ("handoff_message", &mut a.handoff_message, 1000),
        ] {
            if let Some(text) = self.text_field(t, key, max) {
                *slot = text;
            }
        }
        for (key, slot) in [
            ("purpose", &mut a.purpose),
            ("service_purpose", &mut a.service_purpose),
        ] {
            if let Some(name) = self.purpose_field(t, key, purposes) {
                *slot = name;
            }
        }
        if let Some(x) = t.get("help") {
            for (path, span) in self.strings(x, "help") {
                if path.trim().is_empty() || path.contains("..") || path.starts_with('/') {
                    self.err(
                        span,
                        format!("`help` names markdown files inside the deployment directory, not {path:?}"),
                    );
                } else {
                    a.help.push(path.to_owned());
                }
            }
        }
        if let Some(x) = t.get("sensitive_topics")
            && let Some(topics) = self.table(x, "[assistant.sensitive_topics]")
        {
            // The policy's list replaces the built-in one (an empty table turns it off).
            a.sensitive_topics.clear();
            for (k, v) in entries(topics) {
                let words: Vec<String> = self
                    .strings(v, &format!("sensitive_topics.{}", k.get_ref()))
                    .into_iter()
                    .map(|(w, _)| w.trim().to_lowercase())
                    .filter(|w| !w.is_empty())
                    .collect();
                if words.is_empty() {
                    self.err(
                        v.span(),
                        "a sensitive topic lists at least one word or phrase",
                    );
                }
                a.sensitive_topics.insert(k.get_ref().to_lowercase(), words);
            }
        }
        if let Some(n) = self.int(t, "max_misunderstandings", 1, 10) {
            a.max_misunderstandings = n as u32;
        }
        if let Some(n) = self.int(t, "retention_days", 1, 3650) {
            a.retention_days = n as u32;
        }
        if let Some(x) = t.get("min_confidence")
            && let Some(c) = self.number(x, "min_confidence")
        {
            if (0.0..=1.0).contains(&c) {
                a.min_confidence = c;
            } else {
                self.err(
                    x.span(),
                    format!("`min_confidence` is from 0 to 1, not {c}"),
                );
            }
        }
        if let Some(x) = t.get("llm")
            && let Some(lt) = self.table(x, "[assistant.llm]")
        {
            self.known_keys(
                lt,
                &[
                    "base_url",
                    "model",
                    "api_key_env",
                    "timeout_ms",
                    "max_tokens",
                    "temperature",
                ],
                "assistant.llm",
            );
            let base_url = lt.get("base_url").and_then(|u| {
                let text = self.string(u, "base_url")?;
                if text.starts_with("https://") || text.starts_with("http://") {
                    Some(text.trim_end_matches('/').to_owned())
                } else {
                    self.err(
                        u.span(),
                        format!("`base_url` is an http:// or https:// URL, not {text:?}"),
                    );
                    None
                }
            });
            let model = lt
                .get("model")
                .and_then(|m| self.string(m, "model").map(str::to_owned));
            if lt.get("base_url").is_none() || lt.get("model").is_none() {
                self.err(x.span(), "[assistant.llm] needs `base_url` and `model`");
            }
            let api_key_env = lt.get("api_key_env").and_then(|k| {
                let name = self.string(k, "api_key_env")?;
                if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                    self.err(k.span(), "`api_key_env` names an environment variable (the key itself never goes in this file)");
                    None
                } else {
                    Some(name.to_owned())
                }
            });
            let timeout_ms = self.int(lt, "timeout_ms", 100, 120_000).unwrap_or(8000) as u64;
            let max_tokens = self.int(lt, "max_tokens", 16, 8192).unwrap_or(400) as u32;
            let temperature = match lt.get("temperature") {
                Some(x) => match self.number(x, "temperature") {
                    Some(t) if (0.0..=2.0).contains(&t) => t,
                    Some(t) => {
                        self.err(x.span(), format!("`temperature` is from 0 to 2, not {t}"));
                        0.2
                    }
                    None => 0.2,
                },
                None => 0.2,
            };
            if let (Some(base_url), Some(model)) = (base_url, model) {
                a.llm = Some(LlmPolicy {
                    base_url,
                    model,
                    api_key_env,
                    timeout_ms,
                    max_tokens,
                    temperature,
                });
            }
        }
        a
    }

    fn pricing(&mut self, v: Option<&Val<'_>>, purposes: &[PurposeEntries]) -> PricingPolicy {
        let mut p = PricingPolicy::default();
        let Some(v) = v else { return p };
        let Some(t) = self.table(v, "pricing") else {
            return p;
        };
        self.known_keys(
            t,
            &[
                "personal_pricing",
                "purpose",
                "max_increase",
                "max_decrease",
                "essential_categories",
                "categories",
                "market_signals",
                "vulnerability_signals",
                "proxy_signals",
                "protected_signals",
                "segment_window",
                "disclosure",
                "disclosure_version",
                "prior_price_days",
                "history_days",
                "max_dispersion_ratio",
                "min_group_lines",
            ],
            "pricing",
        );
        p.personal_pricing = self.opt_bool(t, "personal_pricing");
        if t.get("purpose").is_some() {
            if let Some(name) = self.purpose_field(t, "purpose", purposes) {
                p.purpose = name;
            }
        } else if !purposes.iter().any(|(d, _)| d.name.as_str() == p.purpose) {
            self.err(
                v.span(),
                format!(
                    "[pricing] needs `purpose` (the policy defines no `{}` purpose)",
                    p.purpose
                ),
            );
        }
        if let Some(bp) = self.share_bp(t, "max_increase", 10.0) {
            p.max_increase_bp = bp;
        }
        if let Some(bp) = self.share_bp(t, "max_decrease", 1.0) {
            p.max_decrease_bp = bp;
        }
        if let Some(x) = t.get("essential_categories") {
            p.essential_categories = self
                .strings(x, "essential_categories")
                .into_iter()
                .map(|(s, _)| s.to_lowercase())
                .collect();
        }
        if let Some(x) = t.get("categories")
            && let Some(cats) = self.table(x, "[pricing.categories]")
        {
            for (k, v) in entries(cats) {
                let name = k.get_ref().to_lowercase();
                let Some(ct) = self.table(v, &format!("[pricing.categories.{name}]")) else {
                    continue;
                };
                self.known_keys(
                    ct,
                    &["max_increase", "max_decrease", "essential"],
                    &format!("pricing.categories.{name}"),
                );
                let caps = CategoryCaps {
                    max_increase_bp: self.share_bp(ct, "max_increase", 10.0),
                    max_decrease_bp: self.share_bp(ct, "max_decrease", 1.0),
                    essential: self.opt_bool(ct, "essential"),
                };
                p.categories.insert(name, caps);
            }
        }
        if let Some(s) = self.signal_names(t, "market_signals") {
            p.market_signals = s;
        }
        if let Some(s) = self.signal_names(t, "vulnerability_signals") {
            p.vulnerability_signals = s;
        }
        if let Some(s) = self.signal_names(t, "proxy_signals") {
            p.proxy_signals = s;
        }
        // Protected names add to the built-in ones: a policy cannot make age a market signal.
        if let Some(s) = self.signal_names(t, "protected_signals") {
            p.protected_signals.extend(s);
        }
        for name in p.market_signals.clone() {
            let class = if p.vulnerability_signals.contains(&name) {
                Some("vulnerability_signals")
            } else if p.proxy_signals.contains(&name) {
                Some("proxy_signals")
            } else if p.protected_signals.contains(&name) {
                Some("the protected signals")
            } else {
                None
            };
            if let Some(class) = class {
                self.err(
                    t.get("market_signals").map_or(v.span(), Spanned::span),
                    format!("market signal `{name}` is also in {class}; a signal has one class"),
                );
            }
        }
        if let Some(x) = t.get("segment_window")
            && let Some(text) = self.string(x, "segment_window")
        {
            match parse_duration(text) {
                Some(ms) if (1000..=366 * 86_400_000).contains(&ms) => p.segment_window_ms = ms,
                _ => self.err(
                    x.span(),
                    format!("`segment_window` is a duration from 1s to 366d such as \"1h\", not {text:?}"),
                ),
            }
        }
        for (key, slot) in [
            ("disclosure", &mut p.disclosure),
            ("disclosure_version", &mut p.disclosure_version),
        ] {
            if let Some(text) = self.text_field(t, key, 500) {
                *slot = text;
            }
        }
        if let Some(n) = self.int(t, "prior_price_days", 1, 365) {
            p.prior_price_days = n as u32;
        }
        if let Some(n) = self.int(t, "history_days", 1, 3650) {
            p.history_days = n as u32;
        }
        if p.history_days <= p.prior_price_days {
            self.err(
                t.get("history_days").map_or(v.span(), Spanned::span),
                format!(
                    "`history_days` ({}) must be longer than `prior_price_days` ({})",
                    p.history_days, p.prior_price_days
                ),
            );
        }
        if let Some(x) = t.get("max_dispersion_ratio")
            && let Some(r) = self.number(x, "max_dispersion_ratio")
        {
            if r > 1.0 && r <= 100.0 {
                p.max_dispersion_ratio = r;
            } else {
                self.err(
                    x.span(),
                    format!("`max_dispersion_ratio` is above 1 (1.25 flags 25% apart), not {r}"),
                );
            }
        }
        if let Some(n) = self.int(t, "min_group_lines", 1, 1_000_000) {
            p.min_group_lines = n as u32;
        }
        p
    }

    fn fairness(&mut self, v: Option<&Val<'_>>) -> FairnessPolicy {
        let mut f = FairnessPolicy::default();
        let Some(v) = v else { return f };
        let Some(t) = self.table(v, "fairness") else {
            return f;
        };
        self.known_keys(
            t,
            &[
                "min_selection_rate_ratio",
                "max_demographic_parity_difference",
                "max_equalized_odds_difference",
                "max_equal_opportunity_difference",
                "min_group_size",
                "max_proxy_cramers_v",
                "age_bands",
            ],
            "fairness",
        );
        for (key, slot) in [
            ("min_selection_rate_ratio", &mut f.min_selection_rate_ratio),
            (
                "max_demographic_parity_difference",
                &mut f.max_demographic_parity_difference,
            ),
            (
                "max_equalized_odds_difference",
                &mut f.max_equalized_odds_difference,
            ),
            (
                "max_equal_opportunity_difference",
                &mut f.max_equal_opportunity_difference,
            ),
            ("max_proxy_cramers_v", &mut f.max_proxy_cramers_v),
        ] {
            if let Some(v) = t.get(key)
                && let Some(x) = self.number(v, key)
            {
                if (0.0..=1.0).contains(&x) {
                    *slot = Some(x);
                } else {
                    self.err(
                        v.span(),
                        format!("`{key}` must be between 0 and 1, not {x}"),
                    );
                }
            }
        }
        if let Some(v) = t.get("min_group_size")
            && let Some(x) = self.number(v, "min_group_size")
        {
            if x >= 1.0 && x.fract() == 0.0 {
                f.min_group_size = x as u64;
            } else {
                self.err(
                    v.span(),
                    format!("`min_group_size` must be a whole number of at least 1, not {x}"),
                );
            }
        }
        if let Some(v) = t.get("age_bands") {
            let DeValue::Array(items) = v.get_ref() else {
                self.err(
                    v.span(),
                    format!(
                        "`age_bands` must be an array of ages, not {}",
                        a(v.get_ref())
                    ),
                );
                return f;
            };
            let mut bands = Vec::new();
            for item in items.iter() {
                if let Some(x) = self.number(item, "age_bands") {
                    if bands.last().is_some_and(|&last| x <= last) {
                        self.err(item.span(), "`age_bands` must increase".to_string());
                    }
                    bands.push(x);
                }
            }
            f.age_bands = bands;
        }
        f
    }

    fn version(&mut self, v: Option<&Val<'_>>) {
        match v.map(|v| (v.get_ref(), v.span())) {
            None => self.err(0..0, "missing `version = 1` (the policy format version)"),
            Some((DeValue::Integer(i), _))
                if u32::from_str_radix(i.as_str(), i.radix()) == Ok(1) => {}
            Some((_, span)) => self.err(
                span,
                "unsupported policy `version`: this Candor reads version 1",
            ),
        }
    }

    fn categories(&mut self, v: Option<&Val<'_>>) -> Vec<CategoryDef> {
        let mut out = Vec::new();
        for (name, key, t) in self.sections::<Category>(v, "categories") {
            self.known_keys(t, CATEGORY_KEYS, &format!("categories.{name}"));
            let missing = format!("category `{name}` has no retention period (retention_days)");
            let retention_days = match t.get("retention_days").map(|v| (v.get_ref(), v.span())) {
                None => {
                    self.err(key.span(), missing);
                    0
                }
                Some((DeValue::Integer(i), span)) => {
                    match u32::from_str_radix(i.as_str(), i.radix()) {
                        Ok(0) => {
                            self.err(span, missing);
                            0
                        }
                        Ok(days) => days,
                        Err(_) => {
                            self.err(span, "`retention_days` must be a whole number of days from 1 to 4294967295");
                            0
                        }
                    }
                }
                Some((other, span)) => {
                    self.err(
                        span,
                        format!(
                            "`retention_days` must be a whole number of days, not {}",
                            a(other)
                        ),
                    );
                    0
                }
            };
            out.push(CategoryDef {
                description: self.opt_string(t, "description"),
                retention_days,
                sealed: self.opt_bool(t, "sealed"),
                protected: self.opt_bool(t, "protected"),
                name,
            });
        }
        out
    }

    /// A category reference: a valid name of a defined category.
    fn category_ref(
        &mut self,
        s: &str,
        span: Range<usize>,
        known: &BTreeSet<Category>,
    ) -> Option<Category> {
        let c: Category = self.name(s, span.clone())?;
        if known.contains(&c) {
            Some(c)
        } else {
            self.err(
                span,
                format!("unknown category `{c}`: it is not defined in [categories]"),
            );
            None
        }
    }

    /// Purposes, each with its `categories` entries and their spans.
    fn purposes(&mut self, v: Option<&Val<'_>>, known: &BTreeSet<Category>) -> Vec<PurposeEntries> {
        let mut out = Vec::new();
        for (name, key, t) in self.sections::<Purpose>(v, "purposes") {
            self.known_keys(t, PURPOSE_KEYS, &format!("purposes.{name}"));
            let basis = match t.get("basis") {
                None => {
                    self.err(
                        key.span(),
                        format!("purpose `{name}` has no basis: consent, contract, legitimate_interest or legal_obligation"),
                    );
                    None
                }
                Some(v) => self
                    .string(v, "basis")
                    .and_then(|s| s.parse::<Basis>().map_err(|e| self.err(v.span(), e)).ok()),
            };
            let mut entries = Vec::new();
            match t.get("categories") {
                None => self.err(
                    key.span(),
                    format!("purpose `{name}` lists no categories (categories = [...])"),
                ),
                Some(v) => {
                    for (s, span) in self.strings(v, "categories") {
                        if let Some(c) = self.category_ref(s, span.clone(), known) {
                            entries.push((c, span));
                        }
                    }
                }
            }
            let segment_categories = match t.get("segment_categories") {
                None => Vec::new(),
                Some(v) => self
                    .strings(v, "segment_categories")
                    .into_iter()
                    .map(|(s, _)| s.to_owned())
                    .collect(),
            };
            let def = PurposeDef {
                description: self.opt_string(t, "description"),
                basis: basis.unwrap_or(Basis::Consent),
                categories: entries.iter().map(|(c, _)| c.clone()).collect(),
                segment_categories,
                gpc_opt_out: self.opt_bool(t, "gpc_opt_out"),
                audit: self.opt_bool(t, "audit"),
                name,
            };
            out.push((def, entries));
        }
        out
    }

    fn jurisdictions(
        &mut self,
        v: Option<&Val<'_>>,
        known: &BTreeSet<Purpose>,
    ) -> BTreeMap<String, JurisdictionDef> {
        let mut out = BTreeMap::new();
        // Jurisdiction names follow the same rule as purpose names.
        for (name, key, t) in self.sections::<Purpose>(v, "jurisdictions") {
            let name = name.to_string();
            self.known_keys(t, JURISDICTION_KEYS, &format!("jurisdictions.{name}"));
            let regime = match t.get("regime") {
                None => {
                    self.err(
                        key.span(),
                        format!("jurisdiction `{name}` has no regime: opt_in or opt_out"),
                    );
                    None
                }
                Some(v) => self
                    .string(v, "regime")
                    .and_then(|s| s.parse::<Regime>().map_err(|e| self.err(v.span(), e)).ok()),
            };
            let mut opt_in_purposes = BTreeSet::new();
            if let Some(v) = t.get("opt_in_purposes") {
                for (s, span) in self.strings(v, "opt_in_purposes") {
                    let Some(p) = self.name::<Purpose>(s, span.clone()) else {
                        continue;
                    };
                    if known.contains(&p) {
                        opt_in_purposes.insert(p);
                    } else {
                        self.err(
                            span,
                            format!("unknown purpose `{p}`: it is not defined in [purposes]"),
                        );
                    }
                }
            }
            let def = JurisdictionDef {
                name: name.clone(),
                description: self.opt_string(t, "description"),
                regime: regime.unwrap_or(Regime::OptIn),
                opt_in_purposes,
            };
            out.insert(name, def);
        }
        out
    }

    fn default_jurisdiction(
        &mut self,
        v: Option<&Val<'_>>,
        known: &BTreeMap<String, JurisdictionDef>,
    ) -> Option<String> {
        let Some(v) = v else {
            self.err(
                0..0,
                "missing `default_jurisdiction` (used when a subject's jurisdiction is unknown)",
            );
            return None;
        };
        let s = self.string(v, "default_jurisdiction")?;
        if known.contains_key(s) {
            Some(s.to_owned())
        } else {
            self.err(
                v.span(),
                format!("unknown jurisdiction `{s}`: it is not defined in [jurisdictions]"),
            );
            None
        }
    }

    fn events(
        &mut self,
        v: Option<&Val<'_>>,
        known: &BTreeSet<Category>,
    ) -> (Option<Category>, BTreeMap<String, Category>) {
        let mut events = BTreeMap::new();
        let Some(t) = v.and_then(|v| self.table(v, "[events]")) else {
            if v.is_none() {
                self.err(
                    0..0,
                    "missing [events] table (at least `default = \"<category>\"`)",
                );
            }
            return (None, events);
        };
        for (k, v) in entries(t) {
            let Some(s) = self.string(v, k.get_ref()) else {
                continue;
            };
            if let Some(c) = self.category_ref(s, v.span(), known) {
                events.insert(k.get_ref().to_string(), c);
            }
        }
        let default = events.remove("default");
        if default.is_none() && !t.contains_key("default") {
            self.err(
                v.map_or(0..0, Spanned::span),
                "[events] has no `default` category",
            );
        }
        (default, events)
    }

    /// Exact rules and wildcard rules (keyed by prefix). Dotted keys are read as paths too.
    fn fields(
        &mut self,
        v: Option<&Val<'_>>,
        known: &BTreeSet<Category>,
    ) -> (BTreeMap<String, Category>, BTreeMap<String, Category>) {
        let (mut exact, mut wildcards) = (BTreeMap::new(), BTreeMap::new());
        let Some(t) = v.and_then(|v| self.table(v, "[fields]")) else {
            return (exact, wildcards);
        };
        let mut rules = Vec::new();
        flatten(t, "", &mut rules);
        for (path, key, v) in rules {
            let Some(s) = self.string(v, &path) else {
                continue;
            };
            let category = self.category_ref(s, v.span(), known);
            if let (true, Some(c)) = (self.field_path(&path, key, true), category) {
                match path.strip_suffix(".*") {
                    Some(prefix) => wildcards.insert(prefix.to_owned(), c),
                    None => exact.insert(path, c),
                };
            }
        }
        (exact, wildcards)
    }

    /// Checks a field path such as `traits.email`; `wildcard` allows a final `*` segment.
    fn field_path(&mut self, path: &str, span: Range<usize>, wildcard: bool) -> bool {
        let segments: Vec<&str> = path.split('.').collect();
        let last = segments.len() - 1;
        let ok = segments.len() >= 2
            && FIELD_ROOTS.contains(&segments[0])
            && segments.iter().enumerate().all(|(i, s)| {
                !s.is_empty() && (!s.contains('*') || (wildcard && i == last && *s == "*"))
            });
        if !ok {
            let example = if wildcard {
                "`traits.email` or `traits.*`"
            } else {
                "`traits.email`"
            };
            self.err(
                span,
                format!("`{path}` is not a field path: use {example}, starting with traits, properties or context"),
            );
        }
        ok
    }
}

/// A value's type with its article, for messages: "an integer", "a string".
fn a(v: &DeValue<'_>) -> String {
    let t = v.type_str();
    let article = if t.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    };
    format!("{article} {t}")
}

/// `[fields]` entries as (dotted path, key span, value), descending into dotted-key tables.
fn flatten<'a, 'i>(
    t: &'a DeTable<'i>,
    prefix: &str,
    out: &mut Vec<(String, Range<usize>, &'a Val<'i>)>,
) {
    for (k, v) in entries(t) {
        let path = if prefix.is_empty() {
            k.get_ref().to_string()
        } else {
            format!("{prefix}.{}", k.get_ref())
        };
        match v.get_ref() {
            DeValue::Table(inner) => flatten(inner, &path, out),
            _ => out.push((path, k.span(), v)),
        }
    }
}
