//! Consent as a capability: [`Policy::decide`] is the only way to obtain a [`Grant`].

use std::collections::BTreeSet;

use candor_types::{
    Category, ConsentAction, ConsentRecord, ConsentState, Purpose, SubjectId, TenantId,
};
use serde::Serialize;

use crate::policy::{Basis, Policy, Regime};

/// Permission to read one subject's data for one purpose, limited to the purpose's categories.
///
/// Only [`Policy::decide`] can make one: there is no public constructor, `Default` or
/// `Deserialize`. Functions that read subject data take `&Grant`.
///
/// ```compile_fail
/// let forged: candor_policy::Grant = Default::default();
/// ```
#[derive(Clone, Debug, Serialize)]
pub struct Grant {
    tenant: TenantId,
    subject: SubjectId,
    purpose: Purpose,
    basis: Basis,
    jurisdiction: String,
    categories: BTreeSet<Category>,
    reasons: Vec<String>,
}

impl Grant {
    /// The store the grant is valid in.
    pub fn tenant(&self) -> TenantId {
        self.tenant
    }

    /// The subject whose data may be read.
    pub fn subject(&self) -> SubjectId {
        self.subject
    }

    /// The purpose the data may be used for.
    pub fn purpose(&self) -> &Purpose {
        &self.purpose
    }

    /// The lawful basis the grant rests on.
    pub fn basis(&self) -> Basis {
        self.basis
    }

    /// The jurisdiction whose rules were applied.
    pub fn jurisdiction(&self) -> &str {
        &self.jurisdiction
    }

    /// The data categories that may be read; nothing else.
    pub fn categories(&self) -> &BTreeSet<Category> {
        &self.categories
    }

    /// Whether data of category `c` may be read under this grant.
    pub fn allows(&self, c: &Category) -> bool {
        self.categories.contains(c)
    }

    /// Why processing is allowed, in plain language.
    pub fn reasons(&self) -> &[String] {
        &self.reasons
    }
}

/// Why a purpose may not be used for a subject. `code` is stable and machine-readable:
/// `unknown_purpose`, `unknown_jurisdiction`, `no_consent`, `consent_withdrawn`, `objected`,
/// `protected_category`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("`{purpose}` is not allowed: {reason}")]
pub struct Denial {
    pub purpose: String,
    pub code: &'static str,
    pub reason: String,
}

fn said(r: &ConsentRecord) -> String {
    format!("at {} via {}", r.at, r.source)
}

/// The purpose named on grants that answer a subject's own request.
pub const RIGHTS_PURPOSE: &str = "data_subject_rights";

impl Policy {
    /// A grant to answer the subject's own request (GDPR Arts. 15 and 20, CCPA's right to
    /// know): every category the policy defines, protected ones included, on the basis of the
    /// legal obligation to answer. Only the rights use case asks for it, after the request's
    /// identity check (or for staff acting on a verified request).
    pub fn rights_grant(&self, tenant: TenantId, subject: SubjectId, right: &str) -> Grant {
        Grant {
            tenant,
            subject,
            purpose: Purpose::try_from(RIGHTS_PURPOSE.to_string())
                .unwrap_or_else(|_| unreachable!("a valid purpose name")),
            basis: Basis::LegalObligation,
            jurisdiction: self.default_jurisdiction().to_owned(),
            categories: self.categories().map(|c| c.name.clone()).collect(),
            reasons: vec![format!(
                "answering the subject's {right} request (basis: legal_obligation)"
            )],
        }
    }

    /// Decides whether `purpose` may process `subject`'s data, given their current consent.
    ///
    /// Deny by default: an unknown purpose or jurisdiction, a missing opt-in, a withdrawal or an
    /// objection all deny. A grant carries exactly the purpose's categories.
    pub fn decide(
        &self,
        tenant: TenantId,
        subject: SubjectId,
        purpose: &Purpose,
        consent: &ConsentState,
    ) -> Result<Grant, Denial> {
        let deny = |code, reason: String| Denial {
            purpose: purpose.to_string(),
            code,
            reason,
        };
        let Some(def) = self.purpose(purpose) else {
            return Err(deny(
                "unknown_purpose",
                format!("the policy does not define the purpose `{purpose}`"),
            ));
        };
        let jurisdiction = consent
            .jurisdiction()
            .unwrap_or(self.default_jurisdiction());
        let Some(rules) = self.jurisdiction(jurisdiction) else {
            return Err(deny(
                "unknown_jurisdiction",
                format!("the policy has no rules for the jurisdiction `{jurisdiction}`"),
            ));
        };
        let reason = match (def.basis, consent.get(purpose)) {
            (Basis::Consent, Some(r)) if r.action == ConsentAction::Granted => {
                format!("consent granted {}", said(r))
            }
            (Basis::Consent, Some(r)) => {
                return Err(deny(
                    "consent_withdrawn",
                    format!("consent withdrawn {}", said(r)),
                ));
            }
            (Basis::Consent, None)
                if rules.regime == Regime::OptOut && !rules.opt_in_purposes.contains(purpose) =>
            {
                format!("`{jurisdiction}` is opt-out and the subject has not opted out")
            }
            (Basis::Consent, None) => {
                return Err(deny(
                    "no_consent",
                    format!(
                        "no consent recorded; `{jurisdiction}` requires opt-in for `{purpose}`"
                    ),
                ));
            }
            (Basis::LegitimateInterest, Some(r)) if r.action == ConsentAction::Withdrawn => {
                return Err(deny(
                    "objected",
                    format!("the subject objected {}", said(r)),
                ));
            }
            (Basis::LegitimateInterest, _) => {
                "legitimate interest (basis: legitimate_interest); the subject has not objected"
                    .into()
            }
            (Basis::Contract, _) => {
                "necessary to perform a contract with the subject (basis: contract)".into()
            }
            (Basis::LegalObligation, _) => {
                "required by a legal obligation (basis: legal_obligation)".into()
            }
        };
        // Invariant 2: protected categories reach audit purposes only. Validation ensures it;
        // a grant that would break it is denied rather than trusted.
        if !def.audit {
            let leaked = def
                .categories
                .iter()
                .find(|c| self.category(c).is_none_or(|d| d.protected));
            if let Some(c) = leaked {
                return Err(deny(
                    "protected_category",
                    format!("category `{c}` is protected and `{purpose}` is not an audit purpose"),
                ));
            }
        }
        Ok(Grant {
            tenant,
            subject,
            purpose: def.name.clone(),
            basis: def.basis,
            jurisdiction: jurisdiction.to_owned(),
            categories: def.categories.clone(),
            reasons: vec![reason],
        })
    }
}
