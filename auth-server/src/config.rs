//! Configuration from the environment, validated at start.
//!
//! Every variable is read as text with `envy` and checked here, so that a bad value stops the
//! start with one line naming the variable and why. Defaults are safe: loopback listen, deny on
//! doubt.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::decision::CognitoPool;
use crate::jwks::fetch::KeySource;
use crate::token::{Provider, TokenRules};

/// A configuration error: the variable and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{variable}: {reason}")]
pub struct ConfigError {
    /// The environment variable at fault.
    pub variable: &'static str,
    /// What is wrong and what is expected.
    pub reason: String,
}

fn error(variable: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        variable,
        reason: reason.into(),
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// `AUTH_LISTEN`.
    pub listen: SocketAddr,
    /// `AUTH_GRPC_LISTEN`.
    pub grpc_listen: Option<SocketAddr>,
    /// `AUTH_METRICS_LISTEN`: Prometheus `/metrics`; unset = off.
    pub metrics_listen: Option<SocketAddr>,
    /// `AUTH_SCOPES_FILE`.
    pub scopes_file: PathBuf,
    /// Token rules derived from provider, issuer, client ids, audiences, groups claim, leeway.
    pub rules: TokenRules,
    /// Cognito pool, for provider `cognito`.
    pub cognito_pool: Option<CognitoPool>,
    /// Where the key set comes from.
    pub key_source: KeySource,
    /// `AUTH_MAX_BODY_BYTES`.
    pub max_body_bytes: usize,
    /// `AUTH_RESOURCE_URL`, without a trailing `/`.
    pub resource_url: Option<String>,
    /// `AUTH_LOG_FORMAT`.
    pub log_format: LogFormat,
    /// `AUTH_JWKS_REFRESH_SECONDS`: background key set refresh period.
    pub jwks_refresh: Duration,
    /// `AUTH_TOKEN_CACHE_SIZE`: most verified tokens kept; 0 = no cache.
    pub token_cache_size: usize,
    /// `AUTH_MAX_BATCH`: most messages in one JSON-RPC batch.
    pub max_batch: usize,
    /// `AUTH_MAX_LARGE_CHECKS`: bodies over 64 KiB decided at once (others wait, then 503).
    pub max_large_checks: usize,
    /// `AUTH_SCOPES_POLL_SECONDS`: how often the policy file is checked for changes (0 = never).
    pub scopes_poll: Option<Duration>,
    /// `AUTH_SESSION_*`: people's browser sign-in, when configured.
    pub session: Option<crate::session::settings::SessionSettings>,
}

/// The variables as text, as `envy` reads them (prefix `AUTH_`).
#[derive(Debug, Default, Deserialize)]
struct RawConfig {
    listen: Option<String>,
    grpc_listen: Option<String>,
    metrics_listen: Option<String>,
    scopes_file: Option<String>,
    provider: Option<String>,
    cognito_region: Option<String>,
    cognito_user_pool_id: Option<String>,
    issuer: Option<String>,
    jwks_url: Option<String>,
    client_ids: Option<String>,
    audiences: Option<String>,
    groups_claim: Option<String>,
    leeway_seconds: Option<String>,
    max_body_bytes: Option<String>,
    resource_url: Option<String>,
    log_format: Option<String>,
    jwks_refresh_seconds: Option<String>,
    token_cache_size: Option<String>,
    scopes_poll_seconds: Option<String>,
    max_batch: Option<String>,
    max_large_checks: Option<String>,
}

impl Config {
    /// Reads and validates the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_vars(std::env::vars())
    }

    /// Reads and validates the given variables (for tests).
    pub fn from_vars(
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let vars: Vec<(String, String)> = vars
            .into_iter()
            .filter(|(_, value)| !value.trim().is_empty())
            .collect();
        let raw: RawConfig = envy::prefixed("AUTH_")
            .from_iter(vars.iter().cloned())
            .map_err(|err| error("AUTH_*", err.to_string()))?;
        let mut config = raw.validate()?;
        config.session = crate::session::settings::from_vars(&vars)?;
        Ok(config)
    }
}

