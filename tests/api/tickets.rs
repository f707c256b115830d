//! Tickets and check-in: signed codes verified with the JWKS alone, stable codes, every rule
//! and message of the door, and simultaneous scans of one ticket.

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{json, Value};

use crate::bookings::{book, booking, published_event};
use crate::events::{create_event, event_body};
use crate::helpers::{assert_error, assert_validation, parts, TestApp};

const INVALID: &str = "Invalid ticket code";

pub async fn tickets(app: &TestApp, token: &str, reference: &str) -> (u16, Value) {
    parts(
        app.get(&format!("/bookings/{reference}/tickets"), Some(token))
            .await,
    )
    .await
}

pub async fn scan(app: &TestApp, token: &str, event_id: i64, body: Value) -> (u16, Value) {
    parts(
        app.post(&format!("/events/{event_id}/check-ins"), Some(token), &body)
            .await,
    )
    .await
}

/// Sends every scan at once; their answers, in the order of `bodies`.
async fn scan_at_once(
    app: &TestApp,
    token: &str,
    event_id: i64,
    bodies: impl Iterator<Item = Value>,
) -> Vec<(u16, Value)> {
    let sent: Vec<_> = bodies
        .map(|body| {
            let request = app
                .request(
                    reqwest::Method::POST,
                    &format!("/events/{event_id}/check-ins"),
                    Some(token),
                )
                .json(&body);
            tokio::spawn(async move { parts(request.send().await.unwrap()).await })
        })
        .collect();
    let mut answers = Vec::new();
    for scan in sent {
        answers.push(scan.await.unwrap());
    }
    answers
}

/// Verifies a code with nothing but the published key set, as an offline scanner does.
async fn verify_offline(app: &TestApp, code: &str) -> Value {
    let (status, jwks) = parts(app.get("/.well-known/jwks.json", None).await).await;
    assert_eq!(status, 200, "{jwks}");
    let header = jsonwebtoken::decode_header(code).expect("a JWS header");
    assert_eq!(header.alg, Algorithm::EdDSA);
    let jwk = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"].as_str() == header.kid.as_deref())
        .expect("the code's kid is in the key set");
    assert_eq!(
        (
            jwk["kty"].as_str(),
            jwk["crv"].as_str(),
            jwk["alg"].as_str(),
            jwk["use"].as_str()
        ),
        (Some("OKP"), Some("Ed25519"), Some("EdDSA"), Some("sig"))
    );
    let key = DecodingKey::from_ed_components(jwk["x"].as_str().unwrap()).unwrap();
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.validate_exp = false;
    validation.required_spec_claims.clear();
    jsonwebtoken::decode::<Value>(code, &key, &validation)
        .expect("a valid signature")
        .claims
}

/// An organizer's published event with one user's confirmed booking of `seats`.
async fn booked(app: &TestApp, seats: i64) -> (String, i64, String, String) {
    let (organizer, event_id) = published_event(app, 50).await;
    let (user, _) = app.user("holder@example.com").await;
    let reference = book(app, &user, event_id, seats).await;
    (organizer, event_id, user, reference)
}

#[tokio::test]
async fn a_confirmed_booking_has_one_signed_ticket_per_seat() {
    let app = TestApp::spawn().await;
    let (organizer, event_id, user, reference) = booked(&app, 3).await;
    let (status, body) = tickets(&app, &user, &reference).await;
    assert_eq!(status, 200, "{body}");
    let list = body["data"].as_array().unwrap();
    assert_eq!(list.len(), 3);
    let type_id: i64 = sqlx::query_scalar::<_, i32>(
        "SELECT ticket_type_id FROM bookings WHERE booking_reference = $1::uuid",
    )
    .bind(&reference)
    .fetch_one(&app.db)
    .await
    .unwrap()
    .into();
    for (index, ticket) in list.iter().enumerate() {
        assert_eq!(ticket["number"], index + 1);
        assert_eq!(ticket["status"], "VALID");
        assert_eq!(ticket["checkedInAt"], Value::Null);
        let claims = verify_offline(&app, ticket["code"].as_str().unwrap()).await;
        assert_eq!(claims["ref"], reference.as_str());
        assert_eq!(claims["n"], index + 1);
        assert_eq!(claims["evt"], event_id);
        assert_eq!(claims["tt"], type_id);
        assert!(claims["iat"].as_i64().unwrap() > 1_700_000_000);
    }
    // The organizer sees the same tickets; codes never change, on any instance.
    let (_, again) = tickets(&app, &organizer, &reference).await;
    assert_eq!(again, body);
    let second = app.another_instance().await;
    let (_, elsewhere) = tickets(&second, &user, &reference).await;
    assert_eq!(elsewhere, body);

    let (stranger, _) = app.user("stranger@example.com").await;
    let (status, body) = tickets(&app, &stranger, &reference).await;
    assert_error(
        status,
        &body,
        403,
        "You do not have permission to view this booking",
    );
    let (status, body) = tickets(&app, &user, "9b2f4c3e-8f1a-4d2b-a6c7-1e5d3f9a0b4c").await;
    assert_error(status, &body, 404, "Booking not found");
    let (status, body) = tickets(&app, &user, "nope").await;
    assert_error(status, &body, 400, "Validation failed (uuid is expected)");
}

