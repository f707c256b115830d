//! Events: organizer CRUD, the public listing, version-checked seat edits, and the events'
//! ticket types.

pub mod cache;
mod handlers;
pub mod model;
mod public;
pub mod search;
pub mod service;
pub mod ticket_types;

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(handlers::list_events, handlers::create_event))
        .routes(routes!(handlers::my_events))
        .routes(routes!(
            handlers::get_event,
            handlers::update_event,
            handlers::delete_event
        ))
        .merge(ticket_types::router())
}
