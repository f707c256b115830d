use serde_json::{json, Value};

use crate::helpers::{parts, TestApp};

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
