//! The model card as a page people read: what the model predicts, from what data, how well,
//! how calibrated, which factors weigh most, who approved it and why. Self-contained HTML with
//! inline SVG charts (no scripts, no external assets); the same facts are in the JSON card.

use serde_json::Value;

use crate::scoring::ModelView;

pub(crate) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

pub(crate) fn num(v: &Value, digits: usize) -> String {
    v.as_f64()
        .map_or_else(|| "–".to_string(), |x| format!("{x:.digits$}"))
}

/// Reliability diagram: mean predicted vs observed rate per bin, with the diagonal.
fn calibration_svg(bins: &[Value]) -> String {
    let (w, h, pad) = (320.0, 320.0, 40.0);
    let sx = |x: f64| pad + x * (w - 2.0 * pad);
    let sy = |y: f64| h - pad - y * (h - 2.0 * pad);
    let mut pts = Vec::new();
    let mut dots = String::new();
    for b in bins {
        let (Some(p), Some(o), Some(n)) = (
            b["mean_predicted"].as_f64(),
            b["observed_rate"].as_f64(),
            b["count"].as_u64(),
        ) else {
            continue;
        };
        pts.push(format!("{:.1},{:.1}", sx(p), sy(o)));
        dots.push_str(&format!(
            "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"4\" fill=\"#1f5fa8\"><title>predicted {:.3}, observed {:.3}, {} people</title></circle>",
            sx(p),
            sy(o),
            p,
            o,
            n
        ));
    }
    format!(
        "<svg role=\"img\" aria-label=\"Calibration: predicted probability against observed rate\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\">\
<rect x=\"{pad}\" y=\"{pad}\" width=\"{iw}\" height=\"{iw}\" fill=\"#f6f7f9\" stroke=\"#888\"/>\
<line x1=\"{x0}\" y1=\"{y0}\" x2=\"{x1}\" y2=\"{y1}\" stroke=\"#999\" stroke-dasharray=\"4 4\"/>\
<polyline points=\"{pts}\" fill=\"none\" stroke=\"#1f5fa8\" stroke-width=\"2\"/>{dots}\
<text x=\"{cx}\" y=\"{by}\" text-anchor=\"middle\" font-size=\"12\">predicted probability</text>\
<text x=\"12\" y=\"{cy}\" text-anchor=\"middle\" font-size=\"12\" transform=\"rotate(-90 12 {cy})\">observed rate</text>\
<text x=\"{pad}\" y=\"{ly}\" font-size=\"10\">0</text><text x=\"{x1}\" y=\"{ly}\" font-size=\"10\" text-anchor=\"end\">1</text></svg>",
        iw = w - 2.0 * pad,
        x0 = sx(0.0),
        y0 = sy(0.0),
        x1 = sx(1.0),
        y1 = sy(1.0),
        pts = pts.join(" "),
        cx = w / 2.0,
        by = h - 8.0,
        cy = h / 2.0,
        ly = h - pad + 14.0,
    )
}

/// Horizontal bars of mean |contribution| per factor.
fn importance_svg(items: &[(String, f64)]) -> String {
    let row = 22.0;
    let (label_w, bar_w) = (190.0, 260.0);
    let h = row * items.len() as f64 + 10.0;
    let max = items.iter().map(|(_, v)| *v).fold(0.0, f64::max).max(1e-12);
    let mut body = String::new();
    for (i, (name, v)) in items.iter().enumerate() {
        let y = 5.0 + i as f64 * row;
        let len = v / max * bar_w;
        body.push_str(&format!(
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"12\" text-anchor=\"end\">{}</text>\
<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{len:.1}\" height=\"14\" fill=\"#2e7d5b\"><title>{} {v:.4}</title></rect>\
<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\">{v:.3}</text>",
            label_w - 6.0,
            y + 12.0,
            esc(name),
            label_w,
            y,
            esc(name),
            label_w + len + 4.0,
            y + 12.0
        ));
    }
    format!(
        "<svg role=\"img\" aria-label=\"Mean absolute contribution per factor\" width=\"{}\" height=\"{h:.0}\">{body}</svg>",
        label_w + bar_w + 60.0
    )
}

fn metrics_row(name: &str, m: &Value) -> String {
    if m.is_null() {
        return String::new();
    }
    format!(
        "<tr><th scope=\"row\">{}</th><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
        esc(name),
        num(&m["auc"], 4),
        num(&m["log_loss"], 4),
        num(&m["brier"], 4),
        num(&m["calibration_error"], 4),
        m["rows"].as_u64().unwrap_or(0)
    )
}

