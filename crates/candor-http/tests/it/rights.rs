//! Data-subject rights over HTTP, on SQLite and PostgreSQL: erasure that reaches everything
//! and is not undone by replayed or racing events, the export of every table, requests with
//! deadlines and identity checks, restriction and objection, contested decisions.

use super::H;
use axum::http::StatusCode;
use candor_store::SUBJECT_TABLES;
use candor_testkit::{BACKENDS, query_strings};
use serde_json::{Value, json};

const USER: &str = "erase-me@example.org";

impl H {
    /// Files a request for `user`, verifies it (by staff when `staff` names the check, else
    /// with the token) and carries it out.
    async fn carry_out(
        &self,
        user: &str,
        kind: &str,
        details: Option<Value>,
        staff: Option<&str>,
    ) -> candor_app::RequestView {
        let created = self
            .t
            .app
            .create_request(
                self.tenant,
                "t",
                &candor_app::NewRequest {
                    user_id: user.into(),
                    kind: kind.into(),
                    regime: None,
                    details,
                },
            )
            .await
            .unwrap();
        let id = created.request.row.id.clone();
        let check = match staff {
            Some(s) => candor_app::Verification::Staff(s.into()),
            None => candor_app::Verification::Token(created.verification_token),
        };
        self.t
            .app
            .verify_request(self.tenant, "t", &id, check)
            .await
            .unwrap();
        self.t
            .app
            .process_request(self.tenant, "t", &id)
            .await
            .unwrap()
    }

    pub(super) async fn sql(&self, q: &str) -> Vec<String> {
        query_strings(&self.t.db.url(), q).await
    }

    async fn count(&self, table: &str, subject: &str) -> i64 {
        let col = if table == "subjects" {
            "id"
        } else {
            "subject_id"
        };
        self.sql(&format!(
            "SELECT CAST(COUNT(*) AS TEXT) FROM {table} WHERE {col} = '{subject}'"
        ))
        .await[0]
            .parse()
            .unwrap()
    }

    async fn export(&self, user: &str) -> (StatusCode, Value) {
        self.call(
            "GET",
            &format!("/v1/subjects/{user}/export"),
            &self.server,
            None,
        )
        .await
    }

