//! Path and query extractors that answer bad input with the contract's 400 body.

use axum::extract::{FromRequestParts, Path, Query};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::error::AppError;

/// An integer id from the path, 1..=2147483647 (the range of the `integer` columns).
#[derive(Debug, Clone, Copy)]
pub struct IdPath(pub i32);

impl<S: Send + Sync> FromRequestParts<S> for IdPath {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|e| AppError::bad_request(e.body_text()))?;
        parse_id(&raw).map(Self)
    }
}

fn parse_id(raw: &str) -> Result<i32, AppError> {
    match raw.parse::<i32>() {
        Ok(id) if id >= 1 => Ok(id),
        _ => Err(AppError::bad_request(
            "Validation failed (id must be an integer from 1 to 2147483647)",
        )),
    }
}

/// Two integer ids from the path (`/events/{id}/ticket-types/{typeId}`), each checked like
/// `IdPath`.
#[derive(Debug, Clone, Copy)]
pub struct IdPairPath(pub i32, pub i32);

impl<S: Send + Sync> FromRequestParts<S> for IdPairPath {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path((first, second)) = Path::<(String, String)>::from_request_parts(parts, state)
            .await
            .map_err(|e| AppError::bad_request(e.body_text()))?;
        Ok(Self(parse_id(&first)?, parse_id(&second)?))
    }
}

/// A booking reference (UUID) from the path.
#[derive(Debug, Clone, Copy)]
pub struct ReferencePath(pub Uuid);

impl<S: Send + Sync> FromRequestParts<S> for ReferencePath {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|e| AppError::bad_request(e.body_text()))?;
        // Only the canonical, hyphenated form, as the original's ParseUUIDPipe.
        Some(raw.as_str())
            .filter(|raw| raw.len() == 36)
            .and_then(|raw| Uuid::try_parse(raw).ok())
            .ok_or(())
            .map(Self)
            .map_err(|_| AppError::bad_request("Validation failed (uuid is expected)"))
    }
}

/// `Query<T>` whose rejection is the contract's 400 body.
pub struct QueryParams<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for QueryParams<T> {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Query(value) = Query::<T>::from_request_parts(parts, state)
            .await
            .map_err(|e| AppError::bad_request(e.body_text()))?;
        Ok(Self(value))
    }
}

pub const MAX_LIMIT: i64 = 100;

/// Validated `page` and `limit`.
#[derive(Debug, Clone, Copy)]
pub struct Page {
    pub page: i64,
    pub limit: i64,
}

impl Page {
    /// Parses the raw query values, pushing one message per broken rule into `errors`.
    pub fn parse(page: Option<&str>, limit: Option<&str>, errors: &mut Vec<String>) -> Self {
        Self {
            page: bounded_int("page", page, 1, 1, i64::from(i32::MAX), errors),
            limit: bounded_int("limit", limit, 10, 1, MAX_LIMIT, errors),
        }
    }

    pub fn offset(&self) -> i64 {
        (self.page - 1).saturating_mul(self.limit)
    }

    pub fn meta(&self, total: i64) -> PageMeta {
        PageMeta {
            total,
            page: self.page,
            limit: self.limit,
            total_pages: (total + self.limit - 1) / self.limit,
            total_exact: None,
        }
    }
}

pub fn bounded_int(
    name: &str,
    raw: Option<&str>,
    default: i64,
    min: i64,
    max: i64,
    errors: &mut Vec<String>,
) -> i64 {
    let Some(raw) = raw else { return default };
    match raw.trim().parse::<i64>() {
        Ok(n) if n < min => errors.push(format!("{name} must not be less than {min}")),
        Ok(n) if n > max => errors.push(format!("{name} must not be greater than {max}")),
        Ok(n) => return n,
        Err(_) => errors.push(format!("{name} must be an integer number")),
    }
    default
}

/// The `page`, `limit` and `status` of a list route; 400 listing every broken rule.
pub fn page_and_status<T: for<'de> Deserialize<'de>>(
    page: Option<&str>,
    limit: Option<&str>,
    status: Option<&str>,
    allowed: &[&str],
) -> Result<(Page, Option<T>), AppError> {
    let mut errors = Vec::new();
    let page = Page::parse(page, limit, &mut errors);
    let status = parse_enum("status", status, allowed, &mut errors);
    if !errors.is_empty() {
        return Err(AppError::Validation(errors));
    }
    Ok((page, status))
}

/// Parses an enum-valued query parameter such as `status`.
pub fn parse_enum<T: for<'de> Deserialize<'de>>(
    name: &str,
    raw: Option<&str>,
    allowed: &[&str],
    errors: &mut Vec<String>,
) -> Option<T> {
    let raw = raw?;
    let parsed = serde_json::from_value(serde_json::Value::String(raw.to_string())).ok();
    if parsed.is_none() {
        errors.push(format!(
            "{name} must be one of the following values: {}",
            allowed.join(", ")
        ));
    }
    parsed
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PageMeta {
    #[schema(example = 42)]
    pub total: i64,
    #[schema(example = 1)]
    pub page: i64,
    #[schema(example = 10)]
    pub limit: i64,
    #[schema(example = 5)]
    pub total_pages: i64,
    /// GET /events only: false when more than 10,000 events match and `total` is capped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_exact: Option<bool>,
}

/// The envelope of every list response.
#[derive(Debug, Serialize, ToSchema)]
pub struct Paginated<T> {
    pub data: Vec<T>,
    pub meta: PageMeta,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_defaults_and_bounds() {
        let mut errors = Vec::new();
        let page = Page::parse(None, None, &mut errors);
        assert_eq!((page.page, page.limit), (1, 10));
        assert!(errors.is_empty());

        Page::parse(Some("0"), Some("101"), &mut errors);
        assert_eq!(
            errors,
            [
                "page must not be less than 1",
                "limit must not be greater than 100"
            ]
        );
        errors.clear();
        Page::parse(Some("abc"), Some("1.5"), &mut errors);
        assert_eq!(errors.len(), 2);
    }

    #[test]
    fn total_pages_round_up() {
        let page = Page { page: 1, limit: 10 };
        assert_eq!(page.meta(0).total_pages, 0);
        assert_eq!(page.meta(10).total_pages, 1);
        assert_eq!(page.meta(11).total_pages, 2);
    }
}
