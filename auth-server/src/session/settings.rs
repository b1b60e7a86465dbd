//! The browser sign-in's settings, from `AUTH_SESSION_*` variables, validated at start. Sign-in
//! is off unless `AUTH_SESSION_CLIENT_ID` is set; then the issuer, the gateway's public URL and
//! a key of at least 32 bytes are required, and a missing or short key stops the start.

use base64::Engine as _;
use cookie::Key;
use serde::Deserialize;

use super::SessionRules;
use crate::config::{ConfigError, number as seconds};

/// The validated settings of people's sign-in.
#[derive(Clone)]
pub struct SessionSettings {
    /// `AUTH_SESSION_ISSUER`: the OIDC provider people sign in with (discovery).
    pub issuer: String,
    /// `AUTH_SESSION_CLIENT_ID`: auth-server's client at that provider.
    pub client_id: String,
    /// `AUTH_SESSION_CLIENT_SECRET` or `_FILE`; none for a public client.
    pub client_secret: Option<String>,
    /// `AUTH_SESSION_PUBLIC_URL`'s origin: the gateway as a browser reaches it.
    pub public_origin: String,
    /// `AUTH_SESSION_SCOPES`.
    pub scopes: Vec<String>,
    /// `AUTH_SESSION_GROUPS_CLAIM`: where the groups are, in the ID token or userinfo.
    pub groups_claim: String,
    /// `AUTH_SESSION_LIFETIME_SECONDS`: the longest a sign-in lasts.
    pub lifetime_seconds: u64,
    /// `AUTH_SESSION_REFRESH_SECONDS`: how long a refreshable session is accepted before it
    /// must be refreshed with the IdP (and so how long a copied cookie outlives a sign-out).
    pub refresh_seconds: u64,
    /// Cookie names, origin, client id and keys, for the check.
    pub rules: SessionRules,
}

impl std::fmt::Debug for SessionSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionSettings")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "[set]"),
            )
            .field("public_origin", &self.public_origin)
            .field("scopes", &self.scopes)
            .field("groups_claim", &self.groups_claim)
            .field("lifetime_seconds", &self.lifetime_seconds)
            .field("refresh_seconds", &self.refresh_seconds)
            .field("rules", &self.rules)
            .finish()
    }
}

impl SessionSettings {
    /// The callback URL registered at the IdP.
    pub fn redirect_url(&self) -> String {
        format!("{}/oauth2/callback", self.public_origin)
    }
}

/// The variables as text (prefix `AUTH_SESSION_`).
#[derive(Debug, Default, Deserialize)]
struct RawSession {
    issuer: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    client_secret_file: Option<String>,
    public_url: Option<String>,
    keys: Option<String>,
    key_file: Option<String>,
    scopes: Option<String>,
    groups_claim: Option<String>,
    lifetime_seconds: Option<String>,
    refresh_seconds: Option<String>,
}

fn error(variable: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        variable,
        reason: reason.into(),
    }
}

/// Reads the sign-in settings from the (non-empty) variables; `None` when sign-in is off.
pub fn from_vars(vars: &[(String, String)]) -> Result<Option<SessionSettings>, ConfigError> {
    let raw: RawSession = envy::prefixed("AUTH_SESSION_")
        .from_iter(vars.iter().cloned())
        .map_err(|err| error("AUTH_SESSION_*", err.to_string()))?;
    let Some(client_id) = raw.client_id.map(|id| id.trim().to_owned()) else {
        let stray = [
            ("AUTH_SESSION_ISSUER", raw.issuer.is_some()),
            ("AUTH_SESSION_PUBLIC_URL", raw.public_url.is_some()),
            ("AUTH_SESSION_KEYS", raw.keys.is_some()),
            ("AUTH_SESSION_KEY_FILE", raw.key_file.is_some()),
        ];
        if let Some((variable, _)) = stray.into_iter().find(|(_, set)| *set) {
            return Err(error(
                variable,
                "browser sign-in is off without AUTH_SESSION_CLIENT_ID: set it too, or unset this",
            ));
        }
        return Ok(None);
    };
    // Plain http only where the rest of the configuration allows it: loopback, or a host named
    // in AUTH_INSECURE_HTTP_HOSTS (a compose network's IdP).
    let insecure_hosts: Vec<&str> = vars
        .iter()
        .filter(|(name, _)| name == "AUTH_INSECURE_HTTP_HOSTS")
        .flat_map(|(_, hosts)| hosts.split(','))
        .map(str::trim)
        .filter(|host| !host.is_empty())
        .collect();
    let issuer = raw
        .issuer
        .map(|issuer| issuer.trim().to_owned())
        .ok_or_else(|| {
            error(
                "AUTH_SESSION_ISSUER",
                "is required for browser sign-in: the OIDC issuer URL people sign in with",
            )
        })?;
    http_url("AUTH_SESSION_ISSUER", &issuer, &insecure_hosts)?;
    let public_url = raw.public_url.ok_or_else(|| {
        error(
            "AUTH_SESSION_PUBLIC_URL",
            "is required for browser sign-in: the gateway's URL as a browser reaches it, e.g. https://mcp.example.com",
        )
    })?;
    let public_origin = origin(
        "AUTH_SESSION_PUBLIC_URL",
        public_url.trim(),
        &insecure_hosts,
    )?;
    let client_secret = secret(raw.client_secret, raw.client_secret_file)?;
    let keys = keys(raw.keys, raw.key_file)?;
    let lifetime_seconds = seconds(
        raw.lifetime_seconds,
        "AUTH_SESSION_LIFETIME_SECONDS",
        8 * 3600,
        60..=30 * 86_400,
    )?;
    let refresh_seconds = seconds(
        raw.refresh_seconds,
        "AUTH_SESSION_REFRESH_SECONDS",
        300,
        30..=86_400,
    )?;
    let scopes: Vec<String> = raw
        .scopes
        .as_deref()
        .unwrap_or("openid profile email")
        .split([' ', ','])
        .filter(|scope| !scope.is_empty())
        .map(str::to_owned)
        .collect();
    if !scopes.iter().any(|scope| scope == "openid") {
        return Err(error("AUTH_SESSION_SCOPES", "must include `openid`"));
    }
    let rules = SessionRules::new(public_origin.clone(), client_id.clone(), keys);
    Ok(Some(SessionSettings {
        issuer,
        client_id,
        client_secret,
        public_origin,
        scopes,
        groups_claim: raw
            .groups_claim
            .map(|claim| claim.trim().to_owned())
            .unwrap_or_else(|| "groups".to_owned()),
        lifetime_seconds,
        refresh_seconds,
        rules,
    }))
}

