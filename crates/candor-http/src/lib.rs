//! Candor's HTTP API. [`router`] builds the whole service from an [`App`]; tests drive it with
//! `tower::ServiceExt::oneshot`, `candor serve` binds it to a socket.
//!
//! Handlers parse and authenticate, call one use case, and shape the answer. No handler touches
//! the store or the policy directly.

#![recursion_limit = "256"]

mod assistant;
mod docs;
mod email;
mod error;
mod openapi;
mod pricing;
mod web;

use std::time::Instant;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, FromRequestParts, MatchedPath, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use candor_app::{App, AppError, ConsentInput, IngestOptions, Principal};
use candor_types::{EventKind, KeyId, Scope};
use serde::Deserialize;
use serde_json::{Value, json};

pub use error::{ApiError, ApiResult};
pub use openapi::openapi_document;

/// Largest accepted request body (Segment's batch limit is 500 KB).
pub const BODY_LIMIT: usize = 512 * 1024;
/// Most messages in one `/v1/batch`.
pub const MAX_BATCH: usize = 2500;

/// Serves the API on `listener` until `shutdown` resolves. Sockets get `TCP_NODELAY`: small
/// responses must not wait on Nagle's algorithm.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: App,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt as _;
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY");
        }
    });
    // The peer address reaches handlers (the privacy center limits sign-in requests by it).
    axum::serve(
        listener,
        router(app).into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

/// Builds the service.
pub fn router(app: App) -> Router {
    Router::new()
        .route("/v1/identify", post(identify))
        .route("/v1/track", post(track))
        .route("/v1/page", post(page))
        .route("/v1/batch", post(batch))
        .route("/v1/subjects/{id}/consents", get(get_consents))
        .route("/v1/subjects/{id}/consents/{purpose}", put(put_consent))
        .route("/v1/subjects/{id}/data", get(get_data))
        .route("/v1/subjects/{id}/decisions", get(get_decisions))
        .route("/v1/subjects/{id}/decisions/{decision}", get(get_decision))
        .route(
            "/v1/subjects/{id}/decisions/{decision}/contest",
            post(post_contest),
        )
        .route("/v1/subjects/{id}/export", get(get_export))
        .route(
            "/v1/subjects/{id}/recommendations",
            get(get_recommendations),
        )
        .route("/v1/items/{id}/similar", get(get_similar))
        .route("/v1/items/{id}/stock", put(put_item_stock))
        .route("/v1/recs/exposure", get(get_recs_exposure))
        .route("/v1/subjects/{id}", delete(delete_subject))
        .route("/v1/requests", post(post_request).get(list_requests))
        .route("/v1/requests/{id}", get(get_request))
        .route("/v1/requests/{id}/{action}", post(request_action))
        .route("/v1/contests", get(list_contests))
        .route("/v1/contests/{id}/review", post(review_contest))
        .route("/v1/scores", post(post_scores))
        .route("/v1/models", get(list_models))
        .route("/v1/models/{version}", get(get_model))
        .route("/v1/models/{version}/card", get(get_model_card))
        .route("/v1/models/{version}/audits", get(get_model_audits))
        .route(
            "/v1/models/{version}/audits/{id}/report",
            get(get_audit_report),
        )
        .route("/v1/models/{version}/{action}", post(transition_model))
        .route("/v1/prices/check", post(pricing::post_check))
        .route(
            "/v1/prices/check/batch",
            post(pricing::post_check_batch).layer(DefaultBodyLimit::max(pricing::BATCH_BODY_LIMIT)),
        )
        .route("/v1/prices/checks", get(pricing::get_checks))
        .route("/v1/prices/history", post(pricing::post_history))
        .route("/v1/prices/history/{product}", get(pricing::get_history))
        .route("/v1/prices/dispersion", post(pricing::post_dispersion))
        .route("/v1/prices/audits", get(pricing::get_audits))
        .route("/v1/prices/audits/{id}", get(pricing::get_audit))
        .route(
            "/v1/prices/audits/{id}/report",
            get(pricing::get_audit_report),
        )
        .route("/v1/prices/alerts", get(pricing::get_alerts))
        .route(
            "/v1/prices/proxies",
            get(pricing::get_proxies).post(pricing::post_proxies),
        )
        .route(
            "/v1/assistant/conversations",
            post(assistant::post_conversation),
        )
        .route(
            "/v1/assistant/conversations/{id}",
            get(assistant::get_conversation),
        )
        .route(
            "/v1/assistant/conversations/{id}/messages",
            post(assistant::post_message),
        )
        .route("/v1/assistant/tickets", get(assistant::get_tickets))
        .route(
            "/v1/assistant/tickets/{id}/reply",
            post(assistant::post_ticket_reply),
        )
        .route(
            "/v1/assistant/catalog",
            post(assistant::post_catalog).layer(DefaultBodyLimit::max(pricing::BATCH_BODY_LIMIT)),
        )
        .route("/v1/assistant/search", get(assistant::get_search))
        .route("/v1/fairness/alerts", get(get_fairness_alerts))
        .route("/v1/fairness/monitor", post(post_fairness_monitor))
        .route("/v1/keys", post(create_key).get(list_keys))
        .route("/v1/keys/{id}", delete(revoke_key))
        .route("/v1/policy", get(get_policy))
        .route("/v1/audit/verify", get(verify_audit))
        .route("/v1/journeys", get(email::get_journeys))
        .route("/v1/emails/events", post(email::post_email_events))
        .route(
            "/u/{token}",
            post(email::post_unsubscribe).get(email::get_unsubscribe),
        )
        .route("/e/{token}/why", get(email::get_why))
        .route("/e/{token}/open", get(email::get_open))
        .route("/openapi.json", get(openapi_json))
        .route("/docs", get(docs_page))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .merge(web::routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(app.clone(), observe))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(app)
}

/// Records latency per route template and logs the request (never bodies or query strings).
async fn observe(State(app): State<App>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().as_str().to_owned();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |m| m.as_str().to_owned());
    let res = next.run(req).await;
    let secs = start.elapsed().as_secs_f64();
    let status = res.status().as_u16();
    app.metrics().request(&method, &route, status, secs);
    tracing::debug!(%method, %route, status, ms = secs * 1000.0, "request");
    res
}

