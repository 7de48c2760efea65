//! `candor recs train | recommend | evaluate | exposure`: recommendations from purchase lines,
//! and the exposure audit of the lists served.

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use candor_app::App;
use candor_app::recs::{OrderColumns, evaluate, evaluation_html, order_lines};
use candor_ml::recs::AlsParams;
use candor_ml::table::{RawTable, read_csv};
use clap::{Args, Subcommand};
use indicatif::ProgressBar;

#[derive(Args, Debug, Clone)]
pub struct Columns {
    #[arg(long, default_value = "CustomerID")]
    pub user_column: String,
    #[arg(long, default_value = "StockCode")]
    pub item_column: String,
    #[arg(long, default_value = "Description")]
    pub name_column: String,
    /// Product category (sensitive categories are never personalized); none by default.
    #[arg(long)]
    pub category_column: Option<String>,
    #[arg(long, default_value = "InvoiceDate")]
    pub time_column: String,
    #[arg(long, default_value = "Quantity")]
    pub quantity_column: String,
    /// Rows whose invoice starts with `C` are cancellations.
    #[arg(long, default_value = "InvoiceNo")]
    pub invoice_column: String,
    /// Customer segment for evaluation.
    #[arg(long, default_value = "Country")]
    pub segment_column: String,
}

impl Columns {
    fn to_order_columns(&self, headers: &[String]) -> OrderColumns {
        let has = |c: &str| headers.iter().any(|h| h == c).then(|| c.to_string());
        OrderColumns {
            user: self.user_column.clone(),
            item: self.item_column.clone(),
            name: has(&self.name_column),
            category: self.category_column.clone(),
            time: self.time_column.clone(),
            quantity: has(&self.quantity_column),
            invoice: has(&self.invoice_column),
            segment: has(&self.segment_column),
        }
    }
}

#[derive(Args, Debug, Clone)]
pub struct AlsArgs {
    #[arg(long, default_value_t = 64)]
    pub factors: usize,
    #[arg(long, default_value_t = 15)]
    pub iterations: usize,
    #[arg(long, default_value_t = 0.01)]
    pub regularization: f32,
    #[arg(long, default_value_t = 1.0)]
    pub alpha: f32,
}

impl AlsArgs {
    fn params(&self) -> AlsParams {
        AlsParams {
            factors: self.factors,
            iterations: self.iterations,
            regularization: self.regularization,
            alpha: self.alpha,
            ..AlsParams::default()
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum RecsCommand {
    /// Train on purchase lines (CSV, or .csv.gz) or on the events Candor holds, up to a date;
    /// prints the model version alone on the last line. Only people who allow personalization
    /// get factors.
    Train {
        /// Order lines; without it, interactions come from events (Product Viewed 1, Product
        /// Added 3, Order Completed 5, halved every 90 days).
        #[arg(long, required_unless_present = "from_events")]
        data: Option<PathBuf>,
        #[arg(long)]
        from_events: bool,
        /// Lines before this date (YYYY-MM-DD or RFC 3339) only.
        #[arg(long)]
        until: Option<String>,
        #[command(flatten)]
        columns: Columns,
        #[command(flatten)]
        als: AlsArgs,
        #[arg(long, default_value = "default")]
        tenant: String,
    },
    /// Top-k for every person with factors: CSV with columns user, item, rank, reason.
    Recommend {
        #[arg(long)]
        model: i64,
        #[arg(long, default_value_t = 10)]
        k: usize,
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value = "default")]
        tenant: String,
    },
    /// Offline evaluation with a temporal split: ALS, item-to-item and popularity, overall
    /// and per segment (HTML and JSON).
    Evaluate {
        #[arg(long)]
        data: PathBuf,
        #[arg(long)]
        split_date: String,
        #[arg(long, default_value_t = 10)]
        k: usize,
        #[command(flatten)]
        columns: Columns,
        #[command(flatten)]
        als: AlsArgs,
        #[arg(long)]
        json: Option<PathBuf>,
        #[arg(long)]
        html: Option<PathBuf>,
    },
    /// Exposure audit of the personalized lists served in a period (who gets seen), beside
    /// the unpersonalized list (HTML and JSON).
    Exposure {
        /// Start of the period (YYYY-MM-DD or RFC 3339).
        #[arg(long)]
        from: String,
        /// End of the period (default: now).
        #[arg(long)]
        to: Option<String>,
        #[arg(long)]
        json: Option<PathBuf>,
        #[arg(long)]
        html: Option<PathBuf>,
        #[arg(long, default_value = "default")]
        tenant: String,
    },
}

/// A CSV file, gunzipped when it is gzip.
pub(crate) fn read_lines_file(path: &Path) -> Result<RawTable> {
    let raw = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let bytes = if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .with_context(|| format!("{}: not a readable gzip file", path.display()))?;
        out
    } else {
        raw
    };
    read_csv(&bytes).map_err(|e| anyhow::anyhow!("{}: {e} [{}]", path.display(), e.code()))
}

fn app_err(e: candor_app::AppError) -> anyhow::Error {
    anyhow::anyhow!("{} [{}]", e.message, e.code)
}

