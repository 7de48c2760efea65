//! Metrics that need the scores themselves, not only the decisions: per-group AUC, mean score,
//! calibration error, ROC and calibration curves.
//!
//! AUC is exact (Mann–Whitney with ties counted half, as scikit-learn's `roc_auc_score`): one
//! sort of all rows by score, then one walk over blocks of tied scores that keeps, per group,
//! how many negatives lie below. Curves are drawn from fixed score bins (scores are
//! probabilities in [0, 1]), so they cost one pass and stay small in the report.

use serde::Serialize;

/// Score bins of the ROC curve.
pub const ROC_BINS: usize = 100;
/// Equal-width bins of the calibration curve and the expected calibration error.
pub const CALIBRATION_BINS: usize = 10;

/// One bin of a calibration curve.
#[derive(Clone, Copy, Debug, Serialize, PartialEq)]
pub struct CalibrationBin {
    pub mean_score: f64,
    pub observed_rate: f64,
    pub count: u64,
}

/// Score metrics of one group.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct GroupScores {
    pub group: String,
    /// `None` when the group has only one class.
    pub auc: Option<f64>,
    pub mean_score: f64,
    /// Expected calibration error: Σ (bin share) · |mean score − observed rate| over
    /// `CALIBRATION_BINS` equal-width bins.
    pub calibration_error: f64,
    /// ROC points (false-positive rate, true-positive rate) from the highest threshold down,
    /// starting at (0, 0) and ending at (1, 1); empty when the group has only one class.
    pub roc: Vec<(f64, f64)>,
    /// Non-empty calibration bins, lowest scores first.
    pub calibration: Vec<CalibrationBin>,
}

fn bin_of(score: f64, bins: usize) -> usize {
    if score.is_nan() {
        return 0;
    }
    ((score.clamp(0.0, 1.0) * bins as f64) as usize).min(bins - 1)
}

/// Per-group score metrics for `codes` (group per row), `scores` and 0/1 `y_true`.
pub fn group_scores(
    codes: &[u32],
    labels: &[String],
    scores: &[f64],
    y_true: &[u8],
) -> Vec<GroupScores> {
    let g = labels.len();
    let aucs = group_auc(codes, g, scores, y_true);
    // pos/neg counts per (group, ROC bin); sums per (group, calibration bin).
    let mut roc = vec![[0u64; 2]; g * ROC_BINS];
    let mut cal = vec![(0.0f64, 0u64, 0u64); g * CALIBRATION_BINS];
    let mut sum = vec![(0.0f64, 0u64); g];
    for ((&c, &s), &t) in codes.iter().zip(scores).zip(y_true) {
        let c = c as usize;
        roc[c * ROC_BINS + bin_of(s, ROC_BINS)][usize::from(t != 0)] += 1;
        let b = &mut cal[c * CALIBRATION_BINS + bin_of(s, CALIBRATION_BINS)];
        b.0 += s;
        b.1 += u64::from(t != 0);
        b.2 += 1;
        sum[c].0 += s;
        sum[c].1 += 1;
    }
    (0..g)
        .map(|k| {
            let bins = &roc[k * ROC_BINS..(k + 1) * ROC_BINS];
            let (neg, pos) = bins
                .iter()
                .fold((0u64, 0u64), |(n, p), b| (n + b[0], p + b[1]));
            let roc_points = if neg == 0 || pos == 0 {
                Vec::new()
            } else {
                let mut pts = vec![(0.0, 0.0)];
                let (mut fp, mut tp) = (0u64, 0u64);
                for b in bins.iter().rev() {
                    if b[0] + b[1] == 0 {
                        continue;
                    }
                    fp += b[0];
                    tp += b[1];
                    pts.push((fp as f64 / neg as f64, tp as f64 / pos as f64));
                }
                pts
            };
            let n = sum[k].1;
            let calibration: Vec<CalibrationBin> = cal
                [k * CALIBRATION_BINS..(k + 1) * CALIBRATION_BINS]
                .iter()
                .filter(|b| b.2 > 0)
                .map(|b| CalibrationBin {
                    mean_score: b.0 / b.2 as f64,
                    observed_rate: b.1 as f64 / b.2 as f64,
                    count: b.2,
                })
                .collect();
            let calibration_error = if n == 0 {
                0.0
            } else {
                calibration
                    .iter()
                    .map(|b| b.count as f64 / n as f64 * (b.mean_score - b.observed_rate).abs())
                    .sum()
            };
            GroupScores {
                group: labels[k].clone(),
                auc: aucs[k],
                mean_score: if n == 0 { 0.0 } else { sum[k].0 / n as f64 },
                calibration_error,
                roc: roc_points,
                calibration,
            }
        })
        .collect()
}

