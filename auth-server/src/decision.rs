//! The decision core: one check request's facts in, one [`Decision`] out. No I/O, no clock, no
//! logging: the shells read their protocol into a [`CheckRequest`], the authorizer loads one
//! [`Snapshot`] and calls [`decide`] with `now`, and the decision is recorded and answered.
//! This is the module that says why a request was denied.
//!
//! The order of the checks is part of the contract: body size (413), then the token (401/503),
//! then the request's shape (400/405), then the policy (403). An unauthenticated caller learns
//! nothing about its body.

use std::sync::Arc;

use crate::headers::{HeaderText, IdentityHeaders, UnsafeHeader, UnsafeValue};
use crate::jsonrpc::{self, Message, Payload, RpcError};
use crate::jwks::fetch::VersionedKeys;
use crate::policy::{Access, CompiledPolicy};
use crate::request::{
    Body, BrowserFacts, CheckRequest, CognitoFacts, CredentialFacts, HeaderFact, McpFacts,
    TargetFacts,
};
use crate::session::{self, SessionError, SessionRules};
use crate::target::{self, TargetError};
use crate::token::{self, TokenCache, TokenError, TokenRules, VerifiedToken};
use crate::tools_list::ListRequest;
use crate::tools_list::context::{self as list_context, FilterContext};

/// The configured Cognito pool, for the seed headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CognitoPool {
    /// AWS region.
    pub region: String,
    /// User pool id.
    pub user_pool_id: String,
}

/// A trusted token issuer, as a decision needs it.
#[derive(Debug, Clone)]
pub struct Issuer {
    /// Its name, for the log.
    pub name: String,
    /// `X-Auth-Method` of the requests it vouches for.
    pub auth_method: String,
    /// What its tokens must satisfy.
    pub rules: TokenRules,
    /// Its Cognito pool, when it is one.
    pub cognito_pool: Option<CognitoPool>,
}

/// What the configuration fixes for every decision.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The trusted issuers; a token is matched to one by its exact `iss`.
    pub issuers: Vec<Issuer>,
    /// Most messages in one JSON-RPC batch (`AUTH_MAX_BATCH`).
    pub max_batch: usize,
    /// People's browser sessions, when sign-in is configured.
    pub session: Option<SessionRules>,
}

/// Everything a decision reads that can change while the process runs, loaded once per
/// request: the policy in force and each issuer's key set with its generation.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The policy in force.
    pub policy: Arc<CompiledPolicy>,
    /// Each issuer's key set and its generation (in the order of [`Settings::issuers`]), if one
    /// was ever fetched.
    pub keys: Vec<Option<Arc<VersionedKeys>>>,
}

/// What one decision reads: a snapshot, the settings, the verified-token cache and the time.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The policy and key set, loaded once for this request.
    pub snapshot: &'a Snapshot,
    /// Fixed settings.
    pub settings: &'a Settings,
    /// Verified tokens (a memo of [`token::verify`], keyed by key set generation).
    pub cache: &'a TokenCache,
    /// Seconds since the epoch.
    pub now: u64,
}

/// One JSON-RPC message's method and tool, for the log and the answer headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallSummary {
    /// JSON-RPC method; empty for a response or a body-less GET/DELETE.
    pub method: String,
    /// The tool of a `tools/call`.
    pub tool: Option<String>,
}

/// An allowed request.
#[derive(Debug, Clone)]
pub struct Allowed {
    /// Who.
    pub identity: Arc<VerifiedToken>,
    /// The issuer that vouched for it (an index into [`Settings::issuers`]); `None` for a
    /// person's session cookie.
    pub issuer: Option<usize>,
    /// The scopes that were applied.
    pub scopes: Vec<String>,
    /// The MCP server.
    pub server: String,
    /// Each message, in order.
    pub calls: Vec<CallSummary>,
    /// The identity headers for the upstream, checked.
    pub headers: IdentityHeaders,
    /// Ingress headers to remove before the upstream, lower-case.
    pub ingress_headers: Vec<&'static str>,
    /// For a request that holds `tools/list` calls: what the answer filter needs, encoded
    /// ([`FilterContext`]); for the gateway only.
    pub tools_list: Option<HeaderText>,
}

/// A 403: the caller is known but no entry allows the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forbidden {
    /// The MCP server.
    pub server: String,
    /// The first denied message.
    pub call: CallSummary,
    /// Scope names that would allow the denied messages, for `WWW-Authenticate`: for a
    /// batch, the union over every denied message; never `offline_access`.
    pub scopes_that_allow: Vec<String>,
}

/// What is wrong with a header the check reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderProblem {
    /// Sent more than once.
    Repeated,
    /// Not readable text.
    Unreadable,
    /// Its value disagrees with the configuration or the token.
    Mismatch,
}

