use serde_json::{json, Value};

use crate::events::{create_event, event_body};
use crate::helpers::{assert_error, assert_validation, parts, TestApp, INVALID_TOKEN};

pub fn booking(event_id: i64, seats: i64) -> Value {
    json!({ "eventId": event_id, "seatCount": seats })
}

/// An organizer with one PUBLISHED future event of `seats` seats: (organizer token, event id).
pub async fn published_event(app: &TestApp, seats: i64) -> (String, i64) {
    let (organizer, _) = app.organizer("organizer@example.com").await;
    let event = create_event(app, &organizer, &event_body("Concert", seats, "PUBLISHED")).await;
    (organizer, event["id"].as_i64().unwrap())
}

/// Books through the API and returns the booking reference.
pub async fn book(app: &TestApp, token: &str, event_id: i64, seats: i64) -> String {
    let (status, body) = parts(
        app.post("/bookings", Some(token), &booking(event_id, seats))
            .await,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    body["data"]["bookingReference"]
        .as_str()
        .unwrap()
        .to_string()
}

/// `(total, available, Σ confirmed seats, version)` of an event, read in SQL.
pub async fn seat_state(app: &TestApp, event_id: i64) -> (i32, i32, i64, i64) {
    sqlx::query_as(
        "SELECT e.total_seats, e.available_seats, \
                COALESCE(SUM(b.seat_count) FILTER (WHERE b.status = 'CONFIRMED'), 0)::bigint, e.version \
         FROM events e LEFT JOIN bookings b ON b.event_id = e.id WHERE e.id = $1 \
         GROUP BY e.id",
    )
    .bind(event_id as i32)
    .fetch_one(&app.db)
    .await
    .unwrap()
}

/// The invariant of API.md, checked in SQL.
pub async fn assert_invariant(app: &TestApp, event_id: i64) {
    let (total, available, confirmed, _) = seat_state(app, event_id).await;
    assert!(
        available >= 0 && available <= total,
        "0 <= {available} <= {total}"
    );
    assert_eq!(
        i64::from(available) + confirmed,
        i64::from(total),
        "available + confirmed = total"
    );
}

#[tokio::test]
async fn booking_takes_seats_and_returns_the_booking_with_its_event() {
    let app = TestApp::spawn().await;
    let (_, event_id) = published_event(&app, 10).await;
    let (user, user_id) = app.user("user@example.com").await;
    let (status, body) = parts(
        app.post("/bookings", Some(&user), &booking(event_id, 3))
            .await,
    )
    .await;

    assert_eq!(status, 201, "{body}");
    assert_eq!(body["success"], true);
    assert_eq!(body["message"], "Booking confirmed successfully");
    let data = &body["data"];
    assert_eq!(data["userId"], user_id);
    assert_eq!(data["eventId"], event_id);
    assert_eq!(data["seatCount"], 3);
    assert_eq!(data["status"], "CONFIRMED");
    assert!(uuid::Uuid::parse_str(data["bookingReference"].as_str().unwrap()).is_ok());
    assert_eq!(data["event"]["id"], event_id);
    assert_eq!(data["event"]["title"], "Concert");
    assert_eq!(data["event"]["eventDate"], "2030-06-01T18:00:00.000Z");
    assert!(data["event"]["organizerId"].is_i64());

    assert_eq!(seat_state(&app, event_id).await, (10, 7, 3, 1));
    let (status, event) = parts(app.get(&format!("/events/{event_id}"), None).await).await;
    assert_eq!(status, 200);
    assert_eq!(event["availableSeats"], 7);
    assert_eq!(event["_count"]["bookings"], 1);
}

#[tokio::test]
async fn organizers_can_book_too_but_anonymous_cannot() {
    let app = TestApp::spawn().await;
    let (organizer, event_id) = published_event(&app, 10).await;
    book(&app, &organizer, event_id, 1).await;
    let (status, body) = parts(app.post("/bookings", None, &booking(event_id, 1)).await).await;
    assert_error(status, &body, 401, "Unauthorized");
    assert_invariant(&app, event_id).await;
}

#[tokio::test]
async fn booking_validation() {
    let app = TestApp::spawn().await;
    let (user, _) = app.user("user@example.com").await;
    let (status, body) = parts(app.post("/bookings", Some(&user), &json!({})).await).await;
    assert_validation(
        status,
        &body,
        &[
            "eventId should not be empty",
            "seatCount should not be empty",
        ],
    );
    let (status, body) = parts(app.post("/bookings", Some(&user), &booking(1, 0)).await).await;
    assert_validation(status, &body, &["seatCount must not be less than 1"]);
    let (status, body) = parts(app.post("/bookings", Some(&user), &booking(0, -5)).await).await;
    assert_validation(
        status,
        &body,
        &[
            "eventId must not be less than 1",
            "seatCount must not be less than 1",
        ],
    );
    let (status, body) = parts(
        app.post("/bookings", Some(&user), &booking(1, 1_000_001))
            .await,
    )
    .await;
    assert_validation(
        status,
        &body,
        &["seatCount must not be greater than 1000000"],
    );
    let (status, body) = parts(
        app.post("/bookings", Some(&user), &booking(2_147_483_648, 1))
            .await,
    )
    .await;
    assert_validation(
        status,
        &body,
        &["eventId must not be greater than 2147483647"],
    );
    for (bad, message) in [
        (
            json!({ "eventId": "one", "seatCount": 1 }),
            "eventId must be an integer number",
        ),
        (
            json!({ "eventId": 1, "seatCount": 1.5 }),
            "seatCount must be an integer number",
        ),
    ] {
        let (status, body) = parts(app.post("/bookings", Some(&user), &bad).await).await;
        assert_validation(status, &body, &[message]);
    }
}

#[tokio::test]
async fn booking_rules_and_their_messages() {
    let app = TestApp::spawn().await;
    let (organizer, event_id) = published_event(&app, 3).await;
    let (user, _) = app.user("user@example.com").await;

    let (status, body) = parts(
        app.post("/bookings", Some(&user), &booking(999_999, 1))
            .await,
    )
    .await;
    assert_error(status, &body, 404, "Event with ID 999999 not found");

    let (status, body) = parts(
        app.post("/bookings", Some(&user), &booking(event_id, 5))
            .await,
    )
    .await;
    assert_error(
        status,
        &body,
        409,
        "Not enough seats available. Requested: 5, Available: 3",
    );

    let draft = create_event(&app, &organizer, &event_body("Draft", 10, "DRAFT")).await;
    let draft_id = draft["id"].as_i64().unwrap();
    let (status, body) = parts(
        app.post("/bookings", Some(&user), &booking(draft_id, 1))
            .await,
    )
    .await;
    assert_error(
        status,
        &body,
        404,
        &format!("Event with ID {draft_id} not found"),
    );
    let (status, body) = parts(
        app.post("/bookings", Some(&organizer), &booking(draft_id, 1))
            .await,
    )
    .await;
    assert_error(
        status,
        &body,
        400,
        "Event is not available for booking. Current status: DRAFT",
    );

    let cancelled = create_event(&app, &organizer, &event_body("Off", 10, "CANCELLED")).await;
    let (status, body) = parts(
        app.post(
            "/bookings",
            Some(&user),
            &booking(cancelled["id"].as_i64().unwrap(), 1),
        )
        .await,
    )
    .await;
    assert_error(
        status,
        &body,
        400,
        "Event is not available for booking. Current status: CANCELLED",
    );

    let mut past = event_body("Yesterday", 10, "PUBLISHED");
    past["eventDate"] = json!("2020-01-01T00:00:00Z");
    let past = create_event(&app, &organizer, &past).await;
    let (status, body) = parts(
        app.post(
            "/bookings",
            Some(&user),
            &booking(past["id"].as_i64().unwrap(), 1),
        )
        .await,
    )
    .await;
    assert_error(status, &body, 400, "Cannot book past events");

    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM bookings")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(count, 0, "no refused booking left a row");
    assert_eq!(seat_state(&app, event_id).await, (3, 3, 0, 0));
}

#[tokio::test]
async fn list_shows_only_my_bookings_newest_first() {
    let app = TestApp::spawn().await;
    let (_, event_id) = published_event(&app, 100).await;
    let (me, _) = app.user("me@example.com").await;
    let (other, _) = app.user("other@example.com").await;
    let first = book(&app, &me, event_id, 1).await;
    let second = book(&app, &me, event_id, 2).await;
    let third = book(&app, &me, event_id, 3).await;
    book(&app, &other, event_id, 1).await;
    let (status, _) = parts(app.delete(&format!("/bookings/{second}"), Some(&me)).await).await;
    assert_eq!(status, 200);

    let (status, page) = parts(app.get("/bookings", Some(&me)).await).await;
    assert_eq!(status, 200);
    assert_eq!(
        page["meta"],
        json!({ "total": 3, "page": 1, "limit": 10, "totalPages": 1 })
    );
    let refs: Vec<&str> = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["bookingReference"].as_str().unwrap())
        .collect();
    assert_eq!(refs, [third.as_str(), second.as_str(), first.as_str()]);
    let event = &page["data"][0]["event"];
    assert_eq!(event["id"], event_id);
    assert_eq!(event["title"], "Concert");
    assert_eq!(event["status"], "PUBLISHED");
    assert_eq!(event["eventDate"], "2030-06-01T18:00:00.000Z");

    let (_, page) = parts(app.get("/bookings?status=CANCELLED", Some(&me)).await).await;
    assert_eq!(page["meta"]["total"], 1);
    assert_eq!(page["data"][0]["bookingReference"], second.as_str());
    let (_, page) = parts(
        app.get("/bookings?status=CONFIRMED&limit=1&page=2", Some(&me))
            .await,
    )
    .await;
    assert_eq!(
        page["meta"],
        json!({ "total": 2, "page": 2, "limit": 1, "totalPages": 2 })
    );
    assert_eq!(page["data"][0]["bookingReference"], first.as_str());

    // Holds made PENDING and EXPIRED statuses too.
    let (status, body) = parts(app.get("/bookings?status=PENDING", Some(&me)).await).await;
    assert_eq!((status, &body["meta"]["total"]), (200, &json!(0)), "{body}");
    let (status, body) = parts(app.get("/bookings?status=HELD", Some(&me)).await).await;
    assert_validation(
        status,
        &body,
        &["status must be one of the following values: CONFIRMED, CANCELLED, PENDING, EXPIRED"],
    );
    let (status, body) = parts(app.get("/bookings?limit=101", Some(&me)).await).await;
    assert_validation(status, &body, &["limit must not be greater than 100"]);
    let (status, body) = parts(app.get("/bookings", None).await).await;
    assert_error(status, &body, 401, "Unauthorized");
}

