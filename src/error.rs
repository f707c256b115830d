//! One error type for the whole API, rendered as the JSON body of API.md:
//! `{ "statusCode": 409, "message": "...", "error": "Conflict" }`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

pub type Result<T, E = AppError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// A 400 with one message per broken rule.
    #[error("validation failed: {0:?}")]
    Validation(Vec<String>),
    /// Any client error with a single message (400, 401, 403, 404, 409, 413, 415, 422...).
    #[error("{status}: {message}")]
    Client { status: StatusCode, message: String },
    #[error("too many requests")]
    TooManyRequests { retry_after_secs: u64 },
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// COMMIT was sent and the database stopped answering: the write may or may not have
    /// happened, and the client must be told exactly that.
    #[error("outcome unknown: {0}")]
    OutcomeUnknown(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl AppError {
    pub fn client(status: StatusCode, message: impl Into<String>) -> Self {
        Self::Client {
            status,
            message: message.into(),
        }
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::client(StatusCode::BAD_REQUEST, message)
    }
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::client(StatusCode::UNAUTHORIZED, message)
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::client(StatusCode::FORBIDDEN, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::client(StatusCode::NOT_FOUND, message)
    }
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::client(StatusCode::CONFLICT, message)
    }

    /// True when PostgreSQL aborted the transaction because of a concurrent writer
    /// (serialization failure or deadlock): the caller may retry from a fresh read.
    pub fn is_lost_race(&self) -> bool {
        matches!(self, Self::Database(sqlx::Error::Database(db))
            if matches!(db.code().as_deref(), Some("40001" | "40P01")))
    }

    /// The same error again, for answering several requests that failed together. Causes
    /// that cannot be cloned keep their text.
    pub fn duplicate(&self) -> Self {
        match self {
            Self::Validation(messages) => Self::Validation(messages.clone()),
            Self::Client { status, message } => Self::client(*status, message.clone()),
            Self::TooManyRequests { retry_after_secs } => Self::TooManyRequests {
                retry_after_secs: *retry_after_secs,
            },
            Self::Unavailable(cause) => Self::Unavailable(cause.clone()),
            Self::OutcomeUnknown(cause) => Self::OutcomeUnknown(cause.clone()),
            Self::Database(e) if is_connection_failure(e) => Self::Unavailable(e.to_string()),
            Self::Database(e) if is_unique_violation(e) => {
                Self::conflict("Resource already exists")
            }
            Self::Database(e) => Self::Internal(anyhow::anyhow!("database error: {e}")),
            Self::Internal(e) => Self::Internal(anyhow::anyhow!("{e:#}")),
        }
    }

    /// The name of the violated constraint, when this is a constraint violation.
    pub fn constraint(&self) -> Option<&str> {
        match self {
            Self::Database(sqlx::Error::Database(db)) => db.constraint(),
            _ => None,
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            Self::Validation(_) => StatusCode::BAD_REQUEST,
            Self::Client { status, .. } => *status,
            Self::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable(_) | Self::OutcomeUnknown(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Database(e) if is_connection_failure(e) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Database(e) if is_unique_violation(e) => StatusCode::CONFLICT,
            Self::Database(_) | Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// API.md's answer when COMMIT was sent and the database stopped answering.
pub const OUTCOME_UNKNOWN: &str =
    "Booking outcome unknown: retry with the same Idempotency-Key or check GET /bookings";

/// The contract's error body of a client error, as stored for an Idempotency-Key replay.
/// `None` for errors that are not the request's own fault (5xx), which are never stored.
impl AppError {
    pub fn client_body(&self) -> Option<(StatusCode, String)> {
        let Self::Client { status, message } = self else {
            return None;
        };
        let body = ErrorBody::new(*status, ErrorMessage::One(message.clone()));
        Some((*status, serde_json::to_string(&body).ok()?))
    }

    /// True for failures caused by the database connection, not by the query.
    pub fn is_connection_failure(&self) -> bool {
        match self {
            Self::Unavailable(_) => true,
            Self::Database(e) => is_connection_failure(e),
            _ => false,
        }
    }
}

/// Errors that mean "the database cannot be reached right now", as opposed to a bad query.
fn is_connection_failure(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => true,
        sqlx::Error::Tls(_) => true,
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|code| code.starts_with("08") || code.starts_with("57P")),
        _ => false,
    }
}

/// A unique constraint the caller's request collided with; the call sites that can say more
/// map their own constraints by name first (e.g. `users_email_key`).
fn is_unique_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(db) if db.code().as_deref() == Some("23505"))
}

/// The message of an error body: one string, or one string per broken rule.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum ErrorMessage {
    One(String),
    Many(Vec<String>),
}

/// The body of every non-2xx response (but /health's).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({
    "statusCode": 409,
    "message": "Not enough seats available. Requested: 5, Available: 3",
    "error": "Conflict"
}))]
pub struct ErrorBody {
    pub status_code: u16,
    pub message: ErrorMessage,
    pub error: String,
}

impl ErrorBody {
    pub fn new(status: StatusCode, message: ErrorMessage) -> Self {
        Self {
            status_code: status.as_u16(),
            message,
            error: status.canonical_reason().unwrap_or("Error").to_string(),
        }
    }
}

/// Builds the contract's error response for a status and a single message.
pub fn error_response(status: StatusCode, message: impl Into<String>) -> Response {
    (
        status,
        Json(ErrorBody::new(status, ErrorMessage::One(message.into()))),
    )
        .into_response()
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = match self {
            Self::Validation(messages) => ErrorMessage::Many(messages),
            Self::Client { message, .. } => ErrorMessage::One(message),
            Self::TooManyRequests { retry_after_secs } => {
                let mut response =
                    error_response(status, "Too many requests, please try again later");
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
                return response;
            }
            Self::OutcomeUnknown(cause) => {
                tracing::warn!(%cause, "commit sent, outcome unknown");
                ErrorMessage::One(OUTCOME_UNKNOWN.into())
            }
            ref cause if status == StatusCode::CONFLICT => {
                tracing::info!(error = %cause, "unique violation");
                ErrorMessage::One("Resource already exists".into())
            }
            ref cause if status == StatusCode::SERVICE_UNAVAILABLE => {
                tracing::warn!(error = %cause, "database unavailable");
                ErrorMessage::One("Service temporarily unavailable".into())
            }
            cause => {
                // The cause goes to the log only: SQL and internals never reach the client.
                tracing::error!(error = ?cause, "internal error");
                ErrorMessage::One("Internal server error".into())
            }
        };
        (status, Json(ErrorBody::new(status, message))).into_response()
    }
}
