//! Booking, listing, viewing and cancelling: the SQL with optimistic locking.
//!
//! Booking reads top to bottom as DESIGN.md describes it: in one transaction, read the event
//! with its version, validate, version-checked UPDATE, insert, commit. A lost race rolls back
//! (the transaction is dropped) and `retry_optimistic` retries from a fresh read. The same
//! transaction books a whole group of requests for one event at once (see `lanes`); a single
//! booking is a group of one.

use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

use super::model::{
    BookedEvent, Booking, BookingDetail, BookingStatus, BookingWithEvent, CancelledEvent,
    ListedEvent, BOOKING_COLUMNS,
};
use crate::auth::invalid_token;
use crate::concurrency::{retry_optimistic, Attempt};
use crate::error::{AppError, Result};
use crate::events::model::EventStatus;
use crate::events::service::not_found as event_not_found;
use crate::http::{Page, PageMeta};
use crate::time::Timestamp;

/// One request for seats.
#[derive(Debug, Clone, Copy)]
pub struct BookingRequest {
    pub user_id: i32,
    pub event_id: i32,
    pub seats: i32,
}

/// The event as the booking transaction reads it.
#[derive(sqlx::FromRow)]
struct EventForBooking {
    id: i32,
    title: String,
    event_date: Option<Timestamp>,
    organizer_id: i32,
    status: EventStatus,
    available_seats: i32,
    version: i64,
    /// The requesting users that exist.
    known_users: Vec<i32>,
}

fn high_demand() -> AppError {
    AppError::conflict("Booking failed due to high demand. Please try again.")
}

/// One booking in its own transaction, retried on lost races: the algorithm of DESIGN.md.
pub async fn book_direct(
    db: &PgPool,
    user_id: i32,
    event_id: i32,
    seats: i32,
) -> Result<BookingWithEvent<BookedEvent>> {
    let request = BookingRequest {
        user_id,
        event_id,
        seats,
    };
    let mut outcomes = book_group_with_retry(db, event_id, &[request]).await?;
    outcomes.pop().unwrap_or_else(|| Err(high_demand()))
}

/// Books a group of requests for one event, retrying the whole group on lost races.
/// Returns one outcome per request, in order; `Err` only when the whole group failed.
pub async fn book_group_with_retry(
    db: &PgPool,
    event_id: i32,
    requests: &[BookingRequest],
) -> Result<Vec<Result<BookingWithEvent<BookedEvent>>>> {
    retry_optimistic(|| book_group(db, event_id, requests), high_demand).await
}

