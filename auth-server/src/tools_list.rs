//! The `tools/list` answer rewriter: an MCP server's answer in, the answer the caller may see out.
//!
//! A pure function over bytes, like the decision core: no I/O, no logging, no HTTP or gRPC
//! types. A gateway shell hands [`filter`] the upstream's status, `Content-Type`,
//! `Content-Encoding` and whole body, the request's calls ([`ListRequest`]) and the caller's
//! [`ToolVisibility`]; it sends back what [`Filtered`] or [`refusal`] says.
//!
//! What is rewritten: in an `application/json` body (one JSON-RPC message or a batch) or in the
//! `data` of each `text/event-stream` event, every response that carries `result.tools`, unless
//! its `id` is the id of one of the request's *other* calls (a `tools/call` whose result happens
//! to hold a `tools` member is that call's business). Answering no call of the request at all
//! does not exempt a response: an upstream that echoes an id in another spelling (`1.0` for `1`)
//! still has its list filtered. In a rewritten result each hidden tool is removed, each kept one
//! stays byte for byte, every other member (`nextCursor`, `ttlMs`, `_meta`, unknown members, the
//! digits of every number) stays as it came, and `cacheScope` becomes `"private"` (MCP
//! 2026-07-28, server/utilities/caching: a list filtered per caller must not be shared across
//! authorization contexts). Everything else passes byte for byte.
//!
//! Fail closed: an answer the filter cannot read with certainty never reaches the client. A
//! compressed body, one over [`Limits::max_answer_bytes`], an unknown content type, invalid
//! UTF-8, JSON that does not parse, a repeated `id`, `result`, `tools`, `cacheScope`,
//! `resultType` or tool `name` (parsers disagree on which copy wins), a `tools` that is not an
//! array, a tool without a string `name`: each is a [`FilterError`], and the client gets the
//! JSON-RPC error of [`refusal`] instead of the upstream's bytes.
//!
//! Error statuses: a non-2xx answer is never rewritten. When it can be read and lists no tools
//! it passes unchanged with its status (a 404 for an unknown session stays a 404, so that the
//! client starts a new one). When it lists tools, or cannot be read (an HTML error page, a
//! compressed or oversized body), the refusal keeps the upstream's status and replaces the body
//! with a JSON-RPC error naming why: the status still tells the client what happened, and no
//! byte the filter could not read reaches it.

pub mod context;
mod json;
mod sse;

use std::collections::HashSet;

use serde_json::{Value, json};

use crate::jsonrpc::{Message, Payload};

/// The upstream's answer to a request holding `tools/list` calls, as the gateway received it.
#[derive(Debug, Clone, Copy)]
pub struct UpstreamAnswer<'a> {
    /// HTTP status.
    pub status: u16,
    /// The `Content-Type` header, if any.
    pub content_type: Option<&'a str>,
    /// The `Content-Encoding` header, if any.
    pub content_encoding: Option<&'a str>,
    /// The whole body, as it came (not decoded).
    pub body: &'a [u8],
}

/// Which tools the caller may see on the server the request went to (the policy's rule, issue
/// 11: callable, or named by a `tools/list` entry of the caller's scopes).
pub trait ToolVisibility {
    /// Whether `tool` (the decoded `name`, escapes resolved) is listed to the caller.
    fn is_visible(&self, tool: &str) -> bool;
}

impl<F: Fn(&str) -> bool> ToolVisibility for F {
    fn is_visible(&self, tool: &str) -> bool {
        self(tool)
    }
}

/// Bounds on the work one answer may cause.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest body read; a larger one is refused, never passed through unread.
    pub max_answer_bytes: usize,
}

impl Limits {
    /// 16 MiB: above the largest `tools/list` answers seen in practice (a few MiB for servers
    /// with thousands of tools), and what the filter handles in tens of milliseconds.
    pub const DEFAULT_MAX_ANSWER_BYTES: usize = 16 * 1024 * 1024;
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_answer_bytes: Self::DEFAULT_MAX_ANSWER_BYTES,
        }
    }
}

/// The calls of a request that holds at least one `tools/list`: which answers to filter, and
/// which ids a refusal answers.
#[derive(Debug, Clone)]
pub struct ListRequest {
    /// Ids of the calls that are not `tools/list` (and that no `tools/list` call shares):
    /// responses to them are never rewritten.
    other_calls: HashSet<IdKey>,
    /// The ids a refusal answers: the single call's id, or each id of a batch.
    reply_ids: ReplyIds,
}

