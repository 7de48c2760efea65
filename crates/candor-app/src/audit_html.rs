//! The fairness audit as a page people read: the verdict in plain words, the gates, and per
//! protected attribute a table of group metrics, selection rates with their 95% intervals,
//! ROC and calibration curves per group, the proxies, and what per-group thresholds would be.
//! Self-contained HTML with inline SVG (no scripts, no external assets). Every number shown is
//! in the audit's JSON document.

use serde_json::Value;

use crate::card::{esc, num};

const PALETTE: [&str; 8] = [
    "#1f5fa8", "#c0392b", "#2e7d5b", "#8e44ad", "#d68910", "#117a8b", "#7b7d7d", "#a04000",
];

fn pct(v: &Value) -> String {
    v.as_f64()
        .map_or_else(|| "–".into(), |x| format!("{:.1}%", x * 100.0))
}

/// One bar: group, rate, its interval, too small to judge.
pub(crate) type Bar = (String, f64, Option<(f64, f64)>, bool);

/// Horizontal bars of a rate per group with interval whiskers and an optional reference line
/// (e.g. four fifths of the highest rate).
pub(crate) fn rate_bars_svg(title: &str, groups: &[Bar], line: Option<(f64, &str)>) -> String {
    let row = 24.0;
    let (label_w, bar_w) = (200.0, 300.0);
    let h = row * groups.len() as f64 + 34.0;
    let max = groups
        .iter()
        .map(|g| g.2.map_or(g.1, |c| c.1).max(g.1))
        .fold(0.0, f64::max)
        .max(1e-9)
        * 1.1;
    let sx = |x: f64| label_w + x / max * bar_w;
    let mut body = String::new();
    for (i, (name, v, ci, small)) in groups.iter().enumerate() {
        let y = 6.0 + i as f64 * row;
        if *small {
            body.push_str(&format!(
                "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"12\" text-anchor=\"end\">{}</text>\
<text x=\"{label_w:.1}\" y=\"{:.1}\" font-size=\"11\" fill=\"#777\">too small to judge</text>",
                label_w - 6.0,
                y + 13.0,
                esc(name),
                y + 13.0
            ));
            continue;
        }
        body.push_str(&format!(
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"12\" text-anchor=\"end\">{}</text>\
<rect x=\"{label_w:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"16\" fill=\"#1f5fa8\" opacity=\"0.8\"><title>{} {:.4}</title></rect>",
            label_w - 6.0,
            y + 13.0,
            esc(name),
            sx(*v) - label_w,
            esc(name),
            v
        ));
        if let Some((lo, hi)) = ci {
            let cy = y + 8.0;
            body.push_str(&format!(
                "<g stroke=\"#111\" stroke-width=\"1.5\"><line x1=\"{:.1}\" y1=\"{cy:.1}\" x2=\"{:.1}\" y2=\"{cy:.1}\"/>\
<line x1=\"{:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\"/><line x1=\"{:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\"/>\
<title>95% interval {lo:.4} – {hi:.4}</title></g>",
                sx(*lo),
                sx(*hi),
                sx(*lo),
                cy - 5.0,
                sx(*lo),
                cy + 5.0,
                sx(*hi),
                cy - 5.0,
                sx(*hi),
                cy + 5.0
            ));
        }
        body.push_str(&format!(
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\">{:.1}%</text>",
            sx(ci.map_or(*v, |c| c.1)) + 5.0,
            y + 13.0,
            v * 100.0
        ));
    }
    if let Some((x, label)) = line {
        let bottom = h - 24.0;
        body.push_str(&format!(
            "<line x1=\"{0:.1}\" y1=\"2\" x2=\"{0:.1}\" y2=\"{bottom:.1}\" stroke=\"#c0392b\" stroke-dasharray=\"4 3\"/>\
<text x=\"{0:.1}\" y=\"{1:.1}\" font-size=\"11\" fill=\"#c0392b\" text-anchor=\"middle\">{2}</text>",
            sx(x),
            bottom + 14.0,
            esc(label)
        ));
    }
    format!(
        "<svg role=\"img\" aria-label=\"{}\" width=\"{:.0}\" height=\"{h:.0}\">{body}</svg>",
        esc(title),
        label_w + bar_w + 70.0
    )
}

