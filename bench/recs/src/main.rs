//! `bench/recs`: Candor's ALS training (`candor-ml::recs`) against `implicit`'s CPU ALS (CG),
//! same matrix, 64 factors, 15 iterations, regularization 0.01, 2 threads each, and the
//! recall@10 of both on one held-out interaction of 10,000 users (equal quality check).
//!
//! The matrix is synthetic and power-law: 100k users × 20k items × 5M interactions by
//! default, item popularity Zipf-like, users with a few taste clusters so that recall is
//! meaningful.
//!
//! Serving: `GET /v1/subjects/{id}/recommendations?k=10` over loopback HTTP against a running
//! Candor (SQLite, `BENCH_SERVE_USERS` people who allow personalization, a model trained on
//! their purchases), open-loop at `BENCH_RATE` requests/s for `BENCH_SECONDS`; latency is
//! measured from each request's scheduled time (no coordinated omission). Every answer is a
//! personalized list, explained and stored as a decision.
//!
//! Run: `bash bench/run recs`. Options: `BENCH_USERS` (100000), `BENCH_ITEMS` (20000),
//! `BENCH_NNZ` (5000000), `BENCH_RUNS` (3), `BENCH_SERVE_USERS` (2000), `BENCH_RATE` (1000),
//! `BENCH_SECONDS` (10), `CANDOR_PEERS_VENV`, `BENCH_STRICT=1`.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Result, bail};
use candor_ml::recs::{AlsParams, Csr, top_k, train_als};

