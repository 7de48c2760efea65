//! Server-rendered pages: the staff console (`/console/`) and the customers' privacy center
//! (`/privacy/`). Plain HTML forms that work without JavaScript.
//!
//! Security of every page: a session cookie (`HttpOnly`, `Secure`, `SameSite=Strict`, scoped to
//! its area's path) holding a 256-bit secret of which only a keyed hash is stored; a CSRF token
//! per session in every form (and a double-submit token for the forms shown before signing in),
//! checked with the request's `Origin`; a strict Content-Security-Policy (no scripts, styles
//! only from `/static/`); `Referrer-Policy: no-referrer` so that a sign-in link never leaks;
//! `Cache-Control: no-store`. No personal value is ever put in a URL.

// An early-return page is the error of the helpers that check sessions and forms: it is
// built once, on the refusal path, and returned as the response.
#![allow(clippy::result_large_err)]

/// The checked form of a POST, or the refusal page returned at once.
macro_rules! form {
    ($who:expr, $headers:expr, $body:expr) => {
        match $who.form(&$headers, &$body) {
            Ok(f) => f,
            Err(r) => return r,
        }
    };
}

/// The value of a use case, or its error as a page of the area (with its navigation).
macro_rules! tryp {
    ($who:expr, $e:expr) => {
        match $e {
            Ok(v) => v,
            Err(e) => return $who.error(e.into()),
        }
    };
}

mod console;
mod privacy;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use candor_app::App;

/// The pages' routes, with their security headers.
pub(crate) fn routes() -> Router<App> {
    Router::new()
        .merge(console::routes())
        .merge(privacy::routes())
        .route("/static/candor.css", get(stylesheet))
        .route("/favicon.ico", get(favicon))
        .layer(middleware::from_fn(security_headers))
}

const PAGE_CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";
/// Reports (model cards, audits, uplift) are self-contained documents with inline styles and
/// SVG charts, and no scripts.
pub(crate) const REPORT_CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'; base-uri 'none'";

async fn security_headers(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    if !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(PAGE_CSP),
        );
    }
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    res
}

async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("candor.css"),
    )
        .into_response()
}

/// Pages, not JSON, for unknown paths and methods under `/console/` and `/privacy/` (a reload
/// of a page that answered a POST asks for it with GET).
pub(crate) fn fallback_page(path: &str, status: StatusCode) -> Option<Response> {
    let (area, home) = if path.starts_with("/console") {
        ("Candor console", "/console/")
    } else if path.starts_with("/privacy") {
        ("Privacy center", "/privacy/")
    } else {
        return None;
    };
    let body = format!(
        "<p>There is no such page here.</p><p><a href=\"{home}\">Go to the start page</a>.</p>"
    );
    let mut res = html(status, page("Page not found", area, "", &body));
    // The router's fallback runs outside the pages' layer: add their headers here.
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(PAGE_CSP),
    );
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    Some(res)
}

/// No icon: an empty answer instead of a 404 on every page load.
async fn favicon() -> Response {
    (
        StatusCode::NO_CONTENT,
        [(header::CACHE_CONTROL, "public, max-age=86400")],
    )
        .into_response()
}

/// A policy name (`marketing_email`) as people read it ("Marketing email").
pub(crate) fn words(name: &str) -> String {
    let s = name.replace('_', " ");
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => s,
    }
}

/// HTML-escapes text for element content and quoted attributes.
pub(crate) fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// A whole page: `<main>` holds `body`; `nav` is the area's navigation.
pub(crate) fn page(title: &str, area: &str, nav: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{t} · {area}</title><link rel=\"stylesheet\" href=\"/static/candor.css\"></head>\
         <body><a class=\"skip\" href=\"#main\">Skip to content</a>\
         <header class=\"top\"><p class=\"brand\">{area}</p>{nav}</header>\
         <main id=\"main\"><h1>{t}</h1>\n{body}\n</main></body></html>\n",
        t = esc(title),
        area = esc(area),
    )
}

pub(crate) fn html(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        body,
    )
        .into_response()
}

/// A report document under its own CSP.
pub(crate) fn report(body: String) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, REPORT_CSP),
        ],
        body,
    )
        .into_response()
}

/// `303 See Other` (after a POST).
pub(crate) fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

/// The value of cookie `name`.
pub(crate) fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|kv| {
            let (k, v) = kv.trim().split_once('=')?;
            (k == name).then(|| v.to_string())
        })
}

/// A `Set-Cookie` value for a session-like cookie of `path`.
pub(crate) fn set_cookie(name: &str, value: &str, path: &str, max_age: i64) -> String {
    format!("{name}={value}; Path={path}; Max-Age={max_age}; HttpOnly; Secure; SameSite=Strict")
}

