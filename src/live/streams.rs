//! Server-Sent Events: `GET /events/{id}/live` (one event, first message at once) and
//! `GET /events/live` (every PUBLISHED event that changes). Each message carries the state read
//! after the change was committed; changes that arrive together are sent as one message with
//! the latest state.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures_util::stream::Stream;
use serde::Serialize;
use sqlx::PgPool;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, watch};
use utoipa::ToSchema;

use super::feed::{Change, StreamSlot};
use crate::auth::MaybeAuthUser;
use crate::error::{ErrorBody, Result};
use crate::events::service::not_found;
use crate::http::IdPath;
use crate::state::AppState;

/// A comment line at least this often keeps proxies from closing an idle stream.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

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

#[derive(sqlx::FromRow)]
struct Row {
    id: i32,
    status: String,
    total_seats: i32,
    available_seats: i32,
    version: i64,
    ticket_types: sqlx::types::Json<Vec<TypeAvailability>>,
}

/// The event as a stream shows it, if `viewer` may see it (a draft: its organizer only).
async fn read(
    db: &PgPool,
    id: i32,
    viewer: Option<i32>,
    published_only: bool,
) -> Result<Option<Availability>> {
    let row = sqlx::query_as::<_, Row>(
        "SELECT e.id, e.status::text AS status, e.total_seats, e.available_seats, e.version, \
                (SELECT COALESCE(json_agg(json_build_object('id', t.id, 'totalSeats', t.total_seats, \
                        'availableSeats', t.available_seats) ORDER BY t.id), '[]'::json) \
                 FROM ticket_types t WHERE t.event_id = e.id) AS ticket_types \
         FROM events e \
         WHERE e.id = $1 AND (e.status <> 'DRAFT' OR e.organizer_id = $2) \
           AND (NOT $3 OR e.status = 'PUBLISHED')",
    )
    .bind(id)
    .bind(viewer)
    .bind(published_only)
    .fetch_optional(db)
    .await?;
    Ok(row.map(|r| Availability {
        event_id: r.id,
        status: r.status,
        total_seats: r.total_seats,
        available_seats: r.available_seats,
        version: r.version,
        ticket_types: r.ticket_types.0,
    }))
}

fn message(state: &Availability) -> SseEvent {
    SseEvent::default()
        .event("availability")
        .id(state.version.to_string())
        .json_data(state)
        .unwrap_or_else(|_| SseEvent::default().comment("unserializable"))
}

/// Waits for the next change that concerns `id` (or any change, for `None`), then takes every
/// change already queued too, so a burst becomes one re-read. `None` when the stream must end.
async fn next_changes(
    changes: &mut broadcast::Receiver<Change>,
    closing: &mut watch::Receiver<bool>,
) -> Option<Vec<Change>> {
    let first = tokio::select! {
        _ = closing.changed() => return None,
        change = changes.recv() => change,
    };
    let mut batch = vec![match first {
        Ok(change) => change,
        Err(RecvError::Lagged(_)) => Change::Resync,
        Err(RecvError::Closed) => return None,
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

/// Live availability of one event
///
/// Server-Sent Events: an `availability` message at once, then after every change of the
/// event's seats, ticket types or status (from any instance); `deleted` when it is deleted.
#[utoipa::path(
    get, path = "/events/{id}/live", tag = "live",
    params(("id" = i32, Path, description = "Event id", minimum = 1)),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "An event stream of `availability` messages", content_type = "text/event-stream", body = Availability),
        (status = 400, description = "The id is not an integer", body = ErrorBody),
        (status = 401, description = "A token was sent and is invalid", body = ErrorBody),
        (status = 404, description = "Event with ID 7 not found", body = ErrorBody),
        (status = 503, description = "Too many open streams", body = ErrorBody),
    )
)]
pub async fn event_live(
    State(state): State<AppState>,
    viewer: MaybeAuthUser,
    IdPath(id): IdPath,
) -> Result<Sse<impl Stream<Item = std::result::Result<SseEvent, Infallible>>>> {
    let viewer = viewer.id();
    let first = read(&state.db, id, viewer, false)
        .await?
        .ok_or_else(|| not_found(id))?;
    let slot = state.live.open_stream()?;
    let follow = Follow {
        db: state.db.clone(),
        changes: state.live.subscribe(),
        closing: state.live.closing(),
        _slot: slot,
        id,
        viewer,
        sent: first.version,
        first: Some(first),
        done: false,
    };
    let stream = futures_util::stream::unfold(follow, |mut follow| async move {
        let event = follow.next().await?;
        Some((Ok(event), follow))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)))
}

