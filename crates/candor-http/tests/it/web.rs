//! The console and the privacy center through the router, as a browser without JavaScript
//! would use them: cookies kept in a jar, forms posted url-encoded. On SQLite and PostgreSQL.

use std::collections::HashMap;

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode, header};
use candor_store::Store;
use candor_testkit::{BACKENDS, TempDir};
use serde_json::json;
use tower::ServiceExt as _;

use super::H;

/// A cookie jar and the last response's headers.
#[derive(Default)]
pub(super) struct Browser {
    jar: HashMap<String, String>,
}

pub(super) struct Page {
    pub(super) status: StatusCode,
    headers: HeaderMap,
    pub(super) body: String,
}

impl Page {
    fn location(&self) -> &str {
        self.headers
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// The value of the hidden `csrf` field of the page's first form.
    pub(super) fn csrf(&self) -> String {
        let i = self
            .body
            .find("name=\"csrf\" value=\"")
            .expect("a csrf field");
        let rest = &self.body[i + 19..];
        rest[..rest.find('"').unwrap()].to_string()
    }
}

impl Browser {
    async fn send(&mut self, h: &H, req: Request<Body>) -> Page {
        let res = h.router.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        for c in headers.get_all(header::SET_COOKIE) {
            let c = c.to_str().unwrap();
            let (kv, _) = c.split_once(';').unwrap();
            let (k, v) = kv.split_once('=').unwrap();
            if v.is_empty() {
                self.jar.remove(k);
            } else {
                self.jar.insert(k.into(), v.into());
            }
        }
        let bytes = axum::body::to_bytes(res.into_body(), 10 << 20)
            .await
            .unwrap();
        Page {
            status,
            headers,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }

    fn cookie_header(&self) -> String {
        self.jar
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    pub(super) async fn get(&mut self, h: &H, path: &str) -> Page {
        let req = Request::get(path)
            .header(header::COOKIE, self.cookie_header())
            .body(Body::empty())
            .unwrap();
        self.send(h, req).await
    }

    pub(super) async fn post(&mut self, h: &H, path: &str, form: &[(&str, &str)]) -> Page {
        let body = serde_urlencoded::to_string(form).unwrap();
        let req = Request::post(path)
            .header(header::COOKIE, self.cookie_header())
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::HOST, "shop.test")
            .header(header::ORIGIN, "https://shop.test")
            .body(Body::from(body))
            .unwrap();
        self.send(h, req).await
    }
}

const PASSWORD: &str = "correct horse battery";

pub(super) async fn staff(h: &H, login: &str, role: &str) {
    h.t.app
        .create_staff(h.tenant, "test", login, role, PASSWORD)
        .await
        .unwrap();
}

pub(super) async fn sign_in(h: &H, login: &str) -> Browser {
    let mut b = Browser::default();
    let p = b.get(h, "/console/login").await;
    let csrf = p.csrf();
    let p = b
        .post(
            h,
            "/console/login",
            &[("csrf", &csrf), ("login", login), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{login}: {}", p.body);
    b
}

#[tokio::test]
async fn console_sign_in_sessions_csrf_and_roles() {
    for backend in BACKENDS {
        let Some(h) = H::new(backend).await else {
            continue;
        };
        staff(&h, "rita@shop.test", "reviewer").await;
        staff(&h, "mark@shop.test", "marketer").await;
        staff(&h, "cora@shop.test", "compliance").await;
        // Too short a password, an unknown role, a taken login: clear errors, nothing stored.
        for (login, role, pw, code) in [
            ("x@shop.test", "reviewer", "short", "password_too_short"),
            ("x@shop.test", "owner", PASSWORD, "role_invalid"),
            ("rita@shop.test", "admin", PASSWORD, "login_taken"),
        ] {
            let e =
                h.t.app
                    .create_staff(h.tenant, "test", login, role, pw)
                    .await
                    .unwrap_err();
            assert_eq!(e.code, code);
        }
        assert_eq!(h.t.app.list_staff(h.tenant).await.unwrap().len(), 3);

        // The sign-in page: a pre-session CSRF cookie with every protection, a strict CSP.
        let mut b = Browser::default();
        let p = b.get(&h, "/console/login").await;
        assert_eq!(p.status, StatusCode::OK);
        let csp = p.headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(
            csp.contains("default-src 'none'") && !csp.contains("script-src"),
            "{csp}"
        );
        assert_eq!(p.headers["referrer-policy"], "no-referrer");
        assert_eq!(p.headers[header::CACHE_CONTROL], "no-store");
        let set = p.headers[header::SET_COOKIE].to_str().unwrap();
        for flag in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/console"] {
            assert!(set.contains(flag), "{set}");
        }
        let csrf = p.csrf();
        // Without the token: refused. With a wrong password: 401, no session.
        let p = b
            .post(
                &h,
                "/console/login",
                &[("login", "rita@shop.test"), ("password", PASSWORD)],
            )
            .await;
        assert_eq!(p.status, StatusCode::FORBIDDEN);
        let p = b
            .post(
                &h,
                "/console/login",
                &[
                    ("csrf", &csrf),
                    ("login", "rita@shop.test"),
                    ("password", "wrong password!"),
                ],
            )
            .await;
        assert_eq!(p.status, StatusCode::UNAUTHORIZED);
        assert!(p.body.contains("The login or password is wrong"));
        assert!(!b.jar.contains_key("candor_console"));
        // Right password: a session cookie, the overview.
        let p = b
            .post(
                &h,
                "/console/login",
                &[
                    ("csrf", &csrf),
                    ("login", "Rita@Shop.test"),
                    ("password", PASSWORD),
                ],
            )
            .await;
        assert_eq!(p.status, StatusCode::SEE_OTHER);
        let set = p.headers[header::SET_COOKIE].to_str().unwrap().to_string();
        for flag in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/console"] {
            assert!(set.contains(flag), "{set}");
        }
        let p = b.get(&h, "/console/").await;
        assert_eq!(p.status, StatusCode::OK, "{}", p.body);
        assert!(p.body.contains("<h1>Overview</h1>"));
        // The reviewer's navigation has no audit log or people; opening them is refused.
        assert!(!p.body.contains("/console/audit") && !p.body.contains("/console/subjects"));
        assert_eq!(
            b.get(&h, "/console/audit").await.status,
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            b.get(&h, "/console/subjects").await.status,
            StatusCode::FORBIDDEN
        );
        assert_eq!(b.get(&h, "/console/contests").await.status, StatusCode::OK);

        // A marketer may not record model decisions.
        let mut m = sign_in(&h, "mark@shop.test").await;
        assert_eq!(m.get(&h, "/console/journeys").await.status, StatusCode::OK);
        assert_eq!(
            m.get(&h, "/console/contests").await.status,
            StatusCode::FORBIDDEN
        );
        let p = m.get(&h, "/console/models").await;
        assert_eq!(p.status, StatusCode::OK);
        let before = h.audit_len().await;
        let p = m
            .post(
                &h,
                "/console/models/1/override",
                &[("csrf", "x"), ("reason", "because")],
            )
            .await;
        assert_eq!(p.status, StatusCode::FORBIDDEN);
        assert_eq!(
            h.audit_len().await,
            before,
            "a refused form changes nothing"
        );

        // Compliance reads the audit log, which verifies.
        let mut c = sign_in(&h, "cora@shop.test").await;
        let p = c.get(&h, "/console/audit").await;
        assert_eq!(p.status, StatusCode::OK);
        assert!(p.body.contains("The audit log verifies"), "{}", p.body);
        assert!(p.body.contains("staff.signed_in"));

        // What the browser says of a form's origin: another site is refused even with the
        // right token.
        let page = b.get(&h, "/console/").await;
        let csrf = page.csrf();
        let cookies = b.cookie_header();
        let form = |origin: &str, site: &str| {
            Request::post("/console/logout")
                .header(header::COOKIE, cookies.clone())
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .header(header::HOST, "shop.test")
                .header(header::ORIGIN, origin)
                .header("sec-fetch-site", site)
                .body(Body::from(format!("csrf={csrf}")))
                .unwrap()
        };
        // A sibling site (`same-site`) is another origin too.
        for (origin, site) in [
            ("https://evil.test", "cross-site"),
            ("null", "cross-site"),
            ("https://evil.test", "same-site"),
        ] {
            let r = h.router.clone().oneshot(form(origin, site)).await.unwrap();
            assert_eq!(r.status(), StatusCode::FORBIDDEN, "{origin} {site}");
        }
        // A browser that sends no Sec-Fetch-Site: the Origin must name the host.
        let mut old_browser = form("https://evil.test", "x");
        old_browser.headers_mut().remove("sec-fetch-site");
        let r = h.router.clone().oneshot(old_browser).await.unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        assert_eq!(
            b.get(&h, "/console/").await.status,
            StatusCode::OK,
            "still signed in"
        );
        // Failed sign-ins: after five, the login is refused for a while, even with the right
        // password; successful ones do not count.
        for _ in 0..3 {
            sign_in(&h, "cora@shop.test").await;
        }
        // The limit is per process: a login of this run alone.
        let locked = format!("lock-{}@shop.test", candor_types::KeyId::new());
        staff(&h, &locked, "marketer").await;
        let mut x = Browser::default();
        let p = x.get(&h, "/console/login").await;
        let xc = p.csrf();
        for _ in 0..5 {
            let p = x
                .post(
                    &h,
                    "/console/login",
                    &[
                        ("csrf", &xc),
                        ("login", &locked),
                        ("password", "not the password"),
                    ],
                )
                .await;
            assert_eq!(p.status, StatusCode::UNAUTHORIZED);
        }
        let p = x
            .post(
                &h,
                "/console/login",
                &[("csrf", &xc), ("login", &locked), ("password", PASSWORD)],
            )
            .await;
        assert_eq!(p.status, StatusCode::TOO_MANY_REQUESTS);

        // A session form without the session's token is refused; signing out ends the session.
        let p = b.post(&h, "/console/logout", &[("csrf", "forged")]).await;
        assert_eq!(p.status, StatusCode::FORBIDDEN);
        // Signing out from the page as Chromium posts it under no-referrer: `Origin: null`.
        let r = h
            .router
            .clone()
            .oneshot(form("null", "same-origin"))
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        assert_eq!(r.headers()[header::LOCATION], "/console/login");
        // The old cookie no longer opens anything.
        let mut stale = Browser::default();
        stale.jar.insert(
            "candor_console".into(),
            set[15..set.find(';').unwrap()].to_string(),
        );
        let p = stale.get(&h, "/console/").await;
        assert_eq!(p.status, StatusCode::SEE_OTHER);
        assert_eq!(p.location(), "/console/login");
    }
}

#[tokio::test]
async fn people_search_goes_through_the_blind_index_and_is_audited() {
    for backend in BACKENDS {
        let Some(h) = H::new(backend).await else {
            continue;
        };
        staff(&h, "cora@shop.test", "compliance").await;
        h.consent("c-1", "analytics", "granted").await;
        let (s, v) = h
            .call(
                "POST",
                "/v1/identify",
                &h.server,
                Some(json!({"userId": "c-1", "messageId": "i-1", "traits": {"email": "Ada@Example.com"}})),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let mut b = sign_in(&h, "cora@shop.test").await;
        let page = b.get(&h, "/console/subjects").await;
        let csrf = page.csrf();
        let p = b
            .post(
                &h,
                "/console/subjects",
                &[("csrf", &csrf), ("email", " ada@example.com ")],
            )
            .await;
        assert_eq!(p.status, StatusCode::OK);
        assert!(p.body.contains("<h1>Person</h1>"), "{}", p.body);
        assert!(p.body.contains("analytics"));
        let p = b
            .post(
                &h,
                "/console/subjects",
                &[("csrf", &csrf), ("email", "nobody@example.com")],
            )
            .await;
        assert!(p.body.contains("No person with this address"));
        // From a queue, staff open a record by the person's id (in a form, not a URL); a
        // person of another store is not found.
        let id =
            h.t.app
                .resolve_subject(h.tenant, "c-1")
                .await
                .unwrap()
                .id
                .to_string();
        let p = b
            .post(
                &h,
                "/console/subjects/open",
                &[("csrf", &csrf), ("subject", &id)],
            )
            .await;
        assert_eq!(p.status, StatusCode::OK);
        assert!(p.body.contains("<h1>Person</h1>"));
        let other = h.t.app.create_tenant("elsewhere", "test").await.unwrap().id;
        let key =
            h.t.app
                .create_key(other, candor_types::Scope::Server, None, "test")
                .await
                .unwrap()
                .1;
        let (st, _) = h
            .call(
                "PUT",
                "/v1/subjects/c-x/consents/analytics",
                &key,
                Some(json!({"state": "granted", "jurisdiction": "eu"})),
            )
            .await;
        assert_eq!(st, StatusCode::OK);
        let foreign =
            h.t.app
                .resolve_subject(other, "c-x")
                .await
                .unwrap()
                .id
                .to_string();
        let p = b
            .post(
                &h,
                "/console/subjects/open",
                &[("csrf", &csrf), ("subject", &foreign)],
            )
            .await;
        assert_eq!(p.status, StatusCode::NOT_FOUND);
        let log =
            h.t.app
                .store()
                .audit_entries(&h.tenant.to_string(), 0, 10_000)
                .await
                .unwrap();
        let searched: Vec<_> = log
            .iter()
            .filter(|e| e.action == "subject.searched")
            .collect();
        assert_eq!(searched.len(), 2);
        assert_eq!(
            log.iter().filter(|e| e.action == "subject.viewed").count(),
            2
        );
        // The address itself is nowhere in the log.
        assert!(
            log.iter()
                .all(|e| !e.details.to_lowercase().contains("ada@example.com"))
        );
    }
}

/// The links in the outbox once `n` are there (sign-in emails are sent after the answer), and
/// after a moment in which no more arrive.
async fn settled_links(dir: &std::path::Path, n: usize) -> Vec<String> {
    for _ in 0..100 {
        if outbox_links(dir).len() >= n {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    outbox_links(dir)
}

fn outbox_links(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        let raw = std::fs::read_to_string(e.path()).unwrap();
        let (head, text) = raw.split_once("\r\n\r\n").unwrap();
        // ASCII text goes unencoded, so the link can be read in the file.
        assert!(head.contains("Content-Transfer-Encoding: 7bit"), "{head}");
        assert!(head.contains("Auto-Submitted: auto-generated"));
        let i = text.find("/privacy/link/").unwrap();
        let token: String = text[i + 14..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
            .collect();
        out.push(token);
    }
    out
}

#[tokio::test]
async fn privacy_center_sign_in_choices_and_deletion() {
    for backend in BACKENDS {
        let Some(h) = H::new(backend).await else {
            continue;
        };
        let outbox = TempDir::new("candor-outbox");
        h.t.app.set_outbox(outbox.0.clone());
        h.consent("c-9", "personalization", "granted").await;
        let (s, _) = h
            .call(
                "POST",
                "/v1/identify",
                &h.server,
                Some(json!({"userId": "c-9", "messageId": "i-9", "traits": {"email": "grace@example.com"}})),
            )
            .await;
        assert_eq!(s, StatusCode::OK);
        let store = format!("/privacy/?store={}", "shop");
        let mut b = Browser::default();
        let p = b.get(&h, &store).await;
        assert_eq!(p.status, StatusCode::OK);
        assert!(p.body.contains("<label for=\"email\">"));
        let csrf = p.csrf();
        // An unknown address and a known one get the same answer; only the known one gets mail.
        let p = b
            .post(
                &h,
                "/privacy/signin",
                &[
                    ("csrf", &csrf),
                    ("store", "shop"),
                    ("email", "eve@example.com"),
                ],
            )
            .await;
        let unknown_answer = p.body.clone();
        assert!(settled_links(&outbox.0, 0).await.is_empty());
        let p = b
            .post(
                &h,
                "/privacy/signin",
                &[
                    ("csrf", &csrf),
                    ("store", "shop"),
                    ("email", "grace@example.com"),
                ],
            )
            .await;
        assert_eq!(p.status, StatusCode::OK);
        assert_eq!(p.body, unknown_answer);
        let links = settled_links(&outbox.0, 1).await;
        assert_eq!(links.len(), 1);
        let token = &links[0];
        // A bad address is a clear 400 and sends nothing.
        let p = b
            .post(
                &h,
                "/privacy/signin",
                &[
                    ("csrf", &csrf),
                    ("store", "shop"),
                    ("email", "not an address"),
                ],
            )
            .await;
        assert_eq!(p.status, StatusCode::BAD_REQUEST);
        // Opening the link does not sign in (mail scanners open links); the button does.
        let p = b.get(&h, &format!("/privacy/link/{token}")).await;
        assert_eq!(p.status, StatusCode::OK);
        assert!(!b.jar.contains_key("candor_privacy"));
        let csrf = p.csrf();
        let p = b
            .post(&h, &format!("/privacy/link/{token}"), &[("csrf", &csrf)])
            .await;
        assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
        assert_eq!(p.location(), "/privacy/home");
        let set = p.headers[header::SET_COOKIE].to_str().unwrap();
        for flag in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/privacy"] {
            assert!(set.contains(flag), "{set}");
        }
        // The link works once.
        let mut other = Browser::default();
        let p = other.get(&h, &format!("/privacy/link/{token}")).await;
        let c2 = p.csrf();
        let p = other
            .post(&h, &format!("/privacy/link/{token}"), &[("csrf", &c2)])
            .await;
        assert_eq!(p.status, StatusCode::NOT_FOUND);
        assert!(p.body.contains("link_invalid"));

        // Home: the choices; withdrawing personalization is one button.
        let p = b.get(&h, "/privacy/home").await;
        assert_eq!(p.status, StatusCode::OK);
        assert!(
            p.body.contains("Withdraw consent for personalization"),
            "{}",
            p.body
        );
        assert!(p.body.contains("Give consent for marketing email"));
        let csrf = p.csrf();
        let p = b
            .post(
                &h,
                "/privacy/consent",
                &[
                    ("csrf", &csrf),
                    ("purpose", "personalization"),
                    ("state", "withdrawn"),
                ],
            )
            .await;
        assert_eq!(p.status, StatusCode::SEE_OTHER);
        let (_, v) = h
            .call("GET", "/v1/subjects/c-9/consents", &h.server, None)
            .await;
        let last = v["history"].as_array().unwrap().last().unwrap().clone();
        assert_eq!(last["purpose"], "personalization");
        assert_eq!(last["action"], "withdrawn");
        assert_eq!(last["source"], "privacy_center");
        // A forged form changes nothing.
        let p = b
            .post(
                &h,
                "/privacy/consent",
                &[
                    ("csrf", "forged"),
                    ("purpose", "personalization"),
                    ("state", "granted"),
                ],
            )
            .await;
        assert_eq!(p.status, StatusCode::FORBIDDEN);
        let (_, v2) = h
            .call("GET", "/v1/subjects/c-9/consents", &h.server, None)
            .await;
        assert_eq!(v2["history"], v["history"]);

        // Download: the person's whole export as an attachment.
        let p = b.get(&h, "/privacy/download").await;
        assert_eq!(p.status, StatusCode::OK);
        assert!(
            p.headers[header::CONTENT_DISPOSITION]
                .to_str()
                .unwrap()
                .starts_with("attachment")
        );
        let doc: serde_json::Value = serde_json::from_str(&p.body).unwrap();
        assert!(doc["tables"]["consents"].as_array().unwrap().len() >= 2);

        // Talk to a person: the message reaches the staff queue, sealed.
        let page = b.get(&h, "/privacy/contact").await;
        let csrf = page.csrf();
        let p = b
            .post(
                &h,
                "/privacy/contact",
                &[("csrf", &csrf), ("message", "Why did I get a score?")],
            )
            .await;
        assert_eq!(p.status, StatusCode::SEE_OTHER);
        let p = b.get(&h, "/privacy/contact").await;
        assert!(p.body.contains("Why did I get a score?"));
        let admin = candor_app::Principal {
            tenant: h.tenant,
            scope: candor_types::Scope::Admin,
            key_id: candor_types::KeyId::new(),
            staff: true,
        };
        let queue = h.t.app.contact_queue(&admin, Some("open")).await.unwrap();
        assert_eq!(queue.len(), 1);
        assert_eq!(queue[0].message.as_deref(), Some("Why did I get a score?"));

        // Rate limit: three links an hour per person (one used above).
        let mut c = Browser::default();
        let p = c.get(&h, &store).await;
        let c_csrf = p.csrf();
        for _ in 0..3 {
            c.post(
                &h,
                "/privacy/signin",
                &[
                    ("csrf", &c_csrf),
                    ("store", "shop"),
                    ("email", "grace@example.com"),
                ],
            )
            .await;
        }
        assert_eq!(
            settled_links(&outbox.0, 3).await.len(),
            3,
            "at most three links an hour"
        );

        // Delete my account: confirmation required, then erased and signed out.
        let session = b.jar["candor_privacy"].clone();
        let page = b.get(&h, "/privacy/delete").await;
        let csrf = page.csrf();
        let p = b.post(&h, "/privacy/delete", &[("csrf", &csrf)]).await;
        assert_eq!(p.status, StatusCode::BAD_REQUEST);
        let p = b
            .post(
                &h,
                "/privacy/delete",
                &[("csrf", &csrf), ("confirm", "yes")],
            )
            .await;
        assert_eq!(p.status, StatusCode::OK, "{}", p.body);
        assert!(p.body.contains("Your account was deleted"));
        let (s, _) = h
            .call("GET", "/v1/subjects/c-9/consents", &h.server, None)
            .await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        // The erasure ended the session on the server, not only in this browser.
        let mut replay = Browser::default();
        replay.jar.insert("candor_privacy".into(), session);
        let p = replay.get(&h, "/privacy/home").await;
        assert_eq!(p.status, StatusCode::SEE_OTHER);
        assert_eq!(p.location(), "/privacy/");
        // The erased person's address no longer signs in.
        let before = outbox_links(&outbox.0).len();
        h.t.clock.advance_days(1);
        c.post(
            &h,
            "/privacy/signin",
            &[
                ("csrf", &c_csrf),
                ("store", "shop"),
                ("email", "grace@example.com"),
            ],
        )
        .await;
        assert_eq!(settled_links(&outbox.0, before).await.len(), before);
    }
}

#[tokio::test]
async fn an_email_address_points_to_one_person_and_only_the_backend_sets_it() {
    for backend in BACKENDS {
        let Some(h) = H::new(backend).await else {
            continue;
        };
        let identify = |key: &str, user: &str, email: &str, mid: &str| {
            let body = json!({"userId": user, "messageId": mid, "traits": {"email": email}});
            let key = key.to_string();
            let h = &h;
            async move {
                let (s, v) = h.call("POST", "/v1/identify", &key, Some(body)).await;
                assert_eq!(s, StatusCode::OK, "{v}");
            }
        };
        let owner = |email: &'static str| {
            let h = &h;
            async move { h.t.app.subject_by_email(h.tenant, email).await.unwrap() }
        };
        let id_of = |user: &'static str| {
            let h = &h;
            async move { h.t.app.resolve_subject(h.tenant, user).await.unwrap().id }
        };
        h.consent("c-1", "analytics", "granted").await;
        h.consent("c-2", "analytics", "granted").await;
        // A browser-safe write key does not vouch for an address.
        identify(&h.write, "c-1", "ada@example.com", "w-1").await;
        assert_eq!(owner("ada@example.com").await, None);
        identify(&h.server, "c-1", "ada@example.com", "s-1").await;
        let c1 = id_of("c-1").await;
        assert_eq!(owner("ada@example.com").await, Some(c1));
        // Another person giving the same address does not take it over (audited conflict).
        identify(&h.server, "c-2", "ada@example.com", "s-2").await;
        assert_eq!(owner("ada@example.com").await, Some(c1));
        let log =
            h.t.app
                .store()
                .audit_entries(&h.tenant.to_string(), 0, 10_000)
                .await
                .unwrap();
        assert!(log.iter().any(|e| e.action == "alias.conflict"));
        // A new address replaces the person's old one.
        identify(&h.server, "c-1", "ada@new.example.com", "s-3").await;
        assert_eq!(owner("ada@new.example.com").await, Some(c1));
        assert_eq!(owner("ada@example.com").await, None);
        // Once free, the old address can be another person's.
        identify(&h.server, "c-2", "ada@example.com", "s-4").await;
        assert_eq!(owner("ada@example.com").await, Some(id_of("c-2").await));
        // Erasure frees the address for someone new.
        let (s, v) = h.call("DELETE", "/v1/subjects/c-1", &h.admin, None).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(owner("ada@new.example.com").await, None);
        h.consent("c-3", "analytics", "granted").await;
        identify(&h.server, "c-3", "ada@new.example.com", "s-5").await;
        assert_eq!(owner("ada@new.example.com").await, Some(id_of("c-3").await));
    }
}
