//! `candor dsr …` through the real binary: a request from creation to completion, the export
//! directory (JSON and one CSV per table), erasure with its receipt, and `log verify` after.

use candor_testkit::BACKENDS;
use serde_json::{Value, json};

use super::{Deployment, http, ok, start, stderr};

#[tokio::test]
async fn dsr_requests_exports_and_erasure_from_the_command_line() {
    for backend in BACKENDS {
        let Some(d) = Deployment::new(backend).await else {
            continue;
        };
        let key = ok(&d.run(&["init"])).trim().to_owned();
        let server = start(&d);
        let mut msgs = vec![
            json!({"type": "identify", "userId": "cli-ada", "messageId": "i-1",
            "traits": {"email": "ada@example.org", "name": "Ada"},
            "context": {"consent": {"categoryPreferences": {"Analytics": true, "Marketing": true}}}}),
        ];
        for i in 0..30 {
            msgs.push(
                json!({"type": "track", "userId": "cli-ada", "messageId": format!("e-{i}"),
                "event": "Product Viewed", "properties": {"product_id": format!("p{i}")},
                "context": {"consent": {"categoryPreferences": {"Analytics": true}}}}),
            );
        }
        let (status, body) = http::request(
            &server.addr,
            "POST",
            "/v1/batch",
            Some(&key),
            Some(&json!({ "batch": msgs }).to_string()),
        )
        .unwrap();
        assert_eq!(status, 200, "{body}");
        drop(server);

        // A request: created with its token, verified, carried out.
        let out = d.run(&["dsr", "create", "--user", "nobody", "--kind", "access"]);
        assert!(!out.status.success());
        assert!(stderr(&out).contains("[not_found]"), "{}", stderr(&out));
        let created: Value = serde_json::from_str(&ok(
            &d.run(&["dsr", "create", "--user", "cli-ada", "--kind", "access"])
        ))
        .unwrap();
        let id = created["request"]["id"].as_str().unwrap().to_string();
        let token = created["verification_token"].as_str().unwrap().to_string();
        assert_eq!(created["request"]["status"], "received");
        let out = d.run(&["dsr", "verify", &id, "--token", "dsr_wrong"]);
        assert!(
            stderr(&out).contains("[verification_failed]"),
            "{}",
            stderr(&out)
        );
        ok(&d.run(&["dsr", "verify", &id, "--token", &token]));
        let done: Value = serde_json::from_str(&ok(&d.run(&["dsr", "process", &id]))).unwrap();
        assert_eq!(done["status"], "completed", "{done}");
        let listed = ok(&d.run(&["dsr", "list"]));
        assert!(
            listed.contains(&id) && listed.contains("completed"),
            "{listed}"
        );

        // The export: a JSON document and one CSV per table.
        let dir = d.dir.0.join("export-ada");
        ok(&d.run(&[
            "dsr",
            "export",
            "--user",
            "cli-ada",
            "--out",
            dir.to_str().unwrap(),
        ]));
        let doc: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("export.json")).unwrap())
                .unwrap();
        assert_eq!(doc["tables"]["events"].as_array().unwrap().len(), 31);
        assert!(
            doc.to_string().contains("ada@example.org"),
            "decrypted for the person"
        );
        for table in candor_store::SUBJECT_TABLES {
            let csv = std::fs::read_to_string(dir.join(format!("{table}.csv"))).unwrap();
            let rows = doc["tables"][*table].as_array().unwrap().len();
            assert_eq!(csv.lines().count(), rows + 1, "{table}.csv");
        }

        // Erasure: a receipt, nothing left to export, the audit log still verifies.
        let receipt: Value =
            serde_json::from_str(&ok(&d.run(&["dsr", "erase", "--user", "cli-ada"]))).unwrap();
        assert_eq!(receipt["receipt"]["erased"]["events"], 31, "{receipt}");
        assert_eq!(receipt["receipt"]["erased"]["key_destroyed"], true);
        let out = d.run(&[
            "dsr",
            "export",
            "--user",
            "cli-ada",
            "--out",
            dir.to_str().unwrap(),
        ]);
        assert!(
            stderr(&out).contains("[subject_erased]"),
            "{}",
            stderr(&out)
        );
        let out = ok(&d.run(&["log", "verify"]));
        assert!(out.contains("audit log ok"), "{out}");
    }
}
