//! One tree representation for Candor's own trees and imported LightGBM / XGBoost trees,
//! prediction, and exact path-dependent TreeSHAP.
//!
//! A tree with `n` leaves has `n - 1` internal nodes stored as parallel arrays. A child index
//! `c >= 0` is an internal node, `c < 0` is leaf `!c` (LightGBM's convention).
//!
//! ## TreeSHAP
//! Path-dependent TreeSHAP (Lundberg et al. 2020) attributes to feature `i`, for every leaf
//! `l` with value `v` and the set `P` of distinct features on its path (`M = |P|`):
//!
//! `phi_i += v · Σ_{S ⊆ P\{i}} w(|S|, M) · (o_i − z_i) · Π_{j∈S} o_j · Π_{j∈P\S\{i}} z_j`
//!
//! where `z_j` is the product of cover fractions of the path's splits on `j` and `o_j ∈ {0, 1}`
//! says whether the row follows all of them. Only subsets of `A = {j : o_j = 1}` survive, which
//! gives, with `F(B) = Σ_{k} w(k, M) · e_{|B|−k}(z_B)` (`e` the elementary symmetric
//! polynomials) and `Z = Π_{j∉A} z_j`:
//!
//! - `i ∈ A`: `phi_i += v · (1 − z_i) · Z · F(A \ {i})`
//! - `i ∉ A`: `phi_i −= v · Z · F(A)`
//!
//! `v · F(B)` depends only on the tree, so it is tabulated once per leaf for every subset
//! `B ⊆ P` (a Fast-TreeSHAP-v2-like precomputation, Yang 2021). A row then costs `O(L·D)` per
//! tree instead of the classic recursion's `O(L·D²)`. Leaves with too many distinct features
//! for a table compute `F` per row from the polynomial of `A` (`O(D²)`).

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::sync::OnceLock;

/// Node flag: categorical split (the row goes left when its category is in the node's set).
pub const CATEGORICAL: u8 = 1;
/// Node flag: missing values go left.
pub const DEFAULT_LEFT: u8 = 2;
/// Node flag: compare as `(x as f32) < (t as f32)` (XGBoost) instead of `x <= t` (LightGBM).
pub const STRICT_F32: u8 = 16;
/// Missing-value handling, bits 2–3 of the flags (LightGBM's `MissingType`).
pub const MISSING_NONE: u8 = 0;
pub const MISSING_ZERO: u8 = 1;
pub const MISSING_NAN: u8 = 2;
const ZERO_THRESHOLD: f64 = 1e-35;

/// Largest number of distinct path features for which a leaf's subset table is built.
const MAX_TABLE_FEATURES: usize = 16;
/// Budget of table entries per ensemble (8 bytes each); leaves past it use the fallback.
const MAX_TABLE_ENTRIES: usize = 1 << 25;

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Tree {
    pub feature: Vec<u32>,
    pub threshold: Vec<f64>,
    pub flags: Vec<u8>,
    pub left: Vec<i32>,
    pub right: Vec<i32>,
    /// Cover of each internal node (hessian sum for Candor and XGBoost, row count for LightGBM).
    pub cover: Vec<f64>,
    /// Bitsets of categorical splits; `threshold` of a categorical node is an index here.
    pub cat_sets: Vec<Vec<u32>>,
    pub leaf_value: Vec<f64>,
    pub leaf_cover: Vec<f64>,
}

pub fn missing_flags(missing: u8) -> u8 {
    (missing & 3) << 2
}

impl Tree {
    /// A tree that is one leaf.
    pub fn leaf(value: f64, cover: f64) -> Self {
        Tree {
            leaf_value: vec![value],
            leaf_cover: vec![cover],
            ..Tree::default()
        }
    }

    pub fn num_leaves(&self) -> usize {
        self.leaf_value.len()
    }