/// A square chart of one curve per group (ROC or calibration), with the diagonal.
fn curves_svg(
    title: &str,
    x_label: &str,
    y_label: &str,
    curves: &[(String, Vec<(f64, f64)>)],
) -> String {
    let (w, h, pad) = (300.0, 300.0, 40.0);
    let sx = |x: f64| pad + x.clamp(0.0, 1.0) * (w - 2.0 * pad);
    let sy = |y: f64| h - pad - y.clamp(0.0, 1.0) * (h - 2.0 * pad);
    let mut body = String::new();
    let mut legend = String::new();
    for (i, (name, pts)) in curves.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        let p: Vec<String> = pts
            .iter()
            .map(|(x, y)| format!("{:.1},{:.1}", sx(*x), sy(*y)))
            .collect();
        body.push_str(&format!(
            "<polyline points=\"{}\" fill=\"none\" stroke=\"{color}\" stroke-width=\"2\"><title>{}</title></polyline>",
            p.join(" "),
            esc(name)
        ));
        legend.push_str(&format!(
            "<span style=\"color:{color}\">■</span> {} &nbsp;",
            esc(name)
        ));
    }
    format!(
        "<figure><svg role=\"img\" aria-label=\"{t}\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\">\
<rect x=\"{pad}\" y=\"{pad}\" width=\"{iw}\" height=\"{iw}\" fill=\"#f6f7f9\" stroke=\"#888\"/>\
<line x1=\"{x0}\" y1=\"{y0}\" x2=\"{x1}\" y2=\"{y1}\" stroke=\"#999\" stroke-dasharray=\"4 4\"/>{body}\
<text x=\"{cx}\" y=\"{by}\" text-anchor=\"middle\" font-size=\"12\">{xl}</text>\
<text x=\"12\" y=\"{cy}\" text-anchor=\"middle\" font-size=\"12\" transform=\"rotate(-90 12 {cy})\">{yl}</text></svg>\
<figcaption>{t}<br>{legend}</figcaption></figure>",
        t = esc(title),
        iw = w - 2.0 * pad,
        x0 = sx(0.0),
        y0 = sy(0.0),
        x1 = sx(1.0),
        y1 = sy(1.0),
        cx = w / 2.0,
        by = h - 8.0,
        cy = h / 2.0,
        xl = esc(x_label),
        yl = esc(y_label),
    )
}

fn interval(v: &Value) -> Option<(f64, f64)> {
    Some((v["low"].as_f64()?, v["high"].as_f64()?))
}

