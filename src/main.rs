//! The server: config → tracing → database → migrations → serve, with graceful shutdown.

use std::process::ExitCode;

use anyhow::Context;
use event_booking::config::Config;
use event_booking::db::{self, Database};
use event_booking::readiness::Readiness;
use event_booking::{auth, build_router, jobs, serve, AppState};
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    return_large_allocations_to_the_os();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(start())
}

/// argon2 allocates 19 MiB per hash; glibc would keep those blocks in per-thread arenas after
/// they are freed, so a few logins would pin ~20 MiB each for the life of the process. A fixed
/// mmap threshold makes every allocation of 1 MiB or more a mapping that is returned on free;
/// a 4 MiB trim threshold keeps the small-object heap from shrinking and regrowing per request.
fn return_large_allocations_to_the_os() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator tuning; it is called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 4 << 20);
    }
}

async fn start() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_http=info")),
        )
        .init();
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> anyhow::Result<()> {
    let config = Config::from_env()?;
    if config.jwt_secret_generated {
        tracing::warn!(
            "JWT_SECRET is not set: using a random secret for this run only. Tokens will not \
             survive a restart or work across instances. Set JWT_SECRET (32+ bytes) for real use."
        );
    }
    let database = Database::from_config(config.database_url.as_ref().map(|s| s.expose())).await?;
    let pool = db::pool(
        database.connect_options(),
        config.db_max_connections,
        config.db_acquire_timeout,
    );
    // An unreachable database does not stop the start-up: the server answers 503 until it is
    // back and migrated. A database that answers but cannot be migrated is a real error.
    let reachable = sqlx::query("SELECT 1").execute(&pool).await.is_ok();
    let ready = if reachable {
        db::migrate(&pool).await?;
        Readiness::ready()
    } else {
        tracing::warn!("database unreachable: answering 503 until it is back");
        let waiting = Readiness::waiting();
        tokio::spawn(waiting.clone().migrate_when_reachable(pool.clone()));
        waiting
    };
    auth::password::warm_up();

    let address = ("0.0.0.0", config.port);
    let listener = TcpListener::bind(address)
        .await
        .with_context(|| format!("binding port {}", config.port))?;
    tracing::info!(
        "listening on http://{}  (Swagger UI at /api-docs)",
        listener.local_addr()?
    );

    let mut state = AppState::new(pool.clone(), config);
    state.ready = ready;
    jobs::spawn_background(&state)?;
    let live = state.live.clone();
    let router = build_router(state);
    // Open live streams end with the shutdown signal, so they never hold the drain up.
    let shutdown = async move {
        shutdown_signal().await;
        live.close();
    };
    serve(listener, router, shutdown).await?;

    tracing::info!("requests drained; shutting down");
    pool.close().await;
    database.shutdown().await;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
    tracing::info!("shutdown signal received");
}
