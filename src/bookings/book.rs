//! One attempt at booking a group of requests for one event, as DESIGN.md describes it: in one
//! transaction, lock the requests' Idempotency-Key claims, read the event with its version,
//! validate each request against the seats the earlier ones left, take the accepted seats with
//! one version-checked UPDATE, insert their bookings, and record each key's outcome. The
//! attempt stops short of COMMIT: the caller decides whether there is still time to send it
//! (see `group`). A single booking is a group of one.

use axum::http::StatusCode;
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

use super::idempotency::{self, KeyClaim};
use super::job::{Booked, BookingRequest};
use super::model::{confirmed_body, BookedEvent, Booking, BookingWithEvent, BOOKING_COLUMNS};
use crate::auth::invalid_token;
use crate::concurrency::Attempt;
use crate::db::commit::begin;
use crate::error::{AppError, Result};
use crate::events::model::EventStatus;
use crate::events::service::not_found as event_not_found;
use crate::events::ticket_types::service::not_found as ticket_type_not_found;
use crate::time::Timestamp;

/// An attempt that is ready for COMMIT, with the answer for every request of the group.
pub struct Prepared {
    /// `None` when nothing was written (every request refused, no key to record).
    pub tx: Option<Transaction<'static, Postgres>>,
    pub outcomes: Vec<Booked>,
    /// False when the event does not exist: its lane can end at once.
    pub event_found: bool,
}

/// The event as the booking transaction reads it.
#[derive(sqlx::FromRow)]
struct EventForBooking {
    id: i32,
    title: String,
    event_date: Option<Timestamp>,
    /// In the past by the database's clock, the clock of every stored timestamp.
    past: bool,
    organizer_id: i32,
    status: EventStatus,
    version: i64,
    /// The event's ticket types, in `id` order: ids, prices and seats left.
    type_ids: Vec<i32>,
    type_prices: Vec<i32>,
    type_available: Vec<i32>,
    /// The requesting users that exist.
    known_users: Vec<i32>,
}

/// A request the attempt accepted, and its type (an index into the event's types).
struct Accepted<'a> {
    request: &'a BookingRequest,
    type_index: usize,
}

pub fn high_demand() -> AppError {
    AppError::conflict("Booking failed due to high demand. Please try again.")
}

fn taken_over() -> AppError {
    AppError::Unavailable("the idempotency key was taken over by a retry".into())
}

pub async fn prepare_group(
    db: &PgPool,
    event_id: i32,
    requests: &[BookingRequest],
) -> Result<Attempt<Prepared>> {
    let mut tx = begin(db).await?;
    let held = lock_claims(&mut tx, requests).await?;
    let users: Vec<i32> = requests.iter().map(|r| r.user_id).collect();
    let Some(event) = read_event(&mut tx, event_id, &users).await? else {
        let outcomes = no_such_event(&mut tx, event_id, requests, &held).await?;
        return finish(tx, requests, outcomes, false, false).await;
    };

    // Seats left per type, as the requests earlier in the group leave them.
    let mut available = event.type_available.clone();
    let mut refusals: Vec<Option<AppError>> = Vec::with_capacity(requests.len());
    let mut accepted: Vec<Accepted> = Vec::new();
    for (request, held) in requests.iter().zip(&held) {
        let checked = match held {
            true => check_bookable(&event, request, &available),
            false => Err(taken_over()),
        };
        match checked {
            Ok(type_index) => {
                available[type_index] -= request.seats;
                accepted.push(Accepted {
                    request,
                    type_index,
                });
                refusals.push(None);
            }
            Err(error) => refusals.push(Some(error)),
        }
    }
    let mut bookings = Vec::new();
    if !accepted.is_empty() {
        bookings = take_seats_and_insert(&mut tx, &event, &accepted).await?;
        if bookings.is_empty() {
            return Ok(Attempt::Lost);
        }
    }
    let summary = BookedEvent {
        id: event.id,
        title: event.title,
        event_date: event.event_date,
        organizer_id: event.organizer_id,
    };
    let mut bookings = bookings.into_iter();
    let outcomes = refusals
        .into_iter()
        .map(|refusal| match refusal {
            Some(error) => Err(error),
            None => bookings
                .next()
                .map(|booking| BookingWithEvent {
                    booking,
                    event: summary.clone(),
                })
                .ok_or_else(|| AppError::Internal(anyhow::anyhow!("a booking row is missing"))),
        })
        .collect();
    finish(tx, requests, outcomes, !accepted.is_empty(), true).await
}

