//! The privacy center under `/privacy/`: a store's customers sign in with a one-time link sent
//! to the address they gave the store, then see what is held about them and why, change their
//! consent (withdrawing is one button, like granting), download or delete their data, read the
//! automated decisions about them in plain words, contest one, or write to a person.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use candor_app::web::{CUSTOMER_SESSION_MS, LinkOutcome, WebSession};
use candor_app::{App, AppError};
use candor_types::{SubjectId, TenantId};
use serde::Deserialize;

use super::{
    Form, checked_form, cookie, csrf_field, error_page, esc, html, page, pre_form, pre_token_of,
    see_other, set_cookie, sign_out, when, words,
};

const AREA: &str = "Privacy center";
const COOKIE: &str = "candor_privacy";
const PRE_COOKIE: &str = "candor_privacy_pre";

pub(super) fn routes() -> Router<App> {
    Router::new()
        .route("/privacy", get(|| async { see_other("/privacy/") }))
        .route("/privacy/", get(start))
        .route("/privacy/signin", post(signin))
        .route("/privacy/link/{token}", get(link_page).post(link_redeem))
        .route("/privacy/home", get(home))
        .route("/privacy/consent", post(consent))
        .route("/privacy/recommendations", get(recommendations))
        .route("/privacy/decisions", get(decisions))
        .route("/privacy/contest", post(contest))
        .route("/privacy/download", get(download))
        .route("/privacy/delete", get(delete_page).post(delete))
        .route("/privacy/contact", get(contact_page).post(contact))
        .route("/privacy/signout", post(signout))
}

/// A signed-in customer.
struct Customer {
    session: WebSession,
    tenant: TenantId,
    subject: SubjectId,
}

impl Customer {
    fn actor(&self) -> String {
        format!("subject:{}", self.subject)
    }

    fn csrf(&self) -> String {
        csrf_field(&self.session.row.csrf)
    }

    fn nav(&self) -> String {
        self.nav_at("")
    }

    /// The navigation, the link of the page titled `title` marked as the current page.
    fn nav_at(&self, title: &str) -> String {
        let links = [
            ("/privacy/home", "My data and choices"),
            ("/privacy/recommendations", "My recommendations"),
            ("/privacy/decisions", "Decisions about me"),
            ("/privacy/download", "Download my data"),
            ("/privacy/contact", "Talk to a person"),
            ("/privacy/delete", "Delete my account"),
        ];
        let mut s = String::from("<nav aria-label=\"Privacy center\"><ul>");
        for (href, label) in links {
            let cur = if title == label {
                " aria-current=\"page\""
            } else {
                ""
            };
            s.push_str(&format!("<li><a href=\"{href}\"{cur}>{label}</a></li>"));
        }
        s.push_str(&format!(
            "</ul></nav><form method=\"post\" action=\"/privacy/signout\" id=\"signout\">{}<button type=\"submit\" class=\"secondary\">Sign out</button></form>",
            self.csrf()
        ));
        s
    }

    fn page(&self, title: &str, body: &str) -> Response {
        html(StatusCode::OK, page(title, AREA, &self.nav_at(title), body))
    }

    fn error(&self, e: AppError) -> Response {
        error_page(AREA, &self.nav(), e)
    }

    fn form(&self, headers: &HeaderMap, body: &Bytes) -> Result<Form, Response> {
        checked_form(headers, body, &self.session.row.csrf, AREA)
    }
}

async fn customer(app: &App, headers: &HeaderMap) -> Result<Customer, Response> {
    let Some(secret) = cookie(headers, COOKIE) else {
        return Err(see_other("/privacy/"));
    };
    let session = match app.web_session(&secret).await {
        Ok(Some(s)) => s,
        Ok(None) => return Err(see_other("/privacy/")),
        Err(e) => return Err(error_page(AREA, "", e)),
    };
    let Some((tenant, subject)) = session.customer() else {
        return Err(see_other("/privacy/"));
    };
    Ok(Customer {
        session,
        tenant,
        subject,
    })
}

macro_rules! customer {
    ($app:expr, $headers:expr) => {
        match customer(&$app, &$headers).await {
            Ok(c) => c,
            Err(r) => return r,
        }
    };
}

