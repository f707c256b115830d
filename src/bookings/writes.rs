//! The writes of one attempt, after its rules have decided what each operation changes: the
//! version-checked UPDATE of the event (with its ticket types' seats), the new bookings, and the
//! status changes, each conditional on what was read. Any of them finding the state changed
//! under it means a lost race: the caller rolls back and retries.

use std::collections::HashMap;

use sqlx::{Postgres, Transaction};
use uuid::Uuid;

use super::attempt::Effect;
use super::job::{BookingRequest, Op};
use super::model::{Booking, BookingStatus, BOOKING_COLUMNS};
use super::snapshot::EventState;
use crate::error::Result;
use crate::events::ticket_types::model::TicketType;
use crate::notify::outbox::{self, Notify, CHANGED_BOOKING_KIND, NEW_BOOKING_KIND};

/// The rows the writes returned: new bookings by reference, changed ones by id.
pub(super) struct Written {
    /// In the order of the group's bookings.
    pub inserted: Vec<Booking>,
    pub changed: HashMap<i32, Booking>,
}

/// All writes of the attempt, to leave the event's ticket types as `types`. `None` when the
/// version check failed (a lost race).
pub(super) async fn write(
    tx: &mut Transaction<'_, Postgres>,
    event: &EventState,
    ops: &[&Op],
    effects: &[Effect],
    types: &[TicketType],
    hold_seconds: i32,
    notify: Option<&Notify>,
) -> Result<Option<Written>> {
    // Every booking, cancel, expiry and edit counts as one change of the event, as if one by
    // one.
    let changes = effects
        .iter()
        .filter(|e| {
            matches!(
                e,
                Effect::Insert { .. }
                    | Effect::Edit { .. }
                    | Effect::Status {
                        release: Some(_),
                        ..
                    }
            )
        })
        .count() as i64;
    let moved = TypeMoves::between(event, types);
    let inserts: Vec<(usize, usize, i32)> = effects
        .iter()
        .filter_map(|e| match e {
            Effect::Insert {
                op,
                type_index,
                price_cents,
            } => Some((*op, *type_index, *price_cents)),
            _ => None,
        })
        .collect();
    let mut inserted = Vec::new();
    if inserts.is_empty() {
        if !move_seats(tx, event, changes, &moved).await? {
            return Ok(None);
        }
    } else {
        let rows = take_seats_and_insert(
            tx,
            event,
            ops,
            &inserts,
            (changes, &moved),
            (hold_seconds, notify),
        )
        .await?;
        if rows.is_empty() {
            return Ok(None);
        }
        inserted = rows;
    }
    let changed = change_statuses(tx, effects, notify).await?;
    let expected = effects
        .iter()
        .filter(|e| matches!(e, Effect::Status { .. }))
        .count();
    // Another instance changed one of these bookings since we read it: start over.
    if changed.len() != expected {
        return Ok(None);
    }
    Ok(Some(Written { inserted, changed }))
}

/// How the event's ticket types (and so the event's totals) move: the changed types only.
struct TypeMoves {
    /// Change of the event's available and total seats.
    available: i32,
    total: i32,
    ids: Vec<i32>,
    available_deltas: Vec<i32>,
    total_deltas: Vec<i32>,
    names: Vec<String>,
    prices: Vec<i32>,
}

impl TypeMoves {
    /// From the types as `event` read them to `types`.
    fn between(event: &EventState, types: &[TicketType]) -> Self {
        let before = event.types();
        let mut moves = Self {
            available: 0,
            total: 0,
            ids: Vec::new(),
            available_deltas: Vec::new(),
            total_deltas: Vec::new(),
            names: Vec::new(),
            prices: Vec::new(),
        };
        for (now, before) in types.iter().zip(&before) {
            if now == before {
                continue;
            }
            let available = now.available_seats - before.available_seats;
            let total = now.total_seats - before.total_seats;
            moves.available += available;
            moves.total += total;
            moves.ids.push(now.id);
            moves.available_deltas.push(available);
            moves.total_deltas.push(total);
            moves.names.push(now.name.clone());
            moves.prices.push(now.price_cents);
        }
        moves
    }
}

