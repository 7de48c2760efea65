//! The one error type of the HTTP layer. Every failure leaves as
//! `{"error": {"code": "...", "message": "..."}}` with the status its kind calls for.
//!
//! | code | status | when |
//! | --- | --- | --- |
//! | `invalid_json` | 400 | the body is not JSON |
//! | `invalid_utf8` | 400 | the body is not UTF-8 |
//! | `invalid_request` | 400 | JSON of the wrong shape (field types, missing fields) |
//! | `invalid_query` / `invalid_path` | 400 | malformed query string or path parameter |
//! | `not_an_object`, `unsupported_type`, `wrong_type`, `missing_identity`, `missing_event_name`, `too_long`, `bad_timestamp` | 400 | an invalid Segment message on a single-event endpoint |
//! | `unknown_purpose`, `unknown_jurisdiction`, `invalid_consent_state`, `invalid_consent_source`, `invalid_notice_hash` | 400 | consent input the policy does not know |
//! | `batch_size`, `attribute_invalid`, `reason_required`, `reason_too_long`, `unknown_action` | 400 | invalid scoring or model-lifecycle input |
//! | `kind_invalid`, `regime_invalid`, `details_required`, `details_invalid`, `statement_invalid`, `outcome_invalid`, `label_invalid`, `status_invalid`, `table_invalid`, `invalid_time`, `period_invalid`, `threshold_invalid` | 400 | invalid rights, contest or fairness input |
//! | `product_invalid`, `currency_invalid`, `price_invalid`, `price_precision`, `signal_invalid`, `segment_invalid`, `category_invalid`, `subject_invalid`, `days_invalid`, `invalid_csv`, `column_invalid`, `no_rows` | 400 | invalid price check, price history or audit input |
//! | `message_invalid`, `subject_invalid`, `status_invalid`, `products_invalid` | 400 | an invalid assistant message, conversation start, ticket query or catalog import |
//! | `conversation_busy`, `conversation_closed` | 409 | another message of the conversation was answered first (send again); the conversation is closed |
//! | `unauthorized` | 401 | missing, malformed, unknown or revoked API key |
//! | `forbidden_scope` | 403 | the key's scope is too low for the endpoint |
//! | `purpose_denied` | 403 | the policy denies the purpose for this subject (reasons attached) |
//! | `verification_failed` | 403 | a request's one-time token is wrong or expired |
//! | `not_found` | 404 | unknown subject, key or route |
//! | `subject_erased` | 404 | the person was erased (their identifiers are suppressed) |
//! | `method_not_allowed` | 405 | known route, wrong method |
//! | `conflict`, `subject_erased`, `not_verified`, `already_contested`, `contest_closed` | 409 | the request conflicts with stored state |
//! | `no_active_model`, `model_not_approved`, `invalid_transition`, `fairness_gate`, `nothing_to_override`, `no_known_outcomes`, `no_protected_data` | 409 | scoring without an active/approved model; a lifecycle step from the wrong status |
//! | `no_orders` | 409 | a dispersion audit finds no readable order in the period |
//! | `payload_too_large` | 413 | body over the limit |
//! | `internal` | 500 | anything else; the cause is logged, never returned |

use axum::Json;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use candor_app::{AppError, ErrorKind};
use serde_json::json;

#[derive(Debug)]
pub struct ApiError(pub AppError);

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        let kind = match status.as_u16() {
            401 => ErrorKind::Unauthorized,
            403 => ErrorKind::Forbidden,
            404 => ErrorKind::NotFound,
            409 => ErrorKind::Conflict,
            503 => ErrorKind::Unavailable,
            500..=599 => ErrorKind::Internal,
            _ => ErrorKind::BadRequest,
        };
        let mut e = AppError::new(kind, code, message);
        if code == "payload_too_large" {
            e.kind = ErrorKind::BadRequest;
        }
        Self(e)
    }

    pub(crate) fn status(&self) -> StatusCode {
        match (self.0.code, self.0.kind) {
            ("payload_too_large", _) => StatusCode::PAYLOAD_TOO_LARGE,
            ("method_not_allowed", _) => StatusCode::METHOD_NOT_ALLOWED,
            (_, ErrorKind::BadRequest) => StatusCode::BAD_REQUEST,
            (_, ErrorKind::Unauthorized) => StatusCode::UNAUTHORIZED,
            (_, ErrorKind::Forbidden) => StatusCode::FORBIDDEN,
            (_, ErrorKind::NotFound) => StatusCode::NOT_FOUND,
            (_, ErrorKind::Conflict) => StatusCode::CONFLICT,
            (_, ErrorKind::Unavailable) => StatusCode::SERVICE_UNAVAILABLE,
            (_, ErrorKind::Internal) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<AppError> for ApiError {
    fn from(e: AppError) -> Self {
        Self(e)
    }
}

impl From<BytesRejection> for ApiError {
    fn from(r: BytesRejection) -> Self {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Self::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("request bodies are limited to {} bytes", crate::BODY_LIMIT),
            )
        } else {
            Self::new(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "the request body could not be read",
            )
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_query", r.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_path", r.body_text())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut body = json!({ "code": self.0.code, "message": self.0.message });
        if !self.0.reasons.is_empty() {
            body["reasons"] = json!(self.0.reasons);
        }
        (status, Json(json!({ "error": body }))).into_response()
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
