//! End-to-end booking benchmark (`cargo bench`): a real server process over HTTP against a real
//! PostgreSQL, each row compared with a PostgreSQL per-request baseline measured right before it.
//!
//! Scenarios, each at concurrency 16, 64 and 256 (keep-alive connections):
//! - HOT: 1-seat bookings of one event that never sells out;
//! - HOT-TYPES: HOT on an event of three ticket types, each request naming one at random
//!   (its rows run right after HOT's at the same concurrency);
//! - SPREAD: 1-seat bookings of 1,000 events chosen uniformly at random;
//! - SELLOUT: 5,000 1-seat requests for one 1,000-seat event;
//! - TWO INSTANCES: HOT at 64, half the connections on each of two servers sharing the database;
//! - MIXED (at 64 and 256): bookings, holds, confirms and cancels of one event with two ticket
//!   types, each user worker touching only its own bookings, and one organizer worker per 64
//!   connections resizing a ticket type back to back; compared with HOT runs right before and after it;
//! - OVERLOAD: 2,000 connections on one hot event, against a server with a pool of 4;
//! - THREE INSTANCES: `scripts/cluster.sh` (primary, streaming replica, three instances, nginx)
//!   started on free ports; HOT at 256 through nginx against HOT at 256 on one of its instances
//!   directly (`benches/booking/three.rs`). Needs nginx.
//!
//! The baseline is the booking protocol of API.md in the bench's own SQL, one booking per
//! transaction (read the event with its version and its ticket types, validate, version-checked
//! UPDATE of the event, UPDATE of the type, INSERT, COMMIT; 3 attempts with jittered back-off),
//! by as many tasks as the HTTP row has connections, through a pool of the server's size. Every
//! run is checked: its successes must equal the seats it sold, and every answer must be one the
//! contract allows; the seat invariant (per event and per ticket type) is checked in SQL at the
//! end. Violations are listed after the table and make the bench exit non-zero.
//!
//! Prints a table and writes `target/bench/booking.json`. Uses `DATABASE_URL` when set, else an
//! embedded PostgreSQL in `target/bench/postgres` (recreated each run). `BENCH_ONLY=HOT` (or
//! HOT-TYPES, SPREAD, SELLOUT, TWO, MIXED, OVERLOAD, THREE) runs one scenario; `BENCH_NO_LANES=1` starts
//! the servers with `BOOKING_LANES=false`. `BENCH_BEFORE_BIN=<server binary>` (embedded database
//! only) also measures another build of the server, e.g. of an earlier commit, on a database of
//! its own: every HOT, SPREAD and SELLOUT row gets an HTTP run of that server right after its
//! own, and a table of the two side by side.

#[path = "booking/mixed.rs"]
mod mixed;
#[path = "common/own_thread.rs"]
mod own_thread;
#[path = "booking/three.rs"]
mod three;

use std::collections::BTreeMap;
use std::future::Future;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use event_booking::db::embedded::{ClusterOptions, EmbeddedPostgres};
use mixed::{booking_statuses, check_mixed, drive_mixed, print_mixed, Mixed};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;
use uuid::Uuid;

const LEVELS: [usize; 3] = [16, 64, 256];
/// One HTTP run (HOT, SPREAD, TWO INSTANCES).
const RUN_FOR: Duration = Duration::from_secs(5);
/// One baseline run before each of them.
const BASELINE_FOR: Duration = Duration::from_secs(3);
/// The server's pool (`DB_MAX_CONNECTIONS`, passed explicitly) and the baseline's pool alike.
const POOL_SIZE: u32 = 16;
const HOT_SEATS: i64 = 1_000_000;
const SPREAD_EVENTS: usize = 1_000;
const SPREAD_SEATS: i64 = 100_000;
const SELLOUT_SEATS: i64 = 1_000;
const SELLOUT_REQUESTS: usize = 5_000;
const USERS: usize = 64;
/// HOT-TYPES: three ticket types of 333,333 seats (an event holds at most 1,000,000).
const TYPED_TYPES: [(&str, i64); 3] = [("VIP", 25_000), ("General", 5_000), ("Balcony", 2_500)];
const TYPED_SEATS: i64 = 333_333;
/// MIXED: two ticket types; organizer `k` resizes type `k % 2` back and forth between two sizes,
/// both far above what a run books (and the event stays within 1,000,000 seats).
const MIXED_LEVELS: [usize; 2] = [64, 256];
const MIXED_FOR: Duration = Duration::from_secs(5);
const MIXED_TYPES: [(&str, i64); 2] = [("Floor", 5_000), ("Seated", 3_000)];
const MIXED_TYPE_SEATS: i64 = 400_000;
const MIXED_EDIT_SEATS: [i64; 2] = [450_000, 400_000];
/// One organizer worker per this many connections.
const MIXED_CONNECTIONS_PER_ORGANIZER: usize = 64;
/// How many of its own bookings (and holds) a MIXED worker remembers.
const MIXED_MEMORY: usize = 256;
/// Holds must not expire during a run (API.md: HOLD_SECONDS, default 600).
const HOLD_SECONDS: u32 = 600;
const OVERLOAD_CONNECTIONS: usize = 2_000;
const OVERLOAD_POOL: u32 = 4;
const OVERLOAD_FOR: Duration = Duration::from_secs(10);
const OVERLOAD_CLIENT_THREADS: usize = 2;
const OVERLOAD_503_P99_MAX_MS: f64 = 100.0;
/// No answer should take this long (the server's own request timeout is 10 s); one that does is
/// a transport error, counted as "other".
const CLIENT_TIMEOUT: Duration = Duration::from_secs(30);
/// Attempts in all, the first included (API.md).
const MAX_ATTEMPTS: u32 = 3;
const PASSWORD: &str = "Bench!Passw0rd";
const HIGH_DEMAND: &str = "Booking failed due to high demand. Please try again.";
const SOLD_OUT: &str = "Not enough seats available. Requested: 1, Available: 0";
const UNAVAILABLE: &str = "Service temporarily unavailable";
const CONFIRM_HIGH_DEMAND: &str = "Confirmation failed due to high demand. Please try again.";
const CANCEL_HIGH_DEMAND: &str = "Cancellation failed due to high demand. Please try again.";
const MODIFIED_CONCURRENTLY: &str = "Event was modified concurrently. Please try again.";
const BOOKED: &str = "Booking confirmed successfully";
const HELD: &str = "Seats held successfully";
const CANCELLED: &str = "Booking cancelled successfully. Seats have been released.";

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("bench runtime");
    // Everything (servers, pools, the cluster) is dropped inside `run`, before the exit code.
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

