//! Price dispersion: what groups actually paid for the same product in the same period.
//!
//! Rows are order lines (product, period, group, unit price, quantity). For each product and
//! period ("cell"), each group's price is what it paid per unit: Σ price × quantity ÷ Σ
//! quantity. The reference is the cell's group with the most lines; every other group's
//! ratio is its price ÷ the reference's. Intervals come from a stratified bootstrap: each
//! group's lines are resampled with replacement to their own number, the ratio recomputed,
//! and the `level` percentile interval read off (seeded, so a report is reproducible).
//!
//! A group is **beyond** the threshold when its ratio is above `max_ratio` or below its
//! inverse, and **flagged** when it is beyond and its interval excludes 1 (the gap is not
//! noise). Groups with fewer than `min_lines` lines are reported as too small, without a
//! ratio. A product is flagged when any of its cells has a flagged group.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::bootstrap::Rng;

/// Order lines as columns; codes index the label slices.
#[derive(Clone, Copy, Debug)]
pub struct DispersionInput<'a> {
    /// What the groups are: `country`, `segment`, a protected attribute.
    pub attribute: &'a str,
    pub product: &'a [u32],
    pub product_labels: &'a [String],
    pub period: &'a [u32],
    pub period_labels: &'a [String],
    pub group: &'a [u32],
    pub group_labels: &'a [String],
    /// Unit price paid, any unit (minor units or major), the same for every row.
    pub price: &'a [f64],
    pub quantity: &'a [f64],
    pub max_ratio: f64,
    pub min_lines: u32,
    pub resamples: u32,
    pub level: f64,
    pub seed: u64,
}

/// What one group paid in one cell.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct GroupPrice {
    pub group: String,
    pub lines: u64,
    pub quantity: f64,
    /// Σ price × quantity ÷ Σ quantity.
    pub mean_price: f64,
    /// Against the reference group (1 for the reference itself); `None` when too small.
    pub ratio: Option<f64>,
    pub interval: Option<(f64, f64)>,
    pub too_small: bool,
    pub beyond_threshold: bool,
    pub flagged: bool,
}

/// One product in one period.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Cell {
    pub product: String,
    pub period: String,
    pub lines: u64,
    /// The group with the most lines; `None` when no group is large enough.
    pub reference: Option<String>,
    /// Highest ÷ lowest price among groups large enough (`None` with fewer than two).
    pub spread: Option<f64>,
    pub groups: Vec<GroupPrice>,
    pub flagged: bool,
}

/// A product over all its periods.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ProductSummary {
    pub product: String,
    pub lines: u64,
    pub cells: usize,
    /// Cells with at least two groups large enough to compare.
    pub compared_cells: usize,
    pub flagged_cells: usize,
    /// The largest ratio (or inverse ratio, whichever is further from 1) of any group.
    pub largest_gap: Option<f64>,
    pub flagged: bool,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct DispersionReport {
    pub attribute: String,
    pub max_ratio: f64,
    pub min_lines: u32,
    pub resamples: u32,
    pub level: f64,
    pub seed: u64,
    pub rows: u64,
    pub products: Vec<ProductSummary>,
    pub flagged_products: Vec<String>,
    pub cells: Vec<Cell>,
}