#[tokio::test]
async fn holds_have_no_tickets_until_confirmed() {
    let app = TestApp::spawn().await;
    let (_, event_id) = published_event(&app, 10).await;
    let (user, _) = app.user("user@example.com").await;
    let (_, held) = parts(
        app.post(
            "/bookings",
            Some(&user),
            &json!({ "eventId": event_id, "seatCount": 2, "hold": true }),
        )
        .await,
    )
    .await;
    let reference = held["data"]["bookingReference"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, body) = tickets(&app, &user, &reference).await;
    assert_error(
        status,
        &body,
        400,
        "Tickets are issued when the booking is confirmed",
    );
    let (status, _) = parts(
        app.post(
            &format!("/bookings/{reference}/confirm"),
            Some(&user),
            &json!({}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200);
    let (status, body) = tickets(&app, &user, &reference).await;
    assert_eq!(
        (status, body["data"].as_array().map(Vec::len)),
        (200, Some(2)),
        "{body}"
    );
}

#[tokio::test]
async fn the_door_lets_each_ticket_in_once_and_replays_a_scanners_retry() {
    let app = TestApp::spawn().await;
    let (organizer, event_id, user, reference) = booked(&app, 2).await;
    let (_, list) = tickets(&app, &user, &reference).await;
    let code = list["data"][0]["code"].as_str().unwrap().to_string();

    let (status, first) = scan(
        &app,
        &organizer,
        event_id,
        json!({ "code": code, "nonce": "scan-1" }),
    )
    .await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["success"], true);
    assert_eq!(first["message"], "Checked in");
    assert_eq!(first["data"]["bookingReference"], reference.as_str());
    assert_eq!(first["data"]["number"], 1);
    assert_eq!(
        first["data"]["holder"],
        json!({ "firstname": "Test", "lastname": "User" })
    );
    let at = first["data"]["checkedInAt"].as_str().unwrap().to_string();

    // The scanner's retry: the first answer again, nothing changes.
    let (status, replay) = scan(
        &app,
        &organizer,
        event_id,
        json!({ "code": code, "nonce": "scan-1" }),
    )
    .await;
    assert_eq!((status, &replay), (200, &first));
    // Any other scan of the same ticket is turned away, naming the first check-in.
    for body in [
        json!({ "code": code }),
        json!({ "code": code, "nonce": "scan-2" }),
    ] {
        let (status, again) = scan(&app, &organizer, event_id, body).await;
        assert_error(
            status,
            &again,
            409,
            &format!("Ticket already checked in at {at}"),
        );
    }
    let (_, list) = tickets(&app, &user, &reference).await;
    assert_eq!(list["data"][0]["status"], "CHECKED_IN");
    assert_eq!(list["data"][0]["checkedInAt"], at.as_str());
    assert_eq!(list["data"][1]["status"], "VALID");
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM check_ins")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(rows, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_simultaneous_scans_of_one_ticket_let_it_in_once() {
    let app = TestApp::spawn().await;
    let (organizer, event_id, user, reference) = booked(&app, 1).await;
    let (_, list) = tickets(&app, &user, &reference).await;
    let code = list["data"][0]["code"].as_str().unwrap().to_string();
    let bodies = (0..20).map(|n| json!({ "code": code, "nonce": format!("door-{n}") }));
    let scans = scan_at_once(&app, &organizer, event_id, bodies).await;
    let mut admitted = 0;
    for (status, body) in scans {
        if status == 200 {
            admitted += 1;
        } else {
            assert_eq!(status, 409, "{body}");
            assert!(
                body["message"]
                    .as_str()
                    .unwrap()
                    .starts_with("Ticket already checked in at "),
                "{body}"
            );
        }
    }
    assert_eq!(admitted, 1);
}

/// A scanner that retries before its first scan was answered: every copy gets the same answer,
/// whichever statement stored it; refusals are replayed too, and scans stored before outcomes
/// were (a rendered answer) still replay as they were.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_retries_of_one_scan_all_get_its_first_answer() {
    let app = TestApp::spawn().await;
    let (organizer, event_id, user, reference) = booked(&app, 2).await;
    let (_, list) = tickets(&app, &user, &reference).await;
    let code = list["data"][0]["code"].as_str().unwrap().to_string();
    let bodies = (0..20).map(|_| json!({ "code": code, "nonce": "gate-1" }));
    let answers = scan_at_once(&app, &organizer, event_id, bodies).await;
    let (status, first) = answers[0].clone();
    assert_eq!(status, 200, "{first}");
    assert!(answers.iter().all(|a| a == &answers[0]), "{answers:?}");

    // A refusal is stored and replayed as it was, also once its cause is gone from sight.
    let (status, refused) = scan(
        &app,
        &organizer,
        event_id,
        json!({ "code": code, "nonce": "gate-2" }),
    )
    .await;
    assert_eq!(status, 409, "{refused}");
    let (again, replayed) = scan(
        &app,
        &organizer,
        event_id,
        json!({ "code": code, "nonce": "gate-2" }),
    )
    .await;
    assert_eq!((again, &replayed), (409, &refused));
    let stored: Vec<(String, Option<String>)> = sqlx::query_as(
        "SELECT nonce, outcome FROM check_in_scans WHERE event_id = $1 ORDER BY nonce",
    )
    .bind(event_id as i32)
    .fetch_all(&app.db)
    .await
    .unwrap();
    assert_eq!(
        stored,
        vec![
            ("gate-1".to_string(), Some("CHECKED_IN".to_string())),
            ("gate-2".to_string(), Some("ALREADY_CHECKED_IN".to_string())),
        ]
    );
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM check_ins")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(rows, 1);

    // A scan stored with its rendered answer (before outcomes were stored) replays that answer.
    let second = list["data"][1]["code"].as_str().unwrap().to_string();
    let digest = ring::digest::digest(&ring::digest::SHA256, second.as_bytes());
    sqlx::query(
        "INSERT INTO check_in_scans (event_id, nonce, code_sha256, status_code, response_body) \
         VALUES ($1, 'old-1', $2, 409, $3)",
    )
    .bind(event_id as i32)
    .bind(digest.as_ref())
    .bind(r#"{"statusCode":409,"message":"stored before","error":"Conflict"}"#)
    .execute(&app.db)
    .await
    .unwrap();
    let (status, body) = scan(
        &app,
        &organizer,
        event_id,
        json!({ "code": second, "nonce": "old-1" }),
    )
    .await;
    assert_error(status, &body, 409, "stored before");
    let (status, body) = scan(&app, &organizer, event_id, json!({ "code": second })).await;
    assert_eq!(
        status, 200,
        "a replay changes nothing; a new scan still gets in: {body}"
    );
}

#[tokio::test]
async fn codes_that_are_not_ours_or_not_for_this_event_are_refused() {
    let app = TestApp::spawn().await;
    let (organizer, event_id, user, reference) = booked(&app, 1).await;
    let (_, list) = tickets(&app, &user, &reference).await;
    let code = list["data"][0]["code"].as_str().unwrap().to_string();
    let parts_of: Vec<&str> = code.split('.').collect();

    // A tampered payload (another ticket number), under the original signature.
    let mut claims = verify_offline(&app, &code).await;
    claims["n"] = json!(2);
    let tampered = format!(
        "{}.{}.{}",
        parts_of[0],
        base64_url(&serde_json::to_vec(&claims).unwrap()),
        parts_of[2]
    );
    // A well-formed code with the same kid, signed by another Ed25519 key.
    let other_key =
        ring::signature::Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new()).unwrap();
    let mut header = jsonwebtoken::Header::new(Algorithm::EdDSA);
    header.kid = jsonwebtoken::decode_header(&code).unwrap().kid;
    let forged = jsonwebtoken::encode(
        &header,
        &claims,
        &jsonwebtoken::EncodingKey::from_ed_der(other_key.as_ref()),
    )
    .unwrap();
    for bad in [
        "garbage",
        "a.b.c",
        tampered.as_str(),
        forged.as_str(),
        &code[..code.len() - 4],
    ] {
        let (status, body) = scan(&app, &organizer, event_id, json!({ "code": bad })).await;
        assert_error(status, &body, 400, INVALID);
    }

    // A valid code of another event of the same organizer.
    let other = create_event(&app, &organizer, &event_body("Other", 5, "PUBLISHED")).await;
    let (status, body) = scan(
        &app,
        &organizer,
        other["id"].as_i64().unwrap(),
        json!({ "code": code }),
    )
    .await;
    assert_error(status, &body, 400, "Ticket belongs to another event");

    let (status, body) = scan(
        &app,
        &organizer,
        event_id,
        json!({ "code": code, "nonce": "" }),
    )
    .await;
    assert_validation(
        status,
        &body,
        &["nonce must be 1 to 64 visible ASCII characters"],
    );
    let (status, body) = scan(&app, &organizer, event_id, json!({ "nonce": "x" })).await;
    assert_validation(status, &body, &["code should not be empty"]);

    let (other_org, _) = app.organizer("other-org@example.com").await;
    let (status, body) = scan(&app, &other_org, event_id, json!({ "code": code })).await;
    assert_error(
        status,
        &body,
        403,
        "You can only check in tickets of your own events",
    );
    // A USER is refused before anything else is looked at, as on every organizer route.
    for (event, body) in [
        (event_id, json!({ "code": code })),
        (event_id, json!({ "nonce": "" })),
        (999_999, json!({ "code": code })),
    ] {
        let (status, body) = scan(&app, &user, event, body).await;
        assert_error(status, &body, 403, "Forbidden resource");
    }
    let (status, body) = parts(
        app.post("/events/x/check-ins", Some(&user), &json!({ "code": code }))
            .await,
    )
    .await;
    assert_error(status, &body, 403, "Forbidden resource");
    let (status, body) = scan(&app, &organizer, 999_999, json!({ "code": code })).await;
    assert_error(status, &body, 404, "Event with ID 999999 not found");
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM check_ins")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(rows, 0, "no refused scan let anyone in");
}

