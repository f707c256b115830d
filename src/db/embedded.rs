//! The embedded local PostgreSQL: when no `DATABASE_URL` is given, the server (and the seed
//! program, and the tests) run their own cluster from the PostgreSQL binaries on the machine.
//!
//! The cluster listens on 127.0.0.1 only, on a free port, with a generated password kept next
//! to the data directory. PostgreSQL refuses to run as root, so a root process runs it as the
//! `postgres` account. The postmaster is a child process that is told to stop (fast shutdown)
//! when we stop, or by the kernel if this process dies first.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection};
use tokio::sync::oneshot;

const SUPERUSER: &str = "postgres";
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// Tuning for a cluster: durable for real data, fast and throw-away for tests.
#[derive(Debug, Clone, Copy)]
pub struct ClusterOptions {
    pub durable: bool,
    pub max_connections: u32,
    /// A fixed port (to restart a cluster where its clients expect it); `None` picks a free one.
    pub port: Option<u16>,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        Self {
            durable: true,
            max_connections: 100,
            port: None,
        }
    }
}

pub struct EmbeddedPostgres {
    data_dir: PathBuf,
    port: u16,
    password: String,
    pid: u32,
    /// Resolves when our postmaster exits; `None` when the cluster is not ours to stop (we
    /// attached to one another process started, or it is already stopped).
    exited: Option<oneshot::Receiver<()>>,
}

impl EmbeddedPostgres {
    pub async fn start(data_dir: &Path) -> anyhow::Result<Self> {
        Self::start_with(data_dir, ClusterOptions::default()).await
    }

    pub async fn start_with(data_dir: &Path, options: ClusterOptions) -> anyhow::Result<Self> {
        let bin_dir = find_bin_dir().context(
            "PostgreSQL server binaries (initdb, postgres) not found: install PostgreSQL \
             (e.g. `apt-get install postgresql`) or set DATABASE_URL",
        )?;
        let owner = cluster_owner()?;
        let data_dir = std::path::absolute(data_dir).context("resolving the data directory")?;
        let data_dir = reachable_data_dir(data_dir, owner);
        let password_file = sibling(&data_dir, "password");
        if !data_dir.join("PG_VERSION").exists() {
            init_cluster(&bin_dir, &data_dir, &password_file, owner, options)?;
        }
        Self::boot(&bin_dir, data_dir, owner, options).await
    }

    /// A streaming replica of `primary` (PostgreSQL's own replication: a base backup with
    /// `standby.signal`, then WAL streamed from the primary), read-only, on a port of its own.
    /// Started again on an existing data directory, it resumes streaming.
    pub async fn start_replica(
        primary: &EmbeddedPostgres,
        data_dir: &Path,
        options: ClusterOptions,
    ) -> anyhow::Result<Self> {
        let bin_dir = find_bin_dir().context("PostgreSQL server binaries not found")?;
        let owner = cluster_owner()?;
        let data_dir = std::path::absolute(data_dir).context("resolving the data directory")?;
        if !data_dir.join("PG_VERSION").exists() {
            fs::create_dir_all(&data_dir)?;
            fs::set_permissions(&data_dir, fs::Permissions::from_mode(0o700))?;
            chown(&data_dir, owner)?;
            let output = owned_command(bin_dir.join("pg_basebackup"), owner)
                .arg("-D")
                .arg(&data_dir)
                .args([
                    "-R",
                    "-X",
                    "stream",
                    "--checkpoint=fast",
                    "-h",
                    "127.0.0.1",
                    "-U",
                    SUPERUSER,
                ])
                .args(["-p", &primary.port.to_string()])
                .env("PGPASSWORD", &primary.password)
                .stdin(Stdio::null())
                .output()
                .context("running pg_basebackup")?;
            if !output.status.success() {
                let _ = fs::remove_dir_all(&data_dir);
                bail!(
                    "pg_basebackup failed: {}",
                    String::from_utf8_lossy(&output.stderr).trim()
                );
            }
            let password_file = sibling(&data_dir, "password");
            fs::write(&password_file, &primary.password)?;
            fs::set_permissions(&password_file, fs::Permissions::from_mode(0o600))?;
            chown(&password_file, owner)?;
        }
        Self::boot(&bin_dir, data_dir, owner, options).await
    }

