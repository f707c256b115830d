//! The door: scans that wait at the same moment, of any event, are decided by one statement
//! (`checkin::run`) and each gets its own answer. At a busy entrance the statement, not the
//! verification of codes, is what a scan costs; sharing it lets one connection keep up with
//! many scanners. One statement is in flight at a time while the next batch gathers: in the
//! CHECK-IN bench, two or three in flight were slower (they compete with the server for the
//! same cores) and their p99 worse.
//!
//! A statement never takes two scans of one ticket or of one stored scan (they would decide
//! each other's answer); the second waits for a statement of its own, after the first. A
//! statement that fails for a reason of its own (not the connection) is repeated scan by scan,
//! so one scan's failure is never another's.
//!
//! Deadlines as on every write path: a scan still queued at its commit deadline (the statement
//! before it stalls) is never sent and answered 503; one whose caller has gone is not sent;
//! once sent, a caller that hears nothing by its answer deadline is told the outcome is unknown
//! (503 "Check-in outcome unknown: scan again with the same nonce"; that retry gets the stored
//! answer).

use std::collections::HashSet;
use std::sync::OnceLock;
use std::time::Duration;

use axum::http::StatusCode;
use sqlx::pool::PoolConnection;
use sqlx::{PgPool, Postgres};
use tokio::sync::{mpsc, oneshot};
use tokio::time::{timeout, timeout_at, Instant};

use super::checkin::{run, Answer, Scan};
use crate::bookings::job::JobState;
use crate::error::{AppError, Result};
use crate::http::deadline::RequestStart;

/// Scans decided by one statement at most.
const MAX_BATCH: usize = 128;
/// Scans waiting at most; beyond, a scan is answered 503 at once.
const QUEUE_CAPACITY: usize = 8 * MAX_BATCH;
/// Statements a scan may need when another scan's effect is not yet in sight (see
/// `Seen::answer`).
const ATTEMPTS: usize = 3;
/// How long a batch may wait for a connection.
const ACQUIRE: Duration = Duration::from_secs(2);

pub struct Door {
    db: PgPool,
    /// Started with the first scan, inside the runtime.
    queue: OnceLock<mpsc::Sender<Job>>,
}

struct Job {
    scan: Scan,
    start: RequestStart,
    reply: oneshot::Sender<Result<Answer>>,
    /// Who decided what becomes of the scan first, the door sending it or its caller giving
    /// up on it (the lanes' hand-over): a caller is told 503 only for a scan never sent.
    state: JobState,
}

impl Job {
    fn answer(self, answer: Result<Answer>) {
        // A caller that has gone needs no answer.
        let _ = self.reply.send(answer);
    }
}

impl Door {
    pub fn new(db: PgPool) -> Self {
        Self {
            db,
            queue: OnceLock::new(),
        }
    }

    /// Decides one scan, with whatever other scans are waiting.
    pub async fn scan(&self, scan: Scan, start: RequestStart) -> Result<Answer> {
        let (reply, mut answer) = oneshot::channel();
        let state = JobState::default();
        self.queue()
            .try_send(Job {
                scan,
                start,
                reply,
                state: state.clone(),
            })
            .map_err(|_| AppError::Unavailable("the door's queue is full".into()))?;
        if let Ok(answer) = timeout_at(start.commit_by(), &mut answer).await {
            return answer.unwrap_or_else(|_| Err(dropped()));
        }
        if state.abandon() {
            return Err(unsent());
        }
        match timeout_at(start.answer_by(), answer).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(_)) => Err(dropped()),
            Err(_) => Err(unknown("scan sent, no answer by the deadline")),
        }
    }

    fn queue(&self) -> &mpsc::Sender<Job> {
        self.queue.get_or_init(|| {
            let (queue, waiting) = mpsc::channel(QUEUE_CAPACITY);
            tokio::spawn(work(self.db.clone(), waiting));
            queue
        })
    }
}

async fn work(db: PgPool, mut waiting: mpsc::Receiver<Job>) {
    while let Some(jobs) = next_batch(&mut waiting).await {
        let jobs: Vec<Job> = jobs.into_iter().filter_map(still_wanted).collect();
        if !jobs.is_empty() {
            decide(&db, jobs).await;
        }
    }
}

