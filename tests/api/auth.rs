use jsonwebtoken::{encode, EncodingKey, Header};
use serde_json::{json, Value};

use crate::helpers::{
    assert_error, assert_validation, parts, TestApp, INVALID_TOKEN, JWT_SECRET, PASSWORD,
};

fn registration(email: &str) -> Value {
    json!({ "firstname": "Ada", "lastname": "Lovelace", "email": email, "password": PASSWORD })
}

#[tokio::test]
async fn register_returns_a_token_and_the_user_and_stores_a_hash() {
    let app = TestApp::spawn().await;
    let mut body = registration("Ada@Example.COM");
    body["country"] = json!("UK"); // unknown fields are ignored
    let (status, body) = parts(app.post("/auth/register", None, &body).await).await;

    assert_eq!(status, 201, "{body}");
    assert_eq!(body["tokenType"], "Bearer");
    assert_eq!(body["expiresIn"], 86400);
    assert!(body["accessToken"]
        .as_str()
        .is_some_and(|t| t.split('.').count() == 3));
    let user = &body["user"];
    assert_eq!(user["email"], "ada@example.com");
    assert_eq!(user["role"], "USER");
    assert_eq!(user["firstname"], "Ada");
    assert!(user.get("password").is_none() && user.get("passwordHash").is_none());
    let keys: Vec<&String> = user.as_object().unwrap().keys().collect();
    assert_eq!(keys.len(), 7, "exactly the User fields: {keys:?}");
    assert!(user["createdAt"].as_str().unwrap().ends_with('Z'));

    let (email, hash): (String, String) =
        sqlx::query_as("SELECT email, password_hash FROM users WHERE id = $1")
            .bind(user["id"].as_i64().unwrap() as i32)
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(email, "ada@example.com");
    assert!(
        hash.starts_with("$argon2id$"),
        "argon2id hash, never the password"
    );
}

#[tokio::test]
async fn register_as_organizer() {
    let app = TestApp::spawn().await;
    let mut body = registration("org@example.com");
    body["role"] = json!("ORGANIZER");
    let (status, body) = parts(app.post("/auth/register", None, &body).await).await;
    assert_eq!(status, 201);
    assert_eq!(body["user"]["role"], "ORGANIZER");
}

#[tokio::test]
async fn duplicate_email_is_409_case_insensitively() {
    let app = TestApp::spawn().await;
    app.user("dup@example.com").await;
    let (status, body) = parts(
        app.post("/auth/register", None, &registration("DUP@example.com"))
            .await,
    )
    .await;
    assert_error(status, &body, 409, "Email already in use");
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(count, 1);
}

#[tokio::test]
async fn register_validation_lists_every_broken_rule() {
    let app = TestApp::spawn().await;
    let (status, body) = parts(app.post("/auth/register", None, &json!({})).await).await;
    assert_validation(
        status,
        &body,
        &[
            "firstname should not be empty",
            "lastname should not be empty",
            "email should not be empty",
            "password should not be empty",
        ],
    );

    let bad = json!({
        "firstname": "  ", "lastname": "x".repeat(101), "email": "not-an-email",
        "password": "short", "role": "ADMIN",
    });
    let (status, body) = parts(app.post("/auth/register", None, &bad).await).await;
    assert_validation(
        status,
        &body,
        &[
            "firstname should not be empty",
            "lastname must be shorter than or equal to 100 characters",
            "email must be an email",
            "password must be longer than or equal to 8 characters",
            "role must be one of the following values: USER, ORGANIZER",
        ],
    );
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(count, 0, "nothing is written on a validation failure");
}

#[tokio::test]
async fn password_rules() {
    let app = TestApp::spawn().await;
    let weak = "abcdefgh1"; // no upper-case letter, no symbol
    let too_long = format!("Aa1!{}", "x".repeat(125));
    for (password, message) in [
        (weak, "password must contain at least one lowercase letter, one uppercase letter, one number and one symbol"),
        (too_long.as_str(), "password must be shorter than or equal to 128 characters"),
    ] {
        let mut body = registration("p@example.com");
        body["password"] = json!(password);
        let (status, body) = parts(app.post("/auth/register", None, &body).await).await;
        assert_validation(status, &body, &[message]);
    }
    // 100 characters of names count characters, not bytes.
    let mut body = registration("unicode@example.com");
    body["firstname"] = json!("é".repeat(100));
    let (status, _) = parts(app.post("/auth/register", None, &body).await).await;
    assert_eq!(status, 201);
}

#[tokio::test]
async fn login_matches_email_case_insensitively() {
    let app = TestApp::spawn().await;
    app.user("login@example.com").await;
    let body = json!({ "email": "LOGIN@example.com", "password": PASSWORD });
    let (status, body) = parts(app.post("/auth/login", None, &body).await).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["tokenType"], "Bearer");
    assert_eq!(body["user"]["email"], "login@example.com");

    let token = body["accessToken"].as_str().unwrap();
    let (status, me) = parts(app.get("/auth/me", Some(token)).await).await;
    assert_eq!(status, 200);
    assert_eq!(me["email"], "login@example.com");
}

#[tokio::test]
async fn wrong_password_and_unknown_email_get_the_same_401() {
    let app = TestApp::spawn().await;
    app.user("known@example.com").await;
    for body in [
        json!({ "email": "known@example.com", "password": "Wr0ng!password" }),
        json!({ "email": "unknown@example.com", "password": PASSWORD }),
    ] {
        let (status, body) = parts(app.post("/auth/login", None, &body).await).await;
        assert_error(status, &body, 401, "Invalid email or password");
    }
    let (status, body) = parts(app.post("/auth/login", None, &json!({})).await).await;
    assert_validation(
        status,
        &body,
        &["email should not be empty", "password should not be empty"],
    );
}

