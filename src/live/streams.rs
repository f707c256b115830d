//! Server-Sent Events: `GET /events/{id}/live` (one event, first message at once) and
//! `GET /events/live` (every PUBLISHED event that changes). Each message carries the state read
//! after the change was committed (read once for all streams, see `shared`); changes that
//! arrive together are sent as one message with the latest state.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, watch};
use tokio::time::{interval_at, Instant, Interval, MissedTickBehavior};

use super::feed::StreamSlot;
use super::shared::{read, Availability, Shared, Snapshot};
use crate::auth::MaybeAuthUser;
use crate::error::{ErrorBody, Result};
use crate::events::service::not_found;
use crate::http::IdPath;
use crate::state::AppState;

/// A comment line this often keeps proxies from closing a stream. It is not put off by
/// messages: no timer is reset for every message of every stream.
const KEEP_ALIVE: Duration = Duration::from_secs(15);
const COMMENT: &[u8] = b":\n\n";

/// Every `KEEP_ALIVE`, starting one from now.
fn keep_alive() -> Interval {
    let mut every = interval_at(Instant::now() + KEEP_ALIVE, KEEP_ALIVE);
    every.set_missed_tick_behavior(MissedTickBehavior::Delay);
    every
}

/// Where a stream's messages come from: each pre-encoded SSE, `None` when the stream ends.
trait Messages: Send + 'static {
    fn next(&mut self) -> impl Future<Output = Option<Bytes>> + Send;
}

/// An event stream of the messages of `source`.
fn event_stream(source: impl Messages) -> Response {
    let messages = futures_util::stream::unfold(source, |mut source| async move {
        let message = source.next().await?;
        Some((message, source))
    });
    let body = Body::from_stream(futures_util::StreamExt::map(messages, Ok::<_, Infallible>));
    (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// A draft exists for its organizer only.
fn visible(state: &Availability, organizer: i32, viewer: Option<i32>) -> bool {
    state.status != "DRAFT" || viewer == Some(organizer)
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
) -> Result<Response> {
    let viewer = viewer.id();
    let (first, organizer) = read(&state.db, id)
        .await?
        .filter(|(first, organizer)| visible(first, *organizer, viewer))
        .ok_or_else(|| not_found(id))?;
    let slot = state.live.open_stream()?;
    let first = Shared::new(first);
    let current = Snapshot::Present(first.clone(), organizer);
    let follow = Follow {
        snapshots: state.live.watch_event(&state.db, id, current),
        closing: state.live.closing(),
        _slot: slot,
        id,
        viewer,
        sent: first.state.version,
        first: Some(first),
        done: false,
        keep_alive: keep_alive(),
    };
    Ok(event_stream(follow))
}

struct Follow {
    snapshots: watch::Receiver<Snapshot>,
    closing: watch::Receiver<bool>,
    _slot: StreamSlot,
    id: i32,
    viewer: Option<i32>,
    sent: i64,
    first: Option<Arc<Shared>>,
    done: bool,
    keep_alive: Interval,
}

impl Messages for Follow {
    async fn next(&mut self) -> Option<Bytes> {
        if let Some(first) = self.first.take() {
            return Some(first.message.clone());
        }
        while !self.done {
            tokio::select! {
                _ = self.closing.changed() => return None,
                _ = self.keep_alive.tick() => return Some(Bytes::from_static(COMMENT)),
                changed = self.snapshots.changed() => changed.ok()?,
            }
            let snapshot = self.snapshots.borrow_and_update().clone();
            match snapshot {
                Snapshot::Deleted => {
                    self.done = true;
                    let data = serde_json::json!({ "eventId": self.id });
                    return Some(Bytes::from(format!("event: deleted\ndata: {data}\n\n")));
                }
                // It became a draft of someone else's: it no longer exists for this viewer.
                Snapshot::Present(shared, organizer)
                    if !visible(&shared.state, organizer, self.viewer) =>
                {
                    return None
                }
                Snapshot::Present(shared, _) if shared.state.version != self.sent => {
                    self.sent = shared.state.version;
                    return Some(shared.message.clone());
                }
                Snapshot::Present(..) => {}
            }
        }
        None
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
pub async fn all_live(State(state): State<AppState>) -> Result<Response> {
    let slot = state.live.open_stream()?;
    let watch = WatchAll {
        published: state.live.published(),
        closing: state.live.closing(),
        _slot: slot,
        keep_alive: keep_alive(),
    };
    Ok(event_stream(watch))
}

struct WatchAll {
    published: broadcast::Receiver<Arc<Shared>>,
    closing: watch::Receiver<bool>,
    _slot: StreamSlot,
    keep_alive: Interval,
}

impl Messages for WatchAll {
    async fn next(&mut self) -> Option<Bytes> {
        loop {
            let next = tokio::select! {
                _ = self.closing.changed() => return None,
                _ = self.keep_alive.tick() => return Some(Bytes::from_static(COMMENT)),
                next = self.published.recv() => next,
            };
            match next {
                Ok(shared) => return Some(shared.message.clone()),
                // Too slow a client misses intermediate states; the next one is current.
                Err(RecvError::Lagged(_)) => continue,
                Err(RecvError::Closed) => return None,
            }
        }
    }
}
