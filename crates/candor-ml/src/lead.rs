//! Lead scoring as one artifact: schema → estimator → calibrated probability → tier → reasons,
//! and the training pipeline that produces it with held-out metrics and a baseline.

use crate::MlError;
use crate::calibrate::{self, Calibrator};
use crate::gbdt::{self, Dataset, GbdtParams, Round};
use crate::linear::{self, Logistic};
use crate::metrics::{self, Metrics};
use crate::table::{RawTable, Schema, Selection};
use crate::tree::Ensemble;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Estimator {
    Gbdt { ensemble: Ensemble },
    Logistic { model: Logistic },
}

impl Estimator {
    pub fn predict_raw(&self, row: &[f64]) -> f64 {
        match self {
            Estimator::Gbdt { ensemble } => ensemble.predict_raw(row),
            Estimator::Logistic { model } => model.predict_raw(row),
        }
    }

    /// Contributions per feature followed by the base value; they sum to the raw output.
    pub fn contributions(&self, row: &[f64]) -> Vec<f64> {
        match self {
            Estimator::Gbdt { ensemble } => ensemble.shap(row),
            Estimator::Logistic { model } => model.contributions(row),
        }
    }
}

/// How far (relative, at least 1 absolute) the sum of contributions may be from the raw score:
/// f64 sums agree to ~1e-12; imported XGBoost models add their trees in f32, as XGBoost does.
const ADDITIVITY_TOLERANCE: f64 = 1e-5;

/// Tier cut-offs on the calibrated probability: A ≥ `a`, B ≥ `b`, C ≥ `c`, else D.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq)]
pub struct Tiers {
    pub a: f64,
    pub b: f64,
    pub c: f64,
}

impl Default for Tiers {
    fn default() -> Self {
        Tiers {
            a: 0.5,
            b: 0.25,
            c: 0.1,
        }
    }
}

impl Tiers {
    pub fn tier(&self, p: f64) -> char {
        if p >= self.a {
            'A'
        } else if p >= self.b {
            'B'
        } else if p >= self.c {
            'C'
        } else {
            'D'
        }
    }
}

/// Everything needed to score and explain a row.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ScoringModel {
    pub schema: Schema,
    pub estimator: Estimator,
    pub calibrator: Option<Calibrator>,
    pub tiers: Tiers,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Raises,
    Lowers,
}

/// One reason: a column's value in plain words and how much it moved the raw score.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Reason {
    pub column: String,
    pub statement: String,
    pub contribution: f64,
    pub direction: Direction,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Scored {
    pub raw: f64,
    pub probability: f64,
    pub tier: char,
    /// Base value of the explanation (raw scale).
    pub base_value: f64,
    /// Per feature contributions (raw scale), same order as `schema.features`.
    pub contributions: Vec<f64>,
    /// Per column, strongest first.
    pub reasons: Vec<Reason>,
}

impl ScoringModel {
    pub fn probability(&self, raw: f64) -> f64 {
        let p = match &self.calibrator {
            Some(c) => c.apply(raw),
            None => crate::tree::sigmoid(raw),
        };
        if p.is_nan() { 0.0 } else { p.clamp(0.0, 1.0) }
    }

    pub fn n_features(&self) -> usize {
        self.schema.features.len()
    }

    /// Scores one encoded row with its explanation.
    /// Scores one encoded row with its explanation. The model's raw output is computed on its
    /// own and must equal the base value plus the contributions, or the row is not
    /// scored: an explanation that does not add up is never shown.
    pub fn score_row(&self, row: &[f64]) -> Result<Scored, MlError> {
        let contrib = self.estimator.contributions(row);
        let (phi, base) = contrib.split_at(self.n_features());
        let raw = self.estimator.predict_raw(row);
        let sum = base[0] + phi.iter().sum::<f64>();
        let adds_up = (raw - sum).abs() <= ADDITIVITY_TOLERANCE * raw.abs().max(1.0);
        if !adds_up {
            return Err(MlError::Value(format!(
                "the explanation does not add up: contributions give {sum}, the model {raw}"
            )));
        }
        let probability = self.probability(raw);
        Ok(Scored {
            raw,
            probability,
            tier: self.tiers.tier(probability),
            base_value: base[0],
            reasons: self.reasons(row, phi),
            contributions: phi.to_vec(),
        })
    }

    /// States each feature's value, orders by |contribution|, drops exact zeros.
    pub fn reasons(&self, row: &[f64], phi: &[f64]) -> Vec<Reason> {
        let mut out: Vec<Reason> = self
            .schema
            .features
            .iter()
            .zip(phi)
            .enumerate()
            .filter(|(_, (_, c))| **c != 0.0 && c.is_finite())
            .map(|(i, (f, &c))| Reason {
                column: f.column.clone(),
                statement: f.describe(row[i]),
                contribution: c,
                direction: if c > 0.0 {
                    Direction::Raises
                } else {
                    Direction::Lowers
                },
            })
            .collect();
        out.sort_by(|a, b| b.contribution.abs().total_cmp(&a.contribution.abs()));
        out
    }
}