/// Why a request is refused. Each variant maps to exactly one status (crate::answer).
#[derive(Debug, Clone, PartialEq)]
pub enum DenyReason {
    /// 413.
    BodyTooLarge,
    /// 401: no credentials were sent.
    NoCredentials,
    /// 401: credentials unreadable.
    BadCredentials(&'static str),
    /// 401: the token was refused.
    Token(TokenError),
    /// 401: a Cognito seed header is repeated, unreadable or disagrees.
    CognitoHeader {
        /// The header.
        header: &'static str,
        /// What is wrong with it.
        problem: HeaderProblem,
    },
    /// 503: the token's issuer has no key set to verify with yet.
    NoKeySet {
        /// The issuer's name.
        issuer: String,
    },
    /// 400: the ingress token is also the egress token: it would reach the upstream.
    IngressTokenAsEgress,
    /// 400: a header the check reads is repeated or unreadable.
    BadHeader {
        /// The header.
        header: &'static str,
        /// What is wrong with it.
        problem: HeaderProblem,
    },
    /// 400: bad target path.
    BadTarget(TargetError),
    /// 400: bad body or header/body mismatch.
    BadMessage(RpcError),
    /// 405: original method other than GET, POST, DELETE.
    MethodNotAllowed(String),
    /// 403.
    Forbidden(Forbidden),
    /// 500: the token's identity cannot be passed on in a header.
    UnsafeIdentity(UnsafeHeader),
    /// 503: too many large bodies are being inspected; never produced by [`decide`], only by
    /// the pipeline that bounds them (crate::authorizer).
    Busy,
    /// 401: the session cookie (no bearer token came) is not accepted.
    Session(SessionError),
    /// 302 to sign-in: a browser (it accepts `text/html`) came without a usable credential.
    SignIn {
        /// The path on the gateway to return to afterwards.
        return_to: String,
        /// What was wrong with its session cookie, when it sent one.
        session: Option<SessionError>,
    },
    /// 403: a state-changing request authenticated only by the session cookie does not come
    /// from the gateway's own origin (cross-site request forgery).
    CrossSite(CrossSite),
}

/// Why a cookie-authenticated request is taken for a cross-site one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrossSite {
    /// `Sec-Fetch-Site` is not `same-origin`.
    FetchSite,
    /// `Origin` is not the gateway's origin.
    Origin,
    /// Neither `Origin` nor `Sec-Fetch-Site` says where it comes from.
    Unknown,
}

/// The answer to one check.
// One per check, moved from the core to the answer and never stored: the allow's size (its
// identity headers and the tools/list filter context) costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Decision {
    /// Allowed, with who and what.
    Allow(Allowed),
    /// Refused; `identity` is known when the token was valid.
    Deny {
        /// Who, when the token was verified.
        identity: Option<Arc<VerifiedToken>>,
        /// The trusted issuer the token named, when it named one.
        issuer: Option<usize>,
        /// Why.
        reason: DenyReason,
    },
}

impl Decision {
    fn deny(reason: DenyReason) -> Self {
        Decision::Deny {
            identity: None,
            issuer: None,
            reason,
        }
    }
}

/// Decides one check request.
pub fn decide(request: &CheckRequest<'_>, context: &Context<'_>) -> Decision {
    let Body::Complete(body) = request.body else {
        return Decision::deny(DenyReason::BodyTooLarge);
    };
    let Authenticated {
        identity,
        issuer,
        ingress,
    } = match authenticate(request, context) {
        Ok(authenticated) => authenticated,
        Err((reason, issuer)) => {
            return Decision::Deny {
                identity: None,
                issuer,
                reason,
            };
        }
    };
    let denied = |reason| Decision::Deny {
        identity: Some(identity.clone()),
        issuer,
        reason,
    };
    if let Err(reason) = check_egress(&request.credentials, ingress) {
        return denied(reason);
    }
    let server = match read_target(&request.target) {
        Ok(server) => server,
        Err(err) => return denied(DenyReason::BadTarget(err)),
    };
    let messages = match read_messages(request, body, context.settings.max_batch) {
        Ok(messages) => messages,
        Err(reason) => return denied(reason),
    };
    let policy = &context.snapshot.policy;
    let scopes: Vec<&str> = if identity.groups.is_empty() {
        identity.scopes.iter().map(String::as_str).collect()
    } else {
        policy.scopes_for_groups(&identity.groups)
    };
    let mut calls = Vec::with_capacity(messages.len());
    let mut first_denied = None;
    // One challenge names every scope the whole request needs (MCP: no incremental
    // challenges): for a batch, the union over its denied calls.
    let mut needed: Vec<&str> = Vec::new();
    for message in messages.iter() {
        let access = access_of(message);
        if !policy.allows(&scopes, &server, access) {
            for scope in policy.scopes_allowing(&server, access) {
                // A refresh token is not a resource's requirement (MCP authorization).
                if scope != "offline_access" && !needed.contains(&scope) {
                    needed.push(scope);
                }
            }
            first_denied.get_or_insert_with(|| summary_of(access));
        }
        if first_denied.is_none() {
            calls.push(summary_of(access));
        }
    }
    if let Some(call) = first_denied {
        needed.sort_unstable();
        let scopes_that_allow = needed.into_iter().map(str::to_owned).collect();
        return denied(DenyReason::Forbidden(Forbidden {
            server,
            call,
            scopes_that_allow,
        }));
    }
    let scopes: Vec<String> = scopes.into_iter().map(str::to_owned).collect();
    let auth_method = match issuer {
        Some(issuer) => context.settings.issuers[issuer].auth_method.as_str(),
        None => "session",
    };
    let headers = match identity_headers(&identity, &scopes, &server, &calls, auth_method) {
        Ok(headers) => headers,
        Err(reason) => return denied(reason),
    };
    let tools_list = match filter_context(&messages, &identity, &server, &scopes) {
        Ok(context) => context,
        Err(reason) => return denied(reason),
    };
    Decision::Allow(Allowed {
        scopes,
        identity,
        issuer,
        server,
        calls,
        headers,
        ingress_headers: ingress_headers(request, ingress),
        tools_list,
    })
}

