//! Time as Unix milliseconds: what both storage backends hold, what the clock injects.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A point in time, milliseconds since the Unix epoch (UTC).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub const DAY_MS: i64 = 86_400_000;

    pub fn now() -> Self {
        Self(jiff::Timestamp::now().as_millisecond())
    }

    pub fn millis(self) -> i64 {
        self.0
    }

    pub fn minus_days(self, days: u32) -> Self {
        Self(
            self.0
                .saturating_sub(i64::from(days).saturating_mul(Self::DAY_MS)),
        )
    }

    pub fn plus_days(self, days: u32) -> Self {
        Self(
            self.0
                .saturating_add(i64::from(days).saturating_mul(Self::DAY_MS)),
        )
    }

    /// Parses an RFC 3339 / ISO 8601 instant such as Segment's `timestamp` field.
    pub fn parse_rfc3339(s: &str) -> Option<Self> {
        s.parse::<jiff::Timestamp>()
            .ok()
            .map(|t| Self(t.as_millisecond()))
    }

    pub fn to_rfc3339(self) -> String {
        match jiff::Timestamp::from_millisecond(self.0) {
            Ok(t) => t.to_string(),
            Err(_) => self.0.to_string(),
        }
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_segment_timestamps() {
        let t = Timestamp::parse_rfc3339("2015-02-23T22:28:55.111Z").expect("parses");
        assert_eq!(t.0, 1_424_730_535_111);
        assert_eq!(t.to_rfc3339(), "2015-02-23T22:28:55.111Z");
        assert!(Timestamp::parse_rfc3339("yesterday").is_none());
        assert_eq!(t.plus_days(1).minus_days(1), t);
    }
}