/// A form body: fields by name (the last of repeated names wins).
pub(crate) struct Form(pub HashMap<String, String>);

impl Form {
    pub(crate) fn parse(body: &Bytes) -> Result<Self, Response> {
        serde_urlencoded::from_bytes::<Vec<(String, String)>>(body)
            .map(|v| Form(v.into_iter().collect()))
            .map_err(|_| {
                html(
                    StatusCode::BAD_REQUEST,
                    page(
                        "Bad request",
                        "Candor",
                        "",
                        "<p>The form could not be read. Go back and try again.</p>",
                    ),
                )
            })
    }

    pub(crate) fn get(&self, k: &str) -> &str {
        self.0.get(k).map_or("", String::as_str)
    }
}

/// Checks a form's CSRF token against the expected one, and what the browser says of the
/// form's origin: `Sec-Fetch-Site` (sent by current browsers) must be `same-origin`; without
/// it, an `Origin` must name `Host`. (Under `Referrer-Policy: no-referrer` browsers send
/// `Origin: null` even for a form of the same site; behind a reverse proxy `Host` may be the
/// upstream's: so `Sec-Fetch-Site`, when present, decides.)
pub(crate) fn csrf_ok(headers: &HeaderMap, form: &Form, expected: &str) -> bool {
    match headers.get("sec-fetch-site") {
        Some(site) => {
            if site.as_bytes() != b"same-origin" {
                return false;
            }
        }
        None => {
            if let (Some(origin), Some(host)) = (
                headers
                    .get(header::ORIGIN)
                    .and_then(|v| v.to_str().ok())
                    .filter(|o| *o != "null"),
                headers.get(header::HOST).and_then(|v| v.to_str().ok()),
            ) {
                let o = origin
                    .strip_prefix("https://")
                    .or_else(|| origin.strip_prefix("http://"))
                    .unwrap_or("");
                if o != host {
                    return false;
                }
            }
        }
    }
    let got = form.get("csrf");
    !expected.is_empty() && candor_crypto::constant_time_eq(got.as_bytes(), expected.as_bytes())
}

/// A POSTed form whose CSRF token must be `expected` (a refusal page otherwise).
pub(crate) fn checked_form(
    headers: &HeaderMap,
    body: &Bytes,
    expected: &str,
    area: &str,
) -> Result<Form, Response> {
    let f = Form::parse(body)?;
    if csrf_ok(headers, &f, expected) {
        Ok(f)
    } else {
        Err(csrf_failed(area))
    }
}

/// A form shown before signing in, with its token, which must match the double-submit
/// cookie `pre` (a refusal page otherwise).
pub(crate) fn pre_form(
    headers: &HeaderMap,
    body: &Bytes,
    pre: &str,
    area: &str,
) -> Result<(Form, String), Response> {
    let expected = cookie(headers, pre).unwrap_or_default();
    let f = checked_form(headers, body, &expected, area)?;
    Ok((f, expected))
}

/// Signing out: ends the session of cookie `name` on the server, clears the cookie (scoped to
/// `path`) and goes to `to`.
pub(crate) async fn sign_out(
    app: &candor_app::App,
    headers: &HeaderMap,
    name: &str,
    path: &str,
    to: &str,
) -> Result<Response, candor_app::AppError> {
    if let Some(secret) = cookie(headers, name) {
        app.end_session(&secret).await?;
    }
    Ok((
        [(header::SET_COOKIE, set_cookie(name, "", path, 0))],
        see_other(to),
    )
        .into_response())
}

pub(crate) fn forbidden(area: &str, nav: &str, msg: &str) -> Response {
    html(
        StatusCode::FORBIDDEN,
        page("Not allowed", area, nav, &format!("<p>{}</p>", esc(msg))),
    )
}

pub(crate) fn csrf_failed(area: &str) -> Response {
    forbidden(
        area,
        "",
        "This form has expired or did not come from this site. Go back, reload the page and try again.",
    )
}

/// An error of a use case as a page: its message and code, the right status.
pub(crate) fn error_page(area: &str, nav: &str, e: candor_app::AppError) -> Response {
    let api = crate::ApiError::from(e);
    html(
        api.status(),
        page(
            "Something went wrong",
            area,
            nav,
            &format!(
                "<p role=\"alert\">{}</p><p class=\"muted\">Error code: <code>{}</code></p>",
                esc(&api.0.message),
                esc(api.0.code)
            ),
        ),
    )
}

