//! Tickets of a booking (derived, never stored one row per seat), and the event's revoked
//! tickets for offline scanners.

use sqlx::PgPool;
use uuid::Uuid;

use super::keys::{TicketClaims, TicketKeys};
use super::model::{RevokedTicket, Ticket, TicketStatus};
use crate::bookings::model::{Booking, BookingStatus, BOOKING_COLUMNS};
use crate::error::{AppError, Result};
use crate::events::service as events;
use crate::time::Timestamp;

/// A booking with what its tickets show.
#[derive(sqlx::FromRow)]
pub struct TicketBooking {
    #[sqlx(flatten)]
    pub booking: Booking,
    /// The moment the code's `iat` names: the confirmation (the booking itself if never
    /// confirmed), so a ticket's code never changes.
    pub issued_at: Timestamp,
    pub event_title: String,
    pub event_date: Option<Timestamp>,
    pub venue: Option<String>,
    pub city: Option<String>,
    pub organizer_id: i32,
    pub type_name: String,
    pub holder_firstname: String,
    pub holder_lastname: String,
}

fn not_issued() -> AppError {
    AppError::bad_request("Tickets are issued when the booking is confirmed")
}

/// The booking, for its owner or the organizer of its event (404, then 403, as
/// GET /bookings/:ref).
pub async fn booking(db: &PgPool, caller: i32, reference: Uuid) -> Result<TicketBooking> {
    let found = sqlx::query_as::<_, TicketBooking>(&format!(
        "SELECT {BOOKING_COLUMNS}, COALESCE(b.confirmed_at, b.created_at) AS issued_at, \
                e.title AS event_title, e.event_date, e.venue, e.city, e.organizer_id, \
                t.name AS type_name, u.firstname AS holder_firstname, u.lastname AS holder_lastname \
         FROM bookings b JOIN events e ON e.id = b.event_id \
              JOIN ticket_types t ON t.id = b.ticket_type_id JOIN users u ON u.id = b.user_id \
         WHERE b.booking_reference = $1"
    ))
    .bind(reference)
    .fetch_optional(db)
    .await?
    .ok_or_else(|| AppError::not_found("Booking not found"))?;
    if found.booking.user_id != caller && found.organizer_id != caller {
        return Err(AppError::forbidden(
            "You do not have permission to view this booking",
        ));
    }
    Ok(found)
}

/// Tickets exist for confirmed bookings, and stay listed (VOID) once cancelled.
pub fn require_issued(booking: &TicketBooking) -> Result<()> {
    match booking.booking.status {
        BookingStatus::Pending | BookingStatus::Expired => Err(not_issued()),
        _ => Ok(()),
    }
}

/// Only a CONFIRMED booking has tickets to show or print.
pub fn require_confirmed(booking: &TicketBooking) -> Result<()> {
    require_issued(booking)?;
    if booking.booking.status == BookingStatus::Cancelled {
        return Err(AppError::bad_request("Booking is already cancelled"));
    }
    Ok(())
}

pub async fn code(
    keys: &TicketKeys,
    db: &PgPool,
    booking: &TicketBooking,
    n: i32,
) -> Result<String> {
    let claims = TicketClaims {
        reference: booking.booking.booking_reference.to_string(),
        n,
        evt: booking.booking.event_id,
        tt: booking.booking.ticket_type_id,
        iat: booking.issued_at.timestamp(),
    };
    keys.sign(db, &claims).await
}

/// Every ticket of the booking, numbered 1..seatCount, with its check-in.
pub async fn tickets(
    keys: &TicketKeys,
    db: &PgPool,
    booking: &TicketBooking,
) -> Result<Vec<Ticket>> {
    require_issued(booking)?;
    let checked_in: Vec<(i32, Timestamp)> =
        sqlx::query_as("SELECT number, checked_in_at FROM check_ins WHERE booking_id = $1")
            .bind(booking.booking.id)
            .fetch_all(db)
            .await?;
    let void = booking.booking.status == BookingStatus::Cancelled;
    let mut tickets = Vec::with_capacity(booking.booking.seat_count.max(0) as usize);
    for number in 1..=booking.booking.seat_count {
        let checked = checked_in
            .iter()
            .find(|(n, _)| *n == number)
            .map(|(_, at)| *at);
        let status = match (void, checked) {
            (true, _) => TicketStatus::Void,
            (false, Some(_)) => TicketStatus::CheckedIn,
            (false, None) => TicketStatus::Valid,
        };
        tickets.push(Ticket {
            number,
            code: code(keys, db, booking, number).await?,
            status,
            checked_in_at: checked,
        });
    }
    Ok(tickets)
}

/// Every VOID ticket of the event (all seats of its cancelled bookings), for its organizer.
pub async fn revoked(db: &PgPool, event_id: i32, caller: i32) -> Result<Vec<RevokedTicket>> {
    events::owned(db, event_id, caller, "You can only view your own events").await?;
    Ok(sqlx::query_as::<_, RevokedTicket>(
        "SELECT b.booking_reference, n.number \
         FROM bookings b CROSS JOIN LATERAL generate_series(1, b.seat_count) AS n(number) \
         WHERE b.event_id = $1 AND b.status = 'CANCELLED' \
         ORDER BY b.id, n.number",
    )
    .bind(event_id)
    .fetch_all(db)
    .await?)
}
