//! The rules and SQL of ticket types. Adding or deleting a type moves the event's totals in
//! the same transaction, with the version-checked write on the event row that guards every
//! seat write of the event (DESIGN.md, "One lock per event"), retried by the shared loop. A
//! change of a type (`changed`) is applied by the event's lane, grouped with its bookings.

use std::collections::HashSet;

use sqlx::{PgPool, Postgres, Transaction};

use super::model::{NewTicketType, TicketType, TypeChange, MAX_TYPES, TICKET_TYPE_COLUMNS};
use crate::concurrency::{retry_optimistic, Attempt};
use crate::db::commit::{begin, write_in_time};
use crate::error::{AppError, Result};
use crate::events::model::MAX_SEATS;
use crate::events::service::not_found as event_not_found;
use crate::http::deadline::RequestStart;

/// The event's ticket types as one JSON array in `id` order, for the event projections
/// (table alias `e`).
pub const TYPES_JSON: &str = "(SELECT COALESCE(json_agg(json_build_object(\
        'id', t.id, 'name', t.name, 'priceCents', t.price_cents, \
        'totalSeats', t.total_seats, 'availableSeats', t.available_seats) ORDER BY t.id), '[]'::json) \
     FROM ticket_types t WHERE t.event_id = e.id) AS ticket_types";

pub fn not_found(id: i32) -> AppError {
    AppError::not_found(format!("Ticket type with ID {id} not found"))
}

/// Another organizer's event.
pub fn not_yours() -> AppError {
    AppError::forbidden("You can only update your own events")
}

fn too_many_types() -> AppError {
    AppError::bad_request(format!(
        "An event can have at most {MAX_TYPES} ticket types"
    ))
}

fn too_many_seats() -> AppError {
    AppError::bad_request(format!("An event can have at most {MAX_SEATS} seats"))
}

fn name_taken() -> AppError {
    AppError::conflict("Ticket type name already used in this event")
}

fn modified_concurrently() -> AppError {
    AppError::conflict("Event was modified concurrently. Please try again.")
}

/// Names compare case-insensitively, as the unique index on `lower(name)` does.
fn same_name(a: &str, b: &str) -> bool {
    a.trim().to_lowercase() == b.trim().to_lowercase()
}

/// The rules of a whole list (POST /events): count, unique names, the event's seat limit,
/// and `totalSeats` equal to the sum when given. Returns `(name, price, seats)` per entry.
pub fn check_list(
    types: &[NewTicketType],
    total_seats: Option<i64>,
) -> Result<Vec<(String, i32, i32)>> {
    if types.len() > MAX_TYPES {
        return Err(too_many_types());
    }
    let mut names = HashSet::new();
    if !types
        .iter()
        .all(|t| names.insert(t.name.as_deref().unwrap_or_default().trim().to_lowercase()))
    {
        return Err(AppError::bad_request(
            "Ticket type names must be unique within an event",
        ));
    }
    let sum: i64 = types.iter().filter_map(|t| t.total_seats).sum();
    if sum > MAX_SEATS {
        return Err(too_many_seats());
    }
    if total_seats.is_some_and(|total| total != sum) {
        return Err(AppError::bad_request(
            "totalSeats must equal the sum of the ticket types' seats",
        ));
    }
    Ok(types.iter().map(NewTicketType::values).collect())
}

/// The event as a ticket-type change reads it, with its types.
struct Owned {
    version: i64,
    total_seats: i32,
    types: Vec<TicketType>,
}

/// Reads the event (404 when missing, 403 for another organizer) and its types.
async fn owned(tx: &mut Transaction<'_, Postgres>, event_id: i32, caller: i32) -> Result<Owned> {
    let (organizer_id, version, total_seats): (i32, i64, i32) =
        sqlx::query_as("SELECT organizer_id, version, total_seats FROM events WHERE id = $1")
            .bind(event_id)
            .fetch_optional(&mut **tx)
            .await?
            .ok_or_else(|| event_not_found(event_id))?;
    if organizer_id != caller {
        return Err(not_yours());
    }
    let types = sqlx::query_as::<_, TicketType>(&format!(
        "SELECT {TICKET_TYPE_COLUMNS} FROM ticket_types t WHERE t.event_id = $1 ORDER BY t.id"
    ))
    .bind(event_id)
    .fetch_all(&mut **tx)
    .await?;
    Ok(Owned {
        version,
        total_seats,
        types,
    })
}

/// The version-checked write on the event row: its totals move by `delta`. False when another
/// writer changed the event since it was read.
async fn move_event_totals(
    tx: &mut Transaction<'_, Postgres>,
    event_id: i32,
    version: i64,
    delta: i32,
) -> Result<bool> {
    let written = sqlx::query(
        "UPDATE events SET total_seats = total_seats + $3, available_seats = available_seats + $3, \
                version = version + 1, updated_at = now() \
         WHERE id = $1 AND version = $2",
    )
    .bind(event_id)
    .bind(version)
    .bind(delta)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    Ok(written == 1)
}

