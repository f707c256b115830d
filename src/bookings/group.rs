//! Running the groups of one or more events to their end: each attempt (with the retry rule)
//! before COMMIT, bounded by the earliest deadline of its jobs; then COMMIT, which no deadline
//! covers; then one answer per job that matches what was committed. An event that lost its
//! version race in an attempt wrote nothing in it: the others are committed, and it alone
//! tries again, three attempts in all.
//!
//! - Nothing reached COMMIT: every job is answered (503 when the deadline passed) and its
//!   Idempotency-Key claim is released, since it changed nothing.
//! - COMMIT succeeded: each job gets its result or its refusal; keys were recorded with them.
//! - COMMIT was sent and the database stopped answering: the jobs that changed something get
//!   API.md's "Booking outcome unknown" and keep their claims, so a retry finds out.

use sqlx::PgPool;
use tokio::time::timeout_at;

use super::attempt::{prepare, EventOps, Prepared, Settings, Settled};
use super::idempotency;
use super::job::{Answer, Done, Job};
use crate::concurrency::{backoff, Attempt, MAX_ATTEMPTS};
use crate::db::commit::commit_within;
use crate::error::AppError;
use crate::events::cache::EventCache;

/// Marks the lost races of an event on every attempt, so each job gets the 409 of its kind.
const EXHAUSTED: &str = "the group lost the version race on every attempt";

/// One event's jobs, all taken by the caller, none solo.
pub type EventJobs = (i32, Vec<Job>);

/// An event still to be carried out: its place in the batch, its id, its jobs.
type Pending = (usize, i32, Vec<Job>);

/// Carries out `batch` (each event at most once). Returns, per event, false when it does not
/// exist.
pub async fn run(
    db: &PgPool,
    batch: Vec<EventJobs>,
    settings: Settings,
    cache: &EventCache,
) -> Vec<bool> {
    let mut found = vec![true; batch.len()];
    let mut pending: Vec<Pending> = batch
        .into_iter()
        .enumerate()
        .filter(|(_, (_, jobs))| !jobs.is_empty())
        .map(|(index, (event_id, jobs))| {
            crate::metrics::group_size(jobs.len());
            (index, event_id, jobs)
        })
        .collect();
    for attempt in 1..=MAX_ATTEMPTS {
        if pending.is_empty() {
            return found;
        }
        if attempt > 1 {
            tokio::time::sleep(backoff(attempt - 1)).await;
        }
        let Some(commit_by) = jobs_of(&pending).map(Job::commit_by).min() else {
            return found;
        };
        let ops: Vec<EventOps> = pending
            .iter()
            .map(|(_, event_id, jobs)| (*event_id, jobs.iter().map(|job| &job.op).collect()))
            .collect();
        let result = timeout_at(commit_by, prepare(db, &ops, settings)).await;
        drop(ops);
        let prepared = match result {
            Ok(Ok(Attempt::Done(prepared))) => prepared,
            Ok(Ok(Attempt::Lost)) => continue,
            Ok(Err(error)) if error.is_lost_race() => continue,
            Ok(Err(error)) => {
                fail_pending(db, pending, &error);
                return found;
            }
            Err(_deadline) => {
                let error = AppError::Unavailable("deadline passed before COMMIT".into());
                fail_pending(db, pending, &error);
                return found;
            }
        };
        pending = match settle(db, pending, prepared, &mut found, cache).await {
            Some(lost) => lost,
            None => return found,
        };
    }
    fail_pending(db, pending, &AppError::conflict(EXHAUSTED));
    found
}

/// `run` for the jobs of one event; false when it does not exist.
pub async fn run_one(
    db: &PgPool,
    event_id: i32,
    jobs: Vec<Job>,
    settings: Settings,
    cache: &EventCache,
) -> bool {
    let found = run(db, vec![(event_id, jobs)], settings, cache).await;
    found.first().copied().unwrap_or(true)
}

fn jobs_of(pending: &[Pending]) -> impl Iterator<Item = &Job> {
    pending.iter().flat_map(|(_, _, jobs)| jobs)
}

