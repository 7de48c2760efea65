//! `candor journeys uplift`: the uplift of email campaigns against a randomized holdout, from
//! a CSV of people (arm, outcomes, segments); Hillstrom's MineThatData challenge by default.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use candor_app::uplift_html::uplift_html;
use candor_ml::table::read_csv;
use candor_ml::uplift::{Outcome, Segmenter, uplift_report};
use clap::{Args, Subcommand};

#[derive(Subcommand, Debug)]
pub enum JourneysCommand {
    /// Uplift of each campaign against the holdout: visit and conversion rates (or any
    /// outcome columns) with 95% intervals, overall and by segment. Writes JSON and HTML.
    Uplift(UpliftArgs),
}

#[derive(Args, Debug)]
pub struct UpliftArgs {
    /// One row per person (CSV).
    #[arg(long)]
    pub data: PathBuf,
    /// The column naming each person's arm (the journey they got, or the holdout).
    #[arg(long, default_value = "segment")]
    pub arm_column: String,
    /// The holdout arm.
    #[arg(long, default_value = "No E-Mail")]
    pub control: String,
    /// Outcome columns; 0/1 columns are reported as rates.
    #[arg(long, value_delimiter = ',', default_value = "visit,conversion,spend")]
    pub outcomes: Vec<String>,
    /// Segment columns.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "newbie,channel,history_segment,zip_code"
    )]
    pub by: Vec<String>,
    #[arg(long)]
    pub json: Option<PathBuf>,
    #[arg(long)]
    pub html: Option<PathBuf>,
}

pub fn run(cmd: &JourneysCommand) -> Result<i32> {
    let JourneysCommand::Uplift(a) = cmd;
    let bytes = std::fs::read(&a.data).with_context(|| format!("reading {}", a.data.display()))?;
    uplift(&bytes, a)
}

/// The uplift report of a CSV already read (`a.data` names it in messages).
pub fn uplift(bytes: &[u8], a: &UpliftArgs) -> Result<i32> {
    let t =
        read_csv(bytes).map_err(|e| anyhow::anyhow!("{}: {e} [{}]", a.data.display(), e.code()))?;
    let col = |name: &str| {
        t.column(name).with_context(|| {
            format!(
                "{}: no column {name:?} (columns: {})",
                a.data.display(),
                t.headers.join(", ")
            )
        })
    };
    let arm_i = col(&a.arm_column)?;
    let arms: Vec<String> = t.rows.iter().map(|r| r[arm_i].clone()).collect();
    if !arms.contains(&a.control) {
        bail!(
            "no row is in the holdout {:?} (column {})",
            a.control,
            a.arm_column
        );
    }
    if !arms.iter().any(|x| *x != a.control) {
        bail!("every row is in the holdout: nothing to compare");
    }
    let mut outcome_values = Vec::new();
    for name in &a.outcomes {
        let i = col(name)?;
        let mut values = Vec::with_capacity(t.rows.len());
        for (n, r) in t.rows.iter().enumerate() {
            let v: f64 = r[i]
                .trim()
                .parse()
                .ok()
                .filter(|v: &f64| v.is_finite())
                .with_context(|| {
                    format!(
                        "{}: row {}: {name} {:?} is not a number",
                        a.data.display(),
                        n + 2,
                        r[i]
                    )
                })?;
            values.push(v);
        }
        let binary = values.iter().all(|v| *v == 0.0 || *v == 1.0);
        outcome_values.push((name.as_str(), values, binary));
    }
    let mut segment_values = Vec::new();
    for name in &a.by {
        let i = col(name)?;
        segment_values.push((
            name.as_str(),
            t.rows.iter().map(|r| r[i].clone()).collect::<Vec<_>>(),
        ));
    }
    let outcomes: Vec<Outcome<'_>> = outcome_values
        .iter()
        .map(|(n, v, b)| Outcome {
            name: n,
            values: v,
            binary: *b,
        })
        .collect();
    let segments: Vec<Segmenter<'_>> = segment_values
        .iter()
        .map(|(n, v)| Segmenter { name: n, values: v })
        .collect();
    let r = uplift_report(&arms, &a.control, &outcomes, &segments);
    if let Some(p) = &a.json {
        std::fs::write(p, serde_json::to_vec_pretty(&r)?)
            .with_context(|| format!("writing {}", p.display()))?;
    }
    let binary: Vec<&str> = outcome_values.iter().filter(|o| o.2).map(|o| o.0).collect();
    if let Some(p) = &a.html {
        std::fs::write(
            p,
            uplift_html(&r, "Journey uplift against the holdout", &binary),
        )
        .with_context(|| format!("writing {}", p.display()))?;
    }
    println!("journey\toutcome\temailed\tholdout\tuplift\t95% interval\tp");
    for tr in &r.treatments {
        for (o, e) in &tr.overall.effects {
            let f = |x: f64| format!("{x:.4}");
            println!(
                "{}\t{o}\t{}\t{}\t{}\t[{}, {}]\t{}",
                tr.treatment,
                f(e.treated),
                f(e.control),
                f(e.uplift),
                f(e.ci_low),
                f(e.ci_high),
                e.p_value.map_or("–".into(), |p| format!("{p:.2e}"))
            );
        }
    }
    Ok(0)
}
