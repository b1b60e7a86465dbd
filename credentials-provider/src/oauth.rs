//! The token endpoint, through the `oauth2` crate: client authentication (basic, post, none),
//! the client-credentials, authorization-code (PKCE) and refresh-token grants, and a response
//! read the same way for every provider (RFC 6749 §5, with the variations of GitHub and Slack:
//! errors with a 200, the user token in `authed_user`). Requests go through our reqwest client
//! (rustls, no redirects, a bounded time), adapted to `oauth2`'s `AsyncHttpClient`.

use std::marker::PhantomData;
use std::sync::Mutex;
use std::time::Duration;

use base64::Engine as _;
use oauth2::basic::{BasicErrorResponse, BasicTokenType};
use oauth2::{
    AccessToken, AuthType, AuthorizationCode, ClientId, ClientSecret, EndpointNotSet, EndpointSet,
    HttpRequest, HttpResponse, PkceCodeVerifier, RedirectUrl, RefreshToken, RequestTokenError,
    Scope, StandardRevocableToken, TokenUrl,
};
use serde::{Deserialize, Serialize};
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

/// Which member of a token response holds the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ResponseShape {
    /// The response itself (RFC 6749 §5.1).
    #[default]
    Standard,
    /// Slack's user token, in `authed_user` (the top level holds the bot's).
    SlackUser,
}

impl ResponseShape {
    /// From a provider's `token_response_path`: none, or `authed_user`.
    pub fn from_path(path: Option<&str>) -> Result<ResponseShape, String> {
        match path {
            None => Ok(ResponseShape::Standard),
            Some("authed_user") => Ok(ResponseShape::SlackUser),
            Some(other) => Err(format!(
                "token_response_path {other:?}: only authed_user (Slack's user token) is known"
            )),
        }
    }

    fn path(self) -> Option<&'static str> {
        match self {
            ResponseShape::Standard => None,
            ResponseShape::SlackUser => Some("authed_user"),
        }
    }
}

/// A [`ResponseShape`] as a type, for `oauth2`'s token response parameter.
pub trait Shape: std::fmt::Debug + Send + Sync + 'static {
    /// The shape.
    const SHAPE: ResponseShape;
}

/// [`ResponseShape::Standard`].
#[derive(Debug)]
pub struct Standard;
impl Shape for Standard {
    const SHAPE: ResponseShape = ResponseShape::Standard;
}

/// [`ResponseShape::SlackUser`].
#[derive(Debug)]
pub struct SlackUser;
impl Shape for SlackUser {
    const SHAPE: ResponseShape = ResponseShape::SlackUser;
}

/// `oauth2`'s view of a token response of shape `S`: read from the member the shape names, an
/// `error` member refused even with a 200 (GitHub, Slack), `expires_in` as a number or a
/// string, the provider's `token_type` kept as it said it.
#[derive(Debug, Serialize, Deserialize)]
#[serde(try_from = "Value", into = "Value", bound = "")]
pub struct ProviderToken<S: Shape> {
    fields: TokenResponse,
    access_token: AccessToken,
    refresh_token: Option<RefreshToken>,
    token_type: BasicTokenType,
    shape: PhantomData<S>,
}

impl<S: Shape> Clone for ProviderToken<S> {
    fn clone(&self) -> Self {
        ProviderToken {
            fields: self.fields.clone(),
            access_token: self.access_token.clone(),
            refresh_token: self.refresh_token.clone(),
            token_type: self.token_type.clone(),
            shape: PhantomData,
        }
    }
}

impl<S: Shape> TryFrom<Value> for ProviderToken<S> {
    type Error = String;

