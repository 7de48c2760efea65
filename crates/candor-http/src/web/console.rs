//! The staff console under `/console/`: sign-in with a staff account, then what the account's
//! role may see and do (see [`Role::may`]). Every page that shows a person's data records the
//! view in the audit log.

use std::collections::HashMap;
use std::sync::LazyLock;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use candor_app::web::{Area, Role, STAFF_SESSION_MS, WebSession};
use candor_app::{App, AppError, Principal};

use crate::parse_version;
use candor_store::Store as _;
use candor_types::SubjectId;
use serde::Deserialize;
use serde_json::Value;

use super::{
    Form, Limiter, bar_chart, checked_form, cookie, csrf_field, error_page, esc, forbidden, html,
    page, pct, pre_form, pre_token_of, report, see_other, set_cookie, sign_out, when, words,
};

const AREA: &str = "Candor console";
const COOKIE: &str = "candor_console";
const PRE_COOKIE: &str = "candor_console_pre";

/// Failed sign-ins per login: after 5 in 15 minutes, the login is refused until the window ends.
static SIGN_IN_LIMIT: LazyLock<Limiter> =
    LazyLock::new(|| Limiter::new(Duration::from_secs(15 * 60), 5));

pub(super) fn routes() -> Router<App> {
    Router::new()
        .route("/console", get(|| async { see_other("/console/") }))
        .route("/console/", get(overview))
        .route("/console/login", get(login_page).post(login))
        .route("/console/logout", post(logout))
        .route("/console/subjects", get(subjects).post(subject_search))
        .route("/console/subjects/open", post(subject_open))
        .route("/console/models", get(models))
        .route("/console/models/{version}", get(model))
        .route("/console/models/{version}/card", get(model_card))
        .route("/console/models/{version}/audits/{id}", get(audit_report))
        .route("/console/models/{version}/{step}", post(model_step))
        .route("/console/fairness", get(fairness))
        .route("/console/recs", get(recs))
        .route("/console/journeys", get(journeys))
        .route("/console/requests", get(requests))
        .route("/console/requests/{id}", post(request_action))
        .route("/console/contests", get(contests))
        .route("/console/contests/{id}", post(contest_review))
        .route("/console/messages", get(messages))
        .route("/console/messages/{id}/close", post(message_close))
        .route("/console/assistant", get(assistant_tickets))
        .route("/console/assistant/{id}/reply", post(assistant_reply))
        .route("/console/audit", get(audit_log))
        .route("/console/policy", get(policy))
        .route("/console/reports/{name}", get(campaign_report))
}

/// A signed-in staff member.
struct Staff {
    session: WebSession,
    principal: Principal,
    role: Role,
    login: String,
}

impl Staff {
    fn csrf(&self) -> String {
        csrf_field(&self.session.row.csrf)
    }

    fn nav(&self) -> String {
        self.nav_at("")
    }

    /// The navigation, the link of the page titled `title` marked as the current page.
    fn nav_at(&self, title: &str) -> String {
        let current = match title {
            "Overview" => Some("/console/"),
            "People" | "Person" => Some("/console/subjects"),
            t if t.starts_with("Model") => Some("/console/models"),
            "Fairness monitoring" => Some("/console/fairness"),
            "Recommendations" => Some("/console/recs"),
            "Journeys" => Some("/console/journeys"),
            "Data-subject requests" => Some("/console/requests"),
            "Contested decisions" => Some("/console/contests"),
            "Messages" => Some("/console/messages"),
            "Assistant hand-offs" => Some("/console/assistant"),
            "Audit log" => Some("/console/audit"),
            "Policy" => Some("/console/policy"),
            _ => None,
        };
        let links = [
            (Area::Overview, "/console/", "Overview"),
            (Area::Subjects, "/console/subjects", "People"),
            (Area::Models, "/console/models", "Models"),
            (Area::Fairness, "/console/fairness", "Fairness"),
            (Area::Recs, "/console/recs", "Recommendations"),
            (Area::Journeys, "/console/journeys", "Journeys"),
            (Area::Requests, "/console/requests", "Requests"),
            (Area::Contests, "/console/contests", "Contests"),
            (Area::Messages, "/console/messages", "Messages"),
            (Area::Messages, "/console/assistant", "Assistant"),
            (Area::AuditLog, "/console/audit", "Audit log"),
            (Area::Policy, "/console/policy", "Policy"),
        ];
        let mut s = String::from("<nav aria-label=\"Console\"><ul>");
        for (area, href, label) in links {
            if self.role.may(area) {
                let cur = if current == Some(href) {
                    " aria-current=\"page\""
                } else {
                    ""
                };
                s.push_str(&format!("<li><a href=\"{href}\"{cur}>{label}</a></li>"));
            }
        }
        s.push_str("</ul></nav>");
        s.push_str(&format!(
            "<form method=\"post\" action=\"/console/logout\">{}<span>{} ({})</span> <button type=\"submit\" class=\"secondary\">Sign out</button></form>",
            self.csrf(),
            esc(&self.login),
            self.role.as_str()
        ));
        s
    }

    fn page(&self, title: &str, body: &str) -> Response {
        html(StatusCode::OK, page(title, AREA, &self.nav_at(title), body))
    }

    fn error(&self, e: AppError) -> Response {
        error_page(AREA, &self.nav(), e)
    }

    /// `Err(page)` when the role may not open `area`.
    fn may(&self, area: Area) -> Result<(), Response> {
        if self.role.may(area) {
            Ok(())
        } else {
            Err(forbidden(
                AREA,
                &self.nav(),
                &format!("The {} role may not open this page.", self.role.as_str()),
            ))
        }
    }

    /// Parses a POSTed form and checks its CSRF token.
    fn form(&self, headers: &HeaderMap, body: &Bytes) -> Result<Form, Response> {
        checked_form(headers, body, &self.session.row.csrf, AREA)
    }
}

/// The staff member of the request's cookie, or a redirect to the sign-in page.
async fn staff(app: &App, headers: &HeaderMap, area: Area) -> Result<Staff, Response> {
    let Some(secret) = cookie(headers, COOKIE) else {
        return Err(see_other("/console/login"));
    };
    let session = match app.web_session(&secret).await {
        Ok(Some(s)) => s,
        Ok(None) => return Err(see_other("/console/login")),
        Err(e) => return Err(error_page(AREA, "", e)),
    };
    let (Some(principal), Some((row, role))) = (session.principal(), session.staff.clone()) else {
        return Err(see_other("/console/login"));
    };
    let s = Staff {
        principal,
        role,
        login: row.login,
        session,
    };
    s.may(area)?;
    Ok(s)
}

/// Display names of actors: `staff:<id>` → the staff member's login.
async fn actor_names(app: &App, tenant: candor_types::TenantId) -> HashMap<String, String> {
    app.list_staff(tenant)
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|s| (format!("staff:{}", s.id), s.login))
        .collect()
}

