//! `bench/scoring`: Candor's gradient-boosted trees (`candor-ml`) against LightGBM, XGBoost and
//! shap, in one run, on the same bytes of data and the same model size, 2 threads each.
//!
//! - training time and test AUC vs LightGBM and XGBoost;
//! - prediction rows/s on LightGBM's own trees (saved as text, imported into Candor) vs
//!   LightGBM's `predict(raw_score=True)`, plus XGBoost's `inplace_predict` for reference;
//! - TreeSHAP rows/s on the same trees vs LightGBM's `pred_contrib` and shap's `TreeExplainer`,
//!   with Candor's contributions checked against LightGBM's;
//! - training and prediction again while a busy loop occupies one core.
//!
//! The peers run in a Python worker (`peers.py serve DIR`) that answers one JSON request per
//! line; every run of a peer is followed by the matching run of Candor, so both see the same
//! machine conditions. Each figure is the median of `BENCH_RUNS` runs after a warm-up run.
//!
//! Run: `bash bench/run scoring` (or `cargo run --release -p candor-bench-scoring`).
//! Options (environment): `BENCH_ROWS` (1000000), `BENCH_RUNS` (3), `BENCH_SHAP_ROWS` (20000),
//! `BENCH_SKIP_LOAD=1`, `BENCH_SKIP_BANK=1`, `CANDOR_PEERS_VENV` (`<workspace>/.peers-venv`),
//! `BENCH_BANK_CSV` (`../shared/data/bank_marketing/bank/bank-full.csv`), `BENCH_STRICT=1`
//! (exit 1 when a target is missed).

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use candor_ml::gbdt::{self, Dataset, GbdtParams};
use candor_ml::import::load_lightgbm;
use candor_ml::metrics::auc;
use candor_ml::table::{Selection, infer_schema, parse_target, read_csv};
use candor_ml::tree::Ensemble;
use rayon::ThreadPool;
use serde_json::{Value, json};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Progress on stderr, stamped with the seconds since the start.
macro_rules! progress {
    ($($arg:tt)*) => {
        eprintln!("[{:>7.1} s] {}", started().elapsed().as_secs_f64(), format_args!($($arg)*))
    };
}

fn started() -> Instant {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *START.get_or_init(Instant::now)
}

const THREADS: usize = 2;
const N_FEATURES: usize = 30;
const SEED: u64 = 42;
/// Trees grown by the warm-up training run of every trainer.
const WARMUP_TREES: usize = 2;
/// Prediction and SHAP runs repeat the call until a run lasts at least this long.
const MIN_RUN_SECS: f64 = 1.0;
/// "Equal AUC": Candor's test AUC at most this much below LightGBM's.
const AUC_TOLERANCE: f64 = 0.005;
/// Candor's contributions and raw scores on LightGBM's trees must match LightGBM's this closely.
const AGREEMENT: f64 = 1e-6;
/// Targets (issue text): training ≤ 1.5× LightGBM's time, prediction ≥ 1.5× LightGBM's
/// rows/s, TreeSHAP ≥ 2× LightGBM's `pred_contrib` rows/s.
const TRAIN_TARGET: f64 = 1.0 / 1.5;
const PREDICT_TARGET: f64 = 1.5;
const SHAP_TARGET: f64 = 2.0;

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

fn env_flag(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| v == "1")
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

struct Config {
    rows: usize,
    runs: usize,
    shap_rows: usize,
    skip_load: bool,
    skip_bank: bool,
    workspace: PathBuf,
    python: PathBuf,
    bank_csv: PathBuf,
}

impl Config {
    fn from_env() -> Result<Config> {
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let workspace = workspace
            .canonicalize()
            .with_context(|| format!("workspace {}", workspace.display()))?;
        let venv = match std::env::var_os("CANDOR_PEERS_VENV") {
            Some(v) => PathBuf::from(v),
            None => workspace.join(".peers-venv"),
        };
        let bank_csv = match std::env::var_os("BENCH_BANK_CSV") {
            Some(v) => PathBuf::from(v),
            None => workspace.join("../shared/data/bank_marketing/bank/bank-full.csv"),
        };
        let cfg = Config {
            rows: env_usize("BENCH_ROWS", 1_000_000)?,
            runs: env_usize("BENCH_RUNS", 3)?.max(1),
            shap_rows: env_usize("BENCH_SHAP_ROWS", 20_000)?.max(1),
            skip_load: env_flag("BENCH_SKIP_LOAD"),
            skip_bank: env_flag("BENCH_SKIP_BANK"),
            python: venv.join("bin/python"),
            workspace,
            bank_csv,
        };
        if cfg.rows < 1000 {
            bail!("BENCH_ROWS must be at least 1000");
        }
        if !cfg.python.exists() {
            let script = cfg.workspace.join("../shared/peers/install.sh");
            eprintln!(
                "peers: no virtualenv at {}; installing with {}",
                venv.display(),
                script.display()
            );
            let status = Command::new("bash")
                .arg(&script)
                .arg(&venv)
                .status()
                .with_context(|| format!("running {}", script.display()))?;
            if !status.success() || !cfg.python.exists() {
                bail!("installing the peers into {} failed", venv.display());
            }
        }
        Ok(cfg)
    }
}

