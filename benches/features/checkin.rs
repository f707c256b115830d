//! CHECK-IN: 10,000 ticket codes scanned at 64 connections, then 1,000 rescanned with the same
//! nonces (replays).

use super::*;

pub(super) async fn check_in(ctx: &Ctx, report: &mut Report) -> anyhow::Result<()> {
    let event = ctx
        .api
        .create_event(
            &ctx.organizer.token,
            CHECKIN_TICKETS as i64,
            "Check-in night",
        )
        .await?;
    step(&format!(
        "CHECK-IN: {CHECKIN_BOOKINGS} bookings of {CHECKIN_SEATS_EACH} seats through the API"
    ));
    let users = ctx.users.clone();
    let booked = load(
        ctx.base(),
        CONNECTIONS,
        Stop::Count(CHECKIN_BOOKINGS),
        Arc::new(move |seq| Req {
            kind: 0,
            method: Method::POST,
            path: "/bookings".into(),
            query: Vec::new(),
            token: Some(users[seq % users.len()].token.clone()),
            body: Some(json!({ "eventId": event, "seatCount": CHECKIN_SEATS_EACH })),
        }),
        true,
    )
    .await;
    let mut references = vec![String::new(); CHECKIN_BOOKINGS];
    for s in &booked.samples {
        if s.status == 201 {
            let body: Value = serde_json::from_str(s.body.as_deref().unwrap_or("null"))?;
            references[s.seq] = body["data"]["bookingReference"]
                .as_str()
                .unwrap_or_default()
                .to_string();
        }
    }
    let created = references.iter().filter(|r| !r.is_empty()).count();
    report.check(created == CHECKIN_BOOKINGS, || {
        format!(
            "CHECK-IN: {created} of {CHECKIN_BOOKINGS} bookings were created, e.g. {}",
            booked.errors.join(" | ")
        )
    });

    step("CHECK-IN: fetching the tickets as their owners");
    let (users, refs) = (ctx.users.clone(), Arc::new(references));
    let fetched = load(
        ctx.base(),
        CONNECTIONS,
        Stop::Count(CHECKIN_BOOKINGS),
        Arc::new(move |seq| Req {
            kind: 0,
            method: Method::GET,
            path: format!("/bookings/{}/tickets", refs[seq]),
            query: Vec::new(),
            token: Some(users[seq % users.len()].token.clone()),
            body: None,
        }),
        true,
    )
    .await;
    let mut codes = Vec::with_capacity(CHECKIN_TICKETS);
    for s in &fetched.samples {
        if s.status == 200 {
            let body: Value = serde_json::from_str(s.body.as_deref().unwrap_or("null"))?;
            for ticket in body["data"].as_array().into_iter().flatten() {
                if let Some(code) = ticket["code"].as_str() {
                    codes.push(code.to_string());
                }
            }
        }
    }
    anyhow::ensure!(
        codes.len() == CHECKIN_TICKETS,
        "fetched {} ticket codes, not {CHECKIN_TICKETS}; e.g. {}",
        codes.len(),
        fetched.errors.join(" | ")
    );
    codes.shuffle(&mut rand::thread_rng());
    let codes = Arc::new(codes);

    step(&format!(
        "CHECK-IN: scanning {CHECKIN_TICKETS} codes at {CONNECTIONS} connections"
    ));
    let scan = |codes: Arc<Vec<String>>, token: String| -> Make {
        Arc::new(move |seq| Req {
            kind: 0,
            method: Method::POST,
            path: format!("/events/{event}/check-ins"),
            query: Vec::new(),
            token: Some(token.clone()),
            body: Some(json!({ "code": codes[seq], "nonce": format!("scan-{seq}") })),
        })
    };
    let load_before = load_average();
    let scans = load(
        ctx.base(),
        CONNECTIONS,
        Stop::Count(CHECKIN_TICKETS),
        scan(codes.clone(), ctx.organizer.token.clone()),
        true,
    )
    .await;
    let rows_after_scan = check_in_rows(&ctx.db, event).await?;
    let replays = load(
        ctx.base(),
        CONNECTIONS,
        Stop::Count(CHECKIN_REPLAYS),
        scan(codes.clone(), ctx.organizer.token.clone()),
        true,
    )
    .await;
    let rows_after_replay = check_in_rows(&ctx.db, event).await?;
    let load_after = load_average();

    let ok = |run: &Run| run.samples.iter().filter(|s| s.status == 200).count();
    let (scanned_ok, replayed_ok) = (ok(&scans), ok(&replays));
    let first: std::collections::HashMap<usize, &str> = scans
        .samples
        .iter()
        .filter_map(|s| Some((s.seq, s.body.as_deref()?)))
        .collect();
    let same = replays
        .samples
        .iter()
        .filter(|s| s.status == 200 && first.get(&s.seq).copied() == s.body.as_deref())
        .count();
    report.check(scanned_ok == CHECKIN_TICKETS, || {
        format!(
            "CHECK-IN: {scanned_ok} of {CHECKIN_TICKETS} scans answered 200, e.g. {}",
            scans.errors.join(" | ")
        )
    });
    report.check(rows_after_scan == CHECKIN_TICKETS as i64, || {
        format!("CHECK-IN: {rows_after_scan} check_ins rows after the scans, not {CHECKIN_TICKETS}")
    });
    report.check(replayed_ok == CHECKIN_REPLAYS, || {
        format!(
            "CHECK-IN: {replayed_ok} of {CHECKIN_REPLAYS} replays answered 200, e.g. {}",
            replays.errors.join(" | ")
        )
    });
    report.check(same == CHECKIN_REPLAYS, || {
        format!("CHECK-IN: {same} of {CHECKIN_REPLAYS} replays repeated their first answer exactly")
    });
    report.check(rows_after_replay == CHECKIN_TICKETS as i64, || {
        format!(
            "CHECK-IN: {rows_after_replay} check_ins rows after the replays, not {CHECKIN_TICKETS}"
        )
    });
    let s = scans.stat(|_| true);
    report.lines.push(s.p99_line(
        "CHECK-IN",
        format!("scan {CHECKIN_TICKETS} codes (all 200: {scanned_ok}; rows {rows_after_scan})"),
        CONNECTIONS,
        CHECKIN_P99_MS,
    ));
    let r = replays.stat(|_| true);
    let what = format!(
        "rescan {CHECKIN_REPLAYS}, same nonces (200: {replayed_ok}; same answer: {same}; rows {rows_after_replay})"
    );
    report
        .lines
        .push(r.line("CHECK-IN", what, CONNECTIONS, String::new(), None));
    report.notes.push(format!(
        "CHECK-IN: setup (1,000 bookings + 1,000 ticket fetches) {:.1}s + {:.1}s; load average {load_before:.2} → {load_after:.2} over the scans",
        booked.elapsed.as_secs_f64(),
        fetched.elapsed.as_secs_f64()
    ));
    report.json.insert(
        "checkIn".into(),
        json!({ "scan": s.json(), "replay": r.json(), "rowsAfterScan": rows_after_scan,
                "rowsAfterReplay": rows_after_replay, "replaysSameAnswer": same }),
    );
    Ok(())
}

async fn check_in_rows(db: &PgPool, event: i32) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar(
        "SELECT count(*) FROM check_ins c JOIN bookings b ON b.id = c.booking_id WHERE b.event_id = $1",
    )
    .bind(event)
    .fetch_one(db)
    .await?)
}
