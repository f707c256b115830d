//! The cache of public event reads is coherent: the instance that committed a change never
//! answers with the state before it, and another instance on the same database drops what it
//! kept within a second (through the change feed).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use crate::bookings::{book, booking};
use crate::events::{create_event, event_body};
use crate::helpers::{parts, TestApp};

async fn public_view(app: &TestApp, event_id: i64) -> (u16, Value) {
    parts(app.get(&format!("/events/{event_id}"), None).await).await
}

/// The ids of the first page of the public listing.
async fn listed(app: &TestApp) -> Vec<i64> {
    let (status, body) = parts(app.get("/events?limit=50", None).await).await;
    assert_eq!(status, 200, "{body}");
    body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|event| event["id"].as_i64().unwrap())
        .collect()
}

/// An instance whose change feed arrives 300 ms late (a real TCP proxy between it and
/// PostgreSQL holds back what the server sends on the connection that LISTENs), and another
/// instance on the same database: `(late, other)`. What the late one answers right after its
/// own change cannot have been dropped by the feed.
async fn late_feed_instance() -> (TestApp, TestApp) {
    let other = TestApp::spawn().await;
    let port = slow_feed_proxy(other.db_options.get_port(), Duration::from_millis(300)).await;
    let options = other.db_options.clone().port(port);
    let pool = event_booking::db::pool(options.clone(), 20, Duration::from_secs(5));
    let late = TestApp::with_pool(pool, options, other.database_url.clone()).await;
    (late, other)
}

