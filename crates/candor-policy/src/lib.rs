//! Candor's policy as code: the `candor.toml` file that names purposes, their lawful basis,
//! the data categories each may read, retention periods, jurisdictions and protected
//! attributes — and [`Policy::decide`], the only place a [`Grant`] to read subject data is made.
//!
//! No I/O beyond [`Policy::load`] reading the file.

pub mod assistant;
mod decide;
mod email;
mod error;
mod parse;
mod policy;
pub mod pricing;

pub use assistant::{AssistantPolicy, LlmPolicy};
pub use decide::{Denial, Grant, RIGHTS_PURPOSE};
pub use email::{
    BUILT_IN_JOURNEYS, EmailPolicy, JourneyDef, JourneyStep, SmtpPolicy, SmtpTls, WebhookPolicy,
    built_in_journey, parse_duration,
};
pub use error::{PolicyError, PolicyErrors};
pub use policy::{
    Basis, CategoryDef, FairnessPolicy, JurisdictionDef, Policy, PurposeDef, RecsPolicy, Regime,
};
pub use pricing::{
    PriceOutcome, PriceProposal, PriceReason, PriceVerdict, PricingPolicy, Signal, SignalClass,
};

/// The default policy for an online store, commented for a compliance officer: the
/// `candor.toml` a new installation starts from.
pub const DEFAULT_POLICY: &str = include_str!("default_policy.toml");

#[cfg(test)]
mod pricing_tests;
#[cfg(test)]
mod tests;
