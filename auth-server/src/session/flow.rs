//! The sign-in flow with the IdP (I/O): OIDC discovery, the authorization request (code + PKCE
//! S256, `state`, `nonce`), the code exchange and ID token validation, userinfo for groups the
//! ID token does not carry, refresh, and sign-out (revocation and RP-initiated logout). The
//! protocol work is `openidconnect`'s; its HTTP goes through our reqwest client (rustls, no
//! redirects followed, bounded time).

use std::sync::Arc;
use std::time::{Duration, Instant};

use openidconnect::core::{
    CoreAuthDisplay, CoreAuthPrompt, CoreAuthenticationFlow, CoreClaimName, CoreClaimType,
    CoreClientAuthMethod, CoreErrorResponseType, CoreGenderClaim, CoreGrantType, CoreJsonWebKey,
    CoreJweContentEncryptionAlgorithm, CoreJweKeyManagementAlgorithm, CoreJwsSigningAlgorithm,
    CoreResponseMode, CoreResponseType, CoreRevocableToken, CoreRevocationErrorResponse,
    CoreSubjectIdentifierType, CoreTokenIntrospectionResponse, CoreTokenType,
};
use openidconnect::{
    AccessToken, AdditionalClaims, AdditionalProviderMetadata, AuthorizationCode, ClientId,
    ClientSecret, CsrfToken, EmptyExtraTokenFields, EndpointMaybeSet, EndpointNotSet, EndpointSet,
    IdTokenFields, IssuerUrl, LogoutProviderMetadata, LogoutRequest, Nonce, OAuth2TokenResponse,
    PkceCodeChallenge, PkceCodeVerifier, PostLogoutRedirectUrl, ProviderMetadata, RedirectUrl,
    RefreshToken, RevocationUrl, Scope, StandardErrorResponse, StandardTokenResponse,
    TokenResponse as _,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::settings::SessionSettings;
use super::{PendingSignIn, Session};

/// How long a sign-in may take at the IdP.
pub const SIGN_IN_SECONDS: u64 = 600;

/// How long discovered metadata (and the IdP's key set in it) is used before it is fetched
/// again; a failed ID token validation drops it at once.
const METADATA_TTL: Duration = Duration::from_secs(600);

/// Claims besides the standard ones (the groups claim is configurable).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct OtherClaims {
    #[serde(flatten)]
    claims: Map<String, Value>,
}

impl AdditionalClaims for OtherClaims {}

/// Discovery fields besides the standard ones: RFC 7009 revocation.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Revocation {
    revocation_endpoint: Option<RevocationUrl>,
}

impl AdditionalProviderMetadata for Revocation {}

type Metadata = ProviderMetadata<
    LogoutProviderMetadata<Revocation>,
    CoreAuthDisplay,
    CoreClientAuthMethod,
    CoreClaimName,
    CoreClaimType,
    CoreGrantType,
    CoreJweContentEncryptionAlgorithm,
    CoreJweKeyManagementAlgorithm,
    CoreJsonWebKey,
    CoreResponseMode,
    CoreResponseType,
    CoreSubjectIdentifierType,
>;

type Tokens = StandardTokenResponse<
    IdTokenFields<
        OtherClaims,
        EmptyExtraTokenFields,
        CoreGenderClaim,
        CoreJweContentEncryptionAlgorithm,
        CoreJwsSigningAlgorithm,
    >,
    CoreTokenType,
>;

