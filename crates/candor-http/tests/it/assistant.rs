//! The shopping assistant over HTTP, on both backends: the AI disclosure in the first reply of
//! every conversation; answers from the catalog, the help articles and the person's own orders;
//! hand-off on request, on sensitive topics and after repeated misunderstandings, with the
//! staff reply delivered; transcripts redacted, sealed for a person, exported and erased; and
//! the language-model path against a local server speaking the chat-completions protocol
//! (`tests/peers/llm_server.py`), with its failures and timeout, and generated personal data
//! that never reaches its request body or the stored transcript.

use std::path::PathBuf;

use axum::http::StatusCode;
use candor_policy::DEFAULT_POLICY;
use candor_testkit::{BACKENDS, Backend, TestApp};
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::TestRunner;
use serde_json::{Value, json};

use super::H;

const HELP: &str = "# Delivery\n\n## UK delivery\nOrders to UK addresses arrive in 2 to 3 working days; delivery costs 3.95 GBP, free over 40 GBP.\n\n## Tracking\nEvery parcel has a tracking link in the dispatch email.\n";
const RETURNS: &str = "# Returns\n\n## How to return an item\nYou can return any item within 30 days for a full refund. Print the returns label from your confirmation email.\n";

fn disclosure() -> String {
    candor_policy::Policy::parse("candor.toml", DEFAULT_POLICY)
        .unwrap()
        .assistant()
        .disclosure
        .clone()
}