/// A scratch directory removed on drop.
struct TempDir(PathBuf);

const TEMP_PREFIX: &str = "candor-bench-scoring-";

impl TempDir {
    fn new() -> Result<TempDir> {
        remove_stale_dirs();
        let p = std::env::temp_dir().join(format!("{TEMP_PREFIX}{}", std::process::id()));
        std::fs::create_dir_all(&p).with_context(|| format!("creating {}", p.display()))?;
        Ok(TempDir(p))
    }
}

/// Removes scratch directories left by interrupted runs (their process is gone).
fn remove_stale_dirs() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let pid = name.to_str().and_then(|n| n.strip_prefix(TEMP_PREFIX));
        if let Some(pid) = pid.and_then(|p| p.parse::<u32>().ok())
            && !Path::new(&format!("/proc/{pid}")).exists()
        {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One benchmark dataset, as written for the peers (the same bytes Candor trains on).
struct Data {
    /// Directory name under the scratch directory; the peers' `data` key.
    key: &'static str,
    title: String,
    n_features: usize,
    train_x: Vec<f64>,
    train_y: Vec<f64>,
    test_x: Vec<f64>,
    test_y: Vec<f64>,
    categorical: Vec<usize>,
    feature_names: Vec<String>,
}

impl Data {
    fn n_test(&self) -> usize {
        self.test_y.len()
    }

    fn train_set(&self) -> Dataset<'_> {
        Dataset {
            x: &self.train_x,
            n_features: self.n_features,
            y: &self.train_y,
            weight: None,
        }
    }

    fn params(&self, num_trees: usize) -> GbdtParams {
        GbdtParams {
            num_trees,
            learning_rate: 0.1,
            num_leaves: 31,
            max_depth: 0,
            min_data_in_leaf: 20,
            max_bin: 255,
            seed: SEED,
            threads: THREADS,
            categorical: self.categorical.clone(),
            ..GbdtParams::default()
        }
    }

    /// The first `rows` test rows (the TreeSHAP subset).
    fn test_head(&self, rows: usize) -> &[f64] {
        &self.test_x[..rows.min(self.n_test()) * self.n_features]
    }

    fn write(&self, root: &Path) -> Result<PathBuf> {
        let dir = root.join(self.key);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        write_f64(&dir.join("train_x.f64"), &self.train_x)?;
        write_f64(&dir.join("train_y.f64"), &self.train_y)?;
        write_f64(&dir.join("test_x.f64"), &self.test_x)?;
        write_f64(&dir.join("test_y.f64"), &self.test_y)?;
        let p = self.params(100);
        let meta = json!({
            "title": self.title,
            "n_features": self.n_features,
            "n_train": self.train_y.len(),
            "n_test": self.n_test(),
            "categorical": self.categorical,
            "feature_names": self.feature_names,
            "params": {
                "num_trees": p.num_trees,
                "num_leaves": p.num_leaves,
                "learning_rate": p.learning_rate,
                "max_bin": p.max_bin,
                "min_data_in_leaf": p.min_data_in_leaf,
                "min_sum_hessian_in_leaf": p.min_sum_hessian_in_leaf,
                "lambda_l2": p.lambda_l2,
                "threads": THREADS,
                "seed": SEED,
            },
        });
        let path = dir.join("meta.json");
        std::fs::write(&path, serde_json::to_vec_pretty(&meta)?)
            .with_context(|| format!("writing {}", path.display()))?;
        Ok(dir)
    }
}

fn write_f64(path: &Path, v: &[f64]) -> Result<()> {
    let f = File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut w = BufWriter::with_capacity(1 << 20, f);
    for x in v {
        w.write_all(&x.to_le_bytes())?;
    }
    w.flush()
        .with_context(|| format!("writing {}", path.display()))
}

fn read_f64(path: &Path) -> Result<Vec<f64>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    if bytes.len() % 8 != 0 {
        bail!("{} is not a float64 file", path.display());
    }
    Ok(bytes
        .chunks_exact(8)
        .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
        .collect())
}

/// Candor's seeded SplitMix64, plus normal draws.
struct Rng(candor_ml::gbdt::SplitMix);

impl Rng {
    fn uniform(&mut self) -> f64 {
        self.0.next_f64()
    }