fn actor_name<'a>(names: &'a HashMap<String, String>, actor: &'a str) -> &'a str {
    names.get(actor).map_or(actor, String::as_str)
}

macro_rules! staff {
    ($app:expr, $headers:expr, $area:expr) => {
        match staff(&$app, &$headers, $area).await {
            Ok(s) => s,
            Err(r) => return r,
        }
    };
}

// ----------------------------------------------------------------------------------------
// Sign-in
// ----------------------------------------------------------------------------------------

fn login_form(token: &str, message: Option<&str>) -> String {
    let msg = message.map_or(String::new(), |m| {
        format!("<p class=\"notice warn\" role=\"alert\">{}</p>", esc(m))
    });
    page(
        "Sign in",
        AREA,
        "",
        &format!(
            "{msg}<form method=\"post\" action=\"/console/login\">{}\
             <label for=\"login\">Login</label><input type=\"text\" id=\"login\" name=\"login\" autocomplete=\"username\" required>\
             <label for=\"password\">Password</label><input type=\"password\" id=\"password\" name=\"password\" autocomplete=\"current-password\" required>\
             <p><button type=\"submit\">Sign in</button></p></form>",
            csrf_field(token)
        ),
    )
}

async fn login_page(headers: HeaderMap) -> Response {
    let token = pre_token_of(&headers, PRE_COOKIE);
    (
        [(
            header::SET_COOKIE,
            set_cookie(PRE_COOKIE, &token, "/console", 3600),
        )],
        html(StatusCode::OK, login_form(&token, None)),
    )
        .into_response()
}

async fn login(State(app): State<App>, headers: HeaderMap, body: Bytes) -> Response {
    let (f, pre) = match pre_form(&headers, &body, PRE_COOKIE, AREA) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let login = f.get("login").trim().to_lowercase();
    if login.len() > 120 {
        return html(
            StatusCode::UNAUTHORIZED,
            login_form(&pre, Some("The login or password is wrong.")),
        );
    }
    if !SIGN_IN_LIMIT.begin(&login) {
        return html(
            StatusCode::TOO_MANY_REQUESTS,
            login_form(
                &pre,
                Some("Too many attempts for this login. Wait 15 minutes and try again."),
            ),
        );
    }
    match app.staff_sign_in(&login, f.get("password")).await {
        Ok((secret, _)) => {
            SIGN_IN_LIMIT.forgive(&login);
            (
                [(
                    header::SET_COOKIE,
                    set_cookie(COOKIE, &secret, "/console", STAFF_SESSION_MS / 1000),
                )],
                see_other("/console/"),
            )
                .into_response()
        }
        Err(e) if e.code == "sign_in_failed" => {
            tracing::info!("console sign-in failed");
            html(
                StatusCode::UNAUTHORIZED,
                login_form(&pre, Some("The login or password is wrong.")),
            )
        }
        Err(e) => {
            SIGN_IN_LIMIT.forgive(&login);
            error_page(AREA, "", e)
        }
    }
}

async fn logout(State(app): State<App>, headers: HeaderMap, body: Bytes) -> Response {
    let s = staff!(app, headers, Area::Overview);
    let _ = form!(s, headers, body);
    tryp!(
        s,
        sign_out(&app, &headers, COOKIE, "/console", "/console/login").await
    )
}

// ----------------------------------------------------------------------------------------
// Overview
// ----------------------------------------------------------------------------------------

async fn overview(State(app): State<App>, headers: HeaderMap) -> Response {
    let s = staff!(app, headers, Area::Overview);
    let o = tryp!(s, app.overview(s.principal.tenant).await);
    let gpc_share = if o.subjects > 0 {
        o.gpc_subjects as f64 / o.subjects as f64
    } else {
        0.0
    };
    let mut b = format!(
        "<div class=\"cards\">\
         <div class=\"card\"><span class=\"big\">{}</span>people with data</div>\
         <div class=\"card\"><span class=\"big\">{}</span>events stored</div>\
         <div class=\"card\"><span class=\"big\">{}</span>erased on request</div>\
         <div class=\"card\"><span class=\"big\">{}</span>sent Global Privacy Control ({} of people)</div></div>",
        o.subjects,
        o.events,
        o.erased,
        o.gpc_subjects,
        pct(gpc_share)
    );
    b.push_str("<h2>Ingestion</h2>");
    let days: Vec<(String, f64, String)> = o
        .received_by_day
        .iter()
        .map(|(d, n)| (when(*d)[..10].to_string(), *n as f64, n.to_string()))
        .collect();
    if days.is_empty() {
        b.push_str("<p class=\"muted\">No events received in the last 30 days.</p>");
    } else {
        b.push_str(&bar_chart("Events received per day (last 30 days)", &days));
    }
    let names: Vec<(String, f64, String)> = o
        .events_by_name
        .iter()
        .map(|(n, c)| (n.clone(), *c as f64, c.to_string()))
        .collect();
    if !names.is_empty() {
        b.push_str(&bar_chart("Stored events by name", &names));
    }
    b.push_str("<h2>Consent by purpose and jurisdiction</h2>");
    // purpose -> jurisdiction -> (granted, withdrawn)
    let mut by: std::collections::BTreeMap<(&str, &str), (i64, i64)> = Default::default();
    for c in &o.consents {
        let e = by
            .entry((c.purpose.as_str(), c.jurisdiction.as_str()))
            .or_default();
        if c.state == "granted" {
            e.0 += c.subjects;
        } else {
            e.1 += c.subjects;
        }
    }
    if by.is_empty() {
        b.push_str("<p class=\"muted\">No consent answers recorded yet.</p>");
    } else {
        b.push_str("<table><caption class=\"muted\">Latest answer of each person per purpose</caption><thead><tr><th scope=\"col\">Purpose</th><th scope=\"col\">Jurisdiction</th><th scope=\"col\" class=\"num\">Granted</th><th scope=\"col\" class=\"num\">Withdrawn</th><th scope=\"col\" class=\"num\">Consent rate</th></tr></thead><tbody>");
        let mut chart = Vec::new();
        for ((p, j), (g, w)) in &by {
            let rate = *g as f64 / (*g + *w).max(1) as f64;
            let j = if j.is_empty() { "(not stated)" } else { j };
            b.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td class=\"num\">{g}</td><td class=\"num\">{w}</td><td class=\"num\">{}</td></tr>",
                esc(p),
                esc(j),
                pct(rate)
            ));
            chart.push((format!("{p} · {j}"), rate, pct(rate)));
        }
        b.push_str("</tbody></table>");
        b.push_str(&bar_chart(
            "Consent rate by purpose and jurisdiction",
            &chart,
        ));
    }
    s.page("Overview", &b)
}

