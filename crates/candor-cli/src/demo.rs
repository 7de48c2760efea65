//! `candor demo`: a tour on real data. Loads the bundled public datasets (`data/demo/`) into a
//! new SQLite deployment — Online Retail's customers and orders as people and events with
//! synthetic consent choices across jurisdictions, Bank Marketing's clients as leads for a
//! lead-scoring model that is trained and audited (once as is, once reweighed), a
//! recommendation model trained on the orders of those who allow personalization, and the
//! Hillstrom campaign's uplift as journey history — then serves the console and the privacy
//! center.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use candor_app::{App, AuditRequest, ConsentInput, IngestOptions, Principal, ScoreInput};
use candor_app::{TrainRequest, fairness::DEFAULT_RESAMPLES};
use candor_ml::gbdt::GbdtParams;
use candor_ml::lead::TrainOptions;
use candor_ml::table::{RawTable, read_csv};
use candor_types::{Scope, TenantId};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Map, Value, json};

use crate::journeys::UpliftArgs;

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Where to serve the console and the privacy center.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// Load the data, print the logins and exit without serving.
    #[arg(long)]
    pub no_serve: bool,
    /// A small sample (300 customers, a tenth of the leads): quick, for tests.
    #[arg(long)]
    pub small: bool,
    /// The bundled datasets (default: the repository's `data/demo`).
    #[arg(long)]
    pub data: Option<PathBuf>,
}

/// What the demo prints and keeps in `demo.json` (0600): URLs, logins, a customer to try.
pub const DEMO_FILE: &str = "demo.json";

const STAFF: [(&str, &str); 4] = [
    ("admin", "admin@demo.candor"),
    ("reviewer", "reviewer@demo.candor"),
    ("marketer", "marketer@demo.candor"),
    ("compliance", "compliance@demo.candor"),
];

/// Consent purposes answered on the demo's banner.
const BANNER: [&str; 4] = [
    "analytics",
    "personalization",
    "marketing_email",
    "profiling",
];

/// Lead attributes a customer is scored with (Bank Marketing's columns but the outcome, the
/// call duration — known only after the call — and the protected ones).
const LEAD_EXCLUDE: [&str; 1] = ["duration"];
const LEAD_PROTECTED: [&str; 2] = ["age", "marital"];

const OVERRIDE_REASON: &str = "Demo only: in Bank Marketing the outcome itself differs by age (clients over 60 subscribe about four times as often), so an accurate model fails the four-fifths rule even reweighed. Overridden by the demo loader so that the tour can show scores, explanations and contests; a real deployment would not activate it without a reviewer's decision.";

fn data_dir(args: &DemoArgs) -> Result<PathBuf> {
    let candidates = [
        args.data.clone(),
        Some(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/demo")),
        Some(PathBuf::from("data/demo")),
    ];
    candidates
        .into_iter()
        .flatten()
        .find(|d| d.join("online_retail.csv.gz").exists())
        .context("the demo datasets are not found: run from the repository or pass --data DIR (data/demo)")
}

fn gunzip(path: &Path) -> Result<Vec<u8>> {
    let f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(f)
        .read_to_end(&mut out)
        .with_context(|| format!("reading {}", path.display()))?;
    Ok(out)
}

fn bar(len: u64, what: &str) -> ProgressBar {
    let b = ProgressBar::new(len);
    if let Ok(style) =
        ProgressStyle::with_template("{msg:32} [{bar:30}] {pos}/{len} {elapsed_precise}")
    {
        b.set_style(style.progress_chars("=> "));
    }
    b.set_message(what.to_string());
    b
}

fn spinner(what: &str) -> ProgressBar {
    let b = ProgressBar::new_spinner();
    b.set_message(what.to_string());
    b.enable_steady_tick(std::time::Duration::from_millis(120));
    b
}

/// A fixed-seed hash in [0, 1): the demo's synthetic choices are the same on every run.
fn draw(seed: &str, salt: &str) -> f64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in seed.bytes().chain([0]).chain(salt.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    // splitmix64 finaliser
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^= h >> 31;
    (h >> 11) as f64 / (1u64 << 53) as f64
}

const EU: [&str; 22] = [
    "France",
    "Germany",
    "Spain",
    "Portugal",
    "Italy",
    "Belgium",
    "Netherlands",
    "Austria",
    "Denmark",
    "Finland",
    "Sweden",
    "Poland",
    "Greece",
    "Ireland",
    "EIRE",
    "Cyprus",
    "Malta",
    "Lithuania",
    "Czech Republic",
    "Channel Islands",
    "Norway",
    "Iceland",
];

fn jurisdiction(customer: &str, country: &str) -> &'static str {
    if country == "United Kingdom" {
        // A share of the UK customers are modelled as shoppers from the US, so that every
        // regime of the policy shows up in the tour.
        let d = draw(customer, "region");
        return if d < 0.12 {
            "us_ca"
        } else if d < 0.2 {
            "us"
        } else {
            "uk"
        };
    }
    if EU.contains(&country) {
        return "eu";
    }
    if draw(customer, "region") < 0.5 {
        "us_ca"
    } else {
        "us"
    }
}

