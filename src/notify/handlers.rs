//! The webhook routes (ORGANIZER). Handlers only translate HTTP to service calls.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;

use super::model::{Delivery, NewWebhook, PageParams, Webhook, WebhookDeleted};
use super::webhooks;
use crate::auth::Organizer;
use crate::error::{AppError, ErrorBody, Result};
use crate::http::{IdPath, Page, Paginated, QueryParams, ValidatedJson};
use crate::state::AppState;

/// Register a webhook (ORGANIZER)
///
/// It receives the booking changes of the caller's events: a signed `POST` per change (Standard
/// Webhooks headers), retried on `NOTIFY_RETRY_SCHEDULE`. The `secret` is shown only here.
#[utoipa::path(
    post, path = "/webhooks", tag = "webhooks",
    request_body = NewWebhook,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "The webhook, with its signing secret", body = Webhook),
        (status = 400, description = "Validation failed; or the URL is not a public http(s) address", body = ErrorBody,
            example = json!({ "statusCode": 400, "message": "Webhook URL must be a public http(s) address", "error": "Bad Request" })),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 403, description = "Not an ORGANIZER", body = ErrorBody),
    )
)]
pub async fn create_webhook(
    State(state): State<AppState>,
    Organizer(caller): Organizer,
    ValidatedJson(body): ValidatedJson<NewWebhook>,
) -> Result<(StatusCode, Json<Webhook>)> {
    let allow_private = state.config.notify.allow_private;
    let created = webhooks::create(&state.db, caller.id, &body, allow_private).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// The caller's webhooks (ORGANIZER)
///
/// Newest first, without their secrets.
#[utoipa::path(
    get, path = "/webhooks", tag = "webhooks",
    params(PageParams),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of the caller's webhooks, newest first", body = Paginated<Webhook>),
        (status = 400, description = "Bad page or limit", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 403, description = "Not an ORGANIZER", body = ErrorBody),
    )
)]
pub async fn list_webhooks(
    State(state): State<AppState>,
    Organizer(caller): Organizer,
    QueryParams(params): QueryParams<PageParams>,
) -> Result<Json<Paginated<Webhook>>> {
    let page = page(&params)?;
    let (data, meta) = webhooks::list(&state.db, caller.id, page).await?;
    Ok(Json(Paginated { data, meta }))
}

/// Delete a webhook (its organizer)
///
/// Its pending deliveries are dropped with it.
#[utoipa::path(
    delete, path = "/webhooks/{id}", tag = "webhooks",
    params(("id" = i32, Path, description = "Webhook id", minimum = 1)),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Deleted", body = WebhookDeleted),
        (status = 400, description = "The id is not an integer", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 403, description = "Not an ORGANIZER", body = ErrorBody),
        (status = 404, description = "Webhook not found (or not the caller's)", body = ErrorBody),
    )
)]
pub async fn delete_webhook(
    State(state): State<AppState>,
    Organizer(caller): Organizer,
    IdPath(id): IdPath,
) -> Result<Json<WebhookDeleted>> {
    webhooks::delete(&state.db, caller.id, id).await?;
    Ok(Json(WebhookDeleted {
        message: "Webhook deleted successfully",
        webhook_id: id,
    }))
}

/// Deliveries to a webhook (its organizer)
///
/// Newest first: one entry per notification, with its attempts so far.
#[utoipa::path(
    get, path = "/webhooks/{id}/deliveries", tag = "webhooks",
    params(("id" = i32, Path, description = "Webhook id", minimum = 1), PageParams),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of deliveries", body = Paginated<Delivery>),
        (status = 400, description = "Bad id, page or limit", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 403, description = "Not an ORGANIZER", body = ErrorBody),
        (status = 404, description = "Webhook not found (or not the caller's)", body = ErrorBody),
    )
)]
pub async fn list_deliveries(
    State(state): State<AppState>,
    Organizer(caller): Organizer,
    IdPath(id): IdPath,
    QueryParams(params): QueryParams<PageParams>,
) -> Result<Json<Paginated<Delivery>>> {
    let page = page(&params)?;
    let (data, meta) = webhooks::deliveries(&state.db, caller.id, id, page).await?;
    Ok(Json(Paginated { data, meta }))
}

fn page(params: &PageParams) -> Result<Page> {
    let mut errors = Vec::new();
    let page = Page::parse(params.page.as_deref(), params.limit.as_deref(), &mut errors);
    if errors.is_empty() {
        Ok(page)
    } else {
        Err(AppError::Validation(errors))
    }
}
