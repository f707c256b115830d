//! The booking routes. Handlers only translate HTTP to service calls.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::idempotency::{self, Claim, IdempotencyKey};
use super::job::BookingRequest;
use super::model::{
    confirmed_body, BookedEvent, BookingDetail, BookingEnvelope, BookingListParams, BookingStatus,
    BookingWithEvent, CancelledEvent, CreateBookingRequest, ListedEvent,
};
use super::service;
use crate::auth::{AuthUser, TokenUser};
use crate::error::{AppError, ErrorBody, Result};
use crate::http::deadline::RequestStart;
use crate::http::params::page_and_status;
use crate::http::{Paginated, QueryParams, ReferencePath, ValidatedJson};
use crate::limits::BookingRateLimited;
use crate::state::AppState;

/// Book or hold seats
///
/// Books `seatCount` seats (of `ticketTypeId`) of a PUBLISHED, future event; with `"hold": true`
/// the seats are held (PENDING) until `expiresAt` and must be confirmed. Optimistic locking
/// keeps seats from being oversold: a lost race is retried (3 attempts in all) before 409.
#[utoipa::path(
    post, path = "/bookings", tag = "bookings",
    request_body = CreateBookingRequest,
    params(("Idempotency-Key" = Option<String>, Header,
        description = "Optional, 1–255 visible ASCII characters. A retry with the same key and body \
            returns the stored response (with `Idempotent-Replayed: true`) and books nothing; \
            the same key with a different body is 422. Keys are per user, kept 24 hours or more.")),
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Booking confirmed, or seats held (or replayed for an Idempotency-Key)",
            body = BookingEnvelope<BookingWithEvent<BookedEvent>>,
            headers(("Idempotent-Replayed" = String, description = "`true` on a replayed response"))),
        (status = 400, description = "Validation failed; event not PUBLISHED; event in the past; ticketTypeId required (several types)", body = ErrorBody,
            example = json!({ "statusCode": 400, "message": "Cannot book past events", "error": "Bad Request" })),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 404, description = "Event with ID 7 not found; Ticket type with ID 9 not found", body = ErrorBody),
        (status = 409, description = "Not enough seats (of the chosen type), or lost the race 3 times (high demand)", body = ErrorBody,
            example = json!({ "statusCode": 409, "message": "Not enough seats available. Requested: 5, Available: 3", "error": "Conflict" })),
        (status = 422, description = "Idempotency-Key reused with a different request", body = ErrorBody),
        (status = 429, description = "Too many bookings by this user; see Retry-After", body = ErrorBody),
        (status = 503, description = "Service temporarily unavailable (nothing was booked), or \
            Booking outcome unknown: retry with the same Idempotency-Key or check GET /bookings", body = ErrorBody),
    )
)]
pub async fn create_booking(
    State(state): State<AppState>,
    start: RequestStart,
    BookingRateLimited(caller): BookingRateLimited,
    key: Option<IdempotencyKey>,
    ValidatedJson(body): ValidatedJson<CreateBookingRequest>,
) -> Result<Response> {
    let (Some(event_id), Some(seats)) = (body.event_id, body.seat_count) else {
        return Err(AppError::bad_request("eventId and seatCount are required"));
    };
    // Both were range-checked by validation, so they fit.
    let event_id =
        i32::try_from(event_id).map_err(|_| AppError::bad_request("eventId is out of range"))?;
    let seats =
        i32::try_from(seats).map_err(|_| AppError::bad_request("seatCount is out of range"))?;
    let ticket_type_id = match body.ticket_type_id {
        Some(id) => Some(
            i32::try_from(id).map_err(|_| AppError::bad_request("ticketTypeId is out of range"))?,
        ),
        None => None,
    };
    let hold = body.hold.unwrap_or(false);
    let key = match key {
        None => None,
        Some(IdempotencyKey(key)) => {
            let mut request_hash = format!("eventId={event_id};seatCount={seats}");
            if let Some(id) = ticket_type_id {
                request_hash.push_str(&format!(";ticketTypeId={id}"));
            }
            if hold {
                request_hash.push_str(";hold=true");
            }
            match idempotency::claim(&state.db, caller.id, &key, &request_hash, start).await? {
                Claim::Replay(response) => return Ok(response),
                Claim::First(claim) => Some(claim),
            }
        }
    };
    let request = BookingRequest {
        user_id: caller.id,
        event_id,
        ticket_type_id,
        seats,
        hold,
        key,
    };
    let booking = state.bookings.book(request, start).await?;
    Ok((
        StatusCode::CREATED,
        [(header::CONTENT_TYPE, "application/json")],
        confirmed_body(&booking),
    )
        .into_response())
}

/// My bookings
///
/// The caller's own bookings, newest first, each with a summary of its event.
#[utoipa::path(
    get, path = "/bookings", tag = "bookings",
    params(BookingListParams),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of the caller's bookings", body = Paginated<BookingWithEvent<ListedEvent>>),
        (status = 400, description = "Bad page, limit or status", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
    )
)]
pub async fn list_bookings(
    State(state): State<AppState>,
    caller: AuthUser,
    QueryParams(params): QueryParams<BookingListParams>,
) -> Result<Json<Paginated<BookingWithEvent<ListedEvent>>>> {
    let (page, status) = page_and_status(
        params.page.as_deref(),
        params.limit.as_deref(),
        params.status.as_deref(),
        &BookingStatus::NAMES,
    )?;
    let (data, meta) = service::list(&state.db, caller.id, status, page).await?;
    Ok(Json(Paginated { data, meta }))
}

