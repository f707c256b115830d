//! Who is calling: the authenticated-user extractors, and the role requirement.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

use super::model::Role;
use super::service;
use crate::error::AppError;
use crate::state::AppState;

/// A caller with a valid token whose user still exists. Missing or bad token → 401.
#[derive(Debug, Clone, Copy)]
pub struct AuthUser {
    pub id: i32,
    pub role: Role,
}

impl AuthUser {
    /// The caller, if their role may act as `role` (an ORGANIZER may do all a USER may).
    pub fn require(self, role: Role) -> Result<Self, AppError> {
        if self.role == role || self.role == Role::Organizer {
            return Ok(self);
        }
        Err(AppError::forbidden("Forbidden resource"))
    }
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        MaybeAuthUser::from_request_parts(parts, state)
            .await?
            .0
            .ok_or_else(|| AppError::unauthorized("Unauthorized"))
    }
}

/// For public routes: anonymous without an Authorization header, but a header that is present
/// must hold a valid token (a bad token is 401, never silently anonymous).
#[derive(Debug, Clone, Copy)]
pub struct MaybeAuthUser(pub Option<AuthUser>);

impl MaybeAuthUser {
    pub fn id(&self) -> Option<i32> {
        self.0.map(|user| user.id)
    }

    pub fn is_organizer(&self) -> bool {
        self.0.is_some_and(|user| user.role == Role::Organizer)
    }
}

impl FromRequestParts<AppState> for MaybeAuthUser {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let Some(token) = TokenUser::from_parts(parts, state)? else {
            return Ok(Self(None));
        };
        Ok(Self(Some(token.user(state).await?)))
    }
}

/// The 401 for a token that is malformed, forged, expired, or whose user no longer exists.
pub fn invalid_token() -> AppError {
    AppError::unauthorized("Invalid or expired token")
}

/// A caller whose token is valid, checked without a database round trip. Only for routes
/// that verify the user's existence themselves, in their own query (POST /bookings does it in
/// the booking transaction); everything else uses `AuthUser`.
#[derive(Debug, Clone, Copy)]
pub struct TokenUser {
    pub id: i32,
}

impl TokenUser {
    /// `None` without an Authorization header; 401 for a header without a valid token.
    fn from_parts(parts: &Parts, state: &AppState) -> Result<Option<Self>, AppError> {
        let Some(header) = parts.headers.get(AUTHORIZATION) else {
            return Ok(None);
        };
        let token = header
            .to_str()
            .ok()
            .and_then(|value| value.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|token| !token.is_empty())
            .ok_or_else(invalid_token)?;
        let id = state.jwt.verify(token).ok_or_else(invalid_token)?;
        Ok(Some(Self { id }))
    }
}

impl TokenUser {
    /// The caller as `AuthUser` checks it (also for a route that checks the user in its own
    /// query but must answer a request that fails before that query exactly as `AuthUser`
    /// would). The role comes from the database, so a token outlives no deletion or role change.
    pub async fn user(self, state: &AppState) -> Result<AuthUser, AppError> {
        let role = service::role_of(&state.db, self.id)
            .await?
            .ok_or_else(invalid_token)?;
        Ok(AuthUser { id: self.id, role })
    }

    /// The caller as `Organizer` checks it (see `user`).
    pub async fn organizer(self, state: &AppState) -> Result<AuthUser, AppError> {
        self.user(state).await?.require(Role::Organizer)
    }
}

impl FromRequestParts<AppState> for TokenUser {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        Self::from_parts(parts, state)?.ok_or_else(|| AppError::unauthorized("Unauthorized"))
    }
}

/// A caller with the ORGANIZER role: USER → 403.
#[derive(Debug, Clone, Copy)]
pub struct Organizer(pub AuthUser);

impl FromRequestParts<AppState> for Organizer {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let user = AuthUser::from_request_parts(parts, state).await?;
        Ok(Self(user.require(Role::Organizer)?))
    }
}
