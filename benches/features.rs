//! Feature benchmark (`cargo bench --bench features`): check-in, search, live streams and
//! organizer insight against a real server process (release build) over HTTP and a real
//! PostgreSQL, the same way as `benches/booking.rs` (embedded cluster unless `DATABASE_URL`).
//!
//! Scenarios (`BENCH_ONLY=CHECK-IN|SEARCH|LIVE|STATS|NOTIFY|METRICS` runs one):
//! - CHECK-IN: 1,000 bookings of 10 seats on one event, their 10,000 codes fetched as the
//!   owners, all scanned at 64 connections; then 1,000 of them rescanned with the same nonces
//!   (replays). Every answer must be 200, check_ins must hold 10,000 rows, and each replay must
//!   repeat its first answer.
//! - SEARCH: 100,000 events inserted in bulk (SQL; then VACUUM (ANALYZE)), then 64 connections for a mix of
//!   `GET /events` searches (q; q+city+minSeats; from/to+sort=eventDate; page=50), and a plain
//!   `GET /events` run for comparison. Every answer must be 200. `EXPLAIN (ANALYZE, BUFFERS)` of
//!   one query of each kind goes to target/bench/search-plans.txt.
//! - LIVE: HOT bookings (1 seat, 64 connections) without streams, then with 5,000 SSE streams
//!   open on the booked event; for a sample of the streams, the delay from each 201 to the
//!   first message showing that booking; the server's peak RSS.
//! - STATS: an event with 100,000 CONFIRMED bookings (and some CANCELLED and PENDING ones),
//!   inserted in bulk; `GET /events/:id/stats` at 16 connections, the attendee CSV streamed
//!   once (must have 100,001 lines), the server's RSS around it; `GET /metrics` render time.
//! - NOTIFY: HOT without a webhook, with one (a receiver in this process hears every booking),
//!   and without again; the outbox backlog when the run ends and the deliveries per second.
//!   Every booking must be delivered once (`benches/features/notify.rs`).
//! - METRICS: HOT on the bench server (metrics on) and on a second one with
//!   `METRICS_ENABLED=false`, alternately, twice each (`benches/features/metrics_cost.rs`).
//!
//! Targets (p99s, throughput, RSS) are reported, not enforced; the correctness checks make the
//! bench exit non-zero, after the table. Writes target/bench/features.json.

#[path = "features/metrics_cost.rs"]
mod metrics_cost;
#[path = "features/notify.rs"]
mod notify;

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use event_booking::db::embedded::{ClusterOptions, EmbeddedPostgres};
use rand::seq::SliceRandom;
use rand::Rng;
use reqwest::Method;
use serde_json::{json, Value};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, Postgres};
use sqlx::{PgPool, QueryBuilder, Row as _};

/// The server's pool (`DB_MAX_CONNECTIONS`), as in the booking bench.
const POOL_SIZE: u32 = 16;
const CONNECTIONS: usize = 64;
const USERS: usize = 16;
const CLIENT_TIMEOUT: Duration = Duration::from_secs(30);
const PASSWORD: &str = "Bench!Passw0rd";

const CHECKIN_BOOKINGS: usize = 1_000;
const CHECKIN_SEATS_EACH: usize = 10;
const CHECKIN_TICKETS: usize = CHECKIN_BOOKINGS * CHECKIN_SEATS_EACH;
const CHECKIN_REPLAYS: usize = 1_000;
const CHECKIN_P99_MS: f64 = 20.0;

const SEARCH_EVENTS: i64 = 100_000;
const SEARCH_FOR: Duration = Duration::from_secs(10);
const PLAIN_FOR: Duration = Duration::from_secs(3);
const SEARCH_P99_MS: f64 = 50.0;
const SEARCH_RATE: f64 = 2_000.0;
const SEARCH_KINDS: [&str; 4] = ["q", "q+city+minSeats", "from/to+sort=eventDate", "page=50"];

const LIVE_STREAMS: usize = 5_000;
/// Every this many-th stream records its messages.
const LIVE_SAMPLE_EVERY: usize = 50;
const HOT_SEATS: i64 = 1_000_000;
const HOT_FOR: Duration = Duration::from_secs(5);
/// How long the streams get after the last 201 to show it.
const LIVE_GRACE: Duration = Duration::from_secs(2);
const LIVE_P99_MS: f64 = 250.0;
const LIVE_RSS_MB: f64 = 128.0;

const STATS_CONFIRMED: i64 = 100_000;
const STATS_CANCELLED: i64 = 5_000;
const STATS_PENDING: i64 = 1_000;
const STATS_ATTENDEES: i64 = 1_000;
const STATS_CONNECTIONS: usize = 16;
const STATS_FOR: Duration = Duration::from_secs(5);
const STATS_P99_MS: f64 = 100.0;
const CSV_RSS_MB: f64 = 64.0;
const METRICS_CALLS: usize = 200;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("bench runtime");
    match runtime.block_on(run()) {
        Ok(violations) if violations.is_empty() => {}
        Ok(violations) => {
            eprintln!(
                "\n[bench] FAILED: {} violation(s), listed above",
                violations.len()
            );
            std::process::exit(1);
        }
        Err(error) => {
            eprintln!("[bench] error: {error:#}");
            std::process::exit(2);
        }
    }
}

fn step(text: &str) {
    eprintln!("[bench] {text}");
}

/// One line of the table.
struct Line {
    scenario: &'static str,
    what: String,
    connections: Option<usize>,
    count: usize,
    rate: Option<f64>,
    p50: Option<f64>,
    p99: Option<f64>,
    target: String,
    met: Option<bool>,
}

impl Line {
    fn json(&self) -> Value {
        json!({
            "scenario": self.scenario, "what": self.what, "connections": self.connections,
            "count": self.count, "perSec": self.rate, "p50Ms": self.p50, "p99Ms": self.p99,
            "target": self.target, "targetMet": self.met,
        })
    }
}

/// What every scenario adds to the report.
#[derive(Default)]
struct Report {
    lines: Vec<Line>,
    notes: Vec<String>,
    violations: Vec<String>,
    json: serde_json::Map<String, Value>,
}

