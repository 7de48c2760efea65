//! The console and the privacy center in a real browser: `candor demo --small` builds a
//! deployment, `candor serve` sends its emails to a real SMTP server (aiosmtpd), and headless
//! Chromium (driven by `tests/e2e/flows.mjs` through playwright-core) signs in as a reviewer
//! and as a customer, clicks through the pages and runs axe-core on them; an admin opens every
//! console page, a marketer is refused people and the audit log, and a compliance officer reads
//! the customer's contest and message before the customer deletes the account. Afterwards the
//! server's side is checked without the browser: the override and the customer's actions are
//! in the database and the audit log still verifies.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use candor_testkit::TempDir;
use serde_json::Value;

use crate::journeys::Sink;
use crate::{candor, http, ok};

const CHROMIUM: &str = "/usr/bin/chromium";

fn e2e_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/e2e")
}

fn has_node() -> bool {
    Command::new("node")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Node, its packages (installed from the lock file when missing) and Chromium, or `None`
/// after printing `SKIPPED-BROWSER` (CI fails on that marker).
fn browser_ready() -> Option<PathBuf> {
    let e2e = e2e_dir();
    let modules = |d: &Path| {
        d.join("node_modules/playwright-core/package.json").exists()
            && d.join("node_modules/axe-core/axe.min.js").exists()
    };
    if !has_node() {
        println!("SKIPPED-BROWSER: node is not installed");
        return None;
    }
    if !modules(&e2e) {
        let status = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--prefix"])
            .arg(&e2e)
            .status();
        if !status.is_ok_and(|s| s.success()) || !modules(&e2e) {
            println!(
                "SKIPPED-BROWSER: `npm ci --prefix {}` failed",
                e2e.display()
            );
            return None;
        }
    }
    if !Path::new(CHROMIUM).exists() {
        println!("SKIPPED-BROWSER: no browser at {CHROMIUM} (apt-get install chromium)");
        return None;
    }
    Some(e2e)
}

/// A free port on the loopback interface (the demo's public URL names it before the server
/// runs, so the port is chosen here rather than by the server).
fn free_addr() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("127.0.0.1:{}", l.local_addr().unwrap().port())
}

