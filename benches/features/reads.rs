//! READS: browsing at the speed of HTTP. First the HTTP ceiling (a route that touches no
//! database: the JSON 404 of an unknown path), then `GET /events/:id` of an event with 100,000
//! bookings and `GET /events?limit=10` over 100,000 events (inserted in bulk unless SEARCH
//! left them), each at 64 connections, each against the ceiling of the same run.

use super::*;

const READ_BOOKINGS: i64 = 100_000;
const READ_FOR: Duration = Duration::from_secs(4);
const READ_RATIO: f64 = 0.5;
const READ_P99_MS: f64 = 20.0;

pub(super) async fn reads(ctx: &Ctx, report: &mut Report) -> anyhow::Result<()> {
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&ctx.db)
        .await?;
    if events < SEARCH_EVENTS {
        step(&format!("READS: inserting {SEARCH_EVENTS} events (SQL)"));
        search::insert_events(&ctx.db, ctx.organizer.id, SEARCH_EVENTS).await?;
        sqlx::query("VACUUM (ANALYZE) events, ticket_types")
            .execute(&ctx.db)
            .await?;
    }
    let hot = hot_event(ctx).await?;

    let get = |path: String| -> Make {
        Arc::new(move |_| Req {
            kind: 0,
            method: Method::GET,
            path: path.clone(),
            query: Vec::new(),
            token: None,
            body: None,
        })
    };
    let runs = [
        (
            "HTTP ceiling: GET of an unknown path (JSON 404, no database)",
            "/no-such-route".to_string(),
            404,
        ),
        (
            "GET /events/:id (100,000 bookings)",
            format!("/events/{hot}"),
            200,
        ),
        (
            "GET /events?limit=10 (100,000 events)",
            "/events?limit=10".to_string(),
            200,
        ),
    ];
    let mut ceiling = None;
    let mut json_runs = Vec::new();
    for (what, path, expected) in runs {
        step(&format!(
            "READS: {what} at {CONNECTIONS} connections for {}s",
            READ_FOR.as_secs()
        ));
        let run = load(
            ctx.base(),
            CONNECTIONS,
            Stop::For(READ_FOR),
            get(path),
            false,
        )
        .await;
        let st = run.stat(|_| true);
        let bad = run.samples.iter().filter(|s| s.status != expected).count();
        report.check(bad == 0, || {
            format!(
                "READS {what}: {bad} answer(s) not {expected}, e.g. {}",
                run.errors.join(" | ")
            )
        });
        let (target, met) = match ceiling {
            None => {
                ceiling = Some(st.rate);
                (String::from("the ceiling"), None)
            }
            Some(top) => (
                format!(
                    "≥ {READ_RATIO} × ceiling, p99 ≤ {READ_P99_MS} ms ({:.2} ×)",
                    st.rate / top
                ),
                Some(st.rate >= READ_RATIO * top && st.p99.is_some_and(|p| p <= READ_P99_MS)),
            ),
        };
        json_runs.push(json!({ "what": what, "stat": st.json() }));
        report
            .lines
            .push(st.line("READS", what.to_string(), CONNECTIONS, target, met));
    }
    report.json.insert("reads".into(), json!(json_runs));
    Ok(())
}

/// A published event with 100,000 CONFIRMED bookings (SQL), its seats and count to match.
async fn hot_event(ctx: &Ctx) -> anyhow::Result<i32> {
    let event = ctx
        .api
        .create_event(&ctx.organizer.token, 1_000_000, "Read arena")
        .await?;
    step(&format!(
        "READS: inserting {READ_BOOKINGS} bookings of event {event} (SQL)"
    ));
    let first_user = ctx.users.iter().map(|u| u.id).min().unwrap_or(1);
    let mut tx = ctx.db.begin().await?;
    sqlx::query(
        "INSERT INTO bookings (user_id, event_id, ticket_type_id, seat_count, status, \
                               booking_reference, confirmed_at) \
         SELECT $1 + (i % $2), $3, t.id, 1, 'CONFIRMED', gen_random_uuid(), now() \
         FROM generate_series(1, $4::bigint) i, ticket_types t WHERE t.event_id = $3",
    )
    .bind(first_user)
    .bind(USERS as i32)
    .bind(event)
    .bind(READ_BOOKINGS)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "UPDATE ticket_types SET available_seats = available_seats - $2 WHERE event_id = $1",
    )
    .bind(event)
    .bind(READ_BOOKINGS as i32)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "UPDATE events SET available_seats = available_seats - $2, version = version + 1, \
                booking_count = booking_count + $2 WHERE id = $1",
    )
    .bind(event)
    .bind(READ_BOOKINGS as i32)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    sqlx::query("ANALYZE bookings").execute(&ctx.db).await?;
    Ok(event)
}
