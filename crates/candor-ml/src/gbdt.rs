//! Histogram-based gradient-boosted decision trees for binary outcomes (log-loss).
//!
//! The design follows LightGBM's: features are bucketed once into at most 255 value bins plus
//! one bin for missing values; trees grow leaf-wise (the leaf with the best gain splits next)
//! up to `num_leaves`; a leaf's histogram is built over its rows' ordered gradients and its
//! sibling's histogram is the parent's minus its own; each split learns where missing values go.
//! Monotone constraints bound every leaf below a constrained split (the bounds pass to all
//! descendants), so the model is monotone in that feature everywhere. Histograms are summed in
//! a fixed order, so a seed and the data fix the model whatever the thread count.

use crate::MlError;
use crate::tree::{
    CATEGORICAL, DEFAULT_LEFT, Ensemble, Link, MISSING_NAN, Tree, missing_flags, sigmoid,
};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct GbdtParams {
    pub num_trees: usize,
    pub learning_rate: f64,
    pub num_leaves: usize,
    /// 0 = unlimited.
    pub max_depth: usize,
    pub min_data_in_leaf: usize,
    pub min_sum_hessian_in_leaf: f64,
    pub lambda_l2: f64,
    pub min_gain_to_split: f64,
    pub max_bin: usize,
    /// Stop when the validation log-loss has not improved for this many rounds (0 = never).
    pub early_stopping_rounds: usize,
    /// Per feature: +1 increasing, −1 decreasing, 0 free. Empty = all free.
    pub monotone: Vec<i8>,
    pub seed: u64,
    /// Worker threads (0 = rayon's default).
    pub threads: usize,
    /// Features holding category codes 0, 1, 2, … (NaN = missing); split on sets of codes.
    pub categorical: Vec<usize>,
    /// Categorical features with at most this many values split one value against the rest.
    pub max_cat_to_onehot: usize,
    /// Smoothing of a category's gradient ratio, and the least rows for a category to be ranked.
    pub cat_smooth: f64,
    /// Extra L2 penalty on set splits.
    pub cat_l2: f64,
    /// Most categories on the left of a set split.
    pub max_cat_threshold: usize,
    /// Least rows added per step when scanning a set split.
    pub min_data_per_group: usize,
}

impl Default for GbdtParams {
    fn default() -> Self {
        GbdtParams {
            num_trees: 100,
            learning_rate: 0.1,
            num_leaves: 31,
            max_depth: 0,
            min_data_in_leaf: 20,
            min_sum_hessian_in_leaf: 1e-3,
            lambda_l2: 0.0,
            min_gain_to_split: 0.0,
            max_bin: 255,
            early_stopping_rounds: 0,
            monotone: vec![],
            seed: 42,
            threads: 0,
            categorical: vec![],
            max_cat_to_onehot: 4,
            cat_smooth: 10.0,
            cat_l2: 10.0,
            max_cat_threshold: 32,
            min_data_per_group: 100,
        }
    }
}

impl GbdtParams {
    pub fn validate(&self, n_features: usize) -> Result<(), MlError> {
        let bad = |m: &str| Err(MlError::Params(m.to_string()));
        if self.num_trees == 0 {
            return bad("num_trees must be at least 1");
        }
        if !(self.learning_rate > 0.0 && self.learning_rate <= 1.0) {
            return bad("learning_rate must be in (0, 1]");
        }
        if self.num_leaves < 2 || self.num_leaves > 4096 {
            return bad("num_leaves must be between 2 and 4096");
        }
        if !(2..=255).contains(&self.max_bin) {
            return bad("max_bin must be between 2 and 255");
        }
        if self.lambda_l2 < 0.0
            || self.min_sum_hessian_in_leaf < 0.0
            || self.min_gain_to_split < 0.0
        {
            return bad("regularization parameters must not be negative");
        }
        if !self.monotone.is_empty() && self.monotone.len() != n_features {
            return bad("monotone must list one constraint per feature");
        }
        if self.monotone.iter().any(|m| !(-1..=1).contains(m)) {
            return bad("monotone constraints are -1, 0 or 1");
        }
        for &c in &self.categorical {
            if c >= n_features {
                return bad("a categorical feature index is out of range");
            }
            if self.monotone.get(c).is_some_and(|&m| m != 0) {
                return bad("a categorical feature cannot have a monotone constraint");
            }
        }
        if self.cat_smooth < 0.0 || self.cat_l2 < 0.0 || self.max_cat_threshold == 0 {
            return bad("categorical parameters must be positive");
        }
        Ok(())
    }
}

