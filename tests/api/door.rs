//! A crowd at the door: scans that arrive together share one statement (`tickets::door`), and
//! each must still get exactly its own answer — first check-ins, a scanner's retries, second
//! scans of a ticket, void tickets, codes of another event or of nobody, another organizer —
//! with one row per ticket let in.

use std::collections::HashMap;

use serde_json::{json, Value};

use crate::bookings::book;
use crate::events::{create_event, event_body};
use crate::helpers::{assert_error, parts, TestApp};
use crate::tickets::{scan, tickets};

const UNAVAILABLE: &str = "Service temporarily unavailable";
const OUTCOME_UNKNOWN: &str = "Check-in outcome unknown: scan again with the same nonce";

/// The codes of a fresh booking of `seats` on `event_id`.
async fn codes(app: &TestApp, user: &str, event_id: i64, seats: i64) -> (String, Vec<String>) {
    let reference = book(app, user, event_id, seats).await;
    let (status, list) = tickets(app, user, &reference).await;
    assert_eq!(status, 200, "{list}");
    let codes = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["code"].as_str().unwrap().to_string())
        .collect();
    (reference, codes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_crowd_of_scans_sharing_statements_gets_each_its_own_answer() {
    let app = TestApp::spawn().await;
    let (organizer, _) = app.organizer("door@example.com").await;
    let (other_organizer, _) = app.organizer("other-door@example.com").await;
    let (user, _) = app.user("guest@example.com").await;
    let event = |title: &str| event_body(title, 500, "PUBLISHED");
    let here = create_event(&app, &organizer, &event("Here")).await["id"]
        .as_i64()
        .unwrap();
    let there = create_event(&app, &organizer, &event("There")).await["id"]
        .as_i64()
        .unwrap();
    let (_, valid) = codes(&app, &user, here, 60).await;
    let (_, elsewhere) = codes(&app, &user, there, 5).await;
    let (void_reference, void) = codes(&app, &user, here, 3).await;
    let (status, _) = parts(
        app.delete(&format!("/bookings/{void_reference}"), Some(&user))
            .await,
    )
    .await;
    assert_eq!(status, 200);

    // (label, token, code, nonce): every scan at once.
    let mut scans: Vec<(String, String, String, Option<String>)> = Vec::new();
    for (i, code) in valid.iter().enumerate() {
        // Two copies of one scan (a retry), and for a third of the tickets a second scanner.
        for copy in 0..2 {
            scans.push((
                format!("valid-{i}-{copy}"),
                organizer.clone(),
                code.clone(),
                Some(format!("a-{i}")),
            ));
        }
        if i % 3 == 0 {
            scans.push((
                format!("second-{i}"),
                organizer.clone(),
                code.clone(),
                Some(format!("b-{i}")),
            ));
        }
    }
    for (i, code) in elsewhere.iter().enumerate() {
        scans.push((
            format!("elsewhere-{i}"),
            organizer.clone(),
            code.clone(),
            None,
        ));
    }
    for (i, code) in void.iter().enumerate() {
        scans.push((
            format!("void-{i}"),
            organizer.clone(),
            code.clone(),
            Some(format!("v-{i}")),
        ));
    }
    for (i, code) in valid.iter().take(5).enumerate() {
        let code = code.clone();
        scans.push((format!("stranger-{i}"), other_organizer.clone(), code, None));
        scans.push((
            format!("garbage-{i}"),
            organizer.clone(),
            format!("x.y.{i}"),
            Some(format!("g-{i}")),
        ));
    }
    let sent: Vec<_> = scans
        .iter()
        .map(|(label, token, code, nonce)| {
            let mut body = json!({ "code": code });
            if let Some(nonce) = nonce {
                body["nonce"] = json!(nonce);
            }
            let request = app
                .request(
                    reqwest::Method::POST,
                    &format!("/events/{here}/check-ins"),
                    Some(token),
                )
                .json(&body);
            let label = label.clone();
            tokio::spawn(async move { (label, parts(request.send().await.unwrap()).await) })
        })
        .collect();
    let mut answers: HashMap<String, (u16, Value)> = HashMap::new();
    for scan in sent {
        let (label, answer) = scan.await.unwrap();
        answers.insert(label, answer);
    }
    let message = |label: &str| {
        answers[label].1["message"]
            .as_str()
            .unwrap_or("")
            .to_string()
    };

    for i in 0..valid.len() {
        let (first, retry) = (
            &answers[&format!("valid-{i}-0")],
            &answers[&format!("valid-{i}-1")],
        );
        assert_eq!(first, retry, "a retry gets the first answer of its scan");
        let second = answers.get(&format!("second-{i}"));
        let admitted =
            usize::from(first.0 == 200) + usize::from(second.is_some_and(|s| s.0 == 200));
        assert_eq!(admitted, 1, "ticket {i}: {first:?} / {second:?}");
        let refused = if first.0 == 200 { second } else { Some(first) };
        if let Some((status, body)) = refused {
            assert_eq!(*status, 409, "{body}");
            assert!(body["message"]
                .as_str()
                .unwrap()
                .starts_with("Ticket already checked in at "));
        }
        if first.0 == 200 {
            assert_eq!(first.1["data"]["number"], json!(i + 1));
            assert_eq!(first.1["data"]["holder"]["firstname"], "Test");
        }
    }
    for i in 0..elsewhere.len() {
        assert_eq!(answers[&format!("elsewhere-{i}")].0, 400);
        assert_eq!(
            message(&format!("elsewhere-{i}")),
            "Ticket belongs to another event"
        );
    }
    for i in 0..void.len() {
        assert_eq!(answers[&format!("void-{i}")].0, 409);
        assert_eq!(
            message(&format!("void-{i}")),
            "Ticket is void: the booking was cancelled"
        );
    }
    for i in 0..5 {
        assert_eq!(answers[&format!("stranger-{i}")].0, 403);
        assert_eq!(
            message(&format!("stranger-{i}")),
            "You can only check in tickets of your own events"
        );
        assert_eq!(answers[&format!("garbage-{i}")].0, 400);
        assert_eq!(message(&format!("garbage-{i}")), "Invalid ticket code");
    }

    let (let_in, stored): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM check_ins WHERE event_id = $1), \
                (SELECT count(*) FROM check_in_scans WHERE event_id = $1)",
    )
    .bind(here as i32)
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(let_in, valid.len() as i64, "one row per ticket let in");
    // One stored scan per nonce: a-*, b-* (every third ticket), v-*, g-*.
    assert_eq!(stored, (60 + 20 + 3 + 5) as i64);
    let elsewhere_in: i64 =
        sqlx::query_scalar("SELECT count(*) FROM check_ins WHERE event_id = $1")
            .bind(there as i32)
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(elsewhere_in, 0);
}

