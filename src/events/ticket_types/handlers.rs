//! The ticket-type routes of an event. Handlers only translate HTTP to service calls.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;

use super::model::{NewTicketType, TicketType, TicketTypeDeleted, UpdateTicketType};
use super::service;
use crate::auth::Organizer;
use crate::error::{ErrorBody, Result};
use crate::http::deadline::RequestStart;
use crate::http::{IdPairPath, IdPath, ValidatedJson};
use crate::state::AppState;

/// Add a ticket type (the event's organizer)
///
/// The event's `totalSeats` and `availableSeats` grow by the type's seats; its `version` by one.
#[utoipa::path(
    post, path = "/events/{id}/ticket-types", tag = "ticket types",
    params(("id" = i32, Path, description = "Event id", minimum = 1)),
    request_body = NewTicketType,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "The new ticket type", body = TicketType),
        (status = 400, description = "Validation failed; a 21st type; more than 1000000 seats in the event", body = ErrorBody,
            example = json!({ "statusCode": 400, "message": "An event can have at most 20 ticket types", "error": "Bad Request" })),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 403, description = "You can only update your own events", body = ErrorBody),
        (status = 404, description = "Event with ID 7 not found", body = ErrorBody),
        (status = 409, description = "Ticket type name already used in this event; or the event was modified concurrently", body = ErrorBody),
    )
)]
pub async fn add_ticket_type(
    State(state): State<AppState>,
    start: RequestStart,
    Organizer(caller): Organizer,
    IdPath(event_id): IdPath,
    ValidatedJson(body): ValidatedJson<NewTicketType>,
) -> Result<(StatusCode, Json<TicketType>)> {
    let db = state.db.clone();
    let work = async move { service::add(&db, event_id, caller.id, &body, start).await };
    let created = state.bookings.solo(event_id, start, work).await;
    state.event_cache.seats_changed([event_id]);
    Ok((StatusCode::CREATED, Json(created?)))
}

/// Change a ticket type (the event's organizer)
///
/// Partial. Seats move the type's and the event's `availableSeats` by the same delta, never
/// below the seats already booked of this type. A body that changes nothing bumps no version.
#[utoipa::path(
    put, path = "/events/{id}/ticket-types/{typeId}", tag = "ticket types",
    params(
        ("id" = i32, Path, description = "Event id", minimum = 1),
        ("typeId" = i32, Path, description = "Ticket type id", minimum = 1),
    ),
    request_body = UpdateTicketType,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The ticket type", body = TicketType),
        (status = 400, description = "Validation failed; below the booked seats; more than 1000000 seats in the event", body = ErrorBody,
            example = json!({ "statusCode": 400, "message": "Cannot reduce total seats below 3 (already booked seats)", "error": "Bad Request" })),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 403, description = "You can only update your own events", body = ErrorBody),
        (status = 404, description = "Event with ID 7 not found; Ticket type with ID 9 not found", body = ErrorBody),
        (status = 409, description = "Ticket type name already used in this event; Event was modified concurrently. Please try again.", body = ErrorBody),
    )
)]
pub async fn update_ticket_type(
    State(state): State<AppState>,
    start: RequestStart,
    Organizer(caller): Organizer,
    IdPairPath(event_id, type_id): IdPairPath,
    ValidatedJson(body): ValidatedJson<UpdateTicketType>,
) -> Result<Json<TicketType>> {
    let change = body.change();
    let updated = state
        .bookings
        .edit_type(event_id, caller.id, type_id, change, start)
        .await?;
    Ok(Json(updated))
}

/// Delete a ticket type (the event's organizer)
///
/// Only a type without bookings, and never the event's last one.
#[utoipa::path(
    delete, path = "/events/{id}/ticket-types/{typeId}", tag = "ticket types",
    params(
        ("id" = i32, Path, description = "Event id", minimum = 1),
        ("typeId" = i32, Path, description = "Ticket type id", minimum = 1),
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Deleted", body = TicketTypeDeleted),
        (status = 400, description = "The type has bookings; it is the event's last type", body = ErrorBody,
            example = json!({ "statusCode": 400, "message": "An event must keep at least one ticket type", "error": "Bad Request" })),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 403, description = "You can only update your own events", body = ErrorBody),
        (status = 404, description = "Event with ID 7 not found; Ticket type with ID 9 not found", body = ErrorBody),
        (status = 409, description = "Event was modified concurrently. Please try again.", body = ErrorBody),
    )
)]
pub async fn delete_ticket_type(
    State(state): State<AppState>,
    start: RequestStart,
    Organizer(caller): Organizer,
    IdPairPath(event_id, type_id): IdPairPath,
) -> Result<Json<TicketTypeDeleted>> {
    let db = state.db.clone();
    let work = async move { service::delete(&db, event_id, type_id, caller.id, start).await };
    let deleted = state.bookings.solo(event_id, start, work).await;
    state.event_cache.seats_changed([event_id]);
    deleted?;
    Ok(Json(TicketTypeDeleted {
        message: "Ticket type deleted successfully",
        ticket_type_id: type_id,
    }))
}
