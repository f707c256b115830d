//! Ticket types: every rule and message of API.md's section, the changes to events and
//! bookings, and the invariant per type checked in SQL.

use serde_json::{json, Value};

use crate::bookings::booking;
use crate::events::{create_event, event_body};
use crate::helpers::{assert_error, assert_validation, parts, TestApp};

const TWO_TYPES: &str = "ticketTypeId is required: this event has several ticket types";

fn typed_event(status: &str, types: Value) -> Value {
    json!({
        "title": "Gala", "venue": "Opera House", "city": "Zürich", "currency": "CHF",
        "status": status, "eventDate": "2030-06-01T18:00:00.000Z", "ticketTypes": types,
    })
}

/// An organizer and a PUBLISHED event with VIP (20 at 250.00) and General (80 at 90.00).
async fn vip_and_general(app: &TestApp) -> (String, i64, i64, i64) {
    let (organizer, _) = app.organizer("org@example.com").await;
    let event = create_event(
        app,
        &organizer,
        &typed_event(
            "PUBLISHED",
            json!([
                { "name": "VIP", "priceCents": 25000, "totalSeats": 20 },
                { "name": "General", "priceCents": 9000, "totalSeats": 80 },
            ]),
        ),
    )
    .await;
    let types = event["ticketTypes"].as_array().unwrap();
    (
        organizer,
        event["id"].as_i64().unwrap(),
        types[0]["id"].as_i64().unwrap(),
        types[1]["id"].as_i64().unwrap(),
    )
}

fn typed_booking(event_id: i64, type_id: i64, seats: i64) -> Value {
    json!({ "eventId": event_id, "ticketTypeId": type_id, "seatCount": seats })
}

/// Per type: (total, available, Σ seats of CONFIRMED bookings), in id order; and the event's
/// totals equal the sums, checked in SQL.
async fn type_state(app: &TestApp, event_id: i64) -> Vec<(i32, i32, i64)> {
    let rows: Vec<(i32, i32, i64)> = sqlx::query_as(
        "SELECT t.total_seats, t.available_seats, \
                COALESCE((SELECT SUM(b.seat_count) FROM bookings b \
                          WHERE b.ticket_type_id = t.id AND b.status = 'CONFIRMED'), 0)::bigint \
         FROM ticket_types t WHERE t.event_id = $1 ORDER BY t.id",
    )
    .bind(event_id as i32)
    .fetch_all(&app.db)
    .await
    .unwrap();
    for (total, available, booked) in &rows {
        assert!(0 <= *available && available <= total, "{rows:?}");
        assert_eq!(
            i64::from(*available) + booked,
            i64::from(*total),
            "{rows:?}"
        );
    }
    let (total, available): (i32, i32) =
        sqlx::query_as("SELECT total_seats, available_seats FROM events WHERE id = $1")
            .bind(event_id as i32)
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(
        total,
        rows.iter().map(|r| r.0).sum::<i32>(),
        "event total = Σ types"
    );
    assert_eq!(
        available,
        rows.iter().map(|r| r.1).sum::<i32>(),
        "event available = Σ types"
    );
    rows
}

async fn version(app: &TestApp, event_id: i64) -> i64 {
    sqlx::query_scalar("SELECT version FROM events WHERE id = $1")
        .bind(event_id as i32)
        .fetch_one(&app.db)
        .await
        .unwrap()
}

async fn count(app: &TestApp, table: &str) -> i64 {
    sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
        .fetch_one(&app.db)
        .await
        .unwrap()
}