async fn run() -> anyhow::Result<Vec<String>> {
    let started = Instant::now();
    let load_at_start = load_average();
    // BENCH_ONLY=SPREAD (or HOT, SELLOUT, TWO, OVERLOAD) runs one scenario.
    let only = std::env::var("BENCH_ONLY")
        .unwrap_or_default()
        .to_uppercase();
    let wanted = |name: &str| only.is_empty() || only == name;
    let lanes = !std::env::var("BENCH_NO_LANES")
        .is_ok_and(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "1" | "true" | "yes"));
    let fd_limit = if wanted("OVERLOAD") {
        // The bench holds 2,000 client sockets, the server (which inherits the limit) as many.
        Some(raise_fd_limit(
            2 * OVERLOAD_CONNECTIONS as libc::rlim_t + 1_024,
        )?)
    } else {
        None
    };

    let (url, options, cluster) = database().await?;
    step(&format!(
        "starting the server (release build), DB_MAX_CONNECTIONS={POOL_SIZE}, BOOKING_LANES={lanes}"
    ));
    let server = Server::start(&url, POOL_SIZE, lanes)?;
    server.wait_ready().await?;
    // Bookkeeping (seat counts, the invariant) outside the measured windows.
    let db = PgPoolOptions::new()
        .max_connections(2)
        .connect_with(options.clone())
        .await?;
    // The baseline's pool: the server's size, opened before it is measured.
    let pool = PgPoolOptions::new()
        .max_connections(POOL_SIZE)
        .connect_with(options)
        .await?;
    warm_pool(&pool).await?;
    let api = Api {
        client: reqwest::Client::builder()
            .pool_max_idle_per_host(16)
            .build()?,
        base: server.base.clone(),
    };

    step(&format!(
        "creating an organizer and {USERS} users through the API"
    ));
    let (organizer, users) = api.register_people().await?;
    let token = organizer.token.as_str();
    let before = match std::env::var("BENCH_BEFORE_BIN") {
        Ok(bin) if wanted("HOT") || wanted("SPREAD") || wanted("SELLOUT") => {
            let cluster = cluster.as_ref().ok_or_else(|| {
                anyhow::anyhow!("BENCH_BEFORE_BIN needs the embedded database (unset DATABASE_URL)")
            })?;
            Some(Before::start(&bin, cluster, lanes, &api.client).await?)
        }
        _ => None,
    };
    let mut compared = Vec::new();

    let mut violations = Vec::new();
    let mut report = Vec::new();
    let hot_run = Load::For(RUN_FOR);
    let hot_base = Load::For(BASELINE_FOR);

    // HOT and HOT-TYPES alternate per concurrency, so each pair of rows shares the machine's
    // conditions of the moment.
    let mut typed_rows = Vec::new();
    for (index, &level) in LEVELS.iter().enumerate() {
        // The other server's run goes before the baseline at every other concurrency, after
        // this server's run at the others, so neither always runs second.
        let other_first = index % 2 == 1;
        if wanted("HOT") {
            let mut other = None;
            if let Some(before) = before.as_ref().filter(|_| other_first) {
                other = Some(before.one_event("HOT", level, HOT_SEATS, hot_run).await?);
            }
            let (base_event, event) = (
                api.create_event(token, HOT_SEATS).await?,
                api.create_event(token, HOT_SEATS).await?,
            );
            step(&format!("HOT at {level}: baseline, then HTTP"));
            let baseline = measured(
                &db,
                &[base_event],
                baseline(&pool, &users, Target::One(base_event), level, hot_base),
            )
            .await?;
            let http = measured(
                &db,
                &[event],
                drive(&[&api], &users, Target::One(event), level, hot_run, 1),
            )
            .await?;
            if let Some(before) = before.as_ref().filter(|_| !other_first) {
                other = Some(before.one_event("HOT", level, HOT_SEATS, hot_run).await?);
            }
            if let Some(other) = other {
                compared.push(Compared::new("HOT", level, &http, other));
            }
            report.push(Row::new("HOT", level, http, Some(baseline)));
        }
        if wanted("HOT-TYPES") {
            let (base_event, base_types) = api
                .create_typed_event(token, &TYPED_TYPES, TYPED_SEATS)
                .await?;
            let (event, types) = api
                .create_typed_event(token, &TYPED_TYPES, TYPED_SEATS)
                .await?;
            step(&format!(
                "HOT-TYPES at {level}: baseline, then HTTP ({} ticket types, one at random per request)",
                types.len()
            ));
            let baseline = measured(
                &db,
                &[base_event],
                baseline(
                    &pool,
                    &users,
                    Target::Typed(base_event, Arc::new(base_types)),
                    level,
                    hot_base,
                ),
            )
            .await?;
            let http = measured(
                &db,
                &[event],
                drive(
                    &[&api],
                    &users,
                    Target::Typed(event, Arc::new(types)),
                    level,
                    hot_run,
                    1,
                ),
            )
            .await?;
            typed_rows.push(Row::new("HOT-TYPES", level, http, Some(baseline)));
        }
    }
    report.extend(typed_rows);

    if wanted("SPREAD") {
        step(&format!("creating {SPREAD_EVENTS} events for SPREAD"));
        let mut spread = Vec::with_capacity(SPREAD_EVENTS);
        for _ in 0..SPREAD_EVENTS {
            spread.push(api.create_event(token, SPREAD_SEATS).await?);
        }
        // The baseline and the HTTP runs share these events (seats sold are counted per run);
        // none of them comes close to selling out.
        let spread = Arc::new(spread);
        let other_spread = match &before {
            Some(before) => {
                step(&format!(
                    "creating {SPREAD_EVENTS} events on the other server"
                ));
                let mut events = Vec::with_capacity(SPREAD_EVENTS);
                for _ in 0..SPREAD_EVENTS {
                    events.push(before.api.create_event(&before.token, SPREAD_SEATS).await?);
                }
                Arc::new(events)
            }
            None => Arc::new(Vec::new()),
        };
        for (index, &level) in LEVELS.iter().enumerate() {
            let other_first = index % 2 == 1;
            let mut other = None;
            if let Some(before) = before.as_ref().filter(|_| other_first) {
                other = Some(
                    before
                        .many_events("SPREAD", level, &other_spread, hot_run)
                        .await?,
                );
            }
            step(&format!("SPREAD at {level}: baseline, then HTTP"));
            let target = Target::Many(spread.clone());
            let baseline = measured(
                &db,
                &spread,
                baseline(&pool, &users, target.clone(), level, hot_base),
            )
            .await?;
            let http = measured(
                &db,
                &spread,
                drive(&[&api], &users, target, level, hot_run, 1),
            )
            .await?;
            if let Some(before) = before.as_ref().filter(|_| !other_first) {
                other = Some(
                    before
                        .many_events("SPREAD", level, &other_spread, hot_run)
                        .await?,
                );
            }
            if let Some(other) = other {
                compared.push(Compared::new("SPREAD", level, &http, other));
            }
            report.push(Row::new("SPREAD", level, http, Some(baseline)));
        }
    }

    for (index, &level) in LEVELS.iter().enumerate().filter(|_| wanted("SELLOUT")) {
        let load = Load::Count(SELLOUT_REQUESTS);
        let other_first = index % 2 == 1;
        let mut other = None;
        if let Some(before) = before.as_ref().filter(|_| other_first) {
            other = Some(
                before
                    .one_event("SELLOUT", level, SELLOUT_SEATS, load)
                    .await?,
            );
        }
        let (base_event, event) = (
            api.create_event(token, SELLOUT_SEATS).await?,
            api.create_event(token, SELLOUT_SEATS).await?,
        );
        step(&format!("SELLOUT at {level}: baseline, then HTTP"));
        let baseline = measured(
            &db,
            &[base_event],
            baseline(&pool, &users, Target::One(base_event), level, load),
        )
        .await?;
        let http = measured(
            &db,
            &[event],
            drive(&[&api], &users, Target::One(event), level, load, 1),
        )
        .await?;
        if let Some(before) = before.as_ref().filter(|_| !other_first) {
            other = Some(
                before
                    .one_event("SELLOUT", level, SELLOUT_SEATS, load)
                    .await?,
            );
        }
        if let Some(other) = other {
            compared.push(Compared::new("SELLOUT", level, &http, other));
        }
        report.push(Row::new("SELLOUT", level, http, Some(baseline)));
    }

    if let Some(before) = before {
        before.db.close().await;
        drop(before.server);
    }
    let mut peak_rss_kb = server.peak_rss_kb();
    if wanted("TWO") {
        step("TWO INSTANCES at 64: starting a second server");
        let second = Server::start(&url, POOL_SIZE, lanes)?;
        second.wait_ready().await?;
        let second_api = Api {
            client: api.client.clone(),
            base: second.base.clone(),
        };
        let (base_event, event) = (
            api.create_event(token, HOT_SEATS).await?,
            api.create_event(token, HOT_SEATS).await?,
        );
        step("TWO INSTANCES at 64: baseline, then HTTP");
        let baseline = measured(
            &db,
            &[base_event],
            baseline(&pool, &users, Target::One(base_event), 64, hot_base),
        )
        .await?;
        let http = measured(
            &db,
            &[event],
            drive(
                &[&api, &second_api],
                &users,
                Target::One(event),
                64,
                hot_run,
                1,
            ),
        )
        .await?;
        report.push(Row::new("TWO INSTANCES", 64, http, Some(baseline)));
        peak_rss_kb = peak_rss_kb.max(second.peak_rss_kb());
    }

    let mut three_note = None;
    let has_nginx = Command::new("nginx")
        .arg("-v")
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if wanted("THREE") && !has_nginx {
        three_note = Some("THREE INSTANCES skipped: nginx is not installed".to_string());
    }
    if wanted("THREE") && has_nginx {
        let result = three::three_instances(&api.client, lanes).await?;
        let ratio = result.three.per_sec / result.one.per_sec.max(1e-9);
        let direct = result.round_robin.per_sec / result.one.per_sec.max(1e-9);
        let met = if ratio >= three::THREE_MIN_RATIO {
            "met"
        } else {
            "not met"
        };
        three_note = Some(format!(
            "THREE INSTANCES at 256: {:.0} bookings/s through nginx vs {:.0}/s on one instance \
             of the same cluster directly = {ratio:.2}× (target ≥ {:.1}×: {met}); the three \
             without nginx (round-robin by the bench) {:.0}/s = {direct:.2}×; {} high-demand 409s",
            result.three.per_sec,
            result.one.per_sec,
            three::THREE_MIN_RATIO,
            result.round_robin.per_sec,
            result.three.high_demand + result.round_robin.high_demand
        ));
        violations.extend(result.violations);
        report.push(Row::new("ONE OF THE CLUSTER", 256, result.one, None));
        report.push(Row::new("THREE INSTANCES", 256, result.three, None));
        report.push(Row::new("THREE, NO NGINX", 256, result.round_robin, None));
    }

    let mut mixed = Vec::new();
    for &level in MIXED_LEVELS.iter().filter(|_| wanted("MIXED")) {
        // The HOT figure MIXED is compared with: the mean of a HOT run right before it and one
        // right after it, so a drift of the machine during the three runs evens out.
        step(&format!(
            "MIXED at {level}: a HOT run, MIXED, another HOT run"
        ));
        let hot_event = api.create_event(token, HOT_SEATS).await?;
        let hot = measured(
            &db,
            &[hot_event],
            drive(&[&api], &users, Target::One(hot_event), level, hot_run, 1),
        )
        .await?;
        let (event, types) = api
            .create_typed_event(token, &MIXED_TYPES, MIXED_TYPE_SEATS)
            .await?;
        let sold_before = seats(&db, &[event]).await?.1;
        let result = drive_mixed(&api, &users, &organizer, event, Arc::new(types), level).await;
        let (_, sold_after) = settled_seats(&db, &[event]).await?;
        let statuses = booking_statuses(&db, event).await?;
        let hot_event = api.create_event(token, HOT_SEATS).await?;
        let hot_after = measured(
            &db,
            &[hot_event],
            drive(&[&api], &users, Target::One(hot_event), level, hot_run, 1),
        )
        .await?;
        mixed.push(Mixed {
            concurrency: level,
            hot: [hot, hot_after],
            result,
            sold: sold_after - sold_before,
            statuses,
        });
    }

    let mut overload = None;
    if wanted("OVERLOAD") {
        step(&format!(
            "OVERLOAD: a server with DB_MAX_CONNECTIONS={OVERLOAD_POOL}, \
             {OVERLOAD_CONNECTIONS} connections on one hot event for {}s",
            OVERLOAD_FOR.as_secs()
        ));
        let small = Server::start(&url, OVERLOAD_POOL, lanes)?;
        small.wait_ready().await?;
        let small_api = Api {
            client: api.client.clone(),
            base: small.base.clone(),
        };
        let event = small_api.create_event(token, HOT_SEATS).await?;
        let sampler = ConnectionSampler::start(small.port);
        let http = measured(
            &db,
            &[event],
            drive(
                &[&small_api],
                &users,
                Target::One(event),
                OVERLOAD_CONNECTIONS,
                Load::For(OVERLOAD_FOR),
                OVERLOAD_CLIENT_THREADS,
            ),
        )
        .await?;
        let connections = sampler.stop().await;
        let rss = small.peak_rss_kb();
        drop(small);
        overload = Some(Overload {
            http,
            rss_kb: rss,
            connections,
        });
    }

    for row in &report {
        let what = format!("{} at {}", row.scenario, row.concurrency);
        check_run(&mut violations, &format!("{what} (HTTP)"), &row.http, false);
        if let Some(baseline) = &row.baseline {
            check_run(
                &mut violations,
                &format!("{what} (baseline)"),
                baseline,
                false,
            );
        }
    }
    if let Some(Overload { http, .. }) = &overload {
        check_run(&mut violations, "OVERLOAD", http, true);
        if let Some(p99) = http.p99_unavailable_ms {
            if p99 > OVERLOAD_503_P99_MAX_MS {
                violations.push(format!(
                    "OVERLOAD: p99 of the 503s is {p99:.1} ms, over {OVERLOAD_503_P99_MAX_MS} ms \
                     (an overloaded server must answer 503 at once)"
                ));
            }
        }
    }
    for row in &compared {
        let what = format!("{} at {} (other server)", row.scenario, row.concurrency);
        check_run(&mut violations, &what, &row.other, false);
    }
    for run in &mixed {
        check_mixed(&mut violations, run);
    }
    violations.extend(check_invariant(&db).await?);

    let header = Header {
        load: (load_at_start, load_average()),
        lanes,
        fd_limit,
        peak_rss_kb,
    };
    print_table(&header, &report, &mixed, overload.as_ref(), &violations);
    print_compared(&compared);
    if let Some(note) = &three_note {
        println!("\n{note}");
    }
    let json = json!({
        "machine": machine(),
        "loadAverage1m": { "start": header.load.0, "end": header.load.1 },
        "bookingLanes": lanes,
        "dbMaxConnections": POOL_SIZE,
        "baselinePoolSize": POOL_SIZE,
        "runSeconds": RUN_FOR.as_secs(),
        "baselineSeconds": BASELINE_FOR.as_secs(),
        "holdSeconds": HOLD_SECONDS,
        "scenarios": report.iter().map(Row::json).collect::<Vec<_>>(),
        "mixed": mixed.iter().map(Mixed::json).collect::<Vec<_>>(),
        "otherServer": std::env::var("BENCH_BEFORE_BIN").ok(),
        "comparedWithOtherServer": compared.iter().map(Compared::json).collect::<Vec<_>>(),
        "overload": overload.as_ref().map(|o| json!({
            "connections": OVERLOAD_CONNECTIONS,
            "clientConnectionsOpenMax": o.connections,
            "dbMaxConnections": OVERLOAD_POOL,
            "seconds": OVERLOAD_FOR.as_secs(),
            "result": o.http.json(),
            "serverPeakRssKb": o.rss_kb,
        })),
        "serverPeakRssKb": peak_rss_kb,
        "violations": violations,
        "totalSeconds": started.elapsed().as_secs_f64(),
    });
    std::fs::create_dir_all("target/bench")?;
    std::fs::write(
        "target/bench/booking.json",
        serde_json::to_string_pretty(&json)?,
    )?;
    step(&format!(
        "wrote target/bench/booking.json; the whole run took {:.0}s",
        started.elapsed().as_secs_f64()
    ));
    db.close().await;
    pool.close().await;
    drop(server);
    Ok(violations)
}