/// Bars of the selection rate per group of one attribute (with intervals and the four-fifths
/// line), for the report and the model card.
pub(crate) fn selection_bars(attr: &Value) -> String {
    let groups = attr["audit"]["groups"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let cis = attr["intervals"]["selection_rate"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let bars: Vec<Bar> = groups
        .iter()
        .enumerate()
        .map(|(i, g)| {
            (
                g["group"].as_str().unwrap_or("").to_string(),
                g["selection_rate"].as_f64().unwrap_or(0.0),
                cis.get(i).and_then(interval),
                g["too_small"].as_bool().unwrap_or(false),
            )
        })
        .collect();
    let highest = bars
        .iter()
        .filter(|b| !b.3)
        .map(|b| b.1)
        .fold(0.0, f64::max);
    rate_bars_svg(
        &format!(
            "Selection rate by {}",
            attr["audit"]["attribute"].as_str().unwrap_or("")
        ),
        &bars,
        (highest > 0.0).then_some((highest * 0.8, "4/5 of highest")),
    )
}

fn verdicts_table(doc: &Value) -> String {
    let rows: String = doc["report"]["verdicts"]
        .as_array()
        .map(|v| {
            // Passed proxy checks (one per feature and attribute) are summed up in one row;
            // the Proxies section lists them all.
            let quiet = v
                .iter()
                .filter(|x| x["gate"] == "max_proxy_cramers_v" && x["passed"] == true)
                .count();
            let mut rows: String = v
                .iter()
                .filter(|x| !(x["gate"] == "max_proxy_cramers_v" && x["passed"] == true))
                .map(|x| {
                    let passed = x["passed"].as_bool().unwrap_or(false);
                    format!(
                        "<tr class=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                        if passed { "pass" } else { "fail" },
                        esc(x["gate"].as_str().unwrap_or("")),
                        esc(x["subject"].as_str().unwrap_or("")),
                        x["value"].as_f64().map_or("cannot be computed".into(), |v| format!("{v:.4}")),
                        num(&x["limit"], 3),
                        if passed { "passed" } else { "FAILED" }
                    )
                })
                .collect();
            if quiet > 0 {
                rows.push_str(&format!(
                    "<tr class=\"pass\"><td>max_proxy_cramers_v</td><td colspan=\"3\">{quiet} more feature–attribute pairs below the limit (see Proxies)</td><td>passed</td></tr>"
                ));
            }
            rows
        })
        .unwrap_or_default();
    format!(
        "<table><thead><tr><th>gate</th><th>applies to</th><th>value</th><th>limit</th><th>verdict</th></tr></thead><tbody>{rows}</tbody></table>"
    )
}

/// The summary lines and the verdict table of an audit document, for the model card.
pub(crate) fn audit_overview(doc: &Value) -> String {
    let words: String = doc["summary"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(|l| format!("<li>{}</li>", esc(l)))
                .collect()
        })
        .unwrap_or_default();
    format!("<ul class=\"summary\">{words}</ul>{}", verdicts_table(doc))
}

fn attribute_section(attr: &Value, thresholds_warning: &str) -> String {
    let a = &attr["audit"];
    let name = a["attribute"].as_str().unwrap_or("");
    let groups = a["groups"].as_array().cloned().unwrap_or_default();
    let scores = attr["scores"].as_array().cloned().unwrap_or_default();
    let sel_ci = attr["intervals"]["selection_rate"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let tpr_ci = attr["intervals"]["tpr"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let parity = attr["parity_thresholds"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let ci_text = |v: Option<&Value>| {
        v.and_then(interval).map_or(String::new(), |(l, h)| {
            format!(" <small>[{:.1}–{:.1}]</small>", l * 100.0, h * 100.0)
        })
    };
    let rows: String = groups
        .iter()
        .enumerate()
        .map(|(i, g)| {
            let group = esc(g["group"].as_str().unwrap_or(""));
            if g["too_small"].as_bool() == Some(true) {
                return format!(
                    "<tr><td>{group}</td><td>{}</td><td colspan=\"10\" class=\"muted\">too small to judge (fewer rows than the policy's minimum group size)</td></tr>",
                    g["count"]
                );
            }
            let s = scores.get(i).cloned().unwrap_or(Value::Null);
            let reference = if a["reference"].as_str() == g["group"].as_str() {
                " <small>(reference)</small>"
            } else {
                ""
            };
            format!(
                "<tr><td>{group}{reference}</td><td>{}</td><td>{}</td><td>{}{}</td><td>{}{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                g["count"],
                pct(&g["base_rate"]),
                pct(&g["selection_rate"]),
                ci_text(sel_ci.get(i)),
                pct(&g["tpr"]),
                ci_text(tpr_ci.get(i)),
                pct(&g["fpr"]),
                pct(&g["precision"]),
                num(&s["auc"], 3),
                num(&s["mean_score"], 3),
                num(&s["calibration_error"], 3),
                num(&g["vs_reference"]["selection_rate_ratio"], 3),
                num(&parity.get(i).cloned().unwrap_or(Value::Null), 3),
            )
        })
        .collect();
    let disp = |label: &str, d: &Value| {
        if d.is_null() {
            return String::new();
        }
        format!(
            "<tr><td>{label}</td><td>{}</td><td>{}</td><td>{} → {}</td></tr>",
            num(&d["difference"], 4),
            num(&d["ratio"], 4),
            esc(d["lowest"].as_str().unwrap_or("")),
            esc(d["highest"].as_str().unwrap_or(""))
        )
    };
    let eo = format!(
        "<tr><td>equalized odds (TPR and FPR)</td><td>{}</td><td>{}</td><td></td></tr>",
        num(&a["equalized_odds_difference"], 4),
        num(&a["equalized_odds_ratio"], 4)
    );
    let curve =
        |key: &str, f: &dyn Fn(&Value) -> Vec<(f64, f64)>| -> Vec<(String, Vec<(f64, f64)>)> {
            groups
                .iter()
                .zip(&scores)
                .filter(|(g, _)| g["too_small"].as_bool() != Some(true))
                .map(|(g, s)| (g["group"].as_str().unwrap_or("").to_string(), f(&s[key])))
                .filter(|(_, p)| !p.is_empty())
                .collect()
        };
    let roc = curve("roc", &|v| {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|p| Some((p.get(0)?.as_f64()?, p.get(1)?.as_f64()?)))
                    .collect()
            })
            .unwrap_or_default()
    });
    let cal = curve("calibration", &|v| {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|b| Some((b["mean_score"].as_f64()?, b["observed_rate"].as_f64()?)))
                    .collect()
            })
            .unwrap_or_default()
    });
    let charts = if roc.is_empty() && cal.is_empty() {
        String::new()
    } else {
        format!(
            "{}{}",
            curves_svg(
                &format!("ROC by {name}"),
                "false-positive rate",
                "true-positive rate",
                &roc
            ),
            curves_svg(
                &format!("Calibration by {name}"),
                "mean score",
                "observed rate",
                &cal
            )
        )
    };
    format!(
        "<section><h3>{n}</h3>\
<div class=\"charts\"><figure>{bars}<figcaption>Selection rate per group with 95% bootstrap intervals; dashed: four fifths of the highest rate.</figcaption></figure>{charts}</div>\
<table><thead><tr><th>group</th><th>rows</th><th>base rate</th><th>selection rate [95%]</th><th>true-positive rate [95%]</th><th>false-positive rate</th><th>precision</th><th>AUC</th><th>mean score</th><th>calibration error</th><th>selection vs reference</th><th>parity threshold</th></tr></thead><tbody>{rows}</tbody></table>\
<table><thead><tr><th>disparity</th><th>difference (max − min)</th><th>ratio (min ÷ max)</th><th>lowest → highest</th></tr></thead><tbody>{dp}{eop}{eo}{pp}</tbody></table>\
<p class=\"muted\">Parity thresholds: {warn}</p></section>",
        n = esc(name),
        bars = selection_bars(attr),
        dp = disp(
            "demographic parity (selection rate)",
            &a["demographic_parity"]
        ),
        eop = disp(
            "equal opportunity (true-positive rate)",
            &a["equal_opportunity"]
        ),
        eo = eo,
        pp = disp("predictive parity (precision)", &a["predictive_parity"]),
        warn = esc(thresholds_warning),
    )
}