fn base64_url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[tokio::test]
async fn cancelled_bookings_have_void_tickets_that_scanners_learn_about() {
    let app = TestApp::spawn().await;
    let (organizer, event_id, user, reference) = booked(&app, 2).await;
    let (_, list) = tickets(&app, &user, &reference).await;
    let code = list["data"][1]["code"].as_str().unwrap().to_string();
    let (status, _) = parts(
        app.delete(&format!("/bookings/{reference}"), Some(&user))
            .await,
    )
    .await;
    assert_eq!(status, 200);

    let (_, list) = tickets(&app, &user, &reference).await;
    let statuses: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["VOID", "VOID"]);
    let (status, body) = scan(&app, &organizer, event_id, json!({ "code": code })).await;
    assert_error(
        status,
        &body,
        409,
        "Ticket is void: the booking was cancelled",
    );

    let (status, revoked) = parts(
        app.get(
            &format!("/events/{event_id}/revoked-tickets"),
            Some(&organizer),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{revoked}");
    assert_eq!(
        revoked,
        json!({ "data": [
            { "bookingReference": reference, "number": 1 },
            { "bookingReference": reference, "number": 2 },
        ] })
    );
    let (other_org, _) = app.organizer("other-org@example.com").await;
    let (status, body) = parts(
        app.get(
            &format!("/events/{event_id}/revoked-tickets"),
            Some(&other_org),
        )
        .await,
    )
    .await;
    assert_error(status, &body, 403, "You can only view your own events");
    let (status, body) = parts(
        app.get("/events/999999/revoked-tickets", Some(&organizer))
            .await,
    )
    .await;
    assert_error(status, &body, 404, "Event with ID 999999 not found");
    let (_, still) = parts(
        app.post("/bookings", Some(&user), &booking(event_id, 1))
            .await,
    )
    .await;
    assert_eq!(still["data"]["status"], "CONFIRMED");
}

#[tokio::test]
async fn a_configured_key_signs_and_is_published() {
    let pkcs8 =
        ring::signature::Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new()).unwrap();
    let pem = pem::encode(&pem::Pem::new("PRIVATE KEY", pkcs8.as_ref().to_vec()));
    let app = TestApp::spawn_with(&[("TICKET_SIGNING_KEY", pem.as_str())]).await;
    let (_, _, user, reference) = booked(&app, 1).await;
    let (_, list) = tickets(&app, &user, &reference).await;
    let code = list["data"][0]["code"].as_str().unwrap();
    let claims = verify_offline(&app, code).await;
    assert_eq!(claims["ref"], reference.as_str());
    let (_, jwks) = parts(app.get("/.well-known/jwks.json", None).await).await;
    let kid = jsonwebtoken::decode_header(code).unwrap().kid.unwrap();
    assert_eq!(
        jwks["keys"][0]["kid"],
        kid.as_str(),
        "the configured key comes first"
    );
}

