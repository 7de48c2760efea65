//! Price history, checks, pins, proxies and audits on both backends.

use candor_store::{
    CheckLog, CheckRow, CheckWrite, IngestWrite, PinKey, PriceAlertRow, PriceAuditRow, PriceCancel,
    PriceRow, PricingStore, ProxyRow, Store,
};
use candor_testkit::{BACKENDS, TestDb};
use candor_types::{TenantId, Timestamp};
use serde_json::json;

use super::{audit, subject, tenant};

const DAY: i64 = Timestamp::DAY_MS;

fn line(id: &str, product: &str, price: i64, day: i64, order: Option<&[u8]>) -> PriceRow {
    PriceRow {
        id: id.into(),
        kind: if order.is_some() { "order" } else { "import" }.into(),
        product: product.into(),
        currency: "EUR".into(),
        price,
        at: Timestamp(day * DAY),
        quantity: Some(1.0),
        country: Some("DE".into()),
        segment: None,
        order_ref: order.map(<[u8]>::to_vec),
        cancelled_at: None,
    }
}

fn key(p: &str) -> (String, String) {
    (p.to_string(), "EUR".to_string())
}

async fn prior(
    db: &TestDb,
    t: TenantId,
    product: &str,
    from: i64,
    to: i64,
) -> (Option<i64>, Option<i64>) {
    let got = db
        .store
        .prior_prices(
            t,
            &[key(product)],
            Timestamp(from * DAY),
            Timestamp(to * DAY),
        )
        .await
        .unwrap();
    let p = got[&key(product)];
    (
        p.lowest_in_window.map(|x| x.price),
        p.before_window.map(|x| x.price),
    )
}

