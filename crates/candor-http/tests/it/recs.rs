//! Recommendations over HTTP on both backends: factors only for people who allow
//! personalization, the same shape unpersonalized for everyone else, withdrawal removes the
//! factors at once, sensitive categories are never personalized, explanations and decisions.

use super::H;
use axum::http::StatusCode;
use candor_app::recs::Line;
use candor_ml::recs::AlsParams;
use candor_testkit::{BACKENDS, query_strings};
use candor_types::Timestamp;

/// 40 people in two taste groups (candles c0–c9, mugs m0–m9), plus `shy` (no
/// personalization consent) and `carer` who also bought a health product.
fn lines(now: Timestamp) -> Vec<Line> {
    let mut s = 5u64;
    let mut r = |n: u64| {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (s >> 33) % n
    };
    let mut out = Vec::new();
    let line = |user: &str, item: String, cat: &str, days: u32| Line {
        user: user.to_string(),
        name: format!(
            "{} {item}",
            if item.starts_with('c') {
                "CANDLE"
            } else if item.starts_with('m') {
                "MUG"
            } else {
                "PREGNANCY TEST"
            }
        ),
        item,
        category: cat.to_string(),
        at: now.minus_days(days),
        segment: "UK".into(),
        weight: 1.0,
    };
    for p in 0..40 {
        let user = format!("p{p}");
        let group = if p < 20 { 'c' } else { 'm' };
        for _ in 0..8 {
            out.push(line(
                &user,
                format!("{group}{}", r(10)),
                "home",
                1 + r(20) as u32,
            ));
        }
    }
    for i in [1, 2, 3] {
        out.push(line("alice", format!("c{i}"), "home", 2));
        out.push(line("shy", format!("m{i}"), "home", 2));
        out.push(line("carer", format!("c{}", i + 3), "home", 2));
    }
    out.push(line("carer", "h1".into(), "health", 1));
    out.push(line("p0", "h1".into(), "health", 1));
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recommendations_respect_consent_and_explain_themselves() {
    for backend in BACKENDS {
        let Some(h) = H::new(backend).await else {
            continue;
        };
        let app = &h.t.app;
        for p in (0..40)
            .map(|p| format!("p{p}"))
            .chain(["alice".into(), "carer".into()])
        {
            h.consent(&p, "personalization", "granted").await;
        }
        h.consent("shy", "analytics", "granted").await;
        let (s, v) = h
            .call("GET", "/v1/subjects/alice/recommendations", &h.server, None)
            .await;
        assert_eq!(
            (s, v["error"]["code"].as_str()),
            (StatusCode::CONFLICT, Some("no_recs_model")),
            "{v}"
        );
        let now = app.clock().now();
        let params = AlsParams {
            factors: 8,
            iterations: 10,
            ..AlsParams::default()
        };
        let t = app
            .train_recs(h.tenant, "test", &lines(now), 0, None, &params, "lines.csv")
            .await
            .unwrap();
        assert_eq!(
            (t.people, t.personalized, t.without_consent),
            (43, 42, 1),
            "{t:?}"
        );
        assert_eq!(t.sensitive_items, 1);
        let url = h.t.db.url();
        let count = |who: &'static str| {
            let url = url.clone();
            let app = app.clone();
            let tenant = h.tenant;
            async move {
                let Ok(s) = app.resolve_subject(tenant, who).await else {
                    return 0;
                };
                query_strings(
                    &url,
                    &format!(
                        "SELECT CAST(COUNT(*) AS TEXT) FROM rec_factors WHERE subject_id = '{}'",
                        s.id
                    ),
                )
                .await[0]
                    .parse::<i64>()
                    .unwrap()
            }
        };
        assert_eq!(count("alice").await, 1);
        assert_eq!(
            count("shy").await,
            0,
            "no factors without personalization consent"
        );

        // Personalized: the taste group, nothing already bought, explained, stored.
        let (s, v) = h
            .call(
                "GET",
                "/v1/subjects/alice/recommendations?k=5",
                &h.server,
                None,
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(
            (v["personalized"].as_bool(), v["model"].as_str()),
            (Some(true), Some("als")),
            "{v}"
        );
        let items: Vec<&str> = v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["item"].as_str().unwrap())
            .collect();
        assert_eq!(items.len(), 5);
        assert!(
            items
                .iter()
                .all(|i| i.starts_with('c') && !["c1", "c2", "c3"].contains(i)),
            "{v}"
        );
        assert!(
            v["items"][0]["reason"]
                .as_str()
                .unwrap()
                .starts_with("because you bought CANDLE c"),
            "{v}"
        );
        let decision = v["decisionId"].as_str().unwrap();
        let (_, d) = h
            .call("GET", "/v1/subjects/alice/decisions", &h.server, None)
            .await;
        assert!(
            d["decisions"]
                .as_array()
                .unwrap()
                .iter()
                .any(|x| x["id"] == decision && x["kind"] == "recommendations"),
            "{d}"
        );

        // Unpersonalized, same shape, marked, for someone without consent or unknown.
        for (who, basis) in [("shy", "no_consent"), ("stranger", "no_subject")] {
            let (s, v) = h
                .call(
                    "GET",
                    &format!("/v1/subjects/{who}/recommendations?k=5"),
                    &h.server,
                    None,
                )
                .await;
            assert_eq!(s, StatusCode::OK, "{v}");
            assert_eq!(v["personalized"], false, "{v}");
            assert_eq!(v["basis"], basis, "{v}");
            assert!(["trending", "popularity"].contains(&v["model"].as_str().unwrap()));
            assert_eq!(v["items"].as_array().unwrap().len(), 5);
            assert!(
                v["items"][0]["reason"]
                    .as_str()
                    .unwrap()
                    .contains("popular")
                    || v["items"][0]["reason"]
                        .as_str()
                        .unwrap()
                        .contains("bestseller")
            );
            assert!(v["decisionId"].is_null());
        }
        // Sensitive categories: never in a personalized list, never in the person's model.
        let (_, v) = h
            .call(
                "GET",
                "/v1/subjects/carer/recommendations?k=20",
                &h.server,
                None,
            )
            .await;
        assert_eq!(v["personalized"], true, "{v}");
        assert!(
            v["items"]
                .as_array()
                .unwrap()
                .iter()
                .all(|i| i["item"] != "h1"),
            "{v}"
        );
        let (_, ex) = h
            .call("GET", "/v1/subjects/carer/export", &h.server, None)
            .await;
        let hist = ex["tables"]["rec_factors"][0]["value"]["history"]
            .as_array()
            .unwrap()
            .len();
        assert_eq!(
            hist, 3,
            "the health purchase is not in the model's history: {ex}"
        );

        // Item-to-item, and the context item for anyone.
        let (s, v) = h
            .call("GET", "/v1/items/c1/similar?k=3", &h.server, None)
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert!(
            v["items"]
                .as_array()
                .unwrap()
                .iter()
                .all(|i| i["item"].as_str().unwrap().starts_with('c')),
            "{v}"
        );
        assert!(
            v["items"][0]["reason"]
                .as_str()
                .unwrap()
                .starts_with("often bought with CANDLE c1")
        );
        let (_, v) = h
            .call(
                "GET",
                "/v1/subjects/shy/recommendations?k=3&context_item=m1",
                &h.server,
                None,
            )
            .await;
        assert_eq!(
            (v["personalized"].as_bool(), v["model"].as_str()),
            (Some(false), Some("item_knn")),
            "{v}"
        );
        // Out-of-stock items are never recommended, to anyone.
        let first = v["items"][0]["item"].as_str().unwrap_or("m2").to_string();
        let (s, _) = h
            .call(
                "PUT",
                &format!("/v1/items/{first}/stock"),
                &h.server,
                Some(serde_json::json!({"inStock": false})),
            )
            .await;
        assert_eq!(s, StatusCode::NO_CONTENT);
        let (_, v) = h
            .call(
                "GET",
                "/v1/subjects/shy/recommendations?k=3&context_item=m1",
                &h.server,
                None,
            )
            .await;
        assert!(
            v["items"]
                .as_array()
                .unwrap()
                .iter()
                .all(|i| i["item"] != first.as_str()),
            "{v}"
        );
        let mut alice_slots = 5;
        for who in ["alice", "shy"] {
            let (_, v) = h
                .call(
                    "GET",
                    &format!("/v1/subjects/{who}/recommendations?k=20"),
                    &h.server,
                    None,
                )
                .await;
            assert!(
                v["items"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .all(|i| i["item"] != first.as_str()),
                "{v}"
            );
            if who == "alice" {
                alice_slots += v["items"].as_array().unwrap().len();
            }
        }
        let (s, _) = h
            .call(
                "PUT",
                "/v1/items/x/stock",
                &h.server,
                Some(serde_json::json!({"inStock": "no"})),
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        // Bad input.
        let (s, v) = h
            .call(
                "GET",
                "/v1/subjects/alice/recommendations?k=0",
                &h.server,
                None,
            )
            .await;
        assert_eq!(
            (s, v["error"]["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some("k_invalid"))
        );
        let (s, _) = h
            .call("GET", "/v1/items/nope/similar", &h.server, None)
            .await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        let (s, _) = h
            .call("GET", "/v1/subjects/alice/recommendations", &h.write, None)
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN);

        // Someone new since training is folded in from their own events, without retraining.
        h.consent("newbie", "personalization", "granted").await;
        h.consent("newbie", "analytics", "granted").await;
        for (i, (event, item)) in [
            ("Product Viewed", "c7"),
            ("Product Added", "c8"),
            ("Product Viewed", "c9"),
        ]
        .iter()
        .enumerate()
        {
            let (s, v) = h
                .call("POST", "/v1/track", &h.write, Some(serde_json::json!({"userId": "newbie", "messageId": format!("nb-{i}"),
                    "event": event, "properties": {"product_id": item, "name": format!("CANDLE {item}")}})))
                .await;
            assert_eq!(s, StatusCode::OK, "{v}");
        }
        assert_eq!(count("newbie").await, 0);
        let (_, v) = h
            .call(
                "GET",
                "/v1/subjects/newbie/recommendations?k=4",
                &h.server,
                None,
            )
            .await;
        assert_eq!(v["personalized"], true, "{v}");
        assert!(
            v["items"]
                .as_array()
                .unwrap()
                .iter()
                .all(|i| i["item"].as_str().unwrap().starts_with('c')),
            "{v}"
        );
        assert!(
            v["items"]
                .as_array()
                .unwrap()
                .iter()
                .all(|i| !["c7", "c8", "c9"].contains(&i["item"].as_str().unwrap()))
        );
        assert_eq!(count("newbie").await, 1, "the folded-in factors are kept");
        // Interactions from events: only people who allow personalization are read.
        let from_events = app
            .event_interactions(h.tenant, &candor_app::recs::EventWeights::default())
            .await
            .unwrap();
        assert_eq!(from_events.len(), 3);
        assert!(
            from_events
                .iter()
                .any(|l| l.item == "c8" && (l.weight - 3.0).abs() < 0.01)
        );

        // Withdrawing personalization removes the factors at once; the list falls back.
        h.consent("alice", "personalization", "withdrawn").await;
        assert_eq!(count("alice").await, 0);
        let (_, v) = h
            .call(
                "GET",
                "/v1/subjects/alice/recommendations?k=5",
                &h.server,
                None,
            )
            .await;
        assert_eq!(
            (v["personalized"].as_bool(), v["basis"].as_str()),
            (Some(false), Some("consent_withdrawn")),
            "{v}"
        );
        // Erasure removes them too.
        let (s, r) = h
            .call("DELETE", "/v1/subjects/carer", &h.server, None)
            .await;
        assert_eq!(s, StatusCode::OK, "{r}");
        assert_eq!(r["receipt"]["erased"]["rec_factors"], 1, "{r}");

        // Exposure audit of the served lists: alice's two, newbie's one (who then objects to
        // audits: unreadable), carer's erased with her.
        h.consent("newbie", "fairness_audit", "withdrawn").await;
        let now = app.clock().now();
        let period = format!(
            "from={}&to={}",
            now.minus_days(1).to_rfc3339(),
            now.plus_days(1).to_rfc3339()
        );
        let (s, v) = h
            .call(
                "GET",
                &format!("/v1/recs/exposure?{period}"),
                &h.admin,
                None,
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(
            (
                v["lists"].as_u64(),
                v["unreadable"].as_u64(),
                v["erased"].as_u64()
            ),
            (Some(2), Some(1), Some(0)),
            "{v}"
        );
        let pe = &v["exposure"]["personalized"];
        assert_eq!(pe["slots"], alice_slots, "alice's two lists: {v}");
        assert_eq!(pe["groups"]["health"]["exposure_share"], 0.0, "{v}");
        let gini = pe["gini"].as_f64().unwrap();
        assert!(gini > 0.0 && gini < 1.0, "{v}");
        let ue = &v["exposure"]["unpersonalized"];
        assert_eq!(ue["lists"], 2, "{v}");
        assert!(ue["head_exposure_share"].as_f64().unwrap() > 0.0, "{v}");
        let (s, page) = h
            .call(
                "GET",
                &format!("/v1/recs/exposure?{period}&format=html"),
                &h.admin,
                None,
            )
            .await;
        assert_eq!(s, StatusCode::OK);
        let page = page.as_str().unwrap_or_default();
        assert!(page.contains("<svg") && page.contains("Recommendation exposure audit"));
        for (q, code) in [
            ("from=yesterday", "invalid_time"),
            (
                &format!(
                    "from={}&to={}",
                    now.to_rfc3339(),
                    now.minus_days(1).to_rfc3339()
                ) as &str,
                "period_invalid",
            ),
            (&format!("{period}&format=xml") as &str, "invalid_format"),
        ] {
            let (s, v) = h
                .call("GET", &format!("/v1/recs/exposure?{q}"), &h.admin, None)
                .await;
            assert_eq!(
                (s, v["error"]["code"].as_str()),
                (StatusCode::BAD_REQUEST, Some(code)),
                "{q}: {v}"
            );
        }
        let (s, _) = h
            .call(
                "GET",
                &format!("/v1/recs/exposure?{period}"),
                &h.server,
                None,
            )
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN, "an admin audit");
    }
}