#[tokio::test]
async fn an_event_without_types_gets_one_general_type_and_the_new_fields() {
    let app = TestApp::spawn().await;
    let (organizer, _) = app.organizer("org@example.com").await;
    let event = create_event(&app, &organizer, &event_body("Plain", 40, "PUBLISHED")).await;
    assert_eq!(event["venue"], Value::Null);
    assert_eq!(event["city"], Value::Null);
    assert_eq!(event["currency"], "USD");
    let types = event["ticketTypes"].as_array().unwrap();
    assert_eq!(types.len(), 1);
    assert_eq!(types[0]["name"], "General");
    assert_eq!(types[0]["priceCents"], 0);
    assert_eq!(
        (
            types[0]["totalSeats"].clone(),
            types[0]["availableSeats"].clone()
        ),
        (json!(40), json!(40))
    );

    // A booking without ticketTypeId books that type, at price 0, as before.
    let (user, _) = app.user("user@example.com").await;
    let (status, body) = parts(
        app.post(
            "/bookings",
            Some(&user),
            &booking(event["id"].as_i64().unwrap(), 3),
        )
        .await,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["data"]["ticketTypeId"], types[0]["id"]);
    assert_eq!(body["data"]["totalPriceCents"], 0);
    assert_eq!(
        type_state(&app, event["id"].as_i64().unwrap()).await,
        vec![(40, 37, 3)]
    );
    let (_, shown) = parts(app.get(&format!("/events/{}", event["id"]), None).await).await;
    assert_eq!(shown["ticketTypes"][0]["availableSeats"], 37);
}

#[tokio::test]
async fn an_event_with_types_sums_them_and_lists_them_in_id_order() {
    let app = TestApp::spawn().await;
    let (_, event_id, vip, general) = vip_and_general(&app).await;
    let (_, event) = parts(app.get(&format!("/events/{event_id}"), None).await).await;
    assert_eq!(event["totalSeats"], 100);
    assert_eq!(event["availableSeats"], 100);
    assert_eq!(event["venue"], "Opera House");
    assert_eq!(event["city"], "Zürich");
    assert_eq!(event["currency"], "CHF");
    assert_eq!(event["version"], 0);
    assert_eq!(
        event["ticketTypes"],
        json!([
            { "id": vip, "name": "VIP", "priceCents": 25000, "totalSeats": 20, "availableSeats": 20 },
            { "id": general, "name": "General", "priceCents": 9000, "totalSeats": 80, "availableSeats": 80 },
        ])
    );
    let (_, listed) = parts(app.get("/events", None).await).await;
    assert_eq!(listed["data"][0]["ticketTypes"], event["ticketTypes"]);
    // totalSeats may be given when it equals the sum.
    let (organizer, _) = app.organizer("org2@example.com").await;
    let mut body = typed_event(
        "DRAFT",
        json!([{ "name": "A", "totalSeats": 5 }, { "name": "B", "totalSeats": 7 }]),
    );
    body["totalSeats"] = json!(12);
    let created = create_event(&app, &organizer, &body).await;
    assert_eq!(created["totalSeats"], 12);
    assert_eq!(
        created["ticketTypes"][0]["priceCents"], 0,
        "price defaults to 0"
    );
}

#[tokio::test]
async fn bad_type_lists_are_refused_and_write_nothing() {
    let app = TestApp::spawn().await;
    let (organizer, _) = app.organizer("org@example.com").await;
    let cases: Vec<(Value, &str)> = vec![
        (
            json!([{ "name": "VIP", "totalSeats": 5 }, { "name": " vip ", "totalSeats": 5 }]),
            "Ticket type names must be unique within an event",
        ),
        (
            Value::Array(
                (0..21)
                    .map(|n| json!({ "name": format!("T{n}"), "totalSeats": 1 }))
                    .collect(),
            ),
            "An event can have at most 20 ticket types",
        ),
        (
            json!([{ "name": "A", "totalSeats": 600000 }, { "name": "B", "totalSeats": 400001 }]),
            "An event can have at most 1000000 seats",
        ),
    ];
    for (types, message) in cases {
        let (status, body) = parts(
            app.post("/events", Some(&organizer), &typed_event("DRAFT", types))
                .await,
        )
        .await;
        assert_error(status, &body, 400, message);
    }
    let mut mismatch = typed_event("DRAFT", json!([{ "name": "A", "totalSeats": 5 }]));
    mismatch["totalSeats"] = json!(6);
    let (status, body) = parts(app.post("/events", Some(&organizer), &mismatch).await).await;
    assert_error(
        status,
        &body,
        400,
        "totalSeats must equal the sum of the ticket types' seats",
    );

    let (status, body) = parts(
        app.post(
            "/events",
            Some(&organizer),
            &typed_event("DRAFT", json!([{ "name": "", "priceCents": -1, "totalSeats": 0 }, { "name": "B", "priceCents": 100000001 }])),
        )
        .await,
    )
    .await;
    assert_validation(
        status,
        &body,
        &[
            "ticketTypes[0].name should not be empty",
            "ticketTypes[0].priceCents must not be less than 0",
            "ticketTypes[0].totalSeats must not be less than 1",
            "ticketTypes[1].priceCents must not be greater than 100000000",
            "ticketTypes[1].totalSeats should not be empty",
        ],
    );
    let (status, body) = parts(
        app.post(
            "/events",
            Some(&organizer),
            &typed_event("DRAFT", json!([])),
        )
        .await,
    )
    .await;
    assert_validation(
        status,
        &body,
        &["ticketTypes must contain at least 1 elements"],
    );
    let mut bad_currency = event_body("Money", 5, "DRAFT");
    bad_currency["currency"] = json!("usd");
    let (status, body) = parts(app.post("/events", Some(&organizer), &bad_currency).await).await;
    assert_validation(
        status,
        &body,
        &["currency must be an ISO 4217 code of three upper-case letters"],
    );

    assert_eq!(count(&app, "events").await, 0, "nothing half-written");
    assert_eq!(count(&app, "ticket_types").await, 0);
}