pub async fn run(app: &App, cmd: &RecsCommand) -> Result<i32> {
    match cmd {
        RecsCommand::Train {
            data,
            from_events: _,
            until,
            columns,
            als,
            tenant,
        } => {
            let t = app.find_tenant(tenant).await?;
            let (lines, skipped, source) = match data {
                Some(path) => {
                    let table = read_lines_file(path)?;
                    let (lines, skipped) =
                        order_lines(&table, &columns.to_order_columns(&table.headers))
                            .map_err(app_err)?;
                    let name = path
                        .file_name()
                        .map(|f| f.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    (lines, skipped, name)
                }
                None => (
                    app.event_interactions(t.id, &candor_app::recs::EventWeights::default())
                        .await
                        .map_err(app_err)?,
                    0,
                    "events".to_string(),
                ),
            };
            let until = until.as_deref().map(crate::ml::parse_time).transpose()?;
            let bar = ProgressBar::new_spinner();
            bar.set_message(format!("training on {} purchase lines", lines.len()));
            bar.enable_steady_tick(std::time::Duration::from_millis(120));
            let trained = app
                .train_recs(t.id, "cli", &lines, skipped, until, &als.params(), &source)
                .await;
            bar.finish_and_clear();
            let r = trained.map_err(app_err)?;
            let mut out = std::io::stdout().lock();
            writeln!(
                out,
                "Recommendation model trained on {} interactions ({} skipped) from {}: {} items, {} people, {} with factors (they allow personalization), {} unpersonalized, {} sensitive items never personalized",
                r.lines,
                r.skipped_lines,
                source,
                r.items,
                r.people,
                r.personalized,
                r.without_consent,
                r.sensitive_items
            )?;
            writeln!(out, "{}", r.version)?;
        }
        RecsCommand::Recommend {
            model,
            k,
            out,
            tenant,
        } => {
            let t = app.find_tenant(tenant).await?;
            let lists = app.recommend_all(t.id, *model, *k).await.map_err(app_err)?;
            let mut w = csv::Writer::from_path(out)
                .with_context(|| format!("creating {}", out.display()))?;
            w.write_record(["user", "item", "rank", "reason"])?;
            for (subject, items) in &lists {
                for (rank, it) in items.iter().enumerate() {
                    w.write_record([
                        subject.to_string(),
                        it.item.clone(),
                        (rank + 1).to_string(),
                        it.reason.clone(),
                    ])?;
                }
            }
            w.flush()?;
            eprintln!("{} people → {}", lists.len(), out.display());
        }
        RecsCommand::Evaluate { .. } => return evaluate_cmd(cmd),
        RecsCommand::Exposure {
            from,
            to,
            json,
            html,
            tenant,
        } => {
            let t = app.find_tenant(tenant).await?;
            let from = crate::ml::parse_time(from)?;
            let to = match to {
                Some(s) => crate::ml::parse_time(s)?,
                None => app.clock().now(),
            };
            let r = app
                .recs_exposure(t.id, "cli", from, to)
                .await
                .map_err(app_err)?;
            if let Some(p) = json {
                std::fs::write(p, serde_json::to_vec_pretty(&r)?)
                    .with_context(|| format!("writing {}", p.display()))?;
            }
            if let Some(p) = html {
                std::fs::write(p, candor_app::recs::served_exposure_html(&r))
                    .with_context(|| format!("writing {}", p.display()))?;
            }
            println!(
                "model {}: {} lists audited ({} other versions, {} erased, {} not readable)",
                r.model_version, r.lists, r.other_models, r.erased, r.unreadable
            );
            println!("audience\tcatalog shown\tGini\thead demand\thead exposure");
            for (name, e) in &r.exposure {
                println!(
                    "{name}\t{:.3}\t{:.3}\t{:.3}\t{:.3}",
                    e.coverage, e.gini, e.head_demand_share, e.head_exposure_share
                );
            }
        }
    }
    Ok(0)
}

/// `candor recs evaluate`: offline, on a file.
pub fn evaluate_cmd(cmd: &RecsCommand) -> Result<i32> {
    let RecsCommand::Evaluate {
        data,
        split_date,
        k,
        columns,
        als,
        json,
        html,
    } = cmd
    else {
        bail!("not an evaluation");
    };
    {
        let table = read_lines_file(data)?;
        let (lines, _) =
            order_lines(&table, &columns.to_order_columns(&table.headers)).map_err(app_err)?;
        let split = crate::ml::parse_time(split_date)?;
        if *k == 0 || *k > 100 {
            bail!("--k must be between 1 and 100");
        }
        let bar = ProgressBar::new_spinner();
        bar.set_message("training and evaluating ALS, item-to-item and popularity");
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
        let e = evaluate(&lines, split, *k, &als.params());
        bar.finish_and_clear();
        let e = e.map_err(app_err)?;
        if let Some(p) = json {
            std::fs::write(p, serde_json::to_vec_pretty(&e)?)?;
        }
        if let Some(p) = html {
            std::fs::write(p, evaluation_html(&e))?;
        }
        println!(
            "model\tcustomers\tprecision@{k}\trecall@{k}\tNDCG@{k}\tMAP@{k}\tcoverage\tmean popularity"
        );
        for (name, m) in &e.models {
            println!(
                "{name}\t{}\t{:.4}\t{:.4}\t{:.4}\t{:.4}\t{:.3}\t{:.5}",
                m.users, m.precision, m.recall, m.ndcg, m.map, m.coverage, m.mean_popularity
            );
        }
        println!("model\texposure Gini\thead demand\thead exposure");
        for (name, x) in &e.exposure {
            println!(
                "{name}\t{:.3}\t{:.3}\t{:.3}",
                x.gini, x.head_demand_share, x.head_exposure_share
            );
        }
    }

    Ok(0)
}
