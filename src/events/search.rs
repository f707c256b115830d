//! GET /events: the public listing with its search and filters, built as one parameterized
//! query (`sqlx::QueryBuilder`, every value bound) shared by the page and its count.
//!
//! Full-text search uses the generated, weighted `events.search` vector (GIN index) with the
//! `english_unaccent` configuration; when it finds nothing, titles similar to the query
//! (trigrams, `<%`) are returned instead, under the same filters. Counting stops at 10,000.

use std::collections::HashSet;

use chrono::{Duration, NaiveDate, TimeZone, Utc};
use sqlx::{PgConnection, PgPool, Postgres, QueryBuilder};

use super::model::{EventListParams, EventStatus, EventView, EventViewRow, MAX_SEATS};
use super::service::{view_select, view_select_with};
use crate::error::{AppError, Result};
use crate::http::params::{bounded_int, parse_enum};
use crate::http::{Page, PageMeta};
use crate::time::{self, Timestamp};

/// `meta.total` counts exactly up to here.
const COUNT_CAP: i64 = 10_000;
const MAX_QUERY: usize = 200;
/// Most matches a seat-filtered listing keeps (see `matching_ids`): 20 KB of ids.
pub const MAX_MATCHES: usize = 5_000;
/// How alike a title's words must be to the query in the typo fallback (pg_trgm's word
/// similarity, 0 to 1).
const TYPO_SIMILARITY: f32 = 0.3;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sort {
    CreatedDesc,
    Relevance,
    DateAsc,
    DateDesc,
    AvailableDesc,
}

const SORTS: [&str; 5] = [
    "-createdAt",
    "relevance",
    "eventDate",
    "-eventDate",
    "-availableSeats",
];

/// A listing request, validated.
#[derive(Debug, Clone, Default)]
pub struct EventQuery {
    pub status: Option<EventStatus>,
    pub organizer_id: Option<i32>,
    /// The caller: drafts are listed to their own organizer only.
    pub viewer: Option<i32>,
    pub q: Option<String>,
    pub from: Option<Timestamp>,
    pub to: Option<Timestamp>,
    pub upcoming: bool,
    pub city: Option<String>,
    pub min_seats: Option<i32>,
    pub sort: Option<Sort>,
}

impl EventQuery {
    /// Parses the query string; one message per broken rule.
    pub fn parse(params: &EventListParams, viewer: Option<i32>) -> Result<(Self, Page)> {
        let mut errors = Vec::new();
        let page = Page::parse(params.page.as_deref(), params.limit.as_deref(), &mut errors);
        let status = parse_enum(
            "status",
            params.status.as_deref(),
            &EventStatus::NAMES,
            &mut errors,
        );
        let organizer_id = params.organizer_id.as_deref().and_then(|raw| {
            let id = raw.trim().parse::<i32>().ok().filter(|id| *id >= 1);
            if id.is_none() {
                errors.push("organizerId must be an integer from 1 to 2147483647".into());
            }
            id
        });
        // PostgreSQL text cannot hold NUL: refused like a NUL in a JSON body (API.md).
        for (name, value) in [("q", &params.q), ("city", &params.city)] {
            if value.as_deref().is_some_and(|v| v.contains('\0')) {
                errors.push(format!("{name} must not contain NUL characters"));
            }
        }
        let q = params
            .q
            .as_deref()
            .filter(|q| !q.contains('\0'))
            .and_then(|q| {
                let length = q.chars().count();
                if q.trim().is_empty() || length > MAX_QUERY {
                    errors.push(format!("q must be 1 to {MAX_QUERY} characters"));
                    return None;
                }
                Some(q.trim().to_string())
            });
        let from = date_bound("from", params.from.as_deref(), false, &mut errors);
        let to = date_bound("to", params.to.as_deref(), true, &mut errors);
        if let (Some(from), Some(to)) = (from, to) {
            if from > to {
                errors.push("from must not be after to".into());
            }
        }
        let upcoming = match params.upcoming.as_deref().map(str::trim) {
            None | Some("false") => false,
            Some("true") => true,
            Some(_) => {
                errors.push("upcoming must be a boolean value".into());
                false
            }
        };
        let city = params
            .city
            .as_deref()
            .map(str::trim)
            .filter(|c| !c.is_empty() && !c.contains('\0'));
        let min_seats = params
            .min_seats
            .as_deref()
            .map(|raw| bounded_int("minSeats", Some(raw), 1, 1, MAX_SEATS, &mut errors) as i32);
        let sort = params.sort.as_deref().and_then(|raw| {
            let sort = match raw.trim() {
                "-createdAt" => Sort::CreatedDesc,
                "relevance" => Sort::Relevance,
                "eventDate" => Sort::DateAsc,
                "-eventDate" => Sort::DateDesc,
                "-availableSeats" => Sort::AvailableDesc,
                _ => {
                    errors.push(format!(
                        "sort must be one of the following values: {}",
                        SORTS.join(", ")
                    ));
                    return None;
                }
            };
            Some(sort)
        });
        if sort == Some(Sort::Relevance) && q.is_none() {
            errors.push("sort relevance requires q".into());
        }
        if !errors.is_empty() {
            return Err(AppError::Validation(errors));
        }
        let query = Self {
            status,
            organizer_id,
            viewer,
            q,
            from,
            to,
            upcoming,
            city: city.map(str::to_string),
            min_seats,
            sort,
        };
        Ok((query, page))
    }

