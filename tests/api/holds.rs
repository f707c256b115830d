//! Holds: seats reserved until `expiresAt`, then confirmed, cancelled or expired — every rule
//! and message of API.md's section, expiry seen for real with HOLD_SECONDS=1 on two instances.

use std::time::Duration;

use serde_json::{json, Value};

use crate::bookings::{booking, published_event, seat_state};
use crate::events::{create_event, event_body};
use crate::helpers::{assert_error, parts, TestApp};

const HELD: &str = "Seats held successfully";
const CONFIRMED: &str = "Booking confirmed successfully";
const EXPIRED: &str = "Booking hold has expired";

fn hold(event_id: i64, seats: i64) -> Value {
    json!({ "eventId": event_id, "seatCount": seats, "hold": true })
}

/// Holds seats and returns the 201 body.
async fn held(app: &TestApp, token: &str, event_id: i64, seats: i64) -> Value {
    let (status, body) = parts(
        app.post("/bookings", Some(token), &hold(event_id, seats))
            .await,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    body
}

async fn confirm(app: &TestApp, token: &str, reference: &str) -> (u16, Value) {
    parts(
        app.post(
            &format!("/bookings/{reference}/confirm"),
            Some(token),
            &json!({}),
        )
        .await,
    )
    .await
}

/// Seats taken by CONFIRMED and PENDING bookings, checked against the event in SQL.
async fn assert_held_invariant(app: &TestApp, event_id: i64) -> (i32, i32) {
    let (total, available, taken): (i32, i32, i64) = sqlx::query_as(
        "SELECT e.total_seats, e.available_seats, \
                COALESCE((SELECT SUM(b.seat_count) FROM bookings b WHERE b.event_id = e.id \
                          AND b.status IN ('CONFIRMED', 'PENDING')), 0)::bigint \
         FROM events e WHERE e.id = $1",
    )
    .bind(event_id as i32)
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(i64::from(available) + taken, i64::from(total));
    (total, available)
}

#[tokio::test]
async fn a_hold_takes_seats_at_once_and_a_confirm_keeps_them() {
    let app = TestApp::spawn().await;
    let (_, event_id) = published_event(&app, 10).await;
    let (user, _) = app.user("user@example.com").await;
    let before = chrono::Utc::now();
    let body = held(&app, &user, event_id, 3).await;
    assert_eq!(body["success"], true);
    assert_eq!(body["message"], HELD);
    assert_eq!(body["data"]["status"], "PENDING");
    assert_eq!(body["data"]["event"]["id"], event_id);
    let expires =
        chrono::DateTime::parse_from_rfc3339(body["data"]["expiresAt"].as_str().unwrap()).unwrap();
    let hold_for = (expires.with_timezone(&chrono::Utc) - before).num_seconds();
    assert!(
        (598..=601).contains(&hold_for),
        "HOLD_SECONDS defaults to 600: {hold_for}"
    );
    assert_eq!(assert_held_invariant(&app, event_id).await, (10, 7));

    let reference = body["data"]["bookingReference"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, listed) = parts(app.get("/bookings?status=PENDING", Some(&user)).await).await;
    assert_eq!(listed["data"][0]["bookingReference"], reference.as_str());
    let (status, confirmed) = confirm(&app, &user, &reference).await;
    assert_eq!(status, 200, "{confirmed}");
    assert_eq!(confirmed["message"], CONFIRMED);
    assert_eq!(confirmed["data"]["status"], "CONFIRMED");
    assert_eq!(confirmed["data"]["expiresAt"], Value::Null);
    assert_eq!(confirmed["data"]["bookingReference"], reference.as_str());
    assert_eq!(
        assert_held_invariant(&app, event_id).await,
        (10, 7),
        "the seats stay taken"
    );

    let (status, body) = confirm(&app, &user, &reference).await;
    assert_error(status, &body, 400, "Booking is already confirmed");
    let (_, detail) = parts(
        app.get(&format!("/bookings/{reference}"), Some(&user))
            .await,
    )
    .await;
    assert_eq!(detail["status"], "CONFIRMED");
}

#[tokio::test]
async fn confirm_rules_and_messages() {
    let app = TestApp::spawn().await;
    let (organizer, event_id) = published_event(&app, 10).await;
    let (user, _) = app.user("user@example.com").await;
    let (other, _) = app.user("other@example.com").await;
    let reference = held(&app, &user, event_id, 1).await["data"]["bookingReference"]
        .as_str()
        .unwrap()
        .to_string();

    let (status, body) = confirm(&app, &other, &reference).await;
    assert_error(status, &body, 403, "You can only confirm your own bookings");
    let (status, body) = confirm(&app, &user, "9b2f4c3e-8f1a-4d2b-a6c7-1e5d3f9a0b4c").await;
    assert_error(status, &body, 404, "Booking not found");
    let (status, body) = confirm(&app, &user, "not-a-uuid").await;
    assert_error(status, &body, 400, "Validation failed (uuid is expected)");
    let (status, body) = parts(
        app.post(&format!("/bookings/{reference}/confirm"), None, &json!({}))
            .await,
    )
    .await;
    assert_error(status, &body, 401, "Unauthorized");

    // The event stopped selling: the hold cannot be confirmed.
    let (status, _) = parts(
        app.put(
            &format!("/events/{event_id}"),
            Some(&organizer),
            &json!({ "status": "CANCELLED" }),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200);
    let (status, body) = confirm(&app, &user, &reference).await;
    assert_error(
        status,
        &body,
        400,
        "Event is not available for booking. Current status: CANCELLED",
    );

    // A cancelled hold gives its seats back and cannot be confirmed.
    let (status, body) = parts(
        app.delete(&format!("/bookings/{reference}"), Some(&user))
            .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["status"], "CANCELLED");
    assert_eq!(seat_state(&app, event_id).await.1, 10);
    let (status, body) = confirm(&app, &user, &reference).await;
    assert_error(status, &body, 400, "Booking is already cancelled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn simultaneous_confirms_of_one_hold_confirm_it_once() {
    let app = TestApp::spawn().await;
    let (_, event_id) = published_event(&app, 10).await;
    let (user, _) = app.user("user@example.com").await;
    let reference = held(&app, &user, event_id, 2).await["data"]["bookingReference"]
        .as_str()
        .unwrap()
        .to_string();
    let requests: Vec<_> = (0..20)
        .map(|_| {
            let request = app
                .request(
                    reqwest::Method::POST,
                    &format!("/bookings/{reference}/confirm"),
                    Some(&user),
                )
                .json(&json!({}));
            tokio::spawn(async move { parts(request.send().await.unwrap()).await })
        })
        .collect();
    let mut confirmed = 0;
    for request in requests {
        let (status, body) = request.await.unwrap();
        if status == 200 {
            confirmed += 1;
        } else {
            assert_error(status, &body, 400, "Booking is already confirmed");
        }
    }
    assert_eq!(confirmed, 1);
    assert_eq!(assert_held_invariant(&app, event_id).await, (10, 8));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_unconfirmed_hold_expires_once_on_two_instances_and_cannot_be_confirmed() {
    let app = TestApp::spawn_with(&[("HOLD_SECONDS", "1")]).await;
    let second = app.another_instance_with(&[("HOLD_SECONDS", "1")]).await;
    let (_, event_id) = published_event(&app, 10).await;
    let (user, _) = app.user("user@example.com").await;
    let mut references = Vec::new();
    for instance in [&app, &second, &app] {
        let body = held(instance, &user, event_id, 2).await;
        references.push(
            body["data"]["bookingReference"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    assert_eq!(assert_held_invariant(&app, event_id).await, (10, 4));
    let version_before: i64 = sqlx::query_scalar("SELECT version FROM events WHERE id = $1")
        .bind(event_id as i32)
        .fetch_one(&app.db)
        .await
        .unwrap();

    // Just past expiresAt, before any sweep may have run: never confirmed.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, body) = confirm(&second, &user, &references[0]).await;
    assert_error(status, &body, 400, EXPIRED);

    // Within 5 seconds it reads EXPIRED everywhere, and its seats are back exactly once.
    tokio::time::sleep(Duration::from_secs(5)).await;
    for reference in &references {
        for instance in [&app, &second] {
            let (_, detail) = parts(
                instance
                    .get(&format!("/bookings/{reference}"), Some(&user))
                    .await,
            )
            .await;
            assert_eq!(detail["status"], "EXPIRED", "{detail}");
            assert_eq!(detail["expiresAt"], Value::Null);
        }
    }
    assert_eq!(assert_held_invariant(&app, event_id).await, (10, 10));
    let version_after: i64 = sqlx::query_scalar("SELECT version FROM events WHERE id = $1")
        .bind(event_id as i32)
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(
        version_after,
        version_before + 3,
        "one version per released hold"
    );
    let (_, listed) = parts(app.get("/bookings?status=EXPIRED", Some(&user)).await).await;
    assert_eq!(listed["meta"]["total"], 3);

    let (status, body) = confirm(&app, &user, &references[1]).await;
    assert_error(status, &body, 400, EXPIRED);
    let (status, body) = parts(
        app.delete(&format!("/bookings/{}", references[1]), Some(&user))
            .await,
    )
    .await;
    assert_error(status, &body, 400, EXPIRED);
    assert_eq!(assert_held_invariant(&app, event_id).await, (10, 10));
}

#[tokio::test]
async fn holds_follow_the_booking_rules_and_idempotency() {
    let app = TestApp::spawn().await;
    let (organizer, event_id) = published_event(&app, 5).await;
    let (user, _) = app.user("user@example.com").await;
    let (status, body) = parts(app.post("/bookings", Some(&user), &hold(event_id, 6)).await).await;
    assert_error(
        status,
        &body,
        409,
        "Not enough seats available. Requested: 6, Available: 5",
    );
    let draft = create_event(&app, &organizer, &event_body("Draft", 5, "DRAFT")).await;
    let (status, body) = parts(
        app.post(
            "/bookings",
            Some(&user),
            &hold(draft["id"].as_i64().unwrap(), 1),
        )
        .await,
    )
    .await;
    assert_error(
        status,
        &body,
        404,
        &format!("Event with ID {} not found", draft["id"]),
    );
    let (status, body) = parts(
        app.post(
            "/bookings",
            Some(&user),
            &json!({ "eventId": event_id, "seatCount": 1, "hold": "yes" }),
        )
        .await,
    )
    .await;
    crate::helpers::assert_validation(status, &body, &["hold must be a boolean value"]);

    // One key, one hold: the retry replays it; the same key for a confirmed booking is 422.
    let send = |body: Value| {
        app.request(reqwest::Method::POST, "/bookings", Some(&user))
            .header("Idempotency-Key", "hold-1")
            .json(&body)
            .send()
    };
    let first = send(hold(event_id, 2)).await.unwrap();
    let (status, first) = parts(first).await;
    assert_eq!((status, first["message"].as_str()), (201, Some(HELD)));
    let again = send(hold(event_id, 2)).await.unwrap();
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    let (status, again) = parts(again).await;
    assert_eq!((status, &again), (201, &first));
    let (status, body) = parts(send(booking(event_id, 2)).await.unwrap()).await;
    assert_error(
        status,
        &body,
        422,
        "Idempotency-Key reused with a different request",
    );
    assert_eq!(assert_held_invariant(&app, event_id).await, (5, 3));
}
