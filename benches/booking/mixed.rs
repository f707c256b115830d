//! MIXED: bookings, holds, confirms and cancels of one event with two ticket types, each user
//! worker touching only its own bookings, and organizer workers resizing a ticket type back to
//! back; every answer counted by kind, status and message, and checked against the contract.

use super::*;

/// The kinds of operation of MIXED.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub(super) enum MixedOp {
    Book,
    Hold,
    Confirm,
    Cancel,
    Edit,
}

impl MixedOp {
    const ALL: [MixedOp; 5] = [
        Self::Book,
        Self::Hold,
        Self::Confirm,
        Self::Cancel,
        Self::Edit,
    ];

    fn name(self) -> &'static str {
        match self {
            Self::Book => "book",
            Self::Hold => "hold",
            Self::Confirm => "confirm",
            Self::Cancel => "cancel",
            Self::Edit => "edit",
        }
    }

    /// The 409 the contract gives this kind of operation when it loses the version race three
    /// times: a lane should make it disappear.
    fn lost_races(self) -> &'static str {
        match self {
            Self::Book | Self::Hold => HIGH_DEMAND,
            Self::Confirm => CONFIRM_HIGH_DEMAND,
            Self::Cancel => CANCEL_HIGH_DEMAND,
            Self::Edit => MODIFIED_CONCURRENTLY,
        }
    }
}

/// What MIXED counted at one concurrency, over all its workers.
#[derive(Default)]
pub(super) struct MixedResult {
    /// Successes per kind, in `MixedOp::ALL` order.
    pub(super) ok: [usize; 5],
    /// Successful cancels of a PENDING hold (the other successful cancels were of CONFIRMED
    /// bookings).
    pub(super) cancelled_holds: usize,
    /// Every answer's latency, per kind (in `MixedOp::ALL` order).
    pub(super) latencies: [Vec<Duration>; 5],
    /// Every answer that was not a success: (kind, status, message) → count; status 0 is a
    /// transport error.
    pub(super) failures: BTreeMap<(MixedOp, u16, String), usize>,
    pub(super) elapsed: Duration,
    pub(super) warmup_failures: usize,
}

impl MixedResult {
    fn merge(&mut self, other: MixedResult) {
        for (mine, theirs) in self.ok.iter_mut().zip(other.ok) {
            *mine += theirs;
        }
        self.cancelled_holds += other.cancelled_holds;
        for (mine, theirs) in self.latencies.iter_mut().zip(other.latencies) {
            mine.extend(theirs);
        }
        for (key, count) in other.failures {
            *self.failures.entry(key).or_default() += count;
        }
        self.elapsed = self.elapsed.max(other.elapsed);
        self.warmup_failures += other.warmup_failures;
    }

    fn fail(&mut self, op: MixedOp, status: u16, message: String) {
        *self.failures.entry((op, status, message)).or_default() += 1;
    }
}

/// One answer: its status and body (status 0 and the error for a transport error).
pub(super) async fn call(request: reqwest::RequestBuilder) -> (u16, String) {
    match request.send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            match response.text().await {
                Ok(text) => (status, text),
                Err(error) => (status, format!("unreadable body: {error}")),
            }
        }
        Err(error) => (0, format!("transport error: {error}")),
    }
}

/// The `message` of an answer (joined when it is a list), else the start of its body.
pub(super) fn message_of(body: &Value, text: &str) -> String {
    match &body["message"] {
        Value::String(message) => message.clone(),
        Value::Array(messages) => messages
            .iter()
            .map(|m| m.as_str().unwrap_or("?"))
            .collect::<Vec<_>>()
            .join("; "),
        _ => text.chars().take(160).collect(),
    }
}

/// What a MIXED worker does: a user's mix of operations on its own bookings, or an organizer's
/// resizes of one ticket type.
#[derive(Clone, Copy)]
pub(super) enum MixedRole {
    User,
    Organizer { ticket_type: i32 },
}

