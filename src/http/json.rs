//! `ValidatedJson<T>`: the only way a handler receives a body. It answers every rejection in
//! the contract's error body (415 without a JSON content type, 413 over the body limit, 400 for
//! malformed JSON or wrong types), refuses NUL characters anywhere in the text, and runs the
//! `validator` rules, so a handler cannot forget validation.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{header, HeaderMap, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::error::Category;
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
        if !is_json(req.headers()) {
            return Err(AppError::client(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "Expected request with `Content-Type: application/json`",
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                AppError::client(StatusCode::PAYLOAD_TOO_LARGE, "Request body is too large")
            } else {
                AppError::bad_request(e.body_text())
            }
        })?;
        if has_escaped_nul(&bytes) {
            return Err(AppError::bad_request(
                "Text fields must not contain NUL characters",
            ));
        }
        // serde would also accept an array for a struct (its fields by position): refuse it.
        if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err(AppError::bad_request("Request body must be a JSON object"));
        }
        let body: T =
            serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_slice(&bytes))
                .map_err(deserialize_error)?;
        body.validate()
            .map_err(|errors| AppError::Validation(messages(&errors)))?;
        Ok(Self(body))
    }
}

/// A JSON syntax error is "malformed"; a value of the wrong type is a validation failure that
/// names its field, like every other broken rule.
fn deserialize_error(error: serde_path_to_error::Error<serde_json::Error>) -> AppError {
    let field = error.path().to_string();
    let inner = error.into_inner();
    if inner.classify() != Category::Data {
        return AppError::bad_request(format!("Malformed JSON body: {inner}"));
    }
    let text = inner.to_string();
    let expected = text.split("expected ").nth(1).unwrap_or_default();
    let rule = if ["i8", "i16", "i32", "i64", "u8", "u16", "u32", "u64"]
        .iter()
        .any(|t| expected.starts_with(t))
    {
        "must be an integer number"
    } else if expected.starts_with("a string") {
        "must be a string"
    } else if expected.starts_with("a boolean") {
        "must be a boolean value"
    } else {
        "has an invalid value"
    };
    AppError::Validation(vec![format!("{field} {rule}")])
}

/// `application/json`, or a `+json` type, with any parameters.
fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Whether a JSON text holds the escape `\u0000` (a raw NUL is not valid JSON at all).
/// Escaped backslashes are skipped, so the text `\\u0000` (a backslash, then "u0000") is fine.
fn has_escaped_nul(json: &[u8]) -> bool {
    let mut i = 0;
    while i < json.len() {
        if json[i] == b'\\' {
            if json.get(i + 1) == Some(&b'u') && json.get(i + 2..i + 6) == Some(b"0000") {
                return true;
            }
            i += 2;
        } else {
            i += 1;
        }
    }
    false
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
                let message = match &error.message {
                    Some(message) => message.to_string(),
                    None => format!("{field} is invalid"),
                };
                // Two rules can break the same way (e.g. both email checks): say it once.
                if !out.contains(&message) {
                    out.push(message);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::has_escaped_nul;

    #[test]
    fn finds_escaped_nul_but_not_an_escaped_backslash() {
        assert!(has_escaped_nul(br#"{"a":"x\u0000y"}"#));
        assert!(!has_escaped_nul(br#"{"a":"x\\u0000y"}"#));
        assert!(has_escaped_nul(br#"{"a":"\\\u0000"}"#));
        assert!(has_escaped_nul(br#"{"a\u0000":1}"#));
        assert!(!has_escaped_nul(br#"{"a":"plain \u0041"}"#));
    }
}