#[tokio::test]
async fn bookings_choose_a_type_and_pay_its_price() {
    let app = TestApp::spawn().await;
    let (_, event_id, vip, general) = vip_and_general(&app).await;
    let (user, _) = app.user("user@example.com").await;

    let (status, body) = parts(
        app.post("/bookings", Some(&user), &booking(event_id, 1))
            .await,
    )
    .await;
    assert_error(status, &body, 400, TWO_TYPES);
    let (status, body) = parts(
        app.post("/bookings", Some(&user), &typed_booking(event_id, 999, 1))
            .await,
    )
    .await;
    assert_error(status, &body, 404, "Ticket type with ID 999 not found");

    let (status, body) = parts(
        app.post("/bookings", Some(&user), &typed_booking(event_id, vip, 2))
            .await,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["data"]["ticketTypeId"], vip);
    assert_eq!(body["data"]["totalPriceCents"], 50000);
    assert_eq!(body["data"]["seatCount"], 2);
    let (status, body) = parts(
        app.post("/bookings", Some(&user), &typed_booking(event_id, vip, 19))
            .await,
    )
    .await;
    assert_error(
        status,
        &body,
        409,
        "Not enough seats available. Requested: 19, Available: 18",
    );
    let (status, body) = parts(
        app.post(
            "/bookings",
            Some(&user),
            &typed_booking(event_id, general, 19),
        )
        .await,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["data"]["totalPriceCents"], 19 * 9000);
    assert_eq!(
        type_state(&app, event_id).await,
        vec![(20, 18, 2), (80, 61, 19)]
    );

    // A type of another event is not one of this event's types.
    let (organizer2, _) = app.organizer("org2@example.com").await;
    let other = create_event(&app, &organizer2, &event_body("Other", 10, "PUBLISHED")).await;
    let other_type = other["ticketTypes"][0]["id"].as_i64().unwrap();
    let (status, body) = parts(
        app.post(
            "/bookings",
            Some(&user),
            &typed_booking(event_id, other_type, 1),
        )
        .await,
    )
    .await;
    assert_error(
        status,
        &body,
        404,
        &format!("Ticket type with ID {other_type} not found"),
    );
    assert_eq!(
        type_state(&app, event_id).await,
        vec![(20, 18, 2), (80, 61, 19)],
        "refusals took nothing"
    );

    // A later price change does not alter what was paid.
    let reference = first_booking(&app, event_id).await;
    sqlx::query("UPDATE ticket_types SET price_cents = 1 WHERE id = $1")
        .bind(vip as i32)
        .execute(&app.db)
        .await
        .unwrap();
    let (_, detail) = parts(
        app.get(&format!("/bookings/{reference}"), Some(&user))
            .await,
    )
    .await;
    assert_eq!(detail["totalPriceCents"], 50000);
    assert_eq!(detail["ticketTypeId"], vip);

    // Cancelling gives the seats back to the booking's own type.
    let (status, body) = parts(
        app.delete(&format!("/bookings/{reference}"), Some(&user))
            .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        type_state(&app, event_id).await,
        vec![(20, 20, 0), (80, 61, 19)]
    );
}

