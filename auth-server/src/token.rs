//! Ingress token verification at a given time, and the cache of verified tokens.
//!
//! jsonwebtoken checks the signature only; every claim is checked here, explicitly, against the
//! `now` handed in (its own claim checks are optional per claim and read the system clock).

use std::collections::HashSet;
use std::sync::Arc;

use jsonwebtoken::{Algorithm, Validation};
use serde_json::{Map, Value};

use crate::jwks::KeySet;

/// Largest token accepted; a longer one is refused before any parsing.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// Which kind of provider issued the token; decides the claims that identify the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    /// Amazon Cognito: `client_id` claim, `token_use` must be `access`.
    Cognito,
    /// Any OIDC provider: `azp`, else `client_id`.
    Oidc,
}

impl Provider {
    /// The name sent in `X-Auth-Method`.
    pub fn name(self) -> &'static str {
        match self {
            Provider::Cognito => "cognito",
            Provider::Oidc => "oidc",
        }
    }
}

/// What a token must satisfy, from the configuration.
#[derive(Debug, Clone)]
pub struct TokenRules {
    /// Provider kind.
    pub provider: Provider,
    /// Exact `iss`.
    pub issuer: String,
    /// Allowed client ids; `None` = any.
    pub client_ids: Option<HashSet<String>>,
    /// `aud` must hold one of these; `None` = not checked.
    pub audiences: Option<Vec<String>>,
    /// Claim holding the IdP groups.
    pub groups_claim: String,
    /// Clock skew allowed on `exp`, `nbf`, `iat`, in seconds.
    pub leeway_seconds: u64,
}

/// The identity a verified token proves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedToken {
    /// `sub`.
    pub subject: String,
    /// `username`, `preferred_username` or `cognito:username`, else the client id.
    pub username: String,
    /// The verified client id (`client_id`, or for OIDC `azp` first).
    pub client_id: String,
    /// IdP groups from the configured groups claim.
    pub groups: Vec<String>,
    /// Scopes from `scope` (space-separated) or `scp` (array).
    pub scopes: Vec<String>,
    /// `exp`, seconds since the epoch.
    pub expires_at: u64,
}

/// Why a token was refused (401). Descriptions go to the client: they never hold the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// Longer than [`MAX_TOKEN_BYTES`].
    #[error("the token is longer than {MAX_TOKEN_BYTES} bytes")]
    TooLong,
    /// Not three base64url parts with a JSON header.
    #[error("the token is not a signed JWT")]
    Malformed,
    /// `alg` is `none`, HMAC, or unknown.
    #[error("the token's algorithm `{0}` is not accepted")]
    AlgorithmRefused(String),
    /// No `kid` in the header.
    #[error("the token header has no `kid`")]
    MissingKid,
    /// `kid` not in the key set (after a refresh when allowed).
    #[error("the token is signed by an unknown key")]
    UnknownKid(String),
    /// The key is pinned to other algorithms.
    #[error("the token's algorithm does not match its key")]
    AlgorithmMismatch,
    /// Signature does not verify.
    #[error("the token signature is invalid")]
    BadSignature,
    /// A claim is missing or of the wrong type.
    #[error("the token has no valid `{0}` claim")]
    BadClaim(String),
    /// `exp` passed.
    #[error("the token has expired")]
    Expired,
    /// `nbf` in the future.
    #[error("the token is not valid yet")]
    NotYetValid,
    /// `iat` in the future.
    #[error("the token is issued in the future")]
    IssuedInFuture,
    /// `iss` is not the configured issuer.
    #[error("the token is from another issuer")]
    WrongIssuer,
    /// No configured audience in `aud`.
    #[error("the token is not meant for this audience")]
    WrongAudience,
    /// Client id not allowed.
    #[error("the token's client is not allowed")]
    ClientNotAllowed,
    /// Cognito `token_use` is not `access`.
    #[error("the token is not an access token")]
    NotAccessToken,
    /// `iss` names no issuer this gateway trusts.
    #[error("the token is from another issuer: its `iss` is not one this gateway trusts")]
    UnknownIssuer,
    /// The provider left the groups out because there were too many (Entra ID's overage claim).
    #[error(
        "the token's groups did not fit in it (group overage): have the identity provider \
         send fewer groups, or app roles, in the token"
    )]
    GroupOverage,
}