/// Training rows: row-major features, 0/1 labels, optional weights.
#[derive(Clone, Copy)]
pub struct Dataset<'a> {
    pub x: &'a [f64],
    pub n_features: usize,
    pub y: &'a [f64],
    pub weight: Option<&'a [f64]>,
}

impl<'a> Dataset<'a> {
    pub fn n_rows(&self) -> usize {
        self.y.len()
    }

    pub fn check(&self) -> Result<(), MlError> {
        if self.n_features == 0 {
            return Err(MlError::Column("no feature columns".into()));
        }
        if self.x.len() != self.y.len() * self.n_features {
            return Err(MlError::Value(
                "feature matrix and labels differ in length".into(),
            ));
        }
        if self.y.iter().any(|&v| v != 0.0 && v != 1.0) {
            return Err(MlError::Target("labels must be 0 or 1".into()));
        }
        if let Some(w) = self.weight
            && (w.len() != self.y.len() || w.iter().any(|v| !(v.is_finite() && *v >= 0.0)))
        {
            return Err(MlError::Value(
                "weights must be finite, non-negative, one per row".into(),
            ));
        }
        if self.x.iter().any(|v| v.is_infinite()) {
            return Err(MlError::Value("features must not be infinite".into()));
        }
        Ok(())
    }
}

/// What one boosting round reports to the caller (for progress bars).
#[derive(Clone, Copy, Debug)]
pub struct Round {
    pub index: usize,
    pub total: usize,
    pub valid_logloss: Option<f64>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TrainReport {
    pub best_iteration: usize,
    pub valid_logloss: Vec<f64>,
}

/// Feature bucketing learned from the training data.
struct Bins {
    /// Upper bound of each value bin per feature (the last is +∞).
    uppers: Vec<Vec<f64>>,
    categorical: Vec<bool>,
    /// Offset of each feature's first bin in a histogram; its missing bin is at
    /// `offset + uppers[f].len()`.
    offsets: Vec<usize>,
    total: usize,
}

impl Bins {
    fn learn(data: &Dataset, params: &GbdtParams) -> Bins {
        let (max_bin, seed) = (params.max_bin, params.seed);
        let mut categorical = vec![false; data.n_features];
        for &c in &params.categorical {
            categorical[c] = true;
        }
        let n = data.n_rows();
        let nf = data.n_features;
        // At most 200k rows decide the bin bounds, chosen by a seeded stride.
        let sample: Vec<usize> = if n <= 200_000 {
            (0..n).collect()
        } else {
            let mut rng = SplitMix(seed);
            let mut s: Vec<usize> = (0..n)
                .filter(|_| rng.next_f64() < 200_000.0 / n as f64)
                .collect();
            s.sort_unstable();
            s
        };
        let uppers: Vec<Vec<f64>> = (0..nf)
            .into_par_iter()
            .map(|f| {
                if categorical[f] {
                    // One bin per code: bin c holds code c.
                    let k = (0..n)
                        .map(|r| data.x[r * nf + f])
                        .filter(|x| !x.is_nan())
                        .fold(0.0f64, f64::max);
                    let k = k as usize + 1;
                    let mut u: Vec<f64> = (0..k).map(|b| b as f64 + 0.5).collect();
                    if let Some(last) = u.last_mut() {
                        *last = f64::INFINITY;
                    }
                    return u;
                }
                let mut v: Vec<f64> = sample
                    .iter()
                    .map(|&r| data.x[r * nf + f])
                    .filter(|x| !x.is_nan())
                    .collect();
                v.sort_unstable_by(f64::total_cmp);
                value_bins(&v, max_bin)
            })
            .collect();
        let mut offsets = Vec::with_capacity(nf);
        let mut total = 0;
        for u in &uppers {
            offsets.push(total);
            total += u.len() + 1;
        }
        Bins {
            uppers,
            categorical,
            offsets,
            total,
        }
    }

