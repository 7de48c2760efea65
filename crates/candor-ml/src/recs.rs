//! Recommendations from implicit feedback: ALS with a conjugate-gradient solver (Hu, Koren &
//! Volinsky 2008; the CG update of Takács et al. 2011 as in the `implicit` library), item-to-item
//! cosine similarity over co-occurrence, popularity; top-k with filters, fold-in of a single
//! user, explanations from the model's own arithmetic, and ranking metrics.
//!
//! Confidence semantics follow `implicit`: the user × item matrix holds `r_ui`, the confidence
//! is `c_ui = alpha · r_ui` for stored entries (preference 1) and 1 elsewhere (preference 0).
//! Each ALS half-step solves, per user, `(YᵀY + Yᵀ(C_u − I)Y + λI) x_u = Yᵀ C_u p_u` with a few
//! CG steps warm-started from the previous `x_u`, never forming the per-user matrix.

use std::collections::BTreeMap;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// A compressed sparse row matrix of `f32` values.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Csr {
    pub rows: usize,
    pub cols: usize,
    pub indptr: Vec<usize>,
    pub indices: Vec<u32>,
    pub data: Vec<f32>,
}

impl Csr {
    /// Builds a matrix from (row, col, value) triplets; duplicates are summed, columns sorted.
    pub fn from_triplets(rows: usize, cols: usize, triplets: &[(u32, u32, f32)]) -> Csr {
        let mut counts = vec![0usize; rows + 1];
        for &(r, _, _) in triplets {
            counts[r as usize + 1] += 1;
        }
        for i in 0..rows {
            counts[i + 1] += counts[i];
        }
        let mut next = counts.clone();
        let mut entries = vec![(0u32, 0f32); triplets.len()];
        for &(r, c, v) in triplets {
            entries[next[r as usize]] = (c, v);
            next[r as usize] += 1;
        }
        let mut indptr = Vec::with_capacity(rows + 1);
        let mut indices = Vec::with_capacity(triplets.len());
        let mut data = Vec::with_capacity(triplets.len());
        indptr.push(0);
        for r in 0..rows {
            let row = &mut entries[counts[r]..counts[r + 1]];
            row.sort_unstable_by_key(|e| e.0);
            let mut last: Option<u32> = None;
            for &(c, v) in row.iter() {
                if last == Some(c) {
                    if let Some(d) = data.last_mut() {
                        *d += v;
                    }
                } else {
                    indices.push(c);
                    data.push(v);
                    last = Some(c);
                }
            }
            indptr.push(indices.len());
        }
        Csr {
            rows,
            cols,
            indptr,
            indices,
            data,
        }
    }

    pub fn nnz(&self) -> usize {
        self.indices.len()
    }

    pub fn row(&self, r: usize) -> (&[u32], &[f32]) {
        let (a, b) = (self.indptr[r], self.indptr[r + 1]);
        (&self.indices[a..b], &self.data[a..b])
    }

    pub fn transpose(&self) -> Csr {
        let mut triplets = Vec::with_capacity(self.nnz());
        for r in 0..self.rows {
            let (idx, val) = self.row(r);
            for (&c, &v) in idx.iter().zip(val) {
                triplets.push((c, r as u32, v));
            }
        }
        Csr::from_triplets(self.cols, self.rows, &triplets)
    }
}

/// Dot product in eight independent lanes (vectorizes without fast-math).
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    let mut s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (x, y) in ra.iter().zip(rb) {
        s += x * y;
    }
    s
}

#[inline]
fn axpy(alpha: f32, x: &[f32], y: &mut [f32]) {
    for (yi, xi) in y.iter_mut().zip(x) {
        *yi += alpha * xi;
    }
}

/// `out = m · v` for a row-major `k × k` matrix.
#[inline]
fn matvec(m: &[f32], v: &[f32], out: &mut [f32]) {
    let k = v.len();
    for (a, o) in out.iter_mut().enumerate() {
        *o = dot(&m[a * k..(a + 1) * k], v);
    }
}

