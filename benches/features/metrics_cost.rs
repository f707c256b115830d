//! METRICS: what recording Prometheus metrics costs the hot path. HOT (1 seat, 64
//! connections) alternately on the bench server (metrics on) and on a second server on the same
//! database with `METRICS_ENABLED=false`, twice each, each on an event of its own; the mean
//! rate with metrics on over the mean with them off.

use super::*;

const METRICS_COST_LIMIT: f64 = 0.05;

pub(super) async fn metrics_cost(ctx: &Ctx, report: &mut Report) -> anyhow::Result<()> {
    let off = Server::start_with(
        &ctx.url,
        POOL_SIZE,
        &[("NOTIFY_WORKER", "false"), ("METRICS_ENABLED", "false")],
    )?;
    off.wait_ready().await?;
    let token = &ctx.organizer.token;
    let mut on_runs = Vec::new();
    let mut off_runs = Vec::new();
    for round in 1..=2 {
        for (metered, base) in [(true, ctx.base()), (false, off.base.clone())] {
            let event = ctx
                .api
                .create_event(token, HOT_SEATS, "Metered show")
                .await?;
            step(&format!(
                "METRICS: HOT with metrics {} (round {round})",
                if metered { "on" } else { "off" }
            ));
            let run = live::hot_load(base, ctx.users.clone(), event, false).await;
            let bad = run.samples.iter().filter(|s| s.status != 201).count();
            report.check(bad == 0, || {
                format!("METRICS: {bad} booking answer(s) not 201")
            });
            if metered {
                on_runs.push(run);
            } else {
                off_runs.push(run);
            }
        }
    }
    drop(off);
    let mean = |runs: &[Run]| runs.iter().map(|r| r.stat(|_| true).rate).sum::<f64>() / 2.0;
    let (on_rate, off_rate) = (mean(&on_runs), mean(&off_runs));
    let ratio = if off_rate > 0.0 {
        on_rate / off_rate
    } else {
        0.0
    };
    for (what, runs) in [("metrics off", &off_runs), ("metrics on", &on_runs)] {
        for (round, run) in runs.iter().enumerate() {
            let stat = run.stat(|_| true);
            report.lines.push(stat.line(
                "METRICS",
                format!("HOT, {what} (round {})", round + 1),
                CONNECTIONS,
                String::new(),
                None,
            ));
        }
    }
    report.lines.push(Line {
        scenario: "METRICS",
        what: format!(
            "HOT with metrics on over off: {on_rate:.0} / {off_rate:.0} bookings/s = {:.1} %",
            ratio * 100.0
        ),
        connections: Some(CONNECTIONS),
        count: 0,
        rate: None,
        p50: None,
        p99: None,
        target: format!("cost ≤ {:.0} %", METRICS_COST_LIMIT * 100.0),
        met: Some(ratio >= 1.0 - METRICS_COST_LIMIT),
    });
    report.json.insert(
        "metricsCost".into(),
        json!({ "onPerSec": on_rate, "offPerSec": off_rate, "ratio": ratio }),
    );
    Ok(())
}