impl RawConfig {
    fn validate(self) -> Result<Config, ConfigError> {
        let provider = match self.provider.as_deref().map(str::trim) {
            None | Some("cognito") => Provider::Cognito,
            Some("oidc") => Provider::Oidc,
            Some(other) => {
                return Err(error(
                    "AUTH_PROVIDER",
                    format!("`{other}` is not `cognito` or `oidc`"),
                ));
            }
        };
        let (issuer, cognito_pool) = match provider {
            Provider::Cognito => {
                let region = required(
                    self.cognito_region,
                    "AUTH_COGNITO_REGION",
                    "the Cognito region, e.g. us-east-1",
                )?;
                let pool = required(
                    self.cognito_user_pool_id,
                    "AUTH_COGNITO_USER_POOL_ID",
                    "the Cognito user pool id",
                )?;
                if !region
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-')
                {
                    return Err(error(
                        "AUTH_COGNITO_REGION",
                        format!("`{region}` is not a region name"),
                    ));
                }
                if !pool
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                {
                    return Err(error(
                        "AUTH_COGNITO_USER_POOL_ID",
                        format!("`{pool}` is not a pool id"),
                    ));
                }
                if self.issuer.is_some() {
                    return Err(error(
                        "AUTH_ISSUER",
                        "is for provider `oidc`; Cognito's issuer is derived from region and pool",
                    ));
                }
                let issuer = format!("https://cognito-idp.{region}.amazonaws.com/{pool}");
                (
                    issuer,
                    Some(CognitoPool {
                        region,
                        user_pool_id: pool,
                    }),
                )
            }
            Provider::Oidc => {
                let issuer = required(
                    self.issuer,
                    "AUTH_ISSUER",
                    "the OIDC issuer URL, exactly as in the tokens' `iss`",
                )?;
                check_url("AUTH_ISSUER", &issuer)?;
                (issuer, None)
            }
        };
        let key_source = match (self.jwks_url, provider) {
            (Some(url), _) => {
                check_url("AUTH_JWKS_URL", &url)?;
                KeySource::Url(url)
            }
            (None, Provider::Cognito) => KeySource::Url(format!("{issuer}/.well-known/jwks.json")),
            (None, Provider::Oidc) => KeySource::Discovery {
                issuer: issuer.clone(),
            },
        };
        let groups_claim = self
            .groups_claim
            .map(|claim| claim.trim().to_owned())
            .unwrap_or_else(|| {
                match provider {
                    Provider::Cognito => "cognito:groups",
                    Provider::Oidc => "groups",
                }
                .to_owned()
            });
        let rules = TokenRules {
            provider,
            issuer,
            client_ids: list(self.client_ids).map(|ids| ids.into_iter().collect::<HashSet<_>>()),
            audiences: list(self.audiences),
            groups_claim,
            leeway_seconds: number(self.leeway_seconds, "AUTH_LEEWAY_SECONDS", 60, 0..=3600)?,
        };
        let resource_url = match self.resource_url {
            Some(url) => {
                check_url("AUTH_RESOURCE_URL", &url)?;
                Some(url.trim_end_matches('/').to_owned())
            }
            None => None,
        };
        let log_format = match self.log_format.as_deref().map(str::trim) {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => {
                return Err(error(
                    "AUTH_LOG_FORMAT",
                    format!("`{other}` is not `text` or `json`"),
                ));
            }
        };
        let poll = number(
            self.scopes_poll_seconds,
            "AUTH_SCOPES_POLL_SECONDS",
            2,
            0..=86_400,
        )?;
        Ok(Config {
            listen: address(self.listen, "AUTH_LISTEN")?
                .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 8888))),
            grpc_listen: address(self.grpc_listen, "AUTH_GRPC_LISTEN")?,
            metrics_listen: address(self.metrics_listen, "AUTH_METRICS_LISTEN")?,
            scopes_file: PathBuf::from(self.scopes_file.unwrap_or_else(|| "scopes.yml".to_owned())),
            rules,
            cognito_pool,
            key_source,
            max_body_bytes: number(
                self.max_body_bytes,
                "AUTH_MAX_BODY_BYTES",
                1_048_576,
                1..=64 * 1_048_576,
            )? as usize,
            resource_url,
            log_format,
            jwks_refresh: Duration::from_secs(number(
                self.jwks_refresh_seconds,
                "AUTH_JWKS_REFRESH_SECONDS",
                300,
                10..=86_400,
            )?),
            token_cache_size: number(
                self.token_cache_size,
                "AUTH_TOKEN_CACHE_SIZE",
                10_000,
                0..=10_000_000,
            )? as usize,
            scopes_poll: (poll > 0).then(|| Duration::from_secs(poll)),
            session: None,
            max_batch: number(self.max_batch, "AUTH_MAX_BATCH", 100, 1..=10_000)? as usize,
            max_large_checks: number(
                self.max_large_checks,
                "AUTH_MAX_LARGE_CHECKS",
                default_large_checks(),
                1..=1024,
            )? as usize,
        })
    }
}

/// One large inspection per two cores (at least one): the other cores stay free for the
/// small checks that are nearly all of the traffic.
fn default_large_checks() -> u64 {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    (cores / 2).max(1) as u64
}

fn required(
    value: Option<String>,
    variable: &'static str,
    what: &str,
) -> Result<String, ConfigError> {
    value
        .map(|v| v.trim().to_owned())
        .ok_or_else(|| error(variable, format!("is required: {what}")))
}