#[tokio::test]
async fn a_booking_is_visible_to_its_owner_and_its_event_organizer_only() {
    let app = TestApp::spawn().await;
    let (organizer, event_id) = published_event(&app, 10).await;
    let (owner, owner_id) = app.user("owner@example.com").await;
    let (stranger, _) = app.user("stranger@example.com").await;
    let (other_organizer, _) = app.organizer("other-org@example.com").await;
    let reference = book(&app, &owner, event_id, 2).await;
    let path = format!("/bookings/{reference}");

    for token in [&owner, &organizer] {
        let (status, body) = parts(app.get(&path, Some(token)).await).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["bookingReference"], reference.as_str());
        assert_eq!(body["seatCount"], 2);
        assert_eq!(body["event"]["id"], event_id);
        assert_eq!(body["event"]["status"], "PUBLISHED");
        assert!(body["event"]["organizerId"].is_i64());
        assert_eq!(
            body["user"],
            json!({ "id": owner_id, "firstname": "Test", "lastname": "User", "email": "owner@example.com" })
        );
    }
    for token in [&stranger, &other_organizer] {
        let (status, body) = parts(app.get(&path, Some(token)).await).await;
        assert_error(
            status,
            &body,
            403,
            "You do not have permission to view this booking",
        );
    }
    let (status, body) = parts(
        app.get(&format!("/bookings/{}", uuid::Uuid::new_v4()), Some(&owner))
            .await,
    )
    .await;
    assert_error(status, &body, 404, "Booking not found");
    let simple = reference.replace('-', "");
    for bad in [
        "not-a-uuid",
        simple.as_str(),
        &format!("urn:uuid:{reference}"),
    ] {
        let (status, body) = parts(app.get(&format!("/bookings/{bad}"), Some(&owner)).await).await;
        assert_error(status, &body, 400, "Validation failed (uuid is expected)");
    }
    let (status, body) = parts(app.get(&path, None).await).await;
    assert_error(status, &body, 401, "Unauthorized");
}

