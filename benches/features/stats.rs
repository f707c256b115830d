//! STATS: an event of 106,000 bookings inserted in bulk; its statistics at 16 connections, its
//! attendee CSV streamed once with the server's RSS around it, and `GET /metrics`.

use super::*;

pub(super) async fn stats(ctx: &Ctx, report: &mut Report) -> anyhow::Result<()> {
    let body = json!({
        "title": "Stats arena", "status": "PUBLISHED", "eventDate": "2035-06-01T19:00:00Z",
        "ticketTypes": [{ "name": "General", "priceCents": 2500, "totalSeats": 1_000_000 }],
    });
    let created = ctx.api.post_event(&ctx.organizer.token, &body).await?;
    let event = created["id"].as_i64().unwrap_or_default() as i32;
    let ticket_type = created["ticketTypes"][0]["id"].as_i64().unwrap_or_default() as i32;
    let total = STATS_CONFIRMED + STATS_CANCELLED + STATS_PENDING;
    step(&format!(
        "STATS: inserting {STATS_ATTENDEES} users and {total} bookings ({STATS_CONFIRMED} CONFIRMED) of event {event} (SQL)"
    ));
    let at = Instant::now();
    let (first_user, last_user): (i32, i32) = sqlx::query_as(
        "WITH u AS (INSERT INTO users (email, password_hash, firstname, lastname) \
             SELECT 'attendee' || i || '-' || $1 || '@bench.test', 'not-a-hash', \
                    (ARRAY['Anna','Jürgen','Zoë','Mateo','Aïsha','Liam','Chloé','Noah'])[1 + i % 8], \
                    (ARRAY['Müller','García','O''Brien','Nowak','Dubois','Smith','Søren, Jr.'])[1 + i % 7] \
             FROM generate_series(1, $2::int) i RETURNING id) \
         SELECT min(id), max(id) FROM u",
    )
    .bind(ctx.stamp.to_string())
    .bind(STATS_ATTENDEES as i32)
    .fetch_one(&ctx.db)
    .await?;
    let users = last_user - first_user + 1;
    // CONFIRMED first, then CANCELLED (cancelled up to two days after they were confirmed),
    // then PENDING holds; confirmations spread over the last 90 days.
    sqlx::query(
        "INSERT INTO bookings (user_id, event_id, ticket_type_id, seat_count, status, \
                               booking_reference, total_price_cents, created_at, updated_at, \
                               confirmed_at, expires_at) \
         SELECT $1 + (i % $2), $3, $4, seats, status::booking_status, gen_random_uuid(), \
                seats * 2500, at, \
                CASE WHEN status = 'CANCELLED' THEN least(at + random() * interval '2 days', now()) ELSE at END, \
                CASE WHEN status = 'PENDING' THEN NULL ELSE at END, \
                CASE WHEN status = 'PENDING' THEN now() + interval '1 hour' END \
         FROM (SELECT i, 1 + floor(random() * 4)::int AS seats, \
                      now() - random() * interval '90 days' AS at, \
                      CASE WHEN i <= $5 THEN 'CONFIRMED' WHEN i <= $5 + $6 THEN 'CANCELLED' \
                           ELSE 'PENDING' END AS status \
               FROM generate_series(1, $7::bigint) i) b",
    )
    .bind(first_user)
    .bind(users)
    .bind(event)
    .bind(ticket_type)
    .bind(STATS_CONFIRMED)
    .bind(STATS_CANCELLED)
    .bind(total)
    .execute(&ctx.db)
    .await?;
    // The seats of CONFIRMED and PENDING bookings leave the type and the event (the invariant).
    let mut tx = ctx.db.begin().await?;
    let taken: i64 = sqlx::query_scalar(
        "SELECT COALESCE(sum(seat_count), 0)::bigint FROM bookings \
         WHERE event_id = $1 AND status IN ('CONFIRMED', 'PENDING')",
    )
    .bind(event)
    .fetch_one(&mut *tx)
    .await?;
    sqlx::query("UPDATE ticket_types SET available_seats = total_seats - $2 WHERE id = $1")
        .bind(ticket_type)
        .bind(taken as i32)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "UPDATE events SET available_seats = total_seats - $2, version = version + 1, \
                booking_count = (SELECT count(*) FROM bookings WHERE event_id = $1) WHERE id = $1",
    )
    .bind(event)
    .bind(taken as i32)
    .execute(&mut *tx)
    .await?;
    // A third of the CONFIRMED bookings have their first ticket checked in.
    sqlx::query(
        "INSERT INTO check_ins (booking_id, number, checked_in_by, event_id) \
         SELECT id, 1, $2, event_id FROM bookings \
         WHERE event_id = $1 AND status = 'CONFIRMED' AND id % 3 = 0",
    )
    .bind(event)
    .bind(ctx.organizer.id)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    sqlx::query("ANALYZE users, bookings, check_ins, events, ticket_types")
        .execute(&ctx.db)
        .await?;
    let insert_s = at.elapsed().as_secs_f64();
    step(&format!("STATS: inserted and analyzed in {insert_s:.1}s"));
    // A fresh server of its own: its RSS is then the stats' and the CSV's alone, not what the
    // live streams left behind.
    step("STATS: starting a fresh server for this scenario");
    let server = Server::start(&ctx.url, POOL_SIZE)?;
    server.wait_ready().await?;
    let base = server.base.clone();
    // One at a time first: what one answer costs without queueing.
    let mut alone = Vec::new();
    for _ in 0..10 {
        let at = Instant::now();
        let response = ctx
            .api
            .client
            .get(format!("{base}/events/{event}/stats"))
            .bearer_auth(&ctx.organizer.token)
            .send()
            .await?;
        let _ = response.bytes().await?;
        alone.push(at.elapsed());
    }
    alone.sort();

    // One answer checked in full.
    let answer: Value = ctx
        .api
        .client
        .get(format!("{}/events/{event}/stats", base.clone()))
        .bearer_auth(&ctx.organizer.token)
        .send()
        .await?
        .json()
        .await?;
    let confirmed = answer["bookings"]["CONFIRMED"].as_i64();
    report.check(
        confirmed == Some(STATS_CONFIRMED)
            && answer["availableSeats"].as_i64() == Some(1_000_000 - taken),
        || format!("STATS: the stats answer does not match the rows inserted: CONFIRMED {confirmed:?}, availableSeats {}", answer["availableSeats"]),
    );

    step(&format!(
        "STATS: GET /events/{event}/stats at {STATS_CONNECTIONS} connections for {}s",
        STATS_FOR.as_secs()
    ));
    let load_before = load_average();
    let token = ctx.organizer.token.clone();
    let run = load(
        base.clone(),
        STATS_CONNECTIONS,
        Stop::For(STATS_FOR),
        Arc::new(move |_| Req {
            kind: 0,
            method: Method::GET,
            path: format!("/events/{event}/stats"),
            query: Vec::new(),
            token: Some(token.clone()),
            body: None,
        }),
        false,
    )
    .await;
    let bad = run.samples.iter().filter(|s| s.status != 200).count();
    report.check(bad == 0, || {
        format!(
            "STATS: {bad} answer(s) not 200, e.g. {}",
            run.errors.join(" | ")
        )
    });
    let st = run.stat(|_| true);
    report.lines.push(Line {
        scenario: "STATS",
        what: "GET /events/:id/stats, one at a time".into(),
        connections: Some(1),
        count: alone.len(),
        rate: None,
        p50: percentile(&alone, 0.50),
        p99: percentile(&alone, 0.99),
        target: String::new(),
        met: None,
    });
    report.lines.push(st.p99_line(
        "STATS",
        format!("GET /events/:id/stats ({STATS_CONFIRMED} CONFIRMED of {total} bookings)"),
        STATS_CONNECTIONS,
        STATS_P99_MS,
    ));

    step("STATS: the attendee CSV, streamed");
    server.reset_peak_rss();
    let rss_before_kb = server.status_kb("VmRSS");
    let sampler = RssSampler::start(server.child.id());
    let at = Instant::now();
    let mut response = ctx
        .api
        .client
        .get(format!("{}/events/{event}/attendees", base.clone()))
        .query(&[("format", "csv")])
        .bearer_auth(&ctx.organizer.token)
        .send()
        .await?;
    let status = response.status().as_u16();
    let (mut lines, mut bytes, mut last) = (0usize, 0usize, b'\n');
    while let Some(chunk) = response.chunk().await? {
        lines += chunk.iter().filter(|b| **b == b'\n').count();
        bytes += chunk.len();
        if let Some(b) = chunk.last() {
            last = *b;
        }
    }
    if last != b'\n' {
        lines += 1;
    }
    let csv_s = at.elapsed().as_secs_f64();
    let sampled_peak_kb = sampler.stop().await;
    let hwm_kb = server.status_kb("VmHWM");
    let rss_after_kb = server.status_kb("VmRSS");
    let expected = STATS_CONFIRMED as usize + 1;
    report.check(status == 200 && lines == expected, || {
        format!("STATS: the CSV answered {status} with {lines} lines, not 200 with {expected}")
    });
    let peak_mb = hwm_kb.max(sampled_peak_kb) as f64 / 1024.0;
    report.lines.push(Line {
        scenario: "STATS",
        what: format!(
            "attendees CSV: {lines} lines, {:.1} MB in {csv_s:.2}s; server RSS {:.1} MB before, peak {peak_mb:.1} MB, {:.1} MB after",
            bytes as f64 / 1e6,
            rss_before_kb as f64 / 1024.0,
            rss_after_kb as f64 / 1024.0
        ),
        connections: Some(1),
        count: 1,
        rate: None,
        p50: None,
        p99: None,
        target: format!("peak RSS ≤ {CSV_RSS_MB} MB"),
        met: Some(peak_mb <= CSV_RSS_MB),
    });

    step(&format!("STATS: GET /metrics {METRICS_CALLS} times"));
    let (mut times, mut size, mut bad_metrics) = (Vec::new(), 0, 0);
    for _ in 0..METRICS_CALLS {
        let at = Instant::now();
        let response = ctx
            .api
            .client
            .get(format!("{}/metrics", ctx.base()))
            .send()
            .await?;
        let ok = response.status() == 200;
        let text = response.text().await?;
        times.push(at.elapsed());
        size = text.len();
        if !ok {
            bad_metrics += 1;
        }
    }
    times.sort();
    report.check(bad_metrics == 0, || {
        format!("METRICS: {bad_metrics} answer(s) not 200")
    });
    report.lines.push(Line {
        scenario: "METRICS",
        what: format!(
            "GET /metrics, one at a time ({:.1} KB each)",
            size as f64 / 1024.0
        ),
        connections: Some(1),
        count: times.len(),
        rate: None,
        p50: percentile(&times, 0.50),
        p99: percentile(&times, 0.99),
        target: String::new(),
        met: None,
    });
    report.notes.push(format!(
        "STATS: {total} bookings inserted + ANALYZE in {insert_s:.1}s; load average {load_before:.2} → {:.2}",
        load_average()
    ));
    report.json.insert(
        "stats".into(),
        json!({ "stats": st.json(), "csvLines": lines, "csvBytes": bytes, "csvSeconds": csv_s,
                "csvRssBeforeKb": rss_before_kb, "csvPeakRssKb": hwm_kb.max(sampled_peak_kb),
                "csvRssAfterKb": rss_after_kb, "metricsP50Ms": percentile(&times, 0.5),
                "metricsP99Ms": percentile(&times, 0.99), "metricsBytes": size,
                "insertSeconds": insert_s }),
    );
    Ok(())
}

/// The highest VmRSS of a process, sampled every 20 ms (in case VmHWM cannot be reset).
struct RssSampler {
    stop: Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<u64>,
}

impl RssSampler {
    fn start(pid: u32) -> Self {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let task = tokio::spawn(async move {
            let mut most = 0;
            while !flag.load(Ordering::Relaxed) {
                most = most.max(status_kb(pid, "VmRSS"));
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            most
        });
        Self { stop, task }
    }

    async fn stop(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap_or(0)
    }
}
