//! The one place where a [`Decision`] becomes a protocol-neutral [`Answer`]: a status (HTTP and
//! gRPC), headers to set (values already checked), headers to remove, and a body; and where the
//! answer filter's result becomes a [`FilterAnswer`]. The HTTP and gRPC shells only transcribe
//! them.

use serde_json::json;

use crate::decision::{CrossSite, Decision, DenyReason, HeaderProblem};
use crate::headers::{HeaderText, TOOLS_LIST_UPSTREAM_HEADERS, UnsafeValue};
use crate::session::SessionError;
use crate::token::TokenError;
use crate::tools_list::{self, FilterError, Filtered, ListRequest, MediaType};

/// What the answers need besides the decision.
#[derive(Debug, Clone)]
pub struct AnswerSettings {
    /// RFC 9728 metadata URL for `WWW-Authenticate`, when `AUTH_RESOURCE_URL` is set.
    pub resource_metadata: Option<String>,
    /// `AUTH_MAX_BODY_BYTES`, for the 413 message.
    pub max_body_bytes: usize,
}

/// `google.rpc.Code` of an answer, for Envoy's gRPC `CheckResponse`: OK allows, anything else
/// denies with the HTTP status of the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RpcCode {
    /// Allowed.
    Ok = 0,
    /// Refused for what the request is or asks.
    PermissionDenied = 7,
    /// No decision possible now.
    Unavailable = 14,
    /// The caller is not authenticated.
    Unauthenticated = 16,
}

/// The status of an answer in both protocols.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status {
    /// HTTP status the client gets.
    pub http: u16,
    /// gRPC code of Envoy's `CheckResponse`.
    pub rpc: RpcCode,
}

/// A protocol-neutral answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The status.
    pub status: Status,
    /// Headers to set, lower-case names: on allow for the upstream request, on deny for the
    /// client's answer.
    pub set_headers: Vec<(&'static str, HeaderText)>,
    /// Request headers to drop before the upstream (allow only), lower-case names.
    pub remove_headers: Vec<&'static str>,
    /// JSON body of a denial.
    pub body: Option<String>,
    /// An allow of a request holding `tools/list` calls: the answer filter's context, for the
    /// gateway only ([`crate::headers::TOOLS_LIST_HEADER`]: an answer header over HTTP,
    /// dynamic metadata over gRPC).
    pub tools_list: Option<HeaderText>,
}

impl Answer {
    /// Whether the request may go on to the upstream.
    pub fn allows(&self) -> bool {
        self.status.rpc == RpcCode::Ok
    }
}

/// Turns a decision into an answer.
pub fn answer(decision: Decision, settings: &AnswerSettings) -> Answer {
    match decision {
        Decision::Allow(allowed) => {
            let mut set_headers: Vec<_> = allowed.headers.into_pairs().collect();
            if allowed.tools_list.is_some() {
                set_headers.extend(
                    TOOLS_LIST_UPSTREAM_HEADERS
                        .iter()
                        .map(|(name, value)| (*name, HeaderText::sanitized(value))),
                );
            }
            Answer {
                status: Status {
                    http: 200,
                    rpc: RpcCode::Ok,
                },
                set_headers,
                remove_headers: allowed.ingress_headers,
                body: None,
                tools_list: allowed.tools_list,
            }
        }
        Decision::Deny { reason, .. } => deny(&reason, settings),
    }
}