fn proxies_table(doc: &Value) -> String {
    let limit = doc["gates"]["max_proxy_cramers_v"].as_f64();
    let mut list: Vec<Value> = doc["report"]["proxies"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if list.is_empty() {
        return "<p>No model features were tested as proxies (no feature values in this audit).</p>".into();
    }
    list.sort_by(|a, b| {
        b["cramers_v"]
            .as_f64()
            .unwrap_or(0.0)
            .total_cmp(&a["cramers_v"].as_f64().unwrap_or(0.0))
    });
    let rows: String = list
        .iter()
        .take(40)
        .map(|p| {
            let v = p["cramers_v"].as_f64().unwrap_or(0.0);
            let flagged = limit.is_some_and(|l| v > l);
            format!(
                "<tr class=\"{}\"><td><code>{}</code></td><td>{}</td><td>{v:.3}</td><td>{}</td><td>{} ({})</td><td>{}</td></tr>",
                if flagged { "fail" } else { "" },
                esc(p["feature"].as_str().unwrap_or("")),
                esc(p["attribute"].as_str().unwrap_or("")),
                num(&p["mutual_information"], 4),
                num(&p["auc"], 3),
                esc(p["auc_group"].as_str().unwrap_or("")),
                if flagged { "FLAGGED" } else { "" }
            )
        })
        .collect();
    format!(
        "<table><thead><tr><th>feature</th><th>protected attribute</th><th>Cramér's V</th><th>mutual information (nats)</th><th>AUC alone (group)</th><th></th></tr></thead><tbody>{rows}</tbody></table>"
    )
}

/// The whole audit report page.
pub fn audit_report_html(doc: &Value) -> String {
    let passed = doc["passed"].as_bool().unwrap_or(false);
    let title = format!(
        "Fairness audit — model version {} ({})",
        doc["model_version"],
        doc["kind"].as_str().unwrap_or("validation")
    );
    let warn = doc["group_thresholds_warning"].as_str().unwrap_or("");
    let sections: String = doc["report"]["attributes"]
        .as_array()
        .map(|a| a.iter().map(|x| attribute_section(x, warn)).collect())
        .unwrap_or_default();
    let context = match doc["kind"].as_str() {
        Some("monitoring") => format!(
            "Live decisions from {} to {}; outcome: <code>{}</code> within {} days of the decision.",
            esc(doc["period"]["from"].as_str().unwrap_or("")),
            esc(doc["period"]["to"].as_str().unwrap_or("")),
            esc(doc["outcome"]["event"].as_str().unwrap_or("")),
            doc["outcome"]["within_days"]
        ),
        _ => format!(
            "Data: {} · outcome column <code>{}</code> · a lead counts as selected at a score of {} or more.",
            esc(doc["source"].as_str().unwrap_or("")),
            esc(doc["target"].as_str().unwrap_or("")),
            doc["report"]["threshold"]
        ),
    };
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body {{ font: 15px/1.5 system-ui, sans-serif; color: #1a1a1a; max-width: 72rem; margin: 2rem auto; padding: 0 1rem; }}
h1 {{ font-size: 1.5rem; }} h2 {{ font-size: 1.2rem; margin-top: 2rem; border-bottom: 1px solid #ddd; }} h3 {{ font-size: 1.05rem; margin-top: 1.5rem; }}
table {{ border-collapse: collapse; margin: .5rem 0; font-size: 14px; }} th, td {{ border: 1px solid #ccc; padding: .2rem .45rem; text-align: left; vertical-align: top; }}
tr.fail td {{ background: #fdecea; }} tr.pass td:last-child {{ color: #1e7b45; }}
.verdict {{ font-size: 1.1rem; padding: .5rem .75rem; border-left: 5px solid; }}
.verdict.pass {{ border-color: #1e7b45; background: #eaf6ee; }} .verdict.fail {{ border-color: #c0392b; background: #fdecea; }}
.muted {{ color: #666; font-size: 13px; }} .charts {{ display: flex; flex-wrap: wrap; gap: 1.5rem; align-items: flex-start; }}
figure {{ margin: 0; }} figcaption {{ font-size: 13px; color: #444; max-width: 32rem; }}
</style></head><body>
<h1>{title}</h1>
<p>{context}</p>
<p class="verdict {cls}">{verdict}</p>
<h2>Summary</h2>
{overview}
<h2>Groups</h2>
{sections}
<h2>Proxies</h2>
<p>How much each model feature reveals a protected attribute. A feature over the policy's limit can carry the attribute's bias into the model even though the attribute itself is never a feature.</p>
{proxies}
<p class="muted">Every number on this page is in the audit's JSON document. Intervals: stratified bootstrap on confusion counts ({resamples} resamples).</p>
</body></html>
"#,
        cls = if passed { "pass" } else { "fail" },
        verdict = if passed {
            "Every fairness gate passed."
        } else {
            "The audit FAILED: this model may not be approved or activated unless an administrator records an override with a reason."
        },
        overview = audit_overview(doc),
        proxies = proxies_table(doc),
        resamples = doc["resamples"]
            .as_u64()
            .map_or("the configured number of".into(), |n| n.to_string()),
    )
}
