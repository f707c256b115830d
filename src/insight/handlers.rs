//! The organizer-insight routes. Handlers only translate HTTP to service calls.

use axum::body::Body;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::model::{Attendee, AttendeeParams, EventStats};
use super::service;
use crate::auth::Organizer;
use crate::error::{AppError, ErrorBody, Result};
use crate::http::{IdPath, Page, Paginated, QueryParams};
use crate::state::AppState;

/// Event statistics (its organizer)
///
/// Seats, revenue, bookings by status, check-ins, per ticket type, and sales per UTC day.
#[utoipa::path(
    get, path = "/events/{id}/stats", tag = "insight",
    params(("id" = i32, Path, description = "Event id", minimum = 1)),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The event's figures", body = EventStats),
        (status = 400, description = "The id is not an integer", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 403, description = "You can only view your own events", body = ErrorBody),
        (status = 404, description = "Event with ID 7 not found", body = ErrorBody),
    )
)]
pub async fn stats(
    State(state): State<AppState>,
    Organizer(caller): Organizer,
    IdPath(event_id): IdPath,
) -> Result<Json<EventStats>> {
    Ok(Json(
        service::stats(&state.db, &state.stats, event_id, caller.id).await?,
    ))
}

/// Attendees (its organizer)
///
/// CONFIRMED bookings, newest first, a page at a time; with `format=csv`, every attendee as
/// `text/csv`, streamed.
#[utoipa::path(
    get, path = "/events/{id}/attendees", tag = "insight",
    params(("id" = i32, Path, description = "Event id", minimum = 1), AttendeeParams),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of attendees, or (format=csv) the CSV of all of them",
            content((Paginated<Attendee> = "application/json"), (String = "text/csv"))),
        (status = 400, description = "Bad id, page, limit or format", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 403, description = "You can only view your own events", body = ErrorBody),
        (status = 404, description = "Event with ID 7 not found", body = ErrorBody),
    )
)]
pub async fn attendees(
    State(state): State<AppState>,
    Organizer(caller): Organizer,
    IdPath(event_id): IdPath,
    QueryParams(params): QueryParams<AttendeeParams>,
) -> Result<Response> {
    let mut errors = Vec::new();
    let page = Page::parse(params.page.as_deref(), params.limit.as_deref(), &mut errors);
    let csv = match params.format.as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(_) => {
            errors.push("format must be one of the following values: json, csv".into());
            false
        }
    };
    if !errors.is_empty() {
        return Err(AppError::Validation(errors));
    }
    if csv {
        let lines = service::attendees_csv(state.db.clone(), event_id, caller.id).await?;
        let headers = [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"event-{event_id}-attendees.csv\""),
            ),
        ];
        return Ok((headers, Body::from_stream(lines)).into_response());
    }
    let (rows, meta) = service::attendees(&state.db, event_id, caller.id, page).await?;
    let data = rows.into_iter().map(Attendee::from).collect();
    Ok(Json(Paginated { data, meta }).into_response())
}
