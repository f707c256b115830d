//! Organizer insight: every figure of the stats and every row of the attendee list and CSV,
//! after a known sequence of bookings, holds, cancels and check-ins.

use serde_json::{json, Value};

use crate::events::create_event;
use crate::helpers::{assert_error, assert_validation, parts, TestApp, PASSWORD};

async fn person(app: &TestApp, email: &str, lastname: &str) -> (String, i32) {
    let body =
        json!({ "firstname": "Ann", "lastname": lastname, "email": email, "password": PASSWORD });
    let (status, body) = parts(app.post("/auth/register", None, &body).await).await;
    assert_eq!(status, 201, "{body}");
    (
        body["accessToken"].as_str().unwrap().to_string(),
        body["user"]["id"].as_i64().unwrap() as i32,
    )
}

async fn post(app: &TestApp, token: &str, path: &str, body: Value) -> Value {
    let (status, body) = parts(app.post(path, Some(token), &body).await).await;
    assert!(status == 200 || status == 201, "{path}: {status} {body}");
    body
}

#[tokio::test]
async fn stats_and_attendees_add_up_after_a_known_day_of_sales() {
    let app = TestApp::spawn().await;
    let (organizer, _) = app.organizer("org@example.com").await;
    let event = create_event(
        &app,
        &organizer,
        &json!({ "title": "Gala", "status": "PUBLISHED", "eventDate": "2030-01-01T20:00:00Z",
                 "ticketTypes": [{ "name": "VIP", "priceCents": 1000, "totalSeats": 10 },
                                 { "name": "General", "priceCents": 500, "totalSeats": 20 }] }),
    )
    .await;
    let id = event["id"].as_i64().unwrap();
    let (vip, general) = (
        event["ticketTypes"][0]["id"].clone(),
        event["ticketTypes"][1]["id"].clone(),
    );
    let (a, a_id) = person(&app, "a@example.com", "Able").await;
    let (b, _) = person(&app, "b@example.com", "Baker").await;
    let (c, _) = person(&app, "c@example.com", "Cole").await;
    let (d, d_id) = person(&app, "d@example.com", "O'Neil, Jr.").await;

    let booked_a = post(
        &app,
        &a,
        "/bookings",
        json!({ "eventId": id, "ticketTypeId": vip, "seatCount": 2 }),
    )
    .await;
    post(
        &app,
        &b,
        "/bookings",
        json!({ "eventId": id, "ticketTypeId": general, "seatCount": 3, "hold": true }),
    )
    .await;
    let booked_c = post(
        &app,
        &c,
        "/bookings",
        json!({ "eventId": id, "ticketTypeId": general, "seatCount": 1 }),
    )
    .await;
    let c_ref = booked_c["data"]["bookingReference"].as_str().unwrap();
    let (status, _) = parts(app.delete(&format!("/bookings/{c_ref}"), Some(&c)).await).await;
    assert_eq!(status, 200);
    let held_d = post(
        &app,
        &d,
        "/bookings",
        json!({ "eventId": id, "ticketTypeId": general, "seatCount": 2, "hold": true }),
    )
    .await;
    let d_ref = held_d["data"]["bookingReference"]
        .as_str()
        .unwrap()
        .to_string();
    post(&app, &d, &format!("/bookings/{d_ref}/confirm"), json!({})).await;
    let a_ref = booked_a["data"]["bookingReference"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, tickets) = parts(
        app.get(&format!("/bookings/{a_ref}/tickets"), Some(&a))
            .await,
    )
    .await;
    post(
        &app,
        &organizer,
        &format!("/events/{id}/check-ins"),
        json!({ "code": tickets["data"][0]["code"] }),
    )
    .await;

    let today: String =
        sqlx::query_scalar("SELECT to_char((now() AT TIME ZONE 'UTC')::date, 'YYYY-MM-DD')")
            .fetch_one(&app.db)
            .await
            .unwrap();
    let (status, stats) = parts(
        app.get(&format!("/events/{id}/stats"), Some(&organizer))
            .await,
    )
    .await;
    assert_eq!(status, 200, "{stats}");
    assert_eq!(
        stats,
        json!({
            "eventId": id, "totalSeats": 30, "availableSeats": 23,
            "seatsConfirmed": 4, "seatsHeld": 3, "revenueCents": 3000,
            "bookings": { "CONFIRMED": 2, "PENDING": 1, "CANCELLED": 1, "EXPIRED": 0 },
            "checkIns": { "tickets": 4, "checkedIn": 1 },
            "ticketTypes": [
                { "id": vip, "name": "VIP", "totalSeats": 10, "availableSeats": 8, "seatsConfirmed": 2, "revenueCents": 2000 },
                { "id": general, "name": "General", "totalSeats": 20, "availableSeats": 15, "seatsConfirmed": 2, "revenueCents": 1000 },
            ],
            // A, C (confirmed, then cancelled) and D (confirmed from its hold); B still holds.
            "salesByDay": [{ "date": today, "bookings": 3, "seats": 5, "cancellations": 1 }],
        })
    );

    let (status, page) = parts(
        app.get(&format!("/events/{id}/attendees?limit=1"), Some(&organizer))
            .await,
    )
    .await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(
        page["meta"],
        json!({ "total": 2, "page": 1, "limit": 1, "totalPages": 2 })
    );
    let first = &page["data"][0];
    assert_eq!(first["bookingReference"], d_ref.as_str(), "newest first");
    assert_eq!(first["seatCount"], 2);
    assert_eq!(first["checkedIn"], 0);
    assert_eq!(first["ticketTypeId"], general);
    assert_eq!(
        first["user"],
        json!({ "id": d_id, "firstname": "Ann", "lastname": "O'Neil, Jr.", "email": "d@example.com" })
    );
    let (_, second) = parts(
        app.get(
            &format!("/events/{id}/attendees?limit=1&page=2"),
            Some(&organizer),
        )
        .await,
    )
    .await;
    assert_eq!(second["data"][0]["bookingReference"], a_ref.as_str());
    assert_eq!(second["data"][0]["checkedIn"], 1);

    let response = app
        .get(
            &format!("/events/{id}/attendees?format=csv"),
            Some(&organizer),
        )
        .await;
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    let csv = response.text().await.unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "bookingReference,ticketTypeId,seatCount,checkedIn,createdAt,userId,firstname,lastname,email");
    assert_eq!(lines.len(), 3, "{csv}");
    assert_eq!(
        lines[1],
        format!(
            "{d_ref},{general},2,0,{},{d_id},Ann,\"O'Neil, Jr.\",d@example.com",
            first["createdAt"].as_str().unwrap()
        )
    );
    assert!(
        lines[2].starts_with(&format!("{a_ref},{vip},2,1,")),
        "{}",
        lines[2]
    );
    assert!(
        lines[2].ends_with(&format!(",{a_id},Ann,Able,a@example.com")),
        "{}",
        lines[2]
    );
}

