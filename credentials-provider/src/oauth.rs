//! The token endpoint: one form POST, client authentication, and a response read the same way
//! for every provider (RFC 6749 §5, with the variations of GitHub and Slack).

use std::time::Duration;

use base64::Engine as _;
use serde_json::{Map, Value};
use url::Url;

use crate::secret::Secret;
use crate::settings::ConfigError;

/// How long one call to an OAuth or discovery endpoint may take.
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(30);

/// The HTTP client for OAuth endpoints: rustls, no redirects (a token endpoint that redirects is
/// misconfigured, and credentials must not follow it), a bounded time per call.
pub fn http_client() -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(HTTP_TIMEOUT)
        .user_agent(concat!("credentials-provider/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// How the client proves who it is at the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// HTTP Basic with the form-encoded id and secret (`client_secret_basic`, RFC 6749 §2.3.1).
    Basic,
    /// `client_id` and `client_secret` in the form (`client_secret_post`).
    Post,
    /// A public client: `client_id` in the form, no secret (PKCE protects the code).
    None,
}

impl ClientAuth {
    /// Parses `basic`, `post` or `none`.
    pub fn parse(name: &str, value: &str) -> Result<ClientAuth, ConfigError> {
        match value.to_ascii_lowercase().as_str() {
            "basic" | "client_secret_basic" => Ok(ClientAuth::Basic),
            "post" | "client_secret_post" => Ok(ClientAuth::Post),
            "none" => Ok(ClientAuth::None),
            other => Err(ConfigError::invalid(
                name,
                format!("{other:?} is not basic, post or none"),
            )),
        }
    }
}

/// A client of a token endpoint.
#[derive(Debug, Clone)]
pub struct TokenClient {
    /// The token endpoint.
    pub token_url: Url,
    /// The client id.
    pub client_id: String,
    /// The client secret; `None` for a public client.
    pub client_secret: Option<Secret>,
    /// How the secret is sent.
    pub auth: ClientAuth,
}

/// What a token endpoint gave.
#[derive(Debug, Clone)]
pub struct TokenResponse {
    /// The access token.
    pub access_token: Secret,
    /// `token_type`, usually `Bearer`.
    pub token_type: Option<String>,
    /// Lifetime in seconds, when the provider says.
    pub expires_in: Option<u64>,
    /// A refresh token, when the provider gives one.
    pub refresh_token: Option<Secret>,
    /// The granted scope, when the provider says.
    pub scope: Option<String>,
}

/// Why no token came back.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OAuthError {
    /// The endpoint could not be reached or did not answer in time.
    #[error("cannot reach {url}: {reason}")]
    Unreachable {
        /// The endpoint.
        url: String,
        /// What failed (connection refused, timeout, TLS, …).
        reason: String,
    },
    /// The provider refused, with an OAuth error (`invalid_client`, `invalid_grant`, …).
    #[error("{url} refused ({status}): {error}{}", description.as_deref().map(|d| format!(": {d}")).unwrap_or_default())]
    Refused {
        /// The endpoint.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The OAuth `error` code.
        error: String,
        /// `error_description`, when given.
        description: Option<String>,
    },
    /// The answer is not an OAuth token response.
    #[error("{url} answered {status} with something that is not a token response: {detail}")]
    BadResponse {
        /// The endpoint.
        url: String,
        /// The HTTP status.
        status: u16,
        /// What was wrong (never the token).
        detail: String,
    },
}

impl OAuthError {
    /// The OAuth error code of a refusal.
    #[cfg(test)]
    pub fn oauth_error(&self) -> Option<&str> {
        match self {
            OAuthError::Refused { error, .. } => Some(error),
            _ => None,
        }
    }
}

/// Describes a reqwest error with its causes, without the URL's query (which may hold a code).
pub fn describe_http_error(error: &reqwest::Error) -> String {
    let mut text = if error.is_timeout() {
        "no answer in time".to_owned()
    } else if error.is_connect() {
        "connection failed".to_owned()
    } else {
        "request failed".to_owned()
    };
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let more = cause.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = cause.source();
    }
    text
}

/// Refuses to send credentials in clear text to anything but this machine.
pub fn require_secure_url(name: &str, url: &Url) -> Result<(), ConfigError> {
    match url.scheme() {
        "https" => Ok(()),
        "http" if is_loopback(url) => Ok(()),
        "http" => Err(ConfigError::invalid(
            name,
            format!(
                "{url} is plain http to another machine; credentials are only sent over https (http is accepted for localhost/127.0.0.1/[::1])"
            ),
        )),
        other => Err(ConfigError::invalid(
            name,
            format!("{url}: scheme {other:?} is not http(s)"),
        )),
    }
}

