//! Live availability over real Server-Sent Events: the first message at once, changes from
//! another instance within a second, coalescing, deletion, drafts, and a change feed that
//! survives its connection being killed.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::bookings::{book, published_event};
use crate::events::{create_event, event_body};
use crate::helpers::{assert_error, parts, TestApp};

/// One open event stream, read message by message.
struct EventStream {
    response: reqwest::Response,
    buffer: String,
}

impl EventStream {
    async fn open(app: &TestApp, path: &str, token: Option<&str>) -> Self {
        let response = app.get(path, token).await;
        assert_eq!(response.status(), 200, "{path}");
        assert!(response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream"));
        Self {
            response,
            buffer: String::new(),
        }
    }

    /// The next message (`event`, `id`, parsed `data`), skipping comments; `None` when the
    /// stream ended or nothing came within `within`.
    async fn next(&mut self, within: Duration) -> Option<(String, Option<String>, Value)> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let (mut event, mut id, mut data) = (String::from("message"), None, String::new());
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        event = v.trim().to_string();
                    } else if let Some(v) = line.strip_prefix("id:") {
                        id = Some(v.trim().to_string());
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim());
                    }
                }
                if data.is_empty() {
                    continue; // a keep-alive comment
                }
                return Some((event, id, serde_json::from_str(&data).expect("JSON data")));
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            match tokio::time::timeout(left, self.response.chunk()).await {
                Ok(Ok(Some(chunk))) => self.buffer.push_str(&String::from_utf8_lossy(&chunk)),
                _ => return None,
            }
        }
    }
}