    fn normal(&mut self) -> f64 {
        let u = self.uniform().max(f64::MIN_POSITIVE);
        let v = self.uniform();
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
}

/// Features with 10% missing values.
const NAN_FEATURES: [usize; 5] = [3, 7, 12, 21, 27];

/// `rows` × 30 features: 0–9 normal, 10–19 uniform(−1, 1), 20–24 integers 0–9, 25–29 noisy
/// copies of 0–4; a nonlinear logistic target (interactions, a step, a sine, informative
/// missingness). The last 20% of rows are the test set.
fn synthetic(rows: usize) -> Data {
    let nf = N_FEATURES;
    let mut rng = Rng(candor_ml::gbdt::SplitMix(SEED));
    let mut x = vec![0.0; rows * nf];
    let mut y = vec![0.0; rows];
    for (r, row) in x.chunks_exact_mut(nf).enumerate() {
        for f in 0..nf {
            row[f] = match f {
                0..=9 => rng.normal(),
                10..=19 => 2.0 * rng.uniform() - 1.0,
                20..=24 => (rng.uniform() * 10.0).floor(),
                _ => 0.7 * row[f - 25] + 0.5 * rng.normal(),
            };
        }
        for &f in &NAN_FEATURES {
            if rng.uniform() < 0.1 {
                row[f] = f64::NAN;
            }
        }
        let or = |v: f64, missing: f64| if v.is_nan() { missing } else { v };
        let z = 0.8 * row[0] - 0.6 * row[1] * row[1]
            + 1.2 * (2.0 * row[2]).sin()
            + or(0.7 * row[3], 0.5)
            + 0.5 * row[4] * row[5]
            + if row[10] > 0.3 { 0.9 } else { -0.3 }
            + 0.8 * row[11] * or(row[12], 0.0).abs()
            + 0.15 * row[20]
            - if or(row[21], -1.0) == 3.0 { 0.6 } else { 0.0 }
            + 0.5 * (row[25] * row[26]).tanh()
            + or(0.3 * row[27], -0.4)
            - 1.2;
        let p = 1.0 / (1.0 + (-z).exp());
        y[r] = if rng.uniform() < p { 1.0 } else { 0.0 };
    }
    let n_train = rows - rows / 5;
    let test_x = x.split_off(n_train * nf);
    let test_y = y.split_off(n_train);
    Data {
        key: "synthetic",
        title: format!(
            "synthetic: {} rows × {nf} features (seed {SEED}; {} train / {} test = last 20%)",
            group(rows as f64),
            group(n_train as f64),
            group(test_y.len() as f64)
        ),
        n_features: nf,
        train_x: x,
        train_y: y,
        test_x,
        test_y,
        categorical: vec![],
        feature_names: (0..nf).map(|f| format!("f{f}")).collect(),
    }
}

/// bank-full: target `y`, `duration` excluded, `age` and `marital` protected (not features),
/// encoded by Candor's schema inference; every 5th row held out.
fn bank(path: &Path) -> Result<Data> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let table = read_csv(&bytes)?;
    let exclude = ["duration".to_string()];
    let protected = ["age".to_string(), "marital".to_string()];
    let sel = Selection {
        target: "y",
        exclude: &exclude,
        protected: &protected,
        features: None,
        positive: None,
    };
    let schema = infer_schema(&table, &sel)?;
    let x = schema.encode(&table)?;
    let y = parse_target(&table, "y", None)?;
    let nf = schema.features.len();
    let categorical: Vec<usize> = schema
        .features
        .iter()
        .enumerate()
        .filter(|(_, f)| f.categorical)
        .map(|(i, _)| i)
        .collect();
    let (mut train_x, mut train_y, mut test_x, mut test_y) = (vec![], vec![], vec![], vec![]);
    for (r, (row, &t)) in x.chunks_exact(nf).zip(&y).enumerate() {
        if r % 5 == 4 {
            test_x.extend_from_slice(row);
            test_y.push(t);
        } else {
            train_x.extend_from_slice(row);
            train_y.push(t);
        }
    }
    let names: Vec<String> = schema.features.iter().map(|f| f.name.clone()).collect();
    let cat_names: Vec<&str> = categorical.iter().map(|&i| names[i].as_str()).collect();
    Ok(Data {
        key: "bank",
        title: format!(
            "bank-full: {} rows × {nf} features ({} train / {} test = every 5th row; categorical: {})",
            group(y.len() as f64),
            group(train_y.len() as f64),
            group(test_y.len() as f64),
            cat_names.join(", ")
        ),
        n_features: nf,
        train_x,
        train_y,
        test_x,
        test_y,
        categorical,
        feature_names: names,
    })
}

