//! `candor assistant …`: the catalog the assistant searches (imported from a product file or
//! from order lines such as Online Retail's), an evaluation of product questions against it,
//! and the hand-off tickets waiting for a person.

use std::path::PathBuf;

use anyhow::{Context, Result};
use candor_app::App;
use candor_types::Currency;
use clap::Subcommand;
use serde_json::json;

use crate::ml::progress;
use crate::recs::read_lines_file as read_file;

#[derive(Subcommand, Debug, Clone)]
pub enum AssistantCommand {
    /// Import products from a CSV file: a product file, or order lines (one product per id,
    /// named by its most frequent name; Online Retail's columns by default).
    Import {
        #[arg(long)]
        data: PathBuf,
        #[arg(long, default_value = "StockCode")]
        product: String,
        #[arg(long, default_value = "Description")]
        name: String,
        /// The price column (empty: no prices).
        #[arg(long, default_value = "UnitPrice")]
        price: String,
        /// Lines whose quantity is not positive are skipped (empty: no such column).
        #[arg(long, default_value = "Quantity")]
        quantity: String,
        /// The currency of the prices.
        #[arg(long, default_value = "GBP")]
        currency: String,
        #[arg(long, default_value = "default")]
        tenant: String,
    },
    /// How often the right product is among the first K products the assistant's reply shows
    /// for each question of a tab-separated file `question<TAB>product ids` (exit 3 below
    /// --min). Nothing is stored.
    Eval {
        #[arg(long)]
        questions: PathBuf,
        #[arg(long, default_value_t = 3)]
        k: usize,
        #[arg(long, default_value_t = 0.9)]
        min: f64,
        #[arg(long)]
        json: bool,
        #[arg(long, default_value = "default")]
        tenant: String,
    },
    /// Hand-offs to a person, oldest first.
    Tickets {
        #[arg(long)]
        status: Option<String>,
        #[arg(long, default_value = "default")]
        tenant: String,
    },
}

fn app_err(e: candor_app::AppError) -> anyhow::Error {
    anyhow::anyhow!("{} [{}]", e.message, e.code)
}

pub async fn run(app: &App, cmd: &AssistantCommand) -> Result<i32> {
    match cmd {
        AssistantCommand::Import {
            data,
            product,
            name,
            price,
            quantity,
            currency,
            tenant,
        } => {
            let t = app.find_tenant(tenant).await.map_err(app_err)?;
            let table = read_file(data)?;
            let currency = Currency::parse(currency).map_err(|e| anyhow::anyhow!("{e}"))?;
            fn opt(c: &str) -> Option<&str> {
                (!c.is_empty()).then_some(c)
            }
            let rows = candor_app::assistant::catalog_from_lines(
                &table,
                product,
                name,
                opt(price),
                opt(quantity),
                Some(currency),
                app.clock().now(),
            )
            .map_err(app_err)?;
            let bar = progress(rows.len() as u64, "importing products");
            let mut written = 0;
            for chunk in rows.chunks(1000) {
                written += app
                    .import_products_as(t.id, "cli", chunk.to_vec())
                    .await
                    .map_err(app_err)?;
                bar.inc(chunk.len() as u64);
            }
            bar.finish_and_clear();
            println!(
                "{} products from {} lines of {} ({written} written)",
                rows.len(),
                table.rows.len(),
                data.display()
            );
            Ok(0)
        }
        AssistantCommand::Eval {
            questions,
            k,
            min,
            json: as_json,
            tenant,
        } => {
            let t = app.find_tenant(tenant).await.map_err(app_err)?;
            let text = std::fs::read_to_string(questions)
                .with_context(|| format!("reading {}", questions.display()))?;
            let mut cases = Vec::new();
            for (i, line) in text.lines().enumerate().skip(1) {
                if line.trim().is_empty() {
                    continue;
                }
                let (q, ids) = line.split_once('\t').with_context(|| {
                    format!(
                        "{}:{}: question<TAB>product ids",
                        questions.display(),
                        i + 1
                    )
                })?;
                let ids: Vec<String> = ids.split(',').map(|s| s.trim().to_owned()).collect();
                cases.push((q.to_owned(), ids));
            }
            anyhow::ensure!(!cases.is_empty(), "{}: no questions", questions.display());
            let bar = progress(cases.len() as u64, "asking");
            let (mut top1, mut topk) = (0usize, 0usize);
            let mut misses = Vec::new();
            for (q, ids) in &cases {
                let hits = app.product_answer(t.id, q).await.map_err(app_err)?;
                let hits = &hits[..hits.len().min(*k)];
                let rank = hits
                    .iter()
                    .position(|p| ids.iter().any(|id| id == &p.product_id));
                match rank {
                    Some(0) => {
                        top1 += 1;
                        topk += 1;
                    }
                    Some(_) => topk += 1,
                    None => misses.push(json!({
                        "question": q, "want": ids,
                        "got": hits.iter().map(|p| format!("{} {}", p.product_id, p.name)).collect::<Vec<_>>(),
                    })),
                }
                bar.inc(1);
            }
            bar.finish_and_clear();
            let n = cases.len() as f64;
            let (r1, rk) = (top1 as f64 / n, topk as f64 / n);
            if *as_json {
                println!(
                    "{}",
                    json!({ "questions": cases.len(), "top1": r1, "topk": rk, "k": k, "misses": misses })
                );
            } else {
                println!(
                    "{} questions: right product first {:.1}%, in the top {k} {:.1}% (minimum {:.0}%)",
                    cases.len(),
                    100.0 * r1,
                    100.0 * rk,
                    100.0 * min
                );
                for m in &misses {
                    println!("  missed: {m}");
                }
            }
            Ok(if rk < *min {
                crate::audit::EXIT_GATE_FAILED
            } else {
                0
            })
        }
        AssistantCommand::Tickets { status, tenant } => {
            let t = app.find_tenant(tenant).await.map_err(app_err)?;
            for t in app
                .tickets_of(t.id, status.as_deref(), 500)
                .await
                .map_err(app_err)?
            {
                println!(
                    "{}  {}  {:<28}  conversation {}  {}",
                    t.created_at.to_rfc3339(),
                    t.status,
                    t.reason,
                    t.conversation_id,
                    t.id
                );
            }
            Ok(0)
        }
    }
}
