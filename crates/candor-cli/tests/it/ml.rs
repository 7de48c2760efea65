//! `candor train`, `score`, `explain`, `models` and `models import` through the real binary.

use std::path::PathBuf;
use std::process::Command;

use candor_testkit::BACKENDS;
use serde_json::Value;

use super::{Deployment, ok, stderr, stdout};

fn data(rel: &str) -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data")
        .join(rel);
    if p.exists() {
        Some(p)
    } else {
        println!("SKIPPED-DATA: {} not found", p.display());
        None
    }
}

fn last_line(s: &str) -> &str {
    s.trim_end().lines().last().unwrap_or("")
}

fn models(d: &Deployment) -> Vec<String> {
    ok(&d.run(&["models", "list"]))
        .lines()
        .map(String::from)
        .collect()
}

#[tokio::test]
async fn train_score_and_explain_a_csv_as_users_have_it() {
    let Some(bank) = data("bank_marketing/bank/bank.csv") else {
        return;
    };
    let bank = bank.to_str().unwrap();
    for backend in BACKENDS {
        let Some(d) = Deployment::new(backend).await else {
            continue;
        };
        ok(&d.run(&["init"]));
        let out = ok(&d.run(&[
            "train",
            "--data",
            bank,
            "--target",
            "y",
            "--protected",
            "age,marital",
            "--exclude",
            "duration",
            "--trees",
            "60",
            "--json",
        ]));
        assert_eq!(last_line(&out), "1", "{out}");
        let report: Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
        assert_eq!(report["version"], 1);
        let auc = report["holdout"]["auc"].as_f64().unwrap();
        assert!(auc > 0.65, "{report}");
        let used: Vec<&str> = report["data"]["columns_used"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap())
            .collect();
        for c in ["age", "marital", "duration", "y"] {
            assert!(!used.contains(&c), "{c} used: {used:?}");
        }
        assert!(report["baseline"]["auc"].as_f64().unwrap() > 0.5);
        assert!(models(&d)[0].contains("draft"));

        // Scoring a file keeps every row in order and adds probability, tier and reasons.
        let out_csv = d.dir.0.join("preds.csv");
        ok(&d.run(&[
            "score",
            "--model",
            "1",
            "--data",
            bank,
            "--out",
            out_csv.to_str().unwrap(),
        ]));
        let input = std::fs::read_to_string(bank).unwrap();
        let mut rdr = csv::Reader::from_path(&out_csv).unwrap();
        let headers = rdr.headers().unwrap().clone();
        let n = headers.len();
        assert_eq!(
            headers.iter().skip(n - 3).collect::<Vec<_>>(),
            ["probability", "tier", "reasons"]
        );
        let rows: Vec<csv::StringRecord> = rdr.records().map(|r| r.unwrap()).collect();
        let in_rows: Vec<&str> = input.lines().skip(1).collect();
        assert_eq!(rows.len(), in_rows.len());
        for (r, line) in rows.iter().zip(&in_rows) {
            assert_eq!(&r[0], line.split(';').next().unwrap(), "row order");
            let p: f64 = r[n - 3].parse().unwrap();
            assert!((0.0..=1.0).contains(&p));
            assert!(["A", "B", "C", "D"].contains(&&r[n - 2]));
            assert!(
                !r[n - 1].contains("age is") && !r[n - 1].contains("marital"),
                "{}",
                &r[n - 1]
            );
        }

        // An explanation adds up to the score.
        let e: Value = serde_json::from_str(&ok(&d.run(&[
            "explain", "--model", "1", "--data", bank, "--row", "7", "--json",
        ])))
        .unwrap();
        let sum = e["base_value"].as_f64().unwrap()
            + e["contributions"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["contribution"].as_f64().unwrap())
                .sum::<f64>();
        assert!((sum - e["raw"].as_f64().unwrap()).abs() < 1e-9, "{e}");
        let text = ok(&d.run(&["explain", "--model", "1", "--data", bank, "--row", "7"]));
        assert!(text.contains("raises") || text.contains("lowers"), "{text}");

        // Lifecycle through the CLI: no audit, no activation.
        let out = d.run(&["models", "activate", "1", "--reason", "skip"]);
        assert!(!out.status.success());
        assert!(stderr(&out).contains("fairness_gate"), "{}", stderr(&out));
        // The audit is recorded and reported; on this data older people are selected far more
        // often, so the gate fails (exit 3) and the model stays a draft.
        let (html, json) = (d.dir.0.join("audit.html"), d.dir.0.join("audit.json"));
        let out = d.run(&[
            "audit",
            "--model",
            "1",
            "--data",
            bank,
            "--target",
            "y",
            "--protected",
            "age,marital",
            "--threshold",
            "0.3",
            "--resamples",
            "200",
            "--html",
            html.to_str().unwrap(),
            "--json",
            json.to_str().unwrap(),
        ]);
        assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
        let text = stdout(&out);
        assert!(
            text.contains("FAILED") && text.contains("model 1 is draft"),
            "{text}"
        );
        let doc: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
        assert_eq!(doc["passed"], false);
        let names: Vec<&str> = doc["report"]["attributes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["audit"]["attribute"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["age", "marital", "age × marital"]);
        assert_eq!(doc["protected"][0]["banded"], true);
        let page = std::fs::read_to_string(&html).unwrap();
        for want in [
            "Selection rate by age",
            "ROC by marital",
            "Calibration by age",
            "Proxies",
        ] {
            assert!(page.contains(want), "{want} missing from the report");
        }
        let out = d.run(&["models", "approve", "1", "--reason", "holdout reviewed"]);
        assert!(stderr(&out).contains("fairness_gate"), "{}", stderr(&out));
        ok(&d.run(&[
            "models",
            "override",
            "1",
            "--reason",
            "age is a legitimate factor for pension products (legal memo 12)",
        ]));
        ok(&d.run(&["models", "approve", "1", "--reason", "holdout reviewed"]));
        ok(&d.run(&["models", "activate", "1", "--reason", "go live"]));
        let show: Value = serde_json::from_str(&ok(&d.run(&["models", "show", "1"]))).unwrap();
        assert_eq!(show["status"], "active");
        assert_eq!(show["transitions"].as_array().unwrap().len(), 3);
        assert_eq!(
            show["fairness"]["validation"]["override"]["reason"],
            "age is a legitimate factor for pension products (legal memo 12)"
        );
        let audits: Value = serde_json::from_str(&ok(&d.run(&["models", "audits", "1"]))).unwrap();
        assert_eq!(audits.as_array().unwrap().len(), 1);
        let card = d.dir.0.join("card.html");
        ok(&d.run(&["models", "card", "1", "--out", card.to_str().unwrap()]));
        let card = std::fs::read_to_string(card).unwrap();
        assert!(card.contains("legal memo 12") && card.contains("Override"));
        let _ = d.backend;
    }
}

#[tokio::test]
async fn bad_files_get_clear_errors_and_register_nothing() {
    let Some(bank) = data("bank_marketing/bank/bank.csv") else {
        return;
    };
    let Some(d) = Deployment::new(BACKENDS[0]).await else {
        return;
    };
    ok(&d.run(&["init"]));
    let dir = &d.dir.0;
    let text = std::fs::read_to_string(&bank).unwrap();
    let write = |name: &str, body: String| {
        let p = dir.join(name);
        std::fs::write(&p, body).unwrap();
        p.to_str().unwrap().to_string()
    };
    let bom = write(
        "bom.csv",
        format!(
            "\u{feff}{}",
            text.replace(";\"no\"\n", ";0\n")
                .replace(";\"yes\"\n", ";1\n")
        ),
    );
    let constant = write("constant.csv", text.replace(";\"yes\"\n", ";\"no\"\n"));
    let junk = write("junk.csv", text.replacen(";1787;", ";lots;", 1));
    let nan = write("nan.csv", text.replacen(";1787;", ";NaN;", 1));
    let bank = bank.to_str().unwrap().to_string();
    let base = ["--protected", "age,marital", "--exclude", "duration"];
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["--data", &bank, "--target", "outcome"],
            "target column \"outcome\" is not in the file",
        ),
        (vec!["--data", &constant, "--target", "y"], "single value"),
        (
            vec!["--data", &junk, "--target", "y"],
            "row 2: column \"balance\" is \"lots\"",
        ),
        (
            vec!["--data", &nan, "--target", "y"],
            "NaN and infinite values are not allowed",
        ),
        (
            vec!["--data", &bank, "--target", "y", "--exclude", "nope"],
            "excluded column \"nope\"",
        ),
        (
            vec!["--data", &bank, "--target", "y", "--features", "age,job"],
            "protected attribute",
        ),
        (
            vec!["--data", "/nonexistent.csv", "--target", "y"],
            "reading /nonexistent.csv",
        ),
    ];
    for (args, want) in cases {
        let mut all = vec!["train"];
        all.extend(&args);
        if !args.contains(&"--exclude") {
            all.extend(base);
        } else {
            all.extend(["--protected", "age,marital"]);
        }
        let o = d.run(&all);
        assert!(!o.status.success(), "{args:?} succeeded");
        assert!(
            stderr(&o).contains(want),
            "{args:?}: wanted {want:?} in {}",
            stderr(&o)
        );
        assert!(stdout(&o).trim().is_empty(), "{}", stdout(&o));
    }
    // Protected attributes of the policy must be declared, not silently used.
    let o = d.run(&[
        "train",
        "--data",
        &bank,
        "--target",
        "y",
        "--exclude",
        "duration",
    ]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("protected attribute under the policy"),
        "{}",
        stderr(&o)
    );
    assert!(
        models(&d).is_empty(),
        "a failed training registered a model"
    );

    // 1/0 targets and a UTF-8 BOM are fine.
    let out = ok(&d.run(&[
        "train",
        "--data",
        &bom,
        "--target",
        "y",
        "--protected",
        "age,marital",
        "--exclude",
        "duration",
        "--trees",
        "20",
    ]));
    assert_eq!(last_line(&out), "1");

    // Damaged model files are refused and register nothing.
    let good = write("m.txt", "tree\nversion=v9\n".into());
    let o = d.run(&["models", "import", &good]);
    assert!(
        !o.status.success() && stderr(&o).contains("model_format_invalid"),
        "{}",
        stderr(&o)
    );
    let truncated = write("t.json", "{\"learner\": {\"gradient_booster\": ".into());
    let o = d.run(&["models", "import", &truncated]);
    assert!(
        !o.status.success() && stderr(&o).contains("model_format_invalid"),
        "{}",
        stderr(&o)
    );
    assert_eq!(models(&d).len(), 1);
}

