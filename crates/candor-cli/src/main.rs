//! The `candor` binary. A thin shell over `candor-app`: parse arguments, open the deployment
//! (policy, master key, database), run one command, print one clear error on failure.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};

use candor_app::{App, SystemClock};
use candor_crypto::MasterKey;
use candor_policy::{DEFAULT_POLICY, Policy};
use candor_store::{AnyStore, Store};
use candor_types::Scope;

mod assistant;
mod audit;
mod demo;
mod dsr;
mod journeys;
mod ml;
mod pricing;
mod recs;

// glibc's allocator spent ~15% of ingestion time in malloc/free under concurrency;
// mimalloc lifted bench/ingest on SQLite from ~15k to ~19k events/s.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const POLICY_FILE: &str = "candor.toml";
const MASTER_KEY_FILE: &str = "master.key";
const SQLITE_FILE: &str = "candor.db";
const DEFAULT_TENANT: &str = "default";

#[derive(Parser, Debug)]
#[command(
    name = "candor",
    version,
    about = "Consent-first marketing AI for online retailers"
)]
struct Cli {
    /// Deployment directory: policy file, master key, SQLite database.
    #[arg(long, global = true, env = "CANDOR_DIR", default_value = "candor-data")]
    dir: PathBuf,
    /// Database URL (`postgres://…`); defaults to the SQLite file in the deployment directory.
    #[arg(
        long,
        global = true,
        env = "CANDOR_DATABASE_URL",
        hide_env_values = true
    )]
    database_url: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Create the policy file, the master key (0600) and the database; print the first admin key.
    Init,
    /// Run the HTTP API (initializing the deployment directory first if it is empty).
    Serve {
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: String,
        /// Log as JSON lines instead of text.
        #[arg(long)]
        log_json: bool,
        /// Hours between retention sweeps (0 disables the background sweeper).
        #[arg(long, default_value_t = 1)]
        retention_every_hours: u64,
    },
    /// Manage tenants (stores).
    Tenants {
        #[command(subcommand)]
        command: TenantsCommand,
    },
    /// Manage API keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Policy file tools.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// Audit log tools.
    Log {
        #[command(subcommand)]
        command: LogCommand,
    },
    /// Data retention.
    Retention {
        #[command(subcommand)]
        command: RetentionCommand,
    },
    /// Train a lead-scoring model from a CSV file; registers a draft and prints its version
    /// alone on the last line.
    Train(Box<ml::TrainArgs>),
    /// Score a CSV file with a model: the input rows plus probability, tier and reasons.
    Score(ml::ScoreArgs),
    /// Explain one row of a CSV file: every factor's contribution to the score.
    Explain(ml::ExplainArgs),
    /// Fairness audit of a model on labelled data: group and intersectional metrics with
    /// intervals, proxies, the policy's gates (exit 3 when a gate fails; recorded either way).
    Audit(Box<audit::AuditArgs>),
    /// Fairness audit of live decisions whose outcomes are known; breached gates raise alerts
    /// (exit 3).
    Monitor(Box<audit::MonitorArgs>),
    /// Fairness alerts raised by monitoring, newest first.
    Alerts(audit::AlertsArgs),
    /// Recommendations: train, recommend, evaluate.
    Recs {
        #[command(subcommand)]
        command: recs::RecsCommand,
    },
    /// Pricing guardrails: check prices, price history, dispersion audits, proxy detection.
    Pricing {
        #[command(subcommand)]
        command: pricing::PricingCommand,
    },
    /// The shopping assistant: import its catalog, evaluate product questions, hand-off tickets.
    Assistant {
        #[command(subcommand)]
        command: assistant::AssistantCommand,
    },
    /// Email journeys: the uplift of campaigns against their holdout.
    Journeys {
        #[command(subcommand)]
        command: journeys::JourneysCommand,
    },
    /// Data-subject requests, erasure, export and contested decisions.
    Dsr {
        #[command(subcommand)]
        command: dsr::DsrCommand,
    },
    /// The model registry: list, show, card, audits, approve, override, activate, retire.
    Models {
        #[command(subcommand)]
        command: ml::ModelsCommand,
    },
    /// Lead-scoring features from events.
    Features {
        #[command(subcommand)]
        command: ml::FeaturesCommand,
    },
    /// Staff accounts of the console.
    Staff {
        #[command(subcommand)]
        command: StaffCommand,
    },
    /// A tour on real data: loads the bundled datasets into a new deployment (default
    /// directory `candor-demo`), trains and audits models, and serves the staff console and the
    /// privacy center, printing their URLs and the demo logins.
    Demo(demo::DemoArgs),
}

