//! One trusted token issuer: its settings as written (the single-issuer `AUTH_*` variables, or
//! one entry of `AUTH_ISSUERS_FILE`) and the validated [`IssuerConfig`].

use std::collections::HashSet;

use serde::Deserialize;

use crate::decision::CognitoPool;
use crate::jwks::fetch::KeySource;
use crate::token::{Provider, TokenRules};

/// One trusted token issuer, validated.
#[derive(Debug, Clone)]
pub struct IssuerConfig {
    /// Its name, for the decision log and `X-Auth-Method`.
    pub name: String,
    /// `X-Auth-Method` of the requests it vouches for.
    pub auth_method: String,
    /// What its tokens must satisfy.
    pub rules: TokenRules,
    /// Its Cognito pool, for provider `cognito`.
    pub cognito_pool: Option<CognitoPool>,
    /// Where its key set comes from.
    pub key_source: KeySource,
}

/// The settings of one issuer as written. In the issuers file these are an entry's keys; the
/// single-issuer variables fill the same fields (`AUTH_COGNITO_REGION` is `region`, ...).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct IssuerFields {
    pub(crate) name: Option<String>,
    pub(crate) provider: Option<String>,
    pub(crate) region: Option<String>,
    pub(crate) user_pool_id: Option<String>,
    pub(crate) issuer: Option<String>,
    pub(crate) jwks_url: Option<String>,
    pub(crate) client_ids: Option<Vec<String>>,
    pub(crate) audiences: Option<Vec<String>>,
    pub(crate) groups_claim: Option<String>,
    pub(crate) leeway_seconds: Option<u64>,
}

/// A field at fault (its key in the issuers file) and why.
pub(crate) type FieldError = (&'static str, String);

/// Hosts whose `http://` issuer and key set URLs are accepted: loopback always, others only when
/// named in `AUTH_INSECURE_HTTP_HOSTS`. Everything else must be `https://`: a key set fetched in
/// clear can be swapped on the way, and with it every token's worth.
#[derive(Debug, Clone, Default)]
pub(crate) struct HttpAllowance {
    pub(crate) hosts: Vec<String>,
}

impl HttpAllowance {
    fn check(&self, field: &'static str, url: &str) -> Result<(), FieldError> {
        check_url_syntax(url).map_err(|reason| (field, reason))?;
        let Some(rest) = url.strip_prefix("http://") else {
            return Ok(());
        };
        let host = host_of(rest);
        if is_loopback(host)
            || self
                .hosts
                .iter()
                .any(|allowed| allowed.eq_ignore_ascii_case(host))
        {
            Ok(())
        } else {
            Err((
                field,
                format!(
                    "`{url}` is plain http: use https (only loopback hosts, and hosts named in \
                     AUTH_INSECURE_HTTP_HOSTS, may use http)"
                ),
            ))
        }
    }
}

/// An `http(s)://host...` URL without spaces.
pub(crate) fn check_url_syntax(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    match rest {
        Some(rest)
            if !rest.is_empty() && !rest.starts_with('/') && !url.contains(char::is_whitespace) =>
        {
            Ok(())
        }
        _ => Err(format!("`{url}` is not an http(s) URL")),
    }
}

/// The host of `host[:port][/path]` (an IPv6 literal keeps its brackets).
fn host_of(rest: &str) -> &str {
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let authority = authority.rsplit('@').next().unwrap_or_default();
    if authority.starts_with('[') {
        authority
            .split(']')
            .next()
            .map_or(authority, |host| &authority[..host.len() + 1])
    } else {
        authority.split(':').next().unwrap_or_default()
    }
}

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host == "[::1]"
        || host
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|address| address.is_loopback())
}