/// `FᵀF + reg·I` of a row-major `n × k` factor matrix, in f64 then rounded.
fn gram(f: &[f32], k: usize, reg: f32) -> Vec<f32> {
    let n = f.len() / k.max(1);
    let chunk = 4096;
    let partial: Vec<Vec<f64>> = (0..n.div_ceil(chunk))
        .into_par_iter()
        .map(|c| {
            let mut g = vec![0f64; k * k];
            for r in c * chunk..((c + 1) * chunk).min(n) {
                let row = &f[r * k..(r + 1) * k];
                for a in 0..k {
                    let ra = f64::from(row[a]);
                    if ra == 0.0 {
                        continue;
                    }
                    let ga = &mut g[a * k..(a + 1) * k];
                    for (gb, &rb) in ga.iter_mut().zip(row) {
                        *gb += ra * f64::from(rb);
                    }
                }
            }
            g
        })
        .collect();
    let mut g = vec![0f64; k * k];
    for p in partial {
        for (a, b) in g.iter_mut().zip(p) {
            *a += b;
        }
    }
    for a in 0..k {
        g[a * k + a] += f64::from(reg);
    }
    g.into_iter().map(|v| v as f32).collect()
}

/// ALS hyper-parameters (defaults as `implicit`'s except the factor count).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct AlsParams {
    pub factors: usize,
    pub regularization: f32,
    pub alpha: f32,
    pub iterations: usize,
    pub cg_steps: usize,
    pub seed: u64,
}

impl Default for AlsParams {
    fn default() -> Self {
        AlsParams {
            factors: 64,
            regularization: 0.01,
            alpha: 1.0,
            iterations: 15,
            cg_steps: 3,
            seed: 42,
        }
    }
}

/// A trained ALS model: row-major user and item factors.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Als {
    pub factors: usize,
    pub regularization: f32,
    pub alpha: f32,
    pub users: usize,
    pub items: usize,
    pub user_factors: Vec<f32>,
    pub item_factors: Vec<f32>,
}

/// One CG half-step: updates every row of `x` given fixed `y`.
///
/// The rows of `y` a row touches are gathered once into a contiguous buffer: the residual and
/// the CG steps then read them from cache instead of missing on scattered rows four times.
fn cg_half(cui: &Csr, x: &mut [f32], y: &[f32], k: usize, reg: f32, alpha: f32, steps: usize) {
    let yty = gram(y, k, reg);
    x.par_chunks_mut(k).enumerate().for_each_init(
        || {
            (
                vec![0f32; k],
                vec![0f32; k],
                vec![0f32; k],
                Vec::<f32>::new(),
            )
        },
        |(r, p, ap, rows), (u, xu)| {
            let (idx, val) = cui.row(u);
            rows.clear();
            for &i in idx {
                rows.extend_from_slice(&y[i as usize * k..(i as usize + 1) * k]);
            }
            // r = Yᵀ C_u p_u − (YᵀY + Yᵀ(C_u − I)Y + λI) x_u
            matvec(&yty, xu, r);
            for v in r.iter_mut() {
                *v = -*v;
            }
            for (yi, &v) in rows.chunks_exact(k).zip(val) {
                let c = alpha * v;
                axpy(c - (c - 1.0) * dot(yi, xu), yi, r);
            }
            p.copy_from_slice(r);
            let mut rsold = dot(r, r);
            if rsold < 1e-20 {
                return;
            }
            for _ in 0..steps {
                matvec(&yty, p, ap);
                for (yi, &v) in rows.chunks_exact(k).zip(val) {
                    let c = alpha * v;
                    axpy((c - 1.0) * dot(yi, p), yi, ap);
                }
                let a = rsold / dot(p, ap);
                axpy(a, p, xu);
                axpy(-a, ap, r);
                let rsnew = dot(r, r);
                if rsnew < 1e-20 {
                    break;
                }
                let beta = rsnew / rsold;
                for (pi, &ri) in p.iter_mut().zip(r.iter()) {
                    *pi = ri + beta * *pi;
                }
                rsold = rsnew;
            }
        },
    );
}

/// SplitMix64 uniform in [0, 1), for the initial factors.
fn uniform(state: &mut u64) -> f32 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    ((z ^ (z >> 31)) >> 40) as f32 / (1u64 << 24) as f32
}