/// Σ p·q and Σ q of a group's lines.
fn sums(rows: &[usize], price: &[f64], quantity: &[f64]) -> (f64, f64) {
    rows.iter().fold((0.0, 0.0), |(pq, q), &i| {
        (pq + price[i] * quantity[i], q + quantity[i])
    })
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    // Linear interpolation between order statistics (NumPy's default).
    let pos = q * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

/// Audits price dispersion (see the module).
pub fn dispersion(input: &DispersionInput<'_>) -> DispersionReport {
    let n = input.product.len();
    // (product, period) → group → row indices, in label order for stable output.
    let mut cells: BTreeMap<(u32, u32), BTreeMap<u32, Vec<usize>>> = BTreeMap::new();
    for i in 0..n {
        if !(input.price[i].is_finite() && input.quantity[i] > 0.0) {
            continue;
        }
        cells
            .entry((input.product[i], input.period[i]))
            .or_default()
            .entry(input.group[i])
            .or_default()
            .push(i);
    }
    let label = |labels: &[String], c: u32| labels.get(c as usize).cloned().unwrap_or_default();
    let mut out_cells = Vec::with_capacity(cells.len());
    let mut rng = Rng(input.seed);
    let alpha = (1.0 - input.level) / 2.0;
    for ((prod, per), groups) in &cells {
        let eligible: Vec<u32> = groups
            .iter()
            .filter(|(_, rows)| rows.len() as u64 >= u64::from(input.min_lines))
            .map(|(g, _)| *g)
            .collect();
        let reference = eligible.iter().copied().max_by(|a, b| {
            let (ra, rb) = (&groups[a], &groups[b]);
            ra.len()
                .cmp(&rb.len())
                .then_with(|| {
                    sums(ra, input.price, input.quantity)
                        .1
                        .total_cmp(&sums(rb, input.price, input.quantity).1)
                })
                // Ties: the first label wins (max_by keeps the last maximum).
                .then_with(|| b.cmp(a))
        });
        let means: BTreeMap<u32, (f64, f64)> = groups
            .iter()
            .map(|(g, rows)| {
                let (pq, q) = sums(rows, input.price, input.quantity);
                (*g, (pq / q, q))
            })
            .collect();
        // Bootstrap: each eligible group's mean per resample.
        let compare = reference.is_some() && eligible.len() >= 2;
        let mut boot: BTreeMap<u32, Vec<f64>> = BTreeMap::new();
        if compare && input.resamples > 0 {
            for _ in 0..input.resamples {
                for g in &eligible {
                    let rows = &groups[g];
                    let m = rows.len();
                    let (mut pq, mut q) = (0.0, 0.0);
                    for _ in 0..m {
                        let i = rows[((rng.uniform() * m as f64) as usize).min(m - 1)];
                        pq += input.price[i] * input.quantity[i];
                        q += input.quantity[i];
                    }
                    boot.entry(*g).or_default().push(pq / q);
                }
            }
        }
        let mut out_groups = Vec::with_capacity(groups.len());
        let mut flagged_cell = false;
        for (g, rows) in groups {
            let (mean, q) = means[g];
            let too_small = !eligible.contains(g);
            let (ratio, interval) = match reference {
                Some(r) if compare && !too_small => {
                    let ratio = mean / means[&r].0;
                    let interval = (input.resamples > 0 && *g != r).then(|| {
                        let mut rs: Vec<f64> =
                            boot[g].iter().zip(&boot[&r]).map(|(a, b)| a / b).collect();
                        rs.sort_by(f64::total_cmp);
                        (percentile(&rs, alpha), percentile(&rs, 1.0 - alpha))
                    });
                    (Some(ratio), interval)
                }
                _ => (None, None),
            };
            let beyond = ratio.is_some_and(|x| x > input.max_ratio || x < 1.0 / input.max_ratio);
            let flagged = beyond && interval.is_some_and(|(lo, hi)| lo > 1.0 || hi < 1.0);
            flagged_cell |= flagged;
            out_groups.push(GroupPrice {
                group: label(input.group_labels, *g),
                lines: rows.len() as u64,
                quantity: q,
                mean_price: mean,
                ratio,
                interval,
                too_small,
                beyond_threshold: beyond,
                flagged,
            });
        }
        let compared: Vec<f64> = eligible.iter().map(|g| means[g].0).collect();
        let spread = (compared.len() >= 2).then(|| {
            let hi = compared.iter().copied().fold(f64::MIN, f64::max);
            let lo = compared.iter().copied().fold(f64::MAX, f64::min);
            hi / lo
        });
        out_cells.push(Cell {
            product: label(input.product_labels, *prod),
            period: label(input.period_labels, *per),
            lines: groups.values().map(|r| r.len() as u64).sum(),
            reference: reference.map(|r| label(input.group_labels, r)),
            spread,
            groups: out_groups,
            flagged: flagged_cell,
        });
    }
    let mut by_product: BTreeMap<&str, ProductSummary> = BTreeMap::new();
    for c in &out_cells {
        let s = by_product
            .entry(c.product.as_str())
            .or_insert_with(|| ProductSummary {
                product: c.product.clone(),
                lines: 0,
                cells: 0,
                compared_cells: 0,
                flagged_cells: 0,
                largest_gap: None,
                flagged: false,
            });
        s.lines += c.lines;
        s.cells += 1;
        s.compared_cells += usize::from(c.spread.is_some());
        s.flagged_cells += usize::from(c.flagged);
        s.flagged |= c.flagged;
        for g in &c.groups {
            if let Some(r) = g.ratio {
                let gap = if r >= 1.0 { r } else { 1.0 / r };
                s.largest_gap = Some(s.largest_gap.map_or(gap, |x: f64| x.max(gap)));
            }
        }
    }
    let mut products: Vec<ProductSummary> = by_product.into_values().collect();
    products.sort_by(|a, b| {
        b.lines
            .cmp(&a.lines)
            .then_with(|| a.product.cmp(&b.product))
    });
    let flagged_products = products
        .iter()
        .filter(|p| p.flagged)
        .map(|p| p.product.clone())
        .collect();
    DispersionReport {
        attribute: input.attribute.to_string(),
        max_ratio: input.max_ratio,
        min_lines: input.min_lines,
        resamples: input.resamples,
        level: input.level,
        seed: input.seed,
        rows: n as u64,
        products,
        flagged_products,
        cells: out_cells,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_string()).collect()
    }

    #[test]
    fn ratios_against_the_largest_group_with_intervals() {
        // Product 0, one period: UK (6 lines at 10) pays 10, FR (5 lines at 15) pays 1.5×,
        // DE (2 lines) is too small.
        let mut group = vec![0u32; 6];
        group.extend([1; 5]);
        group.extend([2; 2]);
        let mut price = vec![10.0; 6];
        price.extend([14.0, 15.0, 16.0, 15.0, 15.0]);
        price.extend([30.0, 30.0]);
        let n = group.len();
        let quantity = vec![1.0; n];
        let products = labels(&["p"]);
        let periods = labels(&["2011-01"]);
        let groups = labels(&["UK", "FR", "DE"]);
        let input = DispersionInput {
            attribute: "country",
            product: &vec![0; n],
            product_labels: &products,
            period: &vec![0; n],
            period_labels: &periods,
            group: &group,
            group_labels: &groups,
            price: &price,
            quantity: &quantity,
            max_ratio: 1.25,
            min_lines: 5,
            resamples: 500,
            level: 0.95,
            seed: 7,
        };
        let r = dispersion(&input);
        assert_eq!(r.cells.len(), 1);
        let c = &r.cells[0];
        assert_eq!(c.reference.as_deref(), Some("UK"));
        let fr = c.groups.iter().find(|g| g.group == "FR").expect("FR");
        assert!((fr.ratio.expect("ratio") - 1.5).abs() < 1e-12);
        let (lo, hi) = fr.interval.expect("interval");
        assert!(
            lo > 1.3 && lo <= 1.5 && (1.5..1.7).contains(&hi),
            "{lo} {hi}"
        );
        assert!(fr.beyond_threshold && fr.flagged);
        let de = c.groups.iter().find(|g| g.group == "DE").expect("DE");
        assert!(de.too_small && de.ratio.is_none() && !de.flagged);
        assert_eq!(r.flagged_products, vec!["p".to_string()]);
        assert!((c.spread.expect("spread") - 1.5).abs() < 1e-12);
        // Reproducible with its seed.
        assert_eq!(dispersion(&input), r);
    }

    #[test]
    fn quantity_weights_the_price_and_noise_is_not_flagged() {
        // Same prices on average, one group buys more at the low price: weighted means differ.
        let group = [0u32, 0, 0, 0, 0, 1, 1, 1, 1, 1];
        let price = [10.0, 12.0, 10.0, 12.0, 11.0, 10.0, 12.0, 10.0, 12.0, 11.0];
        let quantity = [1.0, 1.0, 1.0, 1.0, 1.0, 9.0, 1.0, 1.0, 1.0, 1.0];
        let l = labels(&["A", "B"]);
        let one = labels(&["x"]);
        let r = dispersion(&DispersionInput {
            attribute: "segment",
            product: &[0; 10],
            product_labels: &one,
            period: &[0; 10],
            period_labels: &one,
            group: &group,
            group_labels: &l,
            price: &price,
            quantity: &quantity,
            max_ratio: 1.05,
            min_lines: 5,
            resamples: 300,
            level: 0.95,
            seed: 1,
        });
        // Equal numbers of lines: the group that bought more units is the reference.
        assert_eq!(r.cells[0].reference.as_deref(), Some("B"));
        let a = &r.cells[0].groups[0];
        let expected = 11.0 / ((10.0 * 9.0 + 12.0 + 10.0 + 12.0 + 11.0) / 13.0);
        assert!((a.ratio.expect("ratio") - expected).abs() < 1e-12);
        assert!(a.beyond_threshold, "{a:?}");
        assert!(!a.flagged, "the interval spans 1: {a:?}");
    }
}
