//! The ingress token: the gateway's own access token, an OAuth2 client-credentials grant
//! (2-legged) against Amazon Cognito, Keycloak, Entra ID or any OIDC provider.
//!
//! | variable | meaning |
//! |---|---|
//! | `INGRESS_OAUTH_PROVIDER` | `cognito`, `keycloak`, `entra` or `oidc`; default `cognito` when `INGRESS_OAUTH_USER_POOL_ID` is set, else `oidc` |
//! | `INGRESS_OAUTH_CLIENT_ID`, `INGRESS_OAUTH_CLIENT_SECRET` | the app client (required) |
//! | `INGRESS_OAUTH_SCOPES` | scopes to ask for (space or comma separated); Entra default `api://{INGRESS_OAUTH_API_ID or client id}/.default` |
//! | `INGRESS_OAUTH_USER_POOL_ID`, `AWS_REGION` | Cognito pool; the region defaults to the pool id's prefix |
//! | `INGRESS_OAUTH_DOMAIN` | Cognito domain prefix (default: the pool id without `_`, lower case) or a custom domain |
//! | `INGRESS_OAUTH_ISSUER` | Keycloak realm URL, or any OIDC issuer (discovery finds the token URL) |
//! | `INGRESS_OAUTH_TENANT_ID` | Entra tenant |
//! | `INGRESS_OAUTH_TOKEN_URL` | the token URL itself, for any provider (overrides the derived one) |
//! | `INGRESS_OAUTH_RESOURCE` | RFC 8707 `resource` to ask for (the token's audience) |
//! | `INGRESS_OAUTH_AUTH_METHOD` | `basic` (default) or `post` (default for Entra) |

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use url::Url;

use crate::grant::Grant;
use crate::oauth::{self, ClientAuth, OAuthError, TokenClient};
use crate::reuse::{self, Reusable};
use crate::secret::Secret;
use crate::settings::{ConfigError, Settings};
use crate::store::{StoreError, TokenStore};
use crate::time;

/// The file of the ingress token in the store.
pub const INGRESS_FILE: &str = "ingress.json";

/// Which kind of identity provider issues the ingress token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// Amazon Cognito (token URL from the pool's domain).
    Cognito,
    /// Keycloak (token URL from the realm URL).
    Keycloak,
    /// Microsoft Entra ID (token URL from the tenant; `.default` scope).
    Entra,
    /// Any OIDC provider (token URL from discovery).
    Oidc,
}

impl ProviderKind {
    /// The name used in settings and files.
    pub fn name(self) -> &'static str {
        match self {
            ProviderKind::Cognito => "cognito",
            ProviderKind::Keycloak => "keycloak",
            ProviderKind::Entra => "entra",
            ProviderKind::Oidc => "oidc",
        }
    }
}

/// Where the token endpoint is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenEndpoint {
    /// Known from the settings.
    Fixed(Url),
    /// Found by OIDC discovery on this issuer.
    Discover(Url),
}

/// A Cognito user pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CognitoPool {
    /// The pool id, e.g. `us-east-1_AbCdEf123`.
    pub user_pool_id: String,
    /// The AWS region.
    pub region: String,
}

/// The ingress settings, checked.
#[derive(Debug, Clone)]
pub struct IngressConfig {
    /// The provider kind.
    pub kind: ProviderKind,
    /// The app client id.
    pub client_id: String,
    /// The app client secret.
    pub client_secret: Secret,
    /// How the secret is sent.
    pub auth: ClientAuth,
    /// The `scope` parameter, if any.
    pub scopes: Option<String>,
    /// The RFC 8707 `resource` parameter, if any.
    pub resource: Option<String>,
    /// The token endpoint.
    pub endpoint: TokenEndpoint,
    /// The issuer, when configured.
    pub issuer: Option<Url>,
    /// The Cognito pool (Cognito only).
    pub cognito: Option<CognitoPool>,
}

