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
use super::rules::EventState;
use crate::error::Result;
use crate::notify::outbox::{self, Notify, CHANGED_BOOKING_KIND, NEW_BOOKING_KIND};

/// The rows the writes returned: new bookings by reference, changed ones by id.
pub(super) struct Written {
    /// In the order of the group's bookings.
    pub inserted: Vec<Booking>,
    pub changed: HashMap<i32, Booking>,
}

/// All writes of the attempt. `None` when the version check failed (a lost race).
pub(super) async fn write(
    tx: &mut Transaction<'_, Postgres>,
    event: &EventState,
    ops: &[&Op],
    effects: &[Effect],
    available: &[i32],
    hold_seconds: i32,
    notify: Option<&Notify>,
) -> Result<Option<Written>> {
    // Every booking, cancel and expiry counts as one change of the event, as if one by one.
    let changes = effects
        .iter()
        .filter(|e| {
            matches!(
                e,
                Effect::Insert { .. }
                    | Effect::Status {
                        release: Some(_),
                        ..
                    }
            )
        })
        .count() as i64;
    let delta: i32 = available.iter().sum::<i32>() - event.type_available.iter().sum::<i32>();
    let (type_ids, type_deltas): (Vec<i32>, Vec<i32>) = event
        .type_ids
        .iter()
        .zip(available.iter().zip(&event.type_available))
        .filter(|(_, (now, before))| now != before)
        .map(|(id, (now, before))| (*id, now - before))
        .unzip();
    let inserts: Vec<(usize, usize)> = effects
        .iter()
        .filter_map(|e| match e {
            Effect::Insert { op, type_index } => Some((*op, *type_index)),
            _ => None,
        })
        .collect();
    let mut inserted = Vec::new();
    if inserts.is_empty() {
        if !move_seats(tx, event, changes, delta, &type_ids, &type_deltas).await? {
            return Ok(None);
        }
    } else {
        let rows = take_seats_and_insert(
            tx,
            event,
            ops,
            &inserts,
            (changes, delta),
            (&type_ids, &type_deltas),
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

/// The version-checked write of the event and its types, without new bookings. With only
/// confirms (`changes` 0) it still checks the version, so a confirm never slips past a
/// concurrent change of the event's status.
async fn move_seats(
    tx: &mut Transaction<'_, Postgres>,
    event: &EventState,
    changes: i64,
    delta: i32,
    type_ids: &[i32],
    type_deltas: &[i32],
) -> Result<bool> {
    let written: i64 = sqlx::query_scalar(
        "WITH moved AS ( \
             UPDATE events SET available_seats = available_seats + $3, version = version + $4, \
                    updated_at = CASE WHEN $4 > 0 THEN now() ELSE updated_at END \
             WHERE id = $1 AND version = $2 RETURNING id), \
         types AS ( \
             UPDATE ticket_types tt SET available_seats = tt.available_seats + x.delta, \
                    updated_at = now() \
             FROM moved, UNNEST($5::integer[], $6::integer[]) AS x(type_id, delta) \
             WHERE tt.id = x.type_id AND tt.event_id = moved.id) \
         SELECT count(*) FROM moved",
    )
    .bind(event.id)
    .bind(event.version)
    .bind(delta)
    .bind(changes)
    .bind(type_ids)
    .bind(type_deltas)
    .fetch_one(&mut **tx)
    .await?;
    Ok(written == 1)
}

/// The version-checked write, the per-type seats and the new bookings, as one statement: the
/// UPDATE of the event matches no row when another writer changed the event since we read it,
/// and then no type is touched, nothing is inserted and no row comes back.
async fn take_seats_and_insert(
    tx: &mut Transaction<'_, Postgres>,
    event: &EventState,
    ops: &[&Op],
    inserts: &[(usize, usize)],
    (changes, delta): (i64, i32),
    (type_ids, type_deltas): (&[i32], &[i32]),
    (hold_seconds, notify): (i32, Option<&Notify>),
) -> Result<Vec<Booking>> {
    let requests: Vec<(&BookingRequest, usize)> = inserts
        .iter()
        .filter_map(|(op, type_index)| match ops[*op] {
            Op::Book(request) => Some((request, *type_index)),
            _ => None,
        })
        .collect();
    let users: Vec<i32> = requests.iter().map(|(r, _)| r.user_id).collect();
    let types: Vec<i32> = requests.iter().map(|(_, t)| event.type_ids[*t]).collect();
    let counts: Vec<i32> = requests.iter().map(|(r, _)| r.seats).collect();
    let prices: Vec<i64> = requests
        .iter()
        .map(|(r, t)| i64::from(r.seats) * i64::from(event.type_prices[*t]))
        .collect();
    let holds: Vec<bool> = requests.iter().map(|(r, _)| r.hold).collect();
    let references: Vec<Uuid> = requests.iter().map(|_| Uuid::new_v4()).collect();
    let ctes = "WITH taken AS ( \
             UPDATE events SET available_seats = available_seats + $3, \
                    version = version + $4, updated_at = now(), \
                    booking_count = booking_count + cardinality($7::integer[]) \
             WHERE id = $1 AND version = $2 RETURNING id), \
         types AS ( \
             UPDATE ticket_types tt SET available_seats = tt.available_seats + x.delta, \
                    updated_at = now() \
             FROM taken, UNNEST($5::integer[], $6::integer[]) AS x(type_id, delta) \
             WHERE tt.id = x.type_id AND tt.event_id = taken.id)";
    let insert = "INSERT INTO bookings AS b \
             (user_id, event_id, ticket_type_id, seat_count, total_price_cents, booking_reference, \
              status, expires_at, confirmed_at) \
         SELECT t.user_id, taken.id, t.type_id, t.seats, t.price, t.reference, \
                CASE WHEN t.hold THEN 'PENDING'::booking_status ELSE 'CONFIRMED' END, \
                CASE WHEN t.hold THEN now() + make_interval(secs => $13) END, \
                CASE WHEN t.hold THEN NULL ELSE now() END \
         FROM taken, UNNEST($7::integer[], $8::integer[], $9::integer[], $10::bigint[], \
                            $11::uuid[], $12::boolean[]) \
              AS t(user_id, type_id, seats, price, reference, hold)";
    let sql = with_notifications(ctes, insert, notify.is_some(), NEW_BOOKING_KIND, 14);
    let query = sqlx::query_as::<_, Booking>(&sql)
        .bind(event.id)
        .bind(event.version)
        .bind(delta)
        .bind(changes)
        .bind(type_ids)
        .bind(type_deltas)
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