/// What OVERLOAD measured.
struct Overload {
    http: Measured,
    rss_kb: u64,
    /// The most client connections open to the server at once, sampled every 500 ms.
    connections: usize,
}

/// Samples how many connections the bench holds open to a server while a run goes on.
struct ConnectionSampler {
    stop: Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<usize>,
}

impl ConnectionSampler {
    fn start(port: u16) -> Self {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let task = tokio::spawn(async move {
            let mut most = 0;
            while !flag.load(Ordering::Relaxed) {
                most = most.max(connections_to(port));
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            most
        });
        Self { stop, task }
    }

    async fn stop(self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap_or(0)
    }
}

/// Established TCP connections to local `port`, counted at their client ends (the only ones
/// whose remote port it is), from /proc/net/tcp and tcp6.
fn connections_to(port: u16) -> usize {
    let remote = format!(":{port:04X}");
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|path| std::fs::read_to_string(path).ok())
        .map(|table| {
            table
                .lines()
                .skip(1)
                .filter(|line| {
                    let fields: Vec<&str> = line.split_whitespace().collect();
                    fields.len() > 3 && fields[2].ends_with(&remote) && fields[3] == "01"
                })
                .count()
        })
        .sum()
}

/// Raises the soft limit on open files to `want` (at most the hard limit), for the bench and
/// the server processes it starts. Returns the soft limit now in force.
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
    if raised.rlim_cur < want {
        step("warning: the hard open-file limit is below what OVERLOAD needs");
    }
    Ok(raised.rlim_cur)
}

