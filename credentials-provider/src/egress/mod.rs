//! Egress tokens: tokens of external providers for MCP servers that act on a user's behalf,
//! obtained with the authorization-code grant (3-legged), PKCE S256 and a checked `state`,
//! and kept fresh with refresh tokens.
//!
//! Provider sets are numbered (`_1`, `_2`, …):
//!
//! | variable | meaning |
//! |---|---|
//! | `EGRESS_PROVIDER_NAME_N` | a provider of the catalogue ([`providers`]), e.g. `atlassian` (required) |
//! | `EGRESS_OAUTH_CLIENT_ID_N` | the OAuth app's client id (required) |
//! | `EGRESS_OAUTH_CLIENT_SECRET_N` | its secret; unset for a public client |
//! | `EGRESS_OAUTH_REDIRECT_URI_N` | loopback redirect URI registered with the provider; default `http://localhost:8080/callback` |
//! | `EGRESS_OAUTH_SCOPE_N` | scopes, replacing the provider's defaults |
//! | `EGRESS_MCP_SERVER_NAME_N` | the gateway's MCP server that gets this token; default the provider name |
//! | `EGRESS_OAUTH_CLOUD_ID_N` | Atlassian: the site's cloud id, when the token reaches several sites |
//! | `EGRESS_OAUTH_<VAR>_N` | a template variable of the provider's URLs, e.g. `EGRESS_OAUTH_TENANT_N` |

pub mod callback;
pub mod pkce;
pub mod providers;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use url::Url;

use crate::oauth::{self, ClientAuth, OAuthError, TokenClient, TokenResponse};
use crate::secret::Secret;
use crate::settings::{ConfigError, Settings};
use crate::store::{StoreError, TokenStore};
use crate::time;
use callback::{CallbackError, CallbackServer};
use providers::{CLOUD_ID_HEADER, Catalogue, Provider};

/// The redirect URI when none is set (what the providers' app registrations usually name).
pub const DEFAULT_REDIRECT_URI: &str = "http://localhost:8080/callback";

/// One numbered provider set, checked.
#[derive(Debug, Clone)]
pub struct EgressSet {
    /// The `N` of its variables.
    pub index: u32,
    /// The provider, templates filled in.
    pub provider: Provider,
    /// The OAuth client id.
    pub client_id: String,
    /// The client secret (`None`: public client).
    pub client_secret: Option<Secret>,
    /// The redirect URI (loopback).
    pub redirect_uri: Url,
    /// The scopes to ask for.
    pub scopes: Vec<String>,
    /// The MCP server (gateway path) that gets the token.
    pub mcp_server: String,
    /// A chosen Atlassian cloud id.
    pub cloud_id: Option<String>,
}

impl EgressSet {
    /// The token file of this provider.
    pub fn file_name(&self) -> String {
        token_file_name(&self.provider.name)
    }

    fn setting(&self, stem: &str) -> String {
        format!("{stem}_{}", self.index)
    }

    fn token_client(&self) -> TokenClient {
        TokenClient {
            token_url: self.provider.token_url.clone(),
            client_id: self.client_id.clone(),
            auth: match self.client_secret {
                Some(_) => self.provider.token_auth,
                None => ClientAuth::None,
            },
            client_secret: self.client_secret.clone(),
        }
    }
}

/// `<provider>-egress.json`.
pub fn token_file_name(provider: &str) -> String {
    format!("{provider}-egress.json")
}

/// Checks an MCP server name: it becomes a path segment of the gateway URL.
pub fn check_server_name(setting: &str, name: &str) -> Result<(), ConfigError> {
    let valid = !name.is_empty()
        && name != "."
        && name != ".."
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if valid {
        Ok(())
    } else {
        Err(ConfigError::invalid(
            setting,
            format!("{name:?} is not an MCP server name (letters, digits, '-', '_', '.')"),
        ))
    }
}