// ----------------------------------------------------------------------------------------
// Signing in
// ----------------------------------------------------------------------------------------

#[derive(Deserialize)]
struct StartQuery {
    store: Option<String>,
}

fn signin_form(token: &str, store: &str, notice: Option<(&str, &str)>) -> String {
    let n = notice.map_or(String::new(), |(class, m)| {
        format!("<p class=\"notice {class}\" role=\"status\">{}</p>", esc(m))
    });
    page(
        "Your privacy",
        AREA,
        "",
        &format!(
            "{n}<p>See the data this shop holds about you and what it is used for, change your choices, download or delete your data, and see the automated decisions made about you.</p>\
             <form method=\"post\" action=\"/privacy/signin\">{}<input type=\"hidden\" name=\"store\" value=\"{}\">\
             <label for=\"email\">Email address</label>\
             <input type=\"email\" id=\"email\" name=\"email\" autocomplete=\"email\" required aria-describedby=\"email-help\">\
             <p id=\"email-help\" class=\"muted\">Use the address you gave the shop. We email you a link that signs you in once; no password.</p>\
             <p><button type=\"submit\">Email me a sign-in link</button></p></form>",
            csrf_field(token),
            esc(store)
        ),
    )
}

fn with_pre(token: &str, res: Response) -> Response {
    (
        [(
            header::SET_COOKIE,
            set_cookie(PRE_COOKIE, token, "/privacy", 3600),
        )],
        res,
    )
        .into_response()
}

async fn start(
    State(app): State<App>,
    headers: HeaderMap,
    q: Result<Query<StartQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    if customer(&app, &headers).await.is_ok() {
        return see_other("/privacy/home");
    }
    let store = q
        .ok()
        .and_then(|q| q.0.store)
        .unwrap_or_else(|| "default".into());
    let token = pre_token_of(&headers, PRE_COOKIE);
    with_pre(
        &token,
        html(StatusCode::OK, signin_form(&token, &store, None)),
    )
}

/// Sign-in link requests per network address: 60 per 10 minutes (behind a reverse proxy the
/// proxy's address is the key, so the limit is the whole shop's).
static SIGNIN_LIMIT: std::sync::LazyLock<super::Limiter> =
    std::sync::LazyLock::new(|| super::Limiter::new(std::time::Duration::from_secs(600), 60));

async fn signin(State(app): State<App>, req: axum::extract::Request) -> Response {
    let peer = req
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map_or_else(String::new, |c| c.0.ip().to_string());
    let headers = req.headers().clone();
    let Ok(body) = axum::body::to_bytes(req.into_body(), 64 * 1024).await else {
        return html(
            StatusCode::PAYLOAD_TOO_LARGE,
            page("Bad request", AREA, "", "<p>The form is too large.</p>"),
        );
    };
    let (f, pre) = match pre_form(&headers, &body, PRE_COOKIE, AREA) {
        Ok(x) => x,
        Err(r) => return r,
    };
    if !SIGNIN_LIMIT.begin(&peer) {
        return html(
            StatusCode::TOO_MANY_REQUESTS,
            signin_form(
                &pre,
                f.get("store"),
                Some((
                    "warn",
                    "Too many sign-in requests from your network. Try again in a few minutes.",
                )),
            ),
        );
    }
    let store = if f.get("store").is_empty() {
        "default"
    } else {
        f.get("store")
    };
    let tenant = match app.find_tenant(store).await {
        Ok(t) => t.id,
        Err(e) => return error_page(AREA, "", e),
    };
    let base = app.policy().email().public_url.clone();
    let outcome = match app.request_signin_link(tenant, f.get("email"), &base).await {
        Ok(o) => o,
        Err(e) if e.code == "email_invalid" => {
            return html(
                StatusCode::BAD_REQUEST,
                signin_form(&pre, store, Some(("warn", &e.message))),
            );
        }
        Err(e) => return error_page(AREA, "", e),
    };
    // The same answer whether or not the address is known (it must not tell who is a
    // customer); the log keeps the outcome, not the address.
    tracing::info!(outcome = ?outcome, "privacy center sign-in link requested");
    let msg = match outcome {
        LinkOutcome::Sent | LinkOutcome::UnknownAddress | LinkOutcome::RateLimited => {
            "If this address belongs to a customer of the shop, a sign-in link is on its way. It works once, for 15 minutes. At most three links are sent per hour."
        }
    };
    html(StatusCode::OK, signin_form(&pre, store, Some(("ok", msg))))
}

