//! Fairness audits as pure code: slices in, report out.
//!
//! Every metric here depends only on per-group confusion counts (true/false positives and
//! negatives), so one pass over the rows builds a small table of counts per group and every
//! number is read off it. Semantics follow Fairlearn's `MetricFrame` and its disparity
//! functions: a group's rate with an empty denominator is 0 (scikit-learn's `zero_division`
//! default), differences are max − min over groups, ratios min / max.
//!
//! Missing protected values are a group of their own (`MISSING`), never an error. Groups
//! smaller than the minimum size are reported as too small and left out of the disparities.

use serde::Serialize;
use std::collections::HashMap;

pub mod bootstrap;
pub mod dispersion;
pub mod gates;
pub mod proxy;
pub mod report;
pub mod scores;

/// The label of the group of rows whose protected value is missing.
pub const MISSING: &str = "(missing)";

/// One protected attribute, encoded: a group code per row and the groups' labels.
#[derive(Clone, Debug)]
pub struct Attribute {
    pub name: String,
    pub codes: Vec<u32>,
    pub labels: Vec<String>,
}

impl Attribute {
    /// Encodes values (`None` or empty = missing) with labels in order of first appearance.
    pub fn from_values<'a>(name: &str, values: impl IntoIterator<Item = Option<&'a str>>) -> Self {
        let mut index: HashMap<String, u32> = HashMap::new();
        let mut labels = Vec::new();
        let codes = values
            .into_iter()
            .map(|v| {
                let label = match v {
                    Some(s) if !s.trim().is_empty() => s.trim(),
                    _ => MISSING,
                };
                *index.entry(label.to_string()).or_insert_with(|| {
                    labels.push(label.to_string());
                    (labels.len() - 1) as u32
                })
            })
            .collect();
        Attribute {
            name: name.to_string(),
            codes,
            labels,
        }
    }

    /// The intersection of two attributes (`a × b`): labels `"x & y"`, only combinations seen,
    /// in order of first appearance. One pass with a table of the `|a|·|b|` combinations.
    pub fn intersect(a: &Attribute, b: &Attribute) -> Attribute {
        let nb = b.labels.len();
        let mut slot = vec![u32::MAX; a.labels.len() * nb];
        let mut labels = Vec::new();
        let codes = a
            .codes
            .iter()
            .zip(&b.codes)
            .map(|(&x, &y)| {
                let k = x as usize * nb + y as usize;
                if slot[k] == u32::MAX {
                    slot[k] = labels.len() as u32;
                    labels.push(format!(
                        "{} & {}",
                        a.labels[x as usize], b.labels[y as usize]
                    ));
                }
                slot[k]
            })
            .collect();
        Attribute {
            name: format!("{} × {}", a.name, b.name),
            codes,
            labels,
        }
    }
}

/// Confusion counts of one group.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub tp: u64,
    pub fp: u64,
    pub tn: u64,
    #[serde(rename = "fn")]
    pub fn_: u64,
}

fn rate(num: u64, den: u64) -> f64 {
    if den == 0 {
        0.0
    } else {
        num as f64 / den as f64
    }
}

impl Counts {
    pub fn n(&self) -> u64 {
        self.tp + self.fp + self.tn + self.fn_
    }
    pub fn base_rate(&self) -> f64 {
        rate(self.tp + self.fn_, self.n())
    }
    pub fn selection_rate(&self) -> f64 {
        rate(self.tp + self.fp, self.n())
    }
    pub fn tpr(&self) -> f64 {
        rate(self.tp, self.tp + self.fn_)
    }
    pub fn fpr(&self) -> f64 {
        rate(self.fp, self.fp + self.tn)
    }
    pub fn fnr(&self) -> f64 {
        rate(self.fn_, self.tp + self.fn_)
    }
    pub fn precision(&self) -> f64 {
        rate(self.tp, self.tp + self.fp)
    }
    pub fn accuracy(&self) -> f64 {
        rate(self.tp + self.tn, self.n())
    }
}

/// Confusion counts per group code, in one pass. `y_true` and `y_pred` are 0/1.
pub fn group_counts(codes: &[u32], n_groups: usize, y_true: &[u8], y_pred: &[u8]) -> Vec<Counts> {
    let mut flat = vec![0u64; n_groups * 4];
    for ((&g, &t), &p) in codes.iter().zip(y_true).zip(y_pred) {
        flat[g as usize * 4 + (usize::from(t != 0) << 1 | usize::from(p != 0))] += 1;
    }
    flat.chunks(4)
        .map(|c| Counts {
            tn: c[0],
            fp: c[1],
            fn_: c[2],
            tp: c[3],
        })
        .collect()
}

/// One group's metrics, or `too_small`.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct GroupMetrics {
    pub group: String,
    pub count: u64,
    pub too_small: bool,
    pub counts: Counts,
    pub base_rate: f64,
    pub selection_rate: f64,
    pub tpr: f64,
    pub fpr: f64,
    pub fnr: f64,
    pub precision: f64,
    pub accuracy: f64,
    /// Against the attribute's reference group (`None` for too-small groups).
    pub vs_reference: Option<VsReference>,
}

