//! The SQL of events and their rules: who sees what, who changes what, and seat edits that
//! are version-checked like bookings.

use sqlx::{PgExecutor, PgPool};

use super::model::{
    CreateEventRequest, Event, EventStatus, EventView, EventViewRow, UpdateEventRequest,
};
use crate::concurrency::{retry_optimistic, Attempt};
use crate::error::{AppError, Result};
use crate::http::{Page, PageMeta};
use crate::time;

/// The one projection of the public view: every read of `EventView` goes through it.
const VIEW_SELECT: &str = "\
    SELECT e.id, e.title, e.description, e.total_seats, e.available_seats, e.status, e.version, \
           e.event_date, e.organizer_id, e.created_at, e.updated_at, \
           u.firstname AS organizer_firstname, u.lastname AS organizer_lastname, \
           (SELECT count(*) FROM bookings b WHERE b.event_id = e.id) AS booking_count \
    FROM events e JOIN users u ON u.id = e.organizer_id";

/// Drafts exist only for their own organizer (`$3` is the viewer, NULL when anonymous).
const LIST_FILTER: &str = "\
    WHERE ($1::event_status IS NULL OR e.status = $1) \
      AND ($2::integer IS NULL OR e.organizer_id = $2) \
      AND (e.status <> 'DRAFT' OR e.organizer_id = $3)";

pub struct EventFilter {
    pub status: Option<EventStatus>,
    pub organizer_id: Option<i32>,
    pub viewer: Option<i32>,
}

pub fn not_found(id: i32) -> AppError {
    AppError::not_found(format!("Event with ID {id} not found"))
}

pub async fn list(
    db: &PgPool,
    filter: EventFilter,
    page: Page,
) -> Result<(Vec<EventView>, PageMeta)> {
    let rows_sql = format!(
        "{VIEW_SELECT} {LIST_FILTER} ORDER BY e.created_at DESC, e.id DESC LIMIT $4 OFFSET $5"
    );
    let rows = sqlx::query_as::<_, EventViewRow>(&rows_sql)
        .bind(filter.status)
        .bind(filter.organizer_id)
        .bind(filter.viewer)
        .bind(page.limit)
        .bind(page.offset())
        .fetch_all(db)
        .await?;
    let count_sql = format!("SELECT count(*) FROM events e {LIST_FILTER}");
    let total: i64 = sqlx::query_scalar(&count_sql)
        .bind(filter.status)
        .bind(filter.organizer_id)
        .bind(filter.viewer)
        .fetch_one(db)
        .await?;
    Ok((
        rows.into_iter().map(EventView::from).collect(),
        page.meta(total),
    ))
}

/// The public view of one event; a draft is "not found" for anyone but its organizer.
pub async fn view(db: &PgPool, id: i32, viewer: Option<i32>) -> Result<EventView> {
    let sql =
        format!("{VIEW_SELECT} WHERE e.id = $1 AND (e.status <> 'DRAFT' OR e.organizer_id = $2)");
    sqlx::query_as::<_, EventViewRow>(&sql)
        .bind(id)
        .bind(viewer)
        .fetch_optional(db)
        .await?
        .map(EventView::from)
        .ok_or_else(|| not_found(id))
}

pub async fn create(db: &PgPool, organizer_id: i32, body: CreateEventRequest) -> Result<EventView> {
    let status = body
        .status
        .as_deref()
        .and_then(EventStatus::parse)
        .unwrap_or(EventStatus::Draft);
    let id: i32 = sqlx::query_scalar(
        "INSERT INTO events (title, description, total_seats, available_seats, status, event_date, organizer_id) \
         VALUES ($1, $2, $3, $3, $4, $5, $6) RETURNING id",
    )
    .bind(body.title.as_deref().map(str::trim))
    .bind(body.description)
    .bind(seats(body.total_seats)?)
    .bind(status)
    .bind(body.event_date.as_deref().and_then(time::parse))
    .bind(organizer_id)
    .fetch_one(db)
    .await?;
    view(db, id, Some(organizer_id)).await
}

