//! A request's time budget, measured from when it entered the router (inside the timeout
//! layer), so every step of a write can tell how long it may still take.
//!
//! The timeout layer answers 503 after `REQUEST_TIMEOUT`, without knowing what was committed.
//! Write paths therefore finish first: work that has not reached COMMIT by `commit_by` is
//! dropped unwritten, and every write path has answered by `answer_by`.

use std::time::Duration;

use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::Response;
use tokio::time::Instant;

/// No request takes this long unless the database has stopped answering.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Work that has not been sent to COMMIT this long after the request arrived is dropped.
const COMMIT_BY: Duration = Duration::from_secs(6);
/// Every write path answers by then, before the timeout layer would.
const ANSWER_BY: Duration = Duration::from_millis(9_000);

/// When the request arrived.
#[derive(Debug, Clone, Copy)]
pub struct RequestStart(pub Instant);

impl RequestStart {
    pub fn now() -> Self {
        Self(Instant::now())
    }

    /// The latest moment to send COMMIT; later, the work is rolled back and answered 503.
    pub fn commit_by(&self) -> Instant {
        self.0 + COMMIT_BY
    }

    /// The latest moment to answer.
    pub fn answer_by(&self) -> Instant {
        self.0 + ANSWER_BY
    }

    /// `answer_by` on the wall clock, for leases other processes read.
    pub fn answer_by_utc(&self) -> chrono::DateTime<chrono::Utc> {
        let left = self.answer_by().saturating_duration_since(Instant::now());
        chrono::Utc::now() + chrono::Duration::from_std(left).unwrap_or_default()
    }
}

/// Middleware: stamps the request with its arrival time.
pub async fn stamp(mut request: Request, next: Next) -> Response {
    request.extensions_mut().insert(RequestStart::now());
    next.run(request).await
}

impl<S: Send + Sync> FromRequestParts<S> for RequestStart {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<RequestStart>()
            .copied()
            .unwrap_or_else(RequestStart::now))
    }
}
