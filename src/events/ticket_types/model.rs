//! Ticket types as stored and shown, and the bodies of their routes.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use validator::{Validate, ValidationErrors};

use crate::events::model::MAX_SEATS;
use crate::http::validation::{nullable, Rules};

pub const MAX_TYPES: usize = 20;
pub const MAX_NAME: usize = 100;
pub const MAX_PRICE_CENTS: i64 = 100_000_000;

/// One kind of seat of an event, with its own price and its own seats.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TicketType {
    #[schema(example = 9)]
    pub id: i32,
    #[schema(example = "VIP")]
    pub name: String,
    #[schema(example = 25000)]
    pub price_cents: i32,
    #[schema(example = 20)]
    pub total_seats: i32,
    #[schema(example = 17)]
    pub available_seats: i32,
}

/// The columns of `TicketType` (table alias `t`).
pub const TICKET_TYPE_COLUMNS: &str =
    "t.id, t.name, t.price_cents, t.total_seats, t.available_seats";

/// A new ticket type: an entry of `ticketTypes` in POST /events, or the body of
/// POST /events/{id}/ticket-types.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({ "name": "VIP", "priceCents": 25000, "totalSeats": 20 }))]
pub struct NewTicketType {
    #[schema(value_type = String, min_length = 1, max_length = 100)]
    pub name: Option<String>,
    /// Default 0.
    #[schema(value_type = Option<i64>, minimum = 0, maximum = 100000000)]
    pub price_cents: Option<i64>,
    #[schema(value_type = i64, minimum = 1, maximum = 1000000)]
    pub total_seats: Option<i64>,
}

impl NewTicketType {
    /// The rules of one entry; `prefix` names where it is (`ticketTypes[2].`, or nothing).
    pub fn check(&self, rules: &mut Rules, prefix: &str) {
        let key = if prefix.is_empty() {
            "name"
        } else {
            "ticketTypes"
        };
        rules.text_at(
            key,
            &format!("{prefix}name"),
            self.name.as_deref(),
            MAX_NAME,
        );
        if let Some(price) = self.price_cents {
            let key = if prefix.is_empty() {
                "priceCents"
            } else {
                "ticketTypes"
            };
            rules.range_at(
                key,
                &format!("{prefix}priceCents"),
                price,
                0,
                MAX_PRICE_CENTS,
            );
        }
        let key = if prefix.is_empty() {
            "totalSeats"
        } else {
            "ticketTypes"
        };
        match self.total_seats {
            Some(seats) => rules.range_at(key, &format!("{prefix}totalSeats"), seats, 1, MAX_SEATS),
            None => rules.fail(key, format!("{prefix}totalSeats should not be empty")),
        }
    }

    /// The entry as it is stored, once validated.
    pub fn values(&self) -> (String, i32, i32) {
        (
            self.name.as_deref().unwrap_or_default().trim().to_string(),
            self.price_cents
                .and_then(|p| i32::try_from(p).ok())
                .unwrap_or(0),
            self.total_seats
                .and_then(|s| i32::try_from(s).ok())
                .unwrap_or(0),
        )
    }
}

impl Validate for NewTicketType {
    fn validate(&self) -> Result<(), ValidationErrors> {
        let mut rules = Rules::default();
        self.check(&mut rules, "");
        rules.finish()
    }
}

/// A partial update of a ticket type: absent fields stay as they are.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({ "priceCents": 27500, "totalSeats": 25 }))]
pub struct UpdateTicketType {
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, min_length = 1, max_length = 100)]
    pub name: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<i64>, minimum = 0, maximum = 100000000)]
    pub price_cents: Option<Option<i64>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<i64>, minimum = 1, maximum = 1000000)]
    pub total_seats: Option<Option<i64>>,
}

impl Validate for UpdateTicketType {
    fn validate(&self) -> Result<(), ValidationErrors> {
        let mut rules = Rules::default();
        for (field, is_null) in [
            ("name", matches!(self.name, Some(None))),
            ("priceCents", matches!(self.price_cents, Some(None))),
            ("totalSeats", matches!(self.total_seats, Some(None))),
        ] {
            if is_null {
                rules.fail(field, format!("{field} must not be null"));
            }
        }
        if let Some(Some(name)) = &self.name {
            rules.text("name", Some(name), MAX_NAME);
        }
        if let Some(Some(price)) = self.price_cents {
            rules.range("priceCents", price, 0, MAX_PRICE_CENTS);
        }
        if let Some(Some(seats)) = self.total_seats {
            rules.range("totalSeats", seats, 1, MAX_SEATS);
        }
        rules.finish()
    }
}

impl UpdateTicketType {
    /// The change, once validated.
    pub fn change(&self) -> TypeChange {
        let field = |value: &Option<Option<i64>>| {
            value.flatten().and_then(|value| i32::try_from(value).ok())
        };
        TypeChange {
            name: self
                .name
                .clone()
                .flatten()
                .map(|name| name.trim().to_string()),
            price_cents: field(&self.price_cents),
            total_seats: field(&self.total_seats),
        }
    }
}

/// A validated partial change of a ticket type: `None` keeps the field as it is.
#[derive(Debug, Clone, Default)]
pub struct TypeChange {
    pub name: Option<String>,
    pub price_cents: Option<i32>,
    pub total_seats: Option<i32>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TicketTypeDeleted {
    #[schema(example = "Ticket type deleted successfully")]
    pub message: &'static str,
    #[schema(example = 9)]
    pub ticket_type_id: i32,
}