#[derive(Subcommand, Debug)]
enum StaffCommand {
    /// Create a staff account; the password is read from the environment variable named by
    /// --password-env (default CANDOR_STAFF_PASSWORD), never from the command line.
    Create {
        #[arg(long)]
        login: String,
        /// admin, marketer, reviewer or compliance.
        #[arg(long)]
        role: String,
        #[arg(long, default_value = "default")]
        tenant: String,
        #[arg(long, default_value = "CANDOR_STAFF_PASSWORD")]
        password_env: String,
    },
    /// List the staff accounts of a tenant.
    List {
        #[arg(long, default_value = "default")]
        tenant: String,
    },
}

#[derive(Subcommand, Debug)]
enum TenantsCommand {
    /// Create a tenant; prints its id alone.
    Create { name: String },
    /// List tenants.
    List,
}

#[derive(Subcommand, Debug)]
enum KeysCommand {
    /// Create an API key; prints the key alone (it is shown only once).
    Create {
        #[arg(long)]
        tenant: String,
        #[arg(long, value_parser = parse_scope)]
        scope: Scope,
        #[arg(long)]
        label: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
enum PolicyCommand {
    /// Validate a policy file: exit 0, or every error as file:line:column.
    Check { file: PathBuf },
}

#[derive(Subcommand, Debug)]
enum LogCommand {
    /// Verify the hash chain: exit 0, or name the first broken entry and exit 1.
    Verify,
}

#[derive(Subcommand, Debug)]
enum RetentionCommand {
    /// Delete data past its category's retention period now.
    Sweep,
}

fn parse_scope(s: &str) -> Result<Scope, String> {
    s.parse()
}

fn main() {
    let cli = Cli::parse();
    let log_json = matches!(cli.command, Command::Serve { log_json: true, .. });
    init_tracing(log_json);
    match try_main(cli) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(1);
        }
    }
}

fn init_tracing(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn try_main(cli: Cli) -> Result<i32> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(run(cli))
}