impl IngressConfig {
    /// Reads and checks the `INGRESS_OAUTH_*` settings.
    pub fn from_settings(settings: &Settings) -> Result<IngressConfig, ConfigError> {
        let kind = match settings.get("INGRESS_OAUTH_PROVIDER") {
            Some(name) => match name.to_ascii_lowercase().as_str() {
                "cognito" => ProviderKind::Cognito,
                "keycloak" => ProviderKind::Keycloak,
                "entra" | "entra-id" | "entraid" | "azure" | "azuread" => ProviderKind::Entra,
                "oidc" => ProviderKind::Oidc,
                other => {
                    return Err(ConfigError::invalid(
                        "INGRESS_OAUTH_PROVIDER",
                        format!("{other:?} is not cognito, keycloak, entra or oidc"),
                    ));
                }
            },
            None if settings.get("INGRESS_OAUTH_USER_POOL_ID").is_some() => ProviderKind::Cognito,
            None => ProviderKind::Oidc,
        };
        let client_id = settings
            .require(
                "INGRESS_OAUTH_CLIENT_ID",
                "the app client that gets the gateway's token",
            )?
            .to_owned();
        let client_secret = Secret::new(settings.require(
            "INGRESS_OAUTH_CLIENT_SECRET",
            "the secret of INGRESS_OAUTH_CLIENT_ID",
        )?);
        let issuer = settings
            .get("INGRESS_OAUTH_ISSUER")
            .map(|value| oauth::parse_url("INGRESS_OAUTH_ISSUER", value))
            .transpose()?;
        let token_url = settings
            .get("INGRESS_OAUTH_TOKEN_URL")
            .map(|value| oauth::parse_url("INGRESS_OAUTH_TOKEN_URL", value))
            .transpose()?;
        let mut scopes = settings
            .get("INGRESS_OAUTH_SCOPES")
            .map(|value| crate::settings::split_list(value).join(" "));
        let mut auth = ClientAuth::Basic;
        let mut cognito = None;
        let derived = match kind {
            ProviderKind::Cognito => {
                let pool = cognito_pool(settings)?;
                let domain = match settings.get("INGRESS_OAUTH_DOMAIN") {
                    Some(domain) => domain.to_owned(),
                    None => default_cognito_domain(&pool.user_pool_id),
                };
                let url = cognito_token_url("INGRESS_OAUTH_DOMAIN", &domain, &pool.region)?;
                cognito = Some(pool);
                Some(TokenEndpoint::Fixed(url))
            }
            ProviderKind::Keycloak => match &issuer {
                Some(realm) => Some(TokenEndpoint::Fixed(oauth::parse_url(
                    "INGRESS_OAUTH_ISSUER",
                    &format!(
                        "{}/protocol/openid-connect/token",
                        realm.as_str().trim_end_matches('/')
                    ),
                )?)),
                None => None,
            },
            ProviderKind::Entra => {
                auth = ClientAuth::Post;
                if scopes.is_none() {
                    let api = settings.get("INGRESS_OAUTH_API_ID").unwrap_or(&client_id);
                    let api = api.strip_prefix("api://").unwrap_or(api);
                    scopes = Some(format!("api://{api}/.default"));
                }
                match settings.get("INGRESS_OAUTH_TENANT_ID") {
                    Some(tenant) => {
                        check_url_part("INGRESS_OAUTH_TENANT_ID", tenant)?;
                        Some(TokenEndpoint::Fixed(oauth::parse_url(
                            "INGRESS_OAUTH_TENANT_ID",
                            &format!(
                                "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token"
                            ),
                        )?))
                    }
                    None => issuer.clone().map(TokenEndpoint::Discover),
                }
            }
            ProviderKind::Oidc => issuer.clone().map(TokenEndpoint::Discover),
        };
        let endpoint = match (token_url, derived) {
            (Some(url), _) => TokenEndpoint::Fixed(url),
            (None, Some(endpoint)) => endpoint,
            (None, None) => {
                let needs = match kind {
                    ProviderKind::Keycloak => {
                        "the realm URL, e.g. https://keycloak.example/realms/mcp-gateway"
                    }
                    ProviderKind::Entra => "or INGRESS_OAUTH_TENANT_ID",
                    _ => "the issuer, for discovery; or set INGRESS_OAUTH_TOKEN_URL",
                };
                return Err(ConfigError::Missing {
                    name: "INGRESS_OAUTH_ISSUER".into(),
                    why: format!("{} ingress provider: {needs}", kind.name()),
                });
            }
        };
        let url_to_check = match &endpoint {
            TokenEndpoint::Fixed(url) => ("INGRESS_OAUTH_TOKEN_URL", url),
            TokenEndpoint::Discover(url) => ("INGRESS_OAUTH_ISSUER", url),
        };
        oauth::require_secure_url(url_to_check.0, url_to_check.1)?;
        if let Some(method) = settings.get("INGRESS_OAUTH_AUTH_METHOD") {
            auth = ClientAuth::parse("INGRESS_OAUTH_AUTH_METHOD", method)?;
            if auth == ClientAuth::None {
                return Err(ConfigError::invalid(
                    "INGRESS_OAUTH_AUTH_METHOD",
                    "a client-credentials client always authenticates: basic or post",
                ));
            }
        }
        Ok(IngressConfig {
            kind,
            client_id,
            client_secret,
            auth,
            scopes,
            resource: settings.get("INGRESS_OAUTH_RESOURCE").map(str::to_owned),
            endpoint,
            issuer,
            cognito,
        })
    }

