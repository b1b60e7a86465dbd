//! Configuration from the environment, validated at start.
//!
//! Every variable is read as text with `envy` and checked here, so that a bad value stops the
//! start with one line naming the variable and why. Defaults are safe: loopback listen, deny on
//! doubt. The trusted issuers come from the single-issuer `AUTH_*` variables or from
//! `AUTH_ISSUERS_FILE` ([`issuers_file`]), never both; each is validated by [`issuer`].

mod issuer;
mod issuers_file;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

pub use issuer::IssuerConfig;
use issuer::{HttpAllowance, IssuerFields, check_url_syntax};

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
    /// The trusted token issuers: one from the `AUTH_*` variables, or those of
    /// `AUTH_ISSUERS_FILE`. Never empty.
    pub issuers: Vec<IssuerConfig>,
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
    /// `AUTH_MAX_LARGE_CHECKS`: bodies over 64 KiB decided at once (others wait, then 503),
    /// request bodies and `tools/list` answers alike.
    pub max_large_checks: usize,
    /// `AUTH_MAX_LIST_ANSWER_BYTES`: the largest `tools/list` answer the filter reads; a larger
    /// one is withheld (the client gets a JSON-RPC error), never passed on unread.
    pub max_list_answer_bytes: usize,
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
    max_list_answer_bytes: Option<String>,
    issuers_file: Option<String>,
    insecure_http_hosts: Option<String>,
}

/// The single-issuer variables and the issuers-file key each fills.
const ISSUER_VARIABLES: [(&str, &str); 9] = [
    ("AUTH_PROVIDER", "provider"),
    ("AUTH_COGNITO_REGION", "region"),
    ("AUTH_COGNITO_USER_POOL_ID", "user_pool_id"),
    ("AUTH_ISSUER", "issuer"),
    ("AUTH_JWKS_URL", "jwks_url"),
    ("AUTH_CLIENT_IDS", "client_ids"),
    ("AUTH_AUDIENCES", "audiences"),
    ("AUTH_GROUPS_CLAIM", "groups_claim"),
    ("AUTH_LEEWAY_SECONDS", "leeway_seconds"),
];

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
    fn validate(mut self) -> Result<Config, ConfigError> {
        let http = HttpAllowance {
            hosts: list(self.insecure_http_hosts.take()).unwrap_or_default(),
        };
        let issuers = match self.issuers_file.take() {
            Some(file) => {
                if let Some((variable, _)) = self.single_issuer_variables_set().first() {
                    return Err(error(
                        "AUTH_ISSUERS_FILE",
                        format!(
                            "set either it or the single-issuer variables, not both ({variable} \
                             is set too)"
                        ),
                    ));
                }
                issuers_file::load(std::path::Path::new(file.trim()), &http)
                    .map_err(|reason| error("AUTH_ISSUERS_FILE", reason))?
            }
            None => vec![self.single_issuer(&http)?],
        };
        let resource_url = match self.resource_url {
            Some(url) => {
                check_url_syntax(&url).map_err(|reason| error("AUTH_RESOURCE_URL", reason))?;
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
            issuers,
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
            max_list_answer_bytes: number(
                self.max_list_answer_bytes,
                "AUTH_MAX_LIST_ANSWER_BYTES",
                crate::tools_list::Limits::DEFAULT_MAX_ANSWER_BYTES as u64,
                1024..=256 * 1_048_576,
            )? as usize,
        })
    }
}

impl RawConfig {
    /// The single-issuer variables that are set, with their issuers-file keys.
    fn single_issuer_variables_set(&self) -> Vec<(&'static str, &'static str)> {
        let set = [
            self.provider.is_some(),
            self.cognito_region.is_some(),
            self.cognito_user_pool_id.is_some(),
            self.issuer.is_some(),
            self.jwks_url.is_some(),
            self.client_ids.is_some(),
            self.audiences.is_some(),
            self.groups_claim.is_some(),
            self.leeway_seconds.is_some(),
        ];
        ISSUER_VARIABLES
            .into_iter()
            .zip(set)
            .filter_map(|(pair, is_set)| is_set.then_some(pair))
            .collect()
    }

    /// The one issuer of the single-issuer variables; `X-Auth-Method` is the provider's name.
    fn single_issuer(&mut self, http: &HttpAllowance) -> Result<IssuerConfig, ConfigError> {
        let leeway_seconds = match self.leeway_seconds.take() {
            Some(text) => Some(number(Some(text), "AUTH_LEEWAY_SECONDS", 60, 0..=3600)?),
            None => None,
        };
        let fields = IssuerFields {
            name: None,
            provider: self.provider.take(),
            region: self.cognito_region.take(),
            user_pool_id: self.cognito_user_pool_id.take(),
            issuer: self.issuer.take(),
            jwks_url: self.jwks_url.take(),
            client_ids: list(self.client_ids.take()),
            audiences: list(self.audiences.take()),
            groups_claim: self.groups_claim.take(),
            leeway_seconds,
        };
        fields
            .validate(
                "default".to_owned(),
                |provider| provider.name().to_owned(),
                http,
            )
            .map_err(|(field, reason)| {
                let variable = ISSUER_VARIABLES
                    .iter()
                    .find(|(_, key)| *key == field)
                    .map_or("AUTH_*", |(variable, _)| *variable);
                error(variable, reason)
            })
    }
}

