//! `TestApp`: the real router on a real port, against its own fresh database.
//!
//! One PostgreSQL per test process: the embedded cluster in a throw-away directory (or the
//! server of `DATABASE_URL`), one migrated template database, and a copy of it per test, so
//! tests are isolated and run in parallel.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use event_booking::config::Config;
use event_booking::db::embedded::{ClusterOptions, EmbeddedPostgres};
use event_booking::{build_router, db, serve, AppState};
use reqwest::{Client, Method, RequestBuilder, Response};
use serde_json::{json, Value};
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection, PgPool};

pub const JWT_SECRET: &str = "test-secret-that-is-at-least-32-bytes-long";
pub const PASSWORD: &str = "Str0ng!Passw0rd";
/// The 401 message for a token that is malformed, forged, expired, or whose user is gone
/// (`Unauthorized` is the message when there is no token at all).
pub const INVALID_TOKEN: &str = "Invalid or expired token";
/// The 400 message for a path id that is not an integer from 1 to 2147483647.
pub const BAD_ID: &str = "Validation failed (id must be an integer from 1 to 2147483647)";

struct SharedDatabase {
    admin: PgConnectOptions,
    /// A `postgres://` URL with `{db}` where the database name goes, for child processes.
    url_template: String,
    template: String,
    // Keeps the embedded cluster alive for the whole process (statics are never dropped; the
    // cluster stops when the process exits).
    _cluster: Option<EmbeddedPostgres>,
}

fn shared_database() -> &'static SharedDatabase {
    static SHARED: OnceLock<SharedDatabase> = OnceLock::new();
    SHARED.get_or_init(|| {
        // Built on its own runtime: each test has its own, and this one must outlive none.
        std::thread::spawn(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("test runtime")
                .block_on(start_shared_database())
        })
        .join()
        .expect("starting the test database panicked")
    })
}

async fn start_shared_database() -> SharedDatabase {
    let (admin, url_template, cluster) = match std::env::var("DATABASE_URL") {
        Ok(url) if !url.trim().is_empty() => {
            let options: PgConnectOptions = url.parse().expect("DATABASE_URL is a valid URL");
            let mut template = reqwest::Url::parse(&url).expect("DATABASE_URL is a valid URL");
            template.set_path("/DBNAME");
            (
                options,
                template.to_string().replace("DBNAME", "{db}"),
                None,
            )
        }
        _ => {
            let dir = test_cluster_dir();
            let options = ClusterOptions {
                durable: false,
                max_connections: 1000,
                port: None,
            };
            let cluster = EmbeddedPostgres::start_with(&dir.join("postgres"), options)
                .await
                .expect("starting the embedded PostgreSQL for tests");
            let url_template = cluster.url("{db}");
            (
                cluster.connect_options("postgres"),
                url_template,
                Some(cluster),
            )
        }
    };
    let template = format!("eb_template_{}", std::process::id());
    let mut conn = PgConnection::connect_with(&admin)
        .await
        .expect("connecting as admin");
    sqlx::query(&format!("DROP DATABASE IF EXISTS {template}"))
        .execute(&mut conn)
        .await
        .expect("dropping an old template");
    sqlx::query(&format!("CREATE DATABASE {template}"))
        .execute(&mut conn)
        .await
        .expect("creating the template database");
    conn.close().await.ok();
    let pool = PgPool::connect_with(admin.clone().database(&template))
        .await
        .expect("connecting to the template");
    db::migrate(&pool).await.expect("migrating the template");
    pool.close().await;
    SharedDatabase {
        admin,
        url_template,
        template,
        _cluster: cluster,
    }
}

