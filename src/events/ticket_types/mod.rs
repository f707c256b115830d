//! Ticket types: the kinds of seats of an event ("VIP", "General"), each with a price and
//! seats of its own; the event's totals are their sums.

mod handlers;
pub mod model;
pub mod service;

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(handlers::add_ticket_type))
        .routes(routes!(
            handlers::update_ticket_type,
            handlers::delete_ticket_type
        ))
}
