//! `Idempotency-Key` on POST /bookings, as payment APIs have it: the first request with a key
//! claims it; the booking transaction records the key's outcome beside the booking it made (or
//! the refusal it gave), so "committed" and "recorded" cannot diverge. A retry by the same
//! user with the same key and body gets that response again (plus `Idempotent-Replayed: true`)
//! and books nothing; a retry that arrives while the first is in flight waits for it. Same key,
//! different body → 422.
//!
//! A claim is fenced by a token: only the request holding the current token can record the
//! outcome, and the booking transaction locks the key's row before it books. So a retry may
//! take over a claim whose request has answered without recording anything (a 503, a lost
//! race), and even a first request that is still running cannot book a second time: its
//! transaction finds its token gone. A claim whose commit may have happened is never released;
//! its row lock makes a retry wait for that commit and then replay what it recorded.

use std::time::Duration;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

use crate::error::{AppError, Result};
use crate::http::deadline::RequestStart;

pub const HEADER: HeaderName = HeaderName::from_static("idempotency-key");
pub const REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");
const POLL: Duration = Duration::from_millis(20);
/// Responses are kept at least 24 hours; the sweep removes them after 48.
const KEEP_HOURS: i32 = 48;
/// How long a release may take before the lease expiry is left to free the key instead.
const RELEASE_WITHIN: Duration = Duration::from_secs(5);

/// The validated `Idempotency-Key` header: 1 to 255 visible ASCII characters.
pub struct IdempotencyKey(pub String);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, AppError> {
        let value = parts
            .headers
            .get(HEADER)
            .map(HeaderValue::as_bytes)
            .unwrap_or_default();
        if value.is_empty() || value.len() > 255 || !value.iter().all(u8::is_ascii_graphic) {
            return Err(AppError::bad_request(
                "Idempotency-Key must be 1 to 255 visible ASCII characters",
            ));
        }
        Ok(Self(String::from_utf8_lossy(value).into_owned()))
    }
}

impl<S: Send + Sync> axum::extract::OptionalFromRequestParts<S> for IdempotencyKey {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Option<Self>, AppError> {
        if !parts.headers.contains_key(HEADER) {
            return Ok(None);
        }
        <Self as FromRequestParts<S>>::from_request_parts(parts, state)
            .await
            .map(Some)
    }
}

/// What a request holding a key should do.
pub enum Claim {
    /// This request is the first (or took over an abandoned claim): book with this claim.
    First(KeyClaim),
    /// An earlier request finished: answer with its response.
    Replay(Response),
}

/// A key this request holds, and the token that fences it.
#[derive(Debug, Clone)]
pub struct KeyClaim {
    pub key: String,
    pub token: Uuid,
}

/// Claims `key` for `user`, or waits for the request that did and returns its response.
/// Gives up by the request's commit deadline: 409 when the first is still running, 503 when
/// the database did not answer.
pub async fn claim(
    db: &PgPool,
    user: i32,
    key: &str,
    request_hash: &str,
    start: RequestStart,
) -> Result<Claim> {
    tokio::time::timeout_at(
        start.commit_by(),
        claim_or_wait(db, user, key, request_hash, start),
    )
    .await
    .unwrap_or_else(|_| Err(AppError::Unavailable("claiming an idempotency key".into())))
}

async fn claim_or_wait(
    db: &PgPool,
    user: i32,
    key: &str,
    request_hash: &str,
    start: RequestStart,
) -> Result<Claim> {
    let token = Uuid::new_v4();
    // Until then the claim is ours: this request will have answered by that time.
    let until = start.answer_by_utc();
    loop {
        let claimed = sqlx::query(
            "INSERT INTO idempotency_keys (user_id, key, request_hash, claim_token, claimed_until) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
        )
        .bind(user)
        .bind(key)
        .bind(request_hash)
        .bind(token)
        .bind(until)
        .execute(db)
        .await
        .map_err(|e| match AppError::from(e) {
            e if e.constraint() == Some("idempotency_keys_user_id_fkey") => {
                crate::auth::invalid_token()
            }
            e => e,
        })?
        .rows_affected();
        if claimed == 1 {
            return Ok(Claim::First(KeyClaim {
                key: key.to_string(),
                token,
            }));
        }
        let stored: Option<(String, Option<i16>, Option<String>, bool)> = sqlx::query_as(
            "SELECT request_hash, status_code, response_body, claimed_until < now() \
             FROM idempotency_keys WHERE user_id = $1 AND key = $2",
        )
        .bind(user)
        .bind(key)
        .fetch_optional(db)
        .await?;
        match stored {
            None => continue, // released in between: claim it again
            Some((hash, ..)) if hash != request_hash => {
                return Err(AppError::client(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "Idempotency-Key reused with a different request",
                ))
            }
            Some((_, Some(status), Some(body), _)) => {
                return Ok(Claim::Replay(replay(status, body)))
            }
            Some((_, _, _, true)) => {
                // Its request has answered without recording an outcome. If its transaction
                // is still committing, this UPDATE waits for the row lock and then finds the
                // outcome recorded (no row matches), and the loop replays it.
                if take_over(db, user, key, token, until).await? {
                    return Ok(Claim::First(KeyClaim {
                        key: key.to_string(),
                        token,
                    }));
                }
            }
            Some(_) if tokio::time::Instant::now() + POLL >= start.commit_by() => {
                return Err(AppError::conflict(
                    "A request with this Idempotency-Key is still in progress. Please try again.",
                ))
            }
            Some(_) => tokio::time::sleep(POLL).await,
        }
    }
}