#[tokio::test]
async fn insight_is_for_the_events_own_organizer() {
    let app = TestApp::spawn().await;
    let (organizer, _) = app.organizer("org@example.com").await;
    let event = create_event(
        &app,
        &organizer,
        &crate::events::event_body("Mine", 5, "PUBLISHED"),
    )
    .await;
    let (other, _) = app.organizer("other@example.com").await;
    let (user, _) = app.user("user@example.com").await;
    for path in ["stats", "attendees", "attendees?format=csv"] {
        let url = format!("/events/{}/{path}", event["id"]);
        let (status, body) = parts(app.get(&url, Some(&other)).await).await;
        assert_error(status, &body, 403, "You can only view your own events");
        let (status, body) = parts(app.get(&url, Some(&user)).await).await;
        assert_error(status, &body, 403, "Forbidden resource");
        let (status, body) = parts(
            app.get(&format!("/events/999999/{path}"), Some(&organizer))
                .await,
        )
        .await;
        assert_error(status, &body, 404, "Event with ID 999999 not found");
    }
    let (status, body) = parts(
        app.get(
            &format!("/events/{}/attendees?format=xml&limit=0", event["id"]),
            Some(&organizer),
        )
        .await,
    )
    .await;
    assert_validation(
        status,
        &body,
        &[
            "format must be one of the following values: json, csv",
            "limit must not be less than 1",
        ],
    );
    let (_, stats) = parts(
        app.get(&format!("/events/{}/stats", event["id"]), Some(&organizer))
            .await,
    )
    .await;
    assert_eq!(stats["salesByDay"], json!([]));
    assert_eq!(
        stats["bookings"],
        json!({ "CONFIRMED": 0, "PENDING": 0, "CANCELLED": 0, "EXPIRED": 0 })
    );
}

