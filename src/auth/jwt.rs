//! JWT issuing and verification: HS256 only (the algorithm is pinned, so `alg: none` or an
//! asymmetric confusion is rejected), `exp` required, no leeway.

use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use super::model::Role;

#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    /// The user id as a decimal string (RFC 7519 wants a string).
    pub sub: String,
    pub role: Role,
    pub iat: i64,
    pub exp: i64,
}

pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl: Duration,
}

impl JwtKeys {
    pub fn new(secret: &[u8], ttl: Duration) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        // `sub` is required by `Subject` itself (jsonwebtoken would insist on a string).
        validation.set_required_spec_claims(&["exp"]);
        validation.leeway = 0;
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            ttl,
        }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    pub fn issue(&self, user_id: i32, role: Role) -> anyhow::Result<String> {
        let now = chrono::Utc::now().timestamp();
        let ttl = i64::try_from(self.ttl.as_secs()).unwrap_or(i64::MAX);
        let claims = Claims {
            sub: user_id.to_string(),
            role,
            iat: now,
            exp: now.saturating_add(ttl),
        };
        Ok(jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &self.encoding,
        )?)
    }

    /// The user id of a valid token; `None` for anything malformed, forged, or expired. Only
    /// `sub` is read: the role always comes from the database, so a token is not refused for
    /// how its other claims are spelled.
    pub fn verify(&self, token: &str) -> Option<i32> {
        let claims = jsonwebtoken::decode::<Subject>(token, &self.decoding, &self.validation)
            .ok()?
            .claims;
        match claims.sub {
            SubjectId::Text(text) => text.parse().ok(),
            SubjectId::Number(number) => i32::try_from(number).ok(),
        }
    }
}

#[derive(Deserialize)]
struct Subject {
    sub: SubjectId,
}

/// `sub` as issued (a decimal string), or as a bare number from other token issuers.
#[derive(Deserialize)]
#[serde(untagged)]
enum SubjectId {
    Text(String),
    Number(i64),
}