/// The link from the email shows a button: opening a URL (a mail scanner does) never signs in.
/// A sign-in token as the emails carry it: `pl_` and base64url.
fn token_shape(token: &str) -> bool {
    token.len() <= 100
        && token.starts_with("pl_")
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn link_invalid() -> Response {
    error_page(
        AREA,
        "",
        AppError::new(
            candor_app::ErrorKind::NotFound,
            "link_invalid",
            "this sign-in link was already used, has expired, or is not valid: ask for a new one",
        ),
    )
}

async fn link_page(headers: HeaderMap, Path(token): Path<String>) -> Response {
    if !token_shape(&token) {
        return link_invalid();
    }
    let pre = pre_token_of(&headers, PRE_COOKIE);
    with_pre(
        &pre,
        html(
            StatusCode::OK,
            page(
                "Sign in",
                AREA,
                "",
                &format!(
                    "<p>Sign in to the privacy center with the link we emailed you.</p>\
                     <form method=\"post\" action=\"/privacy/link/{}\">{}<button type=\"submit\">Sign in</button></form>",
                    esc(&token),
                    csrf_field(&pre)
                ),
            ),
        ),
    )
}

async fn link_redeem(
    State(app): State<App>,
    headers: HeaderMap,
    Path(token): Path<String>,
    body: Bytes,
) -> Response {
    if let Err(r) = pre_form(&headers, &body, PRE_COOKIE, AREA) {
        return r;
    }
    if !token_shape(&token) {
        return link_invalid();
    }
    match app.redeem_signin_link(&token).await {
        Ok((secret, _)) => (
            [(
                header::SET_COOKIE,
                set_cookie(COOKIE, &secret, "/privacy", CUSTOMER_SESSION_MS / 1000),
            )],
            see_other("/privacy/home"),
        )
            .into_response(),
        Err(e) => error_page(AREA, "", e),
    }
}

async fn signout(State(app): State<App>, headers: HeaderMap, body: Bytes) -> Response {
    let c = customer!(app, headers);
    let _ = form!(c, headers, body);
    tryp!(
        c,
        sign_out(&app, &headers, COOKIE, "/privacy", "/privacy/").await
    )
}

// ----------------------------------------------------------------------------------------
// Data and choices
// ----------------------------------------------------------------------------------------

async fn home(State(app): State<App>, headers: HeaderMap) -> Response {
    let c = customer!(app, headers);
    let consents = tryp!(c, app.own_consents(c.tenant, c.subject).await);
    let held = tryp!(c, app.held_data(c.tenant, c.subject, &consents).await);
    let address = tryp!(c, app.own_address_masked(c.tenant, c.subject).await);
    let mut b = format!(
        "<p class=\"notice\" id=\"account\">Signed in as <strong>{}</strong>. Not you? <a href=\"#signout\">Sign out</a> (the button at the top).</p>",
        esc(address.as_deref().unwrap_or("a customer of the shop"))
    );
    b.push_str(
        "<h2>Your choices</h2><p>Each use of your data that needs your consent is listed here. You can change your answer at any time; withdrawing takes effect at once.</p>",
    );
    for p in &consents.purposes {
        let def = app
            .policy()
            .purposes()
            .find(|d| d.name.as_str() == p.purpose);
        let desc = def.map_or(String::new(), |d| d.description.clone());
        let consent_based = p.basis == "consent";
        b.push_str(&format!(
            "<fieldset><legend>{}</legend><p>{}</p><p>Status: <span class=\"badge {}\" id=\"state-{}\">{}</span> <span class=\"muted\">{}</span></p>",
            esc(&words(&p.purpose)),
            esc(&desc),
            if p.allowed { "allowed" } else { "denied" },
            esc(&p.purpose),
            if p.allowed { "in use" } else { "not in use" },
            esc(&plain_reason(&p.reason))
        ));
        if consent_based {
            let granted = p.consent == Some("granted");
            b.push_str(&format!(
                "<form method=\"post\" action=\"/privacy/consent\">{}<input type=\"hidden\" name=\"purpose\" value=\"{}\">\
                 <input type=\"hidden\" name=\"state\" value=\"{}\"><button type=\"submit\" class=\"{}\">{} {}</button></form>",
                c.csrf(),
                esc(&p.purpose),
                if granted { "withdrawn" } else { "granted" },
                if granted { "danger" } else { "" },
                if granted { "Withdraw consent for" } else { "Give consent for" },
                esc(&p.purpose.replace('_', " "))
            ));
        } else {
            b.push_str(&format!(
                "<p class=\"muted\">Legal basis: {}. To object, <a href=\"/privacy/contact\">write to a person</a>.</p>",
                esc(&p.basis.replace('_', " "))
            ));
        }
        b.push_str("</fieldset>");
    }
    b.push_str("<h2>What we hold about you</h2>");
    if held.is_empty() {
        b.push_str("<p>Nothing but your consent answers.</p>");
    } else {
        b.push_str("<table><thead><tr><th scope=\"col\">Kind of data</th><th scope=\"col\">What</th><th scope=\"col\">Kept for</th><th scope=\"col\">May be used for</th></tr></thead><tbody>");
        for h in &held {
            let mut what = Vec::new();
            if !h.profile_fields.is_empty() {
                what.push(format!(
                    "profile: {}",
                    h.profile_fields
                        .iter()
                        .map(|f| f.trim_start_matches("traits."))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            if h.events > 0 {
                what.push(format!("{} recorded activities", h.events));
            }
            let uses = h
                .purposes
                .iter()
                .map(|(p, _, allowed)| {
                    format!("{}{}", words(p), if *allowed { "" } else { " (not now)" })
                })
                .collect::<Vec<_>>()
                .join(", ");
            b.push_str(&format!(
                "<tr><td><strong>{}</strong><br><span class=\"muted\">{}</span></td><td>{}</td><td>{} days</td><td>{}</td></tr>",
                esc(&words(&h.category)),
                esc(&h.description),
                esc(&what.join("; ")),
                h.retention_days,
                esc(if uses.is_empty() { "nothing" } else { &uses })
            ));
        }
        b.push_str("</tbody></table>");
    }
    b.push_str("<p><a href=\"/privacy/download\">Download all of it</a> as a file (JSON).</p>");
    c.page("My data and choices", &b)
}

async fn consent(State(app): State<App>, headers: HeaderMap, body: Bytes) -> Response {
    let c = customer!(app, headers);
    let f = form!(c, headers, body);
    let granted = match f.get("state") {
        "granted" => true,
        "withdrawn" => false,
        _ => {
            return c.error(AppError::bad_request(
                "invalid_consent_state",
                "state must be granted or withdrawn",
            ));
        }
    };
    tryp!(
        c,
        app.set_own_consent(c.tenant, c.subject, f.get("purpose"), granted)
            .await
    );
    see_other("/privacy/home")
}

async fn recommendations(State(app): State<App>, headers: HeaderMap) -> Response {
    let c = customer!(app, headers);
    let list = tryp!(
        c,
        app.recommend(c.tenant, &c.actor(), c.subject, 10, None)
            .await
    );
    let mut b = if list.personalized {
        String::from(
            "<p class=\"notice\" id=\"rec-kind\" data-personalized=\"true\"><strong>Personalized</strong>: chosen for you by an automated recommendation system, from your purchases, because you agreed to personalised recommendations. You can withdraw that on <a href=\"/privacy/home\">My data and choices</a>.</p>",
        )
    } else {
        String::from(
            "<p class=\"notice\" id=\"rec-kind\" data-personalized=\"false\"><strong>Not personalized</strong>: these are the shop's most popular products, the same for everyone. Nothing about you was used.</p>",
        )
    };
    b.push_str(&format!(
        "<p class=\"muted\">Basis: {}</p><ol>",
        esc(&plain_reason(&list.basis))
    ));
    for i in &list.items {
        b.push_str(&format!(
            "<li>{} <span class=\"muted\">— {}</span></li>",
            esc(if i.name.is_empty() { &i.item } else { &i.name }),
            esc(&i.reason)
        ));
    }
    b.push_str("</ol>");
    if list.items.is_empty() {
        b.push_str("<p class=\"muted\">No recommendations yet.</p>");
    }
    c.page("My recommendations", &b)
}

async fn decisions(State(app): State<App>, headers: HeaderMap) -> Response {
    let c = customer!(app, headers);
    let (_, list) = tryp!(
        c,
        app.decisions_for(c.tenant, &c.actor(), c.subject, 100)
            .await
    );
    let contested: Vec<(String, String, String)> =
        tryp!(c, app.own_contests(c.tenant, c.subject).await)
            .into_iter()
            .map(|(d, st, note)| (d, st, note.unwrap_or_default()))
            .collect();
    let mut b = String::from(
        "<p>Automated decisions made about you, and why, in plain words. If you think one is wrong, contest it: a person reviews it and answers you.</p>",
    );
    if list.is_empty() {
        b.push_str("<p class=\"muted\">No automated decisions about you.</p>");
    }
    for d in &list {
        let why = d
            .outcome
            .as_ref()
            .map_or_else(String::new, candor_app::rights::why_text);
        b.push_str(&format!(
            "<section class=\"card decision\"><h2>{} · {}</h2><p>{}</p>",
            esc(&label(&d.kind, &d.purpose)),
            when(d.created_at),
            esc(&why)
        ));
        if let Some((_, status, note)) = contested.iter().find(|(id, _, _)| *id == d.id) {
            b.push_str(&format!(
                "<p class=\"notice\" role=\"status\">You contested this decision: <strong>{}</strong>{}</p>",
                esc(match status.as_str() {
                    "open" => "a person is reviewing it",
                    "upheld" => "the decision was upheld",
                    "overridden" => "the decision was overridden",
                    s => s,
                }),
                if note.is_empty() { String::new() } else { format!(" — {}", esc(note)) }
            ));
        } else if d.outcome.is_some() {
            let fid = format!("statement-{}", esc(&d.id));
            b.push_str(&format!(
                "<form method=\"post\" action=\"/privacy/contest\">{}<input type=\"hidden\" name=\"decision\" value=\"{}\">\
                 <label for=\"{fid}\">Why do you think this is wrong?</label><textarea id=\"{fid}\" name=\"statement\" required maxlength=\"5000\"></textarea>\
                 <p><button type=\"submit\">Contest this decision</button></p></form>",
                c.csrf(),
                esc(&d.id)
            ));
        }
        b.push_str("</section>");
    }
    c.page("Decisions about me", &b)
}

/// A policy reason as a customer reads it: no code quotes or snake_case, times to the minute.
fn plain_reason(reason: &str) -> String {
    let s = reason.replace('`', "").replace('_', " ");
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        // 2026-11-23T05:22:37.005Z → 2026-11-23 05:22 UTC
        let is_time = b.len() >= i + 20
            && b[i..i + 4].iter().all(u8::is_ascii_digit)
            && b[i + 4] == b'-'
            && b[i + 10] == b'T'
            && b[i + 13] == b':'
            && s.is_char_boundary(i + 16);
        if is_time {
            let end = s[i..].find('Z').map_or(s.len(), |z| i + z + 1);
            out.push_str(&s[i..i + 10]);
            out.push(' ');
            out.push_str(&s[i + 11..i + 16]);
            out.push_str(" UTC");
            i = end;
            continue;
        }
        let c = s[i..].chars().next().unwrap_or(' ');
        out.push(c);
        i += c.len_utf8();
    }
    out
}

fn label(kind: &str, purpose: &str) -> String {
    match kind {
        "lead_score" => "Score of your interest in an offer".into(),
        "recommendations" => "Products recommended to you".into(),
        "journey_email" => "An email sent to you".into(),
        other => format!("{other} ({purpose})"),
    }
}

async fn contest(State(app): State<App>, headers: HeaderMap, body: Bytes) -> Response {
    let c = customer!(app, headers);
    let f = form!(c, headers, body);
    tryp!(
        c,
        app.contest_decision(
            c.tenant,
            &c.actor(),
            c.subject,
            f.get("decision"),
            f.get("statement")
        )
        .await
    );
    see_other("/privacy/decisions")
}

async fn download(State(app): State<App>, headers: HeaderMap) -> Response {
    let c = customer!(app, headers);
    let bytes = tryp!(c, app.export_bytes(c.tenant, &c.actor(), c.subject).await);
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"my-data.json\"",
            ),
        ],
        bytes,
    )
        .into_response()
}

