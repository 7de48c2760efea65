//! `candor train`, `candor score`, `candor explain`, `candor models …`, `candor features export`.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use candor_app::{App, LEAD_MODEL, TrainRequest};
use candor_ml::gbdt::GbdtParams;
use candor_ml::lead::{CalibrationMethod, Direction, TrainOptions, top_reasons};
use candor_ml::table::{RawTable, read_csv};
use candor_types::Timestamp;
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

#[derive(Args, Debug)]
pub struct TrainArgs {
    /// CSV file (`,` `;` or tab separated, optional UTF-8 BOM).
    #[arg(long)]
    pub data: PathBuf,
    /// Outcome column (yes/no, true/false or 1/0, or any values with --positive).
    #[arg(long)]
    pub target: String,
    /// The target value that counts as the outcome, e.g. `--positive 2`.
    #[arg(long)]
    pub positive: Option<String>,
    /// Protected attributes: never features, kept for fairness audits.
    #[arg(long, value_delimiter = ',')]
    pub protected: Vec<String>,
    /// Columns never used (for instance ones known only after the outcome).
    #[arg(long, value_delimiter = ',')]
    pub exclude: Vec<String>,
    /// Use exactly these columns as features.
    #[arg(long, value_delimiter = ',')]
    pub features: Option<Vec<String>>,
    /// Column with the store's user id: rows of people who do not allow profiling are dropped.
    #[arg(long)]
    pub subject_column: Option<String>,
    #[arg(long, default_value = "default")]
    pub tenant: String,
    #[arg(long, default_value_t = 100)]
    pub trees: usize,
    #[arg(long, default_value_t = 31)]
    pub leaves: usize,
    #[arg(long, default_value_t = 0.1)]
    pub learning_rate: f64,
    /// Hold out every Nth row (5 = rows 5, 10, 15, … = 20%) for metrics and calibration; 0 = none.
    #[arg(long, default_value_t = 5)]
    pub holdout_every: usize,
    /// Monotone constraints, e.g. `balance:+1,campaign:-1`.
    #[arg(long)]
    pub monotone: Option<String>,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Worker threads (0 = one per core).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// platt, isotonic or none.
    #[arg(long, default_value = "platt")]
    pub calibration: String,
    /// What the outcome means in time, e.g. "orders within 30 days" (shown with every score).
    #[arg(long)]
    pub horizon: Option<String>,
    /// Mitigate bias by reweighing rows over the --protected columns (Kamiran & Calders); an
    /// unweighted model is trained too and both are audited on the holdout (before/after).
    #[arg(long)]
    pub reweigh: bool,
    /// The score at which the before/after audits of --reweigh count a lead as selected.
    #[arg(long, default_value_t = 0.5)]
    pub audit_threshold: f64,
    /// Print the report as JSON (the version still ends stdout on its own line).
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct ScoreArgs {
    #[arg(long)]
    pub model: i64,
    #[arg(long)]
    pub data: PathBuf,
    /// Output CSV: the input rows in order plus `probability`, `tier`, `reasons`.
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, default_value = "default")]
    pub tenant: String,
}

#[derive(Args, Debug)]
pub struct ExplainArgs {
    #[arg(long)]
    pub model: i64,
    #[arg(long)]
    pub data: PathBuf,
    /// Data row to explain, counted from 1 (the header is not a row).
    #[arg(long, default_value_t = 1)]
    pub row: usize,
    #[arg(long, default_value = "default")]
    pub tenant: String,
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
pub enum ModelsCommand {
    /// List model versions.
    List {
        #[arg(long, default_value = "default")]
        tenant: String,
    },
    /// Show a model's card and lifecycle as JSON.
    Show {
        version: i64,
        #[arg(long, default_value = "default")]
        tenant: String,
    },
    /// Write the model card as HTML (with charts) to a file.
    Card {
        version: i64,
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value = "default")]
        tenant: String,
    },
    /// approve / activate / retire a model, with a reason kept in the audit log. Approving and
    /// activating need a passed (or overridden) fairness audit.
    #[command(name = "approve")]
    Approve(TransitionArgs),
    /// Record an admin's override of the model's failed fairness audit, with a reason (kept
    /// in the audit log and shown on the model card).
    Override(TransitionArgs),
    /// The model's fairness audits, newest first, as JSON.
    Audits {
        version: i64,
        /// validation or monitoring (default: both).
        #[arg(long)]
        kind: Option<String>,
        #[arg(long, default_value = "default")]
        tenant: String,
    },
    Activate(TransitionArgs),
    Retire(TransitionArgs),
    /// Register a model trained elsewhere (LightGBM text file or XGBoost JSON) as a draft;
    /// prints its version alone on the last line.
    Import {
        file: PathBuf,
        /// lightgbm or xgboost (default: JSON files are XGBoost, others LightGBM).
        #[arg(long)]
        format: Option<String>,
        #[arg(long)]
        horizon: Option<String>,
        #[arg(long, default_value = "default")]
        tenant: String,
    },
}

