//! XGBoost's JSON model format, as `Booster.save_model("model.json")` writes it (XGBoost 1.x to
//! 3.x), for the `gbtree` and `dart` boosters.
//!
//! XGBoost numbers a tree's nodes from the root 0; a node with `left_children == -1` is a leaf
//! whose value (already multiplied by the learning rate) is its `split_conditions` entry.
//! Internal nodes are renumbered depth-first (root 0) and leaves in the order they are met.
//!
//! - XGBoost compares in `f32`: `x < split_condition` goes left, NaN takes the default
//!   direction. Splits get [`STRICT_F32`] | missing NaN | [`DEFAULT_LEFT`] when `default_left`.
//!   Only NaN is missing: a model trained with another `missing` sentinel needs its rows
//!   converted to NaN first.
//! - Covers are `sum_hessian`, as XGBoost's TreeSHAP uses.
//! - `base_score` is in output space (a probability for the logistic objectives); the base score
//!   of the ensemble is the margin XGBoost derives from it (`logit(base_score)`).
//! - `dart`: each tree's leaf values are multiplied by its `weight_drop`.
//! - Categorical splits, `gblinear`, multi-class and multi-target models are rejected.

use super::{ImportedModel, MAX_FEATURES, check_ensemble};
use crate::MlError;
use crate::tree::{DEFAULT_LEFT, Ensemble, Link, MISSING_NAN, STRICT_F32, Tree, missing_flags};
use serde_json::Value;

const ORIGIN: &str = "XGBoost";

fn err(msg: impl std::fmt::Display) -> MlError {
    MlError::ModelFormat(format!("{ORIGIN} model: {msg}"))
}

