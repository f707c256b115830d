//! Webhooks and deliveries on the wire, and the four kinds of booking change they announce.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;
use validator::{Validate, ValidationErrors};

use super::address;
use crate::http::validation::Rules;
use crate::time::Timestamp;

/// The booking changes a notification announces, as named on the wire.
pub const TYPES: [&str; 4] = [
    "booking.confirmed",
    "booking.held",
    "booking.cancelled",
    "booking.expired",
];

/// `POST /webhooks`. Unknown fields are ignored.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({ "url": "https://example.com/hooks/bookings", "events": ["booking.confirmed", "booking.cancelled"] }))]
pub struct NewWebhook {
    /// http(s), at most 2,000 characters, a public address.
    #[schema(example = "https://example.com/hooks/bookings", max_length = 2000)]
    pub url: Option<String>,
    /// Which changes to receive: a non-empty subset of the four types; all when absent.
    pub events: Option<Vec<String>>,
}

pub const MAX_URL: usize = 2000;

impl Validate for NewWebhook {
    fn validate(&self) -> Result<(), ValidationErrors> {
        let mut rules = Rules::default();
        rules.text("url", self.url.as_deref(), MAX_URL);
        if let Some(url) = self.url.as_deref().filter(|u| !u.trim().is_empty()) {
            if address::parse(url).is_none() {
                rules.fail("url", "url must be a URL address");
            }
        }
        if let Some(events) = &self.events {
            if events.is_empty() {
                rules.fail("events", "events should not be empty");
            } else if events.iter().any(|e| !TYPES.contains(&e.as_str())) {
                rules.fail(
                    "events",
                    format!(
                        "each value in events must be one of the following values: {}",
                        TYPES.join(", ")
                    ),
                );
            }
        }
        rules.finish()
    }
}

impl NewWebhook {
    /// The chosen types in the contract's order, each once; all four when none were named.
    pub fn types(&self) -> Vec<String> {
        TYPES
            .iter()
            .filter(|t| {
                self.events
                    .as_ref()
                    .is_none_or(|e| e.iter().any(|x| x == *t))
            })
            .map(|t| t.to_string())
            .collect()
    }
}

/// A webhook as its organizer sees it, with the secret only in the answer that created it.
#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct Webhook {
    #[schema(example = 3)]
    pub id: i32,
    #[schema(example = "https://example.com/hooks/bookings")]
    pub url: String,
    #[schema(example = json!(["booking.confirmed", "booking.held", "booking.cancelled", "booking.expired"]))]
    pub events: Vec<String>,
    /// `whsec_` + base64 of the signing key. Only in the 201 of `POST /webhooks`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")]
    pub secret: Option<String>,
    #[serde(with = "crate::time")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookDeleted {
    #[schema(example = "Webhook deleted successfully")]
    pub message: &'static str,
    #[schema(example = 3)]
    pub webhook_id: i32,
}

/// One notification to one webhook: every attempt at it, summed up.
#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    /// Also the `webhook-id` header of every attempt.
    pub id: Uuid,
    #[schema(example = "booking.confirmed")]
    #[sqlx(rename = "type")]
    pub r#type: String,
    /// PENDING, DELIVERED or FAILED.
    #[schema(example = "DELIVERED")]
    pub status: String,
    #[schema(example = 1)]
    pub attempts: i32,
    #[schema(example = 200)]
    pub last_status_code: Option<i32>,
    pub last_error: Option<String>,
    #[serde(with = "crate::time::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub next_attempt_at: Option<Timestamp>,
    #[serde(with = "crate::time")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[serde(with = "crate::time::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub delivered_at: Option<Timestamp>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// Page number, from 1.
    #[param(value_type = Option<i64>, minimum = 1)]
    pub page: Option<String>,
    /// 1 to 100; default 10.
    #[param(value_type = Option<i64>, minimum = 1, maximum = 100)]
    pub limit: Option<String>,
}