    #[inline]
    fn bin(&self, f: usize, x: f64) -> u8 {
        let u = &self.uppers[f];
        if x.is_nan() {
            return u.len() as u8;
        }
        u.partition_point(|&b| b < x) as u8
    }
}

/// Bin upper bounds for sorted non-missing values: one bin per distinct value when they fit,
/// otherwise bins of about equal counts. Bounds are midpoints between neighbouring values.
fn value_bins(sorted: &[f64], max_bin: usize) -> Vec<f64> {
    let mut distinct: Vec<(f64, usize)> = Vec::new();
    for &x in sorted {
        match distinct.last_mut() {
            Some((v, c)) if *v == x => *c += 1,
            _ => distinct.push((x, 1)),
        }
    }
    if distinct.is_empty() {
        return vec![f64::INFINITY];
    }
    let mut uppers = Vec::new();
    if distinct.len() <= max_bin {
        for w in distinct.windows(2) {
            uppers.push(midpoint(w[0].0, w[1].0));
        }
    } else {
        let per_bin = sorted.len() as f64 / max_bin as f64;
        let mut acc = 0usize;
        let mut next_cut = per_bin;
        for w in distinct.windows(2) {
            acc += w[0].1;
            if acc as f64 >= next_cut && uppers.len() + 1 < max_bin {
                uppers.push(midpoint(w[0].0, w[1].0));
                while next_cut <= acc as f64 {
                    next_cut += per_bin;
                }
            }
        }
    }
    uppers.push(f64::INFINITY);
    uppers
}

fn midpoint(a: f64, b: f64) -> f64 {
    let m = a + (b - a) / 2.0;
    // Guard against rounding onto `b`: the bound must keep `a` left and `b` right.
    if m >= b { a } else { m }
}

/// A small deterministic generator (SplitMix64) for sampling.
pub struct SplitMix(pub u64);

impl SplitMix {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[derive(Clone, Copy, Debug)]
struct Split {
    gain: f64,
    feature: usize,
    /// Rows with value bins `<= bin` go left.
    bin: usize,
    default_left: bool,
    left_g: f64,
    left_h: f64,
    left_out: f64,
    right_out: f64,
    /// For set splits: the codes that go left.
    cats: Option<[u64; 4]>,
}

fn has_cat(set: &[u64; 4], b: usize) -> bool {
    b < 256 && (set[b / 64] >> (b % 64)) & 1 == 1
}

struct Leaf {
    start: usize,
    end: usize,
    g: f64,
    h: f64,
    depth: usize,
    lower: f64,
    upper: f64,
    hist: Vec<[f64; 2]>,
    best: Option<Split>,
    /// The leaf's output (before shrinkage), fixed when its parent split, as LightGBM does.
    output: f64,
    /// Where this leaf hangs: (internal node, is left child), or None for the root.
    parent: Option<(usize, bool)>,
}

struct Grower<'a> {
    params: &'a GbdtParams,
    bins: &'a Bins,
    /// Bin of every value, column-major: `cols[f * n + r]`.
    cols: &'a [u8],
    n: usize,
    nf: usize,
}

/// Deepest leaf Candor grows (see `tree.rs`: TreeSHAP masks are 64 bits).
const MAX_DEPTH: usize = 64;

/// Leaves with at least this many rows are partitioned in parallel.
const PAR_PARTITION: usize = 65_536;

/// Leaves with at least this many rows build their histogram features in parallel.
const PAR_HIST: usize = 4096;

/// Rows per chunk when partitioning in parallel.
const PART_CHUNK: usize = 16_384;

impl Grower<'_> {
    /// The histogram of a leaf's rows, feature by feature (LightGBM's column-wise mode): each
    /// feature's few kilobytes of bins stay in L1 while its column is read, features run in
    /// parallel, and every sum is taken in row order, so the result does not depend on the
    /// number of threads. The leaf's gradients are gathered once into row order.
    fn hist(&self, rows: &[u32], gh: &[[f32; 2]]) -> Vec<[f64; 2]> {
        let gathered: Vec<[f32; 2]>;
        let og: &[[f32; 2]] = if rows.len() == gh.len() {
            // The root: rows are 0..n in order.
            gh
        } else {
            gathered = rows.iter().map(|&r| gh[r as usize]).collect();
            &gathered
        };
        let feature = |f: usize| {
            let nb = self.bins.uppers[f].len() + 1;
            let col = &self.cols[f * self.n..(f + 1) * self.n];
            let mut h = vec![[0.0f64; 2]; nb];
            if rows.len() == self.n {
                for (&b, g) in col.iter().zip(og) {
                    let cell = &mut h[b as usize];
                    cell[0] += f64::from(g[0]);
                    cell[1] += f64::from(g[1]);
                }
            } else {
                for (&r, g) in rows.iter().zip(og) {
                    let cell = &mut h[col[r as usize] as usize];
                    cell[0] += f64::from(g[0]);
                    cell[1] += f64::from(g[1]);
                }
            }
            h
        };
        let parts: Vec<Vec<[f64; 2]>> = if rows.len() >= PAR_HIST {
            (0..self.nf).into_par_iter().map(feature).collect()
        } else {
            (0..self.nf).map(feature).collect()
        };
        let mut out = Vec::with_capacity(self.bins.total);
        for p in parts {
            out.extend(p);
        }
        out
    }

