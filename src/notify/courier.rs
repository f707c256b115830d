//! The delivery worker every instance runs: claim due notifications, make each attempt
//! (webhook or email) concurrently, record what came of it. Polls four times a second and,
//! with a backlog, drains it batch after batch without waiting. `NOTIFY_WORKER=false` keeps an
//! instance out of it (e.g. API instances, with delivery left to dedicated ones).

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use sqlx::PgPool;
use tokio::sync::Semaphore;
use uuid::Uuid;

use super::email::Mailer;
use super::expand;
use super::outbox::{self, Claimed, Outcome};
use super::webhook_call;
use crate::config::NotifyConfig;

const POLL: Duration = Duration::from_millis(250);
/// Attempts claimed (and made concurrently) at a time, and batches in flight, per instance.
const BATCH: i64 = 128;
const IN_FLIGHT: usize = 4;
/// How often the pending-notifications gauge is recounted.
const GAUGE_EVERY: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub struct Courier {
    db: PgPool,
    http: reqwest::Client,
    mailer: Option<Arc<Mailer>>,
    schedule: Arc<[u64]>,
    allow_private: bool,
}

impl Courier {
    /// Fails on an `SMTP_URL` or `MAIL_FROM` that cannot work, so a server never starts with
    /// emails that would all fail.
    pub fn new(db: PgPool, config: &NotifyConfig) -> anyhow::Result<Self> {
        let mailer = match &config.smtp_url {
            Some(url) => Some(Arc::new(Mailer::new(url.expose(), &config.mail_from)?)),
            None => None,
        };
        Ok(Self {
            db,
            http: webhook_call::client(config.allow_private)?,
            mailer,
            schedule: config.retry_schedule.clone().into(),
            allow_private: config.allow_private,
        })
    }

    /// Delivers for the life of the server: a new batch is claimed while earlier ones are still
    /// being sent (up to `IN_FLIGHT`), so one slow receiver does not hold every other one up.
    pub async fn run(self) {
        let slots = Arc::new(Semaphore::new(IN_FLIGHT));
        let mut every = tokio::time::interval_at(tokio::time::Instant::now() + POLL, POLL);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut counted = Instant::now() - GAUGE_EVERY;
        loop {
            every.tick().await;
            loop {
                match expand::expand(&self.db).await {
                    Ok(n) if n as i64 == expand::BATCHES => continue,
                    Ok(_) => {}
                    Err(error) => tracing::debug!(%error, "expanding notification batches failed"),
                }
                break;
            }
            loop {
                let Ok(slot) = slots.clone().acquire_owned().await else {
                    return;
                };
                let claim = Uuid::new_v4();
                let with_email = self.mailer.is_some();
                let batch = match outbox::claim(&self.db, claim, BATCH, with_email).await {
                    Ok(batch) => batch,
                    Err(error) => {
                        tracing::debug!(%error, "claiming notifications failed");
                        break;
                    }
                };
                let full = batch.len() as i64 == BATCH;
                if !batch.is_empty() {
                    let courier = self.clone();
                    tokio::spawn(async move {
                        courier.deliver(claim, batch).await;
                        drop(slot);
                    });
                }
                if !full {
                    break;
                }
            }
            if counted.elapsed() >= GAUGE_EVERY {
                counted = Instant::now();
                if let Ok(pending) = outbox::pending(&self.db).await {
                    metrics::gauge!("notifications_pending").set(pending as f64);
                }
            }
        }
    }

    /// Makes every attempt of a batch at once, then records them in one statement.
    async fn deliver(&self, claim: Uuid, batch: Vec<Claimed>) {
        let outcomes = join_all(batch.iter().map(|attempt| self.attempt(attempt))).await;
        let attempts: Vec<(&Claimed, Outcome)> = batch.iter().zip(outcomes).collect();
        match outbox::settle(&self.db, claim, &attempts, &self.schedule).await {
            Ok(settled) => {
                if settled.len() < attempts.len() {
                    tracing::warn!(
                        lapsed = attempts.len() - settled.len(),
                        "notification claims lapsed mid-attempt"
                    );
                }
                for (id, status) in settled {
                    let channel =
                        attempts
                            .iter()
                            .find(|(a, _)| a.id == id)
                            .map_or("webhook", |(a, _)| {
                                if a.channel == "EMAIL" {
                                    "email"
                                } else {
                                    "webhook"
                                }
                            });
                    let result = match status.as_str() {
                        "DELIVERED" => "delivered",
                        "FAILED" => "failed",
                        _ => "retry",
                    };
                    metrics::counter!("notification_attempts_total", "channel" => channel, "result" => result)
                        .increment(1);
                }
            }
            // Unrecorded: the leases lapse and the attempts are made again (at least once).
            Err(error) => tracing::warn!(%error, "recording notification attempts failed"),
        }
    }

    async fn attempt(&self, attempt: &Claimed) -> Outcome {
        match (attempt.channel.as_str(), &self.mailer) {
            ("EMAIL", Some(mailer)) => mailer.send(attempt).await,
            ("EMAIL", None) => Outcome {
                delivered: false,
                status_code: None,
                error: Some("SMTP_URL is not set on the instance that tried".into()),
            },
            _ => webhook_call::send(&self.http, attempt, self.allow_private).await,
        }
    }
}
