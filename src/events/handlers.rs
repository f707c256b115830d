//! The event routes. Handlers only translate HTTP to service calls.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::model::{
    CreateEventRequest, EventDeleted, EventListParams, EventStatus, EventView, MyEventsParams,
    UpdateEventRequest,
};
use super::public;
use super::search::{self, EventQuery};
use super::service;
use crate::auth::{MaybeAuthUser, Organizer};
use crate::error::{ErrorBody, Result};
use crate::http::deadline::RequestStart;
use crate::http::params::page_and_status;
use crate::http::{IdPath, Paginated, QueryParams, ValidatedJson};
use crate::state::AppState;

/// List and search events
///
/// Newest first unless `sort` or `q` says otherwise; full-text search, date, city and free-seat
/// filters. Drafts appear only to their own organizer. `meta.total` is exact up to 10,000
/// (`meta.totalExact`). Public: a token is optional, but a token that is sent must be valid.
#[utoipa::path(
    get, path = "/events", tag = "events",
    params(EventListParams),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "A page of events", body = Paginated<EventView>),
        (status = 400, description = "Bad page, limit, status or organizerId", body = ErrorBody),
        (status = 401, description = "A token was sent and is invalid", body = ErrorBody),
    )
)]
pub async fn list_events(
    State(state): State<AppState>,
    viewer: MaybeAuthUser,
    QueryParams(params): QueryParams<EventListParams>,
) -> Result<Response> {
    let (query, page) = EventQuery::parse(&params, viewer.id())?;
    if !viewer.is_organizer() {
        return public::listing(&state, &query, page).await;
    }
    let (data, meta) = search::list(&state.db, &query, page).await?;
    Ok(Json(Paginated { data, meta }).into_response())
}

/// Get an event
///
/// A draft is 404 to everyone but its organizer.
#[utoipa::path(
    get, path = "/events/{id}", tag = "events",
    params(("id" = i32, Path, description = "Event id", minimum = 1)),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "The event", body = EventView),
        (status = 400, description = "The id is not an integer", body = ErrorBody),
        (status = 401, description = "A token was sent and is invalid", body = ErrorBody),
        (status = 404, description = "Event with ID 7 not found", body = ErrorBody),
    )
)]
pub async fn get_event(
    State(state): State<AppState>,
    viewer: MaybeAuthUser,
    IdPath(id): IdPath,
) -> Result<Response> {
    // An organizer reads from the primary: their own events as they just left them.
    if viewer.is_organizer() {
        let view = service::view(&state.db, id, viewer.id()).await?;
        return Ok(Json(view).into_response());
    }
    public::view(&state, id, viewer.id()).await
}

/// Create an event (ORGANIZER)
///
/// `availableSeats` starts equal to `totalSeats`, `version` at 0, `status` at DRAFT unless given.
#[utoipa::path(
    post, path = "/events", tag = "events",
    request_body = CreateEventRequest,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "The new event", body = EventView),
        (status = 400, description = "Validation failed", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 403, description = "Not an ORGANIZER", body = ErrorBody),
    )
)]
pub async fn create_event(
    State(state): State<AppState>,
    Organizer(caller): Organizer,
    ValidatedJson(body): ValidatedJson<CreateEventRequest>,
) -> Result<(StatusCode, Json<EventView>)> {
    let event = service::create(&state.db, caller.id, body).await?;
    state.event_cache.event_changed(event.event.id);
    Ok((StatusCode::CREATED, Json(event)))
}

/// Update an event (its organizer)
///
/// Partial update. `totalSeats` may not go below the seats already booked; `availableSeats`
/// moves by the same delta. Every change bumps `version`; a body that changes nothing does not.
#[utoipa::path(
    put, path = "/events/{id}", tag = "events",
    params(("id" = i32, Path, description = "Event id", minimum = 1)),
    request_body = UpdateEventRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The updated event", body = EventView),
        (status = 400, description = "Validation failed, or totalSeats below the booked seats", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 403, description = "Not the event's organizer", body = ErrorBody),
        (status = 404, description = "Event with ID 7 not found", body = ErrorBody),
        (status = 409, description = "Event was modified concurrently. Please try again.", body = ErrorBody),
    )
)]
pub async fn update_event(
    State(state): State<AppState>,
    start: RequestStart,
    Organizer(caller): Organizer,
    IdPath(id): IdPath,
    ValidatedJson(body): ValidatedJson<UpdateEventRequest>,
) -> Result<Json<EventView>> {
    // A seat edit goes through the event's lane, so it never loses the version race to the
    // event's bookings on this instance.
    let db = state.db.clone();
    let work = async move { service::update(&db, id, caller.id, body).await };
    let updated = state.bookings.solo(id, start, work).await;
    // Whatever the answer, no public read here may see the event as it was before.
    state.event_cache.event_changed(id);
    Ok(Json(updated?))
}

/// Delete an event (its organizer)
///
/// Refused while any booking row (confirmed or cancelled) exists: cancel the event instead.
#[utoipa::path(
    delete, path = "/events/{id}", tag = "events",
    params(("id" = i32, Path, description = "Event id", minimum = 1)),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Deleted", body = EventDeleted),
        (status = 400, description = "The event has bookings", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 403, description = "Not the event's organizer", body = ErrorBody),
        (status = 404, description = "Event with ID 7 not found", body = ErrorBody),
    )
)]
pub async fn delete_event(
    State(state): State<AppState>,
    Organizer(caller): Organizer,
    IdPath(id): IdPath,
) -> Result<Json<EventDeleted>> {
    let deleted = service::delete(&state.db, id, caller.id).await;
    state.event_cache.event_changed(id);
    deleted?;
    Ok(Json(EventDeleted {
        message: "Event deleted successfully",
        event_id: id,
    }))
}

/// My events (ORGANIZER)
///
/// The caller's own events of every status, newest first.
#[utoipa::path(
    get, path = "/events/organizer/my-events", tag = "events",
    params(MyEventsParams),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of the caller's events", body = Paginated<EventView>),
        (status = 400, description = "Bad page, limit or status", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 403, description = "Not an ORGANIZER", body = ErrorBody),
    )
)]
pub async fn my_events(
    State(state): State<AppState>,
    Organizer(caller): Organizer,
    QueryParams(params): QueryParams<MyEventsParams>,
) -> Result<Json<Paginated<EventView>>> {
    let (page, status) = page_and_status(
        params.page.as_deref(),
        params.limit.as_deref(),
        params.status.as_deref(),
        &EventStatus::NAMES,
    )?;
    let (data, meta) = service::list_own(&state.db, caller.id, status, page).await?;
    Ok(Json(Paginated { data, meta }))
}
