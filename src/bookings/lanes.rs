//! Lanes: one bounded in-process queue per event, through which every write that moves the
//! event's seats passes — bookings, holds, confirms, cancels, expiries, and organizer edits of
//! the event and its ticket types — so that one server never races against itself on a hot
//! event, and concurrent operations of one event share one transaction.
//!
//! Pure optimistic locking lets every concurrent writer of one event read the same `version`;
//! all but one lose, and after three attempts most are turned away although nothing is wrong.
//! Here a lane task per event takes every job waiting for that event and carries them out as
//! one group (`group::run`: one read, then one statement with the version-checked UPDATE, the
//! new bookings and the status changes), in one transaction with the groups of other events
//! that wait at the same moment (`committers`). Each request still gets its own result or its
//! own precise error. An organizer's
//! change of a ticket type joins the group like a booking; other organizer changes of the
//! event run alone between groups. The version check stays, because other server instances share
//! the database; a lane only removes the races between requests of this one.
//!
//! Backpressure: a full queue answers 503 at once instead of queueing work that cannot finish
//! in time; a job whose caller has gone, or whose deadline is too close, is dropped before its
//! transaction. A lane whose event does not exist ends after its first group.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use sqlx::PgPool;
use tokio::sync::mpsc::{self, error::TrySendError};
use tokio::sync::oneshot;
use tokio::time::Instant;
use uuid::Uuid;

use super::attempt::Settings;
use super::committers::Committers;
use super::group;
use super::job::{Answer, BookingRequest, Done, Job, Op, SoloWork};
use super::model::{BookedEvent, BookingWithEvent, CancelledEvent};
use super::recent::RecentBookings;
use crate::error::{AppError, Result};
use crate::events::cache::EventCache;
use crate::events::ticket_types::model::{TicketType, TypeChange};
use crate::http::deadline::RequestStart;

/// A group is bounded so one transaction stays short.
const MAX_GROUP: usize = 256;
/// Jobs a lane holds: a few groups' worth, which it books in well under a second. More would
/// only wait past their deadlines.
const QUEUE_CAPACITY: usize = 4 * MAX_GROUP;
/// A job with less time than this before its commit deadline is not started.
const MIN_TIME_LEFT: Duration = Duration::from_millis(100);
/// A lane with nothing to do for this long ends; the next job starts a new one.
const IDLE: Duration = Duration::from_secs(10);

#[derive(Clone)]
pub struct BookingLanes {
    inner: Arc<Inner>,
}

struct Inner {
    db: PgPool,
    /// False: every job runs in a transaction of its own (the per-request server).
    enabled: bool,
    settings: Settings,
    lanes: Mutex<HashMap<i32, mpsc::Sender<Job>>>,
    /// The events of the bookings made here lately.
    recent: RecentBookings,
    /// Where the lanes' groups are carried out, many events to a transaction.
    committers: Committers,
    /// Public event reads: a committed group drops its events' views before it answers.
    cache: Arc<EventCache>,
}

fn unexpected() -> AppError {
    AppError::Internal(anyhow::anyhow!(
        "a lane answered with the wrong kind of result"
    ))
}

impl BookingLanes {
    pub fn new(
        db: PgPool,
        enabled: bool,
        hold_seconds: u32,
        email: bool,
        cache: Arc<EventCache>,
    ) -> Self {
        let settings = Settings {
            hold_seconds: i32::try_from(hold_seconds).unwrap_or(i32::MAX),
            coordinate: enabled,
            email,
        };
        Self {
            inner: Arc::new(Inner {
                committers: Committers::new(db.clone(), settings, cache.clone()),
                cache,
                db,
                enabled,
                settings,
                lanes: Mutex::new(HashMap::new()),
                recent: RecentBookings::default(),
            }),
        }
    }

    /// Books or holds seats.
    pub async fn book(
        &self,
        request: BookingRequest,
        start: RequestStart,
    ) -> Result<BookingWithEvent<BookedEvent>> {
        let hold = request.hold;
        let booked = match self
            .submit(request.event_id, Op::Book(request), start)
            .await
        {
            Ok(Done::Booked(booking)) => {
                let made = &booking.booking;
                self.inner
                    .recent
                    .remember(made.booking_reference, made.event_id);
                Ok(booking)
            }
            Ok(_) => Err(unexpected()),
            Err(error) => Err(error),
        };
        crate::metrics::booking_outcome(&booked.as_ref().map(|_| hold));
        booked
    }

    /// The event of a booking made here lately, if it is one.
    pub fn recent_event_of(&self, reference: Uuid) -> Option<i32> {
        self.inner.recent.event_of(reference)
    }

    /// Confirms a hold of `event_id`.
    pub async fn confirm(
        &self,
        event_id: i32,
        user_id: i32,
        reference: Uuid,
        start: RequestStart,
    ) -> Result<BookingWithEvent<BookedEvent>> {
        let op = Op::Confirm { user_id, reference };
        match self.submit(event_id, op, start).await? {
            Done::Booked(booking) => Ok(booking),
            _ => Err(unexpected()),
        }
    }

    /// Cancels a booking or hold of `event_id`.
    pub async fn cancel(
        &self,
        event_id: i32,
        user_id: i32,
        reference: Uuid,
        start: RequestStart,
    ) -> Result<BookingWithEvent<CancelledEvent>> {
        let op = Op::Cancel { user_id, reference };
        match self.submit(event_id, op, start).await? {
            Done::Cancelled(booking) => Ok(booking),
            _ => Err(unexpected()),
        }
    }