#[derive(Args, Debug)]
pub struct TransitionArgs {
    pub version: i64,
    #[arg(long)]
    pub reason: String,
    #[arg(long, default_value = "default")]
    pub tenant: String,
}

#[derive(Subcommand, Debug)]
pub enum FeaturesCommand {
    /// Write event features of every subject who allows profiling, as of a date, with the
    /// outcome (did `--label-event` happen within `--horizon-days` after it), as a training CSV.
    Export {
        #[arg(long)]
        out: PathBuf,
        /// RFC 3339 time or YYYY-MM-DD; default: now minus the horizon.
        #[arg(long)]
        as_of: Option<String>,
        #[arg(long, default_value = "Order Completed")]
        label_event: String,
        #[arg(long, default_value_t = 30)]
        horizon_days: u32,
        #[arg(long, default_value = "default")]
        tenant: String,
    },
}

pub(crate) fn read_table(path: &Path) -> Result<RawTable> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    read_csv(&bytes).map_err(|e| anyhow::anyhow!("{}: {e} [{}]", path.display(), e.code()))
}

fn parse_monotone(spec: &str, columns: &[String]) -> Result<Vec<(String, i8)>> {
    let mut out = Vec::new();
    for part in spec.split(',').filter(|p| !p.trim().is_empty()) {
        let (col, dir) = part
            .rsplit_once(':')
            .context("monotone entries look like `column:+1`")?;
        let d: i8 = match dir.trim() {
            "+1" | "1" | "+" | "increasing" => 1,
            "-1" | "-" | "decreasing" => -1,
            other => bail!("monotone direction {other:?} must be +1 or -1"),
        };
        if !columns.iter().any(|c| c == col.trim()) {
            bail!("monotone column {:?} is not in the file", col.trim());
        }
        out.push((col.trim().to_string(), d));
    }
    Ok(out)
}

pub(crate) fn progress(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} {elapsed}") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what.to_string());
    bar
}

