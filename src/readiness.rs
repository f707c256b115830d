//! Whether the schema is in place. A server whose external database is unreachable at start-up
//! still starts: it answers 503 (and /health "down") until the database is back and the
//! migrations have run, instead of exiting and leaving the restart to someone else.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;
use sqlx::PgPool;

use crate::error::error_response;

#[derive(Clone, Debug)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    pub fn ready() -> Self {
        Self(Arc::new(AtomicBool::new(true)))
    }

    pub fn waiting() -> Self {
        Self(Arc::new(AtomicBool::new(false)))
    }

    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }

    /// Runs the migrations as soon as the database answers, then opens the doors.
    pub async fn migrate_when_reachable(self, pool: PgPool) {
        let mut wait = Duration::from_millis(500);
        loop {
            match crate::db::migrate(&pool).await {
                Ok(()) => {
                    tracing::info!("database reachable and migrated: serving requests");
                    self.0.store(true, Ordering::Release);
                    return;
                }
                Err(error) => tracing::warn!("database not ready yet: {error:#}"),
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(5));
        }
    }
}

/// Answers 503 for every route but /health and the API docs until the schema is in place.
pub async fn require_ready(
    State(ready): State<Readiness>,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path();
    if ready.is_ready() || path == "/health" || path == "/metrics" || path.starts_with("/api-docs")
    {
        return next.run(request).await;
    }
    error_response(
        StatusCode::SERVICE_UNAVAILABLE,
        "Service temporarily unavailable",
    )
}