#[derive(Debug, Clone)]
enum ReplyIds {
    /// One call: its id (`null` when it is a notification).
    Single(Value),
    /// A batch: the id of each call that expects an answer, in order.
    Batch(Vec<Value>),
}

impl ListRequest {
    /// The request's calls, when one of them is `tools/list` (a request, or a notification an
    /// upstream might still answer); `None` when none is, and the answer needs no filter.
    pub fn of(payload: &Payload) -> Option<ListRequest> {
        let messages = payload.messages();
        // Nearly every request holds no tools/list call: answer that before building anything.
        let is_list = |message: &Message| matches!(message, Message::Call { method, .. } if method == "tools/list");
        if !messages.iter().any(is_list) {
            return None;
        }
        let mut has_list = false;
        let mut list_calls = HashSet::new();
        let mut other_calls = HashSet::new();
        for message in messages {
            let Message::Call { id, method, .. } = message else {
                continue;
            };
            let key = id.as_ref().and_then(IdKey::of);
            if method == "tools/list" {
                has_list = true;
                list_calls.extend(key);
            } else {
                other_calls.extend(key);
            }
        }
        if !has_list {
            return None;
        }
        // An id shared by a tools/list call and another call: its responses are filtered.
        other_calls.retain(|key| !list_calls.contains(key));
        let reply_ids = match payload {
            Payload::Single(Message::Call { id, .. }) => {
                ReplyIds::Single(id.clone().unwrap_or(Value::Null))
            }
            Payload::Single(Message::Response { .. }) => ReplyIds::Single(Value::Null),
            Payload::Batch(_) => ReplyIds::Batch(
                messages
                    .iter()
                    .filter_map(|message| match message {
                        Message::Call { id, .. } => id.clone(),
                        Message::Response { .. } => None,
                    })
                    .collect(),
            ),
        };
        Some(ListRequest {
            other_calls,
            reply_ids,
        })
    }

    /// Whether a response with this `id` (raw JSON; `None` when absent) answers one of the
    /// request's other calls, and so is left as it is.
    fn answers_other_call(&self, id: Option<&str>) -> bool {
        !self.other_calls.is_empty()
            && id
                .and_then(|raw| serde_json::from_str::<Value>(raw).ok())
                .and_then(|id| IdKey::of(&id))
                .is_some_and(|key| self.other_calls.contains(&key))
    }
}

/// A JSON-RPC id compared by value, as an MCP server that parsed and re-serialised it would
/// write it back: `"a\u0062"` is `"ab"`, `1.0` and `1e0` are `1`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum IdKey {
    Null,
    String(String),
    Integer(i128),
    /// A number with a fraction, by its bits (never NaN in JSON; -0.0 is the integer 0).
    Fraction(u64),
}

impl IdKey {
    /// `None` for a value that cannot be a JSON-RPC id (bool, array, object).
    fn of(id: &Value) -> Option<IdKey> {
        match id {
            Value::Null => Some(IdKey::Null),
            Value::String(text) => Some(IdKey::String(text.clone())),
            Value::Number(number) => {
                if let Some(integer) = number.as_i64() {
                    Some(IdKey::Integer(integer.into()))
                } else if let Some(integer) = number.as_u64() {
                    Some(IdKey::Integer(integer.into()))
                } else {
                    number.as_f64().map(IdKey::of_float)
                }
            }
            Value::Bool(_) | Value::Array(_) | Value::Object(_) => None,
        }
    }

    fn of_float(value: f64) -> IdKey {
        // 2^126: any whole f64 below it converts to i128 exactly.
        const EXACT: f64 = 85_070_591_730_234_615_865_843_651_857_942_052_864.0;
        if value.fract() == 0.0 && value.abs() < EXACT {
            // Whole and in range: the cast is exact.
            IdKey::Integer(value as i128)
        } else {
            IdKey::Fraction(value.to_bits())
        }
    }
}

/// The media types the filter reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaType {
    /// `application/json`: one JSON-RPC message or a batch.
    Json,
    /// `text/event-stream`: Server-Sent Events, each `data` one JSON-RPC message.
    EventStream,
}

