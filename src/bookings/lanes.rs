//! Booking lanes: one in-process queue per event, so that one server never races against
//! itself on a hot event, and concurrent bookings of one event share one transaction.
//!
//! Pure optimistic locking lets every concurrent booking of one event read the same `version`;
//! all but one lose, and after three attempts most are turned away although seats remain. Here
//! a lane task per event takes every booking waiting for that event and books them as one group
//! (`service::book_group`: one version-checked UPDATE, one multi-row INSERT). Each request still
//! gets its own booking or its own precise error. The version check stays, because other server
//! instances share the database; a lane only removes the races between requests of this one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot};

use super::model::{BookedEvent, BookingWithEvent};
use super::service::{self, BookingRequest};
use crate::error::{AppError, Result};

/// A group is bounded so one transaction stays short.
const MAX_GROUP: usize = 256;
/// The longest one group's transaction (with its retries) may take before its requests get 503.
const GROUP_DEADLINE: Duration = Duration::from_secs(8);
/// A lane with nothing to do for this long ends; the next booking starts a new one.
const IDLE: Duration = Duration::from_secs(10);

type Booked = Result<BookingWithEvent<BookedEvent>>;

struct Job {
    request: BookingRequest,
    reply: oneshot::Sender<Booked>,
}

#[derive(Clone)]
pub struct BookingLanes {
    inner: Arc<Inner>,
}

struct Inner {
    db: PgPool,
    lanes: Mutex<HashMap<i32, mpsc::UnboundedSender<Job>>>,
}

impl BookingLanes {
    pub fn new(db: PgPool) -> Self {
        Self {
            inner: Arc::new(Inner {
                db,
                lanes: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Books through the event's lane. If the caller goes away, the booking still completes
    /// or fails as a whole; it is never half-written.
    pub async fn book(&self, request: BookingRequest) -> Booked {
        let (reply, answer) = oneshot::channel();
        self.enqueue(Job { request, reply });
        answer.await.map_err(|_| {
            AppError::Internal(anyhow::anyhow!("booking lane ended without an answer"))
        })?
    }

    fn enqueue(&self, job: Job) {
        let event_id = job.request.event_id;
        // Senders are used only under this lock, and a lane removes itself under it too, so a
        // job is never sent to a lane that has decided to end.
        let mut lanes = self
            .inner
            .lanes
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let job = match lanes.get(&event_id) {
            Some(lane) => match lane.send(job) {
                Ok(()) => return,
                Err(mpsc::error::SendError(job)) => job,
            },
            None => job,
        };
        let (sender, receiver) = mpsc::unbounded_channel();
        // The receiver is alive: it was just created.
        let _ = sender.send(job);
        lanes.insert(event_id, sender);
        tokio::spawn(run_lane(self.inner.clone(), event_id, receiver));
    }
}

async fn run_lane(inner: Arc<Inner>, event_id: i32, mut jobs: mpsc::UnboundedReceiver<Job>) {
    loop {
        let first = match tokio::time::timeout(IDLE, jobs.recv()).await {
            Ok(Some(job)) => job,
            Ok(None) => return,
            Err(_idle) => {
                let mut lanes = inner.lanes.lock().unwrap_or_else(PoisonError::into_inner);
                match jobs.try_recv() {
                    Ok(job) => job,
                    Err(_) => {
                        lanes.remove(&event_id);
                        return;
                    }
                }
            }
        };
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match jobs.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        let (requests, replies): (Vec<_>, Vec<_>) = group
            .into_iter()
            .map(|job| (job.request, job.reply))
            .unzip();
        // Bounded, so a database that stops answering cannot hold the lane (and every booking
        // queued behind it) forever; a cancelled transaction is rolled back by PostgreSQL.
        let booked = tokio::time::timeout(
            GROUP_DEADLINE,
            service::book_group_with_retry(&inner.db, event_id, &requests),
        )
        .await
        .unwrap_or_else(|_| {
            Err(AppError::Unavailable(
                "booking transaction timed out".into(),
            ))
        });
        match booked {
            Ok(outcomes) => {
                for (reply, outcome) in replies.into_iter().zip(outcomes) {
                    let _ = reply.send(outcome);
                }
            }
            Err(error) => {
                for reply in replies {
                    let _ = reply.send(Err(error.duplicate()));
                }
            }
        }
    }
}
