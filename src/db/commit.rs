//! The commit point of every write, as DESIGN.md ("Deadlines and answers") fixes it: the work
//! before COMMIT is bounded by the request's commit deadline and rolled back when it passes;
//! COMMIT itself is never cut short by a deadline, but when the database stops answering
//! after it was sent, the caller is told the outcome is unknown rather than a 503 that might
//! be a lie.

use std::future::Future;

use sqlx::{PgPool, Postgres, Transaction};
use tokio::time::{timeout_at, Instant};

use crate::error::{AppError, Result};
use crate::http::deadline::RequestStart;

pub type Tx = Transaction<'static, Postgres>;

/// Starts a transaction in a way that survives the caller's cancellation. sqlx's `begin()`
/// dropped while BEGIN is in flight (a deadline over a stalled database) forgets it sent BEGIN:
/// the connection goes back to the pool inside a transaction nobody will end, and the next
/// "autocommit" statements on it are never committed. Run in a task of its own, BEGIN always
/// completes; if nobody awaits the transaction any more, dropping it rolls it back properly.
pub async fn begin(db: &PgPool) -> Result<Tx> {
    let db = db.clone();
    tokio::spawn(async move { db.begin().await })
        .await
        .map_err(|e| AppError::Internal(e.into()))?
        .map_err(AppError::from)
}

/// `begin`, with `statement` run as the transaction's first statement in the same round trip
/// (one simple query: `BEGIN; <statement>`). Its results are discarded.
pub async fn begin_then(db: &PgPool, statement: String) -> Result<Tx> {
    let db = db.clone();
    tokio::spawn(async move { db.begin_with(format!("BEGIN; {statement}")).await })
        .await
        .map_err(|e| AppError::Internal(e.into()))?
        .map_err(AppError::from)
}

/// Runs `work` (which ends with a transaction ready to commit) by the request's commit
/// deadline, then commits it and waits for the answer by the request's answer deadline.
pub async fn write_in_time<T>(
    start: RequestStart,
    work: impl Future<Output = Result<(Option<Tx>, T)>>,
) -> Result<T> {
    let (tx, value) = timeout_at(start.commit_by(), work)
        .await
        .unwrap_or_else(|_| {
            Err(AppError::Unavailable(
                "deadline passed before COMMIT".into(),
            ))
        })?;
    if let Some(tx) = tx {
        commit_within(tx, start.answer_by()).await?;
    }
    Ok(value)
}

/// Sends COMMIT and waits for its answer until `answer_by`. A COMMIT that PostgreSQL refused
/// rolled back (its error is returned); one that got no answer is `OutcomeUnknown`.
pub async fn commit_within(tx: Tx, answer_by: Instant) -> Result<()> {
    match timeout_at(answer_by, tx.commit()).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => match AppError::from(error) {
            error if error.is_connection_failure() => {
                Err(AppError::OutcomeUnknown(error.to_string()))
            }
            error => Err(error),
        },
        Err(_) => Err(AppError::OutcomeUnknown(
            "COMMIT sent, no answer by the deadline".into(),
        )),
    }
}
