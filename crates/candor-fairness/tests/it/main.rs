//! candor-fairness against Fairlearn, on scores of a real model.

#![allow(clippy::unwrap_used)]

use candor_fairness::scores::group_scores;
use candor_fairness::{Attribute, MISSING, audit_attribute, group_counts};
use candor_ml::lead::{TrainOptions, train_from_table};
use candor_ml::table::{Selection, read_csv};
use serde_json::Value;
use std::path::PathBuf;

fn bank_full() -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data/bank_marketing/bank/bank-full.csv");
    if p.exists() {
        Some(p)
    } else {
        println!("SKIPPED-DATA: {} not found", p.display());
        None
    }
}

fn age_band(age: &str) -> Option<&'static str> {
    let a: f64 = age.parse().ok()?;
    Some(match a {
        a if a < 30.0 => "<30",
        a if a < 45.0 => "30-44",
        a if a < 60.0 => "45-59",
        _ => "60+",
    })
}

fn german_credit() -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data/german_credit/german_credit.csv");
    if p.exists() {
        Some(p)
    } else {
        println!("SKIPPED-DATA: {} not found", p.display());
        None
    }
}

/// Trains a small Candor model on `table` and returns its scores for every row.
fn train_and_score(
    table: &candor_ml::table::RawTable,
    target: &str,
    positive: Option<&str>,
    exclude: &[String],
    protected: &[String],
) -> (Vec<u8>, Vec<f64>) {
    let sel = Selection {
        target,
        exclude,
        protected,
        features: None,
        positive,
    };
    let opts = TrainOptions {
        gbdt: candor_ml::gbdt::GbdtParams {
            num_trees: 30,
            ..Default::default()
        },
        ..Default::default()
    };
    let res = train_from_table(table, &sel, None, &opts, &mut |_| {}).unwrap();
    let x = res.model.schema.encode(table).unwrap();
    let nf = res.model.n_features();
    let y = candor_ml::table::parse_target(table, target, positive).unwrap();
    let scores = x
        .chunks(nf)
        .map(|row| res.model.score_row(row).unwrap().probability)
        .collect();
    (y.iter().map(|&v| u8::from(v > 0.5)).collect(), scores)
}

