//! Rate limits (governor's GCRA): per client IP on register and login (behind a proxy of
//! `TRUSTED_PROXIES`, the address it forwards), per user on POST /bookings. A refused request gets 429 with `Retry-After` in the contract's body.

use std::hash::Hash;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::auth::TokenUser;
use crate::config::RateLimits;
use crate::error::AppError;
use crate::http::client_ip::client_ip;
use crate::state::AppState;

/// Forgets idle keys every this many checks, so the key maps stay small.
const SWEEP_EVERY: u32 = 4096;

#[derive(Clone)]
pub struct Limits {
    inner: Option<Arc<Limiters>>,
}

struct Limiters {
    auth: Keyed<IpAddr>,
    bookings: Keyed<i32>,
}

struct Keyed<K: Hash + Eq + Clone> {
    limiter: DefaultKeyedRateLimiter<K>,
    checks: AtomicU32,
}

impl<K: Hash + Eq + Clone> Keyed<K> {
    fn per_minute(n: NonZeroU32) -> Self {
        Self {
            limiter: RateLimiter::keyed(Quota::per_minute(n)),
            checks: AtomicU32::new(0),
        }
    }

    fn check(&self, key: &K) -> Result<(), AppError> {
        if self.checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            self.limiter.retain_recent();
        }
        self.limiter.check_key(key).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            // Round up: retrying after a truncated wait would be refused again.
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            AppError::TooManyRequests {
                retry_after_secs: secs.max(1),
            }
        })
    }
}

impl Limits {
    pub fn new(config: &RateLimits) -> Self {
        let inner = config.enabled.then(|| {
            Arc::new(Limiters {
                auth: Keyed::per_minute(config.auth_per_minute),
                bookings: Keyed::per_minute(config.bookings_per_minute),
            })
        });
        Self { inner }
    }

    fn check_auth(&self, ip: IpAddr) -> Result<(), AppError> {
        self.inner.as_ref().map_or(Ok(()), |l| l.auth.check(&ip))
    }

    fn check_booking(&self, user_id: i32) -> Result<(), AppError> {
        self.inner
            .as_ref()
            .map_or(Ok(()), |l| l.bookings.check(&user_id))
    }
}

/// Put first in the register and login handlers: counts the request against its client IP
/// before the body is read or a password hashed.
pub struct AuthRateLimit;

impl FromRequestParts<AppState> for AuthRateLimit {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        // Without connection info (a router used without `serve`) there is no peer to key on.
        if let Some(ConnectInfo(peer)) = parts.extensions.get::<ConnectInfo<SocketAddr>>() {
            let client = client_ip(peer.ip(), &parts.headers, &state.config.trusted_proxies);
            state.limits.check_auth(client)?;
        }
        Ok(Self)
    }
}

/// A caller with a valid token whose booking quota is not used up.
pub struct BookingRateLimited(pub TokenUser);

impl FromRequestParts<AppState> for BookingRateLimited {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let user = TokenUser::from_request_parts(parts, state).await?;
        state.limits.check_booking(user.id)?;
        Ok(Self(user))
    }
}