/// The answer filter's context for a request that holds `tools/list` calls (its answer shows
/// the caller only the tools it may see); `None` for any other request, whose answer streams
/// untouched. A context too long to travel with the allow is a 400 that says so.
fn filter_context(
    messages: &Messages,
    identity: &VerifiedToken,
    server: &str,
    scopes: &[String],
) -> Result<Option<HeaderText>, DenyReason> {
    let Messages::Parsed(payload) = messages else {
        return Ok(None);
    };
    let Some(request) = ListRequest::of(payload) else {
        return Ok(None);
    };
    let encoded = FilterContext {
        who: identity.subject.clone(),
        server: server.to_owned(),
        scopes: scopes.to_vec(),
        request,
    }
    .encode();
    if encoded.len() > list_context::MAX_ENCODED_BYTES {
        return Err(DenyReason::BadMessage(RpcError {
            code: jsonrpc::code::INVALID_REQUEST,
            message: format!(
                "the request's ids and the caller's scopes take {} bytes once encoded for the \
                 tools/list filter, over the {} the gateway carries: send fewer calls per batch \
                 or shorter ids",
                encoded.len(),
                list_context::MAX_ENCODED_BYTES
            ),
            id: None,
        }));
    }
    // Base64url behind a fixed prefix: nothing for `sanitized` to replace.
    Ok(Some(HeaderText::sanitized(&encoded)))
}

/// The messages of the request: parsed body for POST, one body-less access for GET/DELETE.
enum Messages {
    Parsed(Payload),
    BodyLess,
}

impl Messages {
    fn iter(&self) -> impl Iterator<Item = Option<&Message>> {
        let parsed = match self {
            Messages::Parsed(payload) => payload.messages(),
            Messages::BodyLess => &[],
        };
        let body_less = matches!(self, Messages::BodyLess).then_some(None);
        parsed.iter().map(Some).chain(body_less)
    }

    fn len(&self) -> usize {
        match self {
            Messages::Parsed(payload) => payload.messages().len(),
            Messages::BodyLess => 1,
        }
    }
}

fn access_of(message: Option<&Message>) -> Access<'_> {
    match message {
        Some(Message::Call { method, .. }) => Access::Method {
            method,
            tool: message.and_then(Message::tool),
        },
        Some(Message::Response { .. }) | None => Access::AnyEntry,
    }
}

fn summary_of(access: Access<'_>) -> CallSummary {
    match access {
        Access::Method { method, tool } => CallSummary {
            method: method.to_owned(),
            tool: tool.map(str::to_owned),
        },
        Access::AnyEntry => CallSummary {
            method: String::new(),
            tool: None,
        },
    }
}

/// Which header carried the ingress credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum IngressHeader {
    /// `X-Authorization`; `Authorization`, when sent, is then the egress token.
    XAuthorization,
    /// `Authorization`, when no `X-Authorization` came.
    Authorization,
    /// The session cookie in `Cookie`, when no bearer token came.
    SessionCookie,
}

/// A credential header as sent, except that a `Bearer` value with a comma is the same header
/// sent twice: Envoy joins repeated request headers with commas before the check sees them
/// (nginx passes both), and one bearer token never holds a comma (RFC 6750 token68).
fn credential(fact: HeaderFact<'_>) -> HeaderFact<'_> {
    match fact {
        HeaderFact::Once(value) if is_bearer_scheme(value) && value.contains(',') => {
            HeaderFact::Repeated
        }
        fact => fact,
    }
}

fn is_bearer_scheme(value: &str) -> bool {
    value
        .get(..7)
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("bearer "))
}

/// The ingress token and where it came from: `X-Authorization` when sent, else
/// `Authorization`.
fn ingress_token<'a>(
    credentials: &CredentialFacts<'a>,
) -> Result<(&'a str, IngressHeader), DenyReason> {
    // The header, and what to say when it is repeated or unreadable.
    let (fact, header, [repeated, unreadable]) = match credentials.x_authorization {
        HeaderFact::Absent => (
            credentials.authorization,
            IngressHeader::Authorization,
            [
                "Authorization is repeated",
                "Authorization is not readable text",
            ],
        ),
        fact => (
            fact,
            IngressHeader::XAuthorization,
            [
                "X-Authorization is repeated",
                "X-Authorization is not readable text",
            ],
        ),
    };
    let value = match fact {
        HeaderFact::Absent => return Err(DenyReason::NoCredentials),
        HeaderFact::Repeated => return Err(DenyReason::BadCredentials(repeated)),
        HeaderFact::Unreadable => return Err(DenyReason::BadCredentials(unreadable)),
        HeaderFact::Once(value) => value,
    };
    match bearer_token(value) {
        Some(token) => Ok((token, header)),
        // Only a value that is no bearer token is looked at again: is it two joined?
        None if credential(fact) == HeaderFact::Repeated => {
            Err(DenyReason::BadCredentials(repeated))
        }
        None => Err(DenyReason::BadCredentials(
            "the ingress header is not `Bearer <token>`",
        )),
    }
}

