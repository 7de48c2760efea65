//! The store conformance suite: every test runs against SQLite and PostgreSQL.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use candor_crypto::{IdentifierKind, MasterKey, Sealed};
use candor_policy::{DEFAULT_POLICY, Grant, Policy};
use candor_store::{
    Alias, AuditDraft, EventRow, FieldRow, IngestWrite, NewAlert, NewApiKey, NewModelAudit,
    NewSubject, Store, StoreError, TenantRow, verify_chain,
};
use candor_testkit::{BACKENDS, Backend, TestDb};
use candor_types::{
    Category, ConsentAction, ConsentRecord, ConsentSource, ConsentState, EventId, EventKind, KeyId,
    Purpose, Scope, SubjectId, TenantId, Timestamp,
};
use serde_json::json;

/// Runs the body once per backend (PostgreSQL is skipped only when explicitly allowed).
macro_rules! each_backend {
    (|$db:ident| $body:block) => {
        for backend in BACKENDS {
            let Some($db) = TestDb::new(backend).await else {
                continue;
            };
            let run = async { $body };
            run.await;
        }
    };
}

fn audit(tenant: Option<TenantId>, action: &str) -> AuditDraft {
    AuditDraft {
        tenant,
        actor: "test".into(),
        action: action.into(),
        target: None,
        details: json!({"n": 1}),
    }
}

async fn tenant(db: &TestDb, name: &str) -> (TenantId, candor_crypto::TenantKey) {
    let master = MasterKey::generate().unwrap();
    let id = TenantId::new();
    let (tk, wrapped) = master.new_tenant_key(id).unwrap();
    db.store
        .create_tenant(
            &TenantRow {
                id,
                name: name.into(),
                wrapped_key: wrapped,
                created_at: Timestamp::now(),
            },
            audit(None, "tenant.created"),
        )
        .await
        .unwrap();
    (id, tk)
}

fn alias(tk: &candor_crypto::TenantKey, user: &str) -> Alias {
    Alias {
        kind: IdentifierKind::UserId,
        blind: tk.blind_index(IdentifierKind::UserId, user),
    }
}

async fn subject(db: &TestDb, t: TenantId, tk: &candor_crypto::TenantKey, user: &str) -> SubjectId {
    let id = SubjectId::new();
    let (_, wrapped) = tk.new_data_key(id).unwrap();
    let a = alias(tk, user);
    let got = db
        .store
        .ensure_subjects(
            t,
            vec![NewSubject {
                id,
                wrapped_key: wrapped,
                aliases: vec![a],
            }],
            Timestamp::now(),
        )
        .await
        .unwrap();
    got[&a].id
}

fn policy() -> Policy {
    Policy::parse("candor.toml", DEFAULT_POLICY).unwrap()
}

fn p(s: &str) -> Purpose {
    s.parse().unwrap()
}

fn c(s: &str) -> Category {
    s.parse().unwrap()
}

fn grant(t: TenantId, s: SubjectId, purpose: &str) -> Grant {
    let mut st = ConsentState::default();
    st.apply(ConsentRecord {
        purpose: p(purpose),
        action: ConsentAction::Granted,
        source: ConsentSource::Api,
        notice_version: None,
        notice_hash: None,
        jurisdiction: Some("eu".into()),
        at: Timestamp::now(),
    });
    policy().decide(t, s, &p(purpose), &st).unwrap()
}

fn event(s: SubjectId, message_id: &str, category: &str, at: Timestamp) -> EventRow {
    let mut plain = BTreeMap::new();
    plain.insert(c(category), json!({"properties": {"sku": "A1"}}));
    let mut sealed = BTreeMap::new();
    sealed.insert(c("contact"), Sealed::from_stored(vec![1, 2, 3]));
    EventRow {
        id: EventId::new(),
        message_id: message_id.into(),
        subject: s,
        kind: EventKind::Track,
        name: Some("Product Viewed".into()),
        category: c(category),
        purposes: vec![p("analytics")],
        plain,
        sealed,
        occurred_at: at,
        received_at: at,
    }
}

async fn write_events(db: &TestDb, t: TenantId, s: SubjectId, events: Vec<EventRow>) -> Vec<bool> {
    let ids = events.iter().map(|e| e.message_id.clone()).collect();
    let ((), _, inserted) = db
        .store
        .ingest(t, vec![s], ids, |_snap| {
            Ok::<_, ()>((
                IngestWrite {
                    events,
                    ..Default::default()
                },
                (),
            ))
        })
        .await
        .unwrap()
        .unwrap();
    inserted
}

#[tokio::test]
async fn migrations_are_idempotent_and_tenant_names_unique() {
    each_backend!(|db| {
        db.store.migrate().await.unwrap();
        db.store.migrate().await.unwrap();
        let (t, _) = tenant(&db, "shop-a").await;
        let again = TenantRow {
            id: TenantId::new(),
            name: "shop-a".into(),
            wrapped_key: Sealed::from_stored(vec![0; 64]),
            created_at: Timestamp::now(),
        };
        let err = db
            .store
            .create_tenant(&again, audit(None, "x"))
            .await
            .unwrap_err();
        assert!(
            matches!(err, StoreError::Conflict(_)),
            "{:?}: {err:?}",
            db.backend
        );
        assert_eq!(
            db.store.tenant_by_name("shop-a").await.unwrap().unwrap().id,
            t
        );
        assert_eq!(db.store.tenant(t).await.unwrap().unwrap().name, "shop-a");
        assert!(db.store.tenant_by_name("shop-b").await.unwrap().is_none());
        assert_eq!(db.store.list_tenants().await.unwrap().len(), 1);
    });
}

