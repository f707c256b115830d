//! Event statistics and attendee lists, computed by PostgreSQL from the committed rows.

use futures_util::stream::{Stream, StreamExt};

use sqlx::PgPool;

use std::sync::Arc;

use super::cache::{Aggregates, StatsCache};
use super::model::{AttendeeRow, CheckInCounts, DaySales, EventStats, StatusCounts, TypeStats};
use crate::error::{AppError, Result};
use crate::events::service::not_found as event_not_found;
use crate::http::{Page, PageMeta};

/// The event, if `caller` organizes it (404, then 403).
async fn owned(db: &PgPool, event_id: i32, caller: i32) -> Result<(i32, i32)> {
    let (organizer, total, available): (i32, i32, i32) = sqlx::query_as(
        "SELECT organizer_id, total_seats, available_seats FROM events WHERE id = $1",
    )
    .bind(event_id)
    .fetch_optional(db)
    .await?
    .ok_or_else(|| event_not_found(event_id))?;
    organized_by(organizer, caller)?;
    Ok((total, available))
}

/// 403 unless `caller` organizes the event.
fn organized_by(organizer: i32, caller: i32) -> Result<()> {
    if organizer != caller {
        return Err(AppError::forbidden("You can only view your own events"));
    }
    Ok(())
}

/// The event's owner and seats, what its statistics' cache key is made of, and its live
/// check-in count, in one round trip.
#[derive(sqlx::FromRow)]
struct Current {
    organizer_id: i32,
    total_seats: i32,
    available_seats: i32,
    key: String,
    check_ins: i64,
}

#[derive(sqlx::FromRow)]
struct Totals {
    seats_confirmed: i64,
    seats_held: i64,
    revenue_cents: i64,
    #[sqlx(flatten)]
    bookings: StatusCounts,
    tickets: i64,
    void_check_ins: i64,
}

pub async fn stats(
    db: &PgPool,
    cache: &StatsCache,
    event_id: i32,
    caller: i32,
) -> Result<EventStats> {
    let current = sqlx::query_as::<_, Current>(
        "SELECT e.organizer_id, e.total_seats, e.available_seats, \
                concat_ws('/', e.xmin::text, (now() AT TIME ZONE 'UTC')::date::text, \
                          (SELECT string_agg(concat_ws(':', t.id, t.name, t.price_cents, t.total_seats, \
                                                       t.available_seats, t.updated_at), ',' ORDER BY t.id) \
                           FROM ticket_types t WHERE t.event_id = e.id)) AS key, \
                (SELECT count(*) FROM check_ins c WHERE c.event_id = e.id) AS check_ins \
         FROM events e WHERE e.id = $1",
    )
    .bind(event_id)
    .fetch_optional(db)
    .await?
    .ok_or_else(|| event_not_found(event_id))?;
    organized_by(current.organizer_id, caller)?;
    // Read after the key: the aggregates are at least as new as the key they are kept under.
    let aggregates = match cache.get(event_id, &current.key) {
        Some(aggregates) => aggregates,
        None => {
            let aggregates = Arc::new(aggregate(db, event_id).await?);
            cache.put(event_id, current.key, aggregates.clone());
            aggregates
        }
    };
    let totals = aggregates.as_ref().clone();
    Ok(EventStats {
        event_id,
        total_seats: current.total_seats,
        available_seats: current.available_seats,
        seats_confirmed: totals.seats_confirmed,
        seats_held: totals.seats_held,
        revenue_cents: totals.revenue_cents,
        bookings: totals.bookings,
        check_ins: CheckInCounts {
            tickets: totals.tickets,
            checked_in: (current.check_ins - totals.void_check_ins).max(0),
        },
        ticket_types: totals.ticket_types,
        sales_by_day: totals.sales_by_day,
    })
}

