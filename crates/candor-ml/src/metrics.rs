//! Metrics on held-out data: AUC, log-loss, Brier score, calibration curve.

use serde::{Deserialize, Serialize};

/// Area under the ROC curve, ties counted half (the Mann–Whitney statistic). `None` when only
/// one class is present.
pub fn auc(scores: &[f64], y: &[f64]) -> Option<f64> {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_unstable_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let pos = y.iter().filter(|&&t| t > 0.5).count() as f64;
    let neg = y.len() as f64 - pos;
    if pos == 0.0 || neg == 0.0 {
        return None;
    }
    // Sum of positive ranks with average ranks for ties.
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && scores[idx[j + 1]] == scores[idx[i]] {
            j += 1;
        }
        let avg_rank = (i + j) as f64 / 2.0 + 1.0;
        for &k in &idx[i..=j] {
            if y[k] > 0.5 {
                rank_sum += avg_rank;
            }
        }
        i = j + 1;
    }
    Some((rank_sum - pos * (pos + 1.0) / 2.0) / (pos * neg))
}

/// Mean negative log-likelihood of probabilities (clipped to [1e-15, 1 − 1e-15]).
pub fn log_loss(p: &[f64], y: &[f64]) -> f64 {
    let s: f64 = p
        .iter()
        .zip(y)
        .map(|(&p, &t)| {
            let p = p.clamp(1e-15, 1.0 - 1e-15);
            -(t * p.ln() + (1.0 - t) * (1.0 - p).ln())
        })
        .sum();
    s / p.len().max(1) as f64
}

/// Mean squared difference between probability and outcome.
pub fn brier(p: &[f64], y: &[f64]) -> f64 {
    p.iter().zip(y).map(|(p, t)| (p - t) * (p - t)).sum::<f64>() / p.len().max(1) as f64
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct CalibrationBin {
    pub lower: f64,
    pub upper: f64,
    pub count: usize,
    pub mean_predicted: f64,
    pub observed_rate: f64,
}

/// Predicted vs observed rate in `bins` equal-width probability bins (empty bins omitted).
pub fn calibration_curve(p: &[f64], y: &[f64], bins: usize) -> Vec<CalibrationBin> {
    let bins = bins.max(1);
    let mut acc = vec![(0usize, 0.0f64, 0.0f64); bins];
    for (&p, &t) in p.iter().zip(y) {
        let b = ((p * bins as f64) as usize).min(bins - 1);
        acc[b].0 += 1;
        acc[b].1 += p;
        acc[b].2 += t;
    }
    acc.iter()
        .enumerate()
        .filter(|(_, a)| a.0 > 0)
        .map(|(i, &(c, sp, st))| CalibrationBin {
            lower: i as f64 / bins as f64,
            upper: (i + 1) as f64 / bins as f64,
            count: c,
            mean_predicted: sp / c as f64,
            observed_rate: st / c as f64,
        })
        .collect()
}

/// Expected calibration error: count-weighted mean |predicted − observed| over the bins.
pub fn expected_calibration_error(curve: &[CalibrationBin]) -> f64 {
    let n: usize = curve.iter().map(|b| b.count).sum();
    if n == 0 {
        return 0.0;
    }
    curve
        .iter()
        .map(|b| b.count as f64 * (b.mean_predicted - b.observed_rate).abs())
        .sum::<f64>()
        / n as f64
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Metrics {
    pub rows: usize,
    pub positives: usize,
    pub auc: Option<f64>,
    pub log_loss: f64,
    pub brier: f64,
    pub calibration_error: f64,
    pub calibration: Vec<CalibrationBin>,
}

pub fn evaluate(p: &[f64], y: &[f64]) -> Metrics {
    let calibration = calibration_curve(p, y, 10);
    Metrics {
        rows: p.len(),
        positives: y.iter().filter(|&&t| t > 0.5).count(),
        auc: auc(p, y),
        log_loss: log_loss(p, y),
        brier: brier(p, y),
        calibration_error: expected_calibration_error(&calibration),
        calibration,
    }
}
