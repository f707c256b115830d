use serde_json::{json, Value};

use crate::helpers::{assert_error, parts, TestApp};

#[tokio::test]
async fn health_reports_the_database_up() {
    let app = TestApp::spawn().await;
    let (status, body) = parts(app.get("/health", None).await).await;
    assert_eq!(status, 200);
    assert_eq!(body, json!({ "status": "ok", "database": "up" }));
}

#[tokio::test]
async fn swagger_ui_is_served() {
    let app = TestApp::spawn().await;
    let response = app.get("/api-docs/", None).await;
    assert_eq!(response.status(), 200);
    let html = response.text().await.unwrap();
    assert!(html.contains("swagger-ui"), "{html}");
    let response = app.get("/api-docs", None).await;
    assert_eq!(response.status(), 200, "/api-docs redirects to the UI");
}

#[tokio::test]
async fn openapi_document_lists_routes_and_the_bearer_scheme() {
    let app = TestApp::spawn().await;
    let (status, doc) = parts(app.get("/api-docs/openapi.json", None).await).await;
    assert_eq!(status, 200);
    let paths = doc["paths"].as_object().expect("paths");
    for (path, method) in [
        ("/auth/register", "post"),
        ("/auth/login", "post"),
        ("/auth/me", "get"),
        ("/health", "get"),
    ] {
        let operation = &paths[path][method];
        assert!(operation.is_object(), "{method} {path} missing");
        assert!(
            operation["summary"].is_string(),
            "{method} {path} has a summary"
        );
    }
    let scheme = &doc["components"]["securitySchemes"]["bearer"];
    assert_eq!(scheme["type"], "http");
    assert_eq!(scheme["scheme"], "bearer");
    assert_eq!(
        paths["/auth/me"]["get"]["security"],
        json!([{ "bearer": [] }])
    );
    assert!(doc["components"]["schemas"]["ErrorBody"].is_object());
    let _: &Value = &doc;
}

/// Every route of the contract is in the document, with a summary, a description, its error
/// responses in the error schema, a request body where it takes one, and the bearer scheme
/// where a token is required.
#[tokio::test]
async fn openapi_documents_every_route_completely() {
    let app = TestApp::spawn().await;
    let (_, doc) = parts(app.get("/api-docs/openapi.json", None).await).await;
    // (method, path, takes a body, token: required / optional / none, statuses it must list)
    let routes: &[(&str, &str, bool, &str, &[&str])] = &[
        (
            "post",
            "/auth/register",
            true,
            "none",
            &["201", "400", "409", "413", "415", "429", "503"],
        ),
        (
            "post",
            "/auth/login",
            true,
            "none",
            &["200", "400", "401", "429", "503"],
        ),
        ("get", "/auth/me", false, "required", &["200", "401"]),
        ("get", "/events", false, "optional", &["200", "400", "401"]),
        (
            "post",
            "/events",
            true,
            "required",
            &["201", "400", "401", "403"],
        ),
        (
            "get",
            "/events/{id}",
            false,
            "optional",
            &["200", "400", "404"],
        ),
        ("get", "/metrics", false, "none", &["200"]),
        ("get", "/", false, "none", &["200", "503"]),
        ("get", "/events/live", false, "none", &["200", "503"]),
        (
            "get",
            "/events/{id}/live",
            false,
            "optional",
            &["200", "400", "401", "404", "503"],
        ),
        (
            "get",
            "/.well-known/jwks.json",
            false,
            "none",
            &["200", "503"],
        ),
        (
            "get",
            "/bookings/{bookingReference}/tickets",
            false,
            "required",
            &["200", "400", "401", "403", "404"],
        ),
        (
            "get",
            "/bookings/{bookingReference}/tickets/{number}/qr.svg",
            false,
            "required",
            &["200", "400", "401", "403", "404"],
        ),
        (
            "get",
            "/bookings/{bookingReference}/tickets.pdf",
            false,
            "required",
            &["200", "400", "401", "403", "404"],
        ),
        (
            "post",
            "/events/{id}/check-ins",
            true,
            "required",
            &["200", "400", "401", "403", "404", "409"],
        ),
        (
            "get",
            "/events/{id}/stats",
            false,
            "required",
            &["200", "400", "401", "403", "404"],
        ),
        (
            "get",
            "/events/{id}/attendees",
            false,
            "required",
            &["200", "400", "401", "403", "404"],
        ),
        (
            "get",
            "/events/{id}/revoked-tickets",
            false,
            "required",
            &["200", "400", "401", "403", "404"],
        ),
        (
            "post",
            "/bookings/{bookingReference}/confirm",
            false,
            "required",
            &["200", "400", "401", "403", "404", "409", "503"],
        ),
        (
            "post",
            "/events/{id}/ticket-types",
            true,
            "required",
            &["201", "400", "401", "403", "404", "409"],
        ),
        (
            "put",
            "/events/{id}/ticket-types/{typeId}",
            true,
            "required",
            &["200", "400", "401", "403", "404", "409"],
        ),
        (
            "delete",
            "/events/{id}/ticket-types/{typeId}",
            false,
            "required",
            &["200", "400", "401", "403", "404", "409"],
        ),
        (
            "put",
            "/events/{id}",
            true,
            "required",
            &["200", "400", "401", "403", "404", "409"],
        ),
        (
            "delete",
            "/events/{id}",
            false,
            "required",
            &["200", "400", "401", "403", "404"],
        ),
        (
            "get",
            "/events/organizer/my-events",
            false,
            "required",
            &["200", "400", "401", "403"],
        ),
        (
            "post",
            "/bookings",
            true,
            "required",
            &["201", "400", "401", "404", "409", "422", "429"],
        ),
        (
            "get",
            "/bookings",
            false,
            "required",
            &["200", "400", "401"],
        ),
        (
            "get",
            "/bookings/{bookingReference}",
            false,
            "required",
            &["200", "400", "401", "403", "404"],
        ),
        (
            "delete",
            "/bookings/{bookingReference}",
            false,
            "required",
            &["200", "400", "401", "403", "404", "409"],
        ),
        ("get", "/health", false, "none", &["200", "503"]),
        (
            "post",
            "/webhooks",
            true,
            "required",
            &["201", "400", "401", "403"],
        ),
        (
            "get",
            "/webhooks",
            false,
            "required",
            &["200", "400", "401", "403"],
        ),
        (
            "delete",
            "/webhooks/{id}",
            false,
            "required",
            &["200", "400", "401", "403", "404"],
        ),
        (
            "get",
            "/webhooks/{id}/deliveries",
            false,
            "required",
            &["200", "400", "401", "403", "404"],
        ),
    ];
    for (method, path, has_body, token, statuses) in routes {
        let op = &doc["paths"][path][method];
        let name = format!("{method} {path}");
        assert!(
            op["summary"].as_str().is_some_and(|s| !s.is_empty()),
            "{name}: summary"
        );
        assert!(
            op["description"].as_str().is_some_and(|s| !s.is_empty()),
            "{name}: description"
        );
        assert!(
            op["tags"].as_array().is_some_and(|t| !t.is_empty()),
            "{name}: tag"
        );
        assert_eq!(
            op["requestBody"].is_object(),
            *has_body,
            "{name}: request body"
        );
        if *has_body {
            let schema = &op["requestBody"]["content"]["application/json"]["schema"];
            assert!(schema.is_object(), "{name}: request schema");
        }
        let security = op["security"].to_string();
        match *token {
            "required" => assert_eq!(op["security"], json!([{ "bearer": [] }]), "{name}"),
            "optional" => assert!(
                security.contains("bearer") && security.contains("{}"),
                "{name}: {security}"
            ),
            _ => assert!(op["security"].is_null(), "{name}: no token needed"),
        }
        for status in *statuses {
            let response = &op["responses"][status];
            assert!(response.is_object(), "{name}: documents {status}");
            let schema = response["content"]["application/json"]["schema"].to_string();
            if status.starts_with('4') || (*status == "503" && *path != "/health") {
                assert!(
                    schema.contains("ErrorBody"),
                    "{name} {status}: error schema, got {schema}"
                );
            }
        }
    }
    let documented: usize = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|item| item.as_object().unwrap().len())
        .sum();
    assert_eq!(
        documented,
        routes.len(),
        "no undocumented or unexpected operations"
    );
}