/// MIXED at `concurrency`: one load-generator thread (as HOT), each worker with its own
/// keep-alive connection opened before the clock starts. Worker `w` is an organizer when
/// `w % 64 == 0`, else it acts as user `w % USERS`.
pub(super) async fn drive_mixed(
    api: &Api,
    users: &Arc<Vec<User>>,
    organizer: &User,
    event: i32,
    types: Arc<Vec<i32>>,
    concurrency: usize,
) -> MixedResult {
    let shared = Arc::new(Shared {
        ready: tokio::sync::Barrier::new(concurrency),
        start: OnceLock::new(),
        sent: AtomicUsize::new(0),
    });
    let base = api.base.clone();
    let tokens: Vec<(String, MixedRole)> = (0..concurrency)
        .map(|worker| {
            if worker % MIXED_CONNECTIONS_PER_ORGANIZER == 0 {
                let index = worker / MIXED_CONNECTIONS_PER_ORGANIZER;
                let ticket_type = types[index % types.len()];
                (
                    organizer.token.clone(),
                    MixedRole::Organizer { ticket_type },
                )
            } else {
                (users[worker % users.len()].token.clone(), MixedRole::User)
            }
        })
        .collect();
    own_thread::on_own_thread(move || async move {
        let mut tasks = Vec::new();
        for (token, role) in tokens {
            let (base, types, shared) = (base.clone(), types.clone(), shared.clone());
            tasks.push(tokio::spawn(async move {
                mixed_worker(&base, &token, role, event, &types, &shared).await
            }));
        }
        let mut result = MixedResult::default();
        for task in tasks {
            match task.await {
                Ok(part) => result.merge(part),
                Err(error) => {
                    result.fail(MixedOp::Book, 0, format!("worker failed: {error}"));
                }
            }
        }
        result
    })
    .await
    .expect("load generator thread")
}

pub(super) async fn mixed_worker(
    base: &str,
    token: &str,
    role: MixedRole,
    event: i32,
    types: &[i32],
    shared: &Shared,
) -> MixedResult {
    let (client, warm) = warm_client(&format!("{base}/bench-warm-up")).await;
    let mut result = MixedResult::default();
    if !warm {
        result.warmup_failures += 1;
    }
    let mut rng = StdRng::from_entropy();
    // This worker's own PENDING holds and CONFIRMED bookings, by reference.
    let mut holds: Vec<Uuid> = Vec::new();
    let mut bookings: Vec<Uuid> = Vec::new();
    let mut edits = 0usize;
    shared.ready.wait().await;
    let start = *shared.start.get_or_init(Instant::now);
    while start.elapsed() < MIXED_FOR {
        let op = match role {
            MixedRole::Organizer { .. } => MixedOp::Edit,
            MixedRole::User => match rng.gen_range(0..100) {
                0..55 => MixedOp::Book,
                55..75 => MixedOp::Hold,
                75..90 if !holds.is_empty() => MixedOp::Confirm,
                90..100 if !holds.is_empty() || !bookings.is_empty() => MixedOp::Cancel,
                _ => MixedOp::Book,
            },
        };
        let before = Instant::now();
        match op {
            MixedOp::Book | MixedOp::Hold => {
                let hold = op == MixedOp::Hold;
                let ticket_type = types[rng.gen_range(0..types.len())];
                let body = json!({ "eventId": event, "seatCount": 1, "ticketTypeId": ticket_type, "hold": hold });
                let request = client
                    .post(format!("{base}/bookings"))
                    .bearer_auth(token)
                    .json(&body);
                let (status, text) = call(request).await;
                let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                let (message, expected) = if hold {
                    (HELD, "PENDING")
                } else {
                    (BOOKED, "CONFIRMED")
                };
                let reference = body["data"]["bookingReference"]
                    .as_str()
                    .and_then(|r| r.parse::<Uuid>().ok());
                match reference {
                    Some(reference)
                        if status == 201
                            && body["message"] == message
                            && body["data"]["status"] == expected =>
                    {
                        result.ok[op as usize] += 1;
                        let mine = if hold { &mut holds } else { &mut bookings };
                        remember(mine, reference);
                    }
                    _ => result.fail(op, status, message_of(&body, &text)),
                }
            }
            MixedOp::Confirm => {
                let reference = holds.swap_remove(rng.gen_range(0..holds.len()));
                let request = client
                    .post(format!("{base}/bookings/{reference}/confirm"))
                    .bearer_auth(token);
                let (status, text) = call(request).await;
                let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                if status == 200
                    && body["message"] == BOOKED
                    && body["data"]["status"] == "CONFIRMED"
                {
                    result.ok[op as usize] += 1;
                    remember(&mut bookings, reference);
                } else {
                    let message = message_of(&body, &text);
                    // Refused with nothing changed: still this worker's hold.
                    if status == 409 && message == CONFIRM_HIGH_DEMAND {
                        holds.push(reference);
                    }
                    result.fail(op, status, message);
                }
            }
            MixedOp::Cancel => {
                let index = rng.gen_range(0..holds.len() + bookings.len());
                let (was_hold, reference) = if index < holds.len() {
                    (true, holds.swap_remove(index))
                } else {
                    (false, bookings.swap_remove(index - holds.len()))
                };
                let request = client
                    .delete(format!("{base}/bookings/{reference}"))
                    .bearer_auth(token);
                let (status, text) = call(request).await;
                let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                if status == 200
                    && body["message"] == CANCELLED
                    && body["data"]["status"] == "CANCELLED"
                {
                    result.ok[op as usize] += 1;
                    result.cancelled_holds += usize::from(was_hold);
                } else {
                    let message = message_of(&body, &text);
                    if status == 409 && message == CANCEL_HIGH_DEMAND {
                        let mine = if was_hold { &mut holds } else { &mut bookings };
                        mine.push(reference);
                    }
                    result.fail(op, status, message);
                }
            }
            MixedOp::Edit => {
                let MixedRole::Organizer { ticket_type } = role else {
                    unreachable!("only organizers edit");
                };
                let seats = MIXED_EDIT_SEATS[edits % MIXED_EDIT_SEATS.len()];
                let request = client
                    .put(format!("{base}/events/{event}/ticket-types/{ticket_type}"))
                    .bearer_auth(token)
                    .json(&json!({ "totalSeats": seats }));
                let (status, text) = call(request).await;
                let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                if status == 200 && body["totalSeats"] == seats {
                    result.ok[op as usize] += 1;
                    edits += 1;
                } else {
                    result.fail(op, status, message_of(&body, &text));
                }
            }
        }
        // As in HOT: lets the client put the connection back before the next request.
        tokio::task::yield_now().await;
        result.latencies[op as usize].push(before.elapsed());
    }
    result.elapsed = start.elapsed();
    result
}