fn map_name_conflict(error: sqlx::Error) -> AppError {
    match AppError::from(error) {
        e if e.constraint() == Some("ticket_types_event_name_key") => name_taken(),
        e => e,
    }
}

/// POST /events/{id}/ticket-types: a new type; the event's totals grow by its seats.
pub async fn add(
    db: &PgPool,
    event_id: i32,
    caller: i32,
    body: &NewTicketType,
    start: RequestStart,
) -> Result<TicketType> {
    let (name, price, seats) = body.values();
    let attempts = retry_optimistic(
        || async {
            let mut tx = begin(db).await?;
            let event = owned(&mut tx, event_id, caller).await?;
            if event.types.iter().any(|t| same_name(&t.name, &name)) {
                return Err(name_taken());
            }
            if event.types.len() >= MAX_TYPES {
                return Err(too_many_types());
            }
            if i64::from(event.total_seats) + i64::from(seats) > MAX_SEATS {
                return Err(too_many_seats());
            }
            if !move_event_totals(&mut tx, event_id, event.version, seats).await? {
                return Ok(Attempt::Lost);
            }
            let created = sqlx::query_as::<_, TicketType>(&format!(
                "INSERT INTO ticket_types AS t (event_id, name, price_cents, total_seats, available_seats) \
                 VALUES ($1, $2, $3, $4, $4) RETURNING {TICKET_TYPE_COLUMNS}"
            ))
            .bind(event_id)
            .bind(&name)
            .bind(price)
            .bind(seats)
            .fetch_one(&mut *tx)
            .await
            .map_err(map_name_conflict)?;
            Ok(Attempt::Done((Some(tx), created)))
        },
        modified_concurrently,
    );
    write_in_time(start, attempts).await
}

/// PUT /events/{id}/ticket-types/{typeId}: the type after a partial `change`, checked against
/// the event's other types (`types`, this one among them) and its seat limit (`event_total`
/// seats before the change). Seats move the type's availability by the same delta. The
/// event's lane applies it in order with the bookings around it (`bookings::attempt`).
pub fn changed(
    types: &[TicketType],
    current: &TicketType,
    change: &TypeChange,
    event_total: i32,
) -> Result<TicketType> {
    let mut next = current.clone();
    if let Some(name) = &change.name {
        if types
            .iter()
            .any(|t| t.id != current.id && same_name(&t.name, name))
        {
            return Err(name_taken());
        }
        next.name = name.clone();
    }
    if let Some(price) = change.price_cents {
        next.price_cents = price;
    }
    if let Some(total) = change.total_seats {
        let booked = current.total_seats - current.available_seats;
        if total < booked {
            return Err(AppError::bad_request(format!(
                "Cannot reduce total seats below {booked} (already booked seats)"
            )));
        }
        let event_total =
            i64::from(event_total) + i64::from(total) - i64::from(current.total_seats);
        if event_total > MAX_SEATS {
            return Err(too_many_seats());
        }
        next.available_seats = current.available_seats + (total - current.total_seats);
        next.total_seats = total;
    }
    Ok(next)
}

/// DELETE /events/{id}/ticket-types/{typeId}: only a type without any booking row, and never
/// the event's last type.
pub async fn delete(
    db: &PgPool,
    event_id: i32,
    type_id: i32,
    caller: i32,
    start: RequestStart,
) -> Result<()> {
    let attempts = retry_optimistic(
        || async {
            let mut tx = begin(db).await?;
            let event = owned(&mut tx, event_id, caller).await?;
            let current = event
                .types
                .iter()
                .find(|t| t.id == type_id)
                .ok_or_else(|| not_found(type_id))?;
            let has_bookings: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM bookings WHERE event_id = $1 AND ticket_type_id = $2)",
            )
            .bind(event_id)
            .bind(type_id)
            .fetch_one(&mut *tx)
            .await?;
            if has_bookings {
                return Err(has_bookings_refusal());
            }
            if event.types.len() <= 1 {
                return Err(AppError::bad_request(
                    "An event must keep at least one ticket type",
                ));
            }
            // A booking of this type bumps the event's version, so it makes this write lose,
            // and the retry sees the booking.
            if !move_event_totals(&mut tx, event_id, event.version, -current.total_seats).await? {
                return Ok(Attempt::Lost);
            }
            sqlx::query("DELETE FROM ticket_types WHERE id = $1")
                .bind(type_id)
                .execute(&mut *tx)
                .await
                .map_err(|e| match AppError::from(e) {
                    e if e.constraint() == Some("bookings_ticket_type_fkey") => {
                        has_bookings_refusal()
                    }
                    e => e,
                })?;
            Ok(Attempt::Done((Some(tx), ())))
        },
        modified_concurrently,
    );
    write_in_time(start, attempts).await
}

fn has_bookings_refusal() -> AppError {
    AppError::bad_request("Cannot delete a ticket type with existing bookings")
}
