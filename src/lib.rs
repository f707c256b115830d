//! Event-booking REST API: the router, shared by the server binary, the seed program and tests.

pub mod auth;
pub mod bookings;
pub mod concurrency;
pub mod config;
pub mod db;
pub mod error;
pub mod events;
pub mod health;
pub mod http;
pub mod insight;
pub mod jobs;
pub mod limits;
pub mod live;
pub mod metrics;
pub mod notify;
pub mod openapi;
pub mod readiness;
pub mod state;
pub mod tickets;
pub mod time;

use std::future::Future;
use std::net::SocketAddr;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::{header, HeaderName, HeaderValue};
use axum::Router;
use tokio::net::TcpListener;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, Any, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_swagger_ui::SwaggerUi;

pub use state::AppState;

/// Bodies above this size are refused with 413 before they are parsed.
pub const BODY_LIMIT_BYTES: usize = 64 * 1024;
const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Every route, and the OpenAPI document generated from their annotations.
fn routes_and_document() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let (routes, mut document) = OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .merge(auth::router())
        .merge(events::router())
        .merge(bookings::router())
        .merge(tickets::router())
        .merge(insight::router())
        .merge(notify::router())
        .merge(live::router())
        .merge(health::router())
        .split_for_parts();
    openapi::add_common_responses(&mut document);
    (routes, document)
}

pub fn build_router(state: AppState) -> Router {
    let metered = state.config.metrics_enabled;
    if metered {
        metrics::handle();
    }
    let (routes, document) = routes_and_document();
    let cors = cors(state.config.cors_origins.as_deref());
    let middleware = ServiceBuilder::new()
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .layer(axum::middleware::from_fn_with_state(
            metered,
            metrics::track,
        ))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(request_span)
                .on_response(DefaultOnResponse::new().level(tracing::Level::INFO)),
        )
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(cors)
        .layer(security_header(header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .layer(security_header(header::X_FRAME_OPTIONS, "DENY"))
        .layer(security_header(header::REFERRER_POLICY, "no-referrer"))
        .layer(CatchPanicLayer::custom(http::fallback::panic_response))
        .layer(axum::middleware::from_fn(http::fallback::json_responses))
        .layer(axum::middleware::from_fn_with_state(
            state.ready.clone(),
            readiness::require_ready,
        ))
        // A request that takes this long gets 503 instead of hanging; write paths answer
        // before it fires (see `http::deadline`).
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            http::deadline::REQUEST_TIMEOUT,
        ))
        .layer(axum::middleware::from_fn(http::deadline::stamp))
        .layer(DefaultBodyLimit::max(BODY_LIMIT_BYTES));
    routes
        .merge(SwaggerUi::new("/api-docs").url("/api-docs/openapi.json", document))
        .fallback(http::fallback::not_found)
        .method_not_allowed_fallback(http::fallback::method_not_allowed)
        .with_state(state)
        .layer(middleware)
}

/// CORS for browser clients: any origin by default (the API uses bearer tokens, never
/// cookies), or only the origins listed in `CORS_ORIGINS`.
fn cors(origins: Option<&[String]>) -> CorsLayer {
    let layer = CorsLayer::new()
        .allow_methods(Any)
        .allow_headers(Any)
        .expose_headers([
            header::RETRY_AFTER,
            REQUEST_ID,
            HeaderName::from_static("idempotent-replayed"),
        ]);
    match origins {
        None => layer.allow_origin(Any),
        Some(list) => layer.allow_origin(AllowOrigin::list(
            list.iter()
                .filter_map(|origin| HeaderValue::from_str(origin).ok()),
        )),
    }
}

fn security_header(name: HeaderName, value: &'static str) -> SetResponseHeaderLayer<HeaderValue> {
    SetResponseHeaderLayer::overriding(name, HeaderValue::from_static(value))
}

/// One span per request, keyed on the route template (low cardinality) and the request id.
fn request_span(request: &Request) -> tracing::Span {
    let path = request
        .extensions()
        .get::<MatchedPath>()
        .map(MatchedPath::as_str)
        .unwrap_or("unmatched");
    let request_id = request
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    tracing::info_span!("request", method = %request.method(), path, request_id)
}

/// Serves `router` until `shutdown` resolves, then lets in-flight requests finish.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}
