//! Fairness over HTTP: a biased model fails its gate and cannot go live until an admin
//! overrides (visible on the card); reweighing is reported before/after; monitoring of live
//! decisions raises alerts listed by the API.

use super::H;
use axum::http::StatusCode;
use candor_app::{AuditRequest, TrainRequest};
use candor_ml::lead::TrainOptions;
use candor_ml::table::RawTable;
use candor_testkit::BACKENDS;
use serde_json::json;

/// Historical bias: men converted more often, and `zip` (a model feature) reveals gender 85%
/// of the time. Gender itself is protected and never a feature.
fn biased_table(n: usize, seed: u64) -> RawTable {
    let mut s = seed;
    let mut r = || {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (s >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut rows = Vec::new();
    for _ in 0..n {
        let male = r() < 0.5;
        let zip = if (r() < 0.85) == male { "z2" } else { "z1" };
        let views = (r() * 10.0).floor();
        let logit = views * 0.3 - 1.5 + if male { 2.0 } else { -1.0 };
        let y = r() < 1.0 / (1.0 + (-logit).exp());
        rows.push(vec![
            views.to_string(),
            zip.to_string(),
            if male { "m" } else { "f" }.to_string(),
            if y { "yes" } else { "no" }.to_string(),
        ]);
    }
    RawTable {
        headers: ["product_views_7d", "zip", "gender", "converted"]
            .map(String::from)
            .to_vec(),
        rows,
        delimiter: b',',
    }
}

fn request(reweigh: bool) -> TrainRequest {
    TrainRequest {
        target: "converted".into(),
        exclude: vec![],
        protected: vec!["gender".into()],
        features: None,
        subject_column: None,
        options: TrainOptions {
            gbdt: candor_ml::gbdt::GbdtParams {
                num_trees: 30,
                min_data_in_leaf: 10,
                ..Default::default()
            },
            ..Default::default()
        },
        source: "crm.csv".into(),
        horizon: Some("purchase within 30 days".into()),
        positive: None,
        reweigh,
        audit_threshold: 0.5,
    }
}

fn audit_request(version: i64) -> AuditRequest {
    AuditRequest {
        version,
        target: "converted".into(),
        positive: None,
        protected: vec!["gender".into()],
        threshold: 0.5,
        resamples: 300,
        seed: 3,
        source: "audit.csv".into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_biased_model_fails_its_gate_and_goes_live_only_through_a_recorded_override() {
    for backend in BACKENDS {
        let Some(h) = H::new(backend).await else {
            continue;
        };
        let app = &h.t.app;
        let version = app
            .train_lead_model(
                h.tenant,
                "test",
                biased_table(3000, 1),
                request(false),
                &mut |_| {},
            )
            .await
            .unwrap()
            .version;
        let rec = app
            .audit_model(
                h.tenant,
                "auditor",
                &biased_table(4000, 2),
                &audit_request(version),
            )
            .await
            .unwrap();
        assert!(!rec.passed);
        assert_eq!(rec.status, "draft");
        let failed: Vec<(String, String)> = rec.document["report"]["verdicts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|v| v["passed"] == false)
            .map(|v| {
                (
                    v["gate"].as_str().unwrap().to_string(),
                    v["subject"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        assert!(
            failed.contains(&("min_selection_rate_ratio".into(), "gender".into())),
            "{failed:?}"
        );
        assert!(
            failed.contains(&("max_proxy_cramers_v".into(), "zip → gender".into())),
            "{failed:?}"
        );
        // The audit document and its HTML report are served.
        let (s, v) = h
            .call(
                "GET",
                &format!("/v1/models/{version}/audits"),
                &h.server,
                None,
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["audits"][0]["id"], rec.id);
        assert_eq!(v["audits"][0]["passed"], false);
        let (s, page) = h
            .call(
                "GET",
                &format!("/v1/models/{version}/audits/{}/report", rec.id),
                &h.server,
                None,
            )
            .await;
        assert_eq!(s, StatusCode::OK);
        let page = page.as_str().unwrap().to_string();
        assert!(page.contains("The audit FAILED"), "{page}");
        assert!(page.contains("<svg") && page.contains("Selection rate by gender"));
        let (s, _) = h
            .call(
                "GET",
                &format!("/v1/models/{version}/audits/999/report"),
                &h.server,
                None,
            )
            .await;
        assert_eq!(s, StatusCode::NOT_FOUND);

        // Neither approval nor activation gets past the gate.
        let path = |a: &str| format!("/v1/models/{version}/{a}");
        for a in ["approve", "activate"] {
            let (s, v) = h
                .call(
                    "POST",
                    &path(a),
                    &h.admin,
                    Some(json!({"reason": "ship it"})),
                )
                .await;
            assert_eq!(
                (s, v["error"]["code"].as_str()),
                (StatusCode::CONFLICT, Some("fairness_gate")),
                "{a}: {v}"
            );
        }
        // Override: admin only, with a reason, once.
        let (s, _) = h
            .call(
                "POST",
                &path("override"),
                &h.server,
                Some(json!({"reason": "x"})),
            )
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        let (s, v) = h
            .call(
                "POST",
                &path("override"),
                &h.admin,
                Some(json!({"reason": " "})),
            )
            .await;
        assert_eq!(
            (s, v["error"]["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some("reason_required"))
        );
        let reason = "Legal reviewed: zip is needed for delivery pricing; retrain by Q3";
        let (s, v) = h
            .call(
                "POST",
                &path("override"),
                &h.admin,
                Some(json!({"reason": reason})),
            )
            .await;
        assert_eq!(
            (s, v["status"].as_str()),
            (StatusCode::OK, Some("audited")),
            "{v}"
        );
        assert_eq!(v["fairness"]["validation"]["override"]["reason"], reason);
        let (s, v) = h
            .call(
                "POST",
                &path("override"),
                &h.admin,
                Some(json!({"reason": reason})),
            )
            .await;
        assert_eq!(
            (s, v["error"]["code"].as_str()),
            (StatusCode::CONFLICT, Some("nothing_to_override"))
        );
        for a in ["approve", "activate"] {
            let (s, v) = h
                .call(
                    "POST",
                    &path(a),
                    &h.admin,
                    Some(json!({"reason": "per override"})),
                )
                .await;
            assert_eq!(s, StatusCode::OK, "{a}: {v}");
        }
        // The card shows the failed audit and the override with its reason.
        let (s, card) = h.call("GET", &path("card"), &h.server, None).await;
        assert_eq!(s, StatusCode::OK);
        let card = card.as_str().unwrap().to_string();
        assert!(card.contains("FAILED"), "{card}");
        assert!(card.contains("Override"), "{card}");
        assert!(
            card.contains("Legal reviewed: zip is needed for delivery pricing"),
            "{card}"
        );
        // The override is in the audit log.
        let (s, v) = h.call("GET", "/v1/audit/verify", &h.admin, None).await;
        assert_eq!((s, v["ok"].as_bool()), (StatusCode::OK, Some(true)), "{v}");
        let log = candor_testkit::query_strings(
            &h.t.db.url(),
            "SELECT action FROM audit_log WHERE action LIKE 'model.fairness%' ORDER BY seq",
        )
        .await;
        assert_eq!(
            log,
            vec!["model.fairness_validation", "model.fairness_override"]
        );

        // A model that passed and was approved is stopped again if a later audit fails.
        let v2 = app
            .train_lead_model(
                h.tenant,
                "test",
                super::scoring::labelled_table(600, 17),
                {
                    let mut r = request(false);
                    r.features = Some(vec![
                        "product_views_7d".into(),
                        "days_since_last_event".into(),
                        "plan".into(),
                    ]);
                    r
                },
                &mut |_| {},
            )
            .await
            .unwrap()
            .version;
        let mut fair = audit_request(v2);
        let fresh = super::scoring::labelled_table(6000, 5);
        assert!(
            app.audit_model(h.tenant, "a", &fresh, &fair)
                .await
                .unwrap()
                .passed
        );
        let (s, v) = h
            .call(
                "POST",
                &format!("/v1/models/{v2}/approve"),
                &h.admin,
                Some(json!({"reason": "ok"})),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        // Audited again at a threshold that selects nobody: no selection-rate ratio can pass.
        fair.threshold = 0.999;
        let again = app.audit_model(h.tenant, "a", &fresh, &fair).await.unwrap();
        assert!(!again.passed, "{}", again.document["summary"]);
        {
            let (s, v) = h
                .call(
                    "POST",
                    &format!("/v1/models/{v2}/activate"),
                    &h.admin,
                    Some(json!({"reason": "go"})),
                )
                .await;
            assert_eq!(
                (s, v["error"]["code"].as_str()),
                (StatusCode::CONFLICT, Some("fairness_gate")),
                "{v}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reweighing_is_reported_before_and_after_and_narrows_the_gap() {
    for backend in BACKENDS {
        let Some(h) = H::new(backend).await else {
            continue;
        };
        let trained =
            h.t.app
                .train_lead_model(
                    h.tenant,
                    "test",
                    biased_table(3000, 1),
                    request(true),
                    &mut |_| {},
                )
                .await
                .unwrap();
        let m = trained.mitigation.clone().unwrap();
        let ratio = |w: &str| {
            m[w]["attributes"][0]["selection_rate_ratio"]
                .as_f64()
                .unwrap()
        };
        assert!(ratio("after") > ratio("before") + 0.1, "{m}");
        assert!(m["weights"].as_object().unwrap().len() == 4, "{m}");
        let (s, v) = h
            .call(
                "GET",
                &format!("/v1/models/{}", trained.version),
                &h.server,
                None,
            )
            .await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(v["card"]["mitigation"]["before"], m["before"], "{v}");
        // Reweighing needs protected columns.
        let mut bad = request(true);
        bad.protected = vec![];
        let mut t = biased_table(100, 1);
        for r in &mut t.rows {
            r.remove(2);
        }
        t.headers.remove(2);
        let e =
            h.t.app
                .train_lead_model(h.tenant, "test", t, bad, &mut |_| {})
                .await
                .unwrap_err();
        assert_eq!(e.code, "protected_required");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitoring_live_decisions_raises_alerts_listed_by_the_api() {
    for backend in BACKENDS {
        let Some(h) = H::new(backend).await else {
            continue;
        };
        let app = &h.t.app;
        let version = app
            .train_lead_model(
                h.tenant,
                "test",
                biased_table(3000, 1),
                request(false),
                &mut |_| {},
            )
            .await
            .unwrap()
            .version;
        app.audit_model(
            h.tenant,
            "a",
            &biased_table(2000, 2),
            &audit_request(version),
        )
        .await
        .unwrap();
        app.override_fairness(h.tenant, "admin", version, "pilot")
            .await
            .unwrap();
        for a in ["approve", "activate"] {
            app.transition_model(h.tenant, "admin", version, a, "pilot")
                .await
                .unwrap();
        }
        // Nothing decided yet.
        let start = app.clock().now();
        let (s, v) = h
            .call(
                "POST",
                "/v1/fairness/monitor",
                &h.admin,
                Some(json!({"from": start.minus_days(1).to_string()})),
            )
            .await;
        assert_eq!(
            (s, v["error"]["code"].as_str()),
            (StatusCode::CONFLICT, Some("no_known_outcomes")),
            "{v}"
        );
        // 80 customers with protected traits; zip follows gender.
        let mut subjects = Vec::new();
        for i in 0..80 {
            let user = format!("c{i}");
            let gender = if i % 2 == 0 { "f" } else { "m" };
            let (s, v) = h
                .call(
                    "POST",
                    "/v1/identify",
                    &h.write,
                    Some(json!({"userId": user, "messageId": format!("id-{i}"),
                        "traits": {"gender": gender, "age": 20 + (i % 50)}})),
                )
                .await;
            assert_eq!(s, StatusCode::OK, "{v}");
            h.consent(&user, "profiling", "granted").await;
            subjects.push(json!({"userId": user, "attributes": {"zip": if gender == "m" { "z2" } else { "z1" }}}));
        }
        let (s, v) = h.score(json!({"subjects": subjects})).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert!(
            v["results"]
                .as_array()
                .unwrap()
                .iter()
                .all(|r| r["status"] == "scored"),
            "{v}"
        );
        // Orders three days later from every fourth customer, then the window closes.
        h.t.clock.advance_days(3);
        for i in (0..80).step_by(4) {
            let (s, v) = h
                .call(
                    "POST",
                    "/v1/track",
                    &h.write,
                    Some(json!({"userId": format!("c{i}"), "messageId": format!("o-{i}"), "event": "Order Completed",
                        "properties": {"order_id": format!("o{i}"), "revenue": 20}})),
                )
                .await;
            assert_eq!(s, StatusCode::OK, "{v}");
        }
        // While the outcome window is open, nothing is known.
        let (s, v) = h
            .call(
                "POST",
                "/v1/fairness/monitor",
                &h.admin,
                Some(json!({"from": start.minus_days(1).to_string(), "withinDays": 30})),
            )
            .await;
        assert_eq!(
            (s, v["error"]["code"].as_str()),
            (StatusCode::CONFLICT, Some("no_known_outcomes")),
            "{v}"
        );
        h.t.clock.advance_days(30);
        let (s, v) = h
            .call(
                "POST",
                "/v1/fairness/monitor",
                &h.server,
                Some(json!({"from": start.minus_days(1).to_string()})),
            )
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
        let (s, v) = h
            .call(
                "POST",
                "/v1/fairness/monitor",
                &h.admin,
                Some(json!({"from": start.minus_days(1).to_string(), "withinDays": 30, "threshold": 0.5})),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["passed"], false, "{v}");
        let doc = &v["document"];
        assert_eq!(doc["kind"], "monitoring");
        assert_eq!(doc["report"]["rows"], 80, "{doc}");
        assert_eq!(doc["report"]["positives"], 20, "{doc}");
        let gender = doc["report"]["attributes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["audit"]["attribute"] == "gender")
            .unwrap();
        let groups = gender["audit"]["groups"].as_array().unwrap();
        assert_eq!(groups.len(), 2);
        assert!(groups.iter().all(|g| g["count"] == 40), "{gender}");
        // Ages are banded as the policy says.
        let age = doc["protected"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["column"] == "traits.age")
            .unwrap();
        assert_eq!(age["banded"], true, "{age}");
        // Alerts are listed, newest first, and name the breached gate.
        let (s, v) = h.call("GET", "/v1/fairness/alerts", &h.server, None).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let alerts = v["alerts"].as_array().unwrap();
        assert!(
            alerts
                .iter()
                .any(|a| a["gate"] == "min_selection_rate_ratio" && a["subject"] == "gender"),
            "{v}"
        );
        assert!(alerts.iter().all(|a| a["version"] == version));
        // The card lists the monitoring run.
        let (_, card) = h
            .call(
                "GET",
                &format!("/v1/models/{version}/card"),
                &h.server,
                None,
            )
            .await;
        assert!(
            card.as_str()
                .unwrap()
                .contains("Monitoring of live decisions")
        );
        // Bad input changes nothing.
        let (s, v) = h
            .call(
                "POST",
                "/v1/fairness/monitor",
                &h.admin,
                Some(json!({"from": "yesterday"})),
            )
            .await;
        assert_eq!(
            (s, v["error"]["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid_time"))
        );
        let (s, _) = h
            .call(
                "POST",
                "/v1/fairness/monitor",
                &h.admin,
                Some(json!({"from": start.to_string(), "to": start.minus_days(2).to_string()})),
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        let (_, after) = h.call("GET", "/v1/fairness/alerts", &h.server, None).await;
        assert_eq!(after["alerts"].as_array().unwrap().len(), alerts.len());
        // The console shows each period's selection rate per group and the alerts.
        crate::web::staff(&h, "fay@shop.test", "reviewer").await;
        let mut b = crate::web::sign_in(&h, "fay@shop.test").await;
        let p = b.get(&h, "/console/fairness").await;
        assert_eq!(p.status, StatusCode::OK);
        assert!(p.body.contains("<caption>Selection rate by"), "{}", p.body);
        assert!(p.body.contains("Lowest ÷ highest"));
        assert!(!p.body.contains("No alerts."), "{}", p.body);
    }
}
