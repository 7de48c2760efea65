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

/// trigger → (status, due_at, in the holdout)
async fn statuses(h: &H) -> BTreeMap<String, (String, i64, bool)> {
    candor_testkit::query_strings(
        &h.t.db.url(),
        "SELECT trigger_id || ' ' || status || ' ' || CAST(due_at AS TEXT) || ' ' || COALESCE(reason, '-') FROM journey_steps",
    )
    .await
    .into_iter()
    .map(|r| {
        let mut p = r.splitn(4, ' ');
        let (k, s, d, reason) = (p.next().unwrap(), p.next().unwrap(), p.next().unwrap(), p.next().unwrap());
        (k.to_string(), (s.to_string(), d.parse().unwrap(), reason.starts_with("holdout")))
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
        let held: Vec<usize> = (0..n).filter(|i| st[&format!("cart-{i}")].2).collect();
        assert!(
            (8..=32).contains(&held.len()),
            "{backend:?}: {} of {n} held out",
            held.len()
        );
        // Both arms wait alike: every step is pending, due in an hour.
        assert!(
            st.values()
                .all(|(s, d, _)| s == "pending" && *d == at("2026-01-10T13:00:00Z").0)
        );
        let count = |r: std::ops::Range<usize>, in_holdout: bool| {
            r.filter(|i| held.contains(i) == in_holdout).count()
        };
        // u0..u9 order within the wait: both arms exit alike.
        h.t.clock.set(at("2026-01-10T12:30:00Z"));
        let order = |i: usize| json!({"type": "track", "userId": format!("u{i}"), "messageId": format!("order-{i}"), "event": "Order Completed", "context": consent});
        batch(&h, (0..10).map(order).collect()).await;
        // 13:00: due. Held-out steps are recorded as not sent; the others find no relay
        // (nothing listens on the configured port) and are retried later.
        h.t.clock.set(at("2026-01-10T13:00:00Z"));
        let r = h.t.app.send_due_steps(100).await.unwrap();
        assert_eq!(
            (r.claimed, r.held, r.retried, r.sent),
            (30, count(10..40, true), count(10..40, false), 0),
            "{backend:?} {r:?}"
        );
        // u10..u19 order after the email was due: a conversion in the holdout; the others'
        // unsent steps end.
        h.t.clock.set(at("2026-01-10T13:30:00Z"));
        batch(&h, (10..20).map(order).collect()).await;
        let st = statuses(&h).await;
        for i in 0..n {
            let (s, _, hold) = &st[&format!("cart-{i}")];
            let want = match (i, *hold) {
                (0..10, _) | (10..20, false) => "exited",
                (_, true) => "holdout",
                _ => "pending",
            };
            assert_eq!(s, want, "{backend:?} u{i}");
        }
        // 22:30 UTC is in the quiet hours (21–08, the policy's UTC): due steps move to 08:00.
        h.t.clock.set(at("2026-01-10T22:30:00Z"));
        let pending = count(20..40, false);
        let r = h.t.app.send_due_steps(100).await.unwrap();
        assert_eq!(
            (r.claimed, r.deferred, r.sent),
            (pending, pending, 0),
            "{backend:?} {r:?}"
        );
        let st = statuses(&h).await;
        for i in (20..n).filter(|i| !held.contains(i)) {
            assert_eq!(
                (
                    st[&format!("cart-{i}")].0.as_str(),
                    st[&format!("cart-{i}")].1
                ),
                ("pending", at("2026-01-11T08:00:00Z").0)
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
        assert_eq!(o["holdout_due"], count(10..40, true), "{o}");
        assert_eq!(o["holdout_converted"], count(10..20, true), "{o}");
        assert_eq!(o["exited"], 10 + count(10..20, false), "{o}");
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
