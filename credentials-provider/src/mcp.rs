//! A small MCP client over streamable HTTP, to check a connection through the gateway:
//! `initialize` → `notifications/initialized` → the request, with the `Mcp-Session-Id` the
//! server gives, answers read as JSON or as an SSE stream, and the session ended with `DELETE`.
//!
//! Plain reqwest rather than rmcp's client: rmcp's HTTP backend folds a 401/403 into errors
//! without the body, and a JSON-RPC error body with a 4xx status into a server answer; here
//! every refusal keeps its status, its `WWW-Authenticate` and its body, so the command can say
//! why the gateway refused.

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::header::{self, HeaderMap, HeaderName, HeaderValue};
use serde_json::{Value, json};
use url::Url;

use crate::oauth::describe_http_error;

/// The protocol revision offered in `initialize` (sessions and `Mcp-Session-Id`).
pub const PROTOCOL_VERSION: &str = "2025-11-25";
/// Largest answer read (JSON body or SSE stream).
const MAX_BODY: usize = 16 * 1024 * 1024;
/// Bytes of a refusal's body kept.
const MAX_ERROR_BODY: usize = 64 * 1024;
/// Most `tools/list` pages followed.
const MAX_PAGES: usize = 100;

/// Why an MCP exchange failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum McpError {
    /// A non-2xx HTTP answer (for a gateway: a refusal).
    #[error("HTTP {}", .0.status)]
    Refused(Refusal),
    /// The server answered with a JSON-RPC error.
    #[error("JSON-RPC error {code}: {message}")]
    JsonRpc {
        /// The error code.
        code: i64,
        /// The message.
        message: String,
        /// `data`, if any.
        data: Option<Value>,
    },
    /// The request could not be made (connection refused, timeout, …).
    #[error("{0}")]
    Transport(String),
    /// The answer is not what the protocol says.
    #[error("unexpected answer: {0}")]
    Protocol(String),
}

/// A non-2xx answer (or what an endpoint answered a client without credentials), as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The HTTP status.
    pub status: u16,
    /// `WWW-Authenticate`, all values joined.
    pub www_authenticate: Option<String>,
    /// The body (lossy UTF-8, at most 64 KiB).
    pub body: String,
}