/// The card's fairness section: the latest validation audit (verdict, words, gates, selection
/// bars), its override if any, and recent monitoring.
fn fairness_html(f: &crate::fairness::FairnessRecord) -> String {
    let Some(a) = &f.validation else {
        return "<p class=\"warn\">No fairness audit has been recorded for this model. It cannot be \
                approved or activated until one passes (<code>candor audit</code>) or an administrator \
                overrides a failed one.</p>"
            .to_string();
    };
    let mut out = format!(
        "<p class=\"{}\">Validation audit {} on {} by {}: <strong>{}</strong>.</p>",
        if a.passed { "ok" } else { "warn" },
        a.id,
        a.created_at,
        esc(&a.actor),
        if a.passed {
            "every gate passed"
        } else {
            "FAILED"
        }
    );
    if let Some(o) = &a.override_ {
        out.push_str(&format!(
            "<p class=\"override\"><strong>Override</strong> of the failed audit by {} on {}: \
             “{}”. The model may be approved and activated despite the failed gates; the override \
             is in the audit log.</p>",
            esc(&o.actor),
            o.at,
            esc(&o.reason)
        ));
    }
    out.push_str(&crate::audit_html::audit_overview(&a.report));
    out.push_str("<div class=\"charts\">");
    if let Some(attrs) = a.report["report"]["attributes"].as_array() {
        for x in attrs.iter().take(4) {
            out.push_str(&format!(
                "<figure>{}</figure>",
                crate::audit_html::selection_bars(x)
            ));
        }
    }
    out.push_str("</div>");
    if !f.monitoring.is_empty() {
        let rows: String = f
            .monitoring
            .iter()
            .map(|m| {
                format!(
                    "<tr><td>{}</td><td>{} – {}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    m.id,
                    m.period_start.map(|t| t.to_string()).unwrap_or_default(),
                    m.period_end.map(|t| t.to_string()).unwrap_or_default(),
                    m.rows,
                    if m.passed { "passed" } else { "ALERT" },
                    esc(&m.failed_gates.join(", "))
                )
            })
            .collect();
        out.push_str(&format!(
            "<h3>Monitoring of live decisions</h3><table><thead><tr><th>audit</th><th>period</th>\
             <th>decisions with known outcome</th><th>verdict</th><th>breached gates</th></tr></thead>\
             <tbody>{rows}</tbody></table>"
        ));
    }
    out
}