/// Every number of `audit_attribute` and `group_scores` for `a`, `b` and `a × b` equals
/// Fairlearn's (MetricFrame group values and the disparity functions) and scikit-learn's
/// per-group `roc_auc_score`, to 1e-9.
fn check_against_fairlearn(
    y_true: &[u8],
    scores: &[f64],
    threshold: f64,
    a_vals: &[Option<String>],
    b_vals: &[Option<String>],
) {
    let Some(py) = candor_testkit::peers_python() else {
        return;
    };
    let y_pred: Vec<u8> = scores.iter().map(|&s| u8::from(s >= threshold)).collect();
    let a = Attribute::from_values("a", a_vals.iter().map(|v| v.as_deref()));
    let b = Attribute::from_values("b", b_vals.iter().map(|v| v.as_deref()));
    let ab = Attribute::intersect(&a, &b);

    let dir = candor_testkit::TempDir::new("candor-fairlearn");
    let csv: String = std::iter::once("y,p,s,a,b".to_string())
        .chain((0..y_true.len()).map(|i| {
            format!(
                "{},{},{:?},{},{}",
                y_true[i],
                y_pred[i],
                scores[i],
                a_vals[i].as_deref().unwrap_or(""),
                b_vals[i].as_deref().unwrap_or("")
            )
        }))
        .collect::<Vec<_>>()
        .join("\n");
    let file = dir.0.join("scores.csv");
    std::fs::write(&file, csv).unwrap();
    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/peers/fairlearn_reference.py");
    let out = std::process::Command::new(py)
        .arg(script)
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let want: Value = serde_json::from_slice(&out.stdout).unwrap();

    let close = |a: f64, b: &Value, what: &str| {
        let b = b.as_f64().unwrap_or_else(|| panic!("{what}: missing"));
        assert!((a - b).abs() <= 1e-9, "{what}: candor {a} vs fairlearn {b}");
    };
    let mut checked = 0;
    for (key, attr) in [("a", &a), ("b", &b), ("a × b", &ab)] {
        let audit = audit_attribute(attr, y_true, &y_pred, 0);
        let sc = group_scores(&attr.codes, &attr.labels, scores, y_true);
        let w = &want[key];
        assert_eq!(
            audit.groups.len(),
            w["groups"].as_object().unwrap().len(),
            "{key}: group count"
        );
        for g in &audit.groups {
            let wg = &w["groups"][&g.group];
            for (name, v) in [
                ("selection_rate", g.selection_rate),
                ("tpr", g.tpr),
                ("fpr", g.fpr),
                ("fnr", g.fnr),
                ("precision", g.precision),
                ("accuracy", g.accuracy),
                ("count", g.count as f64),
            ] {
                close(v, &wg[name], &format!("{key} / {} / {name}", g.group));
                checked += 1;
            }
            let gs = sc.iter().find(|s| s.group == g.group).unwrap();
            close(
                gs.mean_score,
                &wg["mean_score"],
                &format!("{key} / {} / mean score", g.group),
            );
            match gs.auc {
                Some(auc) => close(auc, &wg["auc"], &format!("{key} / {} / auc", g.group)),
                None => assert!(wg["auc"].is_null(), "{key} / {}: auc", g.group),
            }
        }
        let dp = audit.demographic_parity.as_ref().unwrap();
        close(
            dp.difference,
            &w["dp_difference"],
            "demographic parity difference",
        );
        close(dp.ratio, &w["dp_ratio"], "demographic parity ratio");
        close(
            audit.equalized_odds_difference.unwrap(),
            &w["eo_difference"],
            "equalized odds difference",
        );
        close(
            audit.equalized_odds_ratio.unwrap(),
            &w["eo_ratio"],
            "equalized odds ratio",
        );
        let eop = audit.equal_opportunity.as_ref().unwrap();
        close(
            eop.difference,
            &w["eop_difference"],
            "equal opportunity difference",
        );
        close(eop.ratio, &w["eop_ratio"], "equal opportunity ratio");
    }
    assert!(checked > 50, "only {checked} numbers compared");
}

/// Bank-full scores: age band, marital status (with some values removed: a missing group) and
/// their intersection.
#[test]
fn matches_fairlearn_on_bank_full_scores() {
    let Some(path) = bank_full() else { return };
    let table = read_csv(&std::fs::read(&path).unwrap()).unwrap();
    let (y_true, scores) = train_and_score(
        &table,
        "y",
        None,
        &["duration".to_string()],
        &["age".to_string(), "marital".to_string()],
    );
    let age: Vec<Option<String>> = table
        .rows
        .iter()
        .map(|r| age_band(&r[0]).map(str::to_string))
        .collect();
    let marital: Vec<Option<String>> = table
        .rows
        .iter()
        .enumerate()
        .map(|(i, r)| {
            if i % 97 == 0 {
                None
            } else {
                Some(r[2].clone())
            }
        })
        .collect();
    assert!(marital.iter().any(Option::is_none));
    check_against_fairlearn(&y_true, &scores, 0.2, &age, &marital);
}

/// German credit (1,000 applicants): personal status & sex and age band, on Candor's scores of
/// good credit risk.
#[test]
fn matches_fairlearn_on_german_credit() {
    let Some(path) = german_credit() else { return };
    let table = read_csv(&std::fs::read(&path).unwrap()).unwrap();
    let col = |name: &str| table.headers.iter().position(|c| c == name).unwrap();
    let (sex, age) = (col("personal_status_and_sex"), col("age_in_years"));
    let (y_true, scores) = train_and_score(
        &table,
        "credit_risk",
        Some("1"),
        &[],
        &[
            "personal_status_and_sex".to_string(),
            "age_in_years".to_string(),
        ],
    );
    assert_eq!(y_true.iter().filter(|&&y| y == 1).count(), 700);
    let a: Vec<Option<String>> = table.rows.iter().map(|r| Some(r[sex].clone())).collect();
    let b: Vec<Option<String>> = table
        .rows
        .iter()
        .map(|r| age_band(&r[age]).map(str::to_string))
        .collect();
    check_against_fairlearn(&y_true, &scores, 0.7, &a, &b);
}

