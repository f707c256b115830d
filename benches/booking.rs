//! End-to-end booking benchmark (`cargo bench`): a real server process over HTTP against a real
//! PostgreSQL, compared with the same booking transaction issued straight through sqlx.
//!
//! Scenarios, each at concurrency 16, 64 and 256 (keep-alive connections):
//! - HOT: 1-seat bookings of one event that never sells out;
//! - SPREAD: 1-seat bookings of 1,000 events chosen uniformly at random;
//! - SELLOUT: 5,000 1-seat requests for one 1,000-seat event;
//! - TWO INSTANCES: HOT at 64, half the connections on each of two servers sharing the database.
//!
//! Prints a table and writes `target/bench/booking.json`. Uses `DATABASE_URL` when set, else an
//! embedded PostgreSQL in `target/bench/postgres` (recreated each run).

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use event_booking::bookings::service as bookings;
use event_booking::db::embedded::{ClusterOptions, EmbeddedPostgres};
use rand::Rng;
use serde_json::{json, Value};
use sqlx::postgres::PgConnectOptions;
use sqlx::PgPool;

const LEVELS: [usize; 3] = [16, 64, 256];
const RUN_FOR: Duration = Duration::from_secs(5);
const CEILING_FOR: Duration = Duration::from_secs(3);
const SPREAD_EVENTS: usize = 1_000;
const USERS: usize = 64;
const PASSWORD: &str = "Bench!Passw0rd";
const HIGH_DEMAND: &str = "Booking failed due to high demand. Please try again.";

fn main() -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run())
}

fn step(text: &str) {
    eprintln!("[bench] {text}");
}