#[tokio::test]
async fn api_keys_resolve_by_hash_and_revocation_is_per_tenant() {
    each_backend!(|db| {
        let (a, _) = tenant(&db, "a").await;
        let (b, _) = tenant(&db, "b").await;
        let key = NewApiKey {
            id: KeyId::new(),
            tenant: a,
            scope: Scope::Server,
            hash: [7; 32],
            label: Some("backend".into()),
        };
        db.store
            .create_api_key(&key, audit(Some(a), "key.created"))
            .await
            .unwrap();
        let row = db.store.api_key_by_hash(&[7; 32]).await.unwrap().unwrap();
        assert_eq!((row.tenant, row.scope, row.id), (a, Scope::Server, key.id));
        assert!(db.store.api_key_by_hash(&[8; 32]).await.unwrap().is_none());
        // tenant b cannot revoke tenant a's key
        let revoked = db
            .store
            .revoke_api_key(b, key.id, Timestamp::now(), audit(Some(b), "key.revoked"))
            .await
            .unwrap();
        assert!(!revoked);
        assert!(db.store.api_key_by_hash(&[7; 32]).await.unwrap().is_some());
        assert!(
            db.store
                .revoke_api_key(a, key.id, Timestamp::now(), audit(Some(a), "key.revoked"))
                .await
                .unwrap()
        );
        assert!(db.store.api_key_by_hash(&[7; 32]).await.unwrap().is_none());
        assert_eq!(db.store.list_api_keys(a).await.unwrap().len(), 1);
        assert!(db.store.list_api_keys(b).await.unwrap().is_empty());
    });
}

#[tokio::test]
async fn subjects_are_created_once_per_alias_even_concurrently() {
    each_backend!(|db| {
        let (t, tk) = tenant(&db, "a").await;
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let store = db.store.clone();
            let tk = tk.clone();
            tasks.push(tokio::spawn(async move {
                let id = SubjectId::new();
                let (_, wrapped) = tk.new_data_key(id).unwrap();
                let a = alias(&tk, "same-user");
                store
                    .ensure_subjects(
                        t,
                        vec![NewSubject {
                            id,
                            wrapped_key: wrapped,
                            aliases: vec![a],
                        }],
                        Timestamp::now(),
                    )
                    .await
                    .unwrap()[&a]
                    .id
            }));
        }
        let mut ids = Vec::new();
        for task in tasks {
            ids.push(task.await.unwrap());
        }
        ids.dedup();
        assert_eq!(ids.len(), 1, "{:?}: one subject for one alias", db.backend);
        let found = db
            .store
            .find_subjects(t, &[alias(&tk, "same-user")])
            .await
            .unwrap();
        assert_eq!(found.len(), 1);
        assert!(
            db.store
                .subject(t, ids[0])
                .await
                .unwrap()
                .unwrap()
                .wrapped_key
                .is_some()
        );
        // the same alias in another tenant is a different (unknown) subject
        let (t2, _) = tenant(&db, "b").await;
        assert!(
            db.store
                .find_subjects(t2, &[alias(&tk, "same-user")])
                .await
                .unwrap()
                .is_empty()
        );
        assert!(db.store.subject(t2, ids[0]).await.unwrap().is_none());
    });
}

#[tokio::test]
async fn ingest_deduplicates_and_reads_are_bounded_by_the_grant() {
    each_backend!(|db| {
        let (t, tk) = tenant(&db, "a").await;
        let s = subject(&db, t, &tk, "u1").await;
        let now = Timestamp::now();
        let first = write_events(
            &db,
            t,
            s,
            vec![
                event(s, "m1", "behavioural", now),
                event(s, "m2", "transactional", now),
            ],
        )
        .await;
        assert_eq!(first, vec![true, true]);
        let again = write_events(&db, t, s, vec![event(s, "m1", "behavioural", now)]).await;
        assert_eq!(again, vec![false], "{:?}: duplicate messageId", db.backend);
        assert_eq!(db.store.count_events(t).await.unwrap(), 2);

        // the planner sees which message ids already exist
        let (seen, _, _) = db
            .store
            .ingest(t, vec![s], vec!["m1".into(), "m9".into()], |snap| {
                Ok::<_, ()>((IngestWrite::default(), snap.existing_message_ids.clone()))
            })
            .await
            .unwrap()
            .unwrap();
        assert!(seen.contains("m1") && !seen.contains("m9"));

        // analytics reads behavioural + transactional, never the sealed contact part
        let g = grant(t, s, "analytics");
        let evs = db.store.events_for(&g, 10).await.unwrap();
        assert_eq!(evs.len(), 2);
        assert!(evs.iter().all(|e| e.sealed.is_empty()));
        // advertising reads only behavioural events
        let g = grant(t, s, "advertising");
        let evs = db.store.events_for(&g, 10).await.unwrap();
        assert_eq!(evs.len(), 1);
        assert_eq!(evs[0].category.as_str(), "behavioural");
        // marketing_email may read contact: the sealed part comes back
        let g = grant(t, s, "marketing_email");
        let evs = db.store.events_for(&g, 10).await.unwrap();
        assert!(evs.iter().all(|e| e.sealed.contains_key(&c("contact"))));

        // a failing planner writes nothing
        let failed = db
            .store
            .ingest(t, vec![s], vec![], |_| Err::<(IngestWrite, ()), _>("no"))
            .await
            .unwrap();
        assert_eq!(failed.err(), Some("no"));
        assert_eq!(db.store.count_events(t).await.unwrap(), 2);
    });
}

#[tokio::test]
async fn tenants_never_see_each_others_rows() {
    each_backend!(|db| {
        let (a, tka) = tenant(&db, "a").await;
        let (b, _) = tenant(&db, "b").await;
        let s = subject(&db, a, &tka, "u1").await;
        write_events(
            &db,
            a,
            s,
            vec![event(s, "m1", "behavioural", Timestamp::now())],
        )
        .await;
        // a grant minted for tenant b with a's subject id finds nothing
        let g = grant(b, s, "analytics");
        assert!(db.store.events_for(&g, 10).await.unwrap().is_empty());
        assert!(db.store.fields_for(&g).await.unwrap().is_empty());
        assert!(db.store.consent_ledger(b, s).await.unwrap().is_empty());
        assert_eq!(db.store.count_events(b).await.unwrap(), 0);
        // the same message id in another tenant is not a duplicate
        let sb = subject(&db, b, &tka, "u1").await;
        assert_eq!(
            write_events(
                &db,
                b,
                sb,
                vec![event(sb, "m1", "behavioural", Timestamp::now())]
            )
            .await,
            vec![true]
        );
    });
}