    /// Checks the structure: every index in range, every node reached exactly once.
    pub fn validate(&self, n_features: usize) -> Result<(), String> {
        let n = self.feature.len();
        if self.leaf_value.len() != n + 1 || self.leaf_cover.len() != n + 1 {
            return Err(format!("a tree with {n} splits must have {} leaves", n + 1));
        }
        for (name, len) in [
            ("threshold", self.threshold.len()),
            ("flags", self.flags.len()),
            ("left", self.left.len()),
            ("right", self.right.len()),
            ("cover", self.cover.len()),
        ] {
            if len != n {
                return Err(format!("{name} has {len} entries for {n} splits"));
            }
        }
        let mut seen_node = vec![false; n];
        let mut seen_leaf = vec![false; n + 1];
        if n > 0 {
            seen_node[0] = true;
        } else {
            // A one-leaf tree: the leaf is the root.
            seen_leaf[0] = true;
        }
        for i in 0..n {
            if self.feature[i] as usize >= n_features {
                return Err(format!(
                    "split {i} uses feature {} of {n_features}",
                    self.feature[i]
                ));
            }
            if self.flags[i] & CATEGORICAL != 0 {
                let idx = self.threshold[i];
                if !(idx >= 0.0 && (idx as usize) < self.cat_sets.len()) {
                    return Err(format!("split {i} names a missing category set"));
                }
            } else if self.threshold[i].is_nan() {
                return Err(format!("split {i} has a NaN threshold"));
            }
            for c in [self.left[i], self.right[i]] {
                let slot = if c >= 0 {
                    seen_node.get_mut(c as usize)
                } else {
                    seen_leaf.get_mut(!c as usize)
                };
                match slot {
                    Some(s) if !*s && c != 0 => *s = true,
                    _ => return Err(format!("split {i} has an invalid or repeated child {c}")),
                }
            }
        }
        if seen_node.iter().chain(&seen_leaf).any(|s| !s) {
            return Err("tree has unreachable nodes".into());
        }
        if self.leaf_value.iter().any(|v| !v.is_finite()) {
            return Err("tree has a non-finite leaf value".into());
        }
        Ok(())
    }

    #[inline(always)]
    fn goes_left(&self, n: usize, x: f64) -> bool {
        let fl = self.flags[n];
        if fl & CATEGORICAL != 0 {
            return self.category_left(n, x);
        }
        let missing = (fl >> 2) & 3;
        let mut v = x;
        if v.is_nan() && missing != MISSING_NAN {
            v = 0.0;
        }
        if (missing == MISSING_ZERO && v.abs() <= ZERO_THRESHOLD)
            || (missing == MISSING_NAN && v.is_nan())
        {
            return fl & DEFAULT_LEFT != 0;
        }
        if fl & STRICT_F32 != 0 {
            (v as f32) < (self.threshold[n] as f32)
        } else {
            v <= self.threshold[n]
        }
    }

    #[cold]
    fn category_left(&self, n: usize, x: f64) -> bool {
        // As LightGBM: the code is truncated toward zero, so only values <= -1 are negative.
        if x.is_nan() || x <= -1.0 {
            return false;
        }
        let cat = x as usize;
        let set = &self.cat_sets[self.threshold[n] as usize];
        set.get(cat / 32)
            .is_some_and(|w| (w >> (cat % 32)) & 1 == 1)
    }

    /// The leaf a row falls into.
    #[inline]
    pub fn leaf_index(&self, row: &[f64]) -> usize {
        if self.feature.is_empty() {
            return 0;
        }
        let mut n = 0usize;
        loop {
            let f = self.feature[n] as usize;
            let c = if self.goes_left(n, row[f]) {
                self.left[n]
            } else {
                self.right[n]
            };
            if c < 0 {
                return !c as usize;
            }
            n = c as usize;
        }
    }

    #[inline]
    pub fn predict(&self, row: &[f64]) -> f64 {
        self.leaf_value[self.leaf_index(row)]
    }

    /// Expected value of the tree under its covers: Σ_l v_l · Π (cover fractions on the path).
    pub fn expected_value(&self) -> f64 {
        if self.feature.is_empty() {
            return self.leaf_value[0];
        }
        let mut total = 0.0;
        let mut stack = vec![(0i32, 1.0f64)];
        while let Some((c, w)) = stack.pop() {
            if c < 0 {
                total += w * self.leaf_value[!c as usize];
                continue;
            }
            let n = c as usize;
            for child in [self.left[n], self.right[n]] {
                stack.push((child, w * self.fraction(n, child)));
            }
        }
        total
    }

    fn child_cover(&self, c: i32) -> f64 {
        if c < 0 {
            self.leaf_cover[!c as usize]
        } else {
            self.cover[c as usize]
        }
    }

    fn fraction(&self, parent: usize, child: i32) -> f64 {
        let p = self.cover[parent];
        if p > 0.0 {
            self.child_cover(child) / p
        } else {
            0.0
        }
    }