/// Trains ALS on a users × items matrix of interaction strengths. `on_iteration` is called
/// after each full iteration (users then items). Runs on the current rayon pool.
pub fn train_als(user_items: &Csr, params: &AlsParams, on_iteration: &mut dyn FnMut(usize)) -> Als {
    let k = params.factors.max(1);
    let mut state = params.seed;
    let mut user_factors: Vec<f32> = (0..user_items.rows * k)
        .map(|_| uniform(&mut state) * 0.01)
        .collect();
    let mut item_factors: Vec<f32> = (0..user_items.cols * k)
        .map(|_| uniform(&mut state) * 0.01)
        .collect();
    let item_users = user_items.transpose();
    for it in 0..params.iterations {
        cg_half(
            user_items,
            &mut user_factors,
            &item_factors,
            k,
            params.regularization,
            params.alpha,
            params.cg_steps,
        );
        cg_half(
            &item_users,
            &mut item_factors,
            &user_factors,
            k,
            params.regularization,
            params.alpha,
            params.cg_steps,
        );
        on_iteration(it + 1);
    }
    Als {
        factors: k,
        regularization: params.regularization,
        alpha: params.alpha,
        users: user_items.rows,
        items: user_items.cols,
        user_factors,
        item_factors,
    }
}

/// Cholesky factorization of a symmetric positive-definite row-major `k × k` matrix, in f64
/// (lower triangle). `None` if it is not positive definite.
fn cholesky(a: &[f64], k: usize) -> Option<Vec<f64>> {
    let mut l = vec![0f64; k * k];
    for i in 0..k {
        for j in 0..=i {
            let mut s = a[i * k + j];
            for p in 0..j {
                s -= l[i * k + p] * l[j * k + p];
            }
            if i == j {
                if s <= 0.0 {
                    return None;
                }
                l[i * k + i] = s.sqrt();
            } else {
                l[i * k + j] = s / l[j * k + j];
            }
        }
    }
    Some(l)
}

fn cholesky_solve(l: &[f64], b: &[f64], k: usize) -> Vec<f64> {
    let mut y = vec![0f64; k];
    for i in 0..k {
        let mut s = b[i];
        for p in 0..i {
            s -= l[i * k + p] * y[p];
        }
        y[i] = s / l[i * k + i];
    }
    let mut x = vec![0f64; k];
    for i in (0..k).rev() {
        let mut s = y[i];
        for p in i + 1..k {
            s -= l[p * k + i] * x[p];
        }
        x[i] = s / l[i * k + i];
    }
    x
}

impl Als {
    pub fn user(&self, u: usize) -> &[f32] {
        &self.user_factors[u * self.factors..(u + 1) * self.factors]
    }

    pub fn item(&self, i: usize) -> &[f32] {
        &self.item_factors[i * self.factors..(i + 1) * self.factors]
    }

    /// `YᵀY + λI` of the item factors (f64, row-major): computed once per model and passed to
    /// [`Als::user_system_with`] when serving many people.
    pub fn item_gram(&self) -> Vec<f64> {
        gram(&self.item_factors, self.factors, self.regularization)
            .into_iter()
            .map(f64::from)
            .collect()
    }

    /// The per-user system matrix `YᵀY + Yᵀ(C_u − I)Y + λI` (f64), Cholesky-factored.
    fn user_system(&self, items: &[u32], values: &[f32]) -> Option<Vec<f64>> {
        self.user_system_with(&self.item_gram(), items, values)
    }

    /// [`Als::user_system`] from a precomputed [`Als::item_gram`].
    pub fn user_system_with(&self, yty: &[f64], items: &[u32], values: &[f32]) -> Option<Vec<f64>> {
        let k = self.factors;
        let mut a: Vec<f64> = yty.to_vec();
        for (&i, &v) in items.iter().zip(values) {
            let c = f64::from(self.alpha * v);
            let yi = self.item(i as usize);
            for p in 0..k {
                for q in 0..k {
                    a[p * k + q] += (c - 1.0) * f64::from(yi[p]) * f64::from(yi[q]);
                }
            }
        }
        cholesky(&a, k)
    }