/// The ticket types' UPDATE, a CTE after `{event}` (the event's version-checked UPDATE,
/// `RETURNING id`); its arrays are parameters `$first` to `$first + 4`.
fn types_cte(event: &str, first: usize) -> String {
    let [ids, available, total, names, prices] = [0, 1, 2, 3, 4].map(|i| first + i);
    format!(
        "types AS ( \
             UPDATE ticket_types tt SET available_seats = tt.available_seats + x.available, \
                    total_seats = tt.total_seats + x.total, name = x.name, \
                    price_cents = x.price, updated_at = now() \
             FROM {event}, UNNEST(${ids}::integer[], ${available}::integer[], \
                        ${total}::integer[], ${names}::text[], ${prices}::integer[]) \
                  AS x(type_id, available, total, name, price) \
             WHERE tt.id = x.type_id AND tt.event_id = {event}.id)"
    )
}

fn bind_moves<'q, O>(
    query: sqlx::query::QueryAs<'q, Postgres, O, sqlx::postgres::PgArguments>,
    moved: &'q TypeMoves,
) -> sqlx::query::QueryAs<'q, Postgres, O, sqlx::postgres::PgArguments> {
    query
        .bind(&moved.ids)
        .bind(&moved.available_deltas)
        .bind(&moved.total_deltas)
        .bind(&moved.names)
        .bind(&moved.prices)
}

/// The version-checked write of the event and its types, without new bookings. With only
/// confirms (`changes` 0) it still checks the version, so a confirm never slips past a
/// concurrent change of the event's status.
async fn move_seats(
    tx: &mut Transaction<'_, Postgres>,
    event: &EventState,
    changes: i64,
    moved: &TypeMoves,
) -> Result<bool> {
    let sql = format!(
        "WITH moved AS ( \
             UPDATE events SET available_seats = available_seats + $3, \
                    total_seats = total_seats + $4, version = version + $5, \
                    updated_at = CASE WHEN $5 > 0 THEN now() ELSE updated_at END \
             WHERE id = $1 AND version = $2 RETURNING id), \
         {} \
         SELECT count(*) FROM moved",
        types_cte("moved", 6)
    );
    let query = sqlx::query_as::<_, (i64,)>(&sql)
        .bind(event.id)
        .bind(event.version)
        .bind(moved.available)
        .bind(moved.total)
        .bind(changes);
    let (written,) = bind_moves(query, moved).fetch_one(&mut **tx).await?;
    Ok(written == 1)
}

/// The version-checked write, the per-type seats and the new bookings, as one statement: the
/// UPDATE of the event matches no row when another writer changed the event since we read it,
/// and then no type is touched, nothing is inserted and no row comes back.
async fn take_seats_and_insert(
    tx: &mut Transaction<'_, Postgres>,
    event: &EventState,
    ops: &[&Op],
    inserts: &[(usize, usize, i32)],
    (changes, moved): (i64, &TypeMoves),
    (hold_seconds, notify): (i32, Option<&Notify>),
) -> Result<Vec<Booking>> {
    let requests: Vec<(&BookingRequest, usize, i32)> = inserts
        .iter()
        .filter_map(|(op, type_index, price)| match ops[*op] {
            Op::Book(request) => Some((request, *type_index, *price)),
            _ => None,
        })
        .collect();
    let users: Vec<i32> = requests.iter().map(|(r, _, _)| r.user_id).collect();
    let types: Vec<i32> = requests
        .iter()
        .map(|(_, t, _)| event.type_ids[*t])
        .collect();
    let counts: Vec<i32> = requests.iter().map(|(r, _, _)| r.seats).collect();
    let prices: Vec<i64> = requests
        .iter()
        .map(|(r, _, price)| i64::from(r.seats) * i64::from(*price))
        .collect();
    let holds: Vec<bool> = requests.iter().map(|(r, _, _)| r.hold).collect();
    let references: Vec<Uuid> = requests.iter().map(|_| Uuid::new_v4()).collect();
    let ctes = format!(
        "WITH taken AS ( \
             UPDATE events SET available_seats = available_seats + $3, \
                    total_seats = total_seats + $4, version = version + $5, \
                    updated_at = now(), \
                    booking_count = booking_count + cardinality($11::integer[]) \
             WHERE id = $1 AND version = $2 RETURNING id), \
         {}",
        types_cte("taken", 6)
    );
    let insert = "INSERT INTO bookings AS b \
             (user_id, event_id, ticket_type_id, seat_count, total_price_cents, booking_reference, \
              status, expires_at, confirmed_at) \
         SELECT t.user_id, taken.id, t.type_id, t.seats, t.price, t.reference, \
                CASE WHEN t.hold THEN 'PENDING'::booking_status ELSE 'CONFIRMED' END, \
                CASE WHEN t.hold THEN now() + make_interval(secs => $17) END, \
                CASE WHEN t.hold THEN NULL ELSE now() END \
         FROM taken, UNNEST($11::integer[], $12::integer[], $13::integer[], $14::bigint[], \
                            $15::uuid[], $16::boolean[]) \
              AS t(user_id, type_id, seats, price, reference, hold)";
    let sql = with_notifications(&ctes, insert, notify.is_some(), NEW_BOOKING_KIND, 18);
    let query = sqlx::query_as::<_, Booking>(&sql)
        .bind(event.id)
        .bind(event.version)
        .bind(moved.available)
        .bind(moved.total)
        .bind(changes);
    let query = bind_moves(query, moved)
        .bind(&users)
        .bind(&types)
        .bind(&counts)
        .bind(&prices)
        .bind(&references)
        .bind(&holds)
        .bind(f64::from(hold_seconds));
    let mut rows = bind_notify(query, notify).fetch_all(&mut **tx).await?;
    // RETURNING's order is not promised: put the rows back in request order.
    rows.sort_by_key(|row| references.iter().position(|r| *r == row.booking_reference));
    Ok(rows)
}

