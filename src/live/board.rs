//! `GET /`: the live seat board, one self-contained page (no framework, nothing fetched from
//! elsewhere) for a screen in a foyer: upcoming published events with their free seats,
//! updated from `/events/live` without reloading, and honest about a lost connection.

use axum::extract::State;
use axum::response::Html;

use crate::error::{ErrorBody, Result};
use crate::state::AppState;
use crate::time::Timestamp;

#[derive(sqlx::FromRow)]
struct Row {
    id: i32,
    title: String,
    event_date: Option<Timestamp>,
    venue: Option<String>,
    city: Option<String>,
    available_seats: i32,
    total_seats: i32,
}

/// The live seat board
///
/// An HTML page listing upcoming PUBLISHED events and their available seats, kept current by
/// Server-Sent Events.
#[utoipa::path(
    get, path = "/", tag = "live",
    responses(
        (status = 200, description = "The board", content_type = "text/html", body = String),
        (status = 503, description = "Service temporarily unavailable", body = ErrorBody),
    )
)]
pub async fn board(State(state): State<AppState>) -> Result<Html<String>> {
    let rows = sqlx::query_as::<_, Row>(
        "SELECT id, title, event_date, venue, city, available_seats, total_seats FROM events \
         WHERE status = 'PUBLISHED' AND event_date >= now() \
         ORDER BY event_date, id LIMIT 100",
    )
    .fetch_all(&state.db)
    .await?;
    let mut items = String::new();
    for row in &rows {
        let place = [row.venue.as_deref(), row.city.as_deref()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(", ");
        let when = row
            .event_date
            .map(|d| d.format("%a %-d %b %Y · %H:%M UTC").to_string())
            .unwrap_or_default();
        items.push_str(&format!(
            r#"<li class="event{sold}" id="event-{id}" data-total="{total}">
  <div class="what"><div class="title">{title}</div><div class="when">{when}</div><div class="where">{place}</div></div>
  <div class="seats"><span class="count" id="seats-{id}">{available}</span><span class="label">seats left</span></div>
</li>
"#,
            sold = if row.available_seats == 0 { " sold-out" } else { "" },
            id = row.id,
            total = row.total_seats,
            title = escape(&row.title),
            when = escape(&when),
            place = escape(&place),
            available = row.available_seats,
        ));
    }
    if rows.is_empty() {
        items.push_str(r#"<li class="empty">No upcoming events yet.</li>"#);
    }
    Ok(Html(PAGE.replace("{{ITEMS}}", &items)))
}

/// Text as HTML: the five characters that could break out of it are escaped.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

const PAGE: &str = r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Seats available now</title>
<style>
  :root { color-scheme: dark; }
  body { margin: 0; font-family: system-ui, "DejaVu Sans", sans-serif; background: #0f172a; color: #f8fafc; }
  header { display: flex; justify-content: space-between; align-items: baseline; padding: 2.5rem 4vw 1rem; }
  h1 { margin: 0; font-size: clamp(2rem, 4vw, 3.5rem); letter-spacing: -0.02em; }
  #status { font-size: 1.2rem; color: #94a3b8; }
  #status.lost { color: #fbbf24; font-weight: 600; }
  ul { list-style: none; margin: 0; padding: 0 4vw 3rem; display: grid; gap: 1rem; }
  .event { display: flex; justify-content: space-between; align-items: center; gap: 2rem;
           background: #1e293b; border-radius: 1rem; padding: 1.4rem 2rem; transition: background 0.6s; }
  .event.changed { background: #334155; }
  .title { font-size: clamp(1.5rem, 2.6vw, 2.4rem); font-weight: 700; }
  .when, .where { font-size: clamp(1rem, 1.5vw, 1.4rem); color: #cbd5e1; margin-top: 0.2rem; }
  .seats { text-align: right; min-width: 9rem; }
  .count { display: block; font-size: clamp(2.5rem, 5vw, 4.5rem); font-weight: 800; color: #4ade80; font-variant-numeric: tabular-nums; }
  .label { font-size: 1rem; color: #94a3b8; text-transform: uppercase; letter-spacing: 0.1em; }
  .sold-out .count { color: #f87171; }
  .empty { color: #94a3b8; font-size: 1.5rem; }
</style>
</head>
<body>
<header><h1>Seats available now</h1><div id="status">Live</div></header>
<ul id="events">
{{ITEMS}}</ul>
<script>
  const status = document.getElementById("status");
  function connect() {
    const source = new EventSource("/events/live");
    source.onopen = () => { status.textContent = "Live"; status.className = ""; };
    source.onerror = () => {
      status.textContent = "Connection lost \u2014 reconnecting\u2026";
      status.className = "lost";
    };
    source.addEventListener("availability", (message) => {
      const event = JSON.parse(message.data);
      const row = document.getElementById("event-" + event.eventId);
      if (!row) return;
      if (event.status !== "PUBLISHED") { row.remove(); return; }
      document.getElementById("seats-" + event.eventId).textContent = event.availableSeats;
      row.classList.toggle("sold-out", event.availableSeats === 0);
      row.classList.add("changed");
      setTimeout(() => row.classList.remove("changed"), 800);
    });
  }
  connect();
</script>
</body>
</html>
"#;
