//! `candor pricing …`: price checks of a file, price history, dispersion audits of a file or
//! of live orders, proxy detection of pricing signals, alerts.

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::{Context, Result};
use candor_app::App;
use candor_app::pricing::{CheckInput, MAX_BATCH};
use candor_app::pricing_audit::{
    DispersionOptions, PeriodUnit, PriceColumns, PriceMonitorRequest, RecordedPriceAudit,
};
use candor_ml::table::RawTable;
use candor_types::Currency;
use clap::{Args, Subcommand};
use indicatif::ProgressBar;
use serde_json::{Map, Value, json};

use crate::audit::EXIT_GATE_FAILED;
use crate::ml::{parse_time, progress};
use crate::recs::read_lines_file as read_file;

#[derive(Args, Debug, Clone)]
pub struct ColumnArgs {
    #[arg(long, default_value = "StockCode")]
    product: String,
    #[arg(long, default_value = "Description")]
    name_column: String,
    #[arg(long, default_value = "UnitPrice")]
    price: String,
    #[arg(long, default_value = "Quantity")]
    quantity: String,
    #[arg(long, default_value = "InvoiceDate")]
    time: String,
    /// The column whose values are the groups compared (a country, a segment).
    #[arg(long, default_value = "Country")]
    group: String,
    /// Rows whose value here starts with `C` are cancellations (empty: none).
    #[arg(long, default_value = "InvoiceNo")]
    invoice: String,
}

impl ColumnArgs {
    fn columns(&self, table: &RawTable) -> PriceColumns {
        let opt = |c: &str| (!c.is_empty() && table.column(c).is_some()).then(|| c.to_string());
        PriceColumns {
            product: self.product.clone(),
            name: opt(&self.name_column),
            price: self.price.clone(),
            quantity: opt(&self.quantity),
            time: self.time.clone(),
            group: self.group.clone(),
            invoice: (!self.invoice.is_empty()).then(|| self.invoice.clone()),
        }
    }
}

#[derive(Args, Debug, Clone)]
pub struct ReportArgs {
    /// Periods compared: week, month, quarter or all.
    #[arg(long, default_value = "month")]
    period: String,
    /// The products with the most order lines (0: every product).
    #[arg(long, default_value_t = 20)]
    top: usize,
    /// Bootstrap resamples for the 95% intervals.
    #[arg(long, default_value_t = 1000)]
    resamples: u32,
    #[arg(long, default_value_t = 20_111)]
    seed: u64,
    /// Write the report as HTML (tables, charts, plain words).
    #[arg(long)]
    html: Option<PathBuf>,
    /// Write the report as JSON (every number shown).
    #[arg(long)]
    json: Option<PathBuf>,
}

impl ReportArgs {
    fn options(&self) -> Result<DispersionOptions> {
        Ok(DispersionOptions {
            period: self.period.parse::<PeriodUnit>().map_err(app_err)?,
            top: self.top,
            resamples: self.resamples,
            seed: self.seed,
            ..DispersionOptions::default()
        })
    }
}

