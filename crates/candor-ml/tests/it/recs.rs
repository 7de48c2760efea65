//! Recommendations: ALS against `implicit` on Online Retail (temporal split at 2011-11-01),
//! fold-in and explanations against exact linear algebra, item-kNN, top-k and metrics.

#![allow(clippy::unwrap_used)]

use candor_ml::recs::{
    AlsParams, Csr, ItemKnn, dot, exposure, popularity, ranking_metrics, top_k, train_als,
};
use serde_json::Value;

use super::bank::workspace;

fn read_pairs(path: &std::path::Path) -> Vec<Vec<i64>> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.split(',').map(|x| x.parse().unwrap()).collect())
        .collect()
}

/// Same interactions, same factors, regularization and iterations: Candor's recall@10 and
/// NDCG@10 within 2% of implicit's, evaluated by one code path (the peer script); Candor's own
/// metric code agrees with the script's on Candor's lists.
#[test]
fn als_matches_implicit_on_online_retail() {
    let data = workspace().join("../shared/data/online_retail/online_retail.csv.gz");
    if !data.exists() {
        println!("SKIPPED-DATA: {} not found", data.display());
        return;
    }
    let Some(py) = candor_testkit::peers_python() else {
        return;
    };
    let script = workspace().join("crates/candor-ml/tests/peers/implicit_reference.py");
    let dir = candor_testkit::TempDir::new("candor-recs");
    let out = std::process::Command::new(&py)
        .arg(&script)
        .args([
            "prep",
            data.to_str().unwrap(),
            "2011-11-01",
            dir.0.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let train = read_pairs(&dir.0.join("train.csv"));
    let test = read_pairs(&dir.0.join("test.csv"));
    let users = train.iter().map(|r| r[0]).max().unwrap() as usize + 1;
    let items = train.iter().map(|r| r[1]).max().unwrap() as usize + 1;
    let triplets: Vec<(u32, u32, f32)> = train
        .iter()
        .map(|r| (r[0] as u32, r[1] as u32, r[2] as f32))
        .collect();
    let m = Csr::from_triplets(users, items, &triplets);
    assert_eq!(m.nnz(), train.len());
    let params = AlsParams {
        factors: 64,
        regularization: 0.01,
        alpha: 1.0,
        iterations: 15,
        ..AlsParams::default()
    };
    let als = train_als(&m, &params, &mut |_| {});
    let bytes = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    std::fs::write(dir.0.join("candor_users.f32"), bytes(&als.user_factors)).unwrap();
    std::fs::write(dir.0.join("candor_items.f32"), bytes(&als.item_factors)).unwrap();
    let out = std::process::Command::new(&py)
        .arg(&script)
        .args([
            "eval",
            dir.0.to_str().unwrap(),
            "64",
            "15",
            "0.01",
            "1.0",
            "10",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    let (c, i) = (&r["candor"], &r["implicit"]);
    for m in ["recall", "ndcg"] {
        let (cv, iv) = (c[m].as_f64().unwrap(), i[m].as_f64().unwrap());
        assert!(
            cv >= iv * 0.98,
            "{m}@10: candor {cv:.4} vs implicit {iv:.4} ({r})"
        );
    }
    // ALS beats popularity here, as it should on repeat-purchase data.
    assert!(
        c["recall"].as_f64().unwrap() > r["popularity"]["recall"].as_f64().unwrap(),
        "{r}"
    );
    // Candor's own metrics on its lists equal the script's.
    let mut relevant: Vec<Vec<u32>> = vec![Vec::new(); users];
    for t in &test {
        relevant[t[0] as usize].push(t[1] as u32);
    }
    let evaluated: Vec<usize> = (0..users).filter(|&u| !relevant[u].is_empty()).collect();
    let lists: Vec<Vec<u32>> = evaluated
        .iter()
        .map(|&u| {
            let (seen, _) = m.row(u);
            top_k(&als.scores(als.user(u)), 10, seen)
                .into_iter()
                .map(|(i, _)| i)
                .collect()
        })
        .collect();
    let rel: Vec<Vec<u32>> = evaluated
        .iter()
        .map(|&u| {
            let mut r = relevant[u].clone();
            r.sort_unstable();
            r
        })
        .collect();
    let ours = ranking_metrics(&lists, &rel, 10, items, &popularity(&m));
    assert_eq!(ours.users, c["users"].as_u64().unwrap() as usize);
    for (name, v) in [
        ("recall", ours.recall),
        ("ndcg", ours.ndcg),
        ("precision", ours.precision),
        ("map", ours.map),
    ] {
        let want = c[name].as_f64().unwrap();
        assert!((v - want).abs() < 2e-3, "{name}: {v} vs {want}");
    }
    println!(
        "online retail @10: candor {c} implicit {i} popularity {}",
        r["popularity"]
    );
}

fn small() -> Csr {
    let mut s = 9u64;
    let mut rnd = || {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (s >> 33) as u32
    };
    let mut t = Vec::new();
    for u in 0..300u32 {
        for _ in 0..(3 + rnd() % 12) {
            // Two taste groups: users < 150 like items < 40, the others items ≥ 40.
            let base = if u < 150 { 0 } else { 40 };
            t.push((u, base + rnd() % 40, 1.0 + (rnd() % 3) as f32));
        }
    }
    Csr::from_triplets(300, 80, &t)
}

/// The fold-in of a user equals the exact least-squares solution, which CG approaches; the
/// explanation's parts add up to the exact score.
#[test]
fn fold_in_and_explanations_are_exact() {
    let m = small();
    let params = AlsParams {
        factors: 8,
        iterations: 10,
        cg_steps: 8,
        ..AlsParams::default()
    };
    let als = train_als(&m, &params, &mut |_| {});
    let (items, values) = m.row(3);
    let exact = als.fold_in(items, values);
    // One more CG half-step can only move toward the exact solution; the trained factors
    // are already close.
    let trained = als.user(3);
    let diff: f32 = exact
        .iter()
        .zip(trained)
        .map(|(a, b)| (a - b).abs())
        .sum::<f32>()
        / exact.iter().map(|a| a.abs()).sum::<f32>();
    assert!(diff < 0.05, "relative difference {diff}");
    for target in [0usize, 10, 50] {
        let (total, parts) = als.explain(items, values, target);
        let score = dot(als.item(target), &exact);
        assert!(
            (total - score).abs() < 1e-4 * score.abs().max(1.0),
            "{total} vs {score}"
        );
        assert!(parts.windows(2).all(|w| w[0].1 >= w[1].1));
        assert_eq!(parts.len(), items.len());
    }
    // Recommendations follow the taste group.
    let top = top_k(&als.scores(&exact), 5, items);
    assert!(top.iter().all(|(i, _)| *i < 40), "{top:?}");
}

#[test]
fn item_knn_top_k_and_metrics() {
    let m = small();
    let knn = ItemKnn::train(&m, 20);
    // Neighbours of an item stay within its taste group and are sorted.
    for i in [0usize, 45] {
        let n = &knn.neighbours[i];
        assert!(!n.is_empty());
        assert!(n.windows(2).all(|w| w[0].1 >= w[1].1));
        let same = n.iter().filter(|(j, _)| (*j < 40) == (i < 40)).count();
        assert!(same * 10 >= n.len() * 9, "{i}: {n:?}");
    }
    let scores = knn.scores(&[1, 2, 3]);
    let top = top_k(&scores, 4, &[1, 2, 3]);
    assert_eq!(top.len(), 4);
    assert!(top.iter().all(|(i, _)| ![1, 2, 3].contains(i)));
    // top_k: ties by index, exclusions, -inf skipped.
    let t = top_k(&[1.0, 3.0, 3.0, f32::NEG_INFINITY, 2.0], 3, &[2]);
    assert_eq!(t, vec![(1, 3.0), (4, 2.0), (0, 1.0)]);
    // Metrics by hand: one user, 2 of 3 relevant found at ranks 1 and 3.
    let r = ranking_metrics(&[vec![5, 6, 7]], &[vec![5, 7, 9]], 3, 10, &[1.0; 10]);
    assert!((r.precision - 2.0 / 3.0).abs() < 1e-12);
    assert!((r.recall - 2.0 / 3.0).abs() < 1e-12);
    let dcg = 1.0 + 1.0 / 4f64.log2();
    let idcg = 1.0 + 1.0 / 3f64.log2() + 1.0 / 4f64.log2();
    assert!((r.ndcg - dcg / idcg).abs() < 1e-12);
    assert!((r.map - (1.0 + 2.0 / 3.0) / 3.0).abs() < 1e-12);
    assert!((r.coverage - 0.3).abs() < 1e-12);
}

#[test]
fn exposure_gini_head_and_groups() {
    // 5 items; popularity puts item 0 in the head (top 20%).
    let pop = [10.0, 4.0, 3.0, 2.0, 1.0];
    let groups = ["a", "a", "b", "b", ""];
    let lists = vec![vec![0, 1], vec![0, 2], vec![0]];
    let e = exposure(&lists, &pop, &groups);
    let w = |r: usize| 1.0 / ((r + 2) as f64).log2();
    let x = [3.0 * w(0), w(1), w(1), 0.0, 0.0];
    let total: f64 = x.iter().sum();
    // Gini by its definition: mean absolute difference over twice the mean.
    let n = x.len() as f64;
    let mad: f64 = x
        .iter()
        .flat_map(|a| x.iter().map(move |b| (a - b).abs()))
        .sum::<f64>()
        / (n * n);
    let gini = mad / (2.0 * total / n);
    assert!((e.gini - gini).abs() < 1e-12, "{} vs {gini}", e.gini);
    assert_eq!((e.lists, e.slots), (3, 5));
    assert!((e.coverage - 0.6).abs() < 1e-12);
    assert!((e.head_catalog_share - 0.2).abs() < 1e-12);
    assert!((e.head_demand_share - 0.5).abs() < 1e-12);
    assert!((e.head_exposure_share - 3.0 * w(0) / total).abs() < 1e-12);
    let a = &e.groups["a"];
    assert_eq!(a.items, 2);
    assert!((a.demand_share - 0.7).abs() < 1e-12);
    assert!((a.exposure_share - (3.0 * w(0) + w(1)) / total).abs() < 1e-12);
    let b = &e.groups["b"];
    assert!((b.exposure_to_demand.unwrap_or(0.0) - (w(1) / total) / 0.25).abs() < 1e-12);
    assert!(!e.groups.contains_key(""));
    // Everyone shown the same single item: as unequal as 5 items can be, (n-1)/n.
    let e = exposure(&[vec![3], vec![3]], &pop, &groups);
    assert!((e.gini - 0.8).abs() < 1e-12);
    // Nothing shown: no exposure, no division by zero.
    let e = exposure(&[], &pop, &groups);
    assert_eq!((e.gini, e.coverage, e.head_exposure_share), (0.0, 0.0, 0.0));
}