pub async fn train(app: &App, args: &TrainArgs) -> Result<i32> {
    let tenant = app.find_tenant(&args.tenant).await?;
    let table = read_table(&args.data)?;
    let calibration = match args.calibration.as_str() {
        "platt" => CalibrationMethod::Platt,
        "isotonic" => CalibrationMethod::Isotonic,
        "none" => CalibrationMethod::None,
        other => bail!("--calibration {other:?}: use platt, isotonic or none"),
    };
    let monotone = match &args.monotone {
        Some(spec) => parse_monotone(spec, &table.headers)?,
        None => vec![],
    };
    let mut gbdt = GbdtParams {
        num_trees: args.trees,
        num_leaves: args.leaves,
        learning_rate: args.learning_rate,
        seed: args.seed,
        threads: args.threads,
        ..GbdtParams::default()
    };
    // Monotone constraints are given by column; the feature order is known after the schema.
    if !monotone.is_empty() {
        let sel_exclude = &args.exclude;
        let cols: Vec<&String> = table
            .headers
            .iter()
            .filter(|h| {
                **h != args.target && !sel_exclude.contains(h) && !args.protected.contains(h)
            })
            .filter(|h| args.features.as_ref().is_none_or(|f| f.contains(h)))
            .filter(|h| args.subject_column.as_ref() != Some(h))
            .collect();
        gbdt.monotone = cols
            .iter()
            .map(|c| {
                monotone
                    .iter()
                    .find(|(m, _)| m == *c)
                    .map_or(0, |(_, d)| *d)
            })
            .collect();
    }
    let req = TrainRequest {
        target: args.target.clone(),
        exclude: args.exclude.clone(),
        protected: args.protected.clone(),
        features: args.features.clone(),
        subject_column: args.subject_column.clone(),
        options: TrainOptions {
            gbdt,
            holdout_every: args.holdout_every,
            calibration,
            ..TrainOptions::default()
        },
        source: args
            .data
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default(),
        horizon: args.horizon.clone(),
        positive: args.positive.clone(),
        reweigh: args.reweigh,
        audit_threshold: args.audit_threshold,
    };
    let bar = progress(args.trees as u64, "training");
    let b = bar.clone();
    let trained = app
        .train_lead_model(tenant.id, "cli", table, req, &mut move |r| {
            b.set_position(r.index as u64)
        })
        .await;
    bar.finish_and_clear();
    let trained = trained.map_err(|e| anyhow::anyhow!("{} [{}]", e.message, e.code))?;
    let r = &trained.result;
    let mut out = std::io::stdout().lock();
    if args.json {
        let mut v = serde_json::to_value(r)?;
        if let Some(o) = v.as_object_mut() {
            o.remove("model");
            o.insert("version".into(), trained.version.into());
            o.insert("digest".into(), trained.digest.clone().into());
            o.insert(
                "dropped_without_profiling_consent".into(),
                trained.dropped_without_consent.into(),
            );
        }
        writeln!(out, "{v}")?;
    } else {
        writeln!(
            out,
            "Lead-scoring model (draft) trained on {}",
            args.data.display()
        )?;
        writeln!(
            out,
            "  rows {} ({} positive), trained on {}, held out {} ({})",
            r.data.rows,
            r.data.positives,
            r.data.train_rows,
            r.data.holdout_rows,
            r.data.holdout_rule
        )?;
        if trained.dropped_without_consent > 0 {
            writeln!(
                out,
                "  rows dropped (no profiling consent): {}",
                trained.dropped_without_consent
            )?;
        }
        writeln!(
            out,
            "  features ({}): {}",
            r.data.features,
            r.data.columns_used.join(", ")
        )?;
        if !r.data.protected.is_empty() {
            writeln!(
                out,
                "  protected (not features): {}",
                r.data.protected.join(", ")
            )?;
        }
        if !r.data.excluded.is_empty() {
            writeln!(out, "  excluded: {}", r.data.excluded.join(", "))?;
        }
        writeln!(out, "  trees {}", r.trees)?;
        for (name, m) in [
            ("gradient-boosted trees", &r.holdout),
            ("logistic regression (baseline)", &r.baseline),
        ] {
            if let Some(m) = m {
                writeln!(
                    out,
                    "  holdout {name}: AUC {:.4}  log-loss {:.4}  Brier {:.4}  calibration error {:.4}",
                    m.auc.unwrap_or(f64::NAN),
                    m.log_loss,
                    m.brier,
                    m.calibration_error
                )?;
            }
        }
        if !r.importance.is_empty() {
            let top: Vec<String> = r
                .importance
                .iter()
                .take(5)
                .map(|(n, v)| format!("{n} ({v:.3})"))
                .collect();
            writeln!(out, "  strongest factors (mean |SHAP|): {}", top.join(", "))?;
        }
        if let Some(m) = trained.mitigation.as_ref() {
            for (when, v) in [("before", &m["before"]), ("after", &m["after"])] {
                let attrs: Vec<String> = v["attributes"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|a| {
                        format!(
                            "{} selection ratio {}",
                            a["attribute"].as_str().unwrap_or(""),
                            a["selection_rate_ratio"]
                                .as_f64()
                                .map_or("-".into(), |x| format!("{x:.3}"))
                        )
                    })
                    .collect();
                writeln!(
                    out,
                    "  reweighing {when}: holdout AUC {}, {}",
                    v["holdout_auc"]
                        .as_f64()
                        .map_or("-".into(), |x| format!("{x:.4}")),
                    attrs.join(", ")
                )?;
            }
        }
        writeln!(
            out,
            "  next: candor audit --model {} --data FILE --target COL --protected COLS, then \
             candor models approve {} --reason \"…\" && candor models activate {} --reason \"…\"",
            trained.version, trained.version, trained.version
        )?;
    }
    writeln!(out, "{}", trained.version)?;
    Ok(0)
}

fn reasons_text(reasons: &[candor_ml::lead::Reason]) -> String {
    let (up, down) = top_reasons(reasons, 3);
    let mut parts = Vec::new();
    if !up.is_empty() {
        parts.push(format!(
            "raises: {}",
            up.iter()
                .map(|r| r.statement.as_str())
                .collect::<Vec<_>>()
                .join("; ")
        ));
    }
    if !down.is_empty() {
        parts.push(format!(
            "lowers: {}",
            down.iter()
                .map(|r| r.statement.as_str())
                .collect::<Vec<_>>()
                .join("; ")
        ));
    }
    parts.join(" | ")
}