#[derive(Subcommand, Debug)]
pub enum PricingCommand {
    /// What groups paid for the same product in the same period, from a file of order lines
    /// (default columns: UCI Online Retail): per-group price ratios with 95% intervals and
    /// the products flagged by `[pricing] max_dispersion_ratio` (exit 3 when any is).
    Audit {
        #[arg(long)]
        data: PathBuf,
        #[command(flatten)]
        columns: ColumnArgs,
        #[command(flatten)]
        report: ReportArgs,
        /// The currency of the file's prices (labels the report).
        #[arg(long)]
        currency: Option<String>,
        /// Only lines from this date (YYYY-MM-DD or RFC 3339) ...
        #[arg(long)]
        from: Option<String>,
        /// ... and before this one.
        #[arg(long)]
        to: Option<String>,
        #[arg(long, default_value = "default")]
        tenant: String,
    },
    /// The same audit over the orders Candor holds, by country, segment and the protected
    /// traits the fairness_audit purpose may read; flagged groups raise alerts (exit 3).
    Monitor {
        /// Start of the period (YYYY-MM-DD or RFC 3339).
        #[arg(long)]
        from: String,
        /// End of the period, exclusive (default: now).
        #[arg(long)]
        to: Option<String>,
        #[command(flatten)]
        report: ReportArgs,
        #[arg(long, default_value = "default")]
        tenant: String,
    },
    /// Proxy detection: how much each pricing signal of a sample reveals each protected
    /// attribute; flagged signals are refused by every price check from then on (exit 3).
    Proxies {
        #[arg(long)]
        data: PathBuf,
        #[arg(long, value_delimiter = ',', required = true)]
        signals: Vec<String>,
        #[arg(long, value_delimiter = ',', required = true)]
        protected: Vec<String>,
        #[arg(long)]
        html: Option<PathBuf>,
        #[arg(long)]
        json: Option<PathBuf>,
        #[arg(long, default_value = "default")]
        tenant: String,
    },
    /// Import a file of order lines as price history (the prior-period lowest price).
    Import {
        #[arg(long)]
        data: PathBuf,
        #[command(flatten)]
        columns: ColumnArgs,
        #[arg(long)]
        currency: String,
        #[arg(long, default_value = "default")]
        tenant: String,
    },
    /// Check every price of a CSV file (columns product, currency, list_price,
    /// proposed_price; optional unpersonalized_price, category, segment, user_id, signals
    /// separated by `|`, presented_as_discount, reference_price); writes the rows with
    /// verdict, price, reasons and disclosure.
    Check {
        #[arg(long)]
        data: PathBuf,
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value = "default")]
        tenant: String,
    },
    /// A product's price history and the lowest price of the prior period.
    History {
        product: String,
        #[arg(long)]
        currency: String,
        #[arg(long, default_value_t = 90)]
        days: u32,
        #[arg(long, default_value = "default")]
        tenant: String,
    },
    /// Price dispersion alerts raised by monitoring, newest first.
    Alerts {
        #[arg(long)]
        json: bool,
        #[arg(long, default_value = "default")]
        tenant: String,
    },
}

fn app_err(e: candor_app::AppError) -> anyhow::Error {
    anyhow::anyhow!("{} [{}]", e.message, e.code)
}

fn spinner(what: &str) -> ProgressBar {
    let bar = ProgressBar::new_spinner();
    bar.set_message(what.to_string());
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    bar
}

fn outputs(rec: &RecordedPriceAudit, html: &Option<PathBuf>, json: &Option<PathBuf>) -> Result<()> {
    if let Some(p) = json {
        std::fs::write(p, serde_json::to_vec_pretty(&rec.document)?)
            .with_context(|| format!("writing {}", p.display()))?;
        eprintln!("JSON report → {}", p.display());
    }
    if let Some(p) = html {
        std::fs::write(p, candor_app::pricing_html::price_audit_html(&rec.document))
            .with_context(|| format!("writing {}", p.display()))?;
        eprintln!("HTML report → {}", p.display());
    }
    Ok(())
}

fn summary(rec: &RecordedPriceAudit) -> Result<i32> {
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "Price audit {} ({}): {}",
        rec.id,
        rec.kind,
        if rec.flagged_products.is_empty() {
            "nothing flagged".to_string()
        } else {
            format!("{} flagged", rec.flagged_products.len())
        }
    )?;
    for line in rec.document["summary"].as_array().into_iter().flatten() {
        writeln!(out, "  {}", line.as_str().unwrap_or(""))?;
    }
    if rec.alerts > 0 {
        writeln!(
            out,
            "  {} alerts raised (candor pricing alerts)",
            rec.alerts
        )?;
    }
    Ok(if rec.flagged_products.is_empty() {
        0
    } else {
        EXIT_GATE_FAILED
    })
}

/// One row of a price file as the JSON a check takes.
fn row_check(table: &RawTable, row: &[String]) -> Value {
    let mut o = Map::new();
    for (h, v) in table.headers.iter().zip(row) {
        let v = v.trim();
        if v.is_empty() {
            continue;
        }
        let key = match h.as_str() {
            "product" => "product",
            "category" => "category",
            "currency" => "currency",
            "list_price" => "listPrice",
            "proposed_price" => "proposedPrice",
            "unpersonalized_price" => "unpersonalizedPrice",
            "user_id" => "userId",
            "segment" => "segment",
            "reference_price" => "referencePrice",
            "signals" => {
                o.insert(
                    "signals".into(),
                    json!(
                        v.split('|')
                            .map(str::trim)
                            .filter(|s| !s.is_empty())
                            .collect::<Vec<_>>()
                    ),
                );
                continue;
            }
            "presented_as_discount" => {
                o.insert(
                    "presentedAsDiscount".into(),
                    json!(matches!(
                        v.to_ascii_lowercase().as_str(),
                        "1" | "true" | "yes"
                    )),
                );
                continue;
            }
            _ => continue,
        };
        o.insert(key.into(), json!(v));
    }
    Value::Object(o)
}

