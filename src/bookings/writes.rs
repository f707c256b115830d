//! The writes of one attempt, after its rules have decided what each operation changes, as
//! one statement over all its events: the version-checked UPDATE of each event (each row's
//! version checked on its own), their ticket types, the new bookings, the status changes (each
//! conditional on the status it was read with), and their notifications. An event whose
//! version changed since it was read writes nothing and returns no row: it lost the race, and
//! the caller retries it alone while keeping the others. A booking whose status changed since
//! it was read is not returned: the whole attempt starts over.

use std::collections::HashMap;

use sqlx::postgres::{PgArguments, PgRow};
use sqlx::query::Query;
use sqlx::{FromRow, Postgres, Row, Transaction};
use uuid::Uuid;

use super::job::Op;
use super::model::{Booking, BookingStatus, BOOKING_COLUMNS};
use super::plan::Effect;
use super::snapshot::EventState;
use crate::error::Result;
use crate::events::ticket_types::model::TicketType;
use crate::notify::outbox::{self, Notify, CHANGED_BOOKING_KIND, NEW_BOOKING_KIND};

type PgQuery<'q> = Query<'q, Postgres, PgArguments>;

/// What one event of the attempt writes.
pub(super) struct EventWrite<'a> {
    pub event: &'a EventState,
    pub ops: &'a [&'a Op],
    pub effects: &'a [Effect],
    /// The event's ticket types after the effects.
    pub types: &'a [TicketType],
    /// Where its booking changes are notified, if anywhere.
    pub notify: Option<Notify>,
}

/// The rows one event's writes returned: new bookings by reference, changed ones by id.
#[derive(Default)]
pub(super) struct Written {
    /// In the order of the group's bookings.
    pub inserted: Vec<Booking>,
    pub changed: HashMap<i32, Booking>,
}

