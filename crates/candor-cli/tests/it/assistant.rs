//! The assistant's catalog from Online Retail's order lines, and the repository's product
//! questions (`data/assistant/questions.tsv`, written from its descriptions) answered with the
//! right product among the reply's first three for at least 90% of them, on both backends.

use std::path::PathBuf;

use candor_testkit::BACKENDS;
use serde_json::Value;

use super::{Deployment, ok, online_retail, stderr, stdout};

#[tokio::test]
async fn online_retail_product_questions_find_the_right_product_in_the_top_three() {
    let Some(data) = online_retail() else {
        return;
    };
    let questions =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/assistant/questions.tsv");
    let n_questions = std::fs::read_to_string(&questions).unwrap().lines().count() - 1;
    assert!(n_questions >= 50, "{n_questions} questions");
    for backend in BACKENDS {
        let Some(d) = Deployment::new(backend).await else {
            continue;
        };
        ok(&d.run(&["init"]));
        let out = ok(&d.run(&["assistant", "import", "--data", data.to_str().unwrap()]));
        // One product per stock code that has a sale (of 4,070 codes, some only ever returned).
        let products: usize = out.split_whitespace().next().unwrap().parse().unwrap();
        assert!((3900..=4070).contains(&products), "{out}");
        let out = d.run(&[
            "assistant",
            "eval",
            "--questions",
            questions.to_str().unwrap(),
            "--json",
        ]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}\n{}",
            stdout(&out),
            stderr(&out)
        );
        let v: Value = serde_json::from_str(stdout(&out).trim()).unwrap();
        assert_eq!(v["questions"], n_questions);
        let top3 = v["topk"].as_f64().unwrap();
        println!(
            "{backend:?}: top-1 {} top-3 {top3} misses {}",
            v["top1"], v["misses"]
        );
        assert!(top3 >= 0.9, "{v}");
        // A stricter bar than the catalog can meet fails with exit 3.
        let strict = d.run(&[
            "assistant",
            "eval",
            "--questions",
            questions.to_str().unwrap(),
            "--k",
            "1",
            "--min",
            "1.0",
        ]);
        assert_eq!(strict.status.code(), Some(3), "{}", stdout(&strict));
    }
}
