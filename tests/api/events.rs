use serde_json::{json, Value};

use crate::helpers::{assert_error, assert_validation, parts, TestApp, BAD_ID, INVALID_TOKEN};

pub fn event_body(title: &str, seats: i64, status: &str) -> Value {
    json!({
        "title": title, "description": "A test event", "totalSeats": seats,
        "status": status, "eventDate": "2030-06-01T18:00:00.000Z",
    })
}

/// Creates an event through the API and returns its JSON.
pub async fn create_event(app: &TestApp, token: &str, body: &Value) -> Value {
    let (status, event) = parts(app.post("/events", Some(token), body).await).await;
    assert_eq!(status, 201, "{event}");
    event
}

/// The NOT EXISTS guard does not see a booking that is not committed yet; the foreign key
/// does: the delete waits for the booking's transaction, then is refused, and the event stays.
#[tokio::test]
async fn a_booking_committed_while_the_delete_waits_still_refuses_it() {
    let app = TestApp::spawn().await;
    let (token, _) = app.organizer("org@example.com").await;
    let (_, user_id) = app.user("user@example.com").await;
    let event = create_event(&app, &token, &event_body("Racing", 10, "PUBLISHED")).await;
    let mut booking = app.db.begin().await.unwrap();
    insert_booking_row(&mut booking, id_of(&event), user_id, 1).await;
    let path = format!("/events/{}", id_of(&event));
    let deleting = async { parts(app.delete(&path, Some(&token)).await).await };
    let committing = async {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        booking.commit().await.unwrap();
    };
    let ((status, body), ()) = tokio::join!(deleting, committing);
    assert_error(
        status,
        &body,
        400,
        "Cannot delete event with existing bookings. Cancel all bookings first or mark event as cancelled.",
    );
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE id = $1")
        .bind(id_of(&event) as i32)
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(left, 1);
}

fn id_of(value: &Value) -> i64 {
    value["id"].as_i64().expect("id")
}

/// Marks `seats` of an event as booked, directly in SQL (bookings have their own tests).
async fn book_in_sql(app: &TestApp, event_id: i64, user_id: i32, seats: i32) {
    let mut tx = app.db.begin().await.unwrap();
    sqlx::query(
        "UPDATE events SET available_seats = available_seats - $2, \
                booking_count = booking_count + 1 WHERE id = $1",
    )
    .bind(event_id as i32)
    .bind(seats)
    .execute(&mut *tx)
    .await
    .unwrap();
    // The event's only ticket type gives up the same seats.
    sqlx::query(
        "UPDATE ticket_types SET available_seats = available_seats - $2 WHERE event_id = $1",
    )
    .bind(event_id as i32)
    .bind(seats)
    .execute(&mut *tx)
    .await
    .unwrap();
    insert_booking_row(&mut tx, event_id, user_id, seats).await;
    tx.commit().await.unwrap();
}

/// The booking row alone, of the event's only ticket type, in `conn`'s transaction.
async fn insert_booking_row(
    conn: &mut sqlx::PgConnection,
    event_id: i64,
    user_id: i32,
    seats: i32,
) {
    sqlx::query(
        "INSERT INTO bookings (user_id, event_id, ticket_type_id, seat_count, booking_reference) \
         SELECT $1, $2, t.id, $3, gen_random_uuid() FROM ticket_types t WHERE t.event_id = $2",
    )
    .bind(user_id)
    .bind(event_id as i32)
    .bind(seats)
    .execute(conn)
    .await
    .unwrap();
}