/// Every scan waiting, up to `MAX_BATCH`; `None` once the door is gone.
async fn next_batch(waiting: &mut mpsc::Receiver<Job>) -> Option<Vec<Job>> {
    let mut jobs = vec![waiting.recv().await?];
    while jobs.len() < MAX_BATCH {
        match waiting.try_recv() {
            Ok(job) => jobs.push(job),
            Err(_) => break,
        }
    }
    Some(jobs)
}

/// The scan was sent and the database stopped answering: it may have been let in. API.md's
/// outcome-unknown message speaks of bookings; a scanner is told what to do instead.
fn unknown(cause: &str) -> AppError {
    tracing::warn!(%cause, "check-in sent, outcome unknown");
    AppError::client(StatusCode::SERVICE_UNAVAILABLE, CHECK_IN_OUTCOME_UNKNOWN)
}

const CHECK_IN_OUTCOME_UNKNOWN: &str = "Check-in outcome unknown: scan again with the same nonce";

fn unsent() -> AppError {
    AppError::Unavailable("deadline passed before the scan was sent".into())
}

fn dropped() -> AppError {
    AppError::Internal(anyhow::anyhow!("the door dropped a scan"))
}

/// A scan is sent only while its caller waits for it, before its commit deadline.
fn still_wanted(job: Job) -> Option<Job> {
    if job.reply.is_closed() {
        return None;
    }
    if Instant::now() >= job.start.commit_by() {
        if job.state.abandon() {
            job.answer(Err(unsent()));
        }
        return None;
    }
    // Taken and sent at once: nothing happens in between.
    (job.state.take() && job.state.commit()).then_some(job)
}

async fn decide(db: &PgPool, jobs: Vec<Job>) {
    let (together, mut alone) = apart(jobs);
    let mut conn = match timeout(ACQUIRE, db.acquire()).await {
        Ok(Ok(conn)) => conn,
        _ => {
            for job in together.into_iter().chain(alone) {
                job.answer(Err(AppError::Unavailable(
                    "no database connection for the door".into(),
                )));
            }
            return;
        }
    };
    let scans: Vec<&Scan> = together.iter().map(|job| &job.scan).collect();
    match run(&mut conn, &scans).await {
        Ok(rows) if rows.len() == together.len() => {
            for (job, row) in together.into_iter().zip(rows) {
                match row.answer(&job.scan) {
                    Ok(Some(answer)) => job.answer(Ok(answer)),
                    Ok(None) => alone.push(job),
                    Err(error) => job.answer(Err(error)),
                }
            }
        }
        Err(error) if error.is_connection_failure() => {
            for job in together {
                job.answer(Err(unknown(&error.to_string())));
            }
        }
        // Rolled back as a whole: each scan gets a statement of its own.
        _ => alone.extend(together),
    }
    for job in alone {
        let answer = decide_alone(&mut conn, &job.scan).await;
        job.answer(answer);
    }
}

/// Splits scans into those one statement can take and those that collide with one of them.
fn apart(jobs: Vec<Job>) -> (Vec<Job>, Vec<Job>) {
    let mut taken = HashSet::new();
    jobs.into_iter().partition(|job| {
        let keys = job.scan.keys();
        let free = keys.iter().flatten().all(|key| !taken.contains(key));
        if free {
            taken.extend(keys.into_iter().flatten());
        }
        free
    })
}

async fn decide_alone(conn: &mut PoolConnection<Postgres>, scan: &Scan) -> Result<Answer> {
    for _ in 0..ATTEMPTS {
        let row = run(conn, &[scan])
            .await
            .map_err(|error| match error {
                error if error.is_connection_failure() => unknown(&error.to_string()),
                error => error,
            })?
            .pop()
            .ok_or_else(|| AppError::Internal(anyhow::anyhow!("a scan without its row")))?;
        if let Some(answer) = row.answer(scan)? {
            return Ok(answer);
        }
    }
    Err(AppError::Internal(anyhow::anyhow!(
        "a scan's outcome stayed out of sight after {ATTEMPTS} statements"
    )))
}