async fn run() -> anyhow::Result<()> {
    let started = Instant::now();
    let (url, options, _cluster) = database().await?;
    step("starting the server (release build)");
    let server = Server::start(&url)?;
    server.wait_ready().await?;
    let db = PgPool::connect_with(options).await?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(512)
        .build()?;
    let api = Api {
        client: client.clone(),
        base: server.base.clone(),
    };

    step(&format!(
        "creating an organizer and {USERS} users through the API"
    ));
    // Emails unique per run, so an external database can be reused.
    let run = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis();
    let organizer = api
        .register(&format!("organizer-{run}@bench.test"), "ORGANIZER")
        .await?;
    let mut users = Vec::new();
    for n in 0..USERS {
        users.push(
            api.register(&format!("user{n}-{run}@bench.test"), "USER")
                .await?,
        );
    }
    let users = Arc::new(users);

    step(&format!("creating {SPREAD_EVENTS} events for SPREAD"));
    let mut spread = Vec::with_capacity(SPREAD_EVENTS);
    for _ in 0..SPREAD_EVENTS {
        spread.push(api.create_event(&organizer.token, 100_000).await?);
    }
    let spread = Arc::new(spread);
    // Each ceiling is measured just before the HTTP runs it is compared with, on the same
    // database (the tables grow during the run, and PostgreSQL slows down as they do).
    let hot = api.create_event(&organizer.token, 1_000_000).await?;
    let ceiling_hot = ceiling(&db, &users, Target::One(hot), "the hot event").await;
    // BENCH_ONLY=SPREAD (or HOT, SELLOUT, TWO) runs one scenario, for quick experiments.
    let only = std::env::var("BENCH_ONLY")
        .unwrap_or_default()
        .to_uppercase();
    let wanted = |name: &str| only.is_empty() || only == name;
    let mut report = Vec::new();
    for &level in LEVELS.iter().filter(|_| wanted("HOT")) {
        step(&format!("HOT at {level}"));
        let event = api.create_event(&organizer.token, 1_000_000).await?;
        let result = drive(&api, &users, Target::One(event), level, Load::For(RUN_FOR)).await;
        report.push(result.finish("HOT", level, &db, &[event], 0).await?);
    }

    let ceiling_spread = ceiling(&db, &users, Target::Many(spread.clone()), "1,000 events").await;
    for &level in LEVELS.iter().filter(|_| wanted("SPREAD")) {
        step(&format!("SPREAD at {level}"));
        let sold_before = seats(&db, &spread).await?.1;
        let result = drive(
            &api,
            &users,
            Target::Many(spread.clone()),
            level,
            Load::For(RUN_FOR),
        )
        .await;
        report.push(
            result
                .finish("SPREAD", level, &db, &spread, sold_before)
                .await?,
        );
    }

    for &level in LEVELS.iter().filter(|_| wanted("SELLOUT")) {
        step(&format!("SELLOUT at {level}"));
        let event = api.create_event(&organizer.token, 1_000).await?;
        let result = drive(&api, &users, Target::One(event), level, Load::Count(5_000)).await;
        report.push(result.finish("SELLOUT", level, &db, &[event], 0).await?);
    }

    let mut peak_rss_kb = server.peak_rss_kb();
    if wanted("TWO") {
        step("TWO INSTANCES at 64");
        let second = Server::start(&url)?;
        second.wait_ready().await?;
        let event = api.create_event(&organizer.token, 1_000_000).await?;
        let apis = [
            api.clone(),
            Api {
                client: client.clone(),
                base: second.base.clone(),
            },
        ];
        let result = drive_many(&apis, &users, Target::One(event), 64, Load::For(RUN_FOR)).await;
        report.push(result.finish("TWO INSTANCES", 64, &db, &[event], 0).await?);
        peak_rss_kb = peak_rss_kb.max(second.peak_rss_kb());
    }

    check_invariant(&db).await?;
    let best = |rates: &[(usize, f64)]| rates.iter().map(|(_, r)| *r).fold(0.0, f64::max);
    let (hot_ceiling, spread_ceiling) = (best(&ceiling_hot), best(&ceiling_spread));

    print_table(
        &report,
        &ceiling_hot,
        &ceiling_spread,
        hot_ceiling,
        spread_ceiling,
        peak_rss_kb,
    );
    let json = json!({
        "machine": machine(),
        "runSeconds": RUN_FOR.as_secs(),
        "scenarios": report.iter().map(|r| r.json(if r.scenario == "SPREAD" { spread_ceiling } else { hot_ceiling })).collect::<Vec<_>>(),
        "ceiling": {
            "hot": ceiling_hot.iter().map(|(t, r)| json!({ "tasks": t, "bookingsPerSec": r })).collect::<Vec<_>>(),
            "spread": ceiling_spread.iter().map(|(t, r)| json!({ "tasks": t, "bookingsPerSec": r })).collect::<Vec<_>>(),
            "hotBest": hot_ceiling,
            "spreadBest": spread_ceiling,
        },
        "serverPeakRssKb": peak_rss_kb,
        "totalSeconds": started.elapsed().as_secs_f64(),
    });
    std::fs::create_dir_all("target/bench")?;
    std::fs::write(
        "target/bench/booking.json",
        serde_json::to_string_pretty(&json)?,
    )?;
    step(&format!(
        "wrote target/bench/booking.json in {:.0}s",
        started.elapsed().as_secs_f64()
    ));
    db.close().await;
    drop(server);
    Ok(())
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

/// A server process of the release build.
struct Server {
    child: Child,
    base: String,
}

impl Server {
    fn start(database_url: &str) -> anyhow::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let child = Command::new(env!("CARGO_BIN_EXE_event-booking"))
            .env("DATABASE_URL", database_url)
            .env("PORT", port.to_string())
            .env("JWT_SECRET", "bench-secret-bench-secret-bench-secret-123")
            .env("RATE_LIMIT_ENABLED", "false")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
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
        let id = response["user"]["id"].as_i64().unwrap_or_default() as i32;
        Ok(User {
            token: token.to_string(),
            id,
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
}

#[derive(Clone)]
enum Target {
    One(i32),
    Many(Arc<Vec<i32>>),
}

impl Target {
    fn pick(&self) -> i32 {
        match self {
            Self::One(id) => *id,
            Self::Many(ids) => ids[rand::thread_rng().gen_range(0..ids.len())],
        }
    }
}

#[derive(Clone, Copy)]
enum Load {
    For(Duration),
    Count(usize),
}

/// One answer: when it came (since the start), how long it took, its status, and whether it was
/// the "high demand" 409.
struct Sample {
    at: Duration,
    latency: Duration,
    status: u16,
    high_demand: bool,
}

struct RunResult {
    samples: Vec<Sample>,
    elapsed: Duration,
}

async fn drive(
    api: &Api,
    users: &Arc<Vec<User>>,
    target: Target,
    concurrency: usize,
    load: Load,
) -> RunResult {
    drive_many(std::slice::from_ref(api), users, target, concurrency, load).await
}

/// Drives the load from its own single-threaded runtime on its own OS thread: a lighter load
/// generator leaves more of the two cores to the server and PostgreSQL, whose work is what
/// the ratio to the (client-free) ceiling is about.
async fn drive_many(
    apis: &[Api],
    users: &Arc<Vec<User>>,
    target: Target,
    concurrency: usize,
    load: Load,
) -> RunResult {
    let bases: Vec<String> = apis.iter().map(|api| api.base.clone()).collect();
    let users = users.clone();
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("load generator runtime");
        let result = runtime.block_on(generate(bases, users, target, concurrency, load));
        let _ = done_tx.send(result);
    });
    done_rx.await.expect("load generator thread")
}

async fn generate(
    bases: Vec<String>,
    users: Arc<Vec<User>>,
    target: Target,
    concurrency: usize,
    load: Load,
) -> RunResult {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()
        .expect("HTTP client");
    let start = Instant::now();
    let sent = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for worker in 0..concurrency {
        let url = format!("{}/bookings", bases[worker % bases.len()]);
        let (client, users, target, sent) =
            (client.clone(), users.clone(), target.clone(), sent.clone());
        workers.push(tokio::spawn(async move {
            let token = &users[worker % users.len()].token;
            let mut samples = Vec::new();
            loop {
                match load {
                    Load::For(duration) if start.elapsed() >= duration => break,
                    Load::Count(count) if sent.fetch_add(1, Ordering::Relaxed) >= count => break,
                    _ => {}
                }
                let body = json!({ "eventId": target.pick(), "seatCount": 1 });
                let before = Instant::now();
                let response = client
                    .post(&url)
                    .bearer_auth(token)
                    .json(&body)
                    .send()
                    .await;
                let (status, high_demand) = match response {
                    Ok(response) => {
                        let status = response.status().as_u16();
                        let text = response.text().await.unwrap_or_default();
                        (status, status == 409 && text.contains(HIGH_DEMAND))
                    }
                    Err(_) => (0, false),
                };
                samples.push(Sample {
                    at: start.elapsed(),
                    latency: before.elapsed(),
                    status,
                    high_demand,
                });
            }
            samples
        }));
    }
    let mut samples = Vec::new();
    for worker in workers {
        samples.extend(worker.await.unwrap_or_default());
    }
    RunResult {
        samples,
        elapsed: start.elapsed(),
    }
}

struct Row {
    scenario: &'static str,
    concurrency: usize,
    per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    counts: [usize; 3],
    false_rejections: usize,
    sold: i64,
}

impl RunResult {
    async fn finish(
        self,
        scenario: &'static str,
        concurrency: usize,
        db: &PgPool,
        events: &[i32],
        sold_before: i64,
    ) -> anyhow::Result<Row> {
        check_invariant(db).await?;
        let ok = self.samples.iter().filter(|s| s.status == 201).count();
        let conflicts = self.samples.iter().filter(|s| s.status == 409).count();
        let (available, sold) = seats(db, events).await?;
        let sold = sold - sold_before;
        // A "high demand" 409 is false when seats were still left as it was answered: all of
        // them if seats remain now, else those answered before the last confirmed booking.
        let last_success = self
            .samples
            .iter()
            .filter(|s| s.status == 201)
            .map(|s| s.at)
            .max();
        let false_rejections = self
            .samples
            .iter()
            .filter(|s| s.high_demand && (available > 0 || last_success.is_some_and(|t| s.at < t)))
            .count();
        let mut latencies: Vec<Duration> = self.samples.iter().map(|s| s.latency).collect();
        latencies.sort();
        let pct = |p: f64| {
            latencies
                .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
                .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
        };
        Ok(Row {
            scenario,
            concurrency,
            per_sec: ok as f64 / self.elapsed.as_secs_f64(),
            p50_ms: pct(0.50),
            p99_ms: pct(0.99),
            counts: [ok, conflicts, self.samples.len() - ok - conflicts],
            false_rejections,
            sold,
        })
    }
}

impl Row {
    fn json(&self, ceiling: f64) -> Value {
        json!({
            "scenario": self.scenario, "concurrency": self.concurrency,
            "bookingsPerSec": self.per_sec, "p50Ms": self.p50_ms, "p99Ms": self.p99_ms,
            "created201": self.counts[0], "conflict409": self.counts[1], "other": self.counts[2],
            "falseRejections": self.false_rejections, "seatsSold": self.sold,
            "ratioToCeiling": if ceiling > 0.0 { self.per_sec / ceiling } else { 0.0 },
        })
    }
}

/// The booking transaction straight through sqlx, no HTTP, by 1, 4 and 16 tasks.
async fn ceiling(
    db: &PgPool,
    users: &Arc<Vec<User>>,
    target: Target,
    what: &str,
) -> Vec<(usize, f64)> {
    let mut rates = Vec::new();
    for tasks in [1, 4, 16] {
        step(&format!(
            "ceiling on {what}: {tasks} task(s) through sqlx, no HTTP"
        ));
        rates.push((tasks, direct(db, users, target.clone(), tasks).await));
    }
    rates
}

/// The booking transaction straight through sqlx, by `tasks` tasks, for `CEILING_FOR`.
async fn direct(db: &PgPool, users: &Arc<Vec<User>>, target: Target, tasks: usize) -> f64 {
    let start = Instant::now();
    let mut handles = Vec::new();
    for task in 0..tasks {
        let (db, users, target) = (db.clone(), users.clone(), target.clone());
        handles.push(tokio::spawn(async move {
            let user = users[task % users.len()].id;
            let mut ok = 0usize;
            while start.elapsed() < CEILING_FOR {
                if bookings::book_direct(&db, user, target.pick(), None, 1)
                    .await
                    .is_ok()
                {
                    ok += 1;
                }
            }
            ok
        }));
    }
    let mut ok = 0;
    for handle in handles {
        ok += handle.await.unwrap_or(0);
    }
    ok as f64 / start.elapsed().as_secs_f64()
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

async fn check_invariant(db: &PgPool) -> anyhow::Result<()> {
    let broken: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events e WHERE e.available_seats < 0 OR e.available_seats > e.total_seats \
            OR e.available_seats + COALESCE((SELECT SUM(seat_count) FROM bookings b \
                 WHERE b.event_id = e.id AND b.status = 'CONFIRMED'), 0) <> e.total_seats",
    )
    .fetch_one(db)
    .await?;
    anyhow::ensure!(
        broken == 0,
        "the seat invariant is broken for {broken} events"
    );
    Ok(())
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

fn print_table(
    rows: &[Row],
    hot: &[(usize, f64)],
    spread: &[(usize, f64)],
    hot_best: f64,
    spread_best: f64,
    rss_kb: u64,
) {
    println!("\nmachine: {}", machine());
    println!("| scenario | conc. | bookings/s | × ceiling | p50 ms | p99 ms | 201 | 409 | other | false 409 | seats sold |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        let ceiling = if r.scenario == "SPREAD" {
            spread_best
        } else {
            hot_best
        };
        println!(
            "| {} | {} | {:.0} | {:.2} | {:.1} | {:.1} | {} | {} | {} | {} | {} |",
            r.scenario,
            r.concurrency,
            r.per_sec,
            r.per_sec / ceiling.max(1e-9),
            r.p50_ms,
            r.p99_ms,
            r.counts[0],
            r.counts[1],
            r.counts[2],
            r.false_rejections,
            r.sold
        );
    }
    let fmt = |rates: &[(usize, f64)]| {
        rates
            .iter()
            .map(|(t, r)| format!("{t} task(s): {r:.0}/s"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!(
        "\nceiling, hot event (sqlx, no HTTP): {} → best {hot_best:.0}/s",
        fmt(hot)
    );
    println!(
        "ceiling, 1,000 events (sqlx, no HTTP): {} → best {spread_best:.0}/s",
        fmt(spread)
    );
    println!("server peak RSS: {:.1} MB", rss_kb as f64 / 1024.0);
}
