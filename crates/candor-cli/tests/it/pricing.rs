//! `candor pricing …` through the real binary: the dispersion report on UCI Online Retail
//! checked against pandas, and price history, file checks and proxy detection on both
//! backends.

use std::path::PathBuf;
use std::process::Command;

use candor_testkit::{BACKENDS, peers_python};
use serde_json::Value;

use super::{Deployment, ok, online_retail, stderr, stdout};

#[tokio::test]
async fn online_retail_dispersion_by_country_matches_pandas() {
    let Some(data) = online_retail() else {
        return;
    };
    let Some(py) = peers_python() else {
        return;
    };
    let Some(d) = Deployment::new(BACKENDS[0]).await else {
        return;
    };
    ok(&d.run(&["init"]));
    let (json_path, html_path) = (
        d.dir.0.join("dispersion.json"),
        d.dir.0.join("dispersion.html"),
    );
    let out = d.run(&[
        "pricing",
        "audit",
        "--data",
        data.to_str().unwrap(),
        "--currency",
        "GBP",
        "--json",
        json_path.to_str().unwrap(),
        "--html",
        html_path.to_str().unwrap(),
    ]);
    // Flagged products: recorded, and the exit status says so.
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(stdout(&out).contains("By Country:"), "{}", stdout(&out));
    let doc: Value = serde_json::from_slice(&std::fs::read(&json_path).unwrap()).unwrap();
    assert_eq!(doc["kind"], "file");
    assert_eq!(doc["rows"]["read"], 541_909);
    assert_eq!(doc["max_ratio"], 1.25);
    let report = &doc["attributes"][0];
    assert_eq!(report["attribute"], "Country");
    let flagged: Vec<&str> = doc["flagged_products"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(!flagged.is_empty() && flagged.len() < 20, "{flagged:?}");
    assert_eq!(doc["names"]["85123A"], "WHITE HANGING HEART T-LIGHT HOLDER");

    let reference = Command::new(py)
        .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/peers/price_dispersion.py"))
        .arg(&data)
        .output()
        .unwrap();
    assert!(
        reference.status.success(),
        "{}",
        String::from_utf8_lossy(&reference.stderr)
    );
    let want: Value = serde_json::from_slice(&reference.stdout).unwrap();
    let products: Vec<&str> = report["products"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["product"].as_str().unwrap())
        .collect();
    let want_products: Vec<&str> = want["products"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    let mut sorted = products.clone();
    sorted.sort_unstable();
    let mut want_sorted = want_products.clone();
    want_sorted.sort_unstable();
    assert_eq!(sorted, want_sorted, "the same top 20 products");
    let (mut ratios, mut intervals) = (0, 0);
    for cell in report["cells"].as_array().unwrap() {
        let key = format!(
            "{}|{}",
            cell["product"].as_str().unwrap(),
            cell["period"].as_str().unwrap()
        );
        let w = &want["cells"][&key];
        assert_eq!(cell["reference"], w["reference"], "{key}");
        assert_eq!(
            cell["groups"].as_array().unwrap().len(),
            w["groups"].as_object().unwrap().len(),
            "{key}"
        );
        for g in cell["groups"].as_array().unwrap() {
            let wg = &w["groups"][g["group"].as_str().unwrap()];
            assert_eq!(g["lines"], wg[0], "{key}");
            let (m, wm) = (g["mean_price"].as_f64().unwrap(), wg[1].as_f64().unwrap());
            assert!((m - wm).abs() <= 1e-9 * wm, "{key} {m} {wm}");
            match (g["ratio"].as_f64(), wg[2].as_f64()) {
                (Some(r), Some(wr)) => {
                    assert!((r - wr).abs() < 1e-9, "{key} {r} {wr}");
                    assert_eq!(g["beyond_threshold"], wg[3], "{key}");
                    ratios += 1;
                    if let (Some(lo), Some(hi), Some(wlo), Some(whi)) = (
                        g["interval"][0].as_f64(),
                        g["interval"][1].as_f64(),
                        wg[4].as_f64(),
                        wg[5].as_f64(),
                    ) {
                        // Two seeded bootstraps (1,000 and 2,000 resamples): equal within
                        // Monte Carlo error.
                        assert!(lo <= r && r <= hi, "{key}");
                        assert!(
                            (lo - wlo).abs() < 0.06 * r && (hi - whi).abs() < 0.06 * r,
                            "{key}: {lo}–{hi} vs {wlo}–{whi}"
                        );
                        intervals += 1;
                    }
                    // A flag needs the threshold and an interval that excludes 1.
                    if g["flagged"] == true {
                        assert!(
                            wg[3] == true
                                && (g["interval"][0].as_f64().unwrap() > 1.0
                                    || g["interval"][1].as_f64().unwrap() < 1.0)
                        );
                    }
                }
                (None, None) => {}
                other => panic!("{key}: {other:?}"),
            }
        }
    }
    assert!(
        ratios > 50 && intervals > 30,
        "{ratios} ratios, {intervals} intervals"
    );
    let html = std::fs::read_to_string(&html_path).unwrap();
    assert!(html.contains("<svg") && html.contains("WHITE HANGING HEART T-LIGHT HOLDER"));
    for p in &flagged {
        assert!(html.contains(p), "{p} is on the page");
    }
    // The audit is recorded.
    let out = ok(&d.run(&["pricing", "alerts"]));
    assert!(
        out.contains("no price alerts"),
        "file audits raise no alerts: {out}"
    );
}

#[tokio::test]
async fn history_file_checks_and_proxy_detection() {
    for backend in BACKENDS {
        let Some(d) = Deployment::new(backend).await else {
            continue;
        };
        ok(&d.run(&["init"]));
        let lines = d.dir.0.join("orders.csv");
        let ago = |d: u32| candor_types::Timestamp::now().minus_days(d).to_rfc3339();
        std::fs::write(
            &lines,
            format!(
                "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n\
                 1,A,LAMP,2,{},10.005,1,UK\n\
                 2,A,LAMP,1,{},9.50,2,France\n\
                 C3,A,LAMP,-1,{},9.50,2,France\n\
                 4,A,LAMP,0,{},1.00,2,France\n",
                ago(13),
                ago(8),
                ago(7),
                ago(6)
            ),
        )
        .unwrap();
        let out = ok(&d.run(&[
            "pricing",
            "import",
            "--data",
            lines.to_str().unwrap(),
            "--currency",
            "GBP",
        ]));
        assert!(out.contains("2 prices imported, 2 skipped"), "{out}");
        // Importing again changes nothing.
        let out = ok(&d.run(&[
            "pricing",
            "import",
            "--data",
            lines.to_str().unwrap(),
            "--currency",
            "GBP",
        ]));
        assert!(out.contains("0 prices imported"), "{out}");
        let out = ok(&d.run(&[
            "pricing",
            "history",
            "A",
            "--currency",
            "GBP",
            "--days",
            "365",
        ]));
        assert!(out.contains("10.01") && out.contains("9.50"), "{out}");
        assert!(
            out.contains("lowest of the prior 30 days: 9.50 GBP"),
            "{out}"
        );

        let prices = d.dir.0.join("prices.csv");
        std::fs::write(
            &prices,
            "product,currency,list_price,proposed_price,category,signals\n\
             A,GBP,10.00,10.50,,demand\n\
             A,GBP,10.00,12.00,,demand\n\
             B,GBP,3.00,3.30,groceries,demand\n\
             C,GBP,5.00,4.00,,age_band|demand\n",
        )
        .unwrap();
        let checked = d.dir.0.join("checked.csv");
        let out = ok(&d.run(&[
            "pricing",
            "check",
            "--data",
            prices.to_str().unwrap(),
            "--out",
            checked.to_str().unwrap(),
        ]));
        assert!(
            out.contains("4 prices checked: 1 allowed, 2 adjusted, 1 refused"),
            "{out}"
        );
        let body = std::fs::read_to_string(&checked).unwrap();
        let rows: Vec<&str> = body.lines().collect();
        assert!(
            rows[0].ends_with("verdict,price,reasons,disclosure,check_id"),
            "{body}"
        );
        assert!(rows[2].contains(",adjust,11.00,above_cap,"), "{body}");
        assert!(
            rows[3].contains(",adjust,3.00,essential_no_surge,"),
            "{body}"
        );
        assert!(rows[4].contains(",refuse,5.00,protected_signal,"), "{body}");
        // A bad row is named, and nothing is checked.
        std::fs::write(
            &prices,
            "product,currency,list_price,proposed_price\nA,GBP,10.00,ten\n",
        )
        .unwrap();
        let out = d.run(&[
            "pricing",
            "check",
            "--data",
            prices.to_str().unwrap(),
            "--out",
            checked.to_str().unwrap(),
        ]);
        assert!(!out.status.success());
        assert!(
            stderr(&out).contains("row 2:") && stderr(&out).contains("price_invalid"),
            "{}",
            stderr(&out)
        );

        // Proxy detection on a sample: `basket` reveals gender, `demand` does not.
        let sample = d.dir.0.join("sample.csv");
        let mut csv = String::from("basket,demand,gender,age\n");
        for i in 0..300 {
            let g = if i % 2 == 0 { "f" } else { "m" };
            let basket = if (i % 10 < 9) == (g == "f") {
                "home"
            } else {
                "tools"
            };
            csv.push_str(&format!("{basket},{},{g},{}\n", i % 5, 20 + i % 50));
        }
        std::fs::write(&sample, csv).unwrap();
        let html = d.dir.0.join("proxies.html");
        let out = d.run(&[
            "pricing",
            "proxies",
            "--data",
            sample.to_str().unwrap(),
            "--signals",
            "basket,demand",
            "--protected",
            "gender,age",
            "--html",
            html.to_str().unwrap(),
        ]);
        assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
        assert!(stdout(&out).contains("basket"), "{}", stdout(&out));
        let page = std::fs::read_to_string(&html).unwrap();
        assert!(page.contains("refused in every price check"));
        // From now on a check that uses it is refused.
        std::fs::write(
            &prices,
            "product,currency,list_price,proposed_price,signals\nA,GBP,10.00,10.20,basket\n",
        )
        .unwrap();
        let out = ok(&d.run(&[
            "pricing",
            "check",
            "--data",
            prices.to_str().unwrap(),
            "--out",
            checked.to_str().unwrap(),
        ]));
        assert!(out.contains("1 refused"), "{out}");
        assert!(
            std::fs::read_to_string(&checked)
                .unwrap()
                .contains("proxy_signal")
        );
        ok(&d.run(&["log", "verify"]));
    }
}
