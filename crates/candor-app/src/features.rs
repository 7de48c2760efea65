//! Lead-scoring features computed from the events the `profiling` purpose may read.
//!
//! Every feature has a name (a CSV column name), a plain-language template and a unit, used for
//! reasons ("6 product views in the last 7 days"). Features are computed "as of" a time: only
//! events that occurred at or before it count, so a training set can be built as of a past date
//! with the outcome taken from what happened after it.

use std::collections::{BTreeSet, HashMap};

use candor_ml::table::FeatureSpec;
use candor_store::EventView;
use candor_types::Timestamp;
use serde_json::Value;

const DAY_MS: i64 = 86_400_000;
/// A gap of more than 30 minutes between events starts a new session.
const SESSION_GAP_MS: i64 = 30 * 60 * 1000;

/// (name, template, unit). `{value}` in the template is the row's value.
pub const EVENT_FEATURES: &[(&str, &str, &str)] = &[
    ("days_since_last_event", "last activity {value} ago", "days"),
    ("days_since_last_order", "last order {value} ago", "days"),
    ("orders_total", "{value} orders in total", ""),
    ("revenue_total", "{value} spent in total", ""),
    ("average_order_value", "average order value of {value}", ""),
    (
        "product_views_7d",
        "{value} product views in the last 7 days",
        "",
    ),
    (
        "product_views_30d",
        "{value} product views in the last 30 days",
        "",
    ),
    (
        "product_views_90d",
        "{value} product views in the last 90 days",
        "",
    ),
    (
        "cart_adds_7d",
        "{value} products added to the cart in the last 7 days",
        "",
    ),
    (
        "cart_adds_30d",
        "{value} products added to the cart in the last 30 days",
        "",
    ),
    (
        "cart_adds_90d",
        "{value} products added to the cart in the last 90 days",
        "",
    ),
    (
        "checkouts_30d",
        "{value} checkouts started in the last 30 days",
        "",
    ),
    (
        "checkouts_90d",
        "{value} checkouts started in the last 90 days",
        "",
    ),
    ("orders_30d", "{value} orders in the last 30 days", ""),
    ("orders_90d", "{value} orders in the last 90 days", ""),
    (
        "page_views_7d",
        "{value} pages viewed in the last 7 days",
        "",
    ),
    (
        "page_views_30d",
        "{value} pages viewed in the last 30 days",
        "",
    ),
    ("sessions_30d", "{value} visits in the last 30 days", ""),
    ("sessions_90d", "{value} visits in the last 90 days", ""),
    (
        "abandoned_carts_30d",
        "{value} carts left without an order in the last 30 days",
        "",
    ),
    (
        "emails_opened_30d",
        "{value} emails opened in the last 30 days",
        "",
    ),
    (
        "email_clicks_30d",
        "{value} email links clicked in the last 30 days",
        "",
    ),
    (
        "categories_viewed_90d",
        "{value} product categories browsed in the last 90 days",
        "",
    ),
    (
        "top_category_share_90d",
        "{value} of product views in one category in the last 90 days",
        "%",
    ),
];

/// The catalogue entry for a column name, as a feature spec with its description.
pub fn describe(name: &str) -> Option<FeatureSpec> {
    EVENT_FEATURES
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(n, t, u)| FeatureSpec {
            name: n.to_string(),
            column: n.to_string(),
            levels: None,
            categorical: false,
            description: t.to_string(),
            unit: (!u.is_empty()).then(|| u.to_string()),
        })
}

/// Applies catalogue descriptions to a schema's matching numeric features.
pub fn apply_descriptions(schema: &mut candor_ml::table::Schema) {
    for f in &mut schema.features {
        if f.levels.is_none()
            && let Some(d) = describe(&f.column)
        {
            f.description = d.description;
            f.unit = d.unit;
        }
    }
}

fn property<'a>(e: &'a EventView, key: &str) -> Option<&'a Value> {
    e.plain
        .values()
        .find_map(|v| v.get("properties").and_then(|p| p.get(key)))
}