    /// Factors of a new or changed user from their interactions, solved exactly against the
    /// fixed item factors (no retraining).
    pub fn fold_in(&self, items: &[u32], values: &[f32]) -> Vec<f32> {
        let k = self.factors;
        let Some(l) = self.user_system(items, values) else {
            return vec![0.0; k];
        };
        let mut b = vec![0f64; k];
        for (&i, &v) in items.iter().zip(values) {
            let c = f64::from(self.alpha * v);
            for (bp, &yp) in b.iter_mut().zip(self.item(i as usize)) {
                *bp += c * f64::from(yp);
            }
        }
        cholesky_solve(&l, &b, k)
            .into_iter()
            .map(|v| v as f32)
            .collect()
    }

    /// Why `item` is recommended to a user with this history: the exact score split into one
    /// contribution per history item, `c_uj · y_iᵀ W_u⁻¹ y_j` (W_u the user's system matrix),
    /// strongest first, with the score they add up to.
    pub fn explain(&self, items: &[u32], values: &[f32], item: usize) -> (f32, Vec<(u32, f32)>) {
        match self.user_system(items, values) {
            Some(l) => self.explain_with(&l, items, values, item),
            None => (0.0, Vec::new()),
        }
    }

    /// [`Als::explain`] with the person's factored system from [`Als::user_system_with`]
    /// (factor once, explain every recommended item).
    pub fn explain_with(
        &self,
        l: &[f64],
        items: &[u32],
        values: &[f32],
        item: usize,
    ) -> (f32, Vec<(u32, f32)>) {
        let k = self.factors;
        let yi: Vec<f64> = self.item(item).iter().map(|&v| f64::from(v)).collect();
        let w = cholesky_solve(l, &yi, k);
        let mut parts: Vec<(u32, f32)> = items
            .iter()
            .zip(values)
            .map(|(&j, &v)| {
                let c = f64::from(self.alpha * v);
                let s: f64 = self
                    .item(j as usize)
                    .iter()
                    .zip(&w)
                    .map(|(&a, &b)| f64::from(a) * b)
                    .sum();
                (j, (c * s) as f32)
            })
            .collect();
        let total: f32 = parts.iter().map(|p| p.1).sum();
        parts.sort_by(|a, b| b.1.total_cmp(&a.1));
        (total, parts)
    }

    /// Scores of every item for a user's factors.
    pub fn scores(&self, user: &[f32]) -> Vec<f32> {
        self.item_factors
            .chunks_exact(self.factors)
            .map(|y| dot(y, user))
            .collect()
    }
}

/// Item-to-item cosine similarity over binary co-occurrence (who interacted with both),
/// keeping the `neighbours` most similar items of each item.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ItemKnn {
    pub items: usize,
    /// Per item: (neighbour, similarity), most similar first.
    pub neighbours: Vec<Vec<(u32, f32)>>,
}

impl ItemKnn {
    pub fn train(user_items: &Csr, neighbours: usize) -> ItemKnn {
        let item_users = user_items.transpose();
        let norms: Vec<f32> = (0..item_users.rows)
            .map(|i| (item_users.row(i).0.len() as f32).sqrt())
            .collect();
        let lists: Vec<Vec<(u32, f32)>> = (0..item_users.rows)
            .into_par_iter()
            .map_init(
                || (vec![0u32; user_items.cols], Vec::<u32>::new()),
                |(counts, touched), i| {
                    for &u in item_users.row(i).0 {
                        for &j in user_items.row(u as usize).0 {
                            if j as usize != i {
                                if counts[j as usize] == 0 {
                                    touched.push(j);
                                }
                                counts[j as usize] += 1;
                            }
                        }
                    }
                    let mut out: Vec<(u32, f32)> = touched
                        .iter()
                        .map(|&j| {
                            let s = counts[j as usize] as f32
                                / (norms[i] * norms[j as usize]).max(1e-12);
                            (j, s)
                        })
                        .collect();
                    for &j in touched.iter() {
                        counts[j as usize] = 0;
                    }
                    touched.clear();
                    out.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
                    out.truncate(neighbours);
                    out
                },
            )
            .collect();
        ItemKnn {
            items: item_users.rows,
            neighbours: lists,
        }
    }

