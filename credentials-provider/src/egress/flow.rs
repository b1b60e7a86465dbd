//! The flows: reuse a fresh stored token, else refresh it, else authorize in the browser
//! (authorization code, PKCE S256, checked `state`, one-shot loopback callback).

use std::collections::BTreeMap;
use std::time::Duration;

use oauth2::basic::BasicClient;
use oauth2::{AuthUrl, ClientId, CsrfToken, PkceCodeChallenge, RedirectUrl, Scope};
use url::Url;

use super::atlassian;
use super::callback::{CallbackError, CallbackServer};
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
        .refresh(http, refresh_token, set.provider.token_response)
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

/// An authorization request: the URL the user opens, the `state` the callback must bring
/// back, and the PKCE verifier that goes with the URL's challenge.
#[derive(Debug, Clone)]
pub struct AuthorizationRequest {
    /// The authorization URL.
    pub url: Url,
    /// The `state` (32 random bytes, base64url).
    pub state: Secret,
    /// The PKCE S256 verifier (32 random bytes), when the provider takes PKCE.
    pub verifier: Option<Secret>,
}

/// A new authorization request (authorization code, RFC 6749 §4.1.1): a random `state`, a
/// PKCE S256 challenge (RFC 7636) unless the provider does not take PKCE, the scopes in the
/// provider's parameter and separator, and its extra parameters.
pub fn authorization_request(set: &EgressSet) -> AuthorizationRequest {
    let client = BasicClient::new(ClientId::new(set.client_id.clone()))
        .set_auth_uri(AuthUrl::from_url(set.provider.auth_url.clone()))
        .set_redirect_uri(RedirectUrl::from_url(set.redirect_uri.clone()));
    let mut request = client.authorize_url(|| CsrfToken::new_random_len(32));
    let standard_scopes =
        set.provider.scope_param == "scope" && set.provider.scope_separator == " ";
    if standard_scopes {
        request = request.add_scopes(set.scopes.iter().map(|scope| Scope::new(scope.clone())));
    } else if !set.scopes.is_empty() {
        request = request.add_extra_param(
            set.provider.scope_param.as_str(),
            set.scopes.join(&set.provider.scope_separator),
        );
    }
    let mut verifier = None;
    if set.provider.requires_pkce {
        let (challenge, pkce_verifier) = PkceCodeChallenge::new_random_sha256_len(32);
        request = request.set_pkce_challenge(challenge);
        verifier = Some(Secret::new(pkce_verifier.into_secret()));
    }
    for (name, value) in &set.provider.auth_params {
        request = request.add_extra_param(name.as_str(), value.as_str());
    }
    let (url, state) = request.url();
    AuthorizationRequest {
        url,
        state: Secret::new(state.into_secret()),
        verifier,
    }
}

/// The interactive authorization: callback server up, URL shown, code received (state
/// checked), code exchanged with the PKCE verifier.
pub async fn authorize(
    set: &EgressSet,
    http: &reqwest::Client,
    options: &FlowOptions,
) -> Result<EgressToken, EgressError> {
    let provider = set.provider.name.clone();
    let request = authorization_request(set);
    let server = CallbackServer::bind(
        &set.redirect_uri,
        request.state.expose(),
        &set.setting("EGRESS_OAUTH_REDIRECT_URI"),
    )
    .await
    .map_err(|source| EgressError::Callback {
        provider: provider.clone(),
        source,
    })?;
    (options.show_url)(set, &request.url);
    let code = server
        .wait(options.callback_timeout)
        .await
        .map_err(|source| EgressError::Callback {
            provider: provider.clone(),
            source,
        })?;
    let response = set
        .token_client()
        .authorization_code(
            http,
            &code,
            &set.redirect_uri,
            request.verifier.as_ref(),
            set.provider.token_response,
        )
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
        let mut google = sets(&[
            ("EGRESS_OAUTH_CLIENT_ID_1", "g"),
            ("EGRESS_PROVIDER_NAME_1", "google"),
        ]);
        let request = authorization_request(&google[0]);
        let query: BTreeMap<String, String> = request.url.query_pairs().into_owned().collect();
        assert_eq!(request.url.host_str(), Some("accounts.google.com"));
        assert_eq!(query["response_type"], "code");
        assert_eq!(query["client_id"], "g");
        assert_eq!(query["redirect_uri"], DEFAULT_REDIRECT_URI);
        assert_eq!(query["scope"], "openid email profile");
        assert_eq!(query["state"], request.state.expose());
        assert_eq!(request.state.expose().len(), 43, "32 random bytes");
        assert_eq!(query["access_type"], "offline");
        // PKCE S256: the challenge is the verifier's SHA-256, and the verifier stays here.
        let verifier = request.verifier.unwrap();
        assert_eq!(verifier.expose().len(), 43);
        let challenge = PkceCodeChallenge::from_code_verifier_sha256(
            &oauth2::PkceCodeVerifier::new(verifier.expose().to_owned()),
        );
        assert_eq!(query["code_challenge"], challenge.as_str());
        assert_eq!(query["code_challenge_method"], "S256");
        assert!(!request.url.as_str().contains(verifier.expose()));
        // Each request is new.
        let again = authorization_request(&google.remove(0));
        assert_ne!(again.state.expose(), request.state.expose());

        // Atlassian: no PKCE (not documented), its audience and consent prompt.
        let request = authorization_request(&atlassian[0]);
        let query: BTreeMap<String, String> = request.url.query_pairs().into_owned().collect();
        assert_eq!(query["client_id"], "atl client");
        assert_eq!(query["scope"], "read:jira-work offline_access");
        assert_eq!(query["audience"], "api.atlassian.com");
        assert_eq!(query["prompt"], "consent");
        assert!(request.verifier.is_none() && !query.contains_key("code_challenge"));

        // Slack: user scopes, comma separated, in user_scope.
        let slack = sets(&[
            ("EGRESS_OAUTH_CLIENT_ID_1", "s"),
            ("EGRESS_PROVIDER_NAME_1", "slack"),
        ]);
        let request = authorization_request(&slack[0]);
        let query: BTreeMap<String, String> = request.url.query_pairs().into_owned().collect();
        assert!(query["user_scope"].contains("channels:read,chat:write"));
        assert!(!query.contains_key("scope"));
    }

    #[test]
    fn s256_matches_the_rfc_7636_example() {
        // RFC 7636, Appendix B.
        let verifier =
            oauth2::PkceCodeVerifier::new("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk".to_owned());
        assert_eq!(
            PkceCodeChallenge::from_code_verifier_sha256(&verifier).as_str(),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }
}
