//! Configuration, read once at start-up from the environment (and `.env`).

use std::fmt;
use std::num::NonZeroU32;
use std::time::Duration;

use anyhow::{bail, Context};

/// A secret whose `Debug` never prints it, so a logged `Config` cannot leak it.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

#[derive(Clone, Debug)]
pub struct Config {
    /// `None` means "start the embedded local PostgreSQL".
    pub database_url: Option<Secret>,
    /// A streaming replica for public reads (`DATABASE_READ_URL`); `None`: the primary only.
    pub database_read_url: Option<Secret>,
    pub db_max_connections: u32,
    pub db_acquire_timeout: Duration,
    pub jwt_secret: Secret,
    /// True when no JWT_SECRET was configured and a random one is in use.
    pub jwt_secret_generated: bool,
    pub jwt_expires_in: Duration,
    pub port: u16,
    pub production: bool,
    pub rate_limits: RateLimits,
    /// Proxies whose `X-Forwarded-For` names the client (`TRUSTED_PROXIES`: addresses or
    /// networks, comma-separated); empty: the TCP peer is the client.
    pub trusted_proxies: Vec<crate::http::client_ip::Network>,
    /// Origins allowed by CORS; `None` allows any origin.
    pub cors_origins: Option<Vec<String>>,
    /// PKCS#8 PEM of the Ed25519 key that signs ticket codes; `None`: one kept in the database.
    pub ticket_signing_key: Option<Secret>,
    /// Open live streams per instance before 503 (`LIVE_MAX_STREAMS`, default 10,000).
    pub live_max_streams: usize,
    /// How long a hold keeps its seats (`HOLD_SECONDS`, 1 to 86,400; default 600).
    pub hold_seconds: u32,
    /// Group concurrent bookings of one event (`BOOKING_LANES`, default on); off, every
    /// booking runs in its own transaction, as the per-request server of API.md.
    pub booking_lanes: bool,
    pub notify: NotifyConfig,
    /// Record and serve Prometheus metrics (`METRICS_ENABLED`, default on).
    pub metrics_enabled: bool,
}

/// Webhook and email delivery (API.md, "Notifications").
#[derive(Clone, Debug)]
pub struct NotifyConfig {
    /// Seconds to wait before each retry (`NOTIFY_RETRY_SCHEDULE`); FAILED after the last.
    pub retry_schedule: Vec<u64>,
    /// Webhooks may call loopback, private and link-local addresses (`WEBHOOK_ALLOW_PRIVATE`).
    pub allow_private: bool,
    /// `smtp://host:port` or `smtps://user:password@host:port`; `None`: no emails.
    pub smtp_url: Option<Secret>,
    pub mail_from: String,
    /// This instance delivers (`NOTIFY_WORKER`, default on); off, it only writes the outbox.
    pub worker: bool,
}

pub const DEFAULT_RETRY_SCHEDULE: &str = "5,30,120,900,3600,14400,43200";

#[derive(Clone, Debug)]
pub struct RateLimits {
    pub enabled: bool,
    pub auth_per_minute: NonZeroU32,
    pub bookings_per_minute: NonZeroU32,
}

impl Config {
    /// Reads the process environment, after loading `.env` when one exists.
    pub fn from_env() -> anyhow::Result<Self> {
        let _ = dotenvy::dotenv();
        Self::from_lookup(|key| std::env::var(key).ok().filter(|v| !v.trim().is_empty()))
    }

