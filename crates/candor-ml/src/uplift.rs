//! Uplift of a campaign against a randomized holdout: the difference in an outcome's rate (or
//! mean) between people who were emailed and people who were randomly not, with a 95% interval
//! (normal approximation, unpooled standard error: Wald for rates, Welch for means) and a
//! two-sided p-value; overall and within segments.

use std::collections::BTreeMap;

use serde::Serialize;

/// The 97.5% quantile of the standard normal distribution.
pub const Z95: f64 = 1.959_963_984_540_054;

/// Running sums of one outcome in one group.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Sums {
    pub n: u64,
    pub sum: f64,
    pub sum_sq: f64,
}

impl Sums {
    pub fn add(&mut self, x: f64) {
        self.n += 1;
        self.sum += x;
        self.sum_sq += x * x;
    }

    pub fn mean(&self) -> f64 {
        if self.n == 0 {
            0.0
        } else {
            self.sum / self.n as f64
        }
    }

    /// Sample variance (n − 1).
    pub fn variance(&self) -> f64 {
        if self.n < 2 {
            return 0.0;
        }
        let n = self.n as f64;
        ((self.sum_sq - self.sum * self.sum / n) / (n - 1.0)).max(0.0)
    }
}

/// The effect of treatment on one outcome.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Effect {
    pub treated: f64,
    pub control: f64,
    /// treated − control.
    pub uplift: f64,
    pub ci_low: f64,
    pub ci_high: f64,
    /// uplift ÷ control (`None` when the control rate is 0).
    pub relative: Option<f64>,
    pub z: Option<f64>,
    pub p_value: Option<f64>,
    pub n_treated: u64,
    pub n_control: u64,
}

/// The effect on an outcome: for a 0/1 outcome the variances are p(1 − p) (Wald), otherwise
/// the sample variances (Welch).
pub fn effect(t: &Sums, c: &Sums, binary: bool) -> Effect {
    let (mt, mc) = (t.mean(), c.mean());
    let var = |s: &Sums, m: f64| {
        if s.n == 0 {
            0.0
        } else if binary {
            m * (1.0 - m) / s.n as f64
        } else {
            s.variance() / s.n as f64
        }
    };
    let se = (var(t, mt) + var(c, mc)).sqrt();
    let uplift = mt - mc;
    let z = (se > 0.0).then(|| uplift / se);
    Effect {
        treated: mt,
        control: mc,
        uplift,
        ci_low: uplift - Z95 * se,
        ci_high: uplift + Z95 * se,
        relative: (mc > 0.0).then(|| uplift / mc),
        z,
        p_value: z.map(|z| erfc(z.abs() / std::f64::consts::SQRT_2)),
        n_treated: t.n,
        n_control: c.n,
    }
}

/// Φ(x), from `erfc`.
pub fn normal_cdf(x: f64) -> f64 {
    0.5 * erfc(-x / std::f64::consts::SQRT_2)
}

/// The complementary error function: 1 − (Maclaurin series of erf) below 2, Laplace's
/// continued fraction (evaluated with Lentz's method) above, where it converges fast.
fn erfc(x: f64) -> f64 {
    if x < 0.0 {
        return 2.0 - erfc(-x);
    }
    if x < 2.0 {
        return 1.0 - erf_series(x);
    }
    let tiny = 1e-300;
    let mut f = x;
    let mut c = x;
    let mut d = 0.0;
    for i in 1..500 {
        let a = i as f64 / 2.0;
        d = x + a * d;
        d = if d.abs() < tiny { tiny } else { d };
        c = x + a / c;
        c = if c.abs() < tiny { tiny } else { c };
        d = 1.0 / d;
        let delta = c * d;
        f *= delta;
        if (delta - 1.0).abs() < 1e-16 {
            break;
        }
    }
    (-x * x).exp() / (f * std::f64::consts::PI.sqrt())
}

fn erf_series(x: f64) -> f64 {
    // erf(x) = 2/√π Σ (−1)^n x^(2n+1) / (n! (2n+1))
    let mut term = x;
    let mut sum = x;
    let x2 = x * x;
    for n in 1..60 {
        term *= -x2 / n as f64;
        let add = term / (2 * n + 1) as f64;
        sum += add;
        if add.abs() < 1e-17 * sum.abs() {
            break;
        }
    }
    2.0 / std::f64::consts::PI.sqrt() * sum
}

/// One outcome column.
#[derive(Clone, Debug)]
pub struct Outcome<'a> {
    pub name: &'a str,
    pub values: &'a [f64],
    pub binary: bool,
}

/// One segmenting attribute.
#[derive(Clone, Debug)]
pub struct Segmenter<'a> {
    pub name: &'a str,
    pub values: &'a [String],
}