fn deny(reason: &DenyReason, settings: &AnswerSettings) -> Answer {
    let status = status_of(reason);
    let description = describe(reason, settings);
    let mut headers = vec![("content-type", HeaderText::sanitized("application/json"))];
    let body = match reason {
        DenyReason::BadMessage(err) => json!({
            "jsonrpc": "2.0",
            "id": err.id.clone().unwrap_or(serde_json::Value::Null),
            "error": {"code": err.code, "message": err.message},
        }),
        DenyReason::Forbidden(forbidden) => {
            let mut params = vec![r#"error="insufficient_scope""#.to_owned()];
            if !forbidden.scopes_that_allow.is_empty() {
                let scopes = quotable(&forbidden.scopes_that_allow.join(" "));
                params.push(format!(r#"scope="{scopes}""#));
            }
            params.extend(resource_metadata_param(settings));
            headers.push(("www-authenticate", bearer_challenge(&params)));
            json!({
                "error": "insufficient_scope",
                "error_description": description,
                "server": forbidden.server,
                "method": forbidden.call.method,
                "tool": forbidden.call.tool,
            })
        }
        DenyReason::SignIn { return_to, .. } => {
            // A browser: off to sign-in, and back to where it was going afterwards.
            let location = sign_in_location(return_to);
            headers.push(("location", HeaderText::sanitized(&location)));
            headers.push(("cache-control", HeaderText::sanitized("no-store")));
            json!({"error": "sign_in_required", "error_description": description, "location": location})
        }
        DenyReason::Session(_) => {
            // No bearer token came, so the challenge names no token error (RFC 6750 §3.1).
            let params: Vec<String> = resource_metadata_param(settings).into_iter().collect();
            headers.push(("www-authenticate", bearer_challenge(&params)));
            json!({"error": "invalid_session", "error_description": description})
        }
        _ if status.http == 401 => {
            let token_sent = !matches!(reason, DenyReason::NoCredentials);
            let mut params: Vec<String> = resource_metadata_param(settings).into_iter().collect();
            if token_sent {
                params.push(r#"error="invalid_token""#.to_owned());
                params.push(format!(r#"error_description="{}""#, quotable(&description)));
            }
            headers.push(("www-authenticate", bearer_challenge(&params)));
            json!({"error": if token_sent { "invalid_token" } else { "unauthorized" }, "error_description": description})
        }
        _ => {
            match reason {
                DenyReason::MethodNotAllowed(_) => {
                    headers.push(("allow", HeaderText::sanitized("GET, POST, DELETE")));
                }
                DenyReason::Busy => headers.push(("retry-after", HeaderText::sanitized("1"))),
                _ => {}
            }
            json!({"error": error_code(reason), "error_description": description})
        }
    };
    Answer {
        status,
        set_headers: headers,
        remove_headers: Vec::new(),
        body: Some(body.to_string()),
        tools_list: None,
    }
}

/// What a gateway sends the client for an upstream answer to a request holding `tools/list`
/// calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FilterAnswer {
    /// The upstream's answer as it came: status, headers and body.
    Unchanged,
    /// The upstream's headers with this status, `Content-Type` and body (its length anew).
    Replaced {
        /// HTTP status.
        status: u16,
        /// `Content-Type`.
        media_type: MediaType,
        /// The body.
        body: Vec<u8>,
    },
}

/// Turns the filter's result into what the gateway sends: the rewritten list, or for an answer
/// the filter withheld, a JSON-RPC error naming the reason for each call of the request.
pub fn filter_answer(
    result: Result<Filtered, FilterError>,
    upstream_status: u16,
    request: &ListRequest,
) -> FilterAnswer {
    match result {
        Ok(Filtered::Unchanged) => FilterAnswer::Unchanged,
        Ok(Filtered::Rewritten {
            media_type, body, ..
        }) => FilterAnswer::Replaced {
            status: upstream_status,
            media_type,
            body,
        },
        Err(error) => {
            let refusal = tools_list::refusal(&error, request);
            FilterAnswer::Replaced {
                status: refusal.status,
                media_type: tools_list::Refusal::MEDIA_TYPE,
                body: refusal.body,
            }
        }
    }
}

/// Where a browser signs in: oauth2-proxy's start path, with the return path (already a plain
/// path on the gateway) percent-encoded.
fn sign_in_location(return_to: &str) -> String {
    let encoded: String =
        openidconnect::url::form_urlencoded::byte_serialize(return_to.as_bytes()).collect();
    format!("/oauth2/start?rd={encoded}")
}

/// `resource_metadata="..."` (RFC 9728), when `AUTH_RESOURCE_URL` is set.
fn resource_metadata_param(settings: &AnswerSettings) -> Option<String> {
    let url = settings.resource_metadata.as_ref()?;
    Some(format!(r#"resource_metadata="{}""#, quotable(url)))
}

/// `Bearer` followed by its parameters, comma-separated (RFC 6750 §3).
fn bearer_challenge(params: &[String]) -> HeaderText {
    if params.is_empty() {
        HeaderText::sanitized("Bearer")
    } else {
        HeaderText::sanitized(&format!("Bearer {}", params.join(", ")))
    }
}

/// The status of each reason; the only such mapping in the crate.
pub fn status_of(reason: &DenyReason) -> Status {
    let (http, rpc) = match reason {
        DenyReason::BodyTooLarge => (413, RpcCode::PermissionDenied),
        DenyReason::NoCredentials
        | DenyReason::BadCredentials(_)
        | DenyReason::Token(_)
        | DenyReason::CognitoHeader { .. }
        | DenyReason::Session(_) => (401, RpcCode::Unauthenticated),
        DenyReason::SignIn { .. } => (302, RpcCode::Unauthenticated),
        DenyReason::CrossSite(_) => (403, RpcCode::PermissionDenied),
        DenyReason::NoKeySet { .. } | DenyReason::Busy => (503, RpcCode::Unavailable),
        DenyReason::IngressTokenAsEgress
        | DenyReason::BadHeader { .. }
        | DenyReason::BadTarget(_)
        | DenyReason::BadMessage(_) => (400, RpcCode::PermissionDenied),
        DenyReason::MethodNotAllowed(_) => (405, RpcCode::PermissionDenied),
        DenyReason::Forbidden(_) => (403, RpcCode::PermissionDenied),
        DenyReason::UnsafeIdentity(_) => (500, RpcCode::PermissionDenied),
    };
    Status { http, rpc }
}

fn error_code(reason: &DenyReason) -> &'static str {
    match reason {
        DenyReason::BodyTooLarge => "request_too_large",
        DenyReason::NoKeySet { .. } | DenyReason::Busy => "temporarily_unavailable",
        DenyReason::MethodNotAllowed(_) => "method_not_allowed",
        DenyReason::UnsafeIdentity(_) => "identity_not_representable",
        DenyReason::CrossSite(_) => "cross_site_request",
        _ => "invalid_request",
    }
}

/// A short, stable name for the log's `reason` field and the metrics label.
pub fn reason_code(reason: &DenyReason) -> &'static str {
    match reason {
        DenyReason::BodyTooLarge => "body_too_large",
        DenyReason::NoCredentials => "no_token",
        DenyReason::BadCredentials(_) => "bad_credentials",
        DenyReason::Token(err) => match err {
            TokenError::Expired => "token_expired",
            TokenError::NotYetValid | TokenError::IssuedInFuture => "token_not_yet_valid",
            TokenError::WrongIssuer | TokenError::UnknownIssuer => "token_wrong_issuer",
            TokenError::GroupOverage => "token_group_overage",
            TokenError::WrongAudience => "token_wrong_audience",
            TokenError::ClientNotAllowed => "token_client_not_allowed",
            TokenError::UnknownKid(_) => "token_unknown_kid",
            TokenError::BadSignature => "token_bad_signature",
            TokenError::AlgorithmRefused(_) | TokenError::AlgorithmMismatch => {
                "token_algorithm_refused"
            }
            TokenError::NotAccessToken => "token_not_access_token",
            _ => "token_invalid",
        },
        DenyReason::CognitoHeader { .. } => "cognito_header_mismatch",
        DenyReason::NoKeySet { .. } => "no_key_set",
        DenyReason::IngressTokenAsEgress => "ingress_token_as_egress",
        DenyReason::BadHeader { .. } => "bad_header",
        DenyReason::BadTarget(_) => "bad_target",
        DenyReason::BadMessage(err) if err.code == crate::jsonrpc::code::HEADER_MISMATCH => {
            "mcp_header_mismatch"
        }
        DenyReason::BadMessage(_) => "bad_jsonrpc",
        DenyReason::MethodNotAllowed(_) => "method_not_allowed",
        DenyReason::Forbidden(_) => "insufficient_scope",
        DenyReason::UnsafeIdentity(_) => "identity_not_representable",
        DenyReason::Busy => "busy",
        DenyReason::Session(SessionError::Expired) => "session_expired",
        DenyReason::Session(_) => "session_invalid",
        DenyReason::SignIn { .. } => "sign_in_required",
        DenyReason::CrossSite(_) => "cross_site_request",
    }
}

/// A sentence a human can act on.
pub fn describe(reason: &DenyReason, settings: &AnswerSettings) -> String {
    match reason {
        DenyReason::BodyTooLarge => {
            format!(
                "the request body is larger than {} bytes and cannot be inspected",
                settings.max_body_bytes
            )
        }
        DenyReason::NoCredentials => {
            "no bearer token: send `X-Authorization: Bearer <token>`".to_owned()
        }
        DenyReason::BadCredentials(why) => (*why).to_owned(),
        DenyReason::Token(err) => err.to_string(),
        DenyReason::CognitoHeader { header, problem } => match problem {
            HeaderProblem::Mismatch => {
                format!("{header} does not match the configured pool or the token")
            }
            HeaderProblem::Repeated => format!("{header} is repeated"),
            HeaderProblem::Unreadable => format!("{header} is not readable text"),
        },
        DenyReason::NoKeySet { issuer } => format!(
            "the key set of the token's identity provider (`{issuer}`) is not available yet; \
             retry later"
        ),
        DenyReason::Busy => {
            "too many large request bodies are being inspected at once; retry shortly".to_owned()
        }
        DenyReason::IngressTokenAsEgress => "the ingress token is also in `Authorization`: it \
            never goes upstream; send the egress token there, or no `Authorization`"
            .to_owned(),
        DenyReason::BadHeader { header, problem } => match problem {
            HeaderProblem::Repeated => format!("{header} is repeated"),
            HeaderProblem::Unreadable => format!("{header} is not readable text"),
            HeaderProblem::Mismatch => format!("{header} does not match the request"),
        },
        DenyReason::BadTarget(err) => err.to_string(),
        DenyReason::BadMessage(err) => err.message.clone(),
        DenyReason::MethodNotAllowed(method) => {
            format!("method `{method}` is not allowed: use GET, POST or DELETE")
        }
        DenyReason::Forbidden(forbidden) => match &forbidden.call.tool {
            Some(tool) => format!(
                "no scope allows tool `{tool}` on server `{}`",
                forbidden.server
            ),
            None if forbidden.call.method.is_empty() => {
                format!("no scope grants access to server `{}`", forbidden.server)
            }
            None => format!(
                "no scope allows method `{}` on server `{}`",
                forbidden.call.method, forbidden.server
            ),
        },
        DenyReason::Session(err) => err.to_string(),
        DenyReason::SignIn { session, .. } => match session {
            Some(err) => format!("{err}: a browser is sent to sign-in"),
            None => "sign in first: a browser is sent to sign-in".to_owned(),
        },
        DenyReason::CrossSite(why) => format!(
            "a request that changes state and is authenticated only by the session cookie must              come from the gateway's own pages: {}",
            match why {
                CrossSite::FetchSite => "Sec-Fetch-Site is not same-origin",
                CrossSite::Origin => "Origin is not the gateway's origin",
                CrossSite::Unknown => "neither Origin nor Sec-Fetch-Site says where it comes from",
            }
        ),
        DenyReason::UnsafeIdentity(unsafe_header) => match unsafe_header.problem {
            UnsafeValue::ControlCharacter => format!(
                "the token's identity cannot be passed on: its value for {} holds a control \
                 character",
                unsafe_header.header
            ),
            UnsafeValue::TooLong => format!(
                "the token's identity cannot be passed on: {} would be longer than the headers \
                 the gateway carries",
                unsafe_header.header
            ),
        },
    }
}

/// Makes text safe inside a quoted header parameter: printable ASCII, no `"` or `\`.
fn quotable(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '"' | '\\' => '\'',
            c if c.is_ascii_graphic() || c == ' ' => c,
            _ => '?',
        })
        .collect()
}
