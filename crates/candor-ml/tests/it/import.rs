//! LightGBM and XGBoost model import: agreement with the libraries' own raw scores and TreeSHAP
//! contributions, and robustness to damaged files.
//!
//! The small models in `tests/data` (written by `tests/peers/make_fixtures.py`) are checked
//! without Python. `peers_agree_on_bank_marketing` trains real models with the peer libraries
//! (`tests/peers/lgb_xgb_reference.py`, run in `$CANDOR_PEERS_VENV` or `<workspace>/.peers-venv`)
//! and fails when they are missing, unless `CANDOR_SKIP_PEERS=1`.

use candor_ml::MlError;
use candor_ml::import::{ImportedModel, load_lightgbm, load_xgboost};
use proptest::prelude::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

const TOL: f64 = 1e-6;

fn data(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

fn model_format(r: Result<ImportedModel, MlError>) -> String {
    match r {
        Err(MlError::ModelFormat(m)) => m,
        Err(e) => panic!("expected a ModelFormat error, got {e:?}"),
        Ok(_) => panic!("expected a ModelFormat error, got a model"),
    }
}

/// Rows of a reference file, `null` read as NaN, flattened row-major.
fn rows(v: &Value) -> (Vec<f64>, usize) {
    let rows = v.as_array().expect("rows");
    let mut out = Vec::new();
    for r in rows {
        for x in r.as_array().expect("row") {
            out.push(x.as_f64().unwrap_or(f64::NAN));
        }
    }
    (out, rows.len())
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().expect("number"))
        .collect()
}

/// Largest |Δ| between Candor's raw scores, contributions and probabilities and the
/// reference's, and (XGBoost) between XGBoost's `f32` sum of Candor's tree outputs and the
/// reference's raw scores.
struct Diff {
    raw: f64,
    contrib: f64,
    prob: f64,
    f32_sum: f64,
}

/// How a peer computes.
#[derive(Clone, Copy)]
enum Peer {
    /// LightGBM computes in `f64`. `scale` multiplies its raw scores and contributions:
    /// LightGBM's forests average only their probabilities, Candor's raw scores too.
    LightGbm { scale: f64 },
    /// XGBoost sums the base margin and the trees' outputs in `f32`, in tree order, and runs
    /// TreeSHAP in `f32`: its margins carry rounding errors of a few `f32` ulps (up to ~3e-6 on
    /// these models), which Candor's `f64` sum does not have. Routing, leaf values and base
    /// margin are checked exactly by redoing XGBoost's `f32` sum over Candor's trees.
    XgBoost,
}

/// Imported XGBoost models sum in `f32` as XGBoost does, so the raw scores match to 1e-6 too.
const XGB_RAW_TOL: f64 = TOL;

fn compare(name: &str, m: &ImportedModel, x: &[f64], expected: &Value, peer: Peer) -> Diff {
    let e = &m.ensemble;
    let nf = e.n_features;
    let (scale, raw_tol) = match peer {
        Peer::LightGbm { scale } => (scale, TOL),
        Peer::XgBoost => (1.0, XGB_RAW_TOL),
    };
    let raw = e.predict_raw_batch(x);
    let want_raw = floats(&expected["raw"]);
    assert_eq!(raw.len(), want_raw.len(), "{name}: row count");
    let mut d = Diff {
        raw: 0.0,
        contrib: 0.0,
        prob: 0.0,
        f32_sum: 0.0,
    };
    for (i, (a, b)) in raw.iter().zip(&want_raw).enumerate() {
        let b = b * scale;
        let delta = (a - b).abs();
        let row = &x[i * nf..(i + 1) * nf];
        assert!(
            delta <= raw_tol,
            "{name}: row {i}: raw {a} vs {b} (Δ {delta:e}), row {row:?}"
        );
        d.raw = d.raw.max(delta);
        if let Peer::XgBoost = peer {
            let mut sum = e.base_score as f32;
            for t in &e.trees {
                sum += t.predict(row) as f32;
            }
            let delta = (f64::from(sum) - b).abs();
            assert!(
                delta <= TOL,
                "{name}: row {i}: f32 sum {sum} vs {b} (Δ {delta:e}), row {row:?}"
            );
            d.f32_sum = d.f32_sum.max(delta);
        }
    }
    let shap = e.shap_batch(x);
    let want = floats(&expected["contrib"]);
    assert_eq!(shap.len(), want.len(), "{name}: contribution count");
    for (k, (a, b)) in shap.iter().zip(&want).enumerate() {
        let b = b * scale;
        let delta = (a - b).abs();
        let (row, col) = (k / (nf + 1), k % (nf + 1));
        assert!(
            delta <= TOL,
            "{name}: row {row}, column {col}: contribution {a} vs {b} (Δ {delta:e})"
        );
        d.contrib = d.contrib.max(delta);
    }
    if let Some(want) = expected.get("prob") {
        for (i, (a, b)) in raw.iter().zip(&floats(want)).enumerate() {
            let p = e.transform(*a);
            let delta = (p - b).abs();
            assert!(
                delta <= TOL,
                "{name}: row {i}: probability {p} vs {b} (Δ {delta:e})"
            );
            d.prob = d.prob.max(delta);
        }
    }
    // The single-row paths agree with the batch ones.
    for r in [0, raw.len() / 2, raw.len().saturating_sub(1)] {
        let row = &x[r * nf..(r + 1) * nf];
        assert_eq!(e.predict_raw(row), raw[r], "{name}: predict_raw of row {r}");
        let s = e.shap(row);
        for (j, v) in s.iter().enumerate() {
            assert!(
                (v - shap[r * (nf + 1) + j]).abs() <= 1e-12,
                "{name}: shap of row {r}"
            );
        }
    }
    d
}