/// Commits what an attempt settled and answers it. Returns the events that lost their version
/// race, to try again, or `None` when every job has been answered.
async fn settle(
    db: &PgPool,
    pending: Vec<Pending>,
    prepared: Prepared,
    found: &mut [bool],
    cache: &EventCache,
) -> Option<Vec<Pending>> {
    let Prepared { tx, events } = prepared;
    let mut lost = Vec::new();
    let mut answered = Vec::new();
    let mut settled_events = Vec::new();
    for ((index, event_id, jobs), settled) in pending.into_iter().zip(events) {
        match settled {
            Settled::Lost => lost.push((index, event_id, jobs)),
            Settled::Answered {
                outcomes,
                found: exists,
            } => {
                found[index] &= exists;
                settled_events.push(event_id);
                answered.push((jobs, outcomes));
            }
        }
    }
    let Some(tx) = tx else {
        // Nothing written: the refusals stand, nothing was recorded.
        for (jobs, outcomes) in answered {
            release_all(db, &jobs);
            answer(jobs, outcomes);
        }
        return Some(lost);
    };
    // The point of no return. A handler that has given up by now was (or will be) told
    // "unavailable", so the attempt must not commit.
    if !answered
        .iter()
        .flat_map(|(jobs, _)| jobs)
        .all(|job| job.state.commit())
    {
        drop(tx);
        let error = AppError::Unavailable("a caller gave up before COMMIT".into());
        for (jobs, _) in answered {
            fail(db, jobs, &error);
        }
        fail_pending(db, lost, &error);
        return None;
    }
    let answer_by = answered
        .iter()
        .flat_map(|(jobs, _)| jobs)
        .map(|job| job.start.answer_by())
        .min();
    let Some(answer_by) = answer_by else {
        // Only lost events wrote nothing, and the records are of none: nothing to commit.
        return Some(lost);
    };
    let committed = commit_within(tx, answer_by).await;
    // Whatever COMMIT did, no reader here may see these events as they were before it.
    cache.seats_changed(settled_events);
    match committed {
        Ok(()) => {
            for (jobs, outcomes) in answered {
                answer(jobs, outcomes);
            }
        }
        Err(AppError::OutcomeUnknown(cause)) => {
            for (jobs, outcomes) in answered {
                unknown(jobs, outcomes, &cause);
            }
        }
        // PostgreSQL refused the COMMIT: the transaction was rolled back.
        Err(error) => {
            for (jobs, _) in answered {
                fail(db, jobs, &error);
            }
        }
    }
    Some(lost)
}

fn fail_pending(db: &PgPool, pending: Vec<Pending>, error: &AppError) {
    for (_, _, jobs) in pending {
        fail(db, jobs, error);
    }
}

fn answer(jobs: Vec<Job>, outcomes: Vec<Answer>) {
    for (job, outcome) in jobs.into_iter().zip(outcomes) {
        let _ = job.reply.send(outcome);
    }
}

/// Nothing of these jobs was committed: each job gets `error` (its own kind of "high demand"
/// 409 when its event lost every race), and its key is free again.
pub fn fail(db: &PgPool, jobs: Vec<Job>, error: &AppError) {
    release_all(db, &jobs);
    let exhausted = matches!(error, AppError::Client { message, .. } if message == EXHAUSTED);
    for job in jobs {
        let error = if exhausted {
            job.op.high_demand()
        } else {
            error.duplicate()
        };
        let _ = job.reply.send(Err(error));
    }
}

/// COMMIT may or may not have happened. Refusals changed nothing either way; the others must
/// not be told anything they cannot know. Claims stay: their outcome may be recorded.
fn unknown(jobs: Vec<Job>, outcomes: Vec<Answer>, cause: &str) {
    for (job, outcome) in jobs.into_iter().zip(outcomes) {
        let outcome = match outcome {
            Ok(Done::Booked(_) | Done::Cancelled(_) | Done::TypeEdited(_)) => {
                Err(AppError::OutcomeUnknown(cause.to_string()))
            }
            other => other,
        };
        let _ = job.reply.send(outcome);
    }
}

/// Releases the key claims of jobs whose transaction never committed.
pub fn release_all(db: &PgPool, jobs: &[Job]) {
    for job in jobs {
        if let Some((user_id, claim)) = job.op.key() {
            idempotency::release(db, user_id, claim);
        }
    }
}
