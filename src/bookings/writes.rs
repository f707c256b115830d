//! The writes of one attempt, after its rules have decided what each operation changes, as
//! one statement: the version-checked UPDATE of the event, its ticket types, the new bookings,
//! the status changes (each conditional on the status it was read with), and their
//! notifications. When the event's version changed since it was read, nothing is written and
//! no row comes back; when a booking's status changed, that booking is not returned. Either
//! is a lost race: the caller rolls back and retries.

use std::collections::HashMap;

use sqlx::postgres::{PgArguments, PgRow};
use sqlx::query::Query;
use sqlx::{FromRow, Postgres, Row, Transaction};
use uuid::Uuid;

use super::attempt::Effect;
use super::job::Op;
use super::model::{Booking, BookingStatus, BOOKING_COLUMNS};
use super::snapshot::EventState;
use crate::error::Result;
use crate::events::ticket_types::model::TicketType;
use crate::notify::outbox::{self, Notify, CHANGED_BOOKING_KIND, NEW_BOOKING_KIND};

type PgQuery<'q> = Query<'q, Postgres, PgArguments>;

/// The rows the writes returned: new bookings by reference, changed ones by id.
pub(super) struct Written {
    /// In the order of the group's bookings.
    pub inserted: Vec<Booking>,
    pub changed: HashMap<i32, Booking>,
}

/// All writes of the attempt, to leave the event's ticket types as `types`. `None` when the
/// attempt lost a race.
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
    // one. With only confirms (0 changes) the version is still checked, so a confirm never
    // slips past a concurrent change of the event's status.
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
    let new = NewBookings::of(event, ops, effects, hold_seconds);
    let statuses = StatusChanges::of(effects);
    let sql = statement(Shape {
        inserts: !new.references.is_empty(),
        status_changes: !statuses.ids.is_empty(),
        notify: notify.is_some(),
    });
    let query = sqlx::query(&sql)
        .bind(event.id)
        .bind(event.version)
        .bind(moved.available)
        .bind(moved.total)
        .bind(changes);
    let query = statuses.bind(new.bind(moved.bind(query)));
    let query = match notify {
        Some(n) => query.bind(n.organizer_id).bind(&n.event_json).bind(n.email),
        None => query,
    };
    let rows = query.fetch_all(&mut **tx).await?;
    if rows.is_empty() {
        return Ok(None);
    }
    let mut inserted = Vec::with_capacity(new.references.len());
    let mut changed = HashMap::with_capacity(statuses.ids.len());
    for row in &rows {
        match returned(row)? {
            Returned::Event => {}
            Returned::Inserted(booking) => inserted.push(booking),
            Returned::Changed(booking) => {
                changed.insert(booking.id, booking);
            }
        }
    }
    // Another instance changed one of these bookings since we read it: start over.
    if changed.len() != statuses.ids.len() || inserted.len() != new.references.len() {
        return Ok(None);
    }
    // RETURNING's order is not promised: put the rows back in request order.
    inserted.sort_by_key(|row| {
        new.references
            .iter()
            .position(|r| *r == row.booking_reference)
    });
    Ok(Some(Written { inserted, changed }))
}

/// Which writes a group's statement holds.
#[derive(Clone, Copy)]
struct Shape {
    inserts: bool,
    status_changes: bool,
    notify: bool,
}

/// The statement of `write`, with only the writes the group needs (a smaller statement starts
/// faster, and a single write returns its rows directly). Parameters: $1–$5
/// the event (id, version read, available and total seats delta, changes), $6–$10
/// `TypeMoves`, $11–$17 `NewBookings`, $18–$20 `StatusChanges`, $21–$23 the notification's
/// organizer, event JSON and email flag. Each row says whether its booking is a status change
/// (NULL on the one row of a group that wrote neither bookings nor statuses).
fn statement(shape: Shape) -> String {
    let mut ctes = vec![
        "taken AS ( \
             UPDATE events SET available_seats = available_seats + $3, \
                    total_seats = total_seats + $4, version = version + $5, \
                    updated_at = CASE WHEN $5 > 0 THEN now() ELSE updated_at END, \
                    booking_count = booking_count + cardinality($11::integer[]) \
             WHERE id = $1 AND version = $2 RETURNING id)"
            .to_string(),
        "types AS ( \
             UPDATE ticket_types tt SET available_seats = tt.available_seats + x.available, \
                    total_seats = tt.total_seats + x.total, name = x.name, \
                    price_cents = x.price, updated_at = now() \
             FROM taken, UNNEST($6::integer[], $7::integer[], $8::integer[], $9::text[], \
                                $10::integer[]) AS x(type_id, available, total, name, price) \
             WHERE tt.id = x.type_id AND tt.event_id = taken.id)"
            .to_string(),
    ];
    let mut writes = Vec::new();
    if shape.inserts {
        writes.push(BookingWrite {
            name: "inserted",
            sql: INSERT,
            status_changed: false,
            kind: NEW_BOOKING_KIND,
        });
    }
    if shape.status_changes {
        writes.push(BookingWrite {
            name: "changed",
            sql: CHANGE_STATUSES,
            status_changed: true,
            kind: CHANGED_BOOKING_KIND,
        });
    }
    let union = |select: &dyn Fn(&BookingWrite) -> String| {
        writes
            .iter()
            .map(select)
            .collect::<Vec<_>>()
            .join(" UNION ALL ")
    };
    let main = match writes.as_slice() {
        [] => "SELECT NULL::boolean AS status_changed FROM taken".to_string(),
        [write] if !shape.notify => format!(
            "{} RETURNING {} AS status_changed, {BOOKING_COLUMNS}",
            write.sql, write.status_changed
        ),
        _ => {
            for write in &writes {
                ctes.push(format!("{} AS ({} RETURNING b)", write.name, write.sql));
            }
            if shape.notify {
                let touched =
                    union(&|w| format!("SELECT c.b, {} AS kind FROM {} c", w.kind, w.name));
                ctes.push(format!("touched AS ({touched})"));
                ctes.push(format!(
                    "outbox AS ({})",
                    outbox::batch_sql("touched", "c.kind", 21)
                ));
            }
            let rows = union(&|w| {
                format!(
                    "SELECT {} AS status_changed, (c.b).* FROM {} c",
                    w.status_changed, w.name
                )
            });
            format!("SELECT b.status_changed, {BOOKING_COLUMNS} FROM ({rows}) b")
        }
    };
    format!("WITH {} {main}", ctes.join(", "))
}

