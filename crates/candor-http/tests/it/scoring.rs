//! Lead scoring over HTTP: lifecycle gates, consent at scoring time, decisions with reasons.

use super::H;
use axum::http::StatusCode;
use candor_app::TrainRequest;
use candor_ml::lead::TrainOptions;
use candor_ml::table::RawTable;
use candor_store::Store;
use candor_testkit::BACKENDS;
use serde_json::{Value, json};

const DAY: i64 = 86_400_000;

/// A synthetic training table whose outcome rises with recent product views and with the
/// `plan` attribute (a CRM field), falls with days since the last event.
fn training_table() -> RawTable {
    let mut t = labelled_table(600, 17);
    for r in &mut t.rows {
        r.pop();
    }
    t.headers.pop();
    t
}

/// Rows of the same population with a `gender` column that neither the features nor the
/// outcome depend on: the data of a fairness audit the model should pass.
pub(crate) fn labelled_table(n: usize, seed: u64) -> RawTable {
    let mut rows = Vec::new();
    let mut s: u64 = seed;
    let mut r = || {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (s >> 11) as f64 / (1u64 << 53) as f64
    };
    for _ in 0..n {
        let views = (r() * 12.0).floor();
        let idle = (r() * 60.0).floor();
        let plan = if r() < 0.5 { "pro" } else { "free" };
        let p = 1.0
            / (1.0
                + (-(views * 0.5 - idle * 0.05 + if plan == "pro" { 1.0 } else { -1.0 } - 1.0))
                    .exp());
        let y = if r() < p { "yes" } else { "no" };
        rows.push(vec![
            views.to_string(),
            idle.to_string(),
            plan.to_string(),
            y.to_string(),
            if r() < 0.5 { "f" } else { "m" }.to_string(),
        ]);
    }
    RawTable {
        headers: [
            "product_views_7d",
            "days_since_last_event",
            "plan",
            "converted",
            "gender",
        ]
        .map(String::from)
        .to_vec(),
        rows,
        delimiter: b',',
    }
}

pub(crate) async fn train(h: &H) -> i64 {
    let req = TrainRequest {
        target: "converted".into(),
        exclude: vec![],
        protected: vec![],
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
        source: "synthetic.csv".into(),
        horizon: Some("purchase within 30 days".into()),
        positive: None,
        reweigh: false,
        audit_threshold: 0.5,
    };
    h.t.app
        .train_lead_model(h.tenant, "test", training_table(), req, &mut |_| {})
        .await
        .unwrap()
        .version
}

/// Records a validation audit of `version` on fresh data where gender is independent of
/// everything: it passes.
pub(crate) async fn audit_fair(h: &H, version: i64) {
    let rec =
        h.t.app
            .audit_model(
                h.tenant,
                "test",
                &labelled_table(6000, 5),
                &candor_app::AuditRequest {
                    version,
                    target: "converted".into(),
                    positive: None,
                    protected: vec!["gender".into()],
                    threshold: 0.5,
                    resamples: 200,
                    seed: 1,
                    source: "fresh.csv".into(),
                },
            )
            .await
            .unwrap();
    assert!(rec.passed, "{}", rec.document["summary"]);
    assert_eq!(rec.status, "audited");
}

impl H {
    async fn view(&self, user: &str, id: &str, days_ago: i64) {
        let ts = candor_types::Timestamp(self.t.app.clock().now().0 - days_ago * DAY);
        let msg = json!({"userId": user, "messageId": id, "event": "Product Viewed", "timestamp": ts.to_string(),
            "properties": {"product_id": "p1", "category": "lamps"}});
        let (s, v) = self.call("POST", "/v1/track", &self.write, Some(msg)).await;
        assert_eq!(s, StatusCode::OK, "{v}");
    }

