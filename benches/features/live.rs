//! LIVE: HOT bookings without, with 5,000 SSE streams open on the booked event, and without
//! again; the delay from each 201 to the message showing it, and the server's RSS.

use super::*;

pub(super) async fn live(ctx: &Ctx, report: &mut Report) -> anyhow::Result<()> {
    let token = &ctx.organizer.token;
    let (plain_event, live_event) = (
        ctx.api.create_event(token, HOT_SEATS, "Hot show").await?,
        ctx.api
            .create_event(token, HOT_SEATS, "Hot live show")
            .await?,
    );
    step(&format!(
        "LIVE: HOT without streams ({CONNECTIONS} connections, {}s)",
        HOT_FOR.as_secs()
    ));
    let plain = hot_load(ctx.base(), ctx.users.clone(), plain_event, false).await;

    ctx.server.reset_peak_rss();
    let rss_before_kb = ctx.server.status_kb("VmRSS");
    step(&format!(
        "LIVE: opening {LIVE_STREAMS} streams on event {live_event}"
    ));
    let opening = Instant::now();
    let streams = Streams::open(ctx.base(), live_event, LIVE_STREAMS, LIVE_SAMPLE_EVERY);
    let deadline = Instant::now() + Duration::from_secs(60);
    while streams.opened.load(Ordering::Relaxed) + streams.failed.load(Ordering::Relaxed)
        < LIVE_STREAMS
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let open_s = opening.elapsed().as_secs_f64();
    let opened = streams.opened.load(Ordering::Relaxed);
    let rss_open_kb = ctx.server.status_kb("VmRSS");
    step(&format!(
        "LIVE: {opened} streams open after {open_s:.1}s ({} failed); server RSS {:.1} MB",
        streams.failed.load(Ordering::Relaxed),
        rss_open_kb as f64 / 1024.0
    ));
    report.check(opened == LIVE_STREAMS, || {
        format!(
            "LIVE: only {opened} of {LIVE_STREAMS} streams opened, e.g. {}",
            streams.errors.lock().unwrap().join(" | ")
        )
    });
    let available_before: i32 =
        sqlx::query_scalar("SELECT available_seats FROM events WHERE id = $1")
            .bind(live_event)
            .fetch_one(&ctx.db)
            .await?;

    step(&format!(
        "LIVE: HOT with the streams open ({CONNECTIONS} connections, {}s)",
        HOT_FOR.as_secs()
    ));
    let load_before = load_average();
    let with = hot_load(ctx.base(), ctx.users.clone(), live_event, true).await;
    tokio::time::sleep(LIVE_GRACE).await;
    let load_after = load_average();
    let ended_early = streams.ended.load(Ordering::Relaxed);
    let peak_rss_kb = ctx.server.status_kb("VmHWM");
    let recorded = streams.stop().await;

    // Plain HOT once more, after the streams closed: the runs before and after bracket the one
    // with streams, so a drift of the machine or the database over the scenario does not count
    // as the streams' cost (HOT's second run of a scenario was seen 20 % slower with 1 stream).
    step(&format!(
        "LIVE: HOT without streams again ({CONNECTIONS} connections, {}s)",
        HOT_FOR.as_secs()
    ));
    let plain_after = hot_load(ctx.base(), ctx.users.clone(), plain_event, false).await;

    // Bookings of one event commit in the order of their ids (the INSERT comes after the
    // version-checked UPDATE, which holds the event's row lock until COMMIT), so the booking
    // of rank r (1-based, among this run's) leaves at most `available_before - r` seats: the
    // first message showing that many seats or fewer shows it.
    let mut created: Vec<(i64, Instant)> = with
        .samples
        .iter()
        .filter(|s| s.status == 201)
        .filter_map(|s| {
            let body: Value = serde_json::from_str(s.body.as_deref()?).ok()?;
            Some((body["data"]["id"].as_i64()?, s.done))
        })
        .collect();
    created.sort_by_key(|(id, _)| *id);
    let mut delays = Vec::new();
    let (mut missed, mut early) = (0usize, 0usize);
    for messages in &recorded {
        for (rank, (_, answered)) in created.iter().enumerate() {
            let shows = i64::from(available_before) - (rank as i64 + 1);
            let first = messages.partition_point(|(_, seats)| *seats > shows);
            match messages.get(first) {
                Some((arrived, _)) => {
                    if arrived < answered {
                        early += 1;
                    }
                    delays.push(arrived.saturating_duration_since(*answered));
                }
                None => missed += 1,
            }
        }
    }
    delays.sort();
    let (d50, d99) = (percentile(&delays, 0.50), percentile(&delays, 0.99));
    let messages: usize = recorded.iter().map(Vec::len).sum();

    let (p, w, a) = (
        plain.stat(|_| true),
        with.stat(|_| true),
        plain_after.stat(|_| true),
    );
    let bad = |run: &Run| run.samples.iter().filter(|s| s.status != 201).count();
    for (run, name) in [
        (&plain, "without streams"),
        (&with, "with streams"),
        (&plain_after, "without streams, after"),
    ] {
        let bad = bad(run);
        report.check(bad == 0, || {
            format!(
                "LIVE HOT {name}: {bad} answer(s) not 201, e.g. {}",
                run.errors.join(" | ")
            )
        });
    }
    report.check(missed == 0, || {
        format!("LIVE: {missed} (stream, booking) pairs never showed the booking within {}s of the run's end", LIVE_GRACE.as_secs())
    });
    report.check(ended_early == 0, || {
        format!("LIVE: {ended_early} stream(s) ended while the bookings ran")
    });
    let plain_rate = (p.rate + a.rate) / 2.0;
    let ratio = if plain_rate > 0.0 {
        w.rate / plain_rate
    } else {
        0.0
    };
    for (stat, when) in [(&p, "before"), (&a, "after")] {
        report.lines.push(stat.line(
            "LIVE",
            format!("HOT bookings, no streams ({when} the run with streams)"),
            CONNECTIONS,
            String::new(),
            None,
        ));
    }
    report.lines.push(w.line(
        "LIVE",
        format!(
            "HOT bookings, {opened} streams open ({:.0} % of the mean rate without)",
            ratio * 100.0
        ),
        CONNECTIONS,
        "rate within 15 %".into(),
        Some(ratio >= 0.85),
    ));
    report.lines.push(Line {
        scenario: "LIVE",
        what: format!(
            "201 → message showing it ({} sampled streams × {} bookings; {early} shown before the 201 arrived, counted as 0)",
            recorded.len(),
            created.len()
        ),
        connections: None,
        count: delays.len(),
        rate: None,
        p50: d50,
        p99: d99,
        target: format!("p99 ≤ {LIVE_P99_MS} ms"),
        met: d99.map(|d| d <= LIVE_P99_MS),
    });
    let peak_mb = peak_rss_kb as f64 / 1024.0;
    report.lines.push(Line {
        scenario: "LIVE",
        what: format!(
            "server peak RSS {peak_mb:.1} MB (before the streams {:.1} MB, {opened} open {:.1} MB)",
            rss_before_kb as f64 / 1024.0,
            rss_open_kb as f64 / 1024.0
        ),
        connections: None,
        count: opened,
        rate: None,
        p50: None,
        p99: None,
        target: format!("≤ {LIVE_RSS_MB} MB"),
        met: Some(peak_mb <= LIVE_RSS_MB),
    });
    report.notes.push(format!(
        "LIVE: {opened} streams opened in {open_s:.1}s; the sampled streams received {messages} messages; load average {load_before:.2} → {load_after:.2} over the run with streams"
    ));
    report.json.insert(
        "live".into(),
        json!({ "streams": opened, "openSeconds": open_s, "hotPlain": p.json(), "hotPlainAfter": a.json(), "hotWithStreams": w.json(),
                "ratio": ratio, "delayP50Ms": d50, "delayP99Ms": d99, "delayPairs": delays.len(),
                "shownBefore201": early, "missed": missed, "sampledStreams": recorded.len(),
                "sampledMessages": messages, "rssBeforeKb": rss_before_kb, "rssOpenKb": rss_open_kb,
                "peakRssKb": peak_rss_kb }),
    );
    Ok(())
}

