//! `bench/fairness`: Candor's group metrics (`candor-fairness`) against Fairlearn's
//! `MetricFrame` and against a NumPy bincount of the same metrics (the practical ceiling), on
//! the same bytes, in one run; and Candor's 1,000-resample bootstrap against Fairlearn's.
//!
//! For each size (1M and 10M rows by default): selection rate, TPR, FPR and accuracy per group
//! of one protected attribute (4 groups) and of two (4 × 3 intersections). Candor's figure is
//! the whole `audit_attribute` (group counts, every per-group metric, every disparity); for two
//! attributes it includes building the intersection. Fairlearn's values are checked against
//! Candor's. Then 1,000 stratified bootstrap resamples on 1M rows (counts drawn exactly from
//! the multinomial), against Fairlearn's `MetricFrame(n_boot=…)` per resample.
//!
//! Run: `bash bench/run fairness` (or `cargo run --release -p candor-bench-fairness`).
//! Options (environment): `BENCH_SIZES` (`1000000,10000000`), `BENCH_RUNS` (5 for Candor and
//! NumPy), `BENCH_PEER_RUNS` (1 for Fairlearn), `BENCH_PEER_BOOT` (2 Fairlearn resamples timed),
//! `CANDOR_PEERS_VENV` (`<workspace>/.peers-venv`), `BENCH_STRICT=1` (exit 1 when a target is
//! missed).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use candor_fairness::bootstrap::{Rng, bootstrap};
use candor_fairness::{Attribute, AttributeAudit, audit_attribute};
use serde_json::Value;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Targets (issue text): ≥ 1,000× Fairlearn's speed, within 2× of the bincount ceiling,
/// 1,000 bootstrap resamples on 1M rows in under a second.
const FAIRLEARN_TARGET: f64 = 1000.0;
const CEILING_TARGET: f64 = 2.0;
const BOOT_TARGET_SECS: f64 = 1.0;
const BOOT_RESAMPLES: usize = 1000;
/// Candor's and Fairlearn's group values must agree this closely.
const AGREEMENT: f64 = 1e-9;