async fn not_found(uri: axum::http::Uri) -> Response {
    if let Some(page) = web::fallback_page(uri.path(), StatusCode::NOT_FOUND) {
        return page;
    }
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint").into_response()
}

async fn method_not_allowed(uri: axum::http::Uri) -> Response {
    if let Some(page) = web::fallback_page(uri.path(), StatusCode::METHOD_NOT_ALLOWED) {
        return page;
    }
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this endpoint does not accept that method",
    )
    .into_response()
}

/// The authenticated caller. Accepts `Authorization: Basic base64(<key>:)` (Segment clients
/// send the write key as the user name) or `Authorization: Bearer <key>`.
pub struct Auth(pub Principal);

fn key_from_headers(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, rest) = value.split_once(' ')?;
    match scheme.to_ascii_lowercase().as_str() {
        "bearer" => Some(rest.trim().to_owned()),
        "basic" => {
            let decoded = STANDARD.decode(rest.trim()).ok()?;
            let text = String::from_utf8(decoded).ok()?;
            let user = text.split_once(':').map_or(text.as_str(), |(u, _)| u);
            Some(user.to_owned())
        }
        _ => None,
    }
}

impl FromRequestParts<App> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, Self::Rejection> {
        let key = key_from_headers(&parts.headers).ok_or_else(AppError::unauthorized)?;
        Ok(Auth(app.authenticate(&key).await?))
    }
}

/// Parses a body as JSON with Candor's error codes.
fn parse_json(body: Result<Bytes, BytesRejection>) -> ApiResult<Value> {
    let bytes = body?;
    if std::str::from_utf8(&bytes).is_err() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_utf8",
            "the request body is not valid UTF-8",
        ));
    }
    serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            format!("the request body is not valid JSON: {e}"),
        )
    })
}

fn gpc(headers: &HeaderMap) -> bool {
    headers
        .get("sec-gpc")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim() == "1")
}

async fn single(
    app: App,
    principal: Principal,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
    kind: EventKind,
) -> ApiResult<Json<Value>> {
    principal.require(Scope::Write)?;
    let msg = parse_json(body)?;
    let report = app
        .ingest(
            &principal,
            vec![msg],
            IngestOptions {
                gpc: gpc(&headers),
                forced_kind: Some(kind),
            },
        )
        .await?;
    let Some(result) = report.results.into_iter().next() else {
        return Err(AppError::internal("ingest", &"no result for the event").into());
    };
    if result.status == "rejected" {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            result.reason.unwrap_or("invalid_request"),
            result.message.unwrap_or_default(),
        ));
    }
    Ok(Json(json!({ "success": true, "result": result })))
}