impl Refusal {
    /// Reads the status, the challenges and (at most 64 KiB of) the body.
    async fn read(response: reqwest::Response) -> Refusal {
        let status = response.status().as_u16();
        let challenges: Vec<String> = response
            .headers()
            .get_all(header::WWW_AUTHENTICATE)
            .iter()
            .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
            .collect();
        let body = read_limited(response, MAX_ERROR_BODY)
            .await
            .unwrap_or_default();
        Refusal {
            status,
            www_authenticate: (!challenges.is_empty()).then(|| challenges.join(", ")),
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    }

    /// Lines that say why: the status, the reason from `WWW-Authenticate` and the JSON body,
    /// the scopes that would do, and what to do about it.
    pub fn explain(&self) -> Vec<String> {
        let reason_phrase = reqwest::StatusCode::from_u16(self.status)
            .ok()
            .and_then(|status| status.canonical_reason())
            .unwrap_or("");
        let mut lines = vec![format!("refused: HTTP {} {reason_phrase}", self.status)];
        let params = self
            .www_authenticate
            .as_deref()
            .map(parse_www_authenticate)
            .unwrap_or_default();
        let body: Value = serde_json::from_str(&self.body).unwrap_or(Value::Null);
        let text =
            |value: &Value, key: &str| value.get(key).and_then(Value::as_str).map(str::to_owned);
        let error = params
            .get("error")
            .cloned()
            .or_else(|| text(&body, "error"))
            .or_else(|| {
                body.pointer("/error/message")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            });
        let description = params
            .get("error_description")
            .cloned()
            .or_else(|| text(&body, "error_description"));
        match (&error, &description) {
            (Some(error), Some(description)) => {
                lines.push(format!("reason: {error}: {description}"))
            }
            (Some(error), None) => lines.push(format!("reason: {error}")),
            (None, Some(description)) => lines.push(format!("reason: {description}")),
            (None, None) if self.status == 401 => {
                lines.push("reason: no credentials reached the gateway".into());
            }
            (None, None) => {}
        }
        if error.as_deref() == Some("insufficient_scope") {
            let what: Vec<String> = ["server", "method", "tool"]
                .iter()
                .filter_map(|key| {
                    text(&body, key)
                        .filter(|v| !v.is_empty())
                        .map(|v| format!("{key} {v}"))
                })
                .collect();
            if !what.is_empty() {
                lines.push(format!("not allowed: {}", what.join(", ")));
            }
        }
        if let Some(scope) = params.get("scope") {
            lines.push(format!("scopes that would allow it: {scope}"));
        }
        if let Some(challenge) = &self.www_authenticate {
            lines.push(format!("WWW-Authenticate: {challenge}"));
        }
        if error.is_none() && description.is_none() && !self.body.trim().is_empty() {
            let shown: String = self.body.trim().chars().take(500).collect();
            lines.push(format!("body: {shown}"));
        }
        match self.status {
            401 => lines.push(
                "hint: get a new ingress token with `credentials-provider ingress --force`, and check \
                 that the gateway trusts its issuer and client"
                    .into(),
            ),
            403 => lines.push(
                "hint: the token is valid but its groups/scopes do not allow this; ask for a \
                 scope that does (scopes.yml on the gateway)"
                    .into(),
            ),
            _ => {}
        }
        lines
    }
}

/// The auth-params of a `WWW-Authenticate: Bearer …` challenge (RFC 6750 §3).
pub fn parse_www_authenticate(challenge: &str) -> BTreeMap<String, String> {
    let mut params = BTreeMap::new();
    let rest = challenge.trim();
    let mut rest = match rest.split_once(char::is_whitespace) {
        Some((scheme, rest)) if !scheme.contains('=') => rest,
        _ if rest.contains('=') => rest,
        _ => return params,
    };
    loop {
        rest = rest.trim_start_matches(|c: char| c == ',' || c.is_whitespace());
        let Some(eq) = rest.find('=') else { break };
        let name = rest[..eq].trim().to_ascii_lowercase();
        rest = rest[eq + 1..].trim_start();
        let value;
        if let Some(quoted) = rest.strip_prefix('"') {
            let mut out = String::new();
            let mut chars = quoted.char_indices();
            let mut end = quoted.len();
            while let Some((index, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, escaped)) = chars.next() {
                            out.push(escaped);
                        }
                    }
                    '"' => {
                        end = index + 1;
                        break;
                    }
                    other => out.push(other),
                }
            }
            value = out;
            rest = &quoted[end.min(quoted.len())..];
        } else {
            let end = rest.find(',').unwrap_or(rest.len());
            value = rest[..end].trim().to_owned();
            rest = &rest[end..];
        }
        if !name.is_empty() {
            params.entry(name).or_insert(value);
        }
    }
    params
}

/// Reads `text/event-stream` incrementally: `data:` lines of an event, joined with `\n`, are
/// handed out when the event ends (a blank line). Comments and other fields are skipped.
#[derive(Debug, Default)]
pub struct SseReader {
    pending: Vec<u8>,
    data: Option<String>,
}

impl SseReader {
    /// Feeds bytes; returns the data of every event completed by them.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<String> {
        self.pending.extend_from_slice(chunk);
        let mut events = Vec::new();
        while let Some(newline) = self.pending.iter().position(|&b| b == b'\n') {
            let mut line: Vec<u8> = self.pending.drain(..=newline).collect();
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            let line = String::from_utf8_lossy(&line);
            if line.is_empty() {
                if let Some(data) = self.data.take() {
                    events.push(data);
                }
                continue;
            }
            if line.starts_with(':') {
                continue;
            }
            let (field, value) = match line.split_once(':') {
                Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
                None => (line.as_ref(), ""),
            };
            if field == "data" {
                match &mut self.data {
                    Some(data) => {
                        data.push('\n');
                        data.push_str(value);
                    }
                    None => self.data = Some(value.to_owned()),
                }
            }
        }
        events
    }

    /// The data of an event cut off by the end of the stream, if any.
    pub fn finish(&mut self) -> Option<String> {
        self.data.take()
    }
}