    /// Starts the postmaster of an initialized data directory (or attaches to a running one).
    async fn boot(
        bin_dir: &Path,
        data_dir: PathBuf,
        owner: Owner,
        options: ClusterOptions,
    ) -> anyhow::Result<Self> {
        let password_file = sibling(&data_dir, "password");
        let password = fs::read_to_string(&password_file)
            .with_context(|| format!("reading {}", password_file.display()))?
            .trim()
            .to_string();
        if let Some(cluster) = Self::attach(&data_dir, &password).await {
            return Ok(cluster);
        }
        let port = match options.port {
            Some(port) => port,
            None => free_port()?,
        };
        let log_path = sibling(&data_dir, "log");
        let (pid, exited) = spawn_postmaster(bin_dir, &data_dir, &log_path, port, owner, options)?;
        let mut cluster = Self {
            data_dir,
            port,
            password,
            pid,
            exited: Some(exited),
        };
        cluster.wait_until_ready(&log_path).await?;
        tracing::info!(port, data_dir = %cluster.data_dir.display(), "embedded PostgreSQL started");
        Ok(cluster)
    }

    /// The cluster of `data_dir` when another process (say, the running server, while the seed
    /// program runs) has it up already: use it, and leave it to its owner to stop.
    async fn attach(data_dir: &Path, password: &str) -> Option<Self> {
        let pid_file = fs::read_to_string(data_dir.join("postmaster.pid")).ok()?;
        let lines: Vec<&str> = pid_file.lines().collect();
        let pid: u32 = lines.first()?.trim().parse().ok()?;
        let port: u16 = lines.get(3)?.trim().parse().ok()?;
        if !Path::new(&format!("/proc/{pid}")).exists() {
            return None;
        }
        let cluster = Self {
            data_dir: data_dir.to_path_buf(),
            port,
            password: password.to_string(),
            pid,
            exited: None,
        };
        let conn = PgConnection::connect_with(&cluster.connect_options("postgres"))
            .await
            .ok()?;
        let _ = conn.close().await;
        tracing::info!(
            port,
            "using the embedded PostgreSQL another process started"
        );
        Some(cluster)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn connect_options(&self, database: &str) -> PgConnectOptions {
        PgConnectOptions::new()
            .host("127.0.0.1")
            .port(self.port)
            .username(SUPERUSER)
            .password(&self.password)
            .database(database)
    }

    /// A `postgres://` URL of `database`, for processes that take a `DATABASE_URL`.
    pub fn url(&self, database: &str) -> String {
        format!(
            "postgres://{SUPERUSER}:{}@127.0.0.1:{}/{database}",
            self.password, self.port
        )
    }

    /// Creates `name` unless it exists already.
    pub async fn create_database(&self, name: &str) -> anyhow::Result<()> {
        let mut conn = PgConnection::connect_with(&self.connect_options("postgres")).await?;
        let exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
                .bind(name)
                .fetch_one(&mut conn)
                .await?;
        if !exists {
            let sql = format!("CREATE DATABASE \"{}\"", name.replace('"', "\"\""));
            match sqlx::query(&sql).execute(&mut conn).await {
                // Another process created it between our check and our CREATE: fine.
                Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42P04") => {}
                other => {
                    other?;
                }
            }
        }
        conn.close().await?;
        Ok(())
    }

    /// Fast shutdown: open sessions are closed, data is flushed, and we wait for the exit.
    pub async fn stop(mut self) {
        if self.exited.is_none() {
            return;
        }
        self.signal_stop();
        if let Some(exited) = self.exited.take() {
            if tokio::time::timeout(Duration::from_secs(30), exited)
                .await
                .is_err()
            {
                tracing::warn!("embedded PostgreSQL did not stop within 30s");
            } else {
                tracing::info!("embedded PostgreSQL stopped");
            }
        }
    }

    fn signal_stop(&self) {
        let Ok(pid) = libc::pid_t::try_from(self.pid) else {
            return;
        };
        // SAFETY: kill(2) has no memory effects; the pid is our own child's, which we have not
        // reaped before this point (the keeper thread reaps it only after it exits).
        unsafe { libc::kill(pid, libc::SIGINT) };
    }

    async fn wait_until_ready(&mut self, log_path: &Path) -> anyhow::Result<()> {
        let options = self.connect_options("postgres");
        let started = Instant::now();
        loop {
            if let Ok(conn) = PgConnection::connect_with(&options).await {
                let _ = conn.close().await;
                return Ok(());
            }
            let exited = !matches!(
                self.exited.as_mut().map(|rx| rx.try_recv()),
                Some(Err(oneshot::error::TryRecvError::Empty))
            );
            if exited || started.elapsed() > STARTUP_TIMEOUT {
                let log = fs::read_to_string(log_path).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(5).collect();
                bail!(
                    "embedded PostgreSQL did not start (see {}): {}",
                    log_path.display(),
                    tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for EmbeddedPostgres {
    fn drop(&mut self) {
        if self.exited.is_some() {
            self.signal_stop();
        }
    }
}

/// `<dir>.<suffix>` beside the data directory (password and log live outside it, so the data
/// directory stays exactly what initdb made).
fn sibling(data_dir: &Path, suffix: &str) -> PathBuf {
    let mut name = data_dir.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{suffix}"));
    data_dir.with_file_name(name)
}

/// PATH, then `pg_config --bindir`, then the newest `/usr/lib/postgresql/*/bin`.
fn find_bin_dir() -> Option<PathBuf> {
    let has_server = |dir: &Path| dir.join("initdb").is_file() && dir.join("postgres").is_file();
    let from_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>());
    let from_pg_config = Command::new("pg_config")
        .arg("--bindir")
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
    let mut versioned: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            Some((version, entry.path().join("bin")))
        })
        .collect();
    versioned.sort_by_key(|(version, _)| std::cmp::Reverse(*version));
    let found = from_path
        .chain(from_pg_config)
        .chain(versioned.into_iter().map(|(_, dir)| dir))
        .find(|dir| has_server(dir))?;
    // The directory the binaries really live in (PATH may hold symlinks to only a few of
    // them), where the client tools such as pg_basebackup are too.
    Some(
        fs::canonicalize(found.join("postgres"))
            .ok()
            .and_then(|real| real.parent().map(Path::to_path_buf))
            .unwrap_or(found),
    )
}

/// The (uid, gid) to run PostgreSQL as: `None` means "as ourselves"; root runs it as `postgres`.
type Owner = Option<(u32, u32)>;

fn cluster_owner() -> anyhow::Result<Owner> {
    // SAFETY: geteuid(2) cannot fail and touches no memory.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(None);
    }
    let passwd = fs::read_to_string("/etc/passwd").context("reading /etc/passwd")?;
    passwd
        .lines()
        .map(|line| line.split(':').collect::<Vec<_>>())
        .find(|fields| fields.first() == Some(&"postgres") && fields.len() > 3)
        .and_then(|fields| Some((fields[2].parse().ok()?, fields[3].parse().ok()?)))
        .map(Some)
        .context(
            "running as root, but PostgreSQL refuses root and there is no `postgres` account \
             to run it as: create one (installing PostgreSQL does) or set DATABASE_URL",
        )
}

/// Where PostgreSQL keeps `data_dir`: there, unless a directory above it is closed to the
/// account PostgreSQL runs as (root working in a 0700 home or `mktemp -d` folder); then under
/// `/var/lib/event-booking`, in a folder named after `data_dir`, so the same project finds its
/// data again on the next start.
fn reachable_data_dir(data_dir: PathBuf, owner: Owner) -> PathBuf {
    let Some(owner) = owner else {
        return data_dir;
    };
    if data_dir
        .ancestors()
        .skip(1)
        .all(|dir| traversable(dir, owner))
    {
        return data_dir;
    }
    let name = data_dir
        .to_string_lossy()
        .trim_start_matches('/')
        .replace('/', "_");
    let moved = Path::new(FALLBACK_DATA_ROOT).join(name);
    tracing::warn!(
        wanted = %data_dir.display(),
        data_dir = %moved.display(),
        "the postgres account cannot reach the data directory (a folder above it is closed \
         to it): keeping the embedded cluster's data elsewhere"
    );
    moved
}

/// Where the embedded cluster's data goes when its own place is out of PostgreSQL's reach.
const FALLBACK_DATA_ROOT: &str = "/var/lib/event-booking";

/// Whether `owner` may pass through `dir` (a directory not made yet will be ours to open).
fn traversable(dir: &Path, (uid, gid): (u32, u32)) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = fs::metadata(dir) else {
        return true;
    };
    let mode = meta.mode();
    if meta.uid() == uid {
        mode & 0o100 != 0
    } else if meta.gid() == gid {
        mode & 0o010 != 0
    } else {
        mode & 0o001 != 0
    }
}

fn owned_command(program: PathBuf, owner: Owner) -> Command {
    let mut command = Command::new(program);
    if let Some((uid, gid)) = owner {
        command.uid(uid).gid(gid);
    }
    command
}

fn chown(path: &Path, owner: Owner) -> anyhow::Result<()> {
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::chown(path, Some(uid), Some(gid))
            .with_context(|| format!("chown {}", path.display()))?;
    }
    Ok(())
}

