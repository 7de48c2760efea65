//! Behaviour of the HTTP API, driven through the router (no socket), on SQLite and PostgreSQL.

#![allow(clippy::unwrap_used)]

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use base64::Engine as _;
use candor_store::Store;
use candor_testkit::{BACKENDS, Backend, TestApp};
use candor_types::{Scope, TenantId};
use serde_json::{Value, json};
use tower::ServiceExt as _;

mod assistant;
mod fairness;
mod journeys;
mod pricing;
mod recs;
mod rights;
mod scoring;
mod web;

struct H {
    t: TestApp,
    router: Router,
    tenant: TenantId,
    write: String,
    server: String,
    admin: String,
}

impl H {
    async fn new(backend: Backend) -> Option<Self> {
        let t = TestApp::new(backend).await?;
        Some(Self::with(t, "shop").await)
    }

    async fn with(t: TestApp, name: &str) -> Self {
        let tenant = t.app.create_tenant(name, "test").await.unwrap().id;
        let write = t
            .app
            .create_key(tenant, Scope::Write, None, "test")
            .await
            .unwrap()
            .1;
        let server = t
            .app
            .create_key(tenant, Scope::Server, None, "test")
            .await
            .unwrap()
            .1;
        let admin = t
            .app
            .create_key(tenant, Scope::Admin, None, "test")
            .await
            .unwrap()
            .1;
        let router = candor_http::router(t.app.clone());
        Self {
            t,
            router,
            tenant,
            write,
            server,
            admin,
        }
    }

    async fn raw(&self, req: Request<Body>) -> (StatusCode, Value) {
        let res = self.router.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let bytes = axum::body::to_bytes(res.into_body(), 10 << 20)
            .await
            .unwrap();
        let v = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
        (status, v)
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        key: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        self.call_h(method, path, key, body, &[]).await
    }