async fn run(cli: Cli) -> Result<i32> {
    match &cli.command {
        Command::Init => {
            let key = init(&cli.dir, cli.database_url.as_deref()).await?;
            eprintln!(
                "initialized {} (policy {POLICY_FILE}, master key {MASTER_KEY_FILE}); tenant `{DEFAULT_TENANT}` created.\nadmin key (shown once, store it safely):",
                cli.dir.display()
            );
            println!("{key}");
            Ok(0)
        }
        Command::Serve {
            listen,
            retention_every_hours,
            ..
        } => {
            if !cli.dir.join(POLICY_FILE).exists() && !cli.dir.join(MASTER_KEY_FILE).exists() {
                let key = init(&cli.dir, cli.database_url.as_deref()).await?;
                eprintln!(
                    "first start: initialized {}; tenant `{DEFAULT_TENANT}` admin key (shown once):",
                    cli.dir.display()
                );
                println!("{key}");
            }
            let app = open(&cli.dir, cli.database_url.as_deref()).await?;
            app.record_policy_load("system:serve").await?;
            serve(app, &cli.dir, listen, *retention_every_hours, false).await?;
            Ok(0)
        }
        Command::Staff { command } => {
            let app = open(&cli.dir, cli.database_url.as_deref()).await?;
            match command {
                StaffCommand::Create {
                    login,
                    role,
                    tenant,
                    password_env,
                } => {
                    let t = app.find_tenant(tenant).await?;
                    let password = std::env::var(password_env).with_context(|| {
                        format!("set the new account's password in the environment variable {password_env}")
                    })?;
                    let row = app
                        .create_staff(t.id, "cli", login, role, &password)
                        .await
                        .map_err(|e| anyhow::anyhow!("{} [{}]", e.message, e.code))?;
                    println!("{}", row.id);
                }
                StaffCommand::List { tenant } => {
                    let t = app.find_tenant(tenant).await?;
                    for s in app.list_staff(t.id).await? {
                        println!(
                            "{}\t{}\t{}\t{}",
                            s.id,
                            s.login,
                            s.role,
                            if s.disabled_at.is_some() {
                                "disabled"
                            } else {
                                "active"
                            }
                        );
                    }
                }
            }
            Ok(0)
        }
        Command::Demo(args) => {
            // The demo has its own directory unless one is named.
            let dir = if cli.dir == Path::new("candor-data") {
                PathBuf::from("candor-demo")
            } else {
                cli.dir.clone()
            };
            if cli.database_url.is_some() {
                bail!("the demo runs on the embedded SQLite database; do not pass --database-url");
            }
            let doc_path = dir.join(demo::DEMO_FILE);
            let doc: serde_json::Value = if doc_path.exists() {
                eprintln!("{} is already loaded; serving it", dir.display());
                serde_json::from_slice(&std::fs::read(&doc_path)?)?
            } else {
                if dir.join(MASTER_KEY_FILE).exists() {
                    bail!(
                        "{} holds a deployment that is not a demo; pass --dir with a new directory",
                        dir.display()
                    );
                }
                std::fs::create_dir_all(&dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
                std::fs::write(dir.join(POLICY_FILE), demo::policy_text(&args.listen))?;
                init(&dir, None).await?;
                let app = open(&dir, None).await?;
                let doc = demo::run(&app, &dir, args).await?;
                write_secret_file(&doc_path, &serde_json::to_vec_pretty(&doc)?)?;
                doc
            };
            demo::print_tour(&doc, &dir);
            if args.no_serve {
                return Ok(0);
            }
            let app = open(&dir, None).await?;
            app.record_policy_load("system:demo").await?;
            serve(app, &dir, &args.listen, 1, true).await?;
            Ok(0)
        }
        Command::Tenants { command } => {
            let app = open(&cli.dir, cli.database_url.as_deref()).await?;
            match command {
                TenantsCommand::Create { name } => {
                    let t = app.create_tenant(name, "cli").await?;
                    println!("{}", t.id);
                }
                TenantsCommand::List => {
                    for t in app.store().list_tenants().await? {
                        println!("{}\t{}\t{}", t.id, t.name, t.created_at);
                    }
                }
            }
            Ok(0)
        }
        Command::Keys {
            command:
                KeysCommand::Create {
                    tenant,
                    scope,
                    label,
                },
        } => {
            let app = open(&cli.dir, cli.database_url.as_deref()).await?;
            let t = app.find_tenant(tenant).await?;
            let (_, secret) = app.create_key(t.id, *scope, label.clone(), "cli").await?;
            println!("{secret}");
            Ok(0)
        }
        Command::Policy {
            command: PolicyCommand::Check { file },
        } => match Policy::load(file) {
            Ok(p) => {
                println!(
                    "{}: ok ({} purposes, {} categories, sha256 {})",
                    file.display(),
                    p.purposes().count(),
                    p.categories().count(),
                    p.source_hash()
                );
                Ok(0)
            }
            Err(errors) => {
                for e in &errors.0 {
                    eprintln!("{e}");
                }
                Ok(1)
            }
        },
        Command::Log {
            command: LogCommand::Verify,
        } => {
            let app = open(&cli.dir, cli.database_url.as_deref()).await?;
            match app.verify_audit_log().await? {
                Ok(report) => {
                    let total: i64 = report.chains.iter().map(|c| c.entries).sum();
                    println!(
                        "audit log ok: {total} entries in {} chains",
                        report.chains.len()
                    );
                    Ok(0)
                }
                Err(b) => {
                    eprintln!("audit log BROKEN: {b}");
                    Ok(1)
                }
            }
        }
        Command::Train(args) => {
            if !cli.dir.join(MASTER_KEY_FILE).exists() {
                let key = init(&cli.dir, cli.database_url.as_deref()).await?;
                eprintln!(
                    "initialized {}; tenant `{DEFAULT_TENANT}` admin key (shown once): {key}",
                    cli.dir.display()
                );
            }
            let app = open(&cli.dir, cli.database_url.as_deref()).await?;
            ml::train(&app, args).await
        }
        Command::Score(args) => {
            ml::score(&open(&cli.dir, cli.database_url.as_deref()).await?, args).await
        }
        Command::Explain(args) => {
            ml::explain(&open(&cli.dir, cli.database_url.as_deref()).await?, args).await
        }
        Command::Audit(args) => {
            audit::audit(&open(&cli.dir, cli.database_url.as_deref()).await?, args).await
        }
        Command::Monitor(args) => {
            audit::monitor(&open(&cli.dir, cli.database_url.as_deref()).await?, args).await
        }
        Command::Alerts(args) => {
            audit::alerts(&open(&cli.dir, cli.database_url.as_deref()).await?, args).await
        }
        Command::Assistant { command } => {
            assistant::run(&open(&cli.dir, cli.database_url.as_deref()).await?, command).await
        }
        Command::Pricing { command } => {
            pricing::run(&open(&cli.dir, cli.database_url.as_deref()).await?, command).await
        }
        Command::Recs { command } => {
            // Evaluation reads a file and writes reports: no deployment needed.
            if matches!(command, recs::RecsCommand::Evaluate { .. }) {
                recs::evaluate_cmd(command)
            } else {
                recs::run(&open(&cli.dir, cli.database_url.as_deref()).await?, command).await
            }
        }
        // Reads a file and writes reports: no deployment needed.
        Command::Journeys { command } => journeys::run(command),
        Command::Dsr { command } => {
            dsr::run(&open(&cli.dir, cli.database_url.as_deref()).await?, command).await
        }
        Command::Models { command } => {
            ml::models(&open(&cli.dir, cli.database_url.as_deref()).await?, command).await
        }
        Command::Features { command } => {
            ml::features(&open(&cli.dir, cli.database_url.as_deref()).await?, command).await
        }
        Command::Retention {
            command: RetentionCommand::Sweep,
        } => {
            let app = open(&cli.dir, cli.database_url.as_deref()).await?;
            let swept = app.sweep_retention().await?;
            println!("{}", serde_json::to_string_pretty(&swept)?);
            Ok(0)
        }
    }
}

fn resolve_database_url(dir: &Path, explicit: Option<&str>) -> String {
    match explicit {
        Some(u) => u.to_owned(),
        None => dir.join(SQLITE_FILE).display().to_string(),
    }
}

#[cfg(unix)]
fn write_secret_file(path: &Path, contents: &[u8]) -> Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(contents)?;
    f.sync_all()?;
    Ok(())
}

