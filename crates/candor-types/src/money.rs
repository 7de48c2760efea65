//! Prices as integers of a currency's minor unit (cents, yen, fils): exact arithmetic, no
//! floating point between what a store sends and what Candor compares or stores.
//!
//! A [`Currency`] is an active ISO 4217 code with its number of decimals (JPY 0, EUR 2,
//! KWD 3). Amounts arrive as decimal text (`"2.55"`) or JSON numbers (read through their
//! shortest decimal form, so `2.55` is 255 cents, never 254). A proposed price with more
//! decimals than its currency has is an error; an observed price (an order line computed by
//! division) is rounded half away from zero to the minor unit.

use std::fmt;

use serde::{Serialize, Serializer};

/// Active ISO 4217 codes by number of decimals; every other active code has two.
const ZERO_DECIMALS: &[&str] = &[
    "BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "UYI", "VND",
    "VUV", "XAF", "XOF", "XPF",
];
const THREE_DECIMALS: &[&str] = &["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"];
const FOUR_DECIMALS: &[&str] = &["CLF", "UYW"];
const TWO_DECIMALS: &[&str] = &[
    "AED", "AFN", "ALL", "AMD", "ANG", "AOA", "ARS", "AUD", "AWG", "AZN", "BAM", "BBD", "BDT",
    "BGN", "BMD", "BND", "BOB", "BOV", "BRL", "BSD", "BTN", "BWP", "BYN", "BZD", "CAD", "CDF",
    "CHE", "CHF", "CHW", "CNY", "COP", "COU", "CRC", "CUP", "CVE", "CZK", "DKK", "DOP", "DZD",
    "EGP", "ERN", "ETB", "EUR", "FJD", "FKP", "GBP", "GEL", "GHS", "GIP", "GMD", "GTQ", "GYD",
    "HKD", "HNL", "HTG", "HUF", "IDR", "ILS", "INR", "IRR", "JMD", "KES", "KGS", "KHR", "KPW",
    "KYD", "KZT", "LAK", "LBP", "LKR", "LRD", "LSL", "MAD", "MDL", "MGA", "MKD", "MMK", "MNT",
    "MOP", "MRU", "MUR", "MVR", "MWK", "MXN", "MXV", "MYR", "MZN", "NAD", "NGN", "NIO", "NOK",
    "NPR", "NZD", "PAB", "PEN", "PGK", "PHP", "PKR", "PLN", "QAR", "RON", "RSD", "RUB", "SAR",
    "SBD", "SCR", "SDG", "SEK", "SGD", "SHP", "SLE", "SOS", "SRD", "SSP", "STN", "SVC", "SYP",
    "SZL", "THB", "TJS", "TMT", "TOP", "TRY", "TTD", "TWD", "TZS", "UAH", "USD", "USN", "UYU",
    "UZS", "VED", "VES", "WST", "XCD", "XCG", "YER", "ZAR", "ZMW", "ZWG",
];

/// Largest amount accepted, in major units (a trillion): far above any price, far below
/// where minor units could overflow.
const MAX_MAJOR: i64 = 1_000_000_000_000;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("`{0}` is not an ISO 4217 currency code (three letters such as EUR, GBP, JPY)")]
    Currency(String),
    #[error("`{0}` is not an amount: write digits with an optional decimal point, such as 12.50")]
    Syntax(String),
    #[error("`{amount}` has more decimals than {currency} has ({decimals})")]
    Precision {
        amount: String,
        currency: &'static str,
        decimals: u8,
    },
    #[error("`{0}` is too large to be a price")]
    Range(String),
}

/// An active ISO 4217 currency and how many decimals its minor unit has.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Currency {
    code: &'static str,
    decimals: u8,
}

