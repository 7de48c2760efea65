//! Candor's trainer against LightGBM on the UCI bank-marketing data (CC BY 4.0, read from
//! ../shared/data): same holdout (every 5th row), same trees, leaves and learning rate.

use candor_ml::lead::{TrainOptions, train_from_table};
use candor_ml::table::{Selection, read_csv};
use std::path::PathBuf;
use std::process::Command;

pub fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn bank_full() -> Option<PathBuf> {
    let p = workspace().join("../shared/data/bank_marketing/bank/bank-full.csv");
    p.exists().then_some(p)
}

#[test]
fn bank_full_auc_matches_lightgbm() {
    let Some(path) = bank_full() else {
        println!("SKIPPED-DATA: bank-full.csv not found");
        return;
    };
    let Some(py) = candor_testkit::peers_python() else {
        return;
    };
    let bytes = std::fs::read(&path).expect("read bank-full");
    let table = read_csv(&bytes).expect("parse");
    let exclude = vec!["duration".to_string()];
    let protected = vec!["age".to_string(), "marital".to_string()];
    let sel = Selection {
        target: "y",
        exclude: &exclude,
        protected: &protected,
        features: None,
        positive: None,
    };
    let opts = TrainOptions::default();
    let t0 = std::time::Instant::now();
    let res = train_from_table(&table, &sel, None, &opts, &mut |_| {}).expect("train");
    let secs = t0.elapsed().as_secs_f64();
    let ours = res.holdout.as_ref().and_then(|m| m.auc).expect("auc");
    assert!(
        !res.data
            .columns_used
            .iter()
            .any(|c| c == "age" || c == "marital" || c == "duration")
    );

    let out = Command::new(py)
        .arg(workspace().join("crates/candor-ml/tests/peers/bank_lightgbm.py"))
        .args([
            path.to_str().expect("utf8 path"),
            "y",
            "duration",
            "age,marital",
        ])
        .output()
        .expect("run LightGBM reference");
    assert!(
        out.status.success(),
        "reference failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("reference JSON");
    let native = v["native"].as_f64().expect("native auc");
    let onehot = v["onehot"].as_f64().expect("onehot auc");
    println!(
        "bank-full holdout AUC: candor {ours:.4} ({secs:.2}s, {} trees), lightgbm native {native:.4}, one-hot {onehot:.4}; baseline logistic {:.4}",
        res.trees,
        res.baseline
            .as_ref()
            .and_then(|m| m.auc)
            .unwrap_or(f64::NAN)
    );
    assert!(
        (ours - native).abs() <= 0.005,
        "candor {ours} vs LightGBM {native}"
    );
}
