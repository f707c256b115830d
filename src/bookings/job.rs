//! One booking request on its way through a lane, and the hand-over between the request's
//! handler and the lane that books it.
//!
//! Both sides may give up on a job, so its state says who decides: the handler may abandon it
//! only until the lane has decided to send COMMIT, and the lane never commits a job the handler
//! has abandoned. So an answer of "unavailable" always means "not booked, now or later".

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

use tokio::sync::oneshot;
use tokio::time::Instant;

use super::idempotency::KeyClaim;
use super::model::{BookedEvent, BookingWithEvent};
use crate::error::Result;
use crate::http::deadline::RequestStart;

pub type Booked = Result<BookingWithEvent<BookedEvent>>;

/// One request for seats.
#[derive(Debug, Clone)]
pub struct BookingRequest {
    pub user_id: i32,
    pub event_id: i32,
    /// `None`: the event's only type (refused when it has several).
    pub ticket_type_id: Option<i32>,
    pub seats: i32,
    /// The Idempotency-Key this request holds, if it sent one.
    pub key: Option<KeyClaim>,
}

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

    /// The lane is about to send COMMIT; false if the handler gave up first.
    pub fn commit(&self) -> bool {
        self.move_from(TAKEN, COMMITTING)
    }

    /// The handler gives up; false when COMMIT may already have been sent.
    pub fn abandon(&self) -> bool {
        self.move_from(QUEUED, ABANDONED) || self.move_from(TAKEN, ABANDONED)
    }
}

/// A request, its deadlines, and where its answer goes.
pub struct Job {
    pub request: BookingRequest,
    pub start: RequestStart,
    pub state: JobState,
    pub reply: oneshot::Sender<Booked>,
}

impl Job {
    pub fn new(request: BookingRequest, start: RequestStart) -> (Self, oneshot::Receiver<Booked>) {
        let (reply, answer) = oneshot::channel();
        let job = Self {
            request,
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
