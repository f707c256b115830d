//! Events as stored and as shown, and the bodies of the event routes.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use validator::{Validate, ValidationErrors};

use super::ticket_types::model::{NewTicketType, TicketType};
use crate::http::validation::{nullable, Rules};
use crate::time::{self, Timestamp};

pub const MAX_TITLE: usize = 200;
pub const MAX_DESCRIPTION: usize = 5_000;
pub const MAX_VENUE: usize = 200;
pub const MAX_CITY: usize = 100;
/// The most seats of one event (the sum over its ticket types) and of one booking.
pub const MAX_SEATS: i64 = 1_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, sqlx::Type, ToSchema)]
#[sqlx(type_name = "event_status", rename_all = "UPPERCASE")]
#[serde(rename_all = "UPPERCASE")]
pub enum EventStatus {
    Draft,
    Published,
    Cancelled,
    Completed,
}

impl EventStatus {
    pub const NAMES: [&'static str; 4] = ["DRAFT", "PUBLISHED", "CANCELLED", "COMPLETED"];

    pub fn parse(raw: &str) -> Option<Self> {
        serde_json::from_value(serde_json::Value::String(raw.to_string())).ok()
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Draft => "DRAFT",
            Self::Published => "PUBLISHED",
            Self::Cancelled => "CANCELLED",
            Self::Completed => "COMPLETED",
        }
    }
}

/// An event row.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    #[schema(example = 7)]
    pub id: i32,
    #[schema(example = "RustConf 2026")]
    pub title: String,
    #[schema(example = "Two days of talks")]
    pub description: Option<String>,
    #[schema(example = "Kongresshaus")]
    pub venue: Option<String>,
    #[schema(example = "Zürich")]
    pub city: Option<String>,
    /// ISO 4217, three upper-case letters.
    #[schema(example = "USD")]
    pub currency: String,
    /// The sum over the event's ticket types.
    #[schema(example = 100)]
    pub total_seats: i32,
    /// The sum over the event's ticket types.
    #[schema(example = 97)]
    pub available_seats: i32,
    pub status: EventStatus,
    /// Increases by one on every change to the event.
    #[schema(example = 3)]
    pub version: i64,
    #[serde(with = "time::option")]
    #[schema(value_type = Option<String>, format = DateTime, example = "2026-12-31T18:00:00.000Z")]
    pub event_date: Option<Timestamp>,
    #[schema(example = 1)]
    pub organizer_id: i32,
    #[serde(with = "time")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[serde(with = "time")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
}

/// The organizer as the public sees it (no email).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OrganizerSummary {
    #[schema(example = 1)]
    pub id: i32,
    #[schema(example = "Ada")]
    pub firstname: String,
    #[schema(example = "Lovelace")]
    pub lastname: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BookingCount {
    /// Booking rows of the event, any status.
    #[schema(example = 3)]
    pub bookings: i64,
}

/// An event in the public view: with its ticket types, its organizer and its number of
/// bookings.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EventView {
    #[serde(flatten)]
    pub event: Event,
    /// In `id` order.
    #[serde(rename = "ticketTypes")]
    pub ticket_types: Vec<TicketType>,
    pub organizer: OrganizerSummary,
    #[serde(rename = "_count")]
    pub count: BookingCount,
}

/// The row behind `EventView` (see `service::VIEW_SELECT`).
#[derive(sqlx::FromRow)]
pub struct EventViewRow {
    #[sqlx(flatten)]
    pub event: Event,
    pub ticket_types: sqlx::types::Json<Vec<TicketType>>,
    pub organizer_firstname: String,
    pub organizer_lastname: String,
    pub booking_count: i64,
}

