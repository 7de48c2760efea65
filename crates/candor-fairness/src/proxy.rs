//! Proxy detection: how much a feature reveals a protected attribute.
//!
//! For each feature: Cramér's V and mutual information between the (binned) feature and the
//! attribute, and the AUC of the feature alone as a classifier of each group (one against the
//! rest; the best group, and max(AUC, 1 − AUC), so direction does not matter). Numeric
//! features are cut into up to 10 quantile bins; missing values are a bin of their own.

use crate::Attribute;
use serde::Serialize;

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ProxyStrength {
    pub feature: String,
    pub attribute: String,
    pub cramers_v: f64,
    pub mutual_information: f64,
    /// The best one-group-against-the-rest AUC of the feature alone.
    pub auc: f64,
    pub auc_group: String,
}

/// Bin codes of a feature: categories as they are, numbers by deciles, NaN as the last bin.
fn bins(values: &[f64], categorical: bool) -> (Vec<u32>, usize) {
    let n_nan = values.iter().filter(|v| v.is_nan()).count();
    if categorical {
        let max = values
            .iter()
            .filter(|v| !v.is_nan())
            .fold(0.0f64, |a, &b| a.max(b)) as usize;
        let nan_bin = max + 1;
        let codes = values
            .iter()
            .map(|&v| {
                if v.is_nan() {
                    nan_bin as u32
                } else {
                    v.max(0.0) as u32
                }
            })
            .collect();
        return (codes, nan_bin + usize::from(n_nan > 0));
    }
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| !v.is_nan()).collect();
    sorted.sort_by(f64::total_cmp);
    let mut cuts: Vec<f64> = (1..10)
        .filter_map(|i| sorted.get(i * sorted.len() / 10).copied())
        .collect();
    cuts.dedup();
    let nan_bin = cuts.len() + 1;
    let codes = values
        .iter()
        .map(|&v| {
            if v.is_nan() {
                nan_bin as u32
            } else {
                cuts.partition_point(|&c| c <= v) as u32
            }
        })
        .collect();
    (codes, nan_bin + usize::from(n_nan > 0))
}

/// Cramér's V and mutual information (nats) of two code vectors.
pub fn association(a: &[u32], na: usize, b: &[u32], nb: usize) -> (f64, f64) {
    let mut table = vec![0u64; na * nb];
    for (&x, &y) in a.iter().zip(b) {
        table[x as usize * nb + y as usize] += 1;
    }
    let n: u64 = table.iter().sum();
    if n == 0 {
        return (0.0, 0.0);
    }
    let rows: Vec<u64> = (0..na)
        .map(|i| table[i * nb..(i + 1) * nb].iter().sum())
        .collect();
    let cols: Vec<u64> = (0..nb)
        .map(|j| (0..na).map(|i| table[i * nb + j]).sum())
        .collect();
    let nf = n as f64;
    let (mut chi2, mut mi) = (0.0, 0.0);
    for i in 0..na {
        for j in 0..nb {
            let e = rows[i] as f64 * cols[j] as f64 / nf;
            let o = table[i * nb + j] as f64;
            if e > 0.0 {
                chi2 += (o - e) * (o - e) / e;
            }
            if o > 0.0 {
                mi += o / nf * (o * nf / (rows[i] as f64 * cols[j] as f64)).ln();
            }
        }
    }
    let r = rows.iter().filter(|&&c| c > 0).count();
    let c = cols.iter().filter(|&&c| c > 0).count();
    let k = r.min(c);
    let v = if k > 1 {
        (chi2 / (nf * (k - 1) as f64)).sqrt()
    } else {
        0.0
    };
    (v, mi)
}

/// AUC (Mann–Whitney, ties counted half) of a score that is constant within each bin, from the
/// per-bin counts of positives and negatives: bins are sorted by score and bins with equal
/// scores form one tie block. 0.5 if one class is empty.
fn binned_auc(score: &[f64], pos: &[u64], neg: &[u64]) -> f64 {
    let (p, n): (u64, u64) = (pos.iter().sum(), neg.iter().sum());
    if p == 0 || n == 0 {
        return 0.5;
    }
    let mut order: Vec<usize> = (0..score.len()).collect();
    order.sort_by(|&a, &b| score[a].total_cmp(&score[b]));
    let (mut wins, mut neg_below) = (0.0f64, 0u64);
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        let (mut bp, mut bn) = (0u64, 0u64);
        while j < order.len() && score[order[j]] == score[order[i]] {
            bp += pos[order[j]];
            bn += neg[order[j]];
            j += 1;
        }
        wins += bp as f64 * (neg_below as f64 + bn as f64 / 2.0);
        neg_below += bn;
        i = j;
    }
    wins / (p as f64 * n as f64)
}

/// How strongly `values` (one feature) reveals `attr`.
pub fn proxy_strength(
    feature: &str,
    values: &[f64],
    categorical: bool,
    attr: &Attribute,
) -> ProxyStrength {
    let (codes, nbins) = bins(values, categorical);
    let (cramers_v, mutual_information) =
        association(&codes, nbins, &attr.codes, attr.labels.len());
    // The feature as a score: its bin's share of each group (target encoding), so categories
    // and bins are ordered by how typical they are of the group. The score is constant within
    // a bin, so the AUC comes from the bin × group table alone.
    let ng = attr.labels.len();
    let mut table = vec![0u64; nbins * ng];
    for (&b, &g) in codes.iter().zip(&attr.codes) {
        table[b as usize * ng + g as usize] += 1;
    }
    let in_bin: Vec<u64> = (0..nbins)
        .map(|b| table[b * ng..(b + 1) * ng].iter().sum())
        .collect();
    let mut best = (0.5, String::new());
    for (g, label) in attr.labels.iter().enumerate() {
        let pos: Vec<u64> = (0..nbins).map(|b| table[b * ng + g]).collect();
        let neg: Vec<u64> = (0..nbins).map(|b| in_bin[b] - pos[b]).collect();
        let score: Vec<f64> = (0..nbins)
            .map(|b| {
                if in_bin[b] == 0 {
                    0.0
                } else {
                    pos[b] as f64 / in_bin[b] as f64
                }
            })
            .collect();
        let a = binned_auc(&score, &pos, &neg);
        let a = a.max(1.0 - a);
        if a > best.0 {
            best = (a, label.clone());
        }
    }
    ProxyStrength {
        feature: feature.to_string(),
        attribute: attr.name.clone(),
        cramers_v,
        mutual_information,
        auc: best.0,
        auc_group: best.1,
    }
}