async fn identify(
    State(app): State<App>,
    Auth(p): Auth,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Value>> {
    single(app, p, headers, body, EventKind::Identify).await
}

async fn track(
    State(app): State<App>,
    Auth(p): Auth,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Value>> {
    single(app, p, headers, body, EventKind::Track).await
}

async fn page(
    State(app): State<App>,
    Auth(p): Auth,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Value>> {
    single(app, p, headers, body, EventKind::Page).await
}

async fn batch(
    State(app): State<App>,
    Auth(p): Auth,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Value>> {
    p.require(Scope::Write)?;
    let mut v = parse_json(body)?;
    let Some(obj) = v.as_object_mut() else {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "a batch body is a JSON object with a `batch` array",
        ));
    };
    let shared_context = obj.remove("context");
    let Some(Value::Array(mut messages)) = obj.remove("batch") else {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "a batch body is a JSON object with a `batch` array",
        ));
    };
    if messages.len() > MAX_BATCH {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("a batch holds at most {MAX_BATCH} messages"),
        ));
    }
    // Segment: a batch-level `context` applies to every message that does not set the key.
    if let Some(Value::Object(shared)) = shared_context {
        for m in &mut messages {
            if let Some(m) = m.as_object_mut() {
                let ctx = m
                    .entry("context")
                    .or_insert_with(|| Value::Object(Default::default()));
                if let Some(ctx) = ctx.as_object_mut() {
                    for (k, val) in &shared {
                        ctx.entry(k.clone()).or_insert_with(|| val.clone());
                    }
                }
            }
        }
    }
    let report = app
        .ingest(
            &p,
            messages,
            IngestOptions {
                gpc: gpc(&headers),
                forced_kind: None,
            },
        )
        .await?;
    Ok(Json(
        json!({ "success": true, "accepted": report.accepted, "duplicate": report.duplicate,
        "dropped": report.dropped, "rejected": report.rejected, "results": report.results }),
    ))
}

