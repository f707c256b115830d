//! Check-in at the door: a code is verified against our keys, and the ticket is let in at most
//! once — the primary key of `check_ins` makes a second check-in impossible whatever the
//! interleaving. A scanner that retries with the same nonce gets the first answer again.
//!
//! A scan is decided by one statement, its own transaction, which checks the caller and the
//! event's owner, reads the ticket, inserts the check-in and stores the scan's outcome
//! together: the outcome can never be stored without the check-in it describes or the other
//! way round. Scans waiting at the same time share that statement (see `door`). The answer is
//! rendered from the outcome, the same way the first time and on every replay.

use axum::http::StatusCode;
use sqlx::PgConnection;
use uuid::Uuid;

use super::keys::TicketClaims;
use super::model::{CheckInEnvelope, CheckedIn, Holder};
use crate::auth::{invalid_token, AuthUser, Role};
use crate::error::{AppError, Result};
use crate::events::service::not_found;
use crate::http::deadline::RequestStart;
use crate::state::AppState;
use crate::time::{self, Timestamp};

/// A check-in's answer: status and JSON body, as sent and as replayed.
pub type Answer = (StatusCode, String);

const INVALID: &str = "INVALID";
const OTHER_EVENT: &str = "OTHER_EVENT";

pub async fn check_in(
    state: &AppState,
    event_id: i32,
    caller: i32,
    code: &str,
    nonce: Option<&str>,
    start: RequestStart,
) -> Result<Answer> {
    // Verified before the statement: it needs no database state but the keys.
    let claims = state.tickets.verify(&state.db, code).await?;
    state
        .door
        .scan(Scan::new(event_id, caller, code, nonce, claims), start)
        .await
}

/// One scan, as the statement takes it.
pub struct Scan {
    event_id: i32,
    caller: i32,
    nonce: Option<String>,
    code_sha256: Vec<u8>,
    /// The booking reference, number and type of a well-formed code of this event.
    ticket: Option<(Uuid, i32, i32)>,
    /// The outcome when the code alone decides it.
    known: Option<&'static str>,
}

impl Scan {
    fn new(
        event_id: i32,
        caller: i32,
        code: &str,
        nonce: Option<&str>,
        claims: Option<TicketClaims>,
    ) -> Self {
        let (ticket, known) = match claims {
            None => (None, Some(INVALID)),
            Some(c) if c.evt != event_id => (None, Some(OTHER_EVENT)),
            Some(c) => match c.reference.parse::<Uuid>() {
                Ok(reference) => (Some((reference, c.n, c.tt)), None),
                Err(_) => (None, Some(INVALID)),
            },
        };
        Self {
            event_id,
            caller,
            nonce: nonce.map(str::to_owned),
            code_sha256: ring::digest::digest(&ring::digest::SHA256, code.as_bytes())
                .as_ref()
                .to_vec(),
            ticket,
            known,
        }
    }

    /// What makes two scans of one statement collide: the same ticket, or the same stored
    /// scan. A statement takes at most one scan per key.
    pub fn keys(&self) -> [Option<Vec<u8>>; 2] {
        let ticket = self.ticket.map(|(reference, n, _)| {
            let mut key = reference.as_bytes().to_vec();
            key.extend_from_slice(&n.to_be_bytes());
            key
        });
        let scan = self.nonce.as_ref().map(|nonce| {
            let mut key = self.event_id.to_be_bytes().to_vec();
            key.extend_from_slice(&self.code_sha256);
            key.extend_from_slice(nonce.as_bytes());
            key
        });
        [ticket, scan]
    }
}