impl From<EventViewRow> for EventView {
    fn from(row: EventViewRow) -> Self {
        Self {
            organizer: OrganizerSummary {
                id: row.event.organizer_id,
                firstname: row.organizer_firstname,
                lastname: row.organizer_lastname,
            },
            count: BookingCount {
                bookings: row.booking_count,
            },
            ticket_types: row.ticket_types.0,
            event: row.event,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({
    "title": "RustConf 2026", "description": "Two days of talks", "venue": "Kongresshaus",
    "city": "Zürich", "currency": "CHF",
    "ticketTypes": [
        { "name": "VIP", "priceCents": 25000, "totalSeats": 20 },
        { "name": "General", "priceCents": 9000, "totalSeats": 80 }
    ],
    "status": "PUBLISHED", "eventDate": "2026-12-31T18:00:00.000Z"
}))]
pub struct CreateEventRequest {
    #[schema(value_type = String, min_length = 1, max_length = 200)]
    pub title: Option<String>,
    #[schema(max_length = 5000)]
    pub description: Option<String>,
    #[schema(max_length = 200)]
    pub venue: Option<String>,
    #[schema(max_length = 100)]
    pub city: Option<String>,
    /// ISO 4217, three upper-case letters; default `USD`.
    #[schema(value_type = Option<String>, pattern = "^[A-Z]{3}$", example = "USD")]
    pub currency: Option<String>,
    /// Required without `ticketTypes`; with them optional, and if given equal to their sum.
    #[schema(value_type = Option<i64>, minimum = 1, maximum = 1000000)]
    pub total_seats: Option<i64>,
    /// 1 to 20 types with unique names. Without it, the event gets one type "General" at
    /// price 0 with all its seats.
    pub ticket_types: Option<Vec<NewTicketType>>,
    /// Default `DRAFT`.
    #[schema(value_type = Option<EventStatus>)]
    pub status: Option<String>,
    /// ISO 8601 with an offset; past dates are allowed.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub event_date: Option<String>,
}

impl Validate for CreateEventRequest {
    fn validate(&self) -> Result<(), ValidationErrors> {
        let mut rules = Rules::default();
        rules.text("title", self.title.as_deref(), MAX_TITLE);
        if let Some(description) = &self.description {
            rules.max_chars("description", description, MAX_DESCRIPTION);
        }
        check_place(&mut rules, self.venue.as_deref(), self.city.as_deref());
        check_currency(&mut rules, self.currency.as_deref());
        match (self.total_seats, &self.ticket_types) {
            (Some(seats), _) => rules.range("totalSeats", seats, 1, MAX_SEATS),
            (None, None) => rules.fail("totalSeats", "totalSeats should not be empty"),
            (None, Some(_)) => {}
        }
        if let Some(types) = &self.ticket_types {
            if types.is_empty() {
                rules.fail(
                    "ticketTypes",
                    "ticketTypes must contain at least 1 elements",
                );
            }
            for (n, entry) in types.iter().enumerate() {
                entry.check(&mut rules, &format!("ticketTypes[{n}]."));
            }
        }
        check_status(&mut rules, self.status.as_deref());
        check_date(&mut rules, self.event_date.as_deref());
        rules.finish()
    }
}

/// A partial update: absent fields stay as they are; `description: null` clears it.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({ "totalSeats": 150, "status": "PUBLISHED" }))]
pub struct UpdateEventRequest {
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, max_length = 200)]
    pub title: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, max_length = 5000)]
    pub description: Option<Option<String>>,
    /// `null` clears it.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, max_length = 200)]
    pub venue: Option<Option<String>>,
    /// `null` clears it.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, max_length = 100)]
    pub city: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, pattern = "^[A-Z]{3}$")]
    pub currency: Option<Option<String>>,
    /// Resizes the event's only ticket type; refused when it has several.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<i64>, minimum = 1, maximum = 1000000)]
    pub total_seats: Option<Option<i64>>,
    /// Not accepted here: ticket types change through `/events/{id}/ticket-types`.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<Object>)]
    pub ticket_types: Option<Option<serde_json::Value>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<EventStatus>)]
    pub status: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub event_date: Option<Option<String>>,
}