/// One attempt: read, validate each request in order against the seats the earlier ones
/// left, take the accepted seats with one version-checked UPDATE, insert their bookings.
async fn book_group(
    db: &PgPool,
    event_id: i32,
    requests: &[BookingRequest],
) -> Result<Attempt<Vec<Result<BookingWithEvent<BookedEvent>>>>> {
    let mut tx = db.begin().await?;
    let users: Vec<i32> = requests.iter().map(|r| r.user_id).collect();
    let Some(event) = read_event(&mut tx, event_id, &users).await? else {
        return Ok(Attempt::Done(
            no_such_event(&mut tx, event_id, requests).await?,
        ));
    };
    let mut available = event.available_seats;
    let mut refusals: Vec<Option<AppError>> = Vec::with_capacity(requests.len());
    let mut accepted: Vec<BookingRequest> = Vec::new();
    for request in requests {
        match check_bookable(&event, request, available) {
            Ok(()) => {
                available -= request.seats;
                accepted.push(*request);
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
        tx.commit().await?;
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
    Ok(Attempt::Done(outcomes))
}

/// Reads the event with its version, and which of `users` still exist (a token can outlive
/// its user), in one round trip.
async fn read_event(
    tx: &mut Transaction<'_, Postgres>,
    id: i32,
    users: &[i32],
) -> Result<Option<EventForBooking>> {
    Ok(sqlx::query_as::<_, EventForBooking>(
        "SELECT id, title, event_date, organizer_id, status, available_seats, version, \
                ARRAY(SELECT u.id FROM users u WHERE u.id = ANY($2)) AS known_users \
         FROM events WHERE id = $1",
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
) -> Result<Vec<Result<BookingWithEvent<BookedEvent>>>> {
    let users: Vec<i32> = requests.iter().map(|r| r.user_id).collect();
    let known: Vec<i32> = sqlx::query_scalar("SELECT id FROM users WHERE id = ANY($1)")
        .bind(&users)
        .fetch_all(&mut **tx)
        .await?;
    Ok(requests
        .iter()
        .map(|request| {
            Err(if known.contains(&request.user_id) {
                event_not_found(event_id)
            } else {
                invalid_token()
            })
        })
        .collect())
}

/// The booking rules, in the contract's order; `available` counts the seats that requests
/// earlier in the same group have already taken.
fn check_bookable(event: &EventForBooking, request: &BookingRequest, available: i32) -> Result<()> {
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
    if event
        .event_date
        .is_some_and(|date| date < chrono::Utc::now())
    {
        return Err(AppError::bad_request("Cannot book past events"));
    }
    if available < request.seats {
        return Err(AppError::conflict(format!(
            "Not enough seats available. Requested: {}, Available: {available}",
            request.seats
        )));
    }
    Ok(())
}

/// The version-checked write and the inserts, as one statement: the UPDATE matches no row when
/// another writer changed the event since we read it, and then nothing is inserted and no row
/// comes back (a lost race). The version grows by one per booking, as if they had been booked
/// one by one. The rows come back in the order of `accepted`.
async fn take_seats_and_insert(
    tx: &mut Transaction<'_, Postgres>,
    event: &EventForBooking,
    accepted: &[BookingRequest],
) -> Result<Vec<Booking>> {
    let seats: i32 = accepted.iter().map(|r| r.seats).sum();
    let users: Vec<i32> = accepted.iter().map(|r| r.user_id).collect();
    let counts: Vec<i32> = accepted.iter().map(|r| r.seats).collect();
    let references: Vec<Uuid> = accepted.iter().map(|_| Uuid::new_v4()).collect();
    let sql = format!(
        "WITH taken AS ( \
             UPDATE events SET available_seats = available_seats - $3, \
                    version = version + $4, updated_at = now() \
             WHERE id = $1 AND version = $2 RETURNING id) \
         INSERT INTO bookings AS b (user_id, event_id, seat_count, booking_reference) \
         SELECT t.user_id, taken.id, t.seats, t.reference \
         FROM taken, UNNEST($5::integer[], $6::integer[], $7::uuid[]) AS t(user_id, seats, reference) \
         RETURNING {BOOKING_COLUMNS}"
    );
    let mut rows = sqlx::query_as::<_, Booking>(&sql)
        .bind(event.id)
        .bind(event.version)
        .bind(seats)
        .bind(accepted.len() as i32)
        .bind(&users)
        .bind(&counts)
        .bind(&references)
        .fetch_all(&mut **tx)
        .await?;
    // RETURNING's order is not promised: put the rows back in request order.
    rows.sort_by_key(|row| references.iter().position(|r| *r == row.booking_reference));
    Ok(rows)
}

/// The caller's own bookings, newest first.
pub async fn list(
    db: &PgPool,
    caller: i32,
    status: Option<BookingStatus>,
    page: Page,
) -> Result<(Vec<BookingWithEvent<ListedEvent>>, PageMeta)> {
    let sql = format!(
        "SELECT {BOOKING_COLUMNS}, e.id AS e_id, e.title AS e_title, \
                e.event_date AS e_event_date, e.status AS e_status \
         FROM bookings b JOIN events e ON e.id = b.event_id \
         WHERE b.user_id = $1 AND ($2::booking_status IS NULL OR b.status = $2) \
         ORDER BY b.created_at DESC, b.id DESC LIMIT $3 OFFSET $4"
    );
    let data = sqlx::query_as::<_, BookingWithEvent<ListedEvent>>(&sql)
        .bind(caller)
        .bind(status)
        .bind(page.limit)
        .bind(page.offset())
        .fetch_all(db)
        .await?;
    let total: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM bookings WHERE user_id = $1 AND ($2::booking_status IS NULL OR status = $2)",
    )
    .bind(caller)
    .bind(status)
    .fetch_one(db)
    .await?;
    Ok((data, page.meta(total)))
}

fn booking_not_found() -> AppError {
    AppError::not_found("Booking not found")
}

/// One booking, for its owner or the organizer of its event.
pub async fn detail(db: &PgPool, caller: i32, reference: Uuid) -> Result<BookingDetail> {
    let sql = format!(
        "SELECT {BOOKING_COLUMNS}, e.id AS e_id, e.title AS e_title, \
                e.event_date AS e_event_date, e.status AS e_status, e.organizer_id AS e_organizer_id, \
                u.id AS u_id, u.firstname AS u_firstname, u.lastname AS u_lastname, u.email AS u_email \
         FROM bookings b JOIN events e ON e.id = b.event_id JOIN users u ON u.id = b.user_id \
         WHERE b.booking_reference = $1"
    );
    let detail = sqlx::query_as::<_, BookingDetail>(&sql)
        .bind(reference)
        .fetch_optional(db)
        .await?
        .ok_or_else(booking_not_found)?;
    if detail.booking.user_id != caller && detail.event.organizer_id != caller {
        return Err(AppError::forbidden(
            "You do not have permission to view this booking",
        ));
    }
    Ok(detail)
}

/// The booking and its event as a cancellation reads them.
#[derive(sqlx::FromRow)]
struct BookingForCancel {
    #[sqlx(flatten)]
    booking: Booking,
    title: String,
    event_date: Option<Timestamp>,
    version: i64,
}

/// Cancels the caller's booking and releases its seats, exactly once: the status change is
/// conditional on CONFIRMED, and the seat release is version-checked like a booking.
pub async fn cancel(
    db: &PgPool,
    caller: i32,
    reference: Uuid,
) -> Result<BookingWithEvent<CancelledEvent>> {
    retry_optimistic(
        || async move {
            let mut tx = db.begin().await?;
            let sql = format!(
                "SELECT {BOOKING_COLUMNS}, e.title, e.event_date, e.version \
                 FROM bookings b JOIN events e ON e.id = b.event_id WHERE b.booking_reference = $1"
            );
            let found = sqlx::query_as::<_, BookingForCancel>(&sql)
                .bind(reference)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or_else(booking_not_found)?;
            check_cancellable(&found, caller)?;

            let sql = format!(
                "UPDATE bookings AS b SET status = 'CANCELLED', updated_at = now() \
                 WHERE id = $1 AND status = 'CONFIRMED' RETURNING {BOOKING_COLUMNS}"
            );
            // A concurrent cancel that committed first leaves nothing to cancel here.
            let cancelled = sqlx::query_as::<_, Booking>(&sql)
                .bind(found.booking.id)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or_else(already_cancelled)?;
            if !release_seats(&mut tx, &found).await? {
                return Ok(Attempt::Lost);
            }
            tx.commit().await?;
            Ok(Attempt::Done(BookingWithEvent {
                event: CancelledEvent {
                    id: cancelled.event_id,
                    title: found.title,
                },
                booking: cancelled,
            }))
        },
        || AppError::conflict("Cancellation failed due to high demand. Please try again."),
    )
    .await
}

fn already_cancelled() -> AppError {
    AppError::bad_request("Booking is already cancelled")
}

fn check_cancellable(found: &BookingForCancel, caller: i32) -> Result<()> {
    if found.booking.user_id != caller {
        return Err(AppError::forbidden("You can only cancel your own bookings"));
    }
    if found.booking.status == BookingStatus::Cancelled {
        return Err(already_cancelled());
    }
    if found
        .event_date
        .is_some_and(|date| date < chrono::Utc::now())
    {
        return Err(AppError::bad_request(
            "Cannot cancel booking for past events",
        ));
    }
    Ok(())
}

async fn release_seats(
    tx: &mut Transaction<'_, Postgres>,
    found: &BookingForCancel,
) -> Result<bool> {
    let written = sqlx::query(
        "UPDATE events SET available_seats = available_seats + $3, version = version + 1, \
                updated_at = now() \
         WHERE id = $1 AND version = $2",
    )
    .bind(found.booking.event_id)
    .bind(found.version)
    .bind(found.booking.seat_count)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    Ok(written == 1)
}
