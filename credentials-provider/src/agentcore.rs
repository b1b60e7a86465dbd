//! Amazon Bedrock AgentCore gateways: client-credentials tokens from the gateway's own
//! authorizer (usually a Cognito pool), stored as `agentcore-<name>.json` and added to the MCP
//! client configurations.
//!
//! The gateways are described in a YAML file (`--agentcore-file`, `AGENTCORE_GATEWAYS_FILE`):
//!
//! ```yaml
//! gateways:
//!   customer-support:                  # the entry's name in the configs; the token file's
//!     gateway_url: https://abc.gateway.bedrock-agentcore.us-east-1.amazonaws.com/mcp
//!     user_pool_id: us-east-1_AbCdEf123  # the token URL from the pool (domain: optional prefix)
//!     # token_url: https://….auth.us-east-1.amazoncognito.com/oauth2/token   (instead)
//!     client_id: 7kqi2l0n47mnfmhfapsf29ch4h
//!     client_secret_env: AGENTCORE_SECRET_CUSTOMER_SUPPORT   # read from .env / the environment
//!     scopes: [default-m2m-resource-server-abc/read]
//!     # server: customer-support   # reach it through this gateway's server instead of directly
//! ```
//!
//! A configuration entry reaches the AgentCore gateway directly with `Authorization: Bearer
//! <agentcore token>`, never the ingress token; with `server`, it goes through this project's
//! gateway at `{GATEWAY_URL}/{server}/mcp` with the ingress headers, and the AgentCore token
//! in `Authorization` passes to the upstream like an egress token.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use url::Url;

use crate::egress::check_server_name;
use crate::egress::providers::check_provider_name;
use crate::grant::Grant;
use crate::ingress::{cognito_pool_region, cognito_token_url, default_cognito_domain};
use crate::oauth::{self, ClientAuth, OAuthError, TokenClient};
use crate::reuse::{self, Outcome, Reusable};
use crate::secret::Secret;
use crate::settings::{ConfigError, Settings};
use crate::store::{StoreError, TokenStore};
use crate::time;

/// The setting that names the gateways file.
pub const FILE_SETTING: &str = "AGENTCORE_GATEWAYS_FILE";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GatewaysFile {
    gateways: BTreeMap<String, GatewayEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GatewayEntry {
    gateway_url: String,
    #[serde(default)]
    token_url: Option<String>,
    #[serde(default)]
    user_pool_id: Option<String>,
    #[serde(default)]
    domain: Option<String>,
    client_id: String,
    #[serde(default)]
    client_secret: Option<String>,
    #[serde(default)]
    client_secret_env: Option<String>,
    #[serde(default)]
    scopes: Vec<String>,
    #[serde(default)]
    server: Option<String>,
    #[serde(default)]
    auth_method: Option<String>,
}

/// How an MCP client reaches an AgentCore gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// At its own URL, with only the AgentCore token.
    Direct,
    /// Through this project's gateway, at `{GATEWAY_URL}/{server}/mcp`.
    ViaGateway(String),
}

/// One AgentCore gateway, checked.
#[derive(Debug, Clone)]
pub struct AgentCoreGateway {
    /// Its name (file and configuration entry).
    pub name: String,
    /// The gateway's MCP endpoint.
    pub gateway_url: Url,
    /// How clients reach it.
    pub route: Route,
    /// The token endpoint and the client.
    pub client: TokenClient,
    /// The `scope` parameter, if any.
    pub scopes: Option<String>,
}

impl AgentCoreGateway {
    /// `agentcore-<name>.json`.
    pub fn file_name(&self) -> String {
        format!("agentcore-{}.json", self.name)
    }

    /// Identifies what was asked for: a stored token is reused only for the same request.
    pub fn request_id(&self) -> String {
        format!(
            "agentcore|{}|{}|{}",
            self.client.client_id,
            self.client.token_url,
            self.scopes.as_deref().unwrap_or("")
        )
    }
}