/// A directory per test process under the system temp dir; those of dead processes are removed.
pub fn test_cluster_dir() -> PathBuf {
    let base = std::env::temp_dir();
    let prefix = "event-booking-tests-";
    if let Ok(entries) = std::fs::read_dir(&base) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            if let Some(pid) = name.strip_prefix(prefix) {
                if !PathBuf::from(format!("/proc/{pid}")).exists() {
                    let _ = std::fs::remove_dir_all(entry.path());
                }
            }
        }
    }
    let dir = base.join(format!("{prefix}{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("creating the test cluster directory");
    dir
}

/// A setting for `spawn_with`: a server without background work (no expiry sweep, no
/// notification courier), for tests where another process must do that work.
pub const WITHOUT_JOBS: (&str, &str) = ("TEST_WITHOUT_BACKGROUND_JOBS", "true");

pub struct TestApp {
    /// The `DATABASE_URL` of this test's database, for child processes.
    pub database_url: String,
    pub address: String,
    pub client: Client,
    pub db: PgPool,
    pub db_options: PgConnectOptions,
    /// The per-test database this `TestApp` created, dropped with it. `None` for a second
    /// instance on the same database and for a server on a pool of the caller's: only the
    /// `TestApp` that created a database drops it.
    owned_database: Option<String>,
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(&[]).await
    }

    /// Starts a server with extra configuration (e.g. `("JWT_EXPIRES_IN", "15m")`).
    pub async fn spawn_with(settings: &[(&str, &str)]) -> Self {
        let shared = shared_database();
        let name = format!("eb_test_{}", uuid::Uuid::new_v4().simple());
        let mut conn = PgConnection::connect_with(&shared.admin)
            .await
            .expect("admin connection");
        sqlx::query(&format!(
            "CREATE DATABASE {name} TEMPLATE {}",
            shared.template
        ))
        .execute(&mut conn)
        .await
        .expect("creating the test database");
        conn.close().await.ok();

        let db_options = shared.admin.clone().database(&name);
        let db = db::pool(db_options.clone(), 20, Duration::from_secs(5));
        let database_url = shared.url_template.replace("{db}", &name);
        let mut app =
            Self::start_server(db.clone(), settings)
                .await
                .with_db(db, db_options, database_url);
        app.owned_database = Some(name);
        app
    }

    /// A server on a pool of the caller's (e.g. to a cluster the test stops and restarts).
    pub async fn with_pool(db: PgPool, db_options: PgConnectOptions, database_url: String) -> Self {
        Self::with_pool_and(db, db_options, database_url, &[]).await
    }

    /// `with_pool`, with extra configuration.
    pub async fn with_pool_and(
        db: PgPool,
        db_options: PgConnectOptions,
        database_url: String,
        settings: &[(&str, &str)],
    ) -> Self {
        Self::start_server(db.clone(), settings)
            .await
            .with_db(db, db_options, database_url)
    }

    /// A second server instance on the same database (as a horizontally scaled deployment).
    pub async fn another_instance(&self) -> Self {
        self.another_instance_with(&[]).await
    }

    /// A second instance with extra configuration.
    pub async fn another_instance_with(&self, settings: &[(&str, &str)]) -> Self {
        let db = db::pool(self.db_options.clone(), 20, Duration::from_secs(5));
        Self::start_server(db.clone(), settings).await.with_db(
            db,
            self.db_options.clone(),
            self.database_url.clone(),
        )
    }

    async fn start_server(db: PgPool, settings: &[(&str, &str)]) -> ServerOnly {
        // Rate limits are off unless a test turns them on: the suite registers many users
        // from one address.
        let mut pairs: Vec<(String, String)> = vec![
            ("JWT_SECRET".into(), JWT_SECRET.into()),
            ("RATE_LIMIT_ENABLED".into(), "false".into()),
        ];
        pairs.extend(settings.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let config = Config::from_lookup(|key| {
            pairs
                .iter()
                .rev()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.clone())
        })
        .expect("test config");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = format!("http://{}", listener.local_addr().expect("local addr"));
        let state = AppState::new(db, config);
        if !settings.contains(&WITHOUT_JOBS) {
            event_booking::jobs::spawn_background(&state).expect("background jobs");
        }
        let router = build_router(state);
        tokio::spawn(serve(listener, router, std::future::pending()));
        ServerOnly { address }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub fn request(&self, method: Method, path: &str, token: Option<&str>) -> RequestBuilder {
        let builder = self.client.request(method, self.url(path));
        match token {
            Some(token) => builder.bearer_auth(token),
            None => builder,
        }
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Response {
        self.request(Method::GET, path, token)
            .send()
            .await
            .expect("GET")
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: &Value) -> Response {
        self.request(Method::POST, path, token)
            .json(body)
            .send()
            .await
            .expect("POST")
    }

    pub async fn put(&self, path: &str, token: Option<&str>, body: &Value) -> Response {
        self.request(Method::PUT, path, token)
            .json(body)
            .send()
            .await
            .expect("PUT")
    }

    pub async fn delete(&self, path: &str, token: Option<&str>) -> Response {
        self.request(Method::DELETE, path, token)
            .send()
            .await
            .expect("DELETE")
    }

    /// Registers an account and returns `(token, user id)`.
    pub async fn register(&self, email: &str, role: &str) -> (String, i32) {
        let body = json!({
            "firstname": "Test", "lastname": "User", "email": email,
            "password": PASSWORD, "role": role,
        });
        let response = self.post("/auth/register", None, &body).await;
        assert_eq!(response.status(), 201, "registering {email}");
        let body: Value = response.json().await.expect("json");
        let id = body["user"]["id"].as_i64().expect("user id") as i32;
        (body["accessToken"].as_str().expect("token").to_string(), id)
    }

    pub async fn organizer(&self, email: &str) -> (String, i32) {
        self.register(email, "ORGANIZER").await
    }

    pub async fn user(&self, email: &str) -> (String, i32) {
        self.register(email, "USER").await
    }
}

struct ServerOnly {
    address: String,
}

impl ServerOnly {
    fn with_db(self, db: PgPool, db_options: PgConnectOptions, database_url: String) -> TestApp {
        TestApp {
            database_url,
            address: self.address,
            client: Client::new(),
            db,
            db_options,
            owned_database: None,
        }
    }
}

impl Drop for TestApp {
    /// Drops the test's database (if this `TestApp` created it), so a run leaves none behind.
    ///
    /// `Drop` may run on a runtime's thread (where nothing may block on a future), so the
    /// `DROP DATABASE` runs on a thread of its own with a small runtime, and we wait for it:
    /// otherwise the process could end before the last tests' databases are gone. `WITH (FORCE)`
    /// ends the connections still open to it (this app's pool, a second instance's, a server
    /// still running on the test's runtime). Never panics: a failure is only reported.
    fn drop(&mut self) {
        let Some(name) = self.owned_database.take() else {
            return;
        };
        let admin = shared_database().admin.clone();
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            runtime.block_on(async move {
                let mut conn = PgConnection::connect_with(&admin)
                    .await
                    .map_err(|e| e.to_string())?;
                sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut conn)
                    .await
                    .map_err(|e| e.to_string())?;
                conn.close().await.ok();
                Ok::<(), String>(())
            })
        })
        .join();
        match dropped {
            Ok(Ok(())) => {}
            Ok(Err(error)) => eprintln!("dropping a test database failed: {error}"),
            Err(_) => eprintln!("dropping a test database panicked"),
        }
    }
}