#[test]
fn small_lightgbm_model_matches_lightgbm() {
    let m = load_lightgbm(&data("lgb_small.txt")).expect("load");
    assert_eq!(m.source, "lightgbm v4");
    assert_eq!(m.feature_names, ["x0", "x1", "x2"]);
    assert_eq!(m.ensemble.trees.len(), 4);
    assert_eq!(m.ensemble.base_score, 0.0);
    assert_eq!(m.ensemble.link, candor_ml::tree::Link::Logistic);
    assert!(
        m.ensemble.trees.iter().any(|t| !t.cat_sets.is_empty()),
        "categorical splits"
    );
    let r: Value = serde_json::from_str(&data("small_reference.json")).expect("reference");
    let (x, _) = rows(&r["rows"]);
    compare(
        "lgb_small",
        &m,
        &x,
        &r["lgb"],
        Peer::LightGbm { scale: 1.0 },
    );
}

#[test]
fn constant_lightgbm_model_is_one_leaf() {
    let m = load_lightgbm(&data("lgb_constant.txt")).expect("load");
    assert_eq!(m.ensemble.trees.len(), 1);
    assert_eq!(m.ensemble.trees[0].num_leaves(), 1);
    let r: Value = serde_json::from_str(&data("small_reference.json")).expect("reference");
    let (x, _) = rows(&r["rows"]);
    compare(
        "lgb_constant",
        &m,
        &x,
        &r["lgb_constant"],
        Peer::LightGbm { scale: 1.0 },
    );
}

#[test]
fn small_xgboost_model_matches_xgboost() {
    let m = load_xgboost(&data("xgb_small.json")).expect("load");
    assert!(m.source.starts_with("xgboost 3."), "{}", m.source);
    assert_eq!(m.feature_names, ["x0", "x1", "x2"]);
    assert_eq!(m.ensemble.trees.len(), 4);
    let r: Value = serde_json::from_str(&data("small_reference.json")).expect("reference");
    let (x, _) = rows(&r["rows"]);
    compare("xgb_small", &m, &x, &r["xgb"], Peer::XgBoost);
}

#[test]
fn imported_model_round_trips_through_serde() {
    let m = load_lightgbm(&data("lgb_small.txt")).expect("load");
    let json = serde_json::to_string(&m).expect("serialize");
    let back: ImportedModel = serde_json::from_str(&json).expect("deserialize");
    assert_eq!(
        (&back.feature_names, &back.source),
        (&m.feature_names, &m.source)
    );
    // serde_json's `float_roundtrip` (enabled in the workspace) reads every float back exactly:
    // a stored model is bit-for-bit the model that was trained or imported.
    assert_eq!(back.ensemble, m.ensemble);
}

#[test]
fn truncated_lightgbm_file_is_a_format_error() {
    let text = data("lgb_small.txt");
    let end = text.find("end of trees").expect("end of trees") + "end of trees".len();
    for cut in 0..text.len() {
        if !text.is_char_boundary(cut) {
            continue;
        }
        let r = load_lightgbm(&text[..cut]);
        if cut < end {
            let msg = model_format(r);
            assert!(msg.starts_with("LightGBM model: "), "cut {cut}: {msg}");
        } else {
            r.unwrap_or_else(|e| panic!("cut {cut} after `end of trees`: {e}"));
        }
    }
    // The message of a cut in the middle of a tree names what is missing.
    let cut = text.find("Tree=2").expect("Tree=2") + 60;
    let msg = model_format(load_lightgbm(&text[..cut]));
    assert!(msg.contains("tree 2") || msg.contains("truncated"), "{msg}");
}

