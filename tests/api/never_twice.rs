//! "An error answer books nothing" and "one Idempotency-Key makes at most one booking", under
//! real failure timing: a COMMIT that takes longer than the request may wait, a transaction
//! stalled before COMMIT, a frozen database, a client that hangs up, a lost race.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::bookings::{booking, published_event, seat_state};
use crate::helpers::{assert_error, parts, TestApp};
use crate::outage::{app_on_own_cluster, signal_cluster};

const UNAVAILABLE: &str = "Service temporarily unavailable";
const OUTCOME_UNKNOWN: &str =
    "Booking outcome unknown: retry with the same Idempotency-Key or check GET /bookings";

/// POST /bookings with an optional key: (status, replayed header, body, seconds taken).
async fn post_booking(
    app: &TestApp,
    token: &str,
    key: Option<&str>,
    body: &Value,
) -> (u16, bool, Value, f64) {
    let started = Instant::now();
    let mut request = app
        .request(reqwest::Method::POST, "/bookings", Some(token))
        .json(body);
    if let Some(key) = key {
        request = request.header("Idempotency-Key", key);
    }
    let response = request.send().await.expect("POST /bookings");
    let replayed = response.headers().contains_key("idempotent-replayed");
    let (status, body) = parts(response).await;
    (status, replayed, body, started.elapsed().as_secs_f64())
}

async fn bookings_of(app: &TestApp, event_id: i64) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT booking_reference::text FROM bookings WHERE event_id = $1 ORDER BY id",
    )
    .bind(event_id as i32)
    .fetch_all(&app.db)
    .await
    .expect("bookings")
}

/// Makes every COMMIT that inserted a booking take `seconds` (a deferred constraint trigger
/// runs at COMMIT), in this test's own database.
async fn slow_commits(app: &TestApp, seconds: f64) {
    for sql in [
        format!(
            "CREATE FUNCTION slow_commit() RETURNS trigger LANGUAGE plpgsql AS \
             $$ BEGIN PERFORM pg_sleep({seconds}); RETURN NULL; END $$"
        ),
        "CREATE CONSTRAINT TRIGGER slow_commit AFTER INSERT ON bookings \
         DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION slow_commit()"
            .to_string(),
    ] {
        sqlx::query(&sql)
            .execute(&app.db)
            .await
            .expect("slow commit trigger");
    }
}