#[tokio::test]
async fn organizer_creates_an_event_with_all_seats_available() {
    let app = TestApp::spawn().await;
    let (token, organizer_id) = app.organizer("org@example.com").await;
    let body = json!({ "title": "  Launch party ", "totalSeats": 50, "extra": "ignored" });
    let event = create_event(&app, &token, &body).await;

    assert_eq!(event["title"], "Launch party");
    assert_eq!(event["description"], Value::Null);
    assert_eq!(event["totalSeats"], 50);
    assert_eq!(event["availableSeats"], 50);
    assert_eq!(event["status"], "DRAFT");
    assert_eq!(event["version"], 0);
    assert_eq!(event["eventDate"], Value::Null);
    assert_eq!(event["organizerId"], organizer_id);
    assert_eq!(
        event["organizer"],
        json!({ "id": organizer_id, "firstname": "Test", "lastname": "User" })
    );
    assert_eq!(event["_count"], json!({ "bookings": 0 }));

    let (seats, available, version): (i32, i32, i64) =
        sqlx::query_as("SELECT total_seats, available_seats, version FROM events WHERE id = $1")
            .bind(id_of(&event) as i32)
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!((seats, available, version), (50, 50, 0));
}

#[tokio::test]
async fn event_dates_keep_their_instant_and_past_dates_are_allowed() {
    let app = TestApp::spawn().await;
    let (token, _) = app.organizer("org@example.com").await;
    let mut body = event_body("Past", 10, "PUBLISHED");
    body["eventDate"] = json!("2020-01-01T20:00:00+02:00");
    let event = create_event(&app, &token, &body).await;
    assert_eq!(event["eventDate"], "2020-01-01T18:00:00.000Z");
    assert_eq!(event["status"], "PUBLISHED");
}

#[tokio::test]
async fn only_organizers_create_events() {
    let app = TestApp::spawn().await;
    let (user, _) = app.user("user@example.com").await;
    let body = event_body("Nope", 10, "PUBLISHED");
    let (status, error) = parts(app.post("/events", None, &body).await).await;
    assert_error(status, &error, 401, "Unauthorized");
    let (status, error) = parts(app.post("/events", Some(&user), &body).await).await;
    assert_error(status, &error, 403, "Forbidden resource");
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(count, 0);
}

#[tokio::test]
async fn create_validation_messages() {
    let app = TestApp::spawn().await;
    let (token, _) = app.organizer("org@example.com").await;
    let (status, body) = parts(app.post("/events", Some(&token), &json!({})).await).await;
    assert_validation(
        status,
        &body,
        &[
            "title should not be empty",
            "totalSeats should not be empty",
        ],
    );

    let bad = json!({
        "title": "t".repeat(201), "description": "d".repeat(5001), "totalSeats": 0,
        "status": "OPEN", "eventDate": "next friday",
    });
    let (status, body) = parts(app.post("/events", Some(&token), &bad).await).await;
    assert_validation(
        status,
        &body,
        &[
            "title must be shorter than or equal to 200 characters",
            "description must be shorter than or equal to 5000 characters",
            "totalSeats must not be less than 1",
            "status must be one of the following values: DRAFT, PUBLISHED, CANCELLED, COMPLETED",
            "eventDate must be a valid ISO 8601 date string with a time zone",
        ],
    );
    let (status, body) = parts(
        app.post(
            "/events",
            Some(&token),
            &json!({ "title": "x", "totalSeats": 1_000_001 }),
        )
        .await,
    )
    .await;
    assert_validation(
        status,
        &body,
        &["totalSeats must not be greater than 1000000"],
    );
    for seats in [
        json!("ten"),
        json!(1.5),
        json!(99_999_999_999_999_999_999.0),
    ] {
        let (status, body) = parts(
            app.post(
                "/events",
                Some(&token),
                &json!({ "title": "x", "totalSeats": seats }),
            )
            .await,
        )
        .await;
        assert_validation(status, &body, &["totalSeats must be an integer number"]);
    }
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(count, 0);
}