/// The share of people granting each purpose on the banner, by regime: fewer say yes where
/// they must opt in.
fn grant_rate(purpose: &str, j: &str) -> f64 {
    let opt_in = matches!(j, "eu" | "uk");
    match (purpose, opt_in) {
        ("analytics", true) => 0.72,
        ("analytics", false) => 0.9,
        ("personalization", true) => 0.58,
        ("personalization", false) => 0.85,
        ("marketing_email", true) => 0.41,
        ("marketing_email", false) => 0.7,
        ("profiling", true) => 0.47,
        (_, _) => 0.6,
    }
}

/// (stock code, description, quantity, unit price)
type OrderLine = (String, String, f64, f64);

struct Customer {
    id: String,
    country: String,
    /// (invoice, time, lines)
    orders: Vec<(String, String, Vec<OrderLine>)>,
}

fn customers(retail: &RawTable, limit: Option<usize>) -> Result<Vec<Customer>> {
    let col = |n: &str| {
        retail
            .column(n)
            .with_context(|| format!("online_retail: no column {n}"))
    };
    let (inv, code, desc, qty, date, price, cust, country) = (
        col("InvoiceNo")?,
        col("StockCode")?,
        col("Description")?,
        col("Quantity")?,
        col("InvoiceDate")?,
        col("UnitPrice")?,
        col("CustomerID")?,
        col("Country")?,
    );
    let mut by: BTreeMap<String, Customer> = BTreeMap::new();
    for r in &retail.rows {
        let c = by.entry(r[cust].clone()).or_insert_with(|| Customer {
            id: format!("c-{}", r[cust]),
            country: r[country].clone(),
            orders: Vec::new(),
        });
        let line = (
            r[code].clone(),
            r[desc].clone(),
            r[qty].parse().unwrap_or(0.0),
            r[price].parse().unwrap_or(0.0),
        );
        match c.orders.last_mut() {
            Some(o) if o.0 == r[inv] => o.2.push(line),
            _ => c.orders.push((r[inv].clone(), r[date].clone(), vec![line])),
        }
    }
    let mut all: Vec<Customer> = by.into_values().collect();
    if let Some(n) = limit {
        all.truncate(n);
    }
    Ok(all)
}

/// Moves a 2010–2011 invoice time forward by `shift` so the newest is recent.
fn shifted(date: &str, shift: jiff::SignedDuration) -> Option<String> {
    let dt: jiff::civil::DateTime = date.trim().replace(' ', "T").parse().ok()?;
    let ts = dt.to_zoned(jiff::tz::TimeZone::UTC).ok()?.timestamp();
    Some(ts.checked_add(shift).ok()?.to_string())
}

