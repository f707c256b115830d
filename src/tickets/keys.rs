//! The Ed25519 keys that sign ticket codes, and the codes themselves: a compact JWS (EdDSA)
//! over `{ ref, n, evt, tt, iat }` with the key's `kid` in the header. Ed25519 signatures are
//! deterministic, so the same ticket always has the same code.
//!
//! The signing key is `TICKET_SIGNING_KEY` (PKCS#8 PEM) when set; otherwise one generated the
//! first time any instance needs it and kept in the database (`ticket_signing_keys`), so every
//! instance and every restart signs with it. The private key never reaches a log line or a file.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use ring::signature::{Ed25519KeyPair, KeyPair};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use tokio::sync::OnceCell;

use crate::config::Secret;
use crate::error::{AppError, Result};

/// What a ticket code says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketClaims {
    #[serde(rename = "ref")]
    pub reference: String,
    pub n: i32,
    pub evt: i32,
    pub tt: i32,
    pub iat: i64,
}

/// A public key as the JWKS shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Jwk {
    #[schema(example = "OKP")]
    pub kty: &'static str,
    #[schema(example = "Ed25519")]
    pub crv: &'static str,
    /// The public key, base64url.
    pub x: String,
    /// RFC 7638 thumbprint of the key.
    pub kid: String,
    #[schema(example = "EdDSA")]
    pub alg: &'static str,
    #[schema(example = "sig")]
    #[serde(rename = "use")]
    pub use_: &'static str,
}

struct Verifier {
    jwk: Jwk,
    key: DecodingKey,
}

struct Loaded {
    kid: String,
    signer: EncodingKey,
    verifiers: Vec<Verifier>,
}

/// The keys, loaded on first use (the database may not be reachable at start-up).
pub struct TicketKeys {
    configured: Option<Secret>,
    loaded: OnceCell<Loaded>,
}

impl TicketKeys {
    pub fn new(configured: Option<Secret>) -> Self {
        Self {
            configured,
            loaded: OnceCell::new(),
        }
    }

    async fn loaded(&self, db: &PgPool) -> Result<&Loaded> {
        self.loaded
            .get_or_try_init(|| load(db, self.configured.as_ref()))
            .await
    }

    /// The code of one ticket.
    pub async fn sign(&self, db: &PgPool, claims: &TicketClaims) -> Result<String> {
        let keys = self.loaded(db).await?;
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(keys.kid.clone());
        header.typ = None;
        jsonwebtoken::encode(&header, claims, &keys.signer)
            .map_err(|e| AppError::Internal(anyhow::anyhow!("signing a ticket code: {e}")))
    }

    /// The claims of a code signed by one of our keys; `None` for anything else.
    pub async fn verify(&self, db: &PgPool, code: &str) -> Result<Option<TicketClaims>> {
        let keys = self.loaded(db).await?;
        let Ok(header) = jsonwebtoken::decode_header(code) else {
            return Ok(None);
        };
        let Some(verifier) = keys
            .verifiers
            .iter()
            .find(|v| Some(&v.jwk.kid) == header.kid.as_ref())
        else {
            return Ok(None);
        };
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.validate_exp = false;
        validation.required_spec_claims.clear();
        Ok(
            jsonwebtoken::decode::<TicketClaims>(code, &verifier.key, &validation)
                .ok()
                .map(|data| data.claims),
        )
    }

    /// Every key that signed a code still valid.
    pub async fn jwks(&self, db: &PgPool) -> Result<Vec<Jwk>> {
        Ok(self
            .loaded(db)
            .await?
            .verifiers
            .iter()
            .map(|v| v.jwk.clone())
            .collect())
    }
}

/// An Ed25519 key pair from PKCS#8 DER: (kid, signer, public JWK and verifier).
fn from_pkcs8(pkcs8: &[u8]) -> Result<(EncodingKey, Verifier)> {
    let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(pkcs8)
        .map_err(|e| AppError::Internal(anyhow::anyhow!("not an Ed25519 PKCS#8 key: {e}")))?;
    let verifier = verifier(pair.public_key().as_ref())?;
    Ok((EncodingKey::from_ed_der(pkcs8), verifier))
}