#[tokio::test]
async fn list_is_paginated_newest_first() {
    let app = TestApp::spawn().await;
    let (token, _) = app.organizer("org@example.com").await;
    for n in 1..=12 {
        create_event(&app, &token, &event_body(&format!("E{n}"), 10, "PUBLISHED")).await;
    }
    let (status, page) = parts(app.get("/events?page=3&limit=5", None).await).await;
    assert_eq!(status, 200);
    assert_eq!(
        page["meta"],
        json!({ "total": 12, "page": 3, "limit": 5, "totalPages": 3, "totalExact": true })
    );
    let titles: Vec<&str> = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["title"].as_str().unwrap())
        .collect();
    assert_eq!(titles, ["E2", "E1"]);

    let (_, first) = parts(app.get("/events", None).await).await;
    assert_eq!(
        first["meta"],
        json!({ "total": 12, "page": 1, "limit": 10, "totalPages": 2, "totalExact": true })
    );
    assert_eq!(first["data"][0]["title"], "E12");
    let item = &first["data"][0];
    assert!(
        item["organizer"].get("email").is_none(),
        "no organizer email in the public view"
    );
    assert_eq!(item["_count"]["bookings"], 0);

    let (_, beyond) = parts(app.get("/events?page=9", None).await).await;
    assert_eq!(beyond["data"], json!([]));
    assert_eq!(beyond["meta"]["total"], 12);
}