/// The token of `Bearer <token>` (scheme case-insensitive, RFC 6750 token68 characters).
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim_start_matches(' ');
    // No early exit: a branch-free pass over a ~1 KB token compiles to SIMD.
    let is_token68 = |b: u8| {
        b.is_ascii_alphanumeric() | matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/' | b'=')
    };
    let all_token68 = token.bytes().fold(true, |ok, b| ok & is_token68(b));
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty() && all_token68).then_some(token)
}

/// A verified caller: who, which trusted issuer vouched for it (none for a session cookie),
/// and where its credential came.
struct Authenticated {
    identity: Arc<VerifiedToken>,
    issuer: Option<usize>,
    ingress: IngressHeader,
}

/// A refusal, and the issuer the token named when it named a trusted one.
type Unauthenticated = (DenyReason, Option<usize>);

fn authenticate(
    request: &CheckRequest<'_>,
    context: &Context<'_>,
) -> Result<Authenticated, Unauthenticated> {
    let (token, ingress) = match ingress_token(&request.credentials) {
        // No bearer token at all: a person's session cookie may stand in (a token wins when
        // both came).
        Err(DenyReason::NoCredentials) => {
            return authenticate_session(request, context).map_err(|reason| (reason, None));
        }
        other => other.map_err(|reason| (reason, None))?,
    };
    let (identity, issuer) = verified(token, context)?;
    let pool = context.settings.issuers[issuer].cognito_pool.as_ref();
    check_cognito_headers(&request.cognito, pool, &identity)
        .map_err(|reason| (reason, Some(issuer)))?;
    Ok(Authenticated {
        identity,
        issuer: Some(issuer),
        ingress,
    })
}

/// A person's session, when sign-in is configured and no bearer token came: the cookie opened
/// at `now`, then the same-origin rule for a state-changing request. A browser without a
/// usable session is sent to sign-in; any other client keeps the 401.
fn authenticate_session(
    request: &CheckRequest<'_>,
    context: &Context<'_>,
) -> Result<Authenticated, DenyReason> {
    let Some(rules) = context.settings.session.as_ref() else {
        return Err(DenyReason::NoCredentials);
    };
    let browser = &request.browser;
    let opened = match browser.cookie {
        HeaderFact::Absent => Ok(None),
        HeaderFact::Once(header) => session::open(header, rules, context.now),
        HeaderFact::Repeated => {
            return Err(DenyReason::BadCredentials("Cookie is repeated"));
        }
        HeaderFact::Unreadable => {
            return Err(DenyReason::BadCredentials("Cookie is not readable text"));
        }
    };
    let session = match opened {
        Ok(Some(session)) => session,
        Ok(None) | Err(_) if accepts_html(browser.accept) => {
            return Err(DenyReason::SignIn {
                return_to: return_path(request),
                session: opened.err(),
            });
        }
        Ok(None) => return Err(DenyReason::NoCredentials),
        Err(err) => return Err(DenyReason::Session(err)),
    };
    check_same_origin(browser, &rules.origin, original_method(request).ok())?;
    let identity = VerifiedToken {
        subject: session.subject,
        username: session.username,
        client_id: rules.client_id.clone(),
        groups: session.groups,
        scopes: Vec::new(),
        expires_at: session.valid_until,
    };
    Ok(Authenticated {
        identity: Arc::new(identity),
        issuer: None,
        ingress: IngressHeader::SessionCookie,
    })
}

/// Whether `Accept` lists `text/html` (a browser navigating), with a quality above zero.
fn accepts_html(accept: HeaderFact<'_>) -> bool {
    accept.once().is_some_and(|accept| {
        accept.split(',').any(|range| {
            let mut parts = range.split(';').map(str::trim);
            let is_html = parts
                .next()
                .is_some_and(|media| media.eq_ignore_ascii_case("text/html"));
            let refused = parts.any(|param| {
                param.split_once('=').is_some_and(|(name, q)| {
                    name.trim() == "q" && q.trim().parse::<f32>() == Ok(0.0)
                })
            });
            is_html && !refused
        })
    })
}

/// Where a browser returns after sign-in: the path it asked for, when it is a plain path on
/// the gateway; else the gateway's page.
fn return_path(request: &CheckRequest<'_>) -> String {
    let asked = request
        .target
        .original_uri
        .once()
        .or(request.target.envoy_path);
    asked
        .and_then(session::return_path)
        .unwrap_or("/ui/")
        .to_owned()
}

/// A request authenticated only by the cookie must come from the gateway's own page when it
/// changes state (anything but GET, HEAD, OPTIONS): `Sec-Fetch-Site: same-origin`, or, from a
/// browser that does not send it, an `Origin` equal to the gateway's.
fn check_same_origin(
    browser: &BrowserFacts<'_>,
    origin: &str,
    method: Option<&str>,
) -> Result<(), DenyReason> {
    if matches!(method, Some("GET" | "HEAD" | "OPTIONS")) {
        return Ok(());
    }
    let refused = |why| Err(DenyReason::CrossSite(why));
    match browser.sec_fetch_site {
        HeaderFact::Absent => {}
        HeaderFact::Once(site) if site.eq_ignore_ascii_case("same-origin") => {}
        _ => return refused(CrossSite::FetchSite),
    }
    match browser.origin {
        HeaderFact::Once(sent) if sent.eq_ignore_ascii_case(origin) => Ok(()),
        HeaderFact::Absent if browser.sec_fetch_site.is_present() => Ok(()),
        HeaderFact::Absent => refused(CrossSite::Unknown),
        _ => refused(CrossSite::Origin),
    }
}

