//! The ticket routes. Handlers only translate HTTP to service calls.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::model::{CheckInEnvelope, CheckInRequest, Jwks, RevokedTickets, TicketList};
use super::{checkin, service};
use crate::auth::{AuthUser, Organizer, TokenUser};
use crate::error::{AppError, ErrorBody, Result};
use crate::http::deadline::RequestStart;
use crate::http::{IdPath, ReferencePath, ValidatedJson};
use crate::state::AppState;

/// The public keys of ticket codes
///
/// Every key that signed a ticket code still valid, as a JWK set: a scanner verifies codes
/// offline with it (EdDSA, Ed25519).
#[utoipa::path(
    get, path = "/.well-known/jwks.json", tag = "tickets",
    responses(
        (status = 200, description = "The key set", body = Jwks),
        (status = 503, description = "Service temporarily unavailable", body = ErrorBody),
    )
)]
pub async fn jwks(State(state): State<AppState>) -> Result<Json<Jwks>> {
    Ok(Json(Jwks {
        keys: state.tickets.jwks(&state.db).await?,
    }))
}

/// A booking's tickets (its owner, or the event's organizer)
///
/// One ticket per seat, numbered from 1, each with its signed code; VOID once the booking is
/// cancelled.
#[utoipa::path(
    get, path = "/bookings/{bookingReference}/tickets", tag = "tickets",
    params(("bookingReference" = uuid::Uuid, Path, description = "The booking's reference (UUID)")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The tickets", body = TicketList),
        (status = 400, description = "Not a UUID; Tickets are issued when the booking is confirmed", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 403, description = "You do not have permission to view this booking", body = ErrorBody),
        (status = 404, description = "Booking not found", body = ErrorBody),
    )
)]
pub async fn list_tickets(
    State(state): State<AppState>,
    caller: AuthUser,
    ReferencePath(reference): ReferencePath,
) -> Result<Json<TicketList>> {
    let booking = service::booking(&state.db, caller.id, reference).await?;
    let data = service::tickets(&state.tickets, &state.db, &booking).await?;
    Ok(Json(TicketList { data }))
}

/// Check a ticket in at the door (the event's organizer)
///
/// Each ticket gets in once. The same `code` with the same `nonce` again (a scanner's retry)
/// gets the first answer again and changes nothing; without a nonce, every scan is new.
#[utoipa::path(
    post, path = "/events/{id}/check-ins", tag = "tickets",
    params(("id" = i32, Path, description = "Event id", minimum = 1)),
    request_body = CheckInRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Checked in", body = CheckInEnvelope),
        (status = 400, description = "Invalid ticket code; Ticket belongs to another event; validation failed", body = ErrorBody,
            example = json!({ "statusCode": 400, "message": "Invalid ticket code", "error": "Bad Request" })),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 403, description = "You can only check in tickets of your own events", body = ErrorBody),
        (status = 404, description = "Event with ID 7 not found", body = ErrorBody),
        (status = 409, description = "Ticket is void: the booking was cancelled; Ticket already checked in at <checkedInAt>", body = ErrorBody),
        (status = 503, description = "Service temporarily unavailable (nothing was checked in); Check-in outcome unknown: scan again with the same nonce", body = ErrorBody),
    )
)]
pub async fn check_in(
    State(state): State<AppState>,
    start: RequestStart,
    caller: TokenUser,
    id: std::result::Result<IdPath, AppError>,
    body: std::result::Result<ValidatedJson<CheckInRequest>, AppError>,
) -> Result<Response> {
    // The scan's statement checks the caller's role itself (one round trip per scan); a
    // request refused before it gets `Organizer`'s answers first, as on every organizer route.
    let (IdPath(event_id), ValidatedJson(body)) = match (id, body) {
        (Ok(id), Ok(body)) => (id, body),
        (Err(error), _) | (_, Err(error)) => {
            caller.organizer(&state).await?;
            return Err(error);
        }
    };
    let code = body.code.unwrap_or_default();
    let (status, body) = checkin::check_in(
        &state,
        event_id,
        caller.id,
        code.trim(),
        body.nonce.as_deref(),
        start,
    )
    .await?;
    Ok((status, [(header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// The revoked tickets of an event (its organizer)
///
/// Every VOID ticket, for scanners that work offline.
#[utoipa::path(
    get, path = "/events/{id}/revoked-tickets", tag = "tickets",
    params(("id" = i32, Path, description = "Event id", minimum = 1)),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The VOID tickets", body = RevokedTickets),
        (status = 400, description = "The id is not an integer", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 403, description = "You can only view your own events", body = ErrorBody),
        (status = 404, description = "Event with ID 7 not found", body = ErrorBody),
    )
)]
pub async fn revoked_tickets(
    State(state): State<AppState>,
    Organizer(caller): Organizer,
    IdPath(event_id): IdPath,
) -> Result<Json<RevokedTickets>> {
    Ok(Json(RevokedTickets {
        data: service::revoked(&state.db, event_id, caller.id).await?,
    }))
}
