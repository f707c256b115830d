//! The change feed of one instance: one `PgListener` on `event_changes` (see the migration's
//! trigger), fanned out to every open stream through a broadcast channel. After the listener
//! reconnects — or a heartbeat finds it half-open — every stream is told to re-read, so no
//! change is missed even when notices were lost.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Deserialize;
use sqlx::postgres::PgListener;
use sqlx::PgPool;
use tokio::sync::{broadcast, watch};

use super::fanout::{EventFanout, PublishedFanout};
use crate::error::{AppError, Result};
use crate::events::cache::EventCache;

const CHANNEL: &str = "event_changes";
const HEARTBEAT: Duration = Duration::from_secs(10);
const HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(5);

/// What a stream hears.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Event {
        id: i32,
        deleted: bool,
    },
    /// Notices may have been lost: re-read everything.
    Resync,
}

#[derive(Deserialize)]
struct Notice {
    id: i32,
    deleted: bool,
    /// Only the event's seats changed (absent from notices of older servers' triggers).
    #[serde(default)]
    seats: bool,
}

/// The feed and the open streams of this instance.
#[derive(Clone)]
pub struct Live {
    changes: broadcast::Sender<Change>,
    open: Arc<AtomicUsize>,
    max_streams: usize,
    closing: watch::Sender<bool>,
    /// One reader per watched event: its streams share what it reads (see `shared`).
    pub(super) watched: Arc<Mutex<HashMap<i32, Arc<EventFanout>>>>,
    /// What `/events/live` streams share: each changed published event, read once.
    pub(super) published: Arc<PublishedFanout>,
}

/// One open stream; counted until dropped.
pub struct StreamSlot {
    open: Arc<AtomicUsize>,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::AcqRel);
        metrics::gauge!("live_streams_open").decrement(1.0);
    }
}

impl Live {
    pub fn new(max_streams: usize) -> Self {
        Self {
            changes: broadcast::channel(4096).0,
            open: Arc::new(AtomicUsize::new(0)),
            max_streams,
            closing: watch::channel(false).0,
            watched: Arc::new(Mutex::new(HashMap::new())),
            published: Arc::new(PublishedFanout::default()),
        }
    }

    /// A slot for a new stream, or 503 when `LIVE_MAX_STREAMS` are open.
    pub fn open_stream(&self) -> Result<StreamSlot> {
        let open = self.open.fetch_add(1, Ordering::AcqRel);
        let slot = StreamSlot {
            open: self.open.clone(),
        };
        metrics::gauge!("live_streams_open").increment(1.0);
        if open >= self.max_streams {
            return Err(AppError::Unavailable("too many live streams".into()));
        }
        Ok(slot)
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.changes.subscribe()
    }

    /// Resolves when the server shuts down: streams end then, so they never hold it up.
    pub fn closing(&self) -> watch::Receiver<bool> {
        self.closing.subscribe()
    }

    pub fn close(&self) {
        let _ = self.closing.send(true);
    }

    fn publish(&self, change: Change) {
        // No stream open: nobody to tell.
        let _ = self.changes.send(change);
    }
}

/// Listens for the life of the server, reconnecting after any failure. The cache of public
/// reads is in use only while the listener is connected: it drops what changes elsewhere.
pub async fn listen(db: PgPool, live: Live, cache: Arc<EventCache>) {
    let mut closing = live.closing();
    loop {
        tokio::select! {
            _ = closing.changed() => return,
            result = listen_once(&db, &live, &cache) => {
                if let Err(error) = result {
                    tracing::warn!(%error, "change feed interrupted; reconnecting");
                }
            }
        }
        cache.set_live(false);
        live.publish(Change::Resync);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn listen_once(db: &PgPool, live: &Live, cache: &EventCache) -> Result<()> {
    let mut listener = PgListener::connect_with(db).await?;
    listener.listen(CHANNEL).await?;
    // Whatever happened while no listener was up, streams re-read it.
    cache.set_live(true);
    live.publish(Change::Resync);
    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    heartbeat.tick().await;
    loop {
        tokio::select! {
            notice = listener.try_recv() => match notice? {
                Some(notice) => {
                    if let Ok(n) = serde_json::from_str::<Notice>(notice.payload()) {
                        if n.seats {
                            cache.seats_changed([n.id]);
                        } else {
                            cache.event_changed(n.id);
                        }
                        live.publish(Change::Event { id: n.id, deleted: n.deleted });
                    }
                }
                // The connection was lost and re-established: notices may be gone.
                None => {
                    cache.forget_all();
                    live.publish(Change::Resync);
                }
            },
            _ = heartbeat.tick() => {
                let ping = sqlx::query("SELECT 1").execute(&mut listener);
                match tokio::time::timeout(HEARTBEAT_TIMEOUT, ping).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(error)) => return Err(error.into()),
                    Err(_) => return Err(AppError::Unavailable("change feed heartbeat timed out".into())),
                }
            }
        }
    }
}

/// Waits for the next change, then takes every change already queued too, so a burst becomes
/// one re-read (a lagging receiver resyncs). `None` when the server shuts down.
pub(super) async fn next_changes(
    changes: &mut broadcast::Receiver<Change>,
    closing: &mut watch::Receiver<bool>,
) -> Option<Vec<Change>> {
    let first = tokio::select! {
        _ = closing.changed() => return None,
        change = changes.recv() => change,
    };
    let mut batch = vec![match first {
        Ok(change) => change,
        Err(broadcast::error::RecvError::Lagged(_)) => Change::Resync,
        Err(broadcast::error::RecvError::Closed) => return None,
    }];
    loop {
        match changes.try_recv() {
            Ok(change) => batch.push(change),
            Err(broadcast::error::TryRecvError::Lagged(_)) => batch.push(Change::Resync),
            Err(_) => break,
        }
    }
    Some(batch)
}