impl Report {
    fn check(&mut self, ok: bool, violation: impl FnOnce() -> String) {
        if !ok {
            self.violations.push(violation());
        }
    }
}

async fn run() -> anyhow::Result<Vec<String>> {
    let started = Instant::now();
    let load_at_start = load_average();
    step(&format!(
        "load average (1 min) at the start: {load_at_start:.2}"
    ));
    let only = std::env::var("BENCH_ONLY")
        .unwrap_or_default()
        .to_uppercase();
    let wanted = |name: &str| only.is_empty() || only == name;
    // The bench holds the streams' client sockets, the server (which inherits the limit) as
    // many, plus the pools.
    let fd_limit = if wanted("LIVE") {
        Some(raise_fd_limit(2 * LIVE_STREAMS as libc::rlim_t + 2_048)?)
    } else {
        None
    };

    let (url, options, _cluster) = database().await?;
    step(&format!(
        "starting the server (release build), DB_MAX_CONNECTIONS={POOL_SIZE}"
    ));
    let server = Server::start(&url, POOL_SIZE)?;
    server.wait_ready().await?;
    let server_fd_limit = server.fd_limit();
    let db = PgPoolOptions::new()
        .max_connections(4)
        .connect_with(options)
        .await?;
    let api = Api {
        client: reqwest::Client::builder()
            .pool_max_idle_per_host(16)
            .build()?,
        base: server.base.clone(),
    };

    step(&format!(
        "creating an organizer and {USERS} users through the API"
    ));
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis();
    let organizer = api
        .register(&format!("organizer-{stamp}@bench.test"), "ORGANIZER")
        .await?;
    let mut users = Vec::new();
    let emails: Vec<String> = (0..USERS)
        .map(|n| format!("user{n}-{stamp}@bench.test"))
        .collect();
    for chunk in emails.chunks(4) {
        let batch =
            futures::future::join_all(chunk.iter().map(|email| api.register(email, "USER"))).await;
        for user in batch {
            users.push(user?);
        }
    }
    let ctx = Ctx {
        url,
        api,
        db,
        organizer,
        users: Arc::new(users),
        server,
        stamp,
    };

    let mut report = Report::default();
    let mut durations = serde_json::Map::new();
    let scenarios: [(&str, Scenario); 6] = [
        ("CHECK-IN", Scenario::CheckIn),
        ("SEARCH", Scenario::Search),
        ("LIVE", Scenario::Live),
        ("STATS", Scenario::Stats),
        ("NOTIFY", Scenario::Notify),
        ("METRICS", Scenario::Metrics),
    ];
    for (name, scenario) in scenarios {
        if !wanted(name) {
            continue;
        }
        let at = Instant::now();
        let load = load_average();
        step(&format!("{name}: start (load average {load:.2})"));
        let result = match scenario {
            Scenario::CheckIn => check_in(&ctx, &mut report).await,
            Scenario::Search => search(&ctx, &mut report).await,
            Scenario::Live => live(&ctx, &mut report).await,
            Scenario::Stats => stats(&ctx, &mut report).await,
            Scenario::Notify => notify::notify(&ctx, &mut report).await,
            Scenario::Metrics => metrics_cost::metrics_cost(&ctx, &mut report).await,
        };
        if let Err(error) = result {
            report
                .violations
                .push(format!("{name}: the scenario failed: {error:#}"));
        }
        let seconds = at.elapsed().as_secs_f64();
        step(&format!(
            "{name}: done in {seconds:.0}s (load average {:.2})",
            load_average()
        ));
        durations.insert(name.to_string(), json!(seconds));
    }

    let load_at_end = load_average();
    let peak_rss_kb = ctx.server.status_kb("VmHWM");
    print_table(
        &report,
        (load_at_start, load_at_end),
        fd_limit,
        server_fd_limit,
    );
    let total = started.elapsed().as_secs_f64();
    let mut out = json!({
        "machine": machine(),
        "loadAverage1m": { "start": load_at_start, "end": load_at_end },
        "dbMaxConnections": POOL_SIZE,
        "benchOpenFileLimit": fd_limit,
        "serverOpenFileLimit": server_fd_limit,
        "lines": report.lines.iter().map(Line::json).collect::<Vec<_>>(),
        "notes": report.notes,
        "violations": report.violations,
        "scenarioSeconds": durations,
        "serverPeakRssKbSinceLastReset": peak_rss_kb,
        "totalSeconds": total,
    });
    if let Value::Object(map) = &mut out {
        map.extend(report.json.clone());
    }
    std::fs::create_dir_all("target/bench")?;
    std::fs::write(
        "target/bench/features.json",
        serde_json::to_string_pretty(&out)?,
    )?;
    step(&format!(
        "wrote target/bench/features.json; the whole run took {total:.0}s; load average {load_at_end:.2}"
    ));
    ctx.db.close().await;
    Ok(report.violations)
}

#[derive(Clone, Copy)]
enum Scenario {
    CheckIn,
    Search,
    Live,
    Stats,
    Notify,
    Metrics,
}

/// What the scenarios share.
struct Ctx {
    url: String,
    api: Api,
    db: PgPool,
    organizer: User,
    users: Arc<Vec<User>>,
    server: Server,
    stamp: u128,
}

impl Ctx {
    fn base(&self) -> String {
        self.server.base.clone()
    }
}

// ---------------------------------------------------------------------------------------------
// CHECK-IN