fn number(v: Option<&Value>) -> Option<f64> {
    match v? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// Computes every catalogue feature from `events` as of `as_of`, by name.
pub fn event_features(events: &[EventView], as_of: Timestamp) -> HashMap<&'static str, f64> {
    let mut evs: Vec<&EventView> = events.iter().filter(|e| e.occurred_at <= as_of).collect();
    evs.sort_by_key(|e| e.occurred_at);
    let age_days = |e: &EventView| (as_of.0 - e.occurred_at.0) as f64 / DAY_MS as f64;
    let within = |e: &EventView, days: i64| as_of.0 - e.occurred_at.0 <= days * DAY_MS;
    let is = |e: &EventView, name: &str| e.name.as_deref() == Some(name);
    let count = |name: &str, days: i64| {
        evs.iter()
            .filter(|e| is(e, name) && within(e, days))
            .count() as f64
    };
    let mut f: HashMap<&'static str, f64> = HashMap::new();
    f.insert(
        "days_since_last_event",
        evs.last().map_or(f64::NAN, |e| age_days(e).floor()),
    );
    let orders: Vec<&&EventView> = evs.iter().filter(|e| is(e, "Order Completed")).collect();
    f.insert(
        "days_since_last_order",
        orders.last().map_or(f64::NAN, |e| age_days(e).floor()),
    );
    f.insert("orders_total", orders.len() as f64);
    let revenue: f64 = orders
        .iter()
        .filter_map(|e| number(property(e, "revenue")).or_else(|| number(property(e, "total"))))
        .sum();
    f.insert("revenue_total", (revenue * 100.0).round() / 100.0);
    f.insert(
        "average_order_value",
        if orders.is_empty() {
            f64::NAN
        } else {
            (revenue / orders.len() as f64 * 100.0).round() / 100.0
        },
    );
    for (name, event, days) in [
        ("product_views_7d", "Product Viewed", 7),
        ("product_views_30d", "Product Viewed", 30),
        ("product_views_90d", "Product Viewed", 90),
        ("cart_adds_7d", "Product Added", 7),
        ("cart_adds_30d", "Product Added", 30),
        ("cart_adds_90d", "Product Added", 90),
        ("checkouts_30d", "Checkout Started", 30),
        ("checkouts_90d", "Checkout Started", 90),
        ("orders_30d", "Order Completed", 30),
        ("orders_90d", "Order Completed", 90),
        ("emails_opened_30d", "Email Opened", 30),
        ("email_clicks_30d", "Email Link Clicked", 30),
    ] {
        f.insert(name, count(event, days));
    }
    let pages = |days| {
        evs.iter()
            .filter(|e| e.kind == "page" && within(e, days))
            .count() as f64
    };
    f.insert("page_views_7d", pages(7));
    f.insert("page_views_30d", pages(30));
    let sessions = |days| {
        let mut n = 0;
        let mut last: Option<i64> = None;
        for e in evs.iter().filter(|e| within(e, days)) {
            if last.is_none_or(|l| e.occurred_at.0 - l > SESSION_GAP_MS) {
                n += 1;
            }
            last = Some(e.occurred_at.0);
        }
        n as f64
    };
    f.insert("sessions_30d", sessions(30));
    f.insert("sessions_90d", sessions(90));
    // A cart is abandoned when products were added and no order followed within a day.
    let abandoned = evs
        .iter()
        .filter(|e| is(e, "Product Added") && within(e, 30))
        .filter(|a| {
            !orders.iter().any(|o| {
                o.occurred_at >= a.occurred_at && o.occurred_at.0 - a.occurred_at.0 <= DAY_MS
            })
        })
        .map(|a| a.occurred_at.0 / DAY_MS)
        .collect::<BTreeSet<_>>()
        .len();
    f.insert("abandoned_carts_30d", abandoned as f64);
    let mut by_cat: HashMap<String, usize> = HashMap::new();
    let mut views = 0usize;
    for e in evs
        .iter()
        .filter(|e| is(e, "Product Viewed") && within(e, 90))
    {
        views += 1;
        if let Some(Value::String(c)) = property(e, "category") {
            *by_cat.entry(c.clone()).or_default() += 1;
        }
    }
    f.insert("categories_viewed_90d", by_cat.len() as f64);
    f.insert(
        "top_category_share_90d",
        if views == 0 {
            f64::NAN
        } else {
            (by_cat.values().max().copied().unwrap_or(0) as f64 * 100.0 / views as f64).round()
        },
    );
    f
}