// ----------------------------------------------------------------------------------------
// People
// ----------------------------------------------------------------------------------------

fn search_form(s: &Staff) -> String {
    format!(
        "<form method=\"post\" action=\"/console/subjects\">{}\
         <label for=\"email\">Find a person by email address</label>\
         <input type=\"email\" id=\"email\" name=\"email\" required>\
         <p class=\"muted\">The address is matched through its keyed hash (Candor does not keep it in the clear). The search and every view are recorded in the audit log.</p>\
         <p><button type=\"submit\">Search</button></p></form>",
        s.csrf()
    )
}

async fn subjects(State(app): State<App>, headers: HeaderMap) -> Response {
    let s = staff!(app, headers, Area::Subjects);
    s.page("People", &search_form(&s))
}

/// The search is a POST so that the address never appears in a URL or an access log.
async fn subject_search(State(app): State<App>, headers: HeaderMap, body: Bytes) -> Response {
    let s = staff!(app, headers, Area::Subjects);
    let f = form!(s, headers, body);
    let found = tryp!(
        s,
        app.staff_find_by_email(&s.principal, f.get("email").trim())
            .await
    );
    let Some(subject) = found else {
        return s.page(
            "People",
            &format!(
                "<p class=\"notice\" role=\"status\">No person with this address.</p>{}",
                search_form(&s)
            ),
        );
    };
    subject_page(&app, &s, subject).await
}

/// A button to a person's record, for roles that may see people (the id travels in a form,
/// not in a URL).
fn open_record(s: &Staff, subject: SubjectId) -> String {
    if !s.role.may(Area::Subjects) {
        return String::new();
    }
    format!(
        "<form method=\"post\" action=\"/console/subjects/open\" class=\"inline\">{}<input type=\"hidden\" name=\"subject\" value=\"{subject}\"><button type=\"submit\" class=\"secondary\" aria-label=\"Open record of person {subject}\">Open record</button></form>",
        s.csrf()
    )
}

async fn subject_open(State(app): State<App>, headers: HeaderMap, body: Bytes) -> Response {
    let s = staff!(app, headers, Area::Subjects);
    let f = form!(s, headers, body);
    let Ok(subject) = f.get("subject").parse::<SubjectId>() else {
        return s.error(AppError::not_found("subject"));
    };
    // The person must be of this tenant and not erased.
    tryp!(s, app.resolve_subject(s.principal.tenant, subject).await);
    subject_page(&app, &s, subject).await
}

async fn subject_page(app: &App, s: &Staff, subject: SubjectId) -> Response {
    tryp!(
        s,
        app.audit_view(&s.principal, subject, "console.subject")
            .await
    );
    let consents = tryp!(s, app.own_consents(s.principal.tenant, subject).await);
    let (_, decisions) = tryp!(
        s,
        app.decisions_for(s.principal.tenant, &s.principal.actor(), subject, 50)
            .await
    );
    let mut b = format!(
        "<p>Person <code>{subject}</code>. Their identifiers are kept only as keyed hashes.</p><h2>Consent</h2><table><thead><tr><th scope=\"col\">Purpose</th><th scope=\"col\">Basis</th><th scope=\"col\">Answer</th><th scope=\"col\">Processing</th></tr></thead><tbody>"
    );
    for p in &consents.purposes {
        b.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td><span class=\"badge {}\">{}</span> <span class=\"muted\">{}</span></td></tr>",
            esc(&p.purpose),
            esc(&p.basis),
            esc(p.consent.unwrap_or("no answer")),
            if p.allowed { "allowed" } else { "denied" },
            if p.allowed { "allowed" } else { "denied" },
            esc(&p.reason)
        ));
    }
    b.push_str("</tbody></table><h2>Automated decisions</h2>");
    b.push_str(&decisions_table(&decisions));
    s.page("Person", &b)
}

fn decisions_table(decisions: &[candor_app::DecisionView]) -> String {
    if decisions.is_empty() {
        return "<p class=\"muted\">None.</p>".into();
    }
    let mut b = String::from(
        "<table><thead><tr><th scope=\"col\">When</th><th scope=\"col\">Purpose</th><th scope=\"col\">Decision</th><th scope=\"col\">Why</th></tr></thead><tbody>",
    );
    for d in decisions {
        let why = d
            .outcome
            .as_ref()
            .map_or_else(String::new, candor_app::rights::why_text);
        b.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            when(d.created_at),
            esc(&d.purpose),
            esc(&d.kind),
            esc(&why)
        ));
    }
    b.push_str("</tbody></table>");
    b
}

// ----------------------------------------------------------------------------------------
// Models
// ----------------------------------------------------------------------------------------

async fn models(State(app): State<App>, headers: HeaderMap) -> Response {
    let s = staff!(app, headers, Area::Models);
    let list = tryp!(s, app.store().list_models(s.principal.tenant).await);
    let mut b = String::from(
        "<table><thead><tr><th scope=\"col\">Version</th><th scope=\"col\">Name</th><th scope=\"col\">Kind</th><th scope=\"col\">Status</th><th scope=\"col\">Created</th></tr></thead><tbody>",
    );
    for m in &list {
        b.push_str(&format!(
            "<tr><td><a href=\"/console/models/{v}\">Model {v}</a></td><td>{}</td><td>{}</td><td><span class=\"badge neutral\">{}</span></td><td>{}</td></tr>",
            esc(&m.name),
            esc(&m.kind),
            esc(&m.status),
            when(m.created_at),
            v = m.version
        ));
    }
    b.push_str("</tbody></table>");
    if list.is_empty() {
        b = "<p class=\"muted\">No models yet: train one with <code>candor train</code>.</p>"
            .into();
    }
    s.page("Models", &b)
}

/// Metrics of a card as a table: the numbers under `metrics` (nested one level).
fn metrics_table(card: &Value) -> String {
    let Some(m) = card.get("metrics").and_then(Value::as_object) else {
        return String::new();
    };
    let mut rows = String::new();
    for (k, v) in m {
        match v {
            Value::Number(n) => rows.push_str(&format!(
                "<tr><th scope=\"row\">{}</th><td class=\"num\">{}</td></tr>",
                esc(k),
                n.as_f64().map_or(n.to_string(), |x| format!("{x:.4}"))
            )),
            Value::Object(o) => {
                for (k2, v2) in o {
                    if let Some(x) = v2.as_f64() {
                        rows.push_str(&format!(
                            "<tr><th scope=\"row\">{} · {}</th><td class=\"num\">{x:.4}</td></tr>",
                            esc(k),
                            esc(k2)
                        ));
                    }
                }
            }
            _ => {}
        }
    }
    if rows.is_empty() {
        return String::new();
    }
    format!("<h2>Metrics</h2><table><tbody>{rows}</tbody></table>")
}