/// The token's identity and the issuer that vouches for it, from the cache or by verifying it.
/// The token is matched to a trusted issuer by its exact `iss` before any key is looked at, and
/// only that issuer's keys (its set in the snapshot) may verify it; a verification is cached
/// under the generation of the very set that verified it.
fn verified(
    token: &str,
    context: &Context<'_>,
) -> Result<(Arc<VerifiedToken>, usize), Unauthenticated> {
    let snapshot = context.snapshot;
    let generation_of = |issuer: usize| {
        snapshot
            .keys
            .get(issuer)
            .and_then(Option::as_deref)
            .map(|keys| keys.generation)
    };
    if let Some(hit) = context.cache.get(token, context.now, generation_of) {
        return Ok(hit);
    }
    let unverified = token::read(token).map_err(|err| (DenyReason::Token(err), None))?;
    let issuers = &context.settings.issuers;
    let issuer = issuers
        .iter()
        .position(|issuer| issuer.rules.issuer == unverified.issuer())
        .ok_or((DenyReason::Token(TokenError::UnknownIssuer), None))?;
    let Some(keys) = snapshot.keys.get(issuer).and_then(Option::as_deref) else {
        let name = issuers[issuer].name.clone();
        return Err((DenyReason::NoKeySet { issuer: name }, Some(issuer)));
    };
    let rules = &issuers[issuer].rules;
    let identity = unverified
        .verify(&keys.keys, rules, context.now)
        .map_err(|err| (DenyReason::Token(err), Some(issuer)))?;
    let identity = Arc::new(identity);
    context.cache.insert(
        token,
        identity.clone(),
        issuer,
        keys.generation,
        rules.leeway_seconds,
    );
    Ok((identity, issuer))
}

/// A client never chooses which pool validates its token: seed headers must agree, and one that
/// is repeated or unreadable agrees with nothing.
fn check_cognito_headers(
    headers: &CognitoFacts<'_>,
    pool: Option<&CognitoPool>,
    identity: &VerifiedToken,
) -> Result<(), DenyReason> {
    let expected = [
        (
            "X-User-Pool-Id",
            headers.user_pool_id,
            pool.map(|pool| pool.user_pool_id.as_str()),
        ),
        (
            "X-Region",
            headers.region,
            pool.map(|pool| pool.region.as_str()),
        ),
        (
            "X-Client-Id",
            headers.client_id,
            Some(identity.client_id.as_str()),
        ),
    ];
    for (header, fact, expected) in expected {
        let problem = match fact {
            HeaderFact::Absent => continue,
            HeaderFact::Repeated => HeaderProblem::Repeated,
            HeaderFact::Unreadable => HeaderProblem::Unreadable,
            HeaderFact::Once(value) if Some(value) == expected => continue,
            HeaderFact::Once(_) => HeaderProblem::Mismatch,
        };
        return Err(DenyReason::CognitoHeader { header, problem });
    }
    Ok(())
}

/// When `X-Authorization` carried the ingress token, `Authorization` is the egress token and
/// goes to the upstream: it must not be the ingress token again, nor ambiguous.
fn check_egress(
    credentials: &CredentialFacts<'_>,
    ingress: IngressHeader,
) -> Result<(), DenyReason> {
    if ingress != IngressHeader::XAuthorization {
        return Ok(());
    }
    match credential(credentials.authorization) {
        HeaderFact::Absent => Ok(()),
        HeaderFact::Repeated => Err(DenyReason::BadHeader {
            header: "Authorization",
            problem: HeaderProblem::Repeated,
        }),
        HeaderFact::Unreadable => Err(DenyReason::BadHeader {
            header: "Authorization",
            problem: HeaderProblem::Unreadable,
        }),
        HeaderFact::Once(egress) => {
            let ingress_token = credentials.x_authorization.once().and_then(bearer_token);
            if ingress_token.is_some() && ingress_token == bearer_token(egress) {
                Err(DenyReason::IngressTokenAsEgress)
            } else {
                Ok(())
            }
        }
    }
}

fn read_target(target: &TargetFacts<'_>) -> Result<String, TargetError> {
    fn value<'a>(
        fact: HeaderFact<'a>,
        header: &'static str,
    ) -> Result<Option<&'a str>, TargetError> {
        match fact {
            HeaderFact::Absent => Ok(None),
            HeaderFact::Once(value) => Ok(Some(value)),
            HeaderFact::Repeated => Err(TargetError::Repeated(header)),
            HeaderFact::Unreadable => Err(TargetError::Unreadable(header)),
        }
    }
    let uri = value(target.original_uri, "X-Original-URI")?;
    let url = value(target.original_url, "X-Original-URL")?;
    match (uri, url, target.envoy_path) {
        (Some(uri), _, _) => target::server_from_path(uri),
        (None, Some(url), _) => target::server_from_url(url),
        (None, None, Some(path)) if !path.is_empty() && path != "/" => {
            target::server_from_path(path)
        }
        (None, None, _) => Err(TargetError::Missing),
    }
}

