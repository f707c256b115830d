//! The public reads of events (anyone but an organizer, whose own reads go to the primary as
//! they are) through the cache of `cache`: a view or a listing page is answered from memory
//! when it is kept, else read (from the replica when there is one, where the cache is off)
//! and kept if nothing changed meanwhile. The answer is the same JSON either way.

use std::sync::Arc;

use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde_json::value::RawValue;
use sqlx::PgPool;

use super::cache::{Listing, Matches, Ticket};
use super::model::{EventStatus, EventView, EventViewRow};
use super::search::{self, EventQuery};
use super::service::{self, view_select};
use crate::error::{AppError, Result};
use crate::http::{Page, PageMeta, Paginated};
use crate::state::AppState;

/// GET /events/{id} for anyone but an organizer.
pub async fn view(state: &AppState, id: i32, viewer: Option<i32>) -> Result<Response> {
    let cache = &state.event_cache;
    if let Some(view) = cache.view(id) {
        return Ok(json_response(view.get().to_owned()));
    }
    let ticket = cache.ticket();
    let read = |db: PgPool| async move { service::view(&db, id, viewer).await };
    let view = state.reads.run(read).await?;
    let json = to_json(&view)?;
    keep(state, ticket, &view, &json);
    Ok(json_response(json.get().to_owned()))
}

/// GET /events for anyone but an organizer.
pub async fn listing(state: &AppState, query: &EventQuery, page: Page) -> Result<Response> {
    if let Some(response) = seat_filtered(state, query, page).await? {
        return Ok(response);
    }
    let cache = &state.event_cache;
    let key = query.cache_key(page);
    if let Some(listing) = key.as_deref().and_then(|key| cache.listing(key)) {
        if let Some(views) = views_of(state, &listing.ids).await? {
            return page_response(&views, &listing.meta);
        }
    }
    let ticket = cache.ticket();
    let read = |db: PgPool| async move { search::list(&db, query, page).await };
    let (data, meta) = state.reads.run(read).await?;
    let mut views = Vec::with_capacity(data.len());
    for view in &data {
        let json = to_json(view)?;
        keep(state, ticket, view, &json);
        views.push(json);
    }
    let response = page_response(&views, &meta);
    if let (Some(ticket), Some(key)) = (ticket, key) {
        let ids = data.iter().map(|view| view.event.id).collect();
        cache.keep_listing(ticket, key, Arc::new(Listing { ids, meta }));
    }
    response
}

/// A listing filtered by seats (`minSeats`), from its kept matches: only the matching by
/// words, dates and city is kept; which matches have the seats is read at every request, from
/// the same `available_seats` the bookings enforce. `None` when it cannot be answered so (the
/// cache is off, too many match, none has the seats: the typo fallback may apply, or an event
/// is no longer public): the listing is then read in full.
async fn seat_filtered(
    state: &AppState,
    query: &EventQuery,
    page: Page,
) -> Result<Option<Response>> {
    let (Some(min), Some(key)) = (query.min_seats, query.matches_key()) else {
        return Ok(None);
    };
    let cache = &state.event_cache;
    let matches = match cache.matches(&key) {
        Some(matches) => matches,
        None => {
            let Some(ticket) = cache.ticket() else {
                return Ok(None);
            };
            let ids = search::matching_ids(&state.db, query).await?;
            let matches = Arc::new(Matches { ids });
            cache.keep_matches(ticket, key, matches.clone());
            matches
        }
    };
    let Some(ids) = &matches.ids else {
        return Ok(None);
    };
    let seated = search::with_seats(&state.db, ids, min).await?;
    if seated.is_empty() && query.q.is_some() {
        return Ok(None);
    }
    let offset = usize::try_from(page.offset()).unwrap_or(usize::MAX);
    let limit = usize::try_from(page.limit).unwrap_or(usize::MAX);
    let shown: Vec<i32> = seated.iter().skip(offset).take(limit).copied().collect();
    let Some(views) = views_of(state, &shown).await? else {
        return Ok(None);
    };
    let mut meta = page.meta(seated.len() as i64);
    meta.total_exact = Some(true);
    page_response(&views, &meta).map(Some)
}

/// The views of `ids` in order, from the cache or else in one read; `None` when one of them
/// is no longer public (deleted or a draft by now: the listing is read again).
async fn views_of(state: &AppState, ids: &[i32]) -> Result<Option<Vec<Arc<RawValue>>>> {
    let cache = &state.event_cache;
    let mut views: Vec<Option<Arc<RawValue>>> = ids.iter().map(|id| cache.view(*id)).collect();
    let missing: Vec<i32> = ids
        .iter()
        .zip(&views)
        .filter(|(_, view)| view.is_none())
        .map(|(id, _)| *id)
        .collect();
    if !missing.is_empty() {
        let ticket = cache.ticket();
        let rows: Vec<EventViewRow> = sqlx::query_as(&format!(
            "{} WHERE e.id = ANY($1) AND e.status <> 'DRAFT'",
            view_select()
        ))
        .bind(&missing)
        .fetch_all(&state.db)
        .await?;
        for row in rows {
            let view = EventView::from(row);
            let json = to_json(&view)?;
            keep(state, ticket, &view, &json);
            if let Some(at) = ids.iter().position(|id| *id == view.event.id) {
                views[at] = Some(json);
            }
        }
    }
    Ok(views.into_iter().collect())
}

/// Keeps a public view read under `ticket` (drafts are never kept: they are not public).
fn keep(state: &AppState, ticket: Option<Ticket>, view: &EventView, json: &Arc<RawValue>) {
    if let Some(ticket) = ticket {
        if view.event.status != EventStatus::Draft {
            state
                .event_cache
                .keep_view(ticket, view.event.id, json.clone());
        }
    }
}

fn to_json(view: &EventView) -> Result<Arc<RawValue>> {
    let text = serde_json::to_string(view).map_err(anyhow::Error::from)?;
    Ok(Arc::from(
        RawValue::from_string(text).map_err(anyhow::Error::from)?,
    ))
}

fn page_response(views: &[Arc<RawValue>], meta: &PageMeta) -> Result<Response> {
    let page = Paginated {
        data: views.iter().map(|view| &**view).collect(),
        meta: meta.clone(),
    };
    let text = serde_json::to_string(&page).map_err(|e| AppError::Internal(e.into()))?;
    Ok(json_response(text))
}

fn json_response(body: String) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}