/// `DATABASE_URL` when set, else a fresh embedded cluster: (url, options, cluster guard).
async fn database() -> anyhow::Result<(String, PgConnectOptions, Option<EmbeddedPostgres>)> {
    if let Ok(url) = std::env::var("DATABASE_URL") {
        return Ok((url.clone(), url.parse()?, None));
    }
    step("starting an embedded PostgreSQL in target/bench/postgres");
    let dir = std::path::absolute("target/bench/postgres")?;
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

/// Opens every connection of the pool, as a server that has been serving has them open.
async fn warm_pool(pool: &PgPool) -> anyhow::Result<()> {
    let mut held = Vec::new();
    for _ in 0..POOL_SIZE {
        held.push(pool.acquire().await?);
    }
    Ok(())
}

/// A server process of the release build.
struct Server {
    child: Child,
    port: u16,
    base: String,
}

impl Server {
    fn start(database_url: &str, pool_size: u32, lanes: bool) -> anyhow::Result<Self> {
        Self::start_binary(
            env!("CARGO_BIN_EXE_event-booking"),
            database_url,
            pool_size,
            lanes,
        )
    }

    fn start_binary(
        binary: &str,
        database_url: &str,
        pool_size: u32,
        lanes: bool,
    ) -> anyhow::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let child = Command::new(binary)
            .env("DATABASE_URL", database_url)
            .env("PORT", port.to_string())
            .env("JWT_SECRET", "bench-secret-bench-secret-bench-secret-123")
            .env("RATE_LIMIT_ENABLED", "false")
            .env("DB_MAX_CONNECTIONS", pool_size.to_string())
            .env("BOOKING_LANES", lanes.to_string())
            .env("HOLD_SECONDS", HOLD_SECONDS.to_string())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()?;
        Ok(Self {
            child,
            port,
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

    fn peak_rss_kb(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .ok()
            .and_then(|status| {
                status
                    .lines()
                    .find(|l| l.starts_with("VmHWM:"))
                    .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
            })
            .unwrap_or(0)
    }
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

/// Another build of the server (`BENCH_BEFORE_BIN`), on a database of its own in the same
/// cluster (its migrations may differ), with its own organizer and users.
struct Before {
    server: Server,
    api: Api,
    db: PgPool,
    users: Arc<Vec<User>>,
    token: String,
}

impl Before {
    async fn start(
        binary: &str,
        cluster: &EmbeddedPostgres,
        lanes: bool,
        client: &reqwest::Client,
    ) -> anyhow::Result<Self> {
        const DATABASE: &str = "event_booking_other";
        step(&format!(
            "starting the other server {binary} on database {DATABASE}"
        ));
        cluster.create_database(DATABASE).await?;
        let server = Server::start_binary(binary, &cluster.url(DATABASE), POOL_SIZE, lanes)?;
        server.wait_ready().await?;
        let db = PgPoolOptions::new()
            .max_connections(2)
            .connect_with(cluster.connect_options(DATABASE))
            .await?;
        let api = Api {
            client: client.clone(),
            base: server.base.clone(),
        };
        step("creating its organizer and users");
        let (organizer, users) = api.register_people().await?;
        Ok(Self {
            server,
            api,
            db,
            users,
            token: organizer.token,
        })
    }

    /// One HTTP run of the other server on a fresh event of `seats` seats.
    async fn one_event(
        &self,
        scenario: &str,
        level: usize,
        seats: i64,
        load: Load,
    ) -> anyhow::Result<Measured> {
        let event = self.api.create_event(&self.token, seats).await?;
        self.many_events(scenario, level, &Arc::new(vec![event]), load)
            .await
    }

    /// One HTTP run of the other server on `events` (one at random per request).
    async fn many_events(
        &self,
        scenario: &str,
        level: usize,
        events: &Arc<Vec<i32>>,
        load: Load,
    ) -> anyhow::Result<Measured> {
        step(&format!("{scenario} at {level}: the other server"));
        let target = match events.as_slice() {
            [one] => Target::One(*one),
            _ => Target::Many(events.clone()),
        };
        let apis = [&self.api];
        let run = drive(&apis, &self.users, target, level, load, 1);
        measured(&self.db, events, run).await
    }
}

/// An HTTP run of this server and the other server's run right after it.
struct Compared {
    scenario: &'static str,
    concurrency: usize,
    per_sec: f64,
    other: Measured,
}

impl Compared {
    fn new(scenario: &'static str, concurrency: usize, this: &Measured, other: Measured) -> Self {
        Self {
            scenario,
            concurrency,
            per_sec: this.per_sec,
            other,
        }
    }

    fn ratio(&self) -> Option<f64> {
        (self.other.per_sec > 0.0).then(|| self.per_sec / self.other.per_sec)
    }

    fn json(&self) -> Value {
        json!({
            "scenario": self.scenario, "concurrency": self.concurrency,
            "bookingsPerSec": self.per_sec, "other": self.other.json(),
            "ratioToOther": self.ratio(),
        })
    }
}

#[derive(Clone)]
struct Api {
    client: reqwest::Client,
    base: String,
}

impl Api {
    /// An organizer and `USERS` users, with emails unique to this run (so an external database
    /// can be reused).
    async fn register_people(&self) -> anyhow::Result<(User, Arc<Vec<User>>)> {
        let run = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_millis();
        let organizer = self
            .register(&format!("organizer-{run}@bench.test"), "ORGANIZER")
            .await?;
        let mut users = Vec::new();
        for n in 0..USERS {
            users.push(
                self.register(&format!("user{n}-{run}@bench.test"), "USER")
                    .await?,
            );
        }
        Ok((organizer, Arc::new(users)))
    }

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

    async fn create_event(&self, token: &str, seats: i64) -> anyhow::Result<i32> {
        let body = json!({ "title": "Bench event", "totalSeats": seats, "status": "PUBLISHED", "eventDate": "2035-01-01T00:00:00Z" });
        let response: Value = self
            .client
            .post(format!("{}/events", self.base))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await?
            .json()
            .await?;
        response["id"]
            .as_i64()
            .map(|id| id as i32)
            .ok_or_else(|| anyhow::anyhow!("create event failed: {response}"))
    }

    /// An event of several ticket types, `(name, price in cents)` with `seats` each: its id and
    /// its types' ids.
    async fn create_typed_event(
        &self,
        token: &str,
        types: &[(&str, i64)],
        seats: i64,
    ) -> anyhow::Result<(i32, Vec<i32>)> {
        let ticket_types: Vec<Value> = types
            .iter()
            .map(|(name, price)| json!({ "name": name, "priceCents": price, "totalSeats": seats }))
            .collect();
        let body = json!({ "title": "Bench event", "ticketTypes": ticket_types, "status": "PUBLISHED", "eventDate": "2035-01-01T00:00:00Z" });
        let response: Value = self
            .client
            .post(format!("{}/events", self.base))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await?
            .json()
            .await?;
        let id = response["id"]
            .as_i64()
            .ok_or_else(|| anyhow::anyhow!("create event failed: {response}"))?;
        let type_ids: Vec<i32> = response["ticketTypes"]
            .as_array()
            .map(|all| {
                all.iter()
                    .filter_map(|t| t["id"].as_i64().map(|id| id as i32))
                    .collect()
            })
            .unwrap_or_default();
        if type_ids.len() != types.len() {
            anyhow::bail!("the event was created without its ticket types: {response}");
        }
        Ok((i32::try_from(id)?, type_ids))
    }
}

#[derive(Clone)]
enum Target {
    One(i32),
    Many(Arc<Vec<i32>>),
    /// One event of several ticket types, each request naming one of them at random.
    Typed(i32, Arc<Vec<i32>>),
}

impl Target {
    /// The event of the next request, and its ticket type when the request names one.
    fn pick(&self) -> (i32, Option<i32>) {
        match self {
            Self::One(id) => (*id, None),
            Self::Many(ids) => (ids[rand::thread_rng().gen_range(0..ids.len())], None),
            Self::Typed(id, types) => (
                *id,
                Some(types[rand::thread_rng().gen_range(0..types.len())]),
            ),
        }
    }

    /// The body of the next 1-seat `POST /bookings`.
    fn body(&self) -> Value {
        match self.pick() {
            (event, None) => json!({ "eventId": event, "seatCount": 1 }),
            (event, Some(ticket_type)) => {
                json!({ "eventId": event, "seatCount": 1, "ticketTypeId": ticket_type })
            }
        }
    }
}

#[derive(Clone, Copy)]
enum Load {
    For(Duration),
    Count(usize),
}

impl Load {
    /// Whether a worker may send one more request (`sent` counts requests across workers).
    fn another(self, start: Instant, sent: &AtomicUsize) -> bool {
        match self {
            Self::For(duration) => start.elapsed() < duration,
            Self::Count(count) => sent.fetch_add(1, Ordering::Relaxed) < count,
        }
    }
}

/// What one booking request got.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// 201 (over HTTP) or a committed booking (baseline).
    Created,
    /// 409 "Not enough seats available. Requested: 1, Available: 0".
    SoldOut,
    /// 409 "Booking failed due to high demand. Please try again.".
    HighDemand,
    /// 503 "Service temporarily unavailable".
    Unavailable,
    /// Anything else, transport errors (status 0) included.
    Unexpected,
}

/// One answer: when it came (since the start), how long it took, and what it was.
struct Sample {
    at: Duration,
    latency: Duration,
    outcome: Outcome,
}

/// The raw result of one run, HTTP or baseline.
#[derive(Default)]
struct RunResult {
    samples: Vec<Sample>,
    elapsed: Duration,
    /// A few of the unexpected answers, for the report.
    examples: Vec<String>,
    /// Connections the HTTP warm-up could not open (the run went on without them warm).
    warmup_failures: usize,
}

impl RunResult {
    fn merge(&mut self, other: RunResult) {
        self.samples.extend(other.samples);
        self.elapsed = self.elapsed.max(other.elapsed);
        self.warmup_failures += other.warmup_failures;
        for example in other.examples {
            keep_example(&mut self.examples, example);
        }
    }
}

fn keep_example(examples: &mut Vec<String>, example: String) {
    if examples.len() < 5 && !examples.contains(&example) {
        examples.push(example);
    }
}

/// Drives `POST /bookings` over keep-alive HTTP from `threads` load-generator threads, each a
/// single-threaded runtime of its own: a light load generator leaves more of the cores to the
/// server and PostgreSQL. Each of the `concurrency` workers has one connection of its own,
/// opened before the clock starts, so connection set-up is not measured.
async fn drive(
    apis: &[&Api],
    users: &Arc<Vec<User>>,
    target: Target,
    concurrency: usize,
    load: Load,
    threads: usize,
) -> RunResult {
    let bases: Arc<Vec<String>> = Arc::new(apis.iter().map(|api| api.base.clone()).collect());
    let shared = Arc::new(Shared {
        ready: tokio::sync::Barrier::new(concurrency),
        start: OnceLock::new(),
        sent: AtomicUsize::new(0),
    });
    let mut answers = Vec::new();
    for thread in 0..threads {
        let workers: Vec<usize> = (thread..concurrency).step_by(threads).collect();
        let (bases, users, target, shared) =
            (bases.clone(), users.clone(), target.clone(), shared.clone());
        answers.push(own_thread::on_own_thread(move || {
            generate(bases, users, target, workers, load, shared)
        }));
    }
    let mut result = RunResult::default();
    for answer in answers {
        result.merge(answer.await.expect("load generator thread"));
    }
    result
}

/// What the workers of all load-generator threads share.
struct Shared {
    /// Every worker has its connection open.
    ready: tokio::sync::Barrier,
    start: OnceLock<Instant>,
    sent: AtomicUsize,
}

async fn generate(
    bases: Arc<Vec<String>>,
    users: Arc<Vec<User>>,
    target: Target,
    workers: Vec<usize>,
    load: Load,
    shared: Arc<Shared>,
) -> RunResult {
    let mut tasks = Vec::new();
    for worker in workers {
        let base = &bases[worker % bases.len()];
        let (url, warm_up) = (format!("{base}/bookings"), format!("{base}/bench-warm-up"));
        let (users, target, shared) = (users.clone(), target.clone(), shared.clone());
        tasks.push(tokio::spawn(async move {
            let (client, warm) = warm_client(&warm_up).await;
            let token = &users[worker % users.len()].token;
            let mut result = RunResult::default();
            if !warm {
                result.warmup_failures += 1;
            }
            shared.ready.wait().await;
            let start = *shared.start.get_or_init(Instant::now);
            while load.another(start, &shared.sent) {
                let body = target.body();
                let before = Instant::now();
                let response = client
                    .post(&url)
                    .bearer_auth(token)
                    .json(&body)
                    .send()
                    .await;
                let (outcome, example) = classify(response).await;
                // Lets the client put the connection back in its pool before this worker asks
                // for one again; otherwise it may open a spare connection.
                tokio::task::yield_now().await;
                if let Some(example) = example {
                    keep_example(&mut result.examples, example);
                }
                result.samples.push(Sample {
                    at: start.elapsed(),
                    latency: before.elapsed(),
                    outcome,
                });
            }
            result.elapsed = start.elapsed();
            result
        }));
    }
    let mut result = RunResult::default();
    for task in tasks {
        match task.await {
            Ok(part) => result.merge(part),
            Err(error) => keep_example(&mut result.examples, format!("worker failed: {error}")),
        }
    }
    result
}

/// A client of its own for one worker, with its one keep-alive connection opened (by a request
/// to `warm_up`, a 404) before the clock starts; false when that connection could not be opened.
/// A client per worker, so each worker holds exactly one connection: in a shared pool, a worker
/// that asks for a connection while another is on its way back opens a spare one, and the
/// server sees more connections than there are workers.
async fn warm_client(warm_up: &str) -> (reqwest::Client, bool) {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(1)
        .timeout(CLIENT_TIMEOUT)
        .build()
        .expect("HTTP client");
    for _ in 0..3 {
        match client.get(warm_up).send().await {
            Ok(response) => return (client.clone(), response.bytes().await.is_ok()),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    (client, false)
}

/// Sorts an answer into the outcomes the contract allows, or `Unexpected` with a description.
async fn classify(
    response: Result<reqwest::Response, reqwest::Error>,
) -> (Outcome, Option<String>) {
    let response = match response {
        Ok(response) => response,
        Err(error) => return (Outcome::Unexpected, Some(format!("status 0: {error}"))),
    };
    let status = response.status().as_u16();
    let text = match response.text().await {
        Ok(text) => text,
        Err(error) => {
            return (
                Outcome::Unexpected,
                Some(format!("{status} with an unreadable body: {error}")),
            )
        }
    };
    if status == 201 {
        return (Outcome::Created, None);
    }
    let message = serde_json::from_str::<Value>(&text)
        .ok()
        .and_then(|body| body["message"].as_str().map(str::to_string));
    match (status, message.as_deref()) {
        (409, Some(SOLD_OUT)) => (Outcome::SoldOut, None),
        (409, Some(HIGH_DEMAND)) => (Outcome::HighDemand, None),
        (503, Some(UNAVAILABLE)) => (Outcome::Unavailable, None),
        _ => {
            let text: String = text.chars().take(160).collect();
            (Outcome::Unexpected, Some(format!("{status} {text}")))
        }
    }
}

/// The PostgreSQL per-request baseline: `tasks` tasks book through `pool` with the protocol of
/// API.md, one booking per transaction, on the bench's own runtime (as a server would).
async fn baseline(
    pool: &PgPool,
    users: &Arc<Vec<User>>,
    target: Target,
    tasks: usize,
    load: Load,
) -> RunResult {
    let start = Instant::now();
    let sent = Arc::new(AtomicUsize::new(0));
    let mut handles = Vec::new();
    for task in 0..tasks {
        let (pool, users, target, sent) =
            (pool.clone(), users.clone(), target.clone(), sent.clone());
        handles.push(tokio::spawn(async move {
            let user = users[task % users.len()].id;
            let mut result = RunResult::default();
            while load.another(start, &sent) {
                let before = Instant::now();
                let (event, ticket_type) = target.pick();
                let outcome = match book_per_request(&pool, user, event, ticket_type, 1).await {
                    Ok(outcome) => outcome,
                    Err(error) => {
                        keep_example(&mut result.examples, error);
                        Outcome::Unexpected
                    }
                };
                result.samples.push(Sample {
                    at: start.elapsed(),
                    latency: before.elapsed(),
                    outcome,
                });
            }
            result.elapsed = start.elapsed();
            result
        }));
    }
    let mut result = RunResult::default();
    for handle in handles {
        match handle.await {
            Ok(part) => result.merge(part),
            Err(error) => keep_example(&mut result.examples, format!("task failed: {error}")),
        }
    }
    result
}

#[derive(sqlx::Type, PartialEq, Eq, Debug)]
#[sqlx(type_name = "event_status", rename_all = "UPPERCASE")]
enum EventStatus {
    Draft,
    Published,
    Cancelled,
    Completed,
}

/// The event as the baseline reads it, one row per ticket type: the event's status, version
/// and whether it is past (by the database's clock, as the server decides it), with the type.
#[derive(sqlx::FromRow)]
struct EventTypeRow {
    status: EventStatus,
    version: i64,
    past: bool,
    type_id: i32,
    price_cents: i32,
    type_available: i32,
}

/// What one attempt of the baseline achieved.
enum Attempt {
    Done(Outcome),
    /// The version check failed: another transaction changed the event since we read it.
    Lost,
    /// A booking the bench never expects to be refused (event missing, not published, past).
    Refused(String),
}

/// One booking as API.md describes it: at most 3 attempts, each in its own transaction, with
/// 0–10 ms then 0–20 ms of jittered back-off between them. `Err` for anything unexpected.
async fn book_per_request(
    pool: &PgPool,
    user_id: i32,
    event_id: i32,
    ticket_type: Option<i32>,
    seats: i32,
) -> Result<Outcome, String> {
    for attempt in 1..=MAX_ATTEMPTS {
        match attempt_booking(pool, user_id, event_id, ticket_type, seats).await {
            Ok(Attempt::Done(outcome)) => return Ok(outcome),
            Ok(Attempt::Lost) => {}
            Ok(Attempt::Refused(why)) => return Err(why),
            Err(error) if lost_race(&error) => {}
            Err(error) => return Err(format!("database error: {error}")),
        }
        if attempt < MAX_ATTEMPTS {
            let window_us = 10_000u64 << (attempt - 1);
            let pause = rand::thread_rng().gen_range(0..window_us);
            tokio::time::sleep(Duration::from_micros(pause)).await;
        }
    }
    Ok(Outcome::HighDemand)
}

/// SQLSTATE 40001 (serialization failure) and 40P01 (deadlock) count as lost races.
fn lost_race(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .and_then(|e| e.code())
        .is_some_and(|code| code == "40001" || code == "40P01")
}

/// One attempt: BEGIN; read the event with its version and its ticket types; validate
/// (published, not past, the type given or the only one, enough seats of it); version-checked
/// UPDATE of the event; UPDATE of the type; INSERT of the booking with its type and price;
/// COMMIT.
async fn attempt_booking(
    pool: &PgPool,
    user_id: i32,
    event_id: i32,
    ticket_type: Option<i32>,
    seats: i32,
) -> Result<Attempt, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let rows: Vec<EventTypeRow> = sqlx::query_as(
        "SELECT e.status, e.version, COALESCE(e.event_date < now(), false) AS past, \
                t.id AS type_id, t.price_cents, t.available_seats AS type_available \
         FROM events e JOIN ticket_types t ON t.event_id = e.id \
         WHERE e.id = $1 ORDER BY t.id",
    )
    .bind(event_id)
    .fetch_all(&mut *tx)
    .await?;
    let refuse = |why: String| Ok(Attempt::Refused(why));
    let Some(event) = rows.first() else {
        tx.rollback().await?;
        return refuse(format!(
            "event {event_id} not found (or without ticket types)"
        ));
    };
    if event.status != EventStatus::Published {
        tx.rollback().await?;
        return refuse(format!("event {event_id} is {:?}", event.status));
    }
    if event.past {
        tx.rollback().await?;
        return refuse(format!("event {event_id} is past"));
    }
    let chosen = match ticket_type {
        Some(id) => rows.iter().find(|row| row.type_id == id),
        None if rows.len() == 1 => rows.first(),
        None => None,
    };
    let Some(chosen) = chosen else {
        tx.rollback().await?;
        return refuse(format!(
            "event {event_id}: no ticket type {ticket_type:?} among {}",
            rows.len()
        ));
    };
    if chosen.type_available < seats {
        tx.rollback().await?;
        return Ok(Attempt::Done(Outcome::SoldOut));
    }
    let taken = sqlx::query(
        "UPDATE events SET available_seats = available_seats - $1, version = version + 1, \
                updated_at = now(), booking_count = booking_count + 1 \
         WHERE id = $2 AND version = $3",
    )
    .bind(seats)
    .bind(event_id)
    .bind(event.version)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if taken == 0 {
        tx.rollback().await?;
        return Ok(Attempt::Lost);
    }
    sqlx::query(
        "UPDATE ticket_types SET available_seats = available_seats - $1, updated_at = now() \
         WHERE id = $2",
    )
    .bind(seats)
    .bind(chosen.type_id)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO bookings (user_id, event_id, ticket_type_id, seat_count, total_price_cents, \
                               booking_reference, confirmed_at) \
         VALUES ($1, $2, $3, $4, $5, $6, now())",
    )
    .bind(user_id)
    .bind(event_id)
    .bind(chosen.type_id)
    .bind(seats)
    .bind(i64::from(seats) * i64::from(chosen.price_cents))
    .bind(Uuid::new_v4())
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Attempt::Done(Outcome::Created))
}

/// One run, measured: counts by outcome, latencies, and the seats it sold.
struct Measured {
    per_sec: f64,
    elapsed_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    p50_created_ms: Option<f64>,
    p99_created_ms: Option<f64>,
    p50_unavailable_ms: Option<f64>,
    p99_unavailable_ms: Option<f64>,
    created: usize,
    sold_out: usize,
    high_demand: usize,
    unavailable: usize,
    unexpected: usize,
    /// "High demand" answers given while seats were still left.
    false_rejections: usize,
    sold: i64,
    examples: Vec<String>,
    warmup_failures: usize,
}

/// Runs `run` and measures it against the seats sold on `events` meanwhile.
async fn measured(
    db: &PgPool,
    events: &[i32],
    run: impl Future<Output = RunResult>,
) -> anyhow::Result<Measured> {
    let sold_before = seats(db, events).await?.1;
    let result = run.await;
    let (available, sold_after) = settled_seats(db, events).await?;
    Ok(result.measure(available, sold_after - sold_before))
}

impl RunResult {
    fn measure(self, available: i64, sold: i64) -> Measured {
        let count = |outcome| self.samples.iter().filter(|s| s.outcome == outcome).count();
        // A "high demand" 409 is false when seats were still left as it was answered: all of
        // them if seats remain now, else those answered before the last confirmed booking.
        let last_success = self
            .samples
            .iter()
            .filter(|s| s.outcome == Outcome::Created)
            .map(|s| s.at)
            .max();
        let false_rejections = self
            .samples
            .iter()
            .filter(|s| {
                s.outcome == Outcome::HighDemand
                    && (available > 0 || last_success.is_some_and(|t| s.at < t))
            })
            .count();
        let latencies = |only: Option<Outcome>| {
            let mut all: Vec<Duration> = self
                .samples
                .iter()
                .filter(|s| only.is_none_or(|o| s.outcome == o))
                .map(|s| s.latency)
                .collect();
            all.sort();
            all
        };
        let all = latencies(None);
        let created = latencies(Some(Outcome::Created));
        let unavailable = latencies(Some(Outcome::Unavailable));
        let elapsed = self.elapsed.as_secs_f64();
        Measured {
            per_sec: if elapsed > 0.0 {
                created.len() as f64 / elapsed
            } else {
                0.0
            },
            elapsed_s: elapsed,
            p50_ms: percentile(&all, 0.50).unwrap_or(0.0),
            p99_ms: percentile(&all, 0.99).unwrap_or(0.0),
            p50_created_ms: percentile(&created, 0.50),
            p99_created_ms: percentile(&created, 0.99),
            p50_unavailable_ms: percentile(&unavailable, 0.50),
            p99_unavailable_ms: percentile(&unavailable, 0.99),
            created: created.len(),
            sold_out: count(Outcome::SoldOut),
            high_demand: count(Outcome::HighDemand),
            unavailable: unavailable.len(),
            unexpected: count(Outcome::Unexpected),
            false_rejections,
            sold,
            examples: self.examples,
            warmup_failures: self.warmup_failures,
        }
    }
}

/// Nearest-rank percentile of sorted latencies, in milliseconds.
fn percentile(sorted: &[Duration], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1].as_secs_f64() * 1000.0)
}

