//! The connection pool, migrations, and the embedded local PostgreSQL.

pub mod commit;
pub mod embedded;
pub mod reads;

use std::time::Duration;

use anyhow::Context;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;

pub use embedded::EmbeddedPostgres;

/// Builds the pool lazily, so the server starts (and /health reports "down") even while
/// PostgreSQL is unreachable; a bounded acquire timeout turns an outage into fast 503s.
pub fn pool(options: PgConnectOptions, max_connections: u32, acquire_timeout: Duration) -> PgPool {
    PgPoolOptions::new()
        .max_connections(max_connections)
        .min_connections(0)
        .acquire_timeout(acquire_timeout)
        .test_before_acquire(false)
        .connect_lazy_with(options)
}

pub async fn migrate(pool: &PgPool) -> anyhow::Result<()> {
    sqlx::migrate!("./migrations")
        .run(pool)
        .await
        .context("applying database migrations")
}

/// Where the database is: an external server from `DATABASE_URL`, or the embedded cluster
/// (kept alive as long as this value lives).
pub enum Database {
    External(Box<PgConnectOptions>),
    Embedded(EmbeddedPostgres),
}

impl Database {
    /// `DATABASE_URL` when given, else the embedded cluster with its data in `./.data/postgres`.
    pub async fn from_config(database_url: Option<&str>) -> anyhow::Result<Self> {
        match database_url {
            Some(url) => {
                let options: PgConnectOptions = url
                    .parse()
                    .context("DATABASE_URL is not a valid PostgreSQL URL")?;
                Ok(Self::External(Box::new(options)))
            }
            None => {
                let cluster = EmbeddedPostgres::start(".data/postgres".as_ref()).await?;
                cluster.create_database(APP_DATABASE).await?;
                Ok(Self::Embedded(cluster))
            }
        }
    }

    pub fn connect_options(&self) -> PgConnectOptions {
        match self {
            Self::External(options) => (**options).clone(),
            Self::Embedded(cluster) => cluster.connect_options(APP_DATABASE),
        }
    }

    /// Stops the embedded cluster, if any (after the server has drained its requests).
    pub async fn shutdown(self) {
        if let Self::Embedded(cluster) = self {
            cluster.stop().await;
        }
    }
}

/// The database the server uses inside the embedded cluster.
pub const APP_DATABASE: &str = "event_booking";