#[test]
fn lightgbm_header_problems_are_format_errors() {
    let text = data("lgb_small.txt");
    let msg = model_format(load_lightgbm(&text.replace("version=v4", "version=v9")));
    assert!(msg.contains("unsupported version `v9`"), "{msg}");
    let msg = model_format(load_lightgbm(&text.replace("version=v4\n", "")));
    assert!(msg.contains("no `version`"), "{msg}");
    let msg = model_format(load_lightgbm(&text.replace("num_class=1", "num_class=3")));
    assert!(msg.contains("num_class=3"), "{msg}");
    let msg = model_format(load_lightgbm(
        &text.replace("objective=binary sigmoid:1", "objective=poisson"),
    ));
    assert!(msg.contains("poisson"), "{msg}");
    let msg = model_format(load_lightgbm(
        &text.replace("feature_names=x0 x1 x2", "feature_names=x0 x1"),
    ));
    assert!(msg.contains("feature_names"), "{msg}");
    let msg = model_format(load_lightgbm("{\"learner\": {}}"));
    assert!(msg.contains("not a LightGBM text model"), "{msg}");
    let msg = model_format(load_lightgbm(""));
    assert!(msg.contains("empty"), "{msg}");
}

/// `text` with `key=` of tree `tree` replaced by `key=value`.
fn with_tree_key(text: &str, tree: usize, key: &str, value: &str) -> String {
    let start = text.find(&format!("Tree={tree}\n")).expect("tree");
    let at = start + text[start..].find(&format!("\n{key}=")).expect("key") + 1;
    let eol = at + text[at..].find('\n').expect("eol");
    format!("{}{key}={value}{}", &text[..at], &text[eol..])
}

fn tree_key<'a>(text: &'a str, tree: usize, key: &str) -> &'a str {
    let start = text.find(&format!("Tree={tree}\n")).expect("tree");
    let at = start + text[start..].find(&format!("\n{key}=")).expect("key") + key.len() + 2;
    let eol = at + text[at..].find('\n').expect("eol");
    &text[at..eol]
}

#[test]
fn lightgbm_tree_problems_name_the_tree_and_key() {
    let text = data("lgb_small.txt");
    // A NaN threshold on a numerical split.
    let thresholds: Vec<&str> = tree_key(&text, 1, "threshold").split(' ').collect();
    let decisions: Vec<&str> = tree_key(&text, 1, "decision_type").split(' ').collect();
    let numerical = decisions
        .iter()
        .position(|d| d.parse::<u8>().expect("int") & 1 == 0)
        .expect("numerical split");
    let mut t = thresholds.clone();
    t[numerical] = "nan";
    let msg = model_format(load_lightgbm(&with_tree_key(
        &text,
        1,
        "threshold",
        &t.join(" "),
    )));
    assert!(
        msg.contains("tree 1") && msg.contains("threshold") && msg.contains("NaN"),
        "{msg}"
    );
    // An array one value short.
    let leaves = tree_key(&text, 2, "leaf_value");
    let short = &leaves[..leaves.rfind(' ').expect("space")];
    let msg = model_format(load_lightgbm(&with_tree_key(&text, 2, "leaf_value", short)));
    assert!(
        msg.contains("tree 2") && msg.contains("`leaf_value`"),
        "{msg}"
    );
    // A child pointing back at the root: structurally invalid.
    let left: Vec<&str> = tree_key(&text, 0, "left_child").split(' ').collect();
    let mut l = left.clone();
    l[1] = "0";
    let msg = model_format(load_lightgbm(&with_tree_key(
        &text,
        0,
        "left_child",
        &l.join(" "),
    )));
    assert!(msg.contains("tree 0"), "{msg}");
    // A split on a feature the model does not have.
    let feats: Vec<&str> = tree_key(&text, 3, "split_feature").split(' ').collect();
    let mut f = feats.clone();
    f[0] = "7";
    let msg = model_format(load_lightgbm(&with_tree_key(
        &text,
        3,
        "split_feature",
        &f.join(" "),
    )));
    assert!(
        msg.contains("tree 3") && msg.contains("split_feature"),
        "{msg}"
    );
    // Linear trees.
    let msg = model_format(load_lightgbm(&with_tree_key(&text, 0, "is_linear", "1")));
    assert!(msg.contains("tree 0") && msg.contains("linear"), "{msg}");
    // A decision type LightGBM never writes (missing type 3).
    let mut d = decisions.clone();
    d[0] = "12";
    let msg = model_format(load_lightgbm(&with_tree_key(
        &text,
        1,
        "decision_type",
        &d.join(" "),
    )));
    assert!(
        msg.contains("tree 1") && msg.contains("decision_type"),
        "{msg}"
    );
}

