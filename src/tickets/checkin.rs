//! Check-in at the door: a code is verified against our keys, and the ticket is let in at most
//! once — the primary key of `check_ins` makes a second check-in impossible whatever the
//! interleaving. A scanner that retries with the same nonce gets the first answer again; the
//! answer is stored in the same transaction as the check-in it describes.

use axum::http::StatusCode;
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

use super::keys::{TicketClaims, TicketKeys};
use super::model::{CheckInEnvelope, CheckedIn, Holder};
use crate::bookings::model::BookingStatus;
use crate::db::commit::{begin, write_in_time};
use crate::error::{AppError, Result};
use crate::events::service as events;
use crate::http::deadline::RequestStart;
use crate::time::{self, Timestamp};

/// A check-in's answer: status and JSON body, as sent and as replayed.
pub type Answer = (StatusCode, String);

fn invalid() -> AppError {
    AppError::bad_request("Invalid ticket code")
}

pub async fn check_in(
    db: &PgPool,
    keys: &TicketKeys,
    event_id: i32,
    caller: i32,
    code: &str,
    nonce: Option<&str>,
    start: RequestStart,
) -> Result<Answer> {
    events::owned(
        db,
        event_id,
        caller,
        "You can only check in tickets of your own events",
    )
    .await?;
    // Verified before the transaction: it needs no database state but the keys.
    let claims = keys.verify(db, code).await?;
    let code_sha256 = ring::digest::digest(&ring::digest::SHA256, code.as_bytes());
    let work = async {
        let mut tx = begin(db).await?;
        if let Some(nonce) = nonce {
            if let Some(first) = claim_scan(&mut tx, event_id, nonce, code_sha256.as_ref()).await? {
                return Ok((None, first));
            }
        }
        let answer = match admit(&mut tx, event_id, caller, claims.as_ref()).await {
            Ok(done) => (
                StatusCode::OK,
                serde_json::to_string(&done).map_err(|e| AppError::Internal(e.into()))?,
            ),
            Err(error) => match error.client_body() {
                Some(answer) => answer,
                None => return Err(error),
            },
        };
        if let Some(nonce) = nonce {
            record_scan(&mut tx, event_id, nonce, code_sha256.as_ref(), &answer).await?;
        }
        Ok((Some(tx), answer))
    };
    write_in_time(start, work).await
}

/// Claims the (nonce, code) pair of a scan; returns the stored answer if an earlier scan had
/// it. A concurrent first scan holds the pair until it commits, so this waits for its answer.
async fn claim_scan(
    tx: &mut Transaction<'_, Postgres>,
    event_id: i32,
    nonce: &str,
    code_sha256: &[u8],
) -> Result<Option<Answer>> {
    let claimed = sqlx::query(
        "INSERT INTO check_in_scans (event_id, nonce, code_sha256) VALUES ($1, $2, $3) \
         ON CONFLICT DO NOTHING",
    )
    .bind(event_id)
    .bind(nonce)
    .bind(code_sha256)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if claimed == 1 {
        return Ok(None);
    }
    let (status, body): (Option<i16>, Option<String>) = sqlx::query_as(
        "SELECT status_code, response_body FROM check_in_scans \
         WHERE event_id = $1 AND nonce = $2 AND code_sha256 = $3",
    )
    .bind(event_id)
    .bind(nonce)
    .bind(code_sha256)
    .fetch_one(&mut **tx)
    .await?;
    let status = status
        .and_then(|s| u16::try_from(s).ok())
        .and_then(|s| StatusCode::from_u16(s).ok());
    match (status, body) {
        (Some(status), Some(body)) => Ok(Some((status, body))),
        _ => Err(AppError::Internal(anyhow::anyhow!(
            "a stored scan has no answer"
        ))),
    }
}

async fn record_scan(
    tx: &mut Transaction<'_, Postgres>,
    event_id: i32,
    nonce: &str,
    code_sha256: &[u8],
    (status, body): &Answer,
) -> Result<()> {
    sqlx::query(
        "UPDATE check_in_scans SET status_code = $4, response_body = $5 \
         WHERE event_id = $1 AND nonce = $2 AND code_sha256 = $3",
    )
    .bind(event_id)
    .bind(nonce)
    .bind(code_sha256)
    .bind(i16::try_from(status.as_u16()).unwrap_or(500))
    .bind(body)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The ticket a code names, as check-in reads it.
#[derive(sqlx::FromRow)]
struct Admission {
    booking_id: i32,
    status: BookingStatus,
    seat_count: i32,
    ticket_type_id: i32,
    firstname: String,
    lastname: String,
}

/// The rules of the door, in the contract's order, and the check-in itself.
async fn admit(
    tx: &mut Transaction<'_, Postgres>,
    event_id: i32,
    caller: i32,
    claims: Option<&TicketClaims>,
) -> Result<CheckInEnvelope> {
    let claims = claims.ok_or_else(invalid)?;
    if claims.evt != event_id {
        return Err(AppError::bad_request("Ticket belongs to another event"));
    }
    let reference: Uuid = claims.reference.parse().map_err(|_| invalid())?;
    let ticket = sqlx::query_as::<_, Admission>(
        "SELECT b.id AS booking_id, b.status, b.seat_count, b.ticket_type_id, \
                u.firstname, u.lastname \
         FROM bookings b JOIN users u ON u.id = b.user_id \
         WHERE b.booking_reference = $1 AND b.event_id = $2",
    )
    .bind(reference)
    .bind(event_id)
    .fetch_optional(&mut **tx)
    .await?
    .filter(|t| (1..=t.seat_count).contains(&claims.n) && t.ticket_type_id == claims.tt)
    .ok_or_else(invalid)?;
    match ticket.status {
        BookingStatus::Confirmed => {}
        BookingStatus::Cancelled => {
            return Err(AppError::conflict(
                "Ticket is void: the booking was cancelled",
            ))
        }
        // A hold never had tickets: no code of ours can name it.
        BookingStatus::Pending | BookingStatus::Expired => return Err(invalid()),
    }
    let inserted: Option<Timestamp> = sqlx::query_scalar(
        "INSERT INTO check_ins (booking_id, number, checked_in_by, event_id) \
         VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING RETURNING checked_in_at",
    )
    .bind(ticket.booking_id)
    .bind(claims.n)
    .bind(caller)
    .bind(event_id)
    .fetch_optional(&mut **tx)
    .await?;
    let Some(checked_in_at) = inserted else {
        let first: Timestamp = sqlx::query_scalar(
            "SELECT checked_in_at FROM check_ins WHERE booking_id = $1 AND number = $2",
        )
        .bind(ticket.booking_id)
        .bind(claims.n)
        .fetch_one(&mut **tx)
        .await?;
        return Err(AppError::conflict(format!(
            "Ticket already checked in at {}",
            time::format(&first)
        )));
    };
    Ok(CheckInEnvelope {
        success: true,
        message: "Checked in",
        data: CheckedIn {
            booking_reference: reference,
            number: claims.n,
            ticket_type_id: ticket.ticket_type_id,
            checked_in_at,
            holder: Holder {
                firstname: ticket.firstname,
                lastname: ticket.lastname,
            },
        },
    })
}
