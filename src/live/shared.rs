//! Reads shared by streams: however many streams watch an event, each change of it is read
//! once (by one task per watched event) and every stream gets that result; likewise each
//! changed published event is read once for all `/events/live` streams. So thousands of open
//! streams cost a read per change, not a read per stream per change.

use std::sync::{Arc, PoisonError};
use std::time::Duration;

use axum::body::Bytes;
use serde::Serialize;
use sqlx::PgPool;
use tokio::sync::{broadcast, watch};
use utoipa::ToSchema;

use super::fanout::EventFanout;
use super::feed::{next_changes, Change, Live};
use crate::error::Result;

#[derive(Debug, Serialize, serde::Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TypeAvailability {
    pub id: i32,
    pub total_seats: i32,
    pub available_seats: i32,
}

/// The `data` of an `availability` message.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Availability {
    pub event_id: i32,
    #[schema(value_type = String, example = "PUBLISHED")]
    pub status: String,
    pub total_seats: i32,
    pub available_seats: i32,
    pub version: i64,
    pub ticket_types: Vec<TypeAvailability>,
}

/// A state read once, with its whole `availability` message encoded once for every stream
/// (each stream writes the same bytes: no copy, no formatting per stream).
#[derive(Debug)]
pub struct Shared {
    pub state: Availability,
    pub message: Bytes,
}

impl Shared {
    pub fn new(state: Availability) -> Arc<Self> {
        // One line of JSON (serde_json's compact form never has a newline).
        let json = serde_json::to_string(&state).unwrap_or_default();
        let message = format!(
            "event: availability\nid: {}\ndata: {json}\n\n",
            state.version
        );
        Arc::new(Self {
            state,
            message: Bytes::from(message),
        })
    }
}

/// The latest committed state of one event.
#[derive(Debug, Clone)]
pub enum Snapshot {
    /// The event and its organizer (who alone may watch it while it is a DRAFT).
    Present(Arc<Shared>, i32),
    Deleted,
}

/// A reader reads at most this often: changes in between arrive as one message with the
/// latest state (API.md allows it, within a second of the commit), so a hot event's streams
/// are not woken for every group of bookings. Each message costs every stream a socket write
/// on both ends: with 5,000 streams on an event booked ~10,000 times a second, 150 ms keeps
/// about two thirds of the bookings' rate and the delay from a 201 to its message at p99
/// ~220 ms; 100 ms cost about ten points of that rate for ~180 ms (README, LIVE).
const READ_EVERY: Duration = Duration::from_millis(150);

#[derive(sqlx::FromRow)]
struct Row {
    id: i32,
    status: String,
    organizer_id: i32,
    total_seats: i32,
    available_seats: i32,
    version: i64,
    ticket_types: sqlx::types::Json<Vec<TypeAvailability>>,
}

/// The event as streams show it, with its organizer; `None` when it does not exist.
pub async fn read(db: &PgPool, id: i32) -> Result<Option<(Availability, i32)>> {
    let row = sqlx::query_as::<_, Row>(
        "SELECT e.id, e.status::text AS status, e.organizer_id, e.total_seats, \
                e.available_seats, e.version, \
                (SELECT COALESCE(json_agg(json_build_object('id', t.id, 'totalSeats', t.total_seats, \
                        'availableSeats', t.available_seats) ORDER BY t.id), '[]'::json) \
                 FROM ticket_types t WHERE t.event_id = e.id) AS ticket_types \
         FROM events e WHERE e.id = $1",
    )
    .bind(id)
    .fetch_optional(db)
    .await?;
    Ok(row.map(|r| {
        let state = Availability {
            event_id: r.id,
            status: r.status,
            total_seats: r.total_seats,
            available_seats: r.available_seats,
            version: r.version,
            ticket_types: r.ticket_types.0,
        };
        (state, r.organizer_id)
    }))
}

impl Live {
    /// The shared snapshots of event `id`, starting from `current`; the first stream of an
    /// event starts its reader.
    pub fn watch_event(
        &self,
        db: &PgPool,
        id: i32,
        current: Snapshot,
    ) -> watch::Receiver<Snapshot> {
        let mut watched = self.watched.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(fanout) = watched.get(&id) {
            return fanout.subscribe();
        }
        let fanout = Arc::new(EventFanout::new(current));
        let receiver = fanout.subscribe();
        watched.insert(id, fanout.clone());
        tokio::spawn(read_for_streams(self.clone(), db.clone(), id, fanout));
        receiver
    }

    pub fn published(&self) -> broadcast::Receiver<Arc<Shared>> {
        self.published.subscribe()
    }
}

/// Re-reads event `id` once per burst of its changes (and after every resync) for as long as
/// any stream watches it.
async fn read_for_streams(live: Live, db: PgPool, id: i32, snapshots: Arc<EventFanout>) {
    let mut changes = live.subscribe();
    let mut closing = live.closing();
    loop {
        let batch = tokio::select! {
            _ = snapshots.unwatched() => {
                // Under the lock: a stream may just have subscribed, then keep reading.
                let mut watched = live.watched.lock().unwrap_or_else(PoisonError::into_inner);
                if snapshots.watchers() == 0 {
                    watched.remove(&id);
                    return;
                }
                continue;
            }
            batch = next_changes(&mut changes, &mut closing) => match batch {
                Some(batch) => batch,
                None => return,
            },
        };
        let concerned = batch.iter().any(|c| match c {
            Change::Event { id: changed, .. } => *changed == id,
            Change::Resync => true,
        });
        if !concerned {
            continue;
        }
        let started = tokio::time::Instant::now();
        match read(&db, id).await {
            Ok(Some((state, organizer))) => {
                snapshots
                    .send(Snapshot::Present(Shared::new(state), organizer))
                    .await;
            }
            Ok(None) => snapshots.send(Snapshot::Deleted).await,
            // The database is away: the next change, or the resync after it, reads again.
            Err(_) => {}
        }
        // From the start of the read: the fan-out's own time is not added to the next delay.
        tokio::time::sleep_until(started + READ_EVERY).await;
    }
}

/// Reads each changed PUBLISHED event once for all `/events/live` streams, while any is open.
pub async fn read_published(db: PgPool, live: Live) {
    let mut changes = live.subscribe();
    let mut closing = live.closing();
    while let Some(batch) = next_changes(&mut changes, &mut closing).await {
        if live.published.watchers() == 0 {
            continue;
        }
        let started = tokio::time::Instant::now();
        let mut ids: Vec<i32> = batch
            .iter()
            .filter_map(|c| match c {
                Change::Event { id, deleted: false } => Some(*id),
                _ => None,
            })
            .collect();
        ids.sort_unstable();
        ids.dedup();
        for id in ids {
            if let Ok(Some((state, _))) = read(&db, id).await {
                if state.status == "PUBLISHED" {
                    live.published.send(Shared::new(state)).await;
                }
            }
        }
        tokio::time::sleep_until(started + READ_EVERY).await;
    }
}
