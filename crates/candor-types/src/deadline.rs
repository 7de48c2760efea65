//! Deadlines of data-subject requests, per regime.
//!
//! - **GDPR** (Art. 12(3)): answer within one month of receipt, extendable by two further
//!   months with notice to the subject. "One month" is a calendar month: from 31 January the
//!   deadline is the last day of February (the day is clamped to the month's length).
//! - **CCPA** (Cal. Code Regs. tit. 11 § 7021): acknowledge within 10 business days, answer
//!   within 45 calendar days, extendable once by another 45 days with notice. Business days are
//!   Monday to Friday (public holidays are not modelled: the deadline errs on the early side).
//!
//! Times are UTC; a deadline falls at the same time of day as the receipt.

use serde::{Deserialize, Serialize};

use crate::Timestamp;

/// The law a request is answered under.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Regime {
    Gdpr,
    Ccpa,
}

impl Regime {
    pub fn as_str(self) -> &'static str {
        match self {
            Regime::Gdpr => "gdpr",
            Regime::Ccpa => "ccpa",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "gdpr" => Some(Regime::Gdpr),
            "ccpa" => Some(Regime::Ccpa),
            _ => None,
        }
    }
}

/// The deadlines of one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Deadlines {
    /// CCPA only: the acknowledgement is due by then.
    pub acknowledge_by: Option<Timestamp>,
    /// The answer is due by then.
    pub due: Timestamp,
    /// The latest due date after the one extension the regime allows.
    pub extended_due: Timestamp,
}

fn zoned(t: Timestamp) -> Option<jiff::Zoned> {
    jiff::Timestamp::from_millisecond(t.0)
        .ok()
        .map(|ts| ts.to_zoned(jiff::tz::TimeZone::UTC))
}

fn back(z: &jiff::Zoned) -> Timestamp {
    Timestamp(z.timestamp().as_millisecond())
}

/// `t` plus whole calendar months (the day clamped to the target month's length).
pub fn add_months(t: Timestamp, months: i64) -> Timestamp {
    match zoned(t).and_then(|z| z.checked_add(jiff::Span::new().months(months)).ok()) {
        Some(z) => back(&z),
        None => t,
    }
}

/// `t` plus `n` business days (Monday–Friday): each weekday after the receipt day counts one.
pub fn add_business_days(t: Timestamp, n: u32) -> Timestamp {
    let Some(mut z) = zoned(t) else { return t };
    let mut left = n;
    while left > 0 {
        let Ok(next) = z.checked_add(jiff::Span::new().days(1)) else {
            return back(&z);
        };
        z = next;
        if !matches!(
            z.weekday(),
            jiff::civil::Weekday::Saturday | jiff::civil::Weekday::Sunday
        ) {
            left -= 1;
        }
    }
    back(&z)
}

/// The deadlines of a request received at `received`.
pub fn deadlines(regime: Regime, received: Timestamp) -> Deadlines {
    match regime {
        Regime::Gdpr => Deadlines {
            acknowledge_by: None,
            due: add_months(received, 1),
            extended_due: add_months(received, 3),
        },
        Regime::Ccpa => Deadlines {
            acknowledge_by: Some(add_business_days(received, 10)),
            due: received.plus_days(45),
            extended_due: received.plus_days(90),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        Timestamp::parse_rfc3339(s).unwrap_or(Timestamp(0))
    }

    #[test]
    fn gdpr_one_month_clamps_to_the_end_of_short_months_and_extends_by_two() {
        let d = deadlines(Regime::Gdpr, at("2026-01-31T10:00:00Z"));
        assert_eq!(d.due, at("2026-02-28T10:00:00Z"));
        assert_eq!(d.extended_due, at("2026-04-30T10:00:00Z"));
        assert_eq!(d.acknowledge_by, None);
        // Leap year.
        assert_eq!(
            deadlines(Regime::Gdpr, at("2028-01-30T00:00:00Z")).due,
            at("2028-02-29T00:00:00Z")
        );
        // Across the year end.
        let d = deadlines(Regime::Gdpr, at("2026-11-22T21:38:00Z"));
        assert_eq!(d.due, at("2026-12-22T21:38:00Z"));
        assert_eq!(d.extended_due, at("2027-02-22T21:38:00Z"));
    }

    #[test]
    fn ccpa_acknowledges_in_ten_business_days_and_answers_in_45_plus_45() {
        // Sunday 22 November 2026: 10 business days are 23–27 Nov and 30 Nov–4 Dec.
        let d = deadlines(Regime::Ccpa, at("2026-11-22T12:00:00Z"));
        assert_eq!(d.acknowledge_by, Some(at("2026-12-04T12:00:00Z")));
        assert_eq!(d.due, at("2027-01-06T12:00:00Z"));
        assert_eq!(d.extended_due, at("2027-02-20T12:00:00Z"));
        // Received on a Friday: the next Friday is 5 business days, two weeks is 10.
        assert_eq!(
            add_business_days(at("2026-11-20T09:00:00Z"), 10),
            at("2026-12-04T09:00:00Z")
        );
        assert_eq!(
            add_business_days(at("2026-11-20T09:00:00Z"), 1),
            at("2026-11-23T09:00:00Z")
        );
        // Received on a Saturday: Monday counts first.
        assert_eq!(
            add_business_days(at("2026-11-21T09:00:00Z"), 1),
            at("2026-11-23T09:00:00Z")
        );
        assert_eq!(
            add_business_days(at("2026-11-21T09:00:00Z"), 0),
            at("2026-11-21T09:00:00Z")
        );
    }
}
