//! Gates: the limits a model's audit must meet (from the policy file), and their verdicts.

use crate::AttributeAudit;
use crate::proxy::ProxyStrength;
use serde::Serialize;

/// The limits come from the policy file's `[fairness]` section (defaults when it is absent).
pub use candor_policy::FairnessPolicy as Gates;

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Verdict {
    pub gate: String,
    pub subject: String,
    pub value: f64,
    pub limit: f64,
    pub passed: bool,
}

/// Every gate against every audited attribute and proxy: a verdict each. An attribute whose
/// disparity cannot be computed (fewer than two groups large enough) fails the gate: an audit
/// that cannot see a disparity cannot clear it.
pub fn evaluate(
    gates: &Gates,
    audits: &[AttributeAudit],
    proxies: &[ProxyStrength],
) -> Vec<Verdict> {
    let mut out = Vec::new();
    let mut check = |gate: &str, subject: &str, value: Option<f64>, limit: f64, at_least: bool| {
        let (value, passed) = match value {
            Some(v) if v.is_finite() => (v, if at_least { v >= limit } else { v <= limit }),
            _ => (f64::NAN, false),
        };
        out.push(Verdict {
            gate: gate.into(),
            subject: subject.into(),
            value,
            limit,
            passed,
        });
    };
    for a in audits {
        let usable = a.groups.iter().filter(|g| !g.too_small).count();
        let seen = |v: Option<f64>| if usable >= 2 { v } else { None };
        if let Some(l) = gates.min_selection_rate_ratio {
            check(
                "min_selection_rate_ratio",
                &a.attribute,
                seen(a.demographic_parity.as_ref().map(|d| d.ratio)),
                l,
                true,
            );
        }
        if let Some(l) = gates.max_demographic_parity_difference {
            check(
                "max_demographic_parity_difference",
                &a.attribute,
                seen(a.demographic_parity.as_ref().map(|d| d.difference)),
                l,
                false,
            );
        }
        if let Some(l) = gates.max_equalized_odds_difference {
            check(
                "max_equalized_odds_difference",
                &a.attribute,
                seen(a.equalized_odds_difference),
                l,
                false,
            );
        }
        if let Some(l) = gates.max_equal_opportunity_difference {
            check(
                "max_equal_opportunity_difference",
                &a.attribute,
                seen(a.equal_opportunity.as_ref().map(|d| d.difference)),
                l,
                false,
            );
        }
    }
    if let Some(l) = gates.max_proxy_cramers_v {
        for p in proxies {
            check(
                "max_proxy_cramers_v",
                &format!("{} → {}", p.feature, p.attribute),
                Some(p.cramers_v),
                l,
                false,
            );
        }
    }
    out
}