#[cfg(not(unix))]
fn write_secret_file(path: &Path, contents: &[u8]) -> Result<()> {
    std::fs::write(path, contents).with_context(|| format!("creating {}", path.display()))
}

/// Creates the deployment and returns the first admin key.
async fn init(dir: &Path, database_url: Option<&str>) -> Result<String> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let policy_path = dir.join(POLICY_FILE);
    let key_path = dir.join(MASTER_KEY_FILE);
    if key_path.exists() {
        bail!(
            "{} is already initialized ({} exists)",
            dir.display(),
            key_path.display()
        );
    }
    if !policy_path.exists() {
        std::fs::write(&policy_path, DEFAULT_POLICY)
            .with_context(|| format!("writing {}", policy_path.display()))?;
    }
    let master = MasterKey::generate()?;
    write_secret_file(&key_path, master.to_file_contents().as_bytes())?;
    let app = open(dir, database_url).await?;
    app.record_policy_load("cli:init").await?;
    let tenant = match app.store().tenant_by_name(DEFAULT_TENANT).await? {
        Some(t) => t,
        None => app.create_tenant(DEFAULT_TENANT, "cli:init").await?,
    };
    let (_, key) = app
        .create_key(
            tenant.id,
            Scope::Admin,
            Some("first admin key".into()),
            "cli:init",
        )
        .await?;
    Ok(key)
}

