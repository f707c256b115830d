//! GET /events search and filters: each parameter, its boundaries and combinations; stemming,
//! accents, word order, the typo fallback, ordering ties, the capped count.

use serde_json::{json, Value};

use crate::bookings::book;
use crate::events::create_event;
use crate::helpers::{assert_validation, parts, TestApp};

fn event(
    title: &str,
    description: &str,
    city: Option<&str>,
    date: Option<&str>,
    seats: i64,
) -> Value {
    json!({
        "title": title, "description": description, "venue": city.map(|_| "Hall"), "city": city,
        "totalSeats": seats, "status": "PUBLISHED", "eventDate": date,
    })
}

/// Titles of the listing for a query string.
async fn titles(app: &TestApp, query: &str) -> Vec<String> {
    let (status, body) = parts(app.get(&format!("/events?{query}"), None).await).await;
    assert_eq!(status, 200, "{query}: {body}");
    body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["title"].as_str().unwrap().to_string())
        .collect()
}

async fn seeded() -> TestApp {
    let app = TestApp::spawn().await;
    let (organizer, _) = app.organizer("org@example.com").await;
    for body in [
        event(
            "Café Night",
            "Acoustic concerts by the lake",
            Some("Zürich"),
            Some("2030-03-10T19:00:00Z"),
            40,
        ),
        event(
            "Summer Festival",
            "Three stages, open air",
            Some("Basel"),
            Some("2030-07-01T12:00:00Z"),
            500,
        ),
        event(
            "Rust Meetup",
            "Talks about the borrow checker",
            Some("zürich"),
            Some("2030-03-10T18:00:00Z"),
            30,
        ),
        event("Undated Gathering", "A concert, some day", None, None, 10),
        event(
            "Past Concert",
            "It happened",
            Some("Bern"),
            Some("2020-01-01T00:00:00Z"),
            20,
        ),
    ] {
        create_event(&app, &organizer, &body).await;
    }
    app
}

#[tokio::test]
async fn full_text_stems_folds_accents_and_ignores_word_order() {
    let app = seeded().await;
    assert_eq!(titles(&app, "q=cafe%20zurich").await, ["Café Night"]);
    assert_eq!(titles(&app, "q=ZURICH%20CAFE").await, ["Café Night"]);
    // "concerts" finds "concert" and "concerts", in title and description alike.
    let mut found = titles(&app, "q=concerts").await;
    found.sort();
    assert_eq!(found, ["Café Night", "Past Concert", "Undated Gathering"]);
    // Every word must match (here both only in Café Night's description).
    assert_eq!(titles(&app, "q=concerts%20acoustic").await, ["Café Night"]);
    // The title weighs more than the description: "Past Concert" (title) before the others.
    assert_eq!(titles(&app, "q=concert").await[0], "Past Concert");
    let (_, body) = parts(app.get("/events?q=concert", None).await).await;
    assert_eq!(
        body["meta"],
        json!({ "total": 3, "page": 1, "limit": 10, "totalPages": 1, "totalExact": true })
    );
}

#[tokio::test]
async fn a_typo_falls_back_to_similar_titles_under_the_same_filters() {
    let app = seeded().await;
    assert_eq!(titles(&app, "q=festivel").await, ["Summer Festival"]);
    assert_eq!(
        titles(&app, "q=festivel&city=Zurich").await,
        Vec::<String>::new()
    );
    assert_eq!(titles(&app, "q=meetap").await, ["Rust Meetup"]);
}

#[tokio::test]
async fn dates_cities_seats_and_upcoming_filter_and_combine() {
    let app = seeded().await;
    let mut zurich = titles(&app, "city=Z%C3%9CRICH").await;
    zurich.sort();
    assert_eq!(
        zurich,
        ["Café Night", "Rust Meetup"],
        "case-insensitive exact city"
    );
    assert_eq!(titles(&app, "city=Zur").await, Vec::<String>::new());
    assert_eq!(
        titles(&app, "city=Zurich").await,
        Vec::<String>::new(),
        "exact: accents count"
    );
    // A date alone is that whole day, UTC; events without a date are left out.
    let mut day = titles(&app, "from=2030-03-10&to=2030-03-10").await;
    day.sort();
    assert_eq!(day, ["Café Night", "Rust Meetup"]);
    assert_eq!(
        titles(&app, "from=2030-03-10T18:30:00Z").await,
        ["Summer Festival", "Café Night"]
    );
    assert_eq!(titles(&app, "to=2021-01-01").await, ["Past Concert"]);
    assert!(!titles(&app, "upcoming=true")
        .await
        .contains(&"Past Concert".to_string()));
    assert!(!titles(&app, "upcoming=true")
        .await
        .contains(&"Undated Gathering".to_string()));
    assert_eq!(titles(&app, "upcoming=false").await.len(), 5);
    assert_eq!(titles(&app, "minSeats=100").await, ["Summer Festival"]);
    assert_eq!(
        titles(&app, "minSeats=30&city=Z%C3%BCrich&q=talks").await,
        ["Rust Meetup"]
    );
    assert_eq!(
        titles(&app, "minSeats=31&city=Z%C3%BCrich&q=talks").await,
        Vec::<String>::new()
    );
}

