//! Responses for requests no handler answered: unknown routes, wrong methods, panics, timeouts.

use std::any::Any;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::Response;

use crate::error::error_response;

pub async fn not_found(method: Method, uri: Uri) -> Response {
    error_response(
        StatusCode::NOT_FOUND,
        format!("Cannot {method} {}", uri.path()),
    )
}

pub async fn method_not_allowed(method: Method, uri: Uri) -> Response {
    error_response(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("Method {method} is not allowed on {}", uri.path()),
    )
}

/// For `CatchPanicLayer`: a panic becomes the contract's 500, and the panic text stays in the log.
pub fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response<Body> {
    let detail = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("unknown panic");
    tracing::error!(panic = detail, "handler panicked");
    error_response(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error")
}

/// Every response leaves in the contract's form: JSON bodies say `charset=utf-8`, and an error
/// produced outside our handlers (a timeout, a layer's own rejection) without a JSON body is
/// rewritten into the contract's error body.
pub async fn json_responses(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if is_json {
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, JSON_UTF8);
        return response;
    }
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let message = match status {
        StatusCode::SERVICE_UNAVAILABLE => "Service temporarily unavailable".to_string(),
        StatusCode::PAYLOAD_TOO_LARGE => "Request body is too large".to_string(),
        other => other.canonical_reason().unwrap_or("Error").to_string(),
    };
    let mut replaced = error_response(status, message);
    replaced
        .headers_mut()
        .insert(header::CONTENT_TYPE, JSON_UTF8);
    for name in [header::RETRY_AFTER, header::ALLOW] {
        if let Some(value) = response.headers().get(&name) {
            replaced.headers_mut().insert(name, value.clone());
        }
    }
    replaced
}

const JSON_UTF8: HeaderValue = HeaderValue::from_static("application/json; charset=utf-8");