#[tokio::test]
async fn list_rejects_bad_pagination_and_filters() {
    let app = TestApp::spawn().await;
    for (query, message) in [
        ("limit=0", "limit must not be less than 1"),
        ("limit=101", "limit must not be greater than 100"),
        ("limit=abc", "limit must be an integer number"),
        ("page=0", "page must not be less than 1"),
        ("page=-1", "page must not be less than 1"),
        (
            "page=99999999999999999999",
            "page must be an integer number",
        ),
        (
            "status=OPEN",
            "status must be one of the following values: DRAFT, PUBLISHED, CANCELLED, COMPLETED",
        ),
        (
            "organizerId=x",
            "organizerId must be an integer from 1 to 2147483647",
        ),
    ] {
        let (status, body) = parts(app.get(&format!("/events?{query}"), None).await).await;
        assert_validation(status, &body, &[message]);
    }
    let (status, _) = parts(app.get("/events?limit=100", None).await).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn list_filters_by_status_and_organizer() {
    let app = TestApp::spawn().await;
    let (a, a_id) = app.organizer("a@example.com").await;
    let (b, b_id) = app.organizer("b@example.com").await;
    create_event(&app, &a, &event_body("A published", 10, "PUBLISHED")).await;
    create_event(&app, &a, &event_body("A cancelled", 10, "CANCELLED")).await;
    create_event(&app, &b, &event_body("B published", 10, "PUBLISHED")).await;

    let titles = |page: &Value| -> Vec<String> {
        page["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["title"].as_str().unwrap().to_string())
            .collect()
    };
    let (_, page) = parts(app.get("/events?status=CANCELLED", None).await).await;
    assert_eq!(titles(&page), ["A cancelled"]);
    let (_, page) = parts(app.get(&format!("/events?organizerId={b_id}"), None).await).await;
    assert_eq!(titles(&page), ["B published"]);
    let (_, page) = parts(
        app.get(
            &format!("/events?organizerId={a_id}&status=PUBLISHED"),
            None,
        )
        .await,
    )
    .await;
    assert_eq!(titles(&page), ["A published"]);
    assert_eq!(page["meta"]["total"], 1);
}

#[tokio::test]
async fn drafts_are_visible_only_to_their_organizer() {
    let app = TestApp::spawn().await;
    let (owner, _) = app.organizer("owner@example.com").await;
    let (other, _) = app.organizer("other@example.com").await;
    let (user, _) = app.user("user@example.com").await;
    let draft = create_event(&app, &owner, &event_body("Secret", 10, "DRAFT")).await;
    create_event(&app, &owner, &event_body("Public", 10, "PUBLISHED")).await;
    let path = format!("/events/{}", id_of(&draft));

    for token in [None, Some(other.as_str()), Some(user.as_str())] {
        let (_, page) = parts(app.get("/events", token).await).await;
        assert_eq!(page["meta"]["total"], 1, "{token:?}");
        assert_eq!(page["data"][0]["title"], "Public");
        let (_, page) = parts(app.get("/events?status=DRAFT", token).await).await;
        assert_eq!(page["meta"]["total"], 0);
        let (status, body) = parts(app.get(&path, token).await).await;
        assert_error(
            status,
            &body,
            404,
            &format!("Event with ID {} not found", id_of(&draft)),
        );
    }
    let (_, page) = parts(app.get("/events", Some(&owner)).await).await;
    assert_eq!(page["meta"]["total"], 2);
    let (status, body) = parts(app.get(&path, Some(&owner)).await).await;
    assert_eq!(status, 200);
    assert_eq!(body["title"], "Secret");
}

#[tokio::test]
async fn get_event_by_id() {
    let app = TestApp::spawn().await;
    let (token, _) = app.organizer("org@example.com").await;
    let event = create_event(&app, &token, &event_body("Show", 10, "PUBLISHED")).await;
    let (status, body) = parts(app.get(&format!("/events/{}", id_of(&event)), None).await).await;
    assert_eq!(status, 200);
    assert_eq!(body, event);

    let (status, body) = parts(app.get("/events/999999", None).await).await;
    assert_error(status, &body, 404, "Event with ID 999999 not found");
    for bad in [
        "abc",
        "0",
        "-1",
        "1.5",
        "2147483648",
        "99999999999999999999",
    ] {
        let (status, body) = parts(app.get(&format!("/events/{bad}"), None).await).await;
        assert_error(status, &body, 400, BAD_ID);
    }
    let (status, body) = parts(app.get("/events/2147483647", None).await).await;
    assert_error(status, &body, 404, "Event with ID 2147483647 not found");
}

#[tokio::test]
async fn a_bad_token_on_a_public_route_is_401() {
    let app = TestApp::spawn().await;
    let (status, body) = parts(app.get("/events", Some("not-a-token")).await).await;
    assert_error(status, &body, 401, INVALID_TOKEN);
}

#[tokio::test]
async fn update_is_partial_and_bumps_the_version_once_per_change() {
    let app = TestApp::spawn().await;
    let (token, _) = app.organizer("org@example.com").await;
    let event = create_event(&app, &token, &event_body("Old", 10, "DRAFT")).await;
    let path = format!("/events/{}", id_of(&event));

    let (status, body) = parts(
        app.put(&path, Some(&token), &json!({ "title": "New" }))
            .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["title"], "New");
    assert_eq!(body["description"], "A test event");
    assert_eq!(body["status"], "DRAFT");
    assert_eq!(body["version"], 1);

    let (_, body) = parts(
        app.put(&path, Some(&token), &json!({ "title": "New" }))
            .await,
    )
    .await;
    assert_eq!(
        body["version"], 1,
        "a body that changes nothing bumps nothing"
    );
    let (_, body) = parts(app.put(&path, Some(&token), &json!({})).await).await;
    assert_eq!(body["version"], 1);

    let (_, body) = parts(
        app.put(
            &path,
            Some(&token),
            &json!({ "description": null, "status": "PUBLISHED" }),
        )
        .await,
    )
    .await;
    assert_eq!(body["description"], Value::Null);
    assert_eq!(body["status"], "PUBLISHED");
    assert_eq!(body["version"], 2);

    let (_, body) = parts(
        app.put(
            &path,
            Some(&token),
            &json!({ "eventDate": "2031-01-01T00:00:00Z" }),
        )
        .await,
    )
    .await;
    assert_eq!(body["eventDate"], "2031-01-01T00:00:00.000Z");
    assert_eq!(body["version"], 3);

    let version: i64 = sqlx::query_scalar("SELECT version FROM events WHERE id = $1")
        .bind(id_of(&event) as i32)
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(version, 3);
}

#[tokio::test]
async fn update_rejects_nulls_and_invalid_values() {
    let app = TestApp::spawn().await;
    let (token, _) = app.organizer("org@example.com").await;
    let event = create_event(&app, &token, &event_body("Old", 10, "DRAFT")).await;
    let path = format!("/events/{}", id_of(&event));
    let body = json!({ "title": null, "totalSeats": null, "status": null, "eventDate": null });
    let (status, body) = parts(app.put(&path, Some(&token), &body).await).await;
    assert_validation(
        status,
        &body,
        &[
            "title must not be null",
            "totalSeats must not be null",
            "status must not be null",
            "eventDate must not be null",
        ],
    );
    let (status, body) = parts(
        app.put(
            &path,
            Some(&token),
            &json!({ "title": "", "totalSeats": 0 }),
        )
        .await,
    )
    .await;
    assert_validation(
        status,
        &body,
        &[
            "title should not be empty",
            "totalSeats must not be less than 1",
        ],
    );
    let (_, body) = parts(app.get(&path, Some(&token)).await).await;
    assert_eq!(body["version"], 0, "nothing written");
}

#[tokio::test]
async fn resizing_moves_available_seats_and_never_below_the_booked_ones() {
    let app = TestApp::spawn().await;
    let (token, _) = app.organizer("org@example.com").await;
    let (_, user_id) = app.user("user@example.com").await;
    let event = create_event(&app, &token, &event_body("Gig", 10, "PUBLISHED")).await;
    let path = format!("/events/{}", id_of(&event));
    book_in_sql(&app, id_of(&event), user_id, 6).await;

    let (status, body) = parts(
        app.put(&path, Some(&token), &json!({ "totalSeats": 15 }))
            .await,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        (body["totalSeats"].as_i64(), body["availableSeats"].as_i64()),
        (Some(15), Some(9))
    );

    let (status, body) = parts(
        app.put(&path, Some(&token), &json!({ "totalSeats": 6 }))
            .await,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        (body["totalSeats"].as_i64(), body["availableSeats"].as_i64()),
        (Some(6), Some(0))
    );

    let (status, body) = parts(
        app.put(&path, Some(&token), &json!({ "totalSeats": 5 }))
            .await,
    )
    .await;
    assert_error(
        status,
        &body,
        400,
        "Cannot reduce total seats below 6 (already booked seats)",
    );
    let (total, available, version): (i32, i32, i64) =
        sqlx::query_as("SELECT total_seats, available_seats, version FROM events WHERE id = $1")
            .bind(id_of(&event) as i32)
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!((total, available, version), (6, 0, 2));
}

#[tokio::test]
async fn only_the_owner_updates_or_deletes() {
    let app = TestApp::spawn().await;
    let (owner, _) = app.organizer("owner@example.com").await;
    let (other, _) = app.organizer("other@example.com").await;
    let (user, _) = app.user("user@example.com").await;
    let event = create_event(&app, &owner, &event_body("Mine", 10, "DRAFT")).await;
    let path = format!("/events/{}", id_of(&event));
    let change = json!({ "title": "Hijacked" });

    let (status, body) = parts(app.put(&path, Some(&other), &change).await).await;
    assert_error(status, &body, 403, "You can only update your own events");
    let (status, body) = parts(app.delete(&path, Some(&other)).await).await;
    assert_error(status, &body, 403, "You can only delete your own events");
    let (status, body) = parts(app.put(&path, Some(&user), &change).await).await;
    assert_error(status, &body, 403, "Forbidden resource");
    let (status, body) = parts(app.delete(&path, Some(&user)).await).await;
    assert_error(status, &body, 403, "Forbidden resource");
    let (status, body) = parts(app.put(&path, None, &change).await).await;
    assert_error(status, &body, 401, "Unauthorized");
    let (status, body) = parts(app.delete(&path, None).await).await;
    assert_error(status, &body, 401, "Unauthorized");

    let (status, body) = parts(app.put("/events/424242", Some(&owner), &change).await).await;
    assert_error(status, &body, 404, "Event with ID 424242 not found");
    let (status, body) = parts(app.delete("/events/424242", Some(&owner)).await).await;
    assert_error(status, &body, 404, "Event with ID 424242 not found");

    let title: String = sqlx::query_scalar("SELECT title FROM events")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(title, "Mine");
}

#[tokio::test]
async fn delete_is_refused_while_any_booking_row_exists() {
    let app = TestApp::spawn().await;
    let (token, _) = app.organizer("org@example.com").await;
    let (_, user_id) = app.user("user@example.com").await;
    let booked = create_event(&app, &token, &event_body("Booked", 10, "PUBLISHED")).await;
    book_in_sql(&app, id_of(&booked), user_id, 1).await;
    sqlx::query("UPDATE bookings SET status = 'CANCELLED'")
        .execute(&app.db)
        .await
        .unwrap();

    let (status, body) = parts(
        app.delete(&format!("/events/{}", id_of(&booked)), Some(&token))
            .await,
    )
    .await;
    assert_error(
        status,
        &body,
        400,
        "Cannot delete event with existing bookings. Cancel all bookings first or mark event as cancelled.",
    );

    let empty = create_event(&app, &token, &event_body("Empty", 10, "PUBLISHED")).await;
    let (status, body) = parts(
        app.delete(&format!("/events/{}", id_of(&empty)), Some(&token))
            .await,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({ "message": "Event deleted successfully", "eventId": id_of(&empty) })
    );
    let ids: Vec<i32> = sqlx::query_scalar("SELECT id FROM events")
        .fetch_all(&app.db)
        .await
        .unwrap();
    assert_eq!(ids, [id_of(&booked) as i32]);
}

#[tokio::test]
async fn my_events_lists_every_status_of_the_caller_only() {
    let app = TestApp::spawn().await;
    let (me, _) = app.organizer("me@example.com").await;
    let (other, _) = app.organizer("other@example.com").await;
    let (user, _) = app.user("user@example.com").await;
    for status in ["DRAFT", "PUBLISHED", "CANCELLED", "COMPLETED"] {
        create_event(&app, &me, &event_body(status, 10, status)).await;
    }
    create_event(&app, &other, &event_body("Not mine", 10, "PUBLISHED")).await;

    let (status, page) = parts(app.get("/events/organizer/my-events", Some(&me)).await).await;
    assert_eq!(status, 200);
    assert_eq!(
        page["meta"],
        json!({ "total": 4, "page": 1, "limit": 10, "totalPages": 1 })
    );
    let titles: Vec<&str> = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["title"].as_str().unwrap())
        .collect();
    assert_eq!(titles, ["COMPLETED", "CANCELLED", "PUBLISHED", "DRAFT"]);
    assert_eq!(page["data"][0]["_count"]["bookings"], 0);

    let (_, page) = parts(
        app.get(
            "/events/organizer/my-events?status=DRAFT&limit=1",
            Some(&me),
        )
        .await,
    )
    .await;
    assert_eq!(
        page["meta"],
        json!({ "total": 1, "page": 1, "limit": 1, "totalPages": 1 })
    );
    let (status, body) = parts(
        app.get("/events/organizer/my-events?limit=0", Some(&me))
            .await,
    )
    .await;
    assert_validation(status, &body, &["limit must not be less than 1"]);

    let (status, body) = parts(app.get("/events/organizer/my-events", Some(&user)).await).await;
    assert_error(status, &body, 403, "Forbidden resource");
    let (status, body) = parts(app.get("/events/organizer/my-events", None).await).await;
    assert_error(status, &body, 401, "Unauthorized");
}