/// The reference of the event's oldest booking.
async fn first_booking(app: &TestApp, event_id: i64) -> String {
    sqlx::query_scalar(
        "SELECT booking_reference::text FROM bookings WHERE event_id = $1 ORDER BY id LIMIT 1",
    )
    .bind(event_id as i32)
    .fetch_one(&app.db)
    .await
    .unwrap()
}

#[tokio::test]
async fn the_status_and_date_rules_come_before_the_type_rules() {
    let app = TestApp::spawn().await;
    let (organizer, _) = app.organizer("org@example.com").await;
    let (user, _) = app.user("user@example.com").await;
    let types = json!([{ "name": "A", "totalSeats": 5 }, { "name": "B", "totalSeats": 5 }]);
    let cancelled = create_event(&app, &organizer, &typed_event("CANCELLED", types.clone())).await;
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
    let mut past = typed_event("PUBLISHED", types);
    past["eventDate"] = json!("2020-01-01T00:00:00Z");
    let past = create_event(&app, &organizer, &past).await;
    let (status, body) = parts(
        app.post(
            "/bookings",
            Some(&user),
            &typed_booking(past["id"].as_i64().unwrap(), 999, 1),
        )
        .await,
    )
    .await;
    assert_error(status, &body, 400, "Cannot book past events");
    let (status, body) = parts(
        app.post(
            "/bookings",
            Some(&user),
            &json!({ "eventId": 1, "seatCount": 1, "ticketTypeId": 0 }),
        )
        .await,
    )
    .await;
    assert_validation(status, &body, &["ticketTypeId must not be less than 1"]);
}

#[tokio::test]
async fn organizers_add_types_and_the_event_grows() {
    let app = TestApp::spawn().await;
    let (organizer, event_id, _, _) = vip_and_general(&app).await;
    let path = format!("/events/{event_id}/ticket-types");

    let (status, created) = parts(
        app.post(
            &path,
            Some(&organizer),
            &json!({ "name": "Balcony", "priceCents": 5000, "totalSeats": 30 }),
        )
        .await,
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["name"], "Balcony");
    assert_eq!(
        (
            created["totalSeats"].clone(),
            created["availableSeats"].clone()
        ),
        (json!(30), json!(30))
    );
    assert_eq!(version(&app, event_id).await, 1);
    assert_eq!(type_state(&app, event_id).await.len(), 3);
    let (_, event) = parts(app.get(&format!("/events/{event_id}"), None).await).await;
    assert_eq!(
        (event["totalSeats"].clone(), event["availableSeats"].clone()),
        (json!(130), json!(130))
    );

    let (status, body) = parts(
        app.post(
            &path,
            Some(&organizer),
            &json!({ "name": "balcony", "totalSeats": 1 }),
        )
        .await,
    )
    .await;
    assert_error(
        status,
        &body,
        409,
        "Ticket type name already used in this event",
    );
    let (status, body) = parts(
        app.post(
            &path,
            Some(&organizer),
            &json!({ "name": "Huge", "totalSeats": 999871 }),
        )
        .await,
    )
    .await;
    assert_error(
        status,
        &body,
        400,
        "An event can have at most 1000000 seats",
    );
    let (status, body) = parts(
        app.post(
            &path,
            Some(&organizer),
            &json!({ "name": "", "priceCents": -5 }),
        )
        .await,
    )
    .await;
    assert_validation(
        status,
        &body,
        &[
            "name should not be empty",
            "priceCents must not be less than 0",
            "totalSeats should not be empty",
        ],
    );
    for n in 3..20 {
        let (status, body) = parts(
            app.post(
                &path,
                Some(&organizer),
                &json!({ "name": format!("Row {n}"), "totalSeats": 1 }),
            )
            .await,
        )
        .await;
        assert_eq!(status, 201, "{body}");
    }
    let (status, body) = parts(
        app.post(
            &path,
            Some(&organizer),
            &json!({ "name": "Row 21", "totalSeats": 1 }),
        )
        .await,
    )
    .await;
    assert_error(
        status,
        &body,
        400,
        "An event can have at most 20 ticket types",
    );
    assert_eq!(type_state(&app, event_id).await.len(), 20);

    let (other, _) = app.organizer("other@example.com").await;
    let (status, body) = parts(
        app.post(
            &path,
            Some(&other),
            &json!({ "name": "X", "totalSeats": 1 }),
        )
        .await,
    )
    .await;
    assert_error(status, &body, 403, "You can only update your own events");
    let (user, _) = app.user("user@example.com").await;
    let (status, body) = parts(
        app.post(&path, Some(&user), &json!({ "name": "X", "totalSeats": 1 }))
            .await,
    )
    .await;
    assert_error(status, &body, 403, "Forbidden resource");
    let (status, body) = parts(
        app.post(
            "/events/999999/ticket-types",
            Some(&organizer),
            &json!({ "name": "X", "totalSeats": 1 }),
        )
        .await,
    )
    .await;
    assert_error(status, &body, 404, "Event with ID 999999 not found");
    let (status, body) = parts(
        app.post(
            "/events/abc/ticket-types",
            Some(&organizer),
            &json!({ "name": "X", "totalSeats": 1 }),
        )
        .await,
    )
    .await;
    assert_error(status, &body, 400, crate::helpers::BAD_ID);
}