#[tokio::test]
async fn consent_ledger_is_append_only_and_ordered() {
    each_backend!(|db| {
        let (t, tk) = tenant(&db, "a").await;
        let s = subject(&db, t, &tk, "u1").await;
        let rec = |action, at| ConsentRecord {
            purpose: p("analytics"),
            action,
            source: ConsentSource::Banner,
            notice_version: Some("2026-05".into()),
            notice_hash: Some("ab".repeat(32)),
            jurisdiction: Some("eu".into()),
            at: Timestamp(at),
        };
        db.store
            .append_consents(
                t,
                s,
                vec![rec(ConsentAction::Granted, 1)],
                vec![audit(Some(t), "consent.granted")],
            )
            .await
            .unwrap();
        db.store
            .append_consents(
                t,
                s,
                vec![rec(ConsentAction::Withdrawn, 2)],
                vec![audit(Some(t), "consent.withdrawn")],
            )
            .await
            .unwrap();
        let ledger = db.store.consent_ledger(t, s).await.unwrap();
        assert_eq!(
            ledger,
            vec![
                rec(ConsentAction::Granted, 1),
                rec(ConsentAction::Withdrawn, 2)
            ]
        );
        let err = db
            .store
            .append_consents(
                t,
                SubjectId::new(),
                vec![rec(ConsentAction::Granted, 3)],
                vec![],
            )
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::NotFound));
        // the ingest snapshot carries the ledger
        let (ledgers, _, _) = db
            .store
            .ingest(t, vec![s], vec![], |snap| {
                Ok::<_, ()>((IngestWrite::default(), snap.ledgers.clone()))
            })
            .await
            .unwrap()
            .unwrap();
        assert_eq!(ledgers[&s].len(), 2);
    });
}

async fn verify(db: &TestDb) -> Result<i64, candor_store::AuditBreak> {
    let mut total = 0;
    for (chain, head_seq, head_hash) in db.store.audit_chains().await.unwrap() {
        let mut v = verify_chain(&chain);
        for e in db.store.audit_entries(&chain, 0, 10_000).await.unwrap() {
            v.feed(&e)?;
        }
        total += v.finish(head_seq, &head_hash)?;
    }
    Ok(total)
}

#[tokio::test]
async fn audit_chain_detects_edits_deletions_and_truncation() {
    for backend in BACKENDS {
        for tamper in ["edit", "delete", "truncate", "relink"] {
            let Some(db) = TestDb::new(backend).await else {
                continue;
            };
            let (t, _) = tenant(&db, "a").await;
            for i in 0..5 {
                db.store
                    .append_audit(vec![audit(Some(t), &format!("consent.granted.{i}"))])
                    .await
                    .unwrap();
            }
            assert_eq!(verify(&db).await.unwrap(), 6, "{backend:?}");
            let chain = t.to_string();
            let sql = match tamper {
                "edit" => format!(
                    "UPDATE audit_log SET details = '{{\"n\": 2}}' WHERE chain = '{chain}' AND seq = 3"
                ),
                "delete" => format!("DELETE FROM audit_log WHERE chain = '{chain}' AND seq = 2"),
                "truncate" => format!("DELETE FROM audit_log WHERE chain = '{chain}' AND seq = 5"),
                _ => {
                    format!("UPDATE audit_log SET action = 'x' WHERE chain = '{chain}' AND seq = 4")
                }
            };
            assert_eq!(db.exec_raw(&sql).await, 1);
            let broken = verify(&db).await.unwrap_err();
            let expected_seq = match tamper {
                "edit" => 3,
                "delete" => 2,
                "truncate" => 5,
                _ => 4,
            };
            assert_eq!(
                (broken.chain.as_str(), broken.seq),
                (chain.as_str(), expected_seq),
                "{backend:?} {tamper}: {broken}"
            );
        }
    }
}

#[tokio::test]
async fn retention_sweep_removes_expired_events_parts_and_fields() {
    each_backend!(|db| {
        let (t, tk) = tenant(&db, "a").await;
        let s = subject(&db, t, &tk, "u1").await;
        let old = Timestamp::now().minus_days(400);
        let recent = Timestamp::now().minus_days(10);
        write_events(
            &db,
            t,
            s,
            vec![
                event(s, "old-b", "behavioural", old),
                event(s, "new-b", "behavioural", recent),
                event(s, "old-t", "transactional", old),
            ],
        )
        .await;
        let field = |path: &str, cat: &str, at| FieldRow {
            subject: s,
            path: path.into(),
            category: c(cat),
            sealed: Sealed::from_stored(vec![9; 40]),
            updated_at: at,
        };
        let fields = vec![
            field("traits.email", "contact", old),
            field("traits.phone", "contact", recent),
        ];
        db.store
            .ingest(t, vec![s], vec![], move |_| {
                Ok::<_, ()>((
                    IngestWrite {
                        fields,
                        ..Default::default()
                    },
                    (),
                ))
            })
            .await
            .unwrap()
            .unwrap();
        let cutoff = Timestamp::now().minus_days(395);
        let counts = db
            .store
            .sweep_category(t, &c("behavioural"), cutoff)
            .await
            .unwrap();
        assert_eq!(counts.events_deleted, 1, "{:?}", db.backend);
        let counts = db
            .store
            .sweep_category(t, &c("contact"), cutoff)
            .await
            .unwrap();
        assert_eq!(
            (
                counts.events_deleted,
                counts.event_parts_removed,
                counts.fields_deleted
            ),
            (0, 1, 1)
        );
        assert_eq!(db.store.count_events(t).await.unwrap(), 2);
        // the old transactional event stays, without its contact part
        let evs = db
            .store
            .events_for(&grant(t, s, "marketing_email"), 10)
            .await
            .unwrap();
        let old_t = evs.iter().find(|e| e.message_id == "old-t").unwrap();
        assert!(old_t.sealed.is_empty() && old_t.plain.contains_key(&c("transactional")));
        let new_b = evs.iter().find(|e| e.message_id == "new-b").unwrap();
        assert!(new_b.sealed.contains_key(&c("contact")));
        let fields = db
            .store
            .fields_for(&grant(t, s, "marketing_email"))
            .await
            .unwrap();
        assert_eq!(
            fields.iter().map(|f| f.path.as_str()).collect::<Vec<_>>(),
            vec!["traits.phone"]
        );
        // sweeping again finds nothing
        let again = db
            .store
            .sweep_category(t, &c("contact"), cutoff)
            .await
            .unwrap();
        assert_eq!(again, Default::default());
        let _ = Backend::Sqlite;
    });
}