/// Checks an https URL, or an http one on loopback or a host named in `insecure_hosts`.
fn http_url(
    variable: &'static str,
    text: &str,
    insecure_hosts: &[&str],
) -> Result<openidconnect::url::Url, ConfigError> {
    use openidconnect::url::Host;
    let url = openidconnect::url::Url::parse(text)
        .map_err(|err| error(variable, format!("`{text}` is not a URL: {err}")))?;
    let plain_allowed = match url.host() {
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        Some(Host::Domain(name)) => name == "localhost" || insecure_hosts.contains(&name),
        None => false,
    };
    match url.scheme() {
        _ if url.host().is_none() => Err(error(variable, format!("`{text}` names no host"))),
        "https" => Ok(url),
        "http" if plain_allowed => Ok(url),
        "http" => Err(error(
            variable,
            format!(
                "`{text}`: plain http is accepted on loopback or for a host named in \
                 AUTH_INSECURE_HTTP_HOSTS only; use https://"
            ),
        )),
        _ => Err(error(variable, format!("`{text}` is not an http(s) URL"))),
    }
}

/// The origin of the gateway's URL (`scheme://host[:port]`, the default port left out, as
/// browsers send it in `Origin`); a path is refused: sign-in lives at the gateway's root.
fn origin(
    variable: &'static str,
    text: &str,
    insecure_hosts: &[&str],
) -> Result<String, ConfigError> {
    let url = http_url(variable, text, insecure_hosts)?;
    if url.path() != "/" || url.query().is_some() {
        return Err(error(
            variable,
            format!("`{text}`: give the gateway's origin only, without a path"),
        ));
    }
    Ok(url.origin().ascii_serialization())
}

fn secret(value: Option<String>, file: Option<String>) -> Result<Option<String>, ConfigError> {
    match (value, file) {
        (Some(_), Some(_)) => Err(error(
            "AUTH_SESSION_CLIENT_SECRET_FILE",
            "set AUTH_SESSION_CLIENT_SECRET or AUTH_SESSION_CLIENT_SECRET_FILE, not both",
        )),
        (Some(value), None) => Ok(Some(value.trim().to_owned())),
        (None, Some(path)) => std::fs::read_to_string(path.trim())
            .map(|text| Some(text.trim().to_owned()))
            .map_err(|err| {
                error(
                    "AUTH_SESSION_CLIENT_SECRET_FILE",
                    format!("cannot read `{path}`: {err}"),
                )
            }),
        (None, None) => Ok(None),
    }
}