pub async fn run(app: &App, dir: &Path, args: &DemoArgs) -> Result<Value> {
    let data = data_dir(args)?;
    let tenant = app.find_tenant("default").await?;
    let t = tenant.id;
    let started = std::time::Instant::now();

    // ---------------------------------------------------------------- people and consent
    let load = spinner("reading Online Retail");
    let retail = read_csv(&gunzip(&data.join("online_retail.csv.gz"))?)
        .map_err(|e| anyhow::anyhow!("online_retail.csv.gz: {e}"))?;
    let people = customers(&retail, args.small.then_some(300))?;
    drop(retail);
    load.finish_and_clear();
    let (key_id, secret) = app
        .create_key(t, Scope::Server, Some("demo loader".into()), "cli:demo")
        .await?;
    let _ = key_id;
    let principal: Principal = app.authenticate(&secret).await?;

    let b = bar(people.len() as u64, "consent choices");
    let mut jurisdictions = BTreeMap::new();
    for chunk in people.chunks(8) {
        let mut set = tokio::task::JoinSet::new();
        for c in chunk {
            let j = jurisdiction(&c.id, &c.country);
            jurisdictions.insert(c.id.clone(), j);
            let (app, id) = (app.clone(), c.id.clone());
            set.spawn(async move {
                for purpose in BANNER {
                    let granted = draw(&id, purpose) < grant_rate(purpose, j);
                    app.set_consent(
                        &principal,
                        &id,
                        purpose,
                        ConsentInput {
                            state: if granted { "granted" } else { "withdrawn" }.into(),
                            notice_version: Some("demo-2026-11".into()),
                            notice_hash: None,
                            source: Some("banner".into()),
                            jurisdiction: Some(j.into()),
                        },
                    )
                    .await?;
                }
                Ok::<_, candor_app::AppError>(())
            });
        }
        while let Some(r) = set.join_next().await {
            r.context("consent task")?
                .map_err(|e| anyhow::anyhow!("{} [{}]", e.message, e.code))?;
        }
        b.inc(chunk.len() as u64);
    }
    b.finish();

    // ---------------------------------------------------------------- events
    let newest = people
        .iter()
        .flat_map(|c| c.orders.iter().map(|o| o.1.as_str()))
        .max()
        .unwrap_or("2011-12-09 12:50:00")
        .to_string();
    let newest: jiff::civil::DateTime = newest.replace(' ', "T").parse()?;
    let newest = newest.to_zoned(jiff::tz::TimeZone::UTC)?.timestamp();
    let shift =
        jiff::Timestamp::now().duration_since(newest) - jiff::SignedDuration::from_hours(24);
    let n_orders: usize = people.iter().map(|c| c.orders.len()).sum();
    let b = bar((people.len() + n_orders) as u64, "orders as events");
    let mut batch: Vec<Value> = Vec::new();
    let mut gpc_batch: Vec<Value> = Vec::new();
    let mut sent = 0u64;
    for c in &people {
        let email = format!("customer-{}@demo.candor.invalid", &c.id[2..]);
        let j = jurisdictions.get(&c.id).copied().unwrap_or("uk");
        let gpc = matches!(j, "us" | "us_ca") && draw(&c.id, "gpc") < 0.3;
        let identify = json!({
            "type": "identify", "userId": c.id, "messageId": format!("demo-id-{}", c.id),
            "traits": { "email": email, "country": c.country },
        });
        if gpc {
            gpc_batch.push(identify);
        } else {
            batch.push(identify);
        }
        for (inv, date, lines) in &c.orders {
            let products: Vec<Value> = lines
                .iter()
                .map(|(code, desc, q, p)| json!({ "product_id": code, "name": desc, "quantity": q, "price": p }))
                .collect();
            let revenue: f64 = lines.iter().map(|l| l.2 * l.3).sum();
            batch.push(json!({
                "type": "track", "event": "Order Completed", "userId": c.id,
                "messageId": format!("demo-order-{inv}"),
                "timestamp": shifted(date, shift),
                "properties": { "order_id": inv, "revenue": (revenue * 100.0).round() / 100.0, "currency": "GBP", "products": products },
            }));
        }
        if batch.len() >= 400 {
            sent += batch.len() as u64;
            ingest(app, &principal, std::mem::take(&mut batch), false).await?;
            b.set_position(sent);
        }
    }
    for (msgs, gpc) in [(batch, false), (gpc_batch, true)] {
        for chunk in msgs.chunks(400) {
            sent += chunk.len() as u64;
            ingest(app, &principal, chunk.to_vec(), gpc).await?;
            b.set_position(sent);
        }
    }
    b.finish();

    // ---------------------------------------------------------------- recommendations
    let s = spinner("training recommendations (ALS)");
    let lines = app
        .event_interactions(t, &candor_app::recs::EventWeights::default())
        .await
        .map_err(app_err)?;
    let params = candor_ml::recs::AlsParams {
        factors: if args.small { 16 } else { 64 },
        iterations: if args.small { 5 } else { 15 },
        ..Default::default()
    };
    let recs = app
        .train_recs(
            t,
            "cli:demo",
            &lines,
            0,
            None,
            &params,
            "demo: Online Retail orders",
        )
        .await
        .map_err(app_err)?;
    s.finish_and_clear();
    eprintln!(
        "recommendations: model {} on {} interactions, {} items; {} people personalized, {} unpersonalized",
        recs.version, recs.lines, recs.items, recs.personalized, recs.without_consent
    );

    // ---------------------------------------------------------------- lead model and audits
    let bank_bytes = gunzip(&data.join("bank-full.csv.gz"))?;
    let mut bank = read_csv(&bank_bytes).map_err(|e| anyhow::anyhow!("bank-full.csv.gz: {e}"))?;
    if args.small {
        bank.rows = bank.rows.into_iter().step_by(10).collect();
    }
    let trees = if args.small { 30 } else { 100 };
    let mut versions = Vec::new();
    for reweigh in [false, true] {
        let b = bar(
            trees as u64,
            if reweigh {
                "lead model (reweighed)"
            } else {
                "lead model"
            },
        );
        let req = TrainRequest {
            target: "y".into(),
            exclude: LEAD_EXCLUDE.iter().map(|s| s.to_string()).collect(),
            protected: LEAD_PROTECTED.iter().map(|s| s.to_string()).collect(),
            features: None,
            subject_column: None,
            options: TrainOptions {
                gbdt: GbdtParams {
                    num_trees: trees,
                    seed: 42,
                    ..GbdtParams::default()
                },
                ..TrainOptions::default()
            },
            source: "bank-full.csv (UCI Bank Marketing)".into(),
            positive: None,
            horizon: Some("subscribes to a term deposit during the campaign".into()),
            reweigh,
            audit_threshold: 0.3,
        };
        let bb = b.clone();
        let trained = app
            .train_lead_model(t, "cli:demo", bank.clone(), req, &mut move |r| {
                bb.set_position(r.index as u64)
            })
            .await
            .map_err(app_err)?;
        b.finish();
        let s = spinner(&format!("fairness audit of model {}", trained.version));
        let audit = app
            .audit_model(
                t,
                "cli:demo",
                &bank,
                &AuditRequest {
                    version: trained.version,
                    target: "y".into(),
                    positive: None,
                    protected: LEAD_PROTECTED.iter().map(|s| s.to_string()).collect(),
                    threshold: 0.3,
                    resamples: if args.small { 50 } else { DEFAULT_RESAMPLES },
                    seed: 42,
                    source: "bank-full.csv (UCI Bank Marketing)".into(),
                },
            )
            .await
            .map_err(app_err)?;
        s.finish_and_clear();
        eprintln!(
            "lead model {}{}: fairness audit {} ({})",
            trained.version,
            if reweigh { " (reweighed)" } else { "" },
            audit.id,
            if audit.passed { "passed" } else { "failed" }
        );
        versions.push((trained.version, audit.id, audit.passed));
    }
    // The first passing model serves (approved and activated by the demo's admin); a failed
    // audit is left for a reviewer to look at in the console.
    let serving = versions.iter().find(|v| v.2).map(|v| v.0);
    let failed = versions.iter().find(|v| !v.2);
    let admin = "cli:demo";
    let serving = match serving {
        Some(v) => v,
        None => {
            // Both failed: the reweighed one is overridden by the demo loader, saying why, so
            // that the tour can show scores, explanations and contests. The override is on the
            // model card and in the audit log like any other.
            let v = versions[1].0;
            app.override_fairness(t, admin, v, OVERRIDE_REASON)
                .await
                .map_err(app_err)?;
            eprintln!(
                "lead model {v}: its failed audit was overridden by the demo loader: {OVERRIDE_REASON}"
            );
            v
        }
    };
    app.transition_model(
        t,
        admin,
        serving,
        "approve",
        "demo: audited on the Bank Marketing holdout",
    )
    .await
    .map_err(app_err)?;
    app.transition_model(t, admin, serving, "activate", "demo: serving lead scores")
        .await
        .map_err(app_err)?;

    // Score customers who allow profiling, each with the lead attributes of the paired client.
    let feature_cols: Vec<usize> = bank
        .headers
        .iter()
        .enumerate()
        .filter(|(_, h)| {
            h.as_str() != "y"
                && !LEAD_EXCLUDE.contains(&h.as_str())
                && !LEAD_PROTECTED.contains(&h.as_str())
        })
        .map(|(i, _)| i)
        .collect();
    let inputs: Vec<ScoreInput> = people
        .iter()
        .zip(&bank.rows)
        .map(|(c, row)| {
            let mut attributes = Map::new();
            for &i in &feature_cols {
                let v = &row[i];
                attributes.insert(
                    bank.headers[i].clone(),
                    v.parse::<f64>().map_or_else(|_| json!(v), |x| json!(x)),
                );
            }
            ScoreInput {
                user_id: c.id.clone(),
                attributes,
            }
        })
        .collect();
    let b = bar(inputs.len() as u64, "lead scores");
    let mut scored = 0usize;
    let mut scored_ids = std::collections::HashSet::new();
    for chunk in inputs.chunks(candor_app::MAX_SCORE_BATCH.min(500)) {
        let results = app
            .score_subjects(t, &principal.actor(), chunk, None)
            .await
            .map_err(app_err)?;
        for r in results {
            if r.status == "scored" {
                scored += 1;
                scored_ids.insert(r.user_id.clone());
            }
        }
        b.inc(chunk.len() as u64);
    }
    b.finish();
    app.flush_decisions().await.map_err(app_err)?;
    eprintln!("lead scores: {scored} customers who allow profiling");

    // ---------------------------------------------------------------- journey history
    // Reports are kept per tenant: the console lists only its own.
    let reports = dir.join("reports").join(t.to_string());
    std::fs::create_dir_all(&reports)?;
    let hill = data.join("hillstrom.csv.gz");
    let hill_csv = gunzip(&hill)?;
    let s = spinner("Hillstrom campaign uplift");
    crate::journeys::uplift(
        &hill_csv,
        &UpliftArgs {
            data: hill,
            arm_column: "segment".into(),
            control: "No E-Mail".into(),
            outcomes: vec!["visit".into(), "conversion".into(), "spend".into()],
            by: vec![
                "newbie".into(),
                "channel".into(),
                "history_segment".into(),
                "zip_code".into(),
            ],
            json: Some(reports.join("hillstrom-2008-campaign.json")),
            html: Some(reports.join("hillstrom-2008-campaign.html")),
        },
    )?;
    s.finish_and_clear();

    // Offline evaluation of recommendations (ALS, item-kNN, popularity) on the same orders,
    // trained before 1 October 2011 and tested on what customers bought after it.
    if !args.small {
        let s = spinner("evaluating recommendations offline");
        #[derive(clap::Parser)]
        struct Eval {
            #[command(subcommand)]
            cmd: crate::recs::RecsCommand,
        }
        let data_file = data.join("online_retail.csv.gz");
        let html = reports.join("recommendations-evaluation.html");
        let json_out = reports.join("recommendations-evaluation.json");
        let eval = <Eval as clap::Parser>::try_parse_from([
            std::ffi::OsStr::new("recs"),
            "evaluate".as_ref(),
            "--data".as_ref(),
            data_file.as_os_str(),
            "--split-date".as_ref(),
            "2011-10-01".as_ref(),
            "--factors".as_ref(),
            "32".as_ref(),
            "--html".as_ref(),
            html.as_os_str(),
            "--json".as_ref(),
            json_out.as_os_str(),
        ])?;
        crate::recs::evaluate_cmd(&eval.cmd)?;
        s.finish_and_clear();
    }

    // ---------------------------------------------------------------- the rights queue
    // A few customers' requests for the console's queue (not the tour's customer).
    let mut requests = 0;
    for (c, kind) in people
        .iter()
        .rev()
        .filter(|c| !scored_ids.contains(&c.id))
        .zip([
            "access",
            "objection_marketing",
            "portability",
            "do_not_sell",
        ])
    {
        app.create_request(
            t,
            "cli:demo",
            &candor_app::NewRequest {
                user_id: c.id.clone(),
                kind: kind.into(),
                regime: None,
                details: None,
            },
        )
        .await
        .map_err(app_err)?;
        requests += 1;
    }
    eprintln!("data-subject requests: {requests} received");

    // ---------------------------------------------------------------- staff and the tour
    let mut staff = Vec::new();
    for (role, login) in STAFF {
        let password = demo_password()?;
        app.create_staff(t, "cli:demo", login, role, &password)
            .await
            .map_err(app_err)?;
        staff.push(json!({ "login": login, "password": password, "role": role }));
    }
    // A customer to try the privacy center with: personalized recommendations and a score.
    let customer = pick_customer(app, t, &people, &scored_ids).await?;
    let base = format!("http://{}", args.listen);
    let doc = json!({
        "console_url": format!("{base}/console/"),
        "privacy_url": format!("{base}/privacy/"),
        "staff": staff,
        "customer_email": customer,
        "failed_audit": failed.map(|f| json!({ "model": f.0, "audit": f.1 })),
        "serving_model": serving,
        "recs_model": recs.version,
        "outbox": dir.join("outbox"),
        "reports": reports,
        "loaded_in_seconds": started.elapsed().as_secs_f64(),
    });
    Ok(doc)
}

