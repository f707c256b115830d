//! Bookings: book, list, view and cancel seats, with optimistic locking.

mod handlers;
pub mod idempotency;
pub mod lanes;
pub mod model;
pub mod service;

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use lanes::BookingLanes;

use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(handlers::create_booking, handlers::list_bookings))
        .routes(routes!(handlers::get_booking, handlers::cancel_booking))
}
