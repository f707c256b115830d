//! Users, roles, and the auth request/response bodies.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use validator::{Validate, ValidationError};

use crate::time::Timestamp;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, sqlx::Type, ToSchema)]
#[sqlx(type_name = "user_role", rename_all = "UPPERCASE")]
#[serde(rename_all = "UPPERCASE")]
pub enum Role {
    User,
    Organizer,
}

impl Role {
    fn parse(raw: &str) -> Option<Self> {
        match raw {
            "USER" => Some(Self::User),
            "ORGANIZER" => Some(Self::Organizer),
            _ => None,
        }
    }
}

/// A user as the API shows it: never the password hash.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({
    "id": 1, "firstname": "Ada", "lastname": "Lovelace", "email": "ada@example.com",
    "role": "ORGANIZER", "createdAt": "2026-11-24T10:00:00.000Z", "updatedAt": "2026-11-24T10:00:00.000Z"
}))]
pub struct User {
    pub id: i32,
    pub firstname: String,
    pub lastname: String,
    pub email: String,
    pub role: Role,
    #[serde(with = "crate::time")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[serde(with = "crate::time")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
}

#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({
    "firstname": "Ada", "lastname": "Lovelace", "email": "ada@example.com",
    "password": "Str0ng!Passw0rd", "role": "ORGANIZER"
}))]
pub struct RegisterRequest {
    #[validate(
        required(message = "firstname should not be empty"),
        custom(function = "not_blank_firstname"),
        length(
            max = 100,
            message = "firstname must be shorter than or equal to 100 characters"
        )
    )]
    #[schema(value_type = String, min_length = 1, max_length = 100)]
    pub firstname: Option<String>,
    #[validate(
        required(message = "lastname should not be empty"),
        custom(function = "not_blank_lastname"),
        length(
            max = 100,
            message = "lastname must be shorter than or equal to 100 characters"
        )
    )]
    #[schema(value_type = String, min_length = 1, max_length = 100)]
    pub lastname: Option<String>,
    #[validate(
        required(message = "email should not be empty"),
        email(message = "email must be an email"),
        custom(function = "email_domain_has_a_dot"),
        length(
            max = 254,
            message = "email must be shorter than or equal to 254 characters"
        )
    )]
    #[schema(value_type = String, format = "email", max_length = 254)]
    pub email: Option<String>,
    #[validate(
        required(message = "password should not be empty"),
        length(
            min = 8,
            message = "password must be longer than or equal to 8 characters"
        ),
        custom(function = "strong_password")
    )]
    #[schema(value_type = String, format = Password, min_length = 8, max_length = 128)]
    pub password: Option<String>,
    /// `USER` (default) or `ORGANIZER`.
    #[validate(custom(function = "known_role"))]
    #[schema(value_type = Option<Role>)]
    pub role: Option<String>,
}

impl RegisterRequest {
    pub fn role(&self) -> Role {
        self.role
            .as_deref()
            .and_then(Role::parse)
            .unwrap_or(Role::User)
    }
}

#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({ "email": "ada@example.com", "password": "Str0ng!Passw0rd" }))]
pub struct LoginRequest {
    #[validate(
        required(message = "email should not be empty"),
        length(min = 1, message = "email should not be empty")
    )]
    #[schema(value_type = String, format = "email", min_length = 1)]
    pub email: Option<String>,
    #[validate(
        required(message = "password should not be empty"),
        length(min = 1, message = "password should not be empty")
    )]
    #[schema(value_type = String, format = Password, min_length = 1)]
    pub password: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuthResponse {
    #[schema(example = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9...")]
    pub access_token: String,
    #[schema(example = "Bearer")]
    pub token_type: &'static str,
    /// Lifetime of the token in seconds.
    #[schema(example = 86400)]
    pub expires_in: u64,
    pub user: User,
}

fn with_message(code: &'static str, message: &'static str) -> ValidationError {
    ValidationError::new(code).with_message(message.into())
}

fn not_blank_firstname(value: &str) -> Result<(), ValidationError> {
    if value.trim().is_empty() {
        return Err(with_message("blank", "firstname should not be empty"));
    }
    Ok(())
}

fn not_blank_lastname(value: &str) -> Result<(), ValidationError> {
    if value.trim().is_empty() {
        return Err(with_message("blank", "lastname should not be empty"));
    }
    Ok(())
}

/// At most 128 characters, with a lower-case and an upper-case letter, a digit and a symbol.
fn strong_password(value: &str) -> Result<(), ValidationError> {
    if value.chars().count() > 128 {
        return Err(with_message(
            "length",
            "password must be shorter than or equal to 128 characters",
        ));
    }
    let has = |pred: fn(char) -> bool| value.chars().any(pred);
    let symbol = |c: char| !c.is_alphanumeric() && !c.is_whitespace();
    if has(char::is_lowercase)
        && has(char::is_uppercase)
        && has(|c| c.is_ascii_digit())
        && has(symbol)
    {
        return Ok(());
    }
    Err(with_message(
        "weak_password",
        "password must contain at least one lowercase letter, one uppercase letter, one number and one symbol",
    ))
}

/// validator's `email` accepts `a@b`; the original (class-validator) wants a dotted domain.
/// Addresses without an `@` are left to the `email` rule, so there is one message, not two.
fn email_domain_has_a_dot(value: &str) -> Result<(), ValidationError> {
    match value.rsplit_once('@') {
        Some((_, domain)) if !domain.contains('.') || domain.ends_with('.') => {
            Err(with_message("email", "email must be an email"))
        }
        _ => Ok(()),
    }
}

fn known_role(value: &str) -> Result<(), ValidationError> {
    match Role::parse(value) {
        Some(_) => Ok(()),
        None => Err(with_message(
            "role",
            "role must be one of the following values: USER, ORGANIZER",
        )),
    }
}