#[tokio::test]
async fn a_stale_prepared_write_is_replanned_inside_the_transaction() {
    each_backend!(|db| {
        let (t, tk) = tenant(&db, "a").await;
        let s = subject(&db, t, &tk, "u1").await;
        let snap = db
            .store
            .ingest_snapshot(t, &[s], &["m1".into()])
            .await
            .unwrap();
        assert_eq!(snap.fingerprint, (0, 0));
        // the ledger changes after the snapshot was taken (a concurrent withdrawal)
        let rec = ConsentRecord {
            purpose: p("analytics"),
            action: ConsentAction::Withdrawn,
            source: ConsentSource::Api,
            notice_version: None,
            notice_hash: None,
            jurisdiction: None,
            at: Timestamp::now(),
        };
        db.store
            .append_consents(t, s, vec![rec], vec![])
            .await
            .unwrap();
        let after = db.store.ingest_snapshot(t, &[s], &[]).await.unwrap();
        assert_eq!(after.fingerprint.0, 1);
        assert_ne!(after.fingerprint, snap.fingerprint);
        let stale = IngestWrite {
            events: vec![event(s, "m1", "behavioural", Timestamp::now())],
            ..Default::default()
        };
        let mut jobs = vec![candor_store::IngestJob {
            tenant: t,
            subjects: vec![s],
            message_ids: vec!["m1".into()],
            prepared: Some(candor_store::Prepared {
                fingerprint: snap.fingerprint,
                existing_message_ids: snap.existing_message_ids,
                write: stale,
            }),
            // the planner sees the withdrawal and writes nothing
            plan: Box::new(|snap| {
                assert_eq!(snap.ledgers.values().map(Vec::len).sum::<usize>(), 1);
                None
            }),
        }];
        let out = db.store.ingest_group(&mut jobs).await.unwrap();
        assert!(
            out[0].is_none(),
            "{:?}: the stale write was used",
            db.backend
        );
        assert_eq!(db.store.count_events(t).await.unwrap(), 0);
        // a fresh prepared write is used as is, without planning
        let snap = db
            .store
            .ingest_snapshot(t, &[s], &["m2".into()])
            .await
            .unwrap();
        let mut jobs = vec![candor_store::IngestJob {
            tenant: t,
            subjects: vec![s],
            message_ids: vec!["m2".into()],
            prepared: Some(candor_store::Prepared {
                fingerprint: snap.fingerprint,
                existing_message_ids: snap.existing_message_ids,
                write: IngestWrite {
                    events: vec![event(s, "m2", "behavioural", Timestamp::now())],
                    ..Default::default()
                },
            }),
            plan: Box::new(|_| panic!("a fresh prepared write must not be replanned")),
        }];
        let out = db.store.ingest_group(&mut jobs).await.unwrap();
        assert_eq!(out[0].as_ref().unwrap().1, vec![true]);
    });
}

fn new_model(n: u8) -> candor_store::NewModel {
    candor_store::NewModel {
        name: "lead_score".into(),
        kind: "gbdt".into(),
        digest: format!("{n:064}"),
        artifact: vec![n; 16],
        card: json!({"n": n}),
    }
}

