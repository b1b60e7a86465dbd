//! What a token endpoint granted, as every token file stores it (flattened into the file's
//! object): the access token, its type, when it expires and for how long it was granted.

use serde::{Deserialize, Serialize};

use crate::oauth::{self, TokenResponse};
use crate::secret::Secret;
use crate::time;

/// An access token and its lifetime.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Grant {
    /// The access token.
    pub access_token: Secret,
    /// `token_type`, usually `Bearer`.
    pub token_type: String,
    /// Expiry, seconds since the epoch; `None` when unknown.
    pub expires_at: Option<u64>,
    /// The expiry for people.
    #[serde(default)]
    pub expires_at_human: Option<String>,
    /// The lifetime granted, in seconds: renewal is timed from it (see [`time::renew_at`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<u64>,
    /// When it was obtained, seconds since the epoch.
    pub obtained_at: u64,
    /// The granted scope (or the requested one, when the provider does not say).
    #[serde(default)]
    pub scope: Option<String>,
}

impl Grant {
    /// The grant of a token response received at `now`. Without `expires_in`, the expiry is
    /// the access token's `exp` when it is a JWT.
    pub fn from_response(
        response: &TokenResponse,
        requested_scope: Option<String>,
        now: u64,
    ) -> Grant {
        let expires_at = response
            .expires_in
            .map(|seconds| now.saturating_add(seconds))
            .or_else(|| oauth::jwt_expiry(response.access_token.expose()));
        Grant {
            access_token: response.access_token.clone(),
            token_type: response
                .token_type
                .clone()
                .unwrap_or_else(|| "Bearer".into()),
            expires_at,
            expires_at_human: expires_at.map(time::human),
            expires_in: expires_at.map(|at| at.saturating_sub(now)),
            obtained_at: now,
            scope: response.scope.clone().or(requested_scope),
        }
    }

    /// Whether it may still be used at `now` (see [`time::is_fresh`]).
    pub fn is_fresh(&self, now: u64) -> bool {
        time::is_fresh(self.expires_at, self.expires_in, now)
    }

    /// When it should be renewed; `None` when it does not expire as far as anyone said.
    pub fn renew_at(&self) -> Option<u64> {
        self.expires_at
            .map(|at| time::renew_at(at, self.expires_in))
    }

    /// Whether it has expired at `now`.
    pub fn has_expired(&self, now: u64) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }

    /// `Bearer <token>`, the value of the header that carries it.
    pub fn bearer(&self) -> String {
        format!("Bearer {}", self.access_token.expose())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    /// A grant for tests: `token`, expiring at `expires_at` after `expires_in` seconds.
    pub(crate) fn grant(token: &str, expires_at: Option<u64>, expires_in: Option<u64>) -> Grant {
        Grant {
            access_token: Secret::new(token),
            token_type: "Bearer".into(),
            expires_at,
            expires_at_human: None,
            expires_in,
            obtained_at: 0,
            scope: None,
        }
    }

    #[test]
    fn the_lifetime_comes_from_expires_in_or_the_jwt() {
        let response = TokenResponse {
            access_token: Secret::new("opaque"),
            token_type: None,
            expires_in: Some(600),
            refresh_token: None,
            scope: None,
        };
        let grant = Grant::from_response(&response, Some("a b".into()), 1_000);
        assert_eq!(grant.expires_at, Some(1_600));
        assert_eq!(grant.expires_in, Some(600));
        assert_eq!(grant.token_type, "Bearer");
        assert_eq!(grant.scope.as_deref(), Some("a b"));
        assert_eq!(grant.renew_at(), Some(1_300));
        assert!(grant.is_fresh(1_299) && !grant.is_fresh(1_300));
        assert_eq!(grant.bearer(), "Bearer opaque");
    }

    #[test]
    fn the_flattened_fields_read_files_without_a_lifetime() {
        let grant: Grant = serde_json::from_str(
            r#"{"access_token":"t","token_type":"Bearer","expires_at":5000,"obtained_at":1000}"#,
        )
        .unwrap();
        assert_eq!(grant.expires_in, None);
        assert_eq!(grant.renew_at(), Some(4_700));
    }
}
