//! Notifications (API.md, "Notifications"): organizers' webhooks and emails to the booking's
//! user, for every booking change. The statement that makes a group's changes records them in
//! the outbox (one batch row, `outbox::batch_sql`); the courier of any instance expands batches
//! into notifications (`expand`) and delivers those, with retries, so a crash or restart delays
//! a notification but never loses it.

mod address;
pub mod courier;
mod email;
mod expand;
mod handlers;
pub mod model;
pub mod outbox;
mod sign;
mod webhook_call;
pub mod webhooks;

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

pub use courier::Courier;

/// An error and its causes on one line, cut to 500 characters: what a failed attempt records
/// (the delivery log shows it to the webhook's organizer).
fn error_chain(head: String, error: &dyn std::error::Error) -> String {
    let mut text = head;
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text.chars().take(500).collect()
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(handlers::create_webhook, handlers::list_webhooks))
        .routes(routes!(handlers::delete_webhook))
        .routes(routes!(handlers::list_deliveries))
}