    fn try_from(value: Value) -> Result<Self, String> {
        let fields = token_fields(&value, S::SHAPE.path())?;
        Ok(ProviderToken {
            access_token: AccessToken::new(fields.access_token.expose().to_owned()),
            refresh_token: fields
                .refresh_token
                .as_ref()
                .map(|token| RefreshToken::new(token.expose().to_owned())),
            token_type: match fields
                .token_type
                .as_deref()
                .map(str::to_ascii_lowercase)
                .as_deref()
            {
                None | Some("bearer") => BasicTokenType::Bearer,
                Some("mac") => BasicTokenType::Mac,
                Some(other) => BasicTokenType::Extension(other.to_owned()),
            },
            fields,
            shape: PhantomData,
        })
    }
}

impl<S: Shape> From<ProviderToken<S>> for Value {
    fn from(token: ProviderToken<S>) -> Value {
        serde_json::json!({
            "access_token": token.fields.access_token.expose(),
            "token_type": token.fields.token_type,
            "expires_in": token.fields.expires_in,
            "refresh_token": token.fields.refresh_token.as_ref().map(Secret::expose),
            "scope": token.fields.scope,
        })
    }
}

impl<S: Shape> oauth2::TokenResponse for ProviderToken<S> {
    type TokenType = BasicTokenType;

    fn access_token(&self) -> &AccessToken {
        &self.access_token
    }

    fn token_type(&self) -> &BasicTokenType {
        &self.token_type
    }

    fn expires_in(&self) -> Option<Duration> {
        self.fields.expires_in.map(Duration::from_secs)
    }

    fn refresh_token(&self) -> Option<&RefreshToken> {
        self.refresh_token.as_ref()
    }

    fn scopes(&self) -> Option<&Vec<Scope>> {
        None
    }
}

/// An `oauth2` client of a token endpoint whose answers have shape `S`.
type OAuthClient<S> = oauth2::Client<
    BasicErrorResponse,
    ProviderToken<S>,
    oauth2::basic::BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    oauth2::basic::BasicRevocationErrorResponse,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

/// Why the HTTP exchange itself failed.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct HttpFailure(String);

/// Our reqwest client for `oauth2`, remembering the status of the last answer (`oauth2` keeps
/// it from its errors; the messages name it).
#[derive(Debug)]
struct OAuthHttp<'a> {
    client: &'a reqwest::Client,
    last_status: Mutex<Option<u16>>,
}

impl<'c> oauth2::AsyncHttpClient<'c> for OAuthHttp<'_> {
    type Error = HttpFailure;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<HttpResponse, HttpFailure>> + Send + 'c>,
    >;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(async move {
            let request = reqwest::Request::try_from(request)
                .map_err(|err| HttpFailure(describe_http_error(&err)))?;
            let response = self
                .client
                .execute(request)
                .await
                .map_err(|err| HttpFailure(describe_http_error(&err)))?;
            let status = response.status();
            if let Ok(mut last) = self.last_status.lock() {
                *last = Some(status.as_u16());
            }
            let mut answer = oauth2::http::Response::builder().status(status);
            for (name, value) in response.headers() {
                answer = answer.header(name, value);
            }
            let body = response
                .bytes()
                .await
                .map_err(|err| HttpFailure(describe_http_error(&err)))?;
            answer
                .body(body.to_vec())
                .map_err(|err| HttpFailure(err.to_string()))
        })
    }
}

impl TokenClient {
    fn oauth_client<S: Shape>(&self) -> OAuthClient<S> {
        let client = oauth2::Client::new(ClientId::new(self.client_id.clone()))
            .set_token_uri(TokenUrl::from_url(self.token_url.clone()));
        match (self.auth, &self.client_secret) {
            (ClientAuth::None, _) | (_, None) => client,
            (auth, Some(secret)) => client
                .set_client_secret(ClientSecret::new(secret.expose().to_owned()))
                .set_auth_type(match auth {
                    ClientAuth::Post => AuthType::RequestBody,
                    _ => AuthType::BasicAuth,
                }),
        }
    }