/// A LightGBM model trained by LightGBM itself, imported and explained by Candor: the same
/// raw scores and contributions as LightGBM's `pred_contrib`.
#[tokio::test]
async fn lightgbm_models_are_scored_and_explained_like_lightgbm() {
    let Some(bank) = data("bank_marketing/bank/bank.csv") else {
        return;
    };
    let Some(py) = candor_testkit::peers_python() else {
        return;
    };
    let Some(d) = Deployment::new(BACKENDS[0]).await else {
        return;
    };
    ok(&d.run(&["init"]));
    let model = d.dir.0.join("lgb.txt");
    let script = r#"
import sys, json, pandas as pd, lightgbm as lgb
df = pd.read_csv(sys.argv[1], sep=";")
y = (df.pop("y") == "yes").astype(int)
X = df.drop(columns=["age", "marital", "duration"])
X = X.astype({c: "category" for c in X.select_dtypes(exclude="number").columns})
b = lgb.train({"objective": "binary", "num_leaves": 15, "verbose": -1, "seed": 3}, lgb.Dataset(X, y), 40)
b.save_model(sys.argv[2])
row = X.iloc[[int(sys.argv[3]) - 1]]
print(json.dumps({"raw": b.predict(row, raw_score=True).tolist()[0], "contrib": b.predict(row, pred_contrib=True)[0].tolist(), "names": list(X.columns)}))
"#;
    let o = Command::new(&py)
        .arg("-c")
        .arg(script)
        .arg(&bank)
        .arg(&model)
        .arg("11")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let want: Value = serde_json::from_slice(&o.stdout).unwrap();
    let out = ok(&d.run(&["models", "import", model.to_str().unwrap()]));
    assert_eq!(last_line(&out), "1");
    let e: Value = serde_json::from_str(&ok(&d.run(&[
        "explain",
        "--model",
        "1",
        "--data",
        bank.to_str().unwrap(),
        "--row",
        "11",
        "--json",
    ])))
    .unwrap();
    assert!(
        (e["raw"].as_f64().unwrap() - want["raw"].as_f64().unwrap()).abs() < 1e-6,
        "{e} vs {want}"
    );
    let got: Vec<f64> = e["contributions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["contribution"].as_f64().unwrap())
        .collect();
    let exp: Vec<f64> = want["contrib"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert_eq!(got.len() + 1, exp.len());
    for (g, w) in got.iter().zip(&exp) {
        assert!((g - w).abs() < 1e-6, "{got:?} vs {exp:?}");
    }
    assert!((e["base_value"].as_f64().unwrap() - exp[exp.len() - 1]).abs() < 1e-6);
    // Reasons speak in the data's own words (pandas categories map back to names).
    let reasons = e["reasons"].to_string();
    assert!(
        reasons.contains("month is") || reasons.contains("poutcome is"),
        "{reasons}"
    );
}

#[tokio::test]
async fn a_bad_audit_gets_a_clear_error_and_records_nothing() {
    let Some(bank) = data("bank_marketing/bank/bank.csv") else {
        return;
    };
    let bank = bank.to_str().unwrap();
    let Some(d) = Deployment::new(BACKENDS[0]).await else {
        return;
    };
    ok(&d.run(&["init"]));
    ok(&d.run(&[
        "train",
        "--data",
        bank,
        "--target",
        "y",
        "--protected",
        "age,marital",
        "--exclude",
        "duration",
        "--trees",
        "10",
    ]));
    let base = ["audit", "--data", bank, "--target", "y"];
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["--model", "1", "--protected", "gender"],
            "protected column \"gender\" is not in the file [column_invalid]",
        ),
        (
            vec!["--model", "1", "--protected", "age", "--threshold", "0"],
            "[threshold_invalid]",
        ),
        (vec!["--model", "9", "--protected", "age"], "[not_found]"),
        (vec!["--model", "1"], "--protected"),
    ];
    for (args, want) in cases {
        let mut all = base.to_vec();
        all.extend(&args);
        let out = d.run(&all);
        assert!(!out.status.success(), "{args:?}");
        assert_ne!(out.status.code(), Some(3), "{args:?}: not an audit verdict");
        assert!(stderr(&out).contains(want), "{args:?}: {}", stderr(&out));
    }
    let audits: Value = serde_json::from_str(&ok(&d.run(&["models", "audits", "1"]))).unwrap();
    assert_eq!(audits, serde_json::json!([]));
    let show: Value = serde_json::from_str(&ok(&d.run(&["models", "show", "1"]))).unwrap();
    assert_eq!(show["status"], "draft");
}
