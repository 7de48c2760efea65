//! One audit: every protected attribute and every pair of them, with bootstrap intervals,
//! proxy strengths of the model's features, and the gates' verdicts.

use crate::bootstrap::{AttributeIntervals, bootstrap};
use crate::gates::{Gates, Verdict, evaluate};
use crate::proxy::{ProxyStrength, proxy_strength};
use crate::scores::{GroupScores, group_scores, parity_thresholds};
use crate::{Attribute, AttributeAudit, audit_attribute};
use serde::Serialize;

/// A model feature to test as a proxy: name, values per row, categorical or numeric.
pub struct Feature<'a> {
    pub name: &'a str,
    pub values: &'a [f64],
    pub categorical: bool,
}

pub struct AuditInput<'a> {
    pub y_true: &'a [u8],
    pub y_pred: &'a [u8],
    /// The scores behind `y_pred` (probabilities), for AUC, calibration and curves per group.
    pub scores: Option<&'a [f64]>,
    /// The score at which a row counts as selected (recorded; `y_pred` already applies it).
    pub threshold: f64,
    pub attributes: &'a [Attribute],
    pub features: &'a [Feature<'a>],
    pub gates: &'a Gates,
    pub resamples: usize,
    pub level: f64,
    pub seed: u64,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct AttributeReport {
    pub audit: AttributeAudit,
    pub intervals: AttributeIntervals,
    /// Per group (same order as the audit's groups), when scores were given.
    pub scores: Vec<GroupScores>,
    /// Per group: the threshold that would give it the overall selection rate. Applying these
    /// needs the protected attribute at scoring time (see `scores::parity_thresholds`).
    pub parity_thresholds: Vec<f64>,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct AuditReport {
    pub threshold: f64,
    /// Bootstrap resamples behind the intervals.
    pub resamples: usize,
    pub rows: usize,
    pub selected: usize,
    pub positives: usize,
    pub attributes: Vec<AttributeReport>,
    pub proxies: Vec<ProxyStrength>,
    pub verdicts: Vec<Verdict>,
    /// Every gate passed.
    pub passed: bool,
}

/// Runs the audit. Gates apply to single attributes and to intersections alike.
pub fn audit(input: &AuditInput) -> AuditReport {
    let mut attrs: Vec<Attribute> = input.attributes.to_vec();
    for i in 0..input.attributes.len() {
        for j in i + 1..input.attributes.len() {
            attrs.push(Attribute::intersect(
                &input.attributes[i],
                &input.attributes[j],
            ));
        }
    }
    let reports: Vec<AttributeReport> = attrs
        .iter()
        .enumerate()
        .map(|(k, a)| {
            let audit = audit_attribute(a, input.y_true, input.y_pred, input.gates.min_group_size);
            let counts: Vec<(String, crate::Counts)> = audit
                .groups
                .iter()
                .map(|g| (g.group.clone(), g.counts))
                .collect();
            let intervals = bootstrap(
                &counts,
                input.gates.min_group_size,
                input.resamples,
                input.level,
                input.seed.wrapping_add(k as u64),
            );
            // Score metrics over the same groups, in the audit's order (groups without rows
            // are not in the audit).
            let (scores, parity) = match input.scores {
                Some(sc) => {
                    let all = group_scores(&a.codes, &a.labels, sc, input.y_true);
                    let th = parity_thresholds(&a.codes, a.labels.len(), sc, input.threshold);
                    let pick = |g: &str| a.labels.iter().position(|l| l == g);
                    let order: Vec<usize> =
                        audit.groups.iter().filter_map(|g| pick(&g.group)).collect();
                    (
                        order.iter().map(|&i| all[i].clone()).collect(),
                        order.iter().map(|&i| th[i]).collect(),
                    )
                }
                None => (Vec::new(), Vec::new()),
            };
            AttributeReport {
                audit,
                intervals,
                scores,
                parity_thresholds: parity,
            }
        })
        .collect();
    let proxies: Vec<ProxyStrength> = input
        .attributes
        .iter()
        .flat_map(|a| {
            input
                .features
                .iter()
                .map(move |f| proxy_strength(f.name, f.values, f.categorical, a))
        })
        .collect();
    let audits: Vec<AttributeAudit> = reports.iter().map(|r| r.audit.clone()).collect();
    let verdicts = evaluate(input.gates, &audits, &proxies);
    AuditReport {
        threshold: input.threshold,
        resamples: input.resamples,
        rows: input.y_true.len(),
        selected: input.y_pred.iter().filter(|&&p| p != 0).count(),
        positives: input.y_true.iter().filter(|&&t| t != 0).count(),
        passed: verdicts.iter().all(|v| v.passed),
        attributes: reports,
        proxies,
        verdicts,
    }
}

fn pct(x: f64) -> String {
    format!("{:.1}%", x * 100.0)
}

/// The audit in plain words: one sentence per finding, failures first.
pub fn summary(report: &AuditReport) -> Vec<String> {
    let mut out = Vec::new();
    out.push(format!(
        "{} rows audited; {} ({}) selected at a score of {} or more; {} ({}) had the outcome.",
        report.rows,
        report.selected,
        pct(report.selected as f64 / report.rows.max(1) as f64),
        report.threshold,
        report.positives,
        pct(report.positives as f64 / report.rows.max(1) as f64),
    ));
    for v in report.verdicts.iter().filter(|v| !v.passed) {
        let a = report
            .attributes
            .iter()
            .find(|r| r.audit.attribute == v.subject)
            .map(|r| &r.audit);
        let line = match (v.gate.as_str(), a) {
            (_, _) if v.value.is_nan() => format!(
                "FAILED {}: {} has fewer than two groups large enough to compare, so its \
                 disparities cannot be seen.",
                v.gate, v.subject
            ),
            ("min_selection_rate_ratio", Some(a)) => {
                let d = a.demographic_parity.as_ref();
                format!(
                    "FAILED: for {}, the group selected least often ({}) is selected at {:.2} \
                     times the rate of the group selected most often ({}); the limit is {}.",
                    v.subject,
                    d.map_or(String::new(), |d| d.lowest.clone()),
                    v.value,
                    d.map_or(String::new(), |d| d.highest.clone()),
                    v.limit
                )
            }
            ("max_equalized_odds_difference", Some(_)) => format!(
                "FAILED: for {}, true- or false-positive rates differ between groups by {:.3}; \
                 the limit is {}.",
                v.subject, v.value, v.limit
            ),
            ("max_proxy_cramers_v", _) => format!(
                "FLAGGED PROXY: {} (Cramér's V {:.2}, limit {}): the feature reveals the \
                 protected attribute and can carry its bias into the model.",
                v.subject, v.value, v.limit
            ),
            _ => format!(
                "FAILED {}: {} is {:.3}, limit {}.",
                v.gate, v.subject, v.value, v.limit
            ),
        };
        out.push(line);
    }
    for r in &report.attributes {
        let a = &r.audit;
        if let Some(d) = &a.demographic_parity {
            out.push(format!(
                "{}: selection rates range from {} ({}) to {} ({}); true-positive rates differ \
                 by up to {:.3}.",
                a.attribute,
                pct(a
                    .groups
                    .iter()
                    .find(|g| g.group == d.lowest)
                    .map_or(0.0, |g| g.selection_rate)),
                d.lowest,
                pct(a
                    .groups
                    .iter()
                    .find(|g| g.group == d.highest)
                    .map_or(0.0, |g| g.selection_rate)),
                d.highest,
                a.equal_opportunity.as_ref().map_or(0.0, |e| e.difference),
            ));
        }
        let small = a.groups.iter().filter(|g| g.too_small).count();
        if small > 0 {
            out.push(format!(
                "{}: {} group(s) are too small to judge and are left out of the disparities.",
                a.attribute, small
            ));
        }
    }
    out.push(if report.passed {
        "Every fairness gate passed.".to_string()
    } else {
        let n = report.verdicts.iter().filter(|v| !v.passed).count();
        format!(
            "{n} gate check(s) failed: the model may not become active unless an admin records \
             an override with a reason."
        )
    });
    out
}