pub async fn find<'e>(db: impl PgExecutor<'e>, id: i32) -> Result<Option<Event>> {
    Ok(sqlx::query_as::<_, Event>(
        "SELECT id, title, description, total_seats, available_seats, status, version, \
                event_date, organizer_id, created_at, updated_at \
         FROM events WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(db)
    .await?)
}

/// The event, if `caller` organizes it: 404 when it does not exist, 403 with `forbidden` when
/// it belongs to someone else.
async fn owned(db: &PgPool, id: i32, caller: i32, forbidden: &str) -> Result<Event> {
    let event = find(db, id).await?.ok_or_else(|| not_found(id))?;
    if event.organizer_id != caller {
        return Err(AppError::forbidden(forbidden));
    }
    Ok(event)
}

/// Applies a partial update with a version-checked write, retried like a booking, so a seat
/// edit racing with bookings can never break `available + booked = total`.
pub async fn update(
    db: &PgPool,
    id: i32,
    caller: i32,
    body: UpdateEventRequest,
) -> Result<EventView> {
    retry_optimistic(
        || async {
            let current = owned(db, id, caller, "You can only update your own events").await?;
            let Some(next) = apply(&current, &body)? else {
                return Ok(Attempt::Done(()));
            };
            let written = sqlx::query(
                "UPDATE events SET title = $3, description = $4, total_seats = $5, \
                        available_seats = $6, status = $7, event_date = $8, \
                        version = version + 1, updated_at = now() \
                 WHERE id = $1 AND version = $2",
            )
            .bind(id)
            .bind(current.version)
            .bind(&next.title)
            .bind(&next.description)
            .bind(next.total_seats)
            .bind(next.available_seats)
            .bind(next.status)
            .bind(next.event_date)
            .execute(db)
            .await?
            .rows_affected();
            Ok(if written == 1 {
                Attempt::Done(())
            } else {
                Attempt::Lost
            })
        },
        || AppError::conflict("Event was modified concurrently. Please try again."),
    )
    .await?;
    view(db, id, Some(caller)).await
}

/// The event after `body`, or `None` when the body changes nothing (and so bumps no version).
fn apply(current: &Event, body: &UpdateEventRequest) -> Result<Option<Event>> {
    let mut next = current.clone();
    if let Some(Some(title)) = &body.title {
        next.title = title.trim().to_string();
    }
    if let Some(description) = &body.description {
        next.description = description.clone();
    }
    if let Some(Some(status)) = &body.status {
        next.status = EventStatus::parse(status).unwrap_or(current.status);
    }
    if let Some(Some(date)) = &body.event_date {
        next.event_date = time::parse(date);
    }
    if let Some(Some(total)) = body.total_seats {
        let total = seats(Some(total))?;
        let booked = current.total_seats - current.available_seats;
        if total < booked {
            return Err(AppError::bad_request(format!(
                "Cannot reduce total seats below {booked} (already booked seats)"
            )));
        }
        next.available_seats = current.available_seats + (total - current.total_seats);
        next.total_seats = total;
    }
    let changed = next.title != current.title
        || next.description != current.description
        || next.total_seats != current.total_seats
        || next.status != current.status
        || next.event_date != current.event_date;
    Ok(changed.then_some(next))
}

/// Deletes an event that has no booking rows at all (confirmed or cancelled).
pub async fn delete(db: &PgPool, id: i32, caller: i32) -> Result<()> {
    owned(db, id, caller, "You can only delete your own events").await?;
    let refused = || {
        AppError::bad_request(
            "Cannot delete event with existing bookings. Cancel all bookings first or mark event as cancelled.",
        )
    };
    // The NOT EXISTS guard answers the common case; the foreign key (ON DELETE RESTRICT) closes
    // the race with a booking inserted concurrently.
    let deleted = sqlx::query(
        "DELETE FROM events WHERE id = $1 AND NOT EXISTS (SELECT 1 FROM bookings WHERE event_id = $1)",
    )
    .bind(id)
    .execute(db)
    .await
    .map_err(|e| match AppError::from(e) {
        e if e.constraint() == Some("bookings_event_id_fkey") => refused(),
        e => e,
    })?
    .rows_affected();
    if deleted == 0 {
        return Err(match find(db, id).await? {
            Some(_) => refused(),
            None => not_found(id),
        });
    }
    Ok(())
}

/// Seat counts were range-checked by validation; this only converts the type.
fn seats(value: Option<i64>) -> Result<i32> {
    value
        .and_then(|v| i32::try_from(v).ok())
        .ok_or_else(|| AppError::bad_request("totalSeats must be an integer number"))
}