impl MediaType {
    /// The `Content-Type` value to send with a rewritten body.
    pub fn as_str(self) -> &'static str {
        match self {
            MediaType::Json => "application/json",
            MediaType::EventStream => "text/event-stream",
        }
    }

    /// The media type of a `Content-Type` value (parameters and case ignored); `None` for any
    /// other type.
    fn of(content_type: &str) -> Option<MediaType> {
        let essence = content_type.split(';').next().unwrap_or_default().trim();
        if essence.eq_ignore_ascii_case("application/json") {
            Some(MediaType::Json)
        } else if essence.eq_ignore_ascii_case("text/event-stream") {
            Some(MediaType::EventStream)
        } else {
            None
        }
    }
}

/// What to send the client, when the answer could be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filtered {
    /// The upstream's answer as it came (status, headers, body): it lists no tools to rewrite.
    Unchanged,
    /// The upstream's status and headers with this body, `Content-Type` set to `media_type`
    /// (its `Content-Length` recomputed).
    Rewritten {
        /// `application/json` or `text/event-stream`, as the upstream sent.
        media_type: MediaType,
        /// The answer with every tools/list result filtered.
        body: Vec<u8>,
        /// What was filtered, for the decision log.
        tools: ToolCounts,
    },
}

/// How many tools/list results an answer held, and the tools in them kept and removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ToolCounts {
    /// Results rewritten (one per page answered; several in a batch).
    pub results: usize,
    /// Tools kept.
    pub listed: usize,
    /// Tools removed.
    pub hidden: usize,
}

/// An answer the filter cannot pass on: the upstream's status and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("upstream answer (status {upstream_status}) withheld: {reason}")]
pub struct FilterError {
    /// The upstream's HTTP status.
    pub upstream_status: u16,
    /// Why the answer was withheld.
    pub reason: Reason,
}

/// Why an answer was withheld.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Reason {
    /// Compressed or otherwise encoded: the filter reads only identity bodies.
    #[error(
        "the body is encoded (Content-Encoding: {0}); the gateway must ask the MCP server for `identity` on tools/list requests"
    )]
    ContentEncoding(String),
    /// Larger than [`Limits::max_answer_bytes`].
    #[error("the body is larger than the {limit}-byte limit")]
    TooLarge {
        /// The bytes read: the body's size, or the limit plus one when the gateway stopped
        /// reading there.
        bytes: usize,
        /// The limit.
        limit: usize,
    },
    /// Neither `application/json` nor `text/event-stream` (`None`: no `Content-Type`).
    #[error("the content type {} is neither application/json nor text/event-stream", .0.as_deref().unwrap_or("(none)"))]
    ContentType(Option<String>),
    /// Not UTF-8 (JSON and event streams are UTF-8).
    #[error("the body is not valid UTF-8")]
    NotUtf8,
    /// A JSON text (the body, or an event's data) that does not parse.
    #[error("not valid JSON: {0}")]
    NotJson(String),
    /// JSON, but not a JSON-RPC message or batch of messages.
    #[error("not a JSON-RPC message: {0}")]
    NotJsonRpc(String),
    /// A member that decides what is filtered, present twice in one object.
    #[error("`{0}` appears twice in one object")]
    DuplicateKey(&'static str),
    /// `result.tools` is not an array.
    #[error("`result.tools` is not an array")]
    ToolsNotArray,
    /// A tool that is not an object with a string `name`.
    #[error("tool #{0} of `result.tools` has no string `name`")]
    ToolWithoutName(usize),
    /// A non-2xx answer whose body carries a tools/list result.
    #[error("an error answer carries a tools/list result")]
    ErrorStatusListsTools,
    /// Not read: too many large answers are being filtered at once (never produced by
    /// [`filter`], only by the pipeline that bounds them, crate::authorizer).
    #[error("too many large tools/list answers are being filtered at once; retry shortly")]
    Busy,
}

impl Reason {
    /// A stable name for logs, metrics and the error's `data.reason`.
    pub fn code(&self) -> &'static str {
        match self {
            Reason::ContentEncoding(_) => "content_encoding",
            Reason::TooLarge { .. } => "too_large",
            Reason::ContentType(_) => "content_type",
            Reason::NotUtf8 => "not_utf8",
            Reason::NotJson(_) => "not_json",
            Reason::NotJsonRpc(_) => "not_jsonrpc",
            Reason::DuplicateKey(_) => "duplicate_key",
            Reason::ToolsNotArray => "tools_not_array",
            Reason::ToolWithoutName(_) => "tool_without_name",
            Reason::ErrorStatusListsTools => "error_status_lists_tools",
            Reason::Busy => "busy",
        }
    }
}