/// The door's statement stalls (a 10 s trigger on `check_ins`): the scan it sent is answered
/// "outcome unknown" before the request timeout and committed later, its retry replays that
/// check-in; a scan queued behind it is answered 503, never sent, and gets in when retried.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_door_says_unknown_for_what_it_sent_and_503_for_what_it_never_sent() {
    let app = TestApp::spawn().await;
    let (organizer, _) = app.organizer("door@example.com").await;
    let (user, _) = app.user("guest@example.com").await;
    let event_id = create_event(&app, &organizer, &event_body("Stall", 10, "PUBLISHED")).await
        ["id"]
        .as_i64()
        .unwrap();
    let (_, codes) = codes(&app, &user, event_id, 2).await;
    for sql in [
        "CREATE FUNCTION slow_check_in() RETURNS trigger LANGUAGE plpgsql AS \
         $$ BEGIN PERFORM pg_sleep(10); RETURN NULL; END $$",
        "CREATE TRIGGER slow_check_in AFTER INSERT ON check_ins \
         FOR EACH STATEMENT EXECUTE FUNCTION slow_check_in()",
    ] {
        sqlx::query(sql).execute(&app.db).await.unwrap();
    }
    let timed_scan = |code: String, nonce: &'static str, after: u64| {
        let request = app
            .request(
                reqwest::Method::POST,
                &format!("/events/{event_id}/check-ins"),
                Some(&organizer),
            )
            .json(&json!({ "code": code, "nonce": nonce }));
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(after)).await;
            let sent = std::time::Instant::now();
            let answer = parts(request.send().await.unwrap()).await;
            (answer, sent.elapsed().as_secs_f64())
        })
    };
    let first = timed_scan(codes[0].clone(), "stall-1", 0);
    let second = timed_scan(codes[1].clone(), "stall-2", 300);
    let ((status, body), took) = first.await.unwrap();
    assert_error(status, &body, 503, OUTCOME_UNKNOWN);
    assert!(took < 10.0, "answered in {took:.1}s");
    let ((status, body), took) = second.await.unwrap();
    assert_error(status, &body, 503, UNAVAILABLE);
    assert!(took < 10.0, "answered in {took:.1}s");

    // Waits for the stalled statement to end (it holds a lock DROP TRIGGER needs).
    sqlx::query("DROP TRIGGER slow_check_in ON check_ins")
        .execute(&app.db)
        .await
        .unwrap();
    let checked_in: Vec<i32> =
        sqlx::query_scalar("SELECT number FROM check_ins WHERE event_id = $1 ORDER BY number")
            .bind(event_id as i32)
            .fetch_all(&app.db)
            .await
            .unwrap();
    assert_eq!(
        checked_in,
        [1],
        "the sent scan committed; the queued one was never sent"
    );
    for (code, nonce) in [(&codes[0], "stall-1"), (&codes[1], "stall-2")] {
        let (status, body) = scan(
            &app,
            &organizer,
            event_id,
            json!({ "code": code, "nonce": nonce }),
        )
        .await;
        assert_eq!(status, 200, "{nonce}: {body}");
        assert_eq!(body["message"], "Checked in");
    }
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM check_ins WHERE event_id = $1")
        .bind(event_id as i32)
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(rows, 2);
}
