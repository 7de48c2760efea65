//! Bootstrap confidence intervals drawn on confusion counts.
//!
//! Every metric is a function of a group's four confusion counts, and resampling a group's
//! `n` rows with replacement gives counts distributed Multinomial(`n`, observed shares). So a
//! stratified bootstrap (each group resampled to its own size: no resample misses a group)
//! draws four counts per group from that multinomial, exactly, instead of touching rows:
//! 1,000 resamples cost microseconds whatever the number of rows.

use crate::{Counts, audit_counts};
use serde::Serialize;

/// SplitMix64: small, seeded, deterministic.
pub struct Rng(pub u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// An exact Binomial(`n`, `p`) draw: inversion for small means, Hörmann's BTRS
    /// (transformed rejection with squeeze, 1993) otherwise.
    pub fn binomial(&mut self, n: u64, p: f64) -> u64 {
        if n == 0 || p <= 0.0 {
            return 0;
        }
        if p >= 1.0 {
            return n;
        }
        if p > 0.5 {
            return n - self.binomial(n, 1.0 - p);
        }
        let nf = n as f64;
        let q = 1.0 - p;
        if nf * p < 10.0 {
            // Inversion: walk the CDF from 0.
            let s = p / q;
            let a = (nf + 1.0) * s;
            let mut r = q.powf(nf);
            let mut u = self.uniform();
            let mut k = 0u64;
            while u > r {
                u -= r;
                k += 1;
                if k > n {
                    return n;
                }
                r *= a / k as f64 - s;
            }
            return k;
        }
        let spq = (nf * p * q).sqrt();
        let b = 1.15 + 2.53 * spq;
        let a = -0.0873 + 0.0248 * b + 0.01 * p;
        let c = nf * p + 0.5;
        let v_r = 0.92 - 4.2 / b;
        let alpha = (2.83 + 5.1 / b) * spq;
        let lpq = (p / q).ln();
        let m = ((nf + 1.0) * p).floor();
        let h = ln_factorial(m) + ln_factorial(nf - m);
        loop {
            let u = self.uniform() - 0.5;
            let v = self.uniform();
            let us = 0.5 - u.abs();
            let k = ((2.0 * a / us + b) * u + c).floor();
            if k < 0.0 || k > nf {
                continue;
            }
            if us >= 0.07 && v <= v_r {
                return k as u64;
            }
            let v = (v * alpha / (a / (us * us) + b)).ln();
            if v <= h - ln_factorial(k) - ln_factorial(nf - k) + (k - m) * lpq {
                return k as u64;
            }
        }
    }

    /// An exact multinomial draw of `n` over `weights` (by conditional binomials).
    pub fn multinomial(&mut self, n: u64, weights: &[u64]) -> Vec<u64> {
        let mut left_n = n;
        let mut left_w: u64 = weights.iter().sum();
        let mut out = Vec::with_capacity(weights.len());
        for &w in weights {
            let k = if left_w == 0 {
                0
            } else {
                self.binomial(left_n, w as f64 / left_w as f64)
            };
            out.push(k);
            left_n -= k;
            left_w -= w;
        }
        out
    }
}

/// ln(x!) for whole x ≥ 0: exact sums below 20, Stirling's series above (error < 1e-13).
fn ln_factorial(x: f64) -> f64 {
    if x < 20.0 {
        let mut s = 0.0;
        let mut i = 2.0;
        while i <= x {
            s += f64::ln(i);
            i += 1.0;
        }
        return s;
    }
    let x1 = x + 1.0;
    (x1 - 0.5) * x1.ln() - x1 + 0.5 * (2.0 * std::f64::consts::PI).ln() + 1.0 / (12.0 * x1)
        - 1.0 / (360.0 * x1.powi(3))
        + 1.0 / (1260.0 * x1.powi(5))
}

/// A percentile interval.
#[derive(Clone, Copy, Debug, Serialize, PartialEq)]
pub struct Interval {
    pub low: f64,
    pub high: f64,
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let pos = q * (sorted.len() - 1) as f64;
    let (i, frac) = (pos.floor() as usize, pos.fract());
    if i + 1 < sorted.len() {
        sorted[i] * (1.0 - frac) + sorted[i + 1] * frac
    } else {
        sorted[i]
    }
}

/// Intervals of one attribute's headline numbers.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct AttributeIntervals {
    /// Per group (same order as the audit's groups): selection rate and TPR.
    pub selection_rate: Vec<Interval>,
    pub tpr: Vec<Interval>,
    pub demographic_parity_difference: Option<Interval>,
    pub demographic_parity_ratio: Option<Interval>,
    pub equalized_odds_difference: Option<Interval>,
}

/// Stratified bootstrap over groups' confusion counts: `resamples` draws, seeded, `level`
/// (e.g. 0.95) percentile intervals. Groups below `min_group_size` stay out of disparities.
pub fn bootstrap(
    groups: &[(String, Counts)],
    min_group_size: u64,
    resamples: usize,
    level: f64,
    seed: u64,
) -> AttributeIntervals {
    let mut rng = Rng(seed);
    let g = groups.len();
    let mut sel: Vec<Vec<f64>> = vec![Vec::with_capacity(resamples); g];
    let mut tpr: Vec<Vec<f64>> = vec![Vec::with_capacity(resamples); g];
    let (mut dpd, mut dpr, mut eod) = (Vec::new(), Vec::new(), Vec::new());
    let mut drawn: Vec<(String, Counts)> = groups.to_vec();
    for _ in 0..resamples {
        for (i, (_, c)) in groups.iter().enumerate() {
            let k = rng.multinomial(c.n(), &[c.tp, c.fp, c.tn, c.fn_]);
            let d = Counts {
                tp: k[0],
                fp: k[1],
                tn: k[2],
                fn_: k[3],
            };
            sel[i].push(d.selection_rate());
            tpr[i].push(d.tpr());
            drawn[i].1 = d;
        }
        let a = audit_counts("", &drawn, min_group_size);
        if let Some(d) = &a.demographic_parity {
            dpd.push(d.difference);
            dpr.push(d.ratio);
        }
        if let Some(e) = a.equalized_odds_difference {
            eod.push(e);
        }
    }
    let (lo, hi) = ((1.0 - level) / 2.0, 1.0 - (1.0 - level) / 2.0);
    let interval = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        Interval {
            low: percentile(&v, lo),
            high: percentile(&v, hi),
        }
    };
    let opt = |v: Vec<f64>| {
        if v.is_empty() {
            None
        } else {
            Some(interval(v))
        }
    };
    AttributeIntervals {
        selection_rate: sel.into_iter().map(interval).collect(),
        tpr: tpr.into_iter().map(interval).collect(),
        demographic_parity_difference: opt(dpd),
        demographic_parity_ratio: opt(dpr),
        equalized_odds_difference: opt(eod),
    }
}
