//! One attempt at a group of seat operations of one event, as DESIGN.md describes it: in one
//! transaction, lock the bookings' Idempotency-Key claims, read the event with its version and
//! its ticket types and the bookings that confirms, cancels and expiries name (`snapshot`),
//! apply each operation in order to that state, then write the result in one statement
//! (`writes`): the version-checked UPDATE of the event (its version grows by one per booking,
//! cancel, expiry or edit, as if they had run one by one), its ticket types, the new bookings
//! and the status changes; then each key's outcome. A transaction-level advisory lock per event
//! makes the lanes of several instances take turns. The attempt stops short of COMMIT: the
//! caller decides whether there is still time to send it (see `group`).

use std::collections::HashMap;

use axum::http::StatusCode;
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

use super::idempotency::{self, KeyClaim};
use super::job::{Answer, Done, Op};
use super::model::{
    confirmed_body, BookedEvent, Booking, BookingStatus, BookingWithEvent, CancelledEvent,
};
use super::rules;
use super::snapshot::{self, EventState, Existing, Key};
use super::writes::{self, Written};
use crate::auth::invalid_token;
use crate::concurrency::Attempt;
use crate::db::commit::{begin_then, Tx};
use crate::error::{AppError, Result};
use crate::events::service::not_found as event_not_found;
use crate::events::ticket_types::model::TicketType;
use crate::notify::outbox;

/// An attempt that is ready for COMMIT, with the answer for every operation of the group.
pub struct Prepared {
    /// `None` when nothing was written (every operation refused, no key to record).
    pub tx: Option<Tx>,
    pub outcomes: Vec<Answer>,
    /// False when the event does not exist: its lane can end at once.
    pub event_found: bool,
}

/// What one operation changes, once its rules passed.
pub(super) enum Effect {
    /// A new booking of the type at this index, at the type's price then.
    Insert {
        op: usize,
        type_index: usize,
        price_cents: i32,
    },
    /// A ticket type's change by the organizer: the type after it.
    Edit { op: usize, after: TicketType },
    /// A booking's status change; cancels and expiries give its seats back to its type.
    Status {
        op: usize,
        booking_id: i32,
        from: BookingStatus,
        to: BookingStatus,
        release: Option<(usize, i32)>,
    },
}

/// The first key of the two-key advisory locks this server takes: one lock per event.
const EVENT_LOCK_SPACE: i32 = 1;

fn taken_over() -> AppError {
    AppError::Unavailable("the idempotency key was taken over by a retry".into())
}

/// How a group's transaction runs.
#[derive(Clone, Copy)]
pub struct Settings {
    pub hold_seconds: i32,
    /// Take the event's advisory lock first (lanes on), so the lanes of other instances on
    /// this event queue instead of racing this one for the version (which still guards every
    /// write). Off, the transaction is the plain optimistic one of API.md.
    pub coordinate: bool,
    /// Write an email notification for each booking change, beside the webhooks' ones.
    pub email: bool,
}

