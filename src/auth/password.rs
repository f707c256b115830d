//! argon2id password hashing, always on a blocking thread: a hash takes tens of milliseconds
//! of pure CPU and would otherwise stall every request sharing the runtime worker. At most one
//! hash per core runs at once: each needs 19 MiB, and a burst of logins must not grow the
//! server's memory (or starve the booking path of CPU) without bound.

use std::sync::OnceLock;

use anyhow::Context;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use tokio::sync::{Semaphore, SemaphorePermit};

pub async fn hash(password: String) -> anyhow::Result<String> {
    let _permit = hashing_permit().await?;
    tokio::task::spawn_blocking(move || hash_blocking(&password))
        .await
        .context("password hashing task failed")?
}

async fn hashing_permit() -> anyhow::Result<SemaphorePermit<'static>> {
    static HASHING: OnceLock<Semaphore> = OnceLock::new();
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    HASHING
        .get_or_init(|| Semaphore::new(cores))
        .acquire()
        .await
        .context("password hashing is shut down")
}

/// Verifies `password` against `stored`, or, when there is no such user, against a fixed
/// dummy hash, so an unknown email costs the same time as a wrong password.
pub async fn verify(password: String, stored: Option<String>) -> anyhow::Result<bool> {
    let _permit = hashing_permit().await?;
    tokio::task::spawn_blocking(move || {
        let (hash, real) = match &stored {
            Some(hash) => (hash.as_str(), true),
            None => (dummy_hash(), false),
        };
        let parsed = PasswordHash::new(hash)
            .map_err(|e| anyhow::anyhow!("stored password hash is malformed: {e}"))?;
        let matches = Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok();
        Ok(real && matches)
    })
    .await
    .context("password verification task failed")?
}

fn hash_blocking(password: &str) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| anyhow::anyhow!("hashing password: {e}"))
}

fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        hash_blocking("dummy password that no account has")
            .unwrap_or_else(|_| String::from("$argon2id$v=19$m=19456,t=2,p=1$invalid"))
    })
}

/// Computes the dummy hash ahead of the first unknown-email login, so that login is not slower.
pub fn warm_up() {
    let _ = dummy_hash();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_and_differ_per_salt() {
        let a = hash("S3cret!pass".into()).await.unwrap();
        let b = hash("S3cret!pass".into()).await.unwrap();
        assert_ne!(a, b);
        assert!(a.starts_with("$argon2id$"));
        assert!(verify("S3cret!pass".into(), Some(a.clone())).await.unwrap());
        assert!(!verify("wrong".into(), Some(a)).await.unwrap());
        assert!(!verify("dummy password that no account has".into(), None)
            .await
            .unwrap());
    }
}