/// A token's header and the issuer it claims, read before any key is looked at. Nothing in it
/// is trusted yet: it only says whose keys and rules may verify the token.
#[derive(Debug)]
pub struct Unverified<'t> {
    token: &'t str,
    algorithm: Algorithm,
    kid: String,
    issuer: String,
}

/// Reads a token's header (refusing `none`, HMAC and unknown algorithms, and a missing `kid`)
/// and the issuer its claims name.
pub fn read(token: &str) -> Result<Unverified<'_>, TokenError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(TokenError::TooLong);
    }
    let (algorithm, kid) = read_header(token)?;
    let issuer = claimed_issuer(token)?;
    Ok(Unverified {
        token,
        algorithm,
        kid,
        issuer,
    })
}

impl Unverified<'_> {
    /// The `iss` the token claims.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Verifies the signature with `keys` (the keys of the claimed issuer only) and every claim
    /// under `rules` at `now` (seconds since the epoch).
    pub fn verify(
        self,
        keys: &KeySet,
        rules: &TokenRules,
        now: u64,
    ) -> Result<VerifiedToken, TokenError> {
        let key = keys
            .get(&self.kid)
            .ok_or(TokenError::UnknownKid(self.kid))?;
        if !key.allows(self.algorithm) {
            return Err(TokenError::AlgorithmMismatch);
        }
        let claims = verified_claims(self.token, key.decoding_key(), self.algorithm)?;
        check_claims(&claims, rules, now)
    }
}

/// Verifies `token` with `keys` under `rules` at `now` (seconds since the epoch).
pub fn verify(
    token: &str,
    keys: &KeySet,
    rules: &TokenRules,
    now: u64,
) -> Result<VerifiedToken, TokenError> {
    read(token)?.verify(keys, rules, now)
}

/// The `iss` of the (not yet verified) claims. A payload with two `iss` members is refused:
/// the signature check and this reading must not see different issuers.
fn claimed_issuer(token: &str) -> Result<String, TokenError> {
    use base64::Engine as _;
    #[derive(serde::Deserialize)]
    struct Claimed {
        iss: Option<Value>,
    }
    let payload = token.split('.').nth(1).ok_or(TokenError::Malformed)?;
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| TokenError::Malformed)?;
    let claimed: Claimed = serde_json::from_slice(&json).map_err(|_| TokenError::Malformed)?;
    match claimed.iss {
        Some(Value::String(issuer)) => Ok(issuer),
        _ => Err(TokenError::BadClaim("iss".to_owned())),
    }
}

/// Reads `alg` and `kid` from the header, refusing `none`, HMAC and unknown algorithms.
///
/// Public for the fuzz target `token_header` (fuzz/): the first reader of untrusted token bytes.
pub fn read_header(token: &str) -> Result<(Algorithm, String), TokenError> {
    let header_part = token.split('.').next().unwrap_or_default();
    let parts = token.split('.').count();
    if parts != 3 || header_part.is_empty() {
        return Err(TokenError::Malformed);
    }
    let header = jsonwebtoken::decode_header(token).map_err(|_| {
        // Name the refused algorithm when the header is readable JSON with an `alg`.
        match raw_alg(header_part) {
            Some(alg) => TokenError::AlgorithmRefused(alg),
            None => TokenError::Malformed,
        }
    })?;
    if matches!(
        header.alg,
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512
    ) {
        return Err(TokenError::AlgorithmRefused(format!("{:?}", header.alg)));
    }
    let kid = header.kid.ok_or(TokenError::MissingKid)?;
    Ok((header.alg, kid))
}

fn raw_alg(header_part: &str) -> Option<String> {
    use base64::Engine as _;
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header_part)
        .ok()?;
    let header: Map<String, Value> = serde_json::from_slice(&json).ok()?;
    let alg = header.get("alg")?.as_str()?;
    // Only echo short, printable names; this goes into a response header.
    (alg.len() <= 16 && alg.chars().all(|c| c.is_ascii_alphanumeric())).then(|| alg.to_owned())
}