impl Measured {
    fn conflicts(&self) -> usize {
        self.sold_out + self.high_demand
    }

    fn json(&self) -> Value {
        json!({
            "bookingsPerSec": self.per_sec, "seconds": self.elapsed_s,
            "p50Ms": self.p50_ms, "p99Ms": self.p99_ms,
            "p50CreatedMs": self.p50_created_ms, "p99CreatedMs": self.p99_created_ms,
            "p50UnavailableMs": self.p50_unavailable_ms,
            "p99UnavailableMs": self.p99_unavailable_ms,
            "created201": self.created, "soldOut409": self.sold_out,
            "highDemand409": self.high_demand, "unavailable503": self.unavailable,
            "other": self.unexpected, "falseRejections": self.false_rejections,
            "seatsSold": self.sold, "otherExamples": self.examples,
            "warmupFailures": self.warmup_failures,
        })
    }
}

/// The per-run assertions: every success sold exactly one seat (and no seat was sold without
/// one), and every answer is one the contract allows here.
fn check_run(violations: &mut Vec<String>, what: &str, run: &Measured, allow_503: bool) {
    if run.created as i64 != run.sold {
        violations.push(format!(
            "{what}: {} successful bookings but {} seats sold",
            run.created, run.sold
        ));
    }
    if run.unexpected > 0 {
        violations.push(format!(
            "{what}: {} unexpected answer(s), e.g. {}",
            run.unexpected,
            run.examples.join(" | ")
        ));
    }
    if run.unavailable > 0 && !allow_503 {
        violations.push(format!(
            "{what}: {} answer(s) 503 \"{UNAVAILABLE}\"",
            run.unavailable
        ));
    }
}