    /// Scores of every item for a history: the sum of similarities to the history's items.
    pub fn scores(&self, history: &[u32]) -> Vec<f32> {
        let mut s = vec![0f32; self.items];
        for &h in history {
            if let Some(n) = self.neighbours.get(h as usize) {
                for &(j, w) in n {
                    s[j as usize] += w;
                }
            }
        }
        s
    }
}

/// Interaction totals per item (popularity).
pub fn popularity(user_items: &Csr) -> Vec<f32> {
    let mut p = vec![0f32; user_items.cols];
    for (&i, &v) in user_items.indices.iter().zip(&user_items.data) {
        p[i as usize] += v;
    }
    p
}

/// The `k` best items by score, skipping `exclude` (sorted ascending) and items with a score of
/// −∞; ties broken by item index.
pub fn top_k(scores: &[f32], k: usize, exclude: &[u32]) -> Vec<(u32, f32)> {
    let mut best: Vec<(u32, f32)> = Vec::with_capacity(k + 1);
    for (i, &s) in scores.iter().enumerate() {
        if s == f32::NEG_INFINITY || s.is_nan() || exclude.binary_search(&(i as u32)).is_ok() {
            continue;
        }
        if best.len() == k && best.last().is_some_and(|w| s <= w.1) {
            continue;
        }
        let pos = best.partition_point(|b| b.1 >= s);
        best.insert(pos, (i as u32, s));
        best.truncate(k);
    }
    best
}

/// Ranking metrics at `k` over users: each user's recommended list against their relevant
/// (held-out) items.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct RankingMetrics {
    pub users: usize,
    pub k: usize,
    pub precision: f64,
    pub recall: f64,
    pub ndcg: f64,
    pub map: f64,
    /// Share of the catalog recommended to at least one user.
    pub coverage: f64,
    /// Mean training popularity (interaction count share) of recommended items.
    pub mean_popularity: f64,
}

/// `lists[u]` recommended items and `relevant[u]` held-out items (sorted) per evaluated user.
pub fn ranking_metrics(
    lists: &[Vec<u32>],
    relevant: &[Vec<u32>],
    k: usize,
    catalog: usize,
    popularity: &[f32],
) -> RankingMetrics {
    let n = lists.len().min(relevant.len());
    let total_pop: f64 = popularity
        .iter()
        .map(|&p| f64::from(p))
        .sum::<f64>()
        .max(1e-12);
    let (mut p, mut r, mut nd, mut ap, mut pop, mut recs) = (0.0, 0.0, 0.0, 0.0, 0.0, 0usize);
    let mut seen = vec![false; catalog];
    for u in 0..n {
        let list = &lists[u][..lists[u].len().min(k)];
        let rel = &relevant[u];
        if rel.is_empty() {
            continue;
        }
        let (mut hits, mut dcg, mut sum_prec) = (0usize, 0.0, 0.0);
        for (rank, &i) in list.iter().enumerate() {
            if let Some(s) = seen.get_mut(i as usize) {
                *s = true;
            }
            pop += f64::from(popularity.get(i as usize).copied().unwrap_or(0.0)) / total_pop;
            recs += 1;
            if rel.binary_search(&i).is_ok() {
                hits += 1;
                dcg += 1.0 / ((rank + 2) as f64).log2();
                sum_prec += hits as f64 / (rank + 1) as f64;
            }
        }
        let ideal: f64 = (0..rel.len().min(k))
            .map(|r| 1.0 / ((r + 2) as f64).log2())
            .sum();
        p += hits as f64 / k as f64;
        r += hits as f64 / rel.len() as f64;
        nd += dcg / ideal;
        ap += sum_prec / rel.len().min(k) as f64;
    }
    let users = (0..n).filter(|&u| !relevant[u].is_empty()).count();
    let d = users.max(1) as f64;
    RankingMetrics {
        users,
        k,
        precision: p / d,
        recall: r / d,
        ndcg: nd / d,
        map: ap / d,
        coverage: seen.iter().filter(|&&s| s).count() as f64 / catalog.max(1) as f64,
        mean_popularity: if recs == 0 { 0.0 } else { pop / recs as f64 },
    }
}