/// Verifies the signature and returns the claims, with no claim checks.
fn verified_claims(
    token: &str,
    key: &jsonwebtoken::DecodingKey,
    algorithm: Algorithm,
) -> Result<Map<String, Value>, TokenError> {
    let mut validation = Validation::new(algorithm);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    match jsonwebtoken::decode::<Map<String, Value>>(token, key, &validation) {
        Ok(data) => Ok(data.claims),
        Err(err) => Err(match err.kind() {
            jsonwebtoken::errors::ErrorKind::InvalidSignature => TokenError::BadSignature,
            jsonwebtoken::errors::ErrorKind::InvalidAlgorithm => TokenError::AlgorithmMismatch,
            _ => TokenError::Malformed,
        }),
    }
}

fn check_claims(
    claims: &Map<String, Value>,
    rules: &TokenRules,
    now: u64,
) -> Result<VerifiedToken, TokenError> {
    let leeway = rules.leeway_seconds;
    let expires_at = numeric_date(claims, "exp")?.ok_or(TokenError::BadClaim("exp".to_owned()))?;
    if expires_at.saturating_add(leeway) < now {
        return Err(TokenError::Expired);
    }
    if numeric_date(claims, "nbf")?.is_some_and(|nbf| nbf > now.saturating_add(leeway)) {
        return Err(TokenError::NotYetValid);
    }
    if numeric_date(claims, "iat")?.is_some_and(|iat| iat > now.saturating_add(leeway)) {
        return Err(TokenError::IssuedInFuture);
    }
    if string_claim(claims, "iss")?.ok_or(TokenError::BadClaim("iss".to_owned()))? != rules.issuer {
        return Err(TokenError::WrongIssuer);
    }
    // Entra ID leaves the groups out of a token that would hold too many, and says so instead
    // (`_claim_names.groups` pointing at Graph, or `hasgroups: true`): that is not "no groups".
    let overage_reference = claims
        .get("_claim_names")
        .and_then(|names| names.get(&rules.groups_claim))
        .is_some();
    if overage_reference || claims.get("hasgroups") == Some(&Value::Bool(true)) {
        return Err(TokenError::GroupOverage);
    }
    if let Some(audiences) = &rules.audiences {
        let token_audiences = string_list(claims, "aud")?.ok_or(TokenError::WrongAudience)?;
        if !token_audiences.iter().any(|aud| audiences.contains(aud)) {
            return Err(TokenError::WrongAudience);
        }
    }
    let client_id = match rules.provider {
        Provider::Cognito => {
            if string_claim(claims, "token_use")? != Some("access") {
                return Err(TokenError::NotAccessToken);
            }
            string_claim(claims, "client_id")?
        }
        Provider::Oidc => match string_claim(claims, "azp")? {
            Some(azp) => Some(azp),
            None => string_claim(claims, "client_id")?,
        },
    };
    let client_id = client_id
        .ok_or(TokenError::BadClaim("client_id".to_owned()))?
        .to_owned();
    if rules
        .client_ids
        .as_ref()
        .is_some_and(|allowed| !allowed.contains(&client_id))
    {
        return Err(TokenError::ClientNotAllowed);
    }
    let subject = string_claim(claims, "sub")?
        .unwrap_or(&client_id)
        .to_owned();
    let username = ["username", "preferred_username", "cognito:username"]
        .iter()
        .find_map(|name| claims.get(*name).and_then(Value::as_str))
        .unwrap_or(&client_id)
        .to_owned();
    let groups = string_list(claims, &rules.groups_claim)?.unwrap_or_default();
    let scopes = match string_claim(claims, "scope")? {
        Some(scope) => scope.split_whitespace().map(str::to_owned).collect(),
        None => string_list(claims, "scp")?.unwrap_or_default(),
    };
    Ok(VerifiedToken {
        subject,
        username,
        client_id,
        groups,
        scopes,
        expires_at,
    })
}

