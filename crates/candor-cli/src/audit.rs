//! `candor audit`, `candor monitor`, `candor alerts`: fairness audits from the command line.

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::{Context, Result};
use candor_app::fairness::DEFAULT_RESAMPLES;
use candor_app::{App, AuditRequest, MonitorRequest, RecordedAudit};
use clap::Args;
use indicatif::ProgressBar;

use crate::ml::{parse_time, read_table};

/// Exit status of an audit that was recorded but failed a gate (0 when it passed).
pub const EXIT_GATE_FAILED: i32 = 3;

#[derive(Args, Debug)]
pub struct AuditArgs {
    /// The model version to audit.
    #[arg(long)]
    pub model: i64,
    /// Labelled CSV with the model's columns, the outcome and the protected columns.
    #[arg(long)]
    pub data: PathBuf,
    /// Outcome column (yes/no, true/false, 1/0, or any values with --positive).
    #[arg(long)]
    pub target: String,
    #[arg(long)]
    pub positive: Option<String>,
    /// Protected columns; numeric ones (ages) are banded as the policy's [fairness] says.
    #[arg(long, value_delimiter = ',', required = true)]
    pub protected: Vec<String>,
    /// The score at which a lead counts as selected.
    #[arg(long, default_value_t = 0.5)]
    pub threshold: f64,
    /// Bootstrap resamples for the 95% intervals.
    #[arg(long, default_value_t = DEFAULT_RESAMPLES)]
    pub resamples: usize,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Write the report as HTML (tables, charts, plain words) to this file.
    #[arg(long)]
    pub html: Option<PathBuf>,
    /// Write the report as JSON (every number shown) to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    #[arg(long, default_value = "default")]
    pub tenant: String,
}

#[derive(Args, Debug)]
pub struct MonitorArgs {
    /// The model whose decisions to audit (default: the active one).
    #[arg(long)]
    pub model: Option<i64>,
    /// Start of the period (YYYY-MM-DD or RFC 3339).
    #[arg(long)]
    pub from: String,
    /// End of the period, exclusive (default: now).
    #[arg(long)]
    pub to: Option<String>,
    /// The event that counts as the outcome.
    #[arg(long, default_value = "Order Completed")]
    pub outcome: String,
    /// Days after a decision within which the outcome counts.
    #[arg(long, default_value_t = 30)]
    pub within_days: u32,
    #[arg(long, default_value_t = 0.5)]
    pub threshold: f64,
    #[arg(long, default_value_t = DEFAULT_RESAMPLES)]
    pub resamples: usize,
    #[arg(long)]
    pub html: Option<PathBuf>,
    #[arg(long)]
    pub json: Option<PathBuf>,
    #[arg(long, default_value = "default")]
    pub tenant: String,
}

#[derive(Args, Debug)]
pub struct AlertsArgs {
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
    #[arg(long)]
    pub json: bool,
    #[arg(long, default_value = "default")]
    pub tenant: String,
}

fn app_err(e: candor_app::AppError) -> anyhow::Error {
    anyhow::anyhow!("{} [{}]", e.message, e.code)
}

fn write_outputs(
    rec: &RecordedAudit,
    html: &Option<PathBuf>,
    json: &Option<PathBuf>,
) -> Result<()> {
    if let Some(p) = json {
        std::fs::write(p, serde_json::to_vec_pretty(&rec.document)?)
            .with_context(|| format!("writing {}", p.display()))?;
        eprintln!("JSON report → {}", p.display());
    }
    if let Some(p) = html {
        std::fs::write(p, candor_app::audit_report_html(&rec.document))
            .with_context(|| format!("writing {}", p.display()))?;
        eprintln!("HTML report → {}", p.display());
    }
    Ok(())
}

fn print_summary(rec: &RecordedAudit) -> Result<i32> {
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "Fairness audit {} of model {} ({}): {}",
        rec.id,
        rec.version,
        rec.document["kind"].as_str().unwrap_or(""),
        if rec.passed { "PASSED" } else { "FAILED" }
    )?;
    for line in rec.document["summary"].as_array().into_iter().flatten() {
        writeln!(out, "  {}", line.as_str().unwrap_or(""))?;
    }
    writeln!(out, "  model {} is {}", rec.version, rec.status)?;
    Ok(if rec.passed { 0 } else { EXIT_GATE_FAILED })
}

fn spinner(what: &str) -> ProgressBar {
    let bar = ProgressBar::new_spinner();
    bar.set_message(what.to_string());
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    bar
}

/// Runs a validation audit; exit 0 if it passed, 3 if a gate failed (the audit is recorded
/// either way).
pub async fn audit(app: &App, args: &AuditArgs) -> Result<i32> {
    let tenant = app.find_tenant(&args.tenant).await?;
    let table = read_table(&args.data)?;
    let req = AuditRequest {
        version: args.model,
        target: args.target.clone(),
        positive: args.positive.clone(),
        protected: args.protected.clone(),
        threshold: args.threshold,
        resamples: args.resamples,
        seed: args.seed,
        source: args
            .data
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default(),
    };
    let bar = spinner(&format!(
        "auditing model {} on {} rows",
        args.model,
        table.rows.len()
    ));
    let rec = app.audit_model(tenant.id, "cli", &table, &req).await;
    bar.finish_and_clear();
    let rec = rec.map_err(app_err)?;
    write_outputs(&rec, &args.html, &args.json)?;
    print_summary(&rec)
}

/// Audits live decisions of a period; exit 0 if every gate held, 3 if alerts were raised.
pub async fn monitor(app: &App, args: &MonitorArgs) -> Result<i32> {
    let tenant = app.find_tenant(&args.tenant).await?;
    let req = MonitorRequest {
        version: args.model,
        from: parse_time(&args.from)?,
        to: match &args.to {
            Some(t) => parse_time(t)?,
            None => app.clock().now(),
        },
        outcome_event: args.outcome.clone(),
        within_days: args.within_days,
        threshold: args.threshold,
        resamples: args.resamples,
    };
    let bar = spinner("auditing live decisions");
    let rec = app.monitor_fairness(tenant.id, "cli", &req).await;
    bar.finish_and_clear();
    let rec = rec.map_err(app_err)?;
    write_outputs(&rec, &args.html, &args.json)?;
    print_summary(&rec)
}

pub async fn alerts(app: &App, args: &AlertsArgs) -> Result<i32> {
    let tenant = app.find_tenant(&args.tenant).await?;
    let list = app
        .fairness_alerts(tenant.id, None, args.limit)
        .await
        .map_err(app_err)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(0);
    }
    if list.is_empty() {
        println!("no fairness alerts");
    }
    for a in &list {
        println!(
            "{}\t{}\tmodel {}\taudit {}\t{} on {}: {} (limit {})",
            a.id,
            a.created_at,
            a.version,
            a.audit_id,
            a.gate,
            a.subject,
            a.value
                .map_or("cannot be computed".into(), |v| format!("{v:.4}")),
            a.limit
        );
    }
    Ok(0)
}
