//! CSV files as users have them → typed columns → a feature matrix with human metadata.
//!
//! Accepted: `,`, `;` or tab separators (detected from the header), quoted fields, a UTF-8 BOM,
//! CRLF line ends. Targets may be `yes`/`no`, `true`/`false`, `y`/`n` or `1`/`0`. Empty fields are
//! missing values. A column is numeric when every non-empty value is a finite number, boolean
//! when its values are yes/no-like (encoded 1/0), otherwise categorical (encoded as the index of
//! the value among the sorted values seen in training; trees split on sets of values).
//! `NaN`/`inf` and a stray word in an otherwise numeric column are errors that name the row.

use crate::MlError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The cells of a CSV file, as text.
#[derive(Clone, Debug)]
pub struct RawTable {
    pub headers: Vec<String>,
    pub rows: Vec<Vec<String>>,
    pub delimiter: u8,
}

impl RawTable {
    pub fn column(&self, name: &str) -> Option<usize> {
        self.headers.iter().position(|h| h == name)
    }
}

/// Reads CSV text. Row numbers in errors count the header as row 1.
pub fn read_csv(bytes: &[u8]) -> Result<RawTable, MlError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let first_line = bytes.split(|&b| b == b'\n').next().unwrap_or_default();
    let delimiter = detect_delimiter(first_line);
    let mut rdr = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(true)
        .flexible(false)
        .from_reader(bytes);
    let headers: Vec<String> = rdr
        .headers()
        .map_err(|e| MlError::Csv(format!("cannot read the header: {}", csv_message(&e))))?
        .iter()
        .map(|h| h.trim().to_string())
        .collect();
    if headers.is_empty() || headers.iter().all(String::is_empty) {
        return Err(MlError::Csv("the file has no header row".into()));
    }
    let mut seen = std::collections::HashSet::new();
    for h in &headers {
        if h.is_empty() {
            return Err(MlError::Csv(
                "a header cell is empty; every column needs a name".into(),
            ));
        }
        if !seen.insert(h) {
            return Err(MlError::Csv(format!(
                "column {h:?} appears twice in the header"
            )));
        }
    }
    let mut rows = Vec::new();
    for (i, rec) in rdr.records().enumerate() {
        let rec = rec.map_err(|e| MlError::Csv(format!("row {}: {}", i + 2, csv_message(&e))))?;
        if rec.len() == 1 && rec.get(0).is_some_and(|c| c.trim().is_empty()) {
            continue;
        }
        rows.push(rec.iter().map(|c| c.trim().to_string()).collect());
    }
    if rows.is_empty() {
        return Err(MlError::Csv("the file has a header but no rows".into()));
    }
    Ok(RawTable {
        headers,
        rows,
        delimiter,
    })
}

fn csv_message(e: &csv::Error) -> String {
    match e.kind() {
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => {
            format!("has {len} fields where the header has {expected_len}")
        }
        csv::ErrorKind::Utf8 { .. } => "is not valid UTF-8".into(),
        _ => e.to_string(),
    }
}

fn detect_delimiter(line: &[u8]) -> u8 {
    let mut counts = [(b',', 0usize), (b';', 0), (b'\t', 0)];
    let mut quoted = false;
    for &b in line {
        if b == b'"' {
            quoted = !quoted;
        } else if !quoted {
            for c in counts.iter_mut() {
                if c.0 == b {
                    c.1 += 1;
                }
            }
        }
    }
    counts
        .iter()
        .max_by_key(|c| c.1)
        .map_or(b',', |c| if c.1 == 0 { b',' } else { c.0 })
}

/// Parses a 0/1 outcome from a cell.
pub fn parse_label(cell: &str) -> Option<f64> {
    match cell.trim().to_ascii_lowercase().as_str() {
        "yes" | "y" | "true" | "1" | "1.0" => Some(1.0),
        "no" | "n" | "false" | "0" | "0.0" => Some(0.0),
        _ => None,
    }
}

