//! Bookings: book, list, view and cancel seats, with optimistic locking.
//!
//! Every seat write goes handler → `lanes` (a bounded queue per event) → `committers` (the
//! groups of many events in one transaction) → `group` (deadlines and the commit point) →
//! `attempt` (one attempt: its read is `snapshot`, each event's rules `rules` applied by
//! `plan`, its write statement `writes`); `idempotency` records each key's outcome inside that same
//! transaction; `expiry` releases due holds; `recent` remembers the events of bookings made here.

mod attempt;
mod committers;
pub mod expiry;
mod group;
mod handlers;
pub mod idempotency;
pub mod job;
pub mod lanes;
pub mod model;
mod plan;
mod recent;
mod rules;
pub mod service;
mod snapshot;
mod writes;

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use lanes::BookingLanes;

use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(handlers::create_booking, handlers::list_bookings))
        .routes(routes!(handlers::get_booking, handlers::cancel_booking))
        .routes(routes!(handlers::confirm_booking))
}