async fn model(
    State(app): State<App>,
    headers: HeaderMap,
    Path(version): Path<String>,
) -> Response {
    let s = staff!(app, headers, Area::Models);
    let version = tryp!(s, parse_version(&version));
    let view = tryp!(s, app.model_view(s.principal.tenant, version).await);
    let audits = tryp!(
        s,
        app.model_audits(s.principal.tenant, version, None, 50)
            .await
    );
    let names = actor_names(&app, s.principal.tenant).await;
    let m = &view.row;
    let mut b = format!(
        "<p>{} · kind {} · status <span class=\"badge neutral\">{}</span> · <a href=\"/console/models/{v}/card\">Model card</a></p>",
        esc(&m.name),
        esc(&m.kind),
        esc(&m.status),
        v = m.version
    );
    b.push_str(&metrics_table(&m.card));
    b.push_str("<h2>Fairness audits</h2>");
    if audits.is_empty() {
        b.push_str("<p class=\"muted\">No audit recorded: run <code>candor audit</code>.</p>");
    } else {
        b.push_str("<table><thead><tr><th scope=\"col\">Audit</th><th scope=\"col\">Kind</th><th scope=\"col\">Verdict</th><th scope=\"col\">When</th><th scope=\"col\">Override</th></tr></thead><tbody>");
        for a in &audits {
            let ov = a.override_.as_ref().map_or(String::new(), |o| {
                let o = serde_json::to_value(o).unwrap_or_default();
                format!(
                    "by {} : {}",
                    esc(actor_name(&names, o["actor"].as_str().unwrap_or(""))),
                    esc(o["reason"].as_str().unwrap_or(""))
                )
            });
            b.push_str(&format!(
                "<tr><td><a href=\"/console/models/{v}/audits/{id}\">Audit {id}</a></td><td>{}</td><td><span class=\"badge {c}\">{t}</span></td><td>{}</td><td>{ov}</td></tr>",
                esc(&a.kind),
                when(a.created_at),
                v = m.version,
                id = a.id,
                c = if a.passed { "pass" } else { "fail" },
                t = if a.passed { "passed" } else { "failed" },
            ));
        }
        b.push_str("</tbody></table>");
    }
    if s.role.may(Area::ModelDecisions) {
        let failed = view
            .fairness
            .validation
            .as_ref()
            .is_some_and(|v| !v.passed && v.override_.is_none());
        if failed {
            b.push_str(&format!(
                "<h2>Override the failed audit</h2><form method=\"post\" action=\"/console/models/{v}/override\">{}\
                 <p class=\"notice warn\">The latest validation audit failed its fairness gates. An override lets the model go on to approval; it is recorded under your staff account with your reason, in the audit log and on the model card.</p>\
                 <label for=\"reason\">Reason for the override</label><textarea id=\"reason\" name=\"reason\" required minlength=\"10\"></textarea>\
                 <p><button type=\"submit\" class=\"danger\">Record override</button></p></form>",
                s.csrf(),
                v = m.version
            ));
        }
        b.push_str(&format!(
            "<h2>Lifecycle</h2><form method=\"post\" action=\"/console/models/{v}/transition\">{}\
             <label for=\"action\">Step</label><select id=\"action\" name=\"action\"><option value=\"approve\">Approve</option><option value=\"activate\">Activate</option><option value=\"retire\">Retire</option></select>\
             <label for=\"treason\">Reason</label><textarea id=\"treason\" name=\"reason\" required></textarea>\
             <p><button type=\"submit\">Record step</button></p></form>",
            s.csrf(),
            v = m.version
        ));
    }
    b.push_str("<h2>History</h2><table><thead><tr><th scope=\"col\">From</th><th scope=\"col\">To</th><th scope=\"col\">By</th><th scope=\"col\">Reason</th></tr></thead><tbody>");
    for t in &view.transitions {
        b.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&t.from),
            esc(&t.to),
            esc(actor_name(&names, &t.actor)),
            esc(&t.reason)
        ));
    }
    b.push_str("</tbody></table>");
    s.page(&format!("Model {}", m.version), &b)
}

async fn model_card(
    State(app): State<App>,
    headers: HeaderMap,
    Path(version): Path<String>,
) -> Response {
    let s = staff!(app, headers, Area::Models);
    let version = tryp!(s, parse_version(&version));
    let view = tryp!(s, app.model_view(s.principal.tenant, version).await);
    report(candor_app::model_card_html(&view))
}

async fn audit_report(
    State(app): State<App>,
    headers: HeaderMap,
    Path((version, id)): Path<(String, String)>,
) -> Response {
    let s = staff!(app, headers, Area::Models);
    let version = tryp!(s, parse_version(&version));
    let audits = tryp!(
        s,
        app.model_audits(s.principal.tenant, version, None, 500)
            .await
    );
    let Some(a) = audits.iter().find(|a| a.id.to_string() == id) else {
        return s.error(AppError::not_found("audit"));
    };
    report(candor_app::audit_report_html(&a.report))
}

