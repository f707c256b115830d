//! Running one group of jobs to its end: the attempts (with the retry rule) before COMMIT,
//! bounded by the earliest deadline of the group; then COMMIT, which no deadline covers; then
//! one answer per job that matches what was committed.
//!
//! - Nothing reached COMMIT: every job is answered (503 when the deadline passed) and its
//!   Idempotency-Key claim is released, since it changed nothing.
//! - COMMIT succeeded: each job gets its result or its refusal; keys were recorded with them.
//! - COMMIT was sent and the database stopped answering: the jobs that changed something get
//!   API.md's "Booking outcome unknown" and keep their claims, so a retry finds out.

use sqlx::PgPool;
use tokio::time::timeout_at;

use super::attempt::{prepare_group, Prepared, Settings};
use super::idempotency;
use super::job::{Answer, Done, Job, Op};
use crate::concurrency::retry_optimistic;
use crate::db::commit::commit_within;
use crate::error::AppError;

/// Marks the whole group's lost races, so each job gets the 409 of its own kind.
const EXHAUSTED: &str = "the group lost the version race on every attempt";

/// Carries out `jobs` (all of `event_id`, all taken by the caller, none solo). Returns false
/// when the event does not exist.
pub async fn run(db: &PgPool, event_id: i32, jobs: Vec<Job>, settings: Settings) -> bool {
    let Some(commit_by) = jobs.iter().map(Job::commit_by).min() else {
        return true;
    };
    crate::metrics::group_size(jobs.len());
    let ops: Vec<&Op> = jobs.iter().map(|job| &job.op).collect();
    let attempts = retry_optimistic(
        || prepare_group(db, event_id, &ops, settings),
        || AppError::conflict(EXHAUSTED),
    );
    let prepared = match timeout_at(commit_by, attempts).await {
        Ok(Ok(prepared)) => prepared,
        Ok(Err(error)) => {
            fail(db, jobs, &error);
            return true;
        }
        Err(_deadline) => {
            let error = AppError::Unavailable("deadline passed before COMMIT".into());
            fail(db, jobs, &error);
            return true;
        }
    };
    let Prepared {
        tx,
        outcomes,
        event_found,
    } = prepared;
    let Some(tx) = tx else {
        // Nothing written: the refusals stand, nothing was recorded.
        release_all(db, &jobs);
        answer(jobs, outcomes);
        return event_found;
    };
    // The point of no return. A handler that has given up by now was (or will be) told
    // "unavailable", so the group must not commit.
    if !jobs.iter().all(|job| job.state.commit()) {
        drop(tx);
        let error = AppError::Unavailable("a caller gave up before COMMIT".into());
        fail(db, jobs, &error);
        return true;
    }
    let answer_by = jobs
        .iter()
        .map(|job| job.start.answer_by())
        .min()
        .unwrap_or(commit_by);
    match commit_within(tx, answer_by).await {
        Ok(()) => answer(jobs, outcomes),
        Err(AppError::OutcomeUnknown(cause)) => unknown(jobs, outcomes, &cause),
        // PostgreSQL refused the COMMIT: the transaction was rolled back.
        Err(error) => fail(db, jobs, &error),
    }
    event_found
}

fn answer(jobs: Vec<Job>, outcomes: Vec<Answer>) {
    for (job, outcome) in jobs.into_iter().zip(outcomes) {
        let _ = job.reply.send(outcome);
    }
}

/// Nothing of this group was committed: each job gets `error` (its own kind of "high demand"
/// 409 when the group lost every race), and its key is free again.
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