/// Exact AUC per group (ties count half); `None` for a group with one class only.
pub fn group_auc(
    codes: &[u32],
    n_groups: usize,
    scores: &[f64],
    y_true: &[u8],
) -> Vec<Option<f64>> {
    let mut idx: Vec<u32> = (0..scores.len() as u32).collect();
    idx.sort_unstable_by(|&a, &b| scores[a as usize].total_cmp(&scores[b as usize]));
    // Per group: negatives strictly below the current block, and the sum over positives of
    // (negatives below + half the tied negatives).
    let mut neg_below = vec![0u64; n_groups];
    let mut wins = vec![0.0f64; n_groups];
    let mut pos = vec![0u64; n_groups];
    let mut block_pos = vec![0u64; n_groups];
    let mut block_neg = vec![0u64; n_groups];
    let mut touched: Vec<usize> = Vec::new();
    let mut i = 0;
    while i < idx.len() {
        let s = scores[idx[i] as usize];
        let mut j = i;
        while j < idx.len() && scores[idx[j] as usize].total_cmp(&s).is_eq() {
            let r = idx[j] as usize;
            let c = codes[r] as usize;
            if block_pos[c] == 0 && block_neg[c] == 0 {
                touched.push(c);
            }
            if y_true[r] != 0 {
                block_pos[c] += 1;
            } else {
                block_neg[c] += 1;
            }
            j += 1;
        }
        for &c in &touched {
            let (p, q) = (block_pos[c], block_neg[c]);
            wins[c] += p as f64 * (neg_below[c] as f64 + q as f64 / 2.0);
            pos[c] += p;
            neg_below[c] += q;
            block_pos[c] = 0;
            block_neg[c] = 0;
        }
        touched.clear();
        i = j;
    }
    (0..n_groups)
        .map(|c| {
            let (p, n) = (pos[c], neg_below[c]);
            if p == 0 || n == 0 {
                None
            } else {
                Some(wins[c] / (p as f64 * n as f64))
            }
        })
        .collect()
}

/// Kamiran & Calders' reweighing: the weight of a row in group `g` with label `y` is
/// P(g)·P(y) / P(g, y), so that in the weighted data the label is independent of the group.
/// `codes` are the groups (use an intersection for several attributes).
pub fn reweighing_weights(codes: &[u32], n_groups: usize, y_true: &[u8]) -> Vec<f64> {
    let n = codes.len() as f64;
    let mut joint = vec![[0u64; 2]; n_groups];
    let mut label = [0u64; 2];
    for (&c, &t) in codes.iter().zip(y_true) {
        joint[c as usize][usize::from(t != 0)] += 1;
        label[usize::from(t != 0)] += 1;
    }
    let w: Vec<[f64; 2]> = joint
        .iter()
        .map(|j| {
            let g = (j[0] + j[1]) as f64;
            [0, 1].map(|y| {
                if j[y] == 0 {
                    0.0
                } else {
                    g * label[y] as f64 / (n * j[y] as f64)
                }
            })
        })
        .collect();
    codes
        .iter()
        .zip(y_true)
        .map(|(&c, &t)| w[c as usize][usize::from(t != 0)])
        .collect()
}

/// Per-group thresholds that give each group the selection rate the single `threshold` gives
/// everyone (demographic-parity post-processing). Groups with no rows keep `threshold`.
///
/// These thresholds need the protected attribute at scoring time, which Candor's scoring does
/// not read (protected attributes are only for audits): they are reported to show what parity
/// would cost, and applying them is a decision for the store's compliance officer.
pub fn parity_thresholds(
    codes: &[u32],
    n_groups: usize,
    scores: &[f64],
    threshold: f64,
) -> Vec<f64> {
    let selected = scores.iter().filter(|&&s| s >= threshold).count();
    let rate = selected as f64 / scores.len().max(1) as f64;
    let mut per: Vec<Vec<f64>> = vec![Vec::new(); n_groups];
    for (&c, &s) in codes.iter().zip(scores) {
        per[c as usize].push(s);
    }
    per.into_iter()
        .map(|mut s| {
            if s.is_empty() {
                return threshold;
            }
            s.sort_unstable_by(|a, b| b.total_cmp(a));
            let k = (rate * s.len() as f64).round() as usize;
            if k == 0 {
                // Nobody selected: just above the group's highest score.
                s[0].next_up()
            } else {
                s[k - 1]
            }
        })
        .collect()
}
