//! The seed program, run as a user runs it, against this test's database.

use std::process::Command;

use crate::helpers::TestApp;

fn run_seed(app: &TestApp) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_seed"))
        .env("DATABASE_URL", &app.database_url)
        .output()
        .expect("running the seed program");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Every row the seed writes, as text.
async fn snapshot(app: &TestApp) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT format('user %s %s %s %s %s', id, email, role, password_hash, created_at) FROM users \
         UNION ALL SELECT format('event %s %s %s %s %s %s %s %s', id, title, status, total_seats, \
             available_seats, version, event_date, updated_at) FROM events \
         UNION ALL SELECT format('booking %s %s %s %s %s %s', id, user_id, event_id, seat_count, \
             status, booking_reference) FROM bookings \
         ORDER BY 1",
    )
    .fetch_all(&app.db)
    .await
    .unwrap()
}

#[tokio::test]
async fn seed_fills_demo_data_once_and_a_second_run_changes_nothing() {
    let app = TestApp::spawn().await;
    let first_output = run_seed(&app);
    assert!(
        first_output.contains("organizer@example.com"),
        "{first_output}"
    );
    let first = snapshot(&app).await;

    let second_output = run_seed(&app);
    assert!(second_output.contains("nothing to do"), "{second_output}");
    assert_eq!(
        snapshot(&app).await,
        first,
        "the second run changed nothing"
    );

    let statuses: Vec<String> =
        sqlx::query_scalar("SELECT DISTINCT status::text FROM events ORDER BY 1")
            .fetch_all(&app.db)
            .await
            .unwrap();
    assert_eq!(statuses, ["CANCELLED", "COMPLETED", "DRAFT", "PUBLISHED"]);
    let (users, bookings): (i64, i64) =
        sqlx::query_as("SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM bookings)")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!((users, bookings), (4, 4));
    let broken: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events e WHERE e.available_seats + COALESCE((SELECT sum(seat_count) \
         FROM bookings b WHERE b.event_id = e.id AND b.status = 'CONFIRMED'), 0) <> e.total_seats",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(broken, 0, "seeded bookings keep the invariant");

    // The demo organizer can log in with the printed password.
    let body = serde_json::json!({ "email": "organizer@example.com", "password": "Demo!Passw0rd" });
    let response = app.post("/auth/login", None, &body).await;
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn seed_fails_with_one_clear_line_when_the_database_is_unreachable() {
    let output = Command::new(env!("CARGO_BIN_EXE_seed"))
        .env(
            "DATABASE_URL",
            "postgres://nobody:secret@127.0.0.1:1/nowhere",
        )
        .output()
        .expect("running the seed program");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(
        lines[0].starts_with("error: cannot reach the database"),
        "{stderr}"
    );
    assert!(!stderr.contains("secret"), "no password in the message");
}
