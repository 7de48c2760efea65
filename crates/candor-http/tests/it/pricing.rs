//! The price guard over HTTP, on both backends: refusals of protected attributes, flagged
//! proxies and vulnerability signals; caps and essential categories at their edges; the
//! disclosure exactly when personal data shaped the price; the prior-period lowest price
//! across gaps, cancellations and rounding; the unpersonalized price for a person who
//! objected to profiling; segment prices; batches; dispersion monitoring with alerts.

use axum::http::StatusCode;
use candor_policy::DEFAULT_POLICY;
use candor_store::Store as _;
use candor_testkit::{BACKENDS, Backend, TestApp};
use serde_json::{Value, json};

use super::H;

/// The default policy with personal-data pricing allowed (with consent).
fn personal_policy() -> String {
    DEFAULT_POLICY.replacen("personal_pricing = false", "personal_pricing = true", 1)
}

async fn with_policy(backend: Backend, policy: &str) -> Option<H> {
    let t = TestApp::with_policy(backend, policy).await?;
    Some(H::with(t, "shop").await)
}

impl H {
    async fn check(&self, body: Value) -> Value {
        let (s, v) = self
            .call("POST", "/v1/prices/check", &self.server, Some(body))
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        v
    }

    async fn check_err(&self, body: Value) -> (StatusCode, String) {
        let (s, v) = self
            .call("POST", "/v1/prices/check", &self.server, Some(body))
            .await;
        (s, v["error"]["code"].as_str().unwrap_or("").to_string())
    }

    async fn stored_checks(&self) -> Vec<Value> {
        let (s, v) = self
            .call("GET", "/v1/prices/checks?limit=1000", &self.admin, None)
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        v["checks"].as_array().unwrap().clone()
    }