async fn get_consents(
    State(app): State<App>,
    Auth(p): Auth,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult<Json<Value>> {
    let Path(id) = path?;
    let view = app.consent_view(&p, &id).await?;
    Ok(Json(json!(view)))
}

async fn put_consent(
    State(app): State<App>,
    Auth(p): Auth,
    path: Result<Path<(String, String)>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Value>> {
    let Path((id, purpose)) = path?;
    let v = parse_json(body)?;
    let input: ConsentInput = serde_json::from_value(v)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", e.to_string()))?;
    let view = app.set_consent(&p, &id, &purpose, input).await?;
    Ok(Json(json!(view)))
}

#[derive(Deserialize)]
struct DataQuery {
    purpose: String,
    limit: Option<u32>,
}

async fn get_data(
    State(app): State<App>,
    Auth(p): Auth,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<DataQuery>, QueryRejection>,
) -> ApiResult<Json<Value>> {
    let Path(id) = path?;
    let Query(q) = query?;
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let data = app.read_subject(&p, &id, &q.purpose, limit).await?;
    Ok(Json(json!(data)))
}

#[derive(Deserialize)]
struct LimitQuery {
    limit: Option<u32>,
}

async fn get_decisions(
    State(app): State<App>,
    Auth(p): Auth,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<LimitQuery>, QueryRejection>,
) -> ApiResult<Json<Value>> {
    p.require(Scope::Server)?;
    let Path(id) = path?;
    let Query(q) = query?;
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let (subject, decisions) = app.decisions_for(p.tenant, &p.actor(), &id, limit).await?;
    Ok(Json(json!({ "subject": subject, "decisions": decisions })))
}

fn body_as<T: serde::de::DeserializeOwned>(body: Result<Bytes, BytesRejection>) -> ApiResult<T> {
    let v = parse_json(body)?;
    serde_json::from_value(v)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", e.to_string()))
}

async fn get_decision(
    State(app): State<App>,
    Auth(p): Auth,
    path: Result<Path<(String, String)>, PathRejection>,
) -> ApiResult<Json<Value>> {
    p.require(Scope::Server)?;
    let Path((id, decision)) = path?;
    Ok(Json(
        app.explain_decision(p.tenant, &p.actor(), &id, &decision)
            .await?,
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ContestBody {
    statement: String,
}

async fn post_contest(
    State(app): State<App>,
    Auth(p): Auth,
    path: Result<Path<(String, String)>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    p.require(Scope::Server)?;
    let Path((id, decision)) = path?;
    let b: ContestBody = body_as(body)?;
    let c = app
        .contest_decision(p.tenant, &p.actor(), &id, &decision, &b.statement)
        .await?;
    Ok((StatusCode::CREATED, Json(json!(c))).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExportQuery {
    /// One table as CSV instead of the whole JSON document.
    table: Option<String>,
}

async fn get_export(
    State(app): State<App>,
    Auth(p): Auth,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<ExportQuery>, QueryRejection>,
) -> ApiResult<Response> {
    p.require(Scope::Server)?;
    let Path(id) = path?;
    let Query(q) = query?;
    let subject = app.resolve_subject(p.tenant, &id).await?.id;
    if let Some(t) = &q.table
        && !candor_store::SUBJECT_TABLES.contains(&t.as_str())
    {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "table_invalid",
            format!(
                "`{t}` is not a table of the export ({})",
                candor_store::SUBJECT_TABLES.join(", ")
            ),
        ));
    }
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(16);
    let actor = p.actor();
    let tenant = p.tenant;
    let task_app = app.clone();
    let task = tokio::spawn(async move {
        let r = task_app.export_subject(tenant, &actor, subject, &tx).await;
        if let Err(e) = &r {
            tracing::warn!(code = e.code, "export stopped");
        }
        r
    });
    if let Some(table) = q.table {
        let mut bytes = Vec::new();
        while let Some(chunk) = rx.recv().await {
            bytes.extend(chunk);
        }
        task.await.map_err(|e| AppError::internal("export", &e))??;
        let doc: Value =
            serde_json::from_slice(&bytes).map_err(|e| AppError::internal("export", &e))?;
        let rows = doc["tables"][&table]
            .as_array()
            .cloned()
            .unwrap_or_default();
        return Ok((
            [(header::CONTENT_TYPE, "text/csv; charset=utf-8")],
            candor_app::rights::section_csv(&rows),
        )
            .into_response());
    }
    // Stream the JSON document as it is produced (events page by page).
    let first = rx.recv().await;
    let stream = futures_util::stream::unfold((first, rx), |(next, mut rx)| async move {
        let chunk = next?;
        let after = rx.recv().await;
        Some((
            Ok::<_, std::convert::Infallible>(Bytes::from(chunk)),
            (after, rx),
        ))
    });
    Ok((
        [
            (header::CONTENT_TYPE, "application/json"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"candor-export.json\"",
            ),
        ],
        axum::body::Body::from_stream(stream),
    )
        .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RecsQuery {
    k: Option<usize>,
    context_item: Option<String>,
}

async fn get_recommendations(
    State(app): State<App>,
    Auth(p): Auth,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<RecsQuery>, QueryRejection>,
) -> ApiResult<Json<Value>> {
    p.require(Scope::Server)?;
    let Path(id) = path?;
    let Query(q) = query?;
    let list = app
        .recommend(
            p.tenant,
            &p.actor(),
            &id,
            q.k.unwrap_or(10),
            q.context_item.as_deref(),
        )
        .await?;
    Ok(Json(json!(list)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SimilarQuery {
    k: Option<usize>,
}

async fn get_similar(
    State(app): State<App>,
    Auth(p): Auth,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<SimilarQuery>, QueryRejection>,
) -> ApiResult<Json<Value>> {
    p.require(Scope::Server)?;
    let Path(id) = path?;
    let Query(q) = query?;
    Ok(Json(json!(
        app.similar_items(p.tenant, &id, q.k.unwrap_or(10)).await?
    )))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExposureQuery {
    from: String,
    to: Option<String>,
    format: Option<String>,
}

/// `?format=json|html`: whether to answer with a page (`default_html` without the parameter).
fn wants_html(format: Option<&str>, default_html: bool) -> ApiResult<bool> {
    match format {
        None => Ok(default_html),
        Some("json") => Ok(false),
        Some("html") => Ok(true),
        Some(other) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_format",
            format!("format {other:?} is not json or html"),
        )),
    }
}

async fn get_recs_exposure(
    State(app): State<App>,
    Auth(p): Auth,
    query: Result<Query<ExposureQuery>, QueryRejection>,
) -> ApiResult<Response> {
    p.require(Scope::Admin)?;
    let Query(q) = query?;
    let (from, to) = period(&app, &q.from, q.to.as_deref())?;
    let html = wants_html(q.format.as_deref(), false)?;
    let r = app.recs_exposure(p.tenant, &p.actor(), from, to).await?;
    Ok(if html {
        Html(candor_app::recs::served_exposure_html(&r)).into_response()
    } else {
        Json(json!(r)).into_response()
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct StockBody {
    in_stock: bool,
}

async fn put_item_stock(
    State(app): State<App>,
    Auth(p): Auth,
    path: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<StatusCode> {
    p.require(Scope::Server)?;
    let Path(id) = path?;
    let b: StockBody = body_as(body)?;
    app.set_item_stock(p.tenant, &p.actor(), &id, b.in_stock)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn delete_subject(
    State(app): State<App>,
    Auth(p): Auth,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult<Json<Value>> {
    p.require(Scope::Server)?;
    let Path(id) = path?;
    let receipt = app.erase_subject(p.tenant, &p.actor(), &id).await?;
    let digest = candor_app::rights::receipt_digest(&receipt);
    Ok(Json(json!({ "receipt": receipt, "sha256": digest })))
}

async fn post_request(
    State(app): State<App>,
    Auth(p): Auth,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    p.require(Scope::Server)?;
    let b: candor_app::NewRequest = body_as(body)?;
    let created = app.create_request(p.tenant, &p.actor(), &b).await?;
    Ok((StatusCode::CREATED, Json(json!(created))).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RequestsQuery {
    open: Option<bool>,
    overdue: Option<bool>,
}

async fn list_requests(
    State(app): State<App>,
    Auth(p): Auth,
    query: Result<Query<RequestsQuery>, QueryRejection>,
) -> ApiResult<Json<Value>> {
    p.require(Scope::Admin)?;
    let Query(q) = query?;
    let list = app
        .list_requests(
            p.tenant,
            q.open.unwrap_or(false),
            q.overdue.unwrap_or(false),
        )
        .await?;
    Ok(Json(json!({ "requests": list })))
}

async fn get_request(
    State(app): State<App>,
    Auth(p): Auth,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult<Json<Value>> {
    p.require(Scope::Server)?;
    let Path(id) = path?;
    Ok(Json(json!(app.request_view(p.tenant, &id).await?)))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RequestActionBody {
    token: Option<String>,
    staff_note: Option<String>,
    notice: Option<String>,
    reason: Option<String>,
}

async fn request_action(
    State(app): State<App>,
    Auth(p): Auth,
    path: Result<Path<(String, String)>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Value>> {
    let Path((id, action)) = path?;
    let b: RequestActionBody = match body {
        Ok(bytes) if bytes.is_empty() => RequestActionBody::default(),
        other => body_as(other)?,
    };
    let (t, a) = (p.tenant, p.actor());
    let v = match action.as_str() {
        "verify" => match (b.token, b.staff_note) {
            // The subject's token arrives through the store's backend (server key); staff
            // verification is an admin's act.
            (Some(token), None) => {
                p.require(Scope::Server)?;
                app.verify_request(t, &a, &id, candor_app::Verification::Token(token))
                    .await?
            }
            (None, Some(note)) => {
                p.require(Scope::Admin)?;
                app.verify_request(t, &a, &id, candor_app::Verification::Staff(note))
                    .await?
            }
            _ => {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "send either `token` (the subject's one-time token) or `staffNote`",
                ));
            }
        },
        "acknowledge" => {
            p.require(Scope::Admin)?;
            app.acknowledge_request(t, &a, &id).await?
        }
        "extend" => {
            p.require(Scope::Admin)?;
            app.extend_request(t, &a, &id, b.notice.as_deref().unwrap_or(""))
                .await?
        }
        "reject" => {
            p.require(Scope::Admin)?;
            app.reject_request(t, &a, &id, b.reason.as_deref().unwrap_or(""))
                .await?
        }
        "process" => {
            p.require(Scope::Admin)?;
            app.process_request(t, &a, &id).await?
        }
        other => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "unknown_action",
                format!(
                    "`{other}` is not a request action (verify, acknowledge, extend, reject, process)"
                ),
            ));
        }
    };
    Ok(Json(json!(v)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ContestsQuery {
    status: Option<String>,
}

async fn list_contests(
    State(app): State<App>,
    Auth(p): Auth,
    query: Result<Query<ContestsQuery>, QueryRejection>,
) -> ApiResult<Json<Value>> {
    p.require(Scope::Admin)?;
    let Query(q) = query?;
    let list = app
        .contests(p.tenant, &p.actor(), q.status.as_deref())
        .await?;
    Ok(Json(json!({ "contests": list })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReviewBody {
    outcome: String,
    note: String,
    label: Option<i64>,
}

async fn review_contest(
    State(app): State<App>,
    Auth(p): Auth,
    path: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Value>> {
    p.require(Scope::Admin)?;
    let Path(id) = path?;
    let b: ReviewBody = body_as(body)?;
    let c = app
        .review_contest(p.tenant, &p.actor(), &id, &b.outcome, &b.note, b.label)
        .await?;
    Ok(Json(json!(c)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScoreBody {
    #[serde(rename = "userId")]
    user_id: Option<String>,
    #[serde(default)]
    attributes: serde_json::Map<String, Value>,
    subjects: Option<Vec<candor_app::ScoreInput>>,
    #[serde(rename = "modelVersion")]
    model_version: Option<i64>,
}

async fn post_scores(
    State(app): State<App>,
    Auth(p): Auth,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Value>> {
    p.require(Scope::Server)?;
    let v = parse_json(body)?;
    let b: ScoreBody = serde_json::from_value(v)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", e.to_string()))?;
    let inputs = match (b.user_id, b.subjects) {
        (Some(user_id), None) => vec![candor_app::ScoreInput {
            user_id,
            attributes: b.attributes,
        }],
        (None, Some(list)) if b.attributes.is_empty() => list,
        _ => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "send either `userId` (with optional `attributes`) or a `subjects` array",
            ));
        }
    };
    let results = app
        .score_subjects(p.tenant, &p.actor(), &inputs, b.model_version)
        .await?;
    Ok(Json(json!({ "results": results })))
}

async fn list_models(State(app): State<App>, Auth(p): Auth) -> ApiResult<Json<Value>> {
    use candor_store::Store as _;
    p.require(Scope::Server)?;
    let models = app
        .store()
        .list_models(p.tenant)
        .await
        .map_err(AppError::from)?;
    Ok(Json(json!({ "models": models })))
}

/// A period `[from, to)` given as RFC 3339 times; `to` defaults to now.
fn period(
    app: &App,
    from: &str,
    to: Option<&str>,
) -> ApiResult<(candor_types::Timestamp, candor_types::Timestamp)> {
    let time = |s: &str| {
        candor_types::Timestamp::parse_rfc3339(s).ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_time",
                format!("{s:?} is not an RFC 3339 time"),
            )
        })
    };
    Ok((
        time(from)?,
        match to {
            Some(t) => time(t)?,
            None => app.clock().now(),
        },
    ))
}

/// A model version from a path: a positive integer, else the model is not found.
pub(crate) fn parse_version(s: &str) -> Result<i64, AppError> {
    s.parse::<i64>()
        .ok()
        .filter(|v| *v > 0)
        .ok_or_else(|| AppError::not_found("model"))
}

async fn get_model(
    State(app): State<App>,
    Auth(p): Auth,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult<Json<Value>> {
    p.require(Scope::Server)?;
    let Path(version) = path?;
    let view = app.model_view(p.tenant, parse_version(&version)?).await?;
    Ok(Json(json!(view)))
}

async fn get_model_card(
    State(app): State<App>,
    Auth(p): Auth,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult<Html<String>> {
    p.require(Scope::Server)?;
    let Path(version) = path?;
    let view = app.model_view(p.tenant, parse_version(&version)?).await?;
    Ok(Html(candor_app::model_card_html(&view)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReasonBody {
    reason: String,
}

async fn transition_model(
    State(app): State<App>,
    Auth(p): Auth,
    path: Result<Path<(String, String)>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Value>> {
    p.require(Scope::Admin)?;
    let Path((version, action)) = path?;
    let version = parse_version(&version)?;
    let v = parse_json(body)?;
    let b: ReasonBody = serde_json::from_value(v)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", e.to_string()))?;
    let view = if action == "override" {
        app.override_fairness(p.tenant, &p.actor(), version, &b.reason)
            .await?
    } else {
        app.transition_model(p.tenant, &p.actor(), version, &action, &b.reason)
            .await?
    };
    Ok(Json(json!(view)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditsQuery {
    kind: Option<String>,
    limit: Option<u32>,
}

async fn get_model_audits(
    State(app): State<App>,
    Auth(p): Auth,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<AuditsQuery>, QueryRejection>,
) -> ApiResult<Json<Value>> {
    p.require(Scope::Server)?;
    let Path(version) = path?;
    let Query(q) = query?;
    let audits = app
        .model_audits(
            p.tenant,
            parse_version(&version)?,
            q.kind.as_deref(),
            q.limit.unwrap_or(20),
        )
        .await?;
    Ok(Json(json!({ "audits": audits })))
}

async fn get_audit_report(
    State(app): State<App>,
    Auth(p): Auth,
    path: Result<Path<(String, String)>, PathRejection>,
) -> ApiResult<Html<String>> {
    p.require(Scope::Server)?;
    let Path((version, id)) = path?;
    let version = parse_version(&version)?;
    let id: i64 = id
        .parse()
        .map_err(|_| ApiError::new(StatusCode::NOT_FOUND, "not_found", "audit not found"))?;
    let audit = app
        .model_audits(p.tenant, version, None, 500)
        .await?
        .into_iter()
        .find(|a| a.id == id)
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "not_found", "audit not found"))?;
    Ok(Html(candor_app::audit_report_html(&audit.report)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AlertsQuery {
    before: Option<i64>,
    limit: Option<u32>,
}

async fn get_fairness_alerts(
    State(app): State<App>,
    Auth(p): Auth,
    query: Result<Query<AlertsQuery>, QueryRejection>,
) -> ApiResult<Json<Value>> {
    p.require(Scope::Server)?;
    let Query(q) = query?;
    let alerts = app
        .fairness_alerts(p.tenant, q.before, q.limit.unwrap_or(100))
        .await?;
    Ok(Json(json!({ "alerts": alerts })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct MonitorBody {
    model_version: Option<i64>,
    from: String,
    to: Option<String>,
    outcome_event: Option<String>,
    within_days: Option<u32>,
    threshold: Option<f64>,
}

async fn post_fairness_monitor(
    State(app): State<App>,
    Auth(p): Auth,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Value>> {
    p.require(Scope::Admin)?;
    let v = parse_json(body)?;
    let b: MonitorBody = serde_json::from_value(v)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", e.to_string()))?;
    let (from, to) = period(&app, &b.from, b.to.as_deref())?;
    let req = candor_app::MonitorRequest {
        version: b.model_version,
        from,
        to,
        outcome_event: b.outcome_event.unwrap_or_else(|| "Order Completed".into()),
        within_days: b.within_days.unwrap_or(30),
        threshold: b.threshold.unwrap_or(0.5),
        resamples: candor_app::fairness::DEFAULT_RESAMPLES,
    };
    let rec = app.monitor_fairness(p.tenant, &p.actor(), &req).await?;
    Ok(Json(json!(rec)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewKeyBody {
    scope: String,
    label: Option<String>,
}

async fn create_key(
    State(app): State<App>,
    Auth(p): Auth,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    p.require(Scope::Admin)?;
    let v = parse_json(body)?;
    let b: NewKeyBody = serde_json::from_value(v)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", e.to_string()))?;
    let scope: Scope = b
        .scope
        .parse()
        .map_err(|m: String| ApiError::new(StatusCode::BAD_REQUEST, "invalid_scope", m))?;
    if b.label.as_ref().is_some_and(|l| l.len() > 200) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "label is longer than 200 characters",
        ));
    }
    let (id, secret) = app.create_key(p.tenant, scope, b.label, &p.actor()).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "id": id, "scope": scope, "key": secret })),
    )
        .into_response())
}

async fn list_keys(State(app): State<App>, Auth(p): Auth) -> ApiResult<Json<Value>> {
    use candor_store::Store as _;
    p.require(Scope::Admin)?;
    let keys = app
        .store()
        .list_api_keys(p.tenant)
        .await
        .map_err(AppError::from)?;
    Ok(Json(json!({ "keys": keys })))
}

async fn revoke_key(
    State(app): State<App>,
    Auth(p): Auth,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult<StatusCode> {
    let Path(id) = path?;
    let id: KeyId = id
        .parse()
        .map_err(|_| ApiError::new(StatusCode::NOT_FOUND, "not_found", "API key not found"))?;
    app.revoke_key(&p, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn get_policy(State(app): State<App>, Auth(p): Auth) -> ApiResult<Json<Value>> {
    p.require(Scope::Server)?;
    let pol = app.policy();
    let purposes: Vec<Value> = pol.purposes().map(|d| json!(d)).collect();
    let categories: Vec<Value> = pol.categories().map(|d| json!(d)).collect();
    Ok(Json(json!({
        "sha256": pol.source_hash(),
        "default_jurisdiction": pol.default_jurisdiction(),
        "purposes": purposes,
        "categories": categories,
        "protected_attributes": pol.protected_attributes().collect::<Vec<_>>(),
    })))
}

async fn verify_audit(State(app): State<App>, Auth(p): Auth) -> ApiResult<Json<Value>> {
    p.require(Scope::Admin)?;
    match app.verify_audit_log().await? {
        Ok(report) => Ok(Json(json!({ "ok": true, "chains": report.chains }))),
        Err(b) => Ok(Json(json!({ "ok": false, "broken": b }))),
    }
}

async fn openapi_json() -> Json<Value> {
    Json(openapi_document())
}

async fn docs_page() -> Html<&'static str> {
    Html(docs::PAGE)
}

async fn healthz(State(app): State<App>) -> Response {
    use candor_store::Store as _;
    match app.store().list_tenants().await {
        Ok(_) => {
            Json(json!({ "status": "ok", "backend": app.store().backend_name() })).into_response()
        }
        Err(e) => {
            tracing::error!(error = %e, "health check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "status": "unavailable" })),
            )
                .into_response()
        }
    }
}

async fn metrics(State(app): State<App>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        app.metrics().render(),
    )
        .into_response()
}

/// Every route of [`router`] as (method, path template), for docs and tests.
pub const ROUTES: &[(&str, &str)] = &[
    ("post", "/v1/identify"),
    ("post", "/v1/track"),
    ("post", "/v1/page"),
    ("post", "/v1/batch"),
    ("get", "/v1/subjects/{id}/consents"),
    ("put", "/v1/subjects/{id}/consents/{purpose}"),
    ("get", "/v1/subjects/{id}/data"),
    ("get", "/v1/subjects/{id}/decisions"),
    ("get", "/v1/subjects/{id}/decisions/{decision}"),
    ("post", "/v1/subjects/{id}/decisions/{decision}/contest"),
    ("get", "/v1/subjects/{id}/export"),
    ("get", "/v1/subjects/{id}/recommendations"),
    ("get", "/v1/items/{id}/similar"),
    ("put", "/v1/items/{id}/stock"),
    ("get", "/v1/recs/exposure"),
    ("get", "/v1/journeys"),
    ("post", "/v1/emails/events"),
    ("post", "/u/{token}"),
    ("get", "/u/{token}"),
    ("get", "/e/{token}/why"),
    ("get", "/e/{token}/open"),
    ("delete", "/v1/subjects/{id}"),
    ("post", "/v1/requests"),
    ("get", "/v1/requests"),
    ("get", "/v1/requests/{id}"),
    ("post", "/v1/requests/{id}/{action}"),
    ("get", "/v1/contests"),
    ("post", "/v1/contests/{id}/review"),
    ("post", "/v1/scores"),
    ("get", "/v1/models"),
    ("get", "/v1/models/{version}"),
    ("get", "/v1/models/{version}/card"),
    ("get", "/v1/models/{version}/audits"),
    ("get", "/v1/models/{version}/audits/{id}/report"),
    ("post", "/v1/models/{version}/{action}"),
    ("get", "/v1/fairness/alerts"),
    ("post", "/v1/fairness/monitor"),
    ("post", "/v1/assistant/conversations"),
    ("get", "/v1/assistant/conversations/{id}"),
    ("post", "/v1/assistant/conversations/{id}/messages"),
    ("get", "/v1/assistant/tickets"),
    ("post", "/v1/assistant/tickets/{id}/reply"),
    ("post", "/v1/assistant/catalog"),
    ("get", "/v1/assistant/search"),
    ("post", "/v1/prices/check"),
    ("post", "/v1/prices/check/batch"),
    ("get", "/v1/prices/checks"),
    ("post", "/v1/prices/history"),
    ("get", "/v1/prices/history/{product}"),
    ("post", "/v1/prices/dispersion"),
    ("get", "/v1/prices/audits"),
    ("get", "/v1/prices/audits/{id}"),
    ("get", "/v1/prices/audits/{id}/report"),
    ("get", "/v1/prices/alerts"),
    ("get", "/v1/prices/proxies"),
    ("post", "/v1/prices/proxies"),
    ("post", "/v1/keys"),
    ("get", "/v1/keys"),
    ("delete", "/v1/keys/{id}"),
    ("get", "/v1/policy"),
    ("get", "/v1/audit/verify"),
    ("get", "/openapi.json"),
    ("get", "/docs"),
    ("get", "/healthz"),
    ("get", "/metrics"),
];