/// The gateways file, or `None` when no file is configured. `flag` is `--agentcore-file`.
pub fn load(
    flag: Option<&Path>,
    settings: &Settings,
) -> Result<Option<Vec<AgentCoreGateway>>, ConfigError> {
    let path = match flag {
        Some(path) => path.to_path_buf(),
        None => match settings.get(FILE_SETTING) {
            Some(path) => PathBuf::from(path),
            None => return Ok(None),
        },
    };
    let text = std::fs::read_to_string(&path).map_err(|err| {
        ConfigError::invalid(
            FILE_SETTING,
            format!("cannot read {}: {err}", path.display()),
        )
    })?;
    let gateways = parse(&text, &path, settings)?;
    if gateways.iter().any(|g| g.client.client_secret.is_some()) {
        refuse_shared_secrets(&path, &text)?;
    }
    Ok(Some(gateways))
}

/// A file that holds a client secret itself must be private, like the token store.
fn refuse_shared_secrets(path: &Path, text: &str) -> Result<(), ConfigError> {
    let holds_literal_secret = text
        .lines()
        .any(|line| line.trim_start().starts_with("client_secret:"));
    let mode = std::fs::metadata(path)
        .map(|metadata| metadata.permissions().mode() & 0o777)
        .unwrap_or(0);
    if holds_literal_secret && mode & 0o077 != 0 {
        return Err(ConfigError::invalid(
            FILE_SETTING,
            format!(
                "{} holds a client_secret and others may read it (mode {mode:03o}): \
                 chmod 600 it, or use client_secret_env",
                path.display()
            ),
        ));
    }
    Ok(())
}

/// Parses and checks a gateways file (`path` names it in errors; `settings` gives the
/// secrets named by `client_secret_env`).
pub fn parse(
    text: &str,
    path: &Path,
    settings: &Settings,
) -> Result<Vec<AgentCoreGateway>, ConfigError> {
    let origin = path.display().to_string();
    let file: GatewaysFile = serde_norway::from_str(text).map_err(|err| {
        let at = err
            .location()
            .map(|at| format!(":{}:{}", at.line(), at.column()))
            .unwrap_or_default();
        ConfigError::invalid(FILE_SETTING, format!("{origin}{at}: {err}"))
    })?;
    file.gateways
        .into_iter()
        .map(|(name, entry)| gateway(&origin, name, entry, settings))
        .collect()
}

fn gateway(
    origin: &str,
    name: String,
    entry: GatewayEntry,
    settings: &Settings,
) -> Result<AgentCoreGateway, ConfigError> {
    let field = |field: &str| format!("{origin}: gateways.{name}.{field}");
    check_provider_name(&name)
        .map_err(|reason| ConfigError::invalid(format!("{origin}: gateways"), reason))?;
    let gateway_url = oauth::parse_url(&field("gateway_url"), &entry.gateway_url)?;
    oauth::require_secure_url(&field("gateway_url"), &gateway_url)?;
    let token_url = match (&entry.token_url, &entry.user_pool_id) {
        (Some(url), None) => oauth::parse_url(&field("token_url"), url)?,
        (None, Some(pool)) => {
            let region = cognito_pool_region(&field("user_pool_id"), pool)?;
            let domain = entry
                .domain
                .clone()
                .unwrap_or_else(|| default_cognito_domain(pool));
            cognito_token_url(&field("domain"), &domain, &region)?
        }
        _ => {
            return Err(ConfigError::invalid(
                field("token_url"),
                "give either token_url or user_pool_id (the Cognito pool of the gateway's authorizer)",
            ));
        }
    };
    if entry.domain.is_some() && entry.user_pool_id.is_none() {
        return Err(ConfigError::invalid(
            field("domain"),
            "domain goes with user_pool_id",
        ));
    }
    oauth::require_secure_url(&field("token_url"), &token_url)?;
    let client_secret = match (&entry.client_secret, &entry.client_secret_env) {
        (Some(secret), None) => Secret::new(secret.clone()),
        (None, Some(variable)) => Secret::new(settings.require(
            variable,
            &format!("the client secret of AgentCore gateway {name} ({origin})"),
        )?),
        _ => {
            return Err(ConfigError::invalid(
                field("client_secret_env"),
                "give either client_secret_env (a variable of .env or the environment) or client_secret",
            ));
        }
    };
    let auth = match entry.auth_method.as_deref() {
        None => ClientAuth::Basic,
        Some(method) => match ClientAuth::parse(&field("auth_method"), method)? {
            ClientAuth::None => {
                return Err(ConfigError::invalid(
                    field("auth_method"),
                    "a client-credentials client always authenticates: basic or post",
                ));
            }
            auth => auth,
        },
    };
    let route = match entry.server {
        Some(server) => {
            check_server_name(&field("server"), &server)?;
            Route::ViaGateway(server)
        }
        None => Route::Direct,
    };
    let scopes = (!entry.scopes.is_empty()).then(|| entry.scopes.join(" "));
    Ok(AgentCoreGateway {
        name,
        gateway_url,
        route,
        client: TokenClient {
            token_url,
            client_id: entry.client_id,
            client_secret: Some(client_secret),
            auth,
        },
        scopes,
    })
}

