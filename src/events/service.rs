//! The SQL of events and their rules: who sees what, who changes what, and seat edits that
//! are version-checked like bookings.

use sqlx::{PgExecutor, PgPool, Postgres, QueryBuilder};

use super::model::{
    CreateEventRequest, Event, EventStatus, EventView, EventViewRow, UpdateEventRequest,
};
use super::ticket_types::service::{check_list, TYPES_JSON};
use crate::concurrency::{retry_optimistic, Attempt};
use crate::error::{AppError, Result};
use crate::http::{Page, PageMeta};
use crate::time;

/// The columns of `Event` (table alias `e`).
const EVENT_COLUMNS: &str = "e.id, e.title, e.description, e.venue, e.city, e.currency, \
    e.total_seats, e.available_seats, e.status, e.version, e.event_date, e.organizer_id, \
    e.created_at, e.updated_at";

/// The one projection of the public view: every read of `EventView` goes through it.
pub fn view_select() -> String {
    view_select_with("")
}

/// `view_select` with more columns (`extra` starts with a comma).
pub fn view_select_with(extra: &str) -> String {
    format!(
        "SELECT {EVENT_COLUMNS}, {TYPES_JSON}, \
                u.firstname AS organizer_firstname, u.lastname AS organizer_lastname, \
                e.booking_count::bigint AS booking_count{extra} \
         FROM events e JOIN users u ON u.id = e.organizer_id"
    )
}

pub fn not_found(id: i32) -> AppError {
    AppError::not_found(format!("Event with ID {id} not found"))
}

/// An organizer's own events of every status (or of `status`), newest first. The SQL holds
/// only the filters given, so its plan can use the organizer's index.
pub async fn list_own(
    db: &PgPool,
    organizer_id: i32,
    status: Option<EventStatus>,
    page: Page,
) -> Result<(Vec<EventView>, PageMeta)> {
    let filter = |sql: &mut QueryBuilder<'_, Postgres>| {
        sql.push(" WHERE e.organizer_id = ").push_bind(organizer_id);
        if let Some(status) = status {
            sql.push(" AND e.status = ").push_bind(status);
        }
    };
    let mut rows_sql = QueryBuilder::new(view_select());
    filter(&mut rows_sql);
    rows_sql
        .push(" ORDER BY e.created_at DESC, e.id DESC LIMIT ")
        .push_bind(page.limit)
        .push(" OFFSET ")
        .push_bind(page.offset());
    let rows = rows_sql
        .build_query_as::<EventViewRow>()
        .fetch_all(db)
        .await?;
    let mut count_sql = QueryBuilder::new("SELECT count(*) FROM events e");
    filter(&mut count_sql);
    let total: i64 = count_sql.build_query_scalar().fetch_one(db).await?;
    Ok((
        rows.into_iter().map(EventView::from).collect(),
        page.meta(total),
    ))
}

/// The public view of one event; a draft is "not found" for anyone but its organizer.
pub async fn view(db: &PgPool, id: i32, viewer: Option<i32>) -> Result<EventView> {
    let sql = format!(
        "{} WHERE e.id = $1 AND (e.status <> 'DRAFT' OR e.organizer_id = $2)",
        view_select()
    );
    sqlx::query_as::<_, EventViewRow>(&sql)
        .bind(id)
        .bind(viewer)
        .fetch_optional(db)
        .await?
        .map(EventView::from)
        .ok_or_else(|| not_found(id))
}

/// Creates the event and its ticket types in one statement: with no `ticketTypes`, one
/// "General" type at price 0 holding all its seats.
pub async fn create(db: &PgPool, organizer_id: i32, body: CreateEventRequest) -> Result<EventView> {
    let status = body
        .status
        .as_deref()
        .and_then(EventStatus::parse)
        .unwrap_or(EventStatus::Draft);
    let types = match &body.ticket_types {
        Some(types) => check_list(types, body.total_seats)?,
        None => vec![("General".to_string(), 0, seats(body.total_seats)?)],
    };
    let total: i32 = types.iter().map(|(_, _, seats)| seats).sum();
    let (names, rest): (Vec<String>, Vec<(i32, i32)>) =
        types.into_iter().map(|(n, p, s)| (n, (p, s))).unzip();
    let (prices, type_seats): (Vec<i32>, Vec<i32>) = rest.into_iter().unzip();
    let id: i32 = sqlx::query_scalar(
        "WITH e AS ( \
             INSERT INTO events (title, description, venue, city, currency, total_seats, \
                                 available_seats, status, event_date, organizer_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $6, $7, $8, $9) RETURNING id), \
         t AS ( \
             INSERT INTO ticket_types (event_id, name, price_cents, total_seats, available_seats) \
             SELECT e.id, x.name, x.price, x.seats, x.seats \
             FROM e, UNNEST($10::text[], $11::integer[], $12::integer[]) \
                     WITH ORDINALITY AS x(name, price, seats, n) \
             ORDER BY x.n) \
         SELECT id FROM e",
    )
    .bind(body.title.as_deref().map(str::trim))
    .bind(body.description)
    .bind(body.venue)
    .bind(body.city)
    .bind(body.currency.as_deref().unwrap_or("USD"))
    .bind(total)
    .bind(status)
    .bind(body.event_date.as_deref().and_then(time::parse))
    .bind(organizer_id)
    .bind(&names)
    .bind(&prices)
    .bind(&type_seats)
    .fetch_one(db)
    .await
    .map_err(|e| match AppError::from(e) {
        e if e.constraint() == Some("ticket_types_event_name_key") => {
            AppError::bad_request("Ticket type names must be unique within an event")
        }
        e => e,
    })?;
    view(db, id, Some(organizer_id)).await
}

