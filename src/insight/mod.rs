//! Organizer insight: how an event is selling and who is coming.

pub mod cache;
mod handlers;
pub mod model;
pub mod service;

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(handlers::stats))
        .routes(routes!(handlers::attendees))
}