/// The target column as 0/1. Errors name the first bad row; a constant target is an error.
pub fn parse_target(
    table: &RawTable,
    target: &str,
    positive: Option<&str>,
) -> Result<Vec<f64>, MlError> {
    let col = table.column(target).ok_or_else(|| {
        MlError::Target(format!(
            "target column {target:?} is not in the file (columns: {})",
            table.headers.join(", ")
        ))
    })?;
    let mut y = Vec::with_capacity(table.rows.len());
    for (i, row) in table.rows.iter().enumerate() {
        let cell = &row[col];
        if cell.is_empty() {
            return Err(MlError::Target(format!(
                "row {}: the target {target:?} is empty",
                i + 2
            )));
        }
        let label = match positive {
            Some(p) => Some(if cell.eq_ignore_ascii_case(p.trim()) {
                1.0
            } else {
                0.0
            }),
            None => parse_label(cell),
        };
        y.push(label.ok_or_else(|| {
            MlError::Target(format!(
                "row {}: target {target:?} is {cell:?}; expected yes/no, true/false or 1/0 \
                 (or name the outcome value with --positive)",
                i + 2
            ))
        })?);
    }
    let pos = y.iter().filter(|&&v| v == 1.0).count();
    if pos == 0 || pos == y.len() {
        return Err(MlError::Target(format!(
            "target {target:?} has a single value in all {} rows; there is nothing to predict",
            y.len()
        )));
    }
    Ok(y)
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ColumnKind {
    Numeric,
    Boolean,
    Categorical { values: Vec<String> },
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ColumnSpec {
    pub name: String,
    #[serde(flatten)]
    pub kind: ColumnKind,
}

/// One model input, with what a person needs to read a reason about it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct FeatureSpec {
    /// Stable feature name (the column's name).
    pub name: String,
    /// Source column.
    pub column: String,
    /// Names of the values 0, 1, 2, … for boolean and categorical features.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub levels: Option<Vec<String>>,
    /// Split on sets of values (categorical) rather than thresholds.
    #[serde(default)]
    pub categorical: bool,
    /// Plain-language template; `{value}` is replaced by the row's value.
    pub description: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
}

impl FeatureSpec {
    pub fn numeric(column: &str) -> Self {
        FeatureSpec {
            name: column.to_string(),
            column: column.to_string(),
            levels: None,
            categorical: false,
            description: format!("{} is {{value}}", humanize(column)),
            unit: None,
        }
    }

    /// The plain-language statement of this feature's value for one row.
    pub fn describe(&self, value: f64) -> String {
        if value.is_nan() {
            return format!("{} is unknown", humanize(&self.column));
        }
        if let Some(levels) = &self.levels {
            let col = humanize(&self.column);
            let i = value as usize;
            return match levels.get(i) {
                Some(l) if value >= 0.0 && value.fract() == 0.0 => format!("{col} is {l}"),
                _ => format!("{col} is unknown"),
            };
        }
        let v = format_value(value);
        let v = match &self.unit {
            Some(u) if !u.is_empty() => format!("{v} {u}"),
            _ => v,
        };
        self.description.replace("{value}", &v)
    }
}

fn humanize(column: &str) -> String {
    column.replace('_', " ")
}

/// Integers without decimals, other values with up to 2.
pub fn format_value(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        let s = format!("{v:.2}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// What a model reads from a table: its columns and the features made from them.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Schema {
    pub columns: Vec<ColumnSpec>,
    pub features: Vec<FeatureSpec>,
}

/// Most distinct values a categorical column may have.
pub const MAX_CATEGORIES: usize = 100;

/// How the caller chooses columns.
#[derive(Clone, Debug, Default)]
pub struct Selection<'a> {
    pub target: &'a str,
    /// Columns never used (e.g. `duration`, known only after the outcome).
    pub exclude: &'a [String],
    /// Protected attributes: kept out of the features, available to audits.
    pub protected: &'a [String],
    /// If set, exactly these columns are features.
    pub features: Option<&'a [String]>,
    /// The target value that counts as the outcome (e.g. `2` in German credit's 1/2 column);
    /// without it the target must read as yes/no, true/false or 1/0.
    pub positive: Option<&'a str>,
}

fn parse_number(cell: &str) -> Option<f64> {
    let v: f64 = cell.parse().ok()?;
    Some(v)
}

fn is_bool_word(cell: &str) -> bool {
    matches!(
        cell.to_ascii_lowercase().as_str(),
        "yes" | "no" | "true" | "false"
    )
}

/// Decides the feature columns and their kinds.
pub fn infer_schema(table: &RawTable, sel: &Selection) -> Result<Schema, MlError> {
    let known = |c: &String, what: &str| -> Result<(), MlError> {
        if table.column(c).is_none() {
            return Err(MlError::Column(format!(
                "{what} column {c:?} is not in the file (columns: {})",
                table.headers.join(", ")
            )));
        }
        Ok(())
    };
    if table.column(sel.target).is_none() {
        return Err(MlError::Target(format!(
            "target column {:?} is not in the file (columns: {})",
            sel.target,
            table.headers.join(", ")
        )));
    }
    for c in sel.exclude {
        known(c, "excluded")?;
    }
    for c in sel.protected {
        known(c, "protected")?;
        if c == sel.target {
            return Err(MlError::Column(format!(
                "{c:?} is the target and cannot be a protected attribute"
            )));
        }
    }
    let names: Vec<String> = match sel.features {
        Some(list) => {
            for c in list {
                known(c, "feature")?;
                if sel.protected.contains(c) {
                    return Err(MlError::Column(format!(
                        "{c:?} is a protected attribute and cannot be a model feature"
                    )));
                }
                if c == sel.target {
                    return Err(MlError::Column(format!(
                        "{c:?} is the target and cannot be a feature"
                    )));
                }
                if sel.exclude.contains(c) {
                    return Err(MlError::Column(format!(
                        "{c:?} is both excluded and listed as a feature"
                    )));
                }
            }
            list.to_vec()
        }
        None => table
            .headers
            .iter()
            .filter(|h| *h != sel.target && !sel.exclude.contains(h) && !sel.protected.contains(h))
            .cloned()
            .collect(),
    };
    if names.is_empty() {
        return Err(MlError::Column("no feature columns are left".into()));
    }
    let mut columns = Vec::new();
    let mut features = Vec::new();
    for name in names {
        let c = table
            .column(&name)
            .ok_or_else(|| MlError::Column(format!("column {name:?} vanished")))?;
        let mut numeric = 0usize;
        let mut non_numeric: Option<(usize, &str)> = None;
        let mut bools = 0usize;
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        let mut total = 0usize;
        for (i, cell) in table.rows.iter().map(|r| r[c].as_str()).enumerate() {
            if cell.is_empty() {
                continue;
            }
            total += 1;
            match parse_number(cell) {
                Some(v) if v.is_finite() => numeric += 1,
                Some(_) => {
                    return Err(MlError::Value(format!(
                        "row {}: column {name:?} is {cell:?}; NaN and infinite values are not allowed \
                         (leave the field empty for a missing value)",
                        i + 2
                    )));
                }
                None => {
                    if non_numeric.is_none() {
                        non_numeric = Some((i + 2, cell));
                    }
                    if is_bool_word(cell) {
                        bools += 1;
                    }
                    *counts.entry(cell).or_default() += 1;
                }
            }
        }
        if total == 0 {
            return Err(MlError::Column(format!(
                "column {name:?} is empty in every row"
            )));
        }
        let kind = if numeric == total {
            ColumnKind::Numeric
        } else if numeric > 0 && numeric * 10 >= total * 9 {
            let (row, cell) = non_numeric.unwrap_or((0, ""));
            return Err(MlError::Value(format!(
                "row {row}: column {name:?} is {cell:?}, which is not a number"
            )));
        } else if bools == total {
            ColumnKind::Boolean
        } else {
            if counts.len() + usize::from(numeric > 0) > MAX_CATEGORIES {
                return Err(MlError::Column(format!(
                    "column {name:?} has {} distinct text values (at most {MAX_CATEGORIES}); \
                     it looks like an identifier or free text — exclude it",
                    counts.len()
                )));
            }
            // Numbers mixed into a text column are categories too.
            let mut values: Vec<String> = table
                .rows
                .iter()
                .map(|r| r[c].clone())
                .filter(|s| !s.is_empty())
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect();
            values.sort();
            ColumnKind::Categorical { values }
        };
        features.push(match &kind {
            ColumnKind::Numeric => FeatureSpec::numeric(&name),
            ColumnKind::Boolean => FeatureSpec {
                levels: Some(vec!["no".into(), "yes".into()]),
                ..FeatureSpec::numeric(&name)
            },
            ColumnKind::Categorical { values } => FeatureSpec {
                levels: Some(values.clone()),
                categorical: true,
                ..FeatureSpec::numeric(&name)
            },
        });
        columns.push(ColumnSpec { name, kind });
    }
    Ok(Schema { columns, features })
}

impl Schema {
    /// Encodes a table into row-major features. Missing cells become NaN.
    pub fn encode(&self, table: &RawTable) -> Result<Vec<f64>, MlError> {
        let idx: Vec<usize> = self
            .columns
            .iter()
            .map(|c| {
                table.column(&c.name).ok_or_else(|| {
                    MlError::Column(format!(
                        "the model needs column {:?}, which is not in the file",
                        c.name
                    ))
                })
            })
            .collect::<Result<_, _>>()?;
        let nf = self.columns.len();
        let mut out = Vec::with_capacity(table.rows.len() * nf);
        for (r, row) in table.rows.iter().enumerate() {
            for (spec, &c) in self.columns.iter().zip(&idx) {
                let cell = row[c].as_str();
                match &spec.kind {
                    ColumnKind::Numeric => {
                        if cell.is_empty() {
                            out.push(f64::NAN);
                            continue;
                        }
                        match parse_number(cell) {
                            Some(v) if v.is_finite() => out.push(v),
                            _ => {
                                return Err(MlError::Value(format!(
                                    "row {}: column {:?} is {cell:?}, which is not a finite number",
                                    r + 2,
                                    spec.name
                                )));
                            }
                        }
                    }
                    ColumnKind::Boolean => out.push(if cell.is_empty() {
                        f64::NAN
                    } else {
                        match cell.to_ascii_lowercase().as_str() {
                            "yes" | "true" => 1.0,
                            "no" | "false" => 0.0,
                            _ => {
                                return Err(MlError::Value(format!(
                                    "row {}: column {:?} is {cell:?}; expected yes/no",
                                    r + 2,
                                    spec.name
                                )));
                            }
                        }
                    }),
                    // Unknown values (unseen in training) are missing values.
                    ColumnKind::Categorical { values } => out.push(
                        values
                            .iter()
                            .position(|v| v == cell)
                            .map_or(f64::NAN, |i| i as f64),
                    ),
                }
            }
        }
        debug_assert_eq!(out.len(), table.rows.len() * nf);
        Ok(out)
    }

    /// Columns the model reads, for checks against protected attributes.
    pub fn column_names(&self) -> impl Iterator<Item = &str> {
        self.columns.iter().map(|c| c.name.as_str())
    }
}