async fn delete_page(State(app): State<App>, headers: HeaderMap) -> Response {
    let c = customer!(app, headers);
    c.page(
        "Delete my account",
        &format!(
            "<p>This deletes the data the shop holds about you in Candor: your profile, activity, consent answers, decisions, messages and recommendations. Your encryption key is destroyed, so copies in backups can no longer be read. A receipt is kept that says what was deleted and when, without your data.</p>\
             <form method=\"post\" action=\"/privacy/delete\">{}\
             <label><input type=\"checkbox\" name=\"confirm\" value=\"yes\" required> I understand that this cannot be undone</label>\
             <p><button type=\"submit\" class=\"danger\">Delete my account</button></p></form>",
            c.csrf()
        ),
    )
}

async fn delete(State(app): State<App>, headers: HeaderMap, body: Bytes) -> Response {
    let c = customer!(app, headers);
    let f = form!(c, headers, body);
    if f.get("confirm") != "yes" {
        return c.error(AppError::bad_request(
            "confirmation_required",
            "tick the box to confirm the deletion",
        ));
    }
    let receipt = tryp!(c, app.erase_subject(c.tenant, &c.actor(), c.subject).await);
    // The erasure ended every session of the person, this one included.
    (
        [(header::SET_COOKIE, set_cookie(COOKIE, "", "/privacy", 0))],
        html(
            StatusCode::OK,
            page(
                "Your account was deleted",
                AREA,
                "",
                &format!(
                    "<p class=\"notice ok\" role=\"status\">Your data was deleted on {}. Receipt <code>{}</code>: {} activities, {} profile fields and {} consent answers were deleted, and your encryption key was destroyed.</p>",
                    when(receipt.erased_at),
                    esc(&receipt.receipt_id),
                    receipt.erased.events,
                    receipt.erased.subject_fields,
                    receipt.erased.consents
                ),
            ),
        ),
    )
        .into_response()
}

