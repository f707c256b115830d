//! A real streaming replica (pg_basebackup + WAL streaming from the test's own primary) serving
//! the public reads of `DATABASE_READ_URL`, proven by pausing its replay: a change committed on
//! the primary is then visible to the organizer (primary) and not to the public (replica). When
//! the replica stops, the public reads come from the primary; when it is back, from it again.

use std::time::{Duration, Instant};

use event_booking::db::{self, embedded::ClusterOptions, EmbeddedPostgres};
use serde_json::{json, Value};
use sqlx::{Connection, PgConnection};

use crate::events::{create_event, event_body};
use crate::helpers::{parts, test_cluster_dir, TestApp};

fn throwaway(port: Option<u16>) -> ClusterOptions {
    ClusterOptions {
        durable: false,
        max_connections: 50,
        port,
    }
}

async fn title(app: &TestApp, id: i64, token: Option<&str>) -> String {
    let (status, body) = parts(app.get(&format!("/events/{id}"), token).await).await;
    assert_eq!(status, 200, "{body}");
    body["title"].as_str().unwrap().to_string()
}

async fn listed_title(app: &TestApp) -> String {
    let (status, body) = parts(app.get("/events", None).await).await;
    assert_eq!(status, 200, "{body}");
    body["data"][0]["title"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Waits until the public `GET /events/:id` shows `expected`.
async fn public_sees(app: &TestApp, id: i64, expected: &str, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let (status, body) = parts(app.get(&format!("/events/{id}"), None).await).await;
        if status == 200 && body["title"] == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "public reads never showed {expected:?}: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn replay(replica: &EmbeddedPostgres, pause: bool) {
    let mut conn = PgConnection::connect_with(&replica.connect_options("app"))
        .await
        .expect("replica connection");
    let call = if pause {
        "SELECT pg_wal_replay_pause()"
    } else {
        "SELECT pg_wal_replay_resume()"
    };
    sqlx::query(call).execute(&mut conn).await.expect(call);
    conn.close().await.ok();
}

/// Waits until the replica itself has replayed the change to `expected`.
async fn replica_shows(replica: &EmbeddedPostgres, id: i64, expected: &str) {
    let mut conn = PgConnection::connect_with(&replica.connect_options("app"))
        .await
        .expect("replica connection");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let title: String = sqlx::query_scalar("SELECT title FROM events WHERE id = $1")
            .bind(id as i32)
            .fetch_one(&mut conn)
            .await
            .expect("read on the replica");
        if title == expected {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the replica never replayed {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    conn.close().await.ok();
}

async fn rename(app: &TestApp, token: &str, id: i64, title: &str) {
    let (status, body) = parts(
        app.put(
            &format!("/events/{id}"),
            Some(token),
            &json!({ "title": title }),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

async fn health(app: &TestApp) -> (u16, Value) {
    parts(app.get("/health", None).await).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_reads_use_the_replica_and_the_primary_while_it_is_down() {
    let dir = test_cluster_dir().join(format!("replica-{}", uuid::Uuid::new_v4().simple()));
    let primary = EmbeddedPostgres::start_with(&dir.join("primary"), throwaway(None))
        .await
        .expect("primary");
    primary.create_database("app").await.expect("database");
    let pool = db::pool(primary.connect_options("app"), 10, Duration::from_secs(2));
    db::migrate(&pool).await.expect("migrate");
    let replica = EmbeddedPostgres::start_replica(&primary, &dir.join("replica"), throwaway(None))
        .await
        .expect("replica");
    let replica_port = replica.port();
    let read_url = replica.url("app");
    let app = TestApp::with_pool_and(
        pool,
        primary.connect_options("app"),
        primary.url("app"),
        &[("DATABASE_READ_URL", read_url.as_str())],
    )
    .await;
    assert_eq!(
        health(&app).await,
        (
            200,
            json!({ "status": "ok", "database": "up", "replica": "up" })
        )
    );

    let (organizer, _) = app.organizer("org@example.com").await;
    let (user, _) = app.user("user@example.com").await;
    let event = create_event(&app, &organizer, &event_body("Before", 10, "PUBLISHED")).await;
    let id = event["id"].as_i64().unwrap();
    public_sees(&app, id, "Before", Duration::from_secs(10)).await;

    // Replay paused: the primary moves on, the replica does not.
    replay(&replica, true).await;
    rename(&app, &organizer, id, "After").await;
    assert_eq!(
        title(&app, id, Some(&organizer)).await,
        "After",
        "the organizer reads the primary"
    );
    assert_eq!(
        title(&app, id, None).await,
        "Before",
        "the public reads the replica"
    );
    assert_eq!(title(&app, id, Some(&user)).await, "Before");
    assert_eq!(
        listed_title(&app).await,
        "Before",
        "GET /events from the replica"
    );
    replay(&replica, false).await;
    public_sees(&app, id, "After", Duration::from_secs(10)).await;

    // The replica stops: public reads fall back to the primary, fast.
    replica.stop().await;
    let started = Instant::now();
    assert_eq!(title(&app, id, None).await, "After");
    assert_eq!(listed_title(&app).await, "After");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "fallback took {:?}",
        started.elapsed()
    );
    assert_eq!(
        health(&app).await,
        (
            200,
            json!({ "status": "ok", "database": "up", "replica": "down" })
        )
    );
    rename(&app, &organizer, id, "During").await;
    assert_eq!(
        title(&app, id, None).await,
        "During",
        "read from the primary"
    );

    // Back again: it catches up, and public reads return to it (paused, it shows its own past).
    let replica = EmbeddedPostgres::start_replica(
        &primary,
        &dir.join("replica"),
        throwaway(Some(replica_port)),
    )
    .await
    .expect("replica restarted");
    replica_shows(&replica, id, "During").await;
    replay(&replica, true).await;
    rename(&app, &organizer, id, "Later").await;
    public_sees(&app, id, "During", Duration::from_secs(5)).await;
    assert_eq!(title(&app, id, Some(&organizer)).await, "Later");
    assert_eq!(health(&app).await.1["replica"], "up");
    replay(&replica, false).await;

    drop(app);
    replica.stop().await;
    primary.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}