    /// The client-credentials grant (RFC 6749 §4.4), with `scopes` (space separated) and extra
    /// parameters (RFC 8707 `resource`).
    pub async fn client_credentials(
        &self,
        http: &reqwest::Client,
        scopes: Option<&str>,
        extra: &[(&str, &str)],
    ) -> Result<TokenResponse, OAuthError> {
        let client = self.oauth_client::<Standard>();
        let mut request = client.exchange_client_credentials().add_scopes(
            scopes
                .into_iter()
                .flat_map(str::split_whitespace)
                .map(|s| Scope::new(s.to_owned())),
        );
        for (name, value) in extra {
            request = request.add_extra_param(*name, *value);
        }
        let http = OAuthHttp::new(http);
        let result = request.request_async(&http).await;
        self.answer(&http, result)
    }

    /// The authorization-code grant (RFC 6749 §4.1.3) with the PKCE verifier, when one was sent.
    pub async fn authorization_code(
        &self,
        http: &reqwest::Client,
        code: &Secret,
        redirect_uri: &Url,
        verifier: Option<&Secret>,
        shape: ResponseShape,
    ) -> Result<TokenResponse, OAuthError> {
        match shape {
            ResponseShape::Standard => {
                self.code::<Standard>(http, code, redirect_uri, verifier)
                    .await
            }
            ResponseShape::SlackUser => {
                self.code::<SlackUser>(http, code, redirect_uri, verifier)
                    .await
            }
        }
    }

    async fn code<S: Shape>(
        &self,
        http: &reqwest::Client,
        code: &Secret,
        redirect_uri: &Url,
        verifier: Option<&Secret>,
    ) -> Result<TokenResponse, OAuthError> {
        let client = self
            .oauth_client::<S>()
            .set_redirect_uri(RedirectUrl::from_url(redirect_uri.clone()));
        let mut request = client.exchange_code(AuthorizationCode::new(code.expose().to_owned()));
        if let Some(verifier) = verifier {
            request =
                request.set_pkce_verifier(PkceCodeVerifier::new(verifier.expose().to_owned()));
        }
        let http = OAuthHttp::new(http);
        let result = request.request_async(&http).await;
        self.answer(&http, result)
    }

    /// The refresh-token grant (RFC 6749 §6).
    pub async fn refresh(
        &self,
        http: &reqwest::Client,
        refresh_token: &Secret,
        shape: ResponseShape,
    ) -> Result<TokenResponse, OAuthError> {
        match shape {
            ResponseShape::Standard => self.refresh_as::<Standard>(http, refresh_token).await,
            ResponseShape::SlackUser => self.refresh_as::<SlackUser>(http, refresh_token).await,
        }
    }

    async fn refresh_as<S: Shape>(
        &self,
        http: &reqwest::Client,
        refresh_token: &Secret,
    ) -> Result<TokenResponse, OAuthError> {
        let client = self.oauth_client::<S>();
        let token = RefreshToken::new(refresh_token.expose().to_owned());
        let http = OAuthHttp::new(http);
        let result = client
            .exchange_refresh_token(&token)
            .request_async(&http)
            .await;
        self.answer(&http, result)
    }

    /// Our reading of `oauth2`'s result: the token's fields, or why there is none.
    fn answer<S: Shape>(
        &self,
        http: &OAuthHttp<'_>,
        result: Result<ProviderToken<S>, RequestTokenError<HttpFailure, BasicErrorResponse>>,
    ) -> Result<TokenResponse, OAuthError> {
        let url = self.token_url.to_string();
        let status = http
            .last_status
            .lock()
            .ok()
            .and_then(|last| *last)
            .unwrap_or(0);
        match result {
            Ok(token) => Ok(token.fields),
            Err(RequestTokenError::Request(failure)) => Err(OAuthError::Unreachable {
                url,
                reason: failure.0,
            }),
            Err(RequestTokenError::ServerResponse(error)) => Err(OAuthError::Refused {
                url,
                status,
                error: error.error().as_ref().to_owned(),
                description: error.error_description().cloned(),
            }),
            // A 200 with an `error` (GitHub, Slack), or an answer that is not a token response.
            Err(RequestTokenError::Parse(_, body)) => {
                Err(parse_token_response(&url, status, &body, S::SHAPE.path())
                    .err()
                    .unwrap_or_else(|| OAuthError::BadResponse {
                        url: url.clone(),
                        status,
                        detail: "an answer oauth2 could not read".into(),
                    }))
            }
            Err(RequestTokenError::Other(detail)) => Err(OAuthError::BadResponse {
                url,
                status,
                detail,
            }),
        }
    }
}

