//! THREE INSTANCES: the scale-out topology of `scripts/cluster.sh` (a primary, a streaming
//! replica, three API instances, nginx in front), started by the bench in
//! target/bench/cluster on free ports and removed after. One hot event booked at 256
//! connections through nginx, against one instance of the same cluster booked directly (same
//! database, same run): no "high demand" 409 while seats are left, and the rate of three
//! instances compared with one's. The invariant is checked in the cluster's database.

use std::path::PathBuf;

use super::*;

const LEVEL: usize = 256;
/// Three instances through nginx should book at least this share of one instance's rate.
pub(super) const THREE_MIN_RATIO: f64 = 0.9;

/// The cluster, stopped and removed when dropped.
struct Cluster {
    script: PathBuf,
    dir: PathBuf,
    env: Vec<(String, String)>,
}

impl Cluster {
    fn run(&self, command: &str) -> anyhow::Result<()> {
        let status = Command::new("bash")
            .arg(&self.script)
            .arg(command)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::null())
            .status()?;
        anyhow::ensure!(status.success(), "scripts/cluster.sh {command} failed");
        Ok(())
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.run("clean");
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

pub(super) struct Three {
    pub one: Measured,
    pub three: Measured,
    pub round_robin: Measured,
    pub violations: Vec<String>,
}

pub(super) async fn three_instances(
    client: &reqwest::Client,
    lanes: bool,
) -> anyhow::Result<Three> {
    let dir = std::path::absolute("target/bench/cluster")?;
    let _ = std::fs::remove_dir_all(&dir);
    let (nginx, pg, replica) = (free_port()?, free_port()?, free_port()?);
    let apis = [free_port()?, free_port()?, free_port()?];
    let env: Vec<(String, String)> = [
        ("CLUSTER_DIR", dir.display().to_string()),
        ("NGINX_PORT", nginx.to_string()),
        ("PG_PORT", pg.to_string()),
        ("REPLICA_PORT", replica.to_string()),
        ("API_PORTS", apis.map(|p| p.to_string()).join(" ")),
        ("RATE_LIMIT_ENABLED", "false".into()),
        ("DB_MAX_CONNECTIONS", POOL_SIZE.to_string()),
        ("BOOKING_LANES", lanes.to_string()),
        ("RUST_LOG", "error".into()),
        // The server this bench was built with (no second build of it).
        ("SERVER_BIN", env!("CARGO_BIN_EXE_event-booking").into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let cluster = Cluster {
        script: std::path::absolute("scripts/cluster.sh")?,
        dir: dir.clone(),
        env,
    };
    step("THREE INSTANCES: scripts/cluster.sh start (primary, replica, 3 instances, nginx)");
    cluster.run("start")?;

    let password = std::fs::read_to_string(dir.join("pg/password"))?;
    let db = PgPoolOptions::new()
        .max_connections(2)
        .connect_with(
            PgConnectOptions::new()
                .host("127.0.0.1")
                .port(pg)
                .username("postgres")
                .password(password.trim())
                .database("event_booking"),
        )
        .await?;
    let through_nginx = Api {
        client: client.clone(),
        base: format!("http://127.0.0.1:{nginx}"),
    };
    let [direct, second, third] = apis.map(|port| Api {
        client: client.clone(),
        base: format!("http://127.0.0.1:{port}"),
    });
    step(&format!(
        "THREE INSTANCES: creating an organizer and {USERS} users through nginx"
    ));
    let (organizer, users) = through_nginx.register_people().await?;
    let token = organizer.token.as_str();
    let (one_event, three_event, spread_event) = (
        through_nginx.create_event(token, HOT_SEATS).await?,
        through_nginx.create_event(token, HOT_SEATS).await?,
        through_nginx.create_event(token, HOT_SEATS).await?,
    );
    let run = Load::For(RUN_FOR);
    step(&format!(
        "THREE INSTANCES at {LEVEL}: one instance, directly"
    ));
    let one = measured(
        &db,
        &[one_event],
        drive(&[&direct], &users, Target::One(one_event), LEVEL, run, 1),
    )
    .await?;
    step(&format!(
        "THREE INSTANCES at {LEVEL}: three instances through nginx"
    ));
    let three = measured(
        &db,
        &[three_event],
        drive(
            &[&through_nginx],
            &users,
            Target::One(three_event),
            LEVEL,
            run,
            1,
        ),
    )
    .await?;
    // What nginx costs apart from what three instances cost: the same three, connections
    // spread round-robin over them by the bench itself.
    step(&format!(
        "THREE INSTANCES at {LEVEL}: the three directly, round-robin"
    ));
    let round_robin = measured(
        &db,
        &[spread_event],
        drive(
            &[&direct, &second, &third],
            &users,
            Target::One(spread_event),
            LEVEL,
            run,
            1,
        ),
    )
    .await?;
    let mut violations: Vec<String> = check_invariant(&db)
        .await?
        .into_iter()
        .map(|v| format!("THREE INSTANCES cluster: {v}"))
        .collect();
    if three.high_demand + round_robin.high_demand > 0 {
        violations.push(format!(
            "THREE INSTANCES: {} \"high demand\" 409s (instances must queue, not race)",
            three.high_demand + round_robin.high_demand
        ));
    }
    db.close().await;
    drop(cluster);
    Ok(Three {
        one,
        three,
        round_robin,
        violations,
    })
}