/// Every numbered provider set in the settings, in order of `N`.
pub fn sets_from_settings(
    settings: &Settings,
    catalogue: &Catalogue,
) -> Result<Vec<EgressSet>, ConfigError> {
    let mut indices = BTreeSet::new();
    for prefix in ["EGRESS_OAUTH_CLIENT_ID_", "EGRESS_PROVIDER_NAME_"] {
        for name in settings.names_with_prefix(prefix) {
            if settings.get(name).is_none() {
                continue;
            }
            let suffix = &name[prefix.len()..];
            let index: u32 = suffix
                .parse()
                .map_err(|_| ConfigError::invalid(name, "provider sets are numbered: _1, _2, …"))?;
            indices.insert(index);
        }
    }
    let mut sets = Vec::new();
    let mut seen: BTreeMap<String, u32> = BTreeMap::new();
    for index in indices {
        let set = set_from_settings(settings, catalogue, index)?;
        if let Some(previous) = seen.insert(set.provider.name.clone(), index) {
            return Err(ConfigError::invalid(
                format!("EGRESS_PROVIDER_NAME_{index}"),
                format!(
                    "provider {} is already set {previous}; one set per provider (they share a token file)",
                    set.provider.name
                ),
            ));
        }
        sets.push(set);
    }
    Ok(sets)
}

fn set_from_settings(
    settings: &Settings,
    catalogue: &Catalogue,
    index: u32,
) -> Result<EgressSet, ConfigError> {
    let var = |stem: &str| format!("{stem}_{index}");
    let name_setting = var("EGRESS_PROVIDER_NAME");
    let provider_name = settings
        .require(
            &name_setting,
            "which provider this set is for, e.g. atlassian",
        )?
        .to_ascii_lowercase();
    let Some(definition) = catalogue.get(&provider_name) else {
        return Err(ConfigError::invalid(
            name_setting,
            format!(
                "unknown provider {provider_name:?}; known: {} (add others with --providers-file)",
                catalogue.names().join(", ")
            ),
        ));
    };
    let lookup = |template_var: &str| {
        settings
            .get(&var(&format!(
                "EGRESS_OAUTH_{}",
                template_var.to_ascii_uppercase()
            )))
            .map(str::to_owned)
    };
    let var_setting = |template_var: &str| {
        var(&format!(
            "EGRESS_OAUTH_{}",
            template_var.to_ascii_uppercase()
        ))
    };
    let provider = definition.resolve(&provider_name, &lookup, &var_setting)?;
    let client_id = settings
        .require(&var("EGRESS_OAUTH_CLIENT_ID"), "the OAuth app's client id")?
        .to_owned();
    let client_secret = settings
        .get(&var("EGRESS_OAUTH_CLIENT_SECRET"))
        .map(Secret::new);
    let redirect_setting = var("EGRESS_OAUTH_REDIRECT_URI");
    let redirect_uri = oauth::parse_url(
        &redirect_setting,
        settings
            .get(&redirect_setting)
            .unwrap_or(DEFAULT_REDIRECT_URI),
    )?;
    if !callback::is_servable(&redirect_uri) {
        return Err(ConfigError::invalid(
            redirect_setting,
            format!(
                "{redirect_uri} must be http:// on localhost, 127.0.0.1 or [::1] with a port: \
                 this program's callback server receives the answer there"
            ),
        ));
    }
    let scopes = match settings.get(&var("EGRESS_OAUTH_SCOPE")) {
        Some(scopes) => crate::settings::split_list(scopes),
        None => provider.scopes.clone(),
    };
    let server_setting = var("EGRESS_MCP_SERVER_NAME");
    let mcp_server = settings
        .get(&server_setting)
        .unwrap_or(&provider_name)
        .to_owned();
    check_server_name(&server_setting, &mcp_server)?;
    Ok(EgressSet {
        index,
        provider,
        client_id,
        client_secret,
        redirect_uri,
        scopes,
        mcp_server,
        cloud_id: settings
            .get(&var("EGRESS_OAUTH_CLOUD_ID"))
            .map(str::to_owned),
    })
}

