//! POST /auth/register, POST /auth/login, GET /auth/me.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;

use super::extract::AuthUser;
use super::model::{AuthResponse, LoginRequest, RegisterRequest, User};
use super::service::{self, NewUser};
use crate::error::{AppError, ErrorBody, Result};
use crate::http::ValidatedJson;
use crate::limits::AuthRateLimit;
use crate::state::AppState;

/// Register a new account
///
/// Creates a USER (default) or ORGANIZER account and returns a token for it. The email is
/// stored lower-cased and must be unique regardless of case.
#[utoipa::path(
    post, path = "/auth/register", tag = "auth",
    request_body = RegisterRequest,
    responses(
        (status = 201, description = "Account created", body = AuthResponse),
        (status = 400, description = "Validation failed", body = ErrorBody),
        (status = 409, description = "Email already in use", body = ErrorBody),
        (status = 429, description = "Too many requests", body = ErrorBody),
    )
)]
pub async fn register(
    _: AuthRateLimit,
    State(state): State<AppState>,
    ValidatedJson(body): ValidatedJson<RegisterRequest>,
) -> Result<(StatusCode, Json<AuthResponse>)> {
    let role = body.role();
    let (Some(firstname), Some(lastname), Some(email), Some(password)) =
        (body.firstname, body.lastname, body.email, body.password)
    else {
        return Err(AppError::bad_request("Missing required fields"));
    };
    let new = NewUser {
        firstname,
        lastname,
        email,
        password,
        role,
    };
    let user = service::register(&state.db, new).await?;
    Ok((StatusCode::CREATED, Json(token_response(&state, user)?)))
}

/// Log in
///
/// Exchanges an email (case-insensitive) and password for a bearer token.
#[utoipa::path(
    post, path = "/auth/login", tag = "auth",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Logged in", body = AuthResponse),
        (status = 400, description = "Validation failed", body = ErrorBody),
        (status = 401, description = "Invalid email or password", body = ErrorBody),
        (status = 429, description = "Too many requests", body = ErrorBody),
    )
)]
pub async fn login(
    _: AuthRateLimit,
    State(state): State<AppState>,
    ValidatedJson(body): ValidatedJson<LoginRequest>,
) -> Result<Json<AuthResponse>> {
    let (Some(email), Some(password)) = (body.email, body.password) else {
        return Err(AppError::bad_request("Missing required fields"));
    };
    let user = service::login(&state.db, &email, password).await?;
    Ok(Json(token_response(&state, user)?))
}

/// The current user
///
/// Returns the account the bearer token belongs to.
#[utoipa::path(
    get, path = "/auth/me", tag = "auth",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller", body = User),
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
    )
)]
pub async fn me(State(state): State<AppState>, caller: AuthUser) -> Result<Json<User>> {
    let user = service::find(&state.db, caller.id)
        .await?
        .ok_or_else(super::invalid_token)?;
    Ok(Json(user))
}

fn token_response(state: &AppState, user: User) -> Result<AuthResponse> {
    Ok(AuthResponse {
        access_token: state.jwt.issue(user.id, user.role)?,
        token_type: "Bearer",
        expires_in: state.jwt.ttl().as_secs(),
        user,
    })
}