async fn check_in(ctx: &Ctx, report: &mut Report) -> anyhow::Result<()> {
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
    report.lines.push(Line {
        scenario: "CHECK-IN",
        what: format!(
            "scan {CHECKIN_TICKETS} codes (all 200: {scanned_ok}; rows {rows_after_scan})"
        ),
        connections: Some(CONNECTIONS),
        count: s.count,
        rate: Some(s.rate),
        p50: s.p50,
        p99: s.p99,
        target: format!("p99 ≤ {CHECKIN_P99_MS} ms"),
        met: s.p99.map(|p| p <= CHECKIN_P99_MS),
    });
    let r = replays.stat(|_| true);
    report.lines.push(Line {
        scenario: "CHECK-IN",
        what: format!(
            "rescan {CHECKIN_REPLAYS}, same nonces (200: {replayed_ok}; same answer: {same}; rows {rows_after_replay})"
        ),
        connections: Some(CONNECTIONS),
        count: r.count,
        rate: Some(r.rate),
        p50: r.p50,
        p99: r.p99,
        target: String::new(),
        met: None,
    });
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

// ---------------------------------------------------------------------------------------------
// SEARCH

const ADJECTIVES: [&str; 20] = [
    "Midnight",
    "Summer",
    "Winter",
    "Grand",
    "Electric",
    "Acoustic",
    "Royal",
    "Golden",
    "Urban",
    "Secret",
    "Open-Air",
    "Late",
    "Spring",
    "Autumn",
    "Classic",
    "Underground",
    "Festive",
    "Sunset",
    "Neon",
    "Little",
];
const GENRES: [&str; 20] = [
    "Jazz", "Rock", "Techno", "Opera", "Comedy", "Folk", "Blues", "Salsa", "Flamenco", "Tango",
    "Hip-Hop", "Indie", "Chamber", "Gospel", "Reggae", "Poetry", "Film", "Wine", "Food", "Design",
];
const KINDS: [&str; 12] = [
    "Festival", "Concert", "Night", "Gala", "Session", "Showcase", "Tour", "Marathon", "Workshop",
    "Fair", "Party", "Series",
];
/// (name, as a searcher types it).
const CITIES: [(&str, &str); 30] = [
    ("Zürich", "zurich"),
    ("Málaga", "malaga"),
    ("São Paulo", "sao paulo"),
    ("Kraków", "krakow"),
    ("Genève", "geneve"),
    ("Köln", "koln"),
    ("München", "munchen"),
    ("Reykjavík", "reykjavik"),
    ("Montréal", "montreal"),
    ("Bogotá", "bogota"),
    ("Córdoba", "cordoba"),
    ("Göteborg", "goteborg"),
    ("Malmö", "malmo"),
    ("Lisbon", "lisbon"),
    ("Berlin", "berlin"),
    ("Paris", "paris"),
    ("London", "london"),
    ("New York", "new york"),
    ("Tokyo", "tokyo"),
    ("Madrid", "madrid"),
    ("Vienna", "vienna"),
    ("Prague", "prague"),
    ("Oslo", "oslo"),
    ("Dublin", "dublin"),
    ("Amsterdam", "amsterdam"),
    ("Barcelona", "barcelona"),
    ("Sevilla", "sevilla"),
    ("Lyon", "lyon"),
    ("Milano", "milano"),
    ("Nice", "nice"),
];
const VENUES: [&str; 16] = [
    "Grand Hall",
    "Opera House",
    "City Arena",
    "Town Hall",
    "Blue Note Club",
    "Old Theatre",
    "Riverside Park",
    "Olympic Stadium",
    "Café Central",
    "Kunsthaus",
    "Philharmonie",
    "Warehouse 9",
    "Music Box",
    "Sala Apolo",
    "Palau de la Música",
    "Conservatory",
];
const PHRASES: [&str; 16] = [
    "live music",
    "local artists",
    "guest performers",
    "food trucks",
    "a late bar",
    "dancing until dawn",
    "a family programme",
    "limited seating",
    "standing room",
    "a VIP lounge",
    "surprise guests",
    "a silent auction",
    "street food",
    "a record fair",
    "open rehearsals",
    "workshops for beginners",
];

async fn search(ctx: &Ctx, report: &mut Report) -> anyhow::Result<()> {
    let organizer = ctx
        .api
        .register(
            &format!("search-organizer-{}@bench.test", ctx.stamp),
            "ORGANIZER",
        )
        .await?;
    step(&format!(
        "SEARCH: inserting {SEARCH_EVENTS} events and their ticket types (SQL)"
    ));
    let at = Instant::now();
    let words = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let cities: Vec<String> = CITIES.iter().map(|(c, _)| c.to_string()).collect();
    // Every random() is per row: each event draws its own words, seats, date and status.
    sqlx::query(
        "INSERT INTO events (title, description, venue, city, currency, total_seats, \
                             available_seats, status, version, event_date, organizer_id, \
                             created_at, updated_at) \
         SELECT adj || ' ' || genre || ' ' || kind, \
                'An ' || lower(adj) || ' ' || lower(genre) || ' ' || lower(kind) || ' at ' || venue \
                    || ' in ' || city || ', with ' || p1 || ', ' || p2 || ' and ' || p3 || '.', \
                venue, city, currency, seats, seats, status::event_status, 0, \
                now() - interval '90 days' + random() * interval '730 days', $7, created, created \
         FROM (SELECT $1::text[] AS a, $2::text[] AS g, $3::text[] AS k, $4::text[] AS c, \
                      $5::text[] AS v, $6::text[] AS p) w, \
              LATERAL (SELECT i, \
                  a[1 + floor(random() * cardinality(a))::int] AS adj, \
                  g[1 + floor(random() * cardinality(g))::int] AS genre, \
                  k[1 + floor(random() * cardinality(k))::int] AS kind, \
                  c[1 + floor(random() * cardinality(c))::int] AS city, \
                  v[1 + floor(random() * cardinality(v))::int] AS venue, \
                  p[1 + floor(random() * cardinality(p))::int] AS p1, \
                  p[1 + floor(random() * cardinality(p))::int] AS p2, \
                  p[1 + floor(random() * cardinality(p))::int] AS p3, \
                  (ARRAY['USD','EUR','CHF','GBP'])[1 + floor(random() * 4)::int] AS currency, \
                  (20 + floor(random() * 4980))::int AS seats, \
                  CASE WHEN random() < 0.90 THEN 'PUBLISHED' ELSE \
                      (ARRAY['COMPLETED','CANCELLED','DRAFT'])[1 + floor(random() * 3)::int] END AS status, \
                  now() - random() * interval '365 days' AS created \
                FROM generate_series(1, $8::bigint) i) r",
    )
    .bind(words(&ADJECTIVES))
    .bind(words(&GENRES))
    .bind(words(&KINDS))
    .bind(&cities)
    .bind(words(&VENUES))
    .bind(words(&PHRASES))
    .bind(organizer.id)
    .bind(SEARCH_EVENTS)
    .execute(&ctx.db)
    .await?;
    sqlx::query(
        "INSERT INTO ticket_types (event_id, name, price_cents, total_seats, available_seats) \
         SELECT id, 'General', (floor(random() * 100) * 100)::int, total_seats, available_seats \
         FROM events WHERE organizer_id = $1 ORDER BY id",
    )
    .bind(organizer.id)
    .execute(&ctx.db)
    .await?;
    sqlx::query("ANALYZE events, ticket_types")
        .execute(&ctx.db)
        .await?;
    // Straight after a bulk load the GIN index's pending list holds every new entry, and each
    // full-text query scans it; (auto)vacuum merges it. One q count before and after, for the
    // record; the runs below are after VACUUM, as a database that autovacuum has visited.
    let before_vacuum = explain_ms(&ctx.db, "jazz festival").await?;
    sqlx::query("VACUUM (ANALYZE) events, ticket_types")
        .execute(&ctx.db)
        .await?;
    let after_vacuum = explain_ms(&ctx.db, "jazz festival").await?;
    report.notes.push(format!(
        "SEARCH: the capped count of q=jazz festival took {before_vacuum:.1} ms straight after the bulk insert (GIN pending list) and {after_vacuum:.1} ms after VACUUM (ANALYZE); the runs are after VACUUM"
    ));
    let insert_s = at.elapsed().as_secs_f64();
    step(&format!("SEARCH: inserted and analyzed in {insert_s:.1}s"));

    let make: Make = Arc::new(|_| search_request(rand::thread_rng().gen_range(0..4)));
    step(&format!(
        "SEARCH: the mix at {CONNECTIONS} connections for {}s",
        SEARCH_FOR.as_secs()
    ));
    let load_before = load_average();
    let mix = load(ctx.base(), CONNECTIONS, Stop::For(SEARCH_FOR), make, false).await;
    step(&format!(
        "SEARCH: plain GET /events at {CONNECTIONS} connections for {}s",
        PLAIN_FOR.as_secs()
    ));
    let plain = load(
        ctx.base(),
        CONNECTIONS,
        Stop::For(PLAIN_FOR),
        Arc::new(|_| Req {
            kind: 4,
            method: Method::GET,
            path: "/events".into(),
            query: Vec::new(),
            token: None,
            body: None,
        }),
        false,
    )
    .await;
    let load_after = load_average();

    let mut json_kinds = serde_json::Map::new();
    for (kind, name) in SEARCH_KINDS.iter().enumerate() {
        let st = mix.stat(|s| s.kind == kind);
        let empty = mix
            .samples
            .iter()
            .filter(|s| s.kind == kind && s.total == Some(0))
            .count();
        report.lines.push(Line {
            scenario: "SEARCH",
            what: format!("{name} (empty results: {empty})"),
            connections: Some(CONNECTIONS),
            count: st.count,
            rate: Some(st.rate),
            p50: st.p50,
            p99: st.p99,
            target: format!("p99 ≤ {SEARCH_P99_MS} ms"),
            met: st.p99.map(|p| p <= SEARCH_P99_MS),
        });
        json_kinds.insert(
            name.to_string(),
            json!({ "stat": st.json(), "empty": empty }),
        );
    }
    let all = mix.stat(|_| true);
    report.lines.push(Line {
        scenario: "SEARCH",
        what: "mix, all kinds".into(),
        connections: Some(CONNECTIONS),
        count: all.count,
        rate: Some(all.rate),
        p50: all.p50,
        p99: all.p99,
        target: format!("p99 ≤ {SEARCH_P99_MS} ms, ≥ {SEARCH_RATE} /s"),
        met: all
            .p99
            .map(|p| p <= SEARCH_P99_MS && all.rate >= SEARCH_RATE),
    });
    let pl = plain.stat(|_| true);
    report.lines.push(Line {
        scenario: "SEARCH",
        what: "plain GET /events (no filters)".into(),
        connections: Some(CONNECTIONS),
        count: pl.count,
        rate: Some(pl.rate),
        p50: pl.p50,
        p99: pl.p99,
        target: String::new(),
        met: None,
    });
    for (run, name) in [(&mix, "mix"), (&plain, "plain")] {
        let bad = run.samples.iter().filter(|s| s.status != 200).count();
        report.check(bad == 0, || {
            format!(
                "SEARCH {name}: {bad} answer(s) not 200, e.g. {}",
                run.errors.join(" | ")
            )
        });
    }

    step("SEARCH: EXPLAIN (ANALYZE, BUFFERS) of one query of each kind");
    let plans = explain_all(&ctx.db).await?;
    std::fs::create_dir_all("target/bench")?;
    std::fs::write("target/bench/search-plans.txt", &plans.text)?;
    for (kind, indexes) in &plans.summary {
        report.notes.push(format!("SEARCH plan, {kind}: {indexes}"));
    }
    report.notes.push(format!(
        "SEARCH: {SEARCH_EVENTS} events inserted + ANALYZE in {insert_s:.1}s; load average {load_before:.2} → {load_after:.2} over the runs; plans in target/bench/search-plans.txt"
    ));
    report.json.insert(
        "search".into(),
        json!({ "kinds": json_kinds, "mix": all.json(), "plain": pl.json(),
                "insertSeconds": insert_s,
                "planIndexes": plans.summary.iter().map(|(k, v)| json!({ "query": k, "uses": v })).collect::<Vec<_>>() }),
    );
    Ok(())
}

/// One random query of `kind` (see `SEARCH_KINDS`).
fn search_request(kind: usize) -> Req {
    let mut rng = rand::thread_rng();
    let genre = GENRES[rng.gen_range(0..GENRES.len())].to_lowercase();
    let query: Vec<(String, String)> = match kind {
        0 => {
            let second = if rng.gen_bool(0.5) {
                KINDS[rng.gen_range(0..KINDS.len())].to_lowercase()
            } else {
                // Unaccented, as a searcher types it: "cafe zurich" finds "Café … Zürich".
                CITIES[rng.gen_range(0..CITIES.len())].1.to_string()
            };
            vec![("q".into(), format!("{genre} {second}"))]
        }
        1 => vec![
            ("q".into(), genre),
            (
                "city".into(),
                CITIES[rng.gen_range(0..CITIES.len())].0.to_uppercase(),
            ),
            (
                "minSeats".into(),
                [100, 500, 1000][rng.gen_range(0..3)].to_string(),
            ),
        ],
        2 => {
            let from = chrono::Utc::now().date_naive() - chrono::Duration::days(90)
                + chrono::Duration::days(rng.gen_range(0..700));
            let to = from + chrono::Duration::days(30);
            vec![
                ("from".into(), from.to_string()),
                ("to".into(), to.to_string()),
                ("sort".into(), "eventDate".into()),
            ]
        }
        _ => vec![("page".into(), "50".into())],
    };
    Req {
        kind,
        method: Method::GET,
        path: "/events".into(),
        query,
        token: None,
        body: None,
    }
}

struct Plans {
    text: String,
    /// (query, the indexes and scans it used).
    summary: Vec<(String, String)>,
}

/// The SQL `src/events/search.rs` runs for each kind (FullText matching, anonymous viewer):
/// the page and its capped count, each under `EXPLAIN (ANALYZE, BUFFERS)`.
async fn explain_all(db: &PgPool) -> anyhow::Result<Plans> {
    let from = chrono::Utc::now() + chrono::Duration::days(60);
    let to = from + chrono::Duration::days(30) - chrono::Duration::milliseconds(1);
    let cases: [(&str, Filters); 5] = [
        (
            "q=jazz festival (sort relevance)",
            Filters {
                q: Some("jazz festival".into()),
                ..Filters::default()
            },
        ),
        (
            "q=jazz&city=ZÜRICH&minSeats=500 (sort relevance)",
            Filters {
                q: Some("jazz".into()),
                city: Some("ZÜRICH".into()),
                min_seats: Some(500),
                ..Filters::default()
            },
        ),
        (
            "from/to (30 days)&sort=eventDate",
            Filters {
                from: Some(from),
                to: Some(to),
                date_sort: true,
                ..Filters::default()
            },
        ),
        (
            "page=50 (sort -createdAt)",
            Filters {
                offset: 490,
                ..Filters::default()
            },
        ),
        ("plain GET /events", Filters::default()),
    ];
    let mut text = String::new();
    let mut summary = Vec::new();
    for (name, filters) in cases {
        let mut used = Vec::new();
        for (part, count) in [("page", false), ("count", true)] {
            let mut sql = QueryBuilder::<Postgres>::new("EXPLAIN (ANALYZE, BUFFERS) ");
            if count {
                sql.push("SELECT count(*) FROM (SELECT 1 FROM events e");
            } else {
                sql.push(event_booking::events::service::view_select());
            }
            filters.push_where(&mut sql);
            if count {
                sql.push(" LIMIT ").push_bind(10_001_i64).push(") matches");
            } else {
                filters.push_order(&mut sql);
                sql.push(" LIMIT ")
                    .push_bind(10_i64)
                    .push(" OFFSET ")
                    .push_bind(filters.offset);
            }
            let rows = sql.build().fetch_all(db).await?;
            text.push_str(&format!("=== {name}: {part}\n"));
            for row in rows {
                let line: String = row.try_get(0)?;
                for (marker, kind) in [(" using ", "index"), (" on ", "scan")] {
                    if let Some(at) = line.find(marker) {
                        let node = line[..at].trim().trim_start_matches("->").trim();
                        let target = line[at + marker.len()..]
                            .split_whitespace()
                            .next()
                            .unwrap_or("");
                        if kind == "index"
                            || node.contains("Seq Scan")
                            || node.contains("Bitmap Index")
                        {
                            let entry = format!("{part}: {node} {target}");
                            if !used.contains(&entry) {
                                used.push(entry);
                            }
                        }
                        break;
                    }
                }
                text.push_str(&line);
                text.push('\n');
            }
            text.push('\n');
        }
        summary.push((name.to_string(), used.join("; ")));
    }
    Ok(Plans { text, summary })
}

/// Execution time of the capped count of a `q` search.
async fn explain_ms(db: &PgPool, q: &str) -> anyhow::Result<f64> {
    let mut sql = QueryBuilder::<Postgres>::new(
        "EXPLAIN (ANALYZE, BUFFERS) SELECT count(*) FROM (SELECT 1 FROM events e",
    );
    Filters {
        q: Some(q.into()),
        ..Filters::default()
    }
    .push_where(&mut sql);
    sql.push(" LIMIT ").push_bind(10_001_i64).push(") matches");
    let mut ms = 0.0;
    for row in sql.build().fetch_all(db).await? {
        let line: String = row.try_get(0)?;
        if let Some(value) = line.strip_prefix("Execution Time: ") {
            ms = value.trim_end_matches(" ms").parse().unwrap_or(0.0);
        }
    }
    Ok(ms)
}

#[derive(Default)]
struct Filters {
    q: Option<String>,
    city: Option<String>,
    min_seats: Option<i32>,
    from: Option<chrono::DateTime<chrono::Utc>>,
    to: Option<chrono::DateTime<chrono::Utc>>,
    date_sort: bool,
    offset: i64,
}

impl Filters {
    /// As `search::push_filters` with `Match::FullText`.
    fn push_where(&self, sql: &mut QueryBuilder<'_, Postgres>) {
        sql.push(" WHERE (e.status <> 'DRAFT' OR e.organizer_id = ")
            .push_bind(None::<i32>)
            .push(")");
        if let Some(q) = &self.q {
            sql.push(" AND e.search @@ plainto_tsquery('english_unaccent', ")
                .push_bind(q.clone())
                .push(")");
        }
        if let Some(from) = self.from {
            sql.push(" AND e.event_date >= ").push_bind(from);
        }
        if let Some(to) = self.to {
            sql.push(" AND e.event_date <= ").push_bind(to);
        }
        if let Some(city) = &self.city {
            sql.push(r#" AND lower(e.city COLLATE "und-x-icu") = lower("#)
                .push_bind(city.clone())
                .push(r#" COLLATE "und-x-icu")"#);
        }
        if let Some(min) = self.min_seats {
            sql.push(" AND e.available_seats >= ").push_bind(min);
        }
    }

    /// As `search::push_order`.
    fn push_order(&self, sql: &mut QueryBuilder<'_, Postgres>) {
        sql.push(" ORDER BY ");
        if let Some(q) = &self.q {
            sql.push("ts_rank_cd(e.search, plainto_tsquery('english_unaccent', ")
                .push_bind(q.clone())
                .push(")) DESC, ");
        } else if self.date_sort {
            sql.push("e.event_date ASC NULLS LAST, ");
        }
        sql.push("e.created_at DESC, e.id DESC");
    }
}

// ---------------------------------------------------------------------------------------------
// LIVE

async fn live(ctx: &Ctx, report: &mut Report) -> anyhow::Result<()> {
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
    let plain = load(
        ctx.base(),
        CONNECTIONS,
        Stop::For(HOT_FOR),
        hot(ctx.users.clone(), plain_event),
        false,
    )
    .await;

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
    let with = load(
        ctx.base(),
        CONNECTIONS,
        Stop::For(HOT_FOR),
        hot(ctx.users.clone(), live_event),
        true,
    )
    .await;
    tokio::time::sleep(LIVE_GRACE).await;
    let load_after = load_average();
    let ended_early = streams.ended.load(Ordering::Relaxed);
    let peak_rss_kb = ctx.server.status_kb("VmHWM");
    let recorded = streams.stop().await;

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

    let (p, w) = (plain.stat(|_| true), with.stat(|_| true));
    let bad = |run: &Run| run.samples.iter().filter(|s| s.status != 201).count();
    for (run, name) in [(&plain, "without streams"), (&with, "with streams")] {
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
    let ratio = if p.rate > 0.0 { w.rate / p.rate } else { 0.0 };
    report.lines.push(Line {
        scenario: "LIVE",
        what: "HOT bookings, no streams".into(),
        connections: Some(CONNECTIONS),
        count: p.count,
        rate: Some(p.rate),
        p50: p.p50,
        p99: p.p99,
        target: String::new(),
        met: None,
    });
    report.lines.push(Line {
        scenario: "LIVE",
        what: format!(
            "HOT bookings, {opened} streams open ({:.0} % of the rate without)",
            ratio * 100.0
        ),
        connections: Some(CONNECTIONS),
        count: w.count,
        rate: Some(w.rate),
        p50: w.p50,
        p99: w.p99,
        target: "rate within 15 %".into(),
        met: Some(ratio >= 0.85),
    });
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
        json!({ "streams": opened, "openSeconds": open_s, "hotPlain": p.json(), "hotWithStreams": w.json(),
                "ratio": ratio, "delayP50Ms": d50, "delayP99Ms": d99, "delayPairs": delays.len(),
                "shownBefore201": early, "missed": missed, "sampledStreams": recorded.len(),
                "sampledMessages": messages, "rssBeforeKb": rss_before_kb, "rssOpenKb": rss_open_kb,
                "peakRssKb": peak_rss_kb }),
    );
    Ok(())
}

fn hot(users: Arc<Vec<User>>, event: i32) -> Make {
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
        let (done_tx, done) = tokio::sync::oneshot::channel();
        let (o, f, e, errs) = (
            opened.clone(),
            failed.clone(),
            ended.clone(),
            errors.clone(),
        );
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("stream client runtime");
            let recorded = runtime.block_on(async move {
                let client = reqwest::Client::new();
                let url = format!("{base}/events/{event}/live");
                let opening = Arc::new(tokio::sync::Semaphore::new(200));
                let mut tasks = Vec::new();
                for n in 0..count {
                    let (client, url, opening) = (client.clone(), url.clone(), opening.clone());
                    let (o, f, e, errs, mut stopped) =
                        (o.clone(), f.clone(), e.clone(), errs.clone(), stopped.clone());
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
            let _ = done_tx.send(recorded);
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

// ---------------------------------------------------------------------------------------------
// STATS

async fn stats(ctx: &Ctx, report: &mut Report) -> anyhow::Result<()> {
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
    report.lines.push(Line {
        scenario: "STATS",
        what: format!("GET /events/:id/stats ({STATS_CONFIRMED} CONFIRMED of {total} bookings)"),
        connections: Some(STATS_CONNECTIONS),
        count: st.count,
        rate: Some(st.rate),
        p50: st.p50,
        p99: st.p99,
        target: format!("p99 ≤ {STATS_P99_MS} ms"),
        met: st.p99.map(|p| p <= STATS_P99_MS),
    });

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

// ---------------------------------------------------------------------------------------------
// Load generation

#[derive(Clone, Copy)]
enum Stop {
    For(Duration),
    Count(usize),
}

/// One request to send.
struct Req {
    /// Which kind of request (a scenario's own numbering), for per-kind figures.
    kind: usize,
    method: Method,
    path: String,
    query: Vec<(String, String)>,
    token: Option<String>,
    body: Option<Value>,
}

/// Makes request number `seq` (0-based, across all workers).
type Make = Arc<dyn Fn(usize) -> Req + Send + Sync>;

struct Sample {
    kind: usize,
    seq: usize,
    /// When the whole answer had arrived.
    done: Instant,
    latency: Duration,
    /// 0: a transport error.
    status: u16,
    /// `meta.total` of a page, when the answer has one.
    total: Option<i64>,
    body: Option<String>,
}

#[derive(Default)]
struct Run {
    samples: Vec<Sample>,
    elapsed: Duration,
    /// A few of the non-2xx answers and transport errors.
    errors: Vec<String>,
}

struct Stat {
    count: usize,
    rate: f64,
    p50: Option<f64>,
    p99: Option<f64>,
}

impl Stat {
    fn json(&self) -> Value {
        json!({ "count": self.count, "perSec": self.rate, "p50Ms": self.p50, "p99Ms": self.p99 })
    }
}

impl Run {
    fn stat(&self, which: impl Fn(&Sample) -> bool) -> Stat {
        let mut latencies: Vec<Duration> = self
            .samples
            .iter()
            .filter(|s| which(s))
            .map(|s| s.latency)
            .collect();
        latencies.sort();
        let elapsed = self.elapsed.as_secs_f64();
        Stat {
            count: latencies.len(),
            rate: if elapsed > 0.0 {
                latencies.len() as f64 / elapsed
            } else {
                0.0
            },
            p50: percentile(&latencies, 0.50),
            p99: percentile(&latencies, 0.99),
        }
    }
}

/// Sends requests from `concurrency` workers on a load-generator thread of its own (a
/// single-threaded runtime, as in the booking bench), each worker with one keep-alive
/// connection opened before the clock starts.
async fn load(base: String, concurrency: usize, stop: Stop, make: Make, keep_body: bool) -> Run {
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("load generator runtime");
        let run = runtime.block_on(generate(base, concurrency, stop, make, keep_body));
        let _ = done_tx.send(run);
    });
    done_rx.await.expect("load generator thread")
}

async fn generate(
    base: String,
    concurrency: usize,
    stop: Stop,
    make: Make,
    keep_body: bool,
) -> Run {
    let ready = Arc::new(tokio::sync::Barrier::new(concurrency));
    let start = Arc::new(OnceLock::<Instant>::new());
    let sent = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (base, make, ready, start, sent) = (
            base.clone(),
            make.clone(),
            ready.clone(),
            start.clone(),
            sent.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::builder()
                .pool_max_idle_per_host(1)
                .timeout(CLIENT_TIMEOUT)
                .build()
                .expect("HTTP client");
            if let Ok(response) = client.get(format!("{base}/health")).send().await {
                let _ = response.bytes().await;
            }
            ready.wait().await;
            let start = *start.get_or_init(Instant::now);
            let mut run = Run::default();
            loop {
                let seq = sent.fetch_add(1, Ordering::Relaxed);
                match stop {
                    Stop::Count(count) if seq >= count => break,
                    Stop::For(duration) if start.elapsed() >= duration => break,
                    _ => {}
                }
                let req = make(seq);
                let mut request = client.request(req.method, format!("{base}{}", req.path));
                if !req.query.is_empty() {
                    request = request.query(&req.query);
                }
                if let Some(token) = &req.token {
                    request = request.bearer_auth(token);
                }
                if let Some(body) = &req.body {
                    request = request.json(body);
                }
                let before = Instant::now();
                let (status, text) = match request.send().await {
                    Ok(response) => {
                        let status = response.status().as_u16();
                        match response.text().await {
                            Ok(text) => (status, text),
                            Err(error) => (0, error.to_string()),
                        }
                    }
                    Err(error) => (0, error.to_string()),
                };
                let latency = before.elapsed();
                // Lets the client put the connection back before the next request.
                tokio::task::yield_now().await;
                if (status == 0 || status >= 400) && run.errors.len() < 5 {
                    let example =
                        format!("{status} {}", text.chars().take(200).collect::<String>());
                    if !run.errors.contains(&example) {
                        run.errors.push(example);
                    }
                }
                run.samples.push(Sample {
                    kind: req.kind,
                    seq,
                    done: Instant::now(),
                    latency,
                    status,
                    total: meta_total(&text),
                    body: keep_body.then_some(text),
                });
            }
            run.elapsed = start.elapsed();
            run
        }));
    }
    let mut run = Run::default();
    for task in tasks {
        match task.await {
            Ok(part) => {
                run.samples.extend(part.samples);
                run.elapsed = run.elapsed.max(part.elapsed);
                for error in part.errors {
                    if run.errors.len() < 5 && !run.errors.contains(&error) {
                        run.errors.push(error);
                    }
                }
            }
            Err(error) => run.errors.push(format!("worker failed: {error}")),
        }
    }
    run
}

/// `meta.total` of a page, found without parsing the whole answer.
fn meta_total(text: &str) -> Option<i64> {
    let at = text.rfind("\"total\":")?;
    let digits: String = text[at + 8..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// Nearest-rank percentile of sorted latencies, in milliseconds.
fn percentile(sorted: &[Duration], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1].as_secs_f64() * 1000.0)
}

// ---------------------------------------------------------------------------------------------
// The server, the database, the API (as in benches/booking.rs)

/// Raises the soft limit on open files to `want` (at most the hard limit), for the bench and
/// the server it starts (which inherits it). Returns the soft limit now in force.
fn raise_fd_limit(want: libc::rlim_t) -> anyhow::Result<libc::rlim_t> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        anyhow::bail!("getrlimit(RLIMIT_NOFILE) failed");
    }
    if limit.rlim_cur >= want {
        return Ok(limit.rlim_cur);
    }
    let raised = libc::rlimit {
        rlim_cur: want.min(limit.rlim_max),
        rlim_max: limit.rlim_max,
    };
    // SAFETY: setrlimit only reads the struct we pass.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
        anyhow::bail!("setrlimit(RLIMIT_NOFILE) to {} failed", raised.rlim_cur);
    }
    step(&format!(
        "raised the open-file limit from {} to {} (hard limit {})",
        limit.rlim_cur, raised.rlim_cur, limit.rlim_max
    ));
    Ok(raised.rlim_cur)
}

