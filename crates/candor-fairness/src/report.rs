//! One audit: every protected attribute and every pair of them, with bootstrap intervals,
//! proxy strengths of the model's features, and the gates' verdicts.

use crate::bootstrap::{AttributeIntervals, bootstrap};
use crate::gates::{Gates, Verdict, evaluate};
use crate::proxy::{ProxyStrength, proxy_strength};
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
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct AuditReport {
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
            AttributeReport { audit, intervals }
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
        rows: input.y_true.len(),
        selected: input.y_pred.iter().filter(|&&p| p != 0).count(),
        positives: input.y_true.iter().filter(|&&t| t != 0).count(),
        passed: verdicts.iter().all(|v| v.passed),
        attributes: reports,
        proxies,
        verdicts,
    }
}