    /// Builds the config from any key lookup; kept separate so it can be tested without
    /// touching the process environment.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        let production = get("APP_ENV").is_some_and(|v| v.eq_ignore_ascii_case("production"));
        let (jwt_secret, jwt_secret_generated) = match get("JWT_SECRET") {
            Some(secret) if production => match weak_secret(&secret) {
                Some(reason) => bail!(
                    "JWT_SECRET {reason}: with APP_ENV=production set a random secret of 32+ \
                     bytes, e.g. from `openssl rand -base64 48`"
                ),
                None => (Secret::new(secret), false),
            },
            Some(secret) => (Secret::new(secret), false),
            None if production => bail!("JWT_SECRET is required when APP_ENV=production"),
            None => (Secret::new(random_token(64)), true),
        };
        let jwt_expires_in = match get("JWT_EXPIRES_IN") {
            Some(raw) => parse_duration(&raw).with_context(|| {
                format!("JWT_EXPIRES_IN={raw:?} is not a duration like 3600, 15m, 12h or 1d")
            })?,
            None => Duration::from_secs(86_400),
        };
        Ok(Self {
            database_url: get("DATABASE_URL").map(Secret::new),
            database_read_url: match get("DATABASE_READ_URL") {
                Some(url) if url.parse::<sqlx::postgres::PgConnectOptions>().is_err() => {
                    bail!("DATABASE_READ_URL is not a valid PostgreSQL URL")
                }
                url => url.map(Secret::new),
            },
            db_max_connections: parse_or("DB_MAX_CONNECTIONS", &get, 16)?,
            db_acquire_timeout: Duration::from_secs(parse_or("DB_ACQUIRE_TIMEOUT_SECS", &get, 3)?),
            jwt_secret,
            jwt_secret_generated,
            jwt_expires_in,
            port: parse_or("PORT", &get, 3000)?,
            production,
            rate_limits: RateLimits {
                enabled: parse_switch("RATE_LIMIT_ENABLED", &get, true)?,
                auth_per_minute: parse_or(
                    "RATE_LIMIT_AUTH_PER_MINUTE",
                    &get,
                    NonZeroU32::MIN.saturating_add(19),
                )?,
                bookings_per_minute: parse_or(
                    "RATE_LIMIT_BOOKINGS_PER_MINUTE",
                    &get,
                    NonZeroU32::MIN.saturating_add(59),
                )?,
            },
            booking_lanes: parse_switch("BOOKING_LANES", &get, true)?,
            metrics_enabled: parse_switch("METRICS_ENABLED", &get, true)?,
            trusted_proxies: match get("TRUSTED_PROXIES") {
                None => Vec::new(),
                Some(raw) => raw
                    .split(',')
                    .filter(|part| !part.trim().is_empty())
                    .map(|part| {
                        crate::http::client_ip::Network::parse(part).with_context(|| {
                            format!("TRUSTED_PROXIES: {part:?} is not an address or a network")
                        })
                    })
                    .collect::<anyhow::Result<_>>()?,
            },
            notify: NotifyConfig {
                retry_schedule: parse_schedule(
                    get("NOTIFY_RETRY_SCHEDULE")
                        .as_deref()
                        .unwrap_or(DEFAULT_RETRY_SCHEDULE),
                )?,
                allow_private: parse_switch("WEBHOOK_ALLOW_PRIVATE", &get, false)?,
                smtp_url: get("SMTP_URL").map(Secret::new),
                worker: parse_switch("NOTIFY_WORKER", &get, true)?,
                mail_from: get("MAIL_FROM")
                    .unwrap_or_else(|| "Event Booking <no-reply@localhost>".to_string()),
            },
            ticket_signing_key: get("TICKET_SIGNING_KEY").map(Secret::new),
            live_max_streams: parse_or("LIVE_MAX_STREAMS", &get, 10_000)?,
            hold_seconds: match parse_or("HOLD_SECONDS", &get, 600u32)? {
                seconds @ 1..=86_400 => seconds,
                _ => bail!("HOLD_SECONDS must be from 1 to 86400"),
            },
            cors_origins: get("CORS_ORIGINS").filter(|v| v.trim() != "*").map(|v| {
                v.split(',')
                    .map(|o| o.trim().to_string())
                    .filter(|o| !o.is_empty())
                    .collect()
            }),
        })
    }
}

fn parse_or<T: std::str::FromStr>(
    key: &str,
    get: &impl Fn(&str) -> Option<String>,
    default: T,
) -> anyhow::Result<T> {
    match get(key) {
        Some(raw) => raw
            .trim()
            .parse()
            .map_err(|_| anyhow::anyhow!("{key}={raw:?} is not a valid value")),
        None => Ok(default),
    }
}