    /// Maximum depth (a single leaf has depth 0).
    pub fn depth(&self) -> usize {
        if self.feature.is_empty() {
            return 0;
        }
        let mut best = 0;
        let mut stack = vec![(0i32, 0usize)];
        while let Some((c, d)) = stack.pop() {
            if c < 0 {
                best = best.max(d);
            } else {
                stack.push((self.left[c as usize], d + 1));
                stack.push((self.right[c as usize], d + 1));
            }
        }
        best
    }
}

/// How raw scores turn into the model's output.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Link {
    /// Binary log-loss: probability = sigmoid(raw).
    Logistic,
    /// Raw score as is.
    Identity,
}

/// A sum of trees plus a base score.
#[derive(Debug, Serialize, Deserialize)]
pub struct Ensemble {
    pub n_features: usize,
    pub base_score: f64,
    pub trees: Vec<Tree>,
    pub link: Link,
    /// Sum the base score and tree outputs in `f32`, in tree order, as XGBoost does, so that
    /// imported XGBoost models predict exactly XGBoost's margins.
    #[serde(default)]
    pub f32_sum: bool,
    #[serde(skip)]
    plan: OnceLock<Vec<TreePlan>>,
    #[serde(skip)]
    flat: OnceLock<Vec<FlatTree>>,
}

impl Clone for Ensemble {
    fn clone(&self) -> Self {
        let mut e = Ensemble::new(
            self.n_features,
            self.base_score,
            self.trees.clone(),
            self.link,
        );
        e.f32_sum = self.f32_sum;
        e
    }
}

impl PartialEq for Ensemble {
    fn eq(&self, o: &Self) -> bool {
        self.n_features == o.n_features
            && self.base_score == o.base_score
            && self.trees == o.trees
            && self.link == o.link
            && self.f32_sum == o.f32_sum
    }
}

pub fn sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// Rows per block when predicting: a block's rows stay in cache while every tree passes.
const BLOCK: usize = 64;
/// Rows that walk a tree together.
const LANES: usize = 8;

impl Ensemble {
    pub fn new(n_features: usize, base_score: f64, trees: Vec<Tree>, link: Link) -> Self {
        Ensemble {
            n_features,
            base_score,
            trees,
            link,
            f32_sum: false,
            plan: OnceLock::new(),
            flat: OnceLock::new(),
        }
    }

    /// Checks every tree against the feature count.
    pub fn validate(&self) -> Result<(), String> {
        if !self.base_score.is_finite() {
            return Err("base score is not finite".into());
        }
        for (i, t) in self.trees.iter().enumerate() {
            t.validate(self.n_features)
                .map_err(|e| format!("tree {i}: {e}"))?;
        }
        Ok(())
    }

    pub fn predict_raw(&self, row: &[f64]) -> f64 {
        let flat = self.flat();
        let leaf = |(t, f): (&Tree, &FlatTree)| t.leaf_value[f.leaf_index(t, row)];
        if self.f32_sum {
            let mut acc = self.base_score as f32;
            for v in self.trees.iter().zip(flat).map(leaf) {
                acc += v as f32;
            }
            return f64::from(acc);
        }
        self.base_score + self.trees.iter().zip(flat).map(leaf).sum::<f64>()
    }

    pub fn transform(&self, raw: f64) -> f64 {
        match self.link {
            Link::Logistic => sigmoid(raw),
            Link::Identity => raw,
        }
    }