/// `DATABASE_URL` when set, else a fresh embedded cluster: (url, options, cluster guard).
async fn database() -> anyhow::Result<(String, PgConnectOptions, Option<EmbeddedPostgres>)> {
    if let Ok(url) = std::env::var("DATABASE_URL") {
        return Ok((url.clone(), url.parse()?, None));
    }
    step("starting an embedded PostgreSQL in target/bench/postgres-features");
    let dir = std::path::absolute("target/bench/postgres-features")?;
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_file(dir.with_extension("password"));
    std::fs::create_dir_all(dir.parent().unwrap_or(&dir))?;
    let options = ClusterOptions {
        durable: true,
        max_connections: 200,
        port: None,
    };
    let cluster = EmbeddedPostgres::start_with(&dir, options).await?;
    cluster.create_database("event_booking").await?;
    let url = cluster.url("event_booking");
    Ok((url, cluster.connect_options("event_booking"), Some(cluster)))
}

/// A server process of the release build.
struct Server {
    child: Child,
    base: String,
}

impl Server {
    fn start(database_url: &str, pool_size: u32) -> anyhow::Result<Self> {
        // Notifications are delivered by a worker process NOTIFY starts, so that the cost of
        // writing them and the cost of sending them are measured apart.
        Self::start_with(database_url, pool_size, &[("NOTIFY_WORKER", "false")])
    }

