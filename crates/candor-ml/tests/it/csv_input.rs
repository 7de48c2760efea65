//! CSV files as users have them, and the errors for the ones that cannot train a model.

use candor_ml::lead::{TrainOptions, train_from_table};
use candor_ml::table::{Selection, read_csv};

fn train(
    csv: &str,
    target: &str,
    exclude: &[&str],
    protected: &[&str],
    features: Option<&[&str]>,
) -> Result<(), String> {
    let table = read_csv(csv.as_bytes()).map_err(|e| format!("{}: {e}", e.code()))?;
    let ex: Vec<String> = exclude.iter().map(|s| s.to_string()).collect();
    let pr: Vec<String> = protected.iter().map(|s| s.to_string()).collect();
    let fe: Option<Vec<String>> = features.map(|f| f.iter().map(|s| s.to_string()).collect());
    let sel = Selection {
        target,
        exclude: &ex,
        protected: &pr,
        features: fe.as_deref(),
        positive: None,
    };
    let opts = TrainOptions {
        gbdt: candor_ml::gbdt::GbdtParams {
            num_trees: 5,
            min_data_in_leaf: 1,
            ..Default::default()
        },
        ..Default::default()
    };
    train_from_table(&table, &sel, None, &opts, &mut |_| {})
        .map(|_| ())
        .map_err(|e| format!("{}: {e}", e.code()))
}

fn lines(header: &str, sep: &str, n: usize, f: impl Fn(usize) -> String) -> String {
    let mut s = format!("{header}\n");
    for i in 0..n {
        s.push_str(&f(i));
        s.push('\n');
    }
    s.replace(',', sep)
}

fn good(sep: &str) -> String {
    lines("\"age\",\"job\",\"balance\",\"y\"", sep, 60, |i| {
        format!(
            "{},\"{}\",{},{}",
            20 + i % 40,
            ["admin.", "blue-collar", "a \"quoted\" job"][i % 3],
            i * 13 % 700,
            if i % 3 == 0 { "yes" } else { "no" }
        )
    })
}

#[test]
fn reads_semicolons_commas_tabs_quotes_and_bom() {
    for sep in [",", ";", "\t"] {
        train(&good(sep), "y", &[], &["age"], None).expect(sep);
    }
    let bom = format!("\u{feff}{}", good(";"));
    train(&bom, "y", &[], &["age"], None).expect("bom");
    let crlf = good(";").replace('\n', "\r\n");
    train(&crlf, "y", &[], &["age"], None).expect("crlf");
    let ones = good(",").replace(",yes\n", ",1\n").replace(",no\n", ",0\n");
    train(&ones, "y", &[], &["age"], None).expect("1/0 target");
}

/// CSV text, target, excluded, protected, features, expected error fragment.
type Case<'a> = (
    String,
    &'a str,
    Vec<&'a str>,
    Vec<&'a str>,
    Option<Vec<&'a str>>,
    &'a str,
);

#[test]
fn refuses_files_that_cannot_train() {
    let cases: Vec<Case> = vec![
        (
            good(","),
            "outcome",
            vec![],
            vec![],
            None,
            "target_invalid: target column \"outcome\"",
        ),
        (
            good(",").replace(",yes\n", ",no\n"),
            "y",
            vec![],
            vec![],
            None,
            "target_invalid",
        ),
        (
            good(",").replacen(",no\n", ",maybe\n", 1),
            "y",
            vec![],
            vec![],
            None,
            "row 3: target \"y\" is \"maybe\"",
        ),
        (
            good(",").replacen(",no\n", ",\n", 1),
            "y",
            vec![],
            vec![],
            None,
            "target \"y\" is empty",
        ),
        (
            good(",").replacen(",13,", ",lots,", 1),
            "y",
            vec![],
            vec![],
            None,
            "not a number",
        ),
        (
            good(",").replacen(",13,", ",NaN,", 1),
            "y",
            vec![],
            vec![],
            None,
            "NaN and infinite",
        ),
        (
            good(",").replacen(",26,", ",inf,", 1),
            "y",
            vec![],
            vec![],
            None,
            "NaN and infinite",
        ),
        (
            good(","),
            "y",
            vec!["duration"],
            vec![],
            None,
            "excluded column \"duration\" is not in the file",
        ),
        (
            good(","),
            "y",
            vec![],
            vec!["gender"],
            None,
            "protected column \"gender\"",
        ),
        (
            good(","),
            "y",
            vec![],
            vec!["age"],
            Some(vec!["age", "job"]),
            "protected attribute",
        ),
        ("a,y\n".to_string(), "y", vec![], vec![], None, "no rows"),
        (
            "a,a,y\n1,2,yes\n".to_string(),
            "y",
            vec![],
            vec![],
            None,
            "appears twice",
        ),
        (
            "a,y\n1,yes\n2,no,3\n".to_string(),
            "y",
            vec![],
            vec![],
            None,
            "row 3: has 3 fields",
        ),
        (
            lines("id,y", ",", 300, |i| {
                format!("u{i},{}", if i % 2 == 0 { "yes" } else { "no" })
            }),
            "y",
            vec![],
            vec![],
            None,
            "identifier",
        ),
    ];
    for (csv, target, ex, pr, fe, want) in cases {
        let got = train(&csv, target, &ex, &pr, fe.as_deref()).expect_err(want);
        assert!(got.contains(want), "wanted {want:?}, got {got:?}");
    }
}

#[test]
fn any_two_valued_target_trains_with_a_named_positive_value() {
    let csv = lines("x,risk", ",", 80, |i| {
        format!("{},{}", i % 9, if i % 3 == 0 { "2" } else { "1" })
    });
    let table = read_csv(csv.as_bytes()).unwrap();
    let opts = TrainOptions {
        gbdt: candor_ml::gbdt::GbdtParams {
            num_trees: 5,
            min_data_in_leaf: 1,
            ..Default::default()
        },
        ..Default::default()
    };
    let mut sel = Selection {
        target: "risk",
        exclude: &[],
        protected: &[],
        features: None,
        positive: None,
    };
    let e = train_from_table(&table, &sel, None, &opts, &mut |_| {}).unwrap_err();
    assert!(e.to_string().contains("--positive"), "{e}");
    sel.positive = Some("2");
    let r = train_from_table(&table, &sel, None, &opts, &mut |_| {}).unwrap();
    assert_eq!(r.data.positives, 27);
    sel.positive = Some("3");
    let e = train_from_table(&table, &sel, None, &opts, &mut |_| {}).unwrap_err();
    assert!(e.to_string().contains("single value"), "{e}");
}