#[test]
fn small_groups_are_reported_not_measured_and_missing_is_a_group() {
    let vals = [Some("x"), Some("x"), Some("x"), Some("y"), None, Some(" ")];
    let attr = Attribute::from_values("g", vals);
    assert_eq!(attr.labels, vec!["x", "y", MISSING]);
    let y = [1, 0, 1, 1, 0, 1];
    let p = [1, 0, 0, 1, 1, 0];
    let audit = audit_attribute(&attr, &y, &p, 2);
    let names: Vec<(&str, bool)> = audit
        .groups
        .iter()
        .map(|g| (g.group.as_str(), g.too_small))
        .collect();
    assert_eq!(names, vec![("x", false), ("y", true), (MISSING, false)]);
    // Disparities use x and (missing) only: selection rates 1/3 and 1/2.
    let dp = audit.demographic_parity.unwrap();
    assert!((dp.difference - (0.5 - 1.0 / 3.0)).abs() < 1e-12);
    assert!((dp.ratio - (1.0 / 3.0) / 0.5).abs() < 1e-12);
    assert_eq!(audit.four_fifths_violated, Some(true));
    let c = group_counts(&attr.codes, 3, &y, &p);
    assert_eq!(c[0].tp + c[0].fp + c[0].tn + c[0].fn_, 3);
}

mod bootstrap {
    use candor_fairness::Counts;
    use candor_fairness::bootstrap::{Rng, bootstrap};

    #[test]
    fn binomial_draws_have_the_right_mean_and_variance() {
        let mut rng = Rng(7);
        for (n, p) in [
            (5u64, 0.3),
            (50, 0.1),
            (1000, 0.02),
            (1000, 0.3),
            (1_000_000, 0.45),
            (1_000_000, 0.9),
            (40, 1.0),
        ] {
            let draws: Vec<f64> = (0..20_000)
                .map(|_| {
                    let k = rng.binomial(n, p);
                    assert!(k <= n);
                    k as f64
                })
                .collect();
            let mean = draws.iter().sum::<f64>() / draws.len() as f64;
            let var = draws.iter().map(|d| (d - mean) * (d - mean)).sum::<f64>()
                / (draws.len() - 1) as f64;
            let (m, v) = (n as f64 * p, n as f64 * p * (1.0 - p));
            assert!(
                (mean - m).abs() <= 5.0 * (v / draws.len() as f64).sqrt() + 1e-9,
                "n {n} p {p}: mean {mean} vs {m}"
            );
            assert!(
                (var - v).abs() <= 0.1 * v + 1e-9,
                "n {n} p {p}: variance {var} vs {v}"
            );
        }
        let k = rng.multinomial(1000, &[10, 0, 30, 60]);
        assert_eq!(k.iter().sum::<u64>(), 1000);
        assert_eq!(k[1], 0);
    }