/// The rules of the door for several scans at once, each on its own (the caller's role; the
/// event's owner; the code; the ticket's status; a first check-in, in the contract's order),
/// and the check-ins themselves. A scan whose nonce and code were stored before is answered
/// from that outcome and changes nothing. The scans must not collide (`Scan::keys`); the
/// result has one row per scan, in order.
pub async fn run(conn: &mut PgConnection, scans: &[&Scan]) -> Result<Vec<Seen>> {
    let column = |f: &dyn Fn(&Scan) -> i32| scans.iter().map(|s| f(s)).collect::<Vec<_>>();
    let ticket = |s: &Scan| s.ticket.unwrap_or((Uuid::nil(), 0, 0));
    Ok(sqlx::query_as::<_, Seen>(
        "WITH scan AS ( \
             SELECT * FROM unnest($1::int[], $2::int[], $3::uuid[], $4::int[], $5::int[], \
                                  $6::text[], $7::bytea[], $8::text[]) WITH ORDINALITY \
                 AS s(event_id, caller, reference, number, ticket_type, nonce, code_sha256, \
                      known, i) \
         ), looked AS ( \
             SELECT s.*, u.role AS caller_role, e.organizer_id, \
                    p.event_id IS NOT NULL AS replay, p.outcome AS prior_outcome, \
                    p.booking_id AS prior_booking_id, p.number AS prior_number, \
                    p.status_code AS legacy_status, p.response_body AS legacy_body, \
                    t.id AS booking_id, t.status, \
                    (u.role = 'ORGANIZER' AND e.organizer_id = s.caller \
                     AND p.event_id IS NULL) AS fresh \
             FROM scan s \
             LEFT JOIN users u ON u.id = s.caller \
             LEFT JOIN events e ON e.id = s.event_id \
             LEFT JOIN check_in_scans p ON p.event_id = s.event_id AND p.nonce = s.nonce \
                                       AND p.code_sha256 = s.code_sha256 \
             LEFT JOIN bookings t ON s.known IS NULL AND t.booking_reference = s.reference \
                                 AND t.event_id = s.event_id AND t.ticket_type_id = s.ticket_type \
                                 AND s.number BETWEEN 1 AND t.seat_count \
         ), admitted AS ( \
             INSERT INTO check_ins (booking_id, number, checked_in_by, event_id) \
             SELECT booking_id, number, caller, event_id FROM looked \
             WHERE fresh AND status = 'CONFIRMED' ORDER BY booking_id, number \
             ON CONFLICT DO NOTHING RETURNING booking_id, number, checked_in_at \
         ), decided AS ( \
             SELECT l.*, a.checked_in_at AS admitted_at, \
                    CASE WHEN l.known IS NOT NULL THEN l.known \
                         WHEN l.status IS NULL THEN 'INVALID' \
                         WHEN l.status = 'CANCELLED' THEN 'VOID' \
                         WHEN l.status <> 'CONFIRMED' THEN 'INVALID' \
                         WHEN a.booking_id IS NOT NULL THEN 'CHECKED_IN' \
                         ELSE 'ALREADY_CHECKED_IN' END AS outcome \
             FROM looked l \
             LEFT JOIN admitted a ON a.booking_id = l.booking_id AND a.number = l.number \
         ), stored AS ( \
             INSERT INTO check_in_scans (event_id, nonce, code_sha256, outcome, booking_id, number) \
             SELECT event_id, nonce, code_sha256, outcome, booking_id, number FROM decided \
             WHERE fresh AND nonce IS NOT NULL ORDER BY event_id, nonce, code_sha256 \
             ON CONFLICT DO NOTHING RETURNING event_id, nonce, code_sha256 \
         ), shown AS ( \
             SELECT d.i, d.caller_role, d.organizer_id, d.replay, d.legacy_status, \
                    d.legacy_body, d.admitted_at, st.event_id IS NOT NULL AS claimed, \
                    CASE WHEN d.replay THEN d.prior_outcome ELSE d.outcome END AS outcome, \
                    CASE WHEN d.replay THEN d.prior_booking_id ELSE d.booking_id END \
                        AS booking_id, \
                    CASE WHEN d.replay THEN d.prior_number ELSE d.number END AS number \
             FROM decided d \
             LEFT JOIN stored st ON st.event_id = d.event_id AND st.nonce = d.nonce \
                                AND st.code_sha256 = d.code_sha256 \
         ) \
         SELECT s.caller_role, s.organizer_id, s.replay, s.claimed, \
                s.legacy_status, s.legacy_body, s.outcome, b.booking_reference, s.number, \
                b.ticket_type_id, u.firstname, u.lastname, \
                COALESCE(s.admitted_at, c.checked_in_at) AS checked_in_at \
         FROM shown s \
         LEFT JOIN bookings b ON b.id = s.booking_id \
         LEFT JOIN users u ON u.id = b.user_id \
         LEFT JOIN check_ins c ON c.booking_id = s.booking_id AND c.number = s.number \
         ORDER BY s.i",
    )
    .bind(column(&|s| s.event_id))
    .bind(column(&|s| s.caller))
    .bind(scans.iter().map(|s| s.ticket.map(|t| t.0)).collect::<Vec<_>>())
    .bind(column(&|s| ticket(s).1))
    .bind(column(&|s| ticket(s).2))
    .bind(scans.iter().map(|s| s.nonce.clone()).collect::<Vec<_>>())
    .bind(scans.iter().map(|s| s.code_sha256.clone()).collect::<Vec<_>>())
    .bind(scans.iter().map(|s| s.known).collect::<Vec<_>>())
    .fetch_all(conn)
    .await?)
}

/// What the statement saw and did for one scan.
#[derive(sqlx::FromRow)]
pub struct Seen {
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

impl Seen {
    /// The scan's answer, or `None` when what decides it is not in sight yet: the same nonce's
    /// first scan, or the ticket's first check-in, committed after this statement began.
    pub fn answer(self, scan: &Scan) -> Result<Option<Answer>> {
        let role = self.caller_role.ok_or_else(invalid_token)?;
        AuthUser {
            id: scan.caller,
            role,
        }
        .require(Role::Organizer)?;
        match self.organizer_id {
            None => return Err(not_found(scan.event_id)),
            Some(owner) if owner != scan.caller => {
                return Err(AppError::forbidden(
                    "You can only check in tickets of your own events",
                ))
            }
            Some(_) => {}
        }
        if self.replay {
            if let (Some(status), Some(body)) = (self.legacy_status, self.legacy_body.clone()) {
                let status = u16::try_from(status)
                    .ok()
                    .and_then(|s| StatusCode::from_u16(s).ok())
                    .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                return Ok(Some((status, body)));
            }
        } else if scan.nonce.is_some() && !self.claimed {
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
