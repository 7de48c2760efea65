//! Personal data out of text: email addresses, phone numbers, payment card numbers (Luhn),
//! IBANs (ISO 13616 check digits), street addresses and UK postcodes, and the names the
//! caller knows the person by. What is found is replaced by a bracketed kind (`[email]`);
//! the caller learns how many of each kind, never the values.

use std::collections::BTreeMap;

/// Redacted text and how many values of each kind were taken out.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Redacted {
    pub text: String,
    pub found: BTreeMap<&'static str, u32>,
}

impl Redacted {
    pub fn total(&self) -> u32 {
        self.found.values().sum()
    }
}

const STREET_WORDS: &[&str] = &[
    "street",
    "st",
    "road",
    "rd",
    "avenue",
    "ave",
    "lane",
    "ln",
    "drive",
    "dr",
    "way",
    "close",
    "court",
    "ct",
    "place",
    "pl",
    "boulevard",
    "blvd",
    "terrace",
    "crescent",
    "square",
    "sq",
    "grove",
    "gardens",
    "parade",
    "row",
    "mews",
    "hill",
    "walk",
    "strasse",
    "straße",
    "rue",
    "calle",
    "via",
    "highway",
    "hwy",
    "parkway",
    "circle",
];

/// Redacts `text`. `names` are the person's own names (first, last, full), matched as whole
/// words, case-insensitively; names shorter than two letters are ignored.
pub fn redact(text: &str, names: &[String]) -> Redacted {
    let chars: Vec<char> = text.chars().collect();
    // Spans to replace, as char ranges with their kind; found in order of precedence.
    let mut spans: Vec<(usize, usize, &'static str)> = Vec::new();
    let taken = |spans: &[(usize, usize, &'static str)], a: usize, b: usize| {
        spans.iter().any(|&(s, e, _)| a < e && s < b)
    };
    for (a, b) in emails(&chars) {
        spans.push((a, b, "email"));
    }
    for (a, b) in ibans(&chars) {
        if !taken(&spans, a, b) {
            spans.push((a, b, "iban"));
        }
    }
    for (a, b, kind) in numbers(&chars) {
        if !taken(&spans, a, b) {
            spans.push((a, b, kind));
        }
    }
    for (a, b) in postcodes(&chars) {
        if !taken(&spans, a, b) {
            spans.push((a, b, "postcode"));
        }
    }
    for (a, b) in addresses(&chars) {
        if !taken(&spans, a, b) {
            spans.push((a, b, "address"));
        }
    }
    for (a, b) in name_spans(&chars, names) {
        if !taken(&spans, a, b) {
            spans.push((a, b, "name"));
        }
    }
    spans.sort_unstable();
    let mut out = Redacted::default();
    let mut at = 0;
    for (a, b, kind) in spans {
        out.text.extend(&chars[at..a]);
        out.text.push('[');
        out.text.push_str(kind);
        out.text.push(']');
        *out.found.entry(kind).or_default() += 1;
        at = b;
    }
    out.text.extend(&chars[at..]);
    out
}

fn is_local(c: char) -> bool {
    c.is_alphanumeric() || "._%+-'".contains(c)
}

fn emails(c: &[char]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    for (i, &ch) in c.iter().enumerate() {
        if ch != '@' || out.iter().any(|&(_, e)| i < e) {
            continue;
        }
        let mut a = i;
        while a > 0 && is_local(c[a - 1]) {
            a -= 1;
        }
        while a < i && !c[a].is_alphanumeric() {
            a += 1;
        }
        let mut b = i + 1;
        while b < c.len() && (c[b].is_alphanumeric() || c[b] == '.' || c[b] == '-') {
            b += 1;
        }
        while b > i + 1 && !c[b - 1].is_alphanumeric() {
            b -= 1;
        }
        let domain: String = c[i + 1..b].iter().collect();
        if a < i && domain.contains('.') && !domain.starts_with('.') {
            out.push((a, b));
        }
    }
    out
}

/// Luhn's check over digits.
pub fn luhn(digits: &[u8]) -> bool {
    let mut sum = 0u32;
    for (i, &d) in digits.iter().rev().enumerate() {
        let mut v = u32::from(d);
        if i % 2 == 1 {
            v *= 2;
            if v > 9 {
                v -= 9;
            }
        }
        sum += v;
    }
    !digits.is_empty() && sum.is_multiple_of(10)
}

/// ISO 13616's check: the rearranged IBAN as a number, modulo 97, is 1.
pub fn iban_valid(s: &[char]) -> bool {
    if s.len() < 15 || s.len() > 34 {
        return false;
    }
    let mut rem = 0u32;
    for &c in s[4..].iter().chain(&s[..4]) {
        let v = match c.to_ascii_uppercase() {
            d @ '0'..='9' => d as u32 - '0' as u32,
            l @ 'A'..='Z' => l as u32 - 'A' as u32 + 10,
            _ => return false,
        };
        rem = if v >= 10 {
            (rem * 100 + v) % 97
        } else {
            (rem * 10 + v) % 97
        };
    }
    rem == 1
}

fn ibans(c: &[char]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i + 4 <= c.len() {
        let boundary = i == 0 || !c[i - 1].is_alphanumeric();
        if !(boundary
            && c[i].is_ascii_alphabetic()
            && c[i + 1].is_ascii_alphabetic()
            && c[i + 2].is_ascii_digit()
            && c[i + 3].is_ascii_digit())
        {
            i += 1;
            continue;
        }
        // Collect up to 34 alphanumerics, single spaces allowed between them.
        let mut chars = Vec::new();
        let mut ends = Vec::new();
        let mut j = i;
        while j < c.len() && chars.len() < 34 {
            if c[j].is_ascii_alphanumeric() {
                chars.push(c[j]);
                ends.push(j + 1);
                j += 1;
            } else if c[j] == ' ' && j + 1 < c.len() && c[j + 1].is_ascii_alphanumeric() {
                j += 1;
            } else {
                break;
            }
        }
        let found = (15..=chars.len()).rev().find(|&n| {
            iban_valid(&chars[..n]) && (ends[n - 1] == c.len() || !c[ends[n - 1]].is_alphanumeric())
        });
        match found {
            Some(n) => {
                out.push((i, ends[n - 1]));
                i = ends[n - 1];
            }
            None => i += 1,
        }
    }
    out
}

/// Runs of digits with separators: payment cards (13–19 digits, Luhn) and phone numbers
/// (7–15 digits, not a date).
fn numbers(c: &[char]) -> Vec<(usize, usize, &'static str)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < c.len() {
        let starts = c[i].is_ascii_digit()
            || ((c[i] == '+' || c[i] == '(') && c.get(i + 1).is_some_and(char::is_ascii_digit));
        if !starts || (i > 0 && (c[i - 1].is_alphanumeric() || c[i - 1] == '.')) {
            i += 1;
            continue;
        }
        let mut j = i;
        let mut digits = Vec::new();
        let mut last_digit = i;
        while j < c.len() {
            let ch = c[j];
            if ch.is_ascii_digit() {
                digits.push(ch as u8 - b'0');
                last_digit = j;
            } else if !(" -.()/".contains(ch) || (ch == '+' && j == i))
                || (ch == ' '
                    && c.get(j + 1)
                        .is_some_and(|n| !n.is_ascii_digit() && *n != '('))
            {
                break;
            }
            if digits.len() > 19 {
                break;
            }
            j += 1;
        }
        let end = last_digit + 1;
        if end < c.len() && c[end].is_alphabetic() {
            i = end;
            continue;
        }
        let text: String = c[i..end].iter().collect();
        let date = text.len() == 10
            && text.as_bytes()[4] == b'-'
            && text.as_bytes()[7] == b'-'
            && digits.len() == 8;
        let decimal = text.matches('.').count() == 1
            && !text.contains(' ')
            && text.rsplit('.').next().is_some_and(|f| f.len() <= 2);
        let kind = if (13..=19).contains(&digits.len()) && luhn(&digits) {
            Some("card")
        } else if (7..=15).contains(&digits.len()) && !date && !decimal {
            Some("phone")
        } else {
            None
        };
        if let Some(k) = kind {
            out.push((i, end, k));
        }
        i = end.max(i + 1);
    }
    out
}

fn words(c: &[char]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < c.len() {
        if c[i].is_alphanumeric() {
            let a = i;
            while i < c.len() && (c[i].is_alphanumeric() || c[i] == '\'') {
                i += 1;
            }
            out.push((a, i));
        } else {
            i += 1;
        }
    }
    out
}

fn word(c: &[char], (a, b): (usize, usize)) -> String {
    c[a..b].iter().collect::<String>().to_lowercase()
}

/// "12 Baker Street", "221b Baker St", "1600 Pennsylvania Avenue NW": a house number, one to
/// four words, a street word.
fn addresses(c: &[char]) -> Vec<(usize, usize)> {
    let w = words(c);
    let mut out = Vec::new();
    for (k, &(a, b)) in w.iter().enumerate() {
        let first = word(c, (a, b));
        let number = first.chars().next().is_some_and(|ch| ch.is_ascii_digit())
            && first.chars().filter(char::is_ascii_digit).count() <= 5
            && first.chars().all(|ch| ch.is_ascii_alphanumeric());
        if !number {
            continue;
        }
        // One to four name words, then the street word.
        for n in 2..=5 {
            let Some(&(sa, sb)) = w.get(k + n) else {
                break;
            };
            if !w[k + 1..k + n].iter().all(|&x| c[x.0].is_alphabetic()) {
                break;
            }
            if STREET_WORDS.contains(&word(c, (sa, sb)).as_str()) {
                out.push((a, sb));
                break;
            }
        }
    }
    out
}

/// UK postcodes: `SW1A 1AA`, `M1 1AE`, `EC1A1BB`.
fn postcodes(c: &[char]) -> Vec<(usize, usize)> {
    let w = words(c);
    let mut out = Vec::new();
    let outward = |s: &str| {
        let b = s.as_bytes();
        (2..=4).contains(&b.len())
            && b[0].is_ascii_alphabetic()
            && b.iter().any(u8::is_ascii_digit)
            && b.iter().all(u8::is_ascii_alphanumeric)
            && {
                let letters = b.iter().take_while(|x| x.is_ascii_alphabetic()).count();
                (1..=2).contains(&letters) && b[letters].is_ascii_digit()
            }
    };
    let inward = |s: &str| {
        let b = s.as_bytes();
        b.len() == 3
            && b[0].is_ascii_digit()
            && b[1].is_ascii_alphabetic()
            && b[2].is_ascii_alphabetic()
    };
    for (k, &(a, b)) in w.iter().enumerate() {
        let s: String = c[a..b].iter().collect::<String>().to_uppercase();
        if s.len() >= 5 && s.len() <= 7 && outward(&s[..s.len() - 3]) && inward(&s[s.len() - 3..]) {
            out.push((a, b));
        } else if outward(&s)
            && let Some(&(na, nb)) = w.get(k + 1)
            && na == b + 1
            && inward(&c[na..nb].iter().collect::<String>().to_uppercase())
        {
            out.push((a, nb));
        }
    }
    out
}

fn name_spans(c: &[char], names: &[String]) -> Vec<(usize, usize)> {
    let w = words(c);
    let lowered: Vec<String> = w.iter().map(|&x| word(c, x)).collect();
    let mut out = Vec::new();
    for name in names {
        let parts: Vec<String> = name
            .split(|ch: char| !ch.is_alphanumeric() && ch != '\'')
            .filter(|p| p.chars().count() >= 2)
            .map(str::to_lowercase)
            .collect();
        if parts.is_empty() {
            continue;
        }
        for k in 0..w.len() {
            if k + parts.len() <= w.len() && parts.iter().zip(&lowered[k..]).all(|(p, l)| p == l) {
                out.push((w[k].0, w[k + parts.len() - 1].1));
            }
        }
    }
    out
}

/// Whether a reply claims to be a person.
pub fn claims_human(text: &str) -> bool {
    let t = text.to_lowercase().replace('’', "'");
    let claims = [
        "i am a human",
        "i'm a human",
        "i am human",
        "i'm human",
        "i am a real person",
        "i'm a real person",
        "i am a person",
        "i'm a person",
        "i am not a bot",
        "i'm not a bot",
        "i am not an ai",
        "i'm not an ai",
        "i am not a robot",
        "i'm not a robot",
        "i am not a machine",
        "i'm not a machine",
        "as a human",
        "i am a member of staff",
        "i'm a member of staff",
        "i am a real",
        "i'm a real",
    ];
    claims.iter().any(|c| t.contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds() {
        let r = redact(
            "Mail jane.doe+shop@example.co.uk or call +44 20 7946 0958; card 4111 1111 1111 1111, \
             IBAN GB82 WEST 1234 5698 7654 32. I live at 221B Baker Street, NW1 6XE. Jane Doe here.",
            &["Jane Doe".into()],
        );
        assert_eq!(
            r.text,
            "Mail [email] or call [phone]; card [card], IBAN [iban]. I live at [address], [postcode]. [name] here."
        );
        assert_eq!(r.total(), 7);
    }

    #[test]
    fn leaves_products_prices_and_dates() {
        let t = "Set of 3 cake tins for £12.50, ordered 2026-11-30, order 536365, 24 pieces";
        assert_eq!(redact(t, &[]).text, t);
        // A 16-digit number that fails Luhn is not a card (but long numbers are phone-like).
        assert_eq!(redact("4111 1111 1111 1112", &[]).found.get("card"), None);
    }

    #[test]
    fn checks() {
        assert!(luhn(&[4, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]));
        assert!(!luhn(&[4, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2]));
        let iban: Vec<char> = "DE89370400440532013000".chars().collect();
        assert!(iban_valid(&iban));
        let bad: Vec<char> = "DE89370400440532013001".chars().collect();
        assert!(!iban_valid(&bad));
    }

    #[test]
    fn human_claims() {
        assert!(claims_human("Don't worry, I'm a real person here to help"));
        assert!(claims_human("I am not a bot."));
        assert!(!claims_human("I am the shop's AI assistant."));
    }
}
