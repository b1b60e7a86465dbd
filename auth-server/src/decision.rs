//! The decision core: one check request in, one [`Decision`] out. No I/O, no clock, no logging:
//! the HTTP and gRPC shells read their protocol into a [`CheckRequest`], call [`decide`] with a
//! [`Context`] snapshot and `now`, and write the decision back out.
//!
//! The order of the checks is part of the contract: body size (413), then the token (401/503),
//! then the request's shape (400/405), then the policy (403). An unauthenticated caller learns
//! nothing about its body.

use std::sync::Arc;

use crate::jsonrpc::{self, Message, Payload, RpcError};
use crate::jwks::KeySet;
use crate::policy::{Access, CompiledPolicy};
use crate::target::{self, TargetError};
use crate::token::{self, TokenCache, TokenError, TokenRules, VerifiedToken};

/// The header that carried the ingress token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IngressHeader {
    /// `X-Authorization`; `Authorization` then holds the egress token.
    XAuthorization,
    /// `Authorization`, when no `X-Authorization` came.
    Authorization,
}

/// The ingress credentials of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credentials<'a> {
    /// No ingress header at all.
    Missing,
    /// A header that is not one `Bearer <token>`.
    Malformed(&'static str),
    /// A bearer token and the header it came in.
    Bearer {
        /// The token text.
        token: &'a str,
        /// Where it came from.
        header: IngressHeader,
    },
}

/// Where the target path came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetSource<'a> {
    /// `X-Original-URI` (path and query) or Envoy's `/validate/<path>`.
    Path(&'a str),
    /// `X-Original-URL` (absolute URL).
    Url(&'a str),
    /// More than one target header: ambiguous.
    Ambiguous,
    /// None given.
    Missing,
}

/// The request body as the shell read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body<'a> {
    /// The whole body (empty when there was none).
    Complete(&'a [u8]),
    /// Larger than the limit; not read further.
    TooLarge,
}

/// Seed-compatible Cognito headers; each must agree with configuration and token when present.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CognitoHeaders<'a> {
    /// `X-User-Pool-Id`.
    pub user_pool_id: Option<&'a str>,
    /// `X-Client-Id`.
    pub client_id: Option<&'a str>,
    /// `X-Region`.
    pub region: Option<&'a str>,
}

/// MCP request headers (spec 2026-07-28) that must agree with the body.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct McpHeaders<'a> {
    /// `Mcp-Method`.
    pub method: Option<&'a str>,
    /// `Mcp-Name`.
    pub name: Option<&'a str>,
    /// A header came more than once.
    pub repeated: bool,
}

/// Everything a check needs from the request, borrowed from the shell's own types.
#[derive(Debug, Clone, Copy)]
pub struct CheckRequest<'a> {
    /// The original HTTP method (`X-Original-Method`, else the check's own).
    pub method: &'a str,
    /// The original target.
    pub target: TargetSource<'a>,
    /// The JSON-RPC body.
    pub body: Body<'a>,
    /// Ingress credentials.
    pub credentials: Credentials<'a>,
    /// Cognito seed headers.
    pub cognito: CognitoHeaders<'a>,
    /// MCP method headers.
    pub mcp: McpHeaders<'a>,
    /// Which ingress-only headers the request carried (`x-user-pool-id`, `x-region`).
    pub carried_pool_headers: (bool, bool),
}

/// The configured Cognito pool, for the seed headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CognitoPool {
    /// AWS region.
    pub region: String,
    /// User pool id.
    pub user_pool_id: String,
}

/// A consistent view of everything a decision reads.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The policy in force.
    pub policy: &'a CompiledPolicy,
    /// The key set, if any was ever fetched.
    pub keys: Option<&'a KeySet>,
    /// Generation of `keys`, for the token cache.
    pub key_generation: u64,
    /// Token rules.
    pub rules: &'a TokenRules,
    /// Cognito pool, when the provider is Cognito.
    pub cognito_pool: Option<&'a CognitoPool>,
    /// Verified tokens.
    pub cache: &'a TokenCache,
    /// Seconds since the epoch.
    pub now: u64,
}