#[tokio::test]
async fn token_lifetime_follows_jwt_expires_in() {
    let app = TestApp::spawn_with(&[("JWT_EXPIRES_IN", "15m")]).await;
    let (status, body) = parts(
        app.post("/auth/register", None, &registration("ttl@example.com"))
            .await,
    )
    .await;
    assert_eq!(status, 201);
    assert_eq!(body["expiresIn"], 900);
    let claims = decode_claims(body["accessToken"].as_str().unwrap());
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        900
    );
    assert_eq!(
        claims["sub"],
        json!(body["user"]["id"].as_i64().unwrap().to_string())
    );
    assert_eq!(claims["role"], "USER");
}

fn decode_claims(token: &str) -> Value {
    use base64_decode::decode;
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&decode(payload)).unwrap()
}

/// A tiny base64url decoder, so the test needs no extra crate.
mod base64_decode {
    pub fn decode(input: &str) -> Vec<u8> {
        let value = |c: u8| match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' => 62,
            _ => 63,
        };
        let mut out = Vec::new();
        let (mut buffer, mut bits) = (0u32, 0);
        for c in input.bytes().filter(|c| *c != b'=') {
            buffer = (buffer << 6) | u32::from(value(c));
            bits += 6;
            if bits >= 8 {
                bits -= 8;
                out.push((buffer >> bits) as u8);
            }
        }
        out
    }
}

fn forge(claims: &Value, secret: &str) -> String {
    encode(
        &Header::default(),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

#[tokio::test]
async fn me_rejects_missing_malformed_forged_expired_and_unsigned_tokens() {
    let app = TestApp::spawn().await;
    let (token, id) = app.user("me@example.com").await;
    let now = chrono::Utc::now().timestamp();
    let sub = id.to_string();

    let mut tampered = token.clone();
    tampered.pop();
    tampered.push(if token.ends_with('A') { 'B' } else { 'A' });
    let expired = forge(
        &json!({ "sub": sub, "role": "USER", "iat": now - 7200, "exp": now - 3600 }),
        JWT_SECRET,
    );
    let other_secret = forge(
        &json!({ "sub": sub, "role": "USER", "iat": now, "exp": now + 3600 }),
        "another-secret-another-secret-another",
    );
    let no_exp = forge(
        &json!({ "sub": sub, "role": "USER", "iat": now }),
        JWT_SECRET,
    );
    let header_none = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0"; // {"alg":"none","typ":"JWT"}
    let payload = token.split('.').nth(1).unwrap();
    let alg_none = format!("{header_none}.{payload}.");
    let hs512 = encode(
        &Header::new(jsonwebtoken::Algorithm::HS512),
        &json!({ "sub": sub, "role": "USER", "iat": now, "exp": now + 3600 }),
        &EncodingKey::from_secret(JWT_SECRET.as_bytes()),
    )
    .unwrap();

    for bad in [
        tampered,
        expired,
        other_secret,
        no_exp,
        alg_none,
        hs512,
        "garbage".to_string(),
    ] {
        let (status, body) = parts(app.get("/auth/me", Some(&bad)).await).await;
        assert_error(status, &body, 401, INVALID_TOKEN);
    }

    let (status, body) = parts(app.get("/auth/me", None).await).await;
    assert_error(status, &body, 401, "Unauthorized");
    let response = app
        .request(reqwest::Method::GET, "/auth/me", None)
        .header("Authorization", format!("Basic {token}"))
        .send()
        .await
        .unwrap();
    let (status, body) = parts(response).await;
    assert_error(status, &body, 401, INVALID_TOKEN);
}

#[tokio::test]
async fn token_of_a_deleted_user_is_401() {
    let app = TestApp::spawn().await;
    let (token, id) = app.user("gone@example.com").await;
    sqlx::query("DELETE FROM users WHERE id = $1")
        .bind(id)
        .execute(&app.db)
        .await
        .unwrap();
    let (status, body) = parts(app.get("/auth/me", Some(&token)).await).await;
    assert_error(status, &body, 401, INVALID_TOKEN);
}

#[tokio::test]
async fn an_email_needs_a_dotted_domain() {
    let app = TestApp::spawn().await;
    for email in ["a@b", "a@b.", "plain"] {
        let (status, body) =
            parts(app.post("/auth/register", None, &registration(email)).await).await;
        assert_validation(status, &body, &["email must be an email"]);
        assert_eq!(
            body["message"].as_array().unwrap().len(),
            1,
            "one message: {body}"
        );
    }
}

#[tokio::test]
async fn tokens_are_read_by_their_subject_only() {
    let app = TestApp::spawn().await;
    let (_, id) = app.user("sub@example.com").await;
    let exp = chrono::Utc::now().timestamp() + 600;
    // Another issuer's spelling: a numeric `sub`, no `iat`, no `role`.
    let token = forge(&json!({ "sub": id, "exp": exp }), JWT_SECRET);
    let (status, body) = parts(app.get("/auth/me", Some(&token)).await).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["email"], "sub@example.com");
    // The role in a token is never trusted: the database says USER.
    let token = forge(
        &json!({ "sub": id.to_string(), "role": "ORGANIZER", "exp": exp }),
        JWT_SECRET,
    );
    let (status, body) = parts(
        app.post(
            "/events",
            Some(&token),
            &json!({ "title": "x", "totalSeats": 1 }),
        )
        .await,
    )
    .await;
    assert_error(status, &body, 403, "Forbidden resource");
}
