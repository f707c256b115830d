//! Notifications: webhooks received by a real HTTP server started here (signatures checked with
//! the secret, retries, FAILED, two instances, a server killed with SIGKILL), and emails received
//! by a real SMTP server (`aiosmtpd`, started here) that is down at first.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::{json, Value};

use crate::bookings::{book, booking, published_event};
use crate::helpers::{
    assert_error, assert_validation, free_port, parts, test_cluster_dir, ServerProcess, TestApp,
    WITHOUT_JOBS,
};

const ALLOW_PRIVATE: (&str, &str) = ("WEBHOOK_ALLOW_PRIVATE", "true");
const NOT_PUBLIC: &str = "Webhook URL must be a public http(s) address";
const ALL_TYPES: [&str; 4] = [
    "booking.confirmed",
    "booking.held",
    "booking.cancelled",
    "booking.expired",
];

/// One request the receiver got.
#[derive(Clone, Debug)]
struct Received {
    id: String,
    timestamp: String,
    signature: String,
    content_type: String,
    body: String,
}

#[derive(Clone, Default)]
struct ReceiverState {
    received: Arc<Mutex<Vec<Received>>>,
    /// Statuses to answer, in order; 200 once they are used up.
    script: Arc<Mutex<Vec<u16>>>,
}

/// A webhook receiver on 127.0.0.1: records every request and answers as scripted.
struct Receiver {
    url: String,
    state: ReceiverState,
}

impl Receiver {
    async fn start(script: &[u16]) -> Self {
        let state = ReceiverState::default();
        *state.script.lock().unwrap() = script.iter().rev().copied().collect();
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(receive))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { url, state }
    }

    fn received(&self) -> Vec<Received> {
        self.state.received.lock().unwrap().clone()
    }

    /// Waits until `n` requests arrived (and a little longer, to catch any extra one).
    async fn wait_for(&self, n: usize, within: Duration) -> Vec<Received> {
        let deadline = Instant::now() + within;
        while self.received().len() < n {
            assert!(
                Instant::now() < deadline,
                "{} of {n} deliveries arrived",
                self.received().len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(Duration::from_millis(600)).await;
        self.received()
    }
}

async fn receive(
    State(state): State<ReceiverState>,
    headers: HeaderMap,
    body: String,
) -> axum::response::Response {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    state.received.lock().unwrap().push(Received {
        id: header("webhook-id"),
        timestamp: header("webhook-timestamp"),
        signature: header("webhook-signature"),
        content_type: header("content-type"),
        body,
    });
    let status = state.script.lock().unwrap().pop().unwrap_or(200);
    let status = StatusCode::from_u16(status).unwrap();
    if status.is_redirection() {
        return (status, [("location", "/elsewhere")]).into_response();
    }
    status.into_response()
}

/// Checks a delivery's signature the way a receiver would, with the secret alone.
fn assert_signed(received: &Received, secret: &str) {
    let key = STANDARD
        .decode(secret.strip_prefix("whsec_").expect("whsec_ prefix"))
        .expect("base64 secret");
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &key);
    let signed = format!("{}.{}.{}", received.id, received.timestamp, received.body);
    let signature = received
        .signature
        .strip_prefix("v1,")
        .expect("v1 signature");
    let tag = STANDARD.decode(signature).expect("base64 signature");
    ring::hmac::verify(&key, signed.as_bytes(), &tag).expect("the signature verifies");
    let now = chrono::Utc::now().timestamp();
    let sent: i64 = received.timestamp.parse().expect("unix seconds");
    assert!(
        (now - sent).abs() < 60,
        "timestamp {sent} is not now ({now})"
    );
}

async fn register_webhook(app: &TestApp, token: &str, body: &Value) -> Value {
    let (status, created) = parts(app.post("/webhooks", Some(token), body).await).await;
    assert_eq!(status, 201, "{created}");
    created
}