/// The value of one sample line (`name{labels} value`) of a Prometheus text, 0 when absent.
fn sample(text: &str, name_and_labels: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(name_and_labels)?.trim().parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn metrics_count_requests_by_route_template_and_bookings_by_outcome() {
    let app = TestApp::spawn().await;
    let (_, event_id) = crate::bookings::published_event(&app, 1).await;
    let (user, _) = app.user("metrics@example.com").await;
    let read = || async {
        let response = app.get("/metrics", None).await;
        assert_eq!(response.status(), 200);
        assert!(response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain"));
        response.text().await.unwrap()
    };
    let route = "http_requests_total{method=\"GET\",route=\"/events/{id}\",status=\"200\"}";
    let confirmed = "bookings_total{outcome=\"confirmed\",reason=\"none\"}";
    let sold_out = "bookings_total{outcome=\"refused\",reason=\"not_enough_seats\"}";
    let before = read().await;
    for _ in 0..3 {
        assert_eq!(
            app.get(&format!("/events/{event_id}"), None).await.status(),
            200
        );
    }
    for _ in 0..2 {
        app.post(
            "/bookings",
            Some(&user),
            &crate::bookings::booking(event_id, 1),
        )
        .await;
    }
    let secret_path = format!("/no-such-route-{}", uuid::Uuid::new_v4().simple());
    assert_eq!(app.get(&secret_path, None).await.status(), 404);
    let after = read().await;
    // Other tests of this process count too: the figures only ever grow, by at least ours.
    assert!(
        sample(&after, route) >= sample(&before, route) + 3.0,
        "{after}"
    );
    assert!(
        sample(&after, confirmed) >= sample(&before, confirmed) + 1.0,
        "{after}"
    );
    assert!(
        sample(&after, sold_out) >= sample(&before, sold_out) + 1.0,
        "{after}"
    );
    assert!(
        after.contains("route=\"unmatched\",status=\"404\""),
        "{after}"
    );
    assert!(
        !after.contains("no-such-route"),
        "a path never becomes a label"
    );
    assert!(
        after.contains("http_request_duration_seconds_bucket"),
        "a histogram"
    );
    assert!(after.contains("booking_group_size_bucket"));
    assert!(after.contains("db_pool_connections{state=\"idle\"}"));
    assert!(!after.contains("metrics@example.com"), "no user data");
}

#[tokio::test]
async fn metrics_can_be_switched_off() {
    let app = TestApp::spawn_with(&[("METRICS_ENABLED", "false")]).await;
    let (status, body) = parts(app.get("/metrics", None).await).await;
    assert_error(
        status,
        &body,
        404,
        "Metrics are disabled (METRICS_ENABLED=false)",
    );
    // Everything else answers as before.
    let (status, body) = parts(app.get("/health", None).await).await;
    assert_eq!((status, body["status"].clone()), (200, json!("ok")));
}