struct Row {
    scenario: &'static str,
    concurrency: usize,
    http: Measured,
    baseline: Option<Measured>,
}

impl Row {
    fn new(
        scenario: &'static str,
        concurrency: usize,
        http: Measured,
        baseline: Option<Measured>,
    ) -> Self {
        Self {
            scenario,
            concurrency,
            http,
            baseline,
        }
    }

    fn ratio(&self) -> Option<f64> {
        self.baseline
            .as_ref()
            .filter(|b| b.per_sec > 0.0)
            .map(|b| self.http.per_sec / b.per_sec)
    }

    fn json(&self) -> Value {
        json!({
            "scenario": self.scenario, "concurrency": self.concurrency,
            "http": self.http.json(),
            "baseline": self.baseline.as_ref().map(Measured::json),
            "ratioToBaseline": self.ratio(),
        })
    }
}

/// (seats available, seats sold) over `events`.
async fn seats(db: &PgPool, events: &[i32]) -> anyhow::Result<(i64, i64)> {
    Ok(sqlx::query_as(
        "SELECT COALESCE(SUM(available_seats), 0)::bigint, \
                COALESCE(SUM(total_seats - available_seats), 0)::bigint \
         FROM events WHERE id = ANY($1)",
    )
    .bind(events)
    .fetch_one(db)
    .await?)
}