impl Currency {
    /// Parses a code in any letter case (`eur` is EUR).
    pub fn parse(s: &str) -> Result<Self, MoneyError> {
        let up = s.trim().to_ascii_uppercase();
        for (list, decimals) in [
            (TWO_DECIMALS, 2),
            (ZERO_DECIMALS, 0),
            (THREE_DECIMALS, 3),
            (FOUR_DECIMALS, 4),
        ] {
            if let Some(code) = list.iter().find(|c| **c == up) {
                return Ok(Self { code, decimals });
            }
        }
        Err(MoneyError::Currency(s.chars().take(16).collect()))
    }

    pub fn code(self) -> &'static str {
        self.code
    }

    /// Decimals of the minor unit: 2 for EUR (cents), 0 for JPY, 3 for KWD.
    pub fn decimals(self) -> u8 {
        self.decimals
    }

    fn scale(self) -> i64 {
        10i64.pow(u32::from(self.decimals))
    }

    /// Exact decimal text to minor units; more decimals than the currency has is an error
    /// (trailing zeros are fine: `2.550` EUR is 255).
    pub fn parse_exact(self, text: &str) -> Result<i64, MoneyError> {
        let (minor, rest) = self.split(text)?;
        if rest.iter().any(|&d| d != 0) {
            return Err(MoneyError::Precision {
                amount: text.chars().take(32).collect(),
                currency: self.code,
                decimals: self.decimals,
            });
        }
        Ok(minor)
    }

    /// Decimal text to minor units, rounding half away from zero (`0.125` EUR is 13 cents,
    /// `-0.125` is -13, `100.5` JPY is 101).
    pub fn parse_rounded(self, text: &str) -> Result<i64, MoneyError> {
        let (minor, rest) = self.split(text)?;
        let up = rest.first().is_some_and(|&d| d >= 5);
        let negative = text.trim().starts_with('-');
        Ok(match (up, negative) {
            (false, _) => minor,
            (true, false) => minor + 1,
            (true, true) => minor - 1,
        })
    }

    /// A JSON amount: a string of decimal text, or a number read through its shortest
    /// decimal form (`2.55` → "2.55").
    pub fn amount_text(v: &serde_json::Value) -> Option<String> {
        match v {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Number(n) => {
                if let Some(i) = n.as_i64() {
                    Some(i.to_string())
                } else {
                    n.as_f64().filter(|f| f.is_finite()).map(|f| format!("{f}"))
                }
            }
            _ => None,
        }
    }

    /// Minor units and the digits beyond the currency's decimals.
    fn split(self, text: &str) -> Result<(i64, Vec<u8>), MoneyError> {
        let t = text.trim();
        let bad = || MoneyError::Syntax(text.chars().take(32).collect());
        let (negative, body) = match t.strip_prefix('-') {
            Some(b) => (true, b),
            None => (false, t.strip_prefix('+').unwrap_or(t)),
        };
        let (int, frac) = body.split_once('.').unwrap_or((body, ""));
        if int.is_empty() && frac.is_empty() {
            return Err(bad());
        }
        if !int.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let int = int.trim_start_matches('0');
        if int.len() > 13 {
            return Err(MoneyError::Range(text.chars().take(32).collect()));
        }
        let major: i64 = if int.is_empty() {
            0
        } else {
            int.parse().map_err(|_| bad())?
        };
        if major > MAX_MAJOR {
            return Err(MoneyError::Range(text.chars().take(32).collect()));
        }
        let digits: Vec<u8> = frac.bytes().map(|b| b - b'0').collect();
        let d = usize::from(self.decimals);
        let mut minor_frac: i64 = 0;
        for i in 0..d {
            minor_frac = minor_frac * 10 + i64::from(digits.get(i).copied().unwrap_or(0));
        }
        let rest = digits.get(d..).map(<[u8]>::to_vec).unwrap_or_default();
        let minor = major * self.scale() + minor_frac;
        Ok((if negative { -minor } else { minor }, rest))
    }

    /// Minor units as decimal text with the currency's decimals (`255` EUR → "2.55").
    pub fn format(self, minor: i64) -> String {
        let d = usize::from(self.decimals);
        let sign = if minor < 0 { "-" } else { "" };
        let abs = minor.unsigned_abs();
        if d == 0 {
            return format!("{sign}{abs}");
        }
        let scale = self.scale().unsigned_abs();
        format!("{sign}{}.{:0d$}", abs / scale, abs % scale)
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code)
    }
}