/// Remembers one more reference of the worker's, forgetting the oldest beyond
/// `MIXED_MEMORY` (a forgotten hold stays PENDING; it would expire only after the run).
pub(super) fn remember(mine: &mut Vec<Uuid>, reference: Uuid) {
    if mine.len() >= MIXED_MEMORY {
        mine.remove(0);
    }
    mine.push(reference);
}

/// Bookings of `event` by status, after a run.
pub(super) async fn booking_statuses(
    db: &PgPool,
    event: i32,
) -> anyhow::Result<BTreeMap<String, i64>> {
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT status::text, count(*) FROM bookings WHERE event_id = $1 GROUP BY status",
    )
    .bind(event)
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().collect())
}

/// MIXED at one concurrency, with the HOT runs measured right before and right after it.
pub(super) struct Mixed {
    pub(super) concurrency: usize,
    pub(super) hot: [Measured; 2],
    pub(super) result: MixedResult,
    /// Seats taken from the event during the run (organizer resizes move total and available
    /// alike, so they do not count).
    pub(super) sold: i64,
    /// The event's bookings by status afterwards.
    pub(super) statuses: BTreeMap<String, i64>,
}

impl Mixed {
    fn ok(&self, op: MixedOp) -> usize {
        self.result.ok[op as usize]
    }

    /// Successful operations of every kind per second.
    fn per_sec(&self) -> f64 {
        let elapsed = self.result.elapsed.as_secs_f64();
        if elapsed > 0.0 {
            self.result.ok.iter().sum::<usize>() as f64 / elapsed
        } else {
            0.0
        }
    }

    /// HOT's bookings per second: the mean of the runs before and after.
    fn hot_per_sec(&self) -> f64 {
        (self.hot[0].per_sec + self.hot[1].per_sec) / 2.0
    }

    fn ratio_to_hot(&self) -> Option<f64> {
        (self.hot_per_sec() > 0.0).then(|| self.per_sec() / self.hot_per_sec())
    }

    /// Answers of the given kind(s) matching `keep`.
    fn count(&self, keep: impl Fn(MixedOp, u16, &str) -> bool) -> usize {
        self.result
            .failures
            .iter()
            .filter(|((op, status, message), _)| keep(*op, *status, message))
            .map(|(_, count)| count)
            .sum()
    }

    /// The 409s of lost races: "high demand" for bookings, holds, confirms and cancels.
    fn high_demand(&self) -> usize {
        self.count(|op, status, message| {
            op != MixedOp::Edit && status == 409 && message == op.lost_races()
        })
    }