#[tokio::test]
async fn sorts_put_undated_events_last_and_break_ties_by_newest() {
    let app = seeded().await;
    assert_eq!(
        titles(&app, "sort=eventDate").await,
        [
            "Past Concert",
            "Rust Meetup",
            "Café Night",
            "Summer Festival",
            "Undated Gathering"
        ]
    );
    assert_eq!(
        titles(&app, "sort=-eventDate").await,
        [
            "Summer Festival",
            "Café Night",
            "Rust Meetup",
            "Past Concert",
            "Undated Gathering"
        ]
    );
    assert_eq!(
        titles(&app, "sort=-availableSeats").await[0],
        "Summer Festival"
    );
    // Default: newest first.
    assert_eq!(titles(&app, "").await[0], "Past Concert");
    assert_eq!(
        titles(&app, "sort=-createdAt&limit=2&page=2").await,
        ["Rust Meetup", "Summer Festival"]
    );
    // Ties (same seats) break by createdAt desc, then id desc.
    let (organizer, _) = app.organizer("twins@example.com").await;
    for title in ["Twin A", "Twin B"] {
        create_event(&app, &organizer, &event(title, "x", None, None, 777)).await;
    }
    assert_eq!(
        titles(&app, "minSeats=777&sort=-availableSeats").await,
        ["Twin B", "Twin A"]
    );
}

#[tokio::test]
async fn bad_values_get_one_message_per_broken_rule() {
    let app = seeded().await;
    let long = "x".repeat(201);
    let (status, body) = parts(
        app.get(&format!("/events?q={long}&from=yesterday&to=2030-13-01&upcoming=maybe&minSeats=0&sort=title"), None)
            .await,
    )
    .await;
    assert_validation(
        status,
        &body,
        &[
            "q must be 1 to 200 characters",
            "from must be an ISO 8601 date (2026-12-31) or date-time with a time zone",
            "to must be an ISO 8601 date (2026-12-31) or date-time with a time zone",
            "upcoming must be a boolean value",
            "minSeats must not be less than 1",
            "sort must be one of the following values: -createdAt, relevance, eventDate, -eventDate, -availableSeats",
        ],
    );
    let (status, body) = parts(app.get("/events?from=2030-02-01&to=2030-01-01", None).await).await;
    assert_validation(status, &body, &["from must not be after to"]);
    let (status, body) = parts(app.get("/events?sort=relevance", None).await).await;
    assert_validation(status, &body, &["sort relevance requires q"]);
    // Found by schemathesis: a NUL in a text filter was a 500 from PostgreSQL.
    let (status, body) = parts(app.get("/events?city=Z%00rich&q=caf%00e", None).await).await;
    assert_validation(
        status,
        &body,
        &[
            "q must not contain NUL characters",
            "city must not contain NUL characters",
        ],
    );
    let (status, body) = parts(app.get("/events?minSeats=1000001&q=", None).await).await;
    assert_validation(
        status,
        &body,
        &[
            "minSeats must not be greater than 1000000",
            "q must be 1 to 200 characters",
        ],
    );
}

#[tokio::test]
async fn the_count_is_exact_up_to_ten_thousand() {
    let app = TestApp::spawn().await;
    let (organizer, organizer_id) = app.organizer("bulk@example.com").await;
    sqlx::query(
        "WITH e AS (INSERT INTO events (title, total_seats, available_seats, status, organizer_id) \
                    SELECT 'Bulk ' || n, 5, 5, 'PUBLISHED', $1 FROM generate_series(1, 10001) n RETURNING id) \
         INSERT INTO ticket_types (event_id, name, total_seats, available_seats) SELECT id, 'General', 5, 5 FROM e",
    )
    .bind(organizer_id)
    .execute(&app.db)
    .await
    .unwrap();
    let (_, body) = parts(app.get("/events?limit=100", None).await).await;
    assert_eq!(
        body["meta"],
        json!({ "total": 10000, "page": 1, "limit": 100, "totalPages": 100, "totalExact": false })
    );
    create_event(
        &app,
        &organizer,
        &event("Unique Needle", "x", None, None, 5),
    )
    .await;
    let (_, body) = parts(app.get("/events?q=needle", None).await).await;
    assert_eq!(body["meta"]["total"], 1);
    assert_eq!(body["meta"]["totalExact"], true);
}