/// One write of bookings in the statement.
struct BookingWrite {
    /// Its CTE, when it is one.
    name: &'static str,
    sql: &'static str,
    /// Whether its rows are status changes (else new bookings).
    status_changed: bool,
    /// The notification type of its rows, an expression over `c.b`.
    kind: &'static str,
}

/// The new bookings, only once the event's row was written (`taken`).
const INSERT: &str = "INSERT INTO bookings AS b \
         (user_id, event_id, ticket_type_id, seat_count, total_price_cents, booking_reference, \
          status, expires_at, confirmed_at) \
     SELECT t.user_id, taken.id, t.type_id, t.seats, t.price, t.reference, \
            CASE WHEN t.hold THEN 'PENDING'::booking_status ELSE 'CONFIRMED' END, \
            CASE WHEN t.hold THEN now() + make_interval(secs => $17) END, \
            CASE WHEN t.hold THEN NULL ELSE now() END \
     FROM taken, UNNEST($11::integer[], $12::integer[], $13::integer[], $14::bigint[], \
                        $15::uuid[], $16::boolean[]) \
          AS t(user_id, type_id, seats, price, reference, hold)";

/// The status changes, each only if the booking still has the status it was read with.
const CHANGE_STATUSES: &str = "UPDATE bookings AS b SET status = x.to_status::booking_status, \
            expires_at = NULL, \
            confirmed_at = CASE WHEN x.to_status = 'CONFIRMED' THEN now() \
                                ELSE b.confirmed_at END, \
            updated_at = now() \
     FROM taken, UNNEST($18::integer[], $19::text[], $20::text[]) \
          AS x(id, from_status, to_status) \
     WHERE b.id = x.id AND b.status = x.from_status::booking_status";

/// What one row of the statement is.
enum Returned {
    /// The event's row was written (the version check passed); no booking on this row.
    Event,
    Inserted(Booking),
    Changed(Booking),
}

fn returned(row: &PgRow) -> Result<Returned> {
    Ok(match row.try_get::<Option<bool>, _>("status_changed")? {
        None => Returned::Event,
        Some(false) => Returned::Inserted(Booking::from_row(row)?),
        Some(true) => Returned::Changed(Booking::from_row(row)?),
    })
}

/// How the event's ticket types (and so the event's totals) move: the changed types only.
#[derive(Default)]
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
        let mut moves = Self::default();
        for (now, before) in types.iter().zip(&event.ticket_types) {
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

    fn bind<'q>(&'q self, query: PgQuery<'q>) -> PgQuery<'q> {
        query
            .bind(&self.ids)
            .bind(&self.available_deltas)
            .bind(&self.total_deltas)
            .bind(&self.names)
            .bind(&self.prices)
    }
}

/// The group's new bookings, as arrays in request order.
#[derive(Default)]
struct NewBookings {
    users: Vec<i32>,
    types: Vec<i32>,
    seats: Vec<i32>,
    prices: Vec<i64>,
    references: Vec<Uuid>,
    holds: Vec<bool>,
    hold_seconds: f64,
}

impl NewBookings {
    fn of(event: &EventState, ops: &[&Op], effects: &[Effect], hold_seconds: i32) -> Self {
        let mut new = Self {
            hold_seconds: f64::from(hold_seconds),
            ..Self::default()
        };
        for effect in effects {
            let Effect::Insert {
                op,
                type_index,
                price_cents,
            } = effect
            else {
                continue;
            };
            let Op::Book(request) = ops[*op] else {
                continue;
            };
            new.users.push(request.user_id);
            new.types.push(event.ticket_types[*type_index].id);
            new.seats.push(request.seats);
            new.prices
                .push(i64::from(request.seats) * i64::from(*price_cents));
            new.references.push(Uuid::new_v4());
            new.holds.push(request.hold);
        }
        new
    }

    fn bind<'q>(&'q self, query: PgQuery<'q>) -> PgQuery<'q> {
        query
            .bind(&self.users)
            .bind(&self.types)
            .bind(&self.seats)
            .bind(&self.prices)
            .bind(&self.references)
            .bind(&self.holds)
            .bind(self.hold_seconds)
    }
}

/// The group's status changes: each booking's id, the status it was read with, and its new
/// one.
#[derive(Default)]
struct StatusChanges {
    ids: Vec<i32>,
    from: Vec<&'static str>,
    to: Vec<&'static str>,
}

impl StatusChanges {
    fn of(effects: &[Effect]) -> Self {
        let mut changes = Self::default();
        for effect in effects {
            if let Effect::Status {
                booking_id,
                from,
                to,
                ..
            } = effect
            {
                changes.ids.push(*booking_id);
                changes.from.push(status_name(*from));
                changes.to.push(status_name(*to));
            }
        }
        changes
    }

    fn bind<'q>(&'q self, query: PgQuery<'q>) -> PgQuery<'q> {
        query.bind(&self.ids).bind(&self.from).bind(&self.to)
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
