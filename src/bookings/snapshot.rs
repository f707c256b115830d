//! What one attempt reads, in one round trip: the event with its version and ticket types,
//! which of the booking users still exist, and the bookings that the group's confirms,
//! cancels and expiries name.

use std::collections::HashMap;

use sqlx::postgres::PgRow;
use sqlx::{FromRow, Postgres, Row, Transaction};
use uuid::Uuid;

use super::job::Op;
use super::model::{Booking, BookingStatus, BOOKING_COLUMNS};
use crate::error::Result;
use crate::events::model::EventStatus;
use crate::events::ticket_types::model::TicketType;
use crate::events::ticket_types::service::TYPES_JSON;
use crate::time::Timestamp;

/// The event as an attempt reads it, with its ticket types in `id` order.
#[derive(sqlx::FromRow)]
pub struct EventState {
    #[sqlx(rename = "e_id")]
    pub id: i32,
    pub title: String,
    pub event_date: Option<Timestamp>,
    /// In the past by the database's clock, the clock of every stored timestamp.
    pub past: bool,
    pub organizer_id: i32,
    #[sqlx(rename = "e_status")]
    pub status: EventStatus,
    pub version: i64,
    pub total_seats: i32,
    /// In `id` order.
    #[sqlx(json)]
    pub ticket_types: Vec<TicketType>,
    /// The users of the group's bookings, confirms and cancels that exist (a token can
    /// outlive its user).
    pub known_users: Vec<i32>,
    /// The organizer has webhooks: booking changes write notifications for them.
    pub has_webhooks: bool,
}

/// A booking a confirm, cancel or expiry works on.
#[derive(sqlx::FromRow, Clone)]
pub struct Existing {
    #[sqlx(flatten)]
    pub booking: Booking,
    /// A PENDING hold whose `expiresAt` has passed, by the database's clock.
    pub due: bool,
}

impl Existing {
    pub(super) fn hold_expired(&self) -> bool {
        self.booking.status == BookingStatus::Expired
            || (self.booking.status == BookingStatus::Pending && self.due)
    }
}

/// Bookings by reference (confirm, cancel) or by id (expiry).
#[derive(Hash, PartialEq, Eq)]
pub enum Key {
    Reference(Uuid),
    Id(i32),
}

/// The event (`None` when it does not exist) and the bookings of it that `ops` name, by
/// reference and by id. One row per booking found, each with the event's columns (named
/// `e_*` where a booking's would clash), or one row with NULL booking columns.
pub async fn read(
    tx: &mut Transaction<'_, Postgres>,
    event_id: i32,
    ops: &[&Op],
) -> Result<Option<(EventState, HashMap<Key, Existing>)>> {
    let users: Vec<i32> = ops.iter().filter_map(|op| op.user_id()).collect();
    let mut references = Vec::new();
    let mut ids = Vec::new();
    for op in ops {
        match op {
            Op::Confirm { reference, .. } | Op::Cancel { reference, .. } => {
                references.push(*reference)
            }
            Op::Expire { booking_ids } => ids.extend_from_slice(booking_ids),
            _ => {}
        }
    }
    // Bookings are found by their own unique indexes only: with `event_id` in their WHERE, a
    // generic plan walked every booking of a hot event. Another event's booking is dropped
    // below, as not found.
    let rows = sqlx::query(&format!(
        "SELECT e.id AS e_id, e.title, e.event_date, \
                COALESCE(e.event_date < now(), false) AS past, \
                e.organizer_id, e.status AS e_status, e.version, e.total_seats, {TYPES_JSON}, \
                ARRAY(SELECT u.id FROM users u WHERE u.id = ANY($2)) AS known_users, \
                EXISTS (SELECT 1 FROM webhooks w WHERE w.organizer_id = e.organizer_id) \
                    AS has_webhooks, \
                b.* \
         FROM events e \
         LEFT JOIN LATERAL ( \
             SELECT {BOOKING_COLUMNS}, \
                    COALESCE(b.expires_at <= clock_timestamp(), false) AS due \
             FROM bookings b \
             WHERE b.booking_reference = ANY($3) OR b.id = ANY($4)) b ON true \
         WHERE e.id = $1"
    ))
    .bind(event_id)
    .bind(&users)
    .bind(&references)
    .bind(&ids)
    .fetch_all(&mut **tx)
    .await?;
    let Some(first) = rows.first() else {
        return Ok(None);
    };
    let event = EventState::from_row(first)?;
    let mut found = HashMap::new();
    for row in &rows {
        let Some(row) = existing(row)? else {
            continue;
        };
        if row.booking.event_id == event_id {
            found.insert(Key::Reference(row.booking.booking_reference), row.clone());
            found.insert(Key::Id(row.booking.id), row);
        }
    }
    Ok(Some((event, found)))
}

/// The booking of a row of `read`, if it has one.
fn existing(row: &PgRow) -> Result<Option<Existing>> {
    if row.try_get::<Option<i32>, _>("id")?.is_none() {
        return Ok(None);
    }
    Ok(Some(Existing::from_row(row)?))
}