/// The client's method: `X-Original-Method` when the gateway sent it, else the check's own.
fn original_method<'a>(request: &CheckRequest<'a>) -> Result<&'a str, DenyReason> {
    let bad = |problem| DenyReason::BadHeader {
        header: "X-Original-Method",
        problem,
    };
    match request.original_method {
        HeaderFact::Absent => Ok(request.own_method),
        HeaderFact::Once(method) => Ok(method),
        HeaderFact::Repeated => Err(bad(HeaderProblem::Repeated)),
        HeaderFact::Unreadable => Err(bad(HeaderProblem::Unreadable)),
    }
}

fn read_messages(
    request: &CheckRequest<'_>,
    body: &[u8],
    max_batch: usize,
) -> Result<Messages, DenyReason> {
    let invalid = |message: &str| {
        DenyReason::BadMessage(RpcError {
            code: jsonrpc::code::INVALID_REQUEST,
            message: message.to_owned(),
            id: None,
        })
    };
    match original_method(request)? {
        "GET" | "DELETE" if body.is_empty() => Ok(Messages::BodyLess),
        "GET" | "DELETE" => Err(invalid("a GET or DELETE request must not have a body")),
        "POST" if body.is_empty() => Err(invalid("a POST request needs a JSON-RPC body")),
        "POST" => {
            let payload = jsonrpc::parse(body, max_batch).map_err(DenyReason::BadMessage)?;
            check_mcp_headers(&request.mcp, &payload).map_err(DenyReason::BadMessage)?;
            Ok(Messages::Parsed(payload))
        }
        other => Err(DenyReason::MethodNotAllowed(other.to_owned())),
    }
}

/// `Mcp-Method` / `Mcp-Name`, when present, must say what the body says.
fn check_mcp_headers(headers: &McpFacts<'_>, payload: &Payload) -> Result<(), RpcError> {
    if !headers.method.is_present() && !headers.name.is_present() {
        return Ok(());
    }
    fn mismatch(message: &str, id: Option<serde_json::Value>) -> RpcError {
        RpcError {
            code: jsonrpc::code::HEADER_MISMATCH,
            message: message.to_owned(),
            id,
        }
    }
    fn read<'a>(fact: HeaderFact<'a>, header: &str) -> Result<Option<&'a str>, RpcError> {
        match fact {
            HeaderFact::Repeated => Err(mismatch(&format!("{header} is repeated"), None)),
            HeaderFact::Unreadable => {
                Err(mismatch(&format!("{header} is not readable text"), None))
            }
            fact => Ok(fact.once()),
        }
    }
    let method_header = read(headers.method, "Mcp-Method")?;
    let name_header = match read(headers.name, "Mcp-Name")? {
        Some(value) => Some(
            sentinel_decoded(value)
                .ok_or_else(|| mismatch("Mcp-Name is a malformed Base64 sentinel", None))?,
        ),
        None => None,
    };
    let Payload::Single(Message::Call { id, method, name }) = payload else {
        return Err(mismatch(
            "Mcp-Method/Mcp-Name headers need a single request body",
            None,
        ));
    };
    if method_header.is_some_and(|header| header != method) {
        return Err(mismatch(
            "Mcp-Method header does not match the body's method",
            id.clone(),
        ));
    }
    if name_header.is_some_and(|header| Some(header.as_ref()) != name.as_deref()) {
        return Err(mismatch(
            "Mcp-Name header does not match the body's name",
            id.clone(),
        ));
    }
    Ok(())
}

/// A header value in MCP's Base64 sentinel form (`=?base64?<Base64 of UTF-8>?=`, markers exact
/// and lower case; MCP 2026-07-28, "Value Encoding") decoded; any other value as it is. `None`:
/// a sentinel whose content is not Base64 of UTF-8.
fn sentinel_decoded(value: &str) -> Option<std::borrow::Cow<'_, str>> {
    use base64::Engine as _;
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
    let Some(encoded) = value
        .strip_prefix("=?base64?")
        .and_then(|rest| rest.strip_suffix("?="))
    else {
        return Some(std::borrow::Cow::Borrowed(value));
    };
    let bytes = STANDARD
        .decode(encoded)
        .or_else(|_| STANDARD_NO_PAD.decode(encoded))
        .ok()?;
    String::from_utf8(bytes).ok().map(std::borrow::Cow::Owned)
}

/// The identity headers of an allow, checked: a claim that cannot be a header value fails the
/// check closed (500) in every shell; a batch whose methods and tools do not fit in the
/// gateway's headers is a 400 that says so.
fn identity_headers(
    identity: &VerifiedToken,
    scopes: &[String],
    server: &str,
    calls: &[CallSummary],
    auth_method: &str,
) -> Result<IdentityHeaders, DenyReason> {
    let joined = |field: fn(&CallSummary) -> &str| {
        let mut text = String::new();
        for (index, call) in calls.iter().enumerate() {
            if index > 0 {
                text.push(',');
            }
            text.push_str(field(call));
        }
        text
    };
    IdentityHeaders::new([
        identity.subject.clone(),
        identity.username.clone(),
        identity.client_id.clone(),
        scopes.join(" "),
        auth_method.to_owned(),
        server.to_owned(),
        joined(|call| &call.method),
        joined(|call| call.tool.as_deref().unwrap_or("")),
    ])
    .map_err(|unsafe_header| match unsafe_header.problem {
        UnsafeValue::TooLong if calls.len() > 1 => DenyReason::BadMessage(RpcError {
            code: jsonrpc::code::INVALID_REQUEST,
            message: format!(
                "the batch's {} methods and tool names do not fit in the {} bytes of headers the \
                 gateway passes on: send fewer calls per batch",
                calls.len(),
                crate::headers::MAX_IDENTITY_BYTES
            ),
            id: None,
        }),
        _ => DenyReason::UnsafeIdentity(unsafe_header),
    })
}