use candor_testkit::bench::env_usize;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const FACTORS: usize = 64;
const ITERATIONS: usize = 15;
const HELD_OUT_USERS: usize = 10_000;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn uniform(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Power-law interactions: each user belongs to one of 50 taste clusters (a contiguous slice
/// of the catalog, permuted); items are drawn Zipf-like within the cluster 70% of the time and
/// from the global Zipf-like popularity otherwise.
fn generate(users: usize, items: usize, nnz: usize) -> Vec<(u32, u32, f32)> {
    let mut rng = Rng(7);
    let zipf = |u: f64, n: usize| -> usize { ((n as f64).powf(u) - 1.0).max(0.0) as usize % n };
    let clusters = 50usize;
    let per_cluster = items / clusters;
    let mut out = Vec::with_capacity(nnz);
    let per_user = nnz / users;
    for u in 0..users {
        let c = (rng.next() % clusters as u64) as usize;
        let n = (per_user as f64 * (0.2 + 1.6 * rng.uniform())) as usize + 1;
        for _ in 0..n {
            let item = if rng.uniform() < 0.7 {
                c * per_cluster + zipf(rng.uniform(), per_cluster)
            } else {
                zipf(rng.uniform(), items)
            };
            out.push((u as u32, item as u32, 1.0 + (rng.next() % 3) as f32));
        }
    }
    out
}

/// Open-loop load on the recommendations endpoint; returns (achieved rate, p50 ms, p99 ms,
/// personalized share).
/// The HTTP serving part (`BENCH_SERVE_USERS`, `BENCH_RATE`, `BENCH_SECONDS`): prints its
/// figures and returns the p99 in ms.
fn serving_part() -> Result<f64> {
    let serve_users = env_usize("BENCH_SERVE_USERS", 2000)?;
    let rate = env_usize("BENCH_RATE", 1000)?;
    let seconds = env_usize("BENCH_SECONDS", 10)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let (achieved, p50, p99, share) = rt.block_on(serving(serve_users, rate, seconds))?;
    println!(
        "serving over HTTP (SQLite, {serve_users} people, top-10 ALS, explained, stored as a decision): {achieved:.0} requests/s offered {rate}/s · p50 {p50:.2} ms · p99 {p99:.2} ms (target < 5 ms) · personalized {:.0}%",
        share * 100.0
    );
    Ok(p99)
}

async fn serving(users: usize, rate: usize, seconds: usize) -> Result<(f64, f64, f64, f64)> {
    use std::sync::Arc;
    use tokio::io::BufReader;

    let dir = candor_testkit::TempDir::new("candor-bench-recs");
    let store = candor_store::AnyStore::Sqlite(
        candor_store::SqliteStore::open(&dir.0.join("candor.db")).await?,
    );
    use candor_store::Store as _;
    store.migrate().await?;
    let policy = candor_policy::Policy::parse("candor.toml", candor_policy::DEFAULT_POLICY)
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let app = candor_app::App::new(
        store,
        policy,
        candor_crypto::MasterKey::generate()?,
        Arc::new(candor_app::SystemClock),
    );
    let err = |e: candor_app::AppError| anyhow::anyhow!("{} [{}]", e.message, e.code);
    let tenant = app.create_tenant("bench", "bench").await.map_err(err)?.id;
    let (_, key) = app
        .create_key(tenant, candor_types::Scope::Server, None, "bench")
        .await
        .map_err(err)?;
    let principal = app.authenticate(&key).await.map_err(err)?;
    eprintln!("serving: {users} people who allow personalization");
    for u in 0..users {
        app.set_consent(
            &principal,
            &format!("u{u}"),
            "personalization",
            candor_app::ConsentInput {
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
    let now = candor_types::Timestamp::now();
    let lines: Vec<candor_app::recs::Line> = generate(users, 2000, users * 20)
        .into_iter()
        .map(|(u, i, _)| candor_app::recs::Line {
            user: format!("u{u}"),
            item: format!("sku-{i}"),
            name: format!("PRODUCT {i}"),
            category: "home".into(),
            at: now.minus_days(1 + (i % 30)),
            segment: String::new(),
            weight: 1.0,
        })
        .collect();
    let params = AlsParams {
        factors: FACTORS,
        iterations: ITERATIONS,
        ..AlsParams::default()
    };
    let trained = app
        .train_recs(tenant, "bench", &lines, 0, None, &params, "synthetic")
        .await
        .map_err(err)?;
    eprintln!(
        "serving: model {} with {} people personalized",
        trained.version, trained.personalized
    );
    // In-process cost of one request (no HTTP), for the breakdown.
    let t = std::time::Instant::now();
    for u in 0..500 {
        app.recommend(tenant, "bench", &format!("u{u}"), 10, None)
            .await
            .map_err(err)?;
    }
    eprintln!(
        "serving: in process {:.3} ms per list",
        t.elapsed().as_secs_f64() * 1e3 / 500.0
    );
    {
        use candor_store::Store as _;
        let purpose: candor_types::Purpose = "personalization"
            .to_string()
            .try_into()
            .map_err(|_| anyhow::anyhow!("purpose"))?;
        let t = std::time::Instant::now();
        for u in 0..500 {
            let _ = app.resolve_subject(tenant, &format!("u{u}")).await;
        }
        eprintln!(
            "  resolve {:.3} ms",
            t.elapsed().as_secs_f64() * 1e3 / 500.0
        );
        let s = app.resolve_subject(tenant, "u1").await.map_err(err)?;
        let t = std::time::Instant::now();
        for _ in 0..500 {
            let _ = app.grant(tenant, s.id, &purpose).await;
        }
        eprintln!("  grant {:.3} ms", t.elapsed().as_secs_f64() * 1e3 / 500.0);
        let t = std::time::Instant::now();
        for _ in 0..500 {
            let _ = app.store().serving_model(tenant, "recommendations").await;
        }
        eprintln!(
            "  model lookup (cached by serving for 2 s) {:.3} ms",
            t.elapsed().as_secs_f64() * 1e3 / 500.0
        );
        let t = std::time::Instant::now();
        for _ in 0..500 {
            let _ = app.store().rec_factors(tenant, 1, s.id).await;
        }
        eprintln!(
            "  factors {:.3} ms",
            t.elapsed().as_secs_f64() * 1e3 / 500.0
        );
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(candor_http::serve(
        listener,
        app.clone(),
        std::future::pending(),
    ));

    let total = rate * seconds;
    let connections = 32usize;
    let start = tokio::time::Instant::now() + std::time::Duration::from_millis(200);
    let interval = std::time::Duration::from_secs_f64(1.0 / rate as f64);
    let auth = format!("Bearer {key}");
    let mut tasks = Vec::new();
    for c in 0..connections {
        let auth = auth.clone();
        tasks.push(tokio::spawn(async move {
            let s = tokio::net::TcpStream::connect(addr).await?;
            s.set_nodelay(true)?;
            let mut stream = BufReader::new(s);
            let mut out: Vec<(f64, bool)> = Vec::new();
            let mut i = c;
            while i < total {
                let due = start + interval * i as u32;
                tokio::time::sleep_until(due).await;
                let (status, body) = candor_testkit::bench::get(
                    &mut stream,
                    &format!("/v1/subjects/u{}/recommendations?k=10", (i * 7919) % users),
                    &auth,
                )
                .await?;
                let elapsed = due.elapsed().as_secs_f64() * 1e3;
                if status != 200 {
                    anyhow::bail!("status {status}: {}", String::from_utf8_lossy(&body));
                }
                let personalized = body.windows(19).any(|w| w == b"\"personalized\":true");
                out.push((elapsed, personalized));
                i += connections;
            }
            Ok::<_, anyhow::Error>(out)
        }));
    }
    let mut lat = Vec::with_capacity(total);
    let mut personalized = 0usize;
    for t in tasks {
        for (ms, p) in t.await?? {
            lat.push(ms);
            personalized += usize::from(p);
        }
    }
    let wall = start.elapsed().as_secs_f64();
    lat.sort_by(f64::total_cmp);
    let pct = |q: f64| lat[((lat.len() - 1) as f64 * q).round() as usize];
    Ok((
        lat.len() as f64 / wall,
        pct(0.5),
        pct(0.99),
        personalized as f64 / lat.len().max(1) as f64,
    ))
}

fn main() -> Result<()> {
    let users = env_usize("BENCH_USERS", 100_000)?;
    let items = env_usize("BENCH_ITEMS", 20_000)?;
    let nnz = env_usize("BENCH_NNZ", 5_000_000)?;
    let runs = env_usize("BENCH_RUNS", 3)?.max(1);
    let strict = std::env::var("BENCH_STRICT").is_ok_and(|v| v == "1");
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()?;
    let venv = std::env::var_os("CANDOR_PEERS_VENV")
        .map_or_else(|| workspace.join(".peers-venv"), PathBuf::from);
    let python = venv.join("bin/python");
    if !python.exists() {
        let script = workspace.join("bench/peers-install.sh");
        if !Command::new("bash")
            .arg(&script)
            .arg(&venv)
            .status()?
            .success()
        {
            bail!("installing the peers failed");
        }
    }
    rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build_global()?;
    if std::env::var("BENCH_SERVING_ONLY").is_ok_and(|v| v == "1") {
        serving_part()?;
        return Ok(());
    }
    eprintln!("generating {users} users × {items} items × {nnz} interactions");
    let mut triplets = generate(users, items, nnz);
    // Hold out one interaction of each of the first 10,000 users with at least 3.
    let m_all = Csr::from_triplets(users, items, &triplets);
    let mut held: Vec<(u32, u32)> = Vec::new();
    let mut rng = Rng(11);
    for u in 0..users {
        if held.len() >= HELD_OUT_USERS {
            break;
        }
        let (idx, _) = m_all.row(u);
        if idx.len() >= 3 {
            held.push((u as u32, idx[(rng.next() % idx.len() as u64) as usize]));
        }
    }
    let held_set: HashSet<(u32, u32)> = held.iter().copied().collect();
    triplets.retain(|&(u, i, _)| !held_set.contains(&(u, i)));
    let m = Csr::from_triplets(users, items, &triplets);
    let dir = std::env::temp_dir().join(format!("candor-bench-recs-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let write = |name: &str, bytes: Vec<u8>| std::fs::write(dir.join(name), bytes);
    write(
        "indptr.u64",
        m.indptr
            .iter()
            .flat_map(|v| (*v as u64).to_le_bytes())
            .collect(),
    )?;
    write(
        "indices.u32",
        m.indices.iter().flat_map(|v| v.to_le_bytes()).collect(),
    )?;
    write(
        "data.f32",
        m.data.iter().flat_map(|v| v.to_le_bytes()).collect(),
    )?;
    write(
        "shape.json",
        serde_json::json!({"users": users, "items": items})
            .to_string()
            .into_bytes(),
    )?;
    let mut csv = String::from("user,item\n");
    for (u, i) in &held {
        csv.push_str(&format!("{u},{i}\n"));
    }
    write("heldout.csv", csv.into_bytes())?;

    eprintln!("Candor: {runs} training runs");
    let params = AlsParams {
        factors: FACTORS,
        iterations: ITERATIONS,
        ..AlsParams::default()
    };
    let mut times = Vec::new();
    let mut model = None;
    for _ in 0..runs {
        let t = Instant::now();
        let als = train_als(&m, &params, &mut |_| {});
        times.push(t.elapsed().as_secs_f64());
        model = Some(als);
    }
    times.sort_by(f64::total_cmp);
    let candor_secs = times[times.len() / 2];
    let Some(als) = model else { bail!("no model") };
    write(
        "candor_users.f32",
        als.user_factors
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect(),
    )?;
    write(
        "candor_items.f32",
        als.item_factors
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect(),
    )?;

    // Top-10 for 10,000 users, already-seen items filtered (batch throughput of the model).
    let t = Instant::now();
    let mut n = 0usize;
    for (u, _) in &held {
        let (seen, _) = m.row(*u as usize);
        n += top_k(&als.scores(als.user(*u as usize)), 10, seen).len();
    }
    let topk_rate = held.len() as f64 / t.elapsed().as_secs_f64();
    let _ = n;

    eprintln!("implicit: {runs} training runs");
    let out = Command::new(&python)
        .arg(workspace.join("bench/recs/peers.py"))
        .arg(&dir)
        .args([
            FACTORS.to_string(),
            ITERATIONS.to_string(),
            runs.to_string(),
        ])
        .output()?;
    if !out.status.success() {
        bail!("peers.py: {}", String::from_utf8_lossy(&out.stderr));
    }
    let peer: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let _ = std::fs::remove_dir_all(&dir);
    let imp = peer["implicit_seconds"].as_f64().unwrap_or(f64::NAN);
    let (cr, ir) = (
        peer["candor_recall"].as_f64().unwrap_or(f64::NAN),
        peer["implicit_recall"].as_f64().unwrap_or(f64::NAN),
    );
    println!(
        "bench/recs — ALS, {users} users × {items} items × {} interactions, {FACTORS} factors, {ITERATIONS} iterations, 2 threads; median of {runs}",
        m.nnz()
    );
    println!("peers: implicit {}", peer["implicit_version"]);
    println!(
        "training: Candor {candor_secs:.2} s · implicit {imp:.2} s → {:.2}× implicit's time (target ≤ 1)",
        candor_secs / imp
    );
    println!(
        "recall@10 on {} held-out interactions: Candor {cr:.4} · implicit {ir:.4}",
        held.len()
    );
    println!("top-10 with seen items filtered (one thread, in process): {topk_rate:.0} users/s");
    let p99 = serving_part()?;
    let mut missed = Vec::new();
    if p99 > 5.0 {
        missed.push(format!("serving p99 {p99:.2} ms"));
    }
    if candor_secs > imp {
        missed.push("training slower than implicit".to_string());
    }
    if cr < ir * 0.98 {
        missed.push("recall below implicit's".to_string());
    }
    if missed.is_empty() {
        println!("targets: met");
    } else {
        println!("targets missed: {}", missed.join("; "));
        if strict {
            std::process::exit(1);
        }
    }
    Ok(())
}
