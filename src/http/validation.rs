//! Hand-written rules for bodies whose shape `validator`'s derive cannot express (partial
//! updates where `null` and "absent" differ). Produces the same `ValidationErrors`, so the
//! same `ValidatedJson` extractor turns them into the contract's message array.

use validator::{ValidationError, ValidationErrors};

#[derive(Default)]
pub struct Rules(ValidationErrors);

impl Rules {
    pub fn fail(&mut self, field: &'static str, message: impl Into<String>) {
        let message: String = message.into();
        self.0.add(
            field,
            ValidationError::new("rule").with_message(message.into()),
        );
    }

    /// Checks a required text: present, not blank, at most `max` characters.
    pub fn text(&mut self, field: &'static str, value: Option<&str>, max: usize) {
        self.text_at(field, field, value, max);
    }

    pub fn max_chars(&mut self, field: &'static str, value: &str, max: usize) {
        self.max_chars_at(field, field, value, max);
    }

    pub fn range(&mut self, field: &'static str, value: i64, min: i64, max: i64) {
        self.range_at(field, field, value, min, max);
    }

    /// `text` for a field whose name is only known at run time (`ticketTypes.0.name`),
    /// grouped under `key`.
    pub fn text_at(&mut self, key: &'static str, name: &str, value: Option<&str>, max: usize) {
        match value {
            None => self.fail(key, format!("{name} should not be empty")),
            Some(text) if text.trim().is_empty() => {
                self.fail(key, format!("{name} should not be empty"))
            }
            Some(text) => self.max_chars_at(key, name, text, max),
        }
    }

    pub fn max_chars_at(&mut self, key: &'static str, name: &str, value: &str, max: usize) {
        if value.chars().count() > max {
            self.fail(
                key,
                format!("{name} must be shorter than or equal to {max} characters"),
            );
        }
    }

    pub fn range_at(&mut self, key: &'static str, name: &str, value: i64, min: i64, max: i64) {
        if value < min {
            self.fail(key, format!("{name} must not be less than {min}"));
        } else if value > max {
            self.fail(key, format!("{name} must not be greater than {max}"));
        }
    }

    pub fn finish(self) -> Result<(), ValidationErrors> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(self.0)
        }
    }
}

/// For partial updates: distinguishes an absent field (`None`) from an explicit `null`
/// (`Some(None)`). Use with `#[serde(default, deserialize_with = "nullable")]`.
pub fn nullable<'de, T, D>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    T: serde::Deserialize<'de>,
    D: serde::Deserializer<'de>,
{
    serde::Deserialize::deserialize(deserializer).map(Some)
}