    /// Raw scores of row-major `rows` (`n_features` per row), in parallel.
    pub fn predict_raw_batch(&self, rows: &[f64]) -> Vec<f64> {
        let nf = self.n_features.max(1);
        let n = rows.len() / nf;
        let mut out = vec![self.base_score; n];
        if self.f32_sum {
            out.par_iter_mut()
                .enumerate()
                .for_each(|(r, o)| *o = self.predict_raw(&rows[r * nf..(r + 1) * nf]));
            return out;
        }
        let flat = self.flat();
        out.par_chunks_mut(BLOCK)
            .enumerate()
            .for_each(|(b, chunk)| {
                let start = b * BLOCK;
                let row = |i: usize| &rows[(start + i) * nf..(start + i + 1) * nf];
                for (t, f) in self.trees.iter().zip(flat) {
                    if f.internal == 0 {
                        chunk.iter_mut().for_each(|o| *o += t.leaf_value[0]);
                        continue;
                    }
                    // LANES rows walk the tree together for `depth` steps (leaves loop to
                    // themselves): no branch on where a row is, and the lanes' loads overlap.
                    for (g, outs) in chunk.chunks_mut(LANES).enumerate() {
                        let base = g * LANES;
                        let k = outs.len();
                        let lanes: [&[f64]; LANES] =
                            std::array::from_fn(|j| row(base + j.min(k - 1)));
                        let mut node = [0usize; LANES];
                        if f.numeric {
                            for _ in 0..f.depth {
                                for (nd, r) in node.iter_mut().zip(&lanes) {
                                    let rec = &f.nodes[*nd];
                                    let x = r[rec.feature as usize];
                                    let right = (x > rec.threshold) | (x.is_nan() & rec.nan_right);
                                    *nd = rec.children[usize::from(right)] as usize;
                                }
                                // Deep trees: stop once every lane is at a leaf.
                                if node.iter().all(|&n| n >= f.internal) {
                                    break;
                                }
                            }
                        } else if f.numeric_or_category {
                            for _ in 0..f.depth {
                                for (nd, r) in node.iter_mut().zip(&lanes) {
                                    let rec = &f.nodes[*nd];
                                    let x = r[rec.feature as usize];
                                    let numeric_right =
                                        (x > rec.threshold) | (x.is_nan() & rec.nan_right);
                                    // As LightGBM: codes truncate toward zero; NaN, codes <= -1 and
                                    // codes past the set go right. `as usize` saturates (NaN → 0).
                                    // Sets here fit one word (codes 0–31).
                                    let c = x as usize;
                                    let in_set = !(x.is_nan() | (x <= -1.0))
                                        & (c < 32)
                                        & ((rec.word0 >> (c & 31)) & 1 == 1);
                                    let right = if rec.kind == FAST_CATEGORY {
                                        !in_set
                                    } else {
                                        numeric_right
                                    };
                                    *nd = rec.children[usize::from(right)] as usize;
                                }
                                // Deep trees: stop once every lane is at a leaf.
                                if node.iter().all(|&n| n >= f.internal) {
                                    break;
                                }
                            }
                        } else {
                            for _ in 0..f.depth {
                                for (nd, r) in node.iter_mut().zip(&lanes) {
                                    *nd = f.next(t, *nd, r);
                                }
                                // Deep trees: stop once every lane is at a leaf.
                                if node.iter().all(|&n| n >= f.internal) {
                                    break;
                                }
                            }
                        }
                        for (o, nd) in outs.iter_mut().zip(node) {
                            *o += t.leaf_value[nd - f.internal];
                        }
                    }
                }
            });
        out
    }

    /// Σ of the trees' expected values plus the base score (SHAP's base value).
    pub fn expected_value(&self) -> f64 {
        self.base_score + self.trees.iter().map(Tree::expected_value).sum::<f64>()
    }

    fn flat(&self) -> &[FlatTree] {
        self.flat
            .get_or_init(|| self.trees.iter().map(FlatTree::new).collect())
    }

    fn plan(&self) -> &[TreePlan] {
        self.plan.get_or_init(|| {
            let mut budget = MAX_TABLE_ENTRIES;
            self.trees
                .iter()
                .map(|t| TreePlan::new(t, &mut budget))
                .collect()
        })
    }

    /// Builds the TreeSHAP tables now (otherwise the first explanation does).
    pub fn prepare_explanations(&self) {
        let _ = self.plan();
    }

    /// SHAP values of one row: `n_features` contributions followed by the base value. They sum
    /// to [`Ensemble::predict_raw`] of the row.
    pub fn shap(&self, row: &[f64]) -> Vec<f64> {
        let mut out = vec![0.0; self.n_features + 1];
        let mut scratch = Scratch::default();
        self.shap_into(row, &mut out, &mut scratch);
        out
    }

    /// SHAP values computed without the subset tables (the per-row fallback for leaves with
    /// many distinct features); equal to [`Ensemble::shap`]. For tests.
    #[doc(hidden)]
    pub fn shap_untabled(&self, row: &[f64]) -> Vec<f64> {
        let mut out = vec![0.0; self.n_features + 1];
        let mut scratch = Scratch {
            no_tables: true,
            ..Scratch::default()
        };
        self.shap_into(row, &mut out, &mut scratch);
        out
    }

    fn shap_into(&self, row: &[f64], out: &mut [f64], scratch: &mut Scratch) {
        let (phi, bias) = out.split_at_mut(self.n_features);
        let plans = self.plan();
        let flat = self.flat();
        let mut base = self.base_score;
        for ((t, p), f) in self.trees.iter().zip(plans).zip(flat) {
            base += p.expected;
            p.add_contributions(t, f, row, phi, scratch);
        }
        bias[0] = base;
    }

