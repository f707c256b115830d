//! Where public reads go: the streaming replica of `DATABASE_READ_URL` while it answers, the
//! primary otherwise. A watcher pings the replica every second; a read that finds it unreachable
//! or stalled marks it down at once and is answered from the primary, so an outage costs a read
//! at most two seconds, and the replica is used again within a second of its return. A read
//! the replica fails for another reason (a recovery conflict, a migration not replayed yet) is
//! also answered from the primary; its 4xx answers are the read's own.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::PgConnectOptions;
use sqlx::PgPool;

use crate::error::{AppError, Result};

/// A replica that does not hand out a connection within this long is treated as down.
const REPLICA_ACQUIRE: Duration = Duration::from_secs(1);
const WATCH_EVERY: Duration = Duration::from_secs(1);
const PING_TIMEOUT: Duration = Duration::from_secs(1);
/// A public read the replica has not answered by then is asked of the primary.
const REPLICA_READ: Duration = Duration::from_secs(2);

#[derive(Clone)]
pub struct Reads {
    primary: PgPool,
    replica: Option<Replica>,
}

#[derive(Clone)]
struct Replica {
    pool: PgPool,
    up: Arc<AtomicBool>,
}

impl Reads {
    /// Reads from the primary only.
    pub fn primary(primary: PgPool) -> Self {
        Self {
            primary,
            replica: None,
        }
    }

    /// Reads from the replica (connected lazily: a replica that is down at start is fine).
    pub fn with_replica(primary: PgPool, replica: PgConnectOptions, max_connections: u32) -> Self {
        let pool = super::pool(replica, max_connections, REPLICA_ACQUIRE);
        Self {
            primary,
            replica: Some(Replica {
                pool,
                // Assumed up until a read or the watcher finds otherwise.
                up: Arc::new(AtomicBool::new(true)),
            }),
        }
    }

    /// Runs a public read on the replica if it is up, else (or if it turns out unreachable) on
    /// the primary. Errors other than an unreachable replica are the read's own.
    pub async fn run<T, F, Fut>(&self, read: F) -> Result<T>
    where
        F: Fn(PgPool) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        if let Some(replica) = self.replica.as_ref().filter(|r| r.is_up()) {
            match tokio::time::timeout(REPLICA_READ, read(replica.pool.clone())).await {
                Ok(Err(error)) if !matches!(error, AppError::Client { .. }) => {
                    // Unreachable, stalled, or unable to answer (a recovery conflict, a schema
                    // behind the primary's): the primary answers instead.
                    if error.is_connection_failure() {
                        replica.mark(false);
                    }
                    tracing::warn!(%error, "replica read failed: reading from the primary");
                }
                Ok(answer) => return answer,
                Err(_stalled) => {
                    replica.mark(false);
                    tracing::warn!("replica read stalled: reading from the primary");
                }
            }
        }
        read(self.primary.clone()).await
    }

    /// `None` without a replica; else whether it answers now (and the reads follow).
    pub async fn replica_up(&self) -> Option<bool> {
        let replica = self.replica.as_ref()?;
        let up = replica.ping().await;
        replica.mark(up);
        Some(up)
    }

    /// Pings the replica every second for the life of the server, so reads return to it.
    pub async fn watch(self) {
        let Some(replica) = self.replica else {
            return;
        };
        let mut every = tokio::time::interval(WATCH_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            let up = replica.ping().await;
            replica.mark(up);
        }
    }
}

impl Replica {
    fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    fn mark(&self, up: bool) {
        if self.up.swap(up, Ordering::Relaxed) != up {
            if up {
                tracing::info!("replica reachable again: public reads use it");
            } else {
                tracing::warn!("replica down: public reads use the primary");
            }
        }
    }

    async fn ping(&self) -> bool {
        let ping = sqlx::query_scalar::<_, i32>("SELECT 1").fetch_one(&self.pool);
        matches!(tokio::time::timeout(PING_TIMEOUT, ping).await, Ok(Ok(1)))
    }
}
