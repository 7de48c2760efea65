//! `bench/pricing`: the price guard's latency and throughput against the targets
//! (no peer library does this; the targets are the reference).
//!
//! Single checks: `POST /v1/prices/check` over loopback HTTP against a running Candor,
//! open-loop at `BENCH_RATE` requests/s (2,000) for `BENCH_SECONDS` (10) after a 2 s warm-up;
//! latency from each request's scheduled time (no coordinated omission). The mix is what a
//! store's pricing engine sends: 55% market-signal prices for anonymous visitors, 20% segment
//! prices (one price per segment and hour, pinned), 10% announced reductions (the prior
//! 30-day lowest from 60 days of history per product), 10% personal-data prices for people who
//! allow profiling (their grant is checked, the check is a sealed decision), 5% refused
//! (a protected or vulnerability signal, audited). Every check is recorded. Target: p99 < 2 ms.
//!
//! Batches: `POST /v1/prices/check/batch` with 10,000 market-signal checks per request from
//! two clients at once, recorded before the answer (one anonymous row and one history row per changed price).
//! Target: 100,000 prices/s.
//!
//! Run: `bash bench/run pricing`. Options: `BENCH_RATE` (2000), `BENCH_SECONDS` (10),
//! `BENCH_RUNS` (3 rounds; the median round's p99 is reported), `BENCH_PRODUCTS` (5000),
//! `BENCH_PEOPLE` (2000), `BENCH_BATCHES` (10), `BENCH_BACKENDS`
//! (`sqlite,postgres`), `CANDOR_TEST_PG_URL`, `BENCH_STRICT=1` (exit 1 on a missed target).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use candor_app::{App, ConsentInput, SystemClock};
use candor_crypto::MasterKey;
use candor_policy::{DEFAULT_POLICY, Policy};
use candor_store::{AnyStore, PgStore, PriceRow, PricingStore, SqliteStore, Store};
use candor_types::{Scope, Timestamp};
use serde_json::{Value, json};
use tokio::io::BufReader;

use candor_testkit::bench::{env_usize, percentile, post};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const P99_TARGET_MS: f64 = 2.0;
const BATCH_TARGET: f64 = 100_000.0;
const BATCH_SIZE: usize = 10_000;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Zipf-like product popularity: a few products get most checks.
fn product(r: &mut Rng, products: usize) -> usize {
    let u = (r.next() >> 11) as f64 / (1u64 << 53) as f64;
    ((products as f64).powf(u) - 1.0) as usize % products
}