#[tokio::test]
async fn cancelling_releases_the_seats_once() {
    let app = TestApp::spawn().await;
    let (_, event_id) = published_event(&app, 10).await;
    let (user, _) = app.user("user@example.com").await;
    let reference = book(&app, &user, event_id, 4).await;
    let path = format!("/bookings/{reference}");

    let (status, body) = parts(app.delete(&path, Some(&user)).await).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["success"], true);
    assert_eq!(
        body["message"],
        "Booking cancelled successfully. Seats have been released."
    );
    assert_eq!(body["data"]["status"], "CANCELLED");
    assert_eq!(body["data"]["bookingReference"], reference.as_str());
    assert_eq!(
        body["data"]["event"],
        json!({ "id": event_id, "title": "Concert" })
    );
    assert_eq!(seat_state(&app, event_id).await, (10, 10, 0, 2));

    let (status, body) = parts(app.delete(&path, Some(&user)).await).await;
    assert_error(status, &body, 400, "Booking is already cancelled");
    assert_eq!(
        seat_state(&app, event_id).await,
        (10, 10, 0, 2),
        "released once"
    );
}

#[tokio::test]
async fn only_the_owner_cancels_and_not_after_the_event() {
    let app = TestApp::spawn().await;
    let (organizer, event_id) = published_event(&app, 10).await;
    let (owner, _) = app.user("owner@example.com").await;
    let (stranger, _) = app.user("stranger@example.com").await;
    let reference = book(&app, &owner, event_id, 1).await;
    let path = format!("/bookings/{reference}");

    for token in [&stranger, &organizer] {
        let (status, body) = parts(app.delete(&path, Some(token)).await).await;
        assert_error(status, &body, 403, "You can only cancel your own bookings");
    }
    let (status, body) = parts(
        app.delete(&format!("/bookings/{}", uuid::Uuid::new_v4()), Some(&owner))
            .await,
    )
    .await;
    assert_error(status, &body, 404, "Booking not found");
    let (status, body) = parts(app.delete("/bookings/123", Some(&owner)).await).await;
    assert_error(status, &body, 400, "Validation failed (uuid is expected)");

    sqlx::query("UPDATE events SET event_date = now() - interval '1 day' WHERE id = $1")
        .bind(event_id as i32)
        .execute(&app.db)
        .await
        .unwrap();
    let (status, body) = parts(app.delete(&path, Some(&owner)).await).await;
    assert_error(status, &body, 400, "Cannot cancel booking for past events");
    let status: String = sqlx::query_scalar("SELECT status::text FROM bookings")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(status, "CONFIRMED");
    assert_invariant(&app, event_id).await;
}