/// Makes every booking INSERT take `seconds`, before COMMIT is ever sent.
async fn slow_inserts(app: &TestApp, seconds: f64) {
    for sql in [
        format!(
            "CREATE FUNCTION slow_insert() RETURNS trigger LANGUAGE plpgsql AS \
             $$ BEGIN PERFORM pg_sleep({seconds}); RETURN NULL; END $$"
        ),
        "CREATE TRIGGER slow_insert AFTER INSERT ON bookings \
         FOR EACH STATEMENT EXECUTE FUNCTION slow_insert()"
            .to_string(),
    ] {
        sqlx::query(&sql)
            .execute(&app.db)
            .await
            .expect("slow insert trigger");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_slower_than_the_request_is_outcome_unknown_and_the_key_books_once() {
    let app = TestApp::spawn().await;
    let (_, event_id) = published_event(&app, 10).await;
    let (user, _) = app.user("user@example.com").await;
    slow_commits(&app, 11.0).await;

    let (status, _, body, took) =
        post_booking(&app, &user, Some("slow-commit"), &booking(event_id, 2)).await;
    assert_error(status, &body, 503, OUTCOME_UNKNOWN);
    assert!(
        took < 10.0,
        "answered before the request timeout, in {took:.1}s"
    );

    // The retry waits for the COMMIT that is still running, then replays what it recorded.
    let (status, replayed, retry, _) =
        post_booking(&app, &user, Some("slow-commit"), &booking(event_id, 2)).await;
    assert_eq!((status, replayed), (201, true), "{retry}");
    let made = bookings_of(&app, event_id).await;
    assert_eq!(made.len(), 1, "one key, one booking");
    assert_eq!(retry["data"]["bookingReference"], made[0].as_str());
    assert_eq!(seat_state(&app, event_id).await.1, 8);

    let (status, replayed, again, _) =
        post_booking(&app, &user, Some("slow-commit"), &booking(event_id, 2)).await;
    assert_eq!((status, replayed, &again), (201, true, &retry));
    assert_eq!(bookings_of(&app, event_id).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_stalled_before_commit_is_503_and_never_books_later() {
    let app = TestApp::spawn().await;
    let (_, event_id) = published_event(&app, 10).await;
    let (user, _) = app.user("user@example.com").await;
    let (other, _) = app.user("other@example.com").await;
    slow_inserts(&app, 8.0).await;

    let one_seat = booking(event_id, 1);
    let (keyed, plain) = tokio::join!(
        post_booking(&app, &user, Some("stalled"), &one_seat),
        post_booking(&app, &other, None, &one_seat),
    );
    for (status, _, body, took) in [&keyed, &plain] {
        assert_error(*status, body, 503, UNAVAILABLE);
        assert!(*took < 10.0, "answered in {took:.1}s");
    }
    // Long after the stalled INSERT finished: nothing was booked, no seat was taken.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(bookings_of(&app, event_id).await.is_empty());
    assert_eq!(seat_state(&app, event_id).await, (10, 10, 0, 0));

    // The key was not used up by the 503: its retry books, once.
    sqlx::query("DROP TRIGGER slow_insert ON bookings")
        .execute(&app.db)
        .await
        .expect("drop trigger");
    let (status, replayed, body, _) =
        post_booking(&app, &user, Some("stalled"), &booking(event_id, 1)).await;
    assert_eq!((status, replayed), (201, false), "{body}");
    let (status, replayed, again, _) =
        post_booking(&app, &user, Some("stalled"), &booking(event_id, 1)).await;
    assert_eq!((status, replayed, &again), (201, true, &body));
    assert_eq!(bookings_of(&app, event_id).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_hangs_up_while_queued_is_not_booked() {
    let app = TestApp::spawn().await;
    let (_, event_id) = published_event(&app, 10).await;
    let (first, _) = app.user("first@example.com").await;
    let (gone, _) = app.user("gone@example.com").await;
    slow_inserts(&app, 3.0).await;

    // The first booking holds the lane for 3 s; the second client gives up after 1 s.
    let holder = {
        let request = app
            .request(reqwest::Method::POST, "/bookings", Some(&first))
            .json(&booking(event_id, 1));
        tokio::spawn(async move { parts(request.send().await.expect("POST")).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let hung_up = app
        .request(reqwest::Method::POST, "/bookings", Some(&gone))
        .timeout(Duration::from_secs(1))
        .json(&booking(event_id, 1))
        .send()
        .await;
    assert!(hung_up.is_err(), "the client gave up before an answer");

    let (status, body) = holder.await.expect("first booking");
    assert_eq!(status, 201, "{body}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let made = bookings_of(&app, event_id).await;
    assert_eq!(
        made,
        vec![body["data"]["bookingReference"]
            .as_str()
            .unwrap()
            .to_string()]
    );
    assert_eq!(seat_state(&app, event_id).await.1, 9);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_race_is_not_stored_for_the_key() {
    let app = TestApp::spawn().await;
    let (_, event_id) = published_event(&app, 10).await;
    let (user, _) = app.user("user@example.com").await;
    // Every version-checked UPDATE of the event now writes nothing, as if another writer
    // always got there first.
    for sql in [
        "CREATE FUNCTION always_lose() RETURNS trigger LANGUAGE plpgsql AS \
         $$ BEGIN RETURN NULL; END $$",
        "CREATE TRIGGER always_lose BEFORE UPDATE ON events FOR EACH ROW \
         EXECUTE FUNCTION always_lose()",
    ] {
        sqlx::query(sql).execute(&app.db).await.expect("trigger");
    }
    let (status, _, body, _) = post_booking(&app, &user, Some("busy"), &booking(event_id, 1)).await;
    assert_error(
        status,
        &body,
        409,
        "Booking failed due to high demand. Please try again.",
    );
    sqlx::query("DROP TRIGGER always_lose ON events")
        .execute(&app.db)
        .await
        .expect("drop trigger");
    // "Please try again" means it: the retry books instead of replaying the 409.
    let (status, replayed, body, _) =
        post_booking(&app, &user, Some("busy"), &booking(event_id, 1)).await;
    assert_eq!((status, replayed), (201, false), "{body}");
    assert_eq!(bookings_of(&app, event_id).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bookings_answered_503_while_the_database_is_frozen_are_never_made() {
    let (dir, cluster, app) = app_on_own_cluster().await;
    let (_, event_id) = published_event(&app, 50).await;
    let mut users = Vec::new();
    for n in 0..12 {
        users.push(app.user(&format!("frozen{n}@example.com")).await.0);
    }

    signal_cluster(&dir, "STOP");
    let thaw = {
        let dir = dir.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(12)).await;
            signal_cluster(&dir, "CONT");
        })
    };
    // Half of them with a key, to retry after the thaw.
    let requests: Vec<_> = users
        .iter()
        .enumerate()
        .map(|(n, token)| {
            let mut request = app
                .request(reqwest::Method::POST, "/bookings", Some(token))
                .json(&booking(event_id, 1));
            if n % 2 == 0 {
                request = request.header("Idempotency-Key", format!("frozen-{n}"));
            }
            tokio::spawn(async move {
                let started = Instant::now();
                let answer = parts(request.send().await.expect("POST")).await;
                (answer, started.elapsed())
            })
        })
        .collect();
    for request in requests {
        let ((status, body), took) = request.await.expect("request task");
        assert_error(status, &body, 503, UNAVAILABLE);
        assert!(took < Duration::from_secs(10), "answered in {took:?}");
    }
    thaw.await.expect("thaw");

    // Whatever the stalled statements did after the thaw, none of them booked.
    let deadline = Instant::now() + Duration::from_secs(20);
    while app.get("/health", None).await.status() != 200 {
        assert!(Instant::now() < deadline, "the server did not recover");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(bookings_of(&app, event_id).await.is_empty(), "a 503 booked");
    assert_eq!(seat_state(&app, event_id).await.1, 50);

    // Each key's retry books exactly once, and a second retry replays it.
    for n in (0..12).step_by(2) {
        let key = format!("frozen-{n}");
        let (status, replayed, body, _) =
            post_booking(&app, &users[n], Some(&key), &booking(event_id, 1)).await;
        assert_eq!((status, replayed), (201, false), "{key}: {body}");
        let (status, replayed, again, _) =
            post_booking(&app, &users[n], Some(&key), &booking(event_id, 1)).await;
        assert_eq!((status, replayed, &again), (201, true, &body), "{key}");
    }
    assert_eq!(bookings_of(&app, event_id).await.len(), 6);
    assert_eq!(seat_state(&app, event_id).await.1, 44);
    cluster.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn production_refuses_the_examples_placeholder_secret() {
    let example = std::fs::read_to_string(".env.example").expect(".env.example");
    let placeholder = example
        .lines()
        .find_map(|l| l.strip_prefix("JWT_SECRET="))
        .expect("JWT_SECRET in .env.example");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_event-booking"))
        .env("APP_ENV", "production")
        .env("JWT_SECRET", placeholder)
        .env("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")
        .env("PORT", "0")
        .output()
        .expect("running the server");
    assert!(!output.status.success(), "the server refused to start");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one clear line: {stderr}");
    assert!(lines[0].contains("JWT_SECRET is a placeholder"), "{stderr}");
    assert!(!stderr.contains(placeholder), "the secret is never printed");
}
