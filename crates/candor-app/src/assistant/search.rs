//! Retrieval over the catalog and the help articles: BM25 over normalized words (lower case,
//! plurals folded, a few spelling variants joined), names weighted above descriptions, with
//! near-miss spellings (one edit, two for long words) and prefixes of long words matched at a
//! discount. Nothing here invents text: results are documents with scores.

use std::collections::HashMap;

/// Words that carry no meaning for a search: function words and the way people ask.
const STOP: &[&str] = &[
    "a",
    "an",
    "the",
    "and",
    "or",
    "of",
    "to",
    "in",
    "on",
    "for",
    "with",
    "at",
    "by",
    "from",
    "is",
    "are",
    "am",
    "be",
    "was",
    "were",
    "it",
    "its",
    "this",
    "that",
    "these",
    "those",
    "do",
    "does",
    "did",
    "you",
    "your",
    "yours",
    "we",
    "our",
    "us",
    "i",
    "im",
    "me",
    "my",
    "mine",
    "have",
    "has",
    "had",
    "got",
    "any",
    "some",
    "there",
    "here",
    "what",
    "which",
    "who",
    "how",
    "much",
    "many",
    "can",
    "could",
    "would",
    "will",
    "shall",
    "should",
    "may",
    "might",
    "please",
    "pls",
    "thanks",
    "thank",
    "hi",
    "hello",
    "hey",
    "looking",
    "look",
    "search",
    "searching",
    "find",
    "need",
    "want",
    "wanted",
    "buy",
    "purchase",
    "sell",
    "selling",
    "stock",
    "stocked",
    "available",
    "like",
    "get",
    "show",
    "tell",
    "about",
    "also",
    "just",
    "one",
    "ones",
    "item",
    "items",
    "product",
    "products",
    "thing",
    "things",
    "something",
    "anything",
    "kind",
    "sort",
    "type",
    "price",
    "cost",
    "costs",
    "if",
    "so",
    "but",
    "not",
    "no",
    "yes",
    "ok",
    "okay",
    "where",
    "when",
    "why",
    "else",
    "really",
    "very",
    "lovely",
    "nice",
    "new",
    "offer",
    "carry",
    "whats",
    "s",
    "re",
    "ve",
    "ll",
    "d",
    "t",
];

/// Spellings folded together, looked up after plurals are folded (`t-light` and `tea light`
/// are joined before words are split).
const VARIANTS: &[(&str, &str)] = &[
    ("colour", "color"),
    ("grey", "gray"),
    ("tealight", "tlight"),
    ("jewelry", "jewellery"),
    ("aluminum", "aluminium"),
    ("favorite", "favourite"),
    ("centre", "center"),
];

fn variant(w: &str) -> &str {
    VARIANTS.iter().find(|(a, _)| *a == w).map_or(w, |(_, b)| b)
}

/// Folds a plural to its singular: `stands` → `stand`, `boxes` → `box`, `doilies` → `doily`.
fn singular(w: &str) -> String {
    let n = w.len();
    if n > 4 && w.ends_with("ies") {
        return format!("{}y", &w[..n - 3]);
    }
    if n > 4
        && (w.ends_with("ches") || w.ends_with("shes") || w.ends_with("xes") || w.ends_with("sses"))
    {
        return w[..n - 2].to_owned();
    }
    if n > 3 && w.ends_with('s') && !w.ends_with("ss") && !w.ends_with("us") && !w.ends_with("is") {
        return w[..n - 1].to_owned();
    }
    w.to_owned()
}

/// The normalized words of `text`, stop words kept (callers decide).
pub fn words(text: &str) -> Vec<String> {
    let lower = text.to_lowercase().replace(['’', '\''], "");
    // `t-light` and `tea-light` are one word; other hyphens separate.
    let lower = lower
        .replace("t-light", "tlight")
        .replace("t light", "tlight")
        .replace("tea-light", "tlight")
        .replace("tea light", "tlight");
    lower
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| variant(&singular(w)).to_owned())
        .collect()
}

/// The words of a query that mean something.
pub fn terms(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for w in words(text) {
        if !STOP.contains(&w.as_str()) && !out.contains(&w) {
            out.push(w);
        }
    }
    out
}

/// Levenshtein distance, stopping early beyond `max`.
fn edits(a: &str, b: &str, max: usize) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    if a.len().abs_diff(b.len()) > max {
        return max + 1;
    }
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        let mut best = cur[0];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
            best = best.min(cur[j + 1]);
        }
        if best > max {
            return max + 1;
        }
        prev = cur;
    }
    prev[b.len()]
}

/// One document: weighted fields of words.
pub struct Doc {
    /// (words, weight): a name's words count more than a description's.
    pub fields: Vec<(String, f32)>,
}

/// A BM25 index over documents.
pub struct Index {
    postings: HashMap<String, Vec<(u32, f32)>>,
    lengths: Vec<f32>,
    avg: f32,
    /// The vocabulary, for near-miss spellings and prefixes.
    vocab: Vec<String>,
}

/// A document's score and which share of the query's weight it matched (0–1).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Hit {
    pub doc: u32,
    pub score: f32,
    pub coverage: f32,
}

const K1: f32 = 1.2;
const B: f32 = 0.75;

