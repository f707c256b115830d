//! The state every handler shares.

use std::sync::Arc;

use sqlx::PgPool;

use crate::auth::jwt::JwtKeys;
use crate::bookings::BookingLanes;
use crate::config::Config;
use crate::db::reads::Reads;
use crate::events::cache::EventCache;
use crate::insight::cache::StatsCache;
use crate::limits::Limits;
use crate::live::Live;
use crate::readiness::Readiness;
use crate::tickets::{Door, TicketKeys};

#[derive(Clone)]
pub struct AppState {
    pub db: PgPool,
    pub jwt: Arc<JwtKeys>,
    pub config: Arc<Config>,
    /// Per-event booking queues (see `bookings::lanes`).
    pub bookings: BookingLanes,
    pub limits: Limits,
    /// False while the schema is not known to be in place (see `readiness`).
    pub ready: Readiness,
    /// The keys that sign and verify ticket codes.
    pub tickets: Arc<TicketKeys>,
    /// Where check-in scans wait to share a statement.
    pub door: Arc<Door>,
    /// The change feed and the open live streams.
    pub live: Live,
    /// Where public reads go: the replica of `DATABASE_READ_URL` while it answers.
    pub reads: Reads,
    /// Events' booking aggregates, kept while they are current (see `insight::cache`).
    pub stats: Arc<StatsCache>,
    /// Public event reads, kept while they are current (see `events::cache`).
    pub event_cache: Arc<EventCache>,
}

impl AppState {
    /// State for a database that is already migrated.
    pub fn new(db: PgPool, config: Config) -> Self {
        let jwt = JwtKeys::new(config.jwt_secret.expose().as_bytes(), config.jwt_expires_in);
        let event_cache = Arc::new(EventCache::new(config.database_read_url.is_none()));
        Self {
            bookings: BookingLanes::new(
                db.clone(),
                config.booking_lanes,
                config.hold_seconds,
                config.notify.smtp_url.is_some(),
                event_cache.clone(),
            ),
            event_cache,
            limits: Limits::new(&config.rate_limits),
            ready: Readiness::ready(),
            tickets: Arc::new(TicketKeys::new(config.ticket_signing_key.clone())),
            door: Arc::new(Door::new(db.clone())),
            live: Live::new(config.live_max_streams),
            stats: Arc::default(),
            reads: match config
                .database_read_url
                .as_ref()
                .and_then(|url| url.expose().parse().ok())
            {
                Some(replica) => {
                    Reads::with_replica(db.clone(), replica, config.db_max_connections)
                }
                None => Reads::primary(db.clone()),
            },
            db,
            jwt: Arc::new(jwt),
            config: Arc::new(config),
        }
    }
}