/// Loads an XGBoost JSON model (the contents of the file written by `save_model("m.json")`).
pub fn load_xgboost(json: &str) -> Result<ImportedModel, MlError> {
    let root: Value = serde_json::from_str(json).map_err(|e| {
        err(format!(
            "not valid JSON ({e}); is it a JSON model (not UBJSON or binary)?"
        ))
    })?;
    let learner = root
        .get("learner")
        .ok_or_else(|| err("no `learner` object; is this an XGBoost JSON model?"))?;
    let version = match root.get("version").and_then(Value::as_array) {
        Some(v) => v
            .iter()
            .map(|x| x.as_u64().map_or("?".to_string(), |x| x.to_string()))
            .collect::<Vec<_>>()
            .join("."),
        None => "unknown version".to_string(),
    };

    let param = learner
        .get("learner_model_param")
        .ok_or_else(|| err("no `learner.learner_model_param`"))?;
    let param_int = |key: &str| -> Result<Option<i64>, MlError> {
        match param.get(key) {
            None => Ok(None),
            Some(v) => number(v)
                .filter(|x| x.fract() == 0.0 && x.abs() < 1e15)
                .map(|x| Some(x as i64))
                .ok_or_else(|| {
                    err(format!(
                        "learner_model_param `{key}` is {}, not an integer",
                        show(v)
                    ))
                }),
        }
    };
    let num_class = param_int("num_class")?.unwrap_or(0);
    if num_class > 1 {
        return Err(err(format!(
            "num_class={num_class}: multi-class models are not supported (only single-output models)"
        )));
    }
    let num_target = param_int("num_target")?.unwrap_or(1);
    if num_target > 1 {
        return Err(err(format!(
            "num_target={num_target}: multi-target models are not supported"
        )));
    }
    let num_feature =
        param_int("num_feature")?.ok_or_else(|| err("no learner_model_param `num_feature`"))?;
    let n_features = usize::try_from(num_feature)
        .ok()
        .filter(|&n| n <= MAX_FEATURES)
        .ok_or_else(|| {
            err(format!(
                "num_feature={num_feature} is out of range (0 to {MAX_FEATURES})"
            ))
        })?;
    let base_score = base_score(param.get("base_score"))?;

    let objective = learner
        .get("objective")
        .and_then(|o| o.get("name"))
        .and_then(Value::as_str)
        .ok_or_else(|| err("no `learner.objective.name`"))?;
    let (link, base_margin) = match objective {
        "binary:logistic" | "reg:logistic" => (Link::Logistic, logit(base_score)?),
        "binary:logitraw" => (Link::Identity, logit(base_score)?),
        "reg:squarederror"
        | "reg:linear"
        | "reg:squaredlogerror"
        | "reg:pseudohubererror"
        | "reg:absoluteerror"
        | "reg:quantileerror"
        | "rank:pairwise"
        | "rank:ndcg"
        | "rank:map" => (Link::Identity, base_score as f64),
        other => {
            let other = clip(other);
            return Err(err(format!(
                "objective `{other}` is not supported; Candor imports binary:logistic, \
                 reg:logistic, binary:logitraw, regression (identity output) and ranking models"
            )));
        }
    };

    let feature_names = match learner.get("feature_names").and_then(Value::as_array) {
        Some(names) if !names.is_empty() => {
            let names: Vec<String> = names
                .iter()
                .map(|n| n.as_str().map(String::from))
                .collect::<Option<_>>()
                .ok_or_else(|| err("`feature_names` holds something other than strings"))?;
            if names.len() != n_features {
                return Err(err(format!(
                    "`feature_names` has {} names but num_feature={n_features}",
                    names.len()
                )));
            }
            names
        }
        _ => (0..n_features).map(|i| format!("f{i}")).collect(),
    };

    let booster = learner
        .get("gradient_booster")
        .ok_or_else(|| err("no `learner.gradient_booster`"))?;
    let booster_name = booster
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| err("no `learner.gradient_booster.name`"))?;
    let (model, weights) = match booster_name {
        "gbtree" => (booster.get("model"), None),
        "dart" => {
            let weights = booster
                .get("weight_drop")
                .and_then(Value::as_array)
                .ok_or_else(|| err("dart booster without `weight_drop`"))?;
            let weights = weights
                .iter()
                .map(|w| number(w).filter(|w| w.is_finite()).map(|w| w as f32))
                .collect::<Option<Vec<f32>>>()
                .ok_or_else(|| err("`weight_drop` holds a value that is not a finite number"))?;
            (
                booster.get("gbtree").and_then(|g| g.get("model")),
                Some(weights),
            )
        }
        "gblinear" => {
            return Err(err(
                "the gblinear booster (a linear model) is not supported; Candor imports tree boosters (gbtree, dart)",
            ));
        }
        other => {
            let other = clip(other);
            return Err(err(format!(
                "booster `{other}` is not supported (gbtree and dart are)"
            )));
        }
    };
    let model = model.ok_or_else(|| err(format!("{booster_name} booster without a `model`")))?;
    let trees_json = model
        .get("trees")
        .and_then(Value::as_array)
        .ok_or_else(|| err("no `trees` array in the booster's model"))?;
    if let Some(n) = model
        .get("gbtree_model_param")
        .and_then(|p| p.get("num_trees"))
        .and_then(number)
        && n != trees_json.len() as f64
    {
        return Err(err(format!(
            "num_trees={n} but the model holds {} trees",
            trees_json.len()
        )));
    }
    if let Some(info) = model.get("tree_info").and_then(Value::as_array)
        && info.iter().any(|g| number(g) != Some(0.0))
    {
        return Err(err(
            "trees belong to several output groups; only single-output models are supported",
        ));
    }
    if let Some(w) = &weights
        && w.len() != trees_json.len()
    {
        return Err(err(format!(
            "dart `weight_drop` has {} weights for {} trees",
            w.len(),
            trees_json.len()
        )));
    }

    let mut trees = Vec::with_capacity(trees_json.len());
    for (i, t) in trees_json.iter().enumerate() {
        let weight = weights.as_ref().and_then(|w| w.get(i).copied());
        let tree = parse_tree(t, n_features, weight, &feature_names)
            .map_err(|m| err(format!("tree {i}: {m}")))?;
        trees.push(tree);
    }
    let mut ensemble = Ensemble::new(n_features, base_margin, trees, link);
    ensemble.f32_sum = true;
    check_ensemble(&ensemble, ORIGIN)?;
    Ok(ImportedModel {
        ensemble,
        feature_names,
        source: format!("xgboost {version}"),
    })
}