/// `NOTIFY_RETRY_SCHEDULE`: comma-separated seconds, each from 0 to 30 days.
fn parse_schedule(raw: &str) -> anyhow::Result<Vec<u64>> {
    let delays: Option<Vec<u64>> = raw
        .split(',')
        .map(|part| {
            part.trim()
                .parse::<u64>()
                .ok()
                .filter(|s| *s <= 30 * 86_400)
        })
        .collect();
    delays.with_context(|| {
        format!("NOTIFY_RETRY_SCHEDULE={raw:?} is not comma-separated seconds like 5,30,120")
    })
}

/// An on/off setting: true/false, 1/0, yes/no, on/off, in any case.
fn parse_switch(
    key: &str,
    get: &impl Fn(&str) -> Option<String>,
    default: bool,
) -> anyhow::Result<bool> {
    let Some(raw) = get(key) else {
        return Ok(default);
    };
    match raw.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => bail!("{key}={raw:?} is not true or false"),
    }
}

/// Parses `3600`, `45s`, `15m`, `12h` or `1d` (the forms the original's `expiresIn` accepted).
pub fn parse_duration(raw: &str) -> Option<Duration> {
    let raw = raw.trim();
    let split = raw.find(|c: char| !c.is_ascii_digit()).unwrap_or(raw.len());
    let (digits, unit) = raw.split_at(split);
    let value: u64 = digits.parse().ok()?;
    let factor = match unit.trim() {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ => return None,
    };
    let seconds = value.checked_mul(factor)?;
    (seconds > 0).then(|| Duration::from_secs(seconds))
}

/// Fragments of the placeholders our examples carry (`.env.example`, docker-compose.yml) and of
/// the usual ones; a secret containing one is public knowledge.
const PLACEHOLDERS: [&str; 8] = [
    "change-me",
    "changeme",
    "change_me",
    "replace-me",
    "placeholder",
    "example",
    "your-secret",
    "your_secret",
];

/// Why `secret` cannot sign tokens in production, if it cannot: too short, a known placeholder,
/// or too little entropy (estimated from its own character frequencies, so a 32-byte string
/// of a few repeated characters fails while `openssl rand -hex 32` passes easily).
pub fn weak_secret(secret: &str) -> Option<&'static str> {
    if secret.len() < 32 {
        return Some("must be at least 32 bytes");
    }
    let lower = secret.to_ascii_lowercase();
    if PLACEHOLDERS.iter().any(|p| lower.contains(p)) {
        return Some("is a placeholder from an example");
    }
    let mut counts = std::collections::HashMap::new();
    for byte in secret.bytes() {
        *counts.entry(byte).or_insert(0usize) += 1;
    }
    let len = secret.len() as f64;
    let bits_per_char: f64 = counts
        .values()
        .map(|&n| {
            let p = n as f64 / len;
            -p * p.log2()
        })
        .sum();
    if counts.len() < 12 || bits_per_char * len < 112.0 {
        return Some("has too little entropy");
    }
    None
}

