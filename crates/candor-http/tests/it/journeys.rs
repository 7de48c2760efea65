//! Journeys through the API with a manual clock: enrolment in the ingest transaction, the
//! holdout, exits, quiet hours at send time, conversions and the measurement endpoint.

use std::collections::BTreeMap;

use axum::http::StatusCode;
use candor_testkit::{BACKENDS, TestApp};
use candor_types::Timestamp;
use serde_json::{Value, json};

use super::H;

fn at(s: &str) -> Timestamp {
    Timestamp::parse_rfc3339(s).unwrap()
}

fn policy() -> String {
    format!(
        "{}\n[smtp]\nhost = \"127.0.0.1\"\nport = 9\ntls = \"none\"\nfrom = \"Shop <shop@example.org>\"\npostal_address = \"1 Market Street\"\n\n[[journeys]]\ntemplate = \"abandoned_cart\"\nwait = \"1h\"\nholdout = 0.5\n",
        candor_policy::DEFAULT_POLICY
    )
}

async fn statuses(h: &H) -> BTreeMap<String, (String, i64)> {
    candor_testkit::query_strings(
        &h.t.db.url(),
        "SELECT trigger_id || ' ' || status || ' ' || CAST(due_at AS TEXT) FROM journey_steps",
    )
    .await
    .into_iter()
    .map(|r| {
        let mut p = r.split(' ');
        let (k, s, d) = (p.next().unwrap(), p.next().unwrap(), p.next().unwrap());
        (k.to_string(), (s.to_string(), d.parse().unwrap()))
    })
    .collect()
}

async fn batch(h: &H, msgs: Vec<Value>) {
    let (s, v) = h
        .call(
            "POST",
            "/v1/batch",
            &h.write,
            Some(json!({ "batch": msgs })),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["rejected"], 0, "{v}");
}

#[tokio::test]
async fn holdout_exits_quiet_hours_and_conversions_are_measured() {
    for backend in BACKENDS {
        let Some(t) = TestApp::with_policy(backend, &policy()).await else {
            continue;
        };
        t.clock.set(at("2026-01-10T12:00:00Z"));
        let h = H::with(t, "shop").await;
        let consent =
            json!({"consent": {"categoryPreferences": {"Marketing": true, "Analytics": true}}});
        let n = 40;
        let mut msgs = Vec::new();
        for i in 0..n {
            msgs.push(json!({"type": "identify", "userId": format!("u{i}"), "traits": {"email": format!("u{i}@example.org")}, "context": consent}));
            msgs.push(json!({"type": "track", "userId": format!("u{i}"), "messageId": format!("cart-{i}"), "event": "Checkout Started", "context": consent}));
        }
        batch(&h, msgs).await;
        let st = statuses(&h).await;
        assert_eq!(st.len(), n, "{backend:?}: one step per trigger");
        let held: Vec<usize> = (0..n)
            .filter(|i| st[&format!("cart-{i}")].0 == "holdout")
            .collect();
        assert!(
            (8..=32).contains(&held.len()),
            "{backend:?}: {} of {n} held out",
            held.len()
        );
        assert!(
            st.values()
                .all(|(s, d)| (s == "pending" || s == "holdout")
                    && *d == at("2026-01-10T13:00:00Z").0)
        );
        // u0..u9 order within the wait (exit, if not held out); u10..u19 after the email
        // was due (a conversion for held-out people; the others' steps are still pending).
        h.t.clock.set(at("2026-01-10T12:30:00Z"));
        let order = |i: usize| json!({"type": "track", "userId": format!("u{i}"), "messageId": format!("order-{i}"), "event": "Order Completed", "context": consent});
        batch(&h, (0..10).map(order).collect()).await;
        h.t.clock.set(at("2026-01-10T13:30:00Z"));
        batch(&h, (10..20).map(order).collect()).await;
        let st = statuses(&h).await;
        for i in 0..20 {
            let (s, _) = &st[&format!("cart-{i}")];
            let want = if held.contains(&i) {
                "holdout"
            } else {
                "exited"
            };
            assert_eq!(s, want, "{backend:?} u{i}");
        }
        // Win-back is not configured: an order enrols nobody; the cart steps of u20.. are due.
        assert_eq!(st.len(), n);
        // 22:30 UTC is in the quiet hours (21–08, the policy's UTC): due steps move to 08:00.
        h.t.clock.set(at("2026-01-10T22:30:00Z"));
        let pending = (20..n).filter(|i| !held.contains(i)).count();
        let r = h.t.app.send_due_steps(100).await.unwrap();
        assert_eq!(
            (r.claimed, r.deferred, r.sent),
            (pending, pending, 0),
            "{backend:?} {r:?}"
        );
        let st = statuses(&h).await;
        for i in (20..n).filter(|i| !held.contains(i)) {
            assert_eq!(
                st[&format!("cart-{i}")],
                ("pending".to_string(), at("2026-01-11T08:00:00Z").0)
            );
        }
        assert!(
            h.t.app.send_due_steps(100).await.unwrap().claimed == 0,
            "nothing due until 08:00"
        );
        // Measurement: the holdout's conversions (orders after the step was due, u10..u19).
        let (s, v) = h.call("GET", "/v1/journeys", &h.server, None).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let o = &v["journeys"][0]["overall"];
        assert_eq!(o["entered"], n, "{o}");
        assert_eq!(o["holdout"], held.len(), "{o}");
        assert_eq!(
            o["holdout_converted"],
            held.iter().filter(|i| (10..20).contains(*i)).count(),
            "{o}"
        );
        assert_eq!(
            o["exited"],
            (0..20).filter(|i| !held.contains(i)).count(),
            "{o}"
        );
        assert_eq!(o["pending"], pending, "{o}");
        assert_eq!(o["sent"], 0);
        assert!(o["uplift"].is_null(), "no email sent: no uplift yet");
        assert_eq!(v["journeys"][0]["by_segment"]["new"]["entered"], n);
        let (s, _) = h.call("GET", "/v1/journeys", &h.write, None).await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        // Erasure ends a person's steps with everything else.
        let (s, v) = h.call("DELETE", "/v1/subjects/u25", &h.admin, None).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert!(!statuses(&h).await.contains_key("cart-25"));
    }
}
