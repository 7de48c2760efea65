//! Probability calibration: Platt scaling (a logistic fit on the raw score) and isotonic
//! regression (pool-adjacent-violators), fitted on held-out rows.

use crate::tree::sigmoid;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "method", rename_all = "snake_case")]
pub enum Calibrator {
    /// p = sigmoid(a · raw + b).
    Platt { a: f64, b: f64 },
    /// Step function through (raw, p) knots, linear between them.
    Isotonic { x: Vec<f64>, y: Vec<f64> },
}

impl Calibrator {
    pub fn apply(&self, raw: f64) -> f64 {
        match self {
            Calibrator::Platt { a, b } => sigmoid(a * raw + b),
            Calibrator::Isotonic { x, y } => {
                if x.is_empty() {
                    return sigmoid(raw);
                }
                let i = x.partition_point(|&k| k < raw);
                if i == 0 {
                    y[0]
                } else if i == x.len() {
                    y[x.len() - 1]
                } else {
                    let (x0, x1, y0, y1) = (x[i - 1], x[i], y[i - 1], y[i]);
                    if x1 > x0 {
                        y0 + (y1 - y0) * (raw - x0) / (x1 - x0)
                    } else {
                        y1
                    }
                }
            }
        }
    }
}

/// Platt scaling by Newton's method on the log-likelihood, with Platt's smoothed targets.
pub fn platt(raw: &[f64], y: &[f64]) -> Calibrator {
    let pos = y.iter().filter(|&&t| t > 0.5).count() as f64;
    let neg = y.len() as f64 - pos;
    let hi = (pos + 1.0) / (pos + 2.0);
    let lo = 1.0 / (neg + 2.0);
    let t: Vec<f64> = y.iter().map(|&v| if v > 0.5 { hi } else { lo }).collect();
    let (mut a, mut b) = (1.0f64, 0.0f64);
    for _ in 0..100 {
        let (mut ga, mut gb, mut haa, mut hab, mut hbb) = (0.0, 0.0, 1e-12, 0.0, 1e-12);
        for (&r, &t) in raw.iter().zip(&t) {
            let p = sigmoid(a * r + b);
            let d = p - t;
            let w = p * (1.0 - p);
            ga += d * r;
            gb += d;
            haa += w * r * r;
            hab += w * r;
            hbb += w;
        }
        let det = haa * hbb - hab * hab;
        if det.abs() < 1e-300 {
            break;
        }
        let da = (hbb * ga - hab * gb) / det;
        let db = (haa * gb - hab * ga) / det;
        a -= da;
        b -= db;
        if da.abs() < 1e-10 && db.abs() < 1e-10 {
            break;
        }
    }
    if !(a.is_finite() && b.is_finite()) {
        return Calibrator::Platt { a: 1.0, b: 0.0 };
    }
    Calibrator::Platt { a, b }
}

/// Isotonic regression of outcomes on raw scores (non-decreasing).
pub fn isotonic(raw: &[f64], y: &[f64]) -> Calibrator {
    let mut idx: Vec<usize> = (0..raw.len()).collect();
    idx.sort_unstable_by(|&a, &b| raw[a].total_cmp(&raw[b]));
    // Blocks of (sum y, count, min x, max x).
    let mut blocks: Vec<(f64, f64, f64, f64)> = Vec::new();
    for &i in &idx {
        blocks.push((y[i], 1.0, raw[i], raw[i]));
        while blocks.len() > 1 {
            let n = blocks.len();
            let (a, b) = (blocks[n - 2], blocks[n - 1]);
            if a.0 / a.1 >= b.0 / b.1 {
                blocks[n - 2] = (a.0 + b.0, a.1 + b.1, a.2, b.3);
                blocks.pop();
            } else {
                break;
            }
        }
    }
    let mut x = Vec::new();
    let mut v = Vec::new();
    for (s, c, lo, hi) in blocks {
        let m = s / c;
        x.push(lo);
        v.push(m);
        if hi > lo {
            x.push(hi);
            v.push(m);
        }
    }
    Calibrator::Isotonic { x, y: v }
}
