//! LightGBM's text model format, as `Booster.save_model` writes it (versions v3 and v4).
//!
//! A header of `key=value` lines, then one `Tree=N` section per tree, then `end of trees`
//! (feature importances, parameters and the pandas categories that follow are ignored).
//! LightGBM's trees already use Candor's layout: internal node 0 is the root, a child `c < 0`
//! is leaf `!c`, and the low four bits of `decision_type` are Candor's flags (bit 0
//! categorical, bit 1 default left, bits 2–3 the missing type). Leaf values include the
//! shrinkage, and tree 0 holds the initial score, so the base score is 0.
//!
//! - Covers are the data counts (`internal_count`, `leaf_count`), as LightGBM's TreeSHAP uses.
//! - A categorical split's `threshold` indexes the tree's `cat_boundaries`; its bitset words
//!   (`cat_threshold[cat_boundaries[k]..cat_boundaries[k + 1]]`) become `cat_sets[k]`.
//! - `objective=binary sigmoid:S`: link [`Link::Logistic`]. LightGBM's probability is
//!   `1 / (1 + exp(-S · raw))`; for `S ≠ 1` every leaf value is multiplied by `S`, so the
//!   probabilities match LightGBM's while raw scores and contributions are `S` times LightGBM's.
//!   `cross_entropy` is logistic too; regression and ranking objectives are
//!   [`Link::Identity`]; objectives with another output transform (poisson, gamma, tweedie,
//!   `cross_entropy_lambda`, `regression` with `sqrt`, multiclass) are rejected.
//! - `average_output` (random-forest mode): LightGBM averages the trees before the sigmoid,
//!   but its `raw_score=True` and `pred_contrib` outputs are sums. Every leaf value is divided
//!   by the number of trees, so Candor's probabilities equal LightGBM's and its raw scores and
//!   contributions are LightGBM's divided by the number of trees.

use super::{ImportedModel, MAX_FEATURES, check_ensemble};
use crate::MlError;
use crate::tree::{CATEGORICAL, DEFAULT_LEFT, Ensemble, Link, Tree, missing_flags};

const ORIGIN: &str = "LightGBM";

fn err(msg: impl std::fmt::Display) -> MlError {
    MlError::ModelFormat(format!("{ORIGIN} model: {msg}"))
}

/// Loads a LightGBM text model (the contents of the file written by `save_model`).
pub fn load_lightgbm(text: &str) -> Result<ImportedModel, MlError> {
    let mut lines = text.lines().map(str::trim_end).enumerate().peekable();

    // The first line names the model kind.
    match lines.by_ref().find(|(_, l)| !l.is_empty()) {
        Some((_, "tree")) => {}
        Some((_, l)) => {
            return Err(err(format!(
                "not a LightGBM text model: the first line is `{}`, expected `tree`",
                clip(l)
            )));
        }
        None => return Err(err("the file is empty")),
    }

    // Header: `key=value` lines and bare flags, up to the first tree.
    let mut header = Section::default();
    while let Some((no, line)) = lines.next_if(|(_, l)| !is_section_start(l)) {
        if !line.is_empty() {
            header
                .add(no, line)
                .map_err(|m| err(format!("header: {m}")))?;
        }
    }
    let header = Header::parse(&header)?;

    // Tree sections, then `end of trees`.
    let mut trees: Vec<Tree> = Vec::new();
    let mut finished = false;
    while let Some((no, line)) = lines.next() {
        if line.is_empty() {
            continue;
        }
        if line == "end of trees" {
            finished = true;
            break;
        }
        let Some(index) = line.strip_prefix("Tree=") else {
            return Err(err(format!("line {}: unexpected `{}`", no + 1, clip(line))));
        };
        if index.parse::<usize>().ok() != Some(trees.len()) {
            return Err(err(format!(
                "line {}: `{}` where `Tree={}` was expected",
                no + 1,
                clip(line),
                trees.len()
            )));
        }
        let mut section = Section::default();
        while let Some((no, line)) = lines.next_if(|(_, l)| !l.is_empty() && !is_section_start(l)) {
            section
                .add(no, line)
                .map_err(|m| err(format!("tree {}: {m}", trees.len())))?;
        }
        let tree = parse_tree(&section, header.n_features)
            .map_err(|m| err(format!("tree {}: {m}", trees.len())))?;
        trees.push(tree);
    }
    if !finished {
        return Err(err(format!(
            "the file ends after {} trees without `end of trees` (is it truncated?)",
            trees.len()
        )));
    }
    if let Some(n) = header.tree_count
        && n != trees.len()
    {
        return Err(err(format!(
            "`tree_sizes` lists {n} trees but the file holds {} (is it truncated?)",
            trees.len()
        )));
    }

    let mut scale = header.sigmoid;
    if header.average_output && !trees.is_empty() {
        scale /= trees.len() as f64;
    }
    if scale != 1.0 {
        for t in &mut trees {
            for v in &mut t.leaf_value {
                *v *= scale;
            }
        }
    }
    let ensemble = Ensemble::new(header.n_features, 0.0, trees, header.link);
    check_ensemble(&ensemble, ORIGIN)?;
    Ok(ImportedModel {
        ensemble,
        feature_names: header.feature_names,
        source: format!("lightgbm {}", header.version),
    })
}

