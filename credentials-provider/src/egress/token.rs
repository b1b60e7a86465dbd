//! The stored egress token (`<provider>-egress.json`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::grant::Grant;
use crate::secret::Secret;

/// `<provider>-egress.json`.
pub fn token_file_name(provider: &str) -> String {
    format!("{provider}-egress.json")
}

/// A stored egress token (`<provider>-egress.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EgressToken {
    /// The provider name.
    pub provider: String,
    /// The OAuth client id it was issued to.
    pub client_id: String,
    /// The access token and its lifetime.
    #[serde(flatten)]
    pub grant: Grant,
    /// The refresh token, when the provider gave one.
    #[serde(default)]
    pub refresh_token: Option<Secret>,
    /// The token endpoint.
    pub token_url: String,
    /// Headers the MCP server needs besides the token (e.g. `X-Atlassian-Cloud-Id`).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Atlassian site URL, when looked up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site_url: Option<String>,
}

impl EgressToken {
    /// The headers an MCP client sends with this token: `Authorization: Bearer …` plus the
    /// provider's headers.
    pub fn server_headers(&self) -> BTreeMap<String, String> {
        let mut headers = self.headers.clone();
        headers.insert("Authorization".to_owned(), self.grant.bearer());
        headers
    }

    /// Whether it may still be used at `now`.
    pub fn is_fresh(&self, now: u64) -> bool {
        self.grant.is_fresh(now)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::egress::providers::CLOUD_ID_HEADER;

    #[test]
    fn egress_headers_carry_the_token_and_the_provider_headers() {
        let token = EgressToken {
            provider: "atlassian".into(),
            client_id: "c".into(),
            grant: crate::grant::tests::grant("at", None, None),
            refresh_token: None,
            token_url: String::new(),
            headers: BTreeMap::from([(CLOUD_ID_HEADER.to_owned(), "cid".to_owned())]),
            site_url: None,
        };
        let headers = token.server_headers();
        assert_eq!(headers["Authorization"], "Bearer at");
        assert_eq!(headers["X-Atlassian-Cloud-Id"], "cid");
    }
}