/// Each public read right after a change, by the instance that made it (its feed late): read
/// twice first, so that it is kept if it can be.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_never_shows_the_state_before_its_own_change() {
    let (app, other) = late_feed_instance().await;
    let (organizer, _) = app.organizer("organizer@example.com").await;
    let (user, _) = app.user("user@example.com").await;
    let event = create_event(&app, &organizer, &event_body("Gig", 10, "PUBLISHED")).await;
    let id = event["id"].as_i64().unwrap();
    let path = format!("/events/{id}");
    let warm_up = create_event(&app, &organizer, &event_body("Warm-up", 100, "PUBLISHED")).await;
    let warm_up = warm_up["id"].as_i64().unwrap();
    kept_back(&app, &other, warm_up, &user).await;

    for _ in 0..2 {
        assert_eq!(listed(&app).await, vec![warm_up, id]);
        assert_eq!(public_view(&app, id).await.1["availableSeats"], 10);
    }
    let reference = book(&app, &user, id, 3).await;
    let (_, view) = public_view(&app, id).await;
    assert_eq!(
        (
            view["availableSeats"].clone(),
            view["_count"]["bookings"].clone()
        ),
        (json!(7), json!(1))
    );
    assert_eq!(view["ticketTypes"][0]["availableSeats"], 7);

    kept(&app, &[id]).await;
    let (status, _) = parts(
        app.delete(&format!("/bookings/{reference}"), Some(&user))
            .await,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(public_view(&app, id).await.1["availableSeats"], 10);

    kept(&app, &[id]).await;
    let (status, _) = parts(
        app.put(&path, Some(&organizer), &json!({ "title": "Renamed" }))
            .await,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(public_view(&app, id).await.1["title"], "Renamed");

    kept(&app, &[id]).await;
    let (status, added) = parts(
        app.post(
            &format!("{path}/ticket-types"),
            Some(&organizer),
            &json!({ "name": "VIP", "priceCents": 5000, "totalSeats": 5 }),
        )
        .await,
    )
    .await;
    assert_eq!(status, 201, "{added}");
    let (_, view) = public_view(&app, id).await;
    assert_eq!(
        (
            view["totalSeats"].clone(),
            view["ticketTypes"][1]["name"].clone()
        ),
        (json!(15), json!("VIP"))
    );

    kept(&app, &[id]).await;
    let second = create_event(&app, &organizer, &event_body("Second", 5, "PUBLISHED")).await;
    let second = second["id"].as_i64().unwrap();
    assert_eq!(
        listed(&app).await,
        vec![second, warm_up, id],
        "a new event is listed at once"
    );

    kept(&app, &[id, second]).await;
    let (status, _) = parts(
        app.put(&path, Some(&organizer), &json!({ "status": "DRAFT" }))
            .await,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(public_view(&app, id).await.0, 404, "a draft is not public");
    assert_eq!(listed(&app).await, vec![second, warm_up]);

    kept(&app, &[second]).await;
    let (status, _) = parts(
        app.delete(&format!("/events/{second}"), Some(&organizer))
            .await,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(public_view(&app, second).await.0, 404);
    assert_eq!(listed(&app).await, vec![warm_up]);
}

/// Bookings through an instance whose change feed is late, each read back at once from that
/// instance: without its own drop of the view before it answers, every one of these reads
/// would show the seats before the booking. It also shows the cache at work: a booking
/// through the other instance reaches this one only with the feed, late but within a second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_booking_is_seen_at_once_by_the_instance_that_made_it() {
    let (app, other) = late_feed_instance().await;
    let (organizer, _) = app.organizer("organizer@example.com").await;
    let (user, _) = app.user("user@example.com").await;
    let event = create_event(&app, &organizer, &event_body("Gig", 500, "PUBLISHED")).await;
    let id = event["id"].as_i64().unwrap();
    kept_back(&app, &other, id, &user).await;
    let mut seats = available(&app, id).await;
    for _ in 0..20 {
        book(&app, &user, id, 1).await;
        seats -= 1;
        assert_eq!(public_view(&app, id).await.1["availableSeats"], seats);
    }
    kept_back(&app, &other, id, &user).await;
    let seats = available(&app, id).await;
    within_a_second(
        || async { public_view(&app, id).await.1 },
        |view| view["availableSeats"] == seats,
    )
    .await;
}

/// A seat filter (`minSeats`) answers from the matches it kept but reads the seats at each
/// request: a booking and a cancel through another instance move its answer at once, although
/// this instance's feed is late and its view of the event is kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seat_filter_counts_another_instances_booking_at_once() {
    let (app, other) = late_feed_instance().await;
    let (organizer, _) = app.organizer("organizer@example.com").await;
    let (user, _) = app.user("user@example.com").await;
    let event = create_event(
        &app,
        &organizer,
        &event_body("Harbour Gig", 20, "PUBLISHED"),
    )
    .await;
    let id = event["id"].as_i64().unwrap();
    kept_back(&app, &other, id, &user).await;
    let path = format!("/events?q=harbour&minSeats={}", available(&app, id).await);
    let found = || async {
        let (status, body) = parts(app.get(&path, None).await).await;
        assert_eq!(status, 200, "{body}");
        (
            body["data"].as_array().unwrap().len(),
            body["meta"]["total"].clone(),
        )
    };
    for _ in 0..2 {
        assert_eq!(found().await, (1, json!(1)));
    }
    let reference = book(&other, &user, id, 1).await;
    assert_eq!(found().await, (0, json!(0)), "the other instance's booking");
    let (status, _) = parts(
        other
            .delete(&format!("/bookings/{reference}"), Some(&user))
            .await,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(found().await, (1, json!(1)), "and its cancel");
}

/// Lets the late notices of earlier changes land, then reads the listing and these views
/// twice, so that they are kept when the next change comes.
async fn kept(app: &TestApp, ids: &[i64]) {
    tokio::time::sleep(Duration::from_millis(400)).await;
    for _ in 0..2 {
        listed(app).await;
        for id in ids {
            public_view(app, *id).await;
        }
    }
}

/// Waits until a booking through `other` is not seen at once by `late`: its view is kept and
/// its feed is late (so the cache is in use: the feed is connected, no late notice on its way).
async fn kept_back(late: &TestApp, other: &TestApp, event_id: i64, user: &str) {
    within_a_second(
        || async {
            let before = public_view(late, event_id).await.1;
            book(other, user, event_id, 1).await;
            let after = public_view(late, event_id).await.1;
            json!([before["availableSeats"], after["availableSeats"]])
        },
        |seats| seats[0] == seats[1],
    )
    .await;
}

async fn available(app: &TestApp, event_id: i64) -> i64 {
    sqlx::query_scalar::<_, i32>("SELECT available_seats FROM events WHERE id = $1")
        .bind(event_id as i32)
        .fetch_one(&app.db)
        .await
        .unwrap()
        .into()
}

/// A TCP proxy to PostgreSQL on `upstream` that holds back by `delay` everything the server
/// sends on a connection once its client has sent LISTEN; returns its port.
async fn slow_feed_proxy(upstream: u16, delay: Duration) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)).await else {
                continue;
            };
            let (mut from_client, to_client) = client.into_split();
            let (from_server, mut to_server) = server.into_split();
            let listening = Arc::new(AtomicBool::new(false));
            let seen = listening.clone();
            tokio::spawn(async move {
                let mut buffer = vec![0u8; 16 * 1024];
                while let Ok(n @ 1..) = from_client.read(&mut buffer).await {
                    if buffer[..n].windows(6).any(|w| w == b"LISTEN") {
                        seen.store(true, Ordering::SeqCst);
                    }
                    if to_server.write_all(&buffer[..n]).await.is_err() {
                        break;
                    }
                }
            });
            tokio::spawn(held_back(from_server, to_client, listening, delay));
        }
    });
    port
}

