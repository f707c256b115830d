//! Booking, listing, viewing and cancelling: the SQL with optimistic locking.
//!
//! Booking reads top to bottom as DESIGN.md describes it: in one transaction, read the event
//! with its version, validate, version-checked UPDATE, insert the booking, commit. A lost race
//! rolls back (the transaction is dropped) and `retry_optimistic` retries from a fresh read.

use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

use super::model::{
    BookedEvent, Booking, BookingDetail, BookingStatus, BookingWithEvent, CancelledEvent,
    ListedEvent, BOOKING_COLUMNS,
};
use crate::concurrency::{retry_optimistic, Attempt};
use crate::error::{AppError, Result};
use crate::events::model::EventStatus;
use crate::events::service::not_found as event_not_found;
use crate::http::{Page, PageMeta};
use crate::time::Timestamp;

/// The event as the booking transaction reads it.
#[derive(sqlx::FromRow)]
struct EventForBooking {
    id: i32,
    title: String,
    event_date: Option<Timestamp>,
    organizer_id: i32,
    status: EventStatus,
    available_seats: i32,
    version: i32,
}

/// One booking in its own transaction, retried on lost races: the algorithm of DESIGN.md.
pub async fn book_direct(
    db: &PgPool,
    caller: i32,
    event_id: i32,
    seat_count: i32,
) -> Result<BookingWithEvent<BookedEvent>> {
    retry_optimistic(
        || async move {
            let mut tx = db.begin().await?;
            let event = read_event(&mut tx, event_id).await?;
            check_bookable(&event, caller, seat_count)?;
            if !take_seats(&mut tx, &event, seat_count).await? {
                return Ok(Attempt::Lost);
            }
            let booking = insert_booking(&mut tx, caller, event_id, seat_count).await?;
            tx.commit().await?;
            Ok(Attempt::Done(BookingWithEvent {
                booking,
                event: BookedEvent {
                    id: event.id,
                    title: event.title,
                    event_date: event.event_date,
                    organizer_id: event.organizer_id,
                },
            }))
        },
        || AppError::conflict("Booking failed due to high demand. Please try again."),
    )
    .await
}

async fn read_event(tx: &mut Transaction<'_, Postgres>, id: i32) -> Result<EventForBooking> {
    sqlx::query_as::<_, EventForBooking>(
        "SELECT id, title, event_date, organizer_id, status, available_seats, version \
         FROM events WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?
    .ok_or_else(|| event_not_found(id))
}

/// The booking rules, in the contract's order.
fn check_bookable(event: &EventForBooking, caller: i32, seats: i32) -> Result<()> {
    // A draft does not exist for anyone but its organizer.
    if event.status == EventStatus::Draft && event.organizer_id != caller {
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
    if event.available_seats < seats {
        return Err(AppError::conflict(format!(
            "Not enough seats available. Requested: {seats}, Available: {}",
            event.available_seats
        )));
    }
    Ok(())
}

/// The version-checked write: false when another writer changed the event since we read it.
async fn take_seats(
    tx: &mut Transaction<'_, Postgres>,
    event: &EventForBooking,
    seats: i32,
) -> Result<bool> {
    let written = sqlx::query(
        "UPDATE events SET available_seats = available_seats - $3, version = version + 1, \
                updated_at = now() \
         WHERE id = $1 AND version = $2",
    )
    .bind(event.id)
    .bind(event.version)
    .bind(seats)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    Ok(written == 1)
}

async fn insert_booking(
    tx: &mut Transaction<'_, Postgres>,
    user_id: i32,
    event_id: i32,
    seats: i32,
) -> Result<Booking> {
    let sql = format!(
        "INSERT INTO bookings AS b (user_id, event_id, seat_count, booking_reference) \
         VALUES ($1, $2, $3, $4) RETURNING {BOOKING_COLUMNS}"
    );
    Ok(sqlx::query_as::<_, Booking>(&sql)
        .bind(user_id)
        .bind(event_id)
        .bind(seats)
        .bind(Uuid::new_v4())
        .fetch_one(&mut **tx)
        .await?)
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
    version: i32,
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
