//! Feature benchmark (`cargo bench --bench features`): check-in, search, live streams and
//! organizer insight against a real server process (release build) over HTTP and a real
//! PostgreSQL, the same way as `benches/booking.rs` (embedded cluster unless `DATABASE_URL`).
//!
//! Scenarios (`BENCH_ONLY=CHECK-IN|SEARCH|READS|LIVE|STATS|NOTIFY|METRICS` runs one;
//! `BENCH_SERVER_BIN=<binary>` runs another build of the server, e.g. an earlier commit's):
//! - CHECK-IN: 1,000 bookings of 10 seats on one event, their 10,000 codes fetched as the
//!   owners, all scanned at 64 connections; then 1,000 of them rescanned with the same nonces
//!   (replays). Every answer must be 200, check_ins must hold 10,000 rows, and each replay must
//!   repeat its first answer.
//! - SEARCH: 100,000 events inserted in bulk (SQL; then VACUUM (ANALYZE)), then 64 connections for a mix of
//!   `GET /events` searches (q; q+city+minSeats; from/to+sort=eventDate; page=50): 5 s from an
//!   empty cache (reported apart), then the 10 s the target is judged on; and a plain
//!   `GET /events` run for comparison. Every answer must be 200. `EXPLAIN (ANALYZE, BUFFERS)` of
//!   one query of each kind goes to target/bench/search-plans.txt.
//! - READS: the HTTP ceiling (the JSON 404 of an unknown path, no database), then
//!   `GET /events/:id` of an event with 100,000 bookings and `GET /events?limit=10` over
//!   100,000 events, 64 connections each; targets ≥ 0.5 × the ceiling and p99 ≤ 20 ms.
//! - LIVE: HOT bookings (1 seat, 64 connections) without streams, then with 5,000 SSE streams
//!   open on the booked event, then without again (the rate with streams is compared with the
//!   mean of the two); for a sample of the streams, the delay from each 201 to the first
//!   message showing that booking; the server's peak RSS.
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

#[path = "features/checkin.rs"]
mod checkin;
#[path = "features/live.rs"]
mod live;
#[path = "features/metrics_cost.rs"]
mod metrics_cost;
#[path = "features/notify.rs"]
mod notify;
#[path = "common/own_thread.rs"]
mod own_thread;
#[path = "features/reads.rs"]
mod reads;
#[path = "features/search.rs"]
mod search;
#[path = "features/stats.rs"]
mod stats;

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
/// The same mix first, from an empty cache, reported apart (see `search`).
const SEARCH_COLD_FOR: Duration = Duration::from_secs(5);
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
    let scenarios: [(&str, Scenario); 7] = [
        ("CHECK-IN", Scenario::CheckIn),
        ("SEARCH", Scenario::Search),
        ("READS", Scenario::Reads),
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
            Scenario::CheckIn => checkin::check_in(&ctx, &mut report).await,
            Scenario::Search => search::search(&ctx, &mut report).await,
            Scenario::Reads => reads::reads(&ctx, &mut report).await,
            Scenario::Live => live::live(&ctx, &mut report).await,
            Scenario::Stats => stats::stats(&ctx, &mut report).await,
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
    Reads,
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
    /// The table's line for this measurement.
    fn line(
        &self,
        scenario: &'static str,
        what: String,
        connections: usize,
        target: String,
        met: Option<bool>,
    ) -> Line {
        Line {
            scenario,
            what,
            connections: Some(connections),
            count: self.count,
            rate: Some(self.rate),
            p50: self.p50,
            p99: self.p99,
            target,
            met,
        }
    }

    /// `line` with a target on p99 alone, "p99 ≤ `limit_ms` ms", and whether it was met.
    fn p99_line(
        &self,
        scenario: &'static str,
        what: String,
        connections: usize,
        limit_ms: f64,
    ) -> Line {
        let met = self.p99.map(|p| p <= limit_ms);
        self.line(
            scenario,
            what,
            connections,
            format!("p99 ≤ {limit_ms} ms"),
            met,
        )
    }

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
    own_thread::on_own_thread(move || generate(base, concurrency, stop, make, keep_body))
        .await
        .expect("load generator thread")
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
        let binary = std::env::var("BENCH_SERVER_BIN")
            .unwrap_or_else(|_| env!("CARGO_BIN_EXE_event-booking").to_string());
        let child = Command::new(binary)
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