impl Serialize for Currency {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(code: &str) -> Currency {
        Currency::parse(code).expect("a currency")
    }

    #[test]
    fn currencies_have_their_decimals() {
        assert_eq!(c("eur").decimals(), 2);
        assert_eq!(c("JPY").decimals(), 0);
        assert_eq!(c("KWD").decimals(), 3);
        assert_eq!(c("CLF").decimals(), 4);
        assert!(Currency::parse("EURO").is_err());
        assert!(Currency::parse("XYZ").is_err());
    }

    #[test]
    fn exact_amounts() {
        assert_eq!(c("EUR").parse_exact("2.55"), Ok(255));
        assert_eq!(c("EUR").parse_exact("2.550"), Ok(255));
        assert_eq!(c("EUR").parse_exact("2"), Ok(200));
        assert_eq!(c("EUR").parse_exact(".5"), Ok(50));
        assert_eq!(c("EUR").parse_exact("0.01"), Ok(1));
        assert_eq!(c("JPY").parse_exact("1500"), Ok(1500));
        assert_eq!(c("KWD").parse_exact("1.005"), Ok(1005));
        assert!(matches!(
            c("EUR").parse_exact("2.555"),
            Err(MoneyError::Precision { .. })
        ));
        assert!(matches!(
            c("JPY").parse_exact("10.5"),
            Err(MoneyError::Precision { .. })
        ));
        for bad in ["", ".", "1e3", "1,5", "abc", "1.2.3", " - 1"] {
            assert!(c("EUR").parse_exact(bad).is_err(), "{bad:?}");
        }
        assert!(matches!(
            c("EUR").parse_exact("99999999999999999"),
            Err(MoneyError::Range(_))
        ));
    }

    #[test]
    fn rounding_is_half_away_from_zero() {
        assert_eq!(c("EUR").parse_rounded("0.125"), Ok(13));
        assert_eq!(c("EUR").parse_rounded("0.1249"), Ok(12));
        assert_eq!(c("EUR").parse_rounded("-0.125"), Ok(-13));
        assert_eq!(c("JPY").parse_rounded("100.5"), Ok(101));
        assert_eq!(c("JPY").parse_rounded("100.49"), Ok(100));
        assert_eq!(c("KWD").parse_rounded("1.0005"), Ok(1001));
    }

    #[test]
    fn json_numbers_read_through_their_shortest_form() {
        let v = serde_json::json!(2.55);
        let text = Currency::amount_text(&v).expect("text");
        assert_eq!(c("EUR").parse_exact(&text), Ok(255));
        let v = serde_json::json!(0.1 + 0.2);
        // 0.30000000000000004 is not a price in cents: it has too many decimals.
        let text = Currency::amount_text(&v).expect("text");
        assert!(c("EUR").parse_exact(&text).is_err());
        assert_eq!(c("EUR").parse_rounded(&text), Ok(30));
        assert_eq!(
            Currency::amount_text(&serde_json::json!(7)),
            Some("7".into())
        );
        assert_eq!(Currency::amount_text(&serde_json::json!(true)), None);
    }

    #[test]
    fn formats_with_the_currency_decimals() {
        assert_eq!(c("EUR").format(255), "2.55");
        assert_eq!(c("EUR").format(5), "0.05");
        assert_eq!(c("EUR").format(-5), "-0.05");
        assert_eq!(c("JPY").format(1500), "1500");
        assert_eq!(c("KWD").format(1005), "1.005");
    }
}