fn check_url(variable: &'static str, url: &str) -> Result<(), ConfigError> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    match rest {
        Some(rest)
            if !rest.is_empty() && !rest.starts_with('/') && !url.contains(char::is_whitespace) =>
        {
            Ok(())
        }
        _ => Err(error(variable, format!("`{url}` is not an http(s) URL"))),
    }
}

fn list(value: Option<String>) -> Option<Vec<String>> {
    let items: Vec<String> = value?
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(str::to_owned)
        .collect();
    (!items.is_empty()).then_some(items)
}

/// A whole number in `range` from `variable`'s text, or `default` when unset.
pub(crate) fn number(
    value: Option<String>,
    variable: &'static str,
    default: u64,
    range: std::ops::RangeInclusive<u64>,
) -> Result<u64, ConfigError> {
    let Some(text) = value else {
        return Ok(default);
    };
    let parsed: u64 = text
        .trim()
        .parse()
        .map_err(|_| error(variable, format!("`{text}` is not a whole number")))?;
    if !range.contains(&parsed) {
        return Err(error(
            variable,
            format!("{parsed} is outside {}..={}", range.start(), range.end()),
        ));
    }
    Ok(parsed)
}

fn address(
    value: Option<String>,
    variable: &'static str,
) -> Result<Option<SocketAddr>, ConfigError> {
    value
        .map(|text| {
            text.trim().parse().map_err(|_| {
                error(
                    variable,
                    format!("`{text}` is not an address like 127.0.0.1:8888"),
                )
            })
        })
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_vars(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    }

    const COGNITO: [(&str, &str); 2] = [
        ("AUTH_COGNITO_REGION", "us-east-1"),
        ("AUTH_COGNITO_USER_POOL_ID", "us-east-1_Abc"),
    ];

    #[test]
    fn cognito_defaults_derive_issuer_and_jwks_url() {
        let config = config(&COGNITO).expect("valid");
        assert_eq!(
            config.rules.issuer,
            "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Abc"
        );
        assert_eq!(
            config.key_source,
            KeySource::Url(
                "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Abc/.well-known/jwks.json"
                    .into()
            )
        );
        assert_eq!(config.rules.groups_claim, "cognito:groups");
        assert_eq!(config.listen.to_string(), "127.0.0.1:8888");
        assert_eq!(config.max_body_bytes, 1_048_576);
        assert_eq!(config.rules.leeway_seconds, 60);
        assert!(config.rules.client_ids.is_none() && config.rules.audiences.is_none());
    }

    #[test]
    fn oidc_uses_discovery_unless_jwks_url_is_given() {
        let oidc = config(&[
            ("AUTH_PROVIDER", "oidc"),
            ("AUTH_ISSUER", "https://kc.example/realms/mcp"),
        ])
        .expect("valid");
        assert_eq!(
            oidc.key_source,
            KeySource::Discovery {
                issuer: "https://kc.example/realms/mcp".into()
            }
        );
        assert_eq!(oidc.rules.groups_claim, "groups");
        let pinned = config(&[
            ("AUTH_PROVIDER", "oidc"),
            ("AUTH_ISSUER", "https://kc.example/realms/mcp"),
            ("AUTH_JWKS_URL", "http://127.0.0.1:1/jwks"),
            ("AUTH_CLIENT_IDS", "a, b,,"),
        ])
        .expect("valid");
        assert_eq!(
            pinned.key_source,
            KeySource::Url("http://127.0.0.1:1/jwks".into())
        );
        assert_eq!(pinned.rules.client_ids.map(|ids| ids.len()), Some(2));
    }

    #[test]
    fn bad_values_name_the_variable() {
        let cases: [(&[(&str, &str)], &str); 7] = [
            (&[("AUTH_PROVIDER", "saml")], "AUTH_PROVIDER"),
            (&[], "AUTH_COGNITO_REGION"),
            (&[("AUTH_PROVIDER", "oidc")], "AUTH_ISSUER"),
            (
                &[("AUTH_PROVIDER", "oidc"), ("AUTH_ISSUER", "ftp://x")],
                "AUTH_ISSUER",
            ),
            (
                &[COGNITO[0], COGNITO[1], ("AUTH_LEEWAY_SECONDS", "soon")],
                "AUTH_LEEWAY_SECONDS",
            ),
            (
                &[COGNITO[0], COGNITO[1], ("AUTH_LISTEN", "localhost")],
                "AUTH_LISTEN",
            ),
            (
                &[COGNITO[0], COGNITO[1], ("AUTH_MAX_BODY_BYTES", "0")],
                "AUTH_MAX_BODY_BYTES",
            ),
        ];
        for (vars, variable) in cases {
            let err = config(vars).expect_err("refused");
            assert_eq!(err.variable, variable, "{err}");
        }
    }
}