fn env_usize(name: &str, default: usize) -> Result<usize> {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .replace('_', "")
            .parse()
            .with_context(|| format!("{name}={v:?} is not a whole number")),
        Err(_) => Ok(default),
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn timed<T>(runs: usize, mut f: impl FnMut() -> T) -> (f64, T) {
    let mut times = Vec::with_capacity(runs);
    let mut out = None;
    for _ in 0..runs {
        let t = Instant::now();
        let r = f();
        times.push(t.elapsed().as_secs_f64());
        out = Some(r);
    }
    match out {
        Some(o) => (median(times), o),
        None => unreachable!("runs ≥ 1"),
    }
}

/// Synthetic audit data: 30% positives; attribute a has 4 groups of unequal size (age bands),
/// b has 3 (marital status); the model selects some groups more often.
struct Data {
    y_true: Vec<u8>,
    y_pred: Vec<u8>,
    a: Vec<u8>,
    b: Vec<u8>,
}

fn generate(n: usize, seed: u64) -> Data {
    let mut rng = Rng(seed);
    let mut d = Data {
        y_true: Vec::with_capacity(n),
        y_pred: Vec::with_capacity(n),
        a: Vec::with_capacity(n),
        b: Vec::with_capacity(n),
    };
    for _ in 0..n {
        let u = rng.uniform();
        let a: u8 = if u < 0.15 {
            0
        } else if u < 0.6 {
            1
        } else if u < 0.9 {
            2
        } else {
            3
        };
        let b: u8 = (rng.uniform() * 3.0) as u8;
        let y = rng.uniform() < 0.3;
        let lift = [0.0, 0.05, 0.1, 0.2][a as usize] + 0.03 * f64::from(b);
        let p = if y { 0.6 + lift } else { 0.15 + lift };
        d.y_true.push(u8::from(y));
        d.y_pred.push(u8::from(rng.uniform() < p));
        d.a.push(a);
        d.b.push(b);
    }
    d
}

fn attribute(name: &str, codes: &[u8], labels: usize) -> Attribute {
    Attribute {
        name: name.into(),
        codes: codes.iter().map(|&c| u32::from(c)).collect(),
        labels: (0..labels).map(|i| i.to_string()).collect(),
    }
}

/// The largest difference between Candor's and Fairlearn's group values.
fn disagreement(audit: &AttributeAudit, peer: &Value) -> Result<f64> {
    let mut worst = 0.0f64;
    for g in &audit.groups {
        let key = &g.group;
        let w = &peer[key];
        if w.is_null() {
            bail!("Fairlearn has no group {key:?}");
        }
        for (name, v) in [
            ("selection_rate", g.selection_rate),
            ("tpr", g.tpr),
            ("fpr", g.fpr),
            ("accuracy", g.accuracy),
        ] {
            let p = w[name].as_f64().context("missing value")?;
            worst = worst.max((v - p).abs());
        }
    }
    Ok(worst)
}

struct Venv {
    python: PathBuf,
}

fn venv(workspace: &Path) -> Result<Venv> {
    let dir = match std::env::var_os("CANDOR_PEERS_VENV") {
        Some(v) => PathBuf::from(v),
        None => workspace.join(".peers-venv"),
    };
    let python = dir.join("bin/python");
    if !python.exists() {
        let shared = workspace.join("../shared/peers/install.sh");
        let script = if shared.exists() {
            shared
        } else {
            workspace.join("bench/peers-install.sh")
        };
        eprintln!(
            "peers: installing into {} with {}",
            dir.display(),
            script.display()
        );
        let ok = Command::new("bash")
            .arg(&script)
            .arg(&dir)
            .status()
            .with_context(|| format!("running {}", script.display()))?
            .success();
        if !ok || !python.exists() {
            bail!("installing the peers into {} failed", dir.display());
        }
    }
    Ok(Venv { python })
}

fn fmt_secs(s: f64) -> String {
    if s >= 1.0 {
        format!("{s:.2} s")
    } else if s >= 1e-3 {
        format!("{:.2} ms", s * 1e3)
    } else {
        format!("{:.1} µs", s * 1e6)
    }
}

fn main() -> Result<()> {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()?;
    let sizes: Vec<usize> = std::env::var("BENCH_SIZES")
        .unwrap_or_else(|_| "1000000,10000000".into())
        .split(',')
        .map(|s| s.trim().replace('_', "").parse().context("BENCH_SIZES"))
        .collect::<Result<_>>()?;
    let runs = env_usize("BENCH_RUNS", 5)?.max(1);
    let peer_runs = env_usize("BENCH_PEER_RUNS", 1)?.max(1);
    let peer_boot = env_usize("BENCH_PEER_BOOT", 2)?;
    let strict = std::env::var("BENCH_STRICT").is_ok_and(|v| v == "1");
    let py = venv(&workspace)?;
    let script = workspace.join("bench/fairness/peers.py");
    let dir = std::env::temp_dir().join(format!("candor-bench-fairness-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let mut missed = Vec::new();
    let mut lines = Vec::new();
    let mut versions = Value::Null;

    for &n in &sizes {
        eprintln!("generating {n} rows");
        let d = generate(n, 42);
        for (name, v) in [
            ("y_true", &d.y_true),
            ("y_pred", &d.y_pred),
            ("a", &d.a),
            ("b", &d.b),
        ] {
            std::fs::write(dir.join(format!("{name}.u8")), v)?;
        }
        let boot = if n == 1_000_000 { peer_boot } else { 0 };
        eprintln!("{n} rows: Fairlearn and NumPy (this takes a while)");
        let out = Command::new(&py.python)
            .arg(&script)
            .arg(&dir)
            .arg(peer_runs.to_string())
            .arg(runs.to_string())
            .arg(boot.to_string())
            .output()
            .context("running peers.py")?;
        if !out.status.success() {
            bail!("peers.py failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        let peer: Value = serde_json::from_slice(&out.stdout)?;
        versions = peer["versions"].clone();
        eprintln!("{n} rows: Candor");
        let a = attribute("a", &d.a, 4);
        let b = attribute("b", &d.b, 3);
        let (one, audit_one) = timed(runs, || audit_attribute(&a, &d.y_true, &d.y_pred, 0));
        let (two, audit_two) = timed(runs, || {
            let ab = Attribute::intersect(&a, &b);
            audit_attribute(&ab, &d.y_true, &d.y_pred, 0)
        });
        // Fairlearn names intersections "x & y" too (peers.py joins the tuple).
        let diff_one = disagreement(&audit_one, &peer["fairlearn_one"]["groups"])?;
        let diff_two = disagreement(&audit_two, &peer["fairlearn_two"]["groups"])?;
        if diff_one > AGREEMENT || diff_two > AGREEMENT {
            bail!("Candor and Fairlearn disagree: {diff_one:e} / {diff_two:e}");
        }
        for (case, secs, peer_key, ceil_key, diff) in [
            (
                "one attribute",
                one,
                "fairlearn_one",
                "bincount_one",
                diff_one,
            ),
            (
                "two attributes",
                two,
                "fairlearn_two",
                "bincount_two",
                diff_two,
            ),
        ] {
            let fl = peer[peer_key]["secs"].as_f64().unwrap_or(f64::NAN);
            let np = peer[ceil_key]["secs"].as_f64().unwrap_or(f64::NAN);
            let speedup = fl / secs;
            let vs_ceiling = secs / np;
            lines.push(format!(
                "{n:>9} rows  {case:<15} Candor {:>9}  NumPy bincount {:>9}  Fairlearn {:>9}  → {speedup:>8.0}× Fairlearn, {vs_ceiling:.2}× bincount's time  (max |Δ| {diff:.1e})",
                fmt_secs(secs),
                fmt_secs(np),
                fmt_secs(fl),
            ));
            if speedup < FAIRLEARN_TARGET {
                missed.push(format!(
                    "{n} {case}: {speedup:.0}× Fairlearn < {FAIRLEARN_TARGET}×"
                ));
            }
            if vs_ceiling > CEILING_TARGET {
                missed.push(format!(
                    "{n} {case}: {vs_ceiling:.2}× bincount's time > {CEILING_TARGET}×"
                ));
            }
        }
        if n == 1_000_000 {
            // 1,000 resamples: one counting pass plus the draws, per attribute shape.
            for (case, attr) in [
                ("one attribute", a.clone()),
                ("two attributes", Attribute::intersect(&a, &b)),
            ] {
                let (secs, ci) = timed(runs, || {
                    let audit = audit_attribute(&attr, &d.y_true, &d.y_pred, 30);
                    let counts: Vec<(String, candor_fairness::Counts)> = audit
                        .groups
                        .iter()
                        .map(|g| (g.group.clone(), g.counts))
                        .collect();
                    bootstrap(&counts, 30, BOOT_RESAMPLES, 0.95, 7)
                });
                let per = peer["fairlearn_bootstrap"]["secs_per_resample"].as_f64();
                let fl = per.map(|p| p * BOOT_RESAMPLES as f64);
                lines.push(format!(
                    "{n:>9} rows  bootstrap {BOOT_RESAMPLES} × {case:<15} Candor {:>9}  Fairlearn {} ({} per resample, extrapolated)  → {}  (DP difference 95% interval {:.4}–{:.4})",
                    fmt_secs(secs),
                    fl.map_or("–".into(), fmt_secs),
                    per.map_or("–".into(), fmt_secs),
                    fl.map_or("–".into(), |f| format!("{:.0}× Fairlearn", f / secs)),
                    ci.demographic_parity_difference.map_or(f64::NAN, |i| i.low),
                    ci.demographic_parity_difference.map_or(f64::NAN, |i| i.high),
                ));
                if secs > BOOT_TARGET_SECS {
                    missed.push(format!(
                        "bootstrap {case}: {secs:.2} s > {BOOT_TARGET_SECS} s"
                    ));
                }
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "bench/fairness — Candor (candor-fairness, 1 thread) vs Fairlearn MetricFrame and a NumPy bincount, same bytes"
    );
    println!("peers: {versions}");
    println!(
        "metrics per group: selection rate, TPR, FPR, accuracy (Candor computes every disparity too); median of {runs} runs (Fairlearn: {peer_runs})"
    );
    for l in &lines {
        println!("{l}");
    }
    if missed.is_empty() {
        println!(
            "targets: met (≥ {FAIRLEARN_TARGET}× Fairlearn, ≤ {CEILING_TARGET}× bincount's time, bootstrap < {BOOT_TARGET_SECS} s)"
        );
    } else {
        println!("targets missed: {}", missed.join("; "));
        if strict {
            std::process::exit(1);
        }
    }
    Ok(())
}