    /// The key of this listing page in the cache of public reads, when it may be kept: not
    /// when it depends on seats (`minSeats`, `-availableSeats`: they move with every booking)
    /// or on the clock (`upcoming`). The viewer is left out: only non-organizers use it, and
    /// they see no drafts.
    pub fn cache_key(&self, page: Page) -> Option<String> {
        if self.min_seats.is_some() || self.sort == Some(Sort::AvailableDesc) || self.upcoming {
            return None;
        }
        Some(format!(
            "{}|{}|{}",
            self.filters_key(),
            page.page,
            page.limit
        ))
    }

    /// The key of a listing filtered by `minSeats` in the cache's matches (see `matching_ids`):
    /// as `cache_key`, without the seats and the page.
    pub fn matches_key(&self) -> Option<String> {
        if self.min_seats.is_none() || self.sort == Some(Sort::AvailableDesc) || self.upcoming {
            return None;
        }
        Some(self.filters_key())
    }

    /// Every filter and the sort but the seats, the clock and the viewer.
    fn filters_key(&self) -> String {
        format!(
            "{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}",
            self.status.map(EventStatus::as_str),
            self.organizer_id,
            self.q,
            self.from,
            self.to,
            self.city,
            self.sort,
        )
    }

    fn effective_sort(&self) -> Sort {
        self.sort.unwrap_or(if self.q.is_some() {
            Sort::Relevance
        } else {
            Sort::CreatedDesc
        })
    }
}

/// A date (`2026-12-31`: its start, or for `to` its end, in UTC) or a date-time with offset.
fn date_bound(
    name: &str,
    raw: Option<&str>,
    end_of_day: bool,
    errors: &mut Vec<String>,
) -> Option<Timestamp> {
    let raw = raw?.trim();
    if let Some(at) = time::parse(raw) {
        return Some(at);
    }
    if let Ok(day) = NaiveDate::parse_from_str(raw, "%Y-%m-%d") {
        let start = Utc.from_utc_datetime(&day.and_hms_opt(0, 0, 0)?);
        return Some(if end_of_day {
            start + Duration::days(1) - Duration::milliseconds(1)
        } else {
            start
        });
    }
    errors.push(format!(
        "{name} must be an ISO 8601 date (2026-12-31) or date-time with a time zone"
    ));
    None
}

/// How the text query matches: full text, or the typo fallback on titles.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Match {
    FullText,
    Similar,
}

/// The WHERE clause of both the page and its count.
fn push_filters(sql: &mut QueryBuilder<'_, Postgres>, query: &EventQuery, matching: Match) {
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

fn push_order(sql: &mut QueryBuilder<'_, Postgres>, query: &EventQuery, matching: Match) {
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
