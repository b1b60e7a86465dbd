//! A string that must not end up in logs or error messages: tokens and client secrets.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A secret string. `Debug` and `Display` never show it; [`Secret::expose`] does, on purpose.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the one place that must send or store it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_hide_the_value() {
        let secret = Secret::new("eyJhbGciOi.secret.value");
        assert_eq!(format!("{secret:?}"), "Secret(***)");
        assert_eq!(format!("{secret}"), "***");
        assert_eq!(secret.expose(), "eyJhbGciOi.secret.value");
    }

    #[test]
    fn serializes_as_the_plain_string_for_the_token_files() {
        let secret = Secret::new("abc");
        assert_eq!(
            serde_json::to_string(&secret).expect("serializes"),
            "\"abc\""
        );
    }
}