/// The session keys: base64 of at least 32 random bytes each (`openssl rand -base64 32`),
/// comma-separated in `AUTH_SESSION_KEYS` or one a line in `AUTH_SESSION_KEY_FILE` (`#`
/// comments). The first seals; all open.
fn keys(value: Option<String>, file: Option<String>) -> Result<Vec<Key>, ConfigError> {
    let (variable, text) = match (value, file) {
        (Some(_), Some(_)) => {
            return Err(error(
                "AUTH_SESSION_KEY_FILE",
                "set AUTH_SESSION_KEYS or AUTH_SESSION_KEY_FILE, not both",
            ));
        }
        (Some(text), None) => ("AUTH_SESSION_KEYS", text),
        (None, Some(path)) => (
            "AUTH_SESSION_KEY_FILE",
            std::fs::read_to_string(path.trim()).map_err(|err| {
                error(
                    "AUTH_SESSION_KEY_FILE",
                    format!("cannot read `{path}`: {err}"),
                )
            })?,
        ),
        (None, None) => {
            return Err(error(
                "AUTH_SESSION_KEYS",
                "browser sign-in needs a session key: AUTH_SESSION_KEYS or AUTH_SESSION_KEY_FILE \
                 with base64 of at least 32 random bytes (openssl rand -base64 32)",
            ));
        }
    };
    let keys = text
        .lines()
        .map(|line| line.split('#').next().unwrap_or_default())
        .flat_map(|line| line.split(','))
        .map(str::trim)
        .filter(|key| !key.is_empty())
        .enumerate()
        .map(|(index, encoded)| {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(encoded))
                .map_err(|_| error(variable, format!("key {} is not base64", index + 1)))?;
            if bytes.len() < 32 {
                return Err(error(
                    variable,
                    format!(
                        "key {} is {} bytes; at least 32 are needed (openssl rand -base64 32)",
                        index + 1,
                        bytes.len()
                    ),
                ));
            }
            Ok(Key::derive_from(&bytes))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if keys.is_empty() {
        return Err(error(variable, "holds no key"));
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

    fn settings(vars: &[(&str, &str)]) -> Result<Option<SessionSettings>, ConfigError> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        from_vars(&vars)
    }

    fn base() -> Vec<(&'static str, &'static str)> {
        vec![
            ("AUTH_SESSION_CLIENT_ID", "auth-server"),
            ("AUTH_SESSION_ISSUER", "http://127.0.0.1:9000"),
            ("AUTH_SESSION_PUBLIC_URL", "http://127.0.0.1:8080/"),
            ("AUTH_SESSION_KEYS", KEY),
        ]
    }

    #[test]
    fn sign_in_is_off_without_a_client_id() {
        assert!(settings(&[]).expect("valid").is_none());
        let err = settings(&[("AUTH_SESSION_KEYS", KEY)]).expect_err("stray");
        assert_eq!(err.variable, "AUTH_SESSION_KEYS");
    }

    #[test]
    fn defaults_and_the_origin() {
        let settings = settings(&base()).expect("valid").expect("on");
        assert_eq!(settings.public_origin, "http://127.0.0.1:8080");
        assert_eq!(
            settings.redirect_url(),
            "http://127.0.0.1:8080/oauth2/callback"
        );
        assert_eq!(settings.rules.cookie_name, "mcp_session");
        assert_eq!(settings.lifetime_seconds, 28_800);
        assert_eq!(settings.refresh_seconds, 300);
        assert_eq!(settings.scopes, ["openid", "profile", "email"]);
        let https =
            super::origin("AUTH_SESSION_PUBLIC_URL", "https://GW.example:443", &[]).expect("url");
        assert_eq!(https, "https://gw.example");
    }

    #[test]
    fn a_missing_or_short_key_stops_the_start() {
        let mut vars = base();
        vars.retain(|(name, _)| *name != "AUTH_SESSION_KEYS");
        assert_eq!(
            settings(&vars).expect_err("no key").variable,
            "AUTH_SESSION_KEYS"
        );
        vars.push(("AUTH_SESSION_KEYS", "c2hvcnQ="));
        let err = settings(&vars).expect_err("short key");
        assert!(err.reason.contains("at least 32"), "{err}");
        let mut two = base();
        two.retain(|(name, _)| *name != "AUTH_SESSION_KEYS");
        two.push((
            "AUTH_SESSION_KEYS",
            "bm90IGJhc2U2NCE=,MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
        ));
        assert!(settings(&two).is_err(), "a short key among two");
    }

    #[test]
    fn plain_http_only_on_loopback_or_named_hosts() {
        let mut vars = base();
        vars.retain(|(name, _)| *name != "AUTH_SESSION_ISSUER");
        vars.push(("AUTH_SESSION_ISSUER", "http://idp:9000"));
        let err = settings(&vars).expect_err("plain http to a named host");
        assert!(err.reason.contains("AUTH_INSECURE_HTTP_HOSTS"), "{err}");
        vars.push(("AUTH_INSECURE_HTTP_HOSTS", "other, idp"));
        assert!(settings(&vars).expect("named").is_some());
        vars.retain(|(name, _)| *name != "AUTH_SESSION_ISSUER");
        vars.push(("AUTH_SESSION_ISSUER", "http://[::1]:9000"));
        assert!(settings(&vars).expect("loopback").is_some());
    }

    #[test]
    fn other_bad_values_name_their_variable() {
        let cases = [
            ("AUTH_SESSION_PUBLIC_URL", "ftp://gw"),
            ("AUTH_SESSION_PUBLIC_URL", "http://gw/app"),
            ("AUTH_SESSION_ISSUER", "not a url"),
            ("AUTH_SESSION_LIFETIME_SECONDS", "forever"),
            ("AUTH_SESSION_SCOPES", "profile email"),
            ("AUTH_SESSION_ISSUER", "http://idp.example.com"),
            ("AUTH_SESSION_PUBLIC_URL", "http://gw.example.com"),
        ];
        for (variable, value) in cases {
            let mut vars = base();
            vars.retain(|(name, _)| *name != variable);
            vars.push((variable, value));
            assert_eq!(
                settings(&vars).expect_err(value).variable,
                variable,
                "{value}"
            );
        }
    }
}