#[tokio::test]
async fn a_token_whose_user_was_deleted_cannot_book() {
    let app = TestApp::spawn().await;
    let (_, event_id) = published_event(&app, 10).await;
    let (token, user_id) = app.user("gone@example.com").await;
    sqlx::query("DELETE FROM users WHERE id = $1")
        .bind(user_id)
        .execute(&app.db)
        .await
        .unwrap();
    for event in [event_id, 999_999] {
        let response = app
            .post("/bookings", Some(&token), &booking(event, 1))
            .await;
        let (status, body) = parts(response).await;
        assert_error(status, &body, 401, INVALID_TOKEN);
    }
    assert_eq!(seat_state(&app, event_id).await, (10, 10, 0, 0));
}

#[tokio::test]
async fn a_token_whose_user_was_deleted_cannot_confirm_or_cancel() {
    let app = TestApp::spawn().await;
    let (_, event_id) = published_event(&app, 10).await;
    let (owner, _) = app.user("owner@example.com").await;
    let reference = book(&app, &owner, event_id, 2).await;
    let (token, user_id) = app.user("gone@example.com").await;
    sqlx::query("DELETE FROM users WHERE id = $1")
        .bind(user_id)
        .execute(&app.db)
        .await
        .unwrap();
    // 401 comes first: before "not yours", "not found" and a malformed reference.
    let unknown = "00000000-0000-4000-8000-000000000000";
    for target in [reference.as_str(), unknown, "not-a-uuid"] {
        let confirm = format!("/bookings/{target}/confirm");
        let (status, body) = parts(app.post(&confirm, Some(&token), &json!({})).await).await;
        assert_error(status, &body, 401, INVALID_TOKEN);
        let cancel = format!("/bookings/{target}");
        let (status, body) = parts(app.delete(&cancel, Some(&token)).await).await;
        assert_error(status, &body, 401, INVALID_TOKEN);
    }
    assert_eq!(seat_state(&app, event_id).await, (10, 8, 2, 1));
}