fn is_section_start(line: &str) -> bool {
    line.starts_with("Tree=") || line == "end of trees"
}

/// At most 40 characters of a line, for messages.
fn clip(s: &str) -> String {
    match s.char_indices().nth(40) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// The `key=value` lines (and bare flags) of the header or of one tree.
#[derive(Default)]
struct Section<'a> {
    pairs: Vec<(&'a str, &'a str)>,
    flags: Vec<&'a str>,
}

impl<'a> Section<'a> {
    fn add(&mut self, no: usize, line: &'a str) -> Result<(), String> {
        match line.split_once('=') {
            Some((key, value)) => {
                if self.get(key).is_some() {
                    return Err(format!(
                        "line {}: key `{}` appears twice",
                        no + 1,
                        clip(key)
                    ));
                }
                self.pairs.push((key, value));
            }
            None => self.flags.push(line),
        }
        Ok(())
    }

    fn get(&self, key: &str) -> Option<&'a str> {
        self.pairs.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
    }

    fn has_flag(&self, flag: &str) -> bool {
        self.flags.contains(&flag)
    }
}

struct Header {
    version: String,
    n_features: usize,
    feature_names: Vec<String>,
    link: Link,
    /// LightGBM's `sigmoid` parameter of a binary objective (1 otherwise).
    sigmoid: f64,
    average_output: bool,
    tree_count: Option<usize>,
}

impl Header {
    fn parse(h: &Section) -> Result<Header, MlError> {
        let herr = |m: String| err(format!("header: {m}"));
        let version = h
            .get("version")
            .ok_or_else(|| herr("no `version`".into()))?;
        if !matches!(version, "v3" | "v4") {
            return Err(herr(format!(
                "unsupported version `{}`; Candor reads v3 and v4 (LightGBM 3.x and 4.x)",
                clip(version)
            )));
        }
        let int = |key: &str, default: Option<i64>| -> Result<i64, MlError> {
            match h.get(key) {
                Some(v) => v
                    .trim()
                    .parse::<i64>()
                    .map_err(|_| herr(format!("`{key}` is `{}`, not an integer", clip(v)))),
                None => default.ok_or_else(|| herr(format!("no `{key}`"))),
            }
        };
        let num_class = int("num_class", Some(1))?;
        if num_class != 1 {
            return Err(herr(format!(
                "num_class={num_class}: only single-output models (binary, regression) are supported"
            )));
        }
        let per_iteration = int("num_tree_per_iteration", Some(1))?;
        if per_iteration != 1 {
            return Err(herr(format!(
                "num_tree_per_iteration={per_iteration}: only one tree per iteration is supported"
            )));
        }
        let max_feature_idx = int("max_feature_idx", None)?;
        let n_features = usize::try_from(max_feature_idx)
            .ok()
            .and_then(|m| m.checked_add(1))
            .filter(|&n| n <= MAX_FEATURES)
            .ok_or_else(|| {
                herr(format!(
                    "max_feature_idx={max_feature_idx} is out of range (0 to {})",
                    MAX_FEATURES - 1
                ))
            })?;
        let names = h
            .get("feature_names")
            .ok_or_else(|| herr("no `feature_names`".into()))?;
        let feature_names: Vec<String> = names.split_ascii_whitespace().map(String::from).collect();
        if feature_names.len() != n_features {
            return Err(herr(format!(
                "`feature_names` has {} names but max_feature_idx={max_feature_idx} means {n_features} features",
                feature_names.len()
            )));
        }
        let (link, sigmoid) = objective(h.get("objective")).map_err(herr)?;
        let tree_count = h
            .get("tree_sizes")
            .map(|s| s.split_ascii_whitespace().count());
        Ok(Header {
            version: version.to_string(),
            n_features,
            feature_names,
            link,
            sigmoid,
            average_output: h.has_flag("average_output"),
            tree_count,
        })
    }
}