    fn output(&self, g: f64, h: f64, lower: f64, upper: f64) -> f64 {
        (-g / (h + self.params.lambda_l2)).clamp(lower, upper)
    }

    fn score(&self, g: f64, h: f64, w: f64) -> f64 {
        -(2.0 * g * w + (h + self.params.lambda_l2) * w * w)
    }

    fn best_split(&self, leaf: &Leaf) -> Option<Split> {
        let p = self.params;
        // TreeSHAP tracks a path's distinct features in 64 bits: no path is deeper than that.
        let max_depth = if p.max_depth == 0 {
            MAX_DEPTH
        } else {
            p.max_depth.min(MAX_DEPTH)
        };
        if leaf.depth >= max_depth {
            return None;
        }
        let count = (leaf.end - leaf.start) as f64;
        if count < 2.0 * p.min_data_in_leaf as f64 {
            return None;
        }
        let cnt_factor = if leaf.h > 0.0 { count / leaf.h } else { 0.0 };
        let parent_out = self.output(leaf.g, leaf.h, leaf.lower, leaf.upper);
        let parent_score = self.score(leaf.g, leaf.h, parent_out);
        let mut best: Option<Split> = None;
        for f in 0..self.nf {
            let nb = self.bins.uppers[f].len();
            if nb < 2 {
                continue;
            }
            if self.bins.categorical[f] {
                if let Some(s) = self.categorical_split(leaf, f, cnt_factor, parent_score)
                    && best.is_none_or(|b| s.gain > b.gain)
                {
                    best = Some(s);
                }
                continue;
            }
            let off = self.bins.offsets[f];
            let hist = &leaf.hist[off..off + nb + 1];
            let [mg, mh] = hist[nb];
            let mono = p.monotone.get(f).copied().unwrap_or(0);
            let directions: &[bool] = if mh > 0.0 { &[false, true] } else { &[false] };
            for &missing_left in directions {
                let (mut lg, mut lh) = if missing_left { (mg, mh) } else { (0.0, 0.0) };
                for (b, cell) in hist.iter().enumerate().take(nb - 1) {
                    lg += cell[0];
                    lh += cell[1];
                    let (rg, rh) = (leaf.g - lg, leaf.h - lh);
                    if lh < p.min_sum_hessian_in_leaf || rh < p.min_sum_hessian_in_leaf {
                        continue;
                    }
                    if (lh * cnt_factor) < p.min_data_in_leaf as f64
                        || (rh * cnt_factor) < p.min_data_in_leaf as f64
                    {
                        continue;
                    }
                    let lo = self.output(lg, lh, leaf.lower, leaf.upper);
                    let ro = self.output(rg, rh, leaf.lower, leaf.upper);
                    if (mono > 0 && lo > ro) || (mono < 0 && lo < ro) {
                        continue;
                    }
                    let gain = self.score(lg, lh, lo) + self.score(rg, rh, ro) - parent_score;
                    if gain <= p.min_gain_to_split || !gain.is_finite() {
                        continue;
                    }
                    if best.is_none_or(|s| gain > s.gain) {
                        best = Some(Split {
                            gain,
                            feature: f,
                            bin: b,
                            // Without missing values here, unseen missing values follow the
                            // larger side.
                            default_left: if mh > 0.0 { missing_left } else { lh >= rh },
                            left_g: lg,
                            left_h: lh,
                            left_out: lo,
                            right_out: ro,
                            cats: None,
                        });
                    }
                }
            }
        }
        best
    }