pub async fn score(app: &App, args: &ScoreArgs) -> Result<i32> {
    let tenant = app.find_tenant(&args.tenant).await?;
    let (row, art) = app
        .lead_artifact(tenant.id, args.model)
        .await
        .map_err(|e| anyhow::anyhow!("{} [{}]", e.message, e.code))?;
    if row.status != "active" && row.status != "approved" {
        eprintln!(
            "note: model {} is {}; scores of files are for evaluation, not for decisions about people",
            row.version, row.status
        );
    }
    let table = read_table(&args.data)?;
    let model = &art.model;
    let x = model
        .schema
        .encode(&table)
        .map_err(|e| anyhow::anyhow!("{}: {e} [{}]", args.data.display(), e.code()))?;
    let nf = model.n_features();
    let n = table.rows.len();
    let bar = progress(n as u64, "scoring");
    let tmp = args.out.with_extension("partial");
    {
        let file =
            std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        let mut w = csv::Writer::from_writer(std::io::BufWriter::new(file));
        let mut header = table.headers.clone();
        header.extend(["probability", "tier", "reasons"].map(String::from));
        w.write_record(&header)?;
        for (chunk_start, chunk) in (0..n).collect::<Vec<_>>().chunks(4096).map(|c| (c[0], c)) {
            let rows = &x[chunk_start * nf..(chunk_start + chunk.len()) * nf];
            let scored: Vec<_> = tokio::task::block_in_place(|| {
                use rayon::prelude::*;
                rows.par_chunks(nf)
                    .map(|r| model.score_row(r))
                    .collect::<Result<Vec<_>, _>>()
            })
            .map_err(|e| anyhow::anyhow!("{e} [{}]", e.code()))?;
            for (i, s) in chunk.iter().zip(scored) {
                let mut rec = table.rows[*i].clone();
                rec.push(format!("{:.6}", s.probability));
                rec.push(s.tier.to_string());
                rec.push(reasons_text(&s.reasons));
                w.write_record(&rec)?;
            }
            bar.inc(chunk.len() as u64);
        }
        w.flush()?;
    }
    std::fs::rename(&tmp, &args.out).with_context(|| format!("writing {}", args.out.display()))?;
    bar.finish_and_clear();
    eprintln!(
        "scored {n} rows with model {} → {}",
        row.version,
        args.out.display()
    );
    Ok(0)
}

pub async fn explain(app: &App, args: &ExplainArgs) -> Result<i32> {
    let tenant = app.find_tenant(&args.tenant).await?;
    let (row, art) = app
        .lead_artifact(tenant.id, args.model)
        .await
        .map_err(|e| anyhow::anyhow!("{} [{}]", e.message, e.code))?;
    let table = read_table(&args.data)?;
    if args.row == 0 || args.row > table.rows.len() {
        bail!("--row must be between 1 and {}", table.rows.len());
    }
    let one = RawTable {
        headers: table.headers.clone(),
        rows: vec![table.rows[args.row - 1].clone()],
        delimiter: table.delimiter,
    };
    let model = &art.model;
    let x = model
        .schema
        .encode(&one)
        .map_err(|e| anyhow::anyhow!("{e} [{}]", e.code()))?;
    let s = model
        .score_row(&x)
        .map_err(|e| anyhow::anyhow!("{e} [{}]", e.code()))?;
    let sum: f64 = s.base_value + s.contributions.iter().sum::<f64>();
    if args.json {
        let v = serde_json::json!({
            "model": row.version, "row": args.row, "probability": s.probability, "tier": s.tier.to_string(),
            "raw": s.raw, "base_value": s.base_value, "horizon": art.horizon,
            "contributions": model.schema.features.iter().zip(&s.contributions).zip(&x).map(|((f, c), v)| serde_json::json!({"feature": f.name, "value": v.is_finite().then_some(*v), "contribution": c})).collect::<Vec<_>>(),
            "reasons": s.reasons,
        });
        println!("{v}");
        return Ok(0);
    }
    println!(
        "row {} — model {} ({}): probability {:.3}, tier {}",
        args.row, row.version, art.horizon, s.probability, s.tier
    );
    println!(
        "base value {:+.4} + contributions = raw score {:+.4} (check {:+.4})",
        s.base_value, s.raw, sum
    );
    for r in &s.reasons {
        let arrow = if r.direction == Direction::Raises {
            "raises"
        } else {
            "lowers"
        };
        println!("  {arrow} {:+.4}  {}", r.contribution, r.statement);
    }
    Ok(0)
}

