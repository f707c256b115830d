//! Prometheus metrics at GET /metrics: requests by method, matched route and status (with a
//! duration histogram), bookings by outcome, booking group sizes, and the database pool. Route
//! labels are route templates (`/events/{id}`), and every request that matches no route is
//! counted under the one label `unmatched`, so no path a client invents becomes a label. No
//! user data in labels.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::error::AppError;
use crate::state::AppState;

const DURATION_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];
const GROUP_BUCKETS: [f64; 9] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];

/// The process-wide recorder (one per process, however many routers it builds).
pub fn handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full("http_request_duration_seconds".into()),
                    &DURATION_BUCKETS,
                )
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full("booking_group_size".into()),
                        &GROUP_BUCKETS,
                    )
                })
                .unwrap_or_else(|_| PrometheusBuilder::new());
            match builder.install_recorder() {
                Ok(handle) => handle,
                // Another recorder is installed (an embedding program's): keep ours local.
                Err(_) => PrometheusBuilder::new().build_recorder().handle(),
            }
        })
        .clone()
}

/// Middleware: counts and times every request under its route template (when `on`:
/// `METRICS_ENABLED`).
pub async fn track(State(on): State<bool>, request: Request, next: Next) -> Response {
    if !on {
        return next.run(request).await;
    }
    let started = Instant::now();
    let method = request.method().as_str().to_owned();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(request).await;
    let labels = [
        ("method", method),
        ("route", route),
        ("status", response.status().as_u16().to_string()),
    ];
    metrics::counter!("http_requests_total", &labels).increment(1);
    metrics::histogram!("http_request_duration_seconds", &labels)
        .record(started.elapsed().as_secs_f64());
    response
}

/// A booking request's outcome: `confirmed`, `held`, or a refusal by its reason.
pub fn booking_outcome(outcome: &Result<bool, &AppError>) {
    let (outcome, reason) = match outcome {
        Ok(true) => ("held", "none"),
        Ok(false) => ("confirmed", "none"),
        Err(AppError::Client { status, message }) if status.as_u16() == 409 => {
            if message.contains("high demand") {
                ("high_demand", "lost_race")
            } else {
                ("refused", "not_enough_seats")
            }
        }
        Err(AppError::Client { status, .. }) => (
            "refused",
            match status.as_u16() {
                400 => "rules",
                401 => "unauthorized",
                404 => "not_found",
                _ => "other",
            },
        ),
        Err(AppError::OutcomeUnknown(_)) => ("unknown", "commit_unanswered"),
        Err(_) => ("unavailable", "server"),
    };
    metrics::counter!("bookings_total", "outcome" => outcome, "reason" => reason).increment(1);
}

pub fn group_size(size: usize) {
    metrics::histogram!("booking_group_size").record(size as f64);
}

/// Prometheus metrics
///
/// Requests by method, route template and status, with durations; bookings by outcome;
/// booking group sizes; database pool connections. Open to anyone: restrict it at the proxy.
#[utoipa::path(
    get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text exposition format", content_type = "text/plain"))
)]
pub async fn metrics(State(state): State<AppState>) -> Response {
    if !state.config.metrics_enabled {
        return crate::error::error_response(
            axum::http::StatusCode::NOT_FOUND,
            "Metrics are disabled (METRICS_ENABLED=false)",
        );
    }
    let idle = state.db.num_idle() as f64;
    let open = f64::from(state.db.size());
    metrics::gauge!("db_pool_connections", "state" => "idle").set(idle);
    metrics::gauge!("db_pool_connections", "state" => "in_use").set((open - idle).max(0.0));
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        handle().render(),
    )
        .into_response()
}
