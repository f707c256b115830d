//! Check-in at the door: a code is verified against our keys, and the ticket is let in at most
//! once — the primary key of `check_ins` makes a second check-in impossible whatever the
//! interleaving. A scanner that retries with the same nonce gets the first answer again.
//!
//! One scan is one statement, its own transaction: it checks the event's owner, reads the
//! ticket, inserts the check-in and stores the scan's outcome together, so a door scanner
//! waits for one round trip, and the outcome can never be stored without the check-in it
//! describes or the other way round. The answer is rendered from the outcome, the same way the
//! first time and on every replay.

use axum::http::StatusCode;
use sqlx::PgConnection;
use uuid::Uuid;

use super::keys::{TicketClaims, TicketKeys};
use super::model::{CheckInEnvelope, CheckedIn, Holder};
use crate::auth::{invalid_token, Role};
use crate::db::commit::{connection_in_time, sent_in_time};
use crate::error::{AppError, Result};
use crate::events::service::not_found;
use crate::http::deadline::RequestStart;
use crate::time::{self, Timestamp};

/// A check-in's answer: status and JSON body, as sent and as replayed.
pub type Answer = (StatusCode, String);

const INVALID: &str = "INVALID";
const OTHER_EVENT: &str = "OTHER_EVENT";

pub async fn check_in(
    db: &sqlx::PgPool,
    keys: &TicketKeys,
    event_id: i32,
    caller: i32,
    code: &str,
    nonce: Option<&str>,
    start: RequestStart,
) -> Result<Answer> {
    // Verified before the statement: it needs no database state but the keys.
    let claims = keys.verify(db, code).await?;
    let scan = Scan {
        event_id,
        caller,
        nonce,
        code_sha256: ring::digest::digest(&ring::digest::SHA256, code.as_bytes())
            .as_ref()
            .to_vec(),
        ticket: claims.as_ref().and_then(|c| {
            let reference = c.reference.parse::<Uuid>().ok()?;
            (c.evt == event_id).then_some((reference, c))
        }),
        known: match &claims {
            None => Some(INVALID),
            Some(c) if c.evt != event_id => Some(OTHER_EVENT),
            Some(c) if c.reference.parse::<Uuid>().is_err() => Some(INVALID),
            Some(_) => None,
        },
    };
    let mut conn = connection_in_time(db, start).await?;
    sent_in_time(start, async {
        // A scan racing one that committed after this statement's snapshot (the same nonce,
        // or the same ticket) sees its effect but not its row; the next statement sees both.
        for _ in 0..3 {
            let row = scan.run(&mut conn).await?;
            match row.caller_role {
                None => return Err(invalid_token()),
                Some(Role::User) => return Err(AppError::forbidden("Forbidden resource")),
                Some(Role::Organizer) => {}
            }
            match row.organizer_id {
                None => return Err(not_found(event_id)),
                Some(owner) if owner != caller => {
                    return Err(AppError::forbidden(
                        "You can only check in tickets of your own events",
                    ))
                }
                Some(_) => {}
            }
            if let Some(answer) = row.answer(nonce.is_some())? {
                return Ok(answer);
            }
        }
        Err(AppError::Internal(anyhow::anyhow!(
            "a check-in's outcome stayed out of sight after three statements"
        )))
    })
    .await
}

/// One scan, as the statement takes it.
struct Scan<'a> {
    event_id: i32,
    caller: i32,
    nonce: Option<&'a str>,
    code_sha256: Vec<u8>,
    /// The booking reference and claims of a code of this event.
    ticket: Option<(Uuid, &'a TicketClaims)>,
    /// The outcome when the code alone decides it.
    known: Option<&'static str>,
}

/// What the statement saw and did.
#[derive(sqlx::FromRow)]
struct Seen {
    caller_role: Option<Role>,
    organizer_id: Option<i32>,
    /// An earlier scan with this nonce and code was visible.
    replay: bool,
    /// This statement stored the scan (always false without a nonce).
    claimed: bool,
    /// The stored answer of a scan from before outcomes were stored.
    legacy_status: Option<i16>,
    legacy_body: Option<String>,
    outcome: Option<String>,
    booking_reference: Option<Uuid>,
    number: Option<i32>,
    ticket_type_id: Option<i32>,
    firstname: Option<String>,
    lastname: Option<String>,
    checked_in_at: Option<Timestamp>,
}

