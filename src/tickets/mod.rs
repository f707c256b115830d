//! Tickets and check-in: a signed code per seat of a confirmed booking (`keys`), derived on
//! demand (`service`), shown as a list, a QR code and a PDF (`documents`), and let in at the
//! door exactly once (`checkin`, with scans that arrive together sharing a statement: `door`).

mod checkin;
mod documents;
mod door;
mod handlers;
pub mod keys;
pub mod model;
pub mod render;
pub mod service;

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use door::Door;
pub use keys::TicketKeys;

use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(handlers::jwks))
        .routes(routes!(handlers::list_tickets))
        .routes(routes!(documents::qr))
        .routes(routes!(documents::pdf))
        .routes(routes!(handlers::check_in))
        .routes(routes!(handlers::revoked_tickets))
}
