//! Cross-event group commit: bookings waiting for different events share one transaction,
//! each event's version is checked on its own row, and an event that loses its race costs
//! only itself a retry: the others of its transaction are kept.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use serde_json::Value;

use crate::bookings::{assert_invariant, booking, seat_state};
use crate::events::{create_event, event_body};
use crate::helpers::{assert_error, parts, TestApp};

const HIGH_DEMAND: &str = "Booking failed due to high demand. Please try again.";

/// Twenty events of 15 seats get 15 bookings each, all at once, while a 21st event's version
/// is bumped behind the server's back (an old instance without lanes, say) as fast as
/// PostgreSQL allows, so its bookings keep losing the version race. Strict: every booking of
/// the twenty is a 201 (had a lost race rolled back the whole transaction, the events batched
/// with the contested one would lose three times too and answer "high demand"), they sell out
/// exactly, one version per booking; the contested event answers only 201 or "high demand",
/// and its CONFIRMED rows are exactly its 201s. The rows show the grouping: bookings of
/// different events written by one transaction (the same `xmin`).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lost_race_of_one_event_keeps_the_bookings_of_the_others_in_its_transaction() {
    let app = TestApp::spawn().await;
    let (organizer, _) = app.organizer("organizer@example.com").await;
    let mut events = Vec::new();
    for n in 0..21 {
        let body = event_body(&format!("Concert {n}"), 15, "PUBLISHED");
        events.push(
            create_event(&app, &organizer, &body).await["id"]
                .as_i64()
                .unwrap(),
        );
    }
    let contested = events.pop().unwrap();
    let mut tokens = Vec::new();
    for n in 0..15 {
        tokens.push(app.user(&format!("racer{n}@example.com")).await.0);
    }
    let versions_before = versions(&app, &events).await;

    let stop = Arc::new(AtomicBool::new(false));
    let bumpers: Vec<_> = (0..2)
        .map(|_| {
            let (db, stop) = (app.db.clone(), stop.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    sqlx::query("UPDATE events SET version = version + 1 WHERE id = $1")
                        .bind(contested as i32)
                        .execute(&db)
                        .await
                        .unwrap();
                }
            })
        })
        .collect();

    let mut requests = Vec::new();
    for token in &tokens {
        for event_id in events.iter().copied().chain([contested]) {
            let request = app
                .request(reqwest::Method::POST, "/bookings", Some(token))
                .json(&booking(event_id, 1));
            requests.push((
                event_id,
                tokio::spawn(async move { parts(request.send().await.unwrap()).await }),
            ));
        }
    }
    let mut answers: Vec<(i64, u16, Value)> = Vec::new();
    for (event_id, handle) in requests {
        let (status, body) = handle.await.unwrap();
        answers.push((event_id, status, body));
    }
    stop.store(true, Ordering::Relaxed);
    for bumper in bumpers {
        bumper.await.unwrap();
    }

    let mut contested_201s = Vec::new();
    let mut contested_lost = 0;
    for (event_id, status, body) in &answers {
        if *event_id == contested && *status != 201 {
            assert_error(*status, body, 409, HIGH_DEMAND);
            contested_lost += 1;
            continue;
        }
        assert_eq!(*status, 201, "event {event_id}: {body}");
        assert_eq!(body["data"]["eventId"], *event_id, "{body}");
        if *event_id == contested {
            contested_201s.push(
                body["data"]["bookingReference"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            );
        }
    }
    eprintln!(
        "contested event: {} booked, {contested_lost} lost three races",
        contested_201s.len()
    );
    for (event_id, before) in events.iter().zip(versions_before) {
        assert_invariant(&app, *event_id).await;
        let (total, available, confirmed, version) = seat_state(&app, *event_id).await;
        assert_eq!(
            (total, available, confirmed),
            (15, 0, 15),
            "event {event_id}"
        );
        assert_eq!(
            version,
            before + 15,
            "one version per booking of {event_id}"
        );
    }
    assert_invariant(&app, contested).await;
    let mut rows: Vec<String> = sqlx::query_scalar(
        "SELECT booking_reference::text FROM bookings WHERE event_id = $1 AND status = 'CONFIRMED'",
    )
    .bind(contested as i32)
    .fetch_all(&app.db)
    .await
    .unwrap();
    rows.sort();
    contested_201s.sort();
    assert_eq!(
        rows, contested_201s,
        "the contested event's rows are its 201s"
    );

    let widest: i64 = sqlx::query_scalar(
        "SELECT max(n) FROM (SELECT count(DISTINCT event_id) AS n FROM bookings \
                             WHERE event_id = ANY($1) GROUP BY xmin::text) t",
    )
    .bind(events.iter().map(|id| *id as i32).collect::<Vec<_>>())
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert!(
        widest >= 2,
        "bookings of several events in one transaction: {widest}"
    );
}

async fn versions(app: &TestApp, events: &[i64]) -> Vec<i64> {
    let mut versions = Vec::new();
    for event_id in events {
        versions.push(seat_state(app, *event_id).await.3);
    }
    versions
}