/// Cancels `references` (the user's), removes the event's booking rows (an event that has
/// bookings cannot be deleted) and deletes the event through the API.
async fn delete_event_with_bookings(
    app: &TestApp,
    organizer: &str,
    user: &str,
    event_id: i64,
    references: &[String],
) {
    for reference in references {
        let (status, _) = parts(
            app.delete(&format!("/bookings/{reference}"), Some(user))
                .await,
        )
        .await;
        assert_eq!(status, 200);
    }
    sqlx::query("DELETE FROM bookings WHERE event_id = $1")
        .bind(event_id as i32)
        .execute(&app.db)
        .await
        .unwrap();
    let (status, _) = parts(
        app.delete(&format!("/events/{event_id}"), Some(organizer))
            .await,
    )
    .await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_starts_at_once_and_hears_bookings_made_on_another_instance() {
    let app = TestApp::spawn().await;
    let second = app.another_instance().await;
    let (_, event_id) = published_event(&app, 10).await;
    let mut stream = EventStream::open(&app, &format!("/events/{event_id}/live"), None).await;
    let (event, id, first) = stream
        .next(Duration::from_secs(1))
        .await
        .expect("a first message at once");
    assert_eq!(event, "availability");
    assert_eq!(id.as_deref(), Some("0"));
    let type_id = first["ticketTypes"][0]["id"].clone();
    assert_eq!(
        first,
        json!({ "eventId": event_id, "status": "PUBLISHED", "totalSeats": 10, "availableSeats": 10,
                "version": 0, "ticketTypes": [{ "id": type_id, "totalSeats": 10, "availableSeats": 10 }] })
    );

    let (user, _) = second.user("user@example.com").await;
    book(&second, &user, event_id, 3).await;
    let booked_at = Instant::now();
    let (_, id, data) = stream
        .next(Duration::from_secs(1))
        .await
        .expect("within a second");
    assert!(booked_at.elapsed() < Duration::from_secs(1));
    assert_eq!(id.as_deref(), Some("1"));
    assert_eq!(data["availableSeats"], 7);
    assert_eq!(data["ticketTypes"][0]["availableSeats"], 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_changes_ends_on_the_latest_state_and_a_deletion_ends_the_stream() {
    let app = TestApp::spawn().await;
    let (organizer, event_id) = published_event(&app, 50).await;
    let (user, _) = app.user("user@example.com").await;
    let mut stream =
        EventStream::open(&app, &format!("/events/{event_id}/live"), Some(&user)).await;
    stream.next(Duration::from_secs(1)).await.expect("first");
    let mut references = Vec::new();
    for _ in 0..5 {
        references.push(book(&app, &user, event_id, 2).await);
    }
    let mut last = None;
    while let Some((_, _, data)) = stream.next(Duration::from_millis(1500)).await {
        last = Some(data);
        if last.as_ref().is_some_and(|d| d["availableSeats"] == 40) {
            break;
        }
    }
    assert_eq!(
        last.expect("messages")["availableSeats"],
        40,
        "the final state arrives"
    );

    delete_event_with_bookings(&app, &organizer, &user, event_id, &references).await;
    let mut ended = false;
    while let Some((event, _, data)) = stream.next(Duration::from_secs(2)).await {
        if event == "deleted" {
            assert_eq!(data, json!({ "eventId": event_id }));
            ended = stream.next(Duration::from_secs(1)).await.is_none();
            break;
        }
    }
    assert!(ended, "a deleted event's stream says so and ends");
}

/// Follows `stream` until a message shows `seats` free, then until it says `deleted` and ends.
async fn follow_to_deletion(mut stream: EventStream, seats: i64) -> Result<(), String> {
    let mut shown = false;
    while let Some((event, _, data)) = stream.next(Duration::from_secs(3)).await {
        if event == "deleted" {
            return match (shown, stream.next(Duration::from_secs(1)).await) {
                (true, None) => Ok(()),
                (false, _) => Err(format!("deleted before showing {seats} seats")),
                (true, Some(more)) => Err(format!("a message after `deleted`: {more:?}")),
            };
        }
        shown |= data["availableSeats"] == seats;
    }
    Err(format!("no deletion (showed {seats} seats: {shown})"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_stream_of_a_crowded_event_hears_the_last_change_and_the_deletion() {
    // More streams than the fan-out has groups, half of them opened after the first change
    // (their groups are made then): each must show the final seats, then end on `deleted`.
    let app = TestApp::spawn().await;
    let (organizer, event_id) = published_event(&app, 50).await;
    let (user, _) = app.user("user@example.com").await;
    let path = format!("/events/{event_id}/live");
    let mut streams = Vec::new();
    for _ in 0..150 {
        streams.push(EventStream::open(&app, &path, None).await);
    }
    let reference = book(&app, &user, event_id, 2).await;
    for _ in 0..150 {
        streams.push(EventStream::open(&app, &path, None).await);
    }
    book(&app, &user, event_id, 5).await;
    let followers: Vec<_> = streams
        .into_iter()
        .map(|stream| tokio::spawn(follow_to_deletion(stream, 43)))
        .collect();
    tokio::time::sleep(Duration::from_millis(1500)).await;

    delete_event_with_bookings(&app, &organizer, &user, event_id, &[reference]).await;
    let mut failures = Vec::new();
    for (n, follower) in followers.into_iter().enumerate() {
        if let Err(failure) = follower.await.unwrap() {
            failures.push(format!("stream {n}: {failure}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of 300: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
}

#[tokio::test]
async fn a_draft_streams_to_its_organizer_only() {
    let app = TestApp::spawn().await;
    let (organizer, _) = app.organizer("org@example.com").await;
    let draft = create_event(&app, &organizer, &event_body("Draft", 5, "DRAFT")).await;
    let path = format!("/events/{}/live", draft["id"]);
    let (status, body) = parts(app.get(&path, None).await).await;
    assert_error(
        status,
        &body,
        404,
        &format!("Event with ID {} not found", draft["id"]),
    );
    let mut stream = EventStream::open(&app, &path, Some(&organizer)).await;
    let (_, _, data) = stream.next(Duration::from_secs(1)).await.expect("first");
    assert_eq!(data["status"], "DRAFT");
    let (status, body) = parts(app.get("/events/abc/live", None).await).await;
    assert_error(status, &body, 400, crate::helpers::BAD_ID);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_feed_survives_its_connection_being_killed() {
    let app = TestApp::spawn().await;
    let (_, event_id) = published_event(&app, 10).await;
    let (user, _) = app.user("user@example.com").await;
    let mut stream = EventStream::open(&app, &format!("/events/{event_id}/live"), None).await;
    let mut all = EventStream::open(&app, "/events/live", None).await;
    stream.next(Duration::from_secs(1)).await.expect("first");

    let killed: i64 = sqlx::query_scalar(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
         WHERE datname = current_database() AND query LIKE 'LISTEN%'",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert!(
        killed >= 1,
        "the listener's connection was found and killed"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    book(&app, &user, event_id, 4).await;
    let mut seen = None;
    while let Some((_, _, data)) = stream.next(Duration::from_secs(5)).await {
        if data["availableSeats"] == 6 {
            seen = Some(data);
            break;
        }
    }
    assert!(seen.is_some(), "a change after the reconnect still arrives");
    let (event, _, data) = all
        .next(Duration::from_secs(5))
        .await
        .expect("the all-events stream");
    assert_eq!(event, "availability");
    assert_eq!(data["eventId"], event_id);
}

#[tokio::test]
async fn the_board_lists_upcoming_published_events() {
    let app = TestApp::spawn().await;
    let (organizer, _) = app.organizer("org@example.com").await;
    create_event(&app, &organizer, &json!({ "title": "Caf\u{e9} <Night>", "totalSeats": 12, "status": "PUBLISHED", "eventDate": "2030-06-01T18:00:00Z", "city": "Z\u{fc}rich" })).await;
    create_event(&app, &organizer, &event_body("Hidden Draft", 5, "DRAFT")).await;
    let response = app.get("/", None).await;
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let html = response.text().await.unwrap();
    assert!(
        html.contains("Caf\u{e9} &lt;Night&gt;"),
        "titles are escaped"
    );
    assert!(html.contains("Z\u{fc}rich"));
    assert!(!html.contains("Hidden Draft"));
    assert!(html.contains("new EventSource(\"/events/live\")"));
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "no outside asset"
    );
}
