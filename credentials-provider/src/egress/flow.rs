//! The flows: reuse a fresh stored token, else refresh it, else authorize in the browser
//! (authorization code, PKCE S256, checked `state`, one-shot loopback callback).

use std::collections::BTreeMap;
use std::time::Duration;

use url::Url;

use super::atlassian;
use super::callback::{CallbackError, CallbackServer};
use super::pkce;
use super::settings::EgressSet;
use super::token::EgressToken;
use crate::grant::Grant;
use crate::oauth::{OAuthError, TokenResponse};
use crate::secret::Secret;
use crate::store::{StoreError, TokenStore};
use crate::time;

/// Why no egress token could be had.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EgressError {
    /// A token endpoint refused or failed.
    #[error("{provider}: {source}")]
    OAuth {
        /// The provider.
        provider: String,
        /// The failure.
        source: OAuthError,
    },
    /// The callback did not bring a code.
    #[error("{provider}: {source}")]
    Callback {
        /// The provider.
        provider: String,
        /// The failure.
        source: CallbackError,
    },
    /// The Atlassian cloud id lookup failed.
    #[error("{provider}: cloud id: {reason}")]
    CloudId {
        /// The provider.
        provider: String,
        /// What failed.
        reason: String,
    },
    /// The store failed.
    #[error("{provider}: token store: {source}")]
    Store {
        /// The provider.
        provider: String,
        /// The failure.
        source: StoreError,
    },
    /// No randomness for PKCE and state.
    #[error("{provider}: no random numbers from the operating system: {reason}")]
    Random {
        /// The provider.
        provider: String,
        /// What failed.
        reason: String,
    },
}

/// How a token was had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The stored one is still fresh.
    Reused,
    /// The refresh token gave a new one.
    Refreshed,
    /// The user authorized in a browser.
    Authorized,
}

/// Shows the authorization URL to the user (print it, open a browser).
pub type ShowUrl = std::sync::Arc<dyn Fn(&EgressSet, &Url) + Send + Sync>;

/// How the interactive part runs.
#[derive(Clone)]
pub struct FlowOptions {
    /// Ignore stored tokens (and refresh tokens): always authorize again.
    pub force: bool,
    /// How long to wait for the callback.
    pub callback_timeout: Duration,
    /// Called with the authorization URL once the callback server listens (print it, open a
    /// browser).
    pub show_url: ShowUrl,
}

impl std::fmt::Debug for FlowOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlowOptions")
            .field("force", &self.force)
            .field("callback_timeout", &self.callback_timeout)
            .finish_non_exhaustive()
    }
}

/// The stored token if fresh; else a refreshed one when there is a refresh token; else a new
/// authorization. Whatever is new is stored before it is returned.
pub async fn obtain(
    set: &EgressSet,
    store: &TokenStore,
    http: &reqwest::Client,
    options: &FlowOptions,
) -> Result<(EgressToken, Outcome), EgressError> {
    let provider = set.provider.name.clone();
    let store_error = |source| EgressError::Store {
        provider: provider.clone(),
        source,
    };
    let stored = if options.force {
        None
    } else {
        match store.read_json::<EgressToken>(&set.file_name()) {
            Ok(stored) => stored.filter(|token| token.client_id == set.client_id),
            Err(err) => {
                tracing::warn!("{err}; authorizing again");
                None
            }
        }
    };
    if let Some(stored) = &stored {
        if stored.is_fresh(time::now_unix()) {
            return Ok((stored.clone(), Outcome::Reused));
        }
        if let Some(refresh_token) = &stored.refresh_token {
            match refresh(set, http, stored, refresh_token).await {
                Ok(token) => {
                    store
                        .write_json(&set.file_name(), &token)
                        .map_err(store_error)?;
                    return Ok((token, Outcome::Refreshed));
                }
                Err(err) => tracing::warn!("{provider}: refresh failed ({err}); authorizing again"),
            }
        }
    }
    let token = authorize(set, http, options).await?;
    store
        .write_json(&set.file_name(), &token)
        .map_err(store_error)?;
    Ok((token, Outcome::Authorized))
}

/// The refresh-token grant. A provider that returns no new refresh token keeps the old one
/// valid, so it is kept.
pub async fn refresh(
    set: &EgressSet,
    http: &reqwest::Client,
    stored: &EgressToken,
    refresh_token: &Secret,
) -> Result<EgressToken, EgressError> {
    tracing::debug!(provider = %set.provider.name, "refresh-token grant");
    let response = set
        .token_client()
        .request(
            http,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token.expose()),
            ],
            set.provider.token_response_path.as_deref(),
        )
        .await
        .map_err(|source| EgressError::OAuth {
            provider: set.provider.name.clone(),
            source,
        })?;
    let mut token = token_from_response(set, response);
    if token.refresh_token.is_none() {
        token.refresh_token = Some(refresh_token.clone());
    }
    atlassian::complete(set, http, &mut token, Some(stored)).await?;
    Ok(token)
}

