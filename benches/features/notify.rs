//! NOTIFY: what the outbox costs the hot path, and how fast it is emptied. The bench server
//! writes notifications but does not deliver them (`NOTIFY_WORKER=false`); a worker process on
//! the same database does. HOT on an organizer without webhooks; on one whose webhook (a
//! receiver in this process) hears every booking, nobody delivering (the cost of the writes
//! alone, compared with the mean of the runs without a webhook before and after); the worker
//! draining that backlog; HOT again while it delivers; HOT without a webhook. Every delivery
//! must arrive, once.

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
    drop(super::own_thread::on_own_thread(move || async move {
        let listener = tokio::net::TcpListener::from_std(listener.into_std()?)?;
        axum::serve(listener, app).await
    }));

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

    let hot_run = |event| live::hot_load(ctx.base(), ctx.users.clone(), event, false);
    let booked = |run: &Run| run.samples.iter().filter(|s| s.status == 201).count();
    let pending = || async {
        // Waiting: notifications not yet delivered, and changes not yet expanded into them.
        sqlx::query_scalar::<_, i64>(
            "SELECT (SELECT count(*) FROM notifications WHERE status = 'PENDING') \
                  + (SELECT COALESCE(sum(cardinality(booking_ids)), 0) FROM notification_batches)",
        )
        .fetch_one(&ctx.db)
        .await
    };
    step("NOTIFY: HOT without a webhook");
    let before = hot_run(plain_event).await;
    step("NOTIFY: HOT with a webhook, nobody delivering (the cost of writing the outbox)");
    let written = hot_run(hooked_event).await;
    let backlog_written = pending().await?;

    step("NOTIFY: a worker process (NOTIFY_WORKER on) drains the backlog");
    let worker = Server::start_with(&ctx.url, 4, &[("NOTIFY_WORKER", "true")])?;
    let drain_started = Instant::now();
    let deadline = drain_started + DRAIN_WITHIN;
    let first_batch = booked(&written);
    while received.count.load(Ordering::Relaxed) < first_batch && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let drained = received.count.load(Ordering::Relaxed);
    let drain_s = drain_started.elapsed().as_secs_f64();
    let drain_rate = drained as f64 / drain_s.max(1e-9);

    step("NOTIFY: HOT with a webhook while the worker delivers");
    let live_started = Instant::now();
    let delivering = hot_run(hooked_event).await;
    let backlog_live = pending().await?;
    let total = first_batch + booked(&delivering);
    while received.count.load(Ordering::Relaxed) < total && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let last = received.last.lock().expect("last").unwrap_or(live_started);
    let live_rate = (received.count.load(Ordering::Relaxed) - drained) as f64
        / last
            .saturating_duration_since(live_started)
            .as_secs_f64()
            .max(1e-9);
    drop(worker);
    step("NOTIFY: HOT without a webhook, again");
    let after = hot_run(plain_event).await;

    let delivered = received.count.load(Ordering::Relaxed);
    let distinct = received.ids.lock().expect("ids").len();
    report.check(delivered == total && distinct == total, || {
        format!(
            "NOTIFY: {total} bookings, {delivered} deliveries received ({distinct} distinct ids)"
        )
    });
    let runs = [&before, &written, &delivering, &after];
    let bad: usize = runs.iter().map(|run| run.samples.len() - booked(run)).sum();
    report.check(bad == 0, || {
        format!("NOTIFY: {bad} booking answer(s) not 201")
    });

    let [b, w, d, a] = runs.map(|run| run.stat(|_| true));
    let base = (b.rate + a.rate) / 2.0;
    let ratio = |stat: &Stat| if base > 0.0 { stat.rate / base } else { 0.0 };
    let mut line = |what: String, stat: &Stat, target: String, met: Option<bool>| {
        report
            .lines
            .push(stat.line("NOTIFY", what, CONNECTIONS, target, met))
    };
    line("HOT, no webhook (before)".into(), &b, String::new(), None);
    line(
        format!(
            "HOT, a webhook hears every booking, outbox written only ({:.0} % of the mean without)",
            ratio(&w) * 100.0
        ),
        &w,
        format!("rate within {:.0} %", NOTIFY_COST_LIMIT * 100.0),
        Some(ratio(&w) >= 1.0 - NOTIFY_COST_LIMIT),
    );
    line(
        format!(
            "HOT, a webhook, a worker process delivering meanwhile ({:.0} %; {backlog_live} pending at the end)",
            ratio(&d) * 100.0
        ),
        &d,
        String::new(),
        None,
    );
    line("HOT, no webhook (after)".into(), &a, String::new(), None);
    report.lines.push(Line {
        scenario: "NOTIFY",
        what: format!(
            "deliveries by the worker: {backlog_written} pending drained in {drain_s:.1}s; {live_rate:.0}/s while HOT ran"
        ),
        connections: None,
        count: delivered,
        rate: Some(drain_rate),
        p50: None,
        p99: None,
        target: "every booking, once".into(),
        met: Some(delivered == total && distinct == total),
    });
    report.json.insert(
        "notify".into(),
        json!({ "hotBefore": b.json(), "hotOutboxOnly": w.json(), "hotWhileDelivering": d.json(),
                "hotAfter": a.json(), "ratioOutboxOnly": ratio(&w), "ratioWhileDelivering": ratio(&d),
                "bookedWithWebhook": total, "delivered": delivered, "distinctIds": distinct,
                "backlogAfterOutboxOnly": backlog_written, "drainSeconds": drain_s,
                "drainPerSec": drain_rate, "backlogWhileDelivering": backlog_live,
                "deliveriesPerSecWhileHot": live_rate }),
    );
    Ok(())
}