    /// SHAP values of row-major `rows`, `n_features + 1` per row (base value last), in parallel.
    pub fn shap_batch(&self, rows: &[f64]) -> Vec<f64> {
        let nf = self.n_features.max(1);
        let n = rows.len() / nf;
        let w = self.n_features + 1;
        self.prepare_explanations();
        let mut out = vec![0.0; n * w];
        out.par_chunks_mut(w * 16)
            .enumerate()
            .for_each_init(Scratch::default, |s, (b, chunk)| {
                for (i, o) in chunk.chunks_mut(w).enumerate() {
                    let r = b * 16 + i;
                    self.shap_into(&rows[r * nf..(r + 1) * nf], o, s);
                }
            });
        out
    }
}

#[derive(Default)]
struct Scratch {
    /// Ignore the tables (tests of the per-row fallback).
    no_tables: bool,
    left: Vec<bool>,
    poly: Vec<f64>,
    unwound: Vec<f64>,
}

/// How a flat node decides, for the common cases without a branch on missing values.
const FAST_NAN_RIGHT: u8 = 0;
const FAST_NAN_LEFT: u8 = 1;
const FAST_NAN_AS_ZERO: u8 = 2;
const FAST_CATEGORY: u8 = 3;
const SLOW: u8 = 4;

/// One internal node in a single cache-friendly record (prediction's hot path).
#[derive(Clone, Copy, Debug)]
struct FlatNode {
    threshold: f64,
    feature: u32,
    kind: u8,
    children: [i32; 2],
    /// Categorical nodes: the range of their bitset in `FlatTree::cat_words`.
    cat: [u32; 2],
    /// Numeric nodes: where a missing value goes (its NaN → 0 rule included).
    nan_right: bool,
    /// Categorical nodes: the first word of the set (codes 0–31), kept inline.
    word0: u32,
}

/// A tree's nodes as [`FlatNode`]s; node `i` is node `i` of the [`Tree`].
#[derive(Debug)]
struct FlatTree {
    /// Internal nodes `0..n`, then one self-looping record per leaf (`n + l`), so that a row
    /// can take `depth` steps without testing whether it reached a leaf.
    nodes: Vec<FlatNode>,
    cat_words: Vec<u32>,
    internal: usize,
    depth: usize,
    /// Every internal node is numeric with a plain `<=` and no zero-as-missing rule: rows
    /// take the branch-free path.
    numeric: bool,
    /// Every internal node is such a numeric node or a categorical one: rows take the
    /// branch-free path that evaluates both decisions and selects.
    numeric_or_category: bool,
}

impl FlatTree {
    fn new(t: &Tree) -> Self {
        // Word 0 is a dummy the numeric nodes point at (length 0), so every lookup is in range.
        let mut cat_words = vec![0u32];
        let nodes = (0..t.feature.len())
            .map(|n| {
                let fl = t.flags[n];
                let missing = (fl >> 2) & 3;
                let mut cat = [0u32; 2];
                let kind = if fl & CATEGORICAL != 0 {
                    let set = &t.cat_sets[t.threshold[n] as usize];
                    cat = [cat_words.len() as u32, set.len() as u32];
                    cat_words.extend_from_slice(set);
                    FAST_CATEGORY
                } else if fl & STRICT_F32 != 0 {
                    SLOW
                } else if missing == MISSING_NAN {
                    if fl & DEFAULT_LEFT != 0 {
                        FAST_NAN_LEFT
                    } else {
                        FAST_NAN_RIGHT
                    }
                } else if missing == MISSING_NONE {
                    FAST_NAN_AS_ZERO
                } else {
                    SLOW
                };
                let nan_right = match kind {
                    FAST_NAN_RIGHT => true,
                    FAST_NAN_LEFT => false,
                    FAST_NAN_AS_ZERO => 0.0 > t.threshold[n],
                    _ => true,
                };
                FlatNode {
                    threshold: t.threshold[n],
                    feature: t.feature[n],
                    kind,
                    children: [t.left[n], t.right[n]],
                    cat,
                    nan_right,
                    word0: if cat[1] > 0 {
                        cat_words[cat[0] as usize]
                    } else {
                        0
                    },
                }
            })
            .collect::<Vec<_>>();
        let internal = nodes.len();
        let numeric = nodes.iter().all(|nd| nd.kind <= FAST_NAN_AS_ZERO);
        let numeric_or_category = nodes
            .iter()
            .all(|nd| nd.kind <= FAST_NAN_AS_ZERO || (nd.kind == FAST_CATEGORY && nd.cat[1] <= 1));
        let unify = |c: i32| {
            if c < 0 {
                (internal + !c as usize) as i32
            } else {
                c
            }
        };
        let mut unified: Vec<FlatNode> = nodes
            .iter()
            .map(|nd| FlatNode {
                children: [unify(nd.children[0]), unify(nd.children[1])],
                ..*nd
            })
            .collect();
        if internal > 0 {
            for l in 0..t.num_leaves() {
                let me = (internal + l) as i32;
                unified.push(FlatNode {
                    threshold: 0.0,
                    feature: 0,
                    kind: FAST_NAN_RIGHT,
                    children: [me, me],
                    cat: [0, 0],
                    nan_right: false,
                    word0: 0,
                });
            }
        }
        FlatTree {
            nodes: unified,
            cat_words,
            internal,
            depth: t.depth(),
            numeric,
            numeric_or_category,
        }
    }