    /// Changes a ticket type of `event_id` (its organizer's PUT), in order with the bookings
    /// around it.
    pub async fn edit_type(
        &self,
        event_id: i32,
        caller: i32,
        type_id: i32,
        change: TypeChange,
        start: RequestStart,
    ) -> Result<TicketType> {
        let op = Op::EditType {
            caller,
            type_id,
            change,
        };
        match self.submit(event_id, op, start).await? {
            Done::TypeEdited(ticket_type) => Ok(ticket_type),
            _ => Err(unexpected()),
        }
    }

    /// Releases due holds of `event_id`; returns how many.
    pub async fn expire(&self, event_id: i32, booking_ids: Vec<i32>) -> Result<usize> {
        let op = Op::Expire { booking_ids };
        match self.submit(event_id, op, RequestStart::now()).await? {
            Done::Expired(count) => Ok(count),
            _ => Err(unexpected()),
        }
    }

    /// Runs an organizer's change of the event alone in the event's lane, between groups, so
    /// it never races the lane for the event's version; with no lane open for the event (no
    /// booking traffic here), at once. `work` keeps its own deadlines (see
    /// `db::commit::write_in_time`); it is never started once the caller has given up.
    pub async fn solo<T: Send + 'static>(
        &self,
        event_id: i32,
        start: RequestStart,
        work: impl Future<Output = Result<T>> + Send + 'static,
    ) -> Result<T> {
        if !self.has_lane(event_id) {
            return work.await;
        }
        let (sender, result) = oneshot::channel();
        let op = Op::Solo(SoloWork::new(async move {
            let _ = sender.send(work.await);
        }));
        self.submit(event_id, op, start).await?;
        result.await.map_err(|_| unexpected())?
    }

    /// Hands a job to its event's lane (or runs it alone when lanes are off), and answers by
    /// the request's deadline with what was committed: "unavailable" only for a job that can
    /// no longer change anything.
    async fn submit(&self, event_id: i32, op: Op, start: RequestStart) -> Answer {
        let (job, answer) = Job::new(op, start);
        let state = job.state.clone();
        if self.inner.enabled {
            self.enqueue(event_id, job)?;
        } else {
            let inner = self.inner.clone();
            tokio::spawn(async move { inner.run(event_id, vec![job]).await });
        }
        match tokio::time::timeout_at(start.answer_by(), answer).await {
            Ok(Ok(answer)) => answer,
            // No answer in time (or the lane failed): decide for the job if it is not committing.
            _ if state.abandon() => Err(AppError::Unavailable("not started in time".into())),
            _ => Err(AppError::OutcomeUnknown("no answer from the lane".into())),
        }
    }

    fn has_lane(&self, event_id: i32) -> bool {
        self.inner.enabled
            && self
                .inner
                .lanes
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .contains_key(&event_id)
    }

    fn enqueue(&self, event_id: i32, job: Job) -> Result<()> {
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
                    return Err(AppError::Unavailable("lane queue full".into()));
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
    /// Carries out one group of `event_id`; false when the event does not exist.
    async fn carry_out(&self, event_id: i32, jobs: Vec<Job>) -> bool {
        if self.enabled {
            return self.committers.run(event_id, jobs).await;
        }
        group::run_one(&self.db, event_id, jobs, self.settings, &self.cache).await
    }

    /// Under the lanes lock: the next job, or `None` after removing this lane.
    fn next_or_retire(&self, event_id: i32, jobs: &mut mpsc::Receiver<Job>) -> Option<Job> {
        let mut lanes = self.lanes.lock().unwrap_or_else(PoisonError::into_inner);
        let next = jobs.try_recv().ok();
        if next.is_none() {
            lanes.remove(&event_id);
        }
        next
    }

    /// Carries out a batch taken from the queue: solo jobs alone, in order, the others as one
    /// group (a second rename starts a new one). Returns false when the event does not exist.
    async fn run(&self, event_id: i32, jobs: Vec<Job>) -> bool {
        let mut found = true;
        let mut group = Vec::new();
        for job in admit(&self.db, jobs) {
            if let Op::Solo(_) = job.op {
                if !group.is_empty() {
                    let batch = std::mem::take(&mut group);
                    found &= self.carry_out(event_id, batch).await;
                }
                run_solo(job).await;
            } else {
                if job.op.renames() && group.iter().any(|queued| queued.op.renames()) {
                    let batch = std::mem::take(&mut group);
                    found &= self.carry_out(event_id, batch).await;
                }
                group.push(job);
            }
        }
        if !group.is_empty() {
            found &= self.carry_out(event_id, group).await;
        }
        found
    }
}

/// A solo job keeps its own deadlines from here on, so its handler waits for its answer.
async fn run_solo(job: Job) {
    if !job.state.commit() {
        return;
    }
    if let Some(work) = match &job.op {
        Op::Solo(work) => work.take(),
        _ => None,
    } {
        work.await;
    }
    let _ = job.reply.send(Ok(Done::Solo));
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
        let mut batch = vec![first];
        while batch.len() < MAX_GROUP {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        // An event that does not exist keeps no lane: answer what is queued, then end.
        if !inner.run(event_id, batch).await {
            retiring = true;
        }
    }
}

/// Takes the jobs that can still be carried out in time and whose callers still wait; answers
/// the others 503 and frees their keys. None of them ever changes anything.
fn admit(db: &PgPool, jobs: Vec<Job>) -> Vec<Job> {
    let latest_start = Instant::now() + MIN_TIME_LEFT;
    let (ready, dropped): (Vec<Job>, Vec<Job>) = jobs
        .into_iter()
        .partition(|job| job.caller_waits() && job.commit_by() > latest_start && job.state.take());
    group::release_all(db, &dropped);
    for job in dropped {
        let _ = job.reply.send(Err(AppError::Unavailable(
            "deadline passed in the queue".into(),
        )));
    }
    ready
}