    /// A scored customer with traits, events, consents, a contested decision and a request.
    async fn customer(&self, user: &str, anon: &str) -> (String, String) {
        for p in ["analytics", "profiling", "marketing_email"] {
            self.consent(user, p, "granted").await;
        }
        let batch = json!({"batch": [
            {"type": "identify", "userId": user, "anonymousId": anon, "messageId": format!("{user}-i"),
             "traits": {"email": "Ada.Lovelace@Example.com", "phone": "+44 20 7946 0001", "name": "Ada Lovelace", "age": 36},
             "context": {"ip": "203.0.113.9"}},
            {"type": "track", "userId": user, "event": "Product Viewed", "messageId": format!("{user}-v1"), "properties": {"product_id": "p1"}},
            {"type": "track", "userId": user, "event": "Product Viewed", "messageId": format!("{user}-v2"), "properties": {"product_id": "p2"}},
            {"type": "track", "userId": user, "event": "Order Completed", "messageId": format!("{user}-o1"),
             "properties": {"order_id": "o1", "revenue": 42, "email": "Ada.Lovelace@Example.com"}, "context": {"ip": "203.0.113.9"}}
        ]});
        let (s, v) = self
            .call("POST", "/v1/batch", &self.write, Some(batch))
            .await;
        assert_eq!(
            (s, v["accepted"].as_u64()),
            (StatusCode::OK, Some(4)),
            "{v}"
        );
        let (s, v) = self
            .score(json!({"userId": user, "attributes": {"plan": "pro"}}))
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let decision = v["results"][0]["decisionId"].as_str().unwrap().to_string();
        let (s, c) = self
            .call(
                "POST",
                &format!("/v1/subjects/{user}/decisions/{decision}/contest"),
                &self.server,
                Some(json!({"statement": "I only browse for my employer, not for me."})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{c}");
        let (s, r) = self
            .call(
                "POST",
                "/v1/requests",
                &self.server,
                Some(json!({"userId": user, "kind": "access"})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{r}");
        let subject = self
            .t
            .app
            .resolve_subject(self.tenant, user)
            .await
            .unwrap()
            .id
            .to_string();
        (subject, decision)
    }

    async fn live_model(&self) {
        let v = super::scoring::train(self).await;
        super::scoring::audit_fair(self, v).await;
        for a in ["approve", "activate"] {
            let (s, r) = self
                .call(
                    "POST",
                    &format!("/v1/models/{v}/{a}"),
                    &self.admin,
                    Some(json!({"reason": "test"})),
                )
                .await;
            assert_eq!(s, StatusCode::OK, "{r}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erasure_reaches_everything_and_replayed_events_do_not_recreate_the_person() {
    for backend in BACKENDS {
        let Some(h) = H::new(backend).await else {
            continue;
        };
        h.live_model().await;
        let (subject, _) = h.customer(USER, "anon-ada-1").await;
        // Someone else, who must be untouched.
        let (other, _) = h.customer("keep-me@example.org", "anon-keep").await;

        // The export holds every table, decrypted.
        let (s, doc) = h.export(USER).await;
        assert_eq!(s, StatusCode::OK, "{doc}");
        let mut tables: Vec<&str> = doc["tables"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        tables.sort_unstable();
        let mut want: Vec<&str> = SUBJECT_TABLES.to_vec();
        want.sort_unstable();
        assert_eq!(tables, want);
        let t = &doc["tables"];
        assert_eq!(t["events"].as_array().unwrap().len(), 4, "{doc}");
        assert_eq!(t["decisions"].as_array().unwrap().len(), 1);
        assert!(
            t["decisions"][0]["why"]
                .as_str()
                .unwrap()
                .contains("chance")
        );
        assert_eq!(
            t["decision_contests"][0]["statement"],
            "I only browse for my employer, not for me."
        );
        assert_eq!(t["consents"].as_array().unwrap().len(), 3);
        // The consent call created the person by user id; later anonymous ids are not linked.
        assert_eq!(t["subject_aliases"].as_array().unwrap().len(), 1);
        assert_eq!(t["dsr_requests"].as_array().unwrap().len(), 1);
        assert!(
            t["subject_fields"]
                .as_array()
                .unwrap()
                .iter()
                .any(|f| f["path"] == "traits.phone" && f["value"] == "+44 20 7946 0001"),
            "{doc}"
        );
        // Every table of the schema that holds a subject's rows is in the export.
        let with_subject = match backend {
            candor_testkit::Backend::Sqlite => {
                h.sql("SELECT m.name FROM sqlite_master m JOIN pragma_table_info(m.name) p \
                       WHERE m.type = 'table' AND p.name = 'subject_id' ORDER BY m.name")
                    .await
            }
            candor_testkit::Backend::Postgres => {
                h.sql("SELECT CAST(table_name AS TEXT) FROM information_schema.columns \
                       WHERE column_name = 'subject_id' AND table_schema = current_schema() ORDER BY table_name")
                    .await
            }
        };
        assert!(with_subject.len() >= 6, "{with_subject:?}");
        for table in &with_subject {
            assert!(
                SUBJECT_TABLES.contains(&table.as_str()),
                "table {table} holds subject rows but is not exported"
            );
        }

        let wrapped = h
            .sql(&format!(
                "SELECT {} FROM subjects WHERE id = '{subject}'",
                if backend == candor_testkit::Backend::Sqlite {
                    "hex(wrapped_key)"
                } else {
                    "upper(encode(wrapped_key, 'hex'))"
                }
            ))
            .await
            .remove(0);

        // Staff erase (server key): a receipt of everything.
        let (s, _) = h
            .call("DELETE", &format!("/v1/subjects/{USER}"), &h.write, None)
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        let (s, r) = h
            .call("DELETE", &format!("/v1/subjects/{USER}"), &h.server, None)
            .await;
        assert_eq!(s, StatusCode::OK, "{r}");
        let e = &r["receipt"]["erased"];
        assert_eq!(e["events"], 4, "{r}");
        assert_eq!(e["decisions"], 1);
        assert_eq!(e["decision_contests"], 1);
        assert_eq!(e["consents"], 3);
        assert_eq!(e["identifiers_suppressed"], 1);
        assert_eq!(e["key_destroyed"], true);
        assert!(e["subject_fields"].as_u64().unwrap() >= 3, "{r}");
        assert_eq!(r["sha256"].as_str().unwrap().len(), 64);
        for table in [
            "events",
            "subject_fields",
            "consents",
            "decisions",
            "decision_contests",
            "subject_aliases",
        ] {
            assert_eq!(
                h.count(table, &subject).await,
                0,
                "{table} still holds rows"
            );
        }
        // The request is kept as proof, without personal details; the staff erasure is a
        // completed request too.
        assert_eq!(h.count("dsr_requests", &subject).await, 2);
        assert_eq!(
            h.sql(&format!("SELECT CAST(COUNT(*) AS TEXT) FROM dsr_requests WHERE subject_id = '{subject}' AND (sealed IS NOT NULL OR token_hash IS NOT NULL)")).await[0],
            "0"
        );
        // Features: nothing left to compute them from.
        let features =
            h.t.app
                .export_event_features(h.tenant, "t", h.t.app.clock().now(), "Order Completed", 30)
                .await
                .unwrap();
        assert!(features.rows.iter().all(|r| r[0] != subject));
        // The other customer is untouched.
        assert_eq!(h.count("events", &other).await, 4);
        assert_eq!(h.count("decisions", &other).await, 1);

        // The person is gone from every read.
        let (s, v) = h.export(USER).await;
        assert_eq!(
            (s, v["error"]["code"].as_str()),
            (StatusCode::NOT_FOUND, Some("subject_erased")),
            "{v}"
        );
        let (s, _) = h
            .call("DELETE", &format!("/v1/subjects/{USER}"), &h.server, None)
            .await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        let (_, v) = h.score(json!({"userId": USER})).await;
        assert_eq!(v["results"][0]["status"], "not_scored", "{v}");

        // Replaying their old events (and new ones with a fresh consent) re-creates nothing.
        let subjects_before = h.sql("SELECT CAST(COUNT(*) AS TEXT) FROM subjects").await;
        let replay = json!({"batch": [
            {"type": "identify", "userId": USER, "anonymousId": "anon-ada-1", "messageId": format!("{USER}-i"), "traits": {"email": "Ada.Lovelace@Example.com"}},
            {"type": "track", "userId": USER, "event": "Order Completed", "messageId": format!("{USER}-o1"), "properties": {"revenue": 42}},
            {"type": "track", "userId": USER, "event": "Product Viewed", "messageId": "fresh-1",
             "context": {"consent": {"categoryPreferences": {"Analytics": true}}}}
        ]});
        let (s, v) = h.call("POST", "/v1/batch", &h.write, Some(replay)).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let reasons: Vec<&str> = v["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["reason"].as_str().unwrap_or(""))
            .collect();
        assert_eq!(reasons, ["subject_erased"; 3], "{v}");
        assert_eq!(
            h.sql("SELECT CAST(COUNT(*) AS TEXT) FROM subjects").await,
            subjects_before
        );
        assert_eq!(h.count("events", &subject).await, 0);
        assert_eq!(h.count("consents", &subject).await, 0);

        // The audit log still verifies and names no personal value.
        let (s, v) = h.call("GET", "/v1/audit/verify", &h.admin, None).await;
        assert_eq!((s, v["ok"].as_bool()), (StatusCode::OK, Some(true)), "{v}");
        let details = h.sql("SELECT details FROM audit_log").await.join("\n");
        for needle in ["Ada", "Lovelace", "7946", "203.0.113.9", USER, "employer"] {
            assert!(!details.contains(needle), "`{needle}` in the audit log");
        }

        // On disk: no identifier in clear, not even the destroyed key's bytes.
        if let candor_store::AnyStore::Sqlite(s) = &h.t.db.store {
            s.clone().close().await;
        }
        let raw = h.t.db.raw_bytes().await;
        let hex_of = |s: &str| s.bytes().map(|b| format!("{b:02x}")).collect::<String>();
        for needle in [
            "Ada.Lovelace@Example.com",
            "Lovelace",
            "+44 20 7946 0001",
            "203.0.113.9",
            USER,
            "anon-ada-1",
        ] {
            assert!(
                !raw.windows(needle.len())
                    .any(|w| w.eq_ignore_ascii_case(needle.as_bytes())),
                "`{needle}` on disk"
            );
            let hx = hex_of(needle);
            assert!(
                !raw.windows(hx.len())
                    .any(|w| w.eq_ignore_ascii_case(hx.as_bytes())),
                "`{needle}` as hex on disk"
            );
        }
        let key_bytes: Vec<u8> = (0..wrapped.len() / 2)
            .map(|i| u8::from_str_radix(&wrapped[2 * i..2 * i + 2], 16).unwrap())
            .collect();
        let key_hex = wrapped.to_ascii_lowercase();
        assert!(key_bytes.len() >= 32);
        assert!(
            !raw.windows(key_bytes.len())
                .any(|w| w == key_bytes.as_slice()),
            "the wrapped key survives on disk"
        );
        assert!(
            !raw.windows(key_hex.len())
                .any(|w| w.eq_ignore_ascii_case(key_hex.as_bytes())),
            "the wrapped key survives as hex"
        );
    }
}

/// Orders are stored on the basis of the contract (no consent needed), so nothing in the
/// consent ledger changes when the person is erased: only the tombstone stops events that were
/// resolved before the erasure from being written after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn erasure_racing_ingestion_leaves_nothing_behind() {
    for backend in BACKENDS {
        let Some(h) = H::new(backend).await else {
            continue;
        };
        let h = std::sync::Arc::new(h);
        for round in 0..4 {
            let user = format!("racer-{round}");
            let order = |id: String| {
                json!({"type": "track", "userId": user, "event": "Order Completed", "messageId": id,
                    "properties": {"order_id": "o", "revenue": 10}})
            };
            let (s, v) = h
                .call(
                    "POST",
                    "/v1/batch",
                    &h.write,
                    Some(json!({"batch": [order(format!("{user}-0"))]})),
                )
                .await;
            assert_eq!(
                (s, v["accepted"].as_u64()),
                (StatusCode::OK, Some(1)),
                "{v}"
            );
            let subject =
                h.t.app
                    .resolve_subject(h.tenant, &user)
                    .await
                    .unwrap()
                    .id
                    .to_string();
            let mut writers = Vec::new();
            for w in 0..4 {
                let (h, user) = (h.clone(), user.clone());
                writers.push(tokio::spawn(async move {
                    for i in 0..25 {
                        let batch = json!({"batch": (0..4).map(|k| json!({"type": "track", "userId": user,
                            "event": "Order Completed", "messageId": format!("{user}-{w}-{i}-{k}"),
                            "properties": {"order_id": "o", "revenue": 10}})).collect::<Vec<_>>()});
                        let (s, v) = h.call("POST", "/v1/batch", &h.write, Some(batch)).await;
                        assert_eq!(s, StatusCode::OK, "{v}");
                    }
                }));
            }
            tokio::time::sleep(std::time::Duration::from_millis(5 + 10 * round)).await;
            let (s, r) = h
                .call("DELETE", &format!("/v1/subjects/{user}"), &h.server, None)
                .await;
            assert_eq!(s, StatusCode::OK, "{r}");
            for w in writers {
                w.await.unwrap();
            }
            // Whatever was accepted before the erasure went with it; nothing was written after.
            assert_eq!(
                h.count("events", &subject).await,
                0,
                "{backend:?} round {round}: resurrected events"
            );
            assert_eq!(h.count("subject_fields", &subject).await, 0);
        }
        let (s, v) = h.call("GET", "/v1/audit/verify", &h.admin, None).await;
        assert_eq!((s, v["ok"].as_bool()), (StatusCode::OK, Some(true)), "{v}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_are_verified_carried_out_and_tracked_against_their_deadlines() {
    for backend in BACKENDS {
        let Some(h) = H::new(backend).await else {
            continue;
        };
        h.live_model().await;
        h.customer("eu-1", "anon-eu").await;
        let created = h.t.app.clock().now();
        let new = |user: &str, kind: &str, extra: Value| {
            let mut body = json!({"userId": user, "kind": kind});
            if let (Some(b), Value::Object(e)) = (body.as_object_mut(), extra) {
                b.extend(e);
            }
            body
        };
        // Bad input changes nothing.
        for (body, code) in [
            (new("eu-1", "forget-me", json!({})), "kind_invalid"),
            (
                new("eu-1", "access", json!({"regime": "pipeda"})),
                "regime_invalid",
            ),
            (new("eu-1", "rectification", json!({})), "details_required"),
            (
                new("eu-1", "access", json!({"details": {"x": 1}})),
                "details_invalid",
            ),
        ] {
            let (s, v) = h.call("POST", "/v1/requests", &h.server, Some(body)).await;
            assert_eq!(
                (s, v["error"]["code"].as_str()),
                (StatusCode::BAD_REQUEST, Some(code)),
                "{v}"
            );
        }
        let (s, _) = h
            .call(
                "POST",
                "/v1/requests",
                &h.server,
                Some(new("nobody", "access", json!({}))),
            )
            .await;
        assert_eq!(s, StatusCode::NOT_FOUND);

        // GDPR access: one month; the token verifies once; processing points to the export.
        let (s, r) = h
            .call(
                "POST",
                "/v1/requests",
                &h.server,
                Some(new("eu-1", "access", json!({}))),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{r}");
        let req = &r["request"];
        assert_eq!(
            (req["regime"].as_str(), req["status"].as_str()),
            (Some("gdpr"), Some("received"))
        );
        let due =
            candor_types::deadline::deadlines(candor_types::deadline::Regime::Gdpr, created).due;
        assert_eq!(req["due_at"].as_i64(), Some(due.0));
        let id = req["id"].as_str().unwrap().to_string();
        let token = r["verification_token"].as_str().unwrap().to_string();
        let path = |a: &str| format!("/v1/requests/{id}/{a}");
        let (s, v) = h.call("POST", &path("process"), &h.admin, None).await;
        assert_eq!(
            (s, v["error"]["code"].as_str()),
            (StatusCode::CONFLICT, Some("not_verified")),
            "{v}"
        );
        let (s, v) = h
            .call(
                "POST",
                &path("verify"),
                &h.server,
                Some(json!({"token": "dsr_wrong"})),
            )
            .await;
        assert_eq!(
            (s, v["error"]["code"].as_str()),
            (StatusCode::FORBIDDEN, Some("verification_failed")),
            "{v}"
        );
        let (s, v) = h
            .call(
                "POST",
                &path("verify"),
                &h.server,
                Some(json!({"token": token})),
            )
            .await;
        assert_eq!(
            (s, v["status"].as_str()),
            (StatusCode::OK, Some("verified")),
            "{v}"
        );
        let (s, _) = h
            .call(
                "POST",
                &path("verify"),
                &h.server,
                Some(json!({"token": token})),
            )
            .await;
        assert_eq!(s, StatusCode::CONFLICT, "a token is used once");
        let (s, v) = h.call("POST", &path("process"), &h.server, None).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
        let (s, v) = h.call("POST", &path("process"), &h.admin, None).await;
        assert_eq!(
            (s, v["status"].as_str()),
            (StatusCode::OK, Some("completed")),
            "{v}"
        );
        assert!(v["result"]["export"].as_str().unwrap().ends_with("/export"));

        // CCPA: a Californian's request is acknowledged within 10 business days, answered in
        // 45 days, extended once to 90.
        let (s, _) = h
            .call("PUT", "/v1/subjects/ca-1/consents/analytics", &h.server,
                Some(json!({"state": "granted", "jurisdiction": "us_ca", "source": "banner", "notice_version": "2026-05"})))
            .await;
        assert_eq!(s, StatusCode::OK);
        h.track("ca-1", "ca-e1", json!({})).await;
        let (s, r) = h
            .call(
                "POST",
                "/v1/requests",
                &h.server,
                Some(new("ca-1", "do_not_sell", json!({}))),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{r}");
        let ca = r["request"]["id"].as_str().unwrap().to_string();
        let d = candor_types::deadline::deadlines(candor_types::deadline::Regime::Ccpa, created);
        assert_eq!(r["request"]["regime"], "ccpa");
        assert_eq!(
            r["request"]["acknowledge_by"].as_i64(),
            d.acknowledge_by.map(|t| t.0)
        );
        assert_eq!(r["request"]["due_at"].as_i64(), Some(d.due.0));
        let cpath = |a: &str| format!("/v1/requests/{ca}/{a}");
        let (s, v) = h.call("POST", &cpath("extend"), &h.admin, Some(json!({"notice": "We need more time to find every record; we will answer by the new date."}))).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["due_at"].as_i64(), Some(d.extended_due.0));
        let (s, _) = h
            .call(
                "POST",
                &cpath("extend"),
                &h.admin,
                Some(json!({"notice": "again"})),
            )
            .await;
        assert_eq!(s, StatusCode::CONFLICT);
        // Not acknowledged after two weeks: overdue.
        h.t.clock.advance_days(15);
        let (s, v) = h
            .call("GET", "/v1/requests?overdue=true", &h.admin, None)
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let overdue: Vec<&str> = v["requests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap())
            .collect();
        assert_eq!(overdue, [ca.as_str()], "{v}");
        let (s, v) = h.call("POST", &cpath("acknowledge"), &h.admin, None).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let (_, v) = h
            .call("GET", "/v1/requests?overdue=true", &h.admin, None)
            .await;
        assert!(v["requests"].as_array().unwrap().is_empty(), "{v}");
        // Staff verification, then do-not-sell withdraws sale and advertising.
        let (s, _) = h
            .call(
                "POST",
                &cpath("verify"),
                &h.server,
                Some(json!({"staffNote": "called back"})),
            )
            .await;
        assert_eq!(
            s,
            StatusCode::FORBIDDEN,
            "staff verification is an admin's act"
        );
        let (s, v) = h
            .call(
                "POST",
                &cpath("verify"),
                &h.admin,
                Some(json!({"staffNote": "verified by phone call-back to the number on file"})),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let (s, v) = h.call("POST", &cpath("process"), &h.admin, None).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let withdrawn: Vec<&str> = v["result"]["withdrawn"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_str().unwrap())
            .collect();
        assert!(
            withdrawn.contains(&"sale_sharing") && withdrawn.contains(&"advertising"),
            "{v}"
        );
        let (_, c) = h
            .call("GET", "/v1/subjects/ca-1/consents", &h.server, None)
            .await;
        assert!(c.to_string().contains("sale_sharing"), "{c}");

        // Objection to profiling: the person is no longer scored.
        h.carry_out("eu-1", "objection_profiling", None, None).await;
        let (_, v) = h.score(json!({"userId": "eu-1"})).await;
        assert_eq!(
            (
                v["results"][0]["status"].as_str(),
                v["results"][0]["reason"].as_str()
            ),
            (Some("not_scored"), Some("consent_withdrawn")),
            "{v}"
        );

        // Rectification replaces a trait; restriction stops every read for a purpose.
        let done = h
            .carry_out(
                "eu-1",
                "rectification",
                Some(json!({"traits": {"name": "Ada King"}})),
                Some("id card seen"),
            )
            .await;
        assert_eq!(done.row.result.as_ref().unwrap()["fields_corrected"], 1);
        let (_, v) = h
            .call(
                "GET",
                "/v1/subjects/eu-1/data?purpose=marketing_email",
                &h.server,
                None,
            )
            .await;
        assert_eq!(v["profile"]["traits.name"], "Ada King", "{v}");
        h.carry_out("eu-1", "restriction", None, Some("known customer"))
            .await;
        let (s, v) = h
            .call(
                "GET",
                "/v1/subjects/eu-1/data?purpose=marketing_email",
                &h.server,
                None,
            )
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
        assert!(v.to_string().contains("restricted"), "{v}");
        // The export still works: the right of access is not a purpose.
        let (s, _) = h.export("eu-1").await;
        assert_eq!(s, StatusCode::OK);

        // Rejection is final and audited.
        let rej =
            h.t.app
                .create_request(
                    h.tenant,
                    "t",
                    &candor_app::NewRequest {
                        user_id: "eu-1".into(),
                        kind: "erasure".into(),
                        regime: None,
                        details: None,
                    },
                )
                .await
                .unwrap();
        let jid = rej.request.row.id.clone();
        let (s, v) = h
            .call(
                "POST",
                &format!("/v1/requests/{jid}/reject"),
                &h.admin,
                Some(json!({"reason": "identity could not be verified"})),
            )
            .await;
        assert_eq!(
            (s, v["status"].as_str()),
            (StatusCode::OK, Some("rejected")),
            "{v}"
        );
        let (s, _) = h
            .call(
                "POST",
                &format!("/v1/requests/{jid}/verify"),
                &h.server,
                Some(json!({"token": rej.verification_token})),
            )
            .await;
        assert_eq!(s, StatusCode::CONFLICT);
        let actions = h
            .sql("SELECT action FROM audit_log WHERE action LIKE 'dsr.%'")
            .await;
        for a in [
            "dsr.received",
            "dsr.verified",
            "dsr.in_progress",
            "dsr.completed",
            "dsr.extended",
            "dsr.acknowledged",
            "dsr.rejected",
        ] {
            assert!(
                actions.iter().any(|x| x == a),
                "{a} not audited: {actions:?}"
            );
        }
        let details = h.sql("SELECT details FROM audit_log").await.join("\n");
        assert!(
            !details.contains("Ada King"),
            "a rectified value reached the audit log"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_contested_decision_is_reviewed_by_a_human_and_feeds_the_next_training() {
    for backend in BACKENDS {
        let Some(h) = H::new(backend).await else {
            continue;
        };
        h.live_model().await;
        let (subject, decision) = h.customer("c-1", "anon-c1").await;
        // The person reads the decision in plain words.
        let (s, v) = h
            .call(
                "GET",
                &format!("/v1/subjects/c-1/decisions/{decision}"),
                &h.server,
                None,
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let why = v["why"].as_str().unwrap();
        assert!(
            why.starts_with("We estimated a") && why.contains("tier"),
            "{why}"
        );
        assert!(
            why.contains("What raised it") || why.contains("What lowered it"),
            "{why}"
        );
        assert_eq!(v["contest"]["status"], "open");
        // One open contest per decision; a decision of someone else is not found.
        let (s, v) = h
            .call(
                "POST",
                &format!("/v1/subjects/c-1/decisions/{decision}/contest"),
                &h.server,
                Some(json!({"statement": "again"})),
            )
            .await;
        assert_eq!(
            (s, v["error"]["code"].as_str()),
            (StatusCode::CONFLICT, Some("already_contested")),
            "{v}"
        );
        h.customer("c-2", "anon-c2").await;
        let (s, _) = h
            .call(
                "POST",
                &format!("/v1/subjects/c-2/decisions/{decision}/contest"),
                &h.server,
                Some(json!({"statement": "not mine"})),
            )
            .await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        let (s, v) = h
            .call(
                "POST",
                &format!("/v1/subjects/c-2/decisions/{decision}/contest"),
                &h.server,
                Some(json!({"statement": "  "})),
            )
            .await;
        assert_eq!(
            (s, v["error"]["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some("statement_invalid")),
            "{v}"
        );

        // The review queue is for reviewers (admin keys), oldest due first, with statements.
        let (s, _) = h
            .call("GET", "/v1/contests?status=open", &h.server, None)
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        let (s, q) = h
            .call("GET", "/v1/contests?status=open", &h.admin, None)
            .await;
        assert_eq!(s, StatusCode::OK, "{q}");
        let queue = q["contests"].as_array().unwrap();
        assert_eq!(queue.len(), 2, "{q}");
        let mine = queue
            .iter()
            .find(|c| c["decision_id"] == decision.as_str())
            .unwrap();
        assert_eq!(
            mine["statement"],
            "I only browse for my employer, not for me."
        );
        let days =
            (mine["due_at"].as_i64().unwrap() - mine["created_at"].as_i64().unwrap()) / 86_400_000;
        assert_eq!(days, i64::from(candor_app::rights::CONTEST_SLA_DAYS));
        let id = mine["id"].as_str().unwrap().to_string();
        let (s, v) = h.call("POST", &format!("/v1/contests/{id}/review"), &h.admin,
            Some(json!({"outcome": "override", "note": "Business account: not a personal lead.", "label": 7}))).await;
        assert_eq!(
            (s, v["error"]["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some("label_invalid")),
            "{v}"
        );
        let (s, v) = h.call("POST", &format!("/v1/contests/{id}/review"), &h.admin,
            Some(json!({"outcome": "override", "note": "Business account: not a personal lead.", "label": 1}))).await;
        assert_eq!(
            (s, v["status"].as_str()),
            (StatusCode::OK, Some("overridden")),
            "{v}"
        );
        let (s, _) = h
            .call(
                "POST",
                &format!("/v1/contests/{id}/review"),
                &h.admin,
                Some(json!({"outcome": "uphold", "note": "changed my mind"})),
            )
            .await;
        assert_eq!(s, StatusCode::CONFLICT);
        // The person sees the outcome and the note.
        let (_, v) = h
            .call(
                "GET",
                &format!("/v1/subjects/c-1/decisions/{decision}"),
                &h.server,
                None,
            )
            .await;
        assert_eq!(v["contest"]["status"], "overridden", "{v}");
        assert_eq!(
            v["contest"]["note"],
            "Business account: not a personal lead."
        );
        // The correction is the label of the next training export: no order followed the
        // score, but the reviewer's label says yes.
        let export =
            h.t.app
                .export_event_features(h.tenant, "t", h.t.app.clock().now(), "Order Completed", 30)
                .await
                .unwrap();
        assert_eq!(export.relabelled, 1);
        let label_col = export.headers.iter().position(|c| c == "label").unwrap();
        let row = export.rows.iter().find(|r| r[0] == subject).unwrap();
        assert_eq!(row[label_col], "yes");
        let other = export.rows.iter().find(|r| r[0] != subject).unwrap();
        assert_eq!(other[label_col], "no");
        let actions = h
            .sql("SELECT action FROM audit_log WHERE action LIKE 'decision.%'")
            .await;
        assert!(actions.iter().any(|a| a == "decision.contested"));
        assert!(
            actions.iter().any(|a| a == "decision.contest_overridden"),
            "{actions:?}"
        );
    }
}