/// The link and sigmoid scale of an `objective` line such as `binary sigmoid:1`.
fn objective(line: Option<&str>) -> Result<(Link, f64), String> {
    // A model trained with a custom objective has no objective line: raw scores.
    let Some(line) = line else {
        return Ok((Link::Identity, 1.0));
    };
    let mut tokens = line.split_ascii_whitespace();
    let name = tokens.next().unwrap_or("");
    let params: Vec<&str> = tokens.collect();
    match name {
        "binary" => {
            let mut sigmoid = 1.0;
            for p in &params {
                if let Some(s) = p.strip_prefix("sigmoid:") {
                    sigmoid = s
                        .parse::<f64>()
                        .ok()
                        .filter(|s| s.is_finite() && *s > 0.0)
                        .ok_or_else(|| {
                            format!("objective `{}` has an invalid sigmoid", clip(line))
                        })?;
                }
            }
            Ok((Link::Logistic, sigmoid))
        }
        "cross_entropy" | "xentropy" => Ok((Link::Logistic, 1.0)),
        "regression"
        | "regression_l2"
        | "l2"
        | "mean_squared_error"
        | "mse"
        | "l2_root"
        | "root_mean_squared_error"
        | "rmse"
        | "regression_l1"
        | "l1"
        | "mean_absolute_error"
        | "mae"
        | "huber"
        | "fair"
        | "quantile"
        | "mape"
        | "mean_absolute_percentage_error"
        | "lambdarank"
        | "rank_xendcg"
        | "xendcg"
        | "xe_ndcg"
        | "xe_ndcg_mart"
        | "xendcg_mart" => {
            if params.contains(&"sqrt") {
                return Err(format!(
                    "objective `{}`: regression on the square root of the label (reg_sqrt) is not supported",
                    clip(line)
                ));
            }
            Ok((Link::Identity, 1.0))
        }
        _ => Err(format!(
            "objective `{}` is not supported; Candor imports binary, cross_entropy, regression and \
             ranking models (objectives whose output is exp(raw) or multiclass are not)",
            clip(line)
        )),
    }
}

/// Values of `key`, which must hold exactly `len` of them.
fn values<'a>(s: &Section<'a>, key: &str, len: usize) -> Result<Vec<&'a str>, String> {
    let v = s
        .get(key)
        .ok_or_else(|| format!("no `{key}` (is the file truncated?)"))?;
    let items: Vec<&str> = v.split_ascii_whitespace().collect();
    if items.len() != len {
        return Err(format!(
            "`{key}` has {} values where {len} are expected (is the file truncated?)",
            items.len()
        ));
    }
    Ok(items)
}

fn ints(s: &Section, key: &str, len: usize) -> Result<Vec<i64>, String> {
    values(s, key, len)?
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            v.parse::<i64>()
                .map_err(|_| format!("`{key}` value {i} is `{}`, not an integer", clip(v)))
        })
        .collect()
}

fn floats(s: &Section, key: &str, len: usize) -> Result<Vec<f64>, String> {
    values(s, key, len)?
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            v.parse::<f64>()
                .map_err(|_| format!("`{key}` value {i} is `{}`, not a number", clip(v)))
        })
        .collect()
}

/// A count in `0..=u32::MAX` (LightGBM writes `int`s).
fn count(s: &Section, key: &str, len: usize) -> Result<Vec<f64>, String> {
    ints(s, key, len)?
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            if (0..=i64::from(u32::MAX)).contains(&c) {
                Ok(c as f64)
            } else {
                Err(format!("`{key}` value {i} is {c}, not a count"))
            }
        })
        .collect()
}

fn scalar(s: &Section, key: &str) -> Result<usize, String> {
    let v = s
        .get(key)
        .ok_or_else(|| format!("no `{key}` (is the file truncated?)"))?;
    v.trim()
        .parse::<u32>()
        .map(|n| n as usize)
        .map_err(|_| format!("`{key}` is `{}`, not a count", clip(v)))
}