/// A stored AgentCore token (`agentcore-<name>.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AgentCoreToken {
    /// The gateway's name.
    pub name: String,
    /// The gateway's MCP endpoint.
    pub gateway_url: String,
    /// The app client id.
    pub client_id: String,
    /// The token and its lifetime.
    #[serde(flatten)]
    pub grant: Grant,
    /// The token endpoint that issued it.
    pub token_url: String,
    /// What was asked for ([`AgentCoreGateway::request_id`]).
    pub request_id: String,
}

impl Reusable for AgentCoreToken {
    fn request_id(&self) -> &str {
        &self.request_id
    }

    fn grant(&self) -> &Grant {
        &self.grant
    }
}

/// Why no AgentCore token could be had.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AgentCoreError {
    /// The token request failed.
    #[error("agentcore {name}: {source}")]
    OAuth {
        /// The gateway.
        name: String,
        /// The failure.
        source: OAuthError,
    },
    /// The store failed.
    #[error("agentcore {name}: token store: {source}")]
    Store {
        /// The gateway.
        name: String,
        /// The failure.
        source: StoreError,
    },
}

/// The stored token if it is fresh and was asked for with this configuration, else a new one
/// (stored before it is returned). `force` always asks for a new one.
pub async fn obtain(
    gateway: &AgentCoreGateway,
    store: &TokenStore,
    http: &reqwest::Client,
    force: bool,
) -> Result<(AgentCoreToken, Outcome), AgentCoreError> {
    let file = gateway.file_name();
    if !force
        && let Some(stored) =
            reuse::fresh_stored(store, &file, &gateway.request_id(), time::now_unix())
    {
        return Ok((stored, Outcome::Reused));
    }
    let token = fetch(gateway, http).await?;
    store
        .write_json(&file, &token)
        .map_err(|source| AgentCoreError::Store {
            name: gateway.name.clone(),
            source,
        })?;
    Ok((token, Outcome::New))
}

