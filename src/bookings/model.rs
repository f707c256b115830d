//! Bookings as stored and as shown, and the bodies of the booking routes.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;
use validator::{Validate, ValidationErrors};

use crate::events::model::{EventStatus, MAX_SEATS};
use crate::http::validation::Rules;
use crate::time::{self, Timestamp};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, sqlx::Type, ToSchema)]
#[sqlx(type_name = "booking_status", rename_all = "UPPERCASE")]
#[serde(rename_all = "UPPERCASE")]
pub enum BookingStatus {
    Confirmed,
    Cancelled,
    /// Seats held until `expiresAt` (see Holds in API.md).
    Pending,
    /// A hold that was not confirmed in time; its seats went back.
    Expired,
}

impl BookingStatus {
    pub const NAMES: [&'static str; 4] = ["CONFIRMED", "CANCELLED", "PENDING", "EXPIRED"];
}

/// A booking row.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Booking {
    #[schema(example = 12)]
    pub id: i32,
    #[schema(example = 3)]
    pub user_id: i32,
    #[schema(example = 7)]
    pub event_id: i32,
    #[schema(example = 9)]
    pub ticket_type_id: i32,
    #[schema(example = 2)]
    pub seat_count: i32,
    /// `seatCount` × the type's price at the moment of booking.
    #[schema(example = 50000)]
    pub total_price_cents: i64,
    pub status: BookingStatus,
    /// The booking's public handle.
    #[schema(example = "9b2f4c3e-8f1a-4d2b-a6c7-1e5d3f9a0b4c")]
    pub booking_reference: Uuid,
    /// Set only while the booking is PENDING: when its hold ends.
    #[serde(with = "time::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<Timestamp>,
    #[serde(with = "time")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[serde(with = "time")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
}

/// The columns of `Booking`, for every query that reads one (table alias `b`).
pub const BOOKING_COLUMNS: &str = "b.id, b.user_id, b.event_id, b.ticket_type_id, \
    b.seat_count, b.total_price_cents, b.status, b.booking_reference, b.expires_at, \
    b.created_at, b.updated_at";

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({ "eventId": 7, "seatCount": 2, "ticketTypeId": 9 }))]
pub struct CreateBookingRequest {
    #[schema(value_type = i32, minimum = 1)]
    pub event_id: Option<i64>,
    #[schema(value_type = i32, minimum = 1, maximum = 1000000)]
    pub seat_count: Option<i64>,
    /// Required when the event has several ticket types; else its only type.
    #[schema(value_type = Option<i32>, minimum = 1)]
    pub ticket_type_id: Option<i64>,
    /// Hold the seats (PENDING) until `expiresAt` instead of confirming at once.
    #[serde(default)]
    pub hold: Option<bool>,
}

impl Validate for CreateBookingRequest {
    fn validate(&self) -> Result<(), ValidationErrors> {
        let mut rules = Rules::default();
        match self.event_id {
            Some(id) => rules.range("eventId", id, 1, i64::from(i32::MAX)),
            None => rules.fail("eventId", "eventId should not be empty"),
        }
        match self.seat_count {
            Some(seats) => rules.range("seatCount", seats, 1, MAX_SEATS),
            None => rules.fail("seatCount", "seatCount should not be empty"),
        }
        if let Some(id) = self.ticket_type_id {
            rules.range("ticketTypeId", id, 1, i64::from(i32::MAX));
        }
        rules.finish()
    }
}

/// The event as POST /bookings shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BookedEvent {
    pub id: i32,
    pub title: String,
    #[serde(with = "time::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub event_date: Option<Timestamp>,
    pub organizer_id: i32,
}

/// The event as the booking list shows it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListedEvent {
    #[sqlx(rename = "e_id")]
    pub id: i32,
    #[sqlx(rename = "e_title")]
    pub title: String,
    #[serde(with = "time::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    #[sqlx(rename = "e_event_date")]
    pub event_date: Option<Timestamp>,
    #[sqlx(rename = "e_status")]
    pub status: EventStatus,
}

/// The event as a booking's detail shows it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DetailedEvent {
    #[sqlx(flatten)]
    #[serde(flatten)]
    pub event: ListedEvent,
    #[sqlx(rename = "e_organizer_id")]
    pub organizer_id: i32,
}

/// The booker as a booking's detail shows it (to the booker and the event's organizer).
#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct Booker {
    #[sqlx(rename = "u_id")]
    pub id: i32,
    #[sqlx(rename = "u_firstname")]
    pub firstname: String,
    #[sqlx(rename = "u_lastname")]
    pub lastname: String,
    #[sqlx(rename = "u_email")]
    pub email: String,
}

/// The event as a cancellation shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CancelledEvent {
    pub id: i32,
    pub title: String,
}

/// A booking with a summary of something attached (its event, its booker).
#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct BookingWithEvent<E> {
    #[sqlx(flatten)]
    #[serde(flatten)]
    pub booking: Booking,
    #[sqlx(flatten)]
    pub event: E,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct BookingDetail {
    #[sqlx(flatten)]
    #[serde(flatten)]
    pub booking: Booking,
    #[sqlx(flatten)]
    pub event: DetailedEvent,
    #[sqlx(flatten)]
    pub user: Booker,
}

/// The envelope of POST and DELETE /bookings.
#[derive(Debug, Serialize, ToSchema)]
pub struct BookingEnvelope<T> {
    #[schema(example = true)]
    pub success: bool,
    #[schema(example = "Booking confirmed successfully")]
    pub message: &'static str,
    pub data: T,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BookingListParams {
    /// Page number, from 1 (default 1).
    #[param(value_type = Option<i64>, minimum = 1)]
    pub page: Option<String>,
    /// Page size, 1 to 100 (default 10).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 100)]
    pub limit: Option<String>,
    /// Only bookings with this status.
    #[param(value_type = Option<BookingStatus>)]
    pub status: Option<String>,
}

/// The body of a 201 from POST /bookings (and of a confirm): "confirmed" or "held" after the
/// booking's status. Fresh answers and Idempotency-Key replays are both this exact text.
pub fn confirmed_body(booking: &BookingWithEvent<BookedEvent>) -> String {
    let message = match booking.booking.status {
        BookingStatus::Pending => "Seats held successfully",
        _ => "Booking confirmed successfully",
    };
    let envelope = BookingEnvelope {
        success: true,
        message,
        data: booking,
    };
    // Plain structs of strings, numbers and timestamps always serialize.
    serde_json::to_string(&envelope).unwrap_or_default()
}