/// A hidden CSRF field.
pub(crate) fn csrf_field(token: &str) -> String {
    format!(
        "<input type=\"hidden\" name=\"csrf\" value=\"{}\">",
        esc(token)
    )
}

/// A fixed-window limiter by key (sign-in attempts).
pub(crate) struct Limiter {
    window: Duration,
    max: u32,
    hits: Mutex<HashMap<String, (Instant, u32)>>,
}

impl Limiter {
    pub(crate) fn new(window: Duration, max: u32) -> Self {
        Self {
            window,
            max,
            hits: Mutex::new(HashMap::new()),
        }
    }

    /// Reserves one attempt for `key`: false when the window's limit is reached. Attempts in
    /// flight count, so concurrent guesses cannot overtake the limit.
    pub(crate) fn begin(&self, key: &str) -> bool {
        let Ok(mut hits) = self.hits.lock() else {
            return false;
        };
        let now = Instant::now();
        if hits.len() > 10_000 {
            hits.retain(|_, (t, _)| now.duration_since(*t) < self.window);
            if hits.len() > 10_000 {
                // Under a flood of distinct keys, refuse rather than grow.
                return false;
            }
        }
        let e = hits.entry(key.to_string()).or_insert((now, 0));
        if now.duration_since(e.0) >= self.window {
            *e = (now, 0);
        }
        if e.1 >= self.max {
            return false;
        }
        e.1 += 1;
        true
    }

    /// Gives back an attempt that succeeded (only failures are kept).
    pub(crate) fn forgive(&self, key: &str) {
        if let Ok(mut hits) = self.hits.lock()
            && let Some(e) = hits.get_mut(key)
        {
            e.1 = e.1.saturating_sub(1);
        }
    }
}

/// The token of the forms shown before signing in (double-submit with the cookie `name`):
/// the browser's current one, so that two open tabs both work, or a new one.
pub(crate) fn pre_token_of(headers: &HeaderMap, name: &str) -> String {
    match cookie(headers, name) {
        Some(t) if t.len() == 48 && t.bytes().all(|b| b.is_ascii_hexdigit()) => t,
        _ => pre_token(),
    }
}

/// A random token for the forms shown before signing in (double-submit with a cookie).
pub(crate) fn pre_token() -> String {
    let mut b = [0u8; 24];
    if getrandom::fill(&mut b).is_err() {
        return String::new();
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Formats a time for people: `2026-11-23 14:05 UTC`.
pub(crate) fn when(t: candor_types::Timestamp) -> String {
    let s = t.to_rfc3339();
    format!(
        "{} {} UTC",
        &s[..10.min(s.len())],
        s.get(11..16).unwrap_or("")
    )
}

/// A percentage with one decimal.
pub(crate) fn pct(x: f64) -> String {
    format!("{:.1} %", x * 100.0)
}

/// A horizontal bar chart as inline SVG: labelled values scaled to the largest.
pub(crate) fn bar_chart(title: &str, rows: &[(String, f64, String)]) -> String {
    let max = rows.iter().map(|r| r.1).fold(0.0_f64, f64::max).max(1e-12);
    let h = 22 * rows.len() + 10;
    let mut s = format!(
        "<figure><figcaption>{}</figcaption><svg aria-hidden=\"true\" focusable=\"false\" data-title=\"{}\" viewBox=\"0 0 640 {h}\" width=\"640\" height=\"{h}\" class=\"chart\">",
        esc(title),
        esc(title)
    );
    for (i, (label, v, shown)) in rows.iter().enumerate() {
        let y = 5 + i * 22;
        let w = (v / max * 380.0).max(1.0);
        s.push_str(&format!(
            "<text x=\"0\" y=\"{ty}\" class=\"lbl\">{l}</text><rect x=\"200\" y=\"{y}\" width=\"{w:.1}\" height=\"16\" class=\"bar\"></rect><text x=\"{tx:.1}\" y=\"{ty}\" class=\"val\">{shown}</text>",
            ty = y + 13,
            l = esc(label),
            tx = 205.0 + w,
            shown = esc(shown),
        ));
    }
    s.push_str("</svg>");
    // The same numbers as a table for screen readers (the picture is only a picture).
    s.push_str(&format!(
        "<table class=\"sr-only\"><caption>{}</caption><thead><tr><th scope=\"col\">Item</th><th scope=\"col\">Value</th></tr></thead><tbody>",
        esc(title)
    ));
    for (label, _, shown) in rows {
        s.push_str(&format!(
            "<tr><th scope=\"row\">{}</th><td>{}</td></tr>",
            esc(label),
            esc(shown)
        ));
    }
    s.push_str("</tbody></table></figure>");
    s
}