/// A child process stopped on drop: SIGTERM first (Playwright's handler then closes the
/// browser it launched in a process group of its own), SIGKILL after five seconds.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = Command::new("kill")
                .args(["-TERM", &self.0.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(5);
            while matches!(self.0.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `candor serve` on `addr`, its log in `DIR/serve.log`; waits for `/healthz`.
fn serve(dir: &Path, addr: &str) -> Killed {
    let log = std::fs::File::create(dir.join("serve.log")).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_candor"))
        .arg("--dir")
        .arg(dir)
        .args(["serve", "--listen", addr])
        .env_remove("CANDOR_DATABASE_URL")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let server = Killed(child);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok((200, _)) = http::request(addr, "GET", "/healthz", None, None) {
            return server;
        }
        assert!(
            Instant::now() < deadline,
            "candor serve did not answer /healthz on {addr}: {}",
            std::fs::read_to_string(dir.join("serve.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Runs the browser flows; returns the exit status's success, stdout's last line and stderr.
fn flows(e2e: &Path, env: &[(&str, String)], timeout: Duration) -> (bool, String, String) {
    let mut child = Killed(
        Command::new("node")
            .arg(e2e.join("flows.mjs"))
            .current_dir(e2e)
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut out = child.0.stdout.take().unwrap();
    let mut err = child.0.stderr.take().unwrap();
    let out_t = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err_t = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(s) = child.0.try_wait().unwrap() {
            break Some(s);
        }
        if Instant::now() > deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    drop(child);
    let (out, err) = (out_t.join().unwrap(), err_t.join().unwrap());
    let status = status.unwrap_or_else(|| panic!("the browser flows ran over {timeout:?}\n{err}"));
    let last = out.lines().last().unwrap_or_default().to_string();
    (status.success(), last, err)
}

#[tokio::test]
async fn a_reviewer_and_a_customer_use_the_console_and_the_privacy_center_in_a_browser() {
    let Some(e2e) = browser_ready() else {
        return;
    };
    let Some(sink) = Sink::start(&[]) else {
        return;
    };
    let started = Instant::now();
    let dir = TempDir::new("candor-web");
    let addr = free_addr();
    // The fixture: a small demo deployment, loaded without serving.
    ok(&candor(
        &dir.0,
        None,
        &["demo", "--listen", &addr, "--no-serve", "--small"],
    ));
    let demo: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.0.join("demo.json")).unwrap()).unwrap();
    assert_eq!(demo["privacy_url"], format!("http://{addr}/privacy/"));
    let staff = |role: &str| {
        demo["staff"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["role"] == role)
            .unwrap_or_else(|| panic!("no {role} in demo.json: {demo}"))
            .clone()
    };
    let reviewer = staff("reviewer");
    let (admin, marketer, compliance) = (staff("admin"), staff("marketer"), staff("compliance"));
    let str_of = |v: &Value, k: &str| {
        v[k].as_str()
            .unwrap_or_else(|| panic!("no {k} in {v}"))
            .to_string()
    };
    let serving = demo["serving_model"]
        .as_i64()
        .unwrap_or_else(|| panic!("no serving_model in demo.json: {demo}"));
    let recs_model = demo["recs_model"]
        .as_i64()
        .unwrap_or_else(|| panic!("no recs_model in demo.json: {demo}"));
    let login = reviewer["login"].as_str().unwrap().to_string();
    let email = demo["customer_email"].as_str().unwrap().to_string();
    let model = demo["failed_audit"]["model"].as_i64().unwrap();
    let audit = demo["failed_audit"]["audit"].as_i64().unwrap();
    let loaded = started.elapsed();

    // Mail goes to the SMTP sink.
    let policy_path = dir.0.join("candor.toml");
    let policy = std::fs::read_to_string(&policy_path).unwrap();
    assert!(
        policy.contains(&format!("public_url = \"http://{addr}\"")),
        "the demo's policy does not name its public URL"
    );
    assert!(
        !policy.contains("\n[smtp]"),
        "the demo's policy already has [smtp]"
    );
    std::fs::write(
        &policy_path,
        format!(
            "{policy}\n[smtp]\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\nfrom = \"Demo shop <privacy@demo.candor>\"\npostal_address = \"1 Market Street, Springfield\"\n",
            sink.port
        ),
    )
    .unwrap();

    let server = serve(&dir.0, &addr);
    let shots = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/e2e-screenshots");
    let _ = std::fs::remove_dir_all(&shots);
    let browser_started = Instant::now();
    let (success, line, log) = flows(
        &e2e,
        &[
            ("CANDOR_E2E_BASE", format!("http://{addr}")),
            ("CANDOR_E2E_LOGIN", login.clone()),
            (
                "CANDOR_E2E_PASSWORD",
                reviewer["password"].as_str().unwrap().to_string(),
            ),
            ("CANDOR_E2E_ADMIN_LOGIN", str_of(&admin, "login")),
            ("CANDOR_E2E_ADMIN_PASSWORD", str_of(&admin, "password")),
            ("CANDOR_E2E_MARKETER_LOGIN", str_of(&marketer, "login")),
            (
                "CANDOR_E2E_MARKETER_PASSWORD",
                str_of(&marketer, "password"),
            ),
            ("CANDOR_E2E_COMPLIANCE_LOGIN", str_of(&compliance, "login")),
            (
                "CANDOR_E2E_COMPLIANCE_PASSWORD",
                str_of(&compliance, "password"),
            ),
            ("CANDOR_E2E_SERVING_MODEL", serving.to_string()),
            ("CANDOR_E2E_RECS_MODEL", recs_model.to_string()),
            ("CANDOR_E2E_MODEL", model.to_string()),
            ("CANDOR_E2E_AUDIT", audit.to_string()),
            ("CANDOR_E2E_EMAIL", email.clone()),
            ("CANDOR_E2E_MAILDIR", sink.dir.0.display().to_string()),
            ("CANDOR_E2E_SHOTS", shots.display().to_string()),
            ("CANDOR_E2E_CHROMIUM", CHROMIUM.to_string()),
        ],
        Duration::from_secs(300),
    );
    let browser_time = browser_started.elapsed();
    drop(server);
    let server_log = std::fs::read_to_string(dir.0.join("serve.log")).unwrap_or_default();
    let result: Value = serde_json::from_str(&line).unwrap_or_else(|e| {
        panic!(
            "flows.mjs printed no JSON ({e}): {line:?}\nstderr:\n{log}\nserver log:\n{server_log}"
        )
    });
    assert!(
        success && result["ok"] == true,
        "browser flows failed at {}: {}\nurl: {}\nscreenshots in {}\nstderr:\n{log}\nserver log:\n{server_log}",
        result["failed_step"],
        result["error"],
        result["failed_url"],
        shots.display()
    );
    // Every page checked by axe, none with a serious or critical violation (flows.mjs fails
    // on those); the lesser ones are printed.
    let axe = result["axe"].as_object().unwrap();
    for page in [
        "console-login",
        "privacy-signin",
        "privacy-link",
        "privacy-home",
        "privacy-recommendations",
        "privacy-decisions",
        "privacy-contact",
        "privacy-delete",
        "privacy-deleted",
        // Every console page, as the admin (the model card and the campaign report are
        // report documents: screenshots only).
        "console-admin-overview",
        "console-admin-people",
        "console-admin-person",
        "console-admin-models",
        "console-admin-model-serving",
        "console-admin-fairness",
        "console-admin-recs",
        "console-admin-journeys",
        "console-admin-requests",
        "console-admin-contests",
        "console-admin-messages",
        "console-admin-audit-log",
        "console-admin-policy",
        // The marketer's refusals and journeys.
        "console-marketer-people-forbidden",
        "console-marketer-audit-log-forbidden",
        "console-marketer-journeys",
        // The customer's message and contest, as compliance sees them.
        "console-compliance-messages",
        "console-compliance-contests",
    ] {
        assert!(
            axe.contains_key(page),
            "axe did not run on {page}: {result}"
        );
    }
    for (page, r) in axe {
        assert!(
            r["passes"].as_u64().unwrap() >= 10,
            "axe hardly ran on {page}: {r}"
        );
        // Violations flows.mjs tolerates as known page bugs (each with a TODO there).
        let known: Vec<&Value> = r["known"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| &k["id"])
            .collect();
        for x in r["violations"].as_array().unwrap() {
            let on: Vec<&str> = x["nodes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|n| n["target"].as_str().unwrap())
                .collect();
            println!(
                "axe {page}: {} ({}{}) {} on {}",
                x["id"],
                x["impact"],
                if known.contains(&&x["id"]) {
                    ", known: TODO in flows.mjs"
                } else {
                    ""
                },
                x["help"],
                on.join(", ")
            );
        }
    }
    let shots_n = result["screenshots"].as_array().unwrap().len();
    assert!(shots_n >= 40, "{shots_n} screenshots");
    for name in [
        "console-admin-model-card",
        "console-admin-campaign-report",
        "console-compliance-messages",
        "console-compliance-contests",
    ] {
        assert!(
            result["screenshots"]
                .as_array()
                .unwrap()
                .iter()
                .any(|s| s.as_str().unwrap().ends_with(&format!("-{name}.png"))),
            "no screenshot of {name}: {result}"
        );
    }
    assert_eq!(result["compliance"]["message_shown"], true, "{result}");
    assert_eq!(result["compliance"]["contest_shown"], true, "{result}");
    for s in result["screenshots"].as_array().unwrap() {
        let png = std::fs::read(s.as_str().unwrap()).unwrap();
        assert!(png.starts_with(b"\x89PNG") && png.len() > 2000, "{s}");
    }

    // The server's side, without the browser.
    let url = format!("sqlite://{}?mode=ro", dir.0.join("candor.db").display());
    let q = |sql: String| {
        let url = url.clone();
        async move { candor_testkit::query_strings(&url, &sql).await }
    };
    let reviewer_id = q(format!(
        "SELECT id FROM staff_accounts WHERE login = '{login}'"
    ))
    .await;
    assert_eq!(reviewer_id.len(), 1);
    let reviewer_actor = format!("staff:{}", reviewer_id[0]);
    let shown = &result["console"]["override"];
    // The page names the reviewer by login; the record keeps their account id.
    assert_eq!(shown["actor"], login.as_str(), "{result}");
    // The override, as the command line sees it.
    let audits: Value = serde_json::from_str(&ok(&candor(
        &dir.0,
        None,
        &[
            "models",
            "audits",
            &model.to_string(),
            "--kind",
            "validation",
        ],
    )))
    .unwrap();
    let a = audits
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == audit)
        .unwrap_or_else(|| panic!("audit {audit} not listed: {audits}"));
    assert_eq!(a["passed"], false);
    assert_eq!(a["override"]["actor"], reviewer_actor.as_str(), "{a}");
    assert_eq!(a["override"]["reason"], shown["reason"], "{a}");
    let overrides = q(format!(
        "SELECT actor FROM audit_log WHERE action = 'model.fairness_override' AND target = 'model:{model}'"
    ))
    .await;
    assert_eq!(overrides, vec![reviewer_actor.clone()]);
    // The customer's steps, in order, in the audit log.
    let subject = result["privacy"]["subject"].as_str().unwrap().to_string();
    let actions = q(format!(
        "SELECT action || ' ' || actor || ' ' || details FROM audit_log WHERE target = '{subject}' AND action NOT IN ('decision.recorded', 'pii.read') AND at >= (SELECT MIN(at) FROM audit_log WHERE action = 'privacy.link_sent' AND target = '{subject}') ORDER BY at, seq"
    ))
    .await;
    let names: Vec<&str> = actions
        .iter()
        .map(|a| a.split(' ').next().unwrap())
        .collect();
    let expected = [
        "privacy.link_sent",
        "privacy.signed_in",
        "consent.withdrawn",
        "decision.contested",
        "contact.requested",
        "subject.erased",
    ];
    let mut at = 0;
    for e in expected {
        at += names[at..]
            .iter()
            .position(|n| *n == e)
            .unwrap_or_else(|| panic!("{e} missing or out of order in {actions:#?}"))
            + 1;
    }
    assert_eq!(
        names.iter().filter(|n| **n == "privacy.link_sent").count(),
        1,
        "a link was sent after the deletion: {actions:#?}"
    );
    let withdrawn = actions
        .iter()
        .find(|a| a.starts_with("consent.withdrawn "))
        .unwrap();
    assert!(
        withdrawn.contains(&format!("subject:{subject}"))
            && withdrawn.contains("personalization")
            && withdrawn.contains("privacy_center"),
        "{withdrawn}"
    );
    // The erased person's data is gone: no sealed field, consent or key is left.
    let left = q(format!(
        "SELECT COUNT(*) || '' FROM consents WHERE subject_id = '{subject}'"
    ))
    .await;
    assert_eq!(left, vec!["0".to_string()], "consent records left");
    // Exactly one email reached the customer, and it held the link.
    let mails: Vec<Value> = sink
        .messages()
        .into_iter()
        .filter(|m| m["rcpt_tos"][0].as_str() == Some(email.as_str()))
        .collect();
    assert_eq!(mails.len(), 1, "{mails:#?}");
    assert!(
        mails[0]["text"]
            .as_str()
            .unwrap()
            .contains(&format!("http://{addr}/privacy/link/"))
    );
    let verify = ok(&candor(&dir.0, None, &["log", "verify"]));
    assert!(verify.contains("audit log ok"), "{verify}");
    println!(
        "web e2e: demo loaded in {loaded:.1?}, browser flows {browser_time:.1?} ({} steps, {shots_n} screenshots in {}), total {:.1?}",
        result["steps"].as_array().unwrap().len(),
        shots.display(),
        started.elapsed()
    );
}