    pub(crate) async fn score(&self, body: Value) -> (StatusCode, Value) {
        self.call("POST", "/v1/scores", &self.server, Some(body))
            .await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scores_need_an_active_model_and_profiling_consent_and_are_stored_as_explained_decisions() {
    for backend in BACKENDS {
        let Some(h) = H::new(backend).await else {
            continue;
        };
        h.consent("u1", "profiling", "granted").await;
        for i in 0..6 {
            h.view("u1", &format!("v{i}"), 1).await;
        }
        // u2's events are collected for analytics, but u2 does not allow profiling.
        h.consent("u2", "analytics", "granted").await;
        for i in 0..6 {
            h.view("u2", &format!("w{i}"), 1).await;
        }
        let version = train(&h).await;

        // A draft model scores nobody.
        let (s, v) = h.score(json!({"userId": "u1"})).await;
        assert_eq!(
            (s, v["error"]["code"].as_str()),
            (StatusCode::CONFLICT, Some("no_active_model")),
            "{v}"
        );
        let (s, v) = h
            .score(json!({"userId": "u1", "modelVersion": version}))
            .await;
        assert_eq!(
            (s, v["error"]["code"].as_str()),
            (StatusCode::CONFLICT, Some("model_not_approved")),
            "{v}"
        );

        // Lifecycle: admin only, a reason is required, no skipping steps.
        let path = |a: &str| format!("/v1/models/{version}/{a}");
        let (s, _) = h
            .call(
                "POST",
                &path("approve"),
                &h.server,
                Some(json!({"reason": "ok"})),
            )
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        let (s, v) = h
            .call(
                "POST",
                &path("approve"),
                &h.admin,
                Some(json!({"reason": "  "})),
            )
            .await;
        assert_eq!(
            (s, v["error"]["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some("reason_required"))
        );
        let (s, v) = h
            .call(
                "POST",
                &path("activate"),
                &h.admin,
                Some(json!({"reason": "skip"})),
            )
            .await;
        assert_eq!(
            (s, v["error"]["code"].as_str()),
            (StatusCode::CONFLICT, Some("fairness_gate")),
            "{v}"
        );
        let (s, v) = h
            .call(
                "POST",
                &path("launch"),
                &h.admin,
                Some(json!({"reason": "x"})),
            )
            .await;
        assert_eq!(
            (s, v["error"]["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some("unknown_action"))
        );
        // No fairness audit, no approval.
        let (s, v) = h
            .call(
                "POST",
                &path("approve"),
                &h.admin,
                Some(json!({"reason": "holdout AUC reviewed"})),
            )
            .await;
        assert_eq!(
            (s, v["error"]["code"].as_str()),
            (StatusCode::CONFLICT, Some("fairness_gate")),
            "{v}"
        );
        audit_fair(&h, version).await;
        let (s, v) = h
            .call(
                "POST",
                &path("approve"),
                &h.admin,
                Some(json!({"reason": "holdout AUC reviewed"})),
            )
            .await;
        assert_eq!(
            (s, v["status"].as_str()),
            (StatusCode::OK, Some("approved")),
            "{v}"
        );
        let (s, v) = h
            .call(
                "POST",
                &path("activate"),
                &h.admin,
                Some(json!({"reason": "go live"})),
            )
            .await;
        assert_eq!(
            (s, v["status"].as_str()),
            (StatusCode::OK, Some("active")),
            "{v}"
        );
        let steps: Vec<(&str, &str)> = v["transitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| (t["to"].as_str().unwrap(), t["reason"].as_str().unwrap()))
            .collect();
        assert_eq!(
            steps[1..],
            [("approved", "holdout AUC reviewed"), ("active", "go live")]
        );
        assert_eq!(steps[0].0, "audited");
        assert!(steps[0].1.contains("passed"), "{steps:?}");
        assert_eq!(v["fairness"]["validation"]["passed"], true, "{v}");
        assert!(v["card"]["holdout"]["auc"].as_f64().unwrap() > 0.6, "{v}");

        let (s, v) = h
            .score(json!({"subjects": [
                {"userId": "u1", "attributes": {"plan": "pro"}},
                {"userId": "u2", "attributes": {"plan": "pro"}},
                {"userId": "nobody"}
            ]}))
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let r = &v["results"];
        assert_eq!(r[0]["status"], "scored", "{v}");
        let p = r[0]["probability"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&p));
        assert!(["A", "B", "C", "D"].contains(&r[0]["tier"].as_str().unwrap()));
        assert_eq!(r[0]["horizon"], "purchase within 30 days");
        assert_eq!(r[0]["modelVersion"], version);
        let up: Vec<&str> = r[0]["reasonsUp"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["statement"].as_str().unwrap())
            .collect();
        assert!(up.contains(&"6 product views in the last 7 days"), "{up:?}");
        assert!(up.contains(&"plan is pro"), "{up:?}");
        assert_eq!(
            (r[1]["status"].as_str(), r[1]["reason"].as_str()),
            (Some("not_scored"), Some("no_consent")),
            "{v}"
        );
        assert!(r[1].get("probability").is_none());
        assert_eq!(r[2]["reason"], "unknown_subject");

        // The score is a decision about u1, with its explanation; u2 has none.
        let (s, d) = h
            .call("GET", "/v1/subjects/u1/decisions", &h.server, None)
            .await;
        assert_eq!(s, StatusCode::OK, "{d}");
        let decisions = d["decisions"].as_array().unwrap();
        assert_eq!(decisions.len(), 1);
        assert_eq!(decisions[0]["id"], r[0]["decisionId"]);
        assert_eq!(decisions[0]["purpose"], "profiling");
        assert_eq!(decisions[0]["modelVersion"], version);
        assert_eq!(decisions[0]["inputsDigest"].as_str().unwrap().len(), 64);
        assert_eq!(decisions[0]["outcome"]["probability"].as_f64(), Some(p));
        let reasons = decisions[0]["outcome"]["reasons"].as_array().unwrap();
        let sum: f64 = decisions[0]["outcome"]["baseValue"].as_f64().unwrap()
            + reasons
                .iter()
                .map(|x| x["contribution"].as_f64().unwrap())
                .sum::<f64>();
        assert!((sum - decisions[0]["outcome"]["raw"].as_f64().unwrap()).abs() < 1e-9);
        let (_, d2) = h
            .call("GET", "/v1/subjects/u2/decisions", &h.server, None)
            .await;
        assert!(d2["decisions"].as_array().unwrap().is_empty());
        // The audit log records the decision without its outcome.
        let entries =
            h.t.app
                .store()
                .audit_entries(&h.tenant.to_string(), 0, 10_000)
                .await
                .unwrap();
        let rec: Vec<_> = entries
            .iter()
            .filter(|e| e.action == "decision.recorded")
            .collect();
        assert_eq!(rec.len(), 1);
        assert!(!rec[0].details.contains("probability"));

        // Withdrawing profiling stops scoring at once.
        h.consent("u1", "profiling", "withdrawn").await;
        let (_, v) = h.score(json!({"userId": "u1"})).await;
        assert_eq!(v["results"][0]["status"], "not_scored", "{v}");

        // Bad input changes nothing.
        let many: Vec<Value> = (0..1001)
            .map(|i| json!({"userId": format!("x{i}")}))
            .collect();
        for (body, code) in [
            (json!({"userId": "u1", "subjects": []}), "invalid_request"),
            (json!({"subjects": many}), "batch_size"),
            (json!({"subjects": []}), "batch_size"),
            (json!({"userId": 5}), "invalid_request"),
            (
                json!({"userId": "u1", "attributes": {"plan": ["x"]}}),
                "attribute_invalid",
            ),
        ] {
            let (s, v) = h.score(body).await;
            assert_eq!(
                (s, v["error"]["code"].as_str()),
                (StatusCode::BAD_REQUEST, Some(code)),
                "{v}"
            );
        }
        let (_, d) = h
            .call("GET", "/v1/subjects/u1/decisions", &h.server, None)
            .await;
        assert_eq!(d["decisions"].as_array().unwrap().len(), 1);
        let (s, _) = h
            .call(
                "POST",
                "/v1/scores",
                &h.write,
                Some(json!({"userId": "u1"})),
            )
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN);
    }
}

/// No consent ⇒ no score, over seeded random consent histories: after any sequence of grants
/// and withdrawals (of profiling and of other purposes), a person is scored exactly when the
/// last profiling choice was a grant.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_profiling_consent_means_no_score() {
    for backend in BACKENDS {
        let Some(h) = H::new(backend).await else {
            continue;
        };
        let version = train(&h).await;
        audit_fair(&h, version).await;
        for a in ["approve", "activate"] {
            let (s, v) = h
                .call(
                    "POST",
                    &format!("/v1/models/{version}/{a}"),
                    &h.admin,
                    Some(json!({"reason": "test"})),
                )
                .await;
            assert_eq!(s, StatusCode::OK, "{v}");
        }
        let mut seed: u64 = 99;
        let mut next = |n: u64| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) % n
        };
        for case in 0..12 {
            let user = format!("p{case}");
            let mut profiling: Option<bool> = None;
            for _ in 0..(1 + next(5)) {
                let purpose = ["profiling", "analytics", "marketing_email"][next(3) as usize];
                let grant = next(2) == 0;
                h.consent(&user, purpose, if grant { "granted" } else { "withdrawn" })
                    .await;
                if purpose == "profiling" {
                    profiling = Some(grant);
                }
            }
            let (s, v) = h.score(json!({"userId": user})).await;
            assert_eq!(s, StatusCode::OK, "{v}");
            let scored = v["results"][0]["status"] == "scored";
            assert_eq!(scored, profiling == Some(true), "case {case}: {v}");
            let (_, d) = h
                .call(
                    "GET",
                    &format!("/v1/subjects/{user}/decisions"),
                    &h.server,
                    None,
                )
                .await;
            assert_eq!(
                d["decisions"].as_array().unwrap().len(),
                usize::from(scored)
            );
        }
    }
}
