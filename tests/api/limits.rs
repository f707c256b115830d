use serde_json::json;

use crate::bookings::{booking, published_event, seat_state};
use crate::helpers::{assert_error, parts, TestApp, PASSWORD};

fn assert_429(response: &reqwest::Response) {
    assert_eq!(response.status(), 429);
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after), "Retry-After {retry_after}");
}

#[tokio::test]
async fn login_and_register_are_limited_per_client_ip() {
    let app = TestApp::spawn_with(&[
        ("RATE_LIMIT_ENABLED", "true"),
        ("RATE_LIMIT_AUTH_PER_MINUTE", "3"),
    ])
    .await;
    app.user("known@example.com").await; // 1
    let login = json!({ "email": "known@example.com", "password": PASSWORD });
    for _ in 0..2 {
        let response = app.post("/auth/login", None, &login).await; // 2, 3
        assert_eq!(response.status(), 200);
    }
    let response = app.post("/auth/login", None, &login).await;
    assert_429(&response);
    let (status, body) = parts(response).await;
    assert_error(
        status,
        &body,
        429,
        "Too many requests, please try again later",
    );

    let register = json!({ "firstname": "A", "lastname": "B", "email": "new@example.com", "password": PASSWORD });
    let response = app.post("/auth/register", None, &register).await;
    assert_429(&response);
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(count, 1, "the refused registration wrote nothing");

    // Other routes are not limited.
    let response = app.get("/health", None).await;
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn bookings_are_limited_per_user() {
    let app = TestApp::spawn_with(&[
        ("RATE_LIMIT_ENABLED", "true"),
        ("RATE_LIMIT_AUTH_PER_MINUTE", "100"),
        ("RATE_LIMIT_BOOKINGS_PER_MINUTE", "2"),
    ])
    .await;
    let (_, event_id) = published_event(&app, 10).await;
    let (first, _) = app.user("first@example.com").await;
    let (second, _) = app.user("second@example.com").await;
    for _ in 0..2 {
        let response = app
            .post("/bookings", Some(&first), &booking(event_id, 1))
            .await;
        assert_eq!(response.status(), 201);
    }
    let response = app
        .post("/bookings", Some(&first), &booking(event_id, 1))
        .await;
    assert_429(&response);
    let response = app
        .post("/bookings", Some(&second), &booking(event_id, 1))
        .await;
    assert_eq!(
        response.status(),
        201,
        "another user has a quota of their own"
    );
    assert_eq!(seat_state(&app, event_id).await, (10, 7, 3, 3));
}

#[tokio::test]
async fn limits_can_be_switched_off() {
    let app = TestApp::spawn_with(&[
        ("RATE_LIMIT_ENABLED", "false"),
        ("RATE_LIMIT_AUTH_PER_MINUTE", "1"),
    ])
    .await;
    let login = json!({ "email": "nobody@example.com", "password": PASSWORD });
    for _ in 0..5 {
        let response = app.post("/auth/login", None, &login).await;
        assert_eq!(response.status(), 401);
    }
}