    fn modified_concurrently(&self) -> usize {
        self.count(|op, status, message| {
            op == MixedOp::Edit && status == 409 && message == op.lost_races()
        })
    }

    fn server_errors(&self) -> usize {
        self.count(|_, status, _| status >= 500)
    }

    /// Anything else that was not a success: never allowed here.
    fn other(&self) -> usize {
        self.count(unexpected)
    }

    /// The `p` percentile of the latencies of `only` (of every answer when `None`), in ms.
    fn latency(&self, only: Option<MixedOp>, p: f64) -> Option<f64> {
        let mut all: Vec<Duration> = match only {
            Some(op) => self.result.latencies[op as usize].clone(),
            None => self.result.latencies.concat(),
        };
        all.sort();
        percentile(&all, p)
    }

    pub(super) fn json(&self) -> Value {
        let ok: serde_json::Map<String, Value> = MixedOp::ALL
            .iter()
            .map(|op| (op.name().to_string(), json!(self.ok(*op))))
            .collect();
        let failures: Vec<Value> = self
            .result
            .failures
            .iter()
            .map(|((op, status, message), count)| {
                json!({ "op": op.name(), "status": status, "message": message, "count": count })
            })
            .collect();
        json!({
            "concurrency": self.concurrency, "seconds": self.result.elapsed.as_secs_f64(),
            "successfulOpsPerSec": self.per_sec(), "hotBookingsPerSec": self.hot_per_sec(),
            "ratioToHot": self.ratio_to_hot(), "hotBefore": self.hot[0].json(), "hotAfter": self.hot[1].json(),
            "p50Ms": self.latency(None, 0.50), "p99Ms": self.latency(None, 0.99),
            "latencyByKind": MixedOp::ALL.iter().map(|op| json!({
                "op": op.name(),
                "p50Ms": self.latency(Some(*op), 0.50),
                "p99Ms": self.latency(Some(*op), 0.99),
            })).collect::<Vec<_>>(),
            "successes": ok, "cancelledHolds": self.result.cancelled_holds,
            "nonSuccesses": failures, "seatsSold": self.sold, "bookingsByStatus": self.statuses,
            "warmupFailures": self.result.warmup_failures,
        })
    }
}

/// A non-success the contract does not allow in MIXED (5xx are counted apart): anything but
/// the 409 of a lost race, or of too few seats for a booking or a hold.
pub(super) fn unexpected(op: MixedOp, status: u16, message: &str) -> bool {
    let lost = status == 409 && message == op.lost_races();
    let sold_out = status == 409
        && matches!(op, MixedOp::Book | MixedOp::Hold)
        && message.starts_with("Not enough seats available.");
    !lost && !sold_out && status < 500
}

/// MIXED's assertions: no 5xx, no answer outside the contract, its HOT runs clean,
/// and the event's seats and bookings exactly what the successes say.
pub(super) fn check_mixed(violations: &mut Vec<String>, run: &Mixed) {
    let what = format!("MIXED at {}", run.concurrency);
    for (hot, when) in run.hot.iter().zip(["before", "after"]) {
        check_run(violations, &format!("{what} (HOT run {when})"), hot, false);
    }
    let listed = |keep: &dyn Fn(MixedOp, u16, &str) -> bool| {
        run.result
            .failures
            .iter()
            .filter(|((op, status, message), _)| keep(*op, *status, message))
            .take(5)
            .map(|((op, status, message), count)| {
                format!("{} {status} \"{message}\" ×{count}", op.name())
            })
            .collect::<Vec<_>>()
            .join(" | ")
    };
    if run.server_errors() > 0 {
        violations.push(format!(
            "{what}: {} 5xx answer(s): {}",
            run.server_errors(),
            listed(&|_, status, _| status >= 500)
        ));
    }
    if run.other() > 0 {
        violations.push(format!(
            "{what}: {} unexpected answer(s): {}",
            run.other(),
            listed(&unexpected)
        ));
    }
    let (book, hold, confirm, cancel) = (
        run.ok(MixedOp::Book) as i64,
        run.ok(MixedOp::Hold) as i64,
        run.ok(MixedOp::Confirm) as i64,
        run.ok(MixedOp::Cancel) as i64,
    );
    let cancelled_holds = run.result.cancelled_holds as i64;
    if run.sold != book + hold - cancel {
        violations.push(format!(
            "{what}: {book} bookings + {hold} holds - {cancel} cancels succeeded, but {} seats \
             were taken",
            run.sold
        ));
    }
    let status = |name: &str| run.statuses.get(name).copied().unwrap_or(0);
    let expected = [
        ("CONFIRMED", book + confirm - (cancel - cancelled_holds)),
        ("PENDING", hold - confirm - cancelled_holds),
        ("CANCELLED", cancel),
        ("EXPIRED", 0),
    ];
    for (name, count) in expected {
        if status(name) != count {
            violations.push(format!(
                "{what}: {} {name} bookings, but the answers say {count}",
                status(name)
            ));
        }
    }
}

