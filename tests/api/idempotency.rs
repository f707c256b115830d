use serde_json::Value;

use crate::bookings::{booking, published_event, seat_state};
use crate::helpers::{assert_error, parts, TestApp};

async fn post_with_key(
    app: &TestApp,
    token: &str,
    key: &str,
    body: &Value,
) -> (u16, Option<String>, Value) {
    let response = app
        .request(reqwest::Method::POST, "/bookings", Some(token))
        .header("Idempotency-Key", key)
        .json(body)
        .send()
        .await
        .unwrap();
    let replayed = response
        .headers()
        .get("idempotent-replayed")
        .map(|v| v.to_str().unwrap().to_string());
    let (status, body) = parts(response).await;
    (status, replayed, body)
}

async fn booking_rows(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM bookings")
        .fetch_one(&app.db)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_retry_with_the_same_key_replays_the_first_response() {
    let app = TestApp::spawn().await;
    let (_, event_id) = published_event(&app, 10).await;
    let (user, _) = app.user("user@example.com").await;
    let body = booking(event_id, 2);

    let (status, replayed, first) = post_with_key(&app, &user, "order-42", &body).await;
    assert_eq!((status, replayed), (201, None));
    let (status, replayed, second) = post_with_key(&app, &user, "order-42", &body).await;
    assert_eq!((status, replayed.as_deref()), (201, Some("true")));
    assert_eq!(first, second, "same body, same booking");
    assert_eq!(booking_rows(&app).await, 1);
    assert_eq!(seat_state(&app, event_id).await, (10, 8, 2, 1));

    // Without a key, or with another key, it books again.
    let (status, _, _) = post_with_key(&app, &user, "order-43", &body).await;
    assert_eq!(status, 201);
    assert_eq!(booking_rows(&app).await, 2);
}

#[tokio::test]
async fn the_same_key_with_a_different_body_is_422() {
    let app = TestApp::spawn().await;
    let (_, event_id) = published_event(&app, 10).await;
    let (user, _) = app.user("user@example.com").await;
    post_with_key(&app, &user, "k1", &booking(event_id, 1)).await;
    let (status, _, body) = post_with_key(&app, &user, "k1", &booking(event_id, 3)).await;
    assert_error(
        status,
        &body,
        422,
        "Idempotency-Key reused with a different request",
    );
    assert_eq!(booking_rows(&app).await, 1);
}

#[tokio::test]
async fn keys_are_per_user() {
    let app = TestApp::spawn().await;
    let (_, event_id) = published_event(&app, 10).await;
    let (a, _) = app.user("a@example.com").await;
    let (b, _) = app.user("b@example.com").await;
    let (_, _, first) = post_with_key(&app, &a, "shared", &booking(event_id, 1)).await;
    let (status, replayed, second) = post_with_key(&app, &b, "shared", &booking(event_id, 1)).await;
    assert_eq!((status, replayed), (201, None));
    assert_ne!(
        first["data"]["bookingReference"],
        second["data"]["bookingReference"]
    );
    assert_eq!(booking_rows(&app).await, 2);
}

#[tokio::test]
async fn refusals_are_replayed_too() {
    let app = TestApp::spawn().await;
    let (_, event_id) = published_event(&app, 1).await;
    let (user, _) = app.user("user@example.com").await;
    let (status, _, first) = post_with_key(&app, &user, "too-many", &booking(event_id, 5)).await;
    assert_error(
        status,
        &first,
        409,
        "Not enough seats available. Requested: 5, Available: 1",
    );
    let (status, replayed, second) =
        post_with_key(&app, &user, "too-many", &booking(event_id, 5)).await;
    assert_eq!((status, replayed.as_deref()), (409, Some("true")));
    assert_eq!(first, second);
}

#[tokio::test]
async fn malformed_keys_are_400() {
    let app = TestApp::spawn().await;
    let (_, event_id) = published_event(&app, 10).await;
    let (user, _) = app.user("user@example.com").await;
    for key in ["", "has space", &"k".repeat(256), "tab\there"] {
        let (status, _, body) = post_with_key(&app, &user, key, &booking(event_id, 1)).await;
        assert_error(
            status,
            &body,
            400,
            "Idempotency-Key must be 1 to 255 visible ASCII characters",
        );
    }
    let (status, _, _) = post_with_key(&app, &user, &"k".repeat(255), &booking(event_id, 1)).await;
    assert_eq!(status, 201);
    assert_eq!(booking_rows(&app).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_retries_with_one_key_book_once() {
    let app = TestApp::spawn().await;
    let (_, event_id) = published_event(&app, 100).await;
    let (user, _) = app.user("user@example.com").await;
    let requests: Vec<_> = (0..20)
        .map(|_| {
            let request = app
                .request(reqwest::Method::POST, "/bookings", Some(&user))
                .header("Idempotency-Key", "double-click")
                .json(&booking(event_id, 3));
            tokio::spawn(async move {
                let response = request.send().await.unwrap();
                let replayed = response.headers().contains_key("idempotent-replayed");
                let (status, body) = parts(response).await;
                (status, replayed, body)
            })
        })
        .collect();
    let mut results = Vec::new();
    for request in requests {
        results.push(request.await.unwrap());
    }
    let first = &results[0].2;
    for (status, _, body) in &results {
        assert_eq!(*status, 201, "{body}");
        assert_eq!(
            body["data"]["bookingReference"],
            first["data"]["bookingReference"]
        );
    }
    assert_eq!(
        results.iter().filter(|(_, replayed, _)| *replayed).count(),
        19
    );
    assert_eq!(booking_rows(&app).await, 1);
    assert_eq!(seat_state(&app, event_id).await, (100, 97, 3, 1));
}

#[tokio::test]
async fn keys_are_kept_a_day_and_swept_after_two() {
    let app = TestApp::spawn().await;
    let (_, event_id) = published_event(&app, 10).await;
    let (user, _) = app.user("user@example.com").await;
    post_with_key(&app, &user, "recent", &booking(event_id, 1)).await;
    post_with_key(&app, &user, "old", &booking(event_id, 1)).await;
    sqlx::query(
        "UPDATE idempotency_keys SET created_at = now() - interval '25 hours' WHERE key = 'recent'",
    )
    .execute(&app.db)
    .await
    .unwrap();
    sqlx::query(
        "UPDATE idempotency_keys SET created_at = now() - interval '49 hours' WHERE key = 'old'",
    )
    .execute(&app.db)
    .await
    .unwrap();
    let deleted = event_booking::bookings::idempotency::sweep(&app.db)
        .await
        .unwrap();
    assert_eq!(deleted, 1);
    let (status, replayed, _) = post_with_key(&app, &user, "recent", &booking(event_id, 1)).await;
    assert_eq!(
        (status, replayed.as_deref()),
        (201, Some("true")),
        "a 25-hour-old key still replays"
    );
}