/// Per request, whether it may book: requests without a key always may; a keyed one only while
/// its claim is still held by its token (a retry may have taken it over).
async fn lock_claims(
    tx: &mut Transaction<'_, Postgres>,
    requests: &[BookingRequest],
) -> Result<Vec<bool>> {
    let claims: Vec<(i32, &KeyClaim)> = requests
        .iter()
        .filter_map(|r| r.key.as_ref().map(|key| (r.user_id, key)))
        .collect();
    let mut held = if claims.is_empty() {
        Vec::new()
    } else {
        idempotency::lock_held(tx, &claims).await?
    }
    .into_iter();
    Ok(requests
        .iter()
        .map(|r| r.key.is_none() || held.next().unwrap_or(false))
        .collect())
}

/// Records the outcome of every held key in the transaction, and hands it over for COMMIT if
/// it wrote anything.
async fn finish(
    mut tx: Transaction<'static, Postgres>,
    requests: &[BookingRequest],
    outcomes: Vec<Booked>,
    booked: bool,
    event_found: bool,
) -> Result<Attempt<Prepared>> {
    let mut records = Vec::new();
    for (request, outcome) in requests.iter().zip(&outcomes) {
        let Some(key) = &request.key else { continue };
        let stored = match outcome {
            Ok(booking) => Some((StatusCode::CREATED, confirmed_body(booking))),
            // A claim taken over is the other request's to record.
            Err(error) => error.client_body(),
        };
        if let Some((status, body)) = stored {
            records.push((request.user_id, key, status, body));
        }
    }
    idempotency::record(&mut tx, &records).await?;
    let wrote = booked || !records.is_empty();
    Ok(Attempt::Done(Prepared {
        tx: wrote.then_some(tx),
        outcomes,
        event_found,
    }))
}

/// Reads the event with its version, and which of `users` still exist (a token can outlive
/// its user), in one round trip.
async fn read_event(
    tx: &mut Transaction<'_, Postgres>,
    id: i32,
    users: &[i32],
) -> Result<Option<EventForBooking>> {
    Ok(sqlx::query_as::<_, EventForBooking>(
        "SELECT e.id, e.title, e.event_date, COALESCE(e.event_date < now(), false) AS past, \
                e.organizer_id, e.status, e.version, \
                ARRAY(SELECT t.id FROM ticket_types t WHERE t.event_id = e.id ORDER BY t.id) AS type_ids, \
                ARRAY(SELECT t.price_cents FROM ticket_types t WHERE t.event_id = e.id ORDER BY t.id) AS type_prices, \
                ARRAY(SELECT t.available_seats FROM ticket_types t WHERE t.event_id = e.id ORDER BY t.id) AS type_available, \
                ARRAY(SELECT u.id FROM users u WHERE u.id = ANY($2)) AS known_users \
         FROM events e WHERE e.id = $1",
    )
    .bind(id)
    .bind(users)
    .fetch_optional(&mut **tx)
    .await?)
}

/// The answers when the event does not exist: 404, but 401 first for a token whose user is gone.
async fn no_such_event(
    tx: &mut Transaction<'_, Postgres>,
    event_id: i32,
    requests: &[BookingRequest],
    held: &[bool],
) -> Result<Vec<Booked>> {
    let users: Vec<i32> = requests.iter().map(|r| r.user_id).collect();
    let known: Vec<i32> = sqlx::query_scalar("SELECT id FROM users WHERE id = ANY($1)")
        .bind(&users)
        .fetch_all(&mut **tx)
        .await?;
    Ok(requests
        .iter()
        .zip(held)
        .map(|(request, held)| {
            Err(if !held {
                taken_over()
            } else if known.contains(&request.user_id) {
                event_not_found(event_id)
            } else {
                invalid_token()
            })
        })
        .collect())
}

