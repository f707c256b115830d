//! What one attempt reads, in one round trip: each event of the attempt with its version and
//! ticket types, which of the booking users still exist, and the bookings that the confirms,
//! cancels and expiries name.

use std::collections::hash_map::Entry;
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

/// What a group's transaction read of one event.
pub struct Read {
    pub event: EventState,
    pub existing: HashMap<Key, Existing>,
}

/// The events of `events` that exist, each with the bookings of it that its `ops` name, by
/// reference and by id. One row per event and booking found (the event's columns named `e_*`
/// where a booking's would clash), or one row with NULL booking columns.
pub async fn read(
    tx: &mut Transaction<'_, Postgres>,
    events: &[i32],
    ops: &[&Op],
) -> Result<HashMap<i32, Read>> {
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
    // Bookings are found by their own unique indexes only, once for all events: with
    // `event_id` in their WHERE, a generic plan walked every booking of a hot event. A group
    // that names none (new bookings only) does not look: a generic plan made while the table
    // was nearly empty scans all of it, on every call, for as long as its connection lives.
    let names = !references.is_empty() || !ids.is_empty();
    let named = if names {
        "b.booking_reference = ANY($3) OR b.id = ANY($4)"
    } else {
        "false"
    };
    let query = format!(
        "WITH named AS MATERIALIZED ( \
             SELECT {BOOKING_COLUMNS}, \
                    COALESCE(b.expires_at <= clock_timestamp(), false) AS due \
             FROM bookings b \
             WHERE {named}) \
         SELECT e.id AS e_id, e.title, e.event_date, \
                COALESCE(e.event_date < now(), false) AS past, \
                e.organizer_id, e.status AS e_status, e.version, e.total_seats, {TYPES_JSON}, \
                ARRAY(SELECT u.id FROM users u WHERE u.id = ANY($2)) AS known_users, \
                EXISTS (SELECT 1 FROM webhooks w WHERE w.organizer_id = e.organizer_id) \
                    AS has_webhooks, \
                b.* \
         FROM events e \
         LEFT JOIN named b ON b.event_id = e.id \
         WHERE e.id = ANY($1)"
    );
    let mut rows = sqlx::query(&query).bind(events).bind(&users);
    if names {
        rows = rows.bind(&references).bind(&ids);
    }
    let rows = rows.fetch_all(&mut **tx).await?;
    let mut read: HashMap<i32, Read> = HashMap::with_capacity(events.len());
    for row in &rows {
        let event_id: i32 = row.try_get("e_id")?;
        let entry = match read.entry(event_id) {
            Entry::Occupied(entry) => entry.into_mut(),
            Entry::Vacant(entry) => entry.insert(Read {
                event: EventState::from_row(row)?,
                existing: HashMap::new(),
            }),
        };
        if let Some(found) = existing(row)? {
            let found_ref = Key::Reference(found.booking.booking_reference);
            entry
                .existing
                .insert(Key::Id(found.booking.id), found.clone());
            entry.existing.insert(found_ref, found);
        }
    }
    Ok(read)
}

/// The booking of a row of `read`, if it has one.
fn existing(row: &PgRow) -> Result<Option<Existing>> {
    if row.try_get::<Option<i32>, _>("id")?.is_none() {
        return Ok(None);
    }
    Ok(Some(Existing::from_row(row)?))
}