/// A treatment's effects on each outcome.
#[derive(Clone, Debug, Serialize)]
pub struct ArmEffects {
    pub n_treated: u64,
    pub n_control: u64,
    pub effects: BTreeMap<String, Effect>,
}

/// One treatment (journey) against the holdout.
#[derive(Clone, Debug, Serialize)]
pub struct TreatmentReport {
    pub treatment: String,
    pub overall: ArmEffects,
    /// Attribute → value → effects within that segment.
    pub by_segment: BTreeMap<String, BTreeMap<String, ArmEffects>>,
}

/// The whole report.
#[derive(Clone, Debug, Serialize)]
pub struct UpliftReport {
    pub control: String,
    pub rows: usize,
    pub treatments: Vec<TreatmentReport>,
}

/// Effects of every arm other than `control` against it, overall and per segment value.
/// `arms[i]` is row i's arm.
pub fn uplift_report(
    arms: &[String],
    control: &str,
    outcomes: &[Outcome<'_>],
    segments: &[Segmenter<'_>],
) -> UpliftReport {
    // (arm, segment attr index or usize::MAX for overall, segment value) → sums per outcome.
    type Key = (String, usize, String);
    let mut sums: BTreeMap<Key, Vec<Sums>> = BTreeMap::new();
    for (i, arm) in arms.iter().enumerate() {
        let mut keys = vec![(arm.clone(), usize::MAX, String::new())];
        for (a, s) in segments.iter().enumerate() {
            keys.push((arm.clone(), a, s.values[i].clone()));
        }
        for k in keys {
            let e = sums
                .entry(k)
                .or_insert_with(|| vec![Sums::default(); outcomes.len()]);
            for (o, out) in outcomes.iter().enumerate() {
                e[o].add(out.values[i]);
            }
        }
    }
    let empty = vec![Sums::default(); outcomes.len()];
    let effects = |t: &[Sums], c: &[Sums]| ArmEffects {
        n_treated: t.first().map_or(0, |s| s.n),
        n_control: c.first().map_or(0, |s| s.n),
        effects: outcomes
            .iter()
            .enumerate()
            .map(|(o, out)| (out.name.to_string(), effect(&t[o], &c[o], out.binary)))
            .collect(),
    };
    let mut treatments: Vec<String> = arms
        .iter()
        .filter(|a| a.as_str() != control)
        .cloned()
        .collect();
    treatments.sort();
    treatments.dedup();
    let treatments = treatments
        .into_iter()
        .map(|t| {
            let get = |arm: &str, a: usize, v: &str| {
                sums.get(&(arm.to_string(), a, v.to_string()))
                    .unwrap_or(&empty)
            };
            let overall = effects(get(&t, usize::MAX, ""), get(control, usize::MAX, ""));
            let mut by_segment = BTreeMap::new();
            for (a, s) in segments.iter().enumerate() {
                let mut values: Vec<&String> = s.values.iter().collect();
                values.sort();
                values.dedup();
                let per: BTreeMap<String, ArmEffects> = values
                    .into_iter()
                    .map(|v| (v.clone(), effects(get(&t, a, v), get(control, a, v))))
                    .collect();
                by_segment.insert(s.name.to_string(), per);
            }
            TreatmentReport {
                treatment: t,
                overall,
                by_segment,
            }
        })
        .collect();
    UpliftReport {
        control: control.to_string(),
        rows: arms.len(),
        treatments,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_cdf_matches_known_values() {
        for (x, want) in [
            (0.0, 0.5),
            (1.959_963_984_540_054, 0.975),
            (-1.0, 0.158_655_253_931_457_05),
            (3.0, 0.998_650_101_968_369_9),
            (-6.0, 9.865_876_450_376_98e-10),
            (0.3, 0.617_911_422_188_953_1),
        ] {
            let got = normal_cdf(x);
            assert!(
                (got - want).abs() <= 1e-12 * want.max(1e-3),
                "Φ({x}) = {got}, want {want}"
            );
        }
    }

    #[test]
    fn proportion_effect_by_hand() {
        // 30/100 vs 20/100: diff 0.1, se = sqrt(.21/100 + .16/100) = 0.060827625.
        let mut t = Sums::default();
        let mut c = Sums::default();
        for i in 0..100 {
            t.add(f64::from(u8::from(i < 30)));
            c.add(f64::from(u8::from(i < 20)));
        }
        let e = effect(&t, &c, true);
        let se = (0.21f64 / 100.0 + 0.16 / 100.0).sqrt();
        assert!((e.uplift - 0.1).abs() < 1e-12);
        assert!((e.ci_high - (0.1 + Z95 * se)).abs() < 1e-12);
        assert!((e.relative.unwrap_or_default() - 0.5).abs() < 1e-12);
        assert!((e.z.unwrap_or_default() - 0.1 / se).abs() < 1e-12);
    }
}