    /// The record a row goes to from record `n` (a leaf's record loops to itself).
    #[inline(always)]
    fn next(&self, tree: &Tree, n: usize, row: &[f64]) -> usize {
        self.nodes[n].children[usize::from(!self.goes_left(tree, n, row))] as usize
    }

    /// The same decision as [`Tree::goes_left`], faster for numeric nodes.
    #[inline(always)]
    fn goes_left(&self, tree: &Tree, n: usize, row: &[f64]) -> bool {
        let nd = &self.nodes[n];
        let x = row[nd.feature as usize];
        match nd.kind {
            // NaN compares false, so `x <= t` sends it right.
            FAST_NAN_RIGHT => x <= nd.threshold,
            FAST_NAN_LEFT => x.is_nan() || x <= nd.threshold,
            FAST_NAN_AS_ZERO => (if x.is_nan() { 0.0 } else { x }) <= nd.threshold,
            FAST_CATEGORY => {
                // As LightGBM: NaN and negative codes go right; codes truncate toward zero.
                if x.is_nan() || x <= -1.0 {
                    return false;
                }
                let c = x as usize;
                let [off, len] = nd.cat;
                (c / 32) < len as usize
                    && (self.cat_words[off as usize + c / 32] >> (c % 32)) & 1 == 1
            }
            _ => tree.goes_left(n, x),
        }
    }

    #[inline(always)]
    fn leaf_index(&self, tree: &Tree, row: &[f64]) -> usize {
        if self.internal == 0 {
            return 0;
        }
        let mut n = 0usize;
        while n < self.internal {
            n = self.next(tree, n, row);
        }
        n - self.internal
    }
}

/// A leaf's path: steps, distinct features, zero fractions.
type LeafPath = (Vec<Step>, Vec<u32>, Vec<f64>);

/// A node to visit with the path that leads to it: steps, distinct features, zero fractions.
type PathSoFar = (i32, Vec<Step>, Vec<u32>, Vec<f64>);

/// One step of a leaf's path: the internal node, the direction taken, the feature's slot.
#[derive(Clone, Copy, Debug)]
struct Step {
    node: u32,
    left: bool,
    slot: u8,
}

/// A tree's TreeSHAP plan, flattened: leaf `l`'s steps, distinct features, zero fractions and
/// subset table are ranges `off[l]..off[l + 1]` of shared arrays (an empty table range means
/// the leaf is computed per row).
#[derive(Debug, Default)]
struct TreePlan {
    expected: f64,
    values: Vec<f64>,
    step_off: Vec<usize>,
    steps: Vec<Step>,
    feat_off: Vec<usize>,
    features: Vec<u32>,
    z: Vec<f64>,
    table_off: Vec<usize>,
    table: Vec<f64>,
}

/// Shapley weight `k! (m − k − 1)! / m!` for every `k < m`.
fn shapley_weights(m: usize) -> Vec<f64> {
    (0..m)
        .map(|k| {
            // 1 / (m · C(m − 1, k))
            let mut c = 1.0f64;
            for j in 0..k {
                c = c * (m - 1 - j) as f64 / (j + 1) as f64;
            }
            1.0 / (m as f64 * c)
        })
        .collect()
}