impl Validate for UpdateEventRequest {
    fn validate(&self) -> Result<(), ValidationErrors> {
        let mut rules = Rules::default();
        let mut not_null = |field: &'static str, is_null: bool| {
            if is_null {
                rules.fail(field, format!("{field} must not be null"));
            }
        };
        not_null("title", matches!(self.title, Some(None)));
        not_null("totalSeats", matches!(self.total_seats, Some(None)));
        not_null("currency", matches!(self.currency, Some(None)));
        not_null("status", matches!(self.status, Some(None)));
        not_null("eventDate", matches!(self.event_date, Some(None)));
        if let Some(Some(title)) = &self.title {
            rules.text("title", Some(title), MAX_TITLE);
        }
        if let Some(Some(description)) = &self.description {
            rules.max_chars("description", description, MAX_DESCRIPTION);
        }
        if let Some(Some(seats)) = self.total_seats {
            rules.range("totalSeats", seats, 1, MAX_SEATS);
        }
        check_place(
            &mut rules,
            self.venue.clone().flatten().as_deref(),
            self.city.clone().flatten().as_deref(),
        );
        check_currency(&mut rules, self.currency.clone().flatten().as_deref());
        check_status(&mut rules, self.status.clone().flatten().as_deref());
        check_date(&mut rules, self.event_date.clone().flatten().as_deref());
        rules.finish()
    }
}

fn check_place(rules: &mut Rules, venue: Option<&str>, city: Option<&str>) {
    if let Some(venue) = venue {
        rules.max_chars("venue", venue, MAX_VENUE);
    }
    if let Some(city) = city {
        rules.max_chars("city", city, MAX_CITY);
    }
}

fn check_currency(rules: &mut Rules, currency: Option<&str>) {
    if currency.is_some_and(|c| c.len() != 3 || !c.bytes().all(|b| b.is_ascii_uppercase())) {
        rules.fail(
            "currency",
            "currency must be an ISO 4217 code of three upper-case letters",
        );
    }
}

fn check_status(rules: &mut Rules, status: Option<&str>) {
    if status.is_some_and(|s| EventStatus::parse(s).is_none()) {
        rules.fail(
            "status",
            format!(
                "status must be one of the following values: {}",
                EventStatus::NAMES.join(", ")
            ),
        );
    }
}

fn check_date(rules: &mut Rules, date: Option<&str>) {
    if date.is_some_and(|d| time::parse(d).is_none()) {
        rules.fail(
            "eventDate",
            "eventDate must be a valid ISO 8601 date string with a time zone",
        );
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct EventListParams {
    /// Page number, from 1 (default 1).
    #[param(value_type = Option<i64>, minimum = 1)]
    pub page: Option<String>,
    /// Page size, 1 to 100 (default 10).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 100)]
    pub limit: Option<String>,
    /// Only events with this status.
    #[param(value_type = Option<EventStatus>)]
    pub status: Option<String>,
    /// Only events of this organizer.
    #[param(value_type = Option<i64>)]
    pub organizer_id: Option<String>,
    /// Full-text search (1–200 characters) over title, description, venue and city: every
    /// word must match, stemmed, case- and accent-insensitive; a typo falls back to titles
    /// similar to the query.
    pub q: Option<String>,
    /// `eventDate` on or after (ISO 8601 date or date-time; a date means its start, UTC).
    #[param(value_type = Option<String>)]
    pub from: Option<String>,
    /// `eventDate` on or before (a date means its end, UTC).
    #[param(value_type = Option<String>)]
    pub to: Option<String>,
    /// `true`: only events whose `eventDate` is now or later.
    #[param(value_type = Option<bool>)]
    pub upcoming: Option<String>,
    /// Case-insensitive exact city.
    pub city: Option<String>,
    /// At least this many seats available (1–1,000,000).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 1000000)]
    pub min_seats: Option<String>,
    /// `-createdAt` (default without `q`), `relevance` (default with `q`), `eventDate`,
    /// `-eventDate`, `-availableSeats`.
    pub sort: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MyEventsParams {
    /// Page number, from 1 (default 1).
    #[param(value_type = Option<i64>, minimum = 1)]
    pub page: Option<String>,
    /// Page size, 1 to 100 (default 10).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 100)]
    pub limit: Option<String>,
    /// Only events with this status.
    #[param(value_type = Option<EventStatus>)]
    pub status: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventDeleted {
    #[schema(example = "Event deleted successfully")]
    pub message: &'static str,
    #[schema(example = 7)]
    pub event_id: i32,
}
