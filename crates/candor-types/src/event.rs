//! Events in the shape of Segment's HTTP Tracking API (`identify`, `track`, `page`).
//!
//! Parsing is strict about types and sizes and lenient about fields it does not know, as
//! Segment is: unknown top-level fields are ignored, never stored.

use serde_json::{Map, Value};

use crate::Timestamp;

/// Segment call types Candor accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventKind {
    Identify,
    Track,
    Page,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Identify => "identify",
            EventKind::Track => "track",
            EventKind::Page => "page",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "identify" => Some(Self::Identify),
            "track" => Some(Self::Track),
            "page" => Some(Self::Page),
            _ => None,
        }
    }
}

/// Segment Ecommerce v2 event names. `true` marks events about orders and payment
/// (transactional data); the rest describe browsing and shopping behaviour.
pub const ECOMMERCE_EVENTS: &[(&str, bool)] = &[
    ("Products Searched", false),
    ("Product List Viewed", false),
    ("Product List Filtered", false),
    ("Promotion Viewed", false),
    ("Promotion Clicked", false),
    ("Product Clicked", false),
    ("Product Viewed", false),
    ("Product Added", false),
    ("Product Removed", false),
    ("Cart Viewed", false),
    ("Checkout Started", false),
    ("Checkout Step Viewed", false),
    ("Checkout Step Completed", false),
    ("Payment Info Entered", true),
    ("Order Completed", true),
    ("Order Updated", true),
    ("Order Refunded", true),
    ("Order Cancelled", true),
    ("Coupon Entered", false),
    ("Coupon Applied", false),
    ("Coupon Denied", false),
    ("Coupon Removed", false),
    ("Product Added to Wishlist", false),
    ("Product Removed from Wishlist", false),
    ("Wishlist Product Added to Cart", false),
    ("Product Shared", false),
    ("Cart Shared", false),
    ("Product Reviewed", false),
];

/// Whether `name` is a Segment Ecommerce v2 event, and if so whether it is transactional.
pub fn ecommerce_event(name: &str) -> Option<bool> {
    ECOMMERCE_EVENTS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, t)| *t)
}

/// Longest accepted `messageId`, `userId`, `anonymousId`.
pub const MAX_ID_LEN: usize = 256;
/// Longest accepted event or page name.
pub const MAX_NAME_LEN: usize = 256;

/// Why one Segment message was rejected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SegmentError {
    #[error("the message is not a JSON object")]
    NotAnObject,
    #[error("`type` is missing or not one of identify, track, page")]
    UnsupportedType,
    #[error("field `{0}` has the wrong type: {1}")]
    WrongType(&'static str, &'static str),
    #[error("a message needs `userId` or `anonymousId`")]
    MissingIdentity,
    #[error("a track call needs a non-empty `event` name")]
    MissingEventName,
    #[error("field `{0}` is longer than {1} characters")]
    TooLong(&'static str, usize),
    #[error("`timestamp` is not an ISO 8601 date-time")]
    BadTimestamp,
}

impl SegmentError {
    /// Stable machine-readable code for per-event results.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotAnObject => "not_an_object",
            Self::UnsupportedType => "unsupported_type",
            Self::WrongType(..) => "wrong_type",
            Self::MissingIdentity => "missing_identity",
            Self::MissingEventName => "missing_event_name",
            Self::TooLong(..) => "too_long",
            Self::BadTimestamp => "bad_timestamp",
        }
    }
}

/// One validated Segment message.
#[derive(Clone, Debug, PartialEq)]
pub struct IncomingEvent {
    pub kind: EventKind,
    /// The client's `messageId`; `None` when the client sent none (no deduplication possible).
    pub message_id: Option<String>,
    pub user_id: Option<String>,
    pub anonymous_id: Option<String>,
    /// `event` for track, `name` for page, `None` for identify.
    pub name: Option<String>,
    pub properties: Map<String, Value>,
    pub traits: Map<String, Value>,
    pub context: Map<String, Value>,
    pub timestamp: Option<Timestamp>,
}

fn id_field(obj: &Map<String, Value>, key: &'static str) -> Result<Option<String>, SegmentError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) if s.chars().count() > MAX_ID_LEN => {
            Err(SegmentError::TooLong(key, MAX_ID_LEN))
        }
        Some(Value::String(s)) => Ok(Some(s.clone())),
        // Segment libraries send numeric ids as numbers; they mean the same id.
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(_) => Err(SegmentError::WrongType(key, "expected a string")),
    }
}

/// Moves an object field out of the message (no copy of its contents).
fn take_object(
    obj: &mut Map<String, Value>,
    key: &'static str,
) -> Result<Map<String, Value>, SegmentError> {
    match obj.remove(key) {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(m)) => Ok(m),
        Some(_) => Err(SegmentError::WrongType(key, "expected an object")),
    }
}

fn name_field(obj: &Map<String, Value>, key: &'static str) -> Result<Option<String>, SegmentError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.chars().count() > MAX_NAME_LEN => {
            Err(SegmentError::TooLong(key, MAX_NAME_LEN))
        }
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(SegmentError::WrongType(key, "expected a string")),
    }
}