    /// Drawing on counts gives the same intervals as resampling rows.
    #[test]
    fn count_bootstrap_agrees_with_row_bootstrap_and_is_seeded() {
        let groups = vec![
            (
                "a".to_string(),
                Counts {
                    tp: 120,
                    fp: 80,
                    tn: 700,
                    fn_: 100,
                },
            ),
            (
                "b".to_string(),
                Counts {
                    tp: 30,
                    fp: 10,
                    tn: 400,
                    fn_: 60,
                },
            ),
            (
                "tiny".to_string(),
                Counts {
                    tp: 1,
                    fp: 0,
                    tn: 0,
                    fn_: 0,
                },
            ),
        ];
        let ci = bootstrap(&groups, 10, 2000, 0.95, 42);
        assert_eq!(ci, bootstrap(&groups, 10, 2000, 0.95, 42));
        assert_ne!(ci, bootstrap(&groups, 10, 2000, 0.95, 43));
        // Row bootstrap of group a's selection rate.
        let rows: Vec<u8> = std::iter::repeat_n(1u8, 200)
            .chain(std::iter::repeat_n(0u8, 800))
            .collect();
        let mut rng = Rng(9);
        let mut rates: Vec<f64> = (0..2000)
            .map(|_| {
                let s: u32 = (0..rows.len())
                    .map(|_| u32::from(rows[(rng.uniform() * rows.len() as f64) as usize]))
                    .sum();
                f64::from(s) / rows.len() as f64
            })
            .collect();
        rates.sort_by(f64::total_cmp);
        let (lo, hi) = (rates[49], rates[1949]);
        assert!(
            (ci.selection_rate[0].low - lo).abs() < 0.006,
            "{:?} vs {lo}",
            ci.selection_rate[0]
        );
        assert!(
            (ci.selection_rate[0].high - hi).abs() < 0.006,
            "{:?} vs {hi}",
            ci.selection_rate[0]
        );
        // The tiny group is resampled without crashing; disparities leave it out.
        assert_eq!(ci.selection_rate[2].low, 1.0);
        let dpd = ci.demographic_parity_difference.unwrap();
        assert!(dpd.low > 0.05 && dpd.high < 0.2, "{dpd:?}");
    }
}

mod proxies_and_gates {
    use candor_fairness::gates::{Gates, evaluate};
    use candor_fairness::proxy::{association, proxy_strength};
    use candor_fairness::{Attribute, audit_attribute};

    fn rng(seed: &mut u64) -> f64 {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (*seed >> 11) as f64 / (1u64 << 53) as f64
    }

    #[test]
    fn a_leaked_proxy_is_flagged_and_a_biased_model_fails_its_gates() {
        let mut s = 5u64;
        let n = 4000;
        let group: Vec<Option<&str>> = (0..n)
            .map(|_| Some(if rng(&mut s) < 0.4 { "f" } else { "m" }))
            .collect();
        let attr = Attribute::from_values("gender", group.iter().copied());
        let is_f: Vec<bool> = group.iter().map(|g| *g == Some("f")).collect();
        // A "postcode" that mostly reveals the group, and a noise feature.
        let proxy: Vec<f64> = is_f
            .iter()
            .map(|&f| if (rng(&mut s) < 0.85) == f { 1.0 } else { 0.0 })
            .collect();
        let noise: Vec<f64> = (0..n).map(|_| (rng(&mut s) * 100.0).floor()).collect();
        let p = proxy_strength("postcode", &proxy, true, &attr);
        let q = proxy_strength("basket_size", &noise, false, &attr);
        assert!(p.cramers_v > 0.6 && p.auc > 0.8, "{p:?}");
        assert!(q.cramers_v < 0.1 && q.auc < 0.6, "{q:?}");
        // The proxy AUC equals the pair count over rows of the target-encoded feature.
        let share = |v: f64| {
            let (k, m) = proxy
                .iter()
                .zip(&is_f)
                .filter(|(x, _)| **x == v)
                .fold((0.0, 0.0), |(k, m), (_, f)| {
                    (k + f64::from(u8::from(*f)), m + 1.0)
                });
            k / m
        };
        let score: Vec<f64> = proxy.iter().map(|&v| share(v)).collect();
        let (mut wins, mut pairs) = (0.0, 0.0);
        for i in (0..n).filter(|&i| is_f[i]) {
            for j in (0..n).filter(|&j| !is_f[j]) {
                pairs += 1.0;
                wins += if score[i] > score[j] {
                    1.0
                } else if score[i] == score[j] {
                    0.5
                } else {
                    0.0
                };
            }
        }
        let brute: f64 = wins / pairs;
        assert!(
            (p.auc - brute.max(1.0 - brute)).abs() < 1e-12,
            "{} vs {brute}",
            p.auc
        );
        // A model that selects through the proxy.
        let y_true: Vec<u8> = (0..n).map(|_| u8::from(rng(&mut s) < 0.3)).collect();
        let y_pred: Vec<u8> = proxy.iter().map(|&v| u8::from(v == 0.0)).collect();
        let audit = audit_attribute(&attr, &y_true, &y_pred, 30);
        let verdicts = evaluate(&Gates::default(), &[audit], &[p, q]);
        let failed: Vec<&str> = verdicts
            .iter()
            .filter(|v| !v.passed)
            .map(|v| v.gate.as_str())
            .collect();
        assert!(failed.contains(&"min_selection_rate_ratio"), "{verdicts:?}");
        assert!(
            failed.contains(&"max_equalized_odds_difference"),
            "{verdicts:?}"
        );
        assert_eq!(
            failed
                .iter()
                .filter(|g| **g == "max_proxy_cramers_v")
                .count(),
            1,
            "{verdicts:?}"
        );
        // A fair model passes the disparity gates.
        let fair: Vec<u8> = (0..n).map(|_| u8::from(rng(&mut s) < 0.3)).collect();
        let audit = audit_attribute(&attr, &y_true, &fair, 30);
        assert!(
            evaluate(&Gates::default(), &[audit], &[])
                .iter()
                .all(|v| v.passed)
        );
        // One group only: the gate cannot be cleared.
        let one = Attribute::from_values("g", std::iter::repeat_n(Some("x"), n));
        let audit = audit_attribute(&one, &y_true, &fair, 30);
        assert!(
            evaluate(&Gates::default(), &[audit], &[])
                .iter()
                .all(|v| !v.passed)
        );
    }