impl Scan<'_> {
    /// The rules of the door, in the contract's order (the caller's role; the event's owner; the code; the
    /// ticket's status; a first check-in), and the check-in itself. An earlier scan with the
    /// same nonce and code is answered from its stored outcome and changes nothing.
    async fn run(&self, conn: &mut PgConnection) -> Result<Seen> {
        let (reference, number, ticket_type) = match self.ticket {
            Some((reference, c)) => (Some(reference), c.n, c.tt),
            None => (None, 0, 0),
        };
        Ok(sqlx::query_as::<_, Seen>(
            "WITH caller AS ( \
                 SELECT role FROM users WHERE id = $2 \
             ), ev AS ( \
                 SELECT organizer_id FROM events WHERE id = $1 \
             ), prior AS ( \
                 SELECT true AS found, outcome, booking_id, number, status_code, response_body \
                 FROM check_in_scans WHERE event_id = $1 AND nonce = $6 AND code_sha256 = $7 \
             ), ticket AS ( \
                 SELECT id, status FROM bookings \
                 WHERE $8::text IS NULL AND booking_reference = $3 AND event_id = $1 \
                   AND $4 BETWEEN 1 AND seat_count AND ticket_type_id = $5 \
             ), fresh AS ( \
                 SELECT 1 FROM ev, caller \
                 WHERE caller.role = 'ORGANIZER' AND organizer_id = $2 \
                   AND NOT EXISTS (SELECT 1 FROM prior) \
             ), admitted AS ( \
                 INSERT INTO check_ins (booking_id, number, checked_in_by, event_id) \
                 SELECT id, $4, $2, $1 FROM ticket, fresh WHERE status = 'CONFIRMED' \
                 ON CONFLICT DO NOTHING RETURNING checked_in_at \
             ), decided AS ( \
                 SELECT CASE WHEN $8 IS NOT NULL THEN $8 \
                             WHEN t.status IS NULL THEN 'INVALID' \
                             WHEN t.status = 'CANCELLED' THEN 'VOID' \
                             WHEN t.status <> 'CONFIRMED' THEN 'INVALID' \
                             WHEN EXISTS (SELECT 1 FROM admitted) THEN 'CHECKED_IN' \
                             ELSE 'ALREADY_CHECKED_IN' END AS outcome, \
                        t.id AS booking_id \
                 FROM (SELECT) one LEFT JOIN ticket t ON true \
             ), scan AS ( \
                 INSERT INTO check_in_scans (event_id, nonce, code_sha256, outcome, booking_id, number) \
                 SELECT $1, $6, $7, d.outcome, d.booking_id, $4 FROM decided d, fresh \
                 WHERE $6 IS NOT NULL \
                 ON CONFLICT DO NOTHING RETURNING 1 \
             ), shown AS ( \
                 SELECT CASE WHEN p.found IS NULL THEN d.outcome ELSE p.outcome END AS outcome, \
                        CASE WHEN p.found IS NULL THEN d.booking_id ELSE p.booking_id END AS booking_id, \
                        CASE WHEN p.found IS NULL THEN $4 ELSE p.number END AS number, \
                        p.status_code, p.response_body, p.found IS NOT NULL AS replay \
                 FROM decided d LEFT JOIN prior p ON true \
             ) \
             SELECT caller.role AS caller_role, ev.organizer_id, s.replay, EXISTS (SELECT 1 FROM scan) AS claimed, \
                    s.status_code AS legacy_status, s.response_body AS legacy_body, s.outcome, \
                    b.booking_reference, s.number, b.ticket_type_id, u.firstname, u.lastname, \
                    COALESCE((SELECT checked_in_at FROM admitted), c.checked_in_at) AS checked_in_at \
             FROM shown s \
             LEFT JOIN caller ON true \
             LEFT JOIN ev ON true \
             LEFT JOIN bookings b ON b.id = s.booking_id \
             LEFT JOIN users u ON u.id = b.user_id \
             LEFT JOIN check_ins c ON c.booking_id = s.booking_id AND c.number = s.number",
        )
        .bind(self.event_id)
        .bind(self.caller)
        .bind(reference)
        .bind(number)
        .bind(ticket_type)
        .bind(self.nonce)
        .bind(&self.code_sha256)
        .bind(self.known)
        .fetch_one(conn)
        .await?)
    }
}

impl Seen {
    /// The scan's answer, or `None` when what decides it is not in sight yet: the same nonce's
    /// first scan, or the ticket's first check-in, committed after this statement began.
    fn answer(self, with_nonce: bool) -> Result<Option<Answer>> {
        if self.replay {
            if let (Some(status), Some(body)) = (self.legacy_status, self.legacy_body.clone()) {
                let status = u16::try_from(status)
                    .ok()
                    .and_then(|s| StatusCode::from_u16(s).ok())
                    .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                return Ok(Some((status, body)));
            }
        } else if with_nonce && !self.claimed {
            // A first scan with the same nonce and code committed after this statement began:
            // its answer is the one to give.
            return Ok(None);
        }
        let outcome = self.outcome.as_deref().unwrap_or(INVALID);
        let error = match outcome {
            "CHECKED_IN" => return self.checked_in().map(Some),
            "ALREADY_CHECKED_IN" => match self.checked_in_at {
                Some(first) => AppError::conflict(format!(
                    "Ticket already checked in at {}",
                    time::format(&first)
                )),
                None => return Ok(None),
            },
            "VOID" => AppError::conflict("Ticket is void: the booking was cancelled"),
            OTHER_EVENT => AppError::bad_request("Ticket belongs to another event"),
            _ => AppError::bad_request("Invalid ticket code"),
        };
        Ok(Some(error.client_body().ok_or(error)?))
    }

    fn checked_in(self) -> Result<Answer> {
        let missing = || AppError::Internal(anyhow::anyhow!("a checked-in ticket without its row"));
        let body = CheckInEnvelope {
            success: true,
            message: "Checked in",
            data: CheckedIn {
                booking_reference: self.booking_reference.ok_or_else(missing)?,
                number: self.number.ok_or_else(missing)?,
                ticket_type_id: self.ticket_type_id.ok_or_else(missing)?,
                checked_in_at: self.checked_in_at.ok_or_else(missing)?,
                holder: Holder {
                    firstname: self.firstname.unwrap_or_default(),
                    lastname: self.lastname.unwrap_or_default(),
                },
            },
        };
        let body = serde_json::to_string(&body).map_err(|e| AppError::Internal(e.into()))?;
        Ok((StatusCode::OK, body))
    }
}
