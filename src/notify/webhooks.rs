//! An organizer's webhooks: register (with a fresh signing secret), list, delete, and the log of
//! deliveries to one of them.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use rand::RngCore;
use sqlx::PgPool;

use super::address;
use super::model::{Delivery, NewWebhook, Webhook};
use crate::error::{AppError, Result};
use crate::http::{Page, PageMeta};

/// Bytes of randomness in a secret (the contract asks for 24 or more).
const SECRET_BYTES: usize = 32;

pub fn not_found() -> AppError {
    AppError::not_found("Webhook not found")
}

pub async fn create(
    db: &PgPool,
    organizer_id: i32,
    body: &NewWebhook,
    allow_private: bool,
) -> Result<Webhook> {
    let raw = body.url.as_deref().unwrap_or_default();
    let url = address::parse(raw).ok_or_else(|| AppError::bad_request(address::NOT_PUBLIC))?;
    address::check_public(&url, allow_private).await?;
    let secret = new_secret();
    let mut created = sqlx::query_as::<_, Webhook>(
        "INSERT INTO webhooks (organizer_id, url, events, secret) VALUES ($1, $2, $3, $4) \
         RETURNING id, url, events, NULL::text AS secret, created_at",
    )
    .bind(organizer_id)
    .bind(raw.trim())
    .bind(body.types())
    .bind(&secret)
    .fetch_one(db)
    .await?;
    created.secret = Some(secret);
    Ok(created)
}

pub async fn list(db: &PgPool, organizer_id: i32, page: Page) -> Result<(Vec<Webhook>, PageMeta)> {
    let rows = sqlx::query_as::<_, Webhook>(
        "SELECT id, url, events, NULL::text AS secret, created_at FROM webhooks \
         WHERE organizer_id = $1 ORDER BY id DESC LIMIT $2 OFFSET $3",
    )
    .bind(organizer_id)
    .bind(page.limit)
    .bind(page.offset())
    .fetch_all(db)
    .await?;
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM webhooks WHERE organizer_id = $1")
        .bind(organizer_id)
        .fetch_one(db)
        .await?;
    Ok((rows, page.meta(total)))
}

/// Deletes the webhook and, with it, its deliveries (pending ones are not sent).
pub async fn delete(db: &PgPool, organizer_id: i32, id: i32) -> Result<()> {
    let deleted = sqlx::query("DELETE FROM webhooks WHERE id = $1 AND organizer_id = $2")
        .bind(id)
        .bind(organizer_id)
        .execute(db)
        .await?;
    if deleted.rows_affected() == 0 {
        return Err(not_found());
    }
    Ok(())
}

pub async fn deliveries(
    db: &PgPool,
    organizer_id: i32,
    id: i32,
    page: Page,
) -> Result<(Vec<Delivery>, PageMeta)> {
    let owned: Option<i32> =
        sqlx::query_scalar("SELECT id FROM webhooks WHERE id = $1 AND organizer_id = $2")
            .bind(id)
            .bind(organizer_id)
            .fetch_optional(db)
            .await?;
    if owned.is_none() {
        return Err(not_found());
    }
    let rows = sqlx::query_as::<_, Delivery>(
        "SELECT id, type, status, attempts, last_status_code, last_error, next_attempt_at, \
                created_at, delivered_at \
         FROM notifications WHERE webhook_id = $1 \
         ORDER BY seq DESC LIMIT $2 OFFSET $3",
    )
    .bind(id)
    .bind(page.limit)
    .bind(page.offset())
    .fetch_all(db)
    .await?;
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM notifications WHERE webhook_id = $1")
        .bind(id)
        .fetch_one(db)
        .await?;
    Ok((rows, page.meta(total)))
}

/// `whsec_` + base64 of fresh random bytes, as Standard Webhooks secrets are written.
fn new_secret() -> String {
    let mut key = [0u8; SECRET_BYTES];
    rand::thread_rng().fill_bytes(&mut key);
    format!("whsec_{}", STANDARD.encode(key))
}