pub async fn models(app: &App, cmd: &ModelsCommand) -> Result<i32> {
    let err = |e: candor_app::AppError| anyhow::anyhow!("{} [{}]", e.message, e.code);
    match cmd {
        ModelsCommand::List { tenant } => {
            let t = app.find_tenant(tenant).await?;
            use candor_store::Store as _;
            for m in app.store().list_models(t.id).await? {
                let auc = m.card.pointer("/holdout/auc").and_then(|v| v.as_f64());
                println!(
                    "{}\t{}\t{}\t{}\tAUC {}",
                    m.version,
                    m.name,
                    m.status,
                    m.created_at,
                    auc.map_or("-".into(), |a| format!("{a:.4}"))
                );
            }
        }
        ModelsCommand::Show { version, tenant } => {
            let t = app.find_tenant(tenant).await?;
            let v = app.model_view(t.id, *version).await.map_err(err)?;
            println!("{}", serde_json::to_string_pretty(&v)?);
        }
        ModelsCommand::Card {
            version,
            out,
            tenant,
        } => {
            let t = app.find_tenant(tenant).await?;
            let v = app.model_view(t.id, *version).await.map_err(err)?;
            std::fs::write(out, candor_app::model_card_html(&v))
                .with_context(|| format!("writing {}", out.display()))?;
            eprintln!("model card of version {version} → {}", out.display());
        }
        ModelsCommand::Import {
            file,
            format,
            horizon,
            tenant,
        } => {
            let t = app.find_tenant(tenant).await?;
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("reading {}", file.display()))?;
            let format = match format {
                Some(f) => f.clone(),
                None if text.trim_start().starts_with('{') => "xgboost".into(),
                None => "lightgbm".into(),
            };
            let source = file
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default();
            let m = app
                .import_lead_model(t.id, "cli", &text, &format, &source, horizon.clone())
                .await
                .map_err(err)?;
            eprintln!(
                "imported {} trees over {} features as draft model {}",
                m.result.trees, m.result.data.features, m.version
            );
            println!("{}", m.version);
        }
        ModelsCommand::Override(a) => {
            let t = app.find_tenant(&a.tenant).await?;
            let v = app
                .override_fairness(t.id, "cli", a.version, &a.reason)
                .await
                .map_err(err)?;
            println!(
                "fairness audit of model {} overridden; the model is {}",
                v.row.version, v.row.status
            );
        }
        ModelsCommand::Audits {
            version,
            kind,
            tenant,
        } => {
            let t = app.find_tenant(tenant).await?;
            let list = app
                .model_audits(t.id, *version, kind.as_deref(), 100)
                .await
                .map_err(err)?;
            println!("{}", serde_json::to_string_pretty(&list)?);
        }
        ModelsCommand::Approve(a) | ModelsCommand::Activate(a) | ModelsCommand::Retire(a) => {
            let action = match cmd {
                ModelsCommand::Approve(_) => "approve",
                ModelsCommand::Activate(_) => "activate",
                _ => "retire",
            };
            let t = app.find_tenant(&a.tenant).await?;
            let v = app
                .transition_model(t.id, "cli", a.version, action, &a.reason)
                .await
                .map_err(err)?;
            println!("model {} is {}", v.row.version, v.row.status);
        }
    }
    Ok(0)
}

pub async fn features(app: &App, cmd: &FeaturesCommand) -> Result<i32> {
    let FeaturesCommand::Export {
        out,
        as_of,
        label_event,
        horizon_days,
        tenant,
    } = cmd;
    let t = app.find_tenant(tenant).await?;
    let now = app.clock().now();
    let horizon_ms = i64::from(*horizon_days) * 86_400_000;
    let as_of = match as_of {
        Some(s) => parse_time(s)?,
        None => Timestamp(now.0 - horizon_ms),
    };
    let export = app
        .export_event_features(t.id, "cli", as_of, label_event, *horizon_days)
        .await
        .map_err(|e| anyhow::anyhow!("{} [{}]", e.message, e.code))?;
    let mut w =
        csv::Writer::from_path(out).with_context(|| format!("creating {}", out.display()))?;
    w.write_record(&export.headers)?;
    for r in &export.rows {
        w.write_record(r)?;
    }
    w.flush()?;
    eprintln!(
        "{} subjects exported ({} without a profiling grant left out, {} labels corrected by contest reviews) → {}; train with: candor train --data {} --target label --subject-column subject_id",
        export.rows.len(),
        export.skipped,
        export.relabelled,
        out.display(),
        out.display()
    );
    let _ = LEAD_MODEL;
    Ok(0)
}

pub(crate) fn parse_time(s: &str) -> Result<Timestamp> {
    if let Ok(ts) = s.parse::<jiff::Timestamp>() {
        return Ok(Timestamp(ts.as_millisecond()));
    }
    let d: jiff::civil::Date = s
        .parse()
        .with_context(|| format!("{s:?} is not a date (YYYY-MM-DD) or RFC 3339 time"))?;
    let ts = d
        .to_zoned(jiff::tz::TimeZone::UTC)
        .context("date out of range")?
        .timestamp();
    Ok(Timestamp(ts.as_millisecond()))
}