#[tokio::test]
async fn model_versions_lifecycle_and_one_active_model() {
    each_backend!(|db| {
        let (t, _) = tenant(&db, "shop").await;
        let (other, _) = tenant(&db, "other").await;
        let now = Timestamp::now();
        // Concurrent registrations get distinct versions 1..=6.
        let mut handles = Vec::new();
        for n in 0..6u8 {
            let store = db.store.clone();
            handles.push(tokio::spawn(async move {
                store
                    .insert_model(t, &new_model(n), now, audit(Some(t), "model.registered"))
                    .await
                    .unwrap()
            }));
        }
        let mut versions: Vec<i64> = Vec::new();
        for h in handles {
            versions.push(h.await.unwrap());
        }
        versions.sort_unstable();
        assert_eq!(versions, (1..=6).collect::<Vec<_>>());
        // Versions are per tenant.
        assert_eq!(
            db.store
                .insert_model(other, &new_model(9), now, audit(Some(other), "m"))
                .await
                .unwrap(),
            1
        );
        let m = db.store.model(t, 3).await.unwrap().unwrap();
        assert_eq!((m.status.as_str(), m.artifact.len()), ("draft", 16));
        assert!(
            db.store
                .list_models(t)
                .await
                .unwrap()
                .iter()
                .all(|m| m.artifact.is_empty())
        );
        assert!(db.store.model(other, 6).await.unwrap().is_none());

        let step = |v: i64, from: &'static [&'static str], to: &'static str| {
            let store = db.store.clone();
            async move {
                store
                    .transition_model(
                        t,
                        v,
                        from,
                        to,
                        "admin",
                        "why",
                        now,
                        audit(Some(t), "model.step"),
                    )
                    .await
            }
        };
        // A draft goes nowhere near customers: the fairness gate answers first.
        assert!(matches!(
            step(1, &["approved"], "active").await,
            Err(StoreError::Gate(_))
        ));
        assert!(matches!(
            step(1, &["audited"], "retired").await,
            Err(StoreError::Conflict(_))
        ));
        assert!(matches!(
            step(99, &["draft"], "approved").await,
            Err(StoreError::NotFound)
        ));
        // No audit, no approval.
        assert!(matches!(
            step(1, &["draft"], "approved").await,
            Err(StoreError::Gate(_))
        ));
        let record = |v: i64, kind: &'static str, passed: bool, alerts: Vec<NewAlert>| {
            let store = db.store.clone();
            async move {
                store
                    .insert_model_audit(
                        t,
                        &NewModelAudit {
                            version: v,
                            kind: kind.into(),
                            passed,
                            report: serde_json::json!({ "passed": passed }),
                            period: None,
                        },
                        &alerts,
                        "auditor",
                        now,
                        audit(Some(t), "model.audited"),
                    )
                    .await
            }
        };
        // Version 1 passes its audit and becomes `audited`; version 2 fails and stays `draft`.
        record(1, "validation", true, vec![]).await.unwrap();
        let failed = record(2, "validation", false, vec![]).await.unwrap();
        assert_eq!(
            db.store.model(t, 1).await.unwrap().unwrap().status,
            "audited"
        );
        assert_eq!(db.store.model(t, 2).await.unwrap().unwrap().status, "draft");
        assert!(matches!(
            step(2, &["draft", "audited"], "approved").await,
            Err(StoreError::Gate(_))
        ));
        // The override moves version 2 on, once; an audit that passed cannot be overridden.
        let ov = |v: i64| {
            let store = db.store.clone();
            async move {
                store
                    .override_model_audit(
                        t,
                        v,
                        "admin",
                        "reviewed by legal",
                        now,
                        audit(Some(t), "model.override"),
                    )
                    .await
            }
        };
        assert_eq!(ov(2).await.unwrap(), failed);
        assert!(matches!(ov(2).await, Err(StoreError::Conflict(_))));
        assert!(matches!(ov(1).await, Err(StoreError::Conflict(_))));
        assert!(matches!(ov(3).await, Err(StoreError::Conflict(_))));
        let a = db
            .store
            .model_audits(t, 2, Some("validation"), 10)
            .await
            .unwrap();
        assert_eq!(a.len(), 1);
        assert!(!a[0].passed);
        let o = a[0].override_.as_ref().unwrap();
        assert_eq!(
            (o.actor.as_str(), o.reason.as_str()),
            ("admin", "reviewed by legal")
        );
        assert_eq!(a[0].report["passed"], false);
        for v in [1, 2] {
            assert_eq!(step(v, &["audited"], "approved").await.unwrap(), "audited");
        }
        // Monitoring audits do not move the lifecycle; their alerts are listed newest first.
        record(
            1,
            "monitoring",
            false,
            vec![
                NewAlert {
                    gate: "min_selection_rate_ratio".into(),
                    subject: "age".into(),
                    value: Some(0.5),
                    limit: 0.8,
                },
                NewAlert {
                    gate: "max_equalized_odds_difference".into(),
                    subject: "age".into(),
                    value: None,
                    limit: 0.1,
                },
            ],
        )
        .await
        .unwrap();
        assert_eq!(
            db.store.model(t, 1).await.unwrap().unwrap().status,
            "approved"
        );
        let alerts = db.store.fairness_alerts(t, None, 10).await.unwrap();
        assert_eq!(alerts.len(), 2);
        assert_eq!(alerts[0].gate, "max_equalized_odds_difference");
        assert_eq!(alerts[0].value, None);
        assert_eq!(alerts[1].value, Some(0.5));
        assert_eq!(
            db.store
                .fairness_alerts(t, Some(alerts[0].id), 10)
                .await
                .unwrap()
                .len(),
            1
        );
        assert!(
            db.store
                .fairness_alerts(other, None, 10)
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            db.store.model_audits(t, 1, None, 10).await.unwrap().len(),
            2
        );
        step(1, &["approved"], "active").await.unwrap();
        assert_eq!(
            db.store
                .active_model(t, "lead_score")
                .await
                .unwrap()
                .unwrap()
                .version,
            1
        );
        // Activating another retires the first, atomically.
        step(2, &["approved"], "active").await.unwrap();
        assert_eq!(
            db.store
                .active_model(t, "lead_score")
                .await
                .unwrap()
                .unwrap()
                .version,
            2
        );
        assert_eq!(
            db.store.model(t, 1).await.unwrap().unwrap().status,
            "retired"
        );
        let steps: Vec<(String, String)> = db
            .store
            .model_transitions(t, 1)
            .await
            .unwrap()
            .into_iter()
            .map(|s| (s.from, s.to))
            .collect();
        assert_eq!(
            steps,
            vec![
                ("draft".into(), "audited".into()),
                ("audited".into(), "approved".into()),
                ("approved".into(), "active".into()),
                ("active".into(), "retired".into())
            ]
        );
        assert!(
            db.store
                .active_model(other, "lead_score")
                .await
                .unwrap()
                .is_none()
        );
    });
}

