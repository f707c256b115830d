//! GET /events: the public listing with its search and filters, built as one parameterized
//! query (`sqlx::QueryBuilder`, every value bound) shared by the page and its count.
//!
//! Full-text search uses the generated, weighted `events.search` vector (GIN index) with the
//! `english_unaccent` configuration; when it finds nothing, titles similar to the query
//! (trigrams, `<%`) are returned instead, under the same filters. Counting stops at 10,000.
//! The query string and its cache keys are in `query`.

mod query;

use std::collections::HashSet;

use sqlx::{PgConnection, PgPool, Postgres, QueryBuilder};

pub use query::{EventQuery, Sort};

use super::model::{EventView, EventViewRow};
use super::service::{view_select, view_select_with};
use crate::error::Result;
use crate::http::{Page, PageMeta};

/// `meta.total` counts exactly up to here.
const COUNT_CAP: i64 = 10_000;
/// Most matches a seat-filtered listing keeps (see `matching_ids`): 20 KB of ids.
pub const MAX_MATCHES: usize = 5_000;
/// How alike a title's words must be to the query in the typo fallback (pg_trgm's word
/// similarity, 0 to 1).
const TYPO_SIMILARITY: f32 = 0.3;

/// How the text query matches: full text, or the typo fallback on titles.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Match {
    FullText,
    Similar,
}

