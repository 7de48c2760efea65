//! Prometheus counters and histograms, rendered in the text exposition format.
//! Labels are fixed vocabularies (outcomes, reason codes, purposes, routes): never personal data.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;

/// Upper bounds (seconds) of the request latency histogram.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

#[derive(Debug, Default)]
struct Histogram {
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

#[derive(Debug, Default)]
struct Inner {
    events: BTreeMap<(String, String), u64>,
    consent_changes: BTreeMap<(String, String), u64>,
    latency: BTreeMap<(String, String, u16), Histogram>,
    emails_sent: u64,
    /// Price checks by (verdict, personalized).
    price_checks: BTreeMap<(&'static str, bool), u64>,
    /// Assistant replies by (intent, backend).
    assistant_replies: BTreeMap<(&'static str, &'static str), u64>,
}

#[derive(Debug, Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Metrics {
    fn with<R>(&self, f: impl FnOnce(&mut Inner) -> R) -> R {
        let mut g = match self.inner.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        f(&mut g)
    }

    /// Ingested events, counted by (`outcome`, `reason`) by the caller: one lock per request.
    pub fn events<'a>(&self, counts: impl IntoIterator<Item = ((&'a str, &'a str), u64)>) {
        self.with(|m| {
            for ((outcome, reason), n) in counts {
                *m.events
                    .entry((outcome.to_owned(), reason.to_owned()))
                    .or_default() += n;
            }
        });
    }

    pub fn consent_change(&self, purpose: &str, action: &str) {
        self.with(|m| {
            *m.consent_changes
                .entry((purpose.to_owned(), action.to_owned()))
                .or_default() += 1;
        });
    }

    /// Journey emails accepted by the relay.
    pub fn emails_sent(&self, n: u64) {
        self.with(|m| m.emails_sent += n);
    }

    /// One price check by its verdict, and whether personal data shaped the price.
    pub fn price_check(&self, verdict: &'static str, personalized: bool) {
        self.with(|m| *m.price_checks.entry((verdict, personalized)).or_default() += 1);
    }

    /// One assistant reply by its intent and what answered (`embedded` or `llm`).
    pub fn assistant_reply(&self, intent: &'static str, backend: &'static str) {
        self.with(|m| *m.assistant_replies.entry((intent, backend)).or_default() += 1);
    }

    /// Counts of a batch of price checks by (verdict, personalized); one lock.
    pub fn price_checks(&self, counts: &[(&'static str, bool, u64)]) {
        self.with(|m| {
            for (v, p, n) in counts {
                if *n > 0 {
                    *m.price_checks.entry((v, *p)).or_default() += n;
                }
            }
        });
    }

    /// One HTTP request. `route` is the matched route template, not the raw path.
    pub fn request(&self, method: &str, route: &str, status: u16, seconds: f64) {
        self.with(|m| {
            let h = m
                .latency
                .entry((method.to_owned(), route.to_owned(), status))
                .or_default();
            if h.counts.is_empty() {
                h.counts = vec![0; LATENCY_BUCKETS.len()];
            }
            for (i, b) in LATENCY_BUCKETS.iter().enumerate() {
                if seconds <= *b {
                    h.counts[i] += 1;
                }
            }
            h.sum += seconds;
            h.count += 1;
        });
    }

    pub fn render(&self) -> String {
        self.with(|m| {
            let mut out = String::new();
            out.push_str("# HELP candor_events_total Ingested events by outcome and reason.\n");
            out.push_str("# TYPE candor_events_total counter\n");
            for ((o, r), n) in &m.events {
                let _ = writeln!(
                    out,
                    "candor_events_total{{outcome=\"{}\",reason=\"{}\"}} {n}",
                    escape(o),
                    escape(r)
                );
            }
            out.push_str("# HELP candor_consent_changes_total Consent ledger entries by purpose and action.\n");
            out.push_str("# TYPE candor_consent_changes_total counter\n");
            for ((p, a), n) in &m.consent_changes {
                let _ = writeln!(
                    out,
                    "candor_consent_changes_total{{purpose=\"{}\",action=\"{}\"}} {n}",
                    escape(p),
                    escape(a)
                );
            }
            out.push_str("# HELP candor_emails_sent_total Journey emails handed to the relay.\n");
            out.push_str("# TYPE candor_emails_sent_total counter\n");
            let _ = writeln!(out, "candor_emails_sent_total {}", m.emails_sent);
            out.push_str("# HELP candor_price_checks_total Price checks by verdict and whether personal data shaped the price.\n");
            out.push_str("# TYPE candor_price_checks_total counter\n");
            for ((v, p), n) in &m.price_checks {
                let _ = writeln!(
                    out,
                    "candor_price_checks_total{{verdict=\"{v}\",personalized=\"{p}\"}} {n}"
                );
            }
            out.push_str("# HELP candor_assistant_replies_total Assistant replies by intent and backend.\n");
            out.push_str("# TYPE candor_assistant_replies_total counter\n");
            for ((i, b), n) in &m.assistant_replies {
                let _ = writeln!(
                    out,
                    "candor_assistant_replies_total{{intent=\"{i}\",backend=\"{b}\"}} {n}"
                );
            }
            out.push_str("# HELP candor_http_request_duration_seconds HTTP request latency.\n");
            out.push_str("# TYPE candor_http_request_duration_seconds histogram\n");
            for ((method, route, status), h) in &m.latency {
                let labels = format!(
                    "method=\"{}\",route=\"{}\",status=\"{status}\"",
                    escape(method),
                    escape(route)
                );
                for (i, b) in LATENCY_BUCKETS.iter().enumerate() {
                    let _ = writeln!(
                        out,
                        "candor_http_request_duration_seconds_bucket{{{labels},le=\"{b}\"}} {}",
                        h.counts[i]
                    );
                }
                let _ = writeln!(
                    out,
                    "candor_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                    h.count
                );
                let _ = writeln!(
                    out,
                    "candor_http_request_duration_seconds_sum{{{labels}}} {}",
                    h.sum
                );
                let _ = writeln!(
                    out,
                    "candor_http_request_duration_seconds_count{{{labels}}} {}",
                    h.count
                );
            }
            out
        })
    }
}
