//! GET /health: is the server up, and can it reach PostgreSQL?

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

const PING_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok` or `error`.
    #[schema(example = "ok")]
    pub status: &'static str,
    /// `up` or `down`.
    #[schema(example = "up")]
    pub database: &'static str,
    /// With `DATABASE_READ_URL` only: `up`, or `down` (public reads then use the primary).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "up")]
    pub replica: Option<&'static str>,
}

/// Health check
///
/// Pings the database. 503 with `"database": "down"` when PostgreSQL cannot be reached. With a
/// read replica configured, `replica` says whether it answers (a replica that is down is no
/// outage: reads fall back to the primary).
#[utoipa::path(
    get, path = "/health", tag = "health",
    responses(
        (status = 200, description = "Server and database are up", body = Health,
            example = json!({ "status": "ok", "database": "up" })),
        (status = 503, description = "The database is unreachable", body = Health,
            example = json!({ "status": "error", "database": "down" })),
    )
)]
pub async fn health(State(state): State<AppState>) -> (StatusCode, Json<Health>) {
    if !state.ready.is_ready() {
        return down("the schema is not migrated yet");
    }
    // Bounded: a database that accepts connections but never answers is down too.
    let ping = tokio::time::timeout(PING_TIMEOUT, sqlx::query("SELECT 1").execute(&state.db));
    match ping
        .await
        .map_err(|_| "no answer within 2 s".to_string())
        .and_then(|r| r.map_err(|e| e.to_string()))
    {
        Ok(_) => (
            StatusCode::OK,
            Json(Health {
                status: "ok",
                database: "up",
                replica: replica(&state).await,
            }),
        ),
        Err(error) => down(&error),
    }
}

async fn replica(state: &AppState) -> Option<&'static str> {
    let up = state.reads.replica_up().await?;
    Some(if up { "up" } else { "down" })
}

fn down(why: &str) -> (StatusCode, Json<Health>) {
    tracing::warn!(why, "health check: database down");
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(Health {
            status: "error",
            database: "down",
            replica: None,
        }),
    )
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(health))
        .routes(routes!(crate::metrics::metrics))
}