#[test]
fn lightgbm_sigmoid_scales_the_raw_score() {
    let text = data("lgb_small.txt");
    let base = load_lightgbm(&text).expect("load");
    let scaled =
        load_lightgbm(&text.replace("objective=binary sigmoid:1", "objective=binary sigmoid:2"))
            .expect("load");
    let row = [0.3, 2.0, -0.4];
    let (a, b) = (
        base.ensemble.predict_raw(&row),
        scaled.ensemble.predict_raw(&row),
    );
    assert!((b - 2.0 * a).abs() <= 1e-12, "{a} {b}");
    let reg = load_lightgbm(&text.replace("objective=binary sigmoid:1", "objective=regression"))
        .expect("load");
    assert_eq!(reg.ensemble.link, candor_ml::tree::Link::Identity);
}

#[test]
fn xgboost_categorical_split_is_rejected_clearly() {
    let msg = model_format(load_xgboost(&data("xgb_categorical.json")));
    assert!(msg.contains("categorical split (feature `x1`)"), "{msg}");
}

#[test]
fn xgboost_problems_are_format_errors() {
    let json = data("xgb_small.json");
    let mut v: Value = serde_json::from_str(&json).expect("json");
    let edit = |f: &dyn Fn(&mut Value)| {
        let mut w = v.clone();
        f(&mut w);
        model_format(load_xgboost(&w.to_string()))
    };
    let msg = edit(&|w| w["learner"]["gradient_booster"]["name"] = "gblinear".into());
    assert!(msg.contains("gblinear"), "{msg}");
    let msg = edit(&|w| w["learner"]["learner_model_param"]["num_class"] = "3".into());
    assert!(msg.contains("num_class=3"), "{msg}");
    let msg = edit(&|w| w["learner"]["objective"]["name"] = "count:poisson".into());
    assert!(msg.contains("count:poisson"), "{msg}");
    let msg = edit(&|w| {
        w["learner"]["gradient_booster"]["model"]["trees"][1]["split_indices"][0] = 9.into()
    });
    assert!(msg.contains("tree 1") && msg.contains("feature 9"), "{msg}");
    let msg = edit(&|w| {
        w["learner"]["gradient_booster"]["model"]["trees"][2]["left_children"][0] = 0.into()
    });
    assert!(msg.contains("tree 2"), "{msg}");
    let msg = edit(&|w| {
        let t = &mut w["learner"]["gradient_booster"]["model"]["trees"][0];
        t["sum_hessian"].as_array_mut().expect("array").pop();
    });
    assert!(
        msg.contains("tree 0") && msg.contains("sum_hessian"),
        "{msg}"
    );
    let msg = model_format(load_xgboost("tree\nversion=v4\n"));
    assert!(msg.contains("not valid JSON"), "{msg}");
    // XGBoost 1.x/2.x wrote base_score without brackets; both forms give the same model.
    let plain = v["learner"]["learner_model_param"]["base_score"]
        .as_str()
        .expect("string")
        .trim_matches(['[', ']'])
        .to_string();
    let a = load_xgboost(&json).expect("load");
    v["learner"]["learner_model_param"]["base_score"] = plain.into();
    let b = load_xgboost(&v.to_string()).expect("load");
    assert_eq!(a.ensemble.base_score, b.ensemble.base_score);
}

#[test]
fn truncated_xgboost_file_is_a_format_error() {
    let json = data("xgb_small.json");
    let end = json.trim_end().len();
    for cut in (0..end).step_by(7) {
        let msg = model_format(load_xgboost(&json[..cut]));
        assert!(msg.starts_with("XGBoost model: "), "cut {cut}: {msg}");
    }
}

/// Loads a damaged file; if it loads, scoring and explaining must not panic either.
fn exercise(r: Result<ImportedModel, MlError>) {
    if let Ok(m) = r {
        let nf = m.ensemble.n_features;
        for x in [0.0, -0.5, 1.0, 3.0, f64::NAN, 1e300, -1e300] {
            let row = vec![x; nf];
            let s = m.ensemble.shap(&row);
            assert_eq!(s.len(), nf + 1);
            let _ = m.ensemble.predict_raw(&row);
        }
    }
}