/// Renders a model card.
pub fn model_card_html(view: &ModelView) -> String {
    let c = &view.row.card;
    let title = esc(&format!(
        "Model card — {} version {}",
        view.row.name, view.row.version
    ));
    let data = &c["data"];
    let list = |v: &Value| {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(esc)
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "none".into())
    };
    let importance: Vec<(String, f64)> = c["importance"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|p| Some((p.get(0)?.as_str()?.to_string(), p.get(1)?.as_f64()?)))
                .take(15)
                .collect()
        })
        .unwrap_or_default();
    let features: String = c["features"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|f| {
                    let kind = if f["categorical"].as_bool() == Some(true) {
                        format!(
                            "categorical ({} values)",
                            f["levels"].as_array().map_or(0, Vec::len)
                        )
                    } else if f["levels"].is_array() {
                        "yes/no".to_string()
                    } else {
                        "number".to_string()
                    };
                    format!(
                        "<tr><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
                        esc(f["name"].as_str().unwrap_or("")),
                        kind,
                        esc(f["description"].as_str().unwrap_or(""))
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let transitions: String = view
        .transitions
        .iter()
        .map(|t| {
            format!(
                "<tr><td>{}</td><td>{} → {}</td><td>{}</td><td>{}</td></tr>",
                t.at,
                esc(&t.from),
                esc(&t.to),
                esc(&t.actor),
                esc(&t.reason)
            )
        })
        .collect();
    let calibration = c["holdout"]["calibration"]
        .as_array()
        .map(|b| calibration_svg(b))
        .unwrap_or_default();
    let audit = fairness_html(&view.fairness);
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body {{ font: 15px/1.5 system-ui, sans-serif; color: #1a1a1a; max-width: 60rem; margin: 2rem auto; padding: 0 1rem; }}
h1 {{ font-size: 1.5rem; }} h2 {{ font-size: 1.15rem; margin-top: 2rem; border-bottom: 1px solid #ddd; }}
table {{ border-collapse: collapse; margin: .5rem 0; }} th, td {{ border: 1px solid #ccc; padding: .25rem .5rem; text-align: left; vertical-align: top; }}
.status {{ display: inline-block; padding: .1rem .5rem; border-radius: .3rem; background: #e8eef7; }}
.warn {{ background: #fff4d6; border-left: 4px solid #b7791f; padding: .5rem .75rem; }}
.charts {{ display: flex; flex-wrap: wrap; gap: 2rem; }}
.ok {{ background: #eaf6ee; border-left: 4px solid #1e7b45; padding: .5rem .75rem; }}
.override {{ background: #fdecea; border-left: 4px solid #c0392b; padding: .5rem .75rem; }}
tr.fail td {{ background: #fdecea; }}
</style></head><body>
<h1>{title}</h1>
<p><span class="status">status: {status}</span> · created {created} · digest <code>{digest}</code></p>
<h2>What it predicts</h2>
<p>Probability of <strong>{target}</strong> ({horizon}), as a number from 0 to 1 and a tier (A ≥ 0.5, B ≥ 0.25, C ≥ 0.1, D below).
Scores are computed only for people who allow <em>profiling</em>; each score is stored as a decision with its reasons and can be contested.</p>
<h2>Intended use and limitations</h2>
<p>{intended}</p>
<ul>{limits}</ul>
<h2>Data</h2>
<table><tbody>
<tr><th scope="row">Source</th><td>{source}</td></tr>
<tr><th scope="row">Rows</th><td>{rows} ({positives} positive); trained on {train_rows}, held out {holdout_rows} — {holdout_rule}</td></tr>
<tr><th scope="row">Rows left out (no profiling consent)</th><td>{dropped}</td></tr>
<tr><th scope="row">Columns used</th><td>{used}</td></tr>
<tr><th scope="row">Protected attributes (never features)</th><td>{protected}</td></tr>
<tr><th scope="row">Excluded columns</th><td>{excluded}</td></tr>
<tr><th scope="row">Model</th><td>{trees} gradient-boosted trees ({imported})</td></tr>
</tbody></table>
<h2>Performance on held-out rows</h2>
<table><thead><tr><th>model</th><th>AUC</th><th>log-loss</th><th>Brier</th><th>calibration error</th><th>rows</th></tr></thead><tbody>
{m1}{m2}</tbody></table>
<div class="charts"><figure>{calibration}<figcaption>Calibration on the holdout (dashed: perfect).</figcaption></figure>
<figure>{importance}<figcaption>Factors by mean absolute contribution to the score (holdout).</figcaption></figure></div>
<h2>Fairness</h2>
{audit}
<h2>Features</h2>
<table><thead><tr><th>feature</th><th>kind</th><th>how reasons describe it</th></tr></thead><tbody>{features}</tbody></table>
<h2>Lifecycle</h2>
<table><thead><tr><th>when</th><th>step</th><th>by</th><th>reason</th></tr></thead><tbody>{transitions}</tbody></table>
</body></html>
"#,
        intended = esc(c["intended_use"]
            .as_str()
            .unwrap_or("Not recorded for this model.")),
        limits = c["limitations"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(|l| format!("<li>{}</li>", esc(l)))
                    .collect::<String>()
            })
            .unwrap_or_default(),
        status = esc(&view.row.status),
        created = view.row.created_at,
        digest = esc(&view.row.digest),
        target = esc(c["target"].as_str().unwrap_or("the outcome")),
        horizon = esc(c["horizon"].as_str().unwrap_or("")),
        source = esc(c["source"].as_str().unwrap_or("")),
        rows = data["rows"].as_u64().unwrap_or(0),
        positives = data["positives"].as_u64().unwrap_or(0),
        train_rows = data["train_rows"].as_u64().unwrap_or(0),
        holdout_rows = data["holdout_rows"].as_u64().unwrap_or(0),
        holdout_rule = esc(data["holdout_rule"].as_str().unwrap_or("imported model")),
        dropped = c["dropped_without_profiling_consent"].as_u64().unwrap_or(0),
        used = list(&data["columns_used"]),
        protected = list(&data["protected"]),
        excluded = list(&data["excluded"]),
        trees = c["trees"].as_u64().unwrap_or(0),
        imported = esc(c["imported_from"].as_str().unwrap_or("trained by Candor")),
        m1 = metrics_row("gradient-boosted trees (calibrated)", &c["holdout"]),
        m2 = metrics_row(
            "logistic regression (baseline)",
            &c["baseline_logistic_regression"]
        ),
        importance = importance_svg(&importance),
    )
}