pub async fn find<'e>(db: impl PgExecutor<'e>, id: i32) -> Result<Option<Event>> {
    Ok(sqlx::query_as::<_, Event>(&format!(
        "SELECT {EVENT_COLUMNS} FROM events e WHERE e.id = $1"
    ))
    .bind(id)
    .fetch_optional(db)
    .await?)
}

/// The event, if `caller` organizes it: 404 when it does not exist, 403 with `forbidden` when
/// it belongs to someone else.
pub async fn owned(db: &PgPool, id: i32, caller: i32, forbidden: &str) -> Result<Event> {
    let event = find(db, id).await?.ok_or_else(|| not_found(id))?;
    if event.organizer_id != caller {
        return Err(AppError::forbidden(forbidden));
    }
    Ok(event)
}

/// Applies a partial update with a version-checked write, retried like a booking, so a seat
/// edit racing with bookings can never break `available + booked = total`. A seat change
/// resizes the event's only ticket type in the same statement.
pub async fn update(
    db: &PgPool,
    id: i32,
    caller: i32,
    body: UpdateEventRequest,
) -> Result<EventView> {
    if body.ticket_types.is_some() {
        return Err(AppError::bad_request(
            "ticketTypes cannot be changed here: use /events/{id}/ticket-types",
        ));
    }
    retry_optimistic(
        || async {
            let current = owned(db, id, caller, "You can only update your own events").await?;
            let resizing = body
                .total_seats
                .flatten()
                .is_some_and(|total| total != i64::from(current.total_seats));
            if resizing && type_count(db, id).await? > 1 {
                return Err(AppError::bad_request(
                    "This event has several ticket types: resize them one by one",
                ));
            }
            let Some(next) = apply(&current, &body)? else {
                return Ok(Attempt::Done(()));
            };
            let resized = next.total_seats != current.total_seats;
            // With one type, the type's totals are the event's.
            let written: i64 = sqlx::query_scalar(
                "WITH e AS ( \
                     UPDATE events SET title = $3, description = $4, venue = $5, city = $6, \
                            currency = $7, total_seats = $8, available_seats = $9, status = $10, \
                            event_date = $11, version = version + 1, updated_at = now() \
                     WHERE id = $1 AND version = $2 \
                     RETURNING id, total_seats, available_seats), \
                 t AS ( \
                     UPDATE ticket_types t SET total_seats = e.total_seats, \
                            available_seats = e.available_seats, updated_at = now() \
                     FROM e WHERE t.event_id = e.id AND $12) \
                 SELECT count(*) FROM e",
            )
            .bind(id)
            .bind(current.version)
            .bind(&next.title)
            .bind(&next.description)
            .bind(&next.venue)
            .bind(&next.city)
            .bind(&next.currency)
            .bind(next.total_seats)
            .bind(next.available_seats)
            .bind(next.status)
            .bind(next.event_date)
            .bind(resized)
            .fetch_one(db)
            .await?;
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

async fn type_count(db: &PgPool, event_id: i32) -> Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT count(*) FROM ticket_types WHERE event_id = $1")
            .bind(event_id)
            .fetch_one(db)
            .await?,
    )
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
    if let Some(venue) = &body.venue {
        next.venue = venue.clone();
    }
    if let Some(city) = &body.city {
        next.city = city.clone();
    }
    if let Some(Some(currency)) = &body.currency {
        next.currency = currency.clone();
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
        || next.venue != current.venue
        || next.city != current.city
        || next.currency != current.currency
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
    // The NOT EXISTS guard answers the common case; the foreign key closes the race with a
    // booking inserted concurrently: the event's types go with it (ON DELETE CASCADE), and a
    // booking's type may not (bookings_ticket_type_fkey, ON DELETE RESTRICT).
    let deleted = sqlx::query(
        "DELETE FROM events WHERE id = $1 AND NOT EXISTS (SELECT 1 FROM bookings WHERE event_id = $1)",
    )
    .bind(id)
    .execute(db)
    .await
    .map_err(|e| match AppError::from(e) {
        e if e.constraint() == Some("bookings_ticket_type_fkey") => refused(),
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