/// A reviewer's step on a model: `override` (of its failed audit) or `transition` (approve,
/// activate, retire), each with a reason.
async fn model_step(
    State(app): State<App>,
    headers: HeaderMap,
    Path((version, step)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let s = staff!(app, headers, Area::ModelDecisions);
    let f = form!(s, headers, body);
    let version = tryp!(s, parse_version(&version));
    let (t, actor) = (s.principal.tenant, s.principal.actor());
    let done = match step.as_str() {
        "override" => {
            app.override_fairness(t, &actor, version, f.get("reason"))
                .await
        }
        "transition" => {
            app.transition_model(t, &actor, version, f.get("action"), f.get("reason"))
                .await
        }
        _ => Err(AppError::not_found("model step")),
    };
    tryp!(s, done);
    see_other(&format!("/console/models/{version}"))
}

// ----------------------------------------------------------------------------------------
// Fairness, recommendations, journeys
// ----------------------------------------------------------------------------------------

/// Selection rate per protected group, period by period (oldest first), with each period's
/// lowest ÷ highest ratio: how a model treats each segment over time.
fn segments_over_time(audits: &[candor_store::ModelAuditRow]) -> String {
    // attribute -> groups seen; rows: (period, attribute -> (ratio, group -> rate))
    let mut groups: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    let mut rows = Vec::new();
    for a in audits.iter().rev() {
        let mut per: std::collections::BTreeMap<String, (Option<f64>, HashMap<String, f64>)> =
            Default::default();
        for attr in a.report["report"]["attributes"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let au = &attr["audit"];
            let Some(name) = au["attribute"].as_str() else {
                continue;
            };
            let mut rates = HashMap::new();
            for g in au["groups"].as_array().into_iter().flatten() {
                if let (Some(gn), Some(r)) = (g["group"].as_str(), g["selection_rate"].as_f64()) {
                    let seen = groups.entry(name.to_string()).or_default();
                    if !seen.iter().any(|x| x == gn) {
                        seen.push(gn.to_string());
                    }
                    rates.insert(gn.to_string(), r);
                }
            }
            per.insert(
                name.to_string(),
                (au["demographic_parity"]["ratio"].as_f64(), rates),
            );
        }
        let period = format!(
            "{} – {}",
            a.period_start.map_or("?".into(), when),
            a.period_end.map_or("?".into(), when)
        );
        rows.push((period, per));
    }
    let mut out = String::new();
    for (attr, gs) in &groups {
        out.push_str(&format!(
            "<table><caption>Selection rate by {} over time</caption><thead><tr><th scope=\"col\">Period</th>",
            esc(attr)
        ));
        for g in gs {
            out.push_str(&format!("<th scope=\"col\" class=\"num\">{}</th>", esc(g)));
        }
        out.push_str("<th scope=\"col\" class=\"num\">Lowest ÷ highest</th></tr></thead><tbody>");
        for (period, per) in &rows {
            let Some((ratio, rates)) = per.get(attr) else {
                continue;
            };
            out.push_str(&format!("<tr><th scope=\"row\">{}</th>", esc(period)));
            for g in gs {
                out.push_str(&format!(
                    "<td class=\"num\">{}</td>",
                    rates.get(g).map_or("–".into(), |r| pct(*r))
                ));
            }
            out.push_str(&format!(
                "<td class=\"num\">{}</td></tr>",
                ratio.map_or("–".into(), |r| format!("{r:.2}"))
            ));
        }
        out.push_str("</tbody></table>");
    }
    out
}

async fn fairness(State(app): State<App>, headers: HeaderMap) -> Response {
    let s = staff!(app, headers, Area::Fairness);
    let t = s.principal.tenant;
    let models = tryp!(s, app.store().list_models(t).await);
    let mut b = String::from(
        "<p>Monitoring audits compare live decisions with known outcomes per protected group, period by period (<code>candor monitor</code>). A failed gate raises an alert.</p>",
    );
    for m in models
        .iter()
        .filter(|m| m.name != candor_app::recs::RECS_MODEL)
    {
        // One read of the model's monitoring audits: the period table and the segments.
        let audits = tryp!(
            s,
            app.model_audits(t, m.version, Some("monitoring"), 12).await
        );
        let mon: Vec<_> = audits
            .iter()
            .map(candor_app::fairness::MonitoringSummary::of)
            .collect();
        b.push_str(&format!("<h2>Model {} ({})</h2>", m.version, esc(&m.name)));
        if mon.is_empty() {
            b.push_str("<p class=\"muted\">No monitoring period audited yet.</p>");
            continue;
        }
        b.push_str("<table><thead><tr><th scope=\"col\">Period</th><th scope=\"col\" class=\"num\">Decisions</th><th scope=\"col\">Verdict</th><th scope=\"col\">Failed gates</th></tr></thead><tbody>");
        for a in &mon {
            b.push_str(&format!(
                "<tr><td><a href=\"/console/models/{v}/audits/{id}\">{} – {}</a></td><td class=\"num\">{}</td><td><span class=\"badge {c}\">{t}</span></td><td>{}</td></tr>",
                a.period_start.map_or("?".into(), when),
                a.period_end.map_or("?".into(), when),
                a.rows,
                esc(&a.failed_gates.join(", ")),
                v = m.version,
                id = a.id,
                c = if a.passed { "pass" } else { "fail" },
                t = if a.passed { "passed" } else { "failed" },
            ));
        }
        b.push_str("</tbody></table>");
        // Per segment over time: each group's selection rate in each period, by attribute.
        b.push_str(&segments_over_time(&audits));
    }
    let alerts = tryp!(s, app.fairness_alerts(t, None, 50).await);
    b.push_str("<h2>Alerts</h2>");
    if alerts.is_empty() {
        b.push_str("<p class=\"muted\">No alerts.</p>");
    } else {
        b.push_str("<table><thead><tr><th scope=\"col\">When</th><th scope=\"col\">Model</th><th scope=\"col\">Gate</th><th scope=\"col\">Group</th><th scope=\"col\" class=\"num\">Value</th><th scope=\"col\" class=\"num\">Limit</th></tr></thead><tbody>");
        for a in &alerts {
            b.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{:.3}</td></tr>",
                when(a.created_at),
                a.version,
                esc(&a.gate),
                esc(&a.subject),
                a.value.map_or("–".into(), |v| format!("{v:.3}")),
                a.limit
            ));
        }
        b.push_str("</tbody></table>");
    }
    s.page("Fairness monitoring", &b)
}

async fn recs(State(app): State<App>, headers: HeaderMap) -> Response {
    let s = staff!(app, headers, Area::Recs);
    let t = s.principal.tenant;
    let models = tryp!(s, app.store().list_models(t).await);
    let mut b = String::new();
    let recs: Vec<_> = models
        .iter()
        .filter(|m| m.name == candor_app::recs::RECS_MODEL)
        .collect();
    if recs.is_empty() {
        b.push_str("<p class=\"muted\">No recommendation model yet: train one with <code>candor recs train</code>.</p>");
    }
    for m in recs {
        b.push_str(&format!(
            "<h2>Model {} ({}) <span class=\"badge neutral\">{}</span></h2><p><a href=\"/console/models/{v}/card\">Model card</a></p>",
            m.version,
            esc(&m.name),
            esc(&m.status),
            v = m.version
        ));
        b.push_str(&metrics_table(&m.card));
        if let Some(e) = m.card.get("evaluation").and_then(Value::as_object) {
            b.push_str("<h3>Offline evaluation</h3><table><tbody>");
            for (k, v) in e {
                if let Some(x) = v.as_f64() {
                    b.push_str(&format!(
                        "<tr><th scope=\"row\">{}</th><td class=\"num\">{x:.4}</td></tr>",
                        esc(k)
                    ));
                }
            }
            b.push_str("</tbody></table>");
        }
    }
    let evaluations: Vec<String> = campaign_reports(&app, t)
        .into_iter()
        .filter(|n| n.starts_with("recommendations-"))
        .collect();
    if !evaluations.is_empty() {
        b.push_str("<h2>Offline evaluation</h2><p>ALS, item-kNN and popularity on a temporal split: recall, NDCG, coverage and exposure, overall and by segment.</p><ul>");
        for n in evaluations {
            b.push_str(&format!(
                "<li><a href=\"/console/reports/{0}\">{0}</a></li>",
                esc(&n)
            ));
        }
        b.push_str("</ul>");
    }
    let now = app.clock().now();
    let from = candor_types::Timestamp(now.0 - 30 * candor_types::Timestamp::DAY_MS);
    b.push_str("<h2>Exposure of served lists (last 30 days)</h2>");
    match app.recs_exposure(t, &s.principal.actor(), from, now).await {
        Ok(r) => {
            b.push_str(&format!(
                "<p>{} personalized lists served by model {}, beside the unpersonalized list the others see. How widely each spreads exposure over the catalog (from the lists' sealed decisions):</p>",
                r.lists, r.model_version
            ));
            b.push_str("<table><thead><tr><th scope=\"col\">Lists</th><th scope=\"col\" class=\"num\">Served</th><th scope=\"col\" class=\"num\">Catalog coverage</th><th scope=\"col\" class=\"num\">Exposure Gini</th><th scope=\"col\" class=\"num\">Head items' share of exposure</th><th scope=\"col\" class=\"num\">of demand</th></tr></thead><tbody>");
            for (group, e) in &r.exposure {
                let v = serde_json::to_value(e).unwrap_or_default();
                let num = |k: &str| v[k].as_f64().unwrap_or(0.0);
                b.push_str(&format!(
                    "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{:.3}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
                    esc(&words(group)),
                    v["lists"].as_u64().unwrap_or(0),
                    pct(num("coverage")),
                    num("gini"),
                    pct(num("head_exposure_share")),
                    pct(num("head_demand_share"))
                ));
            }
            b.push_str("</tbody></table>");
        }
        Err(e) => b.push_str(&format!("<p class=\"muted\">{}</p>", esc(&e.message))),
    }
    s.page("Recommendations", &b)
}

