//! The price guard's routes: checks (one, or a batch for catalogue-wide repricing), price
//! history, dispersion audits with their reports and alerts, and proxy detection of signals.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use candor_app::App;
use candor_app::pricing_audit::{DispersionOptions, PeriodUnit, PriceMonitorRequest};
use candor_types::Scope;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{ApiError, ApiResult, Auth, parse_json, period};

/// Largest batch body: 10,000 checks of about a kilobyte each, with room.
pub(crate) const BATCH_BODY_LIMIT: usize = 16 * 1024 * 1024;

pub(crate) async fn post_check(
    State(app): State<App>,
    Auth(p): Auth,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<candor_app::pricing::PriceCheckView>> {
    let v = parse_json(body)?;
    Ok(Json(app.check_price(&p, &v).await?))
}

pub(crate) async fn post_check_batch(
    State(app): State<App>,
    Auth(p): Auth,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<candor_app::pricing::BatchView>> {
    let v = parse_json(body)?;
    Ok(Json(app.check_prices(&p, &v).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ChecksQuery {
    product: Option<String>,
    limit: Option<u32>,
}

pub(crate) async fn get_checks(
    State(app): State<App>,
    Auth(p): Auth,
    query: Result<Query<ChecksQuery>, QueryRejection>,
) -> ApiResult<Json<Value>> {
    let Query(q) = query?;
    let checks = app
        .price_checks(&p, q.product.as_deref(), q.limit.unwrap_or(100))
        .await?;
    Ok(Json(json!({ "checks": checks })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct HistoryQuery {
    currency: String,
    days: Option<u32>,
}

pub(crate) async fn get_history(
    State(app): State<App>,
    Auth(p): Auth,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<HistoryQuery>, QueryRejection>,
) -> ApiResult<Json<Value>> {
    let Path(product) = path?;
    let Query(q) = query?;
    Ok(Json(
        app.price_history_view(&p, &product, &q.currency, q.days.unwrap_or(90))
            .await?,
    ))
}

pub(crate) async fn post_history(
    State(app): State<App>,
    Auth(p): Auth,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Value>> {
    let v = parse_json(body)?;
    if let Some(k) = v
        .as_object()
        .and_then(|o| o.keys().find(|k| *k != "prices" && *k != "cancellations"))
    {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            format!("unknown field `{k}`: expected prices, cancellations"),
        ));
    }
    Ok(Json(app.import_prices(&p, &v).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DispersionBody {
    from: String,
    to: Option<String>,
    period: Option<String>,
    top: Option<usize>,
    resamples: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FormatQuery {
    format: Option<String>,
}

fn wants_html(q: &FormatQuery) -> ApiResult<bool> {
    match q.format.as_deref() {
        None | Some("json") => Ok(false),
        Some("html") => Ok(true),
        Some(other) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_query",
            format!("format is json or html, not {other:?}"),
        )),
    }
}

/// Reports carry inline styles and no script.
fn report_page(html: String) -> Response {
    (
        [(
            axum::http::header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'unsafe-inline'; img-src data:",
        )],
        Html(html),
    )
        .into_response()
}

pub(crate) async fn post_dispersion(
    State(app): State<App>,
    Auth(p): Auth,
    query: Result<Query<FormatQuery>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    p.require(Scope::Admin)?;
    let Query(q) = query?;
    let html = wants_html(&q)?;
    let v = parse_json(body)?;
    let b: DispersionBody = serde_json::from_value(v)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", e.to_string()))?;
    let (from, to) = period(&app, &b.from, b.to.as_deref())?;
    let mut options = DispersionOptions::default();
    if let Some(pu) = &b.period {
        options.period = pu.parse::<PeriodUnit>()?;
    }
    if let Some(t) = b.top {
        if t > 1000 {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "`top` is at most 1000 products (0: all)",
            ));
        }
        options.top = t;
    }
    if let Some(r) = b.resamples {
        if r > 10_000 {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "`resamples` is at most 10000",
            ));
        }
        options.resamples = r;
    }
    options.seed = from.0 as u64;
    let rec = app
        .monitor_prices(
            p.tenant,
            &p.actor(),
            &PriceMonitorRequest { from, to, options },
        )
        .await?;
    if html {
        return Ok(report_page(candor_app::pricing_html::price_audit_html(
            &rec.document,
        )));
    }
    Ok(Json(json!(rec)).into_response())
}

pub(crate) async fn get_audits(State(app): State<App>, Auth(p): Auth) -> ApiResult<Json<Value>> {
    p.require(Scope::Admin)?;
    Ok(Json(json!({ "audits": app.price_audits(p.tenant).await? })))
}

pub(crate) async fn get_audit(
    State(app): State<App>,
    Auth(p): Auth,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult<Json<Value>> {
    p.require(Scope::Admin)?;
    let Path(id) = path?;
    Ok(Json(json!(app.price_audit(p.tenant, &id).await?)))
}

pub(crate) async fn get_audit_report(
    State(app): State<App>,
    Auth(p): Auth,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult<Response> {
    p.require(Scope::Admin)?;
    let Path(id) = path?;
    let a = app.price_audit(p.tenant, &id).await?;
    Ok(report_page(candor_app::pricing_html::price_audit_html(
        &a.report,
    )))
}

pub(crate) async fn get_alerts(State(app): State<App>, Auth(p): Auth) -> ApiResult<Json<Value>> {
    p.require(Scope::Admin)?;
    Ok(Json(json!({ "alerts": app.price_alerts(p.tenant).await? })))
}

pub(crate) async fn get_proxies(State(app): State<App>, Auth(p): Auth) -> ApiResult<Json<Value>> {
    use candor_store::PricingStore as _;
    p.require(Scope::Admin)?;
    let rows = app
        .store()
        .price_proxies(p.tenant)
        .await
        .map_err(candor_app::AppError::from)?;
    Ok(Json(json!({ "proxies": rows })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ProxiesQuery {
    signals: String,
    protected: String,
}

/// A CSV sample of signals and protected attributes, one row per person; the sample is
/// analysed and not kept.
pub(crate) async fn post_proxies(
    State(app): State<App>,
    Auth(p): Auth,
    query: Result<Query<ProxiesQuery>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Value>> {
    p.require(Scope::Admin)?;
    let Query(q) = query?;
    let bytes = body?;
    let table = candor_app::pricing_audit::read_table(&bytes)?;
    let list = |s: &str| -> Vec<String> {
        s.split(',')
            .map(str::trim)
            .filter(|x| !x.is_empty())
            .map(str::to_string)
            .collect()
    };
    let rec = app
        .audit_price_signals(
            p.tenant,
            &p.actor(),
            &table,
            &list(&q.signals),
            &list(&q.protected),
            "POST /v1/prices/proxies",
        )
        .await?;
    Ok(Json(json!(rec)))
}
