//! Consent: an append-only ledger per subject; the current state is derived from it.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::{Purpose, Timestamp};

/// Grant or withdraw. Withdrawing is as easy as granting: the same call with the other word.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConsentAction {
    Granted,
    Withdrawn,
}

impl ConsentAction {
    pub fn as_str(self) -> &'static str {
        match self {
            ConsentAction::Granted => "granted",
            ConsentAction::Withdrawn => "withdrawn",
        }
    }
}

impl FromStr for ConsentAction {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "granted" | "grant" => Ok(Self::Granted),
            "withdrawn" | "withdraw" => Ok(Self::Withdrawn),
            other => Err(format!(
                "unknown consent state `{other}`: expected granted or withdrawn"
            )),
        }
    }
}

/// Where a consent record came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConsentSource {
    /// The store's consent banner or preference page.
    Banner,
    /// The consent API, called by the store's backend.
    Api,
    /// A `Sec-GPC: 1` request header (Global Privacy Control): an opt-out.
    Gpc,
    /// `context.consent.categoryPreferences` on an ingested event (Segment consent spec).
    Event,
    /// A bulk import of consent history.
    Import,
    /// A data-subject request: an objection, a do-not-sell or limit-sensitive-use request.
    Request,
    /// The person's own choice in Candor's privacy center.
    #[serde(rename = "privacy_center")]
    PrivacyCenter,
}

impl ConsentSource {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Banner => "banner",
            Self::Api => "api",
            Self::Gpc => "gpc",
            Self::Event => "event",
            Self::Import => "import",
            Self::Request => "request",
            Self::PrivacyCenter => "privacy_center",
        }
    }
}

impl FromStr for ConsentSource {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "banner" => Ok(Self::Banner),
            "api" => Ok(Self::Api),
            "gpc" => Ok(Self::Gpc),
            "event" => Ok(Self::Event),
            "import" => Ok(Self::Import),
            "request" => Ok(Self::Request),
            "privacy_center" => Ok(Self::PrivacyCenter),
            other => Err(format!(
                "unknown consent source `{other}`: expected banner, api, gpc, event, import, request or privacy_center"
            )),
        }
    }
}

impl fmt::Display for ConsentSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One entry of the consent ledger. Never updated, never deleted while the subject exists.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentRecord {
    pub purpose: Purpose,
    pub action: ConsentAction,
    pub source: ConsentSource,
    /// Version of the notice the person saw, e.g. `2026-05`.
    pub notice_version: Option<String>,
    /// SHA-256 (hex) of the notice text the person saw.
    pub notice_hash: Option<String>,
    /// Jurisdiction whose rules applied (`eu`, `us_ca`, ...), as named in the policy.
    pub jurisdiction: Option<String>,
    pub at: Timestamp,
}

/// The current consent of one subject: the latest ledger record per purpose.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentState {
    latest: BTreeMap<Purpose, ConsentRecord>,
    jurisdiction: Option<String>,
}

impl ConsentState {
    /// Derives the state from ledger records in any order: the latest record per purpose wins;
    /// on equal times the later record in the slice wins (the ledger's append order).
    pub fn from_ledger<'a>(records: impl IntoIterator<Item = &'a ConsentRecord>) -> Self {
        let mut state = Self::default();
        for r in records {
            state.apply(r.clone());
        }
        state
    }

    /// Applies one more record, as the ledger would after appending it.
    pub fn apply(&mut self, record: ConsentRecord) {
        if let Some(j) = &record.jurisdiction {
            self.jurisdiction = Some(j.clone());
        }
        match self.latest.get(&record.purpose) {
            Some(prev) if prev.at > record.at => {}
            _ => {
                self.latest.insert(record.purpose.clone(), record);
            }
        }
    }

    /// The latest record for a purpose, if the subject ever said anything about it.
    pub fn get(&self, purpose: &Purpose) -> Option<&ConsentRecord> {
        self.latest.get(purpose)
    }

    /// `Some(true)` granted, `Some(false)` withdrawn, `None` never asked.
    pub fn answer(&self, purpose: &Purpose) -> Option<bool> {
        self.get(purpose)
            .map(|r| r.action == ConsentAction::Granted)
    }

    /// Jurisdiction from the latest record that named one.
    pub fn jurisdiction(&self) -> Option<&str> {
        self.jurisdiction.as_deref()
    }

    pub fn records(&self) -> impl Iterator<Item = &ConsentRecord> {
        self.latest.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(p: &str, action: ConsentAction, at: i64) -> ConsentRecord {
        ConsentRecord {
            purpose: p.parse().expect("valid"),
            action,
            source: ConsentSource::Api,
            notice_version: None,
            notice_hash: None,
            jurisdiction: Some("eu".into()),
            at: Timestamp(at),
        }
    }

    #[test]
    fn latest_record_wins() {
        let ledger = vec![
            rec("analytics", ConsentAction::Granted, 1),
            rec("analytics", ConsentAction::Withdrawn, 5),
            rec("profiling", ConsentAction::Granted, 3),
        ];
        let s = ConsentState::from_ledger(&ledger);
        let analytics: Purpose = "analytics".parse().expect("valid");
        assert_eq!(s.answer(&analytics), Some(false));
        assert_eq!(s.answer(&"profiling".parse().expect("valid")), Some(true));
        assert_eq!(s.answer(&"marketing_email".parse().expect("valid")), None);
        // out-of-order arrival: an older grant does not undo a newer withdrawal
        let mut s2 = s.clone();
        s2.apply(rec("analytics", ConsentAction::Granted, 2));
        assert_eq!(s2.answer(&analytics), Some(false));
        assert_eq!(s.jurisdiction(), Some("eu"));
    }
}