pub(super) fn print_mixed(mixed: &[Mixed]) {
    println!(
        "\nMIXED: one event of {} ticket types ({} seats each), {}s per row; user workers: 55 % \
         book 1 seat, 20 % hold 1 seat, 15 % confirm one of their holds, 10 % cancel one of their \
         bookings or holds (a book when they have none); one organizer worker per \
         {MIXED_CONNECTIONS_PER_ORGANIZER} connections resizing a ticket type ({} ↔ {} seats) back \
         to back; \"HOT ref\" is the mean of a HOT run at the same concurrency right before it \
         and one right after it (each in brackets)\n",
        MIXED_TYPES.len(),
        MIXED_TYPE_SEATS,
        MIXED_FOR.as_secs(),
        MIXED_EDIT_SEATS[0],
        MIXED_EDIT_SEATS[1],
    );
    println!("| conc. | ops/s (successes) | HOT ref bookings/s | × HOT | p50 ms | p99 ms | book 201 | hold 201 | confirm 200 | cancel 200 | edit 200 | high-demand 409 | modified-concurrently 409 | 5xx | other | seats taken |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for m in mixed {
        println!(
            "| {} | {:.0} | {:.0} ({:.0}, {:.0}) | {} | {:.1} | {:.1} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            m.concurrency,
            m.per_sec(),
            m.hot_per_sec(),
            m.hot[0].per_sec,
            m.hot[1].per_sec,
            m.ratio_to_hot()
                .map_or_else(|| "—".to_string(), |x| format!("{x:.2}")),
            m.latency(None, 0.50).unwrap_or(0.0),
            m.latency(None, 0.99).unwrap_or(0.0),
            m.ok(MixedOp::Book),
            m.ok(MixedOp::Hold),
            m.ok(MixedOp::Confirm),
            m.ok(MixedOp::Cancel),
            m.ok(MixedOp::Edit),
            m.high_demand(),
            m.modified_concurrently(),
            m.server_errors(),
            m.other(),
            m.sold,
        );
    }
    println!("\nMIXED latency by kind of operation (all answers of the kind):\n");
    println!("| conc. | kind | answers | successes | p50 ms | p99 ms |");
    println!("|---:|---|---:|---:|---:|---:|");
    for m in mixed {
        for op in MixedOp::ALL {
            println!(
                "| {} | {} | {} | {} | {} | {} |",
                m.concurrency,
                op.name(),
                m.result.latencies[op as usize].len(),
                m.ok(op),
                ms(m.latency(Some(op), 0.50)),
                ms(m.latency(Some(op), 0.99)),
            );
        }
    }
    for m in mixed {
        let failures: Vec<String> = m
            .result
            .failures
            .iter()
            .map(|((op, status, message), count)| {
                format!("{} {status} \"{message}\" ×{count}", op.name())
            })
            .collect();
        println!(
            "\nMIXED at {}: bookings afterwards {:?}; non-successes: {}",
            m.concurrency,
            m.statuses,
            if failures.is_empty() {
                "none".to_string()
            } else {
                failures.join(", ")
            }
        );
        let lost = m.high_demand() + m.modified_concurrently();
        println!(
            "targets: no \"high demand\" / \"modified concurrently\" 409 while seats remain: {} \
             ({lost}); successful ops/s within 20 % of HOT: {} ({})",
            if lost == 0 { "met" } else { "MISSED" },
            if m.ratio_to_hot().is_some_and(|x| x >= 0.8) {
                "met"
            } else {
                "MISSED"
            },
            m.ratio_to_hot()
                .map_or_else(|| "—".to_string(), |x| format!("{x:.2} × HOT")),
        );
    }
}