type OidcClient = openidconnect::Client<
    OtherClaims,
    CoreAuthDisplay,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJsonWebKey,
    CoreAuthPrompt,
    StandardErrorResponse<CoreErrorResponseType>,
    Tokens,
    CoreTokenIntrospectionResponse,
    CoreRevocableToken,
    CoreRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// Why a sign-in step failed; the text is shown to the person (never a token).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FlowError {
    /// The IdP's discovery document could not be had.
    #[error("the identity provider cannot be reached ({0}); try again shortly")]
    Discovery(String),
    /// No sign-in cookie, or one that does not open.
    #[error("no sign-in is in progress in this browser (or it was started elsewhere): start again")]
    NoPendingSignIn,
    /// The sign-in took longer than [`SIGN_IN_SECONDS`].
    #[error("the sign-in took too long: start again")]
    PendingExpired,
    /// `state` differs from the one sent.
    #[error("the sign-in answer does not belong to this browser's sign-in (state mismatch)")]
    StateMismatch,
    /// The IdP answered with an error.
    #[error("the identity provider refused the sign-in: {0}")]
    Refused(String),
    /// The callback has no code.
    #[error("the sign-in answer has no authorization code")]
    NoCode,
    /// The code exchange failed.
    #[error("the authorization code could not be exchanged: {0}")]
    Exchange(String),
    /// The ID token is missing or invalid (signature, issuer, audience, expiry, nonce).
    #[error("the identity provider's ID token is not valid: {0}")]
    IdToken(String),
    /// Userinfo failed.
    #[error("the identity provider's userinfo could not be read: {0}")]
    UserInfo(String),
    /// The refresh failed.
    #[error("the session could not be refreshed: {0}")]
    Refresh(String),
    /// The session does not fit in a cookie.
    #[error("the session is too large for a cookie ({0} bytes): the IdP sends too many groups")]
    TooLarge(usize),
}

/// Why an HTTP exchange with the IdP failed.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct HttpFailure(String);

/// Our reqwest client, as `openidconnect`'s HTTP client.
#[derive(Debug, Clone)]
struct Http(reqwest::Client);

impl<'c> openidconnect::AsyncHttpClient<'c> for Http {
    type Error = HttpFailure;
    type Future = std::pin::Pin<
        Box<
            dyn std::future::Future<Output = Result<openidconnect::HttpResponse, HttpFailure>>
                + Send
                + 'c,
        >,
    >;

    fn call(&'c self, request: openidconnect::HttpRequest) -> Self::Future {
        Box::pin(async move {
            let failed = |err: reqwest::Error| HttpFailure(err.without_url().to_string());
            let request = reqwest::Request::try_from(request).map_err(failed)?;
            let response = self.0.execute(request).await.map_err(failed)?;
            let mut answer = openidconnect::http::Response::builder().status(response.status());
            if let Some(headers) = answer.headers_mut() {
                headers.extend(response.headers().clone());
            }
            let body = response.bytes().await.map_err(failed)?;
            answer
                .body(body.to_vec())
                .map_err(|err| HttpFailure(err.to_string()))
        })
    }
}

/// The sign-in flow of one process: settings, an HTTP client, the discovered metadata.
#[derive(Debug)]
pub struct SignInFlow {
    settings: SessionSettings,
    http: Http,
    metadata: tokio::sync::Mutex<Option<(Arc<Metadata>, Instant)>>,
}

impl SignInFlow {
    /// A flow with the validated settings.
    pub fn new(settings: SessionSettings) -> Self {
        // Redirects are not followed (an IdP answer is never a redirect worth following).
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap_or_default();
        SignInFlow {
            settings,
            http: Http(http),
            metadata: tokio::sync::Mutex::new(None),
        }
    }

    /// The settings.
    pub fn settings(&self) -> &SessionSettings {
        &self.settings
    }

    async fn metadata(&self) -> Result<Arc<Metadata>, FlowError> {
        let mut cached = self.metadata.lock().await;
        if let Some((metadata, fetched)) = cached.as_ref()
            && fetched.elapsed() < METADATA_TTL
        {
            return Ok(metadata.clone());
        }
        let issuer = IssuerUrl::new(self.settings.issuer.clone())
            .map_err(|err| FlowError::Discovery(err.to_string()))?;
        let metadata = Arc::new(
            Metadata::discover_async(issuer, &self.http)
                .await
                .map_err(|err| FlowError::Discovery(describe(&err)))?,
        );
        *cached = Some((metadata.clone(), Instant::now()));
        Ok(metadata)
    }

    async fn forget_metadata(&self) {
        *self.metadata.lock().await = None;
    }

    fn client(&self, metadata: &Metadata) -> Result<OidcClient, FlowError> {
        let redirect = RedirectUrl::new(self.settings.redirect_url())
            .map_err(|err| FlowError::Discovery(err.to_string()))?;
        Ok(OidcClient::from_provider_metadata(
            metadata.clone(),
            ClientId::new(self.settings.client_id.clone()),
            self.settings.client_secret.clone().map(ClientSecret::new),
        )
        .set_redirect_uri(redirect))
    }

