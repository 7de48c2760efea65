//! `candor dsr …`: data-subject requests, erasure, export and contested decisions from the
//! command line (staff acting for the store; every step is in the audit log).

use std::path::PathBuf;

use anyhow::{Context, Result};
use candor_app::{App, NewRequest, RequestView, Verification};
use clap::Subcommand;
use indicatif::ProgressBar;
use serde_json::Value;

#[derive(Subcommand, Debug)]
pub enum DsrCommand {
    /// Record a request; prints it as JSON with its deadlines and the one-time token to
    /// deliver to the person's verified contact.
    Create {
        /// The store's user id of the person.
        #[arg(long)]
        user: String,
        /// access, portability, rectification, erasure, restriction, objection_marketing,
        /// objection_profiling, do_not_sell or limit_sensitive.
        #[arg(long)]
        kind: String,
        /// gdpr or ccpa (default: from the person's jurisdiction).
        #[arg(long)]
        regime: Option<String>,
        /// Rectification: the corrected values, e.g. '{"traits": {"name": "Ada King"}}'.
        #[arg(long)]
        details: Option<String>,
        #[arg(long, default_value = "default")]
        tenant: String,
    },
    /// Pass the identity check: the person's one-time token, or a staff note.
    Verify {
        id: String,
        #[arg(long, conflicts_with = "staff_note")]
        token: Option<String>,
        #[arg(long)]
        staff_note: Option<String>,
        #[arg(long, default_value = "default")]
        tenant: String,
    },
    /// Carry out a verified request.
    Process {
        id: String,
        #[arg(long, default_value = "default")]
        tenant: String,
    },
    /// Record the CCPA acknowledgement.
    Ack {
        id: String,
        #[arg(long, default_value = "default")]
        tenant: String,
    },
    /// Extend the deadline once, with the notice given to the person.
    Extend {
        id: String,
        #[arg(long)]
        notice: String,
        #[arg(long, default_value = "default")]
        tenant: String,
    },
    /// Reject a request with the reason given to the person.
    Reject {
        id: String,
        #[arg(long)]
        reason: String,
        #[arg(long, default_value = "default")]
        tenant: String,
    },
    /// One request as JSON.
    Show {
        id: String,
        #[arg(long, default_value = "default")]
        tenant: String,
    },
    /// Requests by due date: all, open ones, or overdue ones.
    List {
        #[arg(long)]
        open: bool,
        #[arg(long)]
        overdue: bool,
        #[arg(long)]
        json: bool,
        #[arg(long, default_value = "default")]
        tenant: String,
    },
    /// Write everything held about a person to a directory: export.json and one CSV per table.
    Export {
        #[arg(long)]
        user: String,
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value = "default")]
        tenant: String,
    },
    /// Erase a person now (staff-initiated); prints the receipt as JSON.
    Erase {
        #[arg(long)]
        user: String,
        #[arg(long, default_value = "default")]
        tenant: String,
    },
    /// The review queue of contested decisions.
    Contests {
        /// open, upheld or overridden (default: open).
        #[arg(long, default_value = "open")]
        status: String,
        #[arg(long, default_value = "default")]
        tenant: String,
    },
    /// Uphold or override a contested decision with a note for the person.
    Review {
        id: String,
        /// uphold or override.
        #[arg(long)]
        outcome: String,
        #[arg(long)]
        note: String,
        /// The corrected outcome (0 or 1) when overriding: the next training run's label.
        #[arg(long)]
        label: Option<i64>,
        #[arg(long, default_value = "default")]
        tenant: String,
    },
}

fn app_err(e: candor_app::AppError) -> anyhow::Error {
    anyhow::anyhow!("{} [{}]", e.message, e.code)
}

fn print<T: ?Sized + serde::Serialize>(v: &T) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

fn line(r: &RequestView) -> String {
    format!(
        "{}\t{}\t{}\t{}\tdue {}{}",
        r.row.id,
        r.row.kind,
        r.row.regime,
        r.row.status,
        r.row.due_at,
        if r.overdue { "\tOVERDUE" } else { "" }
    )
}

