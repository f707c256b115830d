//! `ValidatedJson<T>`: the only way a handler receives a body. It maps every rejection into
//! the contract's error body, refuses NUL characters anywhere in the text, and runs
//! `validator` rules, so a handler cannot forget validation.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::Json;
use serde::de::DeserializeOwned;
use serde_json::Value;
use validator::{Validate, ValidationErrors, ValidationErrorsKind};

use crate::error::AppError;

pub struct ValidatedJson<T>(pub T);

impl<S, T> FromRequest<S> for ValidatedJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Validate + Send,
{
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let Json(value) = Json::<Value>::from_request(req, state)
            .await
            .map_err(json_rejection)?;
        if contains_nul(&value) {
            return Err(AppError::bad_request(
                "Text fields must not contain NUL characters",
            ));
        }
        let body: T = serde_json::from_value(value)
            .map_err(|e| AppError::bad_request(format!("Invalid request body: {e}")))?;
        body.validate()
            .map_err(|errors| AppError::Validation(messages(&errors)))?;
        Ok(Self(body))
    }
}

fn json_rejection(rejection: JsonRejection) -> AppError {
    match rejection {
        JsonRejection::MissingJsonContentType(_) => AppError::client(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Expected request with `Content-Type: application/json`",
        ),
        JsonRejection::JsonSyntaxError(e) => {
            AppError::bad_request(format!("Malformed JSON body: {}", e.body_text()))
        }
        JsonRejection::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            AppError::client(StatusCode::PAYLOAD_TOO_LARGE, "Request body is too large")
        }
        other => AppError::bad_request(other.body_text()),
    }
}

fn contains_nul(value: &Value) -> bool {
    match value {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(contains_nul),
        Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || contains_nul(v)),
        _ => false,
    }
}

/// Flattens validator's errors into the contract's message array: each rule carries its full
/// message (naming the field in camelCase); ordered by field, then rule, for stable output.
pub fn messages(errors: &ValidationErrors) -> Vec<String> {
    let mut fields: Vec<_> = errors.errors().iter().collect();
    fields.sort_by_key(|(field, _)| field.to_string());
    let mut out = Vec::new();
    for (field, kind) in fields {
        if let ValidationErrorsKind::Field(list) = kind {
            for error in list {
                out.push(match &error.message {
                    Some(message) => message.to_string(),
                    None => format!("{field} is invalid"),
                });
            }
        }
    }
    out
}