/// At most 40 characters of a JSON value, for messages.
fn show(v: &Value) -> String {
    clip(&v.to_string())
}

fn clip(s: &str) -> String {
    match s.char_indices().nth(40) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// A JSON number, or a string holding one (XGBoost writes parameters as strings).
fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    }
}

/// `base_score`: `"5E-1"` (XGBoost ≤ 2) or `"[5E-1]"` (XGBoost 3, a vector of one).
fn base_score(v: Option<&Value>) -> Result<f32, MlError> {
    let Some(v) = v else { return Ok(0.5) };
    let parsed = match v {
        Value::String(s) => {
            let s = s.trim();
            let inner = s
                .strip_prefix('[')
                .and_then(|s| s.strip_suffix(']'))
                .unwrap_or(s);
            if inner.contains(',') {
                return Err(err(format!(
                    "base_score {s} has several values; multi-target models are not supported"
                )));
            }
            inner.trim().parse::<f32>().ok()
        }
        Value::Number(n) => n.as_f64().map(|x| x as f32),
        _ => None,
    };
    parsed
        .filter(|b| b.is_finite())
        .ok_or_else(|| err(format!("base_score {} is not a finite number", show(v))))
}

/// The margin of a probability, as XGBoost derives it (in `f32`).
fn logit(p: f32) -> Result<f64, MlError> {
    if !(p > 0.0 && p < 1.0) {
        return Err(err(format!(
            "base_score {p} is not a probability in (0, 1)"
        )));
    }
    Ok(f64::from(-(1.0f32 / p - 1.0f32).ln()))
}

/// An array of `key` in tree `t`, with one entry per node.
fn array<'a>(t: &'a Value, key: &str, n: usize) -> Result<&'a [Value], String> {
    let a = t
        .get(key)
        .and_then(Value::as_array)
        .ok_or_else(|| format!("no `{key}` array"))?;
    if a.len() != n {
        return Err(format!("`{key}` has {} entries for {n} nodes", a.len()));
    }
    Ok(a)
}

fn f32s(t: &Value, key: &str, n: usize) -> Result<Vec<f32>, String> {
    array(t, key, n)?
        .iter()
        .enumerate()
        .map(|(i, v)| {
            v.as_f64()
                .map(|x| x as f32)
                .ok_or_else(|| format!("`{key}` of node {i} is {}, not a number", show(v)))
        })
        .collect()
}

fn i64s(t: &Value, key: &str, n: usize) -> Result<Vec<i64>, String> {
    array(t, key, n)?
        .iter()
        .enumerate()
        .map(|(i, v)| {
            v.as_i64()
                .ok_or_else(|| format!("`{key}` of node {i} is {}, not an integer", show(v)))
        })
        .collect()
}