    /// Starts a sign-in: the IdP's authorization URL, and what the callback must find again.
    pub async fn start(
        &self,
        return_to: &str,
        now: u64,
    ) -> Result<(String, PendingSignIn), FlowError> {
        let client = self.client(&*self.metadata().await?)?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let (url, state, nonce) = client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .add_scopes(
                self.settings
                    .scopes
                    .iter()
                    .filter(|scope| *scope != "openid")
                    .map(|scope| Scope::new(scope.clone())),
            )
            .set_pkce_challenge(challenge)
            .url();
        let pending = PendingSignIn {
            state: state.secret().clone(),
            nonce: nonce.secret().clone(),
            pkce_verifier: verifier.secret().clone(),
            return_to: return_to.to_owned(),
            expires_at: now + SIGN_IN_SECONDS,
        };
        Ok((url.to_string(), pending))
    }

    /// Finishes a sign-in: checks `state`, exchanges the code (with the PKCE verifier),
    /// validates the ID token (signature, issuer, audience, expiry, `nonce`) and makes the
    /// session.
    pub async fn finish(
        &self,
        pending: &PendingSignIn,
        code: &str,
        state: &str,
        now: u64,
    ) -> Result<Session, FlowError> {
        if now >= pending.expires_at {
            return Err(FlowError::PendingExpired);
        }
        if !constant_time_eq(state.as_bytes(), pending.state.as_bytes()) {
            return Err(FlowError::StateMismatch);
        }
        let metadata = self.metadata().await?;
        let client = self.client(&metadata)?;
        let tokens = client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .map_err(|err| FlowError::Exchange(err.to_string()))?
            .set_pkce_verifier(PkceCodeVerifier::new(pending.pkce_verifier.clone()))
            .request_async(&self.http)
            .await
            .map_err(|err| FlowError::Exchange(describe(&err)))?;
        let id_token = tokens
            .id_token()
            .ok_or_else(|| FlowError::IdToken("the token answer has no id_token".into()))?;
        let nonce = Nonce::new(pending.nonce.clone());
        let claims = match id_token.claims(&client.id_token_verifier(), &nonce) {
            Ok(claims) => claims,
            Err(err) => {
                // The IdP may have rotated its keys since discovery.
                self.forget_metadata().await;
                return Err(FlowError::IdToken(err.to_string()));
            }
        };
        let subject = claims.subject().to_string();
        let mut groups = groups_of(
            &claims.additional_claims().claims,
            &self.settings.groups_claim,
        );
        if groups.is_none() {
            groups = self
                .userinfo_groups(&client, tokens.access_token(), &subject)
                .await?;
        }
        let ends_at = now + self.settings.lifetime_seconds;
        let refresh_token = tokens.refresh_token().map(|token| token.secret().clone());
        let id_token_expires = u64::try_from(claims.expiration().timestamp()).unwrap_or(0);
        let session = Session {
            username: username_of(claims).unwrap_or_else(|| subject.clone()),
            subject,
            groups: groups.unwrap_or_default(),
            signed_in_at: now,
            ends_at,
            valid_until: match refresh_token {
                Some(_) => now + self.settings.refresh_seconds,
                None => id_token_expires,
            }
            .min(ends_at),
            refresh_token,
        };
        Ok(session)
    }

    /// The groups from userinfo, when the ID token had none and the IdP has the endpoint.
    async fn userinfo_groups(
        &self,
        client: &OidcClient,
        access_token: &AccessToken,
        subject: &str,
    ) -> Result<Option<Vec<String>>, FlowError> {
        let Ok(request) = client.user_info(
            access_token.clone(),
            Some(openidconnect::SubjectIdentifier::new(subject.to_owned())),
        ) else {
            return Ok(None);
        };
        let info: openidconnect::UserInfoClaims<OtherClaims, CoreGenderClaim> = request
            .request_async(&self.http)
            .await
            .map_err(|err| FlowError::UserInfo(describe(&err)))?;
        Ok(groups_of(
            &info.additional_claims().claims,
            &self.settings.groups_claim,
        ))
    }

