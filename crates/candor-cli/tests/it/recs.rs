//! `candor recs train | recommend | evaluate` through the real binary.

use serde_json::Value;

use super::{Deployment, ok, stderr};
use candor_testkit::BACKENDS;

#[tokio::test]
async fn recs_train_recommend_and_evaluate() {
    let Some(d) = Deployment::new(BACKENDS[0]).await else {
        return;
    };
    ok(&d.run(&["init"]));
    // Order lines of people Candor does not know: a model, but nobody personalized.
    let csv = d.dir.0.join("lines.csv");
    let mut body =
        String::from("InvoiceNo,StockCode,Description,Quantity,InvoiceDate,CustomerID,Country\n");
    for u in 0..30 {
        for i in 0..5 {
            body.push_str(&format!(
                "5{u:04},{},ITEM {},1,2011-10-{:02} 10:00:00,{},UK\n",
                (u + i) % 12,
                (u + i) % 12,
                1 + i,
                12000 + u
            ));
        }
    }
    body.push_str("C50001,1,ITEM 1,-1,2011-10-05 10:00:00,12001,UK\n");
    std::fs::write(&csv, body).unwrap();
    let out = ok(&d.run(&[
        "recs",
        "train",
        "--data",
        csv.to_str().unwrap(),
        "--factors",
        "8",
        "--iterations",
        "5",
    ]));
    let last = out.trim_end().lines().last().unwrap();
    assert_eq!(last, "1", "{out}");
    assert!(out.contains("150 interactions (1 skipped)"), "{out}");
    assert!(out.contains("0 with factors"), "{out}");
    let recs = d.dir.0.join("recs.csv");
    ok(&d.run(&[
        "recs",
        "recommend",
        "--model",
        "1",
        "--out",
        recs.to_str().unwrap(),
    ]));
    assert_eq!(
        std::fs::read_to_string(&recs).unwrap().trim(),
        "user,item,rank,reason"
    );
    // The exposure audit of served lists: none served yet, the popularity list beside it.
    let xj = d.dir.0.join("exposure.json");
    let out = ok(&d.run(&[
        "recs",
        "exposure",
        "--from",
        "2020-01-01",
        "--json",
        xj.to_str().unwrap(),
    ]));
    assert!(out.contains("0 lists audited"), "{out}");
    let x: Value = serde_json::from_str(&std::fs::read_to_string(&xj).unwrap()).unwrap();
    assert_eq!(x["exposure"]["personalized"]["slots"], 0, "{x}");
    let out = d.run(&["recs", "exposure", "--from", "next tuesday"]);
    assert!(!out.status.success());
    let out = d.run(&["recs", "train", "--data", "/nonexistent.csv"]);
    assert!(
        stderr(&out).contains("reading /nonexistent.csv"),
        "{}",
        stderr(&out)
    );

    // Offline evaluation on Online Retail: three models side by side, segments, HTML + JSON.
    let data = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data/online_retail/online_retail.csv.gz");
    if !data.exists() {
        println!("SKIPPED-DATA: {} not found", data.display());
        return;
    }
    let (json, html) = (d.dir.0.join("eval.json"), d.dir.0.join("eval.html"));
    let out = ok(&d.run(&[
        "recs",
        "evaluate",
        "--data",
        data.to_str().unwrap(),
        "--split-date",
        "2011-11-01",
        "--json",
        json.to_str().unwrap(),
        "--html",
        html.to_str().unwrap(),
    ]));
    assert!(
        out.contains("als") && out.contains("item_knn") && out.contains("popularity"),
        "{out}"
    );
    let e: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let recall = |m: &str| e["models"][m]["recall"].as_f64().unwrap();
    assert!(
        recall("als") > recall("popularity") && recall("item_knn") > recall("popularity"),
        "{e}"
    );
    assert!(
        e["segments"]["als"]["segment: United Kingdom"]["users"]
            .as_u64()
            .unwrap()
            > 100
    );
    assert!(
        e["segments"]["als"]["customers: new"]["users"]
            .as_u64()
            .unwrap()
            > 0
    );
    // Exposure: popularity puts more of its exposure on the popular head, and more unequally,
    // than the personalized models.
    let x = |m: &str, f: &str| e["exposure"][m][f].as_f64().unwrap();
    assert!(
        x("popularity", "gini") > x("als", "gini")
            && x("popularity", "head_exposure_share") >= x("als", "head_exposure_share")
            && x("als", "coverage") > x("popularity", "coverage"),
        "{}",
        e["exposure"]
    );
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("<svg") && page.contains("United Kingdom") && page.contains("Exposure"));
}