/// Sends `initialize` to `url` with no credentials at all (the gateway's `basic` check: is it
/// there, and does it ask for a token?). Only a transport failure is an error.
pub async fn reach_without_credentials(url: &Url, timeout: Duration) -> Result<Refusal, McpError> {
    let http = reqwest::Client::builder()
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("credentials-provider/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|err| McpError::Transport(describe_http_error(&err)))?;
    let initialize = json!({
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {
            "protocolVersion": PROTOCOL_VERSION,
            "capabilities": {},
            "clientInfo": {"name": "credentials-provider", "version": env!("CARGO_PKG_VERSION")},
        },
    });
    let response = http
        .post(url.clone())
        .header(header::ACCEPT, "application/json, text/event-stream")
        .header(header::CONTENT_TYPE, "application/json")
        .body(initialize.to_string())
        .send()
        .await
        .map_err(|err| McpError::Transport(describe_http_error(&err)))?;
    Ok(Refusal::read(response).await)
}

/// An initialized MCP session.
#[derive(Debug)]
pub struct McpSession {
    http: reqwest::Client,
    url: Url,
    session_id: Option<String>,
    protocol_version: Option<String>,
    next_id: u64,
    /// The server's `initialize` result.
    pub server: Value,
}

impl McpSession {
    /// Connects to `url`, sending `headers` on every request, and initializes the session.
    pub async fn connect(
        url: &Url,
        headers: &BTreeMap<String, String>,
        timeout: Duration,
    ) -> Result<McpSession, McpError> {
        let mut default_headers = HeaderMap::new();
        for (name, value) in headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| McpError::Protocol(format!("{name:?} is not a header name")))?;
            let mut value = HeaderValue::from_str(value).map_err(|_| {
                McpError::Protocol(format!("the value of {name} is not a valid header value"))
            })?;
            value.set_sensitive(true);
            default_headers.insert(name, value);
        }
        let http = reqwest::Client::builder()
            .default_headers(default_headers)
            .timeout(timeout)
            .user_agent(concat!("credentials-provider/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|err| McpError::Transport(describe_http_error(&err)))?;
        let mut session = McpSession {
            http,
            url: url.clone(),
            session_id: None,
            protocol_version: None,
            next_id: 1,
            server: Value::Null,
        };
        let result = session
            .request(
                "initialize",
                json!({
                    "protocolVersion": PROTOCOL_VERSION,
                    "capabilities": {},
                    "clientInfo": {"name": "credentials-provider", "version": env!("CARGO_PKG_VERSION")},
                }),
            )
            .await?;
        session.protocol_version = result
            .get("protocolVersion")
            .and_then(Value::as_str)
            .map(str::to_owned);
        session.server = result;
        session.notify("notifications/initialized", None).await?;
        Ok(session)
    }

    /// The session id the server gave, if any.
    pub fn session_id(&self) -> Option<&str> {
        self.session_id.as_deref()
    }

    fn post(&self, body: &Value) -> reqwest::RequestBuilder {
        let mut request = self
            .http
            .post(self.url.clone())
            .header(header::ACCEPT, "application/json, text/event-stream")
            .header(header::CONTENT_TYPE, "application/json")
            .body(body.to_string());
        if let Some(id) = &self.session_id {
            request = request.header("mcp-session-id", id);
        }
        if let Some(version) = &self.protocol_version {
            request = request.header("mcp-protocol-version", version);
        }
        request
    }

    async fn send(&self, body: &Value) -> Result<reqwest::Response, McpError> {
        let response = self.post(body).send().await.map_err(|err| {
            McpError::Transport(format!("{}: {}", self.url, describe_http_error(&err)))
        })?;
        if response.status().is_success() {
            return Ok(response);
        }
        Err(McpError::Refused(Refusal::read(response).await))
    }

    /// Sends a request and returns its `result`.
    pub async fn request(&mut self, method: &str, params: Value) -> Result<Value, McpError> {
        let id = self.next_id;
        self.next_id += 1;
        let body = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        let response = self.send(&body).await?;
        if self.session_id.is_none() {
            self.session_id = response
                .headers()
                .get("mcp-session-id")
                .and_then(|value| value.to_str().ok())
                .map(str::to_owned);
        }
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.split(';').next())
            .map(|value| value.trim().to_ascii_lowercase())
            .unwrap_or_default();
        let message = match content_type.as_str() {
            "application/json" => {
                let bytes = read_limited(response, MAX_BODY).await?;
                answer_in_json(&bytes, id, method)?
            }
            "text/event-stream" => read_sse_answer(response, id, method).await?,
            other => {
                return Err(McpError::Protocol(format!(
                    "{method}: content type {other:?}, expected JSON or an SSE stream"
                )));
            }
        };
        if let Some(error) = message.get("error") {
            return Err(McpError::JsonRpc {
                code: error.get("code").and_then(Value::as_i64).unwrap_or(0),
                message: error
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned(),
                data: error.get("data").cloned(),
            });
        }
        message
            .get("result")
            .cloned()
            .ok_or_else(|| McpError::Protocol(format!("{method}: answer without result")))
    }

    /// Sends a notification (the server answers 202 Accepted).
    pub async fn notify(&mut self, method: &str, params: Option<Value>) -> Result<(), McpError> {
        let mut body = json!({"jsonrpc": "2.0", "method": method});
        if let Some(params) = params {
            body["params"] = params;
        }
        self.send(&body).await.map(|_| ())
    }

    /// `ping`.
    pub async fn ping(&mut self) -> Result<(), McpError> {
        self.request("ping", json!({})).await.map(|_| ())
    }

    /// `tools/list`, every page.
    pub async fn list_tools(&mut self) -> Result<Vec<Value>, McpError> {
        let mut tools = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let params = match &cursor {
                Some(cursor) => json!({"cursor": cursor}),
                None => json!({}),
            };
            let page = self.request("tools/list", params).await?;
            if let Some(list) = page.get("tools").and_then(Value::as_array) {
                tools.extend(list.iter().cloned());
            }
            cursor = page
                .get("nextCursor")
                .and_then(Value::as_str)
                .map(str::to_owned);
            if cursor.is_none() {
                return Ok(tools);
            }
        }
        Err(McpError::Protocol(format!(
            "tools/list: more than {MAX_PAGES} pages"
        )))
    }

    /// `tools/call`.
    pub async fn call_tool(&mut self, name: &str, arguments: Value) -> Result<Value, McpError> {
        self.request("tools/call", json!({"name": name, "arguments": arguments}))
            .await
    }

    /// Ends the session (`DELETE` with the session id); a server that does not support it is
    /// fine.
    pub async fn close(self) {
        if let Some(id) = &self.session_id {
            let _ = self
                .http
                .delete(self.url.clone())
                .header("mcp-session-id", id)
                .send()
                .await;
        }
    }
}