/// The Python worker running LightGBM, XGBoost and shap.
struct Peer {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Peer {
    fn start(cfg: &Config, dir: &Path) -> Result<Peer> {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("peers.py");
        let mut child = Command::new(&cfg.python)
            .arg(&script)
            .arg("serve")
            .arg(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting {} {}", cfg.python.display(), script.display()))?;
        let stdin = child.stdin.take().context("peer stdin")?;
        let stdout = BufReader::new(child.stdout.take().context("peer stdout")?);
        Ok(Peer {
            child,
            stdin,
            stdout,
        })
    }

    /// One request; an `error` answer is an `Err`.
    fn call(&mut self, req: Value) -> Result<Value> {
        writeln!(self.stdin, "{req}").context("writing to the peer worker")?;
        self.stdin.flush()?;
        let mut line = String::new();
        self.stdout
            .read_line(&mut line)
            .context("reading from the peer worker")?;
        if line.trim().is_empty() {
            bail!("the peer worker exited (request {req})");
        }
        let v: Value = serde_json::from_str(&line)
            .with_context(|| format!("peer answer is not JSON: {line:?}"))?;
        if let Some(e) = v.get("error") {
            return Err(anyhow!("peer: {}", e.as_str().unwrap_or("error")));
        }
        Ok(v)
    }

    fn seconds(&mut self, req: Value) -> Result<f64> {
        let v = self.call(req)?;
        v["seconds"]
            .as_f64()
            .ok_or_else(|| anyhow!("peer answer without seconds: {v}"))
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "{}", json!({"op": "quit"}));
        let _ = self.stdin.flush();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A process that keeps one core busy until dropped.
struct CoTenant(Child);

impl CoTenant {
    fn start(python: &Path) -> Result<CoTenant> {
        let child = Command::new(python)
            .args(["-c", "while True: pass"])
            .stdin(Stdio::null())
            .spawn()
            .context("starting the busy-loop co-tenant")?;
        // Let it get scheduled before measuring.
        std::thread::sleep(Duration::from_millis(500));
        Ok(CoTenant(child))
    }
}

impl Drop for CoTenant {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Seconds per call of `f`: calls it back to back until `min_secs` have passed (at least once).
fn per_call<T>(min_secs: f64, mut f: impl FnMut() -> T) -> f64 {
    let t = Instant::now();
    let mut calls = 0u32;
    loop {
        std::hint::black_box(f());
        calls += 1;
        let e = t.elapsed().as_secs_f64();
        if e >= min_secs {
            return e / f64::from(calls);
        }
    }
}

/// Medians (Candor, peer) of seconds per call: one warm-up call each, then `runs` runs of at
/// least [`MIN_RUN_SECS`], peer and Candor alternating. The closures take the minimum run time.
fn measure_pair(
    runs: usize,
    mut peer: impl FnMut(f64) -> Result<f64>,
    mut candor: impl FnMut(f64) -> f64,
) -> Result<(f64, f64)> {
    peer(0.0)?;
    candor(0.0);
    let (mut c, mut p) = (vec![], vec![]);
    for _ in 0..runs {
        p.push(peer(MIN_RUN_SECS)?);
        c.push(candor(MIN_RUN_SECS));
    }
    Ok((median(&c), median(&p)))
}

fn rows_per_sec(rows: usize, secs: f64) -> f64 {
    rows as f64 / secs
}

/// 1234567 → "1,234,567".
fn group(v: f64) -> String {
    let s = format!("{:.0}", v);
    let (sign, digits) = s.strip_prefix('-').map_or(("", s.as_str()), |d| ("-", d));
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    format!("{sign}{out}")
}

fn rate(v: f64) -> String {
    format!("{} rows/s", group(v))
}

/// One line of a result table. `ratio` > 1 means Candor is better.
struct Row {
    metric: String,
    candor: String,
    peer: String,
    ratio: Option<f64>,
    target: String,
    pass: Option<bool>,
    note: String,
}

struct Report {
    misses: Vec<String>,
}

/// One table line: metric, Candor, peer, ratio, target, mark, note.
fn cells(c: [&str; 7]) -> String {
    format!(
        "{:<46} {:>26} {:>26} {:>8} {:>7} {:>4}  {}",
        c[0], c[1], c[2], c[3], c[4], c[5], c[6]
    )
}

impl Report {
    fn table(&mut self, short: &str, title: &str, rows: &[Row]) {
        println!("\n== {title} ==");
        println!(
            "{}",
            cells(["metric", "Candor", "peer", "ratio", "target", "", "note"])
        );
        for r in rows {
            let ratio = r.ratio.map_or("—".into(), |v| format!("{v:.2}×"));
            let mark = match r.pass {
                Some(true) => "PASS",
                Some(false) => "FAIL",
                None => "",
            };
            println!(
                "{}",
                cells([
                    &r.metric, &r.candor, &r.peer, &ratio, &r.target, mark, &r.note
                ])
            );
            if r.pass == Some(false) {
                self.misses.push(format!("{short}: {} ({ratio})", r.metric));
            }
        }
        let _ = std::io::stdout().flush();
    }

    fn line(&mut self, text: &str) {
        println!("{text}");
        let _ = std::io::stdout().flush();
    }
}

/// Training medians of one trainer: seconds and test AUC.
#[derive(Clone, Copy)]
struct Trained {
    secs: f64,
    auc: f64,
}

struct TrainResults {
    candor: Trained,
    lightgbm: Trained,
    xgboost: Trained,
    model: Ensemble,
}

fn candor_train(d: &Data, trees: usize) -> Result<(f64, f64, Ensemble)> {
    let params = d.params(trees);
    let t = Instant::now();
    let (model, _) = gbdt::train(&d.train_set(), None, &params, &mut |_| {})?;
    let secs = t.elapsed().as_secs_f64();
    let raw = model.predict_raw_batch(&d.test_x);
    let a = auc(&raw, &d.test_y).context("test set has one class")?;
    Ok((secs, a, model))
}

/// Trains everyone `runs` times (after a short warm-up), interleaved. `keep` makes the peer
/// keep its last models for [`save`].
fn train_all(d: &Data, peer: &mut Peer, runs: usize, keep: bool) -> Result<TrainResults> {
    let key = d.key;
    progress!("[{key}] training warm-up ({WARMUP_TREES} trees each)");
    for lib in ["lightgbm", "xgboost"] {
        peer.call(json!({"op": "train", "data": key, "lib": lib, "trees": WARMUP_TREES}))?;
    }
    candor_train(d, WARMUP_TREES)?;
    let (mut c, mut l, mut x) = (vec![], vec![], vec![]);
    let mut model = None;
    let mut aucs = [f64::NAN; 3];
    for run in 1..=runs {
        for (lib, acc, slot) in [("lightgbm", &mut l, 1), ("xgboost", &mut x, 2)] {
            let v = peer.call(json!({"op": "train", "data": key, "lib": lib, "keep": keep}))?;
            let secs = v["seconds"].as_f64().context("seconds")?;
            aucs[slot] = v["auc"].as_f64().context("auc")?;
            progress!("[{key}] run {run}/{runs}: {lib} {secs:.2} s");
            acc.push(secs);
        }
        let (secs, a, m) = candor_train(d, 100)?;
        progress!("[{key}] run {run}/{runs}: candor {secs:.2} s");
        c.push(secs);
        aucs[0] = a;
        model = Some(m);
    }
    Ok(TrainResults {
        candor: Trained {
            secs: median(&c),
            auc: aucs[0],
        },
        lightgbm: Trained {
            secs: median(&l),
            auc: aucs[1],
        },
        xgboost: Trained {
            secs: median(&x),
            auc: aucs[2],
        },
        model: model.context("no training run")?,
    })
}

fn train_rows(t: &TrainResults, base: Option<&TrainResults>) -> Vec<Row> {
    let fmt = |r: Trained| format!("{:.2} s, AUC {:.4}", r.secs, r.auc);
    let auc_ok = t.candor.auc >= t.lightgbm.auc - AUC_TOLERANCE;
    let time_ok = t.lightgbm.secs / t.candor.secs >= TRAIN_TARGET;
    // Without load: Candor's time as a multiple of LightGBM's. Under load: each side's time
    // with the co-tenant ÷ its time without.
    let lgb_note = match base {
        Some(b) => format!(
            "Candor ×{:.2}, LightGBM ×{:.2}",
            t.candor.secs / b.candor.secs,
            t.lightgbm.secs / b.lightgbm.secs
        ),
        None => format!(
            "Candor takes {:.2}× LightGBM's time",
            t.candor.secs / t.lightgbm.secs
        ),
    };
    let xgb_note = match base {
        Some(b) => format!(
            "Candor ×{:.2}, XGBoost ×{:.2}; ",
            t.candor.secs / b.candor.secs,
            t.xgboost.secs / b.xgboost.secs
        ),
        None => String::new(),
    };
    vec![
        Row {
            metric: "training vs LightGBM (time, test AUC)".into(),
            candor: fmt(t.candor),
            peer: fmt(t.lightgbm),
            ratio: Some(t.lightgbm.secs / t.candor.secs),
            target: "≥0.67×".into(),
            pass: Some(time_ok && auc_ok),
            note: format!(
                "{lgb_note}; ΔAUC {:+.4}{}",
                t.candor.auc - t.lightgbm.auc,
                if auc_ok {
                    ""
                } else {
                    " (AUC below LightGBM's by more than the tolerance)"
                }
            ),
        },
        Row {
            metric: "training vs XGBoost hist (time, test AUC)".into(),
            candor: fmt(t.candor),
            peer: fmt(t.xgboost),
            ratio: Some(t.xgboost.secs / t.candor.secs),
            target: "—".into(),
            pass: None,
            note: format!("{xgb_note}ΔAUC {:+.4}", t.candor.auc - t.xgboost.auc),
        },
    ]
}

/// Prediction medians in rows/s.
#[derive(Clone, Copy)]
struct Predicted {
    candor_lgb_trees: f64,
    lightgbm: f64,
    candor_own_trees: f64,
    xgboost: f64,
}

fn predict_all(
    d: &Data,
    peer: &mut Peer,
    runs: usize,
    pool: &ThreadPool,
    lgb_trees: &Ensemble,
    own: &Ensemble,
) -> Result<Predicted> {
    let key = d.key;
    let n = d.n_test();
    progress!("[{key}] prediction: LightGBM vs Candor on LightGBM's trees");
    let (c, l) = measure_pair(
        runs,
        |t| peer.seconds(json!({"op": "predict", "data": key, "lib": "lightgbm", "min_secs": t})),
        |t| {
            per_call(t, || {
                pool.install(|| lgb_trees.predict_raw_batch(&d.test_x))
            })
        },
    )?;
    progress!("[{key}] prediction: XGBoost vs Candor on its own trees");
    let (co, x) = measure_pair(
        runs,
        |t| peer.seconds(json!({"op": "predict", "data": key, "lib": "xgboost", "min_secs": t})),
        |t| per_call(t, || pool.install(|| own.predict_raw_batch(&d.test_x))),
    )?;
    Ok(Predicted {
        candor_lgb_trees: rows_per_sec(n, c),
        lightgbm: rows_per_sec(n, l),
        candor_own_trees: rows_per_sec(n, co),
        xgboost: rows_per_sec(n, x),
    })
}

fn predict_rows(p: &Predicted, base: Option<&Predicted>) -> Vec<Row> {
    let slow = |name: &str, now: f64, b: f64| format!("{name} ×{:.2}", b / now);
    let note = |a: String, b: String| {
        if base.is_some() {
            format!("{a}; {b}")
        } else {
            String::new()
        }
    };
    let b = base.copied();
    vec![
        Row {
            metric: "predict, LightGBM's trees (rows/s)".into(),
            candor: rate(p.candor_lgb_trees),
            peer: format!("LightGBM {}", rate(p.lightgbm)),
            ratio: Some(p.candor_lgb_trees / p.lightgbm),
            target: "≥1.5×".into(),
            pass: Some(p.candor_lgb_trees / p.lightgbm >= PREDICT_TARGET),
            note: b.map_or(String::new(), |b| {
                note(
                    slow("Candor", p.candor_lgb_trees, b.candor_lgb_trees),
                    slow("LightGBM", p.lightgbm, b.lightgbm),
                )
            }),
        },
        Row {
            metric: "predict, own trees vs LightGBM's (rows/s)".into(),
            candor: rate(p.candor_own_trees),
            peer: format!("LightGBM {}", rate(p.lightgbm)),
            ratio: Some(p.candor_own_trees / p.lightgbm),
            target: "—".into(),
            pass: None,
            note: "different trees: Candor's model vs LightGBM's".into(),
        },
        Row {
            metric: "predict, own trees vs XGBoost inplace (rows/s)".into(),
            candor: rate(p.candor_own_trees),
            peer: format!("XGBoost {}", rate(p.xgboost)),
            ratio: Some(p.candor_own_trees / p.xgboost),
            target: "—".into(),
            pass: None,
            note: b.map_or(String::new(), |b| {
                note(
                    slow("Candor", p.candor_own_trees, b.candor_own_trees),
                    slow("XGBoost", p.xgboost, b.xgboost),
                )
            }),
        },
    ]
}

fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

/// TreeSHAP on LightGBM's trees, plus the agreement checks. Returns the table rows.
fn shap_all(
    d: &Data,
    dir: &Path,
    peer: &mut Peer,
    cfg: &Config,
    pools: (&ThreadPool, &ThreadPool),
    lgb_trees: &Ensemble,
    own: &Ensemble,
) -> Result<(Vec<Row>, Vec<String>)> {
    let (pool, pool1) = pools;
    let key = d.key;
    let runs = cfg.runs;
    let x = d.test_head(cfg.shap_rows);
    let m = x.len() / d.n_features;
    let mut notes = vec![];

    // Agreement with LightGBM on the same trees.
    peer.call(json!({"op": "contrib", "data": key, "lib": "lightgbm", "rows": m, "dump": true}))?;
    let t = Instant::now();
    lgb_trees.prepare_explanations();
    let prep = t.elapsed().as_secs_f64();
    let t = Instant::now();
    own.prepare_explanations();
    let prep_own = t.elapsed().as_secs_f64();
    let lgb_contrib = read_f64(&dir.join("lightgbm_contrib.f64"))?;
    let ours = pool.install(|| lgb_trees.shap_batch(x));
    if ours.len() != lgb_contrib.len() {
        bail!(
            "contributions: Candor gave {} values, LightGBM {}",
            ours.len(),
            lgb_contrib.len()
        );
    }
    let contrib_diff = max_abs_diff(&ours, &lgb_contrib);
    let lgb_raw = read_f64(&dir.join("lightgbm_raw.f64"))?;
    let raw = pool.install(|| lgb_trees.predict_raw_batch(&d.test_x));
    let raw_diff = max_abs_diff(&raw, &lgb_raw);
    let agree = contrib_diff <= AGREEMENT && raw_diff <= AGREEMENT && raw.len() == lgb_raw.len();
    notes.push(format!(
        "same trees: max |Candor − LightGBM| raw score {raw_diff:.1e} over {} test rows, \
         contributions {contrib_diff:.1e} over {m} rows × {} — {} (limit {AGREEMENT:.0e})",
        group(d.n_test() as f64),
        d.n_features + 1,
        if agree { "OK" } else { "MISMATCH" }
    ));
    notes.push(format!(
        "Candor's one-off TreeSHAP tables (prepare_explanations, not timed below): \
         {prep:.2} s on LightGBM's trees, {prep_own:.2} s on its own"
    ));

    progress!("[{key}] TreeSHAP: LightGBM pred_contrib vs Candor ({m} rows)");
    let shap2 = |t| per_call(t, || pool.install(|| lgb_trees.shap_batch(x)));
    let (c, l) = measure_pair(
        runs,
        |t| {
            peer.seconds(
                json!({"op": "contrib", "data": key, "lib": "lightgbm", "rows": m, "min_secs": t}),
            )
        },
        shap2,
    )?;
    let mut rows = vec![Row {
        metric: "TreeSHAP vs LightGBM pred_contrib (rows/s)".into(),
        candor: rate(rows_per_sec(m, c)),
        peer: rate(rows_per_sec(m, l)),
        ratio: Some(l / c),
        target: "≥2×".into(),
        pass: Some(l / c >= SHAP_TARGET && agree),
        note: "same trees, 2 threads each".into(),
    }];

    progress!("[{key}] TreeSHAP: shap TreeExplainer vs Candor");
    let (c2, s) = measure_pair(
        runs,
        |t| {
            peer.seconds(
                json!({"op": "contrib", "data": key, "lib": "shap", "rows": m, "min_secs": t}),
            )
        },
        shap2,
    )?;
    rows.push(Row {
        metric: "TreeSHAP vs shap.TreeExplainer (rows/s)".into(),
        candor: rate(rows_per_sec(m, c2)),
        peer: rate(rows_per_sec(m, s)),
        ratio: Some(s / c2),
        target: "—".into(),
        pass: None,
        note: "shap hands LightGBM boosters to pred_contrib".into(),
    });

    progress!("[{key}] TreeSHAP: shap's C++ TreeSHAP vs Candor, 1 thread");
    let shap1 = |t| per_call(t, || pool1.install(|| lgb_trees.shap_batch(x)));
    let cext = measure_pair(
        runs,
        |t| {
            peer.seconds(
                json!({"op": "contrib", "data": key, "lib": "shap_cext", "rows": m, "min_secs": t}),
            )
        },
        shap1,
    );
    match cext {
        Ok((c1, s1)) => {
            let check = peer.call(
                json!({"op": "contrib", "data": key, "lib": "shap_cext", "rows": m.min(1000), "check": true}),
            )?;
            let diff = check["max_abs_diff_vs_lightgbm"]
                .as_f64()
                .unwrap_or(f64::NAN);
            let note = if diff <= AGREEMENT {
                format!("shap's own algorithm (1 thread); its max |Δ| vs LightGBM {diff:.1e}")
            } else {
                format!(
                    "shap's own algorithm (1 thread) is WRONG on these trees (max |Δ| vs \
                     LightGBM {diff:.1e}; categorical splits): speed only"
                )
            };
            rows.push(Row {
                metric: "TreeSHAP 1 thread vs shap C++ TreeSHAP".into(),
                candor: rate(rows_per_sec(m, c1)),
                peer: rate(rows_per_sec(m, s1)),
                ratio: Some(s1 / c1),
                target: "—".into(),
                pass: None,
                note,
            });
        }
        Err(e) => rows.push(Row {
            metric: "TreeSHAP 1 thread vs shap C++ TreeSHAP".into(),
            candor: "—".into(),
            peer: "n/a".into(),
            ratio: None,
            target: "—".into(),
            pass: None,
            note: format!("{e:#}"),
        }),
    }

    progress!("[{key}] TreeSHAP: Candor on its own trees");
    let own_secs: Vec<f64> = {
        per_call(0.0, || pool.install(|| own.shap_batch(x)));
        (0..runs)
            .map(|_| per_call(MIN_RUN_SECS, || pool.install(|| own.shap_batch(x))))
            .collect()
    };
    let co = median(&own_secs);
    rows.push(Row {
        metric: "TreeSHAP, own trees vs LightGBM's (rows/s)".into(),
        candor: rate(rows_per_sec(m, co)),
        peer: rate(rows_per_sec(m, l)),
        ratio: Some(l / co),
        target: "—".into(),
        pass: None,
        note: "different trees: Candor's model vs LightGBM pred_contrib".into(),
    });
    if !agree {
        rows.push(Row {
            metric: "agreement with LightGBM (raw, contributions)".into(),
            candor: format!("{raw_diff:.1e}, {contrib_diff:.1e}"),
            peer: "—".into(),
            ratio: None,
            target: format!("≤{AGREEMENT:.0e}"),
            pass: Some(false),
            note: "Candor on LightGBM's trees differs from LightGBM".into(),
        });
    }
    Ok((rows, notes))
}

struct Baseline {
    train: TrainResults,
    predict: Predicted,
    lgb_trees: Ensemble,
}

fn bench_dataset(
    d: &Data,
    root: &Path,
    peer: &mut Peer,
    cfg: &Config,
    pools: (&ThreadPool, &ThreadPool),
    report: &mut Report,
) -> Result<Baseline> {
    let dir = root.join(d.key);
    let train = train_all(d, peer, cfg.runs, true)?;
    peer.call(json!({"op": "save", "data": d.key}))?;
    let path = dir.join("lightgbm.txt");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let imported = load_lightgbm(&text).context("importing LightGBM's model into Candor")?;
    let lgb_trees = imported.ensemble;
    let predict = predict_all(d, peer, cfg.runs, pools.0, &lgb_trees, &train.model)?;
    let (shap_rows, notes) = shap_all(d, &dir, peer, cfg, pools, &lgb_trees, &train.model)?;
    let mut rows = train_rows(&train, None);
    rows.extend(predict_rows(&predict, None));
    rows.extend(shap_rows);
    report.table(d.key, &d.title, &rows);
    for n in notes {
        report.line(&format!("  {n}"));
    }
    Ok(Baseline {
        train,
        predict,
        lgb_trees,
    })
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

fn main() {
    if let Err(e) = try_main() {
        eprintln!("bench/scoring: {e:#}");
        std::process::exit(2);
    }
}

fn try_main() -> Result<()> {
    started();
    let cfg = Config::from_env()?;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(THREADS)
        .build()?;
    let pool1 = rayon::ThreadPoolBuilder::new().num_threads(1).build()?;
    let tmp = TempDir::new()?;
    let mut report = Report { misses: vec![] };

    progress!("generating {} synthetic rows", group(cfg.rows as f64));
    let mut datasets = vec![synthetic(cfg.rows)];
    if !cfg.skip_bank {
        datasets.push(bank(&cfg.bank_csv)?);
    }
    for d in &datasets {
        d.write(&tmp.0)?;
    }
    let mut peer = Peer::start(&cfg, &tmp.0)?;
    let versions = peer.call(json!({"op": "versions", "data": "synthetic"}))?;

    report.line("bench/scoring: Candor (candor-ml) vs LightGBM, XGBoost and shap — one run, same data, same model size");
    report.line(&format!(
        "machine: {} cores ({}), {}; all trainers and predictors at {THREADS} threads",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        cpu_model(),
        std::env::consts::ARCH
    ));
    report.line(&format!(
        "peers: python {}, numpy {}, lightgbm {}, xgboost {}, shap {} ({})",
        versions["python"].as_str().unwrap_or("?"),
        versions["numpy"].as_str().unwrap_or("?"),
        versions["lightgbm"].as_str().unwrap_or("?"),
        versions["xgboost"].as_str().unwrap_or("?"),
        versions["shap"].as_str().unwrap_or("?"),
        cfg.python.display()
    ));
    let p = datasets[0].params(100);
    report.line(&format!(
        "Candor GbdtParams: num_trees {}, num_leaves {}, learning_rate {}, max_bin {}, min_data_in_leaf {}, \
         min_sum_hessian_in_leaf {}, lambda_l2 {}, max_depth {} (none), threads {}, seed {}; categorical: \
         max_cat_to_onehot {}, cat_smooth {}, cat_l2 {}, max_cat_threshold {}, min_data_per_group {}",
        p.num_trees,
        p.num_leaves,
        p.learning_rate,
        p.max_bin,
        p.min_data_in_leaf,
        p.min_sum_hessian_in_leaf,
        p.lambda_l2,
        p.max_depth,
        p.threads,
        p.seed,
        p.max_cat_to_onehot,
        p.cat_smooth,
        p.cat_l2,
        p.max_cat_threshold,
        p.min_data_per_group
    ));
    report.line(&format!(
        "LightGBM: {} + categorical_feature = Candor's categorical columns; 100 rounds",
        versions["lightgbm_params"]
    ));
    report.line(&format!(
        "XGBoost: {} + QuantileDMatrix, feature_types 'c' with enable_categorical for Candor's categorical columns; 100 rounds",
        versions["xgboost_params"]
    ));
    report.line(&format!(
        "protocol: median of {} runs after a warm-up (training warm-up: {WARMUP_TREES} trees), peer and Candor \
         alternating; training timed from in-memory float64 rows to a model (binning included); prediction and \
         SHAP calls repeated until a run lasts ≥ {MIN_RUN_SECS} s; TreeSHAP on the first {} test rows",
        cfg.runs,
        group(cfg.shap_rows as f64)
    ));
    report.line("ratios: > 1 means Candor is better (training: peer time ÷ Candor time; rows/s: Candor ÷ peer)");
    report.line(&format!(
        "targets: training ≤ 1.5× LightGBM's time (ratio ≥ 0.67) with test AUC ≥ LightGBM's − {AUC_TOLERANCE}; \
         prediction ≥ {PREDICT_TARGET}× LightGBM's rows/s; TreeSHAP ≥ {SHAP_TARGET}× LightGBM pred_contrib rows/s, \
         on the same trees"
    ));

    let mut baselines = vec![];
    for d in &datasets {
        baselines.push(bench_dataset(
            d,
            &tmp.0,
            &mut peer,
            &cfg,
            (&pool, &pool1),
            &mut report,
        )?);
    }

    if !cfg.skip_load {
        progress!("co-tenant: starting a busy loop on one core");
        let busy = CoTenant::start(&cfg.python)?;
        for (d, base) in datasets.iter().zip(&baselines) {
            let train = train_all(d, &mut peer, cfg.runs, false)?;
            let predict = predict_all(
                d,
                &mut peer,
                cfg.runs,
                &pool,
                &base.lgb_trees,
                &base.train.model,
            )?;
            let mut rows = train_rows(&train, Some(&base.train));
            rows.extend(predict_rows(&predict, Some(&base.predict)));
            report.table(
                &format!("{}, one core busy", d.key),
                &format!(
                    "{} — with one core busy (a busy-loop process); note ×k = time with it ÷ time without",
                    d.key
                ),
                &rows,
            );
        }
        drop(busy);
    }

    report.line("");
    if report.misses.is_empty() {
        report.line("all targets met");
    } else {
        report.line(&format!("targets missed: {}", report.misses.len()));
        for m in report.misses.clone() {
            report.line(&format!("  - {m}"));
        }
    }
    drop(peer);
    if !report.misses.is_empty() && env_flag("BENCH_STRICT") {
        std::process::exit(1);
    }
    Ok(())
}
