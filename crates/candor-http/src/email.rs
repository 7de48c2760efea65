//! Endpoints that email recipients reach without logging in (the token in the link is the only
//! credential, and it only unsubscribes, records an open or explains that one email), and the
//! journey endpoints of the API.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use candor_app::App;
use candor_app::journeys::{unsubscribe_page_html, why_page_html};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{ApiError, ApiResult, Auth, parse_json, wants_html};

/// One-click unsubscribe (RFC 8058): the mail client POSTs `List-Unsubscribe=One-Click`; the
/// form of the unsubscribe page posts the same. No cookie, no login; effective at once.
pub(crate) async fn post_unsubscribe(
    State(app): State<App>,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult<Response> {
    let Path(token) = path?;
    app.unsubscribe(&token, "one_click").await?;
    Ok(Html(unsubscribe_page_html(&token, true)).into_response())
}

/// The page of the visible unsubscribe link: a button that POSTs.
pub(crate) async fn get_unsubscribe(
    State(app): State<App>,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult<Response> {
    let Path(token) = path?;
    // An unknown token is a 404, not a page that pretends to work.
    let why = app.email_why(&token).await?;
    let done = why["unsubscribed"].as_bool() == Some(true);
    Ok(Html(unsubscribe_page_html(&token, done)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WhyQuery {
    format: Option<String>,
}

pub(crate) async fn get_why(
    State(app): State<App>,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<WhyQuery>, QueryRejection>,
) -> ApiResult<Response> {
    let Path(token) = path?;
    let Query(q) = query?;
    let html = wants_html(q.format.as_deref(), true)?;
    let why = app.email_why(&token).await?;
    Ok(if html {
        Html(why_page_html(&why, &token)).into_response()
    } else {
        Json(why).into_response()
    })
}

/// A 1×1 transparent GIF.
const PIXEL: &[u8] = &[
    0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00,
    0xff, 0xff, 0xff, 0x21, 0xf9, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00, 0x2c, 0x00, 0x00, 0x00, 0x00,
    0x01, 0x00, 0x01, 0x00, 0x00, 0x02, 0x02, 0x44, 0x01, 0x00, 0x3b,
];

/// The open pixel (present only in emails to people who allow analytics).
pub(crate) async fn get_open(
    State(app): State<App>,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult<Response> {
    let Path(token) = path?;
    app.email_opened(&token).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "image/gif"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        PIXEL,
    )
        .into_response())
}

/// Bounces, complaints, unsubscribes and clicks reported by the relay or a mailbox provider:
/// `{"type": "bounce", "messageId": "<…>"}` or an array of them.
pub(crate) async fn post_email_events(
    State(app): State<App>,
    Auth(p): Auth,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Value>> {
    let v = parse_json(body)?;
    let items = match v {
        Value::Array(a) => a,
        one => vec![one],
    };
    if items.is_empty() || items.len() > 1000 {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_email_events",
            "send 1 to 1000 events",
        ));
    }
    // Checked before anything is recorded: a bad item changes nothing.
    let mut parsed = Vec::with_capacity(items.len());
    for (i, it) in items.iter().enumerate() {
        let (Some(kind), Some(mid)) = (
            it.get("type").and_then(Value::as_str),
            it.get("messageId").and_then(Value::as_str),
        ) else {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_email_events",
                format!(
                    "event {i} needs `type` (bounce, complaint, unsubscribe, click) and `messageId`"
                ),
            ));
        };
        if !matches!(kind, "bounce" | "complaint" | "unsubscribe" | "click") {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_email_event",
                format!("event {i}: `{kind}` is not bounce, complaint, unsubscribe or click"),
            ));
        }
        parsed.push((kind, mid));
    }
    for (kind, mid) in &parsed {
        app.email_event(&p, mid, kind).await?;
    }
    Ok(Json(json!({ "recorded": parsed.len() })))
}

/// Journeys with their measurement.
pub(crate) async fn get_journeys(State(app): State<App>, Auth(p): Auth) -> ApiResult<Json<Value>> {
    let reports = app.journey_reports(&p).await?;
    Ok(Json(json!({ "journeys": reports })))
}
