//! Bring your own model: LightGBM text models and XGBoost JSON models, loaded into Candor's
//! tree representation so that the same engine scores and explains them.
//!
//! - [`load_lightgbm`]: the text format of LightGBM's `save_model` (versions v3 and v4).
//! - [`load_xgboost`]: the JSON format of XGBoost's `save_model("model.json")` (gbtree and dart).
//!
//! Both return an [`ImportedModel`] whose ensemble reproduces the library's raw scores
//! (`predict(raw_score=True)`, `predict(output_margin=True)`) and TreeSHAP contributions
//! (`pred_contrib=True`, `pred_contribs=True`). The files are untrusted input: anything that
//! is not a well-formed model of a supported kind is a [`MlError::ModelFormat`] naming the tree
//! and key at fault, never a panic.

mod lightgbm;
mod xgboost;

pub use lightgbm::{lightgbm_categories, load_lightgbm};
pub use xgboost::load_xgboost;

use crate::MlError;
use crate::tree::{Ensemble, Tree};
use serde::{Deserialize, Serialize};

/// A model trained elsewhere, in Candor's representation.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ImportedModel {
    pub ensemble: Ensemble,
    /// One name per feature, in the order rows must follow.
    pub feature_names: Vec<String>,
    /// Where the model came from, e.g. `lightgbm v4` or `xgboost 3.2.0`.
    pub source: String,
}

/// Most features an imported model may declare.
const MAX_FEATURES: usize = 1 << 20;
/// Deepest tree accepted: TreeSHAP's per-leaf plans grow with leaves × depth.
const MAX_DEPTH: usize = 256;
/// Most distinct features on one root-to-leaf path: TreeSHAP tracks them in a 64-bit mask.
const MAX_PATH_FEATURES: usize = 64;

/// Checks an imported ensemble: structure ([`Ensemble::validate`]), covers, and the limits of
/// Candor's TreeSHAP.
fn check_ensemble(ensemble: &Ensemble, origin: &str) -> Result<(), MlError> {
    let fail = |m: String| MlError::ModelFormat(format!("{origin} model: {m}"));
    ensemble.validate().map_err(fail)?;
    for (i, t) in ensemble.trees.iter().enumerate() {
        check_tree(t).map_err(|m| fail(format!("tree {i}: {m}")))?;
    }
    Ok(())
}

fn check_tree(t: &Tree) -> Result<(), String> {
    let bad_cover = |c: &f64| !(c.is_finite() && *c >= 0.0);
    if let Some(i) = t.cover.iter().position(bad_cover) {
        return Err(format!("split {i} has a negative or non-finite cover"));
    }
    if let Some(i) = t.leaf_cover.iter().position(bad_cover) {
        return Err(format!("leaf {i} has a negative or non-finite cover"));
    }
    if t.feature.is_empty() {
        return Ok(());
    }
    // Depth-first; `path[..d]` holds the features of the ancestors of a node at depth `d`, and
    // `distinct[d]` how many of them are distinct. The tree is valid, so this terminates.
    let mut path: Vec<u32> = Vec::new();
    let mut distinct: Vec<usize> = vec![0];
    let mut stack = vec![(0i32, 0usize)];
    while let Some((c, d)) = stack.pop() {
        if c < 0 {
            continue;
        }
        let n = c as usize;
        path.truncate(d);
        distinct.truncate(d + 1);
        let f = t.feature[n];
        let seen = path.contains(&f);
        let k = distinct[d] + usize::from(!seen);
        if d + 1 > MAX_DEPTH {
            return Err(format!(
                "deeper than {MAX_DEPTH} splits, which Candor does not import"
            ));
        }
        if k > MAX_PATH_FEATURES {
            return Err(format!(
                "a path splits on more than {MAX_PATH_FEATURES} distinct features, which \
                 Candor's TreeSHAP does not support"
            ));
        }
        path.push(f);
        distinct.push(k);
        stack.push((t.left[n], d + 1));
        stack.push((t.right[n], d + 1));
    }
    Ok(())
}
