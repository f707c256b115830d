//! NOTIFY: what the outbox costs the hot path, and how fast the courier empties it. HOT on an
//! organizer without webhooks, then on one whose webhook (a receiver in this process) hears every
//! booking, then the first again once the backlog is delivered; the webhook run is compared
//! with the mean of the two around it. Every delivery must arrive, once.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::HeaderMap;

use super::*;

const NOTIFY_COST_LIMIT: f64 = 0.10;
const DRAIN_WITHIN: Duration = Duration::from_secs(120);

#[derive(Clone, Default)]
struct Received {
    ids: Arc<Mutex<HashSet<String>>>,
    count: Arc<AtomicUsize>,
    last: Arc<Mutex<Option<Instant>>>,
}

async fn receive(State(received): State<Received>, headers: HeaderMap) -> &'static str {
    let id = headers
        .get("webhook-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    received.ids.lock().expect("ids").insert(id);
    received.count.fetch_add(1, Ordering::Relaxed);
    *received.last.lock().expect("last") = Some(Instant::now());
    "ok"
}

pub(super) async fn notify(ctx: &Ctx, report: &mut Report) -> anyhow::Result<()> {
    let received = Received::default();
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(receive))
        .with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/hook", listener.local_addr()?);
    // The receiver runs on a thread of its own, like the load generator.
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("receiver runtime");
        let listener =
            runtime.block_on(async { tokio::net::TcpListener::from_std(listener.into_std()?) });
        if let Ok(listener) = listener {
            let _ = runtime.block_on(async move { axum::serve(listener, app).await });
        }
    });

    let plain_event = ctx
        .api
        .create_event(&ctx.organizer.token, HOT_SEATS, "Hot show, no webhook")
        .await?;
    let hooked = ctx
        .api
        .register(&format!("hooked-{}@bench.test", ctx.stamp), "ORGANIZER")
        .await?;
    let hooked_event = ctx
        .api
        .create_event(&hooked.token, HOT_SEATS, "Hot show with a webhook")
        .await?;
    let created: Value = ctx
        .api
        .client
        .post(format!("{}/webhooks", ctx.base()))
        .bearer_auth(&hooked.token)
        .json(&json!({ "url": url }))
        .send()
        .await?
        .json()
        .await?;
    anyhow::ensure!(created["id"].is_i64(), "registering the webhook: {created}");

    let hot_run = |event| {
        load(
            ctx.base(),
            CONNECTIONS,
            Stop::For(HOT_FOR),
            hot(ctx.users.clone(), event),
            false,
        )
    };
    step("NOTIFY: HOT without a webhook");
    let before = hot_run(plain_event).await;
    step("NOTIFY: HOT with a webhook");
    let started = Instant::now();
    let with = hot_run(hooked_event).await;
    let run_ended = Instant::now();
    let backlog: i64 =
        sqlx::query_scalar("SELECT count(*) FROM notifications WHERE status = 'PENDING'")
            .fetch_one(&ctx.db)
            .await?;
    let booked = with.samples.iter().filter(|s| s.status == 201).count();
    step(&format!(
        "NOTIFY: {booked} bookings, {backlog} deliveries pending at the end; waiting for all"
    ));
    let deadline = Instant::now() + DRAIN_WITHIN;
    while received.count.load(Ordering::Relaxed) < booked && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let last = received.last.lock().expect("last").unwrap_or(run_ended);
    step("NOTIFY: HOT without a webhook, again");
    let after = hot_run(plain_event).await;

    let delivered = received.count.load(Ordering::Relaxed);
    let distinct = received.ids.lock().expect("ids").len();
    let span = last.saturating_duration_since(started).as_secs_f64();
    let per_sec = if span > 0.0 {
        delivered as f64 / span
    } else {
        0.0
    };
    let drain_s = last.saturating_duration_since(run_ended).as_secs_f64();
    report.check(delivered == booked && distinct == booked, || {
        format!(
            "NOTIFY: {booked} bookings, {delivered} deliveries received ({distinct} distinct ids)"
        )
    });
    let bad: usize = [&before, &with, &after]
        .iter()
        .map(|run| run.samples.iter().filter(|s| s.status != 201).count())
        .sum();
    report.check(bad == 0, || {
        format!("NOTIFY: {bad} booking answer(s) not 201")
    });

    let (b, w, a) = (
        before.stat(|_| true),
        with.stat(|_| true),
        after.stat(|_| true),
    );
    let base = (b.rate + a.rate) / 2.0;
    let ratio = if base > 0.0 { w.rate / base } else { 0.0 };
    for (what, stat) in [
        ("HOT, no webhook (before)", &b),
        ("HOT, no webhook (after)", &a),
    ] {
        report.lines.push(Line {
            scenario: "NOTIFY",
            what: what.into(),
            connections: Some(CONNECTIONS),
            count: stat.count,
            rate: Some(stat.rate),
            p50: stat.p50,
            p99: stat.p99,
            target: String::new(),
            met: None,
        });
    }
    report.lines.push(Line {
        scenario: "NOTIFY",
        what: format!(
            "HOT, one webhook hears every booking ({:.0} % of the mean without)",
            ratio * 100.0
        ),
        connections: Some(CONNECTIONS),
        count: w.count,
        rate: Some(w.rate),
        p50: w.p50,
        p99: w.p99,
        target: format!("rate within {:.0} %", NOTIFY_COST_LIMIT * 100.0),
        met: Some(ratio >= 1.0 - NOTIFY_COST_LIMIT),
    });
    report.lines.push(Line {
        scenario: "NOTIFY",
        what: format!(
            "deliveries received (from the run's start to the last one; {backlog} pending when the run ended, drained {drain_s:.1}s later)"
        ),
        connections: None,
        count: delivered,
        rate: Some(per_sec),
        p50: None,
        p99: None,
        target: "every booking, once".into(),
        met: Some(delivered == booked && distinct == booked),
    });
    report.json.insert(
        "notify".into(),
        json!({ "hotBefore": b.json(), "hotWithWebhook": w.json(), "hotAfter": a.json(),
                "ratio": ratio, "booked": booked, "delivered": delivered, "distinctIds": distinct,
                "backlogAtEnd": backlog, "deliveriesPerSec": per_sec, "drainSeconds": drain_s }),
    );
    Ok(())
}
