//! L2-regularized logistic regression, the baseline next to the trees. Features are
//! standardized (missing values imputed with the training mean) and the fit is Newton's method
//! with a Cholesky solve, so it converges in a handful of iterations for tens of features.

use crate::MlError;
use crate::gbdt::Dataset;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Logistic {
    pub means: Vec<f64>,
    pub scales: Vec<f64>,
    /// Coefficients on standardized features.
    pub coef: Vec<f64>,
    pub intercept: f64,
}

impl Logistic {
    fn z(&self, row: &[f64], j: usize) -> f64 {
        let x = row[j];
        if x.is_nan() {
            0.0
        } else {
            (x - self.means[j]) / self.scales[j]
        }
    }

    pub fn predict_raw(&self, row: &[f64]) -> f64 {
        self.intercept
            + (0..self.coef.len())
                .map(|j| self.coef[j] * self.z(row, j))
                .sum::<f64>()
    }

    /// Exact SHAP values of the linear model (independent features): the contribution of each
    /// feature relative to the training mean, then the base value (the intercept).
    pub fn contributions(&self, row: &[f64]) -> Vec<f64> {
        let mut out: Vec<f64> = (0..self.coef.len())
            .map(|j| self.coef[j] * self.z(row, j))
            .collect();
        out.push(self.intercept);
        out
    }
}

/// Fits with penalty `lambda · ||coef||² / 2` (the intercept is not penalized).
pub fn fit(data: &Dataset, lambda: f64) -> Result<Logistic, MlError> {
    data.check()?;
    let (n, d) = (data.n_rows(), data.n_features);
    let mut means = vec![0.0; d];
    let mut scales = vec![1.0; d];
    for j in 0..d {
        let vals: Vec<f64> = (0..n)
            .map(|r| data.x[r * d + j])
            .filter(|v| !v.is_nan())
            .collect();
        if vals.is_empty() {
            continue;
        }
        let m = vals.iter().sum::<f64>() / vals.len() as f64;
        let var = vals.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / vals.len() as f64;
        means[j] = m;
        scales[j] = if var > 1e-24 { var.sqrt() } else { 1.0 };
    }
    let mut model = Logistic {
        means,
        scales,
        coef: vec![0.0; d],
        intercept: 0.0,
    };
    let w = |r: usize| data.weight.map_or(1.0, |w| w[r]);
    let dim = d + 1;
    let mut z = vec![0.0; n * d];
    for r in 0..n {
        for j in 0..d {
            z[r * d + j] = model.z(&data.x[r * d..(r + 1) * d], j);
        }
    }
    for _ in 0..50 {
        let mut grad = vec![0.0; dim];
        let mut hess = vec![0.0; dim * dim];
        for r in 0..n {
            let zr = &z[r * d..(r + 1) * d];
            let raw = model.intercept + zr.iter().zip(&model.coef).map(|(a, b)| a * b).sum::<f64>();
            let p = crate::tree::sigmoid(raw);
            let wr = w(r);
            let g = (p - data.y[r]) * wr;
            let h = (p * (1.0 - p)).max(1e-12) * wr;
            // Index 0 is the intercept.
            grad[0] += g;
            hess[0] += h;
            for j in 0..d {
                grad[j + 1] += g * zr[j];
                hess[j + 1] += h * zr[j];
                for k in 0..=j {
                    hess[(j + 1) * dim + k + 1] += h * zr[j] * zr[k];
                }
            }
        }
        for j in 0..d {
            grad[j + 1] += lambda * model.coef[j];
            hess[(j + 1) * dim + j + 1] += lambda;
        }
        for j in 1..dim {
            hess[j * dim] = hess[j];
        }
        let step = cholesky_solve(&mut hess, dim, &grad)
            .ok_or_else(|| MlError::Value("logistic regression: singular system".into()))?;
        model.intercept -= step[0];
        for j in 0..d {
            model.coef[j] -= step[j + 1];
        }
        if step.iter().map(|s| s.abs()).fold(0.0, f64::max) < 1e-9 {
            break;
        }
    }
    if !model.intercept.is_finite() || model.coef.iter().any(|c| !c.is_finite()) {
        return Err(MlError::Value(
            "logistic regression did not converge".into(),
        ));
    }
    Ok(model)
}

/// Solves `A x = b` for symmetric positive-definite `A` (lower triangle used, overwritten).
fn cholesky_solve(a: &mut [f64], n: usize, b: &[f64]) -> Option<Vec<f64>> {
    for j in 0..n {
        let mut s = a[j * n + j];
        for k in 0..j {
            s -= a[j * n + k] * a[j * n + k];
        }
        if s <= 0.0 {
            // Tiny ridge keeps near-collinear one-hot columns solvable.
            s += 1e-9;
            if s <= 0.0 {
                return None;
            }
        }
        let l = s.sqrt();
        a[j * n + j] = l;
        for i in j + 1..n {
            let mut s = a[i * n + j];
            for k in 0..j {
                s -= a[i * n + k] * a[j * n + k];
            }
            a[i * n + j] = s / l;
        }
    }
    let mut y = b.to_vec();
    for i in 0..n {
        for k in 0..i {
            y[i] -= a[i * n + k] * y[k];
        }
        y[i] /= a[i * n + i];
    }
    for i in (0..n).rev() {
        for k in i + 1..n {
            y[i] -= a[k * n + i] * y[k];
        }
        y[i] /= a[i * n + i];
    }
    Some(y)
}
