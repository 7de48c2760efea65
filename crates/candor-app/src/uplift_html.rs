//! The uplift report as a page: per journey and outcome, the emailed and holdout rates, the
//! uplift with its 95% interval as a chart (bars either side of zero, whiskers for the
//! interval), and the same within each segment. Every number shown is in the JSON report.

use candor_ml::uplift::{ArmEffects, Effect, UpliftReport};

use crate::card::esc;

fn pct(x: f64) -> String {
    format!("{:.2}%", 100.0 * x)
}

fn value(x: f64, rate: bool) -> String {
    if rate { pct(x) } else { format!("{x:.3}") }
}

/// Bars of an effect either side of zero with the interval as whiskers.
fn effect_bars_svg(title: &str, rows: &[(String, &Effect)], rate: bool) -> String {
    let row = 24.0;
    let (label_w, half) = (230.0, 170.0);
    let h = row * rows.len() as f64 + 12.0;
    let max = rows
        .iter()
        .map(|(_, e)| e.ci_low.abs().max(e.ci_high.abs()))
        .fold(0.0, f64::max)
        .max(1e-12)
        * 1.1;
    let zero = label_w + half;
    let sx = |x: f64| zero + x / max * half;
    let mut body =
        format!("<line x1=\"{zero:.1}\" y1=\"0\" x2=\"{zero:.1}\" y2=\"{h:.1}\" stroke=\"#555\"/>");
    for (i, (name, e)) in rows.iter().enumerate() {
        let y = 4.0 + i as f64 * row;
        let (x0, x1) = (sx(e.uplift.min(0.0)), sx(e.uplift.max(0.0)));
        let fill = if e.ci_low > 0.0 {
            "#2e7d5b"
        } else if e.ci_high < 0.0 {
            "#c0392b"
        } else {
            "#7b7d7d"
        };
        let cy = y + 8.0;
        body.push_str(&format!(
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"12\" text-anchor=\"end\">{}</text>\
<rect x=\"{x0:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"16\" fill=\"{fill}\" opacity=\"0.8\"><title>{} {}</title></rect>\
<g stroke=\"#111\" stroke-width=\"1.5\"><line x1=\"{:.1}\" y1=\"{cy:.1}\" x2=\"{:.1}\" y2=\"{cy:.1}\"/>\
<line x1=\"{:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\"/><line x1=\"{:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\"/>\
<title>95% interval {} to {}</title></g>\
<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\">{}</text>",
            label_w - 6.0,
            y + 13.0,
            esc(name),
            (x1 - x0).max(1.0),
            esc(name),
            value(e.uplift, rate),
            sx(e.ci_low),
            sx(e.ci_high),
            sx(e.ci_low),
            cy - 5.0,
            sx(e.ci_low),
            cy + 5.0,
            sx(e.ci_high),
            cy - 5.0,
            sx(e.ci_high),
            cy + 5.0,
            value(e.ci_low, rate),
            value(e.ci_high, rate),
            sx(e.ci_high) + 5.0,
            y + 13.0,
            value(e.uplift, rate)
        ));
    }
    format!(
        "<svg role=\"img\" aria-label=\"{}\" width=\"{:.0}\" height=\"{h:.0}\">{body}</svg>",
        esc(title),
        label_w + 2.0 * half + 80.0
    )
}

fn table(rows: &[(String, &ArmEffects)], outcome: &str, rate: bool) -> String {
    let mut t = String::from(
        "<table><thead><tr><th>group</th><th>emailed</th><th>holdout</th><th>emailed rate</th><th>holdout rate</th><th>uplift</th><th>95% interval</th><th>relative</th><th>p</th></tr></thead><tbody>",
    );
    for (name, a) in rows {
        let Some(e) = a.effects.get(outcome) else {
            continue;
        };
        t.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{} to {}</td><td>{}</td><td>{}</td></tr>",
            esc(name),
            e.n_treated,
            e.n_control,
            value(e.treated, rate),
            value(e.control, rate),
            value(e.uplift, rate),
            value(e.ci_low, rate),
            value(e.ci_high, rate),
            e.relative.map_or("–".into(), |r| format!("{:+.0}%", 100.0 * r)),
            e.p_value.map_or("–".into(), |p| if p < 1e-4 { "<0.0001".into() } else { format!("{p:.4}") }),
        ));
    }
    t.push_str("</tbody></table>");
    t
}

/// The report as a page. `binary` names the outcomes that are rates.
pub fn uplift_html(r: &UpliftReport, title: &str, binary: &[&str]) -> String {
    let mut body = format!(
        "<p>{} people; each journey is compared with the randomly held-out group <b>{}</b>. Uplift is the journey's rate minus the holdout's; intervals are 95% (normal approximation). Green: the interval is above zero; grey: it includes zero.</p>",
        r.rows,
        esc(&r.control)
    );
    let outcomes: Vec<String> = r
        .treatments
        .first()
        .map(|t| t.overall.effects.keys().cloned().collect())
        .unwrap_or_default();
    for outcome in &outcomes {
        let rate = binary.contains(&outcome.as_str());
        body.push_str(&format!("<h2>{}</h2>", esc(outcome)));
        let overall: Vec<(String, &ArmEffects)> = r
            .treatments
            .iter()
            .map(|t| (t.treatment.clone(), &t.overall))
            .collect();
        let bars: Vec<(String, &Effect)> = overall
            .iter()
            .filter_map(|(n, a)| Some((n.clone(), a.effects.get(outcome)?)))
            .collect();
        body.push_str(&effect_bars_svg(&format!("{outcome} uplift"), &bars, rate));
        body.push_str(&table(&overall, outcome, rate));
        for t in &r.treatments {
            for (attr, per) in &t.by_segment {
                body.push_str(&format!(
                    "<h3>{}: {outcome} by {}</h3>",
                    esc(&t.treatment),
                    esc(attr)
                ));
                let rows: Vec<(String, &ArmEffects)> =
                    per.iter().map(|(v, a)| (v.clone(), a)).collect();
                let bars: Vec<(String, &Effect)> = rows
                    .iter()
                    .filter_map(|(n, a)| Some((n.clone(), a.effects.get(outcome)?)))
                    .collect();
                body.push_str(&effect_bars_svg(
                    &format!("{} {outcome} uplift by {attr}", t.treatment),
                    &bars,
                    rate,
                ));
                body.push_str(&table(&rows, outcome, rate));
            }
        }
    }
    crate::recs::page(title, &body)
}