#[tokio::test]
async fn decisions_are_per_subject_and_refused_after_erasure() {
    each_backend!(|db| {
        let (t, tk) = tenant(&db, "shop").await;
        let s1 = subject(&db, t, &tk, "u1").await;
        let s2 = subject(&db, t, &tk, "u2").await;
        let row = |id: &str, s: SubjectId, at: i64| candor_store::DecisionRow {
            id: id.into(),
            subject: s,
            purpose: "profiling".into(),
            kind: "lead_score".into(),
            model_version: Some(1),
            inputs_digest: "d".repeat(64),
            sealed: Sealed::from_stored(vec![1, 2, 3]),
            created_at: Timestamp(at),
        };
        db.store
            .insert_decisions(
                t,
                &[row("a", s1, 10), row("b", s1, 20), row("c", s2, 15)],
                vec![audit(Some(t), "decision.recorded")],
            )
            .await
            .unwrap();
        let got: Vec<String> = db
            .store
            .decisions_for(t, s1, 10)
            .await
            .unwrap()
            .into_iter()
            .map(|d| d.id)
            .collect();
        assert_eq!(got, vec!["b", "a"]);
        assert_eq!(db.store.decisions_for(t, s1, 1).await.unwrap().len(), 1);
        db.store
            .shred_subject_key(t, s2, audit(Some(t), "subject.key_destroyed"))
            .await
            .unwrap();
        // A batch touching an erased subject writes nothing at all.
        let r = db
            .store
            .insert_decisions(t, &[row("d", s1, 30), row("e", s2, 30)], vec![])
            .await;
        assert!(matches!(r, Err(StoreError::Conflict(_))), "{r:?}");
        assert_eq!(db.store.decisions_for(t, s1, 10).await.unwrap().len(), 2);
        let listed: Vec<SubjectId> = db
            .store
            .list_subjects(t, None, 10)
            .await
            .unwrap()
            .into_iter()
            .map(|s| s.id)
            .collect();
        let mut want = vec![s1, s2];
        want.sort_by_key(|s| s.to_string());
        assert_eq!(listed, want);
        let after = db.store.list_subjects(t, Some(want[0]), 10).await.unwrap();
        assert_eq!(after.len(), 1);
    });
}

fn step(id: &str, s: SubjectId, journey: &str, trigger: &str, due: i64) -> candor_store::NewStep {
    candor_store::NewStep {
        id: id.into(),
        subject: s,
        journey: journey.into(),
        step: 0,
        email: journey.into(),
        trigger_id: trigger.into(),
        triggered_at: Timestamp(due - 10),
        due_at: Timestamp(due),
        holdout: false,
    }
}

#[tokio::test]
async fn journey_steps_enrol_once_claim_once_and_finish_with_their_email() {
    use candor_store::{EmailMark, EmailRow, StepOutcome};
    each_backend!(|db| {
        let (t, tk) = tenant(&db, "shop").await;
        let s1 = subject(&db, t, &tk, "u1").await;
        let s2 = subject(&db, t, &tk, "u2").await;
        // The same trigger twice, and a second trigger while one is pending: one step.
        let n = db
            .store
            .enroll_steps(
                t,
                &[
                    step("a", s1, "cart", "e1", 100),
                    step("a2", s1, "cart", "e1", 100),
                    step("b", s1, "cart", "e2", 150),
                    step("c", s2, "cart", "e3", 120),
                    step("d", s2, "welcome", "e4", 5_000),
                ],
            )
            .await
            .unwrap();
        assert_eq!(n, 3);
        let mut hold = step("h", s1, "welcome", "e5", 400);
        hold.holdout = true;
        assert_eq!(db.store.enroll_steps(t, &[hold]).await.unwrap(), 1);
        // Due steps are claimed once; the lease keeps a second claimer away.
        let (first, second) = tokio::join!(
            db.store.claim_due_steps(Timestamp(200), 60_000, 10),
            db.store.claim_due_steps(Timestamp(200), 60_000, 10)
        );
        let mut ids: Vec<String> = first
            .unwrap()
            .into_iter()
            .chain(second.unwrap())
            .map(|s| s.id)
            .collect();
        ids.sort();
        assert_eq!(ids, ["a", "c"], "claimed exactly once between two claimers");
        assert!(
            db.store
                .claim_due_steps(Timestamp(300), 60_000, 10)
                .await
                .unwrap()
                .is_empty()
        );
        // After the lease (a crashed node), the steps are claimable again (and "d" is due).
        let again = db
            .store
            .claim_due_steps(Timestamp(70_000), 60_000, 10)
            .await
            .unwrap();
        assert_eq!(again.len(), 4);
        let h = again.iter().find(|s| s.id == "h").unwrap();
        assert_eq!(
            (h.status.as_str(), h.reason.as_deref()),
            ("pending", Some("holdout")),
            "a holdout step waits like the others"
        );
        assert!(
            db.store
                .finish_step(
                    t,
                    "h",
                    &StepOutcome::Holdout,
                    None,
                    None,
                    audit(Some(t), "email.holdout"),
                    Timestamp(70_000)
                )
                .await
                .unwrap()
        );
        // Finish: sent with its email and the next step, in one transaction; only once.
        let email = EmailRow {
            id: "m1".into(),
            subject: s1,
            step_id: "a".into(),
            journey: "cart".into(),
            message_id: "<a@candor>".into(),
            token_hash: vec![7; 32],
            sent_at: Timestamp(70_001),
            ai_content: true,
            tracking: false,
            opened_at: None,
            clicked_at: None,
            bounced_at: None,
            complained_at: None,
            unsubscribed_at: None,
        };
        let mut next = step("a-1", s1, "cart", "e1", 80_000);
        next.step = 1;
        let sent = StepOutcome::Sent(Box::new(email.clone()));
        assert!(
            db.store
                .finish_step(
                    t,
                    "a",
                    &sent,
                    None,
                    Some(&next),
                    audit(Some(t), "email.sent"),
                    Timestamp(70_001)
                )
                .await
                .unwrap()
        );
        assert!(
            !db.store
                .finish_step(
                    t,
                    "a",
                    &sent,
                    None,
                    None,
                    audit(Some(t), "email.sent"),
                    Timestamp(70_002)
                )
                .await
                .unwrap(),
            "a finished step is not finished twice"
        );
        assert_eq!(
            db.store
                .emails_sent_since(t, s1, Timestamp(0))
                .await
                .unwrap(),
            1
        );
        assert_eq!(
            db.store
                .emails_sent_since(t, s1, Timestamp(70_002))
                .await
                .unwrap(),
            0
        );
        let (tt, e) = db.store.email_by_token(&[7; 32]).await.unwrap().unwrap();
        assert_eq!((tt, &e), (t, &email));
        db.store
            .mark_email(t, "m1", EmailMark::Unsubscribed, Timestamp(70_100))
            .await
            .unwrap();
        db.store
            .mark_email(t, "m1", EmailMark::Unsubscribed, Timestamp(70_200))
            .await
            .unwrap();
        let e = db
            .store
            .email_by_message_id(t, "<a@candor>")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            e.unsubscribed_at,
            Some(Timestamp(70_100)),
            "the first time counts"
        );
        // Exit and defer.
        assert_eq!(
            db.store
                .exit_steps(
                    t,
                    s2,
                    &["cart".into()],
                    "Order Completed",
                    Timestamp(70_050)
                )
                .await
                .unwrap(),
            1
        );
        db.store
            .defer_step(t, "a-1", Timestamp(90_000))
            .await
            .unwrap();
        assert!(
            db.store
                .claim_due_steps(Timestamp(85_000), 1000, 10)
                .await
                .unwrap()
                .is_empty()
        );
        let rows = db
            .store
            .journey_rows(t, "cart", "Order Completed", 1000)
            .await
            .unwrap();
        let status: BTreeMap<String, (String, bool)> = rows
            .iter()
            .map(|r| {
                (
                    r.step.id.clone(),
                    (r.step.status.clone(), r.email.is_some()),
                )
            })
            .collect();
        assert_eq!(status["a"], ("sent".to_string(), true));
        assert_eq!(status["a-1"], ("pending".to_string(), false));
        assert_eq!(status["c"], ("exited".to_string(), false));
        let (steps, emails) = db.store.journeys_for(t, s1).await.unwrap();
        assert_eq!((steps.len(), emails.len()), (3, 1));
        assert!(steps.iter().any(|s| s.id == "h" && s.status == "holdout"));
        // Erasure deletes both and so stops every pending step.
        let counts = db
            .store
            .erase_subject(t, s1, Timestamp(90_000), audit(Some(t), "subject.erased"))
            .await
            .unwrap();
        assert_eq!((counts.journey_steps, counts.emails), (3, 1));
        assert!(
            db.store
                .claim_due_steps(Timestamp(200_000), 1000, 10)
                .await
                .unwrap()
                .iter()
                .all(|s| s.subject != s1)
        );
        assert_eq!(
            db.store
                .enroll_steps(t, &[step("z", s1, "cart", "e9", 1)])
                .await
                .unwrap(),
            0,
            "an erased person is not enrolled"
        );
    });
}