async fn shop(backend: Backend, policy: &str) -> Option<H> {
    let t = TestApp::with_policy(backend, policy).await?;
    let h = H::with(t, "shop").await;
    h.t.app.set_help_articles(&[
        ("help/delivery.md".into(), HELP.into()),
        ("help/returns.md".into(), RETURNS.into()),
    ]);
    let (s, v) = h
        .call(
            "POST",
            "/v1/assistant/catalog",
            &h.server,
            Some(json!({"products": [
                {"productId": "21232", "name": "RED RETROSPOT CAKE STAND", "price": "9.95", "currency": "GBP"},
                {"productId": "22423", "name": "REGENCY CAKESTAND 3 TIER", "price": "12.75", "currency": "GBP"},
                {"productId": "85123A", "name": "WHITE HANGING HEART T-LIGHT HOLDER", "price": "2.55", "currency": "GBP"},
                {"productId": "47566", "name": "PARTY BUNTING", "price": "4.95", "currency": "GBP", "description": "Bunting of cotton flags for a garden party"},
                {"productId": "84879", "name": "ASSORTED COLOUR BIRD ORNAMENT", "price": "1.69", "currency": "GBP"}
            ]})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["written"], 5, "{v}");
    Some(h)
}

impl H {
    async fn start(&self, key: &str, body: Value) -> Value {
        let (s, v) = self
            .call("POST", "/v1/assistant/conversations", key, Some(body))
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        v
    }

    async fn say(&self, conv: &str, text: &str) -> Value {
        let (s, v) = self
            .call(
                "POST",
                &format!("/v1/assistant/conversations/{conv}/messages"),
                &self.write,
                Some(json!({ "message": text })),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        v
    }

    async fn tickets(&self) -> Vec<Value> {
        let (s, v) = self
            .call("GET", "/v1/assistant/tickets", &self.server, None)
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        v["tickets"].as_array().unwrap().clone()
    }

    async fn audit_log(&self) -> Vec<candor_store::AuditEntry> {
        candor_store::Store::audit_entries(self.t.app.store(), &self.tenant.to_string(), 0, 100_000)
            .await
            .unwrap()
    }

    async fn audit_actions(&self) -> Vec<String> {
        self.audit_log()
            .await
            .into_iter()
            .map(|e| e.action)
            .collect()
    }

    /// The tenant's audit entries of one action, in order.
    async fn audited(&self, action: &str) -> Vec<candor_store::AuditEntry> {
        let mut log = self.audit_log().await;
        log.retain(|e| e.action == action);
        log
    }
}

#[tokio::test]
async fn the_first_reply_of_every_conversation_says_it_is_an_ai() {
    let want = disclosure();
    for backend in BACKENDS {
        let Some(h) = shop(backend, DEFAULT_POLICY).await else {
            continue;
        };
        let firsts: Vec<Value> = vec![
            json!({}),
            json!({"message": "hello"}),
            json!({"message": "I want to talk to a human"}),
            json!({"message": "do you have a red retrospot cake stand?"}),
            json!({"message": "I want to make a complaint"}),
            json!({"message": "please delete my data"}),
            json!({"message": "where is my order?"}),
            json!({"message": "zzkq vlorp"}),
            json!({"message": "my email is ada@example.org", "userId": "ada"}),
            json!({"anonymousId": "anon-7", "message": "how long does UK delivery take?"}),
        ];
        let mut ids = Vec::new();
        for body in &firsts {
            let v = h.start(&h.write, body.clone()).await;
            let r = &v["reply"];
            assert_eq!(r["disclosure"]["text"], want.as_str(), "{body}: {v}");
            assert_eq!(r["disclosure"]["version"], "ai-disclosure-1");
            assert!(r["text"].as_str().unwrap().starts_with(&want), "{v}");
            assert!(r["decisionId"].as_str().unwrap().len() > 10);
            ids.push(v["conversationId"].as_str().unwrap().to_string());
        }
        // Later replies do not repeat it.
        let v = h.say(&ids[1], "thanks").await;
        assert!(v["reply"]["disclosure"].is_null(), "{v}");
        assert!(!v["reply"]["text"].as_str().unwrap().contains(&want));
        // Each disclosure is logged with its version.
        let logged = h
            .audit_actions()
            .await
            .iter()
            .filter(|a| *a == "assistant.disclosed")
            .count();
        assert_eq!(logged, firsts.len());
        // The stored transcript starts with it too.
        let (s, c) = h
            .call(
                "GET",
                &format!("/v1/assistant/conversations/{}", ids[0]),
                &h.write,
                None,
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{c}");
        assert!(
            c["messages"][0]["text"]
                .as_str()
                .unwrap()
                .starts_with(&want)
        );
        assert_eq!(c["disclosureVersion"], "ai-disclosure-1");
    }
}

#[tokio::test]
async fn answers_come_from_the_catalog_the_help_articles_and_the_persons_orders() {
    for backend in BACKENDS {
        let Some(h) = shop(backend, DEFAULT_POLICY).await else {
            continue;
        };
        let v = h
            .start(
                &h.write,
                json!({"message": "do you have a red retrospot cake stand?"}),
            )
            .await;
        let r = &v["reply"];
        assert_eq!(r["intent"], "product_search", "{v}");
        assert_eq!(r["sources"][0]["id"], "21232", "{v}");
        assert_eq!(r["sources"][0]["price"], "9.95 GBP");
        assert_eq!(r["personalDataUsed"], false);
        assert_eq!(r["backend"], "embedded");
        let conv = v["conversationId"].as_str().unwrap().to_string();
        // A misspelling and a synonym still find it; the price is told.
        let v = h
            .say(&conv, "how much is the white hanging heart tealight holder")
            .await;
        assert_eq!(v["reply"]["sources"][0]["id"], "85123A", "{v}");
        assert!(
            v["reply"]["text"].as_str().unwrap().contains("2.55 GBP"),
            "{v}"
        );
        // Help articles answer delivery and returns questions, with the section as source.
        let v = h.say(&conv, "how long does UK delivery take?").await;
        assert_eq!(v["reply"]["intent"], "help", "{v}");
        assert_eq!(
            v["reply"]["sources"][0]["id"], "help/delivery.md#uk-delivery",
            "{v}"
        );
        assert!(
            v["reply"]["text"]
                .as_str()
                .unwrap()
                .contains("2 to 3 working days")
        );
        let v = h.say(&conv, "can I return a broken item?").await;
        assert_eq!(
            v["reply"]["sources"][0]["id"], "help/returns.md#how-to-return-an-item",
            "{v}"
        );
        // Privacy requests go to the privacy center.
        let v = h.say(&conv, "I want to delete my data").await;
        assert_eq!(v["reply"]["intent"], "privacy_request");
        assert!(
            v["reply"]["text"]
                .as_str()
                .unwrap()
                .contains("/privacy/?store=shop"),
            "{v}"
        );

        // Order status: only for a person the store's backend named (server key).
        for (mid, name, status) in [
            ("o1", "Order Completed", "new"),
            ("o2", "Order Updated", "shipped"),
        ] {
            let (s, t) = h
                .call("POST", "/v1/track", &h.server, Some(json!({"userId": "ada", "messageId": mid, "event": name,
                    "properties": {"order_id": "A-1001", "total": 24.5, "currency": "GBP", "status": status}})))
                .await;
            assert_eq!(s, StatusCode::OK, "{t}");
        }
        let v = h
            .start(
                &h.write,
                json!({"userId": "ada", "message": "where is my order?"}),
            )
            .await;
        assert_eq!(v["reply"]["personalDataUsed"], false, "{v}");
        assert!(
            v["reply"]["text"].as_str().unwrap().contains("signed in"),
            "{v}"
        );
        let v = h
            .start(
                &h.server,
                json!({"userId": "ada", "message": "where is my order?"}),
            )
            .await;
        let text = v["reply"]["text"].as_str().unwrap();
        assert!(text.contains("order A-1001: shipped"), "{v}");
        assert_eq!(v["reply"]["personalDataUsed"], true);
        // That reply is a decision about her, readable through her decisions.
        let (s, d) = h
            .call("GET", "/v1/subjects/ada/decisions", &h.server, None)
            .await;
        assert_eq!(s, StatusCode::OK, "{d}");
        assert!(
            d.to_string()
                .contains(v["reply"]["decisionId"].as_str().unwrap()),
            "{d}"
        );

        // Bad input: a clear error and nothing stored.
        let before = h
            .sql("SELECT CAST(COUNT(*) AS TEXT) FROM assistant_messages")
            .await;
        for (body, code) in [
            (json!({"message": ""}), "message_invalid"),
            (json!({"message": "x".repeat(2001)}), "message_invalid"),
            (json!({"message": 7}), "message_invalid"),
            (json!({"userId": 5}), "subject_invalid"),
            (json!({"mesage": "hi"}), "invalid_request"),
            (json!([1]), "not_an_object"),
        ] {
            let (s, e) = h
                .call("POST", "/v1/assistant/conversations", &h.write, Some(body))
                .await;
            assert_eq!(
                (s, e["error"]["code"].as_str().unwrap()),
                (StatusCode::BAD_REQUEST, code),
                "{e}"
            );
        }
        let (s, e) = h
            .call(
                "POST",
                "/v1/assistant/conversations/nope/messages",
                &h.write,
                Some(json!({"message": "hi"})),
            )
            .await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{e}");
        let (s, _) = h
            .call("POST", "/v1/assistant/conversations", "", Some(json!({})))
            .await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
        let (s, _) = h.call("GET", "/v1/assistant/tickets", &h.write, None).await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        let (s, e) = h
            .call(
                "POST",
                "/v1/assistant/catalog",
                &h.server,
                Some(json!({"products": [{"productId": "x"}]})),
            )
            .await;
        assert_eq!(
            (s, e["error"]["code"].as_str().unwrap()),
            (StatusCode::BAD_REQUEST, "products_invalid")
        );
        assert_eq!(
            h.sql("SELECT CAST(COUNT(*) AS TEXT) FROM assistant_messages")
                .await,
            before
        );
    }
}

#[tokio::test]
async fn a_person_takes_over_on_request_on_sensitive_topics_and_after_repeated_failures() {
    for backend in BACKENDS {
        let Some(h) = shop(backend, DEFAULT_POLICY).await else {
            continue;
        };
        // On request.
        let v = h.start(&h.write, json!({"message": "hello"})).await;
        let asked = v["conversationId"].as_str().unwrap().to_string();
        let v = h.say(&asked, "can I talk to a real person please").await;
        assert_eq!(v["reply"]["handoff"]["reason"], "requested", "{v}");
        assert_eq!(v["status"], "handoff");
        assert!(
            v["reply"]["text"]
                .as_str()
                .unwrap()
                .contains("A person will reply here"),
            "{v}"
        );
        // On a sensitive topic, whatever else the message says.
        let v = h
            .start(
                &h.write,
                json!({"message": "I was charged twice for the cake stand"}),
            )
            .await;
        assert_eq!(
            v["reply"]["handoff"]["reason"], "sensitive:payment_dispute",
            "{v}"
        );
        let v = h
            .start(
                &h.write,
                json!({"message": "my child had an allergic reaction to the bunting"}),
            )
            .await;
        assert_eq!(v["reply"]["handoff"]["reason"], "sensitive:health", "{v}");
        // After repeated misunderstandings (two in a row by default); an understood message
        // in between starts the count again.
        let v = h.start(&h.write, json!({"message": "qwzx plorb"})).await;
        let lost = v["conversationId"].as_str().unwrap().to_string();
        assert!(v["reply"]["handoff"].is_null(), "{v}");
        assert!(
            v["reply"]["text"]
                .as_str()
                .unwrap()
                .contains("did not understand")
        );
        let v = h.say(&lost, "party bunting").await;
        assert!(v["reply"]["handoff"].is_null(), "{v}");
        let v = h.say(&lost, "vrrp zonk").await;
        assert!(v["reply"]["handoff"].is_null(), "{v}");
        let v = h.say(&lost, "klaatu barada").await;
        assert_eq!(v["reply"]["handoff"]["reason"], "misunderstood", "{v}");

        let tickets = h.tickets().await;
        let reasons: Vec<&str> = tickets
            .iter()
            .map(|t| t["reason"].as_str().unwrap())
            .collect();
        assert_eq!(
            reasons,
            [
                "requested",
                "sensitive:payment_dispute",
                "sensitive:health",
                "misunderstood"
            ]
        );
        assert!(tickets.iter().all(|t| t["status"] == "open"));

        // While a person is on it, the assistant does not answer for them.
        let v = h.say(&asked, "are you there?").await;
        assert_eq!(v["reply"]["intent"], "handoff_pending", "{v}");
        // The staff reply is delivered into the conversation (redacted like every message).
        let ticket = tickets[0]["id"].as_str().unwrap();
        let (s, r) = h
            .call("POST", &format!("/v1/assistant/tickets/{ticket}/reply"), &h.server,
                Some(json!({"message": "Hello, this is Sam from the shop. Call me on +44 20 7946 0958."})))
            .await;
        assert_eq!(s, StatusCode::OK, "{r}");
        let (_, c) = h
            .call(
                "GET",
                &format!("/v1/assistant/conversations/{asked}"),
                &h.write,
                None,
            )
            .await;
        let last = c["messages"].as_array().unwrap().last().unwrap().clone();
        assert_eq!(last["role"], "staff", "{c}");
        assert_eq!(
            last["text"],
            "Hello, this is Sam from the shop. Call me on [phone]."
        );
        assert_eq!(h.tickets().await[0]["status"], "answered");
        // Unknown ticket: 404; closing it ends the ticket.
        let (s, _) = h
            .call(
                "POST",
                "/v1/assistant/tickets/nope/reply",
                &h.server,
                Some(json!({"message": "x"})),
            )
            .await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        let (s, _) = h
            .call(
                "POST",
                &format!("/v1/assistant/tickets/{ticket}/reply"),
                &h.server,
                Some(json!({"message": "Bye", "close": true})),
            )
            .await;
        assert_eq!(s, StatusCode::OK);
        let (s, _) = h
            .call(
                "POST",
                &format!("/v1/assistant/tickets/{ticket}/reply"),
                &h.server,
                Some(json!({"message": "again"})),
            )
            .await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        let handoffs = h
            .audit_actions()
            .await
            .iter()
            .filter(|a| *a == "assistant.handoff")
            .count();
        assert_eq!(handoffs, 4);
    }
}

#[tokio::test]
async fn transcripts_are_redacted_sealed_for_the_person_exported_and_erased() {
    for backend in BACKENDS {
        let Some(h) = shop(backend, DEFAULT_POLICY).await else {
            continue;
        };
        // The profile's name is redacted too (read through the service purpose).
        let (s, v) = h
            .call(
                "POST",
                "/v1/identify",
                &h.server,
                Some(json!({"userId": "grace", "messageId": "g1",
                "traits": {"email": "grace.hopper@example.org", "name": "Grace Hopper"}})),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let secret =
            "I am Grace Hopper, grace.hopper@example.org, card 4111 1111 1111 1111, 12 Cobol Lane";
        let v = h
            .start(&h.write, json!({"userId": "grace", "message": secret}))
            .await;
        assert_eq!(
            v["redacted"],
            json!({"address": 1, "card": 1, "email": 1, "name": 1}),
            "{v}"
        );
        let conv = v["conversationId"].as_str().unwrap().to_string();
        let anon = h
            .start(
                &h.write,
                json!({"message": "my iban is DE89 3704 0044 0532 0130 00, call 07700 900123"}),
            )
            .await;
        let anon_id = anon["conversationId"].as_str().unwrap().to_string();
        let (_, c) = h
            .call(
                "GET",
                &format!("/v1/assistant/conversations/{conv}"),
                &h.server,
                None,
            )
            .await;
        assert_eq!(
            c["messages"][0]["text"], "I am [name], [email], card [card], [address]",
            "{c}"
        );
        let (_, a) = h
            .call(
                "GET",
                &format!("/v1/assistant/conversations/{anon_id}"),
                &h.write,
                None,
            )
            .await;
        assert_eq!(
            a["messages"][0]["text"], "my iban is [iban], call [phone]",
            "{a}"
        );
        // Nothing of it on disk: the person's messages are sealed, the anonymous ones redacted.
        // (A PostgreSQL dump shows bytea as hex.)
        let raw = h.t.db.raw_bytes().await;
        let on_disk = |needle: &str| {
            let hexed: String = needle.bytes().map(|b| format!("{b:02x}")).collect();
            [needle.as_bytes(), hexed.as_bytes()]
                .iter()
                .any(|n| raw.windows(n.len()).any(|w| w == *n))
        };
        for needle in [
            "4111 1111 1111 1111",
            "Cobol Lane",
            "DE89 3704",
            "07700 900123",
            "I am [name]",
        ] {
            assert!(!on_disk(needle), "{needle} on disk");
        }
        assert!(
            on_disk("my iban is [iban],"),
            "anonymous transcripts are stored redacted"
        );
        // Staff reading a person's transcript is audited.
        assert!(
            h.audit_actions()
                .await
                .contains(&"assistant.transcript_read".to_string())
        );

        // The export has the conversation; erasure removes it.
        let (s, e) = h
            .call("GET", "/v1/subjects/grace/export", &h.server, None)
            .await;
        assert_eq!(s, StatusCode::OK, "{e}");
        let t = &e["tables"];
        assert_eq!(
            t["assistant_conversations"].as_array().unwrap().len(),
            1,
            "{e}"
        );
        assert_eq!(
            t["assistant_messages"][0]["text"],
            "I am [name], [email], card [card], [address]"
        );
        assert_eq!(t["assistant_messages"].as_array().unwrap().len(), 2);
        let (s, r) = h
            .call("DELETE", "/v1/subjects/grace", &h.server, None)
            .await;
        assert_eq!(s, StatusCode::OK, "{r}");
        assert_eq!(r["receipt"]["erased"]["assistant_messages"], 2, "{r}");
        assert_eq!(r["receipt"]["erased"]["assistant_conversations"], 1);
        let (s, _) = h
            .call(
                "GET",
                &format!("/v1/assistant/conversations/{conv}"),
                &h.server,
                None,
            )
            .await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        let (s, _) = h
            .call(
                "POST",
                &format!("/v1/assistant/conversations/{conv}/messages"),
                &h.write,
                Some(json!({"message": "hi"})),
            )
            .await;
        assert_eq!(s, StatusCode::NOT_FOUND);

        // Retention: conversations idle past `retention_days` are swept.
        h.t.clock.advance_days(181);
        h.t.app.sweep_retention().await.unwrap();
        let (s, _) = h
            .call(
                "GET",
                &format!("/v1/assistant/conversations/{anon_id}"),
                &h.write,
                None,
            )
            .await;
        assert_eq!(s, StatusCode::NOT_FOUND);
    }
}

/// The local chat-completions server of `tests/peers/llm_server.py`.
struct Llm {
    child: tokio::process::Child,
    port: u16,
    log: PathBuf,
    mode: PathBuf,
    _dir: tempdir::Dir,
}

mod tempdir {
    pub struct Dir(pub std::path::PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

impl Llm {
    async fn start() -> Self {
        use tokio::io::AsyncBufReadExt as _;
        let dir = std::env::temp_dir().join(format!("candor-llm-{}", uuid_like()));
        std::fs::create_dir_all(&dir).unwrap();
        let (log, mode) = (dir.join("requests.jsonl"), dir.join("mode"));
        std::fs::write(&log, b"").unwrap();
        std::fs::write(&mode, b"ok").unwrap();
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/peers/llm_server.py");
        let mut child = tokio::process::Command::new("python3")
            .arg(script)
            .arg(&log)
            .arg(&mode)
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("python3 runs the test's chat-completions server");
        let mut out = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let port = out
            .next_line()
            .await
            .unwrap()
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        Self {
            child,
            port,
            log,
            mode,
            _dir: tempdir::Dir(dir),
        }
    }

    fn set(&self, mode: &str) {
        std::fs::write(&self.mode, mode).unwrap();
    }

    fn requests(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    fn policy(&self) -> String {
        DEFAULT_POLICY.replacen(
            "# [assistant.llm]\n# base_url = \"http://127.0.0.1:11434/v1\"\n# model = \"llama3.2\"",
            &format!("[assistant.llm]\nbase_url = \"http://127.0.0.1:{}/v1\"\nmodel = \"test-model\"\ntimeout_ms = 1500", self.port),
            1,
        )
    }
}

impl Drop for Llm {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

fn uuid_like() -> String {
    format!("{}-{:?}", std::process::id(), std::time::SystemTime::now())
        .replace(|c: char| !c.is_ascii_alphanumeric(), "")
}

#[tokio::test]
async fn no_model_is_called_when_none_is_configured() {
    let llm = Llm::start().await;
    for backend in BACKENDS {
        let Some(h) = shop(backend, DEFAULT_POLICY).await else {
            continue;
        };
        let v = h
            .start(&h.write, json!({"message": "do you have party bunting?"}))
            .await;
        let conv = v["conversationId"].as_str().unwrap().to_string();
        for m in [
            "how long does UK delivery take?",
            "any ideas?",
            "hello",
            "zzzz qqqq",
        ] {
            let v = h.say(&conv, m).await;
            assert_eq!(v["reply"]["backend"], "embedded", "{v}");
        }
        assert!(
            !h.audit_actions()
                .await
                .contains(&"assistant.llm_call".to_string())
        );
    }
    // The server was there all along, and nobody asked it anything.
    assert!(llm.requests().is_empty());
}

#[tokio::test]
async fn the_model_phrases_retrieved_answers_and_the_embedded_assistant_covers_its_failures() {
    let llm = Llm::start().await;
    for backend in BACKENDS {
        let Some(h) = shop(backend, &llm.policy()).await else {
            continue;
        };
        llm.set("ok");
        let v = h
            .start(
                &h.write,
                json!({"message": "I'm ada@example.org, do you have party bunting?"}),
            )
            .await;
        let r = &v["reply"];
        assert_eq!(r["backend"], "llm", "{v}");
        assert!(
            r["text"]
                .as_str()
                .unwrap()
                .contains("From the shop's catalog: Product 47566: PARTY BUNTING"),
            "{v}"
        );
        assert!(
            r["text"].as_str().unwrap().starts_with(&disclosure()),
            "the disclosure is Candor's, not the model's"
        );
        let conv = v["conversationId"].as_str().unwrap().to_string();
        let sent = llm.requests();
        let last = sent.last().unwrap();
        assert!(!last.contains("ada@example.org"), "{last}");
        assert!(
            last.contains("[email]") && last.contains("test-model"),
            "{last}"
        );
        // Chunked answers are read too.
        llm.set("chunked");
        let v = h.say(&conv, "and a cake stand?").await;
        assert_eq!(v["reply"]["backend"], "llm", "{v}");

        // Failure and timeout: the embedded answer, saying so.
        for mode in ["fail", "slow"] {
            llm.set(mode);
            let started = std::time::Instant::now();
            let v = h
                .say(&conv, "do you have a red retrospot cake stand?")
                .await;
            let r = &v["reply"];
            assert_eq!(r["backend"], "embedded", "{mode}: {v}");
            assert_eq!(r["sources"][0]["id"], "21232");
            assert!(
                r["text"]
                    .as_str()
                    .unwrap()
                    .contains("could not answer just now"),
                "{v}"
            );
            assert!(
                started.elapsed() < std::time::Duration::from_secs(4),
                "{mode} waited too long"
            );
        }
        // A reply that claims to be a person, or echoes personal data, is not shown.
        for mode in ["human", "leak"] {
            llm.set(mode);
            let v = h.say(&conv, "party bunting please").await;
            assert_eq!(v["reply"]["backend"], "embedded", "{mode}: {v}");
            let text = v["reply"]["text"].as_str().unwrap();
            assert!(
                !text.contains("real person") && !text.contains("jane.doe"),
                "{text}"
            );
        }
        let outcomes: Vec<Value> = h
            .audited("assistant.llm_call")
            .await
            .into_iter()
            .map(|e| serde_json::from_str::<Value>(&e.details).unwrap()["outcome"].clone())
            .collect();
        assert_eq!(
            outcomes,
            [
                json!("ok"),
                json!("ok"),
                json!("status"),
                json!("timeout"),
                json!("refused_human_claim"),
                json!("refused_personal_data")
            ]
        );
        // Hand-offs, privacy requests and order status never go to the model.
        llm.set("ok");
        let n = llm.requests().len();
        for m in ["I want a human", "delete my data", "where is my order"] {
            let c = h.start(&h.write, json!({"message": m})).await;
            assert_eq!(c["reply"]["backend"], "embedded");
        }
        assert_eq!(llm.requests().len(), n);
    }
}

/// Generated personal data: emails, phone numbers, valid card numbers, valid IBANs.
fn pii() -> impl Strategy<Value = (&'static str, String)> {
    use proptest::prelude::*;
    let email = (
        "[a-z][a-z0-9._+-]{0,12}[a-z0-9]",
        "[a-z][a-z0-9-]{0,10}[a-z0-9]",
        prop::sample::select(vec!["com", "org", "co.uk", "de", "shop"]),
    )
        .prop_map(|(l, d, t)| ("email", format!("{l}@{d}.{t}")));
    let phone = (
        prop::sample::select(vec!["+44 ", "+1 ", "+49 ", "0", "+33 "]),
        proptest::collection::vec(0u8..10, 9..11),
        prop::sample::select(vec![" ", "-", ""]),
    )
        .prop_map(|(p, d, sep)| {
            let digits: String = d.iter().map(|x| char::from(b'0' + x)).collect();
            let (a, b) = digits.split_at(3);
            let (b, c) = b.split_at(3);
            ("phone", format!("{p}{a}{sep}{b}{sep}{c}"))
        });
    let card = (
        proptest::collection::vec(0u8..10, 15),
        prop::sample::select(vec![" ", "-", ""]),
    )
        .prop_map(|(mut d, sep)| {
            d[0] = 4;
            let mut sum = 0;
            for (i, x) in d.iter().rev().enumerate() {
                let mut v = u32::from(*x);
                if i % 2 == 0 {
                    v *= 2;
                    if v > 9 {
                        v -= 9;
                    }
                }
                sum += v;
            }
            d.push(((10 - sum % 10) % 10) as u8);
            let s: Vec<String> = d
                .chunks(4)
                .map(|c| c.iter().map(|x| char::from(b'0' + x)).collect())
                .collect();
            ("card", s.join(sep))
        });
    let iban = (
        prop::sample::select(vec![
            ("DE", 18),
            ("GB", 18),
            ("FR", 23),
            ("NL", 14),
            ("ES", 20),
        ]),
        proptest::collection::vec(0u8..10, 23),
        any::<bool>(),
    )
        .prop_map(|((cc, n), d, spaced)| {
            let bban: String = d[..n].iter().map(|x| char::from(b'0' + x)).collect();
            let numeric: String = format!("{bban}{cc}00")
                .chars()
                .map(|c| {
                    if c.is_ascii_digit() {
                        c.to_string()
                    } else {
                        (c as u32 - 'A' as u32 + 10).to_string()
                    }
                })
                .collect();
            let rem = numeric
                .chars()
                .fold(0u32, |r, c| (r * 10 + c.to_digit(10).unwrap()) % 97);
            let iban = format!("{cc}{:02}{bban}", 98 - rem);
            if spaced {
                let c: Vec<char> = iban.chars().collect();
                (
                    "iban",
                    c.chunks(4)
                        .map(|x| x.iter().collect::<String>())
                        .collect::<Vec<_>>()
                        .join(" "),
                )
            } else {
                ("iban", iban)
            }
        });
    let around = prop::sample::select(vec![
        ("my details: ", ", do you have party bunting?"),
        ("do you have a cake stand? reach me at ", ""),
        ("", " is mine. Looking for bird ornaments"),
        ("Hi, (", ") here. any t-light holders?"),
    ]);
    (prop_oneof![email, phone, card, iban], around)
        .prop_map(|((k, v), (a, b))| (k, format!("{a}{v}{b}|{v}")))
}

#[tokio::test]
async fn generated_personal_data_never_reaches_the_model_or_the_stored_transcript() {
    let llm = Llm::start().await;
    for backend in BACKENDS {
        let Some(h) = shop(backend, &llm.policy()).await else {
            continue;
        };
        llm.set("ok");
        let mut runner = TestRunner::deterministic();
        let strategy = pii();
        for case in 0..48 {
            let (kind, both) = strategy.new_tree(&mut runner).unwrap().current();
            let (message, value) = both.rsplit_once('|').unwrap();
            let user = format!("p{case}");
            let v = h
                .start(&h.write, json!({"userId": user, "message": message}))
                .await;
            let found: u64 = v["redacted"]
                .as_object()
                .unwrap()
                .values()
                .map(|n| n.as_u64().unwrap())
                .sum();
            assert!(
                found >= 1,
                "{kind} {value:?} in {message:?} not redacted: {v}"
            );
            let conv = v["conversationId"].as_str().unwrap().to_string();
            let body = llm.requests().pop().unwrap();
            let compact: String = value.chars().filter(char::is_ascii_alphanumeric).collect();
            assert!(
                !body.contains(value) && !body.contains(&compact),
                "{kind} {value:?} reached the model: {body}"
            );
            let (_, c) = h
                .call(
                    "GET",
                    &format!("/v1/assistant/conversations/{conv}"),
                    &h.server,
                    None,
                )
                .await;
            let stored = c["messages"].to_string();
            assert!(
                !stored.contains(value) && !stored.contains(&compact),
                "{kind} {value:?} stored: {stored}"
            );
        }
    }
}

#[tokio::test]
async fn staff_answer_hand_offs_in_the_console() {
    for backend in BACKENDS {
        let Some(h) = shop(backend, DEFAULT_POLICY).await else {
            continue;
        };
        let v = h
            .start(&h.write, json!({"userId": "lin", "message": "I want to speak to a human about my order, call 07700 900123"}))
            .await;
        let conv = v["conversationId"].as_str().unwrap().to_string();
        assert_eq!(v["reply"]["handoff"]["reason"], "requested", "{v}");
        super::web::staff(&h, "carol", "compliance").await;
        super::web::staff(&h, "mark", "marketer").await;
        let mut marketer = super::web::sign_in(&h, "mark").await;
        assert_eq!(
            marketer.get(&h, "/console/assistant").await.status,
            StatusCode::FORBIDDEN
        );
        let mut b = super::web::sign_in(&h, "carol").await;
        let page = b.get(&h, "/console/assistant").await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        assert!(page.body.contains("call [phone]"), "{}", page.body);
        assert!(!page.body.contains("07700"));
        let ticket = h.tickets().await[0]["id"].as_str().unwrap().to_string();
        let csrf = page.csrf();
        let done = b
            .post(
                &h,
                &format!("/console/assistant/{ticket}/reply"),
                &[
                    ("csrf", &csrf),
                    ("message", "Hi Lin, your parcel left today."),
                    ("close", "1"),
                ],
            )
            .await;
        assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
        // Without the CSRF token nothing is sent.
        let refused = b
            .post(
                &h,
                &format!("/console/assistant/{ticket}/reply"),
                &[("message", "again")],
            )
            .await;
        assert_ne!(refused.status, StatusCode::SEE_OTHER);
        let (_, c) = h
            .call(
                "GET",
                &format!("/v1/assistant/conversations/{conv}"),
                &h.write,
                None,
            )
            .await;
        let last = c["messages"].as_array().unwrap().last().unwrap().clone();
        assert_eq!(
            (last["role"].as_str(), last["text"].as_str()),
            (Some("staff"), Some("Hi Lin, your parcel left today.")),
            "{c}"
        );
        assert_eq!(h.tickets().await[0]["status"], "closed");
        let actors: Vec<String> = h
            .audited("assistant.staff_reply")
            .await
            .into_iter()
            .map(|e| e.actor)
            .collect();
        assert_eq!(actors.len(), 1);
        assert!(actors[0].starts_with("staff:"), "{actors:?}");
    }
}