/// Whether the URL's host is this machine.
pub fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(domain)) => domain.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// Parses a URL setting.
pub fn parse_url(name: &str, value: &str) -> Result<Url, ConfigError> {
    Url::parse(value).map_err(|err| ConfigError::invalid(name, format!("{value:?}: {err}")))
}

impl TokenClient {
    /// POSTs `form` (plus the client's credentials) to the token endpoint. `response_path`
    /// names a member object that holds the token fields (Slack's `authed_user`).
    pub async fn request(
        &self,
        http: &reqwest::Client,
        form: &[(&str, &str)],
        response_path: Option<&str>,
    ) -> Result<TokenResponse, OAuthError> {
        let mut fields: Vec<(&str, &str)> = form.to_vec();
        let mut request = http
            .post(self.token_url.clone())
            .header(reqwest::header::ACCEPT, "application/json");
        match (self.auth, &self.client_secret) {
            (ClientAuth::Basic, Some(secret)) => {
                // RFC 6749 §2.3.1: both parts are form-urlencoded before Base64.
                let user: String =
                    form_urlencoded::byte_serialize(self.client_id.as_bytes()).collect();
                let password: String =
                    form_urlencoded::byte_serialize(secret.expose().as_bytes()).collect();
                let credentials =
                    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
                request = request.header(
                    reqwest::header::AUTHORIZATION,
                    format!("Basic {credentials}"),
                );
            }
            (ClientAuth::Post, Some(secret)) => {
                fields.push(("client_id", &self.client_id));
                fields.push(("client_secret", secret.expose()));
            }
            _ => fields.push(("client_id", &self.client_id)),
        }
        let response =
            request
                .form(&fields)
                .send()
                .await
                .map_err(|err| OAuthError::Unreachable {
                    url: self.token_url.to_string(),
                    reason: describe_http_error(&err),
                })?;
        let status = response.status().as_u16();
        let body = response
            .bytes()
            .await
            .map_err(|err| OAuthError::Unreachable {
                url: self.token_url.to_string(),
                reason: describe_http_error(&err),
            })?;
        parse_token_response(self.token_url.as_str(), status, &body, response_path)
    }
}

/// Reads a token endpoint's answer. Errors come as `{"error": …}` with a 4xx (RFC 6749 §5.2),
/// or with a 200 (GitHub, Slack's `{"ok": false, "error": …}`).
pub fn parse_token_response(
    url: &str,
    status: u16,
    body: &[u8],
    response_path: Option<&str>,
) -> Result<TokenResponse, OAuthError> {
    let bad = |detail: String| OAuthError::BadResponse {
        url: url.to_owned(),
        status,
        detail,
    };
    let json: Value = match serde_json::from_slice(body) {
        Ok(json) => json,
        Err(_) => {
            let text = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
            return Err(bad(format!("not JSON: {text:?}")));
        }
    };
    let Some(top) = json.as_object() else {
        return Err(bad("not a JSON object".into()));
    };
    if let Some(error) = top.get("error") {
        let error = match error {
            Value::String(error) => error.clone(),
            other => other.to_string(),
        };
        let description = top
            .get("error_description")
            .and_then(Value::as_str)
            .map(str::to_owned);
        return Err(OAuthError::Refused {
            url: url.to_owned(),
            status,
            error,
            description,
        });
    }
    if !(200..300).contains(&status) {
        return Err(bad("an error status without an OAuth error".into()));
    }
    let fields: &Map<String, Value> = match response_path {
        Some(path) => top
            .get(path)
            .and_then(Value::as_object)
            .ok_or_else(|| bad(format!("no {path:?} object in it")))?,
        None => top,
    };
    let text = |name: &str| {
        fields
            .get(name)
            .and_then(Value::as_str)
            .filter(|value| !value.is_empty())
            .map(str::to_owned)
    };
    let access_token = text("access_token")
        .map(Secret::new)
        .ok_or_else(|| bad("no access_token in it".into()))?;
    let expires_in = match fields.get("expires_in") {
        Some(Value::Number(number)) => number.as_u64(),
        // Some providers send it as a string.
        Some(Value::String(text)) => text.parse().ok(),
        _ => None,
    };
    Ok(TokenResponse {
        access_token,
        token_type: text("token_type"),
        expires_in,
        refresh_token: text("refresh_token").map(Secret::new),
        scope: text("scope"),
    })
}

/// The `exp` claim of a JWT, read without verifying it: only to know when to ask again when a
/// provider gives no `expires_in`.
pub fn jwt_expiry(token: &str) -> Option<u64> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: Value = serde_json::from_slice(&bytes).ok()?;
    claims.get("exp")?.as_u64()
}

