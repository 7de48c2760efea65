//! Email journeys end to end: `candor serve` sends through a real SMTP server (aiosmtpd, started
//! by the test); messages are parsed by Python's `email` package.

use std::collections::{BTreeMap, HashMap};
use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use candor_testkit::{BACKENDS, TempDir, peers_python};
use serde_json::{Value, json};

use crate::{Deployment, http, ok, start, start_with_env};

/// A running SMTP sink; stopped on drop.
pub struct Sink {
    child: Child,
    pub port: u16,
    pub dir: TempDir,
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Sink {
    /// Starts the server with `smtp_sink.py`'s options (`--reject A`, `--tls CERT KEY`, …).
    pub fn start(options: &[&str]) -> Option<Sink> {
        let py = peers_python()?;
        let dir = TempDir::new("candor-smtp");
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/peers/smtp_sink.py");
        let mut cmd = Command::new(py);
        cmd.arg(script).arg(&dir.0).args(options);
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .strip_prefix("listening ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("sink did not start: {line:?}"));
        Some(Sink { child, port, dir })
    }

    /// Messages received so far, in order.
    pub fn messages(&self) -> Vec<Value> {
        let mut files: Vec<(u64, PathBuf)> = std::fs::read_dir(&self.dir.0)
            .unwrap()
            .filter_map(|e| {
                let p = e.ok()?.path();
                let n = p.file_stem()?.to_str()?.parse().ok()?;
                (p.extension()? == "json").then_some((n, p))
            })
            .collect();
        files.sort();
        files
            .into_iter()
            .map(|(_, p)| serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap())
            .collect()
    }

    /// Waits until at least `n` messages arrived (or the timeout).
    pub fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let m = self.messages();
            if m.len() >= n || Instant::now() > deadline {
                return m;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn header<'a>(m: &'a Value, name: &str) -> Vec<&'a str> {
    m["headers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h[0].as_str().unwrap().eq_ignore_ascii_case(name))
        .map(|h| h[1].as_str().unwrap())
        .collect()
}

fn to_of(m: &Value) -> String {
    m["rcpt_tos"][0].as_str().unwrap().to_string()
}

/// The default policy with journeys that wait one second, sending to `port`.
fn policy(port: u16, extra: &str) -> String {
    let base =
        candor_policy::DEFAULT_POLICY.replace("quiet_hours = [21, 8]", "quiet_hours = [0, 0]");
    assert_ne!(base, candor_policy::DEFAULT_POLICY);
    format!(
        "{base}\n[smtp]\nhost = \"127.0.0.1\"\nport = {port}\ntls = \"none\"\nfrom = \"Shop <shop@example.org>\"\npostal_address = \"1 Market Street, Springfield\"\n{extra}"
    )
}

fn write_policy(d: &Deployment, text: &str) {
    std::fs::write(d.dir.0.join("candor.toml"), text).unwrap();
}

fn consent(marketing: bool) -> Value {
    json!({"consent": {"categoryPreferences": {"Marketing": marketing, "Analytics": true, "Personalization": false}}})
}

fn identify(user: &str, email: &str, marketing: bool) -> Value {
    json!({"type": "identify", "userId": user, "messageId": format!("id-{user}"),
        "traits": {"email": email, "firstName": user.to_uppercase()}, "context": consent(marketing)})
}

fn track(user: &str, mid: &str, event: &str, marketing: bool) -> Value {
    json!({"type": "track", "userId": user, "messageId": mid, "event": event,
        "properties": {"products": [{"product_id": "p1", "name": "Blue Mug", "price": 9.5}]},
        "context": consent(marketing)})
}

fn post_batch(addr: &str, key: &str, msgs: Vec<Value>) {
    let (status, body) = http::request(
        addr,
        "POST",
        "/v1/batch",
        Some(key),
        Some(&json!({ "batch": msgs }).to_string()),
    )
    .unwrap();
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["rejected"], 0, "{body}");
}

async fn step_reasons(d: &Deployment) -> BTreeMap<String, String> {
    candor_testkit::query_strings(
        &d.url(),
        "SELECT trigger_id || ' ' || journey || ' ' || status || ' ' || COALESCE(reason, '-') FROM journey_steps",
    )
    .await
    .into_iter()
    .map(|r| {
        let (k, v) = r.split_once(' ').unwrap();
        (k.to_string(), v.to_string())
    })
    .collect()
}

#[tokio::test]
async fn journeys_send_over_smtp_only_with_consent_under_the_cap_and_one_click_unsubscribes() {
    for backend in BACKENDS {
        let Some(sink) = Sink::start(&["--reject", "rejected@example.org"]) else {
            return;
        };
        let Some(d) = Deployment::new(backend).await else {
            continue;
        };
        let key = ok(&d.run(&["init"])).trim().to_owned();
        write_policy(
            &d,
            &policy(
                sink.port,
                "[[journeys]]\ntemplate = \"abandoned_cart\"\nwait = \"1s\"\n\n[[journeys]]\ntemplate = \"browse_abandonment\"\nwait = \"1s\"\n",
            )
            .replace("max_marketing_emails = 3", "max_marketing_emails = 1"),
        );
        let server = start(&d);
        let a = &server.addr;
        post_batch(
            a,
            &key,
            vec![
                identify("ada", "ada@example.org", true),
                identify("bob", "bob@example.org", false),
                identify("cy", "cy@example.org", true),
                identify("dee", "dee@example.org", true),
                identify("rex", "rejected@example.org", true),
                json!({"type": "identify", "userId": "nomail", "messageId": "id-nomail", "context": consent(true)}),
                track("ada", "ada-cart", "Checkout Started", true),
                // No marketing consent: enrolled (the event is kept for analytics), never sent.
                track("bob", "bob-cart", "Checkout Started", false),
                // Ordered before the email was due: exits the journey.
                track("cy", "cy-cart", "Checkout Started", true),
                track("cy", "cy-order", "Order Completed", true),
                // Two journeys, a cap of one email per week.
                track("dee", "dee-cart", "Checkout Started", true),
                track("dee", "dee-view", "Product Viewed", true),
                track("rex", "rex-cart", "Checkout Started", true),
                track("nomail", "nomail-cart", "Checkout Started", true),
            ],
        );
        // A duplicate trigger (same messageId) does not enrol twice.
        post_batch(
            a,
            &key,
            vec![track("ada", "ada-cart", "Checkout Started", true)],
        );
        let msgs = sink.wait_for(2, Duration::from_secs(30));
        // Everything due has been settled: no pending steps left.
        let deadline = Instant::now() + Duration::from_secs(30);
        while step_reasons(&d)
            .await
            .values()
            .any(|v| v.contains("pending"))
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(100));
        }
        std::thread::sleep(Duration::from_millis(500));
        let msgs_after = sink.messages();
        assert_eq!(
            msgs.len(),
            msgs_after.len(),
            "{backend:?}: nothing more arrives"
        );
        let mut to: Vec<String> = msgs_after.iter().map(to_of).collect();
        to.sort();
        assert_eq!(to, ["ada@example.org", "dee@example.org"], "{backend:?}");
        let steps = step_reasons(&d).await;
        assert!(
            steps["bob-cart"].starts_with("abandoned_cart skipped"),
            "{steps:?}"
        );
        assert!(
            steps["cy-cart"].starts_with("abandoned_cart exited"),
            "{steps:?}"
        );
        assert!(
            steps["nomail-cart"].ends_with("skipped no_address"),
            "{steps:?}"
        );
        assert!(
            steps["rex-cart"].ends_with("skipped refused_550"),
            "{steps:?}"
        );
        // Dee: one of her two emails was capped.
        let dee: Vec<&String> = ["dee-cart", "dee-view"]
            .iter()
            .map(|k| &steps[*k])
            .collect();
        assert_eq!(
            dee.iter().filter(|s| s.contains(" sent")).count(),
            1,
            "{dee:?}"
        );
        assert_eq!(
            dee.iter().filter(|s| s.ends_with("frequency_cap")).count(),
            1,
            "{dee:?}"
        );

        let m = msgs_after
            .iter()
            .find(|m| to_of(m) == "ada@example.org")
            .unwrap();
        // Headers: RFC 8058 pair, one From, a Message-ID, a Date, MIME alternative.
        let lu = header(m, "List-Unsubscribe");
        assert_eq!(lu.len(), 1, "{m}");
        assert!(
            lu[0].contains("<http://127.0.0.1:8080/u/")
                && lu[0].contains("<mailto:unsubscribe@example.org?subject=unsubscribe"),
            "{}",
            lu[0]
        );
        assert_eq!(
            header(m, "List-Unsubscribe-Post"),
            ["List-Unsubscribe=One-Click"]
        );
        assert_eq!(header(m, "From"), ["Shop <shop@example.org>"]);
        assert_eq!(header(m, "To"), ["ada@example.org"]);
        assert_eq!(header(m, "MIME-Version"), ["1.0"]);
        assert_eq!(header(m, "Date").len(), 1);
        let mid = header(m, "Message-ID");
        assert!(
            mid.len() == 1 && mid[0].ends_with("@example.org>"),
            "{mid:?}"
        );
        assert_eq!(m["content_type"], "multipart/alternative");
        assert_eq!(m["mail_from"], "shop@example.org");
        // DKIM-ready: CRLF everywhere, no line over 998 octets, no parser defects.
        assert_eq!(m["bare_lf"], false);
        assert!(m["max_line"].as_u64().unwrap() <= 998);
        assert_eq!(m["defects"], json!([]));
        let (text, html) = (m["text"].as_str().unwrap(), m["html"].as_str().unwrap());
        let url = lu[0].split(['<', '>']).nth(1).unwrap().to_string();
        let token = url.rsplit('/').next().unwrap().to_string();
        for part in [text, html] {
            assert!(part.contains("Blue Mug"), "{part}");
            assert!(part.contains("ADA"), "{part}");
            assert!(part.contains(&url), "visible unsubscribe link: {part}");
            assert!(part.contains("1 Market Street, Springfield"), "{part}");
            assert!(part.contains(&format!("/e/{token}/why")), "{part}");
            // No personalization consent: no model chose anything, and the email says nothing of it.
            assert!(!part.contains("recommendation system"), "{part}");
        }
        // Analytics allowed: the open pixel is there (and only then).
        assert!(html.contains(&format!("/e/{token}/open")));
        let (s, _) = http::request(a, "GET", &format!("/e/{token}/open"), None, None).unwrap();
        assert_eq!(s, 200);

        // Why did I get this email?
        let (s, body) =
            http::request(a, "GET", &format!("/e/{token}/why?format=json"), None, None).unwrap();
        assert_eq!(s, 200, "{body}");
        let why: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(why["journey"], "abandoned_cart");
        assert_eq!(why["decision"]["consent"]["purpose"], "marketing_email");
        assert_eq!(why["decision"]["trigger"]["event"], "Checkout Started");
        let (s, page) = http::request(a, "GET", &format!("/e/{token}/why"), None, None).unwrap();
        assert!(
            s == 200 && page.contains("Why did I get this email?"),
            "{page}"
        );
        let (s, _) = http::request(a, "GET", "/e/not-a-token/why", None, None).unwrap();
        assert_eq!(s, 404);
        // The same decision in the person's own record, explained in words.
        let email_id = mid[0].trim_matches(['<', '>']).split('@').next().unwrap();
        let (s, body) = http::request(
            a,
            "GET",
            &format!("/v1/subjects/ada/decisions/{email_id}"),
            Some(&key),
            None,
        )
        .unwrap();
        assert_eq!(s, 200, "{body}");
        let decision: Value = serde_json::from_str(&body).unwrap();
        assert!(
            decision["why"]
                .as_str()
                .unwrap()
                .contains("agree to marketing emails"),
            "{decision}"
        );

        // The visible link's page does not unsubscribe on GET (mail scanners follow links).
        let (s, page) = http::request(a, "GET", &format!("/u/{token}"), None, None).unwrap();
        assert!(s == 200 && page.contains("<form method=\"post\""), "{page}");
        let consents = |addr: &str| {
            let (_, body) =
                http::request(addr, "GET", "/v1/subjects/ada/consents", Some(&key), None).unwrap();
            serde_json::from_str::<Value>(&body).unwrap()
        };
        let granted = |v: &Value| {
            v["purposes"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["purpose"] == "marketing_email")
                .unwrap()["allowed"]
                .clone()
        };
        assert_eq!(granted(&consents(a)), true);
        // One-click: a POST with the RFC 8058 body, no cookie, no key; effective at once.
        let (s, _) = http::request(
            a,
            "POST",
            &format!("/u/{token}"),
            None,
            Some("List-Unsubscribe=One-Click"),
        )
        .unwrap();
        assert_eq!(s, 200);
        assert_eq!(granted(&consents(a)), false, "{backend:?}");
        let (s, _) = http::request(
            a,
            "POST",
            &format!("/u/{token}"),
            None,
            Some("List-Unsubscribe=One-Click"),
        )
        .unwrap();
        assert_eq!(s, 200, "repeating it is harmless");
        let (s, _) = http::request(
            a,
            "POST",
            "/u/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            None,
            None,
        )
        .unwrap();
        assert_eq!(s, 404);
        // A new trigger now enrols her, but nothing is sent: consent is checked at send time.
        let before = sink.messages().len();
        post_batch(
            a,
            &key,
            vec![
                json!({"type": "track", "userId": "ada", "messageId": "ada-cart-2", "event": "Checkout Started", "context": {"consent": {"categoryPreferences": {"Analytics": true}}}}),
            ],
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let st = step_reasons(&d).await;
            if st.get("ada-cart-2").is_some_and(|s| !s.contains("pending"))
                || Instant::now() > deadline
            {
                assert!(
                    st["ada-cart-2"].starts_with("abandoned_cart skipped"),
                    "{st:?}"
                );
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        assert_eq!(sink.messages().len(), before);

        // Bounces and complaints by Message-ID; a complaint withdraws consent too.
        let dee_msg = msgs_after
            .iter()
            .find(|m| to_of(m) == "dee@example.org")
            .unwrap();
        let dee_mid = header(dee_msg, "Message-ID")[0].to_string();
        let (s, body) = http::request(
            a,
            "POST",
            "/v1/emails/events",
            Some(&key),
            Some(&json!([{"type": "complaint", "messageId": dee_mid}]).to_string()),
        )
        .unwrap();
        assert_eq!(s, 200, "{body}");
        let (s, body) = http::request(
            a,
            "POST",
            "/v1/emails/events",
            Some(&key),
            Some(&json!({"type": "opened", "messageId": dee_mid}).to_string()),
        )
        .unwrap();
        assert_eq!(s, 400, "{body}");
        assert!(body.contains("invalid_email_event"));
        let (s, _) = http::request(
            a,
            "POST",
            "/v1/emails/events",
            Some(&key),
            Some(&json!({"type": "bounce", "messageId": "<nope@x>"}).to_string()),
        )
        .unwrap();
        assert_eq!(s, 404);

        // Measurement.
        let (s, body) = http::request(a, "GET", "/v1/journeys", Some(&key), None).unwrap();
        assert_eq!(s, 200, "{body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        let cart = v["journeys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|j| j["journey"]["name"] == "abandoned_cart")
            .unwrap();
        let o = &cart["overall"];
        assert_eq!(o["entered"], 7, "{o}");
        assert_eq!(
            o["sent"].as_u64().unwrap()
                + o["exited"].as_u64().unwrap()
                + o["skipped"]
                    .as_object()
                    .unwrap()
                    .values()
                    .map(|x| x.as_u64().unwrap())
                    .sum::<u64>(),
            7,
            "{o}"
        );
        assert_eq!(o["unsubscribed"], 1, "{o}");
        assert_eq!(o["opened"], 1, "{o}");
        assert!(cart["by_segment"]["new"].is_object(), "{cart}");
        let total_complaints: u64 = v["journeys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|j| j["overall"]["complaints"].as_u64().unwrap())
            .sum();
        assert_eq!(total_complaints, 1);
        drop(server);
        let out = ok(&d.run(&["log", "verify"]));
        assert!(out.contains("audit log ok"), "{out}");
    }
}

#[tokio::test]
async fn a_killed_server_sends_every_due_email_exactly_once_after_restart() {
    for backend in BACKENDS {
        let Some(sink) = Sink::start(&[]) else {
            return;
        };
        let Some(d) = Deployment::new(backend).await else {
            continue;
        };
        let key = ok(&d.run(&["init"])).trim().to_owned();
        write_policy(
            &d,
            &policy(
                sink.port,
                "max_per_second = 40\n\n[[journeys]]\ntemplate = \"abandoned_cart\"\nwait = \"1s\"\n",
            ),
        );
        let n = 200;
        let server = start(&d);
        let mut msgs = Vec::new();
        for i in 0..n {
            let u = format!("u{i}");
            msgs.push(identify(&u, &format!("{u}@example.org"), true));
            msgs.push(track(&u, &format!("{u}-cart"), "Checkout Started", true));
        }
        post_batch(&server.addr, &key, msgs);
        // Kill -9 in the middle of sending.
        let got = sink.wait_for(40, Duration::from_secs(30)).len();
        assert!(
            got >= 40 && got < n,
            "{backend:?}: {got} sent before the kill"
        );
        let mut server = server;
        server.child.kill().unwrap();
        server.child.wait().unwrap();
        let at_kill = sink.messages().len();
        assert!(
            at_kill < n,
            "{backend:?}: the kill came too late ({at_kill})"
        );
        // Restart: the rest goes out (claims of the killed process expire first).
        let server = start(&d);
        sink.wait_for(n, Duration::from_secs(120));
        std::thread::sleep(Duration::from_millis(1500));
        let all_after = sink.messages();
        let mut per: HashMap<String, usize> = HashMap::new();
        for m in &all_after {
            *per.entry(to_of(m)).or_default() += 1;
        }
        let twice: Vec<_> = per.iter().filter(|(_, c)| **c > 1).collect();
        assert!(twice.is_empty(), "{backend:?}: sent twice: {twice:?}");
        // The one loss window (ARCHITECTURE): a kill after the send is recorded and before the
        // relay gets the final `.` loses that email, recorded as sent. Nothing else may be lost.
        assert!(
            all_after.len() + 1 >= n,
            "{backend:?}: every due email is sent ({} of {n})",
            all_after.len()
        );
        let sent = candor_testkit::query_strings(
            &d.url(),
            "SELECT id FROM journey_steps WHERE status = 'sent'",
        )
        .await;
        assert_eq!(sent.len(), n, "{backend:?}");
        drop(server);
        let _: &Path = &d.dir.0;
    }
}

#[test]
fn hillstrom_uplift_matches_an_independent_computation() {
    let data = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(
        "../../../shared/data/hillstrom/Kevin_Hillstrom_MineThatData_E-MailAnalytics_DataMiningChallenge_2008.03.20.csv",
    );
    if !data.exists() {
        println!("SKIPPED-DATA: {} not found", data.display());
        return;
    }
    let Some(py) = peers_python() else {
        return;
    };
    let dir = TempDir::new("candor-uplift");
    let (json_path, html_path) = (dir.0.join("uplift.json"), dir.0.join("uplift.html"));
    let out = crate::candor(
        &dir.0,
        None,
        &[
            "journeys",
            "uplift",
            "--data",
            data.to_str().unwrap(),
            "--json",
            json_path.to_str().unwrap(),
            "--html",
            html_path.to_str().unwrap(),
        ],
    );
    let table = ok(&out);
    assert!(table.contains("Mens E-Mail\tvisit"), "{table}");
    let r: Value = serde_json::from_slice(&std::fs::read(&json_path).unwrap()).unwrap();
    assert_eq!(r["rows"], 64_000);
    assert_eq!(r["control"], "No E-Mail");
    // Hillstrom's published two-week results: visits 18.3% (men's), 15.1% (women's), 10.6%
    // (no email); conversions 1.25%, 0.88%, 0.57%.
    let overall = |arm: &str, o: &str| {
        r["treatments"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["treatment"] == arm)
            .unwrap()["overall"]["effects"][o]
            .clone()
    };
    assert!((overall("Mens E-Mail", "visit")["treated"].as_f64().unwrap() - 0.1828).abs() < 5e-5);
    assert!(
        (overall("Womens E-Mail", "conversion")["treated"]
            .as_f64()
            .unwrap()
            - 0.0088)
            .abs()
            < 5e-5
    );
    assert!((overall("Mens E-Mail", "visit")["control"].as_f64().unwrap() - 0.1062).abs() < 5e-5);
    // Every number, overall and in every segment, against pandas + scipy.
    let reference = Command::new(py)
        .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/peers/hillstrom_uplift.py"))
        .arg(&data)
        .output()
        .unwrap();
    assert!(
        reference.status.success(),
        "{}",
        String::from_utf8_lossy(&reference.stderr)
    );
    let want: BTreeMap<String, Vec<Option<f64>>> =
        serde_json::from_slice(&reference.stdout).unwrap();
    let mut checked = 0;
    for t in r["treatments"].as_array().unwrap() {
        let arm = t["treatment"].as_str().unwrap();
        let mut groups = vec![(String::new(), String::new(), &t["overall"])];
        for (attr, per) in t["by_segment"].as_object().unwrap() {
            for (v, a) in per.as_object().unwrap() {
                groups.push((attr.clone(), v.clone(), a));
            }
        }
        for (attr, v, a) in groups {
            for (o, e) in a["effects"].as_object().unwrap() {
                let key = format!("{arm}|{attr}|{v}|{o}");
                let w = &want[&key];
                let got = [
                    "treated", "control", "uplift", "ci_low", "ci_high", "p_value",
                ]
                .map(|k| e[k].as_f64());
                for (g, w) in got.iter().zip(w) {
                    match (g, w) {
                        (Some(g), Some(w)) => assert!(
                            (g - w).abs() <= 1e-9 * w.abs().max(1e-6),
                            "{key}: {got:?} vs {w:?}"
                        ),
                        (g, w) => assert_eq!(g.is_some(), w.is_some(), "{key}"),
                    }
                }
                checked += 1;
            }
        }
    }
    // 2 journeys × (overall + 2 + 3 + 7 + 3 segment values) × 3 outcomes.
    assert_eq!(checked, 2 * 16 * 3);
    let html = std::fs::read_to_string(&html_path).unwrap();
    assert!(html.contains("<svg") && html.contains("Mens E-Mail") && html.contains("by channel"));
    // A holdout that is not in the data is an error, not an empty report.
    let bad = crate::candor(
        &dir.0,
        None,
        &[
            "journeys",
            "uplift",
            "--data",
            data.to_str().unwrap(),
            "--control",
            "Nobody",
        ],
    );
    assert!(
        !bad.status.success() && crate::stderr(&bad).contains("holdout"),
        "{}",
        crate::stderr(&bad)
    );
}

/// A CA and a server certificate for 127.0.0.1 (openssl).
fn certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let run = |args: &[&str]| {
        let o = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl");
        assert!(
            o.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    run(&[
        &["req", "-x509"][..],
        &ec,
        &[
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=Candor Test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign",
        ],
    ]
    .concat());
    run(&[
        &["req"][..],
        &ec,
        &[
            "-keyout",
            "srv.key",
            "-out",
            "srv.csr",
            "-subj",
            "/CN=localhost",
        ],
    ]
    .concat());
    std::fs::write(dir.join("ext.cnf"), "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n").unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "srv.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "srv.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
    (dir.join("ca.pem"), dir.join("srv.pem"), dir.join("srv.key"))
}

/// A person who agreed to marketing email and left a cart.
fn cart(user: &str) -> Vec<Value> {
    vec![
        identify(user, &format!("{user}@example.org"), true),
        track(user, &format!("{user}-cart"), "Checkout Started", true),
    ]
}

/// A one-second abandoned-cart journey over `tls`, trusting `ca` and logging in with the
/// credentials named `TEST_SMTP_USER` / `TEST_SMTP_PASS` (when `ca` is given).
fn tls_policy(port: u16, tls: &str, ca: Option<&Path>) -> String {
    let mut extra = String::new();
    if let Some(ca) = ca {
        extra.push_str(&format!(
            "ca_file = \"{}\"\nusername_env = \"TEST_SMTP_USER\"\npassword_env = \"TEST_SMTP_PASS\"\n",
            ca.display()
        ));
    }
    extra.push_str("\n[[journeys]]\ntemplate = \"abandoned_cart\"\nwait = \"1s\"\n");
    policy(port, &extra).replace("tls = \"none\"", &format!("tls = \"{tls}\""))
}

#[tokio::test]
async fn starttls_and_implicit_tls_with_credentials_from_the_environment() {
    let Some(d) = Deployment::new(candor_testkit::Backend::Sqlite).await else {
        return;
    };
    let key = ok(&d.run(&["init"])).trim().to_owned();
    let certs = TempDir::new("candor-certs");
    let (ca, cert, cert_key) = certificates(&certs.0);
    let (cert, cert_key) = (cert.to_str().unwrap(), cert_key.to_str().unwrap());
    let secret = "s3cret-relay-pass";
    let creds = [("TEST_SMTP_USER", "shop"), ("TEST_SMTP_PASS", secret)];
    for (round, mode) in ["starttls", "tls"].into_iter().enumerate() {
        let login = format!("shop:{secret}");
        let Some(sink) = Sink::start(&[&format!("--{mode}"), cert, cert_key, "--auth", &login])
        else {
            return;
        };
        write_policy(&d, &tls_policy(sink.port, mode, Some(&ca)));
        let server = start_with_env(&d, &creds);
        post_batch(&server.addr, &key, cart(&format!("t{round}")));
        let m = sink.wait_for(1, Duration::from_secs(30));
        assert_eq!(m.len(), 1, "{mode}: {:?}", server.log.lock().unwrap());
        assert_eq!(m[0]["tls"], true, "{mode}");
        assert_eq!(m[0]["login"], "shop", "{mode}");
        drop(server);
    }
    // The password never reaches a log, even when the relay refuses it.
    let Some(sink) = Sink::start(&["--starttls", cert, cert_key, "--auth", "shop:another"]) else {
        return;
    };
    write_policy(&d, &tls_policy(sink.port, "starttls", Some(&ca)));
    let server = start_with_env(&d, &creds);
    post_batch(&server.addr, &key, cart("t9"));
    server.wait_for_log("authentication failed", Duration::from_secs(20));
    let log = server.log.lock().unwrap().join("\n");
    assert!(log.contains("authentication failed"), "{log}");
    assert!(!log.contains(secret), "{log}");
    assert!(sink.messages().is_empty());
    drop(server);
    // A relay that does not offer STARTTLS is refused: nothing goes out in clear.
    let Some(plain) = Sink::start(&[]) else {
        return;
    };
    write_policy(&d, &tls_policy(plain.port, "starttls", None));
    let server = start(&d);
    post_batch(&server.addr, &key, cart("t8"));
    server.wait_for_log("STARTTLS", Duration::from_secs(20));
    assert!(
        server
            .log
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("does not offer STARTTLS")),
        "{:?}",
        server.log.lock().unwrap()
    );
    assert!(plain.messages().is_empty());
    // A credential variable that is not set stops `serve` with a clear message.
    write_policy(
        &d,
        &policy(
            plain.port,
            "username_env = \"NOPE_USER\"\npassword_env = \"NOPE_PASS\"\n[[journeys]]\ntemplate = \"abandoned_cart\"\n",
        ),
    );
    drop(server);
    let o = d.run(&["serve", "--listen", "127.0.0.1:0"]);
    assert!(
        !o.status.success() && crate::stderr(&o).contains("NOPE_USER"),
        "{}",
        crate::stderr(&o)
    );
}

/// Requests a test receiver got: (head, body).
type Received = std::sync::Arc<std::sync::Mutex<Vec<(String, String)>>>;

/// A one-request-at-a-time HTTP receiver: records (head, body) and answers `status`.
fn webhook_receiver(status: u16) -> (u16, Received) {
    use std::io::{Read as _, Write as _};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let w = got.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut c) = conn else { continue };
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            let (head, body) = loop {
                let n = c.read(&mut chunk).unwrap_or(0);
                if n == 0 {
                    break (String::new(), String::new());
                }
                buf.extend_from_slice(&chunk[..n]);
                let text = String::from_utf8_lossy(&buf).into_owned();
                if let Some((h, b)) = text.split_once("\r\n\r\n") {
                    let len: usize = h
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    if b.len() >= len {
                        break (h.to_string(), b.to_string());
                    }
                }
            };
            w.lock().unwrap().push((head, body));
            let _ = write!(
                c,
                "HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
        }
    });
    (port, got)
}