impl IncomingEvent {
    /// Validates one message, taking it apart without copying. `forced_kind` is the kind
    /// implied by the endpoint (`/v1/track` ...); inside a batch each message names its own
    /// `type`. `context.traits` are merged into `traits` (explicit traits win).
    pub fn from_json(value: Value, forced_kind: Option<EventKind>) -> Result<Self, SegmentError> {
        let Value::Object(mut obj) = value else {
            return Err(SegmentError::NotAnObject);
        };
        let kind = match forced_kind {
            Some(k) => k,
            None => obj
                .get("type")
                .and_then(Value::as_str)
                .and_then(EventKind::parse)
                .ok_or(SegmentError::UnsupportedType)?,
        };
        let message_id = id_field(&obj, "messageId")?;
        let user_id = id_field(&obj, "userId")?;
        let anonymous_id = id_field(&obj, "anonymousId")?;
        if user_id.is_none() && anonymous_id.is_none() {
            return Err(SegmentError::MissingIdentity);
        }
        let name = match kind {
            EventKind::Track => {
                let n = name_field(&obj, "event")?;
                match n {
                    Some(n) if !n.trim().is_empty() => Some(n),
                    _ => return Err(SegmentError::MissingEventName),
                }
            }
            EventKind::Page => name_field(&obj, "name")?,
            EventKind::Identify => None,
        };
        let properties = take_object(&mut obj, "properties")?;
        let mut context = take_object(&mut obj, "context")?;
        let mut traits = take_object(&mut obj, "traits")?;
        match context.remove("traits") {
            None | Some(Value::Null) => {}
            Some(Value::Object(ctx_traits)) => {
                for (k, v) in ctx_traits {
                    traits.entry(k).or_insert(v);
                }
            }
            Some(_) => {
                return Err(SegmentError::WrongType(
                    "context.traits",
                    "expected an object",
                ));
            }
        }
        let timestamp = match obj.get("timestamp") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => {
                Some(Timestamp::parse_rfc3339(s).ok_or(SegmentError::BadTimestamp)?)
            }
            Some(_) => return Err(SegmentError::WrongType("timestamp", "expected a string")),
        };
        Ok(Self {
            kind,
            message_id,
            user_id,
            anonymous_id,
            name,
            properties,
            traits,
            context,
            timestamp,
        })
    }

    /// Segment consent spec: `context.consent.categoryPreferences`, e.g. `{"Analytics": true}`.
    pub fn category_preferences(&self) -> Vec<(String, bool)> {
        self.context
            .get("consent")
            .and_then(|c| c.get("categoryPreferences"))
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| v.as_bool().map(|b| (k.clone(), b)))
                    .collect()
            })
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_a_segment_track_call() {
        let v = json!({
            "type": "track", "messageId": "m1", "userId": 42, "event": "Product Viewed",
            "properties": {"product_id": "p1", "price": 9.5},
            "context": {"ip": "1.2.3.4", "traits": {"email": "a@b.c"},
                        "consent": {"categoryPreferences": {"Analytics": true, "Advertising": false}}},
            "timestamp": "2024-01-01T00:00:00Z"
        });
        let e = IncomingEvent::from_json(v, None).expect("valid");
        assert_eq!(e.kind, EventKind::Track);
        assert_eq!(e.user_id.as_deref(), Some("42"));
        assert_eq!(e.name.as_deref(), Some("Product Viewed"));
        assert_eq!(e.traits.get("email"), Some(&json!("a@b.c")));
        let mut prefs = e.category_preferences();
        prefs.sort();
        assert_eq!(
            prefs,
            vec![("Advertising".into(), false), ("Analytics".into(), true)]
        );
        assert_eq!(ecommerce_event("Order Completed"), Some(true));
        assert_eq!(ecommerce_event("Product Viewed"), Some(false));
        assert_eq!(ecommerce_event("Clicked Button"), None);
    }

    #[test]
    fn rejects_bad_messages_with_reasons() {
        let cases = [
            (json!([1]), "not_an_object"),
            (json!({"type": "alias", "userId": "u"}), "unsupported_type"),
            (json!({"type": "track", "event": "X"}), "missing_identity"),
            (
                json!({"type": "track", "userId": "u"}),
                "missing_event_name",
            ),
            (
                json!({"type": "track", "userId": "u", "event": 5}),
                "wrong_type",
            ),
            (json!({"type": "page", "userId": {"a": 1}}), "wrong_type"),
            (
                json!({"type": "page", "userId": "u", "properties": []}),
                "wrong_type",
            ),
            (
                json!({"type": "page", "userId": "u", "timestamp": "soon"}),
                "bad_timestamp",
            ),
            (
                json!({"type": "page", "userId": "u".repeat(300)}),
                "too_long",
            ),
        ];
        for (v, code) in cases {
            let err = IncomingEvent::from_json(v.clone(), None).expect_err("must be rejected");
            assert_eq!(err.code(), code, "{v}");
        }
    }
}
