//! Live availability: the change feed (`feed`), reads shared by all streams (`shared`), their
//! paced delivery to thousands of streams (`fanout`), the event streams (`streams`) and the
//! seat board page (`board`).

mod board;
mod fanout;
pub mod feed;
pub mod shared;
mod streams;

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use feed::Live;

use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(board::board))
        .routes(routes!(streams::all_live))
        .routes(routes!(streams::event_live))
}