/// HOT bookings of `event` through `base`: `CONNECTIONS` connections for `HOT_FOR`.
pub(super) async fn hot_load(
    base: String,
    users: Arc<Vec<User>>,
    event: i32,
    keep_body: bool,
) -> Run {
    load(
        base,
        CONNECTIONS,
        Stop::For(HOT_FOR),
        hot(users, event),
        keep_body,
    )
    .await
}

pub(super) fn hot(users: Arc<Vec<User>>, event: i32) -> Make {
    Arc::new(move |seq| Req {
        kind: 0,
        method: Method::POST,
        path: "/bookings".into(),
        query: Vec::new(),
        token: Some(users[seq % users.len()].token.clone()),
        body: Some(json!({ "eventId": event, "seatCount": 1 })),
    })
}

/// SSE streams held open by a client thread of their own.
struct Streams {
    opened: Arc<AtomicUsize>,
    failed: Arc<AtomicUsize>,
    /// Streams that ended before they were told to stop.
    ended: Arc<AtomicUsize>,
    errors: Arc<Mutex<Vec<String>>>,
    stop: tokio::sync::watch::Sender<bool>,
    done: tokio::sync::oneshot::Receiver<Vec<Vec<(Instant, i64)>>>,
}

impl Streams {
    fn open(base: String, event: i32, count: usize, sample_every: usize) -> Self {
        let (opened, failed, ended) = (
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicUsize::new(0)),
        );
        let errors = Arc::new(Mutex::new(Vec::new()));
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let (o, f, e, errs) = (
            opened.clone(),
            failed.clone(),
            ended.clone(),
            errors.clone(),
        );
        let done = super::own_thread::on_own_thread(move || async move {
            let client = reqwest::Client::new();
            let url = format!("{base}/events/{event}/live");
            let opening = Arc::new(tokio::sync::Semaphore::new(200));
            let mut tasks = Vec::new();
            for n in 0..count {
                let (client, url, opening) = (client.clone(), url.clone(), opening.clone());
                let (o, f, e, errs, mut stopped) = (
                    o.clone(),
                    f.clone(),
                    e.clone(),
                    errs.clone(),
                    stopped.clone(),
                );
                let sampled = n % sample_every == 0;
                tasks.push(tokio::spawn(async move {
                    let mut permit = Some(opening.acquire_owned().await);
                    let mut response = match client.get(&url).send().await {
                        Ok(r) if r.status() == 200 => r,
                        Ok(r) => {
                            f.fetch_add(1, Ordering::Relaxed);
                            keep(&errs, format!("status {}", r.status()));
                            return None;
                        }
                        Err(error) => {
                            f.fetch_add(1, Ordering::Relaxed);
                            keep(&errs, error.to_string());
                            return None;
                        }
                    };
                    let (mut first, mut buffer, mut messages) = (true, String::new(), Vec::new());
                    loop {
                        tokio::select! {
                            _ = stopped.changed() => break,
                            chunk = response.chunk() => match chunk {
                                Ok(Some(bytes)) => {
                                    let now = Instant::now();
                                    if first {
                                        first = false;
                                        permit.take();
                                        o.fetch_add(1, Ordering::Relaxed);
                                    }
                                    if sampled {
                                        buffer.push_str(&String::from_utf8_lossy(&bytes));
                                        while let Some(end) = buffer.find('\n') {
                                            let line: String = buffer.drain(..=end).collect();
                                            if let Some(data) = line.strip_prefix("data:") {
                                                if let Ok(v) = serde_json::from_str::<Value>(data.trim()) {
                                                    if let Some(seats) = v["availableSeats"].as_i64() {
                                                        messages.push((now, seats));
                                                    }
                                                }
                                            }
                                        }
                                    }
                                }
                                _ => {
                                    e.fetch_add(1, Ordering::Relaxed);
                                    break;
                                }
                            },
                        }
                    }
                    sampled.then_some(messages)
                }));
            }
            let mut recorded = Vec::new();
            for task in tasks {
                if let Ok(Some(messages)) = task.await {
                    recorded.push(messages);
                }
            }
            recorded
        });
        Self {
            opened,
            failed,
            ended,
            errors,
            stop,
            done,
        }
    }

    /// Closes every stream; the sampled streams' messages (arrival, availableSeats).
    async fn stop(self) -> Vec<Vec<(Instant, i64)>> {
        let _ = self.stop.send(true);
        self.done.await.unwrap_or_default()
    }
}

fn keep(errors: &Mutex<Vec<String>>, error: String) {
    let mut errors = errors.lock().unwrap();
    if errors.len() < 5 && !errors.contains(&error) {
        errors.push(error);
    }
}
