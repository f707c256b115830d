//! `cargo run --bin seed`: demo data for trying the API — an organizer, a few users, events in
//! every status, and bookings made through the same booking code as the API. It uses the
//! database the server uses (DATABASE_URL, else the embedded one in ./.data/postgres, even
//! while the server runs) and is idempotent: a second run finds everything and writes nothing.

use std::process::ExitCode;

use anyhow::Context;
use chrono::{Duration, Utc};
use event_booking::auth::service::{self as users, NewUser};
use event_booking::auth::Role;
use event_booking::bookings::service as bookings;
use event_booking::config::Config;
use event_booking::db::{self, Database};
use event_booking::events::model::CreateEventRequest;
use event_booking::events::service as events;
use event_booking::events::ticket_types::model::NewTicketType;
use sqlx::PgPool;

const PASSWORD: &str = "Demo!Passw0rd";
const ORGANIZER: &str = "organizer@example.com";
const USERS: [(&str, &str, &str); 3] = [
    ("alice@example.com", "Alice", "Martin"),
    ("bob@example.com", "Bob", "Nguyen"),
    ("carol@example.com", "Carol", "Okafor"),
];

/// (title, description, seats, status, days from now).
const EVENTS: [(&str, &str, i64, &str, i64); 6] = [
    (
        "Rust Meetup",
        "Talks and pizza; bring a laptop.",
        50,
        "PUBLISHED",
        30,
    ),
    (
        "Jazz Night",
        "A quartet in a small room.",
        80,
        "PUBLISHED",
        45,
    ),
    (
        "Tech Conference 2027",
        "Two days, three tracks.",
        500,
        "PUBLISHED",
        120,
    ),
    ("Planning Workshop", "Still being planned.", 20, "DRAFT", 60),
    (
        "Open Air Cinema",
        "Called off: the park is closed.",
        200,
        "CANCELLED",
        15,
    ),
    (
        "Autumn Hackathon",
        "It happened; it was great.",
        100,
        "COMPLETED",
        -20,
    ),
];

/// A ticket type to seed: (name, price in cents, seats).
type SeedType = (&'static str, i64, i64);

/// The seeded event that sells two kinds of seats: (title, venue, city, currency, types). Its
/// seats add up to its entry in `EVENTS`.
const TYPED_EVENT: (&str, &str, &str, &str, [SeedType; 2]) = (
    "Tech Conference 2027",
    "Kongresshaus",
    "Zürich",
    "CHF",
    [("VIP", 45_000, 50), ("General", 19_000, 450)],
);

/// (user index, event title, ticket type name, seats).
const BOOKINGS: [(usize, &str, Option<&str>, i32); 4] = [
    (0, "Rust Meetup", None, 2),
    (1, "Rust Meetup", None, 1),
    (1, "Jazz Night", None, 4),
    (2, "Tech Conference 2027", Some("General"), 3),
];

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt().with_env_filter("warn").init();
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
    let database = Database::from_config(config.database_url.as_ref().map(|s| s.expose())).await?;
    let pool = db::pool(
        database.connect_options(),
        4,
        std::time::Duration::from_secs(5),
    );
    let outcome = seed(&pool).await;
    pool.close().await;
    database.shutdown().await;
    let created = outcome?;
    println!(
        "{}",
        if created == 0 {
            "Demo data already present: nothing to do."
        } else {
            "Demo data created."
        }
    );
    println!("\nDemo logins (password for all: {PASSWORD}):");
    println!("  ORGANIZER  {ORGANIZER}");
    for (email, ..) in USERS {
        println!("  USER       {email}");
    }
    Ok(())
}

/// Returns how many rows it created.
async fn seed(db: &PgPool) -> anyhow::Result<usize> {
    sqlx::query("SELECT 1")
        .execute(db)
        .await
        .context("cannot reach the database (check DATABASE_URL)")?;
    db::migrate(db).await?;
    let mut created = 0;
    let organizer = user(
        db,
        ORGANIZER,
        "Olivia",
        "Organizer",
        Role::Organizer,
        &mut created,
    )
    .await?;
    let mut user_ids = Vec::new();
    for (email, first, last) in USERS {
        user_ids.push(user(db, email, first, last, Role::User, &mut created).await?);
    }
    for (title, description, seats, status, days) in EVENTS {
        if event_id(db, organizer, title).await?.is_none() {
            let mut body = CreateEventRequest {
                title: Some(title.into()),
                description: Some(description.into()),
                venue: None,
                city: None,
                currency: None,
                total_seats: Some(seats),
                ticket_types: None,
                status: Some(status.into()),
                event_date: Some((Utc::now() + Duration::days(days)).to_rfc3339()),
            };
            let (typed, venue, city, currency, types) = TYPED_EVENT;
            if title == typed {
                body.venue = Some(venue.into());
                body.city = Some(city.into());
                body.currency = Some(currency.into());
                body.ticket_types = Some(
                    types
                        .iter()
                        .map(|(name, price, seats)| NewTicketType {
                            name: Some(name.to_string()),
                            price_cents: Some(*price),
                            total_seats: Some(*seats),
                        })
                        .collect(),
                );
            }
            events::create(db, organizer, body).await?;
            created += 1;
        }
    }
    for (user_index, title, type_name, seats) in BOOKINGS {
        let user_id = user_ids[user_index];
        let event = event_id(db, organizer, title)
            .await?
            .context("a seeded event is missing")?;
        let ticket_type: Option<i32> = match type_name {
            Some(name) => Some(
                sqlx::query_scalar("SELECT id FROM ticket_types WHERE event_id = $1 AND name = $2")
                    .bind(event)
                    .bind(name)
                    .fetch_one(db)
                    .await?,
            ),
            None => None,
        };
        let booked: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM bookings \
                            WHERE user_id = $1 AND event_id = $2 \
                              AND ($3::integer IS NULL OR ticket_type_id = $3))",
        )
        .bind(user_id)
        .bind(event)
        .bind(ticket_type)
        .fetch_one(db)
        .await?;
        if !booked {
            bookings::book_direct(db, user_id, event, ticket_type, seats).await?;
            created += 1;
        }
    }
    Ok(created)
}

async fn user(
    db: &PgPool,
    email: &str,
    firstname: &str,
    lastname: &str,
    role: Role,
    created: &mut usize,
) -> anyhow::Result<i32> {
    let existing: Option<i32> =
        sqlx::query_scalar("SELECT id FROM users WHERE lower(email) = lower($1)")
            .bind(email)
            .fetch_optional(db)
            .await?;
    if let Some(id) = existing {
        return Ok(id);
    }
    let new = NewUser {
        firstname: firstname.into(),
        lastname: lastname.into(),
        email: email.into(),
        password: PASSWORD.into(),
        role,
    };
    *created += 1;
    Ok(users::register(db, new).await?.id)
}

async fn event_id(db: &PgPool, organizer: i32, title: &str) -> anyhow::Result<Option<i32>> {
    Ok(sqlx::query_scalar(
        "SELECT id FROM events WHERE organizer_id = $1 AND title = $2 ORDER BY id LIMIT 1",
    )
    .bind(organizer)
    .bind(title)
    .fetch_optional(db)
    .await?)
}
