//! Races over real HTTP with real concurrency, each followed by the invariant checked in SQL.

use std::collections::HashMap;
use std::future::Future;

use serde_json::{json, Value};

use crate::bookings::{assert_invariant, book, booking, published_event, seat_state};
use crate::helpers::{parts, TestApp};

/// One request of a race, boxed so different kinds can race together.
type Request = std::pin::Pin<Box<dyn Future<Output = (u16, Value)> + Send>>;

const HIGH_DEMAND: &str = "Booking failed due to high demand. Please try again.";

/// Runs every request at once (spawned, so they really run in parallel) and collects the answers.
async fn race<F>(requests: Vec<F>) -> Vec<(u16, Value)>
where
    F: Future<Output = (u16, Value)> + Send + 'static,
{
    let handles: Vec<_> = requests.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for handle in handles {
        out.push(handle.await.expect("request task"));
    }
    out
}

fn tally(results: &[(u16, Value)]) -> HashMap<u16, usize> {
    let mut counts = HashMap::new();
    for (status, _) in results {
        *counts.entry(*status).or_insert(0) += 1;
    }
    counts
}

fn assert_no_server_errors(results: &[(u16, Value)]) {
    for (status, body) in results {
        assert!(*status < 500, "a {status}: {body}");
    }
}

/// Every 201 must be a CONFIRMED row, and every CONFIRMED row a 201.
async fn assert_every_201_is_confirmed(app: &TestApp, results: &[(u16, Value)], event_id: i64) {
    let mut references: Vec<String> = results
        .iter()
        .filter(|(status, _)| *status == 201)
        .map(|(_, body)| {
            body["data"]["bookingReference"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    references.sort();
    let mut confirmed: Vec<String> = sqlx::query_scalar(
        "SELECT booking_reference::text FROM bookings WHERE event_id = $1 AND status = 'CONFIRMED'",
    )
    .bind(event_id as i32)
    .fetch_all(&app.db)
    .await
    .unwrap();
    confirmed.sort();
    assert_eq!(references, confirmed);
}

async fn users(app: &TestApp, count: usize) -> Vec<String> {
    let mut tokens = Vec::with_capacity(count);
    for n in 0..count {
        tokens.push(app.user(&format!("racer{n}@example.com")).await.0);
    }
    tokens
}

fn book_request(
    app: &TestApp,
    token: &str,
    event_id: i64,
) -> impl Future<Output = (u16, Value)> + Send + 'static {
    let request = app
        .request(reqwest::Method::POST, "/bookings", Some(token))
        .json(&booking(event_id, 1));
    async move { parts(request.send().await.expect("POST /bookings")).await }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_hundred_simultaneous_bookings_never_oversell() {
    let app = TestApp::spawn().await;
    let (_, event_id) = published_event(&app, 100).await;
    let tokens = users(&app, 30).await;
    let requests = (0..300)
        .map(|n| book_request(&app, &tokens[n % 30], event_id))
        .collect();
    let results = race(requests).await;

    assert_no_server_errors(&results);
    assert_invariant(&app, event_id).await;
    assert_every_201_is_confirmed(&app, &results, event_id).await;
    let counts = tally(&results);
    let confirmed = counts.get(&201).copied().unwrap_or(0);
    assert!((1..=100).contains(&confirmed), "{counts:?}");
    for (status, body) in &results {
        assert!(matches!(status, 201 | 409), "{status}: {body}");
    }
    let (_, available, _, _) = seat_state(&app, event_id).await;
    let high_demand = results
        .iter()
        .filter(|(_, body)| body["message"] == HIGH_DEMAND)
        .count();
    eprintln!(
        "race 1: {confirmed} confirmed, {high_demand} × 409 high demand, {} × 409 not enough seats, {available} seats left",
        counts.get(&409).copied().unwrap_or(0) - high_demand
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_simultaneous_cancels_release_the_seats_once() {
    let app = TestApp::spawn().await;
    let (_, event_id) = published_event(&app, 10).await;
    let (user, _) = app.user("user@example.com").await;
    let reference = book(&app, &user, event_id, 3).await;
    let requests = (0..20)
        .map(|_| {
            let request = app.request(
                reqwest::Method::DELETE,
                &format!("/bookings/{reference}"),
                Some(&user),
            );
            async move { parts(request.send().await.expect("DELETE")).await }
        })
        .collect();
    let results = race(requests).await;

    assert_no_server_errors(&results);
    let counts = tally(&results);
    assert_eq!(counts.get(&200), Some(&1), "{counts:?}");
    assert_eq!(counts.get(&400), Some(&19), "{counts:?}");
    for (status, body) in &results {
        if *status == 400 {
            assert_eq!(body["message"], "Booking is already cancelled");
        }
    }
    let (total, available, confirmed, _) = seat_state(&app, event_id).await;
    assert_eq!(
        (total, available, confirmed),
        (10, 10, 0),
        "seats released exactly once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bookings_race_with_cancellations_and_seat_edits() {
    let app = TestApp::spawn().await;
    let (organizer, event_id) = published_event(&app, 150).await;
    let tokens = users(&app, 20).await;
    let mut references = Vec::new();
    for token in &tokens {
        references.push((token.clone(), book(&app, token, event_id, 2).await));
    }

    let mut requests: Vec<Request> = Vec::new();
    for n in 0..150 {
        requests.push(Box::pin(book_request(
            &app,
            &tokens[n % tokens.len()],
            event_id,
        )));
    }
    for (token, reference) in &references {
        let request = app.request(
            reqwest::Method::DELETE,
            &format!("/bookings/{reference}"),
            Some(token),
        );
        requests.push(Box::pin(async move {
            parts(request.send().await.expect("DELETE")).await
        }));
    }
    for n in 0..30 {
        // Grow and shrink: shrinking below the booked seats must be refused, never applied.
        let seats = [200, 120, 180, 60][n % 4];
        let request = app
            .request(
                reqwest::Method::PUT,
                &format!("/events/{event_id}"),
                Some(&organizer),
            )
            .json(&json!({ "totalSeats": seats }));
        requests.push(Box::pin(async move {
            parts(request.send().await.expect("PUT")).await
        }));
    }
    let results = race(requests).await;

    assert_no_server_errors(&results);
    assert_invariant(&app, event_id).await;
    for (status, body) in &results {
        assert!(matches!(status, 200 | 201 | 400 | 409), "{status}: {body}");
        if *status == 400 {
            let message = body["message"].as_str().unwrap_or_default();
            assert!(
                message.starts_with("Cannot reduce total seats below"),
                "{body}"
            );
        }
    }
    let (total, available, confirmed, version) = seat_state(&app, event_id).await;
    eprintln!("race 3: {:?}; total {total}, available {available}, confirmed {confirmed}, version {version}", tally(&results));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_on_one_database_share_a_hot_event() {
    let app = TestApp::spawn().await;
    let second = app.another_instance().await;
    let (_, event_id) = published_event(&app, 120).await;
    let tokens = users(&app, 20).await;
    let requests = (0..240)
        .map(|n| {
            let instance = if n % 2 == 0 { &app } else { &second };
            book_request(instance, &tokens[n % tokens.len()], event_id)
        })
        .collect();
    let results = race(requests).await;

    assert_no_server_errors(&results);
    assert_invariant(&app, event_id).await;
    assert_every_201_is_confirmed(&app, &results, event_id).await;
    let high_demand = results
        .iter()
        .filter(|(_, body)| body["message"] == HIGH_DEMAND)
        .count();
    eprintln!("race 4: {:?}, {high_demand} × high demand", tally(&results));
}