/// Runs the client-credentials grant.
pub async fn fetch(
    gateway: &AgentCoreGateway,
    http: &reqwest::Client,
) -> Result<AgentCoreToken, AgentCoreError> {
    tracing::debug!(gateway = %gateway.name, token_url = %gateway.client.token_url, "client-credentials grant");
    let response = gateway
        .client
        .client_credentials(http, gateway.scopes.as_deref(), &[])
        .await
        .map_err(|source| AgentCoreError::OAuth {
            name: gateway.name.clone(),
            source,
        })?;
    Ok(AgentCoreToken {
        name: gateway.name.clone(),
        gateway_url: gateway.gateway_url.to_string(),
        client_id: gateway.client.client_id.clone(),
        grant: Grant::from_response(&response, gateway.scopes.clone(), time::now_unix()),
        token_url: gateway.client.token_url.to_string(),
        request_id: gateway.request_id(),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn parse_with(
        text: &str,
        pairs: &[(&str, &str)],
    ) -> Result<Vec<AgentCoreGateway>, ConfigError> {
        parse(
            text,
            Path::new("agentcore.yml"),
            &Settings::from_pairs(pairs.iter().copied()),
        )
    }

    #[test]
    fn a_cognito_pool_gives_the_token_url_and_secrets_come_from_the_settings() {
        let gateways = parse_with(
            "gateways:\n  customer-support:\n    gateway_url: https://abc.gateway.bedrock-agentcore.us-east-1.amazonaws.com/mcp\n    user_pool_id: us-east-1_AbC123\n    client_id: cid\n    client_secret_env: CS_SECRET\n    scopes: [rs/read, rs/write]\n",
            &[("CS_SECRET", "s3cret")],
        )
        .unwrap();
        let gateway = &gateways[0];
        assert_eq!(gateway.name, "customer-support");
        assert_eq!(gateway.file_name(), "agentcore-customer-support.json");
        assert_eq!(
            gateway.client.token_url.as_str(),
            "https://us-east-1abc123.auth.us-east-1.amazoncognito.com/oauth2/token"
        );
        assert_eq!(
            gateway.client.client_secret.as_ref().unwrap().expose(),
            "s3cret"
        );
        assert_eq!(gateway.client.auth, ClientAuth::Basic);
        assert_eq!(gateway.scopes.as_deref(), Some("rs/read rs/write"));
        assert_eq!(gateway.route, Route::Direct);
    }

    #[test]
    fn bad_gateway_entries_name_the_field() {
        let error =
            |text: &str, pairs: &[(&str, &str)]| parse_with(text, pairs).unwrap_err().to_string();
        let base = "gateways:\n  g:\n    gateway_url: https://gw.example/mcp\n    client_id: c\n";
        assert!(
            error(
                &format!("{base}    token_url: https://i/t\n    client_secret_env: S\n"),
                &[]
            )
            .starts_with("S is not set (the client secret of AgentCore gateway g"),
        );
        assert!(
            error(&format!("{base}    token_url: https://idp.example/token\n    user_pool_id: us-east-1_A\n    client_secret: x\n"), &[])
                .starts_with("agentcore.yml: gateways.g.token_url: give either token_url or user_pool_id")
        );
        assert!(
            error(
                &format!("{base}    token_url: http://idp.example/token\n    client_secret: x\n"),
                &[]
            )
            .contains("plain http")
        );
        assert!(
            error("gateways:\n  g:\n    gateway_url: http://gw.example/mcp\n    token_url: https://i/t\n    client_id: c\n    client_secret: x\n", &[])
                .starts_with("agentcore.yml: gateways.g.gateway_url:")
        );
        assert!(
            error(
                &format!(
                    "{base}    token_url: https://i/t\n    client_secret: x\n    server: ../x\n"
                ),
                &[]
            )
            .starts_with("agentcore.yml: gateways.g.server:")
        );
        assert!(error(&base.replace("  g:", "  Bad/Name:"), &[]).contains("provider name"));
        assert!(
            error("gateways:\n  g:\n    gatway_url: x\n", &[])
                .starts_with("AGENTCORE_GATEWAYS_FILE: agentcore.yml:")
        );
    }

    #[test]
    fn a_file_with_a_literal_secret_must_be_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agentcore.yml");
        std::fs::write(
            &path,
            "gateways:\n  g:\n    gateway_url: https://gw.example/mcp\n    token_url: https://idp.example/token\n    client_id: c\n    client_secret: s3cret\n",
        )
        .unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let error = load(Some(&path), &Settings::default())
            .unwrap_err()
            .to_string();
        assert!(error.contains("chmod 600"), "{error}");
        assert!(!error.contains("s3cret"), "the secret is never echoed");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let gateways = load(Some(&path), &Settings::default()).unwrap().unwrap();
        assert_eq!(gateways.len(), 1);
        assert!(load(None, &Settings::default()).unwrap().is_none());
    }
}