/// A random alphanumeric string, for generated secrets and passwords.
pub fn random_token(len: usize) -> String {
    use rand::distributions::{Alphanumeric, DistString};
    Alphanumeric.sample_string(&mut rand::thread_rng(), len)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |key| pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())
    }

    #[test]
    fn retry_schedules_are_seconds() {
        assert_eq!(parse_schedule("5, 30,120").unwrap(), vec![5, 30, 120]);
        assert_eq!(parse_schedule("0").unwrap(), vec![0]);
        assert!(parse_schedule("5,,30").is_err());
        assert!(parse_schedule("5s").is_err());
        let config = Config::from_lookup(lookup(&[])).unwrap();
        assert_eq!(config.notify.retry_schedule.len(), 7);
        assert!(!config.notify.allow_private);
    }

    #[test]
    fn durations_accept_seconds_and_units() {
        assert_eq!(parse_duration("3600"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_duration("15m"), Some(Duration::from_secs(900)));
        assert_eq!(parse_duration("12h"), Some(Duration::from_secs(43_200)));
        assert_eq!(parse_duration("1d"), Some(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("1w"), None);
        assert_eq!(parse_duration("0"), None);
        assert_eq!(parse_duration(""), None);
    }

    #[test]
    fn defaults_generate_a_secret_and_one_day_tokens() {
        let config = Config::from_lookup(lookup(&[])).expect("defaults are valid");
        assert!(config.jwt_secret_generated);
        assert_eq!(config.jwt_expires_in, Duration::from_secs(86_400));
        assert_eq!(config.port, 3000);
        assert!(config.database_url.is_none());
    }

    #[test]
    fn rate_limits_default_on_and_can_be_switched_off() {
        let config = Config::from_lookup(lookup(&[])).unwrap();
        assert!(config.rate_limits.enabled);
        assert_eq!(config.rate_limits.auth_per_minute.get(), 20);
        assert_eq!(config.rate_limits.bookings_per_minute.get(), 60);
        for value in ["false", "FALSE", "0", "no", "off"] {
            let off = Config::from_lookup(lookup(&[("RATE_LIMIT_ENABLED", value)])).unwrap();
            assert!(!off.rate_limits.enabled, "{value}");
        }
        assert!(Config::from_lookup(lookup(&[("RATE_LIMIT_ENABLED", "maybe")])).is_err());
        assert!(Config::from_lookup(lookup(&[("RATE_LIMIT_AUTH_PER_MINUTE", "0")])).is_err());
    }

    #[test]
    fn production_requires_a_long_secret() {
        assert!(Config::from_lookup(lookup(&[("APP_ENV", "production")])).is_err());
        let short = lookup(&[("APP_ENV", "production"), ("JWT_SECRET", "short")]);
        assert!(Config::from_lookup(short).is_err());
        let random = random_token(48);
        let ok = lookup(&[("APP_ENV", "production"), ("JWT_SECRET", random.as_str())]);
        assert!(Config::from_lookup(ok).is_ok());
    }

    #[test]
    fn production_refuses_placeholders_and_low_entropy_secrets() {
        let example = std::fs::read_to_string(".env.example").expect(".env.example");
        let placeholder = example
            .lines()
            .find_map(|l| l.strip_prefix("JWT_SECRET="))
            .expect("JWT_SECRET in .env.example");
        let compose = std::fs::read_to_string("docker-compose.yml").expect("compose file");
        assert!(
            compose.contains(placeholder),
            "compose uses the same placeholder"
        );
        for (secret, reason) in [
            (placeholder, "placeholder"),
            ("x".repeat(32).as_str(), "entropy"),
            ("abababababababababababababababababab", "entropy"),
            ("My-Super-Secret-Example-Key-2026-for-prod", "placeholder"),
        ] {
            let error =
                Config::from_lookup(lookup(&[("APP_ENV", "production"), ("JWT_SECRET", secret)]))
                    .expect_err(secret)
                    .to_string();
            assert!(error.contains(reason), "{secret}: {error}");
            assert!(
                !error.contains(secret),
                "the secret itself is never printed"
            );
        }
        // Development accepts the placeholder, so the examples run as they are.
        assert!(Config::from_lookup(lookup(&[("JWT_SECRET", placeholder)])).is_ok());
        // What a user would generate passes.
        for secret in [
            "3q2+7w8Ff1nKx0PzR5b9YtLmC4vHs6DgJaUeWiOoQk=",
            "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        ] {
            let ok = lookup(&[("APP_ENV", "production"), ("JWT_SECRET", secret)]);
            assert!(Config::from_lookup(ok).is_ok(), "{secret}");
        }
    }

    #[test]
    fn hold_seconds_default_to_ten_minutes_within_a_day() {
        assert_eq!(Config::from_lookup(lookup(&[])).unwrap().hold_seconds, 600);
        let one = Config::from_lookup(lookup(&[("HOLD_SECONDS", "1")])).unwrap();
        assert_eq!(one.hold_seconds, 1);
        for bad in ["0", "86401", "-5", "soon"] {
            assert!(
                Config::from_lookup(lookup(&[("HOLD_SECONDS", bad)])).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn debug_output_redacts_secrets() {
        let config = Config::from_lookup(lookup(&[("JWT_SECRET", "top-secret-value")])).unwrap();
        assert!(!format!("{config:?}").contains("top-secret-value"));
    }
}
