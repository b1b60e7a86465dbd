//! The one place where a [`Decision`] becomes a status, headers and a body, and one log line.
//! The HTTP and gRPC shells only transcribe an [`Answer`] into their protocol.

use serde_json::json;

use crate::decision::{Allowed, Decision, DenyReason};
use crate::token::TokenError;

/// What the shells need besides the decision.
#[derive(Debug, Clone)]
pub struct AnswerSettings {
    /// `X-Auth-Method`.
    pub auth_method: &'static str,
    /// RFC 9728 metadata URL for `WWW-Authenticate`, when `AUTH_RESOURCE_URL` is set.
    pub resource_metadata: Option<String>,
    /// `AUTH_MAX_BODY_BYTES`, for the 413 message.
    pub max_body_bytes: usize,
}

/// A protocol-neutral answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// Headers, lower-case names.
    pub headers: Vec<(&'static str, String)>,
    /// JSON body, for denials.
    pub body: Option<String>,
}

/// Identity headers set on allow; the gateway drops any client-sent copies.
pub const IDENTITY_HEADERS: [&str; 8] = [
    "x-user",
    "x-username",
    "x-client-id",
    "x-scopes",
    "x-auth-method",
    "x-server-name",
    "x-method",
    "x-tool-name",
];

/// Envoy's header naming the request headers to drop before the upstream.
pub const HEADERS_TO_REMOVE: &str = "x-envoy-auth-headers-to-remove";

/// Turns a decision into an answer.
pub fn answer(decision: &Decision, settings: &AnswerSettings) -> Answer {
    match decision {
        Decision::Allow(allowed) => allow(allowed, settings),
        Decision::Deny { reason, .. } => deny(reason, settings),
    }
}

