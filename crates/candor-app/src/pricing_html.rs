//! Price audits as pages people read: the summary in plain words, per grouping a table of
//! products, and per product a chart of what each group paid against the largest group
//! (ratios on a log scale, 95% intervals, the policy's threshold), with the flagged groups
//! listed. Proxy audits list each signal's association with each protected attribute.
//! Self-contained HTML with inline SVG; every number shown is in the audit's JSON document.

use serde_json::Value;

use crate::card::{esc, num};

const STYLE: &str = "body { font: 15px/1.5 system-ui, sans-serif; color: #1a1a1a; max-width: 72rem; margin: 2rem auto; padding: 0 1rem; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.2rem; margin-top: 2rem; border-bottom: 1px solid #ddd; } h3 { font-size: 1.05rem; margin-top: 1.5rem; }
table { border-collapse: collapse; margin: .5rem 0; font-size: 14px; } th, td { border: 1px solid #ccc; padding: .2rem .45rem; text-align: left; vertical-align: top; }
tr.flag td { background: #fdecea; } .muted { color: #666; font-size: 13px; }
.verdict { font-size: 1.05rem; padding: .5rem .75rem; border-left: 5px solid; } .verdict.pass { border-color: #1e7b45; background: #eaf6ee; } .verdict.fail { border-color: #c0392b; background: #fdecea; }
figure { margin: 0 0 1rem; } figcaption { font-size: 13px; color: #444; max-width: 40rem; }";

/// Ratios of one cell as horizontal bars from 1 on a log scale, with interval whiskers and
/// the threshold on both sides.
fn ratio_svg(title: &str, cell: &Value, max_ratio: f64) -> String {
    let groups: Vec<&Value> = cell["groups"]
        .as_array()
        .map(|g| g.iter().filter(|g| g["ratio"].is_number()).collect())
        .unwrap_or_default();
    let row = 22.0;
    let (label_w, bar_w) = (190.0, 380.0);
    let h = row * groups.len() as f64 + 40.0;
    let mut lo: f64 = 1.0 / max_ratio / 1.15;
    let mut hi: f64 = max_ratio * 1.15;
    for g in &groups {
        for v in [
            g["ratio"].as_f64(),
            g["interval"][0].as_f64(),
            g["interval"][1].as_f64(),
        ]
        .into_iter()
        .flatten()
        {
            if v > 0.0 {
                lo = lo.min(v / 1.05);
                hi = hi.max(v * 1.05);
            }
        }
    }
    let (llo, lhi) = (lo.ln(), hi.ln());
    let sx = |x: f64| label_w + (x.max(lo).ln() - llo) / (lhi - llo) * bar_w;
    let mut body = String::new();
    for (i, g) in groups.iter().enumerate() {
        let y = 6.0 + i as f64 * row;
        let r = g["ratio"].as_f64().unwrap_or(1.0);
        let flagged = g["flagged"].as_bool() == Some(true);
        let (x0, x1) = if r >= 1.0 {
            (sx(1.0), sx(r))
        } else {
            (sx(r), sx(1.0))
        };
        let colour = if flagged {
            "#c0392b"
        } else if g["beyond_threshold"].as_bool() == Some(true) {
            "#d68910"
        } else {
            "#1f5fa8"
        };
        let name = g["group"].as_str().unwrap_or("");
        body.push_str(&format!(
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"12\" text-anchor=\"end\">{}</text>\
<rect x=\"{x0:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"14\" fill=\"{colour}\" opacity=\"0.85\"><title>{} paid {r:.3}× the reference</title></rect>",
            label_w - 6.0,
            y + 12.0,
            esc(name),
            (x1 - x0).max(1.0),
            esc(name)
        ));
        if let (Some(a), Some(b)) = (g["interval"][0].as_f64(), g["interval"][1].as_f64()) {
            let cy = y + 7.0;
            body.push_str(&format!(
                "<g stroke=\"#111\" stroke-width=\"1.3\"><line x1=\"{:.1}\" y1=\"{cy:.1}\" x2=\"{:.1}\" y2=\"{cy:.1}\"/>\
<line x1=\"{0:.1}\" y1=\"{2:.1}\" x2=\"{0:.1}\" y2=\"{3:.1}\"/><line x1=\"{1:.1}\" y1=\"{2:.1}\" x2=\"{1:.1}\" y2=\"{3:.1}\"/>\
<title>95% interval {a:.3} – {b:.3}</title></g>",
                sx(a),
                sx(b),
                cy - 4.0,
                cy + 4.0
            ));
        }
        body.push_str(&format!(
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\">{r:.2}×</text>",
            sx(g["interval"][1].as_f64().unwrap_or(r).max(r).max(1.0)) + 5.0,
            y + 12.0
        ));
    }
    let bottom = h - 26.0;
    for (x, label, colour) in [
        (1.0, "reference".to_string(), "#111"),
        (max_ratio, format!("{max_ratio}×"), "#c0392b"),
        (1.0 / max_ratio, format!("1/{max_ratio}"), "#c0392b"),
    ] {
        body.push_str(&format!(
            "<line x1=\"{0:.1}\" y1=\"2\" x2=\"{0:.1}\" y2=\"{bottom:.1}\" stroke=\"{colour}\" stroke-dasharray=\"4 3\"/>\
<text x=\"{0:.1}\" y=\"{1:.1}\" font-size=\"11\" fill=\"{colour}\" text-anchor=\"middle\">{2}</text>",
            sx(x),
            bottom + 14.0,
            esc(&label)
        ));
    }
    format!(
        "<svg role=\"img\" aria-label=\"{}\" width=\"{:.0}\" height=\"{h:.0}\">{body}</svg>",
        esc(title),
        label_w + bar_w + 60.0
    )
}

fn interval_text(g: &Value) -> String {
    match (g["interval"][0].as_f64(), g["interval"][1].as_f64()) {
        (Some(a), Some(b)) => format!("{a:.3} – {b:.3}"),
        _ => "–".into(),
    }
}

fn attribute_section(doc: &Value, r: &Value) -> String {
    let attr = r["attribute"].as_str().unwrap_or("group");
    let max = doc["max_ratio"].as_f64().unwrap_or(1.25);
    let names = &doc["names"];
    let mut out = format!("<h2>By {}</h2>", esc(attr));
    out.push_str("<table><thead><tr><th>product</th><th>name</th><th>order lines</th><th>periods compared</th><th>periods flagged</th><th>largest gap</th></tr></thead><tbody>");
    for p in r["products"].as_array().into_iter().flatten() {
        let id = p["product"].as_str().unwrap_or("");
        let flagged = p["flagged"].as_bool() == Some(true);
        out.push_str(&format!(
            "<tr{}><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            if flagged { " class=\"flag\"" } else { "" },
            esc(id),
            esc(names[id].as_str().unwrap_or("")),
            p["lines"],
            p["compared_cells"],
            p["flagged_cells"],
            p["largest_gap"]
                .as_f64()
                .map_or_else(|| "–".into(), |g| format!("{g:.2}×")),
        ));
    }
    out.push_str("</tbody></table>");
    let cells: Vec<&Value> = r["cells"]
        .as_array()
        .map(|c| c.iter().collect())
        .unwrap_or_default();
    for p in r["products"].as_array().into_iter().flatten() {
        let id = p["product"].as_str().unwrap_or("");
        let mine: Vec<&&Value> = cells.iter().filter(|c| c["product"] == id).collect();
        // The period where the groups were furthest apart.
        let Some(widest) = mine
            .iter()
            .filter(|c| c["spread"].is_number())
            .max_by(|a, b| {
                let f = |c: &Value| {
                    (
                        c["flagged"].as_bool() == Some(true),
                        c["spread"].as_f64().unwrap_or(0.0),
                    )
                };
                let (fa, sa) = f(a);
                let (fb, sb) = f(b);
                fa.cmp(&fb).then(sa.total_cmp(&sb))
            })
        else {
            continue;
        };
        let title = format!(
            "{id} {} in {}: price paid per unit against {}",
            names[id].as_str().unwrap_or(""),
            widest["period"].as_str().unwrap_or(""),
            widest["reference"].as_str().unwrap_or("the largest group")
        );
        out.push_str(&format!(
            "<h3>{}</h3><figure>{}<figcaption>Each bar is what a group paid per unit divided by what {} paid (the group with the most order lines), on a log scale; whiskers are 95% bootstrap intervals; red bars are flagged (beyond {max}× or 1/{max}, interval excluding 1), amber bars are beyond the threshold within the noise. Groups with fewer than {} lines are left out.</figcaption></figure>",
            esc(&title),
            ratio_svg(&title, widest, max),
            esc(widest["reference"].as_str().unwrap_or("the reference")),
            doc["min_lines"],
        ));
        let flagged: Vec<(String, &Value)> = mine
            .iter()
            .flat_map(|c| {
                c["groups"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|g| g["flagged"].as_bool() == Some(true))
                    .map(|g| (c["period"].as_str().unwrap_or("").to_string(), g))
            })
            .collect();
        if !flagged.is_empty() {
            out.push_str("<table><thead><tr><th>period</th><th>group</th><th>order lines</th><th>price per unit</th><th>ratio</th><th>95% interval</th></tr></thead><tbody>");
            for (period, g) in flagged.iter().take(60) {
                out.push_str(&format!(
                    "<tr class=\"flag\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    esc(period),
                    esc(g["group"].as_str().unwrap_or("")),
                    g["lines"],
                    num(&g["mean_price"], 3),
                    num(&g["ratio"], 3),
                    interval_text(g)
                ));
            }
            out.push_str("</tbody></table>");
            if flagged.len() > 60 {
                out.push_str(&format!(
                    "<p class=\"muted\">{} more flagged groups are in the JSON document.</p>",
                    flagged.len() - 60
                ));
            }
        }
    }
    out
}

fn proxies_section(doc: &Value) -> String {
    let mut out = String::from(
        "<h2>Signals</h2><table><thead><tr><th>signal</th><th>protected attribute</th><th>Cramér's V</th><th>mutual information</th><th>AUC alone</th><th>flagged</th></tr></thead><tbody>",
    );
    for s in doc["signals"].as_array().into_iter().flatten() {
        let flagged = s["flagged"].as_bool() == Some(true);
        out.push_str(&format!(
            "<tr{}><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            if flagged { " class=\"flag\"" } else { "" },
            esc(s["signal"].as_str().unwrap_or("")),
            esc(s["attribute"].as_str().unwrap_or("")),
            num(&s["cramers_v"], 3),
            num(&s["mutual_information"], 4),
            num(&s["auc"], 3),
            if flagged {
                "yes: refused in every price check"
            } else {
                "no"
            }
        ));
    }
    out.push_str("</tbody></table>");
    out
}

/// A price audit document (dispersion or proxies) as a page.
pub fn price_audit_html(doc: &Value) -> String {
    let kind = doc["kind"].as_str().unwrap_or("file");
    let flagged = doc["flagged_products"].as_array().map_or(0, Vec::len)
        + doc["flagged_signals"].as_array().map_or(0, Vec::len);
    let title = match kind {
        "proxies" => "Pricing signals: proxy detection".to_string(),
        "monitoring" => "Price dispersion — what groups paid (monitoring)".to_string(),
        _ => "Price dispersion — what groups paid".to_string(),
    };
    let context = match kind {
        "monitoring" => format!(
            "Orders from {} to {} ({} people, {} order lines); periods by {}.",
            esc(doc["period"]["from"].as_str().unwrap_or("")),
            esc(doc["period"]["to"].as_str().unwrap_or("")),
            doc["people"],
            doc["lines"],
            esc(doc["period_unit"].as_str().unwrap_or("month"))
        ),
        "proxies" => format!(
            "Sample: {} ({} rows). A signal is flagged when its Cramér's V with a protected attribute is above {}.",
            esc(doc["source"].as_str().unwrap_or("")),
            doc["rows"],
            doc["max_cramers_v"]
        ),
        _ => format!(
            "Data: {} ({} order lines used of {}; {} cancellations left out); the {} products with the most order lines; periods by {}{}.",
            esc(doc["source"].as_str().unwrap_or("")),
            doc["rows"]["used"],
            doc["rows"]["read"],
            doc["rows"]["cancelled"],
            doc["top"],
            esc(doc["period_unit"].as_str().unwrap_or("month")),
            doc["currency"]
                .as_str()
                .map_or_else(String::new, |c| format!("; prices in {}", esc(c)))
        ),
    };
    let summary: String = doc["summary"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|s| format!("<li>{}</li>", esc(s)))
        .collect();
    let body: String = if kind == "proxies" {
        proxies_section(doc)
    } else {
        doc["attributes"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| attribute_section(doc, r))
            .collect()
    };
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{t}</title><style>{STYLE}</style></head><body>
<h1>{t}</h1>
<p>{context}</p>
<p class="verdict {cls}">{verdict}</p>
<h2>Summary</h2><ul>{summary}</ul>
{body}
<p class="muted">Audit {id}, {at}. Every number on this page is in the audit's JSON document. Intervals: stratified bootstrap over order lines ({resamples} resamples, seed {seed}).</p>
</body></html>
"#,
        t = esc(&title),
        cls = if flagged == 0 { "pass" } else { "fail" },
        verdict = if flagged == 0 {
            "Nothing flagged."
        } else if kind == "proxies" {
            "Some signals reveal a protected attribute: price checks that use them are refused."
        } else {
            "Some groups paid a different price for the same product beyond the policy's threshold: review the flagged products."
        },
        id = esc(doc["id"].as_str().unwrap_or("")),
        at = esc(doc["created_at"].as_str().unwrap_or("")),
        resamples = doc["resamples"],
        seed = doc["seed"],
    )
}
