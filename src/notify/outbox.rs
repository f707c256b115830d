//! The outbox. The statement that makes a group's booking changes also writes one batch row
//! for them (so in their transaction, at no extra round trip and almost no extra work on the
//! hot event's critical path); the courier expands batches into notifications (`expand`),
//! claims due notifications with `FOR UPDATE SKIP LOCKED`, and settles each attempt.
//!
//! A claim is a lease: the attempt is counted and the row is due again only when the lease
//! lapses, so however many instances poll, each attempt is made by one of them; one that
//! crashes mid-attempt only delays the next.

use std::time::Duration;

use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use crate::error::Result;
use crate::time::Timestamp;

/// Longer than any attempt can take (a webhook's 10 s, an email's 10 s), with room to spare.
pub const LEASE: Duration = Duration::from_secs(60);

/// What the write path needs to record an event's notifications in its own statement.
pub struct Notify {
    pub organizer_id: i32,
    /// The event as the body names it, serialized once per group.
    pub event_json: String,
}

/// The event as a notification's body names it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EventSummary<'a> {
    pub id: i32,
    pub title: &'a str,
    #[serde(with = "crate::time::option")]
    pub event_date: Option<Timestamp>,
}

impl Notify {
    pub fn new(organizer_id: i32, event: &EventSummary<'_>) -> Result<Self> {
        Ok(Self {
            organizer_id,
            event_json: serde_json::to_string(event).map_err(anyhow::Error::from)?,
        })
    }
}

/// The notification type of a new booking (`b` a `bookings` row).
pub const NEW_BOOKING_KIND: &str =
    "CASE (c.b).status WHEN 'PENDING' THEN 'booking.held' ELSE 'booking.confirmed' END";
/// The notification type of a booking whose status changed.
pub const CHANGED_BOOKING_KIND: &str =
    "CASE (c.b).status WHEN 'CONFIRMED' THEN 'booking.confirmed' \
     WHEN 'CANCELLED' THEN 'booking.cancelled' WHEN 'EXPIRED' THEN 'booking.expired' END";

/// An `INSERT` of one notification batch per event for the bookings in CTE `source` (one
/// column `b`, the whole `bookings` row), for a data-modifying CTE of the statement that
/// changed them: their ids, types (`kind`, an expression over `c.b`), and the fields a later
/// change may overwrite. Parameters from `$first`: the events to notify, their organizers,
/// their JSON (three arrays), and whether to email.
pub fn batch_sql(source: &str, kind: &str, first: usize) -> String {
    let (events, organizers, json, email) = (first, first + 1, first + 2, first + 3);
    format!(
        "INSERT INTO notification_batches \
             (event_id, organizer_id, event, email, booking_ids, kinds, updated_at, expires_at) \
         SELECT n.event_id, n.organizer_id, n.event, ${email}::boolean, \
                array_agg((c.b).id), array_agg(k.kind), array_agg((c.b).updated_at), \
                array_agg((c.b).expires_at) \
         FROM {source} c CROSS JOIN LATERAL (SELECT {kind} AS kind) k \
         JOIN UNNEST(${events}::integer[], ${organizers}::integer[], ${json}::text[]) \
              AS n(event_id, organizer_id, event) ON n.event_id = (c.b).event_id \
         WHERE k.kind IS NOT NULL \
         GROUP BY n.event_id, n.organizer_id, n.event"
    )
}

/// A claimed attempt, with where it goes.
#[derive(sqlx::FromRow)]
pub struct Claimed {
    pub id: Uuid,
    pub channel: String,
    #[sqlx(rename = "type")]
    pub kind: String,
    pub payload: String,
    /// This attempt's number, from 1.
    pub attempts: i32,
    pub url: Option<String>,
    pub secret: Option<String>,
    pub email: Option<String>,
    pub firstname: Option<String>,
    /// The event's currency, for the amounts of an email.
    pub currency: Option<String>,
}