impl IssuerFields {
    /// Validates the fields into an issuer. `auth_method` is what `X-Auth-Method` says for it.
    pub(crate) fn validate(
        self,
        name: String,
        auth_method: impl FnOnce(Provider) -> String,
        http: &HttpAllowance,
    ) -> Result<IssuerConfig, FieldError> {
        let provider = match self.provider.as_deref().map(str::trim) {
            None | Some("cognito") => Provider::Cognito,
            Some("oidc") => Provider::Oidc,
            Some(other) => {
                return Err(("provider", format!("`{other}` is not `cognito` or `oidc`")));
            }
        };
        let (issuer, cognito_pool) = match provider {
            Provider::Cognito => {
                let region = required(self.region, "region", "the Cognito region, e.g. us-east-1")?;
                let pool = required(
                    self.user_pool_id,
                    "user_pool_id",
                    "the Cognito user pool id",
                )?;
                if !region
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-')
                {
                    return Err(("region", format!("`{region}` is not a region name")));
                }
                if !pool
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                {
                    return Err(("user_pool_id", format!("`{pool}` is not a pool id")));
                }
                if self.issuer.is_some() {
                    return Err((
                        "issuer",
                        "is for provider `oidc`; Cognito's issuer is derived from region and pool"
                            .to_owned(),
                    ));
                }
                let issuer = format!("https://cognito-idp.{region}.amazonaws.com/{pool}");
                let pool = CognitoPool {
                    region,
                    user_pool_id: pool,
                };
                (issuer, Some(pool))
            }
            Provider::Oidc => {
                let issuer = required(
                    self.issuer,
                    "issuer",
                    "the OIDC issuer URL, exactly as in the tokens' `iss`",
                )?;
                http.check("issuer", &issuer)?;
                (issuer, None)
            }
        };
        let key_source = match (self.jwks_url, provider) {
            (Some(url), _) => {
                http.check("jwks_url", &url)?;
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
        let leeway_seconds = self.leeway_seconds.unwrap_or(60);
        if leeway_seconds > 3600 {
            return Err((
                "leeway_seconds",
                format!("{leeway_seconds} is outside 0..=3600"),
            ));
        }
        let rules = TokenRules {
            provider,
            issuer,
            client_ids: non_empty(self.client_ids)
                .map(|ids| ids.into_iter().collect::<HashSet<_>>()),
            audiences: non_empty(self.audiences),
            groups_claim,
            leeway_seconds,
        };
        Ok(IssuerConfig {
            name,
            auth_method: auth_method(provider),
            rules,
            cognito_pool,
            key_source,
        })
    }
}

fn required(value: Option<String>, field: &'static str, what: &str) -> Result<String, FieldError> {
    value
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
        .ok_or_else(|| (field, format!("is required: {what}")))
}

/// The trimmed, non-empty items, or `None` when there are none.
fn non_empty(items: Option<Vec<String>>) -> Option<Vec<String>> {
    let items: Vec<String> = items?
        .into_iter()
        .map(|item| item.trim().to_owned())
        .filter(|item| !item.is_empty())
        .collect();
    (!items.is_empty()).then_some(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn oidc(issuer: &str, jwks_url: Option<&str>) -> IssuerFields {
        IssuerFields {
            provider: Some("oidc".into()),
            issuer: Some(issuer.into()),
            jwks_url: jwks_url.map(str::to_owned),
            ..IssuerFields::default()
        }
    }

    fn check(fields: IssuerFields, hosts: &[&str]) -> Result<IssuerConfig, FieldError> {
        let http = HttpAllowance {
            hosts: hosts.iter().map(|host| (*host).to_owned()).collect(),
        };
        fields.validate(
            "people".into(),
            |provider| provider.name().to_owned(),
            &http,
        )
    }

    #[test]
    fn plain_http_issuers_and_key_sets_are_refused_unless_loopback_or_named() {
        for url in [
            "http://127.0.0.1:8080/realms/mcp",
            "http://localhost/realms/mcp",
            "http://[::1]:9000/x",
            "https://keycloak.example.com/realms/mcp",
        ] {
            assert!(check(oidc(url, None), &[]).is_ok(), "{url}");
        }
        let err = check(oidc("http://keycloak.example.com/realms/mcp", None), &[])
            .expect_err("plain http refused");
        assert_eq!(err.0, "issuer");
        assert!(err.1.contains("AUTH_INSECURE_HTTP_HOSTS"), "{}", err.1);
        let err = check(
            oidc("https://kc.example/r", Some("http://kc.example/certs")),
            &[],
        )
        .expect_err("plain http key set refused");
        assert_eq!(err.0, "jwks_url");
        // A look-alike of loopback is not loopback.
        assert!(check(oidc("http://127.0.0.1.evil.example/r", None), &[]).is_err());
        assert!(check(oidc("http://localhost@evil.example/r", None), &[]).is_err());
        // Named hosts may use http.
        assert!(check(oidc("http://keycloak:8080/realms/mcp", None), &["keycloak"]).is_ok());
    }
}
