//! Notification emails over SMTP (`SMTP_URL`): a plain-text and an HTML part, and a
//! `Message-ID` made from the notification's id, so every retry is recognisably the same mail.

use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::Error as SmtpError;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde::Deserialize;

use super::outbox::{Claimed, Outcome};

/// An attempt gives up after this long, whatever the SMTP server does.
pub const TIMEOUT: Duration = Duration::from_secs(10);

pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    /// The right-hand side of Message-IDs: the sender's domain.
    domain: String,
}

impl Mailer {
    pub fn new(smtp_url: &str, from: &str) -> anyhow::Result<Self> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(smtp_url)
            .map_err(|e| anyhow::anyhow!("SMTP_URL is not smtp://host:port or smtps://…: {e}"))?
            .timeout(Some(TIMEOUT))
            .build();
        let from: Mailbox = from
            .parse()
            .map_err(|e| anyhow::anyhow!("MAIL_FROM {from:?} is not an address: {e}"))?;
        let domain = from.email.domain().to_string();
        Ok(Self {
            transport,
            from,
            domain,
        })
    }

    pub async fn send(&self, attempt: &Claimed) -> Outcome {
        let failed = |status_code: Option<i32>, error: String| Outcome {
            delivered: false,
            status_code,
            error: Some(error),
        };
        let Some(to) = attempt.email.as_deref() else {
            return failed(None, "the booking's user no longer exists".into());
        };
        let message = match self.message(attempt, to) {
            Ok(message) => message,
            Err(error) => return failed(None, error),
        };
        let sent = tokio::time::timeout(TIMEOUT, self.transport.send(message)).await;
        match sent {
            Ok(Ok(response)) => Outcome {
                delivered: true,
                status_code: Some(i32::from(u16::from(response.code()))),
                error: None,
            },
            Ok(Err(error)) => failed(smtp_code(&error), describe(&error)),
            Err(_) => failed(None, "timed out".into()),
        }
    }

    fn message(&self, attempt: &Claimed, to: &str) -> Result<Message, String> {
        let body: Body = serde_json::from_str(&attempt.payload).map_err(|e| e.to_string())?;
        let greeting = attempt.firstname.as_deref().unwrap_or("there");
        let currency = attempt.currency.as_deref().unwrap_or_default();
        let letter = Letter::new(&attempt.kind, &body, currency);
        let to: Mailbox = to.parse().map_err(|_| "the recipient address is invalid")?;
        Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(letter.subject.clone())
            .message_id(Some(format!("<{}@{}>", attempt.id, self.domain)))
            .multipart(
                MultiPart::alternative()
                    .singlepart(
                        SinglePart::builder()
                            .header(ContentType::TEXT_PLAIN)
                            .body(letter.text(greeting)),
                    )
                    .singlepart(
                        SinglePart::builder()
                            .header(ContentType::TEXT_HTML)
                            .body(letter.html(greeting)),
                    ),
            )
            .map_err(|e| e.to_string())
    }
}

fn smtp_code(error: &SmtpError) -> Option<i32> {
    error.status().map(|code| i32::from(u16::from(code)))
}

fn describe(error: &SmtpError) -> String {
    super::error_chain(error.to_string(), error)
}

/// The parts of a notification's body an email quotes.
#[derive(Deserialize)]
struct Body {
    data: Data,
}

#[derive(Deserialize)]
struct Data {
    booking: BookingPart,
    event: EventPart,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BookingPart {
    booking_reference: String,
    seat_count: i32,
    total_price_cents: i64,
    expires_at: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EventPart {
    title: String,
    event_date: Option<String>,
}

/// What an email says, before it is dressed as text or HTML.
struct Letter {
    subject: String,
    /// One sentence on what happened.
    news: String,
    lines: Vec<(&'static str, String)>,
}

impl Letter {
    fn new(kind: &str, body: &Body, currency: &str) -> Self {
        let booking = &body.data.booking;
        let event = &body.data.event;
        let seats = match booking.seat_count {
            1 => "1 seat".to_string(),
            n => format!("{n} seats"),
        };
        let (subject, news) = match kind {
            "booking.held" => (
                format!("Seats held: {}", event.title),
                format!("We are holding {seats} for you. Confirm before the hold expires."),
            ),
            "booking.cancelled" => (
                format!("Booking cancelled: {}", event.title),
                format!("Your booking of {seats} has been cancelled."),
            ),
            "booking.expired" => (
                format!("Hold expired: {}", event.title),
                format!("Your hold of {seats} expired before it was confirmed; the seats were released."),
            ),
            _ => (
                format!("Booking confirmed: {}", event.title),
                format!("Your booking of {seats} is confirmed."),
            ),
        };
        let mut lines = vec![
            ("Event", event.title.clone()),
            (
                "Date",
                event
                    .event_date
                    .as_deref()
                    .map_or_else(|| "to be announced".into(), readable),
            ),
            ("Booking reference", booking.booking_reference.clone()),
            ("Seats", booking.seat_count.to_string()),
            ("Total", money(booking.total_price_cents, currency)),
        ];
        if kind == "booking.held" {
            if let Some(until) = &booking.expires_at {
                lines.push(("Held until", readable(until)));
            }
        }
        Self {
            subject,
            news,
            lines,
        }
    }

    fn text(&self, greeting: &str) -> String {
        let mut text = format!("Hello {greeting},\n\n{}\n\n", self.news);
        for (label, value) in &self.lines {
            text.push_str(&format!("{label}: {value}\n"));
        }
        text.push_str("\nEvent Booking\n");
        text
    }

    fn html(&self, greeting: &str) -> String {
        let rows: String = self
            .lines
            .iter()
            .map(|(label, value)| {
                format!(
                    "<tr><th align=\"left\" style=\"padding:4px 16px 4px 0\">{}</th><td>{}</td></tr>",
                    escape(label),
                    escape(value)
                )
            })
            .collect();
        format!(
            "<!doctype html><html><body style=\"font-family:sans-serif;color:#1a1a1a\">\
             <h2>{}</h2><p>Hello {},</p><p>{}</p><table>{rows}</table>\
             <p style=\"color:#666\">Event Booking</p></body></html>",
            escape(&self.subject),
            escape(greeting),
            escape(&self.news)
        )
    }
}

/// Cents as an amount with two decimals and the event's currency code.
fn money(cents: i64, currency: &str) -> String {
    format!("{}.{:02} {currency}", cents / 100, (cents % 100).abs())
        .trim_end()
        .to_string()
}

/// A wire timestamp as people read it: `2030-06-01 19:30 UTC`.
fn readable(timestamp: &str) -> String {
    crate::time::parse(timestamp).map_or_else(
        || timestamp.to_string(),
        |t| t.format("%Y-%m-%d %H:%M UTC").to_string(),
    )
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_escapes_the_title_and_text_keeps_it() {
        let body: Body = serde_json::from_str(
            r#"{"data":{"booking":{"bookingReference":"r-1","seatCount":2,"totalPriceCents":5050},
                 "event":{"title":"Rock <&> Roll","eventDate":"2030-06-01T19:30:00.000Z"}}}"#,
        )
        .unwrap();
        let letter = Letter::new("booking.confirmed", &body, "CHF");
        assert_eq!(letter.subject, "Booking confirmed: Rock <&> Roll");
        assert!(letter.text("Ada").contains("Total: 50.50 CHF"));
        assert!(letter.text("Ada").contains("Date: 2030-06-01 19:30 UTC"));
        assert!(letter.html("Ada").contains("Rock &lt;&amp;&gt; Roll"));
        assert!(!letter.html("Ada").contains("<&>"));
    }
}