    #[test]
    fn association_matches_scipy_and_scikit_learn() {
        let Some(py) = candor_testkit::peers_python() else {
            return;
        };
        let mut s = 11u64;
        let a: Vec<u32> = (0..3000).map(|_| (rng(&mut s) * 4.0) as u32).collect();
        let b: Vec<u32> = a
            .iter()
            .map(|&x| {
                if rng(&mut s) < 0.5 {
                    x % 3
                } else {
                    (rng(&mut s) * 3.0) as u32
                }
            })
            .collect();
        let (v, mi) = association(&a, 4, &b, 3);
        let dir = candor_testkit::TempDir::new("candor-assoc");
        let body: String = std::iter::once("a,b".to_string())
            .chain(a.iter().zip(&b).map(|(x, y)| format!("{x},{y}")))
            .collect::<Vec<_>>()
            .join("\n");
        std::fs::write(dir.0.join("ab.csv"), body).unwrap();
        let script = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/peers/association_reference.py");
        let out = std::process::Command::new(py)
            .arg(script)
            .arg(dir.0.join("ab.csv"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(
            (v - r["cramers_v"].as_f64().unwrap()).abs() < 1e-12,
            "{v} vs {r}"
        );
        assert!(
            (mi - r["mutual_information"].as_f64().unwrap()).abs() < 1e-12,
            "{mi} vs {r}"
        );
    }
}

mod full_audit {
    use candor_fairness::Attribute;
    use candor_fairness::gates::Gates;
    use candor_fairness::report::{AuditInput, Feature, audit, summary};

    #[test]
    fn one_audit_covers_attributes_intersections_intervals_proxies_and_gates() {
        let mut s = 3u64;
        let mut r = || {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (s >> 11) as f64 / (1u64 << 53) as f64
        };
        let n = 3000;
        let sex: Vec<&str> = (0..n).map(|_| if r() < 0.5 { "f" } else { "m" }).collect();
        let band: Vec<&str> = (0..n)
            .map(|_| if r() < 0.3 { "<30" } else { "30+" })
            .collect();
        let a = Attribute::from_values("sex", sex.iter().map(|v| Some(*v)));
        let b = Attribute::from_values("age", band.iter().map(|v| Some(*v)));
        let y: Vec<u8> = (0..n).map(|_| u8::from(r() < 0.3)).collect();
        let fair: Vec<u8> = (0..n).map(|_| u8::from(r() < 0.3)).collect();
        let noise: Vec<f64> = (0..n).map(|_| r()).collect();
        let features = [Feature {
            name: "noise",
            values: &noise,
            categorical: false,
        }];
        let gates = Gates::default();
        let input = AuditInput {
            y_true: &y,
            y_pred: &fair,
            scores: Some(&noise),
            threshold: 0.7,
            attributes: &[a.clone(), b.clone()],
            features: &features,
            gates: &gates,
            resamples: 200,
            level: 0.95,
            seed: 1,
        };
        let rep = audit(&input);
        let names: Vec<&str> = rep
            .attributes
            .iter()
            .map(|x| x.audit.attribute.as_str())
            .collect();
        assert_eq!(names, vec!["sex", "age", "sex × age"]);
        assert_eq!(rep.attributes[2].audit.groups.len(), 4);
        assert!(rep.passed, "{:?}", rep.verdicts);
        assert_eq!(rep.proxies.len(), 2);
        for x in &rep.attributes {
            for (g, ci) in x.audit.groups.iter().zip(&x.intervals.selection_rate) {
                assert!(
                    ci.low <= g.selection_rate && g.selection_rate <= ci.high,
                    "{g:?} {ci:?}"
                );
            }
        }
        // Selecting mostly women under 30 fails, in the intersection too.
        let biased: Vec<u8> = (0..n)
            .map(|i| u8::from(sex[i] == "f" && (band[i] == "<30" || r() < 0.2)))
            .collect();
        let rep = audit(&AuditInput {
            y_pred: &biased,
            ..input
        });
        assert!(!rep.passed);
        assert!(
            rep.verdicts
                .iter()
                .any(|v| !v.passed && v.subject == "sex × age")
        );
        let json = serde_json::to_value(&rep).unwrap();
        assert_eq!(json["passed"], false);
        // Every attribute carries score metrics and parity thresholds per group, in order.
        for x in &rep.attributes {
            assert_eq!(x.scores.len(), x.audit.groups.len());
            assert_eq!(x.parity_thresholds.len(), x.audit.groups.len());
            for (g, sc) in x.audit.groups.iter().zip(&x.scores) {
                assert_eq!(g.group, sc.group);
            }
        }
        let words = summary(&rep);
        assert!(
            words
                .iter()
                .any(|l| l.starts_with("FAILED") && l.contains("sex")),
            "{words:?}"
        );
        assert!(words.last().unwrap().contains("override"), "{words:?}");
    }
}

mod mitigation {
    use candor_fairness::Attribute;
    use candor_fairness::scores::{group_auc, group_scores, parity_thresholds, reweighing_weights};

    fn lcg(s: &mut u64) -> f64 {
        *s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (*s >> 11) as f64 / (1u64 << 53) as f64
    }

    /// After reweighing, the weighted base rate is the same in every group (and equals the
    /// overall rate), and the total weight is the row count.
    #[test]
    fn reweighing_makes_the_label_independent_of_the_group() {
        let mut s = 1u64;
        let n = 5000;
        let g: Vec<u32> = (0..n).map(|_| (lcg(&mut s) * 3.0) as u32).collect();
        let y: Vec<u8> = g
            .iter()
            .map(|&c| u8::from(lcg(&mut s) < [0.1, 0.3, 0.6][c as usize]))
            .collect();
        let w = reweighing_weights(&g, 3, &y);
        let total: f64 = w.iter().sum();
        assert!((total - n as f64).abs() < 1e-6, "{total}");
        let overall = y.iter().filter(|&&v| v == 1).count() as f64 / n as f64;
        for c in 0..3 {
            let (mut wp, mut wa) = (0.0, 0.0);
            for i in 0..n {
                if g[i] == c {
                    wa += w[i];
                    wp += w[i] * f64::from(y[i]);
                }
            }
            assert!(
                (wp / wa - overall).abs() < 1e-9,
                "group {c}: {} vs {overall}",
                wp / wa
            );
        }
    }

    /// Parity thresholds give every group (nearly) the overall selection rate.
    #[test]
    fn parity_thresholds_equalise_selection_rates() {
        let mut s = 2u64;
        let n = 6000;
        let g: Vec<u32> = (0..n).map(|_| u32::from(lcg(&mut s) < 0.4)).collect();
        let scores: Vec<f64> = g
            .iter()
            .map(|&c| (lcg(&mut s) * 0.8 + if c == 1 { 0.2 } else { 0.0 }).min(1.0))
            .collect();
        let th = parity_thresholds(&g, 2, &scores, 0.6);
        let overall = scores.iter().filter(|&&x| x >= 0.6).count() as f64 / n as f64;
        for c in 0..2u32 {
            let (sel, tot) = scores
                .iter()
                .zip(&g)
                .filter(|(_, k)| **k == c)
                .fold((0usize, 0usize), |(a, b), (&x, _)| {
                    (a + usize::from(x >= th[c as usize]), b + 1)
                });
            let rate = sel as f64 / tot as f64;
            assert!(
                (rate - overall).abs() < 2.0 / tot as f64,
                "group {c}: {rate} vs {overall}"
            );
        }
        assert!(th[1] > th[0], "{th:?}");
    }

    /// Per-group AUC equals the brute-force pair count with ties; curves are well formed.
    #[test]
    fn group_auc_counts_pairs_with_ties() {
        let mut s = 3u64;
        let n = 700;
        let attr = Attribute::from_values(
            "g",
            (0..n).map(|_| Some(if lcg(&mut s) < 0.5 { "x" } else { "y" })),
        );
        let y: Vec<u8> = (0..n).map(|_| u8::from(lcg(&mut s) < 0.35)).collect();
        let scores: Vec<f64> = y
            .iter()
            .map(|&t| ((lcg(&mut s) + 0.3 * f64::from(t)) * 10.0).round() / 13.0)
            .collect();
        let aucs = group_auc(&attr.codes, 2, &scores, &y);
        for (c, auc) in aucs.iter().enumerate() {
            let (mut wins, mut pairs) = (0.0, 0.0);
            for i in 0..n {
                for j in 0..n {
                    if attr.codes[i] as usize == c
                        && attr.codes[j] as usize == c
                        && y[i] == 1
                        && y[j] == 0
                    {
                        pairs += 1.0;
                        wins += if scores[i] > scores[j] {
                            1.0
                        } else if scores[i] == scores[j] {
                            0.5
                        } else {
                            0.0
                        };
                    }
                }
            }
            assert!((auc.unwrap() - wins / pairs).abs() < 1e-12);
        }
        let gs = group_scores(&attr.codes, &attr.labels, &scores, &y);
        for g in &gs {
            assert_eq!(g.roc.first(), Some(&(0.0, 0.0)));
            let last = g.roc.last().unwrap();
            assert!((last.0 - 1.0).abs() < 1e-12 && (last.1 - 1.0).abs() < 1e-12);
            assert!(
                g.roc
                    .windows(2)
                    .all(|w| w[1].0 >= w[0].0 && w[1].1 >= w[0].1)
            );
            assert_eq!(
                g.calibration.iter().map(|b| b.count).sum::<u64>() as usize,
                attr.codes
                    .iter()
                    .filter(|&&c| attr.labels[c as usize] == g.group)
                    .count()
            );
            assert!(g.calibration_error >= 0.0 && g.calibration_error <= 1.0);
        }
        // A group with one class has no AUC and no ROC.
        let one = group_auc(&[0, 0, 1, 1], 2, &[0.1, 0.2, 0.3, 0.4], &[1, 1, 0, 1]);
        assert_eq!(one[0], None);
        assert!(one[1].is_some());
    }
}
