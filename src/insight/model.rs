//! What organizers see of their events: statistics and attendees.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::time::{self, Timestamp};

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventStats {
    pub event_id: i32,
    pub total_seats: i32,
    pub available_seats: i32,
    /// Seats of CONFIRMED bookings.
    pub seats_confirmed: i64,
    /// Seats of PENDING bookings (holds).
    pub seats_held: i64,
    /// Σ totalPriceCents of CONFIRMED bookings.
    pub revenue_cents: i64,
    pub bookings: StatusCounts,
    pub check_ins: CheckInCounts,
    pub ticket_types: Vec<TypeStats>,
    /// One entry per UTC day with a confirmation or a cancellation, oldest first, at most 90.
    pub sales_by_day: Vec<DaySales>,
}

/// Bookings of the event by status (keys as the statuses are spelled).
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
#[serde(rename_all = "UPPERCASE")]
pub struct StatusCounts {
    #[sqlx(rename = "CONFIRMED")]
    pub confirmed: i64,
    #[sqlx(rename = "PENDING")]
    pub pending: i64,
    #[sqlx(rename = "CANCELLED")]
    pub cancelled: i64,
    #[sqlx(rename = "EXPIRED")]
    pub expired: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct CheckInCounts {
    /// Tickets of CONFIRMED bookings.
    pub tickets: i64,
    /// Of them, checked in.
    pub checked_in: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct TypeStats {
    pub id: i32,
    pub name: String,
    pub total_seats: i32,
    pub available_seats: i32,
    pub seats_confirmed: i64,
    pub revenue_cents: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct DaySales {
    /// The UTC day, `2026-11-26`.
    #[schema(example = "2026-11-26")]
    pub date: String,
    /// Bookings confirmed that day (a hold on the day it was confirmed).
    pub bookings: i64,
    /// Their seats.
    pub seats: i64,
    /// Bookings cancelled that day.
    pub cancellations: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AttendeeUser {
    pub id: i32,
    pub firstname: String,
    pub lastname: String,
    pub email: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Attendee {
    pub booking_reference: Uuid,
    pub ticket_type_id: i32,
    pub seat_count: i32,
    /// How many of its tickets are checked in.
    pub checked_in: i64,
    #[serde(with = "time")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    pub user: AttendeeUser,
}

/// An attendee row as read (and as streamed into the CSV).
#[derive(Debug, sqlx::FromRow)]
pub struct AttendeeRow {
    pub booking_reference: Uuid,
    pub ticket_type_id: i32,
    pub seat_count: i32,
    pub checked_in: i64,
    pub created_at: Timestamp,
    pub user_id: i32,
    pub firstname: String,
    pub lastname: String,
    pub email: String,
}

impl From<AttendeeRow> for Attendee {
    fn from(row: AttendeeRow) -> Self {
        Self {
            booking_reference: row.booking_reference,
            ticket_type_id: row.ticket_type_id,
            seat_count: row.seat_count,
            checked_in: row.checked_in,
            created_at: row.created_at,
            user: AttendeeUser {
                id: row.user_id,
                firstname: row.firstname,
                lastname: row.lastname,
                email: row.email,
            },
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AttendeeParams {
    /// Page number, from 1 (default 1).
    #[param(value_type = Option<i64>, minimum = 1)]
    pub page: Option<String>,
    /// Page size, 1 to 100 (default 10).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 100)]
    pub limit: Option<String>,
    /// `csv`: every attendee as `text/csv` (no paging); default JSON.
    pub format: Option<String>,
}