fn verifier(public_key: &[u8]) -> Result<Verifier> {
    let x = URL_SAFE_NO_PAD.encode(public_key);
    // RFC 7638: the SHA-256 of the required members, in lexicographic order, no spaces.
    let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
    let kid = URL_SAFE_NO_PAD.encode(ring::digest::digest(
        &ring::digest::SHA256,
        canonical.as_bytes(),
    ));
    let key = DecodingKey::from_ed_components(&x)
        .map_err(|e| AppError::Internal(anyhow::anyhow!("an Ed25519 public key: {e}")))?;
    Ok(Verifier {
        jwk: Jwk {
            kty: "OKP",
            crv: "Ed25519",
            x,
            kid,
            alg: "EdDSA",
            use_: "sig",
        },
        key,
    })
}

/// The configured key (if any) signs; every stored key still verifies. Without a configured
/// key, the stored default key is created once, by whichever instance gets there first.
async fn load(db: &PgPool, configured: Option<&Secret>) -> Result<Loaded> {
    let mut verifiers = Vec::new();
    let mut signer = None;
    if let Some(pem) = configured {
        // A PEM kept on one line of a .env file has its line breaks written as "\n".
        let text = pem.expose().replace("\\n", "\n");
        let der = pem::parse(text.as_bytes())
            .map_err(|_| AppError::Internal(anyhow::anyhow!("TICKET_SIGNING_KEY is not a PEM")))?;
        let (encoding, verifier) = from_pkcs8(der.contents())?;
        signer = Some((verifier.jwk.kid.clone(), encoding));
        verifiers.push(verifier);
    } else {
        ensure_default_key(db).await?;
    }
    let stored: Vec<(Vec<u8>, bool)> =
        sqlx::query_as("SELECT pkcs8, is_default FROM ticket_signing_keys ORDER BY created_at")
            .fetch_all(db)
            .await?;
    for (pkcs8, is_default) in stored {
        let (encoding, verifier) = from_pkcs8(&pkcs8)?;
        if verifiers
            .iter()
            .any(|v: &Verifier| v.jwk.kid == verifier.jwk.kid)
        {
            continue;
        }
        if signer.is_none() && is_default {
            signer = Some((verifier.jwk.kid.clone(), encoding));
        }
        verifiers.push(verifier);
    }
    let (kid, signer) =
        signer.ok_or_else(|| AppError::Internal(anyhow::anyhow!("no ticket signing key")))?;
    Ok(Loaded {
        kid,
        signer,
        verifiers,
    })
}

async fn ensure_default_key(db: &PgPool) -> Result<()> {
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM ticket_signing_keys WHERE is_default)")
            .fetch_one(db)
            .await?;
    if exists {
        return Ok(());
    }
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng)
        .map_err(|e| AppError::Internal(anyhow::anyhow!("generating a signing key: {e}")))?;
    let (_, verifier) = from_pkcs8(pkcs8.as_ref())?;
    let public = URL_SAFE_NO_PAD
        .decode(&verifier.jwk.x)
        .map_err(|e| AppError::Internal(e.into()))?;
    // Another instance may have been first: its key wins, ours is dropped.
    let inserted = sqlx::query(
        "INSERT INTO ticket_signing_keys (kid, pkcs8, public_key, is_default) \
         VALUES ($1, $2, $3, true) ON CONFLICT DO NOTHING",
    )
    .bind(&verifier.jwk.kid)
    .bind(pkcs8.as_ref())
    .bind(public)
    .execute(db)
    .await?
    .rows_affected();
    if inserted == 1 {
        tracing::info!(kid = %verifier.jwk.kid, "generated the ticket signing key");
    }
    Ok(())
}