async fn journeys(State(app): State<App>, headers: HeaderMap) -> Response {
    let s = staff!(app, headers, Area::Journeys);
    let reports = tryp!(s, app.journey_reports(&s.principal).await);
    let mut b = String::new();
    if reports.is_empty() {
        b.push_str("<p class=\"muted\">No journeys are configured in the policy file.</p>");
    }
    for r in &reports {
        let j = &r.journey;
        let o = &r.overall;
        b.push_str(&format!(
            "<h2>{}</h2><p>Trigger <code>{}</code>; {} step(s); holdout {}; exits on {}.</p>",
            esc(&j.name),
            esc(&j.trigger),
            j.steps.len(),
            pct(j.holdout),
            esc(&j.exit_on.join(", "))
        ));
        let funnel = [
            ("Entered", o.entered),
            ("Sent", o.sent),
            ("Opened (tracked)", o.opened),
            ("Clicked", o.clicked),
            ("Converted", o.converted),
            ("Unsubscribed", o.unsubscribed),
            ("Holdout", o.holdout),
            ("Holdout converted", o.holdout_converted),
        ];
        let rows: Vec<(String, f64, String)> = funnel
            .iter()
            .map(|(l, n)| ((*l).to_string(), *n as f64, n.to_string()))
            .collect();
        b.push_str(&bar_chart(&format!("Funnel of {}", j.name), &rows));
        let up = o
            .uplift
            .as_ref()
            .map(|u| serde_json::to_value(u).unwrap_or_default());
        b.push_str(&match up {
            Some(u) => format!(
                "<p>Conversion uplift against the holdout: <strong>{}</strong> (95% interval {} to {}).</p>",
                pct(u["uplift"].as_f64().unwrap_or(0.0)),
                pct(u["ci_low"].as_f64().unwrap_or(0.0)),
                pct(u["ci_high"].as_f64().unwrap_or(0.0))
            ),
            None => "<p class=\"muted\">No uplift yet: it needs conversions in both arms.</p>".into(),
        });
        if !o.skipped.is_empty() {
            b.push_str("<p>Skipped: ");
            b.push_str(
                &o.skipped
                    .iter()
                    .map(|(k, v)| format!("{} {v}", esc(k)))
                    .collect::<Vec<_>>()
                    .join(", "),
            );
            b.push_str("</p>");
        }
    }
    let found: Vec<String> = campaign_reports(&app, s.principal.tenant)
        .into_iter()
        .filter(|n| !n.starts_with("recommendations-"))
        .collect();
    {
        if !found.is_empty() {
            b.push_str("<h2>Campaign history</h2><ul>");
            for n in found {
                b.push_str(&format!(
                    "<li><a href=\"/console/reports/{0}\">{0}</a></li>",
                    esc(&n)
                ));
            }
            b.push_str("</ul>");
        }
    }
    s.page("Journeys", &b)
}

// ----------------------------------------------------------------------------------------
// Rights: requests, contests, messages
// ----------------------------------------------------------------------------------------

async fn requests(State(app): State<App>, headers: HeaderMap) -> Response {
    let s = staff!(app, headers, Area::Requests);
    let list = tryp!(s, app.list_requests(s.principal.tenant, false, false).await);
    let overdue = list.iter().filter(|r| r.overdue).count();
    let mut b = format!(
        "<p>{} request(s), <strong>{overdue} overdue</strong>. GDPR: one month (extendable by two); CCPA: 45 days, acknowledged within 10 business days.</p>",
        list.len()
    );
    b.push_str("<table><thead><tr><th scope=\"col\">Request</th><th scope=\"col\">Kind</th><th scope=\"col\">Regime</th><th scope=\"col\">Status</th><th scope=\"col\">Received</th><th scope=\"col\">Due</th><th scope=\"col\">Action</th></tr></thead><tbody>");
    for r in &list {
        let row = &r.row;
        let action = match row.status.as_str() {
            "verified" => format!(
                "<form method=\"post\" action=\"/console/requests/{}\" class=\"inline\">{}<input type=\"hidden\" name=\"action\" value=\"process\"><button type=\"submit\" aria-label=\"Process request {short}\">Process</button></form>",
                esc(&row.id),
                s.csrf(),
                short = esc(&row.id[..8.min(row.id.len())])
            ),
            "received" if row.acknowledged_at.is_none() => format!(
                "<form method=\"post\" action=\"/console/requests/{}\" class=\"inline\">{}<input type=\"hidden\" name=\"action\" value=\"acknowledge\"><button type=\"submit\" class=\"secondary\" aria-label=\"Acknowledge request {short}\">Acknowledge</button></form>",
                esc(&row.id),
                s.csrf(),
                short = esc(&row.id[..8.min(row.id.len())])
            ),
            _ => String::new(),
        };
        let action = format!("{action} {}", open_record(&s, row.subject));
        b.push_str(&format!(
            "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}{}</td><td>{action}</td></tr>",
            esc(&row.id[..8.min(row.id.len())]),
            esc(&row.kind),
            esc(&row.regime),
            esc(&row.status),
            when(row.received_at),
            when(row.due_at),
            if r.overdue {
                " <span class=\"badge overdue\">overdue</span>"
            } else {
                ""
            }
        ));
    }
    b.push_str("</tbody></table>");
    s.page("Data-subject requests", &b)
}

