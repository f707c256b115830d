use serde_json::json;

use crate::bookings::{booking, published_event, seat_state};
use crate::helpers::{assert_error, parts, TestApp, PASSWORD};

/// A 429 with its Retry-After header (seconds) and the error body.
async fn assert_429(response: reqwest::Response) {
    let retry_after: Option<u64> = response
        .headers()
        .get("retry-after")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse().ok());
    let (status, body) = parts(response).await;
    assert_error(
        status,
        &body,
        429,
        "Too many requests, please try again later",
    );
    assert!(
        retry_after.is_some_and(|seconds| (1..=60).contains(&seconds)),
        "Retry-After {retry_after:?}"
    );
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
    assert_429(app.post("/auth/login", None, &login).await).await;

    let register = json!({ "firstname": "A", "lastname": "B", "email": "new@example.com", "password": PASSWORD });
    assert_429(app.post("/auth/register", None, &register).await).await;
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
    assert_429(
        app.post("/bookings", Some(&first), &booking(event_id, 1))
            .await,
    )
    .await;
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
        let (status, body) = parts(app.post("/auth/login", None, &login).await).await;
        assert_error(status, &body, 401, "Invalid email or password");
    }
}

/// Behind a trusted proxy each forwarded client has its own budget; from anyone else the header
/// is ignored, so a client cannot buy a fresh budget by writing it.
#[tokio::test]
async fn clients_behind_a_trusted_proxy_are_limited_one_by_one() {
    let settings = [
        ("RATE_LIMIT_ENABLED", "true"),
        ("RATE_LIMIT_AUTH_PER_MINUTE", "2"),
    ];
    let login = json!({ "email": "nobody@example.com", "password": PASSWORD });
    let attempt = |app: &TestApp, client: &'static str| {
        app.request(reqwest::Method::POST, "/auth/login", None)
            .header("x-forwarded-for", client)
            .json(&login)
            .send()
    };

    // The test's requests come from 127.0.0.1, trusted here as the proxy.
    let behind =
        TestApp::spawn_with(&[settings[0], settings[1], ("TRUSTED_PROXIES", "127.0.0.1")]).await;
    for _ in 0..2 {
        assert_eq!(
            attempt(&behind, "198.51.100.1").await.unwrap().status(),
            401
        );
    }
    assert_429(attempt(&behind, "198.51.100.1").await.unwrap()).await;
    assert_eq!(
        attempt(&behind, "198.51.100.2").await.unwrap().status(),
        401
    );

    // Not trusted: one budget for the peer, whatever the header says.
    let direct = TestApp::spawn_with(&settings).await;
    for _ in 0..2 {
        assert_eq!(
            attempt(&direct, "198.51.100.1").await.unwrap().status(),
            401
        );
    }
    assert_429(attempt(&direct, "198.51.100.2").await.unwrap()).await;
}