/// The answer to request `id` in a JSON body: one message, or a batch holding it.
fn answer_in_json(bytes: &[u8], id: u64, method: &str) -> Result<Value, McpError> {
    let value: Value = serde_json::from_slice(bytes)
        .map_err(|err| McpError::Protocol(format!("{method}: not JSON: {err}")))?;
    let candidates = match value {
        Value::Array(batch) => batch,
        single => vec![single],
    };
    candidates
        .into_iter()
        .find(|message| is_response_to(message, id))
        .ok_or_else(|| McpError::Protocol(format!("{method}: no answer with id {id}")))
}

fn is_response_to(message: &Value, id: u64) -> bool {
    message.get("id").and_then(Value::as_u64) == Some(id)
        && (message.get("result").is_some() || message.get("error").is_some())
}

async fn read_limited(mut response: reqwest::Response, limit: usize) -> Result<Vec<u8>, McpError> {
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|err| McpError::Transport(describe_http_error(&err)))?
    {
        if body.len() + chunk.len() > limit {
            body.extend_from_slice(&chunk[..limit - body.len()]);
            break;
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Reads an SSE stream until the answer to request `id` arrives; other messages (server
/// notifications and requests) are skipped.
async fn read_sse_answer(
    mut response: reqwest::Response,
    id: u64,
    method: &str,
) -> Result<Value, McpError> {
    let mut reader = SseReader::default();
    let mut read = 0usize;
    loop {
        let chunk = response
            .chunk()
            .await
            .map_err(|err| McpError::Transport(describe_http_error(&err)))?;
        let events = match &chunk {
            Some(chunk) => {
                read += chunk.len();
                if read > MAX_BODY {
                    return Err(McpError::Protocol(format!(
                        "{method}: answer over {MAX_BODY} bytes"
                    )));
                }
                reader.feed(chunk)
            }
            None => reader.finish().into_iter().collect(),
        };
        for data in events {
            if let Ok(message) = serde_json::from_str::<Value>(&data)
                && is_response_to(&message, id)
            {
                return Ok(message);
            }
        }
        if chunk.is_none() {
            return Err(McpError::Protocol(format!(
                "{method}: the event stream ended without an answer"
            )));
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn sse_events_are_read_across_chunks() {
        let mut reader = SseReader::default();
        assert!(
            reader
                .feed(b": comment\nevent: message\nid: 1\nda")
                .is_empty()
        );
        let events = reader.feed(b"ta: {\"a\":\r\ndata: 1}\r\n\r\ndata: x\n");
        assert_eq!(events, ["{\"a\":\n1}"]);
        assert_eq!(reader.feed(b"\n"), ["x"]);
        assert!(reader.feed(b"data: cut").is_empty());
        assert!(
            reader.finish().is_none(),
            "an unterminated line is not an event"
        );
        let mut reader = SseReader::default();
        reader.feed(b"data:no-space\n");
        assert_eq!(reader.finish().as_deref(), Some("no-space"));
    }

    #[test]
    fn a_json_answer_is_found_by_its_id() {
        let single = br#"{"jsonrpc":"2.0","id":3,"result":{"tools":[]}}"#;
        assert_eq!(
            answer_in_json(single, 3, "tools/list").unwrap()["result"]["tools"],
            json!([])
        );
        let batch = br#"[{"jsonrpc":"2.0","method":"notifications/message","params":{}},{"jsonrpc":"2.0","id":4,"error":{"code":-32601,"message":"no"}}]"#;
        assert_eq!(
            answer_in_json(batch, 4, "x").unwrap()["error"]["code"],
            -32601
        );
        assert!(answer_in_json(single, 4, "x").is_err());
        assert!(answer_in_json(b"<html>", 1, "x").is_err());
    }

    #[test]
    fn www_authenticate_params() {
        let params = parse_www_authenticate(
            r#"Bearer resource_metadata="https://gw/.well-known/oauth-protected-resource", error="invalid_token", error_description="token expired \"exp\""#,
        );
        assert_eq!(params["error"], "invalid_token");
        assert_eq!(params["error_description"], "token expired \"exp\"");
        assert_eq!(
            params["resource_metadata"],
            "https://gw/.well-known/oauth-protected-resource"
        );
        let params =
            parse_www_authenticate(r#"Bearer error="insufficient_scope", scope="a/b c/d""#);
        assert_eq!(params["scope"], "a/b c/d");
        assert!(parse_www_authenticate("Bearer").is_empty());
        let params = parse_www_authenticate("Bearer realm=gw, error=invalid_token");
        assert_eq!(params["realm"], "gw");
        assert_eq!(params["error"], "invalid_token");
    }

    #[test]
    fn refusals_are_explained_from_the_challenge_and_the_body() {
        let forbidden = Refusal {
            status: 403,
            www_authenticate: Some(
                r#"Bearer error="insufficient_scope", scope="mcp-servers-restricted/execute""#.into(),
            ),
            body: r#"{"error":"insufficient_scope","server":"fininfo","method":"tools/call","tool":"get_stock_aggregates"}"#.into(),
        };
        let lines = forbidden.explain();
        assert_eq!(lines[0], "refused: HTTP 403 Forbidden");
        assert_eq!(lines[1], "reason: insufficient_scope");
        assert_eq!(
            lines[2],
            "not allowed: server fininfo, method tools/call, tool get_stock_aggregates"
        );
        assert_eq!(
            lines[3],
            "scopes that would allow it: mcp-servers-restricted/execute"
        );
        let expired = Refusal {
            status: 401,
            www_authenticate: Some(
                r#"Bearer error="invalid_token", error_description="the token has expired""#.into(),
            ),
            body: r#"{"error":"invalid_token","error_description":"the token has expired"}"#.into(),
        };
        assert_eq!(
            expired.explain()[1],
            "reason: invalid_token: the token has expired"
        );
        let anonymous = Refusal {
            status: 401,
            www_authenticate: Some("Bearer".into()),
            body: String::new(),
        };
        assert_eq!(
            anonymous.explain()[1],
            "reason: no credentials reached the gateway"
        );
    }
}