    /// Refreshes a session with its refresh token: a new validity window (never past the
    /// session's end), and the groups of a new ID token when the IdP sends one.
    pub async fn refresh(&self, session: &Session, now: u64) -> Result<Session, FlowError> {
        let Some(refresh_token) = session.refresh_token.as_ref() else {
            return Err(FlowError::Refresh("the IdP gave no refresh token".into()));
        };
        let client = self.client(&*self.metadata().await?)?;
        let refresh_token = RefreshToken::new(refresh_token.clone());
        let tokens = client
            .exchange_refresh_token(&refresh_token)
            .map_err(|err| FlowError::Refresh(err.to_string()))?
            .request_async(&self.http)
            .await
            .map_err(|err| FlowError::Refresh(describe(&err)))?;
        let mut refreshed = session.clone();
        if let Some(id_token) = tokens.id_token() {
            // A refreshed ID token carries no new nonce (OIDC Core §12.2).
            let claims = id_token
                .claims(&client.id_token_verifier(), |_: Option<&Nonce>| Ok(()))
                .map_err(|err| FlowError::Refresh(err.to_string()))?;
            if claims.subject().as_str() != session.subject {
                return Err(FlowError::Refresh(
                    "the refreshed ID token names someone else".into(),
                ));
            }
            if let Some(groups) = groups_of(
                &claims.additional_claims().claims,
                &self.settings.groups_claim,
            ) {
                refreshed.groups = groups;
            }
        }
        if let Some(rotated) = tokens.refresh_token() {
            refreshed.refresh_token = Some(rotated.secret().clone());
        }
        refreshed.valid_until = (now + self.settings.refresh_seconds).min(session.ends_at);
        Ok(refreshed)
    }

    /// Signs out at the IdP: revokes the refresh token where the IdP has RFC 7009 revocation,
    /// and returns the RP-initiated logout URL (back to `post_logout`) where it has one.
    pub async fn sign_out(&self, session: Option<&Session>, post_logout: &str) -> Option<String> {
        let metadata = self.metadata().await.ok()?;
        let additional = metadata.additional_metadata();
        if let (Some(url), Some(token)) = (
            additional.additional_metadata.revocation_endpoint.clone(),
            session.and_then(|session| session.refresh_token.clone()),
        ) && let Ok(client) = self.client(&metadata)
        {
            let client = client.set_revocation_url(url);
            let revoked = client.revoke_token(CoreRevocableToken::from(RefreshToken::new(token)));
            match revoked {
                Ok(request) => {
                    if let Err(err) = request.request_async(&self.http).await {
                        tracing::warn!(error = %describe(&err), "refresh token revocation failed");
                    }
                }
                Err(err) => tracing::warn!(error = %err, "refresh token revocation not possible"),
            }
        }
        let end_session = additional.end_session_endpoint.clone()?;
        let mut logout = LogoutRequest::from(end_session)
            .set_client_id(ClientId::new(self.settings.client_id.clone()));
        if let Ok(url) = PostLogoutRedirectUrl::new(post_logout.to_owned()) {
            logout = logout.set_post_logout_redirect_uri(url);
        }
        Some(logout.http_get_url().to_string())
    }
}

/// The groups in `claims[name]`: an array of strings, or one string. `None` when the claim is
/// not there at all.
fn groups_of(claims: &Map<String, Value>, name: &str) -> Option<Vec<String>> {
    match claims.get(name)? {
        Value::Array(items) => Some(
            items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
        ),
        Value::String(group) => Some(vec![group.clone()]),
        _ => Some(Vec::new()),
    }
}

/// A name to show: `preferred_username`, else `email`, else `name`.
fn username_of(
    claims: &openidconnect::IdTokenClaims<OtherClaims, CoreGenderClaim>,
) -> Option<String> {
    claims
        .preferred_username()
        .map(|name| name.to_string())
        .or_else(|| claims.email().map(|email| email.to_string()))
        .or_else(|| {
            claims
                .name()
                .and_then(|name| name.get(None))
                .map(|name| name.to_string())
        })
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// An error and its sources, one line.
fn describe(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn groups_come_from_an_array_or_one_string() {
        let claims: Map<String, Value> =
            serde_json::from_str(r#"{"groups":["a","b",3],"one":"c","odd":{}}"#).unwrap();
        assert_eq!(
            groups_of(&claims, "groups"),
            Some(vec!["a".into(), "b".into()])
        );
        assert_eq!(groups_of(&claims, "one"), Some(vec!["c".into()]));
        assert_eq!(groups_of(&claims, "odd"), Some(vec![]));
        assert_eq!(groups_of(&claims, "cognito:groups"), None);
    }

    #[test]
    fn state_comparison_is_exact() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