/// Get a booking
///
/// Visible to the booking's owner and to the organizer of its event.
#[utoipa::path(
    get, path = "/bookings/{bookingReference}", tag = "bookings",
    params(("bookingReference" = uuid::Uuid, Path, description = "The booking's reference (UUID)")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The booking, its event and its booker", body = BookingDetail),
        (status = 400, description = "Not a UUID", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 403, description = "You do not have permission to view this booking", body = ErrorBody),
        (status = 404, description = "Booking not found", body = ErrorBody),
    )
)]
pub async fn get_booking(
    State(state): State<AppState>,
    caller: AuthUser,
    ReferencePath(reference): ReferencePath,
) -> Result<Json<BookingDetail>> {
    Ok(Json(
        service::detail(&state.db, caller.id, reference).await?,
    ))
}

/// Confirm a hold (its owner)
///
/// A PENDING booking becomes CONFIRMED, before its `expiresAt`; the seats stay taken.
#[utoipa::path(
    post, path = "/bookings/{bookingReference}/confirm", tag = "bookings",
    params(("bookingReference" = uuid::Uuid, Path, description = "The booking's reference (UUID)")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Confirmed", body = BookingEnvelope<BookingWithEvent<BookedEvent>>),
        (status = 400, description = "Not a UUID; already confirmed; cancelled; hold expired; event not PUBLISHED or past", body = ErrorBody,
            example = json!({ "statusCode": 400, "message": "Booking hold has expired", "error": "Bad Request" })),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 403, description = "You can only confirm your own bookings", body = ErrorBody),
        (status = 404, description = "Booking not found", body = ErrorBody),
        (status = 409, description = "Confirmation failed due to high demand. Please try again.", body = ErrorBody),
        (status = 503, description = "Service temporarily unavailable (nothing changed), or the outcome is unknown", body = ErrorBody),
    )
)]
pub async fn confirm_booking(
    State(state): State<AppState>,
    start: RequestStart,
    caller: TokenUser,
    reference: std::result::Result<ReferencePath, AppError>,
) -> Result<Response> {
    let (reference, event_id) = booking_and_event(&state, caller, reference).await?;
    let confirmed = state
        .bookings
        .confirm(event_id, caller.id, reference, start)
        .await?;
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        confirmed_body(&confirmed),
    )
        .into_response())
}

/// Cancel a booking or a hold (its owner)
///
/// Releases the booking's seats exactly once, even under concurrent cancels.
#[utoipa::path(
    delete, path = "/bookings/{bookingReference}", tag = "bookings",
    params(("bookingReference" = uuid::Uuid, Path, description = "The booking's reference (UUID)")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Cancelled; seats released", body = BookingEnvelope<BookingWithEvent<CancelledEvent>>),
        (status = 400, description = "Not a UUID; already cancelled; hold expired; past event", body = ErrorBody,
            example = json!({ "statusCode": 400, "message": "Booking is already cancelled", "error": "Bad Request" })),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 403, description = "You can only cancel your own bookings", body = ErrorBody),
        (status = 404, description = "Booking not found", body = ErrorBody),
        (status = 409, description = "Cancellation failed due to high demand. Please try again.", body = ErrorBody),
    )
)]
pub async fn cancel_booking(
    State(state): State<AppState>,
    start: RequestStart,
    caller: TokenUser,
    reference: std::result::Result<ReferencePath, AppError>,
) -> Result<Json<BookingEnvelope<BookingWithEvent<CancelledEvent>>>> {
    let (reference, event_id) = booking_and_event(&state, caller, reference).await?;
    let cancelled = state
        .bookings
        .cancel(event_id, caller.id, reference, start)
        .await?;
    Ok(Json(BookingEnvelope {
        success: true,
        message: "Booking cancelled successfully. Seats have been released.",
        data: cancelled,
    }))
}

/// The reference of a confirm or cancel, and its booking's event (whose lane it goes to): from
/// the bookings made here lately, else read with the caller's existence in one round trip. The
/// lane checks the caller's existence again, before anything else, so a deleted user's token
/// gets 401 either way. A request refused before that gets `AuthUser`'s answers first, as on
/// every signed-in route.
async fn booking_and_event(
    state: &AppState,
    caller: TokenUser,
    reference: std::result::Result<ReferencePath, AppError>,
) -> Result<(uuid::Uuid, i32)> {
    match reference {
        Ok(ReferencePath(reference)) => {
            let event_id = match state.bookings.recent_event_of(reference) {
                Some(event_id) => event_id,
                None => service::event_of(&state.db, caller.id, reference).await?,
            };
            Ok((reference, event_id))
        }
        Err(error) => {
            caller.user(state).await?;
            Err(error)
        }
    }
}