async fn ingest(app: &App, p: &Principal, msgs: Vec<Value>, gpc: bool) -> Result<()> {
    let r = app
        .ingest(
            p,
            msgs,
            IngestOptions {
                gpc,
                forced_kind: None,
            },
        )
        .await
        .map_err(app_err)?;
    if let Some(bad) = r.results.iter().find(|e| e.status == "rejected") {
        bail!("demo event rejected: {:?} {:?}", bad.reason, bad.message);
    }
    Ok(())
}

fn app_err(e: candor_app::AppError) -> anyhow::Error {
    anyhow::anyhow!("{} [{}]", e.message, e.code)
}

fn demo_password() -> Result<String> {
    let mut b = [0u8; 12];
    getrandom::fill(&mut b).map_err(|_| anyhow::anyhow!("the random generator failed"))?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect::<String>())
}

async fn pick_customer(
    app: &App,
    t: TenantId,
    people: &[Customer],
    scored: &std::collections::HashSet<String>,
) -> Result<String> {
    // Personalized recommendations follow from the personalization grant at training (the
    // model gave factors to everyone with one and orders): asked, not served, so that picking
    // a customer records no decision about them.
    let purpose = app.purpose(candor_store::RECS_PURPOSE).map_err(app_err)?;
    for c in people
        .iter()
        .filter(|c| scored.contains(&c.id) && c.orders.len() >= 2)
    {
        let s = app
            .resolve_subject(t, c.id.as_str())
            .await
            .map_err(app_err)?;
        if app.grant(t, s.id, &purpose).await.is_ok() {
            return Ok(format!("customer-{}@demo.candor.invalid", &c.id[2..]));
        }
    }
    bail!("no customer in the sample has both a lead score and personalized recommendations")
}