/// Each status change, conditional on the status it was read with, so a booking changed by
/// another instance in between is not changed again here.
async fn change_statuses(
    tx: &mut Transaction<'_, Postgres>,
    effects: &[Effect],
    notify: Option<&Notify>,
) -> Result<HashMap<i32, Booking>> {
    let mut ids = Vec::new();
    let mut from = Vec::new();
    let mut to = Vec::new();
    for effect in effects {
        if let Effect::Status {
            booking_id,
            from: f,
            to: t,
            ..
        } = effect
        {
            ids.push(*booking_id);
            from.push(status_name(*f));
            to.push(status_name(*t));
        }
    }
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let update = "UPDATE bookings AS b SET status = x.to_status::booking_status, \
                expires_at = NULL, \
                confirmed_at = CASE WHEN x.to_status = 'CONFIRMED' THEN now() \
                                    ELSE b.confirmed_at END, \
                updated_at = now() \
         FROM UNNEST($1::integer[], $2::text[], $3::text[]) AS x(id, from_status, to_status) \
         WHERE b.id = x.id AND b.status = x.from_status::booking_status";
    let sql = with_notifications("", update, notify.is_some(), CHANGED_BOOKING_KIND, 4);
    let query = sqlx::query_as::<_, Booking>(&sql)
        .bind(&ids)
        .bind(&from)
        .bind(&to);
    let rows = bind_notify(query, notify).fetch_all(&mut **tx).await?;
    Ok(rows.into_iter().map(|b| (b.id, b)).collect())
}

/// `write` (an INSERT or UPDATE of `bookings AS b`, after the CTEs `ctes` — a `WITH` list, or
/// empty) returning the booking columns, with the outbox row of what it changed written by the
/// same statement (one batch row) when `notify` (parameters from `$first`).
fn with_notifications(ctes: &str, write: &str, notify: bool, kind: &str, first: usize) -> String {
    if !notify {
        return format!("{ctes} {write} RETURNING {BOOKING_COLUMNS}");
    }
    // The changed rows become one more CTE of the list.
    let ctes = if ctes.is_empty() {
        "WITH".to_string()
    } else {
        format!("{ctes},")
    };
    format!(
        "{ctes} changed AS ({write} RETURNING b), \
         outbox AS ({}) \
         SELECT {BOOKING_COLUMNS} FROM (SELECT (c.b).* FROM changed c) b",
        outbox::batch_sql("changed", kind, first)
    )
}

fn bind_notify<'q, O>(
    query: sqlx::query::QueryAs<'q, Postgres, O, sqlx::postgres::PgArguments>,
    notify: Option<&'q Notify>,
) -> sqlx::query::QueryAs<'q, Postgres, O, sqlx::postgres::PgArguments> {
    match notify {
        Some(n) => query.bind(n.organizer_id).bind(&n.event_json).bind(n.email),
        None => query,
    }
}

fn status_name(status: BookingStatus) -> &'static str {
    match status {
        BookingStatus::Confirmed => "CONFIRMED",
        BookingStatus::Cancelled => "CANCELLED",
        BookingStatus::Pending => "PENDING",
        BookingStatus::Expired => "EXPIRED",
    }
}
