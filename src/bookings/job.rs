//! One seat operation on its way through its event's lane, and the hand-over between the
//! request's handler and the lane that carries it out.
//!
//! Both sides may give up on a job, so its state says who decides: the handler may abandon it
//! only until the lane has decided to send COMMIT, and the lane never commits a job the handler
//! has abandoned. So an answer of "unavailable" always means "nothing changed, now or later".

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::oneshot;
use tokio::time::Instant;
use uuid::Uuid;

use super::idempotency::KeyClaim;
use super::model::{BookedEvent, BookingWithEvent, CancelledEvent};
use crate::error::{AppError, Result};
use crate::events::ticket_types::model::{TicketType, TypeChange};
use crate::http::deadline::RequestStart;

/// One request for seats.
#[derive(Debug, Clone)]
pub struct BookingRequest {
    pub user_id: i32,
    pub event_id: i32,
    /// `None`: the event's only type (refused when it has several).
    pub ticket_type_id: Option<i32>,
    pub seats: i32,
    /// Hold the seats (PENDING) instead of confirming.
    pub hold: bool,
    /// The Idempotency-Key this request holds, if it sent one.
    pub key: Option<KeyClaim>,
}

/// What a job asks of its event's lane. Everything that moves the event's seats goes through
/// it, so on one instance nothing races the lane for the event's `version`.
pub enum Op {
    /// Book or hold seats.
    Book(BookingRequest),
    /// Confirm the caller's hold.
    Confirm { user_id: i32, reference: Uuid },
    /// Cancel the caller's booking or hold.
    Cancel { user_id: i32, reference: Uuid },
    /// Release due holds (the expiry sweep).
    Expire { booking_ids: Vec<i32> },
    /// An organizer's change of one ticket type (PUT /events/{id}/ticket-types/{typeId}).
    EditType {
        caller: i32,
        type_id: i32,
        change: TypeChange,
    },
    /// Any other change of the event or its ticket types by its organizer: runs alone, in its
    /// own transaction with its own retry loop and deadlines, between the lane's groups.
    Solo(SoloWork),
}

/// The work of a solo job. Behind a mutex only so that `Op` is `Sync` (groups share `&Op`
/// across awaits); only the lane ever takes it out, once.
pub struct SoloWork(Mutex<Option<Pin<Box<dyn Future<Output = ()> + Send + 'static>>>>);

impl SoloWork {
    pub fn new(work: impl Future<Output = ()> + Send + 'static) -> Self {
        Self(Mutex::new(Some(Box::pin(work))))
    }

    pub fn take(&self) -> Option<Pin<Box<dyn Future<Output = ()> + Send + 'static>>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).take()
    }
}

impl Op {
    /// The 409 a job gets when its group lost the version race three times.
    pub fn high_demand(&self) -> AppError {
        AppError::conflict(match self {
            Self::Cancel { .. } => "Cancellation failed due to high demand. Please try again.",
            Self::Confirm { .. } => "Confirmation failed due to high demand. Please try again.",
            Self::EditType { .. } => "Event was modified concurrently. Please try again.",
            _ => "Booking failed due to high demand. Please try again.",
        })
    }

    /// The user a booking, confirm or cancel acts for (the lane checks they still exist).
    pub fn user_id(&self) -> Option<i32> {
        match self {
            Self::Book(request) => Some(request.user_id),
            Self::Confirm { user_id, .. } | Self::Cancel { user_id, .. } => Some(*user_id),
            _ => None,
        }
    }

    /// An edit that sets a ticket type's name. A group holds at most one: PostgreSQL checks
    /// unique names row by row, so two renames in one statement could collide where one
    /// after the other would not.
    pub fn renames(&self) -> bool {
        matches!(self, Self::EditType { change, .. } if change.name.is_some())
    }

    pub fn key(&self) -> Option<(i32, &KeyClaim)> {
        match self {
            Self::Book(request) => request.key.as_ref().map(|key| (request.user_id, key)),
            _ => None,
        }
    }
}

/// What a job achieved.
#[derive(Debug)]
pub enum Done {
    /// Booked, held or confirmed: the booking with its event.
    Booked(BookingWithEvent<BookedEvent>),
    Cancelled(BookingWithEvent<CancelledEvent>),
    /// A ticket type as an edit left it.
    TypeEdited(TicketType),
    /// Holds released by the expiry sweep.
    Expired(usize),
    /// A solo job reports through its own channel.
    Solo,
}

pub type Answer = Result<Done>;

const QUEUED: u8 = 0;
const TAKEN: u8 = 1;
const COMMITTING: u8 = 2;
const ABANDONED: u8 = 3;

/// Where a job stands, shared by its handler and its lane.
#[derive(Clone, Default)]
pub struct JobState(Arc<AtomicU8>);

impl JobState {
    fn move_from(&self, from: u8, to: u8) -> bool {
        self.0
            .compare_exchange(from, to, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// The lane takes the job into a transaction; false if its handler gave up first.
    pub fn take(&self) -> bool {
        self.move_from(QUEUED, TAKEN)
    }

    /// The lane is about to send COMMIT (or hands the job to code that keeps its own
    /// deadlines); false if the handler gave up first.
    pub fn commit(&self) -> bool {
        self.move_from(TAKEN, COMMITTING)
    }

    /// The handler gives up; false when COMMIT may already have been sent.
    pub fn abandon(&self) -> bool {
        self.move_from(QUEUED, ABANDONED) || self.move_from(TAKEN, ABANDONED)
    }
}

/// An operation, its deadlines, and where its answer goes.
pub struct Job {
    pub op: Op,
    pub start: RequestStart,
    pub state: JobState,
    pub reply: oneshot::Sender<Answer>,
}

impl Job {
    pub fn new(op: Op, start: RequestStart) -> (Self, oneshot::Receiver<Answer>) {
        let (reply, answer) = oneshot::channel();
        let job = Self {
            op,
            start,
            state: JobState::default(),
            reply,
        };
        (job, answer)
    }

    pub fn commit_by(&self) -> Instant {
        self.start.commit_by()
    }

    /// Whether the handler still waits for this job.
    pub fn caller_waits(&self) -> bool {
        !self.reply.is_closed()
    }
}
