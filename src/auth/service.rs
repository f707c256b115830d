//! The SQL of users and the register/login rules.

use sqlx::PgPool;

use super::model::{Role, User};
use super::password;
use crate::error::{AppError, Result};

const USER_COLUMNS: &str = "id, firstname, lastname, email, role, created_at, updated_at";

pub struct NewUser {
    pub firstname: String,
    pub lastname: String,
    pub email: String,
    pub password: String,
    pub role: Role,
}

pub async fn register(db: &PgPool, new: NewUser) -> Result<User> {
    let hash = password::hash(new.password).await?;
    let sql = format!(
        "INSERT INTO users (firstname, lastname, email, password_hash, role) \
         VALUES ($1, $2, lower($3), $4, $5) RETURNING {USER_COLUMNS}"
    );
    sqlx::query_as::<_, User>(&sql)
        .bind(new.firstname.trim())
        .bind(new.lastname.trim())
        .bind(new.email.trim())
        .bind(hash)
        .bind(new.role)
        .fetch_one(db)
        .await
        .map_err(|e| match AppError::from(e) {
            e if e.constraint() == Some("users_email_key") => {
                AppError::conflict("Email already in use")
            }
            e => e,
        })
}

/// The user with this email and password; one answer for an unknown email and a wrong
/// password, at the same cost, so accounts cannot be enumerated.
pub async fn login(db: &PgPool, email: &str, password: String) -> Result<User> {
    let sql =
        format!("SELECT {USER_COLUMNS}, password_hash FROM users WHERE lower(email) = lower($1)");
    let found = sqlx::query_as::<_, UserWithHash>(&sql)
        .bind(email.trim())
        .fetch_optional(db)
        .await?;
    let stored = found.as_ref().map(|u| u.password_hash.clone());
    match (password::verify(password, stored).await?, found) {
        (true, Some(found)) => Ok(found.user),
        _ => Err(AppError::unauthorized("Invalid email or password")),
    }
}

pub async fn find(db: &PgPool, id: i32) -> Result<Option<User>> {
    let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1");
    Ok(sqlx::query_as::<_, User>(&sql)
        .bind(id)
        .fetch_optional(db)
        .await?)
}

pub async fn role_of(db: &PgPool, id: i32) -> Result<Option<Role>> {
    Ok(sqlx::query_scalar("SELECT role FROM users WHERE id = $1")
        .bind(id)
        .fetch_optional(db)
        .await?)
}

#[derive(sqlx::FromRow)]
struct UserWithHash {
    #[sqlx(flatten)]
    user: User,
    password_hash: String,
}