/// The authorization URL of a request.
pub fn authorization_url(set: &EgressSet, state: &str, challenge: Option<&str>) -> Url {
    let mut url = set.provider.auth_url.clone();
    {
        let mut query = url.query_pairs_mut();
        query
            .append_pair("response_type", "code")
            .append_pair("client_id", &set.client_id)
            .append_pair("redirect_uri", set.redirect_uri.as_str());
        if !set.scopes.is_empty() {
            query.append_pair(
                &set.provider.scope_param,
                &set.scopes.join(&set.provider.scope_separator),
            );
        }
        query.append_pair("state", state);
        if let Some(challenge) = challenge {
            query
                .append_pair("code_challenge", challenge)
                .append_pair("code_challenge_method", "S256");
        }
        for (name, value) in &set.provider.auth_params {
            query.append_pair(name, value);
        }
    }
    url
}

/// The interactive authorization: callback server up, URL shown, code received (state
/// checked), code exchanged with the PKCE verifier.
pub async fn authorize(
    set: &EgressSet,
    http: &reqwest::Client,
    options: &FlowOptions,
) -> Result<EgressToken, EgressError> {
    let provider = set.provider.name.clone();
    let random_error = |err: getrandom::Error| EgressError::Random {
        provider: provider.clone(),
        reason: err.to_string(),
    };
    let state = pkce::random_token().map_err(random_error)?;
    let pkce = if set.provider.requires_pkce {
        Some(pkce::Pkce::generate().map_err(random_error)?)
    } else {
        None
    };
    let server = CallbackServer::bind(
        &set.redirect_uri,
        &state,
        &set.setting("EGRESS_OAUTH_REDIRECT_URI"),
    )
    .await
    .map_err(|source| EgressError::Callback {
        provider: provider.clone(),
        source,
    })?;
    let url = authorization_url(set, &state, pkce.as_ref().map(|p| p.challenge.as_str()));
    (options.show_url)(set, &url);
    let code = server
        .wait(options.callback_timeout)
        .await
        .map_err(|source| EgressError::Callback {
            provider: provider.clone(),
            source,
        })?;
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", code.expose()),
        ("redirect_uri", set.redirect_uri.as_str()),
    ];
    if let Some(pkce) = &pkce {
        form.push(("code_verifier", pkce.verifier.expose()));
    }
    let response = set
        .token_client()
        .request(http, &form, set.provider.token_response_path.as_deref())
        .await
        .map_err(|source| EgressError::OAuth {
            provider: provider.clone(),
            source,
        })?;
    let mut token = token_from_response(set, response);
    atlassian::complete(set, http, &mut token, None).await?;
    Ok(token)
}

fn token_from_response(set: &EgressSet, response: TokenResponse) -> EgressToken {
    let requested = Some(set.scopes.join(" "));
    EgressToken {
        provider: set.provider.name.clone(),
        client_id: set.client_id.clone(),
        grant: Grant::from_response(&response, requested, time::now_unix()),
        refresh_token: response.refresh_token,
        token_url: set.provider.token_url.to_string(),
        headers: BTreeMap::new(),
        site_url: None,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use std::collections::BTreeMap;

    use crate::egress::settings::DEFAULT_REDIRECT_URI;
    use crate::egress::settings::tests::sets;

    #[test]
    fn the_authorization_url_carries_pkce_state_and_provider_parameters() {
        let atlassian = sets(&[
            ("EGRESS_OAUTH_CLIENT_ID_1", "atl client"),
            ("EGRESS_PROVIDER_NAME_1", "atlassian"),
            ("EGRESS_OAUTH_SCOPE_1", "read:jira-work offline_access"),
        ]);
        let url = authorization_url(&atlassian[0], "st4te", Some("ch4llenge"));
        let query: BTreeMap<String, String> = url.query_pairs().into_owned().collect();
        assert_eq!(url.host_str(), Some("auth.atlassian.com"));
        assert_eq!(query["response_type"], "code");
        assert_eq!(query["client_id"], "atl client");
        assert_eq!(query["redirect_uri"], DEFAULT_REDIRECT_URI);
        assert_eq!(query["scope"], "read:jira-work offline_access");
        assert_eq!(query["state"], "st4te");
        assert_eq!(query["code_challenge"], "ch4llenge");
        assert_eq!(query["code_challenge_method"], "S256");
        assert_eq!(query["audience"], "api.atlassian.com");
        assert_eq!(query["prompt"], "consent");

        let slack = sets(&[
            ("EGRESS_OAUTH_CLIENT_ID_1", "s"),
            ("EGRESS_PROVIDER_NAME_1", "slack"),
        ]);
        let url = authorization_url(&slack[0], "st", None);
        let query: BTreeMap<String, String> = url.query_pairs().into_owned().collect();
        assert!(query["user_scope"].contains("channels:read,chat:write"));
        assert!(!query.contains_key("code_challenge"));
    }
}
