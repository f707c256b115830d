//! A real outage: the test stops PostgreSQL under a running server, then starts it again.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use event_booking::db;
use event_booking::db::embedded::{ClusterOptions, EmbeddedPostgres};
use reqwest::{Method, RequestBuilder};
use serde_json::{json, Value};

use crate::bookings::booking;
use crate::events::{create_event, event_body};
use crate::helpers::{assert_error, parts, test_cluster_dir, ServerProcess, TestApp, PASSWORD};

/// "Answered within a few seconds (never a hang)" (API.md, Retries, limits and outages). A
/// database that is down refuses connections at once; `/health` waits out its 2 s ping.
const FAST_503: Duration = Duration::from_secs(4);
/// A database that stops answering (SIGSTOP) cannot refuse anything: the server has to give
/// up on its own (today the booking lane's 8 s deadline, under the 10 s request timeout).
const STALLED_503: Duration = Duration::from_secs(12);

/// Sends the request and reads the whole answer, timed from before it is sent.
async fn timed(request: RequestBuilder) -> (u16, Value, Duration) {
    let started = Instant::now();
    let (status, body) = parts(request.send().await.expect("request")).await;
    (status, body, started.elapsed())
}

/// Starts (or restarts, on `port`) a throw-away cluster of the test's own in `dir`.
async fn start_cluster(dir: &Path, port: Option<u16>) -> EmbeddedPostgres {
    let options = ClusterOptions {
        durable: false,
        max_connections: 50,
        port,
    };
    EmbeddedPostgres::start_with(dir, options)
        .await
        .expect("starting the test's own PostgreSQL")
}

/// A server on a cluster of the test's own, which the test may stop, freeze and restart.
pub async fn app_on_own_cluster() -> (PathBuf, EmbeddedPostgres, TestApp) {
    let dir = test_cluster_dir().join(format!("own-{}", uuid::Uuid::new_v4().simple()));
    let cluster = start_cluster(&dir, None).await;
    cluster.create_database("app").await.expect("database");
    let db_options = cluster.connect_options("app");
    let pool = db::pool(db_options.clone(), 5, Duration::from_secs(2));
    db::migrate(&pool).await.expect("migrate");
    let app = TestApp::with_pool(pool, db_options, cluster.url("app")).await;
    (dir, cluster, app)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_fail_fast_with_503_while_the_database_is_down_and_recover_after() {
    let (dir, cluster, app) = app_on_own_cluster().await;
    let port = cluster.port();
    let (organizer, _) = app.organizer("org@example.com").await;
    let (user, _) = app.user("user@example.com").await;
    let event = create_event(&app, &organizer, &event_body("Show", 10, "PUBLISHED")).await;
    let event_id = event["id"].as_i64().unwrap();

    cluster.stop().await;
    let (status, body, elapsed) = timed(app.request(Method::GET, "/health", None)).await;
    assert_eq!(
        (status, body),
        (503, json!({ "status": "error", "database": "down" }))
    );
    assert!(elapsed < FAST_503, "health answered in {elapsed:?}");
    let login = json!({ "email": "user@example.com", "password": PASSWORD });
    let down = [
        app.request(Method::POST, "/auth/login", None).json(&login),
        app.request(Method::GET, "/events", None),
        app.request(Method::GET, "/auth/me", Some(&user)),
        app.request(Method::POST, "/bookings", Some(&user))
            .json(&booking(event_id, 1)),
    ];
    for request in down {
        let (status, body, elapsed) = timed(request).await;
        assert_error(status, &body, 503, "Service temporarily unavailable");
        assert!(elapsed < FAST_503, "answered in {elapsed:?}: {body}");
    }

    let cluster = start_cluster(&dir, Some(port)).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if app.get("/health", None).await.status() == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "the server did not recover");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for _ in 0..5 {
        let (status, body) = parts(
            app.post("/bookings", Some(&user), &booking(event_id, 1))
                .await,
        )
        .await;
        assert_eq!(status, 201, "{body}");
    }
    let (status, _) = parts(app.get("/events", None).await).await;
    assert_eq!(status, 200);
    cluster.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// Sends `signal` to the cluster's postmaster and all its backends.
pub fn signal_cluster(dir: &std::path::Path, signal: &str) {
    let pid_file = std::fs::read_to_string(dir.join("postmaster.pid")).expect("postmaster.pid");
    let postmaster = pid_file.lines().next().expect("pid").trim().to_string();
    let children = Command::new("pgrep")
        .args(["-P", &postmaster])
        .output()
        .expect("pgrep");
    let mut pids = vec![postmaster];
    pids.extend(
        String::from_utf8_lossy(&children.stdout)
            .split_whitespace()
            .map(String::from),
    );
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .args(&pids)
        .status()
        .expect("kill");
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_that_stops_answering_gives_503_not_a_hang() {
    let (dir, cluster, app) = app_on_own_cluster().await;
    let (user, _) = app.user("user@example.com").await;
    let (organizer, _) = app.organizer("org@example.com").await;
    let event = create_event(&app, &organizer, &event_body("Show", 10, "PUBLISHED")).await;
    let event_id = event["id"].as_i64().unwrap();

    signal_cluster(&dir, "STOP");
    let (status, body, elapsed) = timed(app.request(Method::GET, "/health", None)).await;
    assert_eq!(
        (status, body),
        (503, json!({ "status": "error", "database": "down" }))
    );
    assert!(elapsed < FAST_503, "health answered in {elapsed:?}");
    let booking_request = app
        .request(Method::POST, "/bookings", Some(&user))
        .json(&booking(event_id, 1));
    let (status, body, elapsed) = timed(booking_request).await;
    assert_error(status, &body, 503, "Service temporarily unavailable");
    assert!(elapsed < STALLED_503, "booking answered in {elapsed:?}");

    signal_cluster(&dir, "CONT");
    let deadline = Instant::now() + Duration::from_secs(20);
    while app.get("/health", None).await.status() != 200 {
        assert!(Instant::now() < deadline, "the server did not recover");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (status, body) = parts(
        app.post("/bookings", Some(&user), &booking(event_id, 1))
            .await,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    cluster.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_started_while_the_database_is_down_answers_503_until_it_is_back() {
    let dir = test_cluster_dir().join(format!("late-{}", uuid::Uuid::new_v4().simple()));
    let cluster = start_cluster(&dir, None).await;
    cluster.create_database("late").await.expect("database");
    let (url, db_port) = (cluster.url("late"), cluster.port());
    cluster.stop().await;

    let server = ServerProcess::start(&url, &[]).await;
    let base = server.base.clone();
    let client = reqwest::Client::new();
    let (status, body, elapsed) = timed(client.get(format!("{base}/health"))).await;
    assert_eq!(
        (status, body),
        (503, json!({ "status": "error", "database": "down" }))
    );
    assert!(elapsed < FAST_503, "health answered in {elapsed:?}");
    let (status, body, elapsed) = timed(client.get(format!("{base}/events"))).await;
    assert_error(status, &body, 503, "Service temporarily unavailable");
    assert!(elapsed < FAST_503, "GET /events answered in {elapsed:?}");

    let cluster = start_cluster(&dir, Some(db_port)).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while client
        .get(format!("{base}/health"))
        .send()
        .await
        .map(|r| r.status())
        .ok()
        != Some(reqwest::StatusCode::OK)
    {
        assert!(Instant::now() < deadline, "the server did not recover");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let register = json!({ "firstname": "Late", "lastname": "User", "email": "late@example.com", "password": PASSWORD });
    let response = client
        .post(format!("{base}/auth/register"))
        .json(&register)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201, "migrated and serving");
    drop(server);
    cluster.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}