/// All writes of the attempt. Returns the rows of each event that won its version check (an
/// event missing from the map lost it and wrote nothing), or `None` when a booking changed
/// under the attempt (it must start over).
pub(super) async fn write(
    tx: &mut Transaction<'_, Postgres>,
    events: &[EventWrite<'_>],
    hold_seconds: i32,
    email: bool,
) -> Result<Option<HashMap<i32, Written>>> {
    let mut moves = EventMoves::default();
    let mut types = TypeMoves::default();
    let mut new = NewBookings {
        hold_seconds: f64::from(hold_seconds),
        ..NewBookings::default()
    };
    let mut statuses = StatusChanges::default();
    let mut notices = Notices {
        email,
        ..Notices::default()
    };
    for write in events {
        let seats = types.add(write.event, write.types);
        moves.add(write.event, write.effects, seats);
        new.add(write);
        statuses.add(write.event.id, write.effects);
        notices.add(write.event.id, write.notify.as_ref());
    }
    let sql = statement(Shape {
        inserts: !new.references.is_empty(),
        status_changes: !statuses.ids.is_empty(),
        notify: !notices.events.is_empty(),
    });
    let query = notices.bind(statuses.bind(new.bind(types.bind(moves.bind(sqlx::query(&sql))))));
    let rows = query.fetch_all(&mut **tx).await?;
    let mut won: HashMap<i32, Written> = HashMap::with_capacity(events.len());
    for row in &rows {
        let written = won.entry(row.try_get("won_event")?).or_default();
        match returned(row)? {
            Returned::Event => {}
            Returned::Inserted(booking) => written.inserted.push(booking),
            Returned::Changed(booking) => {
                written.changed.insert(booking.id, booking);
            }
        }
    }
    // RETURNING's order is not promised: the rows go back in request order.
    let order: HashMap<Uuid, usize> = new
        .references
        .iter()
        .enumerate()
        .map(|(index, reference)| (*reference, index))
        .collect();
    for write in events {
        let Some(written) = won.get_mut(&write.event.id) else {
            continue;
        };
        let (inserts, changes) = counts(write.effects);
        // Another instance changed one of these bookings since we read it: start over.
        if written.changed.len() != changes || written.inserted.len() != inserts {
            return Ok(None);
        }
        written
            .inserted
            .sort_by_key(|row| order.get(&row.booking_reference).copied());
    }
    Ok(Some(won))
}

/// How many rows `effects` write: new bookings, and status changes (confirms, cancels,
/// expiries).
fn counts(effects: &[Effect]) -> (usize, usize) {
    effects
        .iter()
        .fold((0, 0), |(inserts, changes), effect| match effect {
            Effect::Insert { .. } => (inserts + 1, changes),
            Effect::Status { .. } => (inserts, changes + 1),
            Effect::Edit { .. } => (inserts, changes),
        })
}

/// Which writes a group's statement holds.
#[derive(Clone, Copy)]
struct Shape {
    inserts: bool,
    status_changes: bool,
    notify: bool,
}

/// The statement of `write`, with only the writes the attempt needs (a smaller statement
/// starts faster). Parameters: $1–$6 `EventMoves`, $7–$11 `TypeMoves`, $12–$19
/// `NewBookings`, $20–$23 `StatusChanges`, $24–$27 `Notices`. One row per booking written,
/// with the event it belongs to (`won_event`) and whether it is a status change; an event that
/// won but wrote no booking has one row with NULL booking columns.
fn statement(shape: Shape) -> String {
    let mut ctes = vec![
        "taken AS ( \
             UPDATE events e SET available_seats = e.available_seats + x.available, \
                    total_seats = e.total_seats + x.total, version = e.version + x.changes, \
                    updated_at = CASE WHEN x.changes > 0 THEN now() ELSE e.updated_at END, \
                    booking_count = e.booking_count + x.new_bookings \
             FROM UNNEST($1::integer[], $2::bigint[], $3::integer[], $4::integer[], \
                         $5::bigint[], $6::integer[]) \
                  AS x(id, version, available, total, changes, new_bookings) \
             WHERE e.id = x.id AND e.version = x.version RETURNING e.id)"
            .to_string(),
        "types AS ( \
             UPDATE ticket_types tt SET available_seats = tt.available_seats + x.available, \
                    total_seats = tt.total_seats + x.total, name = x.name, \
                    price_cents = x.price, updated_at = now() \
             FROM taken, UNNEST($7::integer[], $8::integer[], $9::integer[], $10::text[], \
                                $11::integer[]) AS x(type_id, available, total, name, price) \
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
    for write in &writes {
        ctes.push(format!("{} AS ({} RETURNING b)", write.name, write.sql));
    }
    if shape.notify && !writes.is_empty() {
        let touched = union(&|w| format!("SELECT c.b, {} AS kind FROM {} c", w.kind, w.name));
        ctes.push(format!("touched AS ({touched})"));
        ctes.push(format!(
            "outbox AS ({})",
            outbox::batch_sql("touched", "c.kind", 24)
        ));
    }
    let main = if writes.is_empty() {
        "SELECT t.id AS won_event, NULL::boolean AS status_changed FROM taken t".to_string()
    } else {
        let rows = union(&|w| {
            format!(
                "SELECT {} AS status_changed, (c.b).* FROM {} c",
                w.status_changed, w.name
            )
        });
        format!(
            "SELECT t.id AS won_event, b.status_changed, {BOOKING_COLUMNS} \
             FROM taken t LEFT JOIN ({rows}) b ON b.event_id = t.id"
        )
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

/// The new bookings of the events whose rows were written (`taken`).
const INSERT: &str = "INSERT INTO bookings AS b \
         (user_id, event_id, ticket_type_id, seat_count, total_price_cents, booking_reference, \
          status, expires_at, confirmed_at) \
     SELECT t.user_id, taken.id, t.type_id, t.seats, t.price, t.reference, \
            CASE WHEN t.hold THEN 'PENDING'::booking_status ELSE 'CONFIRMED' END, \
            CASE WHEN t.hold THEN now() + make_interval(secs => $19) END, \
            CASE WHEN t.hold THEN NULL ELSE now() END \
     FROM UNNEST($12::integer[], $13::integer[], $14::integer[], $15::integer[], \
                 $16::bigint[], $17::uuid[], $18::boolean[]) \
          AS t(event_id, user_id, type_id, seats, price, reference, hold) \
     JOIN taken ON taken.id = t.event_id";

/// The status changes of the events whose rows were written, each only if the booking still
/// has the status it was read with.
const CHANGE_STATUSES: &str = "UPDATE bookings AS b SET status = x.to_status::booking_status, \
            expires_at = NULL, \
            confirmed_at = CASE WHEN x.to_status = 'CONFIRMED' THEN now() \
                                ELSE b.confirmed_at END, \
            updated_at = now() \
     FROM UNNEST($20::integer[], $21::integer[], $22::text[], $23::text[]) \
          AS x(event_id, id, from_status, to_status) \
     JOIN taken ON taken.id = x.event_id \
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

/// How each event's row moves: version-checked, by its types' deltas and its changes.
#[derive(Default)]
struct EventMoves {
    ids: Vec<i32>,
    versions: Vec<i64>,
    available: Vec<i32>,
    total: Vec<i32>,
    changes: Vec<i64>,
    new_bookings: Vec<i32>,
}

impl EventMoves {
    /// Every booking, cancel, expiry and edit counts as one change of the event, as if one by
    /// one. With only confirms (0 changes) the version is still checked, so a confirm never
    /// slips past a concurrent change of the event's status. `seats`: the event's available
    /// and total seat deltas (`TypeMoves::add`).
    fn add(&mut self, event: &EventState, effects: &[Effect], (available, total): (i32, i32)) {
        let mut changes = 0;
        let mut inserts = 0;
        for effect in effects {
            match effect {
                Effect::Insert { .. } => {
                    changes += 1;
                    inserts += 1;
                }
                Effect::Edit { .. }
                | Effect::Status {
                    release: Some(_), ..
                } => changes += 1,
                Effect::Status { release: None, .. } => {}
            }
        }
        self.ids.push(event.id);
        self.versions.push(event.version);
        self.available.push(available);
        self.total.push(total);
        self.changes.push(changes);
        self.new_bookings.push(inserts);
    }

    fn bind<'q>(&'q self, query: PgQuery<'q>) -> PgQuery<'q> {
        query
            .bind(&self.ids)
            .bind(&self.versions)
            .bind(&self.available)
            .bind(&self.total)
            .bind(&self.changes)
            .bind(&self.new_bookings)
    }
}

/// How the events' ticket types move: the changed types only.
#[derive(Default)]
struct TypeMoves {
    ids: Vec<i32>,
    available_deltas: Vec<i32>,
    total_deltas: Vec<i32>,
    names: Vec<String>,
    prices: Vec<i32>,
}

impl TypeMoves {
    /// From the types as `event` read them to `types`; returns the event's own available and
    /// total seat deltas (the sums over its types).
    fn add(&mut self, event: &EventState, types: &[TicketType]) -> (i32, i32) {
        let (mut available_sum, mut total_sum) = (0, 0);
        for (now, before) in types.iter().zip(&event.ticket_types) {
            if now == before {
                continue;
            }
            let available = now.available_seats - before.available_seats;
            let total = now.total_seats - before.total_seats;
            available_sum += available;
            total_sum += total;
            self.ids.push(now.id);
            self.available_deltas.push(available);
            self.total_deltas.push(total);
            self.names.push(now.name.clone());
            self.prices.push(now.price_cents);
        }
        (available_sum, total_sum)
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

/// The new bookings, as arrays in request order.
#[derive(Default)]
struct NewBookings {
    events: Vec<i32>,
    users: Vec<i32>,
    types: Vec<i32>,
    seats: Vec<i32>,
    prices: Vec<i64>,
    references: Vec<Uuid>,
    holds: Vec<bool>,
    hold_seconds: f64,
}

impl NewBookings {
    fn add(&mut self, write: &EventWrite<'_>) {
        for effect in write.effects {
            let Effect::Insert {
                op,
                type_index,
                price_cents,
            } = effect
            else {
                continue;
            };
            let Op::Book(request) = write.ops[*op] else {
                continue;
            };
            self.events.push(write.event.id);
            self.users.push(request.user_id);
            self.types.push(write.event.ticket_types[*type_index].id);
            self.seats.push(request.seats);
            self.prices
                .push(i64::from(request.seats) * i64::from(*price_cents));
            self.references.push(Uuid::new_v4());
            self.holds.push(request.hold);
        }
    }

    fn bind<'q>(&'q self, query: PgQuery<'q>) -> PgQuery<'q> {
        query
            .bind(&self.events)
            .bind(&self.users)
            .bind(&self.types)
            .bind(&self.seats)
            .bind(&self.prices)
            .bind(&self.references)
            .bind(&self.holds)
            .bind(self.hold_seconds)
    }
}

/// The status changes: each booking's event and id, the status it was read with, and its new
/// one.
#[derive(Default)]
struct StatusChanges {
    events: Vec<i32>,
    ids: Vec<i32>,
    from: Vec<&'static str>,
    to: Vec<&'static str>,
}

impl StatusChanges {
    fn add(&mut self, event_id: i32, effects: &[Effect]) {
        for effect in effects {
            if let Effect::Status {
                booking_id,
                from,
                to,
                ..
            } = effect
            {
                self.events.push(event_id);
                self.ids.push(*booking_id);
                self.from.push(status_name(*from));
                self.to.push(status_name(*to));
            }
        }
    }

    fn bind<'q>(&'q self, query: PgQuery<'q>) -> PgQuery<'q> {
        query
            .bind(&self.events)
            .bind(&self.ids)
            .bind(&self.from)
            .bind(&self.to)
    }
}

/// Where each event's booking changes are notified: its organizer and its JSON, for the
/// events whose organizer has webhooks (or all, with email on).
#[derive(Default)]
struct Notices {
    events: Vec<i32>,
    organizers: Vec<i32>,
    event_json: Vec<String>,
    email: bool,
}

impl Notices {
    fn add(&mut self, event_id: i32, notify: Option<&Notify>) {
        if let Some(notify) = notify {
            self.events.push(event_id);
            self.organizers.push(notify.organizer_id);
            self.event_json.push(notify.event_json.clone());
        }
    }

    fn bind<'q>(&'q self, query: PgQuery<'q>) -> PgQuery<'q> {
        query
            .bind(&self.events)
            .bind(&self.organizers)
            .bind(&self.event_json)
            .bind(self.email)
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
