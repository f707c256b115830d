//! `Idempotency-Key` on POST /bookings, as payment APIs have it: the first request with a key
//! claims it and stores its exact response; a retry by the same user with the same key and body
//! gets that response again (plus `Idempotent-Replayed: true`) and books nothing; a retry that
//! arrives while the first is in flight waits for it. Same key, different body → 422.

use std::time::Duration;

use axum::body::Body;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use sqlx::PgPool;

use crate::error::{AppError, Result};

pub const HEADER: HeaderName = HeaderName::from_static("idempotency-key");
pub const REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");
/// How long a retry waits for the first request before giving up (under the request timeout,
/// so the client gets this answer rather than a timeout).
const WAIT_FOR_FIRST: Duration = Duration::from_secs(8);
const POLL: Duration = Duration::from_millis(20);
/// A claim this old without a response belongs to a request that died with the process. Its
/// booking may or may not have committed, so it is never taken over (that could book twice):
/// the retry is told to check its bookings instead.
const ABANDONED_AFTER_SECS: i32 = 60;
/// Responses are kept at least 24 hours; the sweep removes them after 48.
const KEEP_HOURS: i32 = 48;

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
    /// This request is the first: do the work, then `complete` (or `release`).
    First,
    /// An earlier request finished: answer with its response.
    Replay(Response),
}

/// Claims `key` for `user`, or waits for the request that did and returns its response.
pub async fn claim(db: &PgPool, user: i32, key: &str, request_hash: &str) -> Result<Claim> {
    let deadline = tokio::time::Instant::now() + WAIT_FOR_FIRST;
    loop {
        let claimed = sqlx::query(
            "INSERT INTO idempotency_keys (user_id, key, request_hash) VALUES ($1, $2, $3) \
             ON CONFLICT DO NOTHING",
        )
        .bind(user)
        .bind(key)
        .bind(request_hash)
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
            return Ok(Claim::First);
        }
        let stored: Option<(String, Option<i16>, Option<String>, bool)> = sqlx::query_as(
            "SELECT request_hash, status_code, response_body, \
                    created_at < now() - make_interval(secs => $3) \
             FROM idempotency_keys WHERE user_id = $1 AND key = $2",
        )
        .bind(user)
        .bind(key)
        .bind(ABANDONED_AFTER_SECS)
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
                return Err(AppError::conflict(
                    "A request with this Idempotency-Key did not finish. Check your bookings \
                     before retrying with a new key.",
                ))
            }
            Some(_) if tokio::time::Instant::now() >= deadline => {
                return Err(AppError::conflict(
                    "A request with this Idempotency-Key is still in progress. Please try again.",
                ))
            }
            Some(_) => tokio::time::sleep(POLL).await,
        }
    }
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

/// Stores the first request's response and returns it. Server errors are not stored: the
/// claim is released, so the client's retry runs again.
pub async fn complete(db: &PgPool, user: i32, key: &str, response: Response) -> Result<Response> {
    if response.status().is_server_error() {
        release(db, user, key).await?;
        return Ok(response);
    }
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .map_err(|e| AppError::Internal(anyhow::anyhow!("reading a response body: {e}")))?;
    sqlx::query(
        "UPDATE idempotency_keys SET status_code = $3, response_body = $4 \
         WHERE user_id = $1 AND key = $2",
    )
    .bind(user)
    .bind(key)
    .bind(i16::try_from(parts.status.as_u16()).unwrap_or(500))
    .bind(String::from_utf8_lossy(&bytes).as_ref())
    .execute(db)
    .await?;
    Ok(Response::from_parts(parts, Body::from(bytes)))
}

/// Gives up a claim that has no response, so the key can be used again.
pub async fn release(db: &PgPool, user: i32, key: &str) -> Result<()> {
    sqlx::query(
        "DELETE FROM idempotency_keys WHERE user_id = $1 AND key = $2 AND status_code IS NULL",
    )
    .bind(user)
    .bind(key)
    .execute(db)
    .await?;
    Ok(())
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
    let mut every = tokio::time::interval(Duration::from_secs(3600));
    loop {
        every.tick().await;
        match sweep(&db).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(deleted = n, "swept old idempotency keys"),
            Err(error) => tracing::warn!(%error, "sweeping idempotency keys failed"),
        }
    }
}