    /// Identifies what was asked for: a stored token is reused only for the same request.
    pub fn request_id(&self) -> String {
        let endpoint = match &self.endpoint {
            TokenEndpoint::Fixed(url) | TokenEndpoint::Discover(url) => url.as_str(),
        };
        format!(
            "{}|{}|{}|{}|{}",
            self.kind.name(),
            self.client_id,
            endpoint,
            self.scopes.as_deref().unwrap_or(""),
            self.resource.as_deref().unwrap_or("")
        )
    }
}

/// `https://{domain}.auth.{region}.amazoncognito.com/oauth2/token`, or
/// `https://{domain}/oauth2/token` for a custom domain (one with a dot). `setting` names the
/// domain's setting in errors.
pub(crate) fn cognito_token_url(
    setting: &str,
    domain: &str,
    region: &str,
) -> Result<Url, ConfigError> {
    check_url_part(setting, domain)?;
    let url = if domain.contains('.') {
        format!("https://{domain}/oauth2/token")
    } else {
        format!("https://{domain}.auth.{region}.amazoncognito.com/oauth2/token")
    };
    oauth::parse_url(setting, &url)
}

/// The default Cognito domain prefix of a pool: its id without `_`, in lower case.
pub(crate) fn default_cognito_domain(user_pool_id: &str) -> String {
    user_pool_id.replace('_', "").to_ascii_lowercase()
}

/// The region of a Cognito pool id (`us-east-1_AbCdEf123` → `us-east-1`), or why it is not one.
pub(crate) fn cognito_pool_region(
    setting: &str,
    user_pool_id: &str,
) -> Result<String, ConfigError> {
    let not_a_pool = || {
        ConfigError::invalid(
            setting,
            format!("{user_pool_id:?} is not a pool id like us-east-1_AbCdEf123"),
        )
    };
    let (region, id) = user_pool_id.split_once('_').ok_or_else(not_a_pool)?;
    let valid_region = !region.is_empty()
        && region
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !valid_region || id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(not_a_pool());
    }
    Ok(region.to_owned())
}

fn cognito_pool(settings: &Settings) -> Result<CognitoPool, ConfigError> {
    let user_pool_id = settings
        .require(
            "INGRESS_OAUTH_USER_POOL_ID",
            "the Cognito user pool, e.g. us-east-1_AbCdEf123",
        )?
        .to_owned();
    let pool_region = cognito_pool_region("INGRESS_OAUTH_USER_POOL_ID", &user_pool_id)?;
    let region = match settings.get("AWS_REGION") {
        Some(region) if region != pool_region => {
            return Err(ConfigError::invalid(
                "AWS_REGION",
                format!(
                    "{region} is not the region of INGRESS_OAUTH_USER_POOL_ID ({pool_region}); \
                     a pool id starts with its region"
                ),
            ));
        }
        _ => pool_region,
    };
    Ok(CognitoPool {
        user_pool_id,
        region,
    })
}