/// One JSON-RPC message's method and tool, for the answer headers and the log.
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
    /// The scopes that were applied.
    pub scopes: Vec<String>,
    /// The MCP server.
    pub server: String,
    /// Each message, in order.
    pub calls: Vec<CallSummary>,
    /// Ingress headers to remove before the upstream, lower-case.
    pub ingress_headers: Vec<&'static str>,
}

/// A 403: the caller is known but no entry allows the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forbidden {
    /// The MCP server.
    pub server: String,
    /// The first denied message.
    pub call: CallSummary,
    /// Scope names that would allow it (for `WWW-Authenticate`).
    pub scopes_that_allow: Vec<String>,
}

/// Why a request is refused. Each variant maps to exactly one status.
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
    /// 401: a Cognito seed header disagrees.
    CognitoHeaderMismatch(&'static str),
    /// 503: no key set to verify with.
    NoKeySet,
    /// 400: bad target path.
    BadTarget(TargetError),
    /// 400: bad body or header/body mismatch.
    BadMessage(RpcError),
    /// 405: original method other than GET, POST, DELETE.
    MethodNotAllowed(String),
    /// 403.
    Forbidden(Forbidden),
}

/// The answer to one check.
#[derive(Debug, Clone)]
pub enum Decision {
    /// Allowed, with who and what.
    Allow(Allowed),
    /// Refused; `identity` is known when the token was valid.
    Deny {
        /// Who, when the token was verified.
        identity: Option<Arc<VerifiedToken>>,
        /// Why.
        reason: DenyReason,
    },
}

impl Decision {
    fn deny(reason: DenyReason) -> Self {
        Decision::Deny {
            identity: None,
            reason,
        }
    }
}