#[tokio::test]
async fn web_sessions_links_and_messages() {
    use candor_store::{ContactRow, SessionRow, SessionSeed, StaffRow, WebStore};
    each_backend!(|db| {
        let (t, tk) = tenant(&db, "shop").await;
        let s = subject(&db, t, &tk, "u-1").await;
        let now = Timestamp::now();
        let staff = StaffRow {
            id: KeyId::new().to_string(),
            tenant: t,
            login: "rita@shop.test".into(),
            role: "reviewer".into(),
            password_hash: "pbkdf2-sha256$1$AA==$AA==".into(),
            created_at: now,
            disabled_at: None,
        };
        db.store
            .insert_staff(&staff, audit(Some(t), "staff.created"))
            .await
            .unwrap();
        let again = db
            .store
            .insert_staff(&staff, audit(Some(t), "staff.created"))
            .await;
        assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
        let found = db
            .store
            .staff_by_login("rita@shop.test")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (found.id.as_str(), found.role.as_str()),
            (staff.id.as_str(), "reviewer")
        );
        assert_eq!(db.store.list_staff(t).await.unwrap().len(), 1);

        // Sessions: found until they expire, gone when deleted.
        let session = |hash: u8, kind: &str, subject: Option<SubjectId>, expires: i64| SessionRow {
            token_hash: vec![hash; 32],
            tenant: t,
            kind: kind.into(),
            staff_id: (kind == "staff").then(|| staff.id.clone()),
            subject,
            csrf: "csrf".into(),
            created_at: now,
            expires_at: Timestamp(now.0 + expires),
        };
        db.store
            .insert_session(&session(1, "staff", None, 60_000))
            .await
            .unwrap();
        db.store
            .insert_session(&session(2, "customer", Some(s), 60_000))
            .await
            .unwrap();
        db.store
            .insert_session(&session(3, "staff", None, -1))
            .await
            .unwrap();
        let got = db.store.session(&[1; 32], now).await.unwrap().unwrap();
        assert_eq!(got.staff_id.as_deref(), Some(staff.id.as_str()));
        assert_eq!(
            db.store
                .session(&[2; 32], now)
                .await
                .unwrap()
                .unwrap()
                .subject,
            Some(s)
        );
        assert!(
            db.store.session(&[3; 32], now).await.unwrap().is_none(),
            "expired"
        );
        db.store.delete_session(&[1; 32]).await.unwrap();
        assert!(db.store.session(&[1; 32], now).await.unwrap().is_none());
        assert_eq!(db.store.purge_sessions(now).await.unwrap(), 1);

        // Sign-in links: at most N an hour per person, each used once, not after expiry; the
        // session they open is the link's person's.
        let fresh = |n: u8| SessionSeed {
            token_hash: vec![100 + n; 32],
            kind: "customer".into(),
            csrf: "csrf".into(),
            created_at: now,
            expires_at: Timestamp(now.0 + 60_000),
        };
        let redeem = |hash: u8, at: Timestamp, n: u8| {
            let store = &db.store;
            let session = fresh(n);
            async move {
                store
                    .redeem_signin_link(&[hash; 32], at, session)
                    .await
                    .unwrap()
                    .map(|s| (s.tenant, s.subject.unwrap()))
            }
        };
        for i in 0..3u8 {
            db.store
                .insert_signin_link(t, s, &[10 + i; 32], now, Timestamp(now.0 + 60_000), 3)
                .await
                .unwrap();
        }
        let over = db
            .store
            .insert_signin_link(t, s, &[20; 32], now, Timestamp(now.0 + 60_000), 3)
            .await;
        assert!(matches!(over, Err(StoreError::Conflict(_))), "{over:?}");
        assert_eq!(redeem(10, now, 1).await, Some((t, s)));
        let opened = db.store.session(&[101; 32], now).await.unwrap().unwrap();
        assert_eq!((opened.tenant, opened.subject), (t, Some(s)));
        assert_eq!(redeem(10, now, 2).await, None, "once");
        let later = Timestamp(now.0 + 120_000);
        assert_eq!(redeem(11, later, 3).await, None, "expired");
        // Two racing redemptions of one link: exactly one wins.
        let (a, b) = tokio::join!(redeem(12, now, 4), redeem(12, now, 5));
        assert_eq!([a, b].iter().filter(|x| x.is_some()).count(), 1);

        // Messages to a human: listed, closed once.
        let row = ContactRow {
            id: "m-1".into(),
            subject: s,
            sealed: Sealed::from_stored(vec![1, 2, 3]),
            status: "open".into(),
            created_at: now,
            due_at: Timestamp(now.0 + 1000),
            closed_at: None,
            closed_by: None,
        };
        db.store
            .insert_contact(t, &row, audit(Some(t), "contact.requested"))
            .await
            .unwrap();
        assert_eq!(
            db.store
                .list_contacts(t, Some("open"), 10)
                .await
                .unwrap()
                .len(),
            1
        );
        db.store
            .close_contact(t, "m-1", "staff:x", now, audit(Some(t), "contact.closed"))
            .await
            .unwrap();
        let closed = db
            .store
            .close_contact(t, "m-1", "staff:x", now, audit(Some(t), "contact.closed"))
            .await;
        assert!(matches!(closed, Err(StoreError::NotFound)));
        let mine = db.store.contacts_for(t, s).await.unwrap();
        assert_eq!((mine.len(), mine[0].status.as_str()), (1, "closed"));
        assert_eq!(mine[0].closed_by.as_deref(), Some("staff:x"));

        // Erasure takes the person's sessions, links and messages with it.
        db.store
            .insert_signin_link(t, s, &[30; 32], later, Timestamp(later.0 + 60_000), 10)
            .await
            .unwrap();
        let counts = db
            .store
            .erase_subject(t, s, now, audit(Some(t), "subject.erased"))
            .await
            .unwrap();
        // The session inserted above and the two opened by redeemed links.
        assert_eq!((counts.web_sessions, counts.contact_requests), (3, 1));
        assert!(db.store.session(&[2; 32], now).await.unwrap().is_none());
        assert_eq!(redeem(30, later, 6).await, None);
        assert!(db.store.contacts_for(t, s).await.unwrap().is_empty());
        let refused = db
            .store
            .insert_signin_link(t, s, &[31; 32], later, Timestamp(later.0 + 60_000), 10)
            .await;
        assert!(
            matches!(refused, Err(StoreError::NotFound)),
            "no links for the erased"
        );
    });
}