/// The policy file of the demo: the default one, its links pointing at `listen`.
pub fn policy_text(listen: &str) -> String {
    candor_policy::DEFAULT_POLICY.replace(
        "public_url = \"http://127.0.0.1:8080\"",
        &format!("public_url = \"http://{listen}\""),
    )
}

/// Prints the tour.
pub fn print_tour(doc: &Value, dir: &Path) {
    let s = |v: &Value| v.as_str().unwrap_or("").to_string();
    println!();
    println!("Candor demo is ready ({}).", dir.display());
    println!("  staff console:  {}", s(&doc["console_url"]));
    println!("  privacy center: {}", s(&doc["privacy_url"]));
    println!(
        "  staff logins (also in {}):",
        dir.join(DEMO_FILE).display()
    );
    for st in doc["staff"].as_array().into_iter().flatten() {
        println!(
            "    {:<11} {:<24} password {}",
            s(&st["role"]),
            s(&st["login"]),
            s(&st["password"])
        );
    }
    println!(
        "  a customer to sign in as: {} (no mail relay is configured: sign-in emails are written to {})",
        s(&doc["customer_email"]),
        s(&doc["outbox"])
    );
    if let Some(f) = doc["failed_audit"].as_object() {
        println!(
            "  model {} failed its fairness audit {}: sign in as the reviewer to look at it",
            f["model"], f["audit"]
        );
    }
}