/// The provider's `token_endpoint` from OIDC discovery (`{issuer}/.well-known/openid-configuration`).
/// The document's `issuer` must be the configured one (OpenID Connect Discovery §4.3).
pub async fn discover_token_endpoint(
    http: &reqwest::Client,
    issuer: &Url,
) -> Result<Url, OAuthError> {
    let discovery = format!(
        "{}/.well-known/openid-configuration",
        issuer.as_str().trim_end_matches('/')
    );
    let response = http
        .get(&discovery)
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|err| OAuthError::Unreachable {
            url: discovery.clone(),
            reason: describe_http_error(&err),
        })?;
    let status = response.status().as_u16();
    let bad = |detail: String| OAuthError::BadResponse {
        url: discovery.clone(),
        status,
        detail,
    };
    if status != 200 {
        return Err(bad("discovery must answer 200".into()));
    }
    let document: Value = response
        .json()
        .await
        .map_err(|_| bad("not a JSON discovery document".into()))?;
    let advertised = document.get("issuer").and_then(Value::as_str).unwrap_or("");
    if advertised.trim_end_matches('/') != issuer.as_str().trim_end_matches('/') {
        return Err(bad(format!(
            "its issuer is {advertised:?}, not the configured {issuer}"
        )));
    }
    let endpoint = document
        .get("token_endpoint")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("no token_endpoint in it".into()))?;
    Url::parse(endpoint).map_err(|err| bad(format!("token_endpoint {endpoint:?}: {err}")))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    const URL: &str = "https://idp.example/token";

    #[test]
    fn a_standard_token_response() {
        let response = parse_token_response(
            URL,
            200,
            br#"{"access_token":"at","token_type":"Bearer","expires_in":3600,"refresh_token":"rt","scope":"a b"}"#,
            None,
        )
        .unwrap();
        assert_eq!(response.access_token.expose(), "at");
        assert_eq!(response.expires_in, Some(3600));
        assert_eq!(response.refresh_token.unwrap().expose(), "rt");
        assert_eq!(response.scope.as_deref(), Some("a b"));
    }

    #[test]
    fn oauth_errors_are_reported_with_their_code_and_description() {
        let error = parse_token_response(
            URL,
            401,
            br#"{"error":"invalid_client","error_description":"client authentication failed"}"#,
            None,
        )
        .unwrap_err();
        assert_eq!(error.oauth_error(), Some("invalid_client"));
        assert_eq!(
            error.to_string(),
            "https://idp.example/token refused (401): invalid_client: client authentication failed"
        );
        // GitHub answers 200 with an error.
        let error = parse_token_response(URL, 200, br#"{"error":"bad_verification_code"}"#, None)
            .unwrap_err();
        assert_eq!(error.oauth_error(), Some("bad_verification_code"));
        // Slack: {"ok": false, "error": "..."}.
        let error = parse_token_response(URL, 200, br#"{"ok":false,"error":"invalid_code"}"#, None)
            .unwrap_err();
        assert_eq!(error.oauth_error(), Some("invalid_code"));
    }

    #[test]
    fn slack_user_tokens_are_read_from_authed_user() {
        let body = br#"{"ok":true,"access_token":"xoxb-bot","authed_user":{"id":"U1","access_token":"xoxp-user","scope":"search:read","token_type":"user"}}"#;
        let response = parse_token_response(URL, 200, body, Some("authed_user")).unwrap();
        assert_eq!(response.access_token.expose(), "xoxp-user");
        assert_eq!(response.scope.as_deref(), Some("search:read"));
    }

    #[test]
    fn non_json_and_tokenless_answers_are_bad_responses() {
        let error = parse_token_response(URL, 502, b"<html>bad gateway</html>", None).unwrap_err();
        assert!(error.to_string().contains("not JSON"), "{error}");
        let error =
            parse_token_response(URL, 200, br#"{"token_type":"Bearer"}"#, None).unwrap_err();
        assert!(error.to_string().contains("no access_token"), "{error}");
    }

    #[test]
    fn jwt_expiry_reads_exp_without_verifying() {
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(br#"{"exp":1800000000,"sub":"x"}"#);
        assert_eq!(
            jwt_expiry(&format!("eyJhbGciOiJub25lIn0.{payload}.sig")),
            Some(1_800_000_000)
        );
        assert_eq!(jwt_expiry("opaque-token"), None);
    }

    #[test]
    fn credentials_only_go_over_https_or_to_loopback() {
        let ok = |url: &str| require_secure_url("X", &Url::parse(url).unwrap());
        assert!(ok("https://idp.example/token").is_ok());
        assert!(ok("http://127.0.0.1:8080/token").is_ok());
        assert!(ok("http://localhost/token").is_ok());
        assert!(ok("http://[::1]:9/token").is_ok());
        let error = ok("http://idp.example/token").unwrap_err().to_string();
        assert!(
            error.starts_with("X: http://idp.example/token is plain http"),
            "{error}"
        );
        assert!(ok("ftp://idp.example/").is_err());
    }
}