/// A NumericDate claim (integer or fractional seconds); `Ok(None)` when absent.
fn numeric_date(
    claims: &Map<String, Value>,
    name: &'static str,
) -> Result<Option<u64>, TokenError> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(number)) => number
            .as_u64()
            .or_else(|| {
                number
                    .as_f64()
                    .filter(|f| f.is_finite() && *f >= 0.0)
                    .map(|f| f as u64)
            })
            .map(Some)
            .ok_or(TokenError::BadClaim(name.to_owned())),
        Some(_) => Err(TokenError::BadClaim(name.to_owned())),
    }
}

fn string_claim<'c>(
    claims: &'c Map<String, Value>,
    name: &'static str,
) -> Result<Option<&'c str>, TokenError> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::String(value)) => Ok(Some(value)),
        Some(_) => Err(TokenError::BadClaim(name.to_owned())),
    }
}

/// A claim that is a string or an array of strings (`aud`, groups, `scp`).
fn string_list(claims: &Map<String, Value>, name: &str) -> Result<Option<Vec<String>>, TokenError> {
    let bad = || TokenError::BadClaim(name.to_owned());
    match claims.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(value)) => Ok(Some(vec![value.clone()])),
        Some(Value::Array(values)) => values
            .iter()
            .map(|value| value.as_str().map(str::to_owned).ok_or_else(bad))
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(bad()),
    }
}

/// Verified tokens, kept until they expire or the key set changes; bounded in entries.
#[derive(Debug)]
pub struct TokenCache {
    /// `None` when caching is off (`AUTH_TOKEN_CACHE_SIZE=0`).
    entries: Option<quick_cache::sync::Cache<Box<str>, CachedToken>>,
    hits: std::sync::atomic::AtomicU64,
    misses: std::sync::atomic::AtomicU64,
}

#[derive(Debug, Clone)]
struct CachedToken {
    token: Arc<VerifiedToken>,
    /// Which trusted issuer verified it (an index into the configured issuers).
    issuer: usize,
    /// The generation of that issuer's key set that verified it.
    key_generation: u64,
    /// `exp` plus the issuer's leeway.
    valid_until: u64,
}

impl TokenCache {
    /// A cache of at most `capacity` tokens; 0 turns caching off (every check verifies).
    pub fn new(capacity: usize) -> Self {
        TokenCache {
            entries: (capacity > 0).then(|| quick_cache::sync::Cache::new(capacity)),
            hits: Default::default(),
            misses: Default::default(),
        }
    }

    /// The cached verification of `token` and the issuer that made it, if still valid at `now`
    /// and made with the key set that issuer has now (`generation_of(issuer)`).
    pub fn get(
        &self,
        token: &str,
        now: u64,
        generation_of: impl Fn(usize) -> Option<u64>,
    ) -> Option<(Arc<VerifiedToken>, usize)> {
        use std::sync::atomic::Ordering::Relaxed;
        let entries = self.entries.as_ref()?;
        let Some(cached) = entries.get(token) else {
            self.misses.fetch_add(1, Relaxed);
            return None;
        };
        if generation_of(cached.issuer) != Some(cached.key_generation) || cached.valid_until < now {
            entries.remove(token);
            self.misses.fetch_add(1, Relaxed);
            return None;
        }
        self.hits.fetch_add(1, Relaxed);
        Some((cached.token, cached.issuer))
    }

    /// Remembers a token that `issuer` verified with its key set of `key_generation`; it stays
    /// valid until `exp` plus `leeway`.
    pub fn insert(
        &self,
        token: &str,
        verified: Arc<VerifiedToken>,
        issuer: usize,
        key_generation: u64,
        leeway: u64,
    ) {
        if let Some(entries) = &self.entries {
            let valid_until = verified.expires_at.saturating_add(leeway);
            entries.insert(
                token.into(),
                CachedToken {
                    token: verified,
                    issuer,
                    key_generation,
                    valid_until,
                },
            );
        }
    }

    /// Lookups answered from the cache, and lookups that were not, since start.
    pub fn hits_and_misses(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        (self.hits.load(Relaxed), self.misses.load(Relaxed))
    }

    /// Number of cached tokens.
    pub fn len(&self) -> usize {
        self.entries.as_ref().map_or(0, |entries| entries.len())
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