/// Copies `from` to `to`, each chunk `delay` late once `listening`, in order.
async fn held_back(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    listening: Arc<AtomicBool>,
    delay: Duration,
) {
    let (chunks, mut due) = mpsc::unbounded_channel::<(tokio::time::Instant, Vec<u8>)>();
    tokio::spawn(async move {
        while let Some((at, bytes)) = due.recv().await {
            tokio::time::sleep_until(at).await;
            if to.write_all(&bytes).await.is_err() {
                break;
            }
        }
    });
    let mut buffer = vec![0u8; 16 * 1024];
    while let Ok(n @ 1..) = from.read(&mut buffer).await {
        let mut at = tokio::time::Instant::now();
        if listening.load(Ordering::SeqCst) {
            at += delay;
        }
        if chunks.send((at, buffer[..n].to_vec())).is_err() {
            break;
        }
    }
}

/// Polls `read` until `done` says yes, for at most a second; returns how long it took.
async fn within_a_second<F, Fut>(mut read: F, done: impl Fn(&Value) -> bool) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Value>,
{
    let started = Instant::now();
    loop {
        let value = read().await;
        if done(&value) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "still {value} after a second"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// What instance A keeps, a change through instance B drops within a second: a booking (the
/// view), a new event and a renamed one (the listings).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_instance_drops_what_it_kept_within_a_second() {
    let a = TestApp::spawn().await;
    let b = a.another_instance().await;
    let (organizer, _) = a.organizer("organizer@example.com").await;
    let (user, _) = a.user("user@example.com").await;
    let event = create_event(&a, &organizer, &event_body("Gig", 10, "PUBLISHED")).await;
    let id = event["id"].as_i64().unwrap();
    for _ in 0..2 {
        assert_eq!(public_view(&a, id).await.1["availableSeats"], 10);
        assert_eq!(listed(&a).await, vec![id]);
    }

    let (status, body) = parts(b.post("/bookings", Some(&user), &booking(id, 2)).await).await;
    assert_eq!(status, 201, "{body}");
    let took = within_a_second(
        || async { public_view(&a, id).await.1 },
        |view| view["availableSeats"] == 8,
    )
    .await;
    eprintln!("a booking through B reached A's view in {took:?}");

    let second = create_event(&b, &organizer, &event_body("Second", 5, "PUBLISHED")).await;
    let second = second["id"].as_i64().unwrap();
    within_a_second(
        || async { json!(listed(&a).await) },
        |ids| *ids == json!([second, id]),
    )
    .await;

    let (status, _) = parts(
        b.put(
            &format!("/events/{id}"),
            Some(&organizer),
            &json!({ "title": "Renamed" }),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200);
    within_a_second(
        || async {
            let (_, body) = parts(a.get("/events?q=renamed", None).await).await;
            body["meta"]["total"].clone()
        },
        |total| *total == 1,
    )
    .await;
}