pub async fn prepare_group(
    db: &PgPool,
    event_id: i32,
    ops: &[&Op],
    settings: Settings,
) -> Result<Attempt<Prepared>> {
    let hold_seconds = settings.hold_seconds;
    // The group's statements are written for generic plans. Left to choose, PostgreSQL
    // planned the snapshot read anew for every group (its cost depends on how many bookings
    // the group names), which cost more than running it. The lock is taken in BEGIN's own
    // round trip too: coordinating costs no extra one.
    let mut setup = String::from("SET LOCAL plan_cache_mode = force_generic_plan");
    if settings.coordinate {
        setup.push_str(&format!(
            "; SELECT pg_advisory_xact_lock({EVENT_LOCK_SPACE}, {event_id})"
        ));
    }
    let mut tx = begin_then(db, setup).await?;
    let held = lock_claims(&mut tx, ops).await?;
    let Some((event, mut existing)) = snapshot::read(&mut tx, event_id, ops).await? else {
        let outcomes = no_such_event(&mut tx, event_id, ops, &held).await?;
        return finish(tx, ops, outcomes, false, false).await;
    };

    let mut types = event.ticket_types.clone();
    let mut event_total = event.total_seats;
    // Per operation, an answer that does not depend on the writes: a refusal, or an edit that
    // changes nothing.
    let mut decided: Vec<Option<Answer>> = Vec::with_capacity(ops.len());
    let mut effects: Vec<Effect> = Vec::new();
    for (index, op) in ops.iter().enumerate() {
        let refusal = match op {
            Op::Book(request) if !held[index] => Some(taken_over()),
            Op::Book(request) => match rules::bookable(&event, request, &types) {
                Ok(type_index) => {
                    let chosen = &mut types[type_index];
                    chosen.available_seats -= request.seats;
                    effects.push(Effect::Insert {
                        op: index,
                        type_index,
                        price_cents: chosen.price_cents,
                    });
                    None
                }
                Err(error) => Some(error),
            },
            Op::Cancel { user_id, reference } | Op::Confirm { user_id, reference } => {
                let cancel = matches!(op, Op::Cancel { .. });
                match change_status(&event, &mut existing, *reference, *user_id, cancel) {
                    Ok(change) => {
                        if let Some((type_index, seats)) = change.release {
                            types[type_index].available_seats += seats;
                        }
                        effects.push(Effect::Status {
                            op: index,
                            booking_id: change.booking_id,
                            from: change.from,
                            to: change.to,
                            release: change.release,
                        });
                        None
                    }
                    Err(error) => Some(error),
                }
            }
            Op::Expire { booking_ids } => {
                for id in booking_ids {
                    let Some(found) = existing.get_mut(&Key::Id(*id)) else {
                        continue;
                    };
                    if rules::expirable(found) {
                        found.booking.status = BookingStatus::Expired;
                        let release = type_of(&event, &found.booking);
                        if let Some((type_index, seats)) = release {
                            types[type_index].available_seats += seats;
                        }
                        effects.push(Effect::Status {
                            op: index,
                            booking_id: *id,
                            from: BookingStatus::Pending,
                            to: BookingStatus::Expired,
                            release,
                        });
                    }
                }
                None
            }
            Op::EditType {
                caller,
                type_id,
                change,
            } => match rules::editable(&event, &types, (*caller, *type_id), change, event_total) {
                Ok((type_index, after)) if after == types[type_index] => {
                    decided.push(Some(Ok(Done::TypeEdited(after))));
                    continue;
                }
                Ok((type_index, after)) => {
                    event_total += after.total_seats - types[type_index].total_seats;
                    types[type_index] = after.clone();
                    effects.push(Effect::Edit { op: index, after });
                    None
                }
                Err(error) => Some(error),
            },
            Op::Solo(_) => Some(AppError::Internal(anyhow::anyhow!(
                "a solo job reached a group"
            ))),
        };
        decided.push(refusal.map(Err));
    }
    if effects.is_empty() {
        let outcomes = decided
            .into_iter()
            .map(|d| d.unwrap_or(Ok(Done::Expired(0))))
            .collect();
        return finish(tx, ops, outcomes, false, true).await;
    }
    let notify = if event.has_webhooks || settings.email {
        let summary = outbox::EventSummary {
            id: event.id,
            title: &event.title,
            event_date: event.event_date,
        };
        Some(outbox::Notify::new(
            event.organizer_id,
            &summary,
            settings.email,
        )?)
    } else {
        None
    };
    let Some(written) = writes::write(
        &mut tx,
        &event,
        ops,
        &effects,
        &types,
        hold_seconds,
        notify.as_ref(),
    )
    .await?
    else {
        return Ok(Attempt::Lost);
    };
    let outcomes = answers(&event, ops, decided, &effects, written);
    finish(tx, ops, outcomes, true, true).await
}

/// A confirm's or a cancel's change of a booking.
struct StatusChange {
    booking_id: i32,
    from: BookingStatus,
    to: BookingStatus,
    /// The type (index) and seats a cancel gives back.
    release: Option<(usize, i32)>,
}

/// The checks of a confirm or a cancel, and the change in memory (later operations of the
/// group see it).
fn change_status(
    event: &EventState,
    existing: &mut HashMap<Key, Existing>,
    reference: Uuid,
    user_id: i32,
    cancel: bool,
) -> Result<StatusChange> {
    if !event.known_users.contains(&user_id) {
        return Err(invalid_token());
    }
    let id = existing
        .get(&Key::Reference(reference))
        .map(|found| found.booking.id)
        .ok_or_else(rules::booking_not_found)?;
    let found = existing
        .get_mut(&Key::Id(id))
        .ok_or_else(rules::booking_not_found)?;
    let from = found.booking.status;
    let (to, release) = if cancel {
        rules::cancellable(event, found, user_id)?;
        (BookingStatus::Cancelled, type_of(event, &found.booking))
    } else {
        rules::confirmable(event, found, user_id)?;
        (BookingStatus::Confirmed, None)
    };
    found.booking.status = to;
    // Both keys name the same booking: keep them in step.
    let updated = found.clone();
    existing.insert(Key::Reference(reference), updated);
    Ok(StatusChange {
        booking_id: id,
        from,
        to,
        release,
    })
}

/// The booking's type as an index into the event's types, with its seats.
fn type_of(event: &EventState, booking: &Booking) -> Option<(usize, i32)> {
    event
        .ticket_types
        .iter()
        .position(|t| t.id == booking.ticket_type_id)
        .map(|index| (index, booking.seat_count))
}