    /// Best set split of a categorical feature, as LightGBM does it: one value against the rest
    /// for few values, otherwise values ranked by smoothed gradient ratio and scanned from both
    /// ends. Missing values and rare values go right.
    fn categorical_split(
        &self,
        leaf: &Leaf,
        f: usize,
        cnt_factor: f64,
        parent_score: f64,
    ) -> Option<Split> {
        let p = self.params;
        let nb = self.bins.uppers[f].len();
        let off = self.bins.offsets[f];
        let hist = &leaf.hist[off..off + nb];
        let cnt = |h: f64| h * cnt_factor;
        let ok = |lh: f64, rh: f64| {
            lh >= p.min_sum_hessian_in_leaf
                && rh >= p.min_sum_hessian_in_leaf
                && cnt(lh) >= p.min_data_in_leaf as f64
                && cnt(rh) >= p.min_data_in_leaf as f64
        };
        let l2 = p.lambda_l2;
        let out = |g: f64, h: f64, l2: f64| (-g / (h + l2)).clamp(leaf.lower, leaf.upper);
        let score = |g: f64, h: f64, w: f64, l2: f64| -(2.0 * g * w + (h + l2) * w * w);
        let mut best: Option<Split> = None;
        let mut consider = |set: [u64; 4], lg: f64, lh: f64, l2: f64| {
            let (rg, rh) = (leaf.g - lg, leaf.h - lh);
            if !ok(lh, rh) {
                return;
            }
            let (lo, ro) = (out(lg, lh, l2), out(rg, rh, l2));
            let gain = score(lg, lh, lo, l2) + score(rg, rh, ro, l2) - parent_score;
            if gain > p.min_gain_to_split && gain.is_finite() && best.is_none_or(|b| gain > b.gain)
            {
                best = Some(Split {
                    gain,
                    feature: f,
                    bin: 0,
                    default_left: false,
                    left_g: lg,
                    left_h: lh,
                    left_out: lo,
                    right_out: ro,
                    cats: Some(set),
                });
            }
        };
        // LightGBM counts a bin for missing values in this comparison.
        if nb < p.max_cat_to_onehot {
            for (b, cell) in hist.iter().enumerate() {
                let mut set = [0u64; 4];
                set[b / 64] |= 1 << (b % 64);
                consider(set, cell[0], cell[1], l2);
            }
            return best;
        }
        let l2 = l2 + p.cat_l2;
        let mut ranked: Vec<usize> = (0..nb)
            .filter(|&b| cnt(hist[b][1]) >= p.cat_smooth.max(1.0))
            .collect();
        ranked.sort_by(|&a, &b| {
            let ra = hist[a][0] / (hist[a][1] + p.cat_smooth);
            let rb = hist[b][0] / (hist[b][1] + p.cat_smooth);
            ra.total_cmp(&rb).then(a.cmp(&b))
        });
        let max_cats = p.max_cat_threshold.min(ranked.len().div_ceil(2));
        for reverse in [false, true] {
            let mut set = [0u64; 4];
            let (mut lg, mut lh) = (0.0, 0.0);
            let mut group = 0.0;
            for i in 0..ranked.len().min(max_cats) {
                let b = if reverse {
                    ranked[ranked.len() - 1 - i]
                } else {
                    ranked[i]
                };
                set[b / 64] |= 1 << (b % 64);
                lg += hist[b][0];
                lh += hist[b][1];
                group += cnt(hist[b][1]);
                if cnt(lh) < p.min_data_in_leaf as f64 || lh < p.min_sum_hessian_in_leaf {
                    continue;
                }
                let rh = leaf.h - lh;
                if cnt(rh) < p.min_data_in_leaf.max(p.min_data_per_group) as f64
                    || rh < p.min_sum_hessian_in_leaf
                {
                    break;
                }
                if group < p.min_data_per_group as f64 {
                    continue;
                }
                group = 0.0;
                consider(set, lg, lh, l2);
            }
        }
        best
    }