    async fn prior(&self, product: &str, currency: &str) -> Value {
        let (s, v) = self
            .call(
                "GET",
                &format!("/v1/prices/history/{product}?currency={currency}&days=400"),
                &self.server,
                None,
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        v["lowestPrior"].clone()
    }

    async fn order(&self, user: &str, mid: &str, order: &str, lines: Value, currency: &str) {
        let (s, v) = self
            .call(
                "POST",
                "/v1/track",
                &self.server,
                Some(
                    json!({"userId": user, "messageId": mid, "event": "Order Completed",
                    "properties": {"order_id": order, "currency": currency, "products": lines}}),
                ),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["result"]["status"], "accepted", "{v}");
    }
}

fn codes(v: &Value) -> Vec<String> {
    v["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["code"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn protected_attributes_proxies_and_vulnerability_signals_are_refused() {
    for backend in BACKENDS {
        let Some(h) = with_policy(backend, &personal_policy()).await else {
            continue;
        };
        h.consent("ada", "profiling", "granted").await;
        let base = json!({"product": "sku-1", "currency": "EUR", "listPrice": "20.00", "proposedPrice": "18.50", "userId": "ada"});
        let with = |signals: Value| {
            let mut b = base.clone();
            b["signals"] = signals;
            b
        };
        let audit_before = h.audit_len().await;
        for (signals, code) in [
            (json!(["age"]), "protected_signal"),
            (json!(["demand", "gender_estimate"]), "protected_signal"),
            (
                json!([{"name": "tier", "source": "traits.birthday"}]),
                "protected_signal",
            ),
            (json!(["postcode"]), "proxy_signal"),
            (json!(["battery_level"]), "vulnerability_signal"),
        ] {
            let v = h.check(with(signals.clone())).await;
            assert_eq!(v["verdict"], "refuse", "{signals} {v}");
            assert_eq!(codes(&v)[0], code, "{v}");
            assert_eq!(v["price"], "20.00", "the list price is shown: {v}");
            assert_eq!(v["personalized"], false);
            assert!(v["disclosure"].is_null());
        }
        // Each refusal of a protected, proxy or vulnerability signal is in the audit log,
        // naming the signals, never the person's values.
        h.t.app.flush_decisions().await.unwrap();
        let entries =
            h.t.app
                .store()
                .audit_entries(&h.tenant.to_string(), 0, 100_000)
                .await
                .unwrap();
        let refused: Vec<_> = entries
            .iter()
            .filter(|e| e.action == "price.refused")
            .collect();
        assert_eq!(refused.len(), 5);
        assert!(refused[3].details.contains("postcode"));
        assert!(h.audit_len().await > audit_before);

        // A signal the store's sample shows to reveal gender is flagged by proxy detection and
        // refused from then on; one that does not stays personal data (allowed with consent).
        let mut csv = String::from("basket_mix,demand,gender\n");
        for i in 0..400 {
            let g = if i % 2 == 0 { "f" } else { "m" };
            let mix = if (i % 10 < 9) == (g == "f") {
                "home"
            } else {
                "tools"
            };
            csv.push_str(&format!("{mix},{},{g}\n", i % 7));
        }
        let req = axum::http::Request::builder()
            .method("POST")
            .uri("/v1/prices/proxies?signals=basket_mix,demand&protected=gender")
            .header("authorization", format!("Bearer {}", h.admin))
            .header("content-type", "text/csv")
            .body(axum::body::Body::from(csv))
            .unwrap();
        let (s, v) = h.raw(req).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["flagged_products"], json!(["basket_mix"]), "{v}");
        let v = h.check(with(json!(["basket_mix"]))).await;
        assert_eq!(
            (v["verdict"].as_str(), codes(&v)[0].as_str()),
            (Some("refuse"), "proxy_signal"),
            "{v}"
        );
        let v = h.check(with(json!(["loyalty_tier"]))).await;
        assert_eq!(v["verdict"], "allow", "{v}");
        assert_eq!(v["personalized"], true);
        let (s, v) = h.call("GET", "/v1/prices/proxies", &h.admin, None).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(v["proxies"].as_array().unwrap().len(), 2);
    }
}

#[tokio::test]
async fn caps_and_essential_categories_hold_at_their_edges() {
    for backend in BACKENDS {
        let Some(h) = H::new(backend).await else {
            continue;
        };
        // Default caps: +10 %, −50 %. JPY has no decimals, KWD three.
        for (cur, list, proposed, verdict, price, category) in [
            ("EUR", "10.00", "11.00", "allow", "11.00", None),
            ("EUR", "10.00", "11.01", "adjust", "11.00", None),
            ("EUR", "10.00", "5.00", "allow", "5.00", None),
            ("EUR", "10.00", "4.99", "adjust", "5.00", None),
            ("EUR", "9.99", "10.98", "allow", "10.98", None),
            ("EUR", "9.99", "10.99", "adjust", "10.98", None),
            ("JPY", "1999", "2198", "allow", "2198", None),
            ("JPY", "1999", "2199", "adjust", "2198", None),
            ("KWD", "1.005", "1.105", "allow", "1.105", None),
            ("KWD", "1.005", "1.106", "adjust", "1.105", None),
            ("EUR", "3.20", "3.20", "allow", "3.20", Some("Groceries")),
            ("EUR", "3.20", "3.21", "adjust", "3.20", Some("groceries")),
            ("EUR", "3.20", "2.00", "allow", "2.00", Some("baby")),
        ] {
            let mut body = json!({"product": "p", "currency": cur, "listPrice": list, "proposedPrice": proposed});
            if let Some(c) = category {
                body["category"] = json!(c);
            }
            let v = h.check(body).await;
            assert_eq!(
                (v["verdict"].as_str(), v["price"].as_str()),
                (Some(verdict), Some(price)),
                "{cur} {list} {proposed} {category:?}: {v}"
            );
            if verdict == "adjust" {
                let c = codes(&v);
                assert!(
                    c == ["above_cap"] || c == ["below_floor"] || c == ["essential_no_surge"],
                    "{c:?}"
                );
                if category.is_some() {
                    assert_eq!(c, ["essential_no_surge"]);
                }
            }
            assert!(v["disclosure"].is_null());
        }
        // Numbers are read through their decimal form: 11.0 is not 10.999….
        let v = h
            .check(
                json!({"product": "p", "currency": "EUR", "listPrice": 10, "proposedPrice": 11.0}),
            )
            .await;
        assert_eq!(v["verdict"], "allow", "{v}");
        // Every check was recorded with its explanation.
        let stored = h.stored_checks().await;
        assert_eq!(stored.len(), 14);
        assert!(stored.iter().all(|c| c["detail"]["reasons"].is_array()));
    }
}

#[tokio::test]
async fn bad_input_is_refused_with_a_code_and_changes_nothing() {
    for backend in BACKENDS {
        let Some(h) = H::new(backend).await else {
            continue;
        };
        let audit = h.audit_len().await;
        let ok = json!({"product": "p", "currency": "EUR", "listPrice": "10.00", "proposedPrice": "9.00"});
        let with = |k: &str, v: Value| {
            let mut b = ok.clone();
            b[k] = v;
            b
        };
        for (body, code) in [
            (json!([1, 2]), "not_an_object"),
            (with("product", json!("")), "product_invalid"),
            (with("currency", json!("EURO")), "currency_invalid"),
            (with("listPrice", json!("ten")), "price_invalid"),
            (with("listPrice", json!(-1)), "price_invalid"),
            (with("proposedPrice", json!("0")), "price_invalid"),
            (with("proposedPrice", json!("9.999")), "price_precision"),
            (with("proposedPrice", json!(9.999)), "price_precision"),
            (with("signals", json!("demand")), "signal_invalid"),
            (with("signals", json!([""])), "signal_invalid"),
            (with("segment", json!(["a"])), "segment_invalid"),
            (with("proposed_price", json!("9")), "invalid_request"),
            (with("referencePrice", json!("12")), "invalid_request"),
        ] {
            assert_eq!(
                h.check_err(body.clone()).await,
                (StatusCode::BAD_REQUEST, code.to_string()),
                "{body}"
            );
        }
        let (s, v) = h
            .call("POST", "/v1/prices/check", &h.write, Some(ok.clone()))
            .await;
        assert_eq!(
            s,
            StatusCode::FORBIDDEN,
            "a browser key may not check prices: {v}"
        );
        // One bad item refuses the whole batch.
        let (s, v) = h
            .call(
                "POST",
                "/v1/prices/check/batch",
                &h.server,
                Some(json!({"checks": [ok.clone(), with("currency", json!(1))]})),
            )
            .await;
        assert_eq!(
            (s, v["error"]["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some("currency_invalid"))
        );
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("check 1:"),
            "{v}"
        );
        let (s, _) = h
            .call(
                "POST",
                "/v1/prices/check/batch",
                &h.server,
                Some(json!({"checks": []})),
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert!(h.stored_checks().await.is_empty());
        assert_eq!(h.audit_len().await, audit);
    }
}

#[tokio::test]
async fn disclosure_appears_exactly_when_personal_data_shaped_the_price() {
    for backend in BACKENDS {
        let Some(h) = with_policy(backend, &personal_policy()).await else {
            continue;
        };
        h.consent("ada", "profiling", "granted").await;
        let check = |signals: Value, proposed: &str, user: Option<&str>| {
            let mut b = json!({"product": "lamp", "currency": "EUR", "listPrice": "40.00", "proposedPrice": proposed, "signals": signals});
            if let Some(u) = user {
                b["userId"] = json!(u);
            }
            b
        };
        let text = "THIS PRICE WAS SET BY AN ALGORITHM USING YOUR PERSONAL DATA";
        // Personal signal, consent: personalized, disclosed; also when moved to a cap.
        for (proposed, verdict) in [("36.00", "allow"), ("49.00", "adjust")] {
            let v = h
                .check(check(
                    json!(["demand", "loyalty_tier"]),
                    proposed,
                    Some("ada"),
                ))
                .await;
            assert_eq!(
                (v["verdict"].as_str(), v["personalized"].as_bool()),
                (Some(verdict), Some(true)),
                "{v}"
            );
            assert_eq!(v["disclosure"]["text"], text);
            assert!(v["decisionId"].is_string(), "a decision about ada: {v}");
        }
        // Market signals only: not personal, no disclosure, whoever it is for.
        let v = h
            .check(check(json!(["demand", "season"]), "44.00", Some("ada")))
            .await;
        assert_eq!(
            (v["personalized"].as_bool(), v["disclosure"].is_null()),
            (Some(false), true),
            "{v}"
        );
        assert!(v["decisionId"].is_null());
        // Personal signal without a named person, or for a person without consent: refused,
        // the general price, no disclosure.
        let v = h.check(check(json!(["loyalty_tier"]), "36.00", None)).await;
        assert_eq!(
            (v["verdict"].as_str(), codes(&v)[0].as_str()),
            (Some("refuse"), "subject_required")
        );
        assert!(v["disclosure"].is_null());
        let v = h
            .check(check(json!(["loyalty_tier"]), "36.00", Some("stranger")))
            .await;
        assert_eq!(
            (
                v["verdict"].as_str(),
                codes(&v)[0].as_str(),
                v["price"].as_str()
            ),
            (Some("refuse"), "consent_denied", Some("40.00")),
            "{v}"
        );
        assert!(v["disclosure"].is_null());
        // The decision about ada is explained to her in plain words.
        let (s, d) = h
            .call("GET", "/v1/subjects/ada/decisions", &h.server, None)
            .await;
        assert_eq!(s, StatusCode::OK, "{d}");
        let decisions = d["decisions"].as_array().unwrap();
        assert_eq!(decisions.len(), 2, "{d}");
        let id = decisions[0]["id"].as_str().unwrap();
        let (s, e) = h
            .call(
                "GET",
                &format!("/v1/subjects/ada/decisions/{id}"),
                &h.server,
                None,
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{e}");
        let why = e["why"].as_str().unwrap();
        assert!(
            why.contains("set by an algorithm using your personal data")
                && why.contains("loyalty_tier"),
            "{why}"
        );
        // With the default policy, the same personalized proposal is refused outright.
        let Some(d) = H::new(backend).await else {
            continue;
        };
        d.consent("ada", "profiling", "granted").await;
        let v = d
            .check(check(json!(["loyalty_tier"]), "36.00", Some("ada")))
            .await;
        assert_eq!(
            (v["verdict"].as_str(), codes(&v)[0].as_str()),
            (Some("refuse"), "personal_pricing_off")
        );
        assert!(v["disclosure"].is_null());
    }
}

#[tokio::test]
async fn a_person_who_objected_to_profiling_gets_the_unpersonalized_price() {
    for backend in BACKENDS {
        let Some(h) = with_policy(backend, &personal_policy()).await else {
            continue;
        };
        h.consent("bea", "profiling", "granted").await;
        h.consent("bea", "analytics", "granted").await;
        let body = |signals: Value| {
            json!({"product": "kettle", "currency": "GBP", "listPrice": "30.00",
            "proposedPrice": "27.00", "unpersonalizedPrice": "29.00", "userId": "bea", "signals": signals})
        };
        let v = h.check(body(json!(["loyalty_tier"]))).await;
        assert_eq!(
            (v["price"].as_str(), v["personalized"].as_bool()),
            (Some("27.00"), Some(true))
        );
        // Bea objects to profiling (a data-subject request, carried out at once).
        let (s, r) = h
            .call(
                "POST",
                "/v1/requests",
                &h.server,
                Some(json!({"userId": "bea", "kind": "objection_profiling"})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{r}");
        let id = r["request"]["id"]
            .as_str()
            .or(r["id"].as_str())
            .unwrap()
            .to_string();
        let token = r["verification_token"].as_str().unwrap().to_string();
        let (s, v) = h
            .call(
                "POST",
                &format!("/v1/requests/{id}/verify"),
                &h.admin,
                Some(json!({"token": token})),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let (s, v) = h
            .call(
                "POST",
                &format!("/v1/requests/{id}/process"),
                &h.admin,
                Some(json!({})),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        // Whatever the engine says it used, Bea gets the unpersonalized price: with personal
        // signals, and without any (the proposal still differs from the general price).
        for signals in [json!(["loyalty_tier"]), json!([]), json!(["demand"])] {
            let v = h.check(body(signals.clone())).await;
            assert_eq!(
                (
                    v["verdict"].as_str(),
                    v["price"].as_str(),
                    v["personalized"].as_bool()
                ),
                (Some("refuse"), Some("29.00"), Some(false)),
                "{signals}: {v}"
            );
            assert_eq!(codes(&v), ["consent_denied"]);
            assert!(
                v["reasons"][0]["message"]
                    .as_str()
                    .unwrap()
                    .contains("withdrawn"),
                "{v}"
            );
            assert!(v["disclosure"].is_null());
        }
        // Without an unpersonalized price, the list price.
        let mut b = body(json!(["loyalty_tier"]));
        b.as_object_mut().unwrap().remove("unpersonalizedPrice");
        assert_eq!(h.check(b).await["price"], "30.00");
        // Restriction of processing does the same for anyone.
        h.consent("cy", "profiling", "granted").await;
        let mut b = body(json!(["loyalty_tier"]));
        b["userId"] = json!("cy");
        assert_eq!(h.check(b.clone()).await["price"], "27.00");
        let (s, r) = h
            .call(
                "POST",
                "/v1/requests",
                &h.server,
                Some(json!({"userId": "cy", "kind": "restriction"})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{r}");
        let id = r["request"]["id"]
            .as_str()
            .or(r["id"].as_str())
            .unwrap()
            .to_string();
        let token = r["verification_token"].as_str().unwrap().to_string();
        h.call(
            "POST",
            &format!("/v1/requests/{id}/verify"),
            &h.admin,
            Some(json!({"token": token})),
        )
        .await;
        let (s, v) = h
            .call(
                "POST",
                &format!("/v1/requests/{id}/process"),
                &h.admin,
                Some(json!({})),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(h.check(b).await["price"], "29.00");
    }
}

#[tokio::test]
async fn the_prior_lowest_price_across_gaps_cancellations_and_rounding() {
    const DAY: i64 = 86_400_000;
    for backend in BACKENDS {
        let Some(h) = H::new(backend).await else {
            continue;
        };
        let clock = h.t.clock.clone();
        let start = h.t.app.clock().now();
        let at = |d: i64| candor_types::Timestamp(start.0 + d * DAY).to_rfc3339();
        // Day 0: a list price of 10.00 (imported). Nothing else until day 40: a gap.
        let (s, v) = h
            .call(
                "POST",
                "/v1/prices/history",
                &h.server,
                Some(json!({"prices": [
                {"product": "mug", "currency": "EUR", "price": "10.00", "at": at(0)}]})),
            )
            .await;
        assert_eq!(
            (s, v["inserted"].as_u64()),
            (StatusCode::OK, Some(1)),
            "{v}"
        );
        clock.advance_days(40);
        // The day-0 price is still in effect in [day 10, day 40).
        let p = h.prior("mug", "EUR").await;
        assert_eq!(p["price"], "10.00", "{p}");
        let discount = |price: &str| {
            json!({"product": "mug", "currency": "EUR", "listPrice": "10.00",
            "proposedPrice": price, "presentedAsDiscount": true, "referencePrice": "12.00"})
        };
        let v = h.check(discount("8.00")).await;
        let d = &v["discount"];
        assert_eq!(
            (
                d["allowed"].as_bool(),
                d["referencePrice"].as_str(),
                d["percentOff"].as_i64()
            ),
            (Some(true), Some("10.00"), Some(20)),
            "{v}"
        );
        assert_eq!(
            d["reasons"][0]["code"], "reference_not_prior_lowest",
            "the claimed 12.00 was never the price: {v}"
        );

        // Day 40: orders at 9.00 (mug) and 9.995 (rounds half up to 10.00); day 41 an order at
        // 7.50 that is then cancelled.
        h.consent("u1", "analytics", "granted").await;
        h.order(
            "u1",
            "o1",
            "A-1",
            json!([{"product_id": "mug", "price": 9.0, "quantity": 1}]),
            "EUR",
        )
        .await;
        h.order(
            "u1",
            "o2",
            "A-2",
            json!([{"product_id": "cup", "price": "9.995", "quantity": 2}]),
            "EUR",
        )
        .await;
        clock.advance_days(1);
        h.order(
            "u1",
            "o3",
            "A-3",
            json!([{"product_id": "mug", "price": 7.5, "quantity": 1}]),
            "EUR",
        )
        .await;
        // Replaying an order changes nothing.
        let (s, v) = h
            .call("POST", "/v1/track", &h.server, Some(json!({"userId": "u1", "messageId": "o3", "event": "Order Completed",
                "properties": {"order_id": "A-3", "currency": "EUR", "products": [{"product_id": "mug", "price": 7.5}]}})))
            .await;
        assert_eq!(
            (s, v["result"]["status"].as_str()),
            (StatusCode::OK, Some("duplicate"))
        );
        clock.advance_days(1);
        assert_eq!(h.prior("mug", "EUR").await["price"], "7.50");
        let (s, v) = h
            .call("POST", "/v1/track", &h.server, Some(json!({"userId": "u1", "messageId": "c3", "event": "Order Cancelled", "properties": {"order_id": "A-3"}})))
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        // The cancelled 7.50 no longer counts; the lowest is the 8.00 the day-40 check showed
        // everyone (a shown price is a price applied).
        assert_eq!(
            h.prior("mug", "EUR").await["price"],
            "8.00",
            "a cancelled order is no price"
        );
        assert_eq!(
            h.prior("cup", "EUR").await["price"],
            "10.00",
            "9.995 rounds half up"
        );
        // A price shown by a check enters the history too (once per change).
        let v = h.check(json!({"product": "mug", "currency": "EUR", "listPrice": "10.00", "proposedPrice": "8.80"})).await;
        assert_eq!(v["price"], "8.80");
        clock.advance_days(1);
        let hist = h
            .call(
                "GET",
                "/v1/prices/history/mug?currency=EUR&days=400",
                &h.server,
                None,
            )
            .await
            .1;
        let kinds: Vec<(&str, &str)> = hist["history"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| (r["kind"].as_str().unwrap(), r["price"].as_str().unwrap()))
            .collect();
        assert_eq!(
            kinds,
            [
                ("import", "10.00"),
                ("check", "8.00"),
                ("order", "9.00"),
                ("order", "7.50"),
                ("check", "8.80")
            ]
        );
        assert!(hist["history"][3]["cancelledAt"].is_number());
        assert_eq!(h.prior("mug", "EUR").await["price"], "8.00");
        // 35 days on, the 30-day window starts after every observation but the last: the
        // price in effect then (8.80) still counts, the older ones do not.
        clock.advance_days(35);
        let p = h.prior("mug", "EUR").await;
        assert_eq!(p["price"], "8.80", "{p}");
        let v = h.check(discount("8.80")).await;
        assert_eq!(
            v["discount"]["allowed"], false,
            "not below the prior lowest: {v}"
        );
        assert!(codes(&v["discount"]).contains(&"not_a_reduction".to_string()));
        // Another currency has no history: no reduction may be announced.
        let v = h.check(json!({"product": "mug", "currency": "USD", "listPrice": "10.00", "proposedPrice": "8.00", "presentedAsDiscount": true})).await;
        assert_eq!(v["discount"]["allowed"], false);
        assert_eq!(v["discount"]["reasons"][0]["code"], "no_prior_price");
        // JPY keeps whole yen.
        h.call(
            "POST",
            "/v1/prices/history",
            &h.server,
            Some(json!({"prices": [
            {"product": "tea", "currency": "JPY", "price": 1500, "at": at(70)},
            {"product": "tea", "currency": "JPY", "price": "1499", "at": at(71)}]})),
        )
        .await;
        assert_eq!(h.prior("tea", "JPY").await["price"], "1499");
        let (s, v) = h
            .call(
                "POST",
                "/v1/prices/history",
                &h.server,
                Some(json!({"prices": [
            {"product": "tea", "currency": "JPY", "price": "1499.5", "at": at(72)}]})),
            )
            .await;
        assert_eq!(
            (s, v["error"]["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some("price_precision"))
        );
    }
}

#[tokio::test]
async fn a_segment_sees_one_price_per_window_and_batches_are_recorded() {
    for backend in BACKENDS {
        let Some(h) = H::new(backend).await else {
            continue;
        };
        let seg = |proposed: &str, segment: &str| {
            json!({"product": "p9", "currency": "EUR", "listPrice": "10.00",
            "proposedPrice": proposed, "segment": segment, "signals": ["demand"]})
        };
        let a = h.check(seg("10.40", "uk-returning")).await;
        assert_eq!(
            (a["verdict"].as_str(), a["price"].as_str()),
            (Some("allow"), Some("10.40"))
        );
        let b = h.check(seg("10.90", "uk-returning")).await;
        assert_eq!(
            (b["verdict"].as_str(), b["price"].as_str()),
            (Some("adjust"), Some("10.40")),
            "{b}"
        );
        assert_eq!(codes(&b), ["segment_price"]);
        let c = h.check(seg("10.90", "uk-new")).await;
        assert_eq!(c["price"], "10.90", "another segment has its own price");
        // The next window starts afresh.
        h.t.clock
            .set(candor_types::Timestamp(h.t.app.clock().now().0 + 3_600_000));
        assert_eq!(
            h.check(seg("10.90", "uk-returning")).await["price"],
            "10.90"
        );

        let checks: Vec<Value> = (0..500)
            .map(|i| json!({"product": format!("sku-{i}"), "currency": "EUR", "listPrice": "10.00",
                "proposedPrice": if i % 5 == 0 { "12.00" } else { "9.50" }, "signals": ["competitor_price"]}))
            .collect();
        let (s, v) = h
            .call(
                "POST",
                "/v1/prices/check/batch",
                &h.server,
                Some(json!({"checks": checks})),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(
            (
                v["allowed"].as_u64(),
                v["adjusted"].as_u64(),
                v["refused"].as_u64()
            ),
            (Some(400), Some(100), Some(0))
        );
        assert_eq!(v["results"][0]["price"], "11.00");
        // Recorded before the answer, with one audit entry for the batch.
        let stored = h.t.app.store();
        use candor_store::PricingStore as _;
        let rows = stored.price_checks(h.tenant, None, 10_000).await.unwrap();
        assert!(rows.len() >= 500);
        let entries = stored
            .audit_entries(&h.tenant.to_string(), 0, 100_000)
            .await
            .unwrap();
        assert_eq!(
            entries
                .iter()
                .filter(|e| e.action == "prices.batch_checked")
                .count(),
            1
        );
    }
}

#[tokio::test]
async fn dispersion_monitoring_flags_groups_that_paid_more_and_raises_alerts() {
    for backend in BACKENDS {
        let Some(h) = H::new(backend).await else {
            continue;
        };
        // 40 buyers in DE pay 10.00 for a lamp; 40 in FR pay 13.00; women and men alike.
        for i in 0..80 {
            let user = format!("b{i}");
            h.consent(&user, "analytics", "granted").await;
            let fr = i % 2 == 1;
            let (s, v) = h
                .call("POST", "/v1/identify", &h.server, Some(json!({"userId": user, "messageId": format!("id{i}"), "traits": {"gender": if i % 4 < 2 { "f" } else { "m" }}})))
                .await;
            assert_eq!(s, StatusCode::OK, "{v}");
            let (s, v) = h
                .call("POST", "/v1/track", &h.server, Some(json!({"userId": user, "messageId": format!("o{i}"), "event": "Order Completed",
                    "properties": {"order_id": format!("O{i}"), "currency": "EUR", "products": [{"product_id": "lamp", "price": if fr { 13.0 } else { 10.0 } + (i % 3) as f64 * 0.1, "quantity": 1}]},
                    "context": {"location": {"country": if fr { "FR" } else { "DE" }}}})))
                .await;
            assert_eq!(
                (s, v["result"]["status"].as_str()),
                (StatusCode::OK, Some("accepted")),
                "{v}"
            );
        }
        h.t.clock.advance_days(1);
        let from = candor_types::Timestamp(h.t.app.clock().now().0 - 2 * 86_400_000).to_rfc3339();
        let (s, v) = h
            .call(
                "POST",
                "/v1/prices/dispersion",
                &h.admin,
                Some(json!({"from": from, "period": "all", "resamples": 300})),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["flagged_products"], json!(["lamp (EUR)"]), "{v}");
        let doc = &v["document"];
        let by = |attr: &str| {
            doc["attributes"]
                .as_array()
                .unwrap()
                .iter()
                .find(|a| a["attribute"] == attr)
                .cloned()
                .unwrap()
        };
        let country = by("country");
        let cell = &country["cells"][0];
        let fr = cell["groups"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["group"] == "FR")
            .unwrap();
        let de = cell["groups"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["group"] == "DE")
            .unwrap();
        let expected = fr["mean_price"].as_f64().unwrap() / de["mean_price"].as_f64().unwrap();
        let r = fr["ratio"]
            .as_f64()
            .or(de["ratio"].as_f64().map(|x| 1.0 / x))
            .unwrap();
        assert!(
            (r - expected).abs() < 1e-9 || (r - 1.0 / expected).abs() < 1e-9,
            "{cell}"
        );
        assert!(fr["flagged"].as_bool().unwrap() || de["flagged"].as_bool().unwrap());
        // Gender, read through fairness_audit, shows no gap.
        let gender = by("gender");
        assert!(
            gender["flagged_products"].as_array().unwrap().is_empty(),
            "{gender}"
        );
        assert!(v["alerts"].as_u64().unwrap() >= 1);
        let (_, alerts) = h.call("GET", "/v1/prices/alerts", &h.admin, None).await;
        assert_eq!(alerts["alerts"][0]["product"], "lamp (EUR)");
        assert_eq!(alerts["alerts"][0]["attribute"], "country");
        // The report page, with its chart; reading traits was audited.
        let id = v["id"].as_str().unwrap();
        let (s, page) = h
            .call(
                "GET",
                &format!("/v1/prices/audits/{id}/report"),
                &h.admin,
                None,
            )
            .await;
        assert_eq!(s, StatusCode::OK);
        let page = page.as_str().unwrap();
        assert!(
            page.contains("<svg") && page.contains("lamp (EUR)"),
            "{page}"
        );
        let entries =
            h.t.app
                .store()
                .audit_entries(&h.tenant.to_string(), 0, 100_000)
                .await
                .unwrap();
        assert!(
            entries
                .iter()
                .any(|e| e.action == "pii.read" && e.details.contains("price dispersion"))
        );
        let (s, _) = h
            .call(
                "POST",
                "/v1/prices/dispersion",
                &h.server,
                Some(json!({"from": from})),
            )
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN, "admins only");
    }
}
