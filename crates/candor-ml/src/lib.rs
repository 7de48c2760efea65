//! Candor's models as pure code: slices in, model out, no I/O.
//!
//! - [`tree`]: one tree representation for Candor's own and imported (LightGBM, XGBoost)
//!   trees, prediction, and exact path-dependent TreeSHAP.
//! - [`gbdt`]: histogram-based gradient-boosted trees for binary outcomes.
//! - [`linear`]: L2-regularized logistic regression (the baseline).
//! - [`calibrate`]: Platt scaling and isotonic regression.
//! - [`metrics`]: AUC, log-loss, Brier score, calibration curve.
//! - [`table`]: CSV as users have them → typed columns → a feature matrix.
//! - [`import`]: LightGBM text models and XGBoost JSON models.

pub mod calibrate;
pub mod gbdt;
pub mod import;
pub mod lead;
pub mod linear;
pub mod metrics;
pub mod recs;
pub mod table;
pub mod tree;
pub mod uplift;

mod error;
pub use error::MlError;
