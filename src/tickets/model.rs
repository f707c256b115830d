//! Tickets and check-ins as shown, and the bodies of their routes.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;
use validator::{Validate, ValidationErrors};

use crate::http::validation::Rules;
use crate::time::{self, Timestamp};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TicketStatus {
    Valid,
    CheckedIn,
    /// The booking was cancelled.
    Void,
}

/// One seat of a confirmed booking.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Ticket {
    #[schema(example = 1)]
    pub number: i32,
    /// A compact JWS (EdDSA) a scanner verifies offline against /.well-known/jwks.json.
    pub code: String,
    pub status: TicketStatus,
    #[serde(with = "time::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub checked_in_at: Option<Timestamp>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TicketList {
    pub data: Vec<Ticket>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Jwks {
    pub keys: Vec<super::keys::Jwk>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({ "code": "eyJhbGciOiJFZERTQSIsImtpZCI6Ii4uLiJ9.eyJyZWYiOiIuLi4ifQ.sig", "nonce": "scanner-7-000123" }))]
pub struct CheckInRequest {
    /// The ticket's code, as scanned from its QR.
    #[schema(value_type = String)]
    pub code: Option<String>,
    /// 1 to 64 visible ASCII characters: the same code with the same nonce again gets the
    /// first answer again.
    pub nonce: Option<String>,
}

impl Validate for CheckInRequest {
    fn validate(&self) -> Result<(), ValidationErrors> {
        let mut rules = Rules::default();
        rules.text("code", self.code.as_deref(), 4096);
        if let Some(nonce) = &self.nonce {
            if nonce.is_empty() || nonce.len() > 64 || !nonce.bytes().all(|b| b.is_ascii_graphic())
            {
                rules.fail("nonce", "nonce must be 1 to 64 visible ASCII characters");
            }
        }
        rules.finish()
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Holder {
    pub firstname: String,
    pub lastname: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CheckedIn {
    pub booking_reference: Uuid,
    pub number: i32,
    pub ticket_type_id: i32,
    #[serde(with = "time")]
    #[schema(value_type = String, format = DateTime)]
    pub checked_in_at: Timestamp,
    pub holder: Holder,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CheckInEnvelope {
    #[schema(example = true)]
    pub success: bool,
    #[schema(example = "Checked in")]
    pub message: &'static str,
    pub data: CheckedIn,
}

#[derive(Debug, Serialize, sqlx::FromRow, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RevokedTicket {
    pub booking_reference: Uuid,
    pub number: i32,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RevokedTickets {
    pub data: Vec<RevokedTicket>,
}