async fn request_action(
    State(app): State<App>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let s = staff!(app, headers, Area::Requests);
    let f = form!(s, headers, body);
    let (t, a) = (s.principal.tenant, s.principal.actor());
    let r = match f.get("action") {
        "acknowledge" => app.acknowledge_request(t, &a, &id).await,
        "process" => app.process_request(t, &a, &id).await,
        _ => Err(AppError::bad_request(
            "invalid_action",
            "the action must be acknowledge or process",
        )),
    };
    tryp!(s, r);
    see_other("/console/requests")
}

async fn contests(State(app): State<App>, headers: HeaderMap) -> Response {
    let s = staff!(app, headers, Area::Contests);
    let list = tryp!(
        s,
        app.contests(s.principal.tenant, &s.principal.actor(), None)
            .await
    );
    let names = actor_names(&app, s.principal.tenant).await;
    let mut b = String::from(
        "<p>People who contest an automated decision get a human review (GDPR Art. 22(3)). Overriding records the corrected outcome as a label for the next training run.</p>",
    );
    if list.is_empty() {
        b.push_str("<p class=\"muted\">No contested decisions.</p>");
    }
    for c in &list {
        b.push_str(&format!(
            "<section class=\"card\"><h2>Contest of decision <code>{}</code></h2><p>Status <span class=\"badge {}\">{}</span> · received {} · due {}{}</p><blockquote>{}</blockquote>",
            esc(&c.decision_id[..8.min(c.decision_id.len())]),
            if c.status == "open" { "neutral" } else { "pass" },
            esc(&c.status),
            when(c.created_at),
            when(c.due_at),
            if c.overdue { " <span class=\"badge overdue\">overdue</span>" } else { "" },
            esc(c.statement.as_deref().unwrap_or("(erased)"))
        ));
        if c.status == "open" {
            // What the person contests, in the words they were given.
            if let Ok((_, ds)) = app
                .decisions_for(s.principal.tenant, &s.principal.actor(), c.subject, 10_000)
                .await
                && let Some(d) = ds.iter().find(|d| d.id == c.decision_id)
            {
                b.push_str(&format!(
                    "<p><strong>The decision</strong> ({}, {}): {}</p>",
                    esc(&d.kind),
                    when(d.created_at),
                    esc(&d
                        .outcome
                        .as_ref()
                        .map_or_else(String::new, candor_app::rights::why_text))
                ));
            }
            b.push_str(&format!(
                "<form method=\"post\" action=\"/console/contests/{id}\">{}\
                 <fieldset><legend>Outcome</legend>\
                 <label><input type=\"radio\" name=\"outcome\" value=\"uphold\" required> Uphold the decision</label>\
                 <label><input type=\"radio\" name=\"outcome\" value=\"override\"> Override it</label></fieldset>\
                 <label for=\"label-{id}\">Corrected outcome when overriding</label><select id=\"label-{id}\" name=\"label\"><option value=\"\">none</option><option value=\"1\">1 (positive)</option><option value=\"0\">0 (negative)</option></select>\
                 <label for=\"note-{id}\">Note to the person</label><textarea id=\"note-{id}\" name=\"note\" required></textarea>\
                 <p><button type=\"submit\" aria-label=\"Record review of decision {short}\">Record review</button></p></form>",
                s.csrf(),
                id = esc(&c.id),
                short = esc(&c.decision_id[..8.min(c.decision_id.len())])
            ));
        } else {
            b.push_str(&format!(
                "<p>Reviewed by {}: {}</p>",
                esc(actor_name(&names, c.reviewer.as_deref().unwrap_or(""))),
                esc(c.note.as_deref().unwrap_or(""))
            ));
        }
        b.push_str(&open_record(&s, c.subject));
        b.push_str("</section>");
    }
    s.page("Contested decisions", &b)
}

async fn contest_review(
    State(app): State<App>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let s = staff!(app, headers, Area::Contests);
    let f = form!(s, headers, body);
    let label = match f.get("label") {
        "" => None,
        "0" => Some(0),
        "1" => Some(1),
        _ => return s.error(AppError::bad_request("label_invalid", "label is 0 or 1")),
    };
    tryp!(
        s,
        app.review_contest(
            s.principal.tenant,
            &s.principal.actor(),
            &id,
            f.get("outcome"),
            f.get("note"),
            label
        )
        .await
    );
    see_other("/console/contests")
}

async fn messages(State(app): State<App>, headers: HeaderMap) -> Response {
    let s = staff!(app, headers, Area::Messages);
    let list = tryp!(s, app.contact_queue(&s.principal, None).await);
    let mut b = String::from(
        "<p>Messages from the privacy center's \"talk to a person\". Answer the person, then close the message. Opening this page is recorded in the audit log.</p>",
    );
    if list.is_empty() {
        b.push_str("<p class=\"muted\">No messages.</p>");
    }
    for m in &list {
        b.push_str(&format!(
            "<section class=\"card\"><p>From person <code>{}</code> · {} · due {}{} · <span class=\"badge neutral\">{}</span></p><blockquote>{}</blockquote>",
            m.subject,
            when(m.created_at),
            when(m.due_at),
            if m.overdue { " <span class=\"badge overdue\">overdue</span>" } else { "" },
            esc(&m.status),
            esc(m.message.as_deref().unwrap_or("(erased)"))
        ));
        if m.status == "open" {
            b.push_str(&format!(
                "<form method=\"post\" action=\"/console/messages/{}/close\">{}<button type=\"submit\" class=\"secondary\" aria-label=\"Mark answered: the message of {}\">Mark answered</button></form>",
                esc(&m.id),
                s.csrf(),
                when(m.created_at)
            ));
        }
        b.push_str(&open_record(&s, m.subject));
        b.push_str("</section>");
    }
    s.page("Messages", &b)
}

async fn message_close(
    State(app): State<App>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let s = staff!(app, headers, Area::Messages);
    let _ = form!(s, headers, body);
    tryp!(s, app.close_contact(&s.principal, &id).await);
    see_other("/console/messages")
}