#[tokio::test]
async fn history_windows_cancellations_and_replays() {
    each_backend!(|db| {
        let (t, _) = tenant(&db, "shop").await;
        let (other, _) = tenant(&db, "other").await;
        let rows = vec![
            line("i1", "sku", 1000, 10, None),
            line("o:a:0", "sku", 700, 45, Some(b"order-a")),
            line("i2", "sku", 900, 50, None),
            line("o:b:0", "sku", 800, 55, Some(b"order-b")),
        ];
        let n = db
            .store
            .insert_prices(t, &rows, &[], vec![audit(Some(t), "prices.imported")])
            .await
            .unwrap();
        assert_eq!(n, 4);
        // A replay inserts nothing.
        assert_eq!(
            db.store.insert_prices(t, &rows, &[], vec![]).await.unwrap(),
            0
        );
        // Window [40, 70): lowest 700 (order a), and 1000 was in effect when it opened.
        assert_eq!(prior(&db, t, "sku", 40, 70).await, (Some(700), Some(1000)));
        // A gap: nothing observed in [60, 90), the price of day 55 is still in effect.
        assert_eq!(prior(&db, t, "sku", 60, 90).await, (None, Some(800)));
        // Nothing before day 10.
        assert_eq!(prior(&db, t, "sku", 0, 5).await, (None, None));
        // Order a is cancelled: its 700 no longer counts.
        db.store
            .insert_prices(
                t,
                &[],
                &[PriceCancel {
                    order_ref: b"order-a".to_vec(),
                    at: Timestamp(46 * DAY),
                }],
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(prior(&db, t, "sku", 40, 70).await, (Some(800), Some(1000)));
        // A cancellation that arrives before its order still counts.
        db.store
            .insert_prices(
                t,
                &[],
                &[PriceCancel {
                    order_ref: b"order-c".to_vec(),
                    at: Timestamp(61 * DAY),
                }],
                vec![],
            )
            .await
            .unwrap();
        db.store
            .insert_prices(
                t,
                &[line("o:c:0", "sku", 500, 60, Some(b"order-c"))],
                &[],
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(prior(&db, t, "sku", 40, 70).await, (Some(800), Some(1000)));
        let hist = db
            .store
            .price_history(
                t,
                "sku",
                Some("EUR"),
                Timestamp(0),
                Timestamp(100 * DAY),
                100,
            )
            .await
            .unwrap();
        assert_eq!(hist.len(), 5);
        let cancelled: Vec<&str> = hist
            .iter()
            .filter(|r| r.cancelled_at.is_some())
            .map(|r| r.id.as_str())
            .collect();
        assert_eq!(cancelled, ["o:a:0", "o:c:0"]);
        // Other tenants and currencies see none of it.
        assert_eq!(prior(&db, other, "sku", 0, 100).await, (None, None));
        let usd = db
            .store
            .prior_prices(
                t,
                &[("sku".into(), "USD".into())],
                Timestamp(0),
                Timestamp(100 * DAY),
            )
            .await
            .unwrap();
        assert_eq!(
            usd[&("sku".to_string(), "USD".to_string())],
            Default::default()
        );
        // Retention keeps the last price before the cut: it is still in effect.
        let swept = db
            .store
            .sweep_prices(t, Timestamp(52 * DAY), Timestamp(0))
            .await
            .unwrap();
        assert_eq!(
            swept.history, 2,
            "i1 and the cancelled order a go, i2 stays"
        );
        assert_eq!(prior(&db, t, "sku", 52, 54).await, (None, Some(900)));
    });
}

#[tokio::test]
async fn ingest_writes_order_lines_in_its_transaction() {
    each_backend!(|db| {
        let (t, tk) = tenant(&db, "shop").await;
        let s = subject(&db, t, &tk, "u1").await;
        for _ in 0..2 {
            db.store
                .ingest(t, vec![s], vec!["m1".into()], |_snap| {
                    Ok::<_, ()>((
                        IngestWrite {
                            prices: vec![line("o:x:0", "sku", 450, 3, Some(b"order-x"))],
                            price_cancels: vec![PriceCancel {
                                order_ref: b"order-y".to_vec(),
                                at: Timestamp(4 * DAY),
                            }],
                            ..Default::default()
                        },
                        (),
                    ))
                })
                .await
                .unwrap()
                .unwrap();
        }
        let hist = db
            .store
            .price_history(t, "sku", None, Timestamp(0), Timestamp(10 * DAY), 10)
            .await
            .unwrap();
        assert_eq!(hist.len(), 1, "replayed once");
        assert_eq!(hist[0].order_ref.as_deref(), Some(&b"order-x"[..]));
        assert_eq!(prior(&db, t, "sku", 0, 10).await, (Some(450), None));
    });
}

#[tokio::test]
async fn checks_pins_proxies_audits_and_alerts() {
    each_backend!(|db| {
        let (t, _) = tenant(&db, "shop").await;
        let (other, _) = tenant(&db, "other").await;
        let check = |id: &str, at: i64| CheckRow {
            id: id.into(),
            product: "sku".into(),
            currency: "EUR".into(),
            list_price: 1000,
            proposed: 1200,
            price: 1100,
            verdict: "adjust".into(),
            segment: Some("returning".into()),
            detail: json!({"reasons": [{"code": "above_cap"}]}).to_string(),
            created_at: Timestamp(at),
        };
        let stored = db
            .store
            .insert_checks(
                t,
                CheckWrite {
                    log: Some(CheckLog {
                        id: "log1".into(),
                        kind: "checks".into(),
                        created_at: Timestamp(2),
                        checks: vec![check("c1", 1), check("c2", 2)],
                    }),
                    history: vec![line("c1", "sku", 1100, 0, None)],
                    pins: vec![],
                    audit: vec![audit(Some(t), "pricing.checked")],
                },
            )
            .await
            .unwrap();
        assert!(stored.is_empty());
        let other_product = CheckRow {
            product: "other".into(),
            ..check("c3", 3)
        };
        db.store
            .insert_checks(
                t,
                CheckWrite {
                    log: Some(CheckLog {
                        id: "batch1".into(),
                        kind: "batch".into(),
                        created_at: Timestamp(3),
                        checks: vec![other_product],
                    }),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let checks = db.store.price_checks(t, Some("sku"), 10).await.unwrap();
        assert_eq!(
            checks.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(),
            ["c2", "c1"]
        );
        let detail: serde_json::Value = serde_json::from_str(&checks[0].detail).unwrap();
        assert_eq!(detail["reasons"][0]["code"], "above_cap");
        assert_eq!(checks[0].verdict, "adjust");
        assert_eq!(checks[0].created_at, Timestamp(2));
        assert_eq!(db.store.price_checks(t, None, 10).await.unwrap().len(), 3);
        assert_eq!(db.store.price_checks(t, None, 2).await.unwrap().len(), 2);
        assert_eq!(
            db.store
                .price_history(t, "sku", None, Timestamp(0), Timestamp(10), 10)
                .await
                .unwrap()
                .len(),
            1
        );
        assert!(
            db.store
                .price_checks(other, None, 10)
                .await
                .unwrap()
                .is_empty()
        );

        // The first pin of a window wins, also when two race.
        let pin = PinKey {
            product: "sku".into(),
            currency: "EUR".into(),
            segment: "returning".into(),
            list_price: 1000,
            window_start: Timestamp(3_600_000),
        };
        assert_eq!(db.store.pin(t, &pin).await.unwrap(), None);
        let (a, b) = tokio::join!(
            db.store.claim_pin(t, &pin, 1050, Timestamp(1)),
            db.store.claim_pin(t, &pin, 1070, Timestamp(1))
        );
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_eq!(a, b);
        assert!(a == 1050 || a == 1070);
        assert_eq!(
            db.store
                .claim_pin(t, &pin, 990, Timestamp(2))
                .await
                .unwrap(),
            a
        );
        assert_eq!(db.store.pin(t, &pin).await.unwrap(), Some(a));
        assert_eq!(db.store.pin(other, &pin).await.unwrap(), None);
        // A pin written with checks comes back as stored when another came first.
        let stored = db
            .store
            .insert_checks(
                t,
                CheckWrite {
                    pins: vec![(pin.clone(), 1)],
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(stored, vec![(pin.clone(), a)]);

        let audit_row = |id: &str, kind: &str| PriceAuditRow {
            id: id.into(),
            kind: kind.into(),
            attribute: "gender".into(),
            period_start: None,
            period_end: None,
            flagged_products: 1,
            report: json!({"flagged_products": ["sku"]}),
            actor: "test".into(),
            created_at: Timestamp::now(),
        };
        let proxy = |signal: &str, v: f64, flagged: bool| ProxyRow {
            signal: signal.into(),
            attribute: "gender".into(),
            cramers_v: v,
            mutual_information: 0.1,
            auc: 0.6,
            flagged,
            audit_id: "p1".into(),
            audited_at: Timestamp(5),
        };
        db.store
            .record_proxies(
                t,
                &[proxy("basket_mix", 0.5, true), proxy("demand", 0.01, false)],
                &audit_row("p1", "proxies"),
                audit(Some(t), "pricing.proxies"),
            )
            .await
            .unwrap();
        // A later audit replaces the same signal's result.
        db.store
            .record_proxies(
                t,
                &[proxy("basket_mix", 0.1, false)],
                &audit_row("p2", "proxies"),
                audit(Some(t), "pricing.proxies"),
            )
            .await
            .unwrap();
        let proxies = db.store.price_proxies(t).await.unwrap();
        assert_eq!(proxies.len(), 2);
        assert!(proxies.iter().all(|p| !p.flagged));
        assert!(db.store.price_proxies(other).await.unwrap().is_empty());

        let alert = PriceAlertRow {
            id: "a1".into(),
            audit_id: "m1".into(),
            attribute: "country".into(),
            product: "sku".into(),
            period: "2026-11".into(),
            group: "FR".into(),
            ratio: 1.4,
            max_ratio: 1.25,
            created_at: Timestamp::now(),
        };
        db.store
            .insert_price_audit(
                t,
                &audit_row("m1", "monitoring"),
                std::slice::from_ref(&alert),
                audit(Some(t), "pricing.audited"),
            )
            .await
            .unwrap();
        let audits = db.store.price_audits(t, 10).await.unwrap();
        assert_eq!(audits.len(), 3);
        assert!(
            audits.iter().all(|a| a.report.is_null()),
            "listings leave reports out"
        );
        let full = db.store.price_audit(t, "m1").await.unwrap().unwrap();
        assert_eq!(full.report["flagged_products"][0], "sku");
        assert!(db.store.price_audit(other, "m1").await.unwrap().is_none());
        assert_eq!(db.store.price_alerts(t, 10).await.unwrap(), vec![alert]);
        assert!(db.store.price_alerts(other, 10).await.unwrap().is_empty());
        // Every write above was audited in the tenant's chain.
        let chain = db
            .store
            .audit_entries(&t.to_string(), 0, 100)
            .await
            .unwrap();
        assert_eq!(
            chain
                .iter()
                .filter(|e| e.action.starts_with("pricing."))
                .count(),
            4
        );
    });
}