    fn start_with(
        database_url: &str,
        pool_size: u32,
        env: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let child = Command::new(env!("CARGO_BIN_EXE_event-booking"))
            .env("DATABASE_URL", database_url)
            .env("PORT", port.to_string())
            .env("JWT_SECRET", "bench-secret-bench-secret-bench-secret-123")
            .env("RATE_LIMIT_ENABLED", "false")
            // NOTIFY's receiver listens on 127.0.0.1.
            .env("WEBHOOK_ALLOW_PRIVATE", "true")
            .env("DB_MAX_CONNECTIONS", pool_size.to_string())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .envs(env.iter().copied())
            .spawn()?;
        Ok(Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
        })
    }

    async fn wait_ready(&self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(response) = reqwest::get(format!("{}/health", self.base)).await {
                if response.status() == 200 {
                    return Ok(());
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        anyhow::bail!("the server did not become healthy")
    }

    /// A field of /proc/<pid>/status, in kB (VmRSS, VmHWM).
    fn status_kb(&self, field: &str) -> u64 {
        status_kb(self.child.id(), field)
    }

    /// Resets the process's VmHWM to its current RSS (`clear_refs` 5), so the next reading is
    /// the peak since now.
    fn reset_peak_rss(&self) {
        if std::fs::write(format!("/proc/{}/clear_refs", self.child.id()), "5").is_err() {
            step("warning: could not reset the server's VmHWM; its peak is since its start");
        }
    }

    /// The server's soft limit on open files, from /proc/<pid>/limits.
    fn fd_limit(&self) -> Option<u64> {
        std::fs::read_to_string(format!("/proc/{}/limits", self.child.id()))
            .ok()?
            .lines()
            .find(|l| l.starts_with("Max open files"))?
            .split_whitespace()
            .nth(3)?
            .parse()
            .ok()
    }
}

fn status_kb(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with(field) && l[field.len()..].starts_with(':'))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

struct User {
    token: String,
    id: i32,
}

#[derive(Clone)]
struct Api {
    client: reqwest::Client,
    base: String,
}

impl Api {
    async fn register(&self, email: &str, role: &str) -> anyhow::Result<User> {
        let body = json!({ "firstname": "Bench", "lastname": "User", "email": email, "password": PASSWORD, "role": role });
        let response: Value = self
            .client
            .post(format!("{}/auth/register", self.base))
            .json(&body)
            .send()
            .await?
            .json()
            .await?;
        let token = response["accessToken"]
            .as_str()
            .ok_or_else(|| anyhow::anyhow!("register failed: {response}"))?;
        let id = response["user"]["id"]
            .as_i64()
            .ok_or_else(|| anyhow::anyhow!("register returned no user id: {response}"))?;
        Ok(User {
            token: token.to_string(),
            id: i32::try_from(id)?,
        })
    }

    async fn post_event(&self, token: &str, body: &Value) -> anyhow::Result<Value> {
        let response: Value = self
            .client
            .post(format!("{}/events", self.base))
            .bearer_auth(token)
            .json(body)
            .send()
            .await?
            .json()
            .await?;
        anyhow::ensure!(response["id"].is_i64(), "create event failed: {response}");
        Ok(response)
    }

    async fn create_event(&self, token: &str, seats: i64, title: &str) -> anyhow::Result<i32> {
        let body = json!({ "title": title, "totalSeats": seats, "status": "PUBLISHED", "eventDate": "2035-01-01T00:00:00Z" });
        Ok(self.post_event(token, &body).await?["id"]
            .as_i64()
            .unwrap_or_default() as i32)
    }
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_default();
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    format!("{cores} cores, {cpu}")
}

/// The 1-minute load average: other work on the machine skews every figure of the run.
fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0)
}