async fn deliveries(app: &TestApp, token: &str, webhook_id: i64) -> Vec<Value> {
    let (status, body) = parts(
        app.get(
            &format!("/webhooks/{webhook_id}/deliveries?limit=100"),
            Some(token),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["data"].as_array().unwrap().clone()
}

/// Waits until every delivery of the webhook has left PENDING; returns them.
async fn settled(app: &TestApp, token: &str, webhook_id: i64, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let list = deliveries(app, token, webhook_id).await;
        if list.len() == n && list.iter().all(|d| d["status"] != "PENDING") {
            return list;
        }
        assert!(
            Instant::now() < deadline,
            "deliveries never settled: {list:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn webhooks_are_registered_listed_and_deleted_with_every_rule() {
    let app = TestApp::spawn().await;
    let (organizer, _) = app.organizer("org@example.com").await;
    let (other, _) = app.organizer("other@example.com").await;
    let (user, _) = app.user("user@example.com").await;

    let cases = [
        (json!({}), vec!["url should not be empty"]),
        (json!({ "url": "ftp://example.com/x" }), vec!["url must be a URL address"]),
        (
            json!({ "url": format!("https://example.com/{}", "a".repeat(2000)) }),
            vec!["url must be shorter than or equal to 2000 characters"],
        ),
        (
            json!({ "url": "https://example.com/x", "events": [] }),
            vec!["events should not be empty"],
        ),
        (
            json!({ "url": "https://example.com/x", "events": ["booking.paid"] }),
            vec!["each value in events must be one of the following values: booking.confirmed, booking.held, booking.cancelled, booking.expired"],
        ),
    ];
    for (body, expected) in cases {
        let (status, answer) = parts(app.post("/webhooks", Some(&organizer), &body).await).await;
        assert_validation(status, &answer, &expected);
    }
    for url in [
        "http://127.0.0.1:9/hook",
        "http://localhost/hook",
        "http://10.1.2.3/hook",
        "http://169.254.169.254/latest",
        "http://[::1]/hook",
    ] {
        let (status, answer) = parts(
            app.post("/webhooks", Some(&organizer), &json!({ "url": url }))
                .await,
        )
        .await;
        assert_error(status, &answer, 400, NOT_PUBLIC);
    }
    let (status, answer) = parts(
        app.post(
            "/webhooks",
            Some(&user),
            &json!({ "url": "https://example.com/x" }),
        )
        .await,
    )
    .await;
    assert_eq!(status, 403, "{answer}");
    let (status, _) = parts(app.get("/webhooks", None).await).await;
    assert_eq!(status, 401);

    // 93.184.215.14 is a public address: accepted without resolving anything.
    let created = register_webhook(
        &app,
        &organizer,
        &json!({ "url": "https://93.184.215.14/hooks", "events": ["booking.cancelled", "booking.confirmed", "booking.cancelled"] }),
    )
    .await;
    let secret = created["secret"].as_str().unwrap();
    let key = STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap())
        .unwrap();
    assert!(key.len() >= 24, "a {}-byte secret", key.len());
    assert_eq!(created["url"], "https://93.184.215.14/hooks");
    assert_eq!(
        created["events"],
        json!(["booking.confirmed", "booking.cancelled"])
    );
    assert!(created["createdAt"].as_str().unwrap().ends_with('Z'));
    let id = created["id"].as_i64().unwrap();
    let all = register_webhook(
        &app,
        &organizer,
        &json!({ "url": "https://93.184.215.14/all" }),
    )
    .await;
    assert_eq!(all["events"], json!(ALL_TYPES));
    assert_ne!(all["secret"], created["secret"]);

    let (status, list) = parts(app.get("/webhooks", Some(&organizer)).await).await;
    assert_eq!(status, 200);
    assert_eq!(list["meta"]["total"], 2);
    assert!(list["data"]
        .as_array()
        .unwrap()
        .iter()
        .all(|w| w.get("secret").is_none()));
    let (_, others) = parts(app.get("/webhooks", Some(&other)).await).await;
    assert_eq!(others["meta"]["total"], 0);

    // Another organizer's webhook does not exist for them.
    let (status, answer) = parts(app.delete(&format!("/webhooks/{id}"), Some(&other)).await).await;
    assert_error(status, &answer, 404, "Webhook not found");
    let (status, answer) = parts(
        app.get(&format!("/webhooks/{id}/deliveries"), Some(&other))
            .await,
    )
    .await;
    assert_error(status, &answer, 404, "Webhook not found");
    let (status, answer) = parts(
        app.delete(&format!("/webhooks/{id}"), Some(&organizer))
            .await,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        answer,
        json!({ "message": "Webhook deleted successfully", "webhookId": id })
    );
    let (status, answer) = parts(
        app.delete(&format!("/webhooks/{id}"), Some(&organizer))
            .await,
    )
    .await;
    assert_error(status, &answer, 404, "Webhook not found");
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM webhooks")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(left, 1);
}

#[tokio::test]
async fn every_booking_change_reaches_the_webhook_signed() {
    let app = TestApp::spawn_with(&[ALLOW_PRIVATE, ("HOLD_SECONDS", "1")]).await;
    let receiver = Receiver::start(&[]).await;
    let only_cancels = Receiver::start(&[]).await;
    let (organizer, event_id) = published_event(&app, 20).await;
    let (stranger, _) = app.organizer("stranger@example.com").await;
    let (user, user_id) = app.user("buyer@example.com").await;
    let webhook = register_webhook(&app, &organizer, &json!({ "url": receiver.url })).await;
    register_webhook(
        &app,
        &organizer,
        &json!({ "url": only_cancels.url, "events": ["booking.cancelled"] }),
    )
    .await;
    // Another organizer's webhook hears nothing of this event.
    let elsewhere = Receiver::start(&[]).await;
    register_webhook(&app, &stranger, &json!({ "url": elsewhere.url })).await;
    let secret = webhook["secret"].as_str().unwrap();

    let confirmed = book(&app, &user, event_id, 2).await;
    let hold = json!({ "eventId": event_id, "seatCount": 3, "hold": true });
    let (_, held) = parts(app.post("/bookings", Some(&user), &hold).await).await;
    let held = held["data"]["bookingReference"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, _) = parts(
        app.post(
            &format!("/bookings/{held}/confirm"),
            Some(&user),
            &json!({}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = parts(
        app.delete(&format!("/bookings/{confirmed}"), Some(&user))
            .await,
    )
    .await;
    assert_eq!(status, 200);
    let (_, expiring) = parts(app.post("/bookings", Some(&user), &hold).await).await;
    let expiring = expiring["data"]["bookingReference"]
        .as_str()
        .unwrap()
        .to_string();

    // Five changes at once, and the expiry a second or two later.
    let received = receiver.wait_for(6, Duration::from_secs(15)).await;
    assert_eq!(received.len(), 6, "{received:?}");
    let mut seen = Vec::new();
    for delivery in &received {
        assert_signed(delivery, secret);
        assert!(delivery.content_type.starts_with("application/json"));
        let body: Value = serde_json::from_str(&delivery.body).unwrap();
        let booking = &body["data"]["booking"];
        assert_eq!(booking["userId"], user_id);
        assert_eq!(booking["eventId"], event_id);
        let event = &body["data"]["event"];
        assert_eq!(
            event,
            &json!({ "id": event_id, "title": "Concert", "eventDate": event["eventDate"] })
        );
        assert!(event["eventDate"].as_str().unwrap().ends_with('Z'));
        assert!(body["timestamp"].as_str().unwrap().ends_with('Z'));
        seen.push((
            body["type"].as_str().unwrap().to_string(),
            booking["bookingReference"].as_str().unwrap().to_string(),
            booking["status"].as_str().unwrap().to_string(),
        ));
    }
    seen.sort();
    let mut expected: Vec<(String, String, String)> = [
        ("booking.cancelled", &confirmed, "CANCELLED"),
        ("booking.confirmed", &confirmed, "CONFIRMED"),
        ("booking.confirmed", &held, "CONFIRMED"),
        ("booking.expired", &expiring, "EXPIRED"),
        ("booking.held", &held, "PENDING"),
        ("booking.held", &expiring, "PENDING"),
    ]
    .into_iter()
    .map(|(t, r, s)| (t.to_string(), r.to_string(), s.to_string()))
    .collect();
    expected.sort();
    assert_eq!(seen, expected);

    // The body's booking is the booking as the API shows it, field for field.
    let last = book(&app, &user, event_id, 1).await;
    let received = receiver.wait_for(7, Duration::from_secs(10)).await;
    let body: Value = serde_json::from_str(&received[6].body).unwrap();
    let (status, shown) = parts(app.get(&format!("/bookings/{last}"), Some(&user)).await).await;
    assert_eq!(status, 200);
    let booking = body["data"]["booking"].as_object().unwrap();
    assert_eq!(booking.len(), 11, "{booking:?}");
    for (key, value) in booking {
        assert_eq!(&shown[key], value, "{key}");
    }

    let cancels = only_cancels.wait_for(1, Duration::from_secs(5)).await;
    assert_eq!(cancels.len(), 1);
    assert!(cancels[0].body.contains("\"type\":\"booking.cancelled\""));
    assert!(elsewhere.received().is_empty());

    let ids: HashSet<String> = receiver.received().iter().map(|r| r.id.clone()).collect();
    let log = settled(&app, &organizer, webhook["id"].as_i64().unwrap(), 7).await;
    for entry in &log {
        assert_eq!(entry["status"], "DELIVERED", "{entry}");
        assert_eq!(entry["attempts"], 1);
        assert_eq!(entry["lastStatusCode"], 200);
        assert_eq!(entry["lastError"], Value::Null);
        assert_eq!(entry["nextAttemptAt"], Value::Null);
        assert!(entry["deliveredAt"].is_string());
        assert!(ids.contains(entry["id"].as_str().unwrap()), "{entry}");
    }
    // Newest first: the last booking, after the expiry.
    assert_eq!(log[0]["type"], "booking.confirmed");
    assert_eq!(log[1]["type"], "booking.expired");
}

/// New bookings, confirms and cancels sent at once share their lane's statements, so one
/// notification batch may hold several kinds: each change still reaches the webhook once, as
/// its own kind.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn simultaneous_bookings_confirms_and_cancels_each_reach_the_webhook_once() {
    let app = TestApp::spawn_with(&[ALLOW_PRIVATE]).await;
    let receiver = Receiver::start(&[]).await;
    let (organizer, event_id) = published_event(&app, 100).await;
    let (user, _) = app.user("buyer@example.com").await;
    register_webhook(&app, &organizer, &json!({ "url": receiver.url })).await;
    let hold = json!({ "eventId": event_id, "seatCount": 1, "hold": true });
    let mut expected = Vec::new();
    let (mut holds, mut booked) = (Vec::new(), Vec::new());
    for _ in 0..10 {
        let (_, held) = parts(app.post("/bookings", Some(&user), &hold).await).await;
        let held = held["data"]["bookingReference"]
            .as_str()
            .unwrap()
            .to_string();
        expected.push(("booking.held".to_string(), held.clone()));
        holds.push(held);
        let confirmed = book(&app, &user, event_id, 1).await;
        expected.push(("booking.confirmed".to_string(), confirmed.clone()));
        booked.push(confirmed);
    }
    let mut requests = Vec::new();
    for n in 0..10 {
        requests.push(
            app.request(reqwest::Method::POST, "/bookings", Some(&user))
                .json(&booking(event_id, 1)),
        );
        requests.push(app.request(
            reqwest::Method::POST,
            &format!("/bookings/{}/confirm", holds[n]),
            Some(&user),
        ));
        requests.push(app.request(
            reqwest::Method::DELETE,
            &format!("/bookings/{}", booked[n]),
            Some(&user),
        ));
    }
    let handles: Vec<_> = requests
        .into_iter()
        .map(|request| tokio::spawn(async move { parts(request.send().await.unwrap()).await }))
        .collect();
    for (n, handle) in handles.into_iter().enumerate() {
        let (status, body) = handle.await.unwrap();
        let reference = body["data"]["bookingReference"]
            .as_str()
            .unwrap()
            .to_string();
        match n % 3 {
            0 => {
                assert_eq!(status, 201, "{body}");
                expected.push(("booking.confirmed".to_string(), reference));
            }
            1 => {
                assert_eq!(status, 200, "{body}");
                expected.push(("booking.confirmed".to_string(), reference));
            }
            _ => {
                assert_eq!(status, 200, "{body}");
                expected.push(("booking.cancelled".to_string(), reference));
            }
        }
    }
    let received = receiver.wait_for(50, Duration::from_secs(15)).await;
    let mut seen: Vec<(String, String)> = received
        .iter()
        .map(|delivery| {
            let body: Value = serde_json::from_str(&delivery.body).unwrap();
            (
                body["type"].as_str().unwrap().to_string(),
                body["data"]["booking"]["bookingReference"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            )
        })
        .collect();
    seen.sort();
    expected.sort();
    assert_eq!(seen, expected);
    // Nothing more arrives later.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.received().len(), 50);
}

#[tokio::test]
async fn failed_attempts_are_retried_with_the_same_id_then_failed() {
    let app = TestApp::spawn_with(&[ALLOW_PRIVATE, ("NOTIFY_RETRY_SCHEDULE", "1,1")]).await;
    // A redirect is not followed: it is a failed attempt like the 500s.
    let failing = Receiver::start(&[500, 302, 503]).await;
    let recovering = Receiver::start(&[500]).await;
    let (organizer, event_id) = published_event(&app, 10).await;
    let (user, _) = app.user("buyer@example.com").await;
    let hook = register_webhook(&app, &organizer, &json!({ "url": failing.url })).await;
    let recovers = register_webhook(&app, &organizer, &json!({ "url": recovering.url })).await;
    book(&app, &user, event_id, 1).await;

    let tries = failing.wait_for(3, Duration::from_secs(15)).await;
    assert_eq!(tries.len(), 3, "one attempt and two retries");
    assert!(tries
        .iter()
        .all(|t| t.id == tries[0].id && t.body == tries[0].body));
    for attempt in &tries {
        assert_signed(attempt, hook["secret"].as_str().unwrap());
    }
    let log = settled(&app, &organizer, hook["id"].as_i64().unwrap(), 1).await;
    assert_eq!(log[0]["status"], "FAILED");
    assert_eq!(log[0]["attempts"], 3);
    assert_eq!(log[0]["lastStatusCode"], 503);
    assert!(log[0]["lastError"].as_str().unwrap().contains("503"));
    assert_eq!(log[0]["nextAttemptAt"], Value::Null);
    assert_eq!(log[0]["deliveredAt"], Value::Null);
    assert_eq!(log[0]["id"], tries[0].id.as_str());

    let tries = recovering.wait_for(2, Duration::from_secs(10)).await;
    assert_eq!(tries.len(), 2);
    assert_eq!(tries[0].id, tries[1].id);
    let log = settled(&app, &organizer, recovers["id"].as_i64().unwrap(), 1).await;
    assert_eq!(log[0]["status"], "DELIVERED");
    assert_eq!(log[0]["attempts"], 2);
    assert_eq!(log[0]["lastStatusCode"], 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_make_each_attempt_once() {
    let app = TestApp::spawn_with(&[ALLOW_PRIVATE]).await;
    let second = app.another_instance_with(&[ALLOW_PRIVATE]).await;
    let receiver = Receiver::start(&[]).await;
    let (organizer, event_id) = published_event(&app, 500).await;
    let webhook = register_webhook(&app, &organizer, &json!({ "url": receiver.url })).await;
    let mut users = Vec::new();
    for n in 0..10 {
        users.push(app.user(&format!("buyer{n}@example.com")).await.0);
    }
    let requests = (0..100).map(|n| {
        let instance = if n % 2 == 0 { &app } else { &second };
        let token = users[n % users.len()].clone();
        async move {
            parts(
                instance
                    .post("/bookings", Some(&token), &booking(event_id, 1))
                    .await,
            )
            .await
            .0
        }
    });
    let statuses = futures::future::join_all(requests).await;
    assert!(statuses.iter().all(|s| *s == 201), "{statuses:?}");

    let received = receiver.wait_for(100, Duration::from_secs(20)).await;
    let ids: HashSet<&str> = received.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(received.len(), 100, "each attempt made once");
    assert_eq!(ids.len(), 100);
    let log = settled(&app, &organizer, webhook["id"].as_i64().unwrap(), 100).await;
    assert!(log
        .iter()
        .all(|d| d["attempts"] == 1 && d["status"] == "DELIVERED"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_right_after_a_booking_delivers_after_restart() {
    // The test's own server delivers nothing: only the processes below do.
    let app = TestApp::spawn_with(&[WITHOUT_JOBS, ALLOW_PRIVATE]).await;
    let receiver = Receiver::start(&[]).await;
    let (organizer, event_id) = published_event(&app, 10).await;
    let (user, _) = app.user("buyer@example.com").await;
    let webhook = register_webhook(&app, &organizer, &json!({ "url": receiver.url })).await;

    let mut server = ServerProcess::start(&app.database_url, &[ALLOW_PRIVATE]).await;
    let answer = reqwest::Client::new()
        .post(format!("{}/bookings", server.base))
        .bearer_auth(&user)
        .json(&booking(event_id, 2))
        .send()
        .await
        .unwrap();
    server.kill();
    assert_eq!(answer.status(), 201);
    let reference = answer.json::<Value>().await.unwrap()["data"]["bookingReference"].clone();
    // Committed with the booking: as a batch not yet expanded, or (rarely, the server died a
    // few milliseconds later) already as its notification.
    let (batches, notifications, delivered): (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM notification_batches), \
                (SELECT count(*) FROM notifications), \
                (SELECT count(*) FROM notifications WHERE status = 'DELIVERED')",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(
        batches + notifications,
        1,
        "the notification was committed with the booking"
    );
    if delivered > 0 {
        eprintln!("the killed server delivered before it died");
    }

    let _restarted = ServerProcess::start(&app.database_url, &[ALLOW_PRIVATE]).await;
    let received = receiver.wait_for(1, Duration::from_secs(90)).await;
    assert_eq!(received.len(), 1, "delivered once");
    let body: Value = serde_json::from_str(&received[0].body).unwrap();
    assert_eq!(body["data"]["booking"]["bookingReference"], reference);
    assert_signed(&received[0], webhook["secret"].as_str().unwrap());
    let log = settled(&app, &organizer, webhook["id"].as_i64().unwrap(), 1).await;
    assert_eq!(log[0]["status"], "DELIVERED");
}

/// `aiosmtpd` (Debian's python3-aiosmtpd) storing what it receives in a Maildir.
struct SmtpSink {
    child: Child,
    maildir: PathBuf,
}

impl SmtpSink {
    async fn start(port: u16, maildir: &Path) -> Self {
        let child = Command::new("aiosmtpd")
            .args(["-n", "-l", &format!("127.0.0.1:{port}")])
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(maildir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("aiosmtpd (apt install python3-aiosmtpd) starts");
        let deadline = Instant::now() + Duration::from_secs(20);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(Instant::now() < deadline, "the SMTP server did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Self {
            child,
            maildir: maildir.to_path_buf(),
        }
    }

    fn messages(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(self.maildir.join("new")) else {
            return Vec::new();
        };
        entries
            .filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok())
            .collect()
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn header<'a>(message: &'a str, name: &str) -> Option<&'a str> {
    message
        .lines()
        .take_while(|line| !line.is_empty())
        .find_map(|line| line.strip_prefix(&format!("{name}: ")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_smtp_server_down_at_first_gets_the_email_later_with_the_same_message_id() {
    let port = free_port();
    let smtp_url = format!("smtp://127.0.0.1:{port}");
    let app = TestApp::spawn_with(&[
        ("SMTP_URL", smtp_url.as_str()),
        ("MAIL_FROM", "Event Booking <tickets@example.com>"),
        ("NOTIFY_RETRY_SCHEDULE", "1,1,1,1,1,1,1,1"),
    ])
    .await;
    let (_, event_id) = published_event(&app, 10).await;
    let (user, _) = app.user("buyer@example.com").await;
    let reference = book(&app, &user, event_id, 2).await;

    // The first attempt finds nobody listening.
    let deadline = Instant::now() + Duration::from_secs(10);
    let (id, error): (uuid::Uuid, Option<String>) = loop {
        let row: Option<(uuid::Uuid, i32, Option<String>)> = sqlx::query_as(
            "SELECT id, attempts, last_error FROM notifications WHERE channel = 'EMAIL'",
        )
        .fetch_optional(&app.db)
        .await
        .expect("reading the email notification");
        if let Some((id, _, error)) = row.filter(|r| r.1 >= 1) {
            break (id, error);
        }
        assert!(Instant::now() < deadline, "no attempt was made");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(error.is_some(), "the failed attempt says why");

    let maildir = test_cluster_dir().join(format!("mail-{}", uuid::Uuid::new_v4().simple()));
    let sink = SmtpSink::start(port, &maildir).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while sink.messages().is_empty() {
        assert!(Instant::now() < deadline, "the email never arrived");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let messages = sink.messages();
    assert_eq!(messages.len(), 1, "one email");
    let mail = &messages[0];
    assert_eq!(
        header(mail, "Message-ID"),
        Some(format!("<{id}@example.com>").as_str())
    );
    assert_eq!(
        header(mail, "From"),
        Some("\"Event Booking\" <tickets@example.com>")
    );
    assert_eq!(header(mail, "To"), Some("buyer@example.com"));
    assert_eq!(header(mail, "Subject"), Some("Booking confirmed: Concert"));
    assert!(header(mail, "Content-Type")
        .unwrap()
        .starts_with("multipart/alternative"));
    assert!(mail.contains("Content-Type: text/plain"));
    assert!(mail.contains("Content-Type: text/html"));
    assert!(mail.contains(&reference), "the email names the booking");
    assert!(
        mail.contains("Total: 0.00 USD"),
        "amounts in the event's currency: {mail}"
    );
    let (status, attempts): (String, i32) =
        sqlx::query_as("SELECT status, attempts FROM notifications WHERE id = $1")
            .bind(id)
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(status, "DELIVERED");
    assert!(attempts >= 2, "delivered on a retry ({attempts})");
    drop(sink);
    let _ = std::fs::remove_dir_all(&maildir);

    // Without SMTP_URL, no email is written at all.
    let quiet = TestApp::spawn().await;
    let (_, event_id) = published_event(&quiet, 10).await;
    let (user, _) = quiet.user("buyer@example.com").await;
    book(&quiet, &user, event_id, 1).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let written: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM notifications) + (SELECT count(*) FROM notification_batches)",
    )
    .fetch_one(&quiet.db)
    .await
    .unwrap();
    assert_eq!(written, 0);
}