/// The booking rules, in the contract's order; `available` counts, per type, the seats that
/// requests earlier in the same group have already taken. Returns the chosen type's index.
fn check_bookable(
    event: &EventForBooking,
    request: &BookingRequest,
    available: &[i32],
) -> Result<usize> {
    if !event.known_users.contains(&request.user_id) {
        return Err(invalid_token());
    }
    // A draft does not exist for anyone but its organizer.
    if event.status == EventStatus::Draft && event.organizer_id != request.user_id {
        return Err(event_not_found(event.id));
    }
    if event.status != EventStatus::Published {
        return Err(AppError::bad_request(format!(
            "Event is not available for booking. Current status: {}",
            event.status.as_str()
        )));
    }
    if event.past {
        return Err(AppError::bad_request("Cannot book past events"));
    }
    let type_index = match request.ticket_type_id {
        Some(id) => event
            .type_ids
            .iter()
            .position(|t| *t == id)
            .ok_or_else(|| ticket_type_not_found(id))?,
        None if event.type_ids.len() == 1 => 0,
        None => {
            return Err(AppError::bad_request(
                "ticketTypeId is required: this event has several ticket types",
            ))
        }
    };
    let left = available.get(type_index).copied().unwrap_or(0);
    if left < request.seats {
        return Err(AppError::conflict(format!(
            "Not enough seats available. Requested: {}, Available: {left}",
            request.seats
        )));
    }
    Ok(type_index)
}

/// The version-checked write and the inserts, as one statement: the UPDATE of the event
/// matches no row when another writer changed the event since we read it, and then no type is
/// touched, nothing is inserted and no row comes back (a lost race). The version grows by one
/// per booking, as if they had been booked one by one; each type gives up its own seats. The
/// rows come back in the order of `accepted`.
async fn take_seats_and_insert(
    tx: &mut Transaction<'_, Postgres>,
    event: &EventForBooking,
    accepted: &[Accepted<'_>],
) -> Result<Vec<Booking>> {
    let seats: i32 = accepted.iter().map(|a| a.request.seats).sum();
    let mut per_type = vec![0i32; event.type_ids.len()];
    for a in accepted {
        per_type[a.type_index] += a.request.seats;
    }
    let (taken_types, taken_seats): (Vec<i32>, Vec<i32>) = event
        .type_ids
        .iter()
        .zip(&per_type)
        .filter(|(_, seats)| **seats > 0)
        .map(|(id, seats)| (*id, *seats))
        .unzip();
    let users: Vec<i32> = accepted.iter().map(|a| a.request.user_id).collect();
    let types: Vec<i32> = accepted
        .iter()
        .map(|a| event.type_ids[a.type_index])
        .collect();
    let counts: Vec<i32> = accepted.iter().map(|a| a.request.seats).collect();
    let prices: Vec<i64> = accepted
        .iter()
        .map(|a| i64::from(a.request.seats) * i64::from(event.type_prices[a.type_index]))
        .collect();
    let references: Vec<Uuid> = accepted.iter().map(|_| Uuid::new_v4()).collect();
    let sql = format!(
        "WITH taken AS ( \
             UPDATE events SET available_seats = available_seats - $3, \
                    version = version + $4, updated_at = now() \
             WHERE id = $1 AND version = $2 RETURNING id), \
         types AS ( \
             UPDATE ticket_types tt SET available_seats = tt.available_seats - x.seats, \
                    updated_at = now() \
             FROM taken, UNNEST($5::integer[], $6::integer[]) AS x(type_id, seats) \
             WHERE tt.id = x.type_id AND tt.event_id = taken.id) \
         INSERT INTO bookings AS b \
             (user_id, event_id, ticket_type_id, seat_count, total_price_cents, booking_reference) \
         SELECT t.user_id, taken.id, t.type_id, t.seats, t.price, t.reference \
         FROM taken, UNNEST($7::integer[], $8::integer[], $9::integer[], $10::bigint[], $11::uuid[]) \
              AS t(user_id, type_id, seats, price, reference) \
         RETURNING {BOOKING_COLUMNS}"
    );
    let mut rows = sqlx::query_as::<_, Booking>(&sql)
        .bind(event.id)
        .bind(event.version)
        .bind(seats)
        .bind(accepted.len() as i64)
        .bind(&taken_types)
        .bind(&taken_seats)
        .bind(&users)
        .bind(&types)
        .bind(&counts)
        .bind(&prices)
        .bind(&references)
        .fetch_all(&mut **tx)
        .await?;
    // RETURNING's order is not promised: put the rows back in request order.
    rows.sort_by_key(|row| references.iter().position(|r| *r == row.booking_reference));
    Ok(rows)
}