async fn stats_of(app: &TestApp, token: &str, id: i64) -> Value {
    let (status, stats) = parts(app.get(&format!("/events/{id}/stats"), Some(token)).await).await;
    assert_eq!(status, 200, "{stats}");
    stats
}

/// Statistics are kept between calls, never past a change: every change shows in the next
/// call, on this instance or another — a booking through a second instance, a confirm (which
/// moves no seat), a check-in, a cancel after the door, a ticket type renamed.
#[tokio::test]
async fn stats_show_every_change_at_once_on_every_instance() {
    let app = TestApp::spawn().await;
    let other = app.another_instance().await;
    let (organizer, _) = app.organizer("org@example.com").await;
    let event = create_event(
        &app,
        &organizer,
        &json!({ "title": "Gala", "status": "PUBLISHED", "eventDate": "2030-01-01T20:00:00Z",
                 "ticketTypes": [{ "name": "Floor", "priceCents": 1000, "totalSeats": 10 }] }),
    )
    .await;
    let id = event["id"].as_i64().unwrap();
    let type_id = event["ticketTypes"][0]["id"].as_i64().unwrap();
    let (a, _) = person(&app, "a@example.com", "Able").await;
    let booked = post(
        &app,
        &a,
        "/bookings",
        json!({ "eventId": id, "seatCount": 2 }),
    )
    .await;
    let reference = booked["data"]["bookingReference"]
        .as_str()
        .unwrap()
        .to_string();
    let first = stats_of(&app, &organizer, id).await;
    assert_eq!(first["seatsConfirmed"], 2);
    assert_eq!(
        stats_of(&app, &organizer, id).await,
        first,
        "the same figures again"
    );

    post(
        &other,
        &a,
        "/bookings",
        json!({ "eventId": id, "seatCount": 1 }),
    )
    .await;
    assert_eq!(stats_of(&app, &organizer, id).await["seatsConfirmed"], 3);

    let held = post(
        &other,
        &a,
        "/bookings",
        json!({ "eventId": id, "seatCount": 1, "hold": true }),
    )
    .await;
    let held = held["data"]["bookingReference"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(stats_of(&app, &organizer, id).await["seatsHeld"], 1);
    post(&other, &a, &format!("/bookings/{held}/confirm"), json!({})).await;
    let stats = stats_of(&app, &organizer, id).await;
    assert_eq!(
        (stats["seatsHeld"].clone(), stats["seatsConfirmed"].clone()),
        (json!(0), json!(4))
    );

    let (_, tickets) = parts(
        app.get(&format!("/bookings/{reference}/tickets"), Some(&a))
            .await,
    )
    .await;
    post(
        &other,
        &organizer,
        &format!("/events/{id}/check-ins"),
        json!({ "code": tickets["data"][0]["code"] }),
    )
    .await;
    assert_eq!(
        stats_of(&app, &organizer, id).await["checkIns"],
        json!({ "tickets": 4, "checkedIn": 1 })
    );
    let (status, _) = parts(
        other
            .delete(&format!("/bookings/{reference}"), Some(&a))
            .await,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        stats_of(&app, &organizer, id).await["checkIns"],
        json!({ "tickets": 2, "checkedIn": 0 }),
        "a cancelled booking's check-in no longer counts"
    );

    let (status, _) = parts(
        other
            .put(
                &format!("/events/{id}/ticket-types/{type_id}"),
                Some(&organizer),
                &json!({ "name": "Standing" }),
            )
            .await,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        stats_of(&app, &organizer, id).await["ticketTypes"][0]["name"],
        "Standing"
    );
}