/// How recommendation exposure falls on the catalog: who gets seen. Each slot is weighted by its
/// position as in DCG (`1 / log2(rank + 2)`), so the first slot counts most.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Exposure {
    pub lists: usize,
    pub slots: usize,
    /// Share of the catalog shown at least once.
    pub coverage: f64,
    /// Gini coefficient of position-weighted exposure over every catalog item (0: every item
    /// equally exposed; near 1: all exposure on a few items).
    pub gini: f64,
    /// The "head": the most popular 20% of items by training interactions.
    pub head_catalog_share: f64,
    /// Share of training interactions on the head.
    pub head_demand_share: f64,
    /// Share of exposure on the head (above `head_demand_share`: popularity bias amplified).
    pub head_exposure_share: f64,
    /// Per item group (e.g. category): its share of exposure, of demand and of the catalog.
    pub groups: BTreeMap<String, GroupExposure>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct GroupExposure {
    pub items: usize,
    pub catalog_share: f64,
    pub demand_share: f64,
    pub exposure_share: f64,
    /// `exposure_share / demand_share`: 1 is exposure in proportion to demand; below 1, the
    /// group is under-shown.
    pub exposure_to_demand: Option<f64>,
}

/// Exposure of `lists` over a catalog of `popularity.len()` items; `group[i]` names item `i`'s
/// group (empty: no group).
pub fn exposure(lists: &[Vec<u32>], popularity: &[f32], group: &[&str]) -> Exposure {
    let n = popularity.len();
    let mut exp = vec![0f64; n];
    let mut slots = 0usize;
    for list in lists {
        for (rank, &i) in list.iter().enumerate() {
            if let Some(e) = exp.get_mut(i as usize) {
                *e += 1.0 / ((rank + 2) as f64).log2();
                slots += 1;
            }
        }
    }
    let total_exp: f64 = exp.iter().sum();
    let total_pop: f64 = popularity.iter().map(|&p| f64::from(p)).sum();
    let share = |x: f64, t: f64| if t > 0.0 { x / t } else { 0.0 };
    // Gini over the sorted exposures: sum((2i - n - 1) x_i) / (n sum x).
    let mut sorted = exp.clone();
    sorted.sort_by(f64::total_cmp);
    let gini = if total_exp > 0.0 && n > 0 {
        let nf = n as f64;
        sorted
            .iter()
            .enumerate()
            .map(|(i, &x)| (2.0 * (i + 1) as f64 - nf - 1.0) * x)
            .sum::<f64>()
            / (nf * total_exp)
    } else {
        0.0
    };
    let mut by_pop: Vec<usize> = (0..n).collect();
    by_pop.sort_by(|&a, &b| popularity[b].total_cmp(&popularity[a]).then(a.cmp(&b)));
    let head = by_pop[..n.div_ceil(5).min(n)].to_vec();
    let head_exp: f64 = head.iter().map(|&i| exp[i]).sum();
    let head_pop: f64 = head.iter().map(|&i| f64::from(popularity[i])).sum();
    let mut groups: BTreeMap<String, (usize, f64, f64)> = BTreeMap::new();
    for i in 0..n {
        let Some(g) = group.get(i).filter(|g| !g.is_empty()) else {
            continue;
        };
        let e = groups.entry((*g).to_string()).or_default();
        e.0 += 1;
        e.1 += f64::from(popularity[i]);
        e.2 += exp[i];
    }
    Exposure {
        lists: lists.len(),
        slots,
        coverage: share(exp.iter().filter(|&&x| x > 0.0).count() as f64, n as f64),
        gini,
        head_catalog_share: share(head.len() as f64, n as f64),
        head_demand_share: share(head_pop, total_pop),
        head_exposure_share: share(head_exp, total_exp),
        groups: groups
            .into_iter()
            .map(|(g, (items, pop, e))| {
                let demand_share = share(pop, total_pop);
                let exposure_share = share(e, total_exp);
                let ge = GroupExposure {
                    items,
                    catalog_share: share(items as f64, n as f64),
                    demand_share,
                    exposure_share,
                    exposure_to_demand: (demand_share > 0.0).then(|| exposure_share / demand_share),
                };
                (g, ge)
            })
            .collect(),
    }
}
