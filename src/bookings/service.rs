//! Reading bookings, and finding a booking's event (every seat write is in `lanes`).

use sqlx::PgPool;
use uuid::Uuid;

use super::job::BookingRequest;
use super::lanes::BookingLanes;
use super::model::{
    BookedEvent, BookingDetail, BookingStatus, BookingWithEvent, ListedEvent, BOOKING_COLUMNS,
};
use super::rules::booking_not_found;
use crate::auth::invalid_token;
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

/// The event a booking belongs to, to route a confirm or cancel to that event's lane, read
/// in one round trip with the caller's existence (checked first, as `AuthUser` would).
pub async fn event_of(db: &PgPool, caller: i32, reference: Uuid) -> Result<i32> {
    let (known, event_id): (bool, Option<i32>) = sqlx::query_as(
        "SELECT EXISTS (SELECT 1 FROM users WHERE id = $1), \
                (SELECT event_id FROM bookings WHERE booking_reference = $2)",
    )
    .bind(caller)
    .bind(reference)
    .fetch_one(db)
    .await?;
    if !known {
        return Err(invalid_token());
    }
    event_id.ok_or_else(booking_not_found)
}

/// One booking outside any HTTP request (the seed program): a group of one, in its own
/// transaction, with the same rules and deadlines as POST /bookings.
pub async fn book_direct(
    db: &PgPool,
    user_id: i32,
    event_id: i32,
    ticket_type_id: Option<i32>,
    seats: i32,
) -> Result<BookingWithEvent<BookedEvent>> {
    let request = BookingRequest {
        user_id,
        event_id,
        ticket_type_id,
        seats,
        hold: false,
        key: None,
    };
    BookingLanes::new(db.clone(), false, 600, false, Default::default())
        .book(request, RequestStart::now())
        .await
}