#[tokio::test]
async fn organizers_change_a_type_within_its_booked_seats() {
    let app = TestApp::spawn().await;
    let (organizer, event_id, vip, general) = vip_and_general(&app).await;
    let (user, _) = app.user("user@example.com").await;
    let (status, _) = parts(
        app.post("/bookings", Some(&user), &typed_booking(event_id, vip, 5))
            .await,
    )
    .await;
    assert_eq!(status, 201);
    let vip_path = format!("/events/{event_id}/ticket-types/{vip}");
    let before = version(&app, event_id).await;

    let (status, body) = parts(
        app.put(&vip_path, Some(&organizer), &json!({ "totalSeats": 4 }))
            .await,
    )
    .await;
    assert_error(
        status,
        &body,
        400,
        "Cannot reduce total seats below 5 (already booked seats)",
    );
    let (status, body) = parts(
        app.put(
            &vip_path,
            Some(&organizer),
            &json!({ "totalSeats": 30, "priceCents": 30000, "name": "V.I.P." }),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({ "id": vip, "name": "V.I.P.", "priceCents": 30000, "totalSeats": 30, "availableSeats": 25 })
    );
    assert_eq!(version(&app, event_id).await, before + 1);
    assert_eq!(
        type_state(&app, event_id).await,
        vec![(30, 25, 5), (80, 80, 0)]
    );

    // Nothing changed, nothing written.
    let (status, same) = parts(
        app.put(
            &vip_path,
            Some(&organizer),
            &json!({ "name": "V.I.P.", "totalSeats": 30 }),
        )
        .await,
    )
    .await;
    assert_eq!((status, &same), (200, &body));
    assert_eq!(version(&app, event_id).await, before + 1);

    let (status, body) = parts(
        app.put(&vip_path, Some(&organizer), &json!({ "name": "general" }))
            .await,
    )
    .await;
    assert_error(
        status,
        &body,
        409,
        "Ticket type name already used in this event",
    );
    let (status, body) = parts(
        app.put(
            &vip_path,
            Some(&organizer),
            &json!({ "totalSeats": 999951 }),
        )
        .await,
    )
    .await;
    assert_error(
        status,
        &body,
        400,
        "An event can have at most 1000000 seats",
    );
    let (status, body) = parts(
        app.put(&vip_path, Some(&organizer), &json!({ "priceCents": null }))
            .await,
    )
    .await;
    assert_validation(status, &body, &["priceCents must not be null"]);

    let (organizer2, _) = app.organizer("org2@example.com").await;
    let other = create_event(&app, &organizer2, &event_body("Other", 10, "PUBLISHED")).await;
    let other_type = other["ticketTypes"][0]["id"].as_i64().unwrap();
    let (status, body) = parts(
        app.put(
            &format!("/events/{event_id}/ticket-types/{other_type}"),
            Some(&organizer),
            &json!({ "priceCents": 1 }),
        )
        .await,
    )
    .await;
    assert_error(
        status,
        &body,
        404,
        &format!("Ticket type with ID {other_type} not found"),
    );
    let (status, body) = parts(
        app.put(
            &format!("/events/{event_id}/ticket-types/{general}"),
            Some(&organizer2),
            &json!({ "priceCents": 1 }),
        )
        .await,
    )
    .await;
    assert_error(status, &body, 403, "You can only update your own events");
    assert_eq!(
        type_state(&app, event_id).await,
        vec![(30, 25, 5), (80, 80, 0)],
        "refusals wrote nothing"
    );
}

#[tokio::test]
async fn types_with_bookings_and_the_last_type_cannot_be_deleted() {
    let app = TestApp::spawn().await;
    let (organizer, event_id, vip, general) = vip_and_general(&app).await;
    let (user, _) = app.user("user@example.com").await;
    let (status, _) = parts(
        app.post("/bookings", Some(&user), &typed_booking(event_id, vip, 1))
            .await,
    )
    .await;
    assert_eq!(status, 201);

    let (status, body) = parts(
        app.delete(
            &format!("/events/{event_id}/ticket-types/{vip}"),
            Some(&organizer),
        )
        .await,
    )
    .await;
    assert_error(
        status,
        &body,
        400,
        "Cannot delete a ticket type with existing bookings",
    );
    let (status, body) = parts(
        app.delete(
            &format!("/events/{event_id}/ticket-types/{general}"),
            Some(&organizer),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({ "message": "Ticket type deleted successfully", "ticketTypeId": general })
    );
    assert_eq!(type_state(&app, event_id).await, vec![(20, 19, 1)]);

    let (organizer2, _) = app.organizer("org2@example.com").await;
    let lone = create_event(&app, &organizer2, &event_body("Lone", 10, "PUBLISHED")).await;
    let lone_type = lone["ticketTypes"][0]["id"].as_i64().unwrap();
    let (status, body) = parts(
        app.delete(
            &format!("/events/{}/ticket-types/{lone_type}", lone["id"]),
            Some(&organizer2),
        )
        .await,
    )
    .await;
    assert_error(
        status,
        &body,
        400,
        "An event must keep at least one ticket type",
    );
    let (status, body) = parts(
        app.delete(
            &format!("/events/{event_id}/ticket-types/{general}"),
            Some(&organizer),
        )
        .await,
    )
    .await;
    assert_error(
        status,
        &body,
        404,
        &format!("Ticket type with ID {general} not found"),
    );
}

#[tokio::test]
async fn event_updates_resize_only_a_single_type_and_never_take_ticket_types() {
    let app = TestApp::spawn().await;
    let (organizer, event_id, _, _) = vip_and_general(&app).await;
    let path = format!("/events/{event_id}");
    let (status, body) = parts(
        app.put(&path, Some(&organizer), &json!({ "totalSeats": 150 }))
            .await,
    )
    .await;
    assert_error(
        status,
        &body,
        400,
        "This event has several ticket types: resize them one by one",
    );
    let (status, body) = parts(
        app.put(&path, Some(&organizer), &json!({ "ticketTypes": [] }))
            .await,
    )
    .await;
    assert_error(
        status,
        &body,
        400,
        "ticketTypes cannot be changed here: use /events/{id}/ticket-types",
    );
    let (status, body) = parts(
        app.put(
            &path,
            Some(&organizer),
            &json!({ "venue": null, "city": "Basel", "currency": "EUR" }),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (
            body["venue"].clone(),
            body["city"].clone(),
            body["currency"].clone()
        ),
        (Value::Null, json!("Basel"), json!("EUR"))
    );
    let (status, body) = parts(
        app.put(&path, Some(&organizer), &json!({ "currency": null }))
            .await,
    )
    .await;
    assert_validation(status, &body, &["currency must not be null"]);

    let single = create_event(&app, &organizer, &event_body("Single", 10, "PUBLISHED")).await;
    let (user, _) = app.user("user@example.com").await;
    let (status, _) = parts(
        app.post(
            "/bookings",
            Some(&user),
            &booking(single["id"].as_i64().unwrap(), 4),
        )
        .await,
    )
    .await;
    assert_eq!(status, 201);
    let (status, body) = parts(
        app.put(
            &format!("/events/{}", single["id"]),
            Some(&organizer),
            &json!({ "totalSeats": 25 }),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["ticketTypes"][0]["totalSeats"], 25);
    assert_eq!(body["ticketTypes"][0]["availableSeats"], 21);
    assert_eq!(
        type_state(&app, single["id"].as_i64().unwrap()).await,
        vec![(25, 21, 4)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_hundred_bookings_over_two_types_sell_each_type_exactly() {
    let app = TestApp::spawn().await;
    let (organizer, _) = app.organizer("org@example.com").await;
    let event = create_event(
        &app,
        &organizer,
        &typed_event(
            "PUBLISHED",
            json!([{ "name": "VIP", "totalSeats": 40 }, { "name": "General", "totalSeats": 60 }]),
        ),
    )
    .await;
    let event_id = event["id"].as_i64().unwrap();
    let types = [
        event["ticketTypes"][0]["id"].as_i64().unwrap(),
        event["ticketTypes"][1]["id"].as_i64().unwrap(),
    ];
    let mut tokens = Vec::new();
    for n in 0..30 {
        tokens.push(app.user(&format!("racer{n}@example.com")).await.0);
    }
    let requests: Vec<_> = (0..300)
        .map(|n| {
            let type_id = types[n % 2];
            let request = app
                .request(reqwest::Method::POST, "/bookings", Some(&tokens[n % 30]))
                .json(&typed_booking(event_id, type_id, 1));
            tokio::spawn(async move { (type_id, parts(request.send().await.expect("POST")).await) })
        })
        .collect();
    let mut confirmed = [0usize; 2];
    for request in requests {
        let (type_id, (status, body)) = request.await.unwrap();
        let index = usize::from(type_id == types[1]);
        match status {
            201 => {
                assert_eq!(body["data"]["ticketTypeId"], type_id);
                confirmed[index] += 1;
            }
            _ => assert_error(
                status,
                &body,
                409,
                "Not enough seats available. Requested: 1, Available: 0",
            ),
        }
    }
    assert_eq!(confirmed, [40, 60], "each type sells exactly its seats");
    assert_eq!(
        type_state(&app, event_id).await,
        vec![(40, 0, 40), (60, 0, 60)]
    );
    assert_eq!(version(&app, event_id).await, 100);
}

/// Bookings of both types racing the organizer's changes of them (renames that swap names,
/// resizes, new prices), all through the event's lane. Every answer is one of the contract's,
/// none lost a race, and an error answer changed nothing: no booking was priced by a refused
/// edit, and the types end as some successful edit (or the start) left them.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bookings_race_with_renames_resizes_and_new_prices_of_the_types() {
    const NAMES: [&str; 4] = ["General", "VIP", "Balcony", "Floor"];
    let app = TestApp::spawn().await;
    let (organizer, event_id, vip, general) = vip_and_general(&app).await;
    let types = [vip, general];
    let mut tokens = Vec::new();
    for n in 0..30 {
        tokens.push(app.user(&format!("racer{n}@example.com")).await.0);
    }
    let initial_version = version(&app, event_id).await;
    let mut requests = Vec::new();
    for n in 0..120 {
        let type_id = types[n % 2];
        let request = app
            .request(reqwest::Method::POST, "/bookings", Some(&tokens[n % 30]))
            .json(&typed_booking(event_id, type_id, 1));
        requests.push((None, type_id, request));
    }
    for n in 0..40 {
        let type_id = types[n % 2];
        // Every edit sets a price of its own, so every 200 is a real change.
        let mut edit = json!({ "priceCents": 10_000 + n });
        if n % 3 != 2 {
            edit["name"] = json!(NAMES[(n / 2) % 4]);
        }
        match n % 5 {
            0 => edit["totalSeats"] = json!(15),
            1 => edit["totalSeats"] = json!(90),
            _ => {}
        }
        let request = app
            .request(
                reqwest::Method::PUT,
                &format!("/events/{event_id}/ticket-types/{type_id}"),
                Some(&organizer),
            )
            .json(&edit);
        requests.push((Some(edit), type_id, request));
    }
    let handles: Vec<_> = requests
        .into_iter()
        .map(|(edit, type_id, request)| {
            tokio::spawn(async move {
                let answer = parts(request.send().await.expect("request")).await;
                (edit, type_id, answer)
            })
        })
        .collect();
    let mut booked = [0i64; 2];
    // Per type, the prices and names it may end with or have charged: the start's and those
    // of every edit answered 200.
    let mut prices = [vec![25_000i64], vec![9_000i64]];
    let mut names = [vec!["VIP".to_string()], vec!["General".to_string()]];
    let mut edits_applied = 0;
    for handle in handles {
        let (edit, type_id, (status, body)) = handle.await.unwrap();
        let index = usize::from(type_id == general);
        match edit {
            None if status == 201 => {
                assert_eq!(body["data"]["ticketTypeId"], type_id, "{body}");
                booked[index] += 1;
            }
            None => assert_error(
                status,
                &body,
                409,
                "Not enough seats available. Requested: 1, Available: 0",
            ),
            Some(edit) if status == 200 => {
                assert_eq!(body["id"], type_id, "{body}");
                assert_eq!(body["priceCents"], edit["priceCents"], "{body}");
                if !edit["name"].is_null() {
                    assert_eq!(body["name"], edit["name"], "{body}");
                }
                if !edit["totalSeats"].is_null() {
                    assert_eq!(body["totalSeats"], edit["totalSeats"], "{body}");
                }
                prices[index].push(edit["priceCents"].as_i64().unwrap());
                names[index].push(body["name"].as_str().unwrap().to_string());
                edits_applied += 1;
            }
            Some(_) if status == 409 => assert_error(
                status,
                &body,
                409,
                "Ticket type name already used in this event",
            ),
            Some(_) => {
                let message = body["message"].as_str().unwrap_or_default();
                assert_eq!(status, 400, "{body}");
                assert!(
                    message.starts_with("Cannot reduce total seats below ")
                        && message.ends_with(" (already booked seats)"),
                    "{body}"
                );
            }
        }
    }
    let state = type_state(&app, event_id).await;
    assert_eq!([state[0].2, state[1].2], booked, "CONFIRMED seats per type");
    let rows: Vec<(i32, i64, String, i32)> = sqlx::query_as(
        "SELECT t.id, t.price_cents::bigint, t.name, \
                (SELECT count(*) FROM ticket_types o WHERE o.event_id = t.event_id \
                 AND lower(o.name) = lower(t.name))::int \
         FROM ticket_types t WHERE t.event_id = $1 ORDER BY t.id",
    )
    .bind(event_id as i32)
    .fetch_all(&app.db)
    .await
    .unwrap();
    for (id, price, name, holders) in rows {
        let index = usize::from(i64::from(id) == general);
        assert!(prices[index].contains(&price), "type {id} ends at {price}");
        assert!(names[index].contains(&name), "type {id} ends as {name}");
        assert_eq!(holders, 1, "names stay unique");
    }
    let charged: Vec<(i32, i64)> = sqlx::query_as(
        "SELECT ticket_type_id, total_price_cents FROM bookings WHERE event_id = $1",
    )
    .bind(event_id as i32)
    .fetch_all(&app.db)
    .await
    .unwrap();
    for (type_id, price) in charged {
        let index = usize::from(i64::from(type_id) == general);
        assert!(
            prices[index].contains(&price),
            "a booking of type {type_id} charged {price}, a price no successful edit set"
        );
    }
    assert_eq!(
        version(&app, event_id).await,
        initial_version + booked[0] + booked[1] + edits_applied,
        "one version per 201 booking and per 200 edit"
    );
}
