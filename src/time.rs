//! Timestamps on the wire: RFC 3339 in UTC with milliseconds (`2026-12-31T18:00:00.000Z`),
//! the format the original service's clients parse.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serializer;

pub type Timestamp = DateTime<Utc>;

pub fn format(value: &Timestamp) -> String {
    value.to_rfc3339_opts(SecondsFormat::Millis, true)
}

pub fn serialize<S: Serializer>(value: &Timestamp, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&format(value))
}

pub mod option {
    use super::*;

    pub fn serialize<S: Serializer>(
        value: &Option<Timestamp>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(value) => super::serialize(value, serializer),
            None => serializer.serialize_none(),
        }
    }
}

/// Parses an ISO 8601 / RFC 3339 timestamp that carries an offset (`Z` or `+02:00`).
pub fn parse(raw: &str) -> Option<Timestamp> {
    DateTime::parse_from_rfc3339(raw.trim())
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_with_milliseconds_and_z() {
        let t = parse("2026-12-31T20:00:00.123456+02:00").expect("valid");
        assert_eq!(format(&t), "2026-12-31T18:00:00.123Z");
        assert!(
            parse("2026-12-31T18:00:00").is_none(),
            "an offset is required"
        );
        assert!(parse("tomorrow").is_none());
    }
}