fn parse_tree(s: &Section, n_features: usize) -> Result<Tree, String> {
    let num_leaves = scalar(s, "num_leaves")?;
    if num_leaves == 0 {
        return Err("num_leaves is 0".into());
    }
    if s.get("is_linear").is_some_and(|v| v.trim() != "0") {
        return Err("linear trees (linear_tree=true) are not supported".into());
    }
    let leaf_value = floats(s, "leaf_value", num_leaves)?;
    if let Some(i) = leaf_value.iter().position(|v| !v.is_finite()) {
        return Err(format!("`leaf_value` value {i} is not finite"));
    }
    if num_leaves == 1 {
        // LightGBM needs only the value of a one-leaf tree; its count does not matter to SHAP.
        let cover = count(s, "leaf_count", 1)
            .ok()
            .and_then(|c| c.first().copied());
        return Ok(Tree::leaf(leaf_value[0], cover.unwrap_or(0.0)));
    }
    let n = num_leaves - 1;
    let num_cat = scalar(s, "num_cat")?;

    let feature = ints(s, "split_feature", n)?
        .into_iter()
        .enumerate()
        .map(|(i, f)| {
            u32::try_from(f)
                .ok()
                .filter(|&f| (f as usize) < n_features)
                .ok_or_else(|| {
                    format!("`split_feature` of split {i} is {f}, not one of {n_features} features")
                })
        })
        .collect::<Result<Vec<u32>, String>>()?;
    let threshold = floats(s, "threshold", n)?;
    let decision = ints(s, "decision_type", n)?;
    let child = |key: &str| -> Result<Vec<i32>, String> {
        ints(s, key, n)?
            .into_iter()
            .enumerate()
            .map(|(i, c)| {
                i32::try_from(c).map_err(|_| format!("`{key}` of split {i} is {c}, out of range"))
            })
            .collect()
    };
    let left = child("left_child")?;
    let right = child("right_child")?;
    let cover = count(s, "internal_count", n)?;
    let leaf_cover = count(s, "leaf_count", num_leaves)?;

    let mut cat_sets: Vec<Vec<u32>> = Vec::new();
    if num_cat > 0 {
        let bounds = ints(s, "cat_boundaries", num_cat + 1)?;
        let words: Vec<u32> = ints(
            s,
            "cat_threshold",
            bounds.last().map_or(0, |&b| b.max(0) as usize),
        )?
        .into_iter()
        .map(|w| {
            u32::try_from(w).map_err(|_| format!("`cat_threshold` has {w}, not a 32-bit word"))
        })
        .collect::<Result<_, _>>()?;
        if bounds.first() != Some(&0) {
            return Err("`cat_boundaries` does not start at 0".into());
        }
        for k in 0..num_cat {
            let (lo, hi) = (bounds[k], bounds[k + 1]);
            if hi < lo {
                return Err(format!("`cat_boundaries` decreases at {k}"));
            }
            let set = words
                .get(lo as usize..hi as usize)
                .ok_or_else(|| format!("`cat_boundaries` entry {k} is out of range"))?;
            cat_sets.push(set.to_vec());
        }
    }

    let mut flags = Vec::with_capacity(n);
    for i in 0..n {
        let d = decision[i];
        let missing = (d >> 2) & 3;
        if !(0..16).contains(&d) || missing == 3 {
            return Err(format!(
                "`decision_type` of split {i} is {d}, which LightGBM does not write"
            ));
        }
        let mut fl = missing_flags(missing as u8);
        if d & 2 != 0 {
            fl |= DEFAULT_LEFT;
        }
        if d & 1 != 0 {
            fl |= CATEGORICAL;
            // The threshold indexes the tree's category sets, which `cat_sets` keeps in order.
            let k = threshold[i];
            if !(k >= 0.0 && k.fract() == 0.0 && (k as usize) < num_cat) {
                return Err(format!(
                    "categorical split {i} has threshold {k}, not one of the tree's {num_cat} category sets"
                ));
            }
        } else if threshold[i].is_nan() {
            return Err(format!("`threshold` of split {i} is NaN"));
        }
        flags.push(fl);
    }
    let tree = Tree {
        feature,
        threshold,
        flags,
        left,
        right,
        cover,
        cat_sets,
        leaf_value,
        leaf_cover,
    };
    tree.validate(n_features)?;
    Ok(tree)
}

/// The value names of a LightGBM model's categorical features, one entry per feature: `None`
/// for numeric features, `Some(names)` for categorical ones when the model was trained from a
/// pandas DataFrame (`pandas_categorical` lists the category names; code `i` is name `i`),
/// `Some(vec![])` for categorical features without names (the codes are the values).
pub fn lightgbm_categories(text: &str) -> Result<Vec<Option<Vec<String>>>, MlError> {
    let infos = text
        .lines()
        .find_map(|l| l.strip_prefix("feature_infos="))
        .ok_or_else(|| err("no `feature_infos` line"))?;
    let pandas: Option<Vec<Vec<serde_json::Value>>> = match text
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("pandas_categorical:"))
    {
        Some(json) => serde_json::from_str(json.trim())
            .map_err(|e| err(format!("unreadable `pandas_categorical`: {e}")))?,
        None => None,
    };
    let mut lists = pandas.unwrap_or_default().into_iter();
    Ok(infos
        .split(' ')
        .map(|info| {
            if info.starts_with('[') || info == "none" {
                None
            } else {
                Some(
                    lists
                        .next()
                        .map(|l| {
                            l.into_iter()
                                .map(|v| match v {
                                    serde_json::Value::String(s) => s,
                                    other => other.to_string(),
                                })
                                .collect()
                        })
                        .unwrap_or_default(),
                )
            }
        })
        .collect())
}
