//! Standard Webhooks signatures: `v1,` + base64 of HMAC-SHA256 over
//! `"<webhook-id>.<webhook-timestamp>.<body>"`, keyed with the decoded part of `whsec_…`.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use ring::hmac;

/// The `webhook-signature` header value; `None` for a secret that is not `whsec_` + base64.
pub fn signature(secret: &str, id: &str, timestamp: i64, body: &str) -> Option<String> {
    let key = STANDARD.decode(secret.strip_prefix("whsec_")?).ok()?;
    let key = hmac::Key::new(hmac::HMAC_SHA256, &key);
    let tag = hmac::sign(&key, format!("{id}.{timestamp}.{body}").as_bytes());
    Some(format!("v1,{}", STANDARD.encode(tag.as_ref())))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the Standard Webhooks specification's reference libraries.
    #[test]
    fn matches_the_specification_example() {
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let id = "msg_p5jXN8AQM9LWM0D4loKWxJek";
        let body = r#"{"test": 2432232314}"#;
        assert_eq!(
            signature(secret, id, 1614265330, body).as_deref(),
            Some("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
        );
    }

    #[test]
    fn refuses_a_secret_without_its_prefix() {
        assert!(signature("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "a", 1, "{}").is_none());
    }
}
