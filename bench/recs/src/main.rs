//! `bench/recs`: Candor's ALS training (`candor-ml::recs`) against `implicit`'s CPU ALS (CG),
//! same matrix, 64 factors, 15 iterations, regularization 0.01, 2 threads each, and the
//! recall@10 of both on one held-out interaction of 10,000 users (equal quality check).
//!
//! The matrix is synthetic and power-law: 100k users × 20k items × 5M interactions by
//! default, item popularity Zipf-like, users with a few taste clusters so that recall is
//! meaningful. Serving throughput over HTTP is measured by `bench/recs-serving` once the API
//! exists; here the pure top-10 throughput of the trained model is reported.
//!
//! Run: `bash bench/run recs`. Options: `BENCH_USERS` (100000), `BENCH_ITEMS` (20000),
//! `BENCH_NNZ` (5000000), `BENCH_RUNS` (3), `CANDOR_PEERS_VENV`, `BENCH_STRICT=1`.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use candor_ml::recs::{AlsParams, Csr, top_k, train_als};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const FACTORS: usize = 64;
const ITERATIONS: usize = 15;
const HELD_OUT_USERS: usize = 10_000;

fn env_usize(name: &str, default: usize) -> Result<usize> {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .replace('_', "")
            .parse()
            .with_context(|| format!("{name}={v:?}")),
        Err(_) => Ok(default),
    }
}

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
    let mut missed = Vec::new();
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