fn ms(value: Option<f64>) -> String {
    value.map_or_else(|| "—".to_string(), |v| format!("{v:.1}"))
}

fn print_table(
    report: &Report,
    load: (f64, f64),
    fd_limit: Option<libc::rlim_t>,
    server_fd_limit: Option<u64>,
) {
    println!(
        "\nmachine: {} · load average (1 min) {:.2} at the start, {:.2} at the end",
        machine(),
        load.0,
        load.1
    );
    println!(
        "server: release build, DB_MAX_CONNECTIONS={POOL_SIZE}, rate limits off · open-file limit: bench {}, server {}",
        fd_limit.map_or_else(|| "unchanged".to_string(), |l| l.to_string()),
        server_fd_limit.map_or_else(|| "?".to_string(), |l| l.to_string()),
    );
    println!();
    println!("| scenario | what | conn. | count | per s | p50 ms | p99 ms | target | met |");
    println!("|---|---|---:|---:|---:|---:|---:|---|---|");
    for l in &report.lines {
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            l.scenario,
            l.what,
            l.connections
                .map_or_else(|| "—".to_string(), |c| c.to_string()),
            l.count,
            l.rate
                .map_or_else(|| "—".to_string(), |r| format!("{r:.0}")),
            ms(l.p50),
            ms(l.p99),
            if l.target.is_empty() {
                "—"
            } else {
                &l.target
            },
            match l.met {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "—",
            }
        );
    }
    if !report.notes.is_empty() {
        println!();
        for note in &report.notes {
            println!("- {note}");
        }
    }
    if report.violations.is_empty() {
        println!("\nchecks: all passed");
    } else {
        println!("\nCHECKS FAILED ({}):", report.violations.len());
        for violation in &report.violations {
            println!("- {violation}");
        }
    }
}