/// Claims up to `limit` due notifications for this worker (`claim`).
/// Emails only when this instance can send them (`with_email`).
pub async fn claim(db: &PgPool, claim: Uuid, limit: i64, with_email: bool) -> Result<Vec<Claimed>> {
    Ok(sqlx::query_as::<_, Claimed>(
        "WITH due AS ( \
             SELECT id FROM notifications \
             WHERE status = 'PENDING' AND next_attempt_at <= now() \
                   AND (channel = 'WEBHOOK' OR $4) \
             ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED), \
         claimed AS ( \
             UPDATE notifications n SET attempts = n.attempts + 1, claim = $2, \
                    next_attempt_at = now() + make_interval(secs => $3) \
             FROM due WHERE n.id = due.id \
             RETURNING n.id, n.channel, n.type, n.payload, n.attempts, n.webhook_id, n.user_id, \
                       n.event_id) \
         SELECT c.id, c.channel, c.type, c.payload, c.attempts, w.url, w.secret, u.email, \
                u.firstname, e.currency \
         FROM claimed c \
         LEFT JOIN webhooks w ON w.id = c.webhook_id \
         LEFT JOIN users u ON u.id = c.user_id \
         LEFT JOIN events e ON e.id = c.event_id",
    )
    .bind(limit)
    .bind(claim)
    .bind(LEASE.as_secs_f64())
    .bind(with_email)
    .fetch_all(db)
    .await?)
}

/// What one attempt came to.
pub struct Outcome {
    pub delivered: bool,
    pub status_code: Option<i32>,
    pub error: Option<String>,
}

/// The status an attempt leaves its notification in, and the delay before the next attempt:
/// DELIVERED; or due again after the schedule's next delay; or FAILED after the last.
pub fn next_status(attempt: &Claimed, outcome: &Outcome, schedule: &[u64]) -> (&'static str, u64) {
    let retry_in = usize::try_from(attempt.attempts - 1)
        .ok()
        .and_then(|n| schedule.get(n));
    match (outcome.delivered, retry_in) {
        (true, _) => ("DELIVERED", 0),
        (false, Some(delay)) => ("PENDING", *delay),
        (false, None) => ("FAILED", 0),
    }
}

/// Records the attempts of one claim, in one statement. Only the claim that made an attempt may
/// record it (a lapsed lease may have been taken over). Returns the statuses written, by id.
pub async fn settle(
    db: &PgPool,
    claim: Uuid,
    attempts: &[(&Claimed, Outcome)],
    schedule: &[u64],
) -> Result<Vec<(Uuid, String)>> {
    let mut ids = Vec::with_capacity(attempts.len());
    let mut statuses = Vec::with_capacity(attempts.len());
    let mut codes = Vec::with_capacity(attempts.len());
    let mut errors = Vec::with_capacity(attempts.len());
    let mut delays = Vec::with_capacity(attempts.len());
    for (attempt, outcome) in attempts {
        let (status, delay) = next_status(attempt, outcome, schedule);
        ids.push(attempt.id);
        statuses.push(status);
        codes.push(outcome.status_code);
        errors.push(outcome.error.clone());
        delays.push(delay as f64);
    }
    Ok(sqlx::query_as(
        "UPDATE notifications n SET status = x.status, last_status_code = x.code, \
                last_error = x.error, \
                next_attempt_at = CASE WHEN x.status = 'PENDING' \
                                       THEN now() + make_interval(secs => x.delay) END, \
                delivered_at = CASE WHEN x.status = 'DELIVERED' THEN now() END, claim = NULL \
         FROM UNNEST($1::uuid[], $2::text[], $3::integer[], $4::text[], $5::float8[]) \
              AS x(id, status, code, error, delay) \
         WHERE n.id = x.id AND n.claim = $6 \
         RETURNING n.id, n.status",
    )
    .bind(&ids)
    .bind(&statuses)
    .bind(&codes)
    .bind(&errors)
    .bind(&delays)
    .bind(claim)
    .fetch_all(db)
    .await?)
}

/// Notifications waiting (for the metrics gauge): PENDING ones (the partial index holds them),
/// and the changes of batches not expanded yet.
pub async fn pending(db: &PgPool) -> Result<i64> {
    Ok(sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM notifications WHERE status = 'PENDING') \
              + (SELECT COALESCE(sum(cardinality(booking_ids)), 0) FROM notification_batches)",
    )
    .fetch_one(db)
    .await?)
}