#[tokio::test]
async fn the_qr_code_scans_back_to_the_code_and_the_pdf_has_a_page_per_ticket() {
    let app = TestApp::spawn().await;
    let (organizer, _, user, reference) = booked(&app, 3).await;
    let (_, list) = tickets(&app, &user, &reference).await;
    for number in 1..=3 {
        let response = app
            .get(
                &format!("/bookings/{reference}/tickets/{number}/qr.svg"),
                Some(&organizer),
            )
            .await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "image/svg+xml");
        let svg = response.text().await.unwrap();
        assert_eq!(
            crate::qr::decode_svg(&svg),
            list["data"][number - 1]["code"].as_str().unwrap(),
            "ticket {number} scans to its code"
        );
    }
    for (number, status, message) in [
        ("0", 404, "Ticket not found"),
        ("4", 404, "Ticket not found"),
        ("one", 400, "Validation failed (numeric string is expected)"),
    ] {
        let (got, body) = parts(
            app.get(
                &format!("/bookings/{reference}/tickets/{number}/qr.svg"),
                Some(&user),
            )
            .await,
        )
        .await;
        assert_error(got, &body, status, message);
    }

    let response = app
        .get(&format!("/bookings/{reference}/tickets.pdf"), Some(&user))
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/pdf");
    let pdf = response.bytes().await.unwrap();
    assert!(pdf.starts_with(b"%PDF-"));
    let text = String::from_utf8_lossy(&pdf);
    let pages = text.matches("/Type /Page").count() - text.matches("/Type /Pages").count();
    assert_eq!(pages, 3, "one page per ticket");
    assert!(text.contains("/FontFile2"), "the font is embedded");

    let (stranger, _) = app.user("stranger@example.com").await;
    let (status, body) = parts(
        app.get(
            &format!("/bookings/{reference}/tickets.pdf"),
            Some(&stranger),
        )
        .await,
    )
    .await;
    assert_error(
        status,
        &body,
        403,
        "You do not have permission to view this booking",
    );
    let (status, _) = parts(
        app.delete(&format!("/bookings/{reference}"), Some(&user))
            .await,
    )
    .await;
    assert_eq!(status, 200);
    for path in ["tickets.pdf", "tickets/1/qr.svg"] {
        let (status, body) = parts(
            app.get(&format!("/bookings/{reference}/{path}"), Some(&user))
                .await,
        )
        .await;
        assert_error(status, &body, 400, "Booking is already cancelled");
    }
}

#[tokio::test]
async fn a_hold_has_no_qr_code_or_pdf() {
    let app = TestApp::spawn().await;
    let (_, event_id) = published_event(&app, 10).await;
    let (user, _) = app.user("user@example.com").await;
    let (_, held) = parts(
        app.post(
            "/bookings",
            Some(&user),
            &json!({ "eventId": event_id, "seatCount": 1, "hold": true }),
        )
        .await,
    )
    .await;
    let reference = held["data"]["bookingReference"].as_str().unwrap();
    for path in ["tickets.pdf", "tickets/1/qr.svg"] {
        let (status, body) = parts(
            app.get(&format!("/bookings/{reference}/{path}"), Some(&user))
                .await,
        )
        .await;
        assert_error(
            status,
            &body,
            400,
            "Tickets are issued when the booking is confirmed",
        );
    }
}