    /// Grows one tree over `order` (row indices, permuted in place so that every leaf's rows
    /// are contiguous). Returns the tree and, per leaf, its row range.
    fn grow(&self, order: &mut [u32], gh: &[[f32; 2]]) -> (Tree, Vec<(usize, usize)>) {
        let p = self.params;
        let (g, h) = order.iter().fold((0.0, 0.0), |(a, b), &r| {
            (
                a + f64::from(gh[r as usize][0]),
                b + f64::from(gh[r as usize][1]),
            )
        });
        let mut root = Leaf {
            start: 0,
            end: order.len(),
            g,
            h,
            depth: 0,
            lower: f64::NEG_INFINITY,
            upper: f64::INFINITY,
            hist: self.hist(order, gh),
            best: None,
            output: self.output(g, h, f64::NEG_INFINITY, f64::INFINITY),
            parent: None,
        };
        root.best = self.best_split(&root);
        let mut leaves = vec![root];
        let mut tree = Tree::default();
        let mut scratch: Vec<u32> = Vec::new();
        while leaves.len() < p.num_leaves {
            let Some((li, split)) = leaves
                .iter()
                .enumerate()
                .filter_map(|(i, l)| l.best.map(|s| (i, s)))
                .fold(None, |acc: Option<(usize, Split)>, (i, s)| match acc {
                    Some((_, b)) if b.gain >= s.gain => acc,
                    _ => Some((i, s)),
                })
            else {
                break;
            };
            // Partition the leaf's rows: left first, order kept.
            let f = split.feature;
            let nb = self.bins.uppers[f].len();
            let (start, end) = (leaves[li].start, leaves[li].end);
            let goes_left = |r: u32| {
                let b = self.cols[f * self.n + r as usize] as usize;
                match &split.cats {
                    Some(set) => has_cat(set, b),
                    None if b == nb => split.default_left,
                    None => b <= split.bin,
                }
            };
            let mid = if end - start >= PAR_PARTITION {
                // Chunks partition in parallel; lefts then rights, in chunk order (stable).
                let parts: Vec<(Vec<u32>, Vec<u32>)> = order[start..end]
                    .par_chunks(PART_CHUNK)
                    .map(|c| {
                        let (mut l, mut r) =
                            (Vec::with_capacity(c.len()), Vec::with_capacity(c.len()));
                        for &x in c {
                            if goes_left(x) { l.push(x) } else { r.push(x) }
                        }
                        (l, r)
                    })
                    .collect();
                let mut w = start;
                for (l, _) in &parts {
                    order[w..w + l.len()].copy_from_slice(l);
                    w += l.len();
                }
                let mid = w;
                for (_, r) in &parts {
                    order[w..w + r.len()].copy_from_slice(r);
                    w += r.len();
                }
                mid
            } else {
                scratch.clear();
                let mut w = start;
                for i in start..end {
                    let r = order[i];
                    if goes_left(r) {
                        order[w] = r;
                        w += 1;
                    } else {
                        scratch.push(r);
                    }
                }
                order[w..end].copy_from_slice(&scratch);
                w
            };

            // Record the internal node.
            let node = tree.feature.len();
            let right_leaf = leaves.len();
            tree.feature.push(f as u32);
            match &split.cats {
                Some(set) => {
                    tree.threshold.push(tree.cat_sets.len() as f64);
                    let words = set.iter().flat_map(|w| [*w as u32, (*w >> 32) as u32]);
                    let mut words: Vec<u32> = words.collect();
                    while words.last() == Some(&0) {
                        words.pop();
                    }
                    tree.cat_sets.push(words);
                    tree.flags.push(CATEGORICAL);
                }
                None => {
                    tree.threshold.push(self.bins.uppers[f][split.bin]);
                    tree.flags.push(
                        missing_flags(MISSING_NAN)
                            | if split.default_left { DEFAULT_LEFT } else { 0 },
                    );
                }
            }
            tree.left.push(!(li as i32));
            tree.right.push(!(right_leaf as i32));
            tree.cover.push(leaves[li].h);
            if let Some((pn, is_left)) = leaves[li].parent {
                if is_left {
                    tree.left[pn] = node as i32;
                } else {
                    tree.right[pn] = node as i32;
                }
            }

            // Children: bounds from monotone constraints, histograms by subtraction.
            let parent = &leaves[li];
            let (mut l_lo, mut l_hi, mut r_lo, mut r_hi) =
                (parent.lower, parent.upper, parent.lower, parent.upper);
            let mono = p.monotone.get(f).copied().unwrap_or(0);
            if mono != 0 {
                let m = (split.left_out + split.right_out) / 2.0;
                if mono > 0 {
                    l_hi = l_hi.min(m);
                    r_lo = r_lo.max(m);
                } else {
                    l_lo = l_lo.max(m);
                    r_hi = r_hi.min(m);
                }
            }
            let (lg, lh) = (split.left_g, split.left_h);
            let (rg, rh) = (parent.g - lg, parent.h - lh);
            let left_small = mid - start <= end - mid;
            let small_hist = if left_small {
                self.hist(&order[start..mid], gh)
            } else {
                self.hist(&order[mid..end], gh)
            };
            let mut big_hist = std::mem::take(&mut leaves[li].hist);
            for (a, b) in big_hist.iter_mut().zip(&small_hist) {
                a[0] -= b[0];
                a[1] -= b[1];
            }
            let (left_hist, right_hist) = if left_small {
                (small_hist, big_hist)
            } else {
                (big_hist, small_hist)
            };
            let depth = leaves[li].depth + 1;
            let mut left = Leaf {
                start,
                end: mid,
                g: lg,
                h: lh,
                depth,
                lower: l_lo,
                upper: l_hi,
                hist: left_hist,
                best: None,
                output: split.left_out,
                parent: Some((node, true)),
            };
            let mut right = Leaf {
                start: mid,
                end,
                g: rg,
                h: rh,
                depth,
                lower: r_lo,
                upper: r_hi,
                hist: right_hist,
                best: None,
                output: split.right_out,
                parent: Some((node, false)),
            };
            if leaves.len() + 1 < p.num_leaves {
                let (bl, br) = rayon::join(|| self.best_split(&left), || self.best_split(&right));
                left.best = bl;
                right.best = br;
            }
            leaves[li] = left;
            leaves.push(right);
        }
        let mut ranges = Vec::with_capacity(leaves.len());
        for l in &leaves {
            let out = l.output * p.learning_rate;
            tree.leaf_value
                .push(if out.is_finite() { out } else { 0.0 });
            tree.leaf_cover.push(l.h);
            ranges.push((l.start, l.end));
        }
        (tree, ranges)
    }
}

