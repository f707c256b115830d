//! One attempt at a webhook: the signed `POST`, 10 seconds at most, redirects not followed, and
//! only to public addresses unless `WEBHOOK_ALLOW_PRIVATE` (the client's resolver enforces it).

use std::sync::Arc;
use std::time::Duration;

use reqwest::header::CONTENT_TYPE;
use reqwest::{redirect, Client};

use super::address::{self, PublicOnly};
use super::outbox::{Claimed, Outcome};
use super::sign::signature;

pub const TIMEOUT: Duration = Duration::from_secs(10);

/// The client every delivery of an instance shares (its connection pool too).
pub fn client(allow_private: bool) -> reqwest::Result<Client> {
    // No proxy from the environment: a proxy would connect to whatever address the URL names,
    // past the resolver below.
    let builder = Client::builder()
        .no_proxy()
        .redirect(redirect::Policy::none())
        .timeout(TIMEOUT)
        .connect_timeout(TIMEOUT)
        .user_agent(concat!(
            "event-booking-webhooks/",
            env!("CARGO_PKG_VERSION")
        ));
    let builder = if allow_private {
        builder
    } else {
        builder.dns_resolver(Arc::new(PublicOnly))
    };
    builder.build()
}

pub async fn send(client: &Client, attempt: &Claimed, allow_private: bool) -> Outcome {
    let failed = |error: String| Outcome {
        delivered: false,
        status_code: None,
        error: Some(error),
    };
    let (Some(raw_url), Some(secret)) = (&attempt.url, &attempt.secret) else {
        return failed("the webhook no longer exists".into());
    };
    let Some(url) = address::parse(raw_url) else {
        return failed("the webhook URL is not a valid http(s) URL".into());
    };
    if !address::literal_allowed(&url, allow_private) {
        return failed(address::NOT_PUBLIC.into());
    }
    let id = attempt.id.to_string();
    let timestamp = chrono::Utc::now().timestamp();
    let Some(signed) = signature(secret, &id, timestamp, &attempt.payload) else {
        return failed("the webhook secret is unusable".into());
    };
    let request = client
        .post(url)
        .header(CONTENT_TYPE, "application/json")
        .header("webhook-id", &id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signed)
        .body(attempt.payload.clone());
    match request.send().await {
        Ok(response) => {
            let status = response.status();
            Outcome {
                delivered: status.is_success(),
                status_code: Some(i32::from(status.as_u16())),
                error: (!status.is_success()).then(|| format!("HTTP {status}")),
            }
        }
        Err(error) => failed(describe(&error)),
    }
}

/// The error and its causes, without the URL (the log is shown to the webhook's organizer).
fn describe(error: &reqwest::Error) -> String {
    let head = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "could not connect"
    } else {
        "request failed"
    };
    super::error_chain(head.to_string(), error)
}
