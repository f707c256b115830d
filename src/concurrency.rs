//! The optimistic-locking retry loop, written once and shared by bookings, cancellations and
//! organizer seat edits.
//!
//! Each attempt reads the row with its `version`, validates, and writes with
//! `... WHERE id = $1 AND version = $2`. Zero rows written means another writer got there
//! first: the attempt reports `Lost`, and we back off with jitter (so the losers do not collide
//! again in lock-step) and retry from a fresh read. A serialization failure or deadlock
//! reported by PostgreSQL counts as a lost race too.

use std::future::Future;
use std::time::Duration;

use rand::Rng;

use crate::error::{AppError, Result};

/// Attempts in all, the first included.
pub const MAX_ATTEMPTS: u32 = 3;

/// What one attempt achieved.
pub enum Attempt<T> {
    Done(T),
    /// The version check failed: someone else changed the row since we read it.
    Lost,
}

/// Runs `attempt` until it is `Done`, at most `MAX_ATTEMPTS` times; when every attempt lost
/// the race, fails with `exhausted` (the route's 409).
pub async fn retry_optimistic<T, F, Fut>(
    mut attempt: F,
    exhausted: impl FnOnce() -> AppError,
) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Attempt<T>>>,
{
    for n in 1..=MAX_ATTEMPTS {
        match attempt().await {
            Ok(Attempt::Done(value)) => return Ok(value),
            Ok(Attempt::Lost) => {}
            Err(error) if error.is_lost_race() => {}
            Err(error) => return Err(error),
        }
        if n < MAX_ATTEMPTS {
            tokio::time::sleep(backoff(n)).await;
        }
    }
    Err(exhausted())
}

/// Full jitter over an exponentially growing window: 0–10 ms, then 0–20 ms.
pub fn backoff(attempt: u32) -> Duration {
    let window_ms = 10u64 << (attempt - 1).min(6);
    Duration::from_micros(rand::thread_rng().gen_range(0..window_ms * 1000))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[tokio::test]
    async fn retries_lost_races_then_gives_up() {
        let calls = Cell::new(0);
        let result: Result<()> = retry_optimistic(
            || {
                calls.set(calls.get() + 1);
                async { Ok(Attempt::Lost) }
            },
            || AppError::conflict("busy"),
        )
        .await;
        assert_eq!(calls.get(), MAX_ATTEMPTS);
        assert!(matches!(result, Err(AppError::Client { .. })));
    }

    #[tokio::test]
    async fn stops_at_the_first_success_or_real_error() {
        let calls = Cell::new(0);
        let result = retry_optimistic(
            || {
                calls.set(calls.get() + 1);
                let n = calls.get();
                async move {
                    Ok(if n == 2 {
                        Attempt::Done(n)
                    } else {
                        Attempt::Lost
                    })
                }
            },
            || AppError::conflict("busy"),
        )
        .await;
        assert_eq!(result.ok(), Some(2));

        let calls = Cell::new(0);
        let result: Result<()> = retry_optimistic(
            || {
                calls.set(calls.get() + 1);
                async { Err(AppError::not_found("gone")) }
            },
            || AppError::conflict("busy"),
        )
        .await;
        assert_eq!(calls.get(), 1);
        assert!(result.is_err());
    }
}
