//! The outbox: notification rows written in the transaction of the booking change they
//! announce, claimed by workers with `FOR UPDATE SKIP LOCKED`, and settled after each attempt.
//!
//! A claim is a lease: the attempt is counted and the row is due again only when the lease
//! lapses, so however many instances poll, each attempt is made by one of them; one that
//! crashes mid-attempt only delays the next.

use std::time::Duration;

use serde::Serialize;
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

use crate::bookings::model::{Booking, BookingStatus};
use crate::error::Result;
use crate::time::{self, Timestamp};

/// Longer than any attempt can take (a webhook's 10 s, an email's 10 s), with room to spare.
pub const LEASE: Duration = Duration::from_secs(60);

/// One booking change to announce, with what its body says about the event.
pub struct Change<'a> {
    pub kind: &'static str,
    pub booking: &'a Booking,
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

#[derive(Serialize)]
struct Body<'a> {
    r#type: &'static str,
    timestamp: String,
    data: Data<'a>,
}

#[derive(Serialize)]
struct Data<'a> {
    booking: &'a Booking,
    event: &'a EventSummary<'a>,
}

/// The notification type of a booking that a write left in `status`, having been `before`
/// (`None`: a new booking).
pub fn kind_of(before: Option<BookingStatus>, status: BookingStatus) -> Option<&'static str> {
    match (before, status) {
        (None, BookingStatus::Pending) => Some("booking.held"),
        (_, BookingStatus::Confirmed) => Some("booking.confirmed"),
        (Some(_), BookingStatus::Cancelled) => Some("booking.cancelled"),
        (Some(_), BookingStatus::Expired) => Some("booking.expired"),
        _ => None,
    }
}

/// Writes the notifications of `changes`, in the caller's transaction: one per webhook of the
/// event's organizer that asked for the type, and one email each when `email` is on. The body is
/// fixed here, so every attempt sends (and signs) the same bytes.
pub async fn record(
    tx: &mut Transaction<'_, Postgres>,
    organizer_id: i32,
    event: &EventSummary<'_>,
    changes: &[Change<'_>],
    email: bool,
) -> Result<()> {
    if changes.is_empty() {
        return Ok(());
    }
    let timestamp = time::format(&chrono::Utc::now());
    let mut kinds = Vec::with_capacity(changes.len());
    let mut users = Vec::with_capacity(changes.len());
    let mut bookings = Vec::with_capacity(changes.len());
    let mut payloads = Vec::with_capacity(changes.len());
    for change in changes {
        let body = Body {
            r#type: change.kind,
            timestamp: timestamp.clone(),
            data: Data {
                booking: change.booking,
                event,
            },
        };
        kinds.push(change.kind);
        users.push(change.booking.user_id);
        bookings.push(change.booking.id);
        payloads.push(serde_json::to_string(&body).map_err(anyhow::Error::from)?);
    }
    sqlx::query(
        "WITH x AS ( \
             SELECT * FROM UNNEST($3::text[], $4::integer[], $5::integer[], $6::text[]) \
                 WITH ORDINALITY AS x(type, user_id, booking_id, payload, n)) \
         INSERT INTO notifications (channel, webhook_id, user_id, event_id, booking_id, type, payload) \
         SELECT channel, webhook_id, user_id, $1, booking_id, type, payload FROM ( \
             SELECT 'WEBHOOK' AS channel, w.id AS webhook_id, x.* \
             FROM x JOIN webhooks w ON w.organizer_id = $2 AND x.type = ANY (w.events) \
             UNION ALL \
             SELECT 'EMAIL', NULL, x.* FROM x WHERE $7) rows \
         ORDER BY n, webhook_id",
    )
    .bind(event.id)
    .bind(organizer_id)
    .bind(&kinds)
    .bind(&users)
    .bind(&bookings)
    .bind(&payloads)
    .bind(email)
    .execute(&mut **tx)
    .await?;
    Ok(())
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
             RETURNING n.id, n.channel, n.type, n.payload, n.attempts, n.webhook_id, n.user_id) \
         SELECT c.id, c.channel, c.type, c.payload, c.attempts, w.url, w.secret, u.email, \
                u.firstname \
         FROM claimed c \
         LEFT JOIN webhooks w ON w.id = c.webhook_id \
         LEFT JOIN users u ON u.id = c.user_id",
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

/// Notifications waiting for an attempt (for the metrics gauge): the partial index holds them.
pub async fn pending(db: &PgPool) -> Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT count(*) FROM notifications WHERE status = 'PENDING'")
            .fetch_one(db)
            .await?,
    )
}