/// A value substituted into a URL must stay one path segment or host label.
pub(crate) fn check_url_part(name: &str, value: &str) -> Result<(), ConfigError> {
    if value.is_empty()
        || !value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
    {
        return Err(ConfigError::invalid(
            name,
            format!("{value:?} may only hold letters, digits, '-', '.' and '_'"),
        ));
    }
    Ok(())
}

/// The stored ingress token (`ingress.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IngressToken {
    /// The provider kind.
    pub provider: ProviderKind,
    /// The token (a JWT for every provider the gateway accepts) and its lifetime.
    #[serde(flatten)]
    pub grant: Grant,
    /// The app client id.
    pub client_id: String,
    /// The token endpoint that issued it.
    pub token_url: String,
    /// Cognito pool id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_pool_id: Option<String>,
    /// Cognito region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// The configured issuer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// What was asked for ([`IngressConfig::request_id`]).
    pub request_id: String,
}

impl IngressToken {
    /// The headers an MCP client sends through the gateway with this token:
    /// `X-Authorization: Bearer …`, plus Cognito's `X-User-Pool-Id`, `X-Client-Id`, `X-Region`.
    pub fn gateway_headers(&self) -> BTreeMap<String, String> {
        let mut headers = BTreeMap::new();
        headers.insert("X-Authorization".to_owned(), self.grant.bearer());
        if let (ProviderKind::Cognito, Some(pool), Some(region)) =
            (self.provider, &self.user_pool_id, &self.region)
        {
            headers.insert("X-User-Pool-Id".to_owned(), pool.clone());
            headers.insert("X-Client-Id".to_owned(), self.client_id.clone());
            headers.insert("X-Region".to_owned(), region.clone());
        }
        headers
    }

    /// Whether it may still be used at `now`.
    pub fn is_fresh(&self, now: u64) -> bool {
        self.grant.is_fresh(now)
    }
}