impl Index {
    pub fn build(docs: &[Doc]) -> Self {
        let mut postings: HashMap<String, Vec<(u32, f32)>> = HashMap::new();
        let mut lengths = Vec::with_capacity(docs.len());
        for (i, d) in docs.iter().enumerate() {
            let mut tf: HashMap<String, f32> = HashMap::new();
            let mut len = 0.0;
            for (text, weight) in &d.fields {
                for w in words(text) {
                    *tf.entry(w).or_default() += weight;
                    len += weight;
                }
            }
            lengths.push(len);
            for (w, f) in tf {
                postings.entry(w).or_default().push((i as u32, f));
            }
        }
        let avg = if lengths.is_empty() {
            1.0
        } else {
            (lengths.iter().sum::<f32>() / lengths.len() as f32).max(1.0)
        };
        let mut vocab: Vec<String> = postings.keys().cloned().collect();
        vocab.sort();
        Self {
            postings,
            lengths,
            avg,
            vocab,
        }
    }

    pub fn len(&self) -> usize {
        self.lengths.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lengths.is_empty()
    }

    fn idf(&self, term: &str) -> f32 {
        let n = self.lengths.len() as f32;
        let df = self.postings.get(term).map_or(0, Vec::len) as f32;
        ((n - df + 0.5) / (df + 0.5) + 1.0).ln()
    }

    /// The index's words a query word stands for, with a discount: itself, else near misses
    /// and (for words of five letters or more) words it begins.
    fn expand(&self, term: &str) -> Vec<(&str, f32)> {
        if let Some((k, _)) = self.postings.get_key_value(term) {
            return vec![(k.as_str(), 1.0)];
        }
        let n = term.chars().count();
        let mut out = Vec::new();
        if n >= 4 {
            let max = if n >= 8 { 2 } else { 1 };
            for v in &self.vocab {
                let d = edits(term, v, max);
                if d <= max {
                    out.push((v.as_str(), if d == 1 { 0.8 } else { 0.6 }));
                }
            }
        }
        if out.is_empty() && n >= 5 {
            let from = self.vocab.partition_point(|v| v.as_str() < term);
            for v in self.vocab[from..]
                .iter()
                .take_while(|v| v.starts_with(term))
            {
                out.push((v.as_str(), 0.6));
            }
        }
        out
    }

    /// The best `k` documents for the query's terms.
    pub fn search(&self, query_terms: &[String], k: usize) -> Vec<Hit> {
        let mut scores: HashMap<u32, (f32, f32)> = HashMap::new();
        let mut total = 0.0;
        for t in query_terms {
            let expanded = self.expand(t);
            // A word nobody's document has still counts against coverage, at an average weight.
            let weight = expanded
                .iter()
                .map(|(w, d)| self.idf(w) * d)
                .fold(0.0f32, f32::max)
                .max(if expanded.is_empty() { 1.0 } else { 0.0 });
            total += weight;
            let mut best: HashMap<u32, (f32, f32)> = HashMap::new();
            for (w, discount) in expanded {
                let idf = self.idf(w);
                for &(doc, tf) in &self.postings[w] {
                    let len = self.lengths[doc as usize];
                    let s = idf * tf * (K1 + 1.0) / (tf + K1 * (1.0 - B + B * len / self.avg))
                        * discount;
                    let e = best.entry(doc).or_default();
                    if s > e.0 {
                        *e = (s, idf * discount);
                    }
                }
            }
            for (doc, (s, cov)) in best {
                let e = scores.entry(doc).or_default();
                e.0 += s;
                e.1 += cov;
            }
        }
        let mut hits: Vec<Hit> = scores
            .into_iter()
            .map(|(doc, (score, cov))| Hit {
                doc,
                score,
                coverage: if total > 0.0 {
                    (cov / total).min(1.0)
                } else {
                    0.0
                },
            })
            .collect();
        hits.sort_by(|a, b| {
            b.score
                .total_cmp(&a.score)
                .then(self.lengths[a.doc as usize].total_cmp(&self.lengths[b.doc as usize]))
                .then(a.doc.cmp(&b.doc))
        });
        hits.truncate(k);
        hits
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(names: &[&str]) -> Index {
        let docs: Vec<Doc> = names
            .iter()
            .map(|n| Doc {
                fields: vec![((*n).to_owned(), 3.0)],
            })
            .collect();
        Index::build(&docs)
    }

    #[test]
    fn normalizes() {
        assert_eq!(
            terms("Do you have RED Retrospot cake-stands?"),
            ["red", "retrospot", "cake", "stand"]
        );
        assert_eq!(
            words("white t-light holders"),
            ["white", "tlight", "holder"]
        );
        assert_eq!(words("tea lights"), ["tlight"]);
        assert_eq!(words("doilies boxes"), ["doily", "box"]);
    }

    #[test]
    fn finds_with_typos_and_prefixes() {
        let ix = index(&[
            "RED RETROSPOT CAKE STAND",
            "SET OF 3 CAKE TINS PANTRY DESIGN",
            "WHITE HANGING HEART T-LIGHT HOLDER",
            "JUMBO BAG RED RETROSPOT",
        ]);
        let hits = ix.search(&terms("red retrospt cake stand"), 3);
        assert_eq!(hits[0].doc, 0);
        assert!(hits[0].coverage > 0.99, "{hits:?}");
        let hits = ix.search(&terms("white hanging heart tealight"), 1);
        assert_eq!(hits[0].doc, 2);
        let hits = ix.search(&terms("retro jumbo bags"), 1);
        assert_eq!(hits[0].doc, 3);
        // Nothing matches: nothing is returned.
        assert!(ix.search(&terms("quantum flux capacitor"), 3).is_empty());
        // Half the query unknown: half the coverage.
        let hits = ix.search(&terms("cake zzzzzz"), 1);
        assert!(hits[0].coverage < 0.9);
    }
}