/// A stored egress token (`<provider>-egress.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EgressToken {
    /// The provider name.
    pub provider: String,
    /// The OAuth client id it was issued to.
    pub client_id: String,
    /// The access token.
    pub access_token: Secret,
    /// The refresh token, when the provider gave one.
    #[serde(default)]
    pub refresh_token: Option<Secret>,
    /// `token_type`.
    pub token_type: String,
    /// Expiry, seconds since the epoch; `None` when unknown.
    pub expires_at: Option<u64>,
    /// The expiry for people.
    #[serde(default)]
    pub expires_at_human: Option<String>,
    /// When it was obtained.
    pub obtained_at: u64,
    /// The granted scope.
    #[serde(default)]
    pub scope: Option<String>,
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
        headers.insert(
            "Authorization".to_owned(),
            format!("Bearer {}", self.access_token.expose()),
        );
        headers
    }

    /// Whether it may still be used at `now`.
    pub fn is_fresh(&self, now: u64) -> bool {
        time::is_fresh(self.expires_at, now)
    }
}

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
/// valid, so it is kept; the cloud id headers are kept too.
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
    if set.provider.cloud_id_url.is_some() && !stored.headers.is_empty() {
        token.headers = stored.headers.clone();
        token.site_url = stored.site_url.clone();
    } else {
        add_cloud_id(set, http, &mut token).await?;
    }
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
    add_cloud_id(set, http, &mut token).await?;
    Ok(token)
}

fn token_from_response(set: &EgressSet, response: TokenResponse) -> EgressToken {
    let now = time::now_unix();
    let expires_at = response
        .expires_in
        .map(|seconds| now.saturating_add(seconds))
        .or_else(|| oauth::jwt_expiry(response.access_token.expose()));
    EgressToken {
        provider: set.provider.name.clone(),
        client_id: set.client_id.clone(),
        access_token: response.access_token,
        refresh_token: response.refresh_token,
        token_type: response.token_type.unwrap_or_else(|| "Bearer".into()),
        expires_at,
        expires_at_human: expires_at.map(time::human),
        obtained_at: now,
        scope: response.scope.or_else(|| Some(set.scopes.join(" "))),
        token_url: set.provider.token_url.to_string(),
        headers: BTreeMap::new(),
        site_url: None,
    }
}

/// One site of Atlassian's accessible-resources answer.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct AccessibleResource {
    /// The cloud id.
    pub id: String,
    /// The site URL, e.g. `https://example.atlassian.net`.
    #[serde(default)]
    pub url: Option<String>,
    /// The site name.
    #[serde(default)]
    pub name: Option<String>,
}

