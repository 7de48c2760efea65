//! The shopping assistant's routes: conversations and their messages (write key: a
//! storefront may call them; the conversation id is the capability), hand-off tickets and
//! staff replies, catalog import (server key).

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use candor_app::App;
use candor_app::assistant::{StartInput, message_text, products_from_json};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{ApiResult, Auth, parse_json};

/// Refuses a body naming a field other than `allowed`.
fn only_fields(v: &Value, allowed: &[&str]) -> ApiResult<()> {
    match v
        .as_object()
        .and_then(|o| o.keys().find(|k| !allowed.contains(&k.as_str())))
    {
        Some(k) => Err(candor_app::AppError::bad_request(
            "invalid_request",
            format!("unknown field `{k}` ({})", allowed.join(", ")),
        )
        .into()),
        None => Ok(()),
    }
}

pub(crate) async fn post_conversation(
    State(app): State<App>,
    Auth(p): Auth,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let v = match body {
        Ok(b) if b.is_empty() => json!({}),
        other => parse_json(other)?,
    };
    let input = StartInput::from_json(&v)?;
    let out = app.start_conversation(&p, input).await?;
    Ok((StatusCode::CREATED, Json(out)).into_response())
}

pub(crate) async fn post_message(
    State(app): State<App>,
    Auth(p): Auth,
    path: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Value>> {
    let Path(id) = path?;
    let v = parse_json(body)?;
    only_fields(&v, &["message"])?;
    let text = message_text(v.get("message"))?;
    Ok(Json(app.post_message(&p, &id, &text).await?))
}

pub(crate) async fn get_conversation(
    State(app): State<App>,
    Auth(p): Auth,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult<Json<Value>> {
    let Path(id) = path?;
    Ok(Json(app.conversation_view(&p, &id).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TicketsQuery {
    status: Option<String>,
    limit: Option<u32>,
}

pub(crate) async fn get_tickets(
    State(app): State<App>,
    Auth(p): Auth,
    query: Result<Query<TicketsQuery>, QueryRejection>,
) -> ApiResult<Json<Value>> {
    let Query(q) = query?;
    let tickets = app
        .assistant_tickets(&p, q.status.as_deref(), q.limit.unwrap_or(100))
        .await?;
    Ok(Json(json!({ "tickets": tickets })))
}

pub(crate) async fn post_ticket_reply(
    State(app): State<App>,
    Auth(p): Auth,
    path: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Value>> {
    let Path(id) = path?;
    let v = parse_json(body)?;
    only_fields(&v, &["message", "close"])?;
    let text = message_text(v.get("message"))?;
    let close = match v.get("close") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            return Err(candor_app::AppError::bad_request(
                "invalid_request",
                "`close` is true or false",
            )
            .into());
        }
    };
    Ok(Json(app.answer_ticket(&p, &id, &text, close).await?))
}

pub(crate) async fn post_catalog(
    State(app): State<App>,
    Auth(p): Auth,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Value>> {
    let v = parse_json(body)?;
    let rows = products_from_json(&v, app.clock().now())?;
    let received = rows.len();
    let written = app.import_products(&p, rows).await?;
    Ok(Json(json!({ "received": received, "written": written })))
}

pub(crate) async fn get_search(
    State(app): State<App>,
    Auth(p): Auth,
    query: Result<Query<SearchQuery>, QueryRejection>,
) -> ApiResult<Json<Value>> {
    let Query(q) = query?;
    p.require(candor_types::Scope::Write)?;
    if q.q.trim().is_empty() || q.q.chars().count() > candor_app::assistant::MAX_MESSAGE {
        return Err(candor_app::AppError::bad_request(
            "message_invalid",
            "`q` is text of 1 to 2000 characters",
        )
        .into());
    }
    let k = q.k.unwrap_or(10).clamp(1, 50) as usize;
    let hits = app.search_products(p.tenant, &q.q, k).await?;
    let results: Vec<Value> = hits
        .into_iter()
        .map(|(prod, h)| {
            json!({ "productId": prod.product_id, "name": prod.name, "score": h.score,
                "coverage": h.coverage, "price": prod.price, "currency": prod.currency })
        })
        .collect();
    Ok(Json(json!({ "results": results })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SearchQuery {
    q: String,
    k: Option<u32>,
}