#[tokio::test]
async fn overview_counts_latest_consent_per_purpose_and_jurisdiction() {
    use candor_store::WebStore;
    each_backend!(|db| {
        let (t, tk) = tenant(&db, "shop").await;
        let (other, otk) = tenant(&db, "other").await;
        let rec = |purpose: &str,
                   action: ConsentAction,
                   source: ConsentSource,
                   j: Option<&str>,
                   at: i64| {
            ConsentRecord {
                purpose: purpose.parse().unwrap(),
                action,
                source,
                notice_version: None,
                notice_hash: None,
                jurisdiction: j.map(str::to_string),
                at: Timestamp(at),
            }
        };
        let a = subject(&db, t, &tk, "a").await;
        let b = subject(&db, t, &tk, "b").await;
        let c = subject(&db, t, &tk, "c").await;
        let o = subject(&db, other, &otk, "o").await;
        use ConsentAction::{Granted, Withdrawn};
        for (s, t2, records) in [
            // a granted then withdrew: counts once, as withdrawn.
            (
                a,
                t,
                vec![
                    rec("analytics", Granted, ConsentSource::Banner, Some("eu"), 1),
                    rec("analytics", Withdrawn, ConsentSource::Banner, Some("eu"), 2),
                ],
            ),
            (
                b,
                t,
                vec![rec("analytics", Granted, ConsentSource::Api, Some("eu"), 1)],
            ),
            (
                c,
                t,
                vec![rec("advertising", Withdrawn, ConsentSource::Gpc, None, 1)],
            ),
            (
                o,
                other,
                vec![rec("analytics", Granted, ConsentSource::Gpc, Some("eu"), 1)],
            ),
        ] {
            db.store
                .append_consents(t2, s, records, vec![audit(Some(t2), "consent")])
                .await
                .unwrap();
        }
        let ov = db.store.overview(t, Timestamp(0)).await.unwrap();
        assert_eq!((ov.subjects, ov.erased, ov.gpc_subjects), (3, 0, 1));
        let find = |p: &str, j: &str, st: &str| {
            ov.consents
                .iter()
                .find(|x| x.purpose == p && x.jurisdiction == j && x.state == st)
                .map_or(0, |x| x.subjects)
        };
        assert_eq!(find("analytics", "eu", "granted"), 1);
        assert_eq!(find("analytics", "eu", "withdrawn"), 1);
        assert_eq!(find("advertising", "", "withdrawn"), 1);
        assert_eq!(ov.consents.iter().map(|x| x.subjects).sum::<i64>(), 3);
        db.store
            .erase_subject(t, c, Timestamp::now(), audit(Some(t), "subject.erased"))
            .await
            .unwrap();
        let ov = db.store.overview(t, Timestamp(0)).await.unwrap();
        assert_eq!((ov.subjects, ov.erased), (2, 1));
    });
}

mod pricing;
