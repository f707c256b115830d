//! The delivery worker every instance runs: claim due notifications, make each attempt
//! (webhook or email) concurrently, record what came of it. Polls four times a second and,
//! with a backlog, drains it batch after batch without waiting.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use sqlx::PgPool;
use uuid::Uuid;

use super::email::Mailer;
use super::outbox::{self, Claimed, Outcome};
use super::webhook_call;
use crate::config::NotifyConfig;

const POLL: Duration = Duration::from_millis(250);
/// Attempts claimed (and made concurrently) at a time by one instance.
const BATCH: i64 = 64;
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

    /// Delivers for the life of the server.
    pub async fn run(self) {
        let mut every = tokio::time::interval_at(tokio::time::Instant::now() + POLL, POLL);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut counted = Instant::now() - GAUGE_EVERY;
        loop {
            every.tick().await;
            loop {
                match self.round().await {
                    Ok(n) if n as i64 == BATCH => continue,
                    Ok(_) => {}
                    Err(error) => tracing::debug!(%error, "notification round failed"),
                }
                break;
            }
            if counted.elapsed() >= GAUGE_EVERY {
                counted = Instant::now();
                if let Ok(pending) = outbox::pending(&self.db).await {
                    metrics::gauge!("notifications_pending").set(pending as f64);
                }
            }
        }
    }

    /// One batch: returns how many attempts it made.
    pub async fn round(&self) -> crate::error::Result<usize> {
        let claim = Uuid::new_v4();
        let batch = outbox::claim(&self.db, claim, BATCH, self.mailer.is_some()).await?;
        join_all(batch.iter().map(|attempt| self.attempt(attempt, claim))).await;
        Ok(batch.len())
    }

    async fn attempt(&self, attempt: &Claimed, claim: Uuid) {
        let outcome = match (attempt.channel.as_str(), &self.mailer) {
            ("EMAIL", Some(mailer)) => mailer.send(attempt).await,
            ("EMAIL", None) => Outcome {
                delivered: false,
                status_code: None,
                error: Some("SMTP_URL is not set on the instance that tried".into()),
            },
            _ => webhook_call::send(&self.http, attempt, self.allow_private).await,
        };
        match outbox::settle(&self.db, attempt, claim, &outcome, &self.schedule).await {
            Ok(Some(status)) => {
                let channel = if attempt.channel == "EMAIL" {
                    "email"
                } else {
                    "webhook"
                };
                let result = match status {
                    "DELIVERED" => "delivered",
                    "FAILED" => "failed",
                    _ => "retry",
                };
                metrics::counter!("notification_attempts_total", "channel" => channel, "result" => result)
                    .increment(1);
            }
            Ok(None) => {
                tracing::warn!(id = %attempt.id, "a notification's claim lapsed mid-attempt")
            }
            // Unrecorded: the lease lapses and the attempt is made again (at least once).
            Err(error) => tracing::warn!(%error, id = %attempt.id, "recording an attempt failed"),
        }
    }
}
