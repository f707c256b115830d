//! Expanding notification batches (one row per group of booking changes, written with them)
//! into notifications: one per webhook of the event's organizer that asked for the type, and
//! one email each when the batch says so. The body is built here, in Rust, from the booking as
//! it was at the change (the batch kept the fields a later change overwrites), and fixed, so
//! every attempt sends (and signs) the same bytes. Batch and notifications change in one
//! transaction, with the batch locked `FOR UPDATE SKIP LOCKED`: any instance may expand, each
//! batch once.

use std::collections::HashMap;

use serde::Serialize;
use sqlx::PgPool;

use crate::bookings::model::{Booking, BookingStatus, BOOKING_COLUMNS};
use crate::error::Result;
use crate::time::{self, Timestamp};

/// Batches expanded per transaction.
pub const BATCHES: i64 = 256;

#[derive(sqlx::FromRow)]
struct Batch {
    id: i64,
    event_id: i32,
    organizer_id: i32,
    email: bool,
    event: String,
    booking_ids: Vec<i32>,
    kinds: Vec<String>,
    updated_at: Vec<Timestamp>,
    expires_at: Vec<Option<Timestamp>>,
    created_at: Timestamp,
}

#[derive(Serialize)]
struct Body<'a> {
    r#type: &'a str,
    timestamp: String,
    data: Data<'a>,
}

#[derive(Serialize)]
struct Data<'a> {
    booking: &'a Booking,
    event: &'a serde_json::value::RawValue,
}

/// Expands waiting batches; returns how many.
pub async fn expand(db: &PgPool) -> Result<usize> {
    let mut tx = db.begin().await?;
    let batches: Vec<Batch> = sqlx::query_as(
        "SELECT id, event_id, organizer_id, email, event, booking_ids, kinds, updated_at, \
                expires_at, created_at \
         FROM notification_batches ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
    )
    .bind(BATCHES)
    .fetch_all(&mut *tx)
    .await?;
    if batches.is_empty() {
        return Ok(0);
    }
    let ids: Vec<i32> = batches
        .iter()
        .flat_map(|b| b.booking_ids.iter().copied())
        .collect();
    let bookings: HashMap<i32, Booking> = sqlx::query_as::<_, Booking>(&format!(
        "SELECT {BOOKING_COLUMNS} FROM bookings b WHERE b.id = ANY($1)"
    ))
    .bind(&ids)
    .fetch_all(&mut *tx)
    .await?
    .into_iter()
    .map(|b| (b.id, b))
    .collect();

    let mut rows = Rows::default();
    for batch in &batches {
        let event = serde_json::value::RawValue::from_string(batch.event.clone())
            .map_err(anyhow::Error::from)?;
        let timestamp = time::format(&batch.created_at);
        for (index, id) in batch.booking_ids.iter().enumerate() {
            // A booking deleted with its event since: nothing left to tell about it.
            let Some(current) = bookings.get(id) else {
                continue;
            };
            let kind = batch
                .kinds
                .get(index)
                .map(String::as_str)
                .unwrap_or_default();
            let Some(status) = status_of(kind) else {
                continue;
            };
            let mut booking = current.clone();
            booking.status = status;
            if let Some(updated_at) = batch.updated_at.get(index) {
                booking.updated_at = *updated_at;
            }
            booking.expires_at = batch.expires_at.get(index).copied().flatten();
            let body = Body {
                r#type: kind,
                timestamp: timestamp.clone(),
                data: Data {
                    booking: &booking,
                    event: &event,
                },
            };
            rows.kinds.push(kind.to_string());
            rows.organizers.push(batch.organizer_id);
            rows.emails.push(batch.email);
            rows.users.push(booking.user_id);
            rows.events.push(batch.event_id);
            rows.bookings.push(booking.id);
            rows.payloads
                .push(serde_json::to_string(&body).map_err(anyhow::Error::from)?);
        }
    }
    sqlx::query(
        "WITH x AS ( \
             SELECT * FROM UNNEST($1::text[], $2::integer[], $3::boolean[], $4::integer[], \
                                  $5::integer[], $6::integer[], $7::text[]) WITH ORDINALITY \
                 AS x(type, organizer_id, email, user_id, event_id, booking_id, payload, n)) \
         INSERT INTO notifications (channel, webhook_id, user_id, event_id, booking_id, type, payload) \
         SELECT channel, webhook_id, user_id, event_id, booking_id, type, payload FROM ( \
             SELECT 'WEBHOOK' AS channel, w.id AS webhook_id, x.* \
             FROM x JOIN webhooks w ON w.organizer_id = x.organizer_id AND x.type = ANY (w.events) \
             UNION ALL \
             SELECT 'EMAIL', NULL, x.* FROM x WHERE x.email) rows \
         ORDER BY n, webhook_id",
    )
    .bind(&rows.kinds)
    .bind(&rows.organizers)
    .bind(&rows.emails)
    .bind(&rows.users)
    .bind(&rows.events)
    .bind(&rows.bookings)
    .bind(&rows.payloads)
    .execute(&mut *tx)
    .await?;
    let done: Vec<i64> = batches.iter().map(|b| b.id).collect();
    sqlx::query("DELETE FROM notification_batches WHERE id = ANY($1)")
        .bind(&done)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(batches.len())
}

/// The notifications to write, column by column.
#[derive(Default)]
struct Rows {
    kinds: Vec<String>,
    organizers: Vec<i32>,
    emails: Vec<bool>,
    users: Vec<i32>,
    events: Vec<i32>,
    bookings: Vec<i32>,
    payloads: Vec<String>,
}

/// The booking's status right after a change of this type.
fn status_of(kind: &str) -> Option<BookingStatus> {
    match kind {
        "booking.held" => Some(BookingStatus::Pending),
        "booking.confirmed" => Some(BookingStatus::Confirmed),
        "booking.cancelled" => Some(BookingStatus::Cancelled),
        "booking.expired" => Some(BookingStatus::Expired),
        _ => None,
    }
}