struct Follow {
    db: PgPool,
    changes: broadcast::Receiver<Change>,
    closing: watch::Receiver<bool>,
    _slot: StreamSlot,
    id: i32,
    viewer: Option<i32>,
    sent: i64,
    first: Option<Availability>,
    done: bool,
}

impl Follow {
    async fn next(&mut self) -> Option<SseEvent> {
        if let Some(first) = self.first.take() {
            return Some(message(&first));
        }
        loop {
            if self.done {
                return None;
            }
            let batch = next_changes(&mut self.changes, &mut self.closing).await?;
            let concerned = |c: &Change| match c {
                Change::Event { id, .. } => *id == self.id,
                Change::Resync => true,
            };
            if !batch.iter().any(concerned) {
                continue;
            }
            let deleted = batch
                .iter()
                .any(|c| matches!(c, Change::Event { id, deleted: true } if *id == self.id));
            let state = match read(&self.db, self.id, self.viewer, false).await {
                Ok(state) => state,
                // The database is away: the next change (or resync) reads again.
                Err(_) => continue,
            };
            match state {
                None => {
                    self.done = true;
                    if deleted {
                        let data = serde_json::json!({ "eventId": self.id }).to_string();
                        return Some(SseEvent::default().event("deleted").data(data));
                    }
                    return None;
                }
                // After a resync, only what really changed is sent.
                Some(state) if state.version != self.sent => {
                    self.sent = state.version;
                    return Some(message(&state));
                }
                Some(_) => continue,
            }
        }
    }
}

/// Live availability of every published event
///
/// Server-Sent Events: an `availability` message for every PUBLISHED event that changes (no
/// first snapshot).
#[utoipa::path(
    get, path = "/events/live", tag = "live",
    responses(
        (status = 200, description = "An event stream of `availability` messages", content_type = "text/event-stream", body = Availability),
        (status = 503, description = "Too many open streams", body = ErrorBody),
    )
)]
pub async fn all_live(
    State(state): State<AppState>,
) -> Result<Sse<impl Stream<Item = std::result::Result<SseEvent, Infallible>>>> {
    let slot = state.live.open_stream()?;
    let watch = WatchAll {
        db: state.db.clone(),
        changes: state.live.subscribe(),
        closing: state.live.closing(),
        _slot: slot,
        pending: Vec::new(),
    };
    let stream = futures_util::stream::unfold(watch, |mut watch| async move {
        let event = watch.next().await?;
        Some((Ok(event), watch))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)))
}

struct WatchAll {
    db: PgPool,
    changes: broadcast::Receiver<Change>,
    closing: watch::Receiver<bool>,
    _slot: StreamSlot,
    /// Changed events not sent yet (one burst).
    pending: Vec<i32>,
}

impl WatchAll {
    async fn next(&mut self) -> Option<SseEvent> {
        loop {
            while let Some(id) = self.pending.pop() {
                if let Ok(Some(state)) = read(&self.db, id, None, true).await {
                    return Some(message(&state));
                }
            }
            let batch = next_changes(&mut self.changes, &mut self.closing).await?;
            for change in batch {
                if let Change::Event { id, deleted: false } = change {
                    if !self.pending.contains(&id) {
                        self.pending.push(id);
                    }
                }
            }
        }
    }
}
