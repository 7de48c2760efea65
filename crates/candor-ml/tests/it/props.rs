//! Properties of the trees, TreeSHAP, calibration and metrics on generated data.

use candor_ml::calibrate::{isotonic, platt};
use candor_ml::gbdt::{Dataset, GbdtParams, train};
use candor_ml::lead::{ScoringModel, Tiers};
use candor_ml::metrics::auc;
use candor_ml::tree::{
    CATEGORICAL, DEFAULT_LEFT, Ensemble, Link, MISSING_NAN, MISSING_NONE, MISSING_ZERO, Tree,
    brute_force_shap, missing_flags,
};
use proptest::prelude::*;

/// Deterministic pseudo-random numbers for data generation inside a proptest case.
struct Rng(u64);
impl Rng {
    fn f(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Rows with a signal in features 0 and 1, a categorical feature 2, noise elsewhere, some NaN.
fn synthetic(n: usize, nf: usize, seed: u64, missing: f64) -> (Vec<f64>, Vec<f64>) {
    let mut r = Rng(seed);
    let mut x = Vec::with_capacity(n * nf);
    let mut y = Vec::with_capacity(n);
    for _ in 0..n {
        let row: Vec<f64> = (0..nf)
            .map(|f| {
                if r.f() < missing {
                    f64::NAN
                } else if f == 2 {
                    (r.f() * 6.0).floor()
                } else {
                    (r.f() * 100.0).round() / 10.0
                }
            })
            .collect();
        let s = row[0].max(0.0) * 0.3 - row.get(1).copied().unwrap_or(0.0).max(0.0) * 0.2
            + if row.get(2) == Some(&3.0) { 1.5 } else { 0.0 };
        y.push(if r.f() < 1.0 / (1.0 + (-(s - 0.5)).exp()) {
            1.0
        } else {
            0.0
        });
        x.extend(row);
    }
    (x, y)
}

fn small_params(leaves: usize, trees: usize, nf: usize) -> GbdtParams {
    GbdtParams {
        num_trees: trees,
        num_leaves: leaves,
        min_data_in_leaf: 5,
        categorical: if nf > 2 { vec![2] } else { vec![] },
        max_cat_to_onehot: 2,
        min_data_per_group: 5,
        cat_smooth: 1.0,
        ..GbdtParams::default()
    }
}

/// A random tree with `splits` internal nodes over `nf` features, random covers and flags.
fn random_tree(seed: u64, splits: usize, nf: usize) -> Tree {
    let mut r = Rng(seed);
    let mut t = Tree::default();
    // Grow by splitting a random leaf, tracking (node, is_left) of each leaf's parent slot.
    let mut leaves: Vec<Option<(usize, bool)>> = vec![None];
    let mut leaf_cover = vec![100.0];
    for _ in 0..splits {
        let l = (r.f() * leaves.len() as f64) as usize % leaves.len();
        let node = t.feature.len();
        let f = (r.f() * nf as f64) as u32 % nf as u32;
        let cat = r.f() < 0.2;
        if cat {
            t.threshold.push(t.cat_sets.len() as f64);
            t.cat_sets.push(vec![(r.f() * 64.0) as u32 | 1]);
            t.flags.push(CATEGORICAL);
        } else {
            t.threshold.push((r.f() * 10.0).round() / 2.0);
            let missing = [MISSING_NONE, MISSING_ZERO, MISSING_NAN][(r.f() * 3.0) as usize % 3];
            t.flags
                .push(missing_flags(missing) | if r.f() < 0.5 { DEFAULT_LEFT } else { 0 });
        }
        t.feature.push(f);
        let cover = leaf_cover[l];
        t.cover.push(cover);
        let new_leaf = leaves.len();
        t.left.push(!(l as i32));
        t.right.push(!(new_leaf as i32));
        if let Some((p, is_left)) = leaves[l] {
            if is_left {
                t.left[p] = node as i32;
            } else {
                t.right[p] = node as i32;
            }
        }
        let frac = 0.05 + 0.9 * r.f();
        leaf_cover[l] = cover * frac;
        leaf_cover.push(cover * (1.0 - frac));
        leaves[l] = Some((node, true));
        leaves.push(Some((node, false)));
    }
    t.leaf_cover = leaf_cover;
    t.leaf_value = (0..leaves.len()).map(|_| r.f() * 2.0 - 1.0).collect();
    t
}

fn random_row(r: &mut Rng, nf: usize) -> Vec<f64> {
    (0..nf)
        .map(|_| {
            let u = r.f();
            if u < 0.1 {
                f64::NAN
            } else if u < 0.2 {
                0.0
            } else {
                (r.f() * 12.0).floor() / 2.0
            }
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, .. ProptestConfig::default() })]

    /// The fast TreeSHAP equals exact Shapley values of the tree game, tree by tree, and the
    /// values plus the base value sum to the raw output.
    #[test]
    fn treeshap_equals_brute_force(seed in any::<u64>(), splits in 0usize..14, nf in 1usize..6) {
        let tree = random_tree(seed, splits, nf);
        prop_assert!(tree.validate(nf).is_ok(), "{:?}", tree.validate(nf));
        let model = Ensemble::new(nf, 0.25, vec![tree.clone()], Link::Logistic);
        let mut r = Rng(seed ^ 0x5eed);
        for _ in 0..8 {
            let row = random_row(&mut r, nf);
            let fast = model.shap(&row);
            let untabled = model.shap_untabled(&row);
            let exact = brute_force_shap(&tree, &row, nf);
            for f in 0..nf {
                prop_assert!((fast[f] - exact[f]).abs() < 1e-9, "feature {f}: {} vs {}", fast[f], exact[f]);
                prop_assert!((untabled[f] - exact[f]).abs() < 1e-9, "fallback, feature {f}: {} vs {}", untabled[f], exact[f]);
            }
            let sum: f64 = fast.iter().sum();
            prop_assert!((sum - model.predict_raw(&row)).abs() < 1e-9);
            // The branch-free batch path, the single-row path and the reference agree.
            let reference = 0.25 + tree.predict(&row);
            prop_assert_eq!(model.predict_raw(&row), reference);
            prop_assert_eq!(model.predict_raw_batch(&row)[0], reference);
        }
    }

    /// Trained models: SHAP sums equal raw outputs (batch and single), batch prediction equals
    /// row prediction, probabilities of the scoring model lie in [0, 1].
    #[test]
    fn trained_shap_sums_to_raw(seed in any::<u64>(), leaves in 2usize..24, nf in 1usize..6) {
        let (x, y) = synthetic(400, nf, seed, 0.1);
        prop_assume!(y.contains(&1.0) && y.contains(&0.0));
        let data = Dataset { x: &x, n_features: nf, y: &y, weight: None };
        let (model, _) = train(&data, None, &small_params(leaves, 12, nf), &mut |_| {}).expect("train");
        prop_assert!(model.validate().is_ok());
        let raw = model.predict_raw_batch(&x);
        let shap = model.shap_batch(&x);
        for r in 0..y.len() {
            let row = &x[r * nf..(r + 1) * nf];
            prop_assert!((raw[r] - model.predict_raw(row)).abs() < 1e-12);
            let s: f64 = shap[r * (nf + 1)..(r + 1) * (nf + 1)].iter().sum();
            prop_assert!((s - raw[r]).abs() < 1e-9, "row {r}: {s} vs {}", raw[r]);
        }
    }

    #[test]
    fn probabilities_lie_in_unit_interval(raw in prop::num::f64::ANY, a in -50.0f64..50.0, b in -50.0f64..50.0) {
        let cal = candor_ml::calibrate::Calibrator::Platt { a, b };
        let p = cal.apply(raw);
        prop_assert!(p.is_nan() || (0.0..=1.0).contains(&p));
        let schema = candor_ml::table::Schema { columns: vec![], features: vec![] };
        let m = ScoringModel {
            schema,
            estimator: candor_ml::lead::Estimator::Gbdt { ensemble: Ensemble::new(0, 0.0, vec![], Link::Logistic) },
            calibrator: Some(cal),
            tiers: Tiers::default(),
        };
        prop_assert!((0.0..=1.0).contains(&m.probability(raw)));
    }
}

#[test]
fn training_is_deterministic_across_thread_counts() {
    let nf = 5;
    let (x, y) = synthetic(30_000, nf, 7, 0.05);
    let data = Dataset {
        x: &x,
        n_features: nf,
        y: &y,
        weight: None,
    };
    let one = train(
        &data,
        None,
        &GbdtParams {
            threads: 1,
            ..small_params(31, 20, nf)
        },
        &mut |_| {},
    )
    .expect("1");
    let two = train(
        &data,
        None,
        &GbdtParams {
            threads: 2,
            ..small_params(31, 20, nf)
        },
        &mut |_| {},
    )
    .expect("2");
    assert_eq!(one.0, two.0);
}

#[test]
fn monotone_constraint_holds_everywhere() {
    let nf = 4;
    let (x, y) = synthetic(5_000, nf, 11, 0.0);
    // Feature 1 lowers the outcome in the data; force it to be non-decreasing.
    let params = GbdtParams {
        monotone: vec![0, 1, 0, 0],
        categorical: vec![],
        ..small_params(31, 30, nf)
    };
    let data = Dataset {
        x: &x,
        n_features: nf,
        y: &y,
        weight: None,
    };
    let (model, _) = train(&data, None, &params, &mut |_| {}).expect("train");
    let mut r = Rng(3);
    for _ in 0..300 {
        let mut row: Vec<f64> = (0..nf).map(|_| (r.f() * 100.0).round() / 10.0).collect();
        let mut prev = f64::NEG_INFINITY;
        for step in 0..=40 {
            row[1] = step as f64 / 4.0;
            let v = model.predict_raw(&row);
            assert!(v >= prev - 1e-12, "not monotone at {row:?}: {v} < {prev}");
            prev = v;
        }
    }
    // Without the constraint the model does learn the decreasing effect.
    let free = GbdtParams {
        categorical: vec![],
        ..small_params(31, 30, nf)
    };
    let (model, _) = train(&data, None, &free, &mut |_| {}).expect("train");
    let lo = model.predict_raw(&[5.0, 0.0, 5.0, 5.0]);
    let hi = model.predict_raw(&[5.0, 10.0, 5.0, 5.0]);
    assert!(hi < lo);
}

#[test]
fn early_stopping_keeps_the_best_round() {
    let nf = 3;
    let (x, y) = synthetic(3_000, nf, 5, 0.0);
    let (vx, vy) = synthetic(1_000, nf, 6, 0.0);
    let data = Dataset {
        x: &x,
        n_features: nf,
        y: &y,
        weight: None,
    };
    let valid = Dataset {
        x: &vx,
        n_features: nf,
        y: &vy,
        weight: None,
    };
    let params = GbdtParams {
        num_trees: 400,
        learning_rate: 0.3,
        early_stopping_rounds: 10,
        ..small_params(31, 400, nf)
    };
    let (model, report) = train(&data, Some(&valid), &params, &mut |_| {}).expect("train");
    assert!(model.trees.len() < 400, "noise should stop training early");
    assert_eq!(model.trees.len(), report.best_iteration);
    let best = report.valid_logloss[report.best_iteration - 1];
    assert!(report.valid_logloss.iter().all(|&l| l >= best - 1e-12));
}

#[test]
fn bad_training_input_is_refused() {
    let x = vec![1.0, 2.0, 3.0, 4.0];
    let constant = [1.0, 1.0, 1.0, 1.0];
    let d = Dataset {
        x: &x,
        n_features: 1,
        y: &constant,
        weight: None,
    };
    let e = train(&d, None, &GbdtParams::default(), &mut |_| {}).expect_err("constant");
    assert_eq!(e.code(), "target_invalid");
    let inf = vec![1.0, f64::INFINITY, 3.0, 4.0];
    let y = [0.0, 1.0, 0.0, 1.0];
    let d = Dataset {
        x: &inf,
        n_features: 1,
        y: &y,
        weight: None,
    };
    assert_eq!(
        train(&d, None, &GbdtParams::default(), &mut |_| {})
            .expect_err("inf")
            .code(),
        "value_invalid"
    );
    let d = Dataset {
        x: &x,
        n_features: 1,
        y: &y,
        weight: None,
    };
    let bad = GbdtParams {
        num_leaves: 1,
        ..GbdtParams::default()
    };
    assert_eq!(
        train(&d, None, &bad, &mut |_| {})
            .expect_err("params")
            .code(),
        "params_invalid"
    );
}

#[test]
fn auc_counts_ties_half() {
    assert_eq!(
        auc(&[0.1, 0.4, 0.35, 0.8], &[0.0, 0.0, 1.0, 1.0]),
        Some(0.75)
    );
    assert_eq!(auc(&[0.5, 0.5], &[0.0, 1.0]), Some(0.5));
    assert_eq!(auc(&[0.5, 0.5], &[1.0, 1.0]), None);
}

#[test]
fn calibrators_are_monotone_and_fit_rates() {
    let (x, y) = synthetic(5_000, 2, 9, 0.0);
    let raw: Vec<f64> = (0..y.len()).map(|r| x[r * 2] * 0.3 - 2.0).collect();
    for cal in [platt(&raw, &y), isotonic(&raw, &y)] {
        let mut prev = -1.0;
        for i in 0..100 {
            let p = cal.apply(-5.0 + i as f64 * 0.1);
            assert!((0.0..=1.0).contains(&p) && p >= prev - 1e-12);
            prev = p;
        }
        let mean_p: f64 = raw.iter().map(|&r| cal.apply(r)).sum::<f64>() / raw.len() as f64;
        let rate = y.iter().sum::<f64>() / y.len() as f64;
        assert!((mean_p - rate).abs() < 0.01, "{mean_p} vs {rate}");
    }
}

/// AUC, log-loss, Brier score, isotonic and Platt calibration and the logistic-regression
/// baseline against scikit-learn on the same numbers.
#[test]
fn metrics_calibration_and_baseline_match_scikit_learn() {
    let Some(py) = candor_testkit::peers_python() else {
        return;
    };
    let nf = 4;
    let (mut x, y) = synthetic(3_000, nf, 21, 0.0);
    // Standardize so that both fits see the same features (Candor standardizes internally;
    // on standardized input its scaling is the identity up to rounding).
    for f in 0..nf {
        let col: Vec<f64> = (0..y.len()).map(|r| x[r * nf + f]).collect();
        let m = col.iter().sum::<f64>() / col.len() as f64;
        let sd = (col.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / col.len() as f64).sqrt();
        for r in 0..y.len() {
            x[r * nf + f] = (x[r * nf + f] - m) / sd;
        }
    }
    let lambda = 2.0;
    let data = Dataset {
        x: &x,
        n_features: nf,
        y: &y,
        weight: None,
    };
    let lin = candor_ml::linear::fit(&data, lambda).expect("fit");
    let scores: Vec<f64> = (0..y.len())
        .map(|r| x[r * nf] * 0.8 - x[r * nf + 1] * 0.3 + 0.1 * (r % 7) as f64)
        .collect();

    let dir = candor_testkit::TempDir::new("candor-sklearn");
    let lines = |v: &mut dyn Iterator<Item = String>| v.collect::<Vec<_>>().join("\n");
    std::fs::write(
        dir.0.join("x.csv"),
        lines(&mut x.chunks(nf).map(|r| {
            r.iter()
                .map(|v| format!("{v:.17e}"))
                .collect::<Vec<_>>()
                .join(",")
        })),
    )
    .unwrap();
    std::fs::write(
        dir.0.join("y.csv"),
        lines(&mut y.iter().map(|v| format!("{v}"))),
    )
    .unwrap();
    std::fs::write(
        dir.0.join("s.csv"),
        lines(&mut scores.iter().map(|v| format!("{v:.17e}"))),
    )
    .unwrap();
    std::fs::write(dir.0.join("lambda.txt"), format!("{lambda}")).unwrap();
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/sklearn_reference.py");
    let out = std::process::Command::new(py)
        .arg(script)
        .arg(&dir.0)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let f = |k: &str| r[k].as_f64().unwrap();
    let close = |a: f64, b: f64, tol: f64, what: &str| {
        assert!(
            (a - b).abs() <= tol,
            "{what}: candor {a} vs scikit-learn {b}"
        )
    };

    let p: Vec<f64> = scores
        .iter()
        .map(|&s| candor_ml::tree::sigmoid(s))
        .collect();
    close(auc(&scores, &y).unwrap(), f("auc"), 1e-12, "AUC");
    close(
        candor_ml::metrics::log_loss(&p, &y),
        f("log_loss"),
        1e-12,
        "log-loss",
    );
    close(
        candor_ml::metrics::brier(&p, &y),
        f("brier"),
        1e-12,
        "Brier",
    );
    let iso = isotonic(&scores, &y);
    for (g, want) in r["isotonic_grid"]
        .as_array()
        .unwrap()
        .iter()
        .zip(r["isotonic"].as_array().unwrap())
    {
        close(
            iso.apply(g.as_f64().unwrap()),
            want.as_f64().unwrap(),
            1e-9,
            "isotonic",
        );
    }
    let candor_ml::calibrate::Calibrator::Platt { a, b } = platt(&scores, &y) else {
        panic!("platt")
    };
    close(a, f("platt_a"), 1e-4, "Platt a");
    close(b, f("platt_b"), 1e-4, "Platt b");
    // Candor's coefficients are on its own standardization of the (already standardized) input.
    for (j, c) in r["coef"].as_array().unwrap().iter().enumerate() {
        close(
            lin.coef[j] / lin.scales[j],
            c.as_f64().unwrap(),
            1e-5,
            "coefficient",
        );
    }
    let intercept = lin.intercept
        - (0..nf)
            .map(|j| lin.coef[j] * lin.means[j] / lin.scales[j])
            .sum::<f64>();
    close(intercept, f("intercept"), 1e-5, "intercept");
}