/// Filters an upstream answer to a request holding `tools/list` calls. Pure and linear in the
/// size of the body.
pub fn filter(
    answer: &UpstreamAnswer<'_>,
    request: &ListRequest,
    visible: &impl ToolVisibility,
    limits: &Limits,
) -> Result<Filtered, FilterError> {
    let withheld = |reason| FilterError {
        upstream_status: answer.status,
        reason,
    };
    // Nothing can hide in an empty body (a 202, a 204, a bare 404): it passes whatever its type.
    if answer.body.is_empty() {
        return Ok(Filtered::Unchanged);
    }
    let (media_type, text) = read(answer, limits).map_err(withheld)?;
    if !(200..300).contains(&answer.status) {
        let lists_tools = match media_type {
            MediaType::Json => json::lists_tools(text),
            MediaType::EventStream => sse::lists_tools(text),
        }
        .map_err(withheld)?;
        return match lists_tools {
            true => Err(withheld(Reason::ErrorStatusListsTools)),
            false => Ok(Filtered::Unchanged),
        };
    }
    let rewritten = match media_type {
        MediaType::Json => json::rewrite(text, request, visible),
        MediaType::EventStream => sse::rewrite(text, request, visible),
    }
    .map_err(withheld)?;
    Ok(match rewritten {
        None => Filtered::Unchanged,
        Some((body, tools)) => Filtered::Rewritten {
            media_type,
            body: body.into_bytes(),
            tools,
        },
    })
}

/// The body as text of a known media type, or why it cannot be read.
fn read<'a>(answer: &UpstreamAnswer<'a>, limits: &Limits) -> Result<(MediaType, &'a str), Reason> {
    if let Some(encoding) = answer.content_encoding
        && !encoding.trim().eq_ignore_ascii_case("identity")
    {
        return Err(Reason::ContentEncoding(printable(encoding)));
    }
    if answer.body.len() > limits.max_answer_bytes {
        return Err(Reason::TooLarge {
            bytes: answer.body.len(),
            limit: limits.max_answer_bytes,
        });
    }
    let media_type = answer
        .content_type
        .and_then(MediaType::of)
        .ok_or_else(|| Reason::ContentType(answer.content_type.map(printable)))?;
    let text = std::str::from_utf8(answer.body).map_err(|_| Reason::NotUtf8)?;
    Ok((media_type, text))
}

/// An upstream header value fit for a message a human reads: short, printable ASCII.
fn printable(value: &str) -> String {
    const MAX: usize = 64;
    let mut shown: String = value
        .chars()
        .take(MAX)
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect();
    if value.chars().count() > MAX {
        shown.push('…');
    }
    shown
}

/// The answer the client gets instead of an answer the filter withheld.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// 200 when the upstream answered 2xx (the JSON-RPC error is the answer to the call); the
    /// upstream's own status otherwise, so that a client still sees a 404 or a 503.
    pub status: u16,
    /// `application/json`: a JSON-RPC error for the request's call, or for each call of a batch.
    pub body: Vec<u8>,
}

impl Refusal {
    /// The `Content-Type` of [`Refusal::body`].
    pub const MEDIA_TYPE: MediaType = MediaType::Json;
}

/// JSON-RPC error code of a refusal: the call failed inside the gateway (JSON-RPC 2.0
/// "Internal error"; MCP reserves -32020..-32099 for its own errors).
pub const REFUSAL_CODE: i32 = -32603;

/// The answer to send when [`filter`] withheld the upstream's: a JSON-RPC error naming the
/// reason (`error.data.reason` is [`Reason::code`]) for each call of the request.
pub fn refusal(error: &FilterError, request: &ListRequest) -> Refusal {
    let status = match error.upstream_status {
        200..=299 => 200,
        upstream => upstream,
    };
    let error_for = |id: &Value| {
        json!({
            "jsonrpc": "2.0",
            "id": id,
            "error": {
                "code": REFUSAL_CODE,
                "message": format!("tools/list answer withheld by the gateway: {}", error.reason),
                "data": {"reason": error.reason.code(), "upstreamStatus": error.upstream_status},
            }
        })
    };
    let body = match &request.reply_ids {
        ReplyIds::Single(id) => error_for(id),
        ReplyIds::Batch(ids) if ids.is_empty() => error_for(&Value::Null),
        ReplyIds::Batch(ids) => Value::Array(ids.iter().map(error_for).collect()),
    };
    Refusal {
        status,
        body: body.to_string().into_bytes(),
    }
}

#[cfg(test)]
mod tests;
