//! Listing, viewing and cancelling bookings (booking itself is in `book`, `group` and `lanes`).

use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

use super::job::{Booked, BookingRequest};
use super::lanes::BookingLanes;
use super::model::{
    Booking, BookingDetail, BookingStatus, BookingWithEvent, CancelledEvent, ListedEvent,
    BOOKING_COLUMNS,
};
use crate::concurrency::{retry_optimistic, Attempt};
use crate::db::commit::begin;
use crate::db::commit::write_in_time;
use crate::error::{AppError, Result};
use crate::http::deadline::RequestStart;
use crate::http::{Page, PageMeta};

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
    /// The event is past by the database's clock.
    past: bool,
    version: i64,
}

/// Cancels the caller's booking and releases its seats, exactly once: the status change is
/// conditional on CONFIRMED, and the seat release is version-checked like a booking. Answers
/// by the request's deadlines with what was committed.
pub async fn cancel(
    db: &PgPool,
    caller: i32,
    reference: Uuid,
    start: RequestStart,
) -> Result<BookingWithEvent<CancelledEvent>> {
    let attempts = retry_optimistic(
        || async move {
            let mut tx = begin(db).await?;
            let sql = format!(
                "SELECT {BOOKING_COLUMNS}, e.title, COALESCE(e.event_date < now(), false) AS past, \
                        e.version \
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
            let cancelled = BookingWithEvent {
                event: CancelledEvent {
                    id: cancelled.event_id,
                    title: found.title,
                },
                booking: cancelled,
            };
            Ok(Attempt::Done((Some(tx), cancelled)))
        },
        || AppError::conflict("Cancellation failed due to high demand. Please try again."),
    );
    write_in_time(start, attempts).await
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
    if found.past {
        return Err(AppError::bad_request(
            "Cannot cancel booking for past events",
        ));
    }
    Ok(())
}

/// The version-checked release, on the event and (only if that wins) on the booking's type,
/// in one statement.
async fn release_seats(
    tx: &mut Transaction<'_, Postgres>,
    found: &BookingForCancel,
) -> Result<bool> {
    let written: i64 = sqlx::query_scalar(
        "WITH released AS ( \
             UPDATE events SET available_seats = available_seats + $3, version = version + 1, \
                    updated_at = now() \
             WHERE id = $1 AND version = $2 RETURNING id), \
         typed AS ( \
             UPDATE ticket_types t SET available_seats = t.available_seats + $3, updated_at = now() \
             FROM released WHERE t.id = $4 AND t.event_id = released.id) \
         SELECT count(*) FROM released",
    )
    .bind(found.booking.event_id)
    .bind(found.version)
    .bind(found.booking.seat_count)
    .bind(found.booking.ticket_type_id)
    .fetch_one(&mut **tx)
    .await?;
    Ok(written == 1)
}

/// One booking outside any HTTP request (the seed program): a group of one, in its own
/// transaction, with the same rules and deadlines as POST /bookings.
pub async fn book_direct(
    db: &PgPool,
    user_id: i32,
    event_id: i32,
    ticket_type_id: Option<i32>,
    seats: i32,
) -> Booked {
    let request = BookingRequest {
        user_id,
        event_id,
        ticket_type_id,
        seats,
        key: None,
    };
    BookingLanes::new(db.clone(), false)
        .book(request, RequestStart::now())
        .await
}
