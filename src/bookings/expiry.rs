//! Hold expiry: every second, due holds (PENDING, `expiresAt` passed) are released through their
//! event's lane, with the same version-checked write as a cancel. The status change is
//! conditional on PENDING, so however many instances sweep at once, each hold's seats come
//! back exactly once; a confirm in the same lane is decided by the same clock.

use std::time::Duration;

use sqlx::PgPool;

use super::lanes::BookingLanes;
use crate::error::Result;

/// A sweep releases at most this many holds; the next one, a second later, takes the rest.
const BATCH: i64 = 2_000;
const EVERY: Duration = Duration::from_secs(1);

/// Releases the holds that are due now; returns how many this call released.
pub async fn sweep(db: &PgPool, lanes: &BookingLanes) -> Result<usize> {
    let due: Vec<(i32, Vec<i32>)> = sqlx::query_as(
        "SELECT event_id, array_agg(id ORDER BY id) FROM ( \
             SELECT id, event_id FROM bookings \
             WHERE status = 'PENDING' AND expires_at <= now() \
             ORDER BY expires_at LIMIT $1) due \
         GROUP BY event_id",
    )
    .bind(BATCH)
    .fetch_all(db)
    .await?;
    let tasks: Vec<_> = due
        .into_iter()
        .map(|(event_id, ids)| {
            let lanes = lanes.clone();
            tokio::spawn(async move { lanes.expire(event_id, ids).await })
        })
        .collect();
    let mut released = 0;
    for task in tasks {
        match task.await {
            Ok(Ok(count)) => released += count,
            Ok(Err(error)) => tracing::warn!(%error, "releasing expired holds failed"),
            Err(error) => tracing::warn!(%error, "an expiry task failed"),
        }
    }
    Ok(released)
}

/// Runs `sweep` every second, for the life of the server.
pub async fn sweep_every_second(db: PgPool, lanes: BookingLanes) {
    // The first sweep a second after start, like every other: a server (or test) that lives
    // less than that never opens a connection for it.
    let mut every = tokio::time::interval_at(tokio::time::Instant::now() + EVERY, EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        match sweep(&db, &lanes).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(released = n, "expired holds released"),
            Err(error) => tracing::debug!(%error, "expiry sweep failed"),
        }
    }
}
