//! What a ticket holder carries: the QR code of one ticket (SVG) and all tickets of a booking
//! as a PDF, one page each. Drawing is CPU work, so it runs off the async runtime.

use axum::extract::{FromRequestParts, Path, State};
use axum::http::header;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use uuid::Uuid;

use super::render::{qr_svg, tickets_pdf, TicketPage};
use super::service::{self, TicketBooking};
use crate::auth::AuthUser;
use crate::error::{AppError, ErrorBody, Result};
use crate::http::ReferencePath;
use crate::state::AppState;

/// More tickets than this in one PDF are refused: the document is built in memory.
const MAX_PDF_TICKETS: i32 = 500;

/// `/bookings/{bookingReference}/tickets/{number}/...`: a UUID and a ticket number.
pub struct TicketPath(pub Uuid, pub i32);

impl<S: Send + Sync> FromRequestParts<S> for TicketPath {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path((reference, number)) = Path::<(String, String)>::from_request_parts(parts, state)
            .await
            .map_err(|e| AppError::bad_request(e.body_text()))?;
        let reference = Some(reference.as_str())
            .filter(|raw| raw.len() == 36)
            .and_then(|raw| Uuid::try_parse(raw).ok())
            .ok_or_else(|| AppError::bad_request("Validation failed (uuid is expected)"))?;
        let number = number
            .parse::<i32>()
            .map_err(|_| AppError::bad_request("Validation failed (numeric string is expected)"))?;
        Ok(Self(reference, number))
    }
}

/// A ticket's QR code (its owner, or the event's organizer)
///
/// An SVG image of the ticket's signed code, for a phone screen or a printer.
#[utoipa::path(
    get, path = "/bookings/{bookingReference}/tickets/{number}/qr.svg", tag = "tickets",
    params(
        ("bookingReference" = uuid::Uuid, Path, description = "The booking's reference (UUID)"),
        ("number" = i32, Path, description = "The ticket's number, 1 to seatCount"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The QR code", content_type = "image/svg+xml", body = String),
        (status = 400, description = "Not a UUID or not an integer; Tickets are issued when the booking is confirmed; Booking is already cancelled", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 403, description = "You do not have permission to view this booking", body = ErrorBody),
        (status = 404, description = "Booking not found; Ticket not found", body = ErrorBody),
    )
)]
pub async fn qr(
    State(state): State<AppState>,
    caller: AuthUser,
    TicketPath(reference, number): TicketPath,
) -> Result<Response> {
    let booking = service::booking(&state.db, caller.id, reference).await?;
    service::require_confirmed(&booking)?;
    if !(1..=booking.booking.seat_count).contains(&number) {
        return Err(AppError::not_found("Ticket not found"));
    }
    let code = service::code(&state.tickets, &state.db, &booking, number).await?;
    let svg = tokio::task::spawn_blocking(move || qr_svg(&code))
        .await
        .map_err(|e| AppError::Internal(e.into()))??;
    Ok(([(header::CONTENT_TYPE, "image/svg+xml")], svg).into_response())
}

/// A booking's tickets as a PDF (its owner, or the event's organizer)
///
/// One page per ticket: event, date, venue, ticket type, holder, number and QR code.
#[utoipa::path(
    get, path = "/bookings/{bookingReference}/tickets.pdf", tag = "tickets",
    params(("bookingReference" = uuid::Uuid, Path, description = "The booking's reference (UUID)")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The tickets", content_type = "application/pdf", body = Vec<u8>),
        (status = 400, description = "Not a UUID; Tickets are issued when the booking is confirmed; Booking is already cancelled", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 403, description = "You do not have permission to view this booking", body = ErrorBody),
        (status = 404, description = "Booking not found", body = ErrorBody),
    )
)]
pub async fn pdf(
    State(state): State<AppState>,
    caller: AuthUser,
    ReferencePath(reference): ReferencePath,
) -> Result<Response> {
    let booking = service::booking(&state.db, caller.id, reference).await?;
    service::require_confirmed(&booking)?;
    if booking.booking.seat_count > MAX_PDF_TICKETS {
        return Err(AppError::bad_request(format!(
            "A PDF holds at most {MAX_PDF_TICKETS} tickets: use GET /bookings/{{bookingReference}}/tickets"
        )));
    }
    let mut pages = Vec::new();
    for number in 1..=booking.booking.seat_count {
        let code = service::code(&state.tickets, &state.db, &booking, number).await?;
        pages.push(page(&booking, number, code));
    }
    let pdf = tokio::task::spawn_blocking(move || tickets_pdf(&pages))
        .await
        .map_err(|e| AppError::Internal(e.into()))??;
    let disposition = format!("inline; filename=\"tickets-{reference}.pdf\"");
    Ok((
        [
            (header::CONTENT_TYPE, "application/pdf".to_string()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        pdf,
    )
        .into_response())
}

fn page(booking: &TicketBooking, number: i32, code: String) -> TicketPage {
    TicketPage {
        event_title: booking.event_title.clone(),
        event_date: booking
            .event_date
            .map(|date| date.format("%a %-d %b %Y, %H:%M UTC").to_string()),
        venue: booking.venue.clone(),
        city: booking.city.clone(),
        ticket_type: booking.type_name.clone(),
        holder: format!("{} {}", booking.holder_firstname, booking.holder_lastname),
        number,
        seat_count: booking.booking.seat_count,
        booking_reference: booking.booking.booking_reference.to_string(),
        code,
    }
}
