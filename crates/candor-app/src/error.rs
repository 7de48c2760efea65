//! Use-case errors: a stable code, a human message, and a kind the HTTP layer maps to a status.
//! Internal causes are logged where they happen and never put in the message.

use candor_policy::Denial;
use serde::Serialize;

/// What sort of failure, independent of transport.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum ErrorKind {
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    Conflict,
    /// A capability that is not configured or a dependency that is down.
    Unavailable,
    Internal,
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct AppError {
    pub kind: ErrorKind,
    pub code: &'static str,
    pub message: String,
    /// Reasons behind a denial, for callers that show them (privacy center, API).
    pub reasons: Vec<Denial>,
}

impl AppError {
    pub fn new(kind: ErrorKind, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            kind,
            code,
            message: message.into(),
            reasons: Vec::new(),
        }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::BadRequest, code, message)
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(
            ErrorKind::NotFound,
            "not_found",
            format!("{what} not found"),
        )
    }

    pub fn unauthorized() -> Self {
        Self::new(
            ErrorKind::Unauthorized,
            "unauthorized",
            "missing or invalid API key",
        )
    }

    pub fn forbidden_scope(needed: candor_types::Scope) -> Self {
        Self::new(
            ErrorKind::Forbidden,
            "forbidden_scope",
            format!("this endpoint needs a key with `{needed}` scope or higher"),
        )
    }

    pub fn denied(d: Denial) -> Self {
        let mut e = Self::new(ErrorKind::Forbidden, "purpose_denied", d.to_string());
        e.reasons.push(d);
        e
    }

    /// An internal failure: the cause is logged here, the caller sees a generic message.
    pub fn internal(context: &str, cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(context, error = %cause, "internal error");
        Self::new(
            ErrorKind::Internal,
            "internal",
            "an internal error occurred; it has been logged",
        )
    }
}

impl From<candor_store::StoreError> for AppError {
    fn from(e: candor_store::StoreError) -> Self {
        match e {
            candor_store::StoreError::NotFound => Self::not_found("resource"),
            candor_store::StoreError::Conflict(m) => Self::new(ErrorKind::Conflict, "conflict", m),
            candor_store::StoreError::Gate(m) => Self::new(ErrorKind::Conflict, "fairness_gate", m),
            other => Self::internal("store", &other),
        }
    }
}

impl From<candor_crypto::CryptoError> for AppError {
    fn from(e: candor_crypto::CryptoError) -> Self {
        Self::internal("crypto", &e)
    }
}

pub type AppResult<T> = Result<T, AppError>;