fn allow(allowed: &Allowed, settings: &AnswerSettings) -> Answer {
    let joined = |field: fn(&crate::decision::CallSummary) -> &str| {
        allowed
            .calls
            .iter()
            .map(field)
            .collect::<Vec<_>>()
            .join(",")
    };
    let values = [
        allowed.identity.subject.clone(),
        allowed.identity.username.clone(),
        allowed.identity.client_id.clone(),
        allowed.scopes.join(" "),
        settings.auth_method.to_owned(),
        allowed.server.clone(),
        joined(|call| &call.method),
        joined(|call| call.tool.as_deref().unwrap_or("")),
    ];
    let mut headers: Vec<(&'static str, String)> =
        IDENTITY_HEADERS.into_iter().zip(values).collect();
    headers.push((HEADERS_TO_REMOVE, allowed.ingress_headers.join(",")));
    Answer {
        status: 200,
        headers,
        body: None,
    }
}

fn deny(reason: &DenyReason, settings: &AnswerSettings) -> Answer {
    let status = status_of(reason);
    let description = sanitize(&describe(reason, settings));
    let mut headers = vec![("content-type", "application/json".to_owned())];
    let body = match reason {
        DenyReason::BadMessage(err) => json!({
            "jsonrpc": "2.0",
            "id": err.id.clone().unwrap_or(serde_json::Value::Null),
            "error": {"code": err.code, "message": err.message},
        }),
        DenyReason::Forbidden(forbidden) => {
            let mut params = vec![r#"error="insufficient_scope""#.to_owned()];
            if !forbidden.scopes_that_allow.is_empty() {
                let scopes = sanitize(&forbidden.scopes_that_allow.join(" "));
                params.push(format!(r#"scope="{scopes}""#));
            }
            params.extend(resource_metadata_param(settings));
            let challenge = bearer_challenge(&params);
            headers.push(("www-authenticate", challenge));
            json!({
                "error": "insufficient_scope",
                "error_description": description,
                "server": forbidden.server,
                "method": forbidden.call.method,
                "tool": forbidden.call.tool,
            })
        }
        _ if status == 401 => {
            let token_sent = !matches!(reason, DenyReason::NoCredentials);
            let mut params: Vec<String> = resource_metadata_param(settings).into_iter().collect();
            if token_sent {
                params.push(r#"error="invalid_token""#.to_owned());
                params.push(format!(r#"error_description="{description}""#));
            }
            headers.push(("www-authenticate", bearer_challenge(&params)));
            json!({"error": if token_sent { "invalid_token" } else { "unauthorized" }, "error_description": description})
        }
        _ => {
            if let DenyReason::MethodNotAllowed(_) = reason {
                headers.push(("allow", "GET, POST, DELETE".to_owned()));
            }
            json!({"error": error_code(reason), "error_description": description})
        }
    };
    Answer {
        status,
        headers,
        body: Some(body.to_string()),
    }
}

/// `resource_metadata="..."` (RFC 9728), when `AUTH_RESOURCE_URL` is set.
fn resource_metadata_param(settings: &AnswerSettings) -> Option<String> {
    let url = settings.resource_metadata.as_ref()?;
    Some(format!(r#"resource_metadata="{}""#, sanitize(url)))
}

/// `Bearer` followed by its parameters, comma-separated (RFC 6750 §3).
fn bearer_challenge(params: &[String]) -> String {
    if params.is_empty() {
        "Bearer".to_owned()
    } else {
        format!("Bearer {}", params.join(", "))
    }
}

/// The status of each reason; the only such mapping in the crate.
pub fn status_of(reason: &DenyReason) -> u16 {
    match reason {
        DenyReason::BodyTooLarge => 413,
        DenyReason::NoCredentials
        | DenyReason::BadCredentials(_)
        | DenyReason::Token(_)
        | DenyReason::CognitoHeaderMismatch(_) => 401,
        DenyReason::NoKeySet => 503,
        DenyReason::BadTarget(_) | DenyReason::BadMessage(_) => 400,
        DenyReason::MethodNotAllowed(_) => 405,
        DenyReason::Forbidden(_) => 403,
    }
}

fn error_code(reason: &DenyReason) -> &'static str {
    match reason {
        DenyReason::BodyTooLarge => "request_too_large",
        DenyReason::NoKeySet => "temporarily_unavailable",
        DenyReason::MethodNotAllowed(_) => "method_not_allowed",
        _ => "invalid_request",
    }
}

/// A short, stable name for the log's `reason` field.
pub fn reason_code(reason: &DenyReason) -> &'static str {
    match reason {
        DenyReason::BodyTooLarge => "body_too_large",
        DenyReason::NoCredentials => "no_token",
        DenyReason::BadCredentials(_) => "bad_credentials",
        DenyReason::Token(err) => match err {
            TokenError::Expired => "token_expired",
            TokenError::NotYetValid | TokenError::IssuedInFuture => "token_not_yet_valid",
            TokenError::WrongIssuer => "token_wrong_issuer",
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
        DenyReason::CognitoHeaderMismatch(_) => "cognito_header_mismatch",
        DenyReason::NoKeySet => "no_key_set",
        DenyReason::BadTarget(_) => "bad_target",
        DenyReason::BadMessage(err) if err.code == crate::jsonrpc::code::HEADER_MISMATCH => {
            "mcp_header_mismatch"
        }
        DenyReason::BadMessage(_) => "bad_jsonrpc",
        DenyReason::MethodNotAllowed(_) => "method_not_allowed",
        DenyReason::Forbidden(_) => "insufficient_scope",
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
        DenyReason::CognitoHeaderMismatch(header) => {
            format!("{header} does not match the configured pool or the token")
        }
        DenyReason::NoKeySet => {
            "the identity provider's key set is not available yet; retry later".to_owned()
        }
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
    }
}

/// Makes text safe inside a quoted header parameter: printable ASCII, no `"` or `\`.
fn sanitize(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '"' | '\\' => '\'',
            c if c.is_ascii_graphic() || c == ' ' => c,
            _ => '?',
        })
        .collect()
}

/// Writes the decision's log line (who, client id, groups, server, method, tool, result,
/// reason, latency and the gateway's request id; never a token or a body) and
/// counts it in the metrics.
pub fn log(decision: &Decision, request_id: Option<&str>, micros: u128) {
    let request_id = request_id.unwrap_or("");
    let (result, reason) = match decision {
        Decision::Allow(_) => ("allow", "allowed"),
        Decision::Deny { reason, .. } => ("deny", reason_code(reason)),
    };
    crate::metrics::observe_decision(result, reason, micros as f64 / 1e6);
    // The joined lists below are built only when the line is written.
    if !tracing::enabled!(target: "decision", tracing::Level::INFO) {
        return;
    }
    match decision {
        Decision::Allow(allowed) => {
            let methods: Vec<&str> = allowed
                .calls
                .iter()
                .map(|call| call.method.as_str())
                .collect();
            let tools: Vec<&str> = allowed
                .calls
                .iter()
                .filter_map(|call| call.tool.as_deref())
                .collect();
            // Plain `&str` fields: recorded as strings, not through `Display` formatting.
            tracing::info!(
                target: "decision",
                result = "allow",
                status = 200,
                who = allowed.identity.subject.as_str(),
                client_id = allowed.identity.client_id.as_str(),
                groups = allowed.identity.groups.join(",").as_str(),
                server = allowed.server.as_str(),
                method = methods.join(",").as_str(),
                tool = tools.join(",").as_str(),
                reason = "allowed",
                micros = micros as u64,
                request_id,
            );
        }
        Decision::Deny { identity, reason } => {
            let (server, method, tool) = match reason {
                DenyReason::Forbidden(forbidden) => (
                    forbidden.server.as_str(),
                    forbidden.call.method.as_str(),
                    forbidden.call.tool.as_deref().unwrap_or(""),
                ),
                _ => ("", "", ""),
            };
            tracing::info!(
                target: "decision",
                result = "deny",
                status = status_of(reason),
                who = identity.as_ref().map(|id| id.subject.as_str()).unwrap_or(""),
                client_id = identity.as_ref().map(|id| id.client_id.as_str()).unwrap_or(""),
                groups = identity
                    .as_ref()
                    .map(|id| id.groups.join(","))
                    .unwrap_or_default()
                    .as_str(),
                server,
                method,
                tool,
                reason = reason_code(reason),
                micros = micros as u64,
                request_id,
            );
        }
    }
}
