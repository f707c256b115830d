//! Bookings: book, list, view and cancel seats, with optimistic locking.
//!
//! A booking goes handler → `lanes` (a bounded queue per event) → `group` (deadlines and the
//! commit point) → `book` (the SQL of one attempt); `idempotency` records each key's outcome
//! inside that same transaction.

mod book;
mod group;
mod handlers;
pub mod idempotency;
pub mod job;
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