fn parse_tree(
    t: &Value,
    n_features: usize,
    weight: Option<f32>,
    names: &[String],
) -> Result<Tree, String> {
    let left = t
        .get("left_children")
        .and_then(Value::as_array)
        .ok_or("no `left_children` array")?;
    let n = left.len();
    if n == 0 {
        return Err("the tree has no nodes".into());
    }
    if let Some(size) = t
        .get("tree_param")
        .and_then(|p| p.get("size_leaf_vector"))
        .and_then(number)
        && size > 1.0
    {
        return Err("vector leaves (multi-target trees) are not supported".into());
    }
    let left = i64s(t, "left_children", n)?;
    let right = i64s(t, "right_children", n)?;
    let split_index = i64s(t, "split_indices", n)?;
    let cond = f32s(t, "split_conditions", n)?;
    let hess = f32s(t, "sum_hessian", n)?;
    let default_left: Vec<bool> = array(t, "default_left", n)?
        .iter()
        .enumerate()
        .map(|(i, v)| match v {
            Value::Bool(b) => Ok(*b),
            _ => match v.as_u64() {
                Some(0) => Ok(false),
                Some(1) => Ok(true),
                _ => Err(format!(
                    "`default_left` of node {i} is {}, not 0 or 1",
                    show(v)
                )),
            },
        })
        .collect::<Result<_, _>>()?;
    let split_type: Vec<i64> = match t.get("split_type") {
        Some(_) => i64s(t, "split_type", n)?,
        None => vec![0; n],
    };

    // Node `i` of XGBoost becomes internal node `id[i] >= 0` or leaf `!id[i]`.
    let leaf_value = |i: usize| -> Result<f64, String> {
        let v = match weight {
            Some(w) => cond[i] * w,
            None => cond[i],
        };
        if v.is_finite() {
            Ok(f64::from(v))
        } else {
            Err(format!("leaf node {i} has a non-finite value"))
        }
    };
    if left[0] == -1 {
        return Ok(Tree::leaf(leaf_value(0)?, f64::from(hess[0])));
    }
    let mut tree = Tree::default();
    let mut id: Vec<Option<i32>> = vec![None; n];
    let mut n_internal = 0i32;
    let mut n_leaves = 0i32;
    // Assign ids depth-first from the root; each node must be reached exactly once.
    let mut order: Vec<usize> = Vec::new();
    let mut stack = vec![0usize];
    while let Some(i) = stack.pop() {
        if id[i].is_some() {
            return Err(format!("node {i} is reached twice"));
        }
        if left[i] == -1 {
            id[i] = Some(!n_leaves);
            n_leaves += 1;
            continue;
        }
        id[i] = Some(n_internal);
        n_internal += 1;
        order.push(i);
        for c in [right[i], left[i]] {
            let c = usize::try_from(c)
                .ok()
                .filter(|&c| c < n && c != 0)
                .ok_or_else(|| format!("node {i} has an invalid child {c}"))?;
            stack.push(c);
        }
    }
    tree.leaf_value = vec![0.0; n_leaves as usize];
    tree.leaf_cover = vec![0.0; n_leaves as usize];
    for &i in &order {
        if split_type[i] != 0 {
            let f = usize::try_from(split_index[i]).ok();
            let name = f.and_then(|f| names.get(f)).map_or("?", String::as_str);
            return Err(format!(
                "node {i} is a categorical split (feature `{name}`); Candor imports numerical \
                 splits only: retrain without enable_categorical, e.g. with one-hot or ordinal codes"
            ));
        }
        let f = u32::try_from(split_index[i])
            .ok()
            .filter(|&f| (f as usize) < n_features)
            .ok_or_else(|| {
                format!(
                    "node {i} splits on feature {}, not one of {n_features}",
                    split_index[i]
                )
            })?;
        if cond[i].is_nan() {
            return Err(format!("node {i} has a NaN split condition"));
        }
        let mut flags = STRICT_F32 | missing_flags(MISSING_NAN);
        if default_left[i] {
            flags |= DEFAULT_LEFT;
        }
        let child = |c: i64| -> Result<i32, String> {
            usize::try_from(c)
                .ok()
                .and_then(|c| id.get(c).copied().flatten())
                .ok_or_else(|| format!("node {i} has an invalid child {c}"))
        };
        tree.feature.push(f);
        tree.threshold.push(f64::from(cond[i]));
        tree.flags.push(flags);
        tree.left.push(child(left[i])?);
        tree.right.push(child(right[i])?);
        tree.cover.push(f64::from(hess[i]));
    }
    for (i, slot) in id.iter().enumerate() {
        if let Some(c) = *slot
            && c < 0
        {
            let l = !c as usize;
            tree.leaf_value[l] = leaf_value(i)?;
            tree.leaf_cover[l] = f64::from(hess[i]);
        }
    }
    tree.validate(n_features)?;
    Ok(tree)
}