async fn contact_page(State(app): State<App>, headers: HeaderMap) -> Response {
    let c = customer!(app, headers);
    let mine = tryp!(c, app.own_contacts(c.tenant, c.subject).await);
    let mut b = format!(
        "<p>Write to a person at the shop about your data, a decision, or anything else. A person answers within three days.</p>\
         <form method=\"post\" action=\"/privacy/contact\">{}\
         <label for=\"message\">Your message</label><textarea id=\"message\" name=\"message\" required maxlength=\"5000\"></textarea>\
         <p><button type=\"submit\">Send to a person</button></p></form>",
        c.csrf()
    );
    if !mine.is_empty() {
        b.push_str("<h2>Your messages</h2><ul>");
        for m in &mine {
            b.push_str(&format!(
                "<li>{} — {} <span class=\"badge neutral\">{}</span></li>",
                when(m.created_at),
                esc(m.message.as_deref().unwrap_or("")),
                if m.status == "open" {
                    "waiting for an answer"
                } else {
                    "answered"
                }
            ));
        }
        b.push_str("</ul>");
    }
    c.page("Talk to a person", &b)
}

async fn contact(State(app): State<App>, headers: HeaderMap, body: Bytes) -> Response {
    let c = customer!(app, headers);
    let f = form!(c, headers, body);
    tryp!(
        c,
        app.contact_human(c.tenant, c.subject, f.get("message"))
            .await
    );
    see_other("/privacy/contact")
}

#[cfg(test)]
mod tests {
    use super::plain_reason;

    #[test]
    fn reasons_read_as_words() {
        assert_eq!(
            plain_reason("consent withdrawn at 2026-11-23T05:22:37.005Z via banner"),
            "consent withdrawn at 2026-11-23 05:22 UTC via banner"
        );
        assert_eq!(
            plain_reason("`eu` requires opt-in for `sale_sharing`"),
            "eu requires opt-in for sale sharing"
        );
        assert_eq!(plain_reason("é 2026"), "é 2026");
        assert_eq!(
            plain_reason("2026-11-23T05:2é 9 0 0 0"),
            "2026-11-23T05:2é 9 0 0 0"
        );
    }
}
