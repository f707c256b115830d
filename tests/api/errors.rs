//! Every rejection axum would make on its own comes back in the contract's error body.

use serde_json::json;

use crate::helpers::{assert_error, parts, TestApp};

#[tokio::test]
async fn malformed_json_is_400() {
    let app = TestApp::spawn().await;
    let response = app
        .request(reqwest::Method::POST, "/auth/login", None)
        .header("content-type", "application/json")
        .body("{\"email\": ")
        .send()
        .await
        .unwrap();
    let (status, body) = parts(response).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["statusCode"], 400);
    assert_eq!(body["error"], "Bad Request");
    assert!(body["message"]
        .as_str()
        .unwrap()
        .starts_with("Malformed JSON body"));
}

#[tokio::test]
async fn wrong_json_types_are_400() {
    let app = TestApp::spawn().await;
    for body in [
        json!([1, 2]),
        json!("text"),
        json!({ "email": 5, "password": true }),
    ] {
        let (status, body) = parts(app.post("/auth/login", None, &body).await).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["error"], "Bad Request");
    }
}

#[tokio::test]
async fn missing_content_type_is_415() {
    let app = TestApp::spawn().await;
    let response = app
        .request(reqwest::Method::POST, "/auth/login", None)
        .body(r#"{"email":"a@b.c","password":"x"}"#)
        .send()
        .await
        .unwrap();
    let (status, body) = parts(response).await;
    assert_error(
        status,
        &body,
        415,
        "Expected request with `Content-Type: application/json`",
    );
}

#[tokio::test]
async fn unknown_route_is_404_and_wrong_method_is_405() {
    let app = TestApp::spawn().await;
    let (status, body) = parts(app.get("/nowhere", None).await).await;
    assert_error(status, &body, 404, "Cannot GET /nowhere");

    let (status, body) = parts(app.delete("/auth/login", None).await).await;
    assert_error(
        status,
        &body,
        405,
        "Method DELETE is not allowed on /auth/login",
    );
}

#[tokio::test]
async fn body_over_64_kib_is_413() {
    let app = TestApp::spawn().await;
    let big = json!({ "email": "a@example.com", "password": "x".repeat(70 * 1024) });
    let (status, body) = parts(app.post("/auth/login", None, &big).await).await;
    assert_error(status, &body, 413, "Request body is too large");
}

#[tokio::test]
async fn nul_characters_are_400() {
    let app = TestApp::spawn().await;
    let body = json!({
        "firstname": "A\u{0}da", "lastname": "L", "email": "nul@example.com", "password": "Str0ng!Passw0rd",
    });
    let (status, body) = parts(app.post("/auth/register", None, &body).await).await;
    assert_error(
        status,
        &body,
        400,
        "Text fields must not contain NUL characters",
    );
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(count, 0);
}

#[tokio::test]
async fn every_response_carries_a_request_id_and_security_headers() {
    let app = TestApp::spawn().await;
    for path in ["/health", "/nowhere"] {
        let response = app.get(path, None).await;
        let headers = response.headers();
        assert!(
            headers.get("x-request-id").is_some_and(|v| !v.is_empty()),
            "{path}"
        );
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert_eq!(headers["x-frame-options"], "DENY");
        assert_eq!(headers["referrer-policy"], "no-referrer");
    }
    let response = app
        .request(reqwest::Method::GET, "/health", None)
        .header("x-request-id", "my-trace-id")
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.headers()["x-request-id"],
        "my-trace-id",
        "a client's id is kept"
    );
}

#[tokio::test]
async fn cors_allows_browsers_any_origin_by_default_or_only_the_configured_ones() {
    let preflight = |app: &TestApp, origin: &str| {
        app.request(reqwest::Method::OPTIONS, "/bookings", None)
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "POST")
            .header(
                "Access-Control-Request-Headers",
                "authorization,content-type",
            )
            .send()
    };
    let open = TestApp::spawn().await;
    let response = preflight(&open, "https://example.org").await.unwrap();
    assert_eq!(response.headers()["access-control-allow-origin"], "*");

    let closed = TestApp::spawn_with(&[("CORS_ORIGINS", "https://app.example.com")]).await;
    let response = preflight(&closed, "https://app.example.com").await.unwrap();
    assert_eq!(
        response.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    let response = preflight(&closed, "https://evil.example").await.unwrap();
    assert!(response
        .headers()
        .get("access-control-allow-origin")
        .is_none());
}