fn mutate(text: &str, cut: usize, edits: &[(usize, u8)]) -> String {
    let mut bytes = text.as_bytes().to_vec();
    bytes.truncate(cut.min(bytes.len()));
    for &(at, b) in edits {
        if !bytes.is_empty() {
            let i = at % bytes.len();
            bytes[i] = b;
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

const ALPHABET: &[u8] = b"0123456789-.e =\n[]{}\",:naNTre_";

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn damaged_lightgbm_files_never_panic(
        cut in 0usize..7000,
        edits in prop::collection::vec((any::<usize>(), prop::sample::select(ALPHABET)), 0..4),
    ) {
        exercise(load_lightgbm(&mutate(&data("lgb_small.txt"), cut, &edits)));
    }

    #[test]
    fn damaged_xgboost_files_never_panic(
        cut in 0usize..6000,
        edits in prop::collection::vec((any::<usize>(), prop::sample::select(ALPHABET)), 0..4),
    ) {
        exercise(load_xgboost(&mutate(&data("xgb_small.json"), cut, &edits)));
    }
}

// ---------------------------------------------------------------------------------------------
// Cross-check against the peer libraries on real data.

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn peers_agree_on_bank_marketing() {
    let Some(python) = candor_testkit::peers_python() else {
        return;
    };
    let csv = workspace().join("../shared/data/bank_marketing/bank/bank-full.csv");
    let Ok(csv) = csv.canonicalize() else {
        println!("SKIPPED-DATA: {} not found", csv.display());
        return;
    };
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/lgb_xgb_reference.py");
    let out = candor_testkit::TempDir::new("candor-import");
    let out = &out.0;
    let run = Command::new(&python)
        .arg(&script)
        .arg(&csv)
        .arg(out)
        .output()
        .expect("run python");
    assert!(
        run.status.success(),
        "{} {} failed:\n{}",
        python.display(),
        script.display(),
        String::from_utf8_lossy(&run.stderr)
    );
    let read = |name: &str| {
        std::fs::read_to_string(out.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
    };
    let r: Value = serde_json::from_str(&read("reference.json")).expect("reference");
    let (x, n_rows) = rows(&r["rows"]);
    assert!(n_rows >= 1000);

    let mut report = Vec::new();
    for (key, file) in [
        ("lgb", "lgb.txt"),
        ("lgb_zero", "lgb_zero.txt"),
        ("lgb_rf", "lgb_rf.txt"),
    ] {
        let text = read(file);
        let m = load_lightgbm(&text).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(m.feature_names.len(), m.ensemble.n_features);
        let expected = &r["models"][key];
        // LightGBM's forests average their probabilities, not their raw scores or contributions.
        let scale = if key == "lgb_rf" {
            1.0 / expected["iterations"].as_f64().expect("iterations")
        } else {
            1.0
        };
        let d = compare(key, &m, &x, expected, Peer::LightGbm { scale });
        report.push(format!(
            "{key}: max |Δ| raw {:.3e}, contributions {:.3e}, probabilities {:.3e}",
            d.raw, d.contrib, d.prob
        ));
        if key == "lgb" {
            assert!(
                m.ensemble.trees.iter().any(|t| !t.cat_sets.is_empty()),
                "no categorical split"
            );
            // A real file truncated anywhere before `end of trees` is an error, never a panic.
            let end = text.find("end of trees").expect("end of trees");
            let step = (end / 400).max(1);
            for cut in (0..end).step_by(step).chain(end.saturating_sub(64)..end) {
                model_format(load_lightgbm(&text[..cut]));
            }
        }
    }
    for (key, file) in [("xgb", "xgb.json"), ("xgb_dart", "xgb_dart.json")] {
        let json = read(file);
        let m = load_xgboost(&json).unwrap_or_else(|e| panic!("{file}: {e}"));
        let d = compare(key, &m, &x, &r["models"][key], Peer::XgBoost);
        report.push(format!(
            "{key}: max |Δ| raw {:.3e} (XGBoost's own f32 sum of Candor's trees {:.3e}), \
             contributions {:.3e}, probabilities {:.3e}",
            d.raw, d.f32_sum, d.contrib, d.prob
        ));
        if key == "xgb" {
            let step = (json.len() / 200).max(1);
            for cut in (0..json.trim_end().len()).step_by(step) {
                model_format(load_xgboost(&json[..cut]));
            }
        }
    }
    println!("{}", report.join("\n"));
}