/// Why no ingress token could be had.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IngressError {
    /// The token request failed.
    #[error("ingress token: {0}")]
    OAuth(#[from] OAuthError),
    /// The store failed.
    #[error("ingress token store: {0}")]
    Store(#[from] StoreError),
}

pub use crate::reuse::Outcome;

impl Reusable for IngressToken {
    fn request_id(&self) -> &str {
        &self.request_id
    }

    fn grant(&self) -> &Grant {
        &self.grant
    }
}

/// The stored ingress token if it is fresh and was asked for with these settings, else a new
/// one (stored before it is returned). `force` always asks for a new one.
pub async fn obtain(
    config: &IngressConfig,
    store: &TokenStore,
    http: &reqwest::Client,
    force: bool,
) -> Result<(IngressToken, Outcome), IngressError> {
    if !force
        && let Some(stored) =
            reuse::fresh_stored(store, INGRESS_FILE, &config.request_id(), time::now_unix())
    {
        return Ok((stored, Outcome::Reused));
    }
    let token = fetch(config, http).await?;
    store.write_json(INGRESS_FILE, &token)?;
    Ok((token, Outcome::New))
}

/// Runs the client-credentials grant.
pub async fn fetch(
    config: &IngressConfig,
    http: &reqwest::Client,
) -> Result<IngressToken, OAuthError> {
    let token_url = match &config.endpoint {
        TokenEndpoint::Fixed(url) => url.clone(),
        TokenEndpoint::Discover(issuer) => {
            let url = oauth::discover_token_endpoint(http, issuer).await?;
            oauth::require_secure_url("token_endpoint (discovery)", &url).map_err(|err| {
                OAuthError::BadResponse {
                    url: issuer.to_string(),
                    status: 200,
                    detail: err.to_string(),
                }
            })?;
            url
        }
    };
    tracing::debug!(%token_url, client_id = %config.client_id, "client-credentials grant");
    let client = TokenClient {
        token_url: token_url.clone(),
        client_id: config.client_id.clone(),
        client_secret: Some(config.client_secret.clone()),
        auth: config.auth,
    };
    let resource: Vec<(&str, &str)> = config
        .resource
        .iter()
        .map(|resource| ("resource", resource.as_str()))
        .collect();
    let response = client
        .client_credentials(http, config.scopes.as_deref(), &resource)
        .await?;
    Ok(IngressToken {
        provider: config.kind,
        grant: Grant::from_response(&response, config.scopes.clone(), time::now_unix()),
        client_id: config.client_id.clone(),
        token_url: token_url.to_string(),
        user_pool_id: config
            .cognito
            .as_ref()
            .map(|pool| pool.user_pool_id.clone()),
        region: config.cognito.as_ref().map(|pool| pool.region.clone()),
        issuer: config.issuer.as_ref().map(Url::to_string),
        request_id: config.request_id(),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn config(pairs: &[(&str, &str)]) -> Result<IngressConfig, ConfigError> {
        let mut all = vec![
            ("INGRESS_OAUTH_CLIENT_ID", "client"),
            ("INGRESS_OAUTH_CLIENT_SECRET", "secret"),
        ];
        all.extend_from_slice(pairs);
        IngressConfig::from_settings(&Settings::from_pairs(all.iter().copied()))
    }

    fn fixed(config: &IngressConfig) -> &str {
        match &config.endpoint {
            TokenEndpoint::Fixed(url) => url.as_str(),
            TokenEndpoint::Discover(url) => panic!("discovery on {url}"),
        }
    }

    #[test]
    fn cognito_token_url_comes_from_the_pool_domain() {
        let config = config(&[("INGRESS_OAUTH_USER_POOL_ID", "us-east-1_AbC123")]).unwrap();
        assert_eq!(config.kind, ProviderKind::Cognito);
        assert_eq!(
            fixed(&config),
            "https://us-east-1abc123.auth.us-east-1.amazoncognito.com/oauth2/token"
        );
        assert_eq!(config.auth, ClientAuth::Basic);
        let pool = config.cognito.unwrap();
        assert_eq!(pool.region, "us-east-1");

        let custom = super::tests::config(&[
            ("INGRESS_OAUTH_USER_POOL_ID", "eu-west-1_Pool1"),
            ("AWS_REGION", "eu-west-1"),
            ("INGRESS_OAUTH_DOMAIN", "mcp-gateway"),
        ])
        .unwrap();
        assert_eq!(
            fixed(&custom),
            "https://mcp-gateway.auth.eu-west-1.amazoncognito.com/oauth2/token"
        );
        let own_domain = super::tests::config(&[
            ("INGRESS_OAUTH_USER_POOL_ID", "eu-west-1_Pool1"),
            ("INGRESS_OAUTH_DOMAIN", "auth.example.com"),
        ])
        .unwrap();
        assert_eq!(fixed(&own_domain), "https://auth.example.com/oauth2/token");
    }

    #[test]
    fn cognito_settings_are_checked() {
        let error = config(&[("INGRESS_OAUTH_USER_POOL_ID", "not-a-pool")]).unwrap_err();
        assert!(
            error.to_string().starts_with("INGRESS_OAUTH_USER_POOL_ID:"),
            "{error}"
        );
        let error = config(&[
            ("INGRESS_OAUTH_USER_POOL_ID", "us-east-1_Abc"),
            ("AWS_REGION", "eu-west-1"),
        ])
        .unwrap_err();
        assert!(error.to_string().contains("not the region"), "{error}");
        let error = config(&[
            ("INGRESS_OAUTH_USER_POOL_ID", "us-east-1_Abc"),
            ("INGRESS_OAUTH_DOMAIN", "evil.example/x?"),
        ])
        .unwrap_err();
        assert!(
            error.to_string().starts_with("INGRESS_OAUTH_DOMAIN"),
            "{error}"
        );
        let error = config(&[("INGRESS_OAUTH_PROVIDER", "cognito")]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "INGRESS_OAUTH_USER_POOL_ID is not set (the Cognito user pool, e.g. us-east-1_AbCdEf123)"
        );
    }

    #[test]
    fn keycloak_token_url_comes_from_the_realm() {
        let config = config(&[
            ("INGRESS_OAUTH_PROVIDER", "keycloak"),
            (
                "INGRESS_OAUTH_ISSUER",
                "https://kc.example/realms/mcp-gateway/",
            ),
        ])
        .unwrap();
        assert_eq!(
            fixed(&config),
            "https://kc.example/realms/mcp-gateway/protocol/openid-connect/token"
        );
    }

    #[test]
    fn entra_asks_for_the_default_scope_of_the_api() {
        let config = config(&[
            ("INGRESS_OAUTH_PROVIDER", "entra"),
            ("INGRESS_OAUTH_TENANT_ID", "contoso.onmicrosoft.com"),
        ])
        .unwrap();
        assert_eq!(
            fixed(&config),
            "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token"
        );
        assert_eq!(config.scopes.as_deref(), Some("api://client/.default"));
        assert_eq!(config.auth, ClientAuth::Post);
        let with_api = super::tests::config(&[
            ("INGRESS_OAUTH_PROVIDER", "entra"),
            ("INGRESS_OAUTH_TENANT_ID", "t1"),
            ("INGRESS_OAUTH_API_ID", "api://11111111-2222"),
        ])
        .unwrap();
        assert_eq!(
            with_api.scopes.as_deref(),
            Some("api://11111111-2222/.default")
        );
    }

    #[test]
    fn oidc_uses_discovery_unless_a_token_url_is_given() {
        let config = config(&[("INGRESS_OAUTH_ISSUER", "https://idp.example/")]).unwrap();
        assert_eq!(config.kind, ProviderKind::Oidc);
        assert_eq!(
            config.endpoint,
            TokenEndpoint::Discover(Url::parse("https://idp.example/").unwrap())
        );
        let direct = super::tests::config(&[
            ("INGRESS_OAUTH_ISSUER", "https://idp.example/"),
            ("INGRESS_OAUTH_TOKEN_URL", "https://idp.example/oauth/token"),
            ("INGRESS_OAUTH_SCOPES", "a, b c"),
        ])
        .unwrap();
        assert_eq!(fixed(&direct), "https://idp.example/oauth/token");
        assert_eq!(direct.scopes.as_deref(), Some("a b c"));
        let error = super::tests::config(&[]).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("INGRESS_OAUTH_ISSUER is not set"),
            "{error}"
        );
    }

    #[test]
    fn the_client_secret_is_never_sent_over_plain_http_to_another_host() {
        let error = config(&[("INGRESS_OAUTH_TOKEN_URL", "http://idp.example/token")]).unwrap_err();
        assert!(error.to_string().contains("plain http"), "{error}");
    }

    #[test]
    fn cognito_tokens_carry_the_pool_headers() {
        let token = IngressToken {
            provider: ProviderKind::Cognito,
            grant: crate::grant::tests::grant("jwt", None, None),
            client_id: "abc".into(),
            token_url: String::new(),
            user_pool_id: Some("us-east-1_P".into()),
            region: Some("us-east-1".into()),
            issuer: None,
            request_id: String::new(),
        };
        let headers = token.gateway_headers();
        assert_eq!(headers["X-Authorization"], "Bearer jwt");
        assert_eq!(headers["X-User-Pool-Id"], "us-east-1_P");
        assert_eq!(headers["X-Client-Id"], "abc");
        assert_eq!(headers["X-Region"], "us-east-1");
        let oidc = IngressToken {
            provider: ProviderKind::Oidc,
            user_pool_id: None,
            region: None,
            ..token
        };
        assert_eq!(oidc.gateway_headers().len(), 1);
    }
}
