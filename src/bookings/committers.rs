//! Cross-event group commit. The lanes of different events hand their groups to a few
//! committer tasks, each of which carries out all the groups waiting at that moment in one
//! transaction (`group::run`: one read, one write statement, one COMMIT for the bookings of
//! many events), where each event would otherwise pay for a transaction of its own. A lane
//! has one group in flight at a time, so an event's operations keep their order, and a batch
//! holds an event at most once.

use std::sync::{Arc, Once};

use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot, Mutex};

use super::attempt::Settings;
use super::group::{self, EventJobs};
use super::job::Job;
use crate::events::cache::EventCache;

/// Transactions in flight at once: enough to keep PostgreSQL busy while a batch is prepared
/// or answered here, few enough to leave the pool (16 by default) to reads.
const COMMITTERS: usize = 4;
/// A batch is bounded so one transaction stays short.
const MAX_EVENTS: usize = 64;
const MAX_JOBS: usize = 1024;

/// One lane's group, and where to say whether its event exists.
struct Submission {
    event_id: i32,
    jobs: Vec<Job>,
    found: oneshot::Sender<bool>,
}

type Queue = Arc<Mutex<mpsc::UnboundedReceiver<Submission>>>;

pub struct Committers {
    db: PgPool,
    settings: Settings,
    cache: Arc<EventCache>,
    /// Unbounded, yet never holds more than one group per lane.
    sender: mpsc::UnboundedSender<Submission>,
    queue: Queue,
    started: Once,
}

impl Committers {
    pub fn new(db: PgPool, settings: Settings, cache: Arc<EventCache>) -> Self {
        let (sender, receiver) = mpsc::unbounded_channel();
        Self {
            db,
            settings,
            cache,
            sender,
            queue: Arc::new(Mutex::new(receiver)),
            started: Once::new(),
        }
    }

    /// Carries out one lane's group with whatever other groups wait; returns false when its
    /// event does not exist. The committers start with the first group (inside the runtime)
    /// and end when this is dropped.
    pub async fn run(&self, event_id: i32, jobs: Vec<Job>) -> bool {
        self.started.call_once(|| {
            for _ in 0..COMMITTERS {
                tokio::spawn(committer(
                    self.db.clone(),
                    self.settings,
                    self.cache.clone(),
                    self.queue.clone(),
                ));
            }
        });
        let (found, answer) = oneshot::channel();
        let submission = Submission {
            event_id,
            jobs,
            found,
        };
        if let Err(mpsc::error::SendError(submission)) = self.sender.send(submission) {
            // Cannot happen while `self` lives; carry it out here all the same.
            let (event_id, jobs) = (submission.event_id, submission.jobs);
            return group::run_one(&self.db, event_id, jobs, self.settings, &self.cache).await;
        }
        // A committer that failed dropped the jobs, and so answered them.
        answer.await.unwrap_or(true)
    }
}

async fn committer(db: PgPool, settings: Settings, cache: Arc<EventCache>, queue: Queue) {
    let mut held_over = Vec::new();
    while let Some(batch) = next_batch(&queue, &mut held_over).await {
        let (groups, replies): (Vec<EventJobs>, Vec<oneshot::Sender<bool>>) = batch
            .into_iter()
            .map(|s| ((s.event_id, s.jobs), s.found))
            .unzip();
        let found = group::run(&db, groups, settings, &cache).await;
        for (reply, found) in replies.into_iter().zip(found) {
            let _ = reply.send(found);
        }
    }
}

/// The groups waiting now (at least one; `None` once the lanes are gone): a second group of an
/// event already in the batch waits for the next one.
async fn next_batch(queue: &Queue, held_over: &mut Vec<Submission>) -> Option<Vec<Submission>> {
    let mut queue = queue.lock().await;
    let mut batch = std::mem::take(held_over);
    if batch.is_empty() {
        batch.push(queue.recv().await?);
    }
    let mut jobs: usize = batch.iter().map(|s| s.jobs.len()).sum();
    while batch.len() < MAX_EVENTS && jobs < MAX_JOBS {
        let Ok(next) = queue.try_recv() else {
            break;
        };
        if batch.iter().any(|s| s.event_id == next.event_id) {
            held_over.push(next);
            break;
        }
        jobs += next.jobs.len();
        batch.push(next);
    }
    Some(batch)
}