/// The aggregates over the event's bookings, by PostgreSQL.
async fn aggregate(db: &PgPool, event_id: i32) -> Result<Aggregates> {
    let totals = sqlx::query_as::<_, Totals>(
        "SELECT COALESCE(SUM(b.seat_count) FILTER (WHERE b.status = 'CONFIRMED'), 0)::bigint AS seats_confirmed, \
                COALESCE(SUM(b.seat_count) FILTER (WHERE b.status = 'PENDING'), 0)::bigint AS seats_held, \
                COALESCE(SUM(b.total_price_cents) FILTER (WHERE b.status = 'CONFIRMED'), 0)::bigint AS revenue_cents, \
                COUNT(*) FILTER (WHERE b.status = 'CONFIRMED') AS \"CONFIRMED\", \
                COUNT(*) FILTER (WHERE b.status = 'PENDING') AS \"PENDING\", \
                COUNT(*) FILTER (WHERE b.status = 'CANCELLED') AS \"CANCELLED\", \
                COUNT(*) FILTER (WHERE b.status = 'EXPIRED') AS \"EXPIRED\", \
                COALESCE(SUM(b.seat_count) FILTER (WHERE b.status = 'CONFIRMED'), 0)::bigint AS tickets, \
                (SELECT count(*) FROM bookings vb JOIN check_ins c ON c.booking_id = vb.id \
                 WHERE vb.event_id = $1 AND vb.status <> 'CONFIRMED') AS void_check_ins \
         FROM bookings b WHERE b.event_id = $1",
    )
    .bind(event_id)
    .fetch_one(db)
    .await?;
    let ticket_types = sqlx::query_as::<_, TypeStats>(
        "SELECT t.id, t.name, t.total_seats, t.available_seats, \
                COALESCE(SUM(b.seat_count) FILTER (WHERE b.status = 'CONFIRMED'), 0)::bigint AS seats_confirmed, \
                COALESCE(SUM(b.total_price_cents) FILTER (WHERE b.status = 'CONFIRMED'), 0)::bigint AS revenue_cents \
         FROM ticket_types t LEFT JOIN bookings b ON b.event_id = t.event_id AND b.ticket_type_id = t.id \
         WHERE t.event_id = $1 GROUP BY t.id ORDER BY t.id",
    )
    .bind(event_id)
    .fetch_all(db)
    .await?;
    // A booking counts on the UTC day it was confirmed (a hold when it was confirmed), and
    // stays counted if cancelled later; a cancellation counts on the day it happened.
    let sales_by_day = sqlx::query_as::<_, DaySales>(
        "WITH moves AS ( \
             SELECT (confirmed_at AT TIME ZONE 'UTC')::date AS day, 1 AS booked, seat_count AS seats, 0 AS cancelled \
             FROM bookings WHERE event_id = $1 AND confirmed_at IS NOT NULL \
             UNION ALL \
             SELECT (updated_at AT TIME ZONE 'UTC')::date, 0, 0, 1 \
             FROM bookings WHERE event_id = $1 AND status = 'CANCELLED') \
         SELECT to_char(day, 'YYYY-MM-DD') AS date, SUM(booked)::bigint AS bookings, \
                SUM(seats)::bigint AS seats, SUM(cancelled)::bigint AS cancellations \
         FROM moves WHERE day > (now() AT TIME ZONE 'UTC')::date - 90 \
         GROUP BY day ORDER BY day",
    )
    .bind(event_id)
    .fetch_all(db)
    .await?;
    Ok(Aggregates {
        seats_confirmed: totals.seats_confirmed,
        seats_held: totals.seats_held,
        revenue_cents: totals.revenue_cents,
        bookings: totals.bookings,
        tickets: totals.tickets,
        void_check_ins: totals.void_check_ins,
        ticket_types,
        sales_by_day,
    })
}

const ATTENDEES: &str = "SELECT b.booking_reference, b.ticket_type_id, b.seat_count, \
        (SELECT count(*) FROM check_ins c WHERE c.booking_id = b.id) AS checked_in, \
        b.created_at, u.id AS user_id, u.firstname, u.lastname, u.email \
    FROM bookings b JOIN users u ON u.id = b.user_id \
    WHERE b.event_id = $1 AND b.status = 'CONFIRMED' \
    ORDER BY b.created_at DESC, b.id DESC";

/// One page of the event's CONFIRMED bookings, newest first.
pub async fn attendees(
    db: &PgPool,
    event_id: i32,
    caller: i32,
    page: Page,
) -> Result<(Vec<AttendeeRow>, PageMeta)> {
    owned(db, event_id, caller).await?;
    let rows = sqlx::query_as::<_, AttendeeRow>(&format!("{ATTENDEES} LIMIT $2 OFFSET $3"))
        .bind(event_id)
        .bind(page.limit)
        .bind(page.offset())
        .fetch_all(db)
        .await?;
    let total: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM bookings WHERE event_id = $1 AND status = 'CONFIRMED'",
    )
    .bind(event_id)
    .fetch_one(db)
    .await?;
    Ok((rows, page.meta(total)))
}

pub const CSV_HEADER: [&str; 9] = [
    "bookingReference",
    "ticketTypeId",
    "seatCount",
    "checkedIn",
    "createdAt",
    "userId",
    "firstname",
    "lastname",
    "email",
];

/// Every attendee as CSV, one row at a time from the database cursor: an event of 100,000
/// bookings never sits in memory whole. A task reads the rows into a small bounded channel, so
/// a slow client slows the cursor down, and a client that leaves ends it.
pub async fn attendees_csv(
    db: PgPool,
    event_id: i32,
    caller: i32,
) -> Result<impl Stream<Item = std::io::Result<Vec<u8>>> + Send> {
    owned(&db, event_id, caller).await?;
    let (lines, received) = tokio::sync::mpsc::channel::<std::io::Result<Vec<u8>>>(64);
    tokio::spawn(async move {
        if lines
            .send(csv_line(&CSV_HEADER.map(String::from)))
            .await
            .is_err()
        {
            return;
        }
        let mut rows = sqlx::query_as::<_, AttendeeRow>(ATTENDEES)
            .bind(event_id)
            .fetch(&db);
        while let Some(row) = rows.next().await {
            let line = match row {
                Ok(row) => csv_line(&[
                    row.booking_reference.to_string(),
                    row.ticket_type_id.to_string(),
                    row.seat_count.to_string(),
                    row.checked_in.to_string(),
                    crate::time::format(&row.created_at),
                    row.user_id.to_string(),
                    row.firstname,
                    row.lastname,
                    row.email,
                ]),
                Err(error) => Err(std::io::Error::other(error.to_string())),
            };
            let failed = line.is_err();
            if lines.send(line).await.is_err() || failed {
                return;
            }
        }
    });
    Ok(futures_util::stream::unfold(
        received,
        |mut received| async move { received.recv().await.map(|line| (line, received)) },
    ))
}

/// One CSV record, quoted by the `csv` crate.
fn csv_line(fields: &[String]) -> std::result::Result<Vec<u8>, std::io::Error> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer
        .write_record(fields)
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    writer
        .into_inner()
        .map_err(|e| std::io::Error::other(e.to_string()))
}