/// A seat filter keeps only the matching by words (its second read answers from what the
/// first kept) and reads the seats at each request: it pages and counts like any listing, and
/// a booking moves it at once.
#[tokio::test]
async fn a_seat_filter_pages_counts_and_follows_bookings() {
    let app = TestApp::spawn().await;
    let (organizer, _) = app.organizer("org@example.com").await;
    let (user, _) = app.user("user@example.com").await;
    let mut ids = Vec::new();
    for (title, seats) in [("A", 50), ("B", 40), ("C", 30), ("D", 5)] {
        let body = event(&format!("Harbour {title}"), "x", None, None, seats);
        ids.push(create_event(&app, &organizer, &body).await["id"].clone());
    }
    let [a, b, c, _] = [&ids[0], &ids[1], &ids[2], &ids[3]];
    let page = |query: &'static str| {
        let app = &app;
        async move {
            let (status, body) = parts(app.get(&format!("/events?{query}"), None).await).await;
            assert_eq!(status, 200, "{query}: {body}");
            let ids: Vec<Value> = body["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["id"].clone())
                .collect();
            (ids, body["meta"].clone())
        }
    };
    let meta = |total: i64, page: i64, pages: i64| json!({ "total": total, "page": page, "limit": 2, "totalPages": pages, "totalExact": true });
    for _ in 0..2 {
        // Equal relevance: the newest first.
        assert_eq!(
            page("q=harbour&minSeats=20&limit=2").await,
            (vec![c.clone(), b.clone()], meta(3, 1, 2))
        );
        assert_eq!(
            page("q=harbour&minSeats=20&limit=2&page=2").await,
            (vec![a.clone()], meta(3, 2, 2))
        );
        assert_eq!(
            page("q=harbour&minSeats=20&limit=2&page=3").await,
            (vec![], meta(3, 3, 2))
        );
    }
    book(&app, &user, a.as_i64().unwrap(), 10).await;
    assert_eq!(
        page("q=harbour&minSeats=41&limit=2").await,
        (vec![], meta(0, 1, 0)),
        "A has 40 seats left"
    );
    assert_eq!(
        page("q=harbour&minSeats=40&limit=2").await,
        (vec![b.clone(), a.clone()], meta(2, 1, 1))
    );
}

/// The words follow an organizer's edit of the title, venue, city or description, and stay as
/// they were through seat writes (the vector is written only when its sources are).
#[tokio::test]
async fn the_words_follow_edits_of_their_sources_and_not_bookings() {
    let app = TestApp::spawn().await;
    let (organizer, _) = app.organizer("org@example.com").await;
    let (user, _) = app.user("user@example.com").await;
    let body = event("Jazz Night", "Saxophones", Some("Basel"), None, 30);
    let id = create_event(&app, &organizer, &body).await["id"]
        .as_i64()
        .unwrap();
    assert_eq!(titles(&app, "q=saxophone").await, ["Jazz Night"]);
    book(&app, &user, id, 2).await;
    assert_eq!(titles(&app, "q=jazz").await, ["Jazz Night"]);

    let edit = json!({ "title": "Blues Evening", "venue": "Cellar", "city": "Bern", "description": "Harmonicas" });
    let (status, edited) = parts(
        app.put(&format!("/events/{id}"), Some(&organizer), &edit)
            .await,
    )
    .await;
    assert_eq!(status, 200, "{edited}");
    for gone in ["jazz", "saxophone", "basel"] {
        assert!(
            titles(&app, &format!("q={gone}")).await.is_empty(),
            "{gone}"
        );
    }
    for found in ["blues", "harmonica", "cellar", "bern"] {
        assert_eq!(
            titles(&app, &format!("q={found}")).await,
            ["Blues Evening"],
            "{found}"
        );
    }
    book(&app, &user, id, 1).await;
    assert_eq!(titles(&app, "q=blues&city=bern").await, ["Blues Evening"]);

    // What is stored is what the expression of migration 007 makes of the row.
    let (same,): (bool,) = sqlx::query_as(
        "SELECT search = setweight(to_tsvector('english_unaccent', coalesce(title, '')), 'A') || \
                setweight(to_tsvector('english_unaccent', coalesce(venue, '') || ' ' || coalesce(city, '')), 'B') || \
                setweight(to_tsvector('english_unaccent', coalesce(description, '')), 'C') \
         FROM events WHERE id = $1",
    )
    .bind(i32::try_from(id).unwrap())
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert!(same);
}