fn csv_cell(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

pub async fn run(app: &App, cmd: &PricingCommand) -> Result<i32> {
    match cmd {
        PricingCommand::Audit {
            data,
            columns,
            report,
            currency,
            from,
            to,
            tenant,
        } => {
            let t = app.find_tenant(tenant).await?;
            let bar = spinner(&format!("reading {}", data.display()));
            let table = read_file(data)?;
            bar.set_message(format!("auditing {} order lines", table.rows.len()));
            let mut opts = report.options()?;
            opts.currency = currency
                .as_deref()
                .map(Currency::parse)
                .transpose()
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            opts.from = from.as_deref().map(parse_time).transpose()?;
            opts.to = to.as_deref().map(parse_time).transpose()?;
            let source = data
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default();
            let rec = app
                .audit_price_file(
                    t.id,
                    "cli",
                    &table,
                    &columns.columns(&table),
                    &opts,
                    &source,
                )
                .await;
            bar.finish_and_clear();
            let rec = rec.map_err(app_err)?;
            outputs(&rec, &report.html, &report.json)?;
            summary(&rec)
        }
        PricingCommand::Monitor {
            from,
            to,
            report,
            tenant,
        } => {
            let t = app.find_tenant(tenant).await?;
            let from = parse_time(from)?;
            let mut options = report.options()?;
            options.seed = from.0 as u64;
            let req = PriceMonitorRequest {
                from,
                to: match to {
                    Some(x) => parse_time(x)?,
                    None => app.clock().now(),
                },
                options,
            };
            let bar = spinner("auditing what groups paid");
            let rec = app.monitor_prices(t.id, "cli", &req).await;
            bar.finish_and_clear();
            let rec = rec.map_err(app_err)?;
            outputs(&rec, &report.html, &report.json)?;
            summary(&rec)
        }
        PricingCommand::Proxies {
            data,
            signals,
            protected,
            html,
            json,
            tenant,
        } => {
            let t = app.find_tenant(tenant).await?;
            let table = read_file(data)?;
            let source = data
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default();
            let rec = app
                .audit_price_signals(t.id, "cli", &table, signals, protected, &source)
                .await
                .map_err(app_err)?;
            outputs(&rec, html, json)?;
            summary(&rec)
        }
        PricingCommand::Import {
            data,
            columns,
            currency,
            tenant,
        } => {
            let t = app.find_tenant(tenant).await?;
            let currency = Currency::parse(currency).map_err(|e| anyhow::anyhow!("{e}"))?;
            let table = read_file(data)?;
            let bar = progress(table.rows.len() as u64, "importing prices");
            let done = app
                .import_price_file(
                    t.id,
                    "cli",
                    &table,
                    &columns.columns(&table),
                    currency,
                    &|n| bar.set_position(n as u64),
                )
                .await;
            bar.finish_and_clear();
            let done = done.map_err(app_err)?;
            println!(
                "{} rows: {} prices imported, {} skipped (cancellations, no price or quantity)",
                done["rows"], done["inserted"], done["skipped"]
            );
            Ok(0)
        }
        PricingCommand::Check { data, out, tenant } => {
            let t = app.find_tenant(tenant).await?;
            let table = read_file(data)?;
            let inputs = table
                .rows
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    CheckInput::from_json(&row_check(&table, r))
                        .map_err(|e| anyhow::anyhow!("row {}: {} [{}]", i + 2, e.message, e.code))
                })
                .collect::<Result<Vec<_>>>()?;
            let bar = progress(inputs.len() as u64, "checking prices");
            let tmp = out.with_extension("partial");
            let mut w = std::io::BufWriter::new(
                std::fs::File::create(&tmp)
                    .with_context(|| format!("creating {}", tmp.display()))?,
            );
            let mut header = table.headers.clone();
            header.extend(
                ["verdict", "price", "reasons", "disclosure", "check_id"].map(String::from),
            );
            writeln!(
                w,
                "{}",
                header
                    .iter()
                    .map(|h| csv_cell(h))
                    .collect::<Vec<_>>()
                    .join(",")
            )?;
            let (mut allowed, mut adjusted, mut refused) = (0, 0, 0);
            for (chunk, rows) in inputs.chunks(MAX_BATCH).zip(table.rows.chunks(MAX_BATCH)) {
                let b = app.check_batch(t.id, "cli", chunk).await.map_err(app_err)?;
                allowed += b.allowed;
                adjusted += b.adjusted;
                refused += b.refused;
                for (r, row) in b.results.iter().zip(rows) {
                    let mut cells: Vec<String> = row.iter().map(|c| csv_cell(c)).collect();
                    let reasons: Vec<&str> = r.reasons.iter().map(|x| x.code).collect();
                    cells.push(r.verdict.to_string());
                    cells.push(r.price.clone());
                    cells.push(csv_cell(&reasons.join("|")));
                    cells.push(csv_cell(
                        r.disclosure.as_ref().map_or("", |d| d.text.as_str()),
                    ));
                    cells.push(r.check_id.clone());
                    writeln!(w, "{}", cells.join(","))?;
                }
                bar.inc(chunk.len() as u64);
            }
            w.flush()?;
            drop(w);
            std::fs::rename(&tmp, out).with_context(|| format!("writing {}", out.display()))?;
            bar.finish_and_clear();
            println!(
                "{} prices checked: {allowed} allowed, {adjusted} adjusted, {refused} refused → {}",
                inputs.len(),
                out.display()
            );
            Ok(0)
        }
        PricingCommand::History {
            product,
            currency,
            days,
            tenant,
        } => {
            let t = app.find_tenant(tenant).await?;
            let c = Currency::parse(currency).map_err(|e| anyhow::anyhow!("{e}"))?;
            let now = app.clock().now();
            use candor_store::PricingStore as _;
            let rows = app
                .store()
                .price_history(
                    t.id,
                    product,
                    Some(c.code()),
                    now.minus_days(*days),
                    now,
                    10_000,
                )
                .await?;
            for r in &rows {
                println!(
                    "{}\t{}\t{}\t{}{}",
                    r.at,
                    r.kind,
                    c.format(r.price),
                    r.country.as_deref().unwrap_or(""),
                    if r.cancelled_at.is_some() {
                        "\tcancelled"
                    } else {
                        ""
                    }
                );
            }
            let prior = app
                .store()
                .prior_prices(
                    t.id,
                    &[(product.clone(), c.code().to_string())],
                    now.minus_days(app.policy().pricing().prior_price_days),
                    now,
                )
                .await?;
            let p = prior
                .get(&(product.clone(), c.code().to_string()))
                .copied()
                .unwrap_or_default();
            let low = [p.lowest_in_window, p.before_window]
                .into_iter()
                .flatten()
                .min_by_key(|x| x.price);
            match low {
                Some(l) => println!(
                    "lowest of the prior {} days: {} {} (observed {})",
                    app.policy().pricing().prior_price_days,
                    c.format(l.price),
                    c.code(),
                    l.at
                ),
                None => println!(
                    "no price known for the prior {} days",
                    app.policy().pricing().prior_price_days
                ),
            }
            Ok(0)
        }
        PricingCommand::Alerts { json, tenant } => {
            let t = app.find_tenant(tenant).await?;
            let list = app.price_alerts(t.id).await.map_err(app_err)?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&list)?);
                return Ok(0);
            }
            if list.is_empty() {
                println!("no price alerts");
            }
            for a in &list {
                println!(
                    "{}\t{}\taudit {}\t{} {} in {}: {} paid {:.3}× the reference (limit {})",
                    a.id,
                    a.created_at,
                    a.audit_id,
                    a.attribute,
                    a.product,
                    a.period,
                    a.group,
                    a.ratio,
                    a.max_ratio
                );
            }
            Ok(0)
        }
    }
}