fn logloss_raw(raw: &[f64], y: &[f64]) -> f64 {
    let s: f64 = raw
        .iter()
        .zip(y)
        .map(|(&r, &t)| {
            let p = sigmoid(r).clamp(1e-15, 1.0 - 1e-15);
            -(t * p.ln() + (1.0 - t) * (1.0 - p).ln())
        })
        .sum();
    s / raw.len().max(1) as f64
}

/// Trains a binary GBDT. `valid` enables early stopping. `on_round` sees every round.
pub fn train(
    data: &Dataset,
    valid: Option<&Dataset>,
    params: &GbdtParams,
    on_round: &mut (dyn FnMut(Round) + Send),
) -> Result<(Ensemble, TrainReport), MlError> {
    data.check()?;
    params.validate(data.n_features)?;
    if let Some(v) = valid {
        v.check()?;
        if v.n_features != data.n_features {
            return Err(MlError::Value(
                "validation rows have a different feature count".into(),
            ));
        }
    }
    let n = data.n_rows();
    if n == 0 {
        return Err(MlError::Value("no training rows".into()));
    }
    for &c in &params.categorical {
        let bad = (0..n)
            .map(|r| data.x[r * data.n_features + c])
            .find(|v| !(v.is_nan() || (*v >= 0.0 && *v < 255.0 && v.fract() == 0.0)));
        if let Some(v) = bad {
            return Err(MlError::Value(format!(
                "categorical feature {c} holds {v}; codes must be whole numbers from 0 to 254"
            )));
        }
    }
    let wsum: f64 = data.weight.map_or(n as f64, |w| w.iter().sum());
    let pos: f64 = match data.weight {
        Some(w) => data.y.iter().zip(w).map(|(y, w)| y * w).sum(),
        None => data.y.iter().sum(),
    };
    if pos <= 0.0 || pos >= wsum {
        return Err(MlError::Target(
            "the target has a single class; nothing to learn".into(),
        ));
    }
    let mut run = || train_inner(data, valid, params, on_round, pos / wsum);
    if params.threads > 0 {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(params.threads)
            .build()
            .map_err(|e| {
                MlError::Params(format!("cannot start {} threads: {e}", params.threads))
            })?;
        pool.install(run)
    } else {
        run()
    }
}

