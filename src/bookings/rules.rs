//! The rules of each seat operation, in the contract's order, checked against the state one
//! attempt read (and that earlier operations of the same group have already changed).

use super::job::BookingRequest;
use super::model::BookingStatus;
use super::snapshot::{EventState, Existing};
use crate::auth::invalid_token;
use crate::error::{AppError, Result};
use crate::events::model::EventStatus;
use crate::events::service::not_found as event_not_found;
use crate::events::ticket_types::model::{TicketType, TypeChange};
use crate::events::ticket_types::service::{
    self as ticket_types, not_found as ticket_type_not_found, not_yours,
};

/// Book (or hold): returns the index of the chosen type. `types` are as the earlier
/// operations of the group left them.
pub fn bookable(
    event: &EventState,
    request: &BookingRequest,
    types: &[TicketType],
) -> Result<usize> {
    if !event.known_users.contains(&request.user_id) {
        return Err(invalid_token());
    }
    // A draft does not exist for anyone but its organizer.
    if event.status == EventStatus::Draft && event.organizer_id != request.user_id {
        return Err(event_not_found(event.id));
    }
    open_for_booking(event)?;
    let type_index = match request.ticket_type_id {
        Some(id) => types
            .iter()
            .position(|t| t.id == id)
            .ok_or_else(|| ticket_type_not_found(id))?,
        None if types.len() == 1 => 0,
        None => {
            return Err(AppError::bad_request(
                "ticketTypeId is required: this event has several ticket types",
            ))
        }
    };
    let left = types.get(type_index).map_or(0, |t| t.available_seats);
    if left < request.seats {
        return Err(AppError::conflict(format!(
            "Not enough seats available. Requested: {}, Available: {left}",
            request.seats
        )));
    }
    Ok(type_index)
}

/// The event rules that booking and confirming share.
fn open_for_booking(event: &EventState) -> Result<()> {
    if event.status != EventStatus::Published {
        return Err(AppError::bad_request(format!(
            "Event is not available for booking. Current status: {}",
            event.status.as_str()
        )));
    }
    if event.past {
        return Err(AppError::bad_request("Cannot book past events"));
    }
    Ok(())
}

pub fn already_cancelled() -> AppError {
    AppError::bad_request("Booking is already cancelled")
}

fn hold_expired() -> AppError {
    AppError::bad_request("Booking hold has expired")
}

pub fn booking_not_found() -> AppError {
    AppError::not_found("Booking not found")
}

/// Cancel a CONFIRMED booking or a PENDING hold of the caller's.
pub fn cancellable(event: &EventState, found: &Existing, caller: i32) -> Result<()> {
    if found.booking.user_id != caller {
        return Err(AppError::forbidden("You can only cancel your own bookings"));
    }
    if found.booking.status == BookingStatus::Cancelled {
        return Err(already_cancelled());
    }
    if found.hold_expired() {
        return Err(hold_expired());
    }
    if event.past {
        return Err(AppError::bad_request(
            "Cannot cancel booking for past events",
        ));
    }
    Ok(())
}

/// Confirm a PENDING hold of the caller's, before its `expiresAt`, of a bookable event.
pub fn confirmable(event: &EventState, found: &Existing, caller: i32) -> Result<()> {
    if found.booking.user_id != caller {
        return Err(AppError::forbidden(
            "You can only confirm your own bookings",
        ));
    }
    match found.booking.status {
        BookingStatus::Confirmed => {
            return Err(AppError::bad_request("Booking is already confirmed"))
        }
        BookingStatus::Cancelled => return Err(already_cancelled()),
        _ if found.hold_expired() => return Err(hold_expired()),
        _ => {}
    }
    open_for_booking(event)
}

/// Expire a hold: only a PENDING one that is due. Anything else was settled already.
pub fn expirable(found: &Existing) -> bool {
    found.booking.status == BookingStatus::Pending && found.due
}

/// Change a ticket type: the event's organizer only. Returns the type's index and the type
/// after the change; `types` and `event_total` are as the earlier operations left them.
pub fn editable(
    event: &EventState,
    types: &[TicketType],
    (caller, type_id): (i32, i32),
    change: &TypeChange,
    event_total: i32,
) -> Result<(usize, TicketType)> {
    if event.organizer_id != caller {
        return Err(not_yours());
    }
    let index = types
        .iter()
        .position(|t| t.id == type_id)
        .ok_or_else(|| ticket_type_not_found(type_id))?;
    let after = ticket_types::changed(types, &types[index], change, event_total)?;
    Ok((index, after))
}