/// One large inspection per two cores (at least one): the other cores stay free for the
/// small checks that are nearly all of the traffic.
fn default_large_checks() -> u64 {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    (cores / 2).max(1) as u64
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
    use crate::jwks::fetch::KeySource;

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
            config.issuers[0].rules.issuer,
            "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Abc"
        );
        assert_eq!(
            config.issuers[0].key_source,
            KeySource::Url(
                "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Abc/.well-known/jwks.json"
                    .into()
            )
        );
        assert_eq!(config.issuers[0].rules.groups_claim, "cognito:groups");
        assert_eq!(config.listen.to_string(), "127.0.0.1:8888");
        assert_eq!(config.max_body_bytes, 1_048_576);
        assert_eq!(config.issuers[0].rules.leeway_seconds, 60);
        assert!(
            config.issuers[0].rules.client_ids.is_none()
                && config.issuers[0].rules.audiences.is_none()
        );
    }

    #[test]
    fn oidc_uses_discovery_unless_jwks_url_is_given() {
        let oidc = config(&[
            ("AUTH_PROVIDER", "oidc"),
            ("AUTH_ISSUER", "https://kc.example/realms/mcp"),
        ])
        .expect("valid");
        assert_eq!(
            oidc.issuers[0].key_source,
            KeySource::Discovery {
                issuer: "https://kc.example/realms/mcp".into()
            }
        );
        assert_eq!(oidc.issuers[0].rules.groups_claim, "groups");
        let pinned = config(&[
            ("AUTH_PROVIDER", "oidc"),
            ("AUTH_ISSUER", "https://kc.example/realms/mcp"),
            ("AUTH_JWKS_URL", "http://127.0.0.1:1/jwks"),
            ("AUTH_CLIENT_IDS", "a, b,,"),
        ])
        .expect("valid");
        assert_eq!(
            pinned.issuers[0].key_source,
            KeySource::Url("http://127.0.0.1:1/jwks".into())
        );
        assert_eq!(
            pinned.issuers[0]
                .rules
                .client_ids
                .clone()
                .map(|ids| ids.len()),
            Some(2)
        );
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

    #[test]
    fn an_issuers_file_and_single_issuer_variables_do_not_mix() {
        let err = config(&[
            ("AUTH_ISSUERS_FILE", "/nonexistent/issuers.yml"),
            ("AUTH_ISSUER", "https://kc.example/realms/mcp"),
        ])
        .expect_err("both refused");
        assert_eq!(err.variable, "AUTH_ISSUERS_FILE");
        assert!(err.reason.contains("AUTH_ISSUER is set too"), "{err}");
    }

    #[test]
    fn the_issuers_file_gives_every_issuer_and_its_errors_name_the_file() {
        let dir = std::env::temp_dir().join(format!("auth-issuers-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a temp dir");
        let file = dir.join("issuers.yml");
        std::fs::write(
            &file,
            "issuers:\n  - name: agents\n    provider: cognito\n    region: us-east-1\n    user_pool_id: us-east-1_A\n  - name: people\n    provider: oidc\n    issuer: http://idp.internal/realms/mcp\n",
        )
        .expect("the issuers file is written");
        let path = file.display().to_string();
        let err = config(&[("AUTH_ISSUERS_FILE", &path)]).expect_err("plain http refused");
        assert!(
            err.reason.contains(&path) && err.reason.contains("people"),
            "{err}"
        );
        let config = config(&[
            ("AUTH_ISSUERS_FILE", &path),
            ("AUTH_INSECURE_HTTP_HOSTS", "idp.internal"),
        ])
        .expect("the named host may use http");
        let names: Vec<&str> = config
            .issuers
            .iter()
            .map(|issuer| issuer.name.as_str())
            .collect();
        assert_eq!(names, ["agents", "people"]);
        std::fs::remove_dir_all(dir).expect("the temp dir is removed");
    }

    #[test]
    fn a_plain_http_issuer_needs_loopback_or_a_named_host() {
        let err = config(&[
            ("AUTH_PROVIDER", "oidc"),
            ("AUTH_ISSUER", "http://keycloak.internal/realms/mcp"),
        ])
        .expect_err("refused");
        assert_eq!(err.variable, "AUTH_ISSUER");
        assert!(
            config(&[
                ("AUTH_PROVIDER", "oidc"),
                ("AUTH_ISSUER", "http://keycloak.internal/realms/mcp"),
                ("AUTH_INSECURE_HTTP_HOSTS", "keycloak.internal"),
            ])
            .is_ok()
        );
        let err = config(&[
            ("AUTH_PROVIDER", "oidc"),
            ("AUTH_ISSUER", "https://kc.example/realms/mcp"),
            ("AUTH_JWKS_URL", "http://kc.example/certs"),
        ])
        .expect_err("refused");
        assert_eq!(err.variable, "AUTH_JWKS_URL");
    }
}