/// `F(B) = Σ_k w(k, m) · e_{|B|−k}` given the elementary symmetric polynomials `e` of `B`.
fn f_of(e: &[f64], weights: &[f64]) -> f64 {
    // |B| = m only for B = P, which no contribution reads; its entry is left partial.
    let b = e.len() - 1;
    (0..=b.min(weights.len().saturating_sub(1)))
        .map(|k| weights[k] * e[b - k])
        .sum()
}

impl TreePlan {
    fn new(tree: &Tree, budget: &mut usize) -> Self {
        let mut plan = TreePlan {
            step_off: vec![0],
            feat_off: vec![0],
            table_off: vec![0],
            ..TreePlan::default()
        };
        if tree.feature.is_empty() {
            plan.expected = tree.leaf_value[0];
            return plan;
        }
        // Depth-first over the tree with the path so far; leaves in index order afterwards.
        let mut paths: Vec<Option<LeafPath>> = (0..tree.num_leaves()).map(|_| None).collect();
        let mut stack: Vec<PathSoFar> = vec![(0, vec![], vec![], vec![])];
        while let Some((c, steps, features, z)) = stack.pop() {
            if c < 0 {
                paths[!c as usize] = Some((steps, features, z));
                continue;
            }
            let n = c as usize;
            let f = tree.feature[n];
            for (child, left) in [(tree.left[n], true), (tree.right[n], false)] {
                let frac = tree.fraction(n, child);
                let (mut s, mut fs, mut zs) = (steps.clone(), features.clone(), z.clone());
                let slot = match fs.iter().position(|&g| g == f) {
                    Some(k) => {
                        zs[k] *= frac;
                        k
                    }
                    None => {
                        fs.push(f);
                        zs.push(frac);
                        fs.len() - 1
                    }
                };
                s.push(Step {
                    node: n as u32,
                    left,
                    slot: slot as u8,
                });
                stack.push((child, s, fs, zs));
            }
        }
        for (l, path) in paths.into_iter().enumerate() {
            let (steps, features, z) = path.unwrap_or_default();
            let value = tree.leaf_value[l];
            plan.expected += value * z.iter().product::<f64>();
            let m = features.len();
            if m > 0 && m <= MAX_TABLE_FEATURES && (1usize << m) <= *budget {
                *budget -= 1 << m;
                plan.table.extend(build_table(value, &z));
            }
            plan.values.push(value);
            plan.steps.extend(steps);
            plan.features.extend(features);
            plan.z.extend(z);
            plan.step_off.push(plan.steps.len());
            plan.feat_off.push(plan.features.len());
            plan.table_off.push(plan.table.len());
        }
        plan
    }

    fn add_contributions(
        &self,
        tree: &Tree,
        flat: &FlatTree,
        row: &[f64],
        phi: &mut [f64],
        s: &mut Scratch,
    ) {
        if tree.feature.is_empty() {
            return;
        }
        s.left.clear();
        s.left
            .extend((0..tree.feature.len()).map(|n| flat.goes_left(tree, n, row)));
        for (l, &value) in self.values.iter().enumerate() {
            let features = &self.features[self.feat_off[l]..self.feat_off[l + 1]];
            let z = &self.z[self.feat_off[l]..self.feat_off[l + 1]];
            let m = features.len();
            if m == 0 {
                continue;
            }
            let mut a: u64 = if m >= 64 { u64::MAX } else { (1u64 << m) - 1 };
            for st in &self.steps[self.step_off[l]..self.step_off[l + 1]] {
                if s.left[st.node as usize] != st.left {
                    a &= !(1u64 << st.slot);
                }
            }
            let mut zbar = 1.0;
            for (k, zk) in z.iter().enumerate() {
                if a & (1 << k) == 0 {
                    zbar *= zk;
                }
            }
            if zbar == 0.0 {
                continue;
            }
            let table = &self.table[self.table_off[l]..self.table_off[l + 1]];
            if !table.is_empty() && !s.no_tables {
                let out_term = zbar * table[a as usize];
                for (k, (&f, &zk)) in features.iter().zip(z).enumerate() {
                    let bit = 1u64 << k;
                    if a & bit != 0 {
                        phi[f as usize] += (1.0 - zk) * zbar * table[(a ^ bit) as usize];
                    } else {
                        phi[f as usize] -= out_term;
                    }
                }
            } else {
                contributions_slow(value, features, z, a, zbar, phi, s);
            }
        }
    }
}