/// The assistant's hand-offs: open and answered tickets with their (redacted) conversation,
/// and a form to reply into it. Opening a person's conversation is audited.
async fn assistant_tickets(State(app): State<App>, headers: HeaderMap) -> Response {
    let s = staff!(app, headers, Area::Messages);
    let mut tickets = tryp!(
        s,
        app.assistant_tickets(&s.principal, Some("open"), 100).await
    );
    tickets.extend(tryp!(
        s,
        app.assistant_tickets(&s.principal, Some("answered"), 100)
            .await
    ));
    let mut b = String::from(
        "<p>Conversations the shopping assistant handed to a person: on request, on a sensitive topic, or after it failed to understand. Your reply is delivered into the conversation (stored redacted). Opening a person's conversation is recorded in the audit log.</p>",
    );
    if tickets.is_empty() {
        b.push_str("<p class=\"muted\">No hand-offs waiting.</p>");
    }
    for t in &tickets {
        let conv = tryp!(
            s,
            app.conversation_view(&s.principal, &t.conversation_id)
                .await
        );
        b.push_str(&format!(
            "<section class=\"card\"><p>{} · reason <code>{}</code> · <span class=\"badge neutral\">{}</span></p><ol class=\"transcript\">",
            when(t.created_at),
            esc(&t.reason),
            esc(&t.status)
        ));
        for m in conv["messages"].as_array().into_iter().flatten() {
            b.push_str(&format!(
                "<li><strong>{}</strong>: {}</li>",
                esc(m["role"].as_str().unwrap_or("")),
                esc(m["text"].as_str().unwrap_or(""))
            ));
        }
        let id = esc(&t.id);
        b.push_str(&format!(
            "</ol><form method=\"post\" action=\"/console/assistant/{id}/reply\">{}\
             <label for=\"reply-{id}\">Reply to the customer</label><textarea id=\"reply-{id}\" name=\"message\" required maxlength=\"2000\"></textarea>\
             <label><input type=\"checkbox\" name=\"close\" value=\"1\"> Close the hand-off</label>\
             <button type=\"submit\">Send reply</button></form>",
            s.csrf()
        ));
        if let Some(subject) = t.subject {
            b.push_str(&open_record(&s, subject));
        }
        b.push_str("</section>");
    }
    s.page("Assistant hand-offs", &b)
}

async fn assistant_reply(
    State(app): State<App>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let s = staff!(app, headers, Area::Messages);
    let f = form!(s, headers, body);
    let message = f.get("message").trim().to_owned();
    if message.is_empty() || message.chars().count() > candor_app::assistant::MAX_MESSAGE {
        return s.error(AppError::bad_request(
            "message_invalid",
            "the reply is text of 1 to 2000 characters",
        ));
    }
    tryp!(
        s,
        app.answer_ticket(&s.principal, &id, &message, f.get("close") == "1")
            .await
    );
    see_other("/console/assistant")
}

// ----------------------------------------------------------------------------------------
// Audit log and policy
// ----------------------------------------------------------------------------------------

#[derive(Deserialize)]
struct AuditQuery {
    limit: Option<u32>,
}

async fn audit_log(
    State(app): State<App>,
    headers: HeaderMap,
    q: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let s = staff!(app, headers, Area::AuditLog);
    let limit = q.ok().and_then(|q| q.0.limit).unwrap_or(200).clamp(1, 2000);
    let (entries, verified) = tryp!(s, app.audit_tail(s.principal.tenant, limit).await);
    let names = actor_names(&app, s.principal.tenant).await;
    let mut b = match verified {
        Ok(n) => format!(
            "<p class=\"notice ok\" role=\"status\">The audit log verifies: {n} entries, every hash and link intact.</p>"
        ),
        Err(e) => format!(
            "<p class=\"notice warn\" role=\"alert\">The audit log does NOT verify: {}</p>",
            esc(&e)
        ),
    };
    b.push_str(&format!("<p>The newest {} entries of this store's chain.</p><table><thead><tr><th scope=\"col\" class=\"num\">#</th><th scope=\"col\">When</th><th scope=\"col\">Actor</th><th scope=\"col\">Action</th><th scope=\"col\">Target</th><th scope=\"col\">Details</th></tr></thead><tbody>", entries.len()));
    for e in &entries {
        b.push_str(&format!(
            "<tr><td class=\"num\">{}</td><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td><td><code>{}</code></td></tr>",
            e.seq,
            when(e.at),
            esc(actor_name(&names, &e.actor)),
            esc(&e.action),
            esc(e.target.as_deref().unwrap_or("")),
            esc(&e.details)
        ));
    }
    b.push_str("</tbody></table>");
    s.page("Audit log", &b)
}

async fn policy(State(app): State<App>, headers: HeaderMap) -> Response {
    let s = staff!(app, headers, Area::Policy);
    let p = app.policy();
    let mut b = format!(
        "<p>Policy file hash <code>{}</code>. Default jurisdiction: {}.</p><h2>Purposes</h2><table><thead><tr><th scope=\"col\">Purpose</th><th scope=\"col\">Basis</th><th scope=\"col\">Reads</th><th scope=\"col\">Description</th></tr></thead><tbody>",
        esc(&p.source_hash()),
        esc(p.default_jurisdiction())
    );
    for d in p.purposes() {
        b.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(d.name.as_str()),
            esc(&d.basis.to_string()),
            esc(&d
                .categories
                .iter()
                .map(|c| c.as_str())
                .collect::<Vec<_>>()
                .join(", ")),
            esc(&d.description)
        ));
    }
    b.push_str("</tbody></table><h2>Data categories</h2><table><thead><tr><th scope=\"col\">Category</th><th scope=\"col\" class=\"num\">Kept (days)</th><th scope=\"col\">Sealed</th><th scope=\"col\">Protected</th><th scope=\"col\">Description</th></tr></thead><tbody>");
    for c in p.categories() {
        b.push_str(&format!(
            "<tr><td>{}</td><td class=\"num\">{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(c.name.as_str()),
            c.retention_days,
            if c.sealed { "yes" } else { "no" },
            if c.protected { "yes" } else { "no" },
            esc(&c.description)
        ));
    }
    b.push_str("</tbody></table>");
    b.push_str(&format!(
        "<h2>Journeys</h2><p>{} journey(s) configured.</p>",
        p.journeys().len()
    ));
    s.page("Policy", &b)
}

/// The HTML reports of past campaigns of a tenant: `<reports>/<tenant id>/*.html`.
fn campaign_reports(app: &App, tenant: candor_types::TenantId) -> Vec<String> {
    let mut found = Vec::new();
    if let Some(dir) = app.reports_dir()
        && let Ok(rd) = std::fs::read_dir(dir.join(tenant.to_string()))
    {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.ends_with(".html") && e.file_type().is_ok_and(|t| t.is_file()) {
                found.push(name);
            }
        }
    }
    found.sort();
    found
}

async fn campaign_report(
    State(app): State<App>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Response {
    let s = staff!(app, headers, Area::Journeys);
    // Only a name the listing shows: nothing else of the file system is reachable.
    let tenant = s.principal.tenant;
    if !campaign_reports(&app, tenant).contains(&name) {
        return s.error(AppError::not_found("report"));
    }
    let Some(dir) = app.reports_dir() else {
        return s.error(AppError::not_found("report"));
    };
    match std::fs::read_to_string(dir.join(tenant.to_string()).join(&name)) {
        Ok(text) => report(text),
        Err(_) => s.error(AppError::not_found("report")),
    }
}