/// Status and JSON body of a response.
pub async fn parts(response: Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, body)
}

/// Asserts the contract's error body: status, reason phrase, and the message.
pub fn assert_error(status: u16, body: &Value, expected_status: u16, message: &str) {
    assert_eq!(status, expected_status, "body: {body}");
    assert_eq!(body["statusCode"], expected_status, "body: {body}");
    let reason = reqwest::StatusCode::from_u16(expected_status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or_default();
    assert_eq!(body["error"], reason, "body: {body}");
    assert_eq!(body["message"], message, "body: {body}");
}

/// Asserts a 400 validation body whose message array contains `expected`.
pub fn assert_validation(status: u16, body: &Value, expected: &[&str]) {
    assert_eq!(status, 400, "body: {body}");
    assert_eq!(body["statusCode"], 400);
    assert_eq!(body["error"], "Bad Request");
    let messages: Vec<&str> = body["message"]
        .as_array()
        .unwrap_or_else(|| panic!("message is not an array: {body}"))
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for message in expected {
        assert!(
            messages.contains(message),
            "missing {message:?} in {messages:?}"
        );
    }
}

/// A free TCP port on 127.0.0.1, for a process the test starts.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// A process of our server binary on `database_url` (the tests' JWT secret, rate limits off,
/// plus `settings`). Stopped with SIGINT, as Ctrl-C, when dropped; `kill` is SIGKILL.
pub struct ServerProcess {
    child: Option<std::process::Child>,
    pub base: String,
}

impl ServerProcess {
    /// Starts it and waits until it listens (a refused connection is not an answer yet; any
    /// answer is, even a 503 while its database is down).
    pub async fn start(database_url: &str, settings: &[(&str, &str)]) -> Self {
        let port = free_port();
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_event-booking"))
            .env("DATABASE_URL", database_url)
            .env("PORT", port.to_string())
            .env("JWT_SECRET", JWT_SECRET)
            .env("RATE_LIMIT_ENABLED", "false")
            .env("RUST_LOG", "warn")
            .envs(settings.iter().copied())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("starting the server");
        let base = format!("http://127.0.0.1:{port}");
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while reqwest::get(format!("{base}/health")).await.is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "the server did not start"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Self {
            child: Some(child),
            base,
        }
    }

    /// SIGKILL: the process dies at once, between any two lines.
    pub fn kill(&mut self) {
        self.signal("-KILL");
    }

    fn signal(&mut self, signal: &str) {
        if let Some(mut child) = self.child.take() {
            let _ = std::process::Command::new("kill")
                .args([signal, &child.id().to_string()])
                .status();
            let _ = child.wait();
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.signal("-INT");
    }
}
