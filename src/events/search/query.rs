//! The listing's query string, validated: one message per broken rule, and the keys under
//! which the cache of public reads keeps what a listing found.

use chrono::{Duration, NaiveDate, TimeZone, Utc};

use crate::error::{AppError, Result};
use crate::events::model::{EventListParams, EventStatus, MAX_SEATS};
use crate::http::params::{bounded_int, parse_enum};
use crate::http::Page;
use crate::time::{self, Timestamp};

const MAX_QUERY: usize = 200;

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

    pub(super) fn effective_sort(&self) -> Sort {
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
