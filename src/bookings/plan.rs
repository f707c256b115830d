//! One event's part of an attempt: its operations applied in order to the state the attempt
//! read, each one refused or turned into an effect that later operations of the group see;
//! and, once the writes are in, each operation's answer.

use std::collections::HashMap;

use uuid::Uuid;

use super::job::{Answer, Done, Op};
use super::model::{BookedEvent, Booking, BookingStatus, BookingWithEvent, CancelledEvent};
use super::rules;
use super::snapshot::{EventState, Existing, Key, Read};
use super::writes::Written;
use crate::auth::invalid_token;
use crate::error::{AppError, Result};
use crate::events::ticket_types::model::TicketType;

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

/// An event's operations, planned.
pub(super) struct Plan {
    /// Per operation, an answer that does not depend on the writes: a refusal, or an edit
    /// that changes nothing.
    pub decided: Vec<Option<Answer>>,
    pub effects: Vec<Effect>,
    /// The event's ticket types after the effects.
    pub types: Vec<TicketType>,
}

fn taken_over() -> AppError {
    AppError::Unavailable("the idempotency key was taken over by a retry".into())
}

/// Applies `ops` (with whether each one's key claim is still `held`) to what was `read`.
pub(super) fn plan(read: &mut Read, ops: &[&Op], held: &[bool]) -> Plan {
    let event = &read.event;
    let existing = &mut read.existing;
    let mut types = event.ticket_types.clone();
    let mut event_total = event.total_seats;
    let mut decided: Vec<Option<Answer>> = Vec::with_capacity(ops.len());
    let mut effects: Vec<Effect> = Vec::new();
    for (index, op) in ops.iter().enumerate() {
        let refusal = match op {
            Op::Book(_) if !held[index] => Some(taken_over()),
            Op::Book(request) => match rules::bookable(event, request, &types) {
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
                match change_status(event, existing, *reference, *user_id, cancel) {
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
                        let release = type_of(event, &found.booking);
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
            } => match rules::editable(event, &types, (*caller, *type_id), change, event_total) {
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
    Plan {
        decided,
        effects,
        types,
    }
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
/// group see it). A booking of another event is not found.
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

/// The answers when the event does not exist: bookings get 404 (but 401 first for a token
/// whose user is gone); expiries have nothing to do.
pub(super) fn no_such_event(
    event_id: i32,
    ops: &[&Op],
    held: &[bool],
    known_users: &[i32],
) -> Vec<Answer> {
    ops.iter()
        .zip(held)
        .map(|(op, held)| match op {
            Op::Book(_) if !held => Err(taken_over()),
            _ if op
                .user_id()
                .is_some_and(|user| !known_users.contains(&user)) =>
            {
                Err(invalid_token())
            }
            Op::Book(_) | Op::EditType { .. } => Err(crate::events::service::not_found(event_id)),
            Op::Expire { .. } => Ok(Done::Expired(0)),
            _ => Err(rules::booking_not_found()),
        })
        .collect()
}

/// One answer per operation, from the answers decided before the writes and the rows the
/// writes returned.
pub(super) fn answers(
    event: &EventState,
    ops: &[&Op],
    plan: Plan,
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
    for effect in plan.effects {
        match effect {
            Effect::Edit { op, after } => {
                edited.insert(op, after);
            }
            Effect::Insert { op, .. } => {
                if let Some(row) = new_rows.next() {
                    by_op.insert(op, row);
                }
            }
            Effect::Status { op, booking_id, .. } => {
                if matches!(ops[op], Op::Expire { .. }) {
                    expired[op] += 1;
                } else if let Some(row) = written.changed.remove(&booking_id) {
                    by_op.insert(op, row);
                }
            }
        }
    }
    plan.decided
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

/// The answers of an event whose operations wrote nothing: the refusals, and nothing to do
/// for the rest (an expiry of holds that were settled meanwhile).
pub(super) fn unwritten(plan: Plan) -> Vec<Answer> {
    plan.decided
        .into_iter()
        .map(|d| d.unwrap_or(Ok(Done::Expired(0))))
        .collect()
}