/// Picks the site: the configured cloud id (which must be among them), else the only or first
/// one.
pub fn choose_cloud_id(
    resources: &[AccessibleResource],
    wanted: Option<&str>,
) -> Result<AccessibleResource, String> {
    match wanted {
        Some(wanted) => resources
            .iter()
            .find(|resource| resource.id == wanted)
            .cloned()
            .ok_or_else(|| {
                format!(
                    "the token does not reach cloud id {wanted}; it reaches: {}",
                    resources
                        .iter()
                        .map(|r| format!("{} ({})", r.id, r.url.as_deref().unwrap_or("?")))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }),
        None => resources.first().cloned().ok_or_else(|| {
            "the token reaches no Atlassian site (did the user pick one on the consent page?)"
                .to_owned()
        }),
    }
}

async fn add_cloud_id(
    set: &EgressSet,
    http: &reqwest::Client,
    token: &mut EgressToken,
) -> Result<(), EgressError> {
    let Some(url) = &set.provider.cloud_id_url else {
        return Ok(());
    };
    let failure = |reason: String| EgressError::CloudId {
        provider: set.provider.name.clone(),
        reason,
    };
    let response = http
        .get(url.clone())
        .bearer_auth(token.access_token.expose())
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|err| failure(format!("{url}: {}", oauth::describe_http_error(&err))))?;
    let status = response.status();
    if !status.is_success() {
        return Err(failure(format!("{url} answered {status}")));
    }
    let resources: Vec<AccessibleResource> = response
        .json::<Value>()
        .await
        .ok()
        .and_then(|json| serde_json::from_value(json).ok())
        .ok_or_else(|| failure(format!("{url} did not answer a list of sites")))?;
    let chosen = choose_cloud_id(&resources, set.cloud_id.as_deref()).map_err(failure)?;
    if resources.len() > 1 && set.cloud_id.is_none() {
        tracing::warn!(
            "{}: the token reaches {} sites; using {} ({}); set {} to choose",
            set.provider.name,
            resources.len(),
            chosen.id,
            chosen.url.as_deref().unwrap_or("?"),
            set.setting("EGRESS_OAUTH_CLOUD_ID")
        );
    }
    token.headers.insert(CLOUD_ID_HEADER.to_owned(), chosen.id);
    token.site_url = chosen.url;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> Settings {
        Settings::from_pairs(pairs.iter().copied())
    }

    fn catalogue() -> Catalogue {
        Catalogue::load(None).unwrap()
    }

    #[test]
    fn numbered_sets_are_read_in_order_with_defaults() {
        let sets = sets_from_settings(
            &settings(&[
                ("EGRESS_OAUTH_CLIENT_ID_2", "gh-client"),
                ("EGRESS_PROVIDER_NAME_2", "github"),
                ("EGRESS_OAUTH_CLIENT_ID_1", "atl-client"),
                ("EGRESS_OAUTH_CLIENT_SECRET_1", "atl-secret"),
                ("EGRESS_PROVIDER_NAME_1", "Atlassian"),
                ("EGRESS_OAUTH_REDIRECT_URI_1", "http://127.0.0.1:9000/cb"),
                ("EGRESS_OAUTH_SCOPE_1", "read:jira-work offline_access"),
                ("EGRESS_MCP_SERVER_NAME_1", "jira"),
            ]),
            &catalogue(),
        )
        .unwrap();
        assert_eq!(sets.len(), 2);
        let atlassian = &sets[0];
        assert_eq!(atlassian.index, 1);
        assert_eq!(atlassian.provider.name, "atlassian");
        assert_eq!(atlassian.scopes, ["read:jira-work", "offline_access"]);
        assert_eq!(atlassian.mcp_server, "jira");
        assert_eq!(atlassian.file_name(), "atlassian-egress.json");
        let github = &sets[1];
        assert_eq!(github.redirect_uri.as_str(), DEFAULT_REDIRECT_URI);
        assert!(github.client_secret.is_none());
        assert_eq!(github.mcp_server, "github");
        assert_eq!(github.scopes, ["read:user", "repo"]);
    }

    #[test]
    fn set_errors_name_the_variable() {
        let error = |pairs: &[(&str, &str)]| {
            sets_from_settings(&settings(pairs), &catalogue())
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            error(&[("EGRESS_OAUTH_CLIENT_ID_3", "x")]),
            "EGRESS_PROVIDER_NAME_3 is not set (which provider this set is for, e.g. atlassian)"
        );
        assert!(
            error(&[
                ("EGRESS_OAUTH_CLIENT_ID_1", "x"),
                ("EGRESS_PROVIDER_NAME_1", "nope")
            ])
            .starts_with("EGRESS_PROVIDER_NAME_1: unknown provider \"nope\"; known: ")
        );
        assert!(
            error(&[
                ("EGRESS_OAUTH_CLIENT_ID_1", "x"),
                ("EGRESS_PROVIDER_NAME_1", "google"),
                (
                    "EGRESS_OAUTH_REDIRECT_URI_1",
                    "https://app.example/callback"
                ),
            ])
            .starts_with(
                "EGRESS_OAUTH_REDIRECT_URI_1: https://app.example/callback must be http://"
            )
        );
        assert!(
            error(&[
                ("EGRESS_OAUTH_CLIENT_ID_1", "x"),
                ("EGRESS_PROVIDER_NAME_1", "google"),
                ("EGRESS_OAUTH_CLIENT_ID_2", "y"),
                ("EGRESS_PROVIDER_NAME_2", "google"),
            ])
            .contains("already set 1")
        );
        assert!(
            error(&[("EGRESS_OAUTH_CLIENT_ID_X", "x")])
                .starts_with("EGRESS_OAUTH_CLIENT_ID_X: provider sets are numbered")
        );
        assert!(
            error(&[
                ("EGRESS_OAUTH_CLIENT_ID_1", "x"),
                ("EGRESS_PROVIDER_NAME_1", "google"),
                ("EGRESS_MCP_SERVER_NAME_1", "../admin"),
            ])
            .starts_with("EGRESS_MCP_SERVER_NAME_1:")
        );
    }

    #[test]
    fn template_variables_per_set() {
        let sets = sets_from_settings(
            &settings(&[
                ("EGRESS_OAUTH_CLIENT_ID_1", "x"),
                ("EGRESS_PROVIDER_NAME_1", "microsoft"),
                ("EGRESS_OAUTH_TENANT_1", "contoso.onmicrosoft.com"),
            ]),
            &catalogue(),
        )
        .unwrap();
        assert_eq!(
            sets[0].provider.auth_url.as_str(),
            "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/authorize"
        );
    }

    #[test]
    fn the_authorization_url_carries_pkce_state_and_provider_parameters() {
        let sets = sets_from_settings(
            &settings(&[
                ("EGRESS_OAUTH_CLIENT_ID_1", "atl client"),
                ("EGRESS_PROVIDER_NAME_1", "atlassian"),
                ("EGRESS_OAUTH_SCOPE_1", "read:jira-work offline_access"),
            ]),
            &catalogue(),
        )
        .unwrap();
        let url = authorization_url(&sets[0], "st4te", Some("ch4llenge"));
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

        let slack = sets_from_settings(
            &settings(&[
                ("EGRESS_OAUTH_CLIENT_ID_1", "s"),
                ("EGRESS_PROVIDER_NAME_1", "slack"),
            ]),
            &catalogue(),
        )
        .unwrap();
        let url = authorization_url(&slack[0], "st", None);
        let query: BTreeMap<String, String> = url.query_pairs().into_owned().collect();
        assert!(query["user_scope"].contains("channels:read,chat:write"));
        assert!(!query.contains_key("code_challenge"));
    }

    #[test]
    fn atlassian_cloud_id_is_chosen_from_accessible_resources() {
        // The shape of https://api.atlassian.com/oauth/token/accessible-resources.
        let resources: Vec<AccessibleResource> = serde_json::from_str(
            r#"[{"id":"1324a887-45db-1bf4-1e99-ef0ff456d421","name":"Site one","url":"https://one.atlassian.net","scopes":["read:jira-work"],"avatarUrl":"https://x"},
                {"id":"2f0c8a1d-0000-4000-8000-000000000002","name":"Site two","url":"https://two.atlassian.net","scopes":[]}]"#,
        )
        .unwrap();
        let first = choose_cloud_id(&resources, None).unwrap();
        assert_eq!(first.id, "1324a887-45db-1bf4-1e99-ef0ff456d421");
        let second =
            choose_cloud_id(&resources, Some("2f0c8a1d-0000-4000-8000-000000000002")).unwrap();
        assert_eq!(second.url.as_deref(), Some("https://two.atlassian.net"));
        let error = choose_cloud_id(&resources, Some("nope")).unwrap_err();
        assert!(error.contains("does not reach cloud id nope"), "{error}");
        assert!(choose_cloud_id(&[], None).is_err());
    }

    #[test]
    fn egress_headers_carry_the_token_and_the_provider_headers() {
        let token = EgressToken {
            provider: "atlassian".into(),
            client_id: "c".into(),
            access_token: Secret::new("at"),
            refresh_token: None,
            token_type: "Bearer".into(),
            expires_at: None,
            expires_at_human: None,
            obtained_at: 0,
            scope: None,
            token_url: String::new(),
            headers: BTreeMap::from([(CLOUD_ID_HEADER.to_owned(), "cid".to_owned())]),
            site_url: None,
        };
        let headers = token.server_headers();
        assert_eq!(headers["Authorization"], "Bearer at");
        assert_eq!(headers["X-Atlassian-Cloud-Id"], "cid");
    }
}