fn init_cluster(
    bin_dir: &Path,
    data_dir: &Path,
    password_file: &Path,
    owner: Owner,
    options: ClusterOptions,
) -> anyhow::Result<()> {
    if data_dir.exists() && fs::read_dir(data_dir)?.next().is_some() {
        bail!(
            "{} exists but is not a PostgreSQL data directory",
            data_dir.display()
        );
    }
    fs::create_dir_all(data_dir).with_context(|| format!("creating {}", data_dir.display()))?;
    fs::set_permissions(data_dir, fs::Permissions::from_mode(0o700))?;
    chown(data_dir, owner)?;

    let password = crate::config::random_token(32);
    fs::write(password_file, &password)?;
    fs::set_permissions(password_file, fs::Permissions::from_mode(0o600))?;
    chown(password_file, owner)?;

    let mut initdb = owned_command(bin_dir.join("initdb"), owner);
    initdb
        .arg("-D")
        .arg(data_dir)
        .args(["-U", SUPERUSER, "-E", "UTF8", "--locale=C"])
        .args(["--auth-host=scram-sha-256", "--auth-local=peer"])
        .arg(format!("--pwfile={}", password_file.display()));
    if !options.durable {
        initdb.arg("--no-sync");
    }
    let output = initdb
        .stdin(Stdio::null())
        .output()
        .context("running initdb")?;
    if !output.status.success() {
        let _ = fs::remove_dir_all(data_dir);
        bail!(
            "initdb failed for {}: {}",
            data_dir.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

/// Starts the postmaster from a dedicated thread that lives as long as the postmaster does:
/// the kernel's parent-death signal is tied to the spawning *thread*, so it must not exit early.
fn spawn_postmaster(
    bin_dir: &Path,
    data_dir: &Path,
    log_path: &Path,
    port: u16,
    owner: Owner,
    options: ClusterOptions,
) -> anyhow::Result<(u32, oneshot::Receiver<()>)> {
    let log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_path)?;
    let mut command = owned_command(bin_dir.join("postgres"), owner);
    command
        .arg("-D")
        .arg(data_dir)
        .arg("-p")
        .arg(port.to_string())
        .args([
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "unix_socket_directories=",
        ])
        .arg("-c")
        .arg(format!("max_connections={}", options.max_connections))
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    if !options.durable {
        // Throw-away clusters (tests, benchmarks): speed over durability, and a connection
        // whose client stopped mid-handshake (its runtime gone) is dropped after 5 s instead
        // of holding up DROP DATABASE for a minute.
        command.args([
            "-c",
            "authentication_timeout=5s",
            "-c",
            "fsync=off",
            "-c",
            "synchronous_commit=off",
            "-c",
            "full_page_writes=off",
        ]);
    }
    // SAFETY: prctl(2) is async-signal-safe and only sets a flag of the new process. It runs
    // after the uid change (which would otherwise clear the flag).
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGINT) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let (started_tx, started_rx) = std::sync::mpsc::channel();
    let (exited_tx, exited_rx) = oneshot::channel();
    std::thread::Builder::new()
        .name("embedded-postgres".into())
        .spawn(move || match command.spawn() {
            Ok(mut child) => {
                let _ = started_tx.send(Ok(child.id()));
                let _ = child.wait();
                let _ = exited_tx.send(());
            }
            Err(e) => {
                let _ = started_tx.send(Err(e));
            }
        })?;
    let pid = started_rx
        .recv()
        .context("the postgres keeper thread died")?
        .context("starting postgres")?;
    Ok((pid, exited_rx))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_behind_a_closed_folder_moves_where_postgres_can_reach_it() {
        let stranger = (4_000_000, 4_000_000);
        let base = std::env::temp_dir().join(format!("eb-reach-{}", std::process::id()));
        let data_dir = base.join("project/.data/postgres");
        fs::create_dir_all(base.join("project")).expect("folders");

        fs::set_permissions(&base, fs::Permissions::from_mode(0o755)).expect("chmod");
        assert_eq!(
            reachable_data_dir(data_dir.clone(), Some(stranger)),
            data_dir
        );

        fs::set_permissions(&base, fs::Permissions::from_mode(0o700)).expect("chmod");
        let moved = reachable_data_dir(data_dir.clone(), Some(stranger));
        let name = data_dir
            .to_string_lossy()
            .trim_start_matches('/')
            .replace('/', "_");
        assert_eq!(moved, Path::new(FALLBACK_DATA_ROOT).join(name));
        assert_eq!(
            reachable_data_dir(data_dir.clone(), None),
            data_dir,
            "as ourselves"
        );

        fs::remove_dir_all(&base).expect("cleanup");
    }
}