/// `v · F(B)` for every subset `B` of a leaf's slots, from the polynomial of `B` without its
/// highest bit.
fn build_table(value: f64, z: &[f64]) -> Vec<f64> {
    let m = z.len();
    let weights = shapley_weights(m);
    let size = 1usize << m;
    let stride = m + 1;
    let mut polys = vec![0.0f64; size * stride];
    let mut table = vec![0.0f64; size];
    polys[0] = 1.0;
    table[0] = value * f_of(&polys[0..1], &weights);
    #[allow(clippy::needless_range_loop)] // `b` is a subset mask, not only an index
    for b in 1..size {
        let hi = usize::BITS as usize - 1 - b.leading_zeros() as usize;
        let prev = b & !(1 << hi);
        let deg = b.count_ones() as usize;
        let zh = z[hi];
        let (before, after) = polys.split_at_mut(b * stride);
        let p = &before[prev * stride..prev * stride + deg];
        let q = &mut after[..=deg];
        q[0] = 1.0;
        for j in 1..=deg {
            let hi_term = if j < deg { p[j] } else { 0.0 };
            q[j] = hi_term + zh * p[j - 1];
        }
        table[b] = value * f_of(&after[..=deg], &weights);
    }
    table
}

/// Per-row fallback: the polynomial of `A`, then one division per member of `A`.
fn contributions_slow(
    value: f64,
    features: &[u32],
    z: &[f64],
    a: u64,
    zbar: f64,
    phi: &mut [f64],
    s: &mut Scratch,
) {
    let m = features.len();
    let weights = shapley_weights(m);
    s.poly.clear();
    s.poly.push(1.0);
    for (k, &zk) in z.iter().enumerate() {
        if a & (1 << k) != 0 {
            s.poly.push(0.0);
            for j in (1..s.poly.len()).rev() {
                s.poly[j] += zk * s.poly[j - 1];
            }
        }
    }
    let full = value * f_of(&s.poly, &weights);
    let deg = s.poly.len() - 1;
    for (k, (&f, &zk)) in features.iter().zip(z).enumerate() {
        if a & (1 << k) == 0 {
            phi[f as usize] -= zbar * full;
            continue;
        }
        // Divide (1 + z t) out of the polynomial: e_j(A\k) = e_j(A) − z · e_{j−1}(A\k).
        s.unwound.clear();
        s.unwound.push(1.0);
        for j in 1..deg {
            let prev = s.unwound[j - 1];
            s.unwound.push(s.poly[j] - zk * prev);
        }
        phi[f as usize] += (1.0 - zk) * zbar * value * f_of(&s.unwound, &weights);
    }
}

/// Exact Shapley values of the path-dependent tree game by enumerating coalitions. Exponential;
/// for tests of the fast algorithm only.
pub fn brute_force_shap(tree: &Tree, row: &[f64], n_features: usize) -> Vec<f64> {
    let used: Vec<usize> = {
        let mut u: Vec<usize> = tree.feature.iter().map(|&f| f as usize).collect();
        u.sort_unstable();
        u.dedup();
        u
    };
    let m = used.len();
    let value = |mask: u64| -> f64 {
        // Expected output when features in `mask` are known and the rest follow the covers.
        fn walk(t: &Tree, c: i32, row: &[f64], known: &dyn Fn(usize) -> bool) -> f64 {
            if c < 0 {
                return t.leaf_value[!c as usize];
            }
            let n = c as usize;
            let f = t.feature[n] as usize;
            if known(f) {
                let next = if t.goes_left(n, row[f]) {
                    t.left[n]
                } else {
                    t.right[n]
                };
                walk(t, next, row, known)
            } else {
                t.fraction(n, t.left[n]) * walk(t, t.left[n], row, known)
                    + t.fraction(n, t.right[n]) * walk(t, t.right[n], row, known)
            }
        }
        if tree.feature.is_empty() {
            return tree.leaf_value[0];
        }
        let known = |f: usize| {
            used.iter()
                .position(|&u| u == f)
                .is_some_and(|k| mask & (1 << k) != 0)
        };
        walk(tree, 0, row, &known)
    };
    let mut phi = vec![0.0; n_features];
    if m == 0 {
        return phi;
    }
    let weights = shapley_weights(m);
    for (k, &f) in used.iter().enumerate() {
        for mask in 0..(1u64 << m) {
            if mask & (1 << k) != 0 {
                continue;
            }
            let s = mask.count_ones() as usize;
            phi[f] += weights[s] * (value(mask | (1 << k)) - value(mask));
        }
    }
    phi
}