#[tokio::test]
async fn a_webhook_step_posts_only_consented_listed_fields_signed() {
    let Some(sink) = Sink::start(&[]) else {
        return;
    };
    let Some(py) = peers_python() else {
        return;
    };
    for backend in BACKENDS {
        let Some(d) = Deployment::new(backend).await else {
            continue;
        };
        let key = ok(&d.run(&["init"])).trim().to_owned();
        let (port, got) = webhook_receiver(200);
        let extra = format!(
            "\n[webhooks.crm]\nurl = \"http://127.0.0.1:{port}/hooks/candor\"\nfields = [\"traits.email\", \"traits.phone\"]\nsecret_env = \"TEST_HOOK_SECRET\"\n\n[[journeys]]\nname = \"vip_followup\"\ntrigger = \"Order Completed\"\nsteps = [{{ wait = \"1s\", webhook = \"crm\" }}]\n"
        );
        write_policy(&d, &policy(sink.port, &extra));
        let secret = "hook-secret-123";
        let server = start_with_env(&d, &[("TEST_HOOK_SECRET", secret)]);
        post_batch(
            &server.addr,
            &key,
            vec![
                identify("vip", "vip@example.org", true),
                track("vip", "vip-order", "Order Completed", true),
                // No marketing consent: the step is skipped, nothing is posted.
                identify("nope", "nope@example.org", false),
                track("nope", "nope-order", "Order Completed", false),
            ],
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        while got.lock().unwrap().is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        std::thread::sleep(Duration::from_millis(1500));
        let calls = got.lock().unwrap().clone();
        assert_eq!(calls.len(), 1, "{backend:?}: {calls:?}");
        let (head, body) = &calls[0];
        assert!(head.starts_with("POST /hooks/candor HTTP/1.1"), "{head}");
        let v: Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["journey"], "vip_followup");
        assert_eq!(v["trigger"]["event"], "Order Completed");
        // Only the listed fields the purpose may read and the store has: no phone was sent.
        assert_eq!(
            v["fields"],
            json!({"traits.email": "vip@example.org"}),
            "{v}"
        );
        let header_value = |name: &str| {
            head.lines()
                .find_map(|l| {
                    l.split_once(':')
                        .filter(|(k, _)| k.eq_ignore_ascii_case(name))
                        .map(|(_, v)| v.trim().to_string())
                })
                .unwrap()
        };
        assert_eq!(header_value("Idempotency-Key"), v["id"].as_str().unwrap());
        // The signature, checked with Python's own hmac.
        let check = Command::new(&py)
            .args(["-c", "import hmac,hashlib,sys; print('sha256=' + hmac.new(sys.argv[1].encode(), sys.stdin.buffer.read(), hashlib.sha256).hexdigest())", secret])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write as _;
        check
            .stdin
            .as_ref()
            .unwrap()
            .write_all(body.as_bytes())
            .unwrap();
        let out = check.wait_with_output().unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            header_value("X-Candor-Signature")
        );
        let steps = step_reasons(&d).await;
        assert!(
            steps["vip-order"].starts_with("vip_followup called"),
            "{steps:?}"
        );
        assert!(
            steps["nope-order"].starts_with("vip_followup skipped"),
            "{steps:?}"
        );
        let (_, body) =
            http::request(&server.addr, "GET", "/v1/journeys", Some(&key), None).unwrap();
        let j: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(j["journeys"][0]["overall"]["webhooks_called"], 1, "{j}");
        assert!(sink.messages().is_empty(), "a webhook step sends no email");
        let log = server.log.lock().unwrap().join("\n");
        assert!(!log.contains(secret));
        drop(server);
    }
}
