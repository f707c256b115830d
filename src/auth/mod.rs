//! Accounts and tokens: register, login, me; JWT; password hashing; the caller extractors.

pub mod extract;
mod handlers;
pub mod jwt;
pub mod model;
pub mod password;
pub mod service;

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use extract::{invalid_token, AuthUser, MaybeAuthUser, Organizer, TokenUser};
pub use model::Role;

use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(handlers::register))
        .routes(routes!(handlers::login))
        .routes(routes!(handlers::me))
}