/// `seats` once they stop moving: a server may still be booking work whose caller already has
/// an answer (a timeout, say), and those seats belong to the run too.
async fn settled_seats(db: &PgPool, events: &[i32]) -> anyhow::Result<(i64, i64)> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut last = seats(db, events).await?;
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let now = seats(db, events).await?;
        if now == last || Instant::now() > deadline {
            return Ok(now);
        }
        last = now;
    }
}

/// The seat invariant of API.md over the whole database, in SQL: for every event and every
/// ticket type, `0 <= available <= total` and `available + seats of its CONFIRMED and PENDING
/// bookings = total`; and every event's totals are the sums over its types. One violation per
/// kind of breakage, with a few of the ids.
async fn check_invariant(db: &PgPool) -> anyhow::Result<Vec<String>> {
    let (types, type_ids): (i64, Vec<i32>) = sqlx::query_as(
        "WITH held AS ( \
             SELECT ticket_type_id, SUM(seat_count)::bigint AS seats FROM bookings \
             WHERE status IN ('CONFIRMED', 'PENDING') GROUP BY ticket_type_id), \
         broken AS ( \
             SELECT t.id FROM ticket_types t LEFT JOIN held h ON h.ticket_type_id = t.id \
             WHERE t.available_seats < 0 OR t.available_seats > t.total_seats \
                OR t.available_seats + COALESCE(h.seats, 0) <> t.total_seats) \
         SELECT count(*), COALESCE((SELECT array_agg(id) FROM \
                (SELECT id FROM broken ORDER BY id LIMIT 5) AS few), '{}') FROM broken",
    )
    .fetch_one(db)
    .await?;
    let (events, event_ids): (i64, Vec<i32>) = sqlx::query_as(
        "WITH held AS ( \
             SELECT event_id, SUM(seat_count)::bigint AS seats FROM bookings \
             WHERE status IN ('CONFIRMED', 'PENDING') GROUP BY event_id), \
         sums AS ( \
             SELECT event_id, SUM(total_seats)::bigint AS total, \
                    SUM(available_seats)::bigint AS available \
             FROM ticket_types GROUP BY event_id), \
         broken AS ( \
             SELECT e.id FROM events e LEFT JOIN held h ON h.event_id = e.id \
                  LEFT JOIN sums s ON s.event_id = e.id \
             WHERE e.available_seats < 0 OR e.available_seats > e.total_seats \
                OR e.available_seats + COALESCE(h.seats, 0) <> e.total_seats \
                OR s.event_id IS NULL OR s.total <> e.total_seats \
                OR s.available <> e.available_seats) \
         SELECT count(*), COALESCE((SELECT array_agg(id) FROM \
                (SELECT id FROM broken ORDER BY id LIMIT 5) AS few), '{}') FROM broken",
    )
    .fetch_one(db)
    .await?;
    let mut violations = Vec::new();
    if types > 0 {
        violations.push(format!(
            "the seat invariant is broken for {types} ticket type(s), e.g. {type_ids:?}"
        ));
    }
    if events > 0 {
        violations.push(format!(
            "the seat invariant (or totals = sums of the types) is broken for {events} \
             event(s), e.g. {event_ids:?}"
        ));
    }
    Ok(violations)
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

struct Header {
    /// The 1-minute load average at the start and at the end of the run.
    load: (f64, f64),
    lanes: bool,
    fd_limit: Option<libc::rlim_t>,
    peak_rss_kb: u64,
}

fn ms(value: Option<f64>) -> String {
    value.map_or_else(|| "—".to_string(), |v| format!("{v:.1}"))
}

fn print_table(
    header: &Header,
    rows: &[Row],
    mixed: &[Mixed],
    overload: Option<&Overload>,
    violations: &[String],
) {
    println!(
        "\nmachine: {} · load average (1 min) {:.2} at the start, {:.2} at the end",
        machine(),
        header.load.0,
        header.load.1
    );
    println!(
        "server: booking lanes {} · DB_MAX_CONNECTIONS={POOL_SIZE} · baseline: PostgreSQL \
         per-request (bench's own SQL, pool {POOL_SIZE}, same concurrency), {}s before each {}s HTTP run",
        if header.lanes {
            "ON (servers started with BOOKING_LANES=true)"
        } else {
            "OFF (servers started with BOOKING_LANES=false: one transaction per booking)"
        },
        BASELINE_FOR.as_secs(),
        RUN_FOR.as_secs(),
    );
    if !rows.is_empty() {
        println!();
        println!("| scenario | conc. | bookings/s | baseline/s | × baseline | p50 ms | p99 ms | 201 | 409 | 503 | other | false 409 | seats sold | baseline 409 (false) |");
        println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        for r in rows {
            let h = &r.http;
            let (base_rate, base_409) = r.baseline.as_ref().map_or_else(
                || ("—".to_string(), "—".to_string()),
                |b| {
                    (
                        format!("{:.0}", b.per_sec),
                        format!("{} ({})", b.conflicts(), b.false_rejections),
                    )
                },
            );
            println!(
                "| {} | {} | {:.0} | {} | {} | {:.1} | {:.1} | {} | {} | {} | {} | {} | {} | {} |",
                r.scenario,
                r.concurrency,
                h.per_sec,
                base_rate,
                r.ratio()
                    .map_or_else(|| "—".to_string(), |x| format!("{x:.2}")),
                h.p50_ms,
                h.p99_ms,
                h.created,
                h.conflicts(),
                h.unavailable,
                h.unexpected,
                h.false_rejections,
                h.sold,
                base_409,
            );
        }
        println!("\nbaseline runs (each right before the HTTP row of the same scenario and concurrency):\n");
        println!("| baseline for | tasks | bookings/s | p50 ms | p99 ms | booked | 409 sold out | 409 high demand | other | seats sold |");
        println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        for r in rows {
            if let Some(b) = &r.baseline {
                println!(
                    "| {} | {} | {:.0} | {:.1} | {:.1} | {} | {} | {} | {} | {} |",
                    r.scenario,
                    r.concurrency,
                    b.per_sec,
                    b.p50_ms,
                    b.p99_ms,
                    b.created,
                    b.sold_out,
                    b.high_demand,
                    b.unexpected,
                    b.sold
                );
            }
        }
    }
    let typed_vs_hot: Vec<String> = rows
        .iter()
        .filter(|r| r.scenario == "HOT-TYPES")
        .filter_map(|typed| {
            let hot = rows
                .iter()
                .find(|r| r.scenario == "HOT" && r.concurrency == typed.concurrency)?;
            (hot.http.per_sec > 0.0).then(|| {
                format!(
                    "{:.2} at {}",
                    typed.http.per_sec / hot.http.per_sec,
                    typed.concurrency
                )
            })
        })
        .collect();
    if !typed_vs_hot.is_empty() {
        println!(
            "\nHOT-TYPES / HOT (bookings/s, same run): {}",
            typed_vs_hot.join(", ")
        );
    }
    if !mixed.is_empty() {
        print_mixed(mixed);
    }
    if let Some(overload) = overload {
        let (o, rss) = (&overload.http, overload.rss_kb);
        println!(
            "\nOVERLOAD: {OVERLOAD_CONNECTIONS} keep-alive connections ({OVERLOAD_CLIENT_THREADS} \
             client threads; at most {} open at once), one hot event, {}s, server \
             DB_MAX_CONNECTIONS={OVERLOAD_POOL}; open-file limit {}\n",
            overload.connections,
            OVERLOAD_FOR.as_secs(),
            header
                .fd_limit
                .map_or_else(|| "?".to_string(), |l| l.to_string()),
        );
        println!("| 201 | 409 | 503 | other | seats sold | 201/s | p50 201 ms | p99 201 ms | p50 503 ms | p99 503 ms | p99 all ms | warm-up failures | server peak RSS MB |");
        println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        println!(
            "| {} | {} | {} | {} | {} | {:.0} | {} | {} | {} | {} | {:.1} | {} | {:.1} |",
            o.created,
            o.conflicts(),
            o.unavailable,
            o.unexpected,
            o.sold,
            o.per_sec,
            ms(o.p50_created_ms),
            ms(o.p99_created_ms),
            ms(o.p50_unavailable_ms),
            ms(o.p99_unavailable_ms),
            o.p99_ms,
            o.warmup_failures,
            rss as f64 / 1024.0
        );
    }
    println!(
        "\nserver peak RSS: {:.1} MB",
        header.peak_rss_kb as f64 / 1024.0
    );
    if violations.is_empty() {
        println!("checks: all passed (201s = seats sold, only contract answers, invariant holds)");
    } else {
        println!("\nCHECKS FAILED ({}):", violations.len());
        for violation in violations {
            println!("- {violation}");
        }
    }
}

fn print_compared(compared: &[Compared]) {
    if compared.is_empty() {
        return;
    }
    println!(
        "\nthis server vs BENCH_BEFORE_BIN (the other server on a database of its own; its run \
         of each row comes right after this server's run at 16 and 256, right before the \
         baseline at 64):\n"
    );
    println!("| scenario | conc. | this bookings/s | other bookings/s | this / other | other p50 ms | other p99 ms | other 201 | other 409 | other false 409 |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for c in compared {
        let o = &c.other;
        println!(
            "| {} | {} | {:.0} | {:.0} | {} | {:.1} | {:.1} | {} | {} | {} |",
            c.scenario,
            c.concurrency,
            c.per_sec,
            o.per_sec,
            c.ratio()
                .map_or_else(|| "—".to_string(), |x| format!("{x:.2}")),
            o.p50_ms,
            o.p99_ms,
            o.created,
            o.conflicts(),
            o.false_rejections,
        );
    }
}