/// The WHERE clause of both the page and its count (public so that the SEARCH bench explains
/// the very SQL a listing runs).
pub fn push_filters(sql: &mut QueryBuilder<'_, Postgres>, query: &EventQuery, matching: Match) {
    sql.push(" WHERE (e.status <> 'DRAFT' OR e.organizer_id = ")
        .push_bind(query.viewer)
        .push(")");
    if let Some(status) = query.status {
        sql.push(" AND e.status = ").push_bind(status);
    }
    if let Some(organizer) = query.organizer_id {
        sql.push(" AND e.organizer_id = ").push_bind(organizer);
    }
    if let Some(q) = &query.q {
        match matching {
            Match::FullText => sql
                .push(" AND e.search @@ plainto_tsquery('english_unaccent', ")
                .push_bind(q.clone())
                .push(")"),
            Match::Similar => sql
                .push(" AND search_fold(")
                .push_bind(q.clone())
                .push(") <% search_fold(e.title)"),
        };
    }
    if let Some(from) = query.from {
        sql.push(" AND e.event_date >= ").push_bind(from);
    }
    if let Some(to) = query.to {
        sql.push(" AND e.event_date <= ").push_bind(to);
    }
    if query.upcoming {
        sql.push(" AND e.event_date >= now()");
    }
    if let Some(city) = &query.city {
        sql.push(r#" AND lower(e.city COLLATE "und-x-icu") = lower("#)
            .push_bind(city.clone())
            .push(r#" COLLATE "und-x-icu")"#);
    }
    if let Some(min) = query.min_seats {
        sql.push(" AND e.available_seats >= ").push_bind(min);
    }
}

pub fn push_order(sql: &mut QueryBuilder<'_, Postgres>, query: &EventQuery, matching: Match) {
    sql.push(" ORDER BY ");
    match (query.effective_sort(), &query.q) {
        (Sort::Relevance, Some(q)) => match matching {
            Match::FullText => sql
                .push("ts_rank_cd(e.search, plainto_tsquery('english_unaccent', ")
                .push_bind(q.clone())
                .push(")) DESC, "),
            Match::Similar => sql
                .push("word_similarity(search_fold(")
                .push_bind(q.clone())
                .push("), search_fold(e.title)) DESC, "),
        },
        (Sort::DateAsc, _) => sql.push("e.event_date ASC NULLS LAST, "),
        (Sort::DateDesc, _) => sql.push("e.event_date DESC NULLS LAST, "),
        (Sort::AvailableDesc, _) => sql.push("e.available_seats DESC, "),
        _ => sql.push(""),
    };
    sql.push("e.created_at DESC, e.id DESC");
}

/// One page of the listing, and its meta (total exact up to 10,000).
pub async fn list(
    db: &PgPool,
    query: &EventQuery,
    page: Page,
) -> Result<(Vec<EventView>, PageMeta)> {
    let (rows, total) = run(db, query, page, Match::FullText).await?;
    let (rows, total) = if query.q.is_some() && total == 0 {
        run(db, query, page, Match::Similar).await?
    } else {
        (rows, total)
    };
    let exact = total <= COUNT_CAP;
    let mut meta = page.meta(total.min(COUNT_CAP));
    meta.total_exact = Some(exact);
    Ok((rows.into_iter().map(EventView::from).collect(), meta))
}

/// Every event matching `query` but its seat filter (`minSeats`), by full text, in the
/// listing's order: what a seat-filtered listing keeps, to read only the seats at each request
/// (`with_seats`). `None` when more than `MAX_MATCHES` match. The typo fallback is left to
/// `list`.
pub async fn matching_ids(db: &PgPool, query: &EventQuery) -> Result<Option<Vec<i32>>> {
    let unseated = EventQuery {
        min_seats: None,
        ..query.clone()
    };
    let mut sql = QueryBuilder::new("SELECT e.id FROM events e");
    push_filters(&mut sql, &unseated, Match::FullText);
    push_order(&mut sql, &unseated, Match::FullText);
    sql.push(" LIMIT ").push_bind(MAX_MATCHES as i64 + 1);
    let ids: Vec<i32> = sql.build_query_scalar().fetch_all(db).await?;
    Ok((ids.len() <= MAX_MATCHES).then_some(ids))
}

/// Of `ids`, those with at least `min` seats available now (the same `available_seats` the
/// bookings enforce, read from the database), in the same order.
pub async fn with_seats(db: &PgPool, ids: &[i32], min: i32) -> Result<Vec<i32>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let seated: HashSet<i32> =
        sqlx::query_scalar("SELECT id FROM events WHERE id = ANY($1) AND available_seats >= $2")
            .bind(ids)
            .bind(min)
            .fetch_all(db)
            .await?
            .into_iter()
            .collect();
    Ok(ids
        .iter()
        .copied()
        .filter(|id| seated.contains(id))
        .collect())
}

/// A page's row with how many rows matched in all (`count(*) OVER ()`).
#[derive(sqlx::FromRow)]
struct CountedRow {
    #[sqlx(flatten)]
    row: EventViewRow,
    matches: i64,
}

/// The page and its capped count. Sorted by relevance, the page ranks every match anyway, so
/// it counts them on the way (a window count) and the count query is only needed for a page
/// past the last match. Only the typo fallback needs a transaction: it lowers pg_trgm's
/// threshold for itself alone (the two statements share no snapshot either way).
async fn run(
    db: &PgPool,
    query: &EventQuery,
    page: Page,
    matching: Match,
) -> Result<(Vec<EventViewRow>, i64)> {
    if matching == Match::FullText {
        let mut conn = db.acquire().await?;
        return read(&mut conn, query, page, matching).await;
    }
    let mut tx = db.begin().await?;
    sqlx::query("SELECT set_config('pg_trgm.word_similarity_threshold', $1, true)")
        .bind(TYPO_SIMILARITY.to_string())
        .execute(&mut *tx)
        .await?;
    let found = read(&mut tx, query, page, matching).await?;
    tx.commit().await?;
    Ok(found)
}

async fn read(
    conn: &mut PgConnection,
    query: &EventQuery,
    page: Page,
    matching: Match,
) -> Result<(Vec<EventViewRow>, i64)> {
    let counted = query.effective_sort() == Sort::Relevance;
    let mut rows_sql = QueryBuilder::new(if counted {
        view_select_with(", count(*) OVER () AS matches")
    } else {
        view_select()
    });
    push_filters(&mut rows_sql, query, matching);
    push_order(&mut rows_sql, query, matching);
    rows_sql
        .push(" LIMIT ")
        .push_bind(page.limit)
        .push(" OFFSET ")
        .push_bind(page.offset());
    let (rows, matches) = if counted {
        let rows = rows_sql
            .build_query_as::<CountedRow>()
            .fetch_all(&mut *conn)
            .await?;
        let matches = rows.first().map(|r| r.matches);
        (rows.into_iter().map(|r| r.row).collect(), matches)
    } else {
        let rows = rows_sql
            .build_query_as::<EventViewRow>()
            .fetch_all(&mut *conn)
            .await?;
        (rows, None)
    };
    let total = match matches {
        Some(matches) => matches.min(COUNT_CAP + 1),
        None => {
            let mut count_sql = QueryBuilder::new("SELECT count(*) FROM (SELECT 1 FROM events e");
            push_filters(&mut count_sql, query, matching);
            count_sql
                .push(" LIMIT ")
                .push_bind(COUNT_CAP + 1)
                .push(") matches");
            count_sql.build_query_scalar().fetch_one(&mut *conn).await?
        }
    };
    Ok((rows, total))
}