pub async fn run(app: &App, cmd: &DsrCommand) -> Result<i32> {
    const ACTOR: &str = "cli";
    match cmd {
        DsrCommand::Create {
            user,
            kind,
            regime,
            details,
            tenant,
        } => {
            let t = app.find_tenant(tenant).await?;
            let details: Option<Value> = match details {
                Some(d) => Some(serde_json::from_str(d).context("--details is not JSON")?),
                None => None,
            };
            let created = app
                .create_request(
                    t.id,
                    ACTOR,
                    &NewRequest {
                        user_id: user.clone(),
                        kind: kind.clone(),
                        regime: regime.clone(),
                        details,
                    },
                )
                .await
                .map_err(app_err)?;
            print(&created)?;
        }
        DsrCommand::Verify {
            id,
            token,
            staff_note,
            tenant,
        } => {
            let t = app.find_tenant(tenant).await?;
            let how = match (token, staff_note) {
                (Some(tok), None) => Verification::Token(tok.clone()),
                (None, Some(n)) => Verification::Staff(n.clone()),
                _ => anyhow::bail!("give --token (the person's) or --staff-note"),
            };
            print(
                &app.verify_request(t.id, ACTOR, id, how)
                    .await
                    .map_err(app_err)?,
            )?;
        }
        DsrCommand::Process { id, tenant } => {
            let t = app.find_tenant(tenant).await?;
            print(
                &app.process_request(t.id, ACTOR, id)
                    .await
                    .map_err(app_err)?,
            )?;
        }
        DsrCommand::Ack { id, tenant } => {
            let t = app.find_tenant(tenant).await?;
            print(
                &app.acknowledge_request(t.id, ACTOR, id)
                    .await
                    .map_err(app_err)?,
            )?;
        }
        DsrCommand::Extend { id, notice, tenant } => {
            let t = app.find_tenant(tenant).await?;
            print(
                &app.extend_request(t.id, ACTOR, id, notice)
                    .await
                    .map_err(app_err)?,
            )?;
        }
        DsrCommand::Reject { id, reason, tenant } => {
            let t = app.find_tenant(tenant).await?;
            print(
                &app.reject_request(t.id, ACTOR, id, reason)
                    .await
                    .map_err(app_err)?,
            )?;
        }
        DsrCommand::Show { id, tenant } => {
            let t = app.find_tenant(tenant).await?;
            print(&app.request_view(t.id, id).await.map_err(app_err)?)?;
        }
        DsrCommand::List {
            open,
            overdue,
            json,
            tenant,
        } => {
            let t = app.find_tenant(tenant).await?;
            let list = app
                .list_requests(t.id, *open, *overdue)
                .await
                .map_err(app_err)?;
            if *json {
                print(&list)?;
            } else {
                for r in &list {
                    println!("{}", line(r));
                }
                eprintln!(
                    "{} request(s), {} overdue",
                    list.len(),
                    list.iter().filter(|r| r.overdue).count()
                );
            }
        }
        DsrCommand::Export { user, out, tenant } => {
            let t = app.find_tenant(tenant).await?;
            let subject = app.resolve_subject(t.id, user).await.map_err(app_err)?.id;
            std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
            let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(16);
            let task_app = app.clone();
            let task =
                tokio::spawn(
                    async move { task_app.export_subject(t.id, ACTOR, subject, &tx).await },
                );
            let bar = ProgressBar::new_spinner();
            bar.set_message("exporting");
            let mut bytes = Vec::new();
            while let Some(chunk) = rx.recv().await {
                bytes.extend(chunk);
                bar.set_position(bytes.len() as u64);
            }
            bar.finish_and_clear();
            let counts = task.await?.map_err(app_err)?;
            let path = out.join("export.json");
            std::fs::write(&path, &bytes).with_context(|| format!("writing {}", path.display()))?;
            let doc: Value = serde_json::from_slice(&bytes)?;
            for table in candor_store::SUBJECT_TABLES {
                let rows = doc["tables"][*table]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                let p = out.join(format!("{table}.csv"));
                std::fs::write(&p, candor_app::rights::section_csv(&rows))
                    .with_context(|| format!("writing {}", p.display()))?;
            }
            for (table, n) in &counts {
                eprintln!("  {table}: {n}");
            }
            eprintln!("export of {subject} → {}", out.display());
        }
        DsrCommand::Erase { user, tenant } => {
            let t = app.find_tenant(tenant).await?;
            let receipt = app
                .erase_subject(t.id, ACTOR, user)
                .await
                .map_err(app_err)?;
            print(&serde_json::json!({
                "receipt": receipt,
                "sha256": candor_app::rights::receipt_digest(&receipt),
            }))?;
        }
        DsrCommand::Contests { status, tenant } => {
            let t = app.find_tenant(tenant).await?;
            print(
                &app.contests(t.id, ACTOR, Some(status))
                    .await
                    .map_err(app_err)?,
            )?;
        }
        DsrCommand::Review {
            id,
            outcome,
            note,
            label,
            tenant,
        } => {
            let t = app.find_tenant(tenant).await?;
            print(
                &app.review_contest(t.id, ACTOR, id, outcome, note, *label)
                    .await
                    .map_err(app_err)?,
            )?;
        }
    }
    Ok(0)
}