#[tokio::test]
async fn version_grows_by_one_per_booking_and_cancellation() {
    let app = TestApp::spawn().await;
    let (_, event_id) = published_event(&app, 50).await;
    let (user, _) = app.user("user@example.com").await;
    let requests: Vec<_> = (0..10)
        .map(|_| {
            let request = app
                .request(reqwest::Method::POST, "/bookings", Some(&user))
                .json(&booking(event_id, 2));
            tokio::spawn(async move { request.send().await.unwrap().status().as_u16() })
        })
        .collect();
    for request in requests {
        assert_eq!(request.await.unwrap(), 201);
    }
    assert_eq!(seat_state(&app, event_id).await, (50, 30, 20, 10));
}

/// `_count.bookings` counts the event's booking rows of any status, kept on the event row by
/// the writes themselves: it matches a count in SQL after bookings, holds and cancels, in the
/// single view, the listing and the organizer's own list.
#[tokio::test]
async fn the_booking_count_counts_every_row_whatever_its_status() {
    let app = TestApp::spawn().await;
    let (organizer, event_id) = published_event(&app, 20).await;
    let (user, _) = app.user("counted@example.com").await;
    let kept = book(&app, &user, event_id, 2).await;
    let cancelled = book(&app, &user, event_id, 1).await;
    let hold = json!({ "eventId": event_id, "seatCount": 1, "hold": true });
    let (status, _) = parts(app.post("/bookings", Some(&user), &hold).await).await;
    assert_eq!(status, 201);
    let (status, _) = parts(
        app.delete(&format!("/bookings/{cancelled}"), Some(&user))
            .await,
    )
    .await;
    assert_eq!(status, 200);
    assert_ne!(kept, cancelled);

    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM bookings WHERE event_id = $1")
        .bind(event_id as i32)
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(rows, 3);
    let (_, event) = parts(app.get(&format!("/events/{event_id}"), None).await).await;
    assert_eq!(event["_count"], json!({ "bookings": 3 }));
    let (_, list) = parts(app.get("/events", None).await).await;
    assert_eq!(list["data"][0]["_count"], json!({ "bookings": 3 }));
    let (_, mine) = parts(
        app.get("/events/organizer/my-events", Some(&organizer))
            .await,
    )
    .await;
    assert_eq!(mine["data"][0]["_count"], json!({ "bookings": 3 }));
}