/// Decides one check request.
pub fn decide(request: &CheckRequest<'_>, context: &Context<'_>) -> Decision {
    let Body::Complete(body) = request.body else {
        return Decision::deny(DenyReason::BodyTooLarge);
    };
    let (identity, ingress_header) = match authenticate(request, context) {
        Ok(authenticated) => authenticated,
        Err(reason) => return Decision::deny(reason),
    };
    let denied = |reason| Decision::Deny {
        identity: Some(identity.clone()),
        reason,
    };
    let server = match read_target(request.target) {
        Ok(server) => server,
        Err(err) => return denied(DenyReason::BadTarget(err)),
    };
    let messages = match read_messages(request, body) {
        Ok(messages) => messages,
        Err(reason) => return denied(reason),
    };
    let scopes: Vec<&str> = if identity.groups.is_empty() {
        identity.scopes.iter().map(String::as_str).collect()
    } else {
        context.policy.scopes_for_groups(&identity.groups)
    };
    let mut calls = Vec::with_capacity(messages.len());
    for message in messages.iter() {
        let access = access_of(message);
        let call = summary_of(access);
        if !context.policy.allows(&scopes, &server, access) {
            let scopes_that_allow = context
                .policy
                .scopes_allowing(&server, access)
                .into_iter()
                .map(str::to_owned)
                .collect();
            return denied(DenyReason::Forbidden(Forbidden {
                server,
                call,
                scopes_that_allow,
            }));
        }
        calls.push(call);
    }
    Decision::Allow(Allowed {
        scopes: scopes.into_iter().map(str::to_owned).collect(),
        identity,
        server,
        calls,
        ingress_headers: ingress_headers(request, ingress_header),
    })
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

fn authenticate(
    request: &CheckRequest<'_>,
    context: &Context<'_>,
) -> Result<(Arc<VerifiedToken>, IngressHeader), DenyReason> {
    let (token, header) = match request.credentials {
        Credentials::Missing => return Err(DenyReason::NoCredentials),
        Credentials::Malformed(why) => return Err(DenyReason::BadCredentials(why)),
        Credentials::Bearer { token, header } => (token, header),
    };
    let identity = verified(token, context)?;
    check_cognito_headers(&request.cognito, context.cognito_pool, &identity)?;
    Ok((identity, header))
}

/// The token's identity, from the cache or by verifying it.
fn verified(token: &str, context: &Context<'_>) -> Result<Arc<VerifiedToken>, DenyReason> {
    let Some(keys) = context.keys else {
        return Err(DenyReason::NoKeySet);
    };
    let leeway = context.rules.leeway_seconds;
    if let Some(hit) = context
        .cache
        .get(token, context.key_generation, context.now, leeway)
    {
        return Ok(hit);
    }
    let identity = Arc::new(
        token::verify(token, keys, context.rules, context.now).map_err(DenyReason::Token)?,
    );
    context
        .cache
        .insert(token, identity.clone(), context.key_generation);
    Ok(identity)
}

/// A client never chooses which pool validates its token: seed headers must agree.
fn check_cognito_headers(
    headers: &CognitoHeaders<'_>,
    pool: Option<&CognitoPool>,
    identity: &VerifiedToken,
) -> Result<(), DenyReason> {
    if let Some(pool_id) = headers.user_pool_id
        && pool.is_none_or(|pool| pool.user_pool_id != pool_id)
    {
        return Err(DenyReason::CognitoHeaderMismatch("X-User-Pool-Id"));
    }
    if let Some(region) = headers.region
        && pool.is_none_or(|pool| pool.region != region)
    {
        return Err(DenyReason::CognitoHeaderMismatch("X-Region"));
    }
    if headers
        .client_id
        .is_some_and(|client_id| client_id != identity.client_id)
    {
        return Err(DenyReason::CognitoHeaderMismatch("X-Client-Id"));
    }
    Ok(())
}

fn read_target(source: TargetSource<'_>) -> Result<String, TargetError> {
    match source {
        TargetSource::Path(path) => target::server_from_path(path),
        TargetSource::Url(url) => target::server_from_url(url),
        TargetSource::Ambiguous | TargetSource::Missing => Err(TargetError::Missing),
    }
}

fn read_messages(request: &CheckRequest<'_>, body: &[u8]) -> Result<Messages, DenyReason> {
    let invalid = |message: &str| {
        DenyReason::BadMessage(RpcError {
            code: jsonrpc::code::INVALID_REQUEST,
            message: message.to_owned(),
            id: None,
        })
    };
    match request.method {
        "GET" | "DELETE" if body.is_empty() => Ok(Messages::BodyLess),
        "GET" | "DELETE" => Err(invalid("a GET or DELETE request must not have a body")),
        "POST" if body.is_empty() => Err(invalid("a POST request needs a JSON-RPC body")),
        "POST" => {
            let payload = jsonrpc::parse(body).map_err(DenyReason::BadMessage)?;
            check_mcp_headers(&request.mcp, &payload).map_err(DenyReason::BadMessage)?;
            Ok(Messages::Parsed(payload))
        }
        other => Err(DenyReason::MethodNotAllowed(other.to_owned())),
    }
}

/// `Mcp-Method` / `Mcp-Name`, when present, must say what the body says.
fn check_mcp_headers(headers: &McpHeaders<'_>, payload: &Payload) -> Result<(), RpcError> {
    if headers.method.is_none() && headers.name.is_none() && !headers.repeated {
        return Ok(());
    }
    let mismatch = |message: &str, id: Option<serde_json::Value>| RpcError {
        code: jsonrpc::code::HEADER_MISMATCH,
        message: message.to_owned(),
        id,
    };
    if headers.repeated {
        return Err(mismatch("Mcp-Method or Mcp-Name is repeated", None));
    }
    let Payload::Single(Message::Call { id, method, name }) = payload else {
        return Err(mismatch(
            "Mcp-Method/Mcp-Name headers need a single request body",
            None,
        ));
    };
    if headers.method.is_some_and(|header| header != method) {
        return Err(mismatch(
            "Mcp-Method header does not match the body's method",
            id.clone(),
        ));
    }
    if headers
        .name
        .is_some_and(|header| Some(header) != name.as_deref())
    {
        return Err(mismatch(
            "Mcp-Name header does not match the body's name",
            id.clone(),
        ));
    }
    Ok(())
}

fn ingress_headers(request: &CheckRequest<'_>, header: IngressHeader) -> Vec<&'static str> {
    let mut names = vec![match header {
        IngressHeader::XAuthorization => "x-authorization",
        IngressHeader::Authorization => "authorization",
    }];
    let (pool_id, region) = request.carried_pool_headers;
    if pool_id {
        names.push("x-user-pool-id");
    }
    if region {
        names.push("x-region");
    }
    names
}