/// The top `k` reasons raising and the top `k` lowering the score, each ordered by size.
pub fn top_reasons(reasons: &[Reason], k: usize) -> (Vec<&Reason>, Vec<&Reason>) {
    let up = reasons
        .iter()
        .filter(|r| r.direction == Direction::Raises)
        .take(k)
        .collect();
    let down = reasons
        .iter()
        .filter(|r| r.direction == Direction::Lowers)
        .take(k)
        .collect();
    (up, down)
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct TrainOptions {
    pub gbdt: GbdtParams,
    /// Every `holdout_every`-th row (rows 5, 10, 15, … for 5) is held out for evaluation and
    /// calibration; 0 = no holdout.
    pub holdout_every: usize,
    /// After evaluation, train the final trees on every row with the same settings.
    pub refit: bool,
    pub logistic_lambda: f64,
    pub calibration: CalibrationMethod,
    pub tiers: Tiers,
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions {
            gbdt: GbdtParams::default(),
            holdout_every: 5,
            refit: false,
            logistic_lambda: 1.0,
            calibration: CalibrationMethod::Platt,
            tiers: Tiers::default(),
        }
    }
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum CalibrationMethod {
    Platt,
    Isotonic,
    None,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct DataSummary {
    pub rows: usize,
    pub positives: usize,
    pub train_rows: usize,
    pub holdout_rows: usize,
    pub holdout_rule: String,
    pub columns_used: Vec<String>,
    pub excluded: Vec<String>,
    pub protected: Vec<String>,
    pub features: usize,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct TrainResult {
    pub model: ScoringModel,
    pub data: DataSummary,
    /// Held-out metrics of the calibrated GBDT.
    pub holdout: Option<Metrics>,
    /// Held-out metrics of the logistic-regression baseline.
    pub baseline: Option<Metrics>,
    pub trees: usize,
    /// Mean |contribution| per source column on the holdout (global importance), largest first.
    pub importance: Vec<(String, f64)>,
}

/// Expands features with `levels[f] > 0` values into that many 0/1 indicators (missing or
/// unknown: all 0). Returns the new row-major matrix and its width.
fn one_hot(x: &[f64], nf: usize, levels: &[usize]) -> (Vec<f64>, usize) {
    let width: usize = levels.iter().map(|&k| k.max(1)).sum();
    let n = x.len() / nf.max(1);
    let mut out = Vec::with_capacity(n * width);
    for row in x.chunks(nf) {
        for (v, &k) in row.iter().zip(levels) {
            if k == 0 {
                out.push(*v);
            } else {
                for j in 0..k {
                    out.push(if *v == j as f64 { 1.0 } else { 0.0 });
                }
            }
        }
    }
    (out, width)
}

fn rows_of(x: &[f64], nf: usize, idx: &[usize]) -> Vec<f64> {
    let mut out = Vec::with_capacity(idx.len() * nf);
    for &r in idx {
        out.extend_from_slice(&x[r * nf..(r + 1) * nf]);
    }
    out
}

/// Trains a lead-scoring model from a table. Protected and excluded columns never become
/// features (checked again on the finished schema).
pub fn train_from_table(
    table: &RawTable,
    sel: &Selection,
    weights: Option<&[f64]>,
    opts: &TrainOptions,
    on_round: &mut (dyn FnMut(Round) + Send),
) -> Result<TrainResult, MlError> {
    let y = crate::table::parse_target(table, sel.target, sel.positive)?;
    let schema = crate::table::infer_schema(table, sel)?;
    let mut opts = opts.clone();
    opts.gbdt.categorical = schema
        .features
        .iter()
        .enumerate()
        .filter(|(_, f)| f.categorical)
        .map(|(i, _)| i)
        .collect();
    let opts = &opts;
    for c in schema.column_names() {
        if sel.protected.iter().any(|p| p == c) {
            return Err(MlError::Column(format!(
                "protected attribute {c:?} reached the features"
            )));
        }
    }
    let x = schema.encode(table)?;
    let nf = schema.features.len();
    let n = y.len();
    let (train_idx, hold_idx): (Vec<usize>, Vec<usize>) = if opts.holdout_every >= 2 {
        (0..n).partition(|i| (i + 1) % opts.holdout_every != 0)
    } else {
        ((0..n).collect(), vec![])
    };
    let pick = |v: &[f64], idx: &[usize]| idx.iter().map(|&i| v[i]).collect::<Vec<f64>>();
    let xt = rows_of(&x, nf, &train_idx);
    let yt = pick(&y, &train_idx);
    let wt = weights.map(|w| pick(w, &train_idx));
    let train = Dataset {
        x: &xt,
        n_features: nf,
        y: &yt,
        weight: wt.as_deref(),
    };
    let xh = rows_of(&x, nf, &hold_idx);
    let yh = pick(&y, &hold_idx);
    let hold = Dataset {
        x: &xh,
        n_features: nf,
        y: &yh,
        weight: None,
    };
    let has_holdout = !hold_idx.is_empty() && yh.contains(&1.0) && yh.contains(&0.0);
    let (mut ensemble, _report) = gbdt::train(&train, None, &opts.gbdt, on_round)?;

    let mut holdout = None;
    let mut baseline = None;
    let mut calibrator = None;
    let mut importance = Vec::new();
    if has_holdout {
        let raw = ensemble.predict_raw_batch(&xh);
        calibrator = match opts.calibration {
            CalibrationMethod::Platt => Some(calibrate::platt(&raw, &yh)),
            CalibrationMethod::Isotonic => Some(calibrate::isotonic(&raw, &yh)),
            CalibrationMethod::None => None,
        };
        let p: Vec<f64> = raw
            .iter()
            .map(|&r| {
                calibrator
                    .as_ref()
                    .map_or(crate::tree::sigmoid(r), |c| c.apply(r))
            })
            .collect();
        holdout = Some(metrics::evaluate(&p, &yh));
        // The baseline sees categorical columns as one indicator per value.
        let levels: Vec<usize> = schema
            .features
            .iter()
            .map(|f| {
                if f.categorical {
                    f.levels.as_ref().map_or(0, Vec::len)
                } else {
                    0
                }
            })
            .collect();
        let (xt1, w1) = one_hot(&xt, nf, &levels);
        let (xh1, _) = one_hot(&xh, nf, &levels);
        let train1 = Dataset {
            x: &xt1,
            n_features: w1,
            y: &yt,
            weight: wt.as_deref(),
        };
        let lin = linear::fit(&train1, opts.logistic_lambda)?;
        let lp: Vec<f64> = (0..hold.n_rows())
            .map(|r| crate::tree::sigmoid(lin.predict_raw(&xh1[r * w1..(r + 1) * w1])))
            .collect();
        baseline = Some(metrics::evaluate(&lp, &yh));
        let shap = ensemble.shap_batch(&xh);
        for (r, (row, &raw)) in shap.chunks(nf + 1).zip(&raw).enumerate() {
            let sum: f64 = row.iter().sum();
            let adds_up = (sum - raw).abs() <= ADDITIVITY_TOLERANCE * raw.abs().max(1.0);
            if !adds_up {
                return Err(MlError::Value(format!(
                    "holdout row {r}: explanations do not add up ({sum} vs {raw}); model not registered"
                )));
            }
        }
        let mut per_col = vec![0.0; nf];
        for row in shap.chunks(nf + 1) {
            for (acc, c) in per_col.iter_mut().zip(row) {
                *acc += c.abs();
            }
        }
        let rows = hold.n_rows().max(1) as f64;
        importance = schema
            .features
            .iter()
            .zip(per_col)
            .map(|(f, s)| (f.name.clone(), s / rows))
            .collect();
        importance.sort_by(|a, b| b.1.total_cmp(&a.1));
    }
    if opts.refit && has_holdout {
        let all = Dataset {
            x: &x,
            n_features: nf,
            y: &y,
            weight: weights,
        };
        ensemble = gbdt::train(&all, None, &opts.gbdt, on_round)?.0;
    }
    let trees = ensemble.trees.len();
    let data = DataSummary {
        rows: n,
        positives: y.iter().filter(|&&v| v == 1.0).count(),
        train_rows: if opts.refit && has_holdout {
            n
        } else {
            train_idx.len()
        },
        holdout_rows: hold_idx.len(),
        holdout_rule: if opts.holdout_every >= 2 {
            format!(
                "every {}th row (row numbers counted from 1 after the header)",
                opts.holdout_every
            )
        } else {
            "none".into()
        },
        columns_used: schema.column_names().map(str::to_string).collect(),
        excluded: sel.exclude.to_vec(),
        protected: sel.protected.to_vec(),
        features: nf,
    };
    Ok(TrainResult {
        model: ScoringModel {
            schema,
            estimator: Estimator::Gbdt { ensemble },
            calibrator,
            tiers: opts.tiers,
        },
        data,
        holdout,
        baseline,
        trees,
        importance,
    })
}