fn money(cents: i64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

/// The body of request `i` of the mix, and its kind.
fn check_body(i: usize, r: &mut Rng, products: usize, people: usize) -> (&'static str, Value) {
    let p = product(r, products);
    let list = 500 + (p as i64 % 200) * 25;
    let proposed = list - list / 20 + (r.below(10) as i64) * list / 100;
    let base = json!({"product": format!("sku-{p}"), "currency": "EUR", "listPrice": money(list),
        "proposedPrice": money(proposed), "category": if p.is_multiple_of(17) { "groceries" } else { "home" }});
    let mut b = base;
    let kind = match i % 20 {
        0..=10 => {
            b["signals"] = json!(["demand", "stock_level", "competitor_price"]);
            "market"
        }
        11..=14 => {
            b["signals"] = json!(["demand"]);
            b["segment"] = json!(["uk-new", "uk-returning", "eu-new", "eu-returning"][i % 4]);
            "segment"
        }
        15 | 16 => {
            b["proposedPrice"] = json!(money(list - list / 5));
            b["presentedAsDiscount"] = json!(true);
            b["signals"] = json!(["promotion"]);
            "discount"
        }
        17 | 18 => {
            b["signals"] = json!(["demand", "loyalty_tier"]);
            b["userId"] = json!(format!("u{}", r.below(people)));
            b["unpersonalizedPrice"] = json!(money(list));
            "personal"
        }
        _ => {
            b["signals"] = json!([if i.is_multiple_of(2) {
                "age_band"
            } else {
                "battery_level"
            }]);
            "refused"
        }
    };
    (kind, b)
}

struct Setup {
    app: App,
    key: String,
    pg_url: Option<String>,
    _dir: candor_testkit::TempDir,
}

async fn setup(backend: &str, products: usize, people: usize) -> Result<Setup> {
    let dir = candor_testkit::TempDir::new("candor-bench-pricing");
    let (store, pg_url) = match backend {
        "sqlite" => (
            AnyStore::Sqlite(SqliteStore::open(&dir.0.join("candor.db")).await?),
            None,
        ),
        _ => {
            let url = candor_testkit::fresh_pg_database()
                .await
                .context("PostgreSQL unreachable")?;
            (AnyStore::Postgres(PgStore::connect(&url).await?), Some(url))
        }
    };
    store.migrate().await?;
    let text = DEFAULT_POLICY.replacen("personal_pricing = false", "personal_pricing = true", 1);
    let policy = Policy::parse("candor.toml", &text).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let app = App::new(store, policy, MasterKey::generate()?, Arc::new(SystemClock));
    let err = |e: candor_app::AppError| anyhow::anyhow!("{} [{}]", e.message, e.code);
    let tenant = app.create_tenant("bench", "bench").await.map_err(err)?.id;
    let (_, key) = app
        .create_key(tenant, Scope::Server, None, "bench")
        .await
        .map_err(err)?;
    let principal = app.authenticate(&key).await.map_err(err)?;
    eprintln!(
        "{backend}: {people} people who allow profiling, 60 days of prices for {products} products"
    );
    for u in 0..people {
        app.set_consent(
            &principal,
            &format!("u{u}"),
            "profiling",
            ConsentInput {
                state: "granted".into(),
                notice_version: Some("2026-05".into()),
                notice_hash: None,
                source: Some("banner".into()),
                jurisdiction: Some("eu".into()),
            },
        )
        .await
        .map_err(err)?;
    }
    let now = Timestamp::now();
    let mut rows = Vec::new();
    for p in 0..products {
        let list = 500 + (p as i64 % 200) * 25;
        for d in (1..=60).step_by(3) {
            rows.push(PriceRow {
                id: format!("i:{p}:{d}"),
                kind: "import".into(),
                product: format!("sku-{p}"),
                currency: "EUR".into(),
                price: list - (d as i64 % 7) * list / 100,
                at: now.minus_days(d),
                quantity: None,
                country: None,
                segment: None,
                order_ref: None,
                cancelled_at: None,
            });
        }
    }
    for chunk in rows.chunks(20_000) {
        app.store()
            .insert_prices(tenant, chunk, &[], vec![])
            .await?;
    }
    Ok(Setup {
        app,
        key,
        pg_url,
        _dir: dir,
    })
}

struct Figures {
    backend: String,
    achieved: f64,
    p50: f64,
    /// The median round's p99.
    p99: f64,
    p99s: Vec<f64>,
    p999: f64,
    floor_p50: f64,
    floor_p99: f64,
    by_kind: Vec<(&'static str, f64, f64)>,
    verdicts: [usize; 3],
    batch_rate: f64,
    batch_in_process: f64,
}

/// Open-loop load: a dispatcher thread releases request `i` at `start + i / rate` (an OS
/// thread's sleep, some 0.1 ms precise, not the runtime's 1 ms timer wheel) to one of 32
/// kept-alive connections; latency is measured from the scheduled time, so a slow answer
/// delays the measurement of the ones queued behind it (no coordinated omission).
#[allow(clippy::too_many_arguments)]
async fn open_loop(
    addr: std::net::SocketAddr,
    key: &str,
    rate: usize,
    seconds: f64,
    products: usize,
    people: usize,
    seed: u64,
    baseline: bool,
) -> Result<(f64, Vec<(&'static str, f64, Vec<u8>)>)> {
    // The client runs on a runtime of its own (one thread), so it never delays the server's
    // tasks on the server's two worker threads.
    let key = key.to_string();
    tokio::task::spawn_blocking(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        rt.block_on(client_loop(
            addr, &key, rate, seconds, products, people, seed, baseline,
        ))
    })
    .await?
}

#[allow(clippy::too_many_arguments)]
async fn client_loop(
    addr: std::net::SocketAddr,
    key: &str,
    rate: usize,
    seconds: f64,
    products: usize,
    people: usize,
    seed: u64,
    baseline: bool,
) -> Result<(f64, Vec<(&'static str, f64, Vec<u8>)>)> {
    let total = (rate as f64 * seconds) as usize;
    let connections = 32usize;
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let start = Instant::now() + Duration::from_millis(200);
    let auth = format!("Bearer {key}");
    let mut senders = Vec::new();
    let mut tasks = Vec::new();
    for c in 0..connections {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(usize, Instant)>();
        senders.push(tx);
        let auth = auth.clone();
        tasks.push(tokio::spawn(async move {
            let s = tokio::net::TcpStream::connect(addr).await?;
            s.set_nodelay(true)?;
            let mut stream = BufReader::new(s);
            let mut rng = Rng(seed + c as u64);
            let mut out = Vec::new();
            while let Some((i, due)) = rx.recv().await {
                let (kind, body) = if baseline {
                    ("baseline", json!({}))
                } else {
                    check_body(i, &mut rng, products, people)
                };
                let body = body.to_string();
                let (status, resp) =
                    post(&mut stream, "/v1/prices/check", &auth, body.as_bytes()).await?;
                let ms = due.elapsed().as_secs_f64() * 1e3;
                if status != if baseline { 400 } else { 200 } {
                    bail!("status {status}: {}", String::from_utf8_lossy(&resp));
                }
                out.push((kind, ms, resp));
            }
            Ok::<_, anyhow::Error>(out)
        }));
    }
    let dispatcher = std::thread::spawn(move || {
        for i in 0..total {
            let due = start + interval * i as u32;
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
            if senders[i % connections].send((i, due)).is_err() {
                break;
            }
        }
    });
    let mut all = Vec::with_capacity(total);
    for t in tasks {
        all.extend(t.await??);
    }
    dispatcher
        .join()
        .map_err(|_| anyhow::anyhow!("the dispatcher thread panicked"))?;
    Ok((start.elapsed().as_secs_f64(), all))
}

async fn run_backend(backend: &str) -> Result<Figures> {
    let rate = env_usize("BENCH_RATE", 2000)?;
    let seconds = env_usize("BENCH_SECONDS", 10)?;
    let products = env_usize("BENCH_PRODUCTS", 5000)?;
    let people = env_usize("BENCH_PEOPLE", 2000)?;
    let batches = env_usize("BENCH_BATCHES", 10)?.max(1);
    let s = setup(backend, products, people).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(candor_http::serve(
        listener,
        s.app.clone(),
        std::future::pending(),
    ));

    // In-process cost per kind (no HTTP), for the breakdown.
    {
        let principal = s
            .app
            .authenticate(&s.key)
            .await
            .map_err(|e| anyhow::anyhow!("{}", e.message))?;
        let mut rng = Rng(5);
        let mut per: std::collections::BTreeMap<&str, (f64, usize)> = Default::default();
        for i in 0..4000 {
            let (kind, body) = check_body(i, &mut rng, products, people);
            let t = Instant::now();
            s.app
                .check_price(&principal, &body)
                .await
                .map_err(|e| anyhow::anyhow!("{}", e.message))?;
            let e = per.entry(kind).or_default();
            e.0 += t.elapsed().as_secs_f64() * 1e3;
            e.1 += 1;
        }
        let t = Instant::now();
        for _ in 0..2000 {
            let _ = s.app.authenticate(&s.key).await;
        }
        eprintln!(
            "  authenticate {:.3} ms",
            t.elapsed().as_secs_f64() * 1e3 / 2000.0
        );
        for (k, (ms, n)) in per {
            eprintln!("  in process {k:9} {:.3} ms per check", ms / n as f64);
        }
        s.app
            .flush_decisions()
            .await
            .map_err(|e| anyhow::anyhow!("{}", e.message))?;
    }
    // Warm-up: connections, caches, this hour's segment pins.
    open_loop(addr, &s.key, rate / 2, 2.0, products, people, 1, false).await?;
    s.app
        .flush_decisions()
        .await
        .map_err(|e| anyhow::anyhow!("{}", e.message))?;
    // The floor: the same route refusing an empty body (HTTP, authentication, JSON, the
    // error) at the same rate, on the same machine, in the same run.
    let (_, floor) = open_loop(
        addr,
        &s.key,
        rate,
        (seconds as f64 / 2.0).max(1.0),
        products,
        people,
        3,
        true,
    )
    .await?;
    let mut floor: Vec<f64> = floor.iter().map(|r| r.1).collect();
    floor.sort_by(f64::total_cmp);
    // Several rounds: the machine is shared, so the median round's p99 is the figure.
    let runs = env_usize("BENCH_RUNS", 3)?.max(1);
    let mut results = Vec::new();
    let mut wall = 0.0;
    let mut p99s = Vec::new();
    for r in 0..runs {
        let (w, round) = open_loop(
            addr,
            &s.key,
            rate,
            seconds as f64,
            products,
            people,
            99 + r as u64,
            false,
        )
        .await?;
        let mut l: Vec<f64> = round.iter().map(|x| x.1).collect();
        l.sort_by(f64::total_cmp);
        p99s.push(percentile(&l, 0.99));
        wall += w;
        results.extend(round);
    }
    let mut lat: Vec<f64> = results.iter().map(|r| r.1).collect();
    lat.sort_by(f64::total_cmp);
    let mut sorted_p99s = p99s.clone();
    sorted_p99s.sort_by(f64::total_cmp);
    let median_p99 = sorted_p99s[sorted_p99s.len() / 2];
    let mut by_kind = Vec::new();
    for kind in ["market", "segment", "discount", "personal", "refused"] {
        let mut k: Vec<f64> = results
            .iter()
            .filter(|r| r.0 == kind)
            .map(|r| r.1)
            .collect();
        k.sort_by(f64::total_cmp);
        by_kind.push((kind, percentile(&k, 0.5), percentile(&k, 0.99)));
    }
    let mut verdicts = [0usize; 3];
    for (_, _, body) in &results {
        let v: Value = serde_json::from_slice(body)?;
        match v["verdict"].as_str() {
            Some("allow") => verdicts[0] += 1,
            Some("adjust") => verdicts[1] += 1,
            _ => verdicts[2] += 1,
        }
    }
    s.app
        .flush_decisions()
        .await
        .map_err(|e| anyhow::anyhow!("{}", e.message))?;

    // Batches over HTTP.
    let mut rng = Rng(7);
    let batch_bodies: Vec<String> = (0..batches)
        .map(|b| {
            let checks: Vec<Value> = (0..BATCH_SIZE)
                .map(|i| {
                    let p = (b * BATCH_SIZE + i) % (products * 20);
                    let list = 500 + (p as i64 % 200) * 25;
                    json!({"product": format!("cat-{p}"), "currency": "EUR", "listPrice": money(list),
                        "proposedPrice": money(list - list / 10 + (rng.below(30) as i64) * list / 100),
                        "category": "home", "signals": ["competitor_price", "stock_level"]})
                })
                .collect();
            json!({ "checks": checks }).to_string()
        })
        .collect();
    // Two clients at once (a repricing job on each core's worth), each sending its share.
    let auth = format!("Bearer {}", s.key);
    let bodies = Arc::new(batch_bodies.clone());
    let t = Instant::now();
    let mut clients = Vec::new();
    for c in 0..2usize {
        let (auth, bodies) = (auth.clone(), bodies.clone());
        clients.push(tokio::spawn(async move {
            let mut stream = BufReader::new(tokio::net::TcpStream::connect(addr).await?);
            stream.get_mut().set_nodelay(true)?;
            for body in bodies.iter().skip(c).step_by(2) {
                let (status, resp) = post(
                    &mut stream,
                    "/v1/prices/check/batch",
                    &auth,
                    body.as_bytes(),
                )
                .await?;
                if status != 200 {
                    bail!(
                        "batch status {status}: {}",
                        String::from_utf8_lossy(&resp[..resp.len().min(300)])
                    );
                }
            }
            Ok::<_, anyhow::Error>(())
        }));
    }
    for c in clients {
        c.await??;
    }
    let batch_rate = (batches * BATCH_SIZE) as f64 / t.elapsed().as_secs_f64();
    // The same in process (no HTTP, no JSON): the guard and its store writes alone.
    let inputs: Vec<candor_app::pricing::CheckInput> =
        serde_json::from_str::<Value>(&batch_bodies[0])?["checks"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|c| candor_app::pricing::CheckInput::from_json(c).ok())
                    .collect()
            })
            .unwrap_or_default();
    let tenant = s.app.find_tenant("bench").await?.id;
    let t = Instant::now();
    for _ in 0..batches {
        s.app
            .check_batch(tenant, "bench", &inputs)
            .await
            .map_err(|e| anyhow::anyhow!("{}", e.message))?;
    }
    let batch_in_process = (batches * inputs.len()) as f64 / t.elapsed().as_secs_f64();
    if let Some(url) = &s.pg_url {
        candor_testkit::drop_pg_database(url);
    }
    Ok(Figures {
        backend: backend.to_string(),
        achieved: lat.len() as f64 / wall,
        p50: percentile(&lat, 0.5),
        p99: median_p99,
        p99s,
        p999: percentile(&lat, 0.999),
        floor_p50: percentile(&floor, 0.5),
        floor_p99: percentile(&floor, 0.99),
        by_kind,
        verdicts,
        batch_rate,
        batch_in_process,
    })
}

fn main() -> Result<()> {
    let strict = std::env::var("BENCH_STRICT").is_ok_and(|v| v == "1");
    let backends: Vec<String> = std::env::var("BENCH_BACKENDS")
        .unwrap_or_else(|_| "sqlite,postgres".into())
        .split(',')
        .map(|b| b.trim().to_string())
        .filter(|b| b == "sqlite" || b == "postgres")
        .collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let mut figures = Vec::new();
    for b in &backends {
        figures.push(rt.block_on(run_backend(b))?);
    }
    let rate = env_usize("BENCH_RATE", 2000)?;
    println!(
        "bench/pricing — POST /v1/prices/check open loop at {rate}/s (mix: 55% market, 20% segment, 10% announced reduction, 10% personal with consent, 5% refused), every check recorded; batches of {BATCH_SIZE}"
    );
    let mut missed = Vec::new();
    for f in &figures {
        println!(
            "{}: {:.0} checks/s · p50 {:.2} ms · p99 {:.2} ms (median of rounds {}) · p99.9 {:.2} ms (target p99 < {P99_TARGET_MS} ms; ratio {:.2}) · allow/adjust/refuse {}/{}/{}",
            f.backend,
            f.achieved,
            f.p50,
            f.p99,
            f.p99s
                .iter()
                .map(|x| format!("{x:.2}"))
                .collect::<Vec<_>>()
                .join(" / "),
            f.p999,
            f.p99 / P99_TARGET_MS,
            f.verdicts[0],
            f.verdicts[1],
            f.verdicts[2]
        );
        println!(
            "    floor (the route refusing an empty body): p50 {:.2} ms · p99 {:.2} ms; checks ÷ floor at p99 {:.2}",
            f.floor_p50,
            f.floor_p99,
            f.p99 / f.floor_p99
        );
        for (k, p50, p99) in &f.by_kind {
            println!("    {k:9} p50 {p50:.2} ms · p99 {p99:.2} ms");
        }
        println!(
            "{}: batches over HTTP {:.0} prices/s (target {BATCH_TARGET:.0}; ratio {:.2}) · in process {:.0} prices/s",
            f.backend,
            f.batch_rate,
            f.batch_rate / BATCH_TARGET,
            f.batch_in_process
        );
        if f.p99 > P99_TARGET_MS {
            missed.push(format!("{} p99 {:.2} ms", f.backend, f.p99));
        }
        if f.batch_rate < BATCH_TARGET {
            missed.push(format!("{} batches {:.0}/s", f.backend, f.batch_rate));
        }
    }
    if !missed.is_empty() {
        println!("missed: {}", missed.join("; "));
        if strict {
            std::process::exit(1);
        }
    }
    Ok(())
}