/// Per operation, whether it may proceed: only bookings with a key can be stopped here, when
/// their claim is no longer held by their token (a retry took it over).
async fn lock_claims(tx: &mut Transaction<'_, Postgres>, ops: &[&Op]) -> Result<Vec<bool>> {
    let claims: Vec<(i32, &KeyClaim)> = ops.iter().filter_map(|op| op.key()).collect();
    let mut held = if claims.is_empty() {
        Vec::new()
    } else {
        idempotency::lock_held(tx, &claims).await?
    }
    .into_iter();
    Ok(ops
        .iter()
        .map(|op| op.key().is_none() || held.next().unwrap_or(false))
        .collect())
}

/// The answers when the event does not exist: bookings get 404 (but 401 first for a token
/// whose user is gone); expiries have nothing to do.
async fn no_such_event(
    tx: &mut Transaction<'_, Postgres>,
    event_id: i32,
    ops: &[&Op],
    held: &[bool],
) -> Result<Vec<Answer>> {
    let users: Vec<i32> = ops.iter().filter_map(|op| op.user_id()).collect();
    let known: Vec<i32> = sqlx::query_scalar("SELECT id FROM users WHERE id = ANY($1)")
        .bind(&users)
        .fetch_all(&mut **tx)
        .await?;
    Ok(ops
        .iter()
        .zip(held)
        .map(|(op, held)| match op {
            Op::Book(_) if !held => Err(taken_over()),
            _ if op.user_id().is_some_and(|user| !known.contains(&user)) => Err(invalid_token()),
            Op::Book(_) | Op::EditType { .. } => Err(event_not_found(event_id)),
            Op::Expire { .. } => Ok(Done::Expired(0)),
            _ => Err(rules::booking_not_found()),
        })
        .collect())
}

/// One answer per operation, from the answers decided before the writes and the rows the
/// writes returned.
fn answers(
    event: &EventState,
    ops: &[&Op],
    decided: Vec<Option<Answer>>,
    effects: &[Effect],
    mut written: Written,
) -> Vec<Answer> {
    let summary = BookedEvent {
        id: event.id,
        title: event.title.clone(),
        event_date: event.event_date,
        organizer_id: event.organizer_id,
    };
    let missing = || AppError::Internal(anyhow::anyhow!("a written booking row is missing"));
    let mut new_rows = written.inserted.into_iter();
    let mut expired = vec![0usize; ops.len()];
    let mut by_op: HashMap<usize, Booking> = HashMap::new();
    let mut edited: HashMap<usize, TicketType> = HashMap::new();
    for effect in effects {
        match effect {
            Effect::Edit { op, after } => {
                edited.insert(*op, after.clone());
            }
            Effect::Insert { op, .. } => {
                if let Some(row) = new_rows.next() {
                    by_op.insert(*op, row);
                }
            }
            Effect::Status { op, booking_id, .. } => {
                if matches!(ops[*op], Op::Expire { .. }) {
                    expired[*op] += 1;
                } else if let Some(row) = written.changed.remove(booking_id) {
                    by_op.insert(*op, row);
                }
            }
        }
    }
    decided
        .into_iter()
        .enumerate()
        .map(|(index, decided)| {
            if let Some(answer) = decided {
                return answer;
            }
            match ops[index] {
                Op::Expire { .. } => Ok(Done::Expired(expired[index])),
                Op::EditType { .. } => edited
                    .remove(&index)
                    .ok_or_else(missing)
                    .map(Done::TypeEdited),
                Op::Cancel { .. } => by_op.remove(&index).ok_or_else(missing).map(|booking| {
                    Done::Cancelled(BookingWithEvent {
                        event: CancelledEvent {
                            id: event.id,
                            title: event.title.clone(),
                        },
                        booking,
                    })
                }),
                _ => by_op.remove(&index).ok_or_else(missing).map(|booking| {
                    Done::Booked(BookingWithEvent {
                        booking,
                        event: summary.clone(),
                    })
                }),
            }
        })
        .collect()
}

/// Records the outcome of every held key in the transaction, and hands it over for COMMIT if
/// it wrote anything.
async fn finish(
    mut tx: Tx,
    ops: &[&Op],
    outcomes: Vec<Answer>,
    wrote: bool,
    event_found: bool,
) -> Result<Attempt<Prepared>> {
    let mut records = Vec::new();
    for (op, outcome) in ops.iter().zip(&outcomes) {
        let Some((user_id, key)) = op.key() else {
            continue;
        };
        let stored = match outcome {
            Ok(Done::Booked(booking)) => Some((StatusCode::CREATED, confirmed_body(booking))),
            Ok(_) => None,
            // A claim taken over is the other request's to record.
            Err(error) => error.client_body(),
        };
        if let Some((status, body)) = stored {
            records.push((user_id, key, status, body));
        }
    }
    idempotency::record(&mut tx, &records).await?;
    let wrote = wrote || !records.is_empty();
    Ok(Attempt::Done(Prepared {
        tx: wrote.then_some(tx),
        outcomes,
        event_found,
    }))
}