#[cfg(test)]
mod tests {
    use super::*;
    use candor_types::{Category, EventId};
    use serde_json::json;
    use std::collections::BTreeMap;

    const NOW: i64 = 1_800_000_000_000;

    fn ev(kind: &str, name: Option<&str>, days_ago: f64, props: Value) -> EventView {
        let cat: Category = "behavioural".parse().expect("category");
        let mut plain = BTreeMap::new();
        plain.insert(cat.clone(), json!({ "properties": props }));
        EventView {
            id: EventId::new(),
            message_id: "m".into(),
            kind: kind.into(),
            name: name.map(String::from),
            category: cat,
            plain,
            sealed: BTreeMap::new(),
            occurred_at: Timestamp(NOW - (days_ago * DAY_MS as f64) as i64),
            received_at: Timestamp(NOW),
        }
    }

    #[test]
    fn recency_frequency_monetary_windows_sessions_and_carts() {
        let events = vec![
            ev(
                "track",
                Some("Product Viewed"),
                1.0,
                json!({"category": "lamps"}),
            ),
            ev(
                "track",
                Some("Product Viewed"),
                1.0 + 1.0 / 1440.0,
                json!({"category": "lamps"}),
            ),
            ev(
                "track",
                Some("Product Viewed"),
                10.0,
                json!({"category": "rugs"}),
            ),
            ev(
                "track",
                Some("Product Viewed"),
                100.0,
                json!({"category": "rugs"}),
            ),
            ev("track", Some("Product Added"), 1.0, json!({})),
            ev("track", Some("Product Added"), 20.0, json!({})),
            ev(
                "track",
                Some("Order Completed"),
                19.5,
                json!({"revenue": 30.0}),
            ),
            ev(
                "track",
                Some("Order Completed"),
                60.0,
                json!({"total": "12.5"}),
            ),
            ev("page", None, 2.0, json!({})),
            // After the as-of time: ignored.
            ev(
                "track",
                Some("Order Completed"),
                -1.0,
                json!({"revenue": 99.0}),
            ),
        ];
        let f = event_features(&events, Timestamp(NOW));
        assert_eq!(f["days_since_last_event"], 1.0);
        assert_eq!(f["days_since_last_order"], 19.0);
        assert_eq!(f["orders_total"], 2.0);
        assert_eq!(f["revenue_total"], 42.5);
        assert_eq!(f["average_order_value"], 21.25);
        assert_eq!(
            (
                f["product_views_7d"],
                f["product_views_30d"],
                f["product_views_90d"]
            ),
            (2.0, 3.0, 3.0)
        );
        assert_eq!((f["cart_adds_7d"], f["cart_adds_30d"]), (1.0, 2.0));
        assert_eq!((f["orders_30d"], f["orders_90d"]), (1.0, 2.0));
        assert_eq!(f["page_views_7d"], 1.0);
        // Views 1 minute apart are one visit; the page 2 days ago, the order and cart 20 days
        // ago, and the view 10 days ago are others.
        assert_eq!(f["sessions_30d"], 5.0);
        // The cart 20 days ago was followed by an order within a day; yesterday's was not.
        assert_eq!(f["abandoned_carts_30d"], 1.0);
        assert_eq!(f["categories_viewed_90d"], 2.0);
        assert_eq!(f["top_category_share_90d"], 67.0);
        assert!(EVENT_FEATURES.iter().all(|(n, _, _)| f.contains_key(n)));
        // Nobody's history: counts are 0, recencies unknown.
        let empty = event_features(&[], Timestamp(NOW));
        assert!(empty["days_since_last_event"].is_nan());
        assert_eq!(empty["orders_total"], 0.0);
        // Statements read as plain language.
        let spec = describe("product_views_7d").expect("known");
        assert_eq!(spec.describe(6.0), "6 product views in the last 7 days");
        assert_eq!(
            describe("days_since_last_order")
                .expect("known")
                .describe(3.0),
            "last order 3 days ago"
        );
    }
}