    async fn call_h(
        &self,
        method: &str,
        path: &str,
        key: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> (StatusCode, Value) {
        let mut b = Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", "application/json");
        if !key.is_empty() {
            b = b.header("authorization", format!("Bearer {key}"));
        }
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let body = body.map_or_else(Body::empty, |v| Body::from(v.to_string()));
        self.raw(b.body(body).unwrap()).await
    }

    async fn track(&self, user: &str, message_id: &str, extra: Value) -> Value {
        let mut msg = json!({"userId": user, "messageId": message_id, "event": "Product Viewed", "properties": {"product_id": "p1", "price": 12.5}});
        if let (Some(m), Value::Object(e)) = (msg.as_object_mut(), extra) {
            m.extend(e);
        }
        let (s, v) = self.call("POST", "/v1/track", &self.write, Some(msg)).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        v["result"].clone()
    }

    async fn consent(&self, user: &str, purpose: &str, state: &str) -> Value {
        let (s, v) = self
            .call("PUT", &format!("/v1/subjects/{user}/consents/{purpose}"), &self.server, Some(json!({"state": state, "jurisdiction": "eu", "source": "banner", "notice_version": "2026-05"})))
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        v
    }

    async fn events(&self) -> i64 {
        self.t.app.store().count_events(self.tenant).await.unwrap()
    }

    async fn audit_len(&self) -> usize {
        self.t
            .app
            .store()
            .audit_entries(&self.tenant.to_string(), 0, 100_000)
            .await
            .unwrap()
            .len()
    }
}

macro_rules! each_backend {
    (|$h:ident| $body:block) => {
        for backend in BACKENDS {
            let Some($h) = H::new(backend).await else {
                continue;
            };
            let run = async { $body };
            run.await;
        }
    };
}

#[tokio::test]
async fn events_without_analytics_consent_are_dropped_and_kept_once_granted() {
    each_backend!(|h| {
        let r = h.track("u1", "m1", json!({})).await;
        assert_eq!(
            (r["status"].as_str(), r["reason"].as_str()),
            (Some("dropped"), Some("no_consent")),
            "{r}"
        );
        assert!(r["message"].as_str().unwrap().contains("analytics"), "{r}");
        assert_eq!(h.events().await, 0);
        // nothing about an unknown, unconsented visitor is kept, not even a pseudonymous subject
        let (s, _) = h
            .call("GET", "/v1/subjects/u1/consents", &h.server, None)
            .await;
        assert_eq!(s, StatusCode::NOT_FOUND);

        h.consent("u1", "analytics", "granted").await;
        let r = h.track("u1", "m1", json!({})).await;
        assert_eq!(r["status"], "accepted", "{r}");
        assert_eq!(h.events().await, 1);
        let (s, v) = h
            .call(
                "GET",
                "/v1/subjects/u1/data?purpose=analytics",
                &h.server,
                None,
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(
            v["events"][0]["fields"]["behavioural"]["properties"]["product_id"],
            "p1"
        );
    });
}

#[tokio::test]
async fn consent_in_the_event_governs_that_event() {
    each_backend!(|h| {
        let prefs = |a: bool| json!({"context": {"consent": {"categoryPreferences": {"Analytics": a, "Advertising": false}}}});
        let r = h.track("u2", "m1", prefs(true)).await;
        assert_eq!(r["status"], "accepted", "{r}");
        let (_, v) = h
            .call("GET", "/v1/subjects/u2/consents", &h.server, None)
            .await;
        let analytics = v["purposes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["purpose"] == "analytics")
            .unwrap();
        assert_eq!(
            (
                analytics["consent"].as_str(),
                analytics["allowed"].as_bool()
            ),
            (Some("granted"), Some(true))
        );
        assert!(
            v["history"]
                .as_array()
                .unwrap()
                .iter()
                .all(|r| r["source"] == "event")
        );
        let r = h.track("u2", "m2", prefs(false)).await;
        assert_eq!(r["status"], "dropped", "{r}");
        assert_eq!(h.events().await, 1);
    });
}

#[tokio::test]
async fn gpc_is_an_opt_out_of_sale_sharing_and_advertising() {
    each_backend!(|h| {
        h.consent("u3", "analytics", "granted").await;
        h.consent("u3", "advertising", "granted").await;
        let msg = json!({"userId": "u3", "messageId": "g1", "event": "Product Viewed",
            "context": {"consent": {"categoryPreferences": {"DataSharing": true}}}});
        let (s, v) = h
            .call_h(
                "POST",
                "/v1/track",
                &h.write,
                Some(msg),
                &[("sec-gpc", "1")],
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["result"]["status"], "accepted");
        let (_, v) = h
            .call("GET", "/v1/subjects/u3/consents", &h.server, None)
            .await;
        let by = |p: &str| {
            v["purposes"]
                .as_array()
                .unwrap()
                .iter()
                .find(|x| x["purpose"] == p)
                .unwrap()
                .clone()
        };
        for p in ["sale_sharing", "advertising"] {
            assert_eq!(by(p)["consent"], "withdrawn", "{p}: {v}");
            assert_eq!(by(p)["allowed"], false);
        }
        assert_eq!(by("analytics")["allowed"], true);
        let gpc_records = v["history"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["source"] == "gpc")
            .count();
        assert_eq!(gpc_records, 2, "{v}");
        // a second GPC request does not pile up records
        h.call_h(
            "POST",
            "/v1/track",
            &h.write,
            Some(json!({"userId": "u3", "messageId": "g2", "event": "Product Viewed"})),
            &[("sec-gpc", "1")],
        )
        .await;
        let (_, v2) = h
            .call("GET", "/v1/subjects/u3/consents", &h.server, None)
            .await;
        assert_eq!(
            v2["history"].as_array().unwrap().len(),
            v["history"].as_array().unwrap().len()
        );
        let (s, v) = h
            .call(
                "GET",
                "/v1/subjects/u3/data?purpose=advertising",
                &h.server,
                None,
            )
            .await;
        assert_eq!(
            (s, v["error"]["code"].as_str()),
            (StatusCode::FORBIDDEN, Some("purpose_denied"))
        );
    });
}

#[tokio::test]
async fn after_withdrawal_nothing_new_is_stored_or_read_for_that_purpose() {
    each_backend!(|h| {
        h.consent("u4", "analytics", "granted").await;
        assert_eq!(h.track("u4", "w1", json!({})).await["status"], "accepted");
        let v = h.consent("u4", "analytics", "withdrawn").await;
        let a = v["purposes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["purpose"] == "analytics")
            .unwrap()
            .clone();
        assert_eq!(a["allowed"], false);
        assert_eq!(
            v["history"].as_array().unwrap().len(),
            2,
            "append-only: {v}"
        );
        for i in 0..3 {
            let r = h.track("u4", &format!("w2-{i}"), json!({})).await;
            assert_eq!(r["status"], "dropped", "{r}");
            assert!(r["message"].as_str().unwrap().contains("withdrawn"), "{r}");
        }
        assert_eq!(h.events().await, 1);
        let (s, v) = h
            .call(
                "GET",
                "/v1/subjects/u4/data?purpose=analytics",
                &h.server,
                None,
            )
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        assert_eq!(v["error"]["reasons"][0]["code"], "consent_withdrawn");
        // orders are still kept under the contract basis (order fulfilment), nothing else
        let (_, v) = h.call("POST", "/v1/track", &h.write, Some(json!({"userId": "u4", "messageId": "o1", "event": "Order Completed", "properties": {"total": 30, "email": "x@y.z"}}))).await;
        assert_eq!(v["result"]["status"], "accepted", "{v}");
        let (_, v) = h
            .call(
                "GET",
                "/v1/subjects/u4/data?purpose=service",
                &h.server,
                None,
            )
            .await;
        assert_eq!(v["events"].as_array().unwrap().len(), 1, "{v}");
        assert_eq!(v["events"][0]["name"], "Order Completed");
    });
}

#[tokio::test]
async fn minimization_keeps_only_fields_a_permitted_purpose_reads() {
    each_backend!(|h| {
        h.consent("u5", "analytics", "granted").await;
        let msg = json!({"type": "identify", "userId": "u5", "messageId": "i1",
            "traits": {"email": "ada@example.com", "age": 37, "favourite": "tea"},
            "context": {"ip": "203.0.113.9", "userAgent": "Firefox"}});
        let (_, v) = h.call("POST", "/v1/identify", &h.write, Some(msg)).await;
        // identify is contact data, kept under the contract basis (service)
        assert_eq!(v["result"]["status"], "accepted", "{v}");
        let r = h.track("u5", "t1", json!({"properties": {"product_id": "p9", "email": "ada@example.com"}, "context": {"ip": "203.0.113.9", "page": {"url": "/p9"}}})).await;
        assert_eq!(r["status"], "accepted");
        let dropped: Vec<&str> = r["droppedFields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_str().unwrap())
            .collect();
        // analytics does not read contact data: the email property and the IP are not stored
        assert!(
            dropped.contains(&"properties.email") && dropped.contains(&"context.ip"),
            "{r}"
        );
        let (_, v) = h
            .call(
                "GET",
                "/v1/subjects/u5/data?purpose=analytics",
                &h.server,
                None,
            )
            .await;
        let ev = v["events"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["messageId"] == "t1")
            .unwrap()
            .clone();
        assert_eq!(ev["fields"]["behavioural"]["context"]["page"]["url"], "/p9");
        assert!(ev["fields"].get("contact").is_none());
        // protected traits are readable only by the fairness audit purpose
        assert!(v["profile"].get("traits.age").is_none(), "{v}");
        let (_, v) = h
            .call(
                "GET",
                "/v1/subjects/u5/data?purpose=fairness_audit",
                &h.server,
                None,
            )
            .await;
        assert_eq!(v["profile"]["traits.age"], 37, "{v}");
        assert!(v["profile"].get("traits.email").is_none());
        let (_, v) = h
            .call(
                "GET",
                "/v1/subjects/u5/data?purpose=service",
                &h.server,
                None,
            )
            .await;
        assert_eq!(v["profile"]["traits.email"], "ada@example.com", "{v}");
        assert!(v["profile"].get("traits.age").is_none());
        // opening sealed data is audited as a PII read, without the data
        let entries =
            h.t.app
                .store()
                .audit_entries(&h.tenant.to_string(), 0, 1000)
                .await
                .unwrap();
        let reads: Vec<_> = entries.iter().filter(|e| e.action == "pii.read").collect();
        assert!(!reads.is_empty());
        assert!(
            reads
                .iter()
                .all(|e| !e.details.contains("ada@") && !e.details.contains("37,"))
        );
    });
}

#[tokio::test]
async fn no_plaintext_identifier_reaches_the_database() {
    each_backend!(|h| {
        for p in ["analytics", "marketing_email"] {
            h.consent("shopper@example.org", p, "granted").await;
        }
        let msg = json!({"batch": [
            {"type": "identify", "userId": "shopper@example.org", "anonymousId": "anon-7f3a9c",
             "traits": {"email": "Grace.Hopper@Example.com", "phone": "+44 20 7946 0958", "name": "Grace Hopper",
                        "address": {"street": "1 Navy Way"}}, "context": {"ip": "198.51.100.77"}},
            {"type": "track", "userId": "shopper@example.org", "event": "Order Completed",
             "properties": {"total": 99, "email": "Grace.Hopper@Example.com"}, "context": {"ip": "198.51.100.77"}}
        ]});
        let (s, v) = h.call("POST", "/v1/batch", &h.write, Some(msg)).await;
        assert_eq!(
            (s, v["accepted"].as_u64()),
            (StatusCode::OK, Some(2)),
            "{v}"
        );
        // the data is there, for a purpose that may read it
        let (_, v) = h
            .call(
                "GET",
                "/v1/subjects/shopper@example.org/data?purpose=marketing_email",
                &h.server,
                None,
            )
            .await;
        assert_eq!(v["profile"]["traits.phone"], "+44 20 7946 0958", "{v}");
        // ... but the database holds none of it in clear
        if let Some(store) = match &h.t.db.store {
            candor_store::AnyStore::Sqlite(s) => Some(s.clone()),
            _ => None,
        } {
            store.close().await; // checkpoint the WAL into the file too
        }
        let raw = h.t.db.raw_bytes().await;
        assert!(raw.len() > 1000);
        for needle in [
            "Grace.Hopper@Example.com",
            "grace.hopper@example.com",
            "Hopper",
            "+44 20 7946 0958",
            "7946 0958",
            "79460958",
            "198.51.100.77",
            "shopper@example.org",
            "anon-7f3a9c",
            "Navy Way",
        ] {
            let found = raw
                .windows(needle.len())
                .any(|w| w.eq_ignore_ascii_case(needle.as_bytes()));
            assert!(
                !found,
                "{:?}: `{needle}` found in clear in the database",
                h.t.db.backend
            );
            let hex: String = needle.bytes().map(|b| format!("{b:02x}")).collect();
            let found_hex = raw
                .windows(hex.len())
                .any(|w| w.eq_ignore_ascii_case(hex.as_bytes()));
            assert!(
                !found_hex,
                "{:?}: `{needle}` found hex-encoded in the database",
                h.t.db.backend
            );
        }
    });
}

#[tokio::test]
async fn no_key_of_one_tenant_reaches_another_tenants_data() {
    for backend in BACKENDS {
        let Some(t) = TestApp::new(backend).await else {
            continue;
        };
        let b_app = t.app.clone();
        let a = H::with(t, "shop-a").await;
        let b_tenant = b_app.create_tenant("shop-b", "test").await.unwrap().id;
        let b_write = b_app
            .create_key(b_tenant, Scope::Write, None, "t")
            .await
            .unwrap()
            .1;
        let b_admin = b_app
            .create_key(b_tenant, Scope::Admin, None, "t")
            .await
            .unwrap()
            .1;
        let b_key_id = b_app.store().list_api_keys(b_tenant).await.unwrap()[0].id;
        // tenant b has a customer with data
        a.call(
            "PUT",
            "/v1/subjects/victim/consents/analytics",
            &b_admin,
            Some(json!({"state": "granted"})),
        )
        .await;
        let (_, v) = a
            .call(
                "POST",
                "/v1/track",
                &b_write,
                Some(json!({"userId": "victim", "messageId": "b1", "event": "Product Viewed"})),
            )
            .await;
        assert_eq!(v["result"]["status"], "accepted");
        // every key of tenant a, every endpoint: not found, never b's data
        for key in [&a.write, &a.server, &a.admin] {
            for path in [
                "/v1/subjects/victim/consents",
                "/v1/subjects/victim/data?purpose=analytics",
                "/v1/subjects/victim/data?purpose=fairness_audit",
            ] {
                let (s, v) = a.call("GET", path, key, None).await;
                assert!(
                    s == StatusCode::NOT_FOUND || s == StatusCode::FORBIDDEN,
                    "{backend:?} {path}: {s} {v}"
                );
                assert!(!v.to_string().contains("b1"));
            }
            let (s, _) = a
                .call("DELETE", &format!("/v1/keys/{b_key_id}"), key, None)
                .await;
            assert!(s == StatusCode::NOT_FOUND || s == StatusCode::FORBIDDEN);
        }
        let (_, keys) = a.call("GET", "/v1/keys", &a.admin, None).await;
        assert_eq!(keys["keys"].as_array().unwrap().len(), 3);
        // the same userId sent with a's key is a different person in a's store
        a.call(
            "PUT",
            "/v1/subjects/victim/consents/analytics",
            &a.server,
            Some(json!({"state": "granted"})),
        )
        .await;
        let (_, v) = a
            .call(
                "GET",
                "/v1/subjects/victim/data?purpose=analytics",
                &a.server,
                None,
            )
            .await;
        assert_eq!(v["events"].as_array().unwrap().len(), 0, "{v}");
        assert_eq!(b_app.store().count_events(b_tenant).await.unwrap(), 1);
        assert_eq!(a.events().await, 0);
        // b's key still works and is not revoked
        let (s, _) = a.call("GET", "/v1/keys", &b_admin, None).await;
        assert_eq!(s, StatusCode::OK);
    }
}

#[tokio::test]
async fn scopes_are_enforced() {
    each_backend!(|h| {
        let (s, v) = h
            .call(
                "GET",
                "/v1/subjects/u/data?purpose=analytics",
                &h.write,
                None,
            )
            .await;
        assert_eq!(
            (s, v["error"]["code"].as_str()),
            (StatusCode::FORBIDDEN, Some("forbidden_scope"))
        );
        let (s, _) = h
            .call(
                "PUT",
                "/v1/subjects/u/consents/analytics",
                &h.write,
                Some(json!({"state": "granted"})),
            )
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        let (s, _) = h
            .call(
                "POST",
                "/v1/keys",
                &h.server,
                Some(json!({"scope": "admin"})),
            )
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        let (s, _) = h.call("GET", "/v1/audit/verify", &h.server, None).await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        let (s, v) = h
            .call(
                "POST",
                "/v1/keys",
                &h.admin,
                Some(json!({"scope": "write", "label": "site"})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        let new_key = v["key"].as_str().unwrap().to_owned();
        // Segment clients: HTTP Basic with the write key as user name
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("{new_key}:"));
        let req = Request::builder()
            .method("POST")
            .uri("/v1/page")
            .header("authorization", format!("Basic {basic}"))
            .body(Body::from(
                json!({"anonymousId": "a1", "name": "Home"}).to_string(),
            ))
            .unwrap();
        let (s, v) = h.raw(req).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        // revoked keys stop working at once
        let id = v.get("id").cloned();
        let _ = id;
        let keys = h.t.app.store().list_api_keys(h.tenant).await.unwrap();
        let site = keys
            .iter()
            .find(|k| k.label.as_deref() == Some("site"))
            .unwrap();
        let (s, _) = h
            .call("DELETE", &format!("/v1/keys/{}", site.id), &h.admin, None)
            .await;
        assert_eq!(s, StatusCode::NO_CONTENT);
        let (s, v) = h
            .call(
                "POST",
                "/v1/page",
                &new_key,
                Some(json!({"anonymousId": "a1"})),
            )
            .await;
        assert_eq!(
            (s, v["error"]["code"].as_str()),
            (StatusCode::UNAUTHORIZED, Some("unauthorized"))
        );
    });
}

#[tokio::test]
async fn bad_input_gets_a_clear_error_and_changes_nothing() {
    each_backend!(|h| {
        h.consent("u6", "analytics", "granted").await;
        let before = (h.events().await, h.audit_len().await);
        let post = |path: &str, key: &str, body: Vec<u8>| {
            Request::builder()
                .method("POST")
                .uri(path)
                .header("authorization", format!("Bearer {key}"))
                .body(Body::from(body))
                .unwrap()
        };
        let cases: Vec<(Request<Body>, StatusCode, &str)> = vec![
            (
                post("/v1/track", &h.write, b"{\"userId\": ".to_vec()),
                StatusCode::BAD_REQUEST,
                "invalid_json",
            ),
            (
                post(
                    "/v1/track",
                    &h.write,
                    b"{\"userId\": \"\xff\xfe\"}".to_vec(),
                ),
                StatusCode::BAD_REQUEST,
                "invalid_utf8",
            ),
            (
                post(
                    "/v1/track",
                    &h.write,
                    br#"{"userId": "u6", "event": 5}"#.to_vec(),
                ),
                StatusCode::BAD_REQUEST,
                "wrong_type",
            ),
            (
                post("/v1/track", &h.write, br#"{"userId": "u6"}"#.to_vec()),
                StatusCode::BAD_REQUEST,
                "missing_event_name",
            ),
            (
                post("/v1/track", &h.write, br#"{"event": "X"}"#.to_vec()),
                StatusCode::BAD_REQUEST,
                "missing_identity",
            ),
            (
                post(
                    "/v1/track",
                    &h.write,
                    br#"{"userId": "u6", "event": "X", "timestamp": "later"}"#.to_vec(),
                ),
                StatusCode::BAD_REQUEST,
                "bad_timestamp",
            ),
            (
                post("/v1/batch", &h.write, br#"{"batch": {}}"#.to_vec()),
                StatusCode::BAD_REQUEST,
                "invalid_request",
            ),
            (
                post("/v1/batch", &h.write, br#"[1, 2]"#.to_vec()),
                StatusCode::BAD_REQUEST,
                "invalid_request",
            ),
            (
                post("/v1/batch", &h.write, vec![b' '; 600 * 1024]),
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
            ),
            (
                post(
                    "/v1/track",
                    "cnd_write_notakey",
                    br#"{"userId": "u6", "event": "X"}"#.to_vec(),
                ),
                StatusCode::UNAUTHORIZED,
                "unauthorized",
            ),
            (
                Request::builder()
                    .method("POST")
                    .uri("/v1/track")
                    .body(Body::from("{}"))
                    .unwrap(),
                StatusCode::UNAUTHORIZED,
                "unauthorized",
            ),
            (
                Request::builder()
                    .method("POST")
                    .uri("/v1/track")
                    .header("authorization", "Basic !!!")
                    .body(Body::from("{}"))
                    .unwrap(),
                StatusCode::UNAUTHORIZED,
                "unauthorized",
            ),
            (
                Request::builder()
                    .method("GET")
                    .uri("/v1/nothing")
                    .body(Body::empty())
                    .unwrap(),
                StatusCode::NOT_FOUND,
                "not_found",
            ),
            (
                Request::builder()
                    .method("DELETE")
                    .uri("/v1/track")
                    .body(Body::empty())
                    .unwrap(),
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
            ),
        ];
        for (req, status, code) in cases {
            let uri = req.uri().clone();
            let (s, v) = h.raw(req).await;
            assert_eq!(
                (s, v["error"]["code"].as_str()),
                (status, Some(code)),
                "{uri}: {v}"
            );
            assert!(!v["error"]["message"].as_str().unwrap().is_empty());
        }
        for (path, body, code) in [
            (
                "/v1/subjects/u6/consents/telepathy",
                json!({"state": "granted"}),
                "unknown_purpose",
            ),
            (
                "/v1/subjects/u6/consents/analytics",
                json!({"state": "maybe"}),
                "invalid_consent_state",
            ),
            (
                "/v1/subjects/u6/consents/analytics",
                json!({"state": "granted", "jurisdiction": "mars"}),
                "unknown_jurisdiction",
            ),
            (
                "/v1/subjects/u6/consents/analytics",
                json!({"state": "granted", "notice_hash": "abc"}),
                "invalid_notice_hash",
            ),
            (
                "/v1/subjects/u6/consents/analytics",
                json!({"state": "granted", "source": "gpc"}),
                "invalid_consent_source",
            ),
            (
                "/v1/subjects/u6/consents/analytics",
                json!({"state": "granted", "extra": 1}),
                "invalid_request",
            ),
            (
                "/v1/subjects/u6/consents/analytics",
                json!({"state": 1}),
                "invalid_request",
            ),
        ] {
            let (s, v) = h.call("PUT", path, &h.server, Some(body)).await;
            assert_eq!(
                (s, v["error"]["code"].as_str()),
                (StatusCode::BAD_REQUEST, Some(code)),
                "{path}: {v}"
            );
        }
        let (s, v) = h
            .call(
                "GET",
                "/v1/subjects/u6/data?purpose=telepathy",
                &h.server,
                None,
            )
            .await;
        assert_eq!(
            (s, v["error"]["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some("unknown_purpose"))
        );
        let (s, v) = h.call("GET", "/v1/subjects/u6/data", &h.server, None).await;
        assert_eq!(
            (s, v["error"]["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid_query"))
        );
        let (s, _) = h
            .call(
                "GET",
                "/v1/subjects/nobody/data?purpose=analytics",
                &h.server,
                None,
            )
            .await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        assert_eq!(
            (h.events().await, h.audit_len().await),
            before,
            "{:?}: bad input changed state",
            h.t.db.backend
        );
        // a batch reports per event: the invalid ones do not stop the valid ones
        let (s, v) = h.call("POST", "/v1/batch", &h.write, Some(json!({"batch": [
            {"type": "track", "userId": "u6", "event": "Product Viewed", "messageId": "ok1"},
            {"type": "alias", "userId": "u6"},
            {"type": "track", "userId": "u6", "event": 7},
            "not an object",
            {"type": "track", "userId": "u6", "event": "Product Viewed", "messageId": "ok1"}
        ]}))).await;
        assert_eq!(s, StatusCode::OK);
        let statuses: Vec<&str> = v["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["status"].as_str().unwrap())
            .collect();
        assert_eq!(
            statuses,
            vec!["accepted", "rejected", "rejected", "rejected", "duplicate"],
            "{v}"
        );
        assert_eq!(h.events().await, before.0 + 1);
    });
}

#[tokio::test]
async fn retention_deletes_on_time() {
    each_backend!(|h| {
        h.consent("u7", "analytics", "granted").await;
        h.consent("u7", "marketing_email", "granted").await;
        h.track("u7", "r1", json!({})).await;
        h.call(
            "POST",
            "/v1/identify",
            &h.write,
            Some(json!({"userId": "u7", "traits": {"email": "r@x.io"}})),
        )
        .await;
        h.call("POST", "/v1/track", &h.write, Some(json!({"userId": "u7", "messageId": "r2", "event": "Order Completed", "properties": {"total": 5}}))).await;
        assert_eq!(h.events().await, 3);
        // behavioural: 395 days. A day before, nothing goes.
        h.t.clock.advance_days(394);
        h.t.app.sweep_retention().await.unwrap();
        assert_eq!(h.events().await, 3);
        h.t.clock.advance_days(2);
        h.t.app.sweep_retention().await.unwrap();
        assert_eq!(
            h.events().await,
            2,
            "the product view is gone after 395 days"
        );
        // contact (email trait, identify event): 730 days; transactional: 2555 days
        h.t.clock.advance_days(730 - 396 + 1);
        h.t.app.sweep_retention().await.unwrap();
        assert_eq!(h.events().await, 1);
        let (_, v) = h
            .call(
                "GET",
                "/v1/subjects/u7/data?purpose=marketing_email",
                &h.server,
                None,
            )
            .await;
        assert!(v["profile"].get("traits.email").is_none(), "{v}");
        assert_eq!(v["events"][0]["name"], "Order Completed");
        h.t.clock.advance_days(2555);
        let swept = h.t.app.sweep_retention().await.unwrap();
        assert!(swept.iter().any(|s| s.category == "transactional"));
        assert_eq!(h.events().await, 0);
        let entries =
            h.t.app
                .store()
                .audit_entries(&h.tenant.to_string(), 0, 1000)
                .await
                .unwrap();
        assert!(entries.iter().any(|e| e.action == "retention.swept"));
        assert!(h.t.app.verify_audit_log().await.unwrap().is_ok());
    });
}

#[tokio::test]
async fn openapi_health_and_metrics() {
    let Some(h) = H::new(Backend::Sqlite).await else {
        return;
    };
    let (s, doc) = h.call("GET", "/openapi.json", "", None).await;
    assert_eq!(s, StatusCode::OK);
    let mut documented = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            documented.push((method.clone(), path.clone()));
        }
    }
    let mut routes: Vec<(String, String)> = candor_http::ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    documented.sort();
    routes.sort();
    assert_eq!(documented, routes, "every route documented, nothing else");
    // every listed route exists in the router (answers something other than 404 not_found / 405)
    for (m, p) in candor_http::ROUTES {
        let path = p.replace("{id}", "x").replace("{purpose}", "analytics");
        let (s, v) = h.call(&m.to_uppercase(), &path, &h.admin, None).await;
        assert!(
            s != StatusCode::METHOD_NOT_ALLOWED && v["error"]["message"] != "no such endpoint",
            "{m} {p}: {s}"
        );
    }
    let (s, v) = h.call("GET", "/healthz", "", None).await;
    assert_eq!((s, v["status"].as_str()), (StatusCode::OK, Some("ok")));
    let (s, v) = h.call("GET", "/docs", "", None).await;
    assert_eq!(s, StatusCode::OK);
    assert!(v.as_str().unwrap().contains("/openapi.json"));
    h.track("m", "x1", json!({})).await;
    let (_, v) = h.call("GET", "/metrics", "", None).await;
    let text = v.as_str().unwrap();
    assert!(
        text.contains("candor_events_total{outcome=\"dropped\",reason=\"no_consent\"} 1"),
        "{text}"
    );
    assert!(text.contains("candor_http_request_duration_seconds_bucket{method=\"POST\",route=\"/v1/track\",status=\"200\",le=\"+Inf\"}"), "{text}");
    h.consent("m", "analytics", "granted").await;
    let (_, v) = h.call("GET", "/metrics", "", None).await;
    assert!(
        v.as_str()
            .unwrap()
            .contains("candor_consent_changes_total{purpose=\"analytics\",action=\"granted\"} 1")
    );
}

#[tokio::test]
async fn crypto_shredding_makes_sealed_data_unreadable_and_stops_collection() {
    each_backend!(|h| {
        for p in ["analytics", "marketing_email"] {
            h.consent("u8", p, "granted").await;
        }
        h.call("POST", "/v1/identify", &h.write, Some(json!({"userId": "u8", "traits": {"email": "shred@me.io"}, "context": {"ip": "192.0.2.8"}}))).await;
        assert_eq!(
            h.track("u8", "s1", json!({"context": {"ip": "192.0.2.8"}}))
                .await["status"],
            "accepted"
        );
        let (_, before) = h
            .call(
                "GET",
                "/v1/subjects/u8/data?purpose=marketing_email",
                &h.server,
                None,
            )
            .await;
        assert_eq!(before["profile"]["traits.email"], "shred@me.io", "{before}");
        assert!(
            before["events"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["fields"].get("contact").is_some())
        );

        let server_principal = h.t.app.authenticate(&h.server).await.unwrap();
        assert!(
            h.t.app
                .shred_subject(&server_principal, "u8")
                .await
                .is_err(),
            "admin only"
        );
        let admin = h.t.app.authenticate(&h.admin).await.unwrap();
        let subject = h.t.app.shred_subject(&admin, "u8").await.unwrap();
        assert!(
            h.t.app
                .store()
                .subject(h.tenant, subject)
                .await
                .unwrap()
                .unwrap()
                .wrapped_key
                .is_none()
        );

        // the sealed bytes may remain, but nothing can open them any more
        let (s, after) = h
            .call(
                "GET",
                "/v1/subjects/u8/data?purpose=marketing_email",
                &h.server,
                None,
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{after}");
        assert!(after["profile"].as_object().unwrap().is_empty(), "{after}");
        assert!(
            after["events"]
                .as_array()
                .unwrap()
                .iter()
                .all(|e| e["fields"].get("contact").is_none()),
            "{after}"
        );
        assert!(!after.to_string().contains("shred@me.io"));
        // nothing new is collected for the person
        let r = h.track("u8", "s2", json!({})).await;
        assert_eq!(
            (r["status"].as_str(), r["reason"].as_str()),
            (Some("dropped"), Some("subject_erased")),
            "{r}"
        );
        let entries =
            h.t.app
                .store()
                .audit_entries(&h.tenant.to_string(), 0, 1000)
                .await
                .unwrap();
        assert!(entries.iter().any(|e| e.action == "subject.key_destroyed"
            && e.target.as_deref() == Some(&subject.to_string())));
        // the key column holds nothing
        let raw = h.t.db.raw_bytes().await;
        assert!(!raw.windows(11).any(|w| w == b"shred@me.io"));
    });
}
