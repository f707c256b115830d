//! Booking lanes: one bounded in-process queue per event, so that one server never races
//! against itself on a hot event, and concurrent bookings of one event share one transaction.
//!
//! Pure optimistic locking lets every concurrent booking of one event read the same `version`;
//! all but one lose, and after three attempts most are turned away although seats remain. Here
//! a lane task per event takes every booking waiting for that event and books them as one group
//! (`group::run`: one version-checked UPDATE, one multi-row INSERT). Each request still gets its
//! own booking or its own precise error. The version check stays, because other server
//! instances share the database; a lane only removes the races between requests of this one.
//!
//! Backpressure: a full queue answers 503 at once instead of queueing work that cannot finish
//! in time; a job whose caller has gone, or whose deadline is too close, is dropped before its
//! transaction. A lane whose event does not exist ends after its first group.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use sqlx::PgPool;
use tokio::sync::mpsc::{self, error::TrySendError};
use tokio::time::Instant;

use super::group;
use super::job::{Booked, BookingRequest, Job};
use crate::error::AppError;
use crate::http::deadline::RequestStart;

/// A group is bounded so one transaction stays short.
const MAX_GROUP: usize = 256;
/// Jobs a lane holds: a few groups' worth, which it books in well under a second. More would
/// only wait past their deadlines.
const QUEUE_CAPACITY: usize = 4 * MAX_GROUP;
/// A job with less time than this before its commit deadline is not started.
const MIN_TIME_LEFT: Duration = Duration::from_millis(100);
/// A lane with nothing to do for this long ends; the next booking starts a new one.
const IDLE: Duration = Duration::from_secs(10);

#[derive(Clone)]
pub struct BookingLanes {
    inner: Arc<Inner>,
}

struct Inner {
    db: PgPool,
    /// False: every booking runs in a transaction of its own (the per-request server).
    enabled: bool,
    lanes: Mutex<HashMap<i32, mpsc::Sender<Job>>>,
}

impl BookingLanes {
    pub fn new(db: PgPool, enabled: bool) -> Self {
        Self {
            inner: Arc::new(Inner {
                db,
                enabled,
                lanes: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Books through the event's lane, and answers by the request's deadline with what was
    /// committed: "unavailable" only for a job that can no longer be booked.
    pub async fn book(&self, request: BookingRequest, start: RequestStart) -> Booked {
        let (job, answer) = Job::new(request, start);
        let state = job.state.clone();
        if self.inner.enabled {
            self.enqueue(job)?;
        } else {
            let db = self.inner.db.clone();
            tokio::spawn(async move {
                let event_id = job.request.event_id;
                let jobs = admit(&db, vec![job]);
                group::run(&db, event_id, jobs).await
            });
        }
        match tokio::time::timeout_at(start.answer_by(), answer).await {
            Ok(Ok(booked)) => booked,
            // No answer in time (or the lane failed): decide for the job if it is not committing.
            _ if state.abandon() => {
                Err(AppError::Unavailable("booking not started in time".into()))
            }
            _ => Err(AppError::OutcomeUnknown(
                "no answer from the booking lane".into(),
            )),
        }
    }

    fn enqueue(&self, job: Job) -> Result<(), AppError> {
        let event_id = job.request.event_id;
        // Senders are used only under this lock, and a lane removes itself under it too, so a
        // job is never sent to a lane that has decided to end.
        let mut lanes = self
            .inner
            .lanes
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let job = match lanes.get(&event_id) {
            Some(lane) => match lane.try_send(job) {
                Ok(()) => return Ok(()),
                Err(TrySendError::Full(job)) => {
                    group::release_all(&self.inner.db, std::slice::from_ref(&job));
                    return Err(AppError::Unavailable("booking queue full".into()));
                }
                // The lane ended (a panic): start a new one.
                Err(TrySendError::Closed(job)) => job,
            },
            None => job,
        };
        let (sender, receiver) = mpsc::channel(QUEUE_CAPACITY);
        // The receiver is alive and the queue empty: it was just created.
        let _ = sender.try_send(job);
        lanes.insert(event_id, sender);
        tokio::spawn(run_lane(self.inner.clone(), event_id, receiver));
        Ok(())
    }
}

impl Inner {
    /// Under the lanes lock: the next job, or `None` after removing this lane.
    fn next_or_retire(&self, event_id: i32, jobs: &mut mpsc::Receiver<Job>) -> Option<Job> {
        let mut lanes = self.lanes.lock().unwrap_or_else(PoisonError::into_inner);
        let next = jobs.try_recv().ok();
        if next.is_none() {
            lanes.remove(&event_id);
        }
        next
    }
}

async fn run_lane(inner: Arc<Inner>, event_id: i32, mut jobs: mpsc::Receiver<Job>) {
    let mut retiring = false;
    loop {
        let first = if retiring {
            match inner.next_or_retire(event_id, &mut jobs) {
                Some(job) => job,
                None => return,
            }
        } else {
            match tokio::time::timeout(IDLE, jobs.recv()).await {
                Ok(Some(job)) => job,
                Ok(None) => return,
                Err(_idle) => match inner.next_or_retire(event_id, &mut jobs) {
                    Some(job) => job,
                    None => return,
                },
            }
        };
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match jobs.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        let group = admit(&inner.db, group);
        // An event that does not exist keeps no lane: answer what is queued, then end.
        if !group.is_empty() && !group::run(&inner.db, event_id, group).await {
            retiring = true;
        }
    }
}

/// Takes the jobs that can still be booked in time and whose callers still wait; answers the
/// others 503 and frees their keys. None of them is ever booked.
fn admit(db: &PgPool, jobs: Vec<Job>) -> Vec<Job> {
    let latest_start = Instant::now() + MIN_TIME_LEFT;
    let (ready, dropped): (Vec<Job>, Vec<Job>) = jobs
        .into_iter()
        .partition(|job| job.caller_waits() && job.commit_by() > latest_start && job.state.take());
    group::release_all(db, &dropped);
    for job in dropped {
        let _ = job.reply.send(Err(AppError::Unavailable(
            "booking deadline passed in the queue".into(),
        )));
    }
    ready
}
