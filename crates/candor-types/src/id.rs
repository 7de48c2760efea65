//! Identifiers and small validated names.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! uuid_id {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A new, time-ordered (UUIDv7) identifier.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }
    };
}

uuid_id!(
    /// One store (tenant). Every row carries it; no query crosses tenants.
    TenantId
);
uuid_id!(
    /// Candor's own pseudonymous id for a customer or lead. The store's `userId` and
    /// `anonymousId` are never stored in clear; they map to this id through a blind index.
    SubjectId
);
uuid_id!(
    /// One stored event.
    EventId
);
uuid_id!(
    /// One API key (the public part of the key string).
    KeyId
);

/// A name could not be accepted as a purpose or category.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a valid name: use 1-64 characters a-z, 0-9 and _, starting with a letter")]
pub struct NameError(pub String);

fn valid_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some('a'..='z'))
        && s.len() <= 64
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_'))
}

macro_rules! name_id {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = NameError;
            fn try_from(s: String) -> Result<Self, NameError> {
                if valid_name(&s) { Ok(Self(s)) } else { Err(NameError(s)) }
            }
        }

        impl FromStr for $name {
            type Err = NameError;
            fn from_str(s: &str) -> Result<Self, NameError> {
                Self::try_from(s.to_owned())
            }
        }

        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

name_id!(
    /// Why data is used (`analytics`, `marketing_email`, ...). Which purposes exist is the policy's say.
    Purpose
);
name_id!(
    /// A data category (`contact`, `behavioural`, `protected`, ...), defined in the policy.
    Category
);

/// What an API key may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Browser-safe: ingestion only.
    Write,
    /// Backend: ingestion, consent, purpose-bound reads.
    Server,
    /// Store administration: keys, policy, audit log, everything a server key may do.
    Admin,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Write => "write",
            Scope::Server => "server",
            Scope::Admin => "admin",
        }
    }

    /// Whether a key of this scope may do what `needed` allows.
    pub fn allows(self, needed: Scope) -> bool {
        self >= needed
    }
}

impl FromStr for Scope {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "write" => Ok(Scope::Write),
            "server" => Ok(Scope::Server),
            "admin" => Ok(Scope::Admin),
            other => Err(format!(
                "unknown scope `{other}`: expected write, server or admin"
            )),
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_validated() {
        assert!("analytics".parse::<Purpose>().is_ok());
        assert!("marketing_email".parse::<Purpose>().is_ok());
        assert!("Analytics".parse::<Purpose>().is_err());
        assert!("".parse::<Purpose>().is_err());
        assert!("9lives".parse::<Category>().is_err());
        assert!("a-b".parse::<Category>().is_err());
        let from_json: Result<Purpose, _> = serde_json::from_str("\"DROP TABLE\"");
        assert!(from_json.is_err());
    }

    #[test]
    fn scopes_are_ordered() {
        assert!(Scope::Admin.allows(Scope::Write));
        assert!(Scope::Server.allows(Scope::Write));
        assert!(!Scope::Write.allows(Scope::Server));
        assert!(!Scope::Server.allows(Scope::Admin));
    }
}