fn ingress_headers(request: &CheckRequest<'_>, header: IngressHeader) -> Vec<&'static str> {
    let mut names = match header {
        IngressHeader::XAuthorization => vec!["x-authorization"],
        IngressHeader::Authorization => vec!["authorization"],
        IngressHeader::SessionCookie => Vec::new(),
    };
    // The session cookie never reaches an upstream, whichever credential decided.
    if request.browser.cookie.is_present() {
        names.push("cookie");
    }
    if request.cognito.user_pool_id.is_present() {
        names.push("x-user-pool-id");
    }
    if request.cognito.region.is_present() {
        names.push("x-region");
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_token_is_one_token68_after_the_scheme() {
        assert_eq!(
            bearer_token("Bearer abc.def-ghi_~+/="),
            Some("abc.def-ghi_~+/=")
        );
        assert_eq!(bearer_token("bearer   abc"), Some("abc"));
        for bad in [
            "Bearer",
            "Bearer ",
            "Basic abc",
            "Bearer a b",
            "Bearer a,Bearer b",
        ] {
            assert_eq!(bearer_token(bad), None, "{bad}");
        }
    }

    fn credentials<'a>(x: HeaderFact<'a>, plain: HeaderFact<'a>) -> CredentialFacts<'a> {
        CredentialFacts {
            x_authorization: x,
            authorization: plain,
        }
    }

    #[test]
    fn x_authorization_is_ingress_and_authorization_is_egress() {
        let facts = credentials(
            HeaderFact::Once("Bearer ingress"),
            HeaderFact::Once("Bearer egress"),
        );
        assert_eq!(
            ingress_token(&facts),
            Ok(("ingress", IngressHeader::XAuthorization))
        );
        assert_eq!(check_egress(&facts, IngressHeader::XAuthorization), Ok(()));
        let alone = credentials(HeaderFact::Absent, HeaderFact::Once("bearer abc"));
        assert_eq!(
            ingress_token(&alone),
            Ok(("abc", IngressHeader::Authorization))
        );
    }

    #[test]
    fn each_unusable_credential_has_its_own_reason() {
        let cases = [
            (
                credentials(HeaderFact::Repeated, HeaderFact::Absent),
                DenyReason::BadCredentials("X-Authorization is repeated"),
            ),
            (
                credentials(HeaderFact::Absent, HeaderFact::Repeated),
                DenyReason::BadCredentials("Authorization is repeated"),
            ),
            (
                credentials(HeaderFact::Unreadable, HeaderFact::Absent),
                DenyReason::BadCredentials("X-Authorization is not readable text"),
            ),
            (
                credentials(HeaderFact::Once("Basic dXNlcjpwYXNz"), HeaderFact::Absent),
                DenyReason::BadCredentials("the ingress header is not `Bearer <token>`"),
            ),
            (
                credentials(HeaderFact::Absent, HeaderFact::Absent),
                DenyReason::NoCredentials,
            ),
            // Envoy joins a repeated header with a comma before the check sees it.
            (
                credentials(HeaderFact::Once("Bearer a,Bearer b"), HeaderFact::Absent),
                DenyReason::BadCredentials("X-Authorization is repeated"),
            ),
            (
                credentials(HeaderFact::Absent, HeaderFact::Once("bearer a, Bearer b")),
                DenyReason::BadCredentials("Authorization is repeated"),
            ),
        ];
        for (facts, reason) in cases {
            assert_eq!(ingress_token(&facts), Err(reason), "{facts:?}");
        }
    }

    #[test]
    fn the_ingress_token_never_doubles_as_the_egress_token() {
        let same = credentials(
            HeaderFact::Once("Bearer abc.def.ghi"),
            HeaderFact::Once("bearer  abc.def.ghi"),
        );
        assert_eq!(
            check_egress(&same, IngressHeader::XAuthorization),
            Err(DenyReason::IngressTokenAsEgress)
        );
        let repeated = credentials(HeaderFact::Once("Bearer a"), HeaderFact::Repeated);
        assert_eq!(
            check_egress(&repeated, IngressHeader::XAuthorization),
            Err(DenyReason::BadHeader {
                header: "Authorization",
                problem: HeaderProblem::Repeated
            })
        );
        let merged = credentials(
            HeaderFact::Once("Bearer a"),
            HeaderFact::Once("Bearer egress-a,Bearer egress-b"),
        );
        assert_eq!(
            check_egress(&merged, IngressHeader::XAuthorization),
            Err(DenyReason::BadHeader {
                header: "Authorization",
                problem: HeaderProblem::Repeated
            })
        );
        let other = credentials(HeaderFact::Once("Bearer a"), HeaderFact::Once("Basic b"));
        assert_eq!(check_egress(&other, IngressHeader::XAuthorization), Ok(()));
        // A scheme whose parameters hold commas is not taken for a repeat.
        let digest = credentials(
            HeaderFact::Once("Bearer a"),
            HeaderFact::Once(r#"Digest username="u", realm="r""#),
        );
        assert_eq!(check_egress(&digest, IngressHeader::XAuthorization), Ok(()));
    }

    #[test]
    fn a_browser_navigation_accepts_html() {
        let cases = [
            ("text/html,application/xhtml+xml,*/*;q=0.8", true),
            ("TEXT/HTML", true),
            ("application/json, text/html;q=0.5", true),
            ("text/html;q=0", false),
            ("text/html; q=0.0", false),
            ("application/json, text/event-stream", false),
            ("*/*", false),
        ];
        for (accept, html) in cases {
            assert_eq!(accepts_html(HeaderFact::Once(accept)), html, "{accept}");
        }
        assert!(!accepts_html(HeaderFact::Absent));
        assert!(!accepts_html(HeaderFact::Repeated));
    }

    #[test]
    fn a_cookie_only_request_that_changes_state_must_be_same_origin() {
        const ORIGIN: &str = "https://gw.example";
        let facts = |origin, site| BrowserFacts {
            cookie: HeaderFact::Once("mcp_session=x"),
            origin,
            sec_fetch_site: site,
            accept: HeaderFact::Absent,
        };
        use HeaderFact::{Absent, Once, Repeated};
        let cases = [
            (Once(ORIGIN), Once("same-origin"), Some("POST"), Ok(())),
            (Absent, Once("same-origin"), Some("POST"), Ok(())),
            (Once("https://GW.example"), Absent, Some("DELETE"), Ok(())),
            (
                Once(ORIGIN),
                Once("same-site"),
                Some("POST"),
                Err(CrossSite::FetchSite),
            ),
            (
                Absent,
                Once("none"),
                Some("POST"),
                Err(CrossSite::FetchSite),
            ),
            (
                Once("https://evil.example"),
                Once("same-origin"),
                Some("POST"),
                Err(CrossSite::Origin),
            ),
            (Once("null"), Absent, Some("POST"), Err(CrossSite::Origin)),
            (Repeated, Absent, Some("POST"), Err(CrossSite::Origin)),
            (Absent, Absent, Some("POST"), Err(CrossSite::Unknown)),
            (Absent, Absent, None, Err(CrossSite::Unknown)),
            (
                Once("https://evil.example"),
                Once("cross-site"),
                Some("GET"),
                Ok(()),
            ),
        ];
        for (origin, site, method, expected) in cases {
            assert_eq!(
                check_same_origin(&facts(origin, site), ORIGIN, method),
                expected.map_err(DenyReason::CrossSite),
                "{origin:?} {site:?} {method:?}"
            );
        }
    }

    #[test]
    fn mcp_name_sentinels_are_decoded_and_malformed_ones_refused() {
        assert_eq!(
            sentinel_decoded("get_weather").as_deref(),
            Some("get_weather")
        );
        assert_eq!(
            sentinel_decoded("=?base64?SGVsbG8sIOS4lueVjA==?=").as_deref(),
            Some("Hello, 世界")
        );
        assert_eq!(
            sentinel_decoded("=?base64?SGVsbG8sIOS4lueVjA?=").as_deref(),
            Some("Hello, 世界"),
            "padding may be left out"
        );
        // The spec's example of a plain value that looks like a sentinel, itself encoded.
        assert_eq!(
            sentinel_decoded("=?base64?PT9iYXNlNjQ/bGl0ZXJhbD89?=").as_deref(),
            Some("=?base64?literal?=")
        );
        // Markers are exact and lower case: anything else is a plain value.
        assert_eq!(
            sentinel_decoded("=?BASE64?YQ==?=").as_deref(),
            Some("=?BASE64?YQ==?=")
        );
        assert_eq!(sentinel_decoded("=?base64?not base64!?="), None);
        assert_eq!(sentinel_decoded("=?base64?/w==?="), None, "not UTF-8");
    }

    #[test]
    fn target_headers_that_are_repeated_say_so() {
        let target = |uri, url, envoy_path| TargetFacts {
            original_uri: uri,
            original_url: url,
            envoy_path,
        };
        assert_eq!(
            read_target(&target(HeaderFact::Repeated, HeaderFact::Absent, None)),
            Err(TargetError::Repeated("X-Original-URI"))
        );
        assert_eq!(
            read_target(&target(HeaderFact::Absent, HeaderFact::Unreadable, None)),
            Err(TargetError::Unreadable("X-Original-URL"))
        );
        assert_eq!(
            read_target(&target(
                HeaderFact::Once("/a/mcp"),
                HeaderFact::Once("http://h/b/mcp"),
                Some("/c/mcp")
            )),
            Ok("a".to_owned())
        );
        assert_eq!(
            read_target(&target(
                HeaderFact::Absent,
                HeaderFact::Absent,
                Some("/c/mcp")
            )),
            Ok("c".to_owned())
        );
        assert_eq!(
            read_target(&target(HeaderFact::Absent, HeaderFact::Absent, Some("/"))),
            Err(TargetError::Missing)
        );
    }
}