impl<'a> OAuthHttp<'a> {
    fn new(client: &'a reqwest::Client) -> OAuthHttp<'a> {
        OAuthHttp {
            client,
            last_status: Mutex::new(None),
        }
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
    token_fields(&json, response_path).map_err(bad)
}

/// The token fields of a token response (RFC 6749 §5.1), read from the member `path` names
/// (Slack's `authed_user`) or the response itself. An `error` member is a refusal, even with
/// a 200 (GitHub, Slack's `{"ok": false, "error": …}`).
fn token_fields(value: &Value, path: Option<&str>) -> Result<TokenResponse, String> {
    let top = value.as_object().ok_or("not a JSON object")?;
    if top.contains_key("error") {
        return Err("an OAuth error response".into());
    }
    let fields: &Map<String, Value> = match path {
        Some(path) => top
            .get(path)
            .and_then(Value::as_object)
            .ok_or_else(|| format!("no {path:?} object in it"))?,
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
        .ok_or("no access_token in it")?;
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

/// The provider's `token_endpoint` from OIDC discovery (`{issuer}/.well-known/openid-configuration`),
/// by `openidconnect`: the document must parse as provider metadata and its `issuer` must be the
/// configured one (OpenID Connect Discovery §4.3). A parsed URL cannot tell `https://idp` from
/// `https://idp/`, so an issuer without a path is tried in the other form when the document
/// names it so; any other difference is refused.
pub async fn discover_token_endpoint(
    http: &reqwest::Client,
    issuer: &Url,
) -> Result<Url, OAuthError> {
    let as_given = issuer.as_str();
    let metadata = match discover(http, as_given).await {
        Err(DiscoveryFailure::OtherIssuer(_)) if issuer.path() == "/" => {
            discover(http, as_given.trim_end_matches('/')).await
        }
        other => other,
    };
    let discovery = format!(
        "{}/.well-known/openid-configuration",
        as_given.trim_end_matches('/')
    );
    let bad = |status: u16, detail: String| OAuthError::BadResponse {
        url: discovery.clone(),
        status,
        detail,
    };
    let metadata = metadata.map_err(|failure| match failure {
        DiscoveryFailure::Unreachable(reason) => OAuthError::Unreachable {
            url: discovery.clone(),
            reason,
        },
        DiscoveryFailure::Status(status) => bad(status, "discovery must answer 200".into()),
        DiscoveryFailure::OtherIssuer(detail) | DiscoveryFailure::Unreadable(detail) => {
            bad(200, detail)
        }
    })?;
    let endpoint = metadata
        .token_endpoint()
        .ok_or_else(|| bad(200, "no token_endpoint in it".into()))?;
    Ok(endpoint.url().clone())
}

/// Why discovery gave no provider metadata.
enum DiscoveryFailure {
    Unreachable(String),
    Status(u16),
    OtherIssuer(String),
    Unreadable(String),
}

async fn discover(
    http: &reqwest::Client,
    issuer: &str,
) -> Result<openidconnect::core::CoreProviderMetadata, DiscoveryFailure> {
    use openidconnect::DiscoveryError;
    let issuer = openidconnect::IssuerUrl::new(issuer.to_owned())
        .map_err(|err| DiscoveryFailure::Unreadable(format!("issuer {issuer:?}: {err}")))?;
    openidconnect::core::CoreProviderMetadata::discover_async(issuer, &OAuthHttp::new(http))
        .await
        .map_err(|err| match err {
            DiscoveryError::Request(failure) => DiscoveryFailure::Unreachable(failure.to_string()),
            DiscoveryError::Response(status, _, _) => DiscoveryFailure::Status(status.as_u16()),
            DiscoveryError::Validation(detail) => DiscoveryFailure::OtherIssuer(detail),
            DiscoveryError::Parse(err) => {
                DiscoveryFailure::Unreadable(format!("not an OIDC discovery document: {err}"))
            }
            other => DiscoveryFailure::Unreadable(other.to_string()),
        })
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

    /// A token endpoint on loopback that answers each request with `status` and `body` (and
    /// `Location` for a redirect), and hands each request it received to the test.
    async fn endpoint(
        status: u16,
        body: &'static str,
    ) -> (Url, tokio::sync::mpsc::UnboundedReceiver<String>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = Url::parse(&format!("http://{}/token", listener.local_addr().unwrap())).unwrap();
        let (seen, requests) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let mut request = Vec::new();
                let mut buffer = [0u8; 4096];
                // Headers, then a body of Content-Length bytes.
                loop {
                    let read = stream.read(&mut buffer).await.unwrap_or(0);
                    request.extend_from_slice(&buffer[..read]);
                    let text = String::from_utf8_lossy(&request).to_string();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let length: usize = text
                            .lines()
                            .find_map(|line| {
                                line.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse().unwrap_or(0))
                            })
                            .unwrap_or(0);
                        if request.len() >= end + 4 + length || read == 0 {
                            break;
                        }
                    }
                    if read == 0 {
                        break;
                    }
                }
                let _ = seen.send(String::from_utf8_lossy(&request).into_owned());
                let answer = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\nlocation: http://127.0.0.1:9/elsewhere\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(answer.as_bytes()).await;
            }
        });
        (url, requests)
    }

    fn client(url: &Url, auth: ClientAuth, secret: Option<&str>) -> TokenClient {
        TokenClient {
            token_url: url.clone(),
            client_id: "my client".into(),
            client_secret: secret.map(Secret::new),
            auth,
        }
    }

    const TOKEN: &str = r#"{"access_token":"at","token_type":"Bearer","expires_in":"3600","refresh_token":"rt","scope":"a b"}"#;

    #[tokio::test]
    async fn client_authentication_basic_post_and_none_reach_the_endpoint() {
        let http = http_client().unwrap();
        let (url, mut requests) = endpoint(200, TOKEN).await;
        // basic: RFC 6749 §2.3.1, id and secret form-encoded before Base64.
        let token = client(&url, ClientAuth::Basic, Some("s3cret:+"))
            .client_credentials(&http, Some("a b"), &[("resource", "https://gw.example")])
            .await
            .unwrap();
        assert_eq!(token.access_token.expose(), "at");
        assert_eq!(token.expires_in, Some(3600), "expires_in as a string");
        assert_eq!(token.token_type.as_deref(), Some("Bearer"));
        let request = requests.recv().await.unwrap();
        let basic = base64::engine::general_purpose::STANDARD.encode("my+client:s3cret%3A%2B");
        assert!(
            request.contains(&format!("authorization: Basic {basic}")),
            "{request}"
        );
        assert!(
            request.contains("grant_type=client_credentials"),
            "{request}"
        );
        assert!(request.contains("scope=a+b"), "{request}");
        assert!(
            request.contains("resource=https%3A%2F%2Fgw.example"),
            "{request}"
        );
        assert!(!request.contains("client_secret="), "{request}");
        // post: both in the form.
        client(&url, ClientAuth::Post, Some("s3cret"))
            .refresh(&http, &Secret::new("old-rt"), ResponseShape::Standard)
            .await
            .unwrap();
        let request = requests.recv().await.unwrap();
        assert!(
            !request.to_ascii_lowercase().contains("authorization:"),
            "{request}"
        );
        assert!(request.contains("client_id=my+client"), "{request}");
        assert!(request.contains("client_secret=s3cret"), "{request}");
        assert!(request.contains("grant_type=refresh_token"), "{request}");
        assert!(request.contains("refresh_token=old-rt"), "{request}");
        // none: a public client sends its id and the PKCE verifier, no secret.
        let redirect = Url::parse("http://127.0.0.1:8080/callback").unwrap();
        client(&url, ClientAuth::None, None)
            .authorization_code(
                &http,
                &Secret::new("c0de"),
                &redirect,
                Some(&Secret::new("v3rifier")),
                ResponseShape::Standard,
            )
            .await
            .unwrap();
        let request = requests.recv().await.unwrap();
        assert!(
            !request.to_ascii_lowercase().contains("authorization:"),
            "{request}"
        );
        assert!(request.contains("client_id=my+client"), "{request}");
        assert!(!request.contains("client_secret"), "{request}");
        assert!(request.contains("code=c0de"), "{request}");
        assert!(request.contains("code_verifier=v3rifier"), "{request}");
        assert!(
            request.contains("redirect_uri=http%3A%2F%2F127.0.0.1%3A8080%2Fcallback"),
            "{request}"
        );
    }

    #[tokio::test]
    async fn github_and_slack_answers_are_read_through_the_custom_token_types() {
        let http = http_client().unwrap();
        let redirect = Url::parse("http://127.0.0.1:8080/callback").unwrap();
        let code = |url: &Url, shape| {
            let client = client(url, ClientAuth::Post, Some("s"));
            let redirect = redirect.clone();
            let http = http.clone();
            async move {
                client
                    .authorization_code(&http, &Secret::new("c"), &redirect, None, shape)
                    .await
            }
        };
        // GitHub: an error with a 200.
        let (url, _) = endpoint(200, r#"{"error":"bad_verification_code","error_description":"The code passed is incorrect or expired."}"#).await;
        let error = code(&url, ResponseShape::Standard).await.unwrap_err();
        assert_eq!(error.oauth_error(), Some("bad_verification_code"));
        assert!(error.to_string().contains("refused (200)"), "{error}");
        // Slack: the user token in authed_user, and {"ok": false, "error": …}.
        let (url, _) = endpoint(200, r#"{"ok":true,"access_token":"xoxb-bot","token_type":"bot","authed_user":{"id":"U1","access_token":"xoxp-user","scope":"search:read","token_type":"user"}}"#).await;
        let token = code(&url, ResponseShape::SlackUser).await.unwrap();
        assert_eq!(token.access_token.expose(), "xoxp-user");
        assert_eq!(token.scope.as_deref(), Some("search:read"));
        let (url, _) = endpoint(200, r#"{"ok":false,"error":"invalid_code"}"#).await;
        let error = code(&url, ResponseShape::SlackUser).await.unwrap_err();
        assert_eq!(error.oauth_error(), Some("invalid_code"));
        // A standard refusal keeps its status.
        let (url, _) = endpoint(
            401,
            r#"{"error":"invalid_client","error_description":"client authentication failed"}"#,
        )
        .await;
        let error = code(&url, ResponseShape::Standard).await.unwrap_err();
        assert_eq!(
            error.to_string(),
            format!("{url} refused (401): invalid_client: client authentication failed")
        );
    }

    #[tokio::test]
    async fn a_redirecting_token_endpoint_is_not_followed() {
        let http = http_client().unwrap();
        let (url, mut requests) = endpoint(302, "{}").await;
        let error = client(&url, ClientAuth::Basic, Some("s"))
            .client_credentials(&http, None, &[])
            .await
            .unwrap_err();
        assert!(
            matches!(
                error,
                OAuthError::Refused { status: 302, .. }
                    | OAuthError::BadResponse { status: 302, .. }
            ),
            "{error}"
        );
        requests.recv().await.unwrap();
        assert!(
            requests.try_recv().is_err(),
            "one request, the redirect not followed"
        );
    }
}