async fn take_over(
    db: &PgPool,
    user: i32,
    key: &str,
    token: Uuid,
    until: chrono::DateTime<chrono::Utc>,
) -> Result<bool> {
    let taken = sqlx::query(
        "UPDATE idempotency_keys SET claim_token = $3, claimed_until = $4 \
         WHERE user_id = $1 AND key = $2 AND status_code IS NULL AND claimed_until < now()",
    )
    .bind(user)
    .bind(key)
    .bind(token)
    .bind(until)
    .execute(db)
    .await?
    .rows_affected();
    Ok(taken == 1)
}

fn replay(status: i16, body: String) -> Response {
    let status = u16::try_from(status)
        .ok()
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::OK);
    let mut response = (
        status,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response();
    response
        .headers_mut()
        .insert(REPLAYED, HeaderValue::from_static("true"));
    response
}

/// One claim of a booking group: (user, key, token).
pub type HeldKey<'a> = (i32, &'a KeyClaim);

/// Inside the booking transaction, before anything is booked: locks the rows of the claims
/// still held by these tokens and without an outcome. Returns, per claim, whether it is held;
/// a claim that is not (taken over by a retry, or already recorded) must not book.
pub async fn lock_held(
    tx: &mut Transaction<'_, Postgres>,
    claims: &[HeldKey<'_>],
) -> Result<Vec<bool>> {
    let users: Vec<i32> = claims.iter().map(|(user, _)| *user).collect();
    let keys: Vec<&str> = claims.iter().map(|(_, c)| c.key.as_str()).collect();
    let tokens: Vec<Uuid> = claims.iter().map(|(_, c)| c.token).collect();
    let held: Vec<Uuid> = sqlx::query_scalar(
        "SELECT k.claim_token FROM idempotency_keys k \
         JOIN UNNEST($1::integer[], $2::text[], $3::uuid[]) AS t(user_id, key, token) \
           ON k.user_id = t.user_id AND k.key = t.key AND k.claim_token = t.token \
         WHERE k.status_code IS NULL \
         ORDER BY k.user_id, k.key \
         FOR UPDATE OF k",
    )
    .bind(&users)
    .bind(&keys)
    .bind(&tokens)
    .fetch_all(&mut **tx)
    .await?;
    Ok(tokens.iter().map(|token| held.contains(token)).collect())
}

/// Inside the booking transaction: the outcomes of held claims, `(user, claim, status, body)`.
pub async fn record(
    tx: &mut Transaction<'_, Postgres>,
    outcomes: &[(i32, &KeyClaim, StatusCode, String)],
) -> Result<()> {
    if outcomes.is_empty() {
        return Ok(());
    }
    let users: Vec<i32> = outcomes.iter().map(|o| o.0).collect();
    let keys: Vec<&str> = outcomes.iter().map(|o| o.1.key.as_str()).collect();
    let statuses: Vec<i16> = outcomes
        .iter()
        .map(|o| i16::try_from(o.2.as_u16()).unwrap_or(500))
        .collect();
    let bodies: Vec<&str> = outcomes.iter().map(|o| o.3.as_str()).collect();
    sqlx::query(
        "UPDATE idempotency_keys k SET status_code = t.status, response_body = t.body \
         FROM UNNEST($1::integer[], $2::text[], $3::smallint[], $4::text[]) \
              AS t(user_id, key, status, body) \
         WHERE k.user_id = t.user_id AND k.key = t.key",
    )
    .bind(&users)
    .bind(&keys)
    .bind(&statuses)
    .bind(&bodies)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Gives up a claim whose request certainly booked nothing (its transaction never reached
/// COMMIT), so a retry need not wait for the lease. In the background and bounded: if the
/// database does not answer, the lease expires instead.
pub fn release(db: &PgPool, user: i32, claim: &KeyClaim) {
    let (db, key, token) = (db.clone(), claim.key.clone(), claim.token);
    tokio::spawn(async move {
        let deleted = sqlx::query(
            "DELETE FROM idempotency_keys \
             WHERE user_id = $1 AND key = $2 AND claim_token = $3 AND status_code IS NULL",
        )
        .bind(user)
        .bind(&key)
        .bind(token)
        .execute(&db);
        match tokio::time::timeout(RELEASE_WITHIN, deleted).await {
            Ok(Ok(_)) => {}
            Ok(Err(error)) => tracing::warn!(%error, "releasing an idempotency key failed"),
            Err(_) => {
                tracing::warn!("releasing an idempotency key timed out; its lease will expire")
            }
        }
    });
}

/// Deletes keys older than 48 hours; returns how many.
pub async fn sweep(db: &PgPool) -> Result<u64> {
    Ok(sqlx::query(
        "DELETE FROM idempotency_keys WHERE created_at < now() - make_interval(hours => $1)",
    )
    .bind(KEEP_HOURS)
    .execute(db)
    .await?
    .rows_affected())
}

/// Runs `sweep` every hour, for the life of the server.
pub async fn sweep_hourly(db: PgPool) {
    // First a minute after start (not at once: a start is busy enough), then every hour.
    let first = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut every = tokio::time::interval_at(first, Duration::from_secs(3600));
    loop {
        every.tick().await;
        match sweep(&db).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(deleted = n, "swept old idempotency keys"),
            Err(error) => tracing::warn!(%error, "sweeping idempotency keys failed"),
        }
    }
}