fn read_master_key(path: &Path) -> Result<MasterKey> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let meta = std::fs::metadata(path)
            .with_context(|| format!("reading {} (run `candor init` first)", path.display()))?;
        if meta.permissions().mode() & 0o077 != 0 {
            bail!(
                "{} is readable by other users; run `chmod 600 {}`",
                path.display(),
                path.display()
            );
        }
    }
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading {} (run `candor init` first)", path.display()))?;
    MasterKey::from_file_contents(&text).with_context(|| format!("reading {}", path.display()))
}

/// Opens an initialized deployment: policy, master key, migrated store.
async fn open(dir: &Path, database_url: Option<&str>) -> Result<App> {
    let policy_path = dir.join(POLICY_FILE);
    let policy = Policy::load(&policy_path).map_err(|e| anyhow::anyhow!("invalid policy:\n{e}"))?;
    let master = read_master_key(&dir.join(MASTER_KEY_FILE))?;
    let url = resolve_database_url(dir, database_url);
    let store = AnyStore::open(&url).await.context("opening the database")?;
    store.migrate().await.context("migrating the database")?;
    Ok(App::new(store, policy, master, Arc::new(SystemClock)))
}

/// `outbox`: without a relay, write sign-in emails to `<dir>/outbox/` (the demo only: the
/// files hold addresses and live links).
async fn serve(
    app: App,
    dir: &Path,
    listen: &str,
    retention_every_hours: u64,
    outbox: bool,
) -> Result<()> {
    if app.policy().smtp().is_none() {
        if outbox {
            let outbox = dir.join("outbox");
            eprintln!(
                "no [smtp] relay in the policy: privacy-center sign-in emails are written to {}",
                outbox.display()
            );
            app.set_outbox(outbox);
        } else {
            eprintln!(
                "no [smtp] relay in the policy: the privacy center cannot send sign-in links"
            );
        }
    }
    let reports = dir.join("reports");
    if reports.is_dir() {
        app.set_reports_dir(reports);
    }
    load_help(&app, dir)?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, backend = app.store().backend_name(), "candor listening");
    eprintln!("candor listening on http://{addr} (API reference at http://{addr}/docs)");
    if retention_every_hours > 0 {
        let sweeper = app.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(retention_every_hours * 3600));
            loop {
                tick.tick().await;
                match sweeper.sweep_retention().await {
                    Ok(s) => tracing::info!(swept = s.len(), "retention sweep done"),
                    Err(e) => tracing::error!(error = %e, "retention sweep failed"),
                }
            }
        });
    }
    // Journeys: the relay and templates are checked before the first request is served.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let scheduler = if app.policy().journeys().is_empty() {
        None
    } else {
        app.mailer()
            .map_err(|e| anyhow::anyhow!("{} [{}]", e.message, e.code))?;
        let journeys = app.clone();
        eprintln!(
            "journeys: {} (sending through {})",
            app.policy()
                .journeys()
                .iter()
                .map(|j| j.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            app.policy()
                .smtp()
                .map_or(String::new(), |s| format!("{}:{}", s.host, s.port))
        );
        Some(tokio::spawn(
            async move { journeys.run_journeys(stopped).await },
        ))
    };
    candor_http::serve(listener, app.clone(), shutdown_signal())
        .await
        .context("serving HTTP")?;
    let _ = stop.send(true);
    if let Some(s) = scheduler {
        let _ = s.await;
    }
    // Served recommendation lists still queued are recorded before the process ends.
    app.flush_decisions()
        .await
        .map_err(|e| anyhow::anyhow!("{} [{}]", e.message, e.code))?;
    Ok(())
}

/// The assistant's help articles: the markdown files `[assistant] help` names, relative to
/// the deployment directory (a missing file stops the start, with its name).
fn load_help(app: &App, dir: &Path) -> Result<()> {
    let mut articles = Vec::new();
    for rel in &app.policy().assistant().help {
        let path = dir.join(rel);
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "[assistant] help names {}, which cannot be read",
                path.display()
            )
        })?;
        articles.push((rel.clone(), text));
    }
    if !articles.is_empty() {
        eprintln!("assistant: {} help articles", articles.len());
    }
    app.set_help_articles(&articles);
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}