fn train_inner(
    data: &Dataset,
    valid: Option<&Dataset>,
    params: &GbdtParams,
    on_round: &mut (dyn FnMut(Round) + Send),
    mean: f64,
) -> Result<(Ensemble, TrainReport), MlError> {
    let n = data.n_rows();
    let nf = data.n_features;
    let bins = Bins::learn(data, params);
    // Bin row by row (reading the rows in order), then transpose to columns.
    let mut binned = vec![0u8; n * nf];
    binned.par_chunks_mut(nf).enumerate().for_each(|(r, row)| {
        for (f, b) in row.iter_mut().enumerate() {
            *b = bins.bin(f, data.x[r * nf + f]);
        }
    });
    let mut cols = vec![0u8; n * nf];
    cols.par_chunks_mut(n.max(1))
        .enumerate()
        .for_each(|(f, col)| {
            for (r, b) in col.iter_mut().enumerate() {
                *b = binned[r * nf + f];
            }
        });
    drop(binned);
    let base = (mean / (1.0 - mean)).ln();
    let grower = Grower {
        params,
        bins: &bins,
        cols: &cols,
        n,
        nf,
    };
    let mut scores = vec![base; n];
    // Gradients are stored as f32 (half the memory traffic of the histogram loop, as LightGBM
    // does); histograms and split statistics sum them in f64.
    let mut gh = vec![[0.0f32; 2]; n];
    let mut order: Vec<u32> = (0..n as u32).collect();
    let mut trees = Vec::with_capacity(params.num_trees);
    let mut valid_raw: Vec<f64> = valid.map(|v| vec![base; v.n_rows()]).unwrap_or_default();
    let mut history = Vec::new();
    let mut best = (f64::INFINITY, 0usize);
    for it in 0..params.num_trees {
        gh.par_iter_mut().enumerate().for_each(|(i, o)| {
            let p = sigmoid(scores[i]);
            let w = data.weight.map_or(1.0, |w| w[i]);
            *o = [
                ((p - data.y[i]) * w) as f32,
                ((p * (1.0 - p)).max(1e-16) * w) as f32,
            ];
        });
        // Every tree starts from rows in index order; stable partitions keep each leaf's rows
        // ascending, so the histogram loops walk memory forward.
        order
            .par_iter_mut()
            .enumerate()
            .for_each(|(i, o)| *o = i as u32);
        let (tree, ranges) = grower.grow(&mut order, &gh);
        for (leaf, &(s, e)) in ranges.iter().enumerate() {
            let v = tree.leaf_value[leaf];
            for &r in &order[s..e] {
                scores[r as usize] += v;
            }
        }
        let mut vloss = None;
        if let Some(v) = valid {
            valid_raw.par_iter_mut().enumerate().for_each(|(r, o)| {
                *o += tree.predict(&v.x[r * nf..(r + 1) * nf]);
            });
            let l = logloss_raw(&valid_raw, v.y);
            history.push(l);
            if l < best.0 - 1e-12 {
                best = (l, it + 1);
            }
            vloss = Some(l);
        }
        let single_leaf = tree.feature.is_empty();
        trees.push(tree);
        on_round(Round {
            index: it + 1,
            total: params.num_trees,
            valid_logloss: vloss,
        });
        if single_leaf {
            break;
        }
        if valid.is_some()
            && params.early_stopping_rounds > 0
            && it + 1 - best.1 >= params.early_stopping_rounds
        {
            break;
        }
    }
    let best_iteration = if valid.is_some() && params.early_stopping_rounds > 0 {
        best.1.max(1)
    } else {
        trees.len()
    };
    trees.truncate(best_iteration);
    let model = Ensemble::new(nf, base, trees, Link::Logistic);
    Ok((
        model,
        TrainReport {
            best_iteration,
            valid_logloss: history,
        },
    ))
}