/// One group against the reference group: differences (group − reference) and ratios
/// (group / reference; 0 when the reference's rate is 0).
#[derive(Clone, Copy, Debug, Serialize, PartialEq)]
pub struct VsReference {
    pub selection_rate_difference: f64,
    pub selection_rate_ratio: f64,
    pub tpr_difference: f64,
    pub fpr_difference: f64,
    pub precision_difference: f64,
}

/// A disparity across groups: max − min and min / max (0 when max is 0), and the groups at the
/// extremes.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Disparity {
    pub difference: f64,
    pub ratio: f64,
    pub lowest: String,
    pub highest: String,
}

fn disparity(groups: &[&GroupMetrics], f: impl Fn(&GroupMetrics) -> f64) -> Option<Disparity> {
    let mut it = groups.iter();
    let first = it.next()?;
    let (mut lo, mut hi) = (*first, *first);
    for g in it {
        if f(g) < f(lo) {
            lo = g;
        }
        if f(g) > f(hi) {
            hi = g;
        }
    }
    let (a, b) = (f(lo), f(hi));
    Some(Disparity {
        difference: b - a,
        ratio: if b == 0.0 { 0.0 } else { a / b },
        lowest: lo.group.clone(),
        highest: hi.group.clone(),
    })
}

/// The audit of one attribute (or intersection).
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct AttributeAudit {
    pub attribute: String,
    pub groups: Vec<GroupMetrics>,
    /// The reference group: the largest group big enough to be audited.
    pub reference: Option<String>,
    pub demographic_parity: Option<Disparity>,
    pub equal_opportunity: Option<Disparity>,
    pub false_positive_rate: Option<Disparity>,
    /// Fairlearn's equalized odds: difference = max of the TPR and FPR differences, ratio = min
    /// of their ratios.
    pub equalized_odds_difference: Option<f64>,
    pub equalized_odds_ratio: Option<f64>,
    pub predictive_parity: Option<Disparity>,
    /// Selection-rate ratio below 0.8 (the four-fifths rule of US employment guidance).
    pub four_fifths_violated: Option<bool>,
}

/// Audits one attribute: per-group metrics and disparities over the groups with at least
/// `min_group_size` rows.
pub fn audit_attribute(
    attr: &Attribute,
    y_true: &[u8],
    y_pred: &[u8],
    min_group_size: u64,
) -> AttributeAudit {
    let counts = group_counts(&attr.codes, attr.labels.len(), y_true, y_pred);
    let groups: Vec<(String, Counts)> = attr
        .labels
        .iter()
        .cloned()
        .zip(counts)
        .filter(|(_, c)| c.n() > 0)
        .collect();
    audit_counts(&attr.name, &groups, min_group_size)
}

/// The audit from groups' confusion counts (groups without rows left out by the caller).
pub fn audit_counts(
    attribute: &str,
    groups: &[(String, Counts)],
    min_group_size: u64,
) -> AttributeAudit {
    let groups: Vec<GroupMetrics> = groups
        .iter()
        .map(|(label, c)| GroupMetrics {
            group: label.clone(),
            count: c.n(),
            too_small: c.n() < min_group_size,
            counts: *c,
            base_rate: c.base_rate(),
            selection_rate: c.selection_rate(),
            tpr: c.tpr(),
            fpr: c.fpr(),
            fnr: c.fnr(),
            precision: c.precision(),
            accuracy: c.accuracy(),
            vs_reference: None,
        })
        .collect();
    let reference = groups
        .iter()
        .filter(|g| !g.too_small)
        .max_by_key(|g| g.count)
        .cloned();
    let mut groups = groups;
    if let Some(r) = &reference {
        let ratio = |a: f64, b: f64| if b == 0.0 { 0.0 } else { a / b };
        for g in groups.iter_mut().filter(|g| !g.too_small) {
            g.vs_reference = Some(VsReference {
                selection_rate_difference: g.selection_rate - r.selection_rate,
                selection_rate_ratio: ratio(g.selection_rate, r.selection_rate),
                tpr_difference: g.tpr - r.tpr,
                fpr_difference: g.fpr - r.fpr,
                precision_difference: g.precision - r.precision,
            });
        }
    }
    let usable: Vec<&GroupMetrics> = groups.iter().filter(|g| !g.too_small).collect();
    let dp = disparity(&usable, |g| g.selection_rate);
    let eo = disparity(&usable, |g| g.tpr);
    let fp = disparity(&usable, |g| g.fpr);
    let eod = match (&eo, &fp) {
        (Some(a), Some(b)) => Some(a.difference.max(b.difference)),
        _ => None,
    };
    let eor = match (&eo, &fp) {
        (Some(a), Some(b)) => Some(a.ratio.min(b.ratio)),
        _ => None,
    };
    AttributeAudit {
        attribute: attribute.to_string(),
        reference: reference.map(|r| r.group),
        four_fifths_violated: dp.as_ref().map(|d| d.ratio < 0.8),
        demographic_parity: dp,
        equal_opportunity: eo,
        false_positive_rate: fp,
        equalized_odds_difference: eod,
        equalized_odds_ratio: eor,
        predictive_parity: disparity(&usable, |g| g.precision),
        groups,
    }
}
