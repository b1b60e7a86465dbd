//! The JSON-RPC reader: a request body in, typed messages out.
//!
//! Only what the decision needs is kept (method, the tool/prompt name or resource URI, the id);
//! the rest is skipped without being built. The reader is strict where leniency would let a
//! caller show the policy one thing and the MCP server another: a duplicate key in a message or
//! its `params` is refused (parsers disagree on which copy wins), and so is trailing data, a BOM,
//! a non-string method and a `tools/call` without a string tool name. Escapes are decoded before
//! names are compared, so `get\u005fstock` is judged as `get_stock`, as the MCP server reads it.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

/// JSON-RPC error codes used in 400 answers.
pub mod code {
    /// The body is not JSON.
    pub const PARSE_ERROR: i32 = -32700;
    /// JSON, but not a valid JSON-RPC message.
    pub const INVALID_REQUEST: i32 = -32600;
    /// `Mcp-Method` / `Mcp-Name` headers disagree with the body (MCP 2026-07-28).
    pub const HEADER_MISMATCH: i32 = -32020;
}

/// A parsed body: one message or a non-empty batch.
#[derive(Debug, Clone, PartialEq)]
pub enum Payload {
    /// A single JSON-RPC object.
    Single(Message),
    /// A JSON array of messages, at least one.
    Batch(Vec<Message>),
}

impl Payload {
    /// The messages, one for a single object.
    pub fn messages(&self) -> &[Message] {
        match self {
            Payload::Single(message) => std::slice::from_ref(message),
            Payload::Batch(messages) => messages,
        }
    }
}

/// One JSON-RPC message, reduced to what authorization needs.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// A request (with `id`) or a notification (without).
    Call {
        /// The `id`, `None` for a notification.
        id: Option<Value>,
        /// The method, e.g. `tools/call`.
        method: String,
        /// `params.name` (`tools/call`, `prompts/get`) or `params.uri` (`resources/read`).
        name: Option<String>,
    },
    /// A response the client sends to a server-initiated request.
    Response {
        /// The `id` it answers.
        id: Value,
    },
}

impl Message {
    /// The tool a `tools/call` names; `None` for anything else.
    pub fn tool(&self) -> Option<&str> {
        match self {
            Message::Call { method, name, .. } if method == "tools/call" => name.as_deref(),
            _ => None,
        }
    }

    /// The method of a call; `None` for a response.
    pub fn method(&self) -> Option<&str> {
        match self {
            Message::Call { method, .. } => Some(method),
            Message::Response { .. } => None,
        }
    }
}

/// Why a body was refused, as a JSON-RPC error (`id` when it could be read).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct RpcError {
    /// JSON-RPC error code, one of [`code`].
    pub code: i32,
    /// Human-readable reason.
    pub message: String,
    /// The request's `id`, when readable; `null` otherwise.
    pub id: Option<Value>,
}

impl RpcError {
    fn invalid(message: impl Into<String>, id: Option<Value>) -> Self {
        RpcError {
            code: code::INVALID_REQUEST,
            message: message.into(),
            id,
        }
    }
}

/// Longest JSON-RPC method accepted. MCP's methods are a few words; a method is passed on in
/// `X-Method` and written to the decision log, so its size is bounded.
pub const MAX_METHOD_BYTES: usize = 256;
/// Longest tool name accepted in a `tools/call` (MCP suggests at most 128 characters); passed
/// on in `X-Tool-Name` and written to the decision log.
pub const MAX_TOOL_NAME_BYTES: usize = 512;

/// Parses a JSON-RPC body (one message, or a batch of at most `max_batch` messages).
pub fn parse(body: &[u8], max_batch: usize) -> Result<Payload, RpcError> {
    // JSON is UTF-8 (RFC 8259 §8.1). serde_json does not validate the strings it skips, and a
    // skipped string with an overlong `"` (C0 A2) reads as structure to a lenient decoder.
    let body = std::str::from_utf8(body).map_err(|err| RpcError {
        code: code::PARSE_ERROR,
        message: format!("body is not valid UTF-8: {err}"),
        id: None,
    })?;
    let mut deserializer = serde_json::Deserializer::from_str(body);
    let raw = BodySeed { max_batch }
        .deserialize(&mut deserializer)
        .and_then(|raw| {
            deserializer.end()?;
            Ok(raw)
        });
    let raw = raw.map_err(|err| {
        let code = match err.classify() {
            serde_json::error::Category::Data => code::INVALID_REQUEST,
            _ => code::PARSE_ERROR,
        };
        let message = match code {
            code::PARSE_ERROR => format!("body is not valid JSON: {err}"),
            _ => format!("invalid JSON-RPC message: {err}"),
        };
        RpcError {
            code,
            message,
            id: None,
        }
    })?;
    match raw {
        RawBody::Single(raw) => raw.into_message().map(Payload::Single),
        RawBody::Batch(raws) if raws.is_empty() => Err(RpcError::invalid("empty batch", None)),
        RawBody::Batch(raws) => raws
            .into_iter()
            .map(RawMessage::into_message)
            .collect::<Result<Vec<_>, _>>()
            .map(Payload::Batch),
    }
}

enum RawBody {
    Single(RawMessage),
    Batch(Vec<RawMessage>),
}

/// The fields of one message as they appear, before the JSON-RPC rules are applied.
#[derive(Default)]
struct RawMessage {
    jsonrpc: Option<Value>,
    id: Option<Value>,
    method: Option<Value>,
    params: Option<RawParams>,
    has_result_or_error: bool,
}

#[derive(Default)]
struct RawParams {
    is_object: bool,
    name: Option<Value>,
    uri: Option<Value>,
}

impl RawMessage {
    fn into_message(self) -> Result<Message, RpcError> {
        let id = self.id;
        if self.jsonrpc.as_ref().and_then(Value::as_str) != Some("2.0") {
            return Err(RpcError::invalid(r#"`jsonrpc` must be "2.0""#, id));
        }
        if let Some(id_value) = &id
            && !(id_value.is_string() || id_value.is_number() || id_value.is_null())
        {
            return Err(RpcError::invalid(
                "`id` must be a string, a number or null",
                None,
            ));
        }
        let Some(method) = self.method else {
            return match id {
                Some(id) if self.has_result_or_error => Ok(Message::Response { id }),
                _ => Err(RpcError::invalid(
                    "a message needs `method`, or `id` with `result`/`error`",
                    id,
                )),
            };
        };
        if self.has_result_or_error {
            return Err(RpcError::invalid(
                "a message cannot have both `method` and `result`/`error`",
                id,
            ));
        }
        let Value::String(method) = method else {
            return Err(RpcError::invalid("`method` must be a string", id));
        };
        if let Err(problem) = header_safe_name(&method, MAX_METHOD_BYTES) {
            return Err(RpcError::invalid(format!("`method` {problem}"), id));
        }
        let params = self.params.unwrap_or_default();
        let name_field = match method.as_str() {
            "resources/read" => params.uri,
            _ => params.name,
        };
        let name = match name_field {
            Some(Value::String(name)) => Some(name),
            _ => None,
        };
        if method == "tools/call" {
            let Some(tool) = name.as_deref().filter(|_| params.is_object) else {
                return Err(RpcError::invalid(
                    "`tools/call` needs a string `params.name`",
                    id,
                ));
            };
            if let Err(problem) = header_safe_name(tool, MAX_TOOL_NAME_BYTES) {
                return Err(RpcError::invalid(format!("the tool name {problem}"), id));
            }
        }
        Ok(Message::Call { id, method, name })
    }
}

/// A method or tool name is passed on in a header and logged: not empty, at most `limit` bytes,
/// no control characters.
fn header_safe_name(name: &str, limit: usize) -> Result<(), String> {
    if name.is_empty() {
        Err("is empty".to_owned())
    } else if name.len() > limit {
        Err(format!("is longer than {limit} bytes"))
    } else if name.chars().any(char::is_control) {
        Err("has a control character".to_owned())
    } else {
        Ok(())
    }
}

/// The keys of one object read so far, to refuse a second occurrence of any of them. A few keys
/// (a JSON-RPC message has four or five) are compared one by one, which costs less than
/// hashing; past [`SeenKeys::FEW`] they move into a hash set: comparing each key with every
/// earlier one is quadratic, and a 1 MiB body holds ~130,000 keys (seconds of work per check
/// for anyone with a token).
#[derive(Default)]
struct SeenKeys<'de> {
    few: Vec<Cow<'de, str>>,
    many: Option<HashSet<Cow<'de, str>>>,
}

impl<'de> SeenKeys<'de> {
    const FEW: usize = 16;

    /// Remembers `key`; refuses it when the object had it already. (Cloning a borrowed key is
    /// free; only keys spelt with escapes were copied when read.)
    fn first_time<E: de::Error>(&mut self, key: &str, owned: Cow<'de, str>) -> Result<(), E> {
        let first = match &mut self.many {
            Some(many) => many.insert(owned),
            None if self.few.iter().any(|seen| seen.as_ref() == key) => false,
            None if self.few.len() < Self::FEW => {
                self.few.push(owned);
                true
            }
            None => {
                let mut many: HashSet<Cow<'de, str>> = self.few.drain(..).collect();
                many.insert(owned);
                self.many = Some(many);
                true
            }
        };
        if first {
            Ok(())
        } else {
            Err(E::custom(format!("duplicate key `{}`", shown(key))))
        }
    }
}

/// At most 64 characters of a name from the body, for a message.
fn shown(name: &str) -> String {
    match name.char_indices().nth(64) {
        Some((end, _)) => format!("{}…", &name[..end]),
        None => name.to_owned(),
    }
}

/// An object key, borrowed from the body unless it holds escapes (serde's own `Cow` impl always
/// copies).
struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Cow<'de, str>;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_borrowed_str<E: de::Error>(self, key: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(key))
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(key.to_owned()))
    }
}

struct BodySeed {
    max_batch: usize,
}

impl<'de> DeserializeSeed<'de> for BodySeed {
    type Value = RawBody;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<RawBody, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for BodySeed {
    type Value = RawBody;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON-RPC object or a batch array")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawBody, A::Error> {
        MessageVisitor.visit_map(map).map(RawBody::Single)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawBody, A::Error> {
        let mut messages = Vec::new();
        while let Some(message) = seq.next_element_seed(MessageVisitor)? {
            if messages.len() == self.max_batch {
                return Err(de::Error::custom(format!(
                    "a batch may hold at most {} messages (AUTH_MAX_BATCH)",
                    self.max_batch
                )));
            }
            messages.push(message);
        }
        Ok(RawBody::Batch(messages))
    }
}

struct MessageVisitor;

impl<'de> DeserializeSeed<'de> for MessageVisitor {
    type Value = RawMessage;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<RawMessage, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for MessageVisitor {
    type Value = RawMessage;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON-RPC message object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawMessage, A::Error> {
        let mut raw = RawMessage::default();
        let mut seen = SeenKeys::default();
        while let Some(key) = map.next_key_seed(KeySeed)? {
            seen.first_time(&key, key.clone())?;
            match key.as_ref() {
                "jsonrpc" => raw.jsonrpc = Some(map.next_value()?),
                "id" => raw.id = Some(map.next_value()?),
                "method" => raw.method = Some(map.next_value()?),
                "params" => raw.params = Some(map.next_value_seed(ParamsVisitor)?),
                "result" | "error" => {
                    map.next_value::<IgnoredAny>()?;
                    raw.has_result_or_error = true;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(raw)
    }
}

struct ParamsVisitor;

impl<'de> DeserializeSeed<'de> for ParamsVisitor {
    type Value = RawParams;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<RawParams, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ParamsVisitor {
    type Value = RawParams;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("`params` as an object or an array")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawParams, A::Error> {
        let mut params = RawParams {
            is_object: true,
            ..RawParams::default()
        };
        let mut seen = SeenKeys::default();
        while let Some(key) = map.next_key_seed(KeySeed)? {
            seen.first_time(&key, key.clone())?;
            match key.as_ref() {
                "name" => params.name = Some(map.next_value()?),
                "uri" => params.uri = Some(map.next_value()?),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(params)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawParams, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(RawParams::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const MAX_BATCH: usize = 100;

    fn call(body: &str) -> Message {
        match parse(body.as_bytes(), MAX_BATCH) {
            Ok(Payload::Single(message)) => message,
            other => panic!("expected a single message, got {other:?}"),
        }
    }

    fn refused(body: &str) -> RpcError {
        parse(body.as_bytes(), MAX_BATCH).expect_err("body must be refused")
    }

    #[test]
    fn tools_call_yields_method_and_tool() {
        let message = call(
            r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"get_stock_aggregates","arguments":{"x":[1,{"y":2}]}}}"#,
        );
        assert_eq!(message.method(), Some("tools/call"));
        assert_eq!(message.tool(), Some("get_stock_aggregates"));
    }

    #[test]
    fn notification_has_no_id() {
        let message = call(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#);
        assert_eq!(
            message,
            Message::Call {
                id: None,
                method: "notifications/initialized".into(),
                name: None
            }
        );
    }

    #[test]
    fn response_from_the_client_is_recognised() {
        let message = call(r#"{"jsonrpc":"2.0","id":"s-1","result":{}}"#);
        assert_eq!(message, Message::Response { id: json!("s-1") });
    }

    #[test]
    fn resources_read_takes_its_name_from_uri() {
        let message = call(
            r#"{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"file:///a"}}"#,
        );
        assert_eq!(
            message,
            Message::Call {
                id: Some(json!(1)),
                method: "resources/read".into(),
                name: Some("file:///a".into())
            }
        );
    }

    #[test]
    fn batch_keeps_every_element_in_order() {
        let body = r#"[{"jsonrpc":"2.0","id":1,"method":"tools/list"},{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"t"}}]"#;
        let Ok(Payload::Batch(messages)) = parse(body.as_bytes(), MAX_BATCH) else {
            panic!("batch expected")
        };
        assert_eq!(messages.len(), 2);
        assert_eq!(messages[1].tool(), Some("t"));
    }

    #[test]
    fn empty_batch_is_invalid() {
        assert_eq!(refused("[]").code, code::INVALID_REQUEST);
    }

    #[test]
    fn not_json_is_a_parse_error() {
        assert_eq!(refused("{not json").code, code::PARSE_ERROR);
        assert_eq!(refused("").code, code::PARSE_ERROR);
    }

    #[test]
    fn trailing_garbage_and_bom_are_refused() {
        assert_eq!(
            refused(r#"{"jsonrpc":"2.0","method":"ping","id":1} {}"#).code,
            code::PARSE_ERROR
        );
        assert!(
            parse(
                "\u{feff}{\"jsonrpc\":\"2.0\",\"method\":\"ping\",\"id\":1}".as_bytes(),
                MAX_BATCH
            )
            .is_err()
        );
    }

    #[test]
    fn duplicate_keys_in_message_or_params_are_refused() {
        let dup_method = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","method":"tools/call","params":{"name":"x"}}"#;
        assert_eq!(refused(dup_method).code, code::INVALID_REQUEST);
        let dup_name = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"ok","name":"evil"}}"#;
        assert!(refused(dup_name).message.contains("duplicate key `name`"));
        let dup_params = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a"},"params":{"name":"b"}}"#;
        assert_eq!(refused(dup_params).code, code::INVALID_REQUEST);
        // The same key spelt with an escape is still the same key.
        let escaped = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"ok","na\u006de":"evil"}}"#;
        assert_eq!(refused(escaped).code, code::INVALID_REQUEST);
    }

    #[test]
    fn duplicate_keys_are_found_among_few_keys_and_among_many() {
        for count in [3, SeenKeys::FEW, SeenKeys::FEW + 1, 1000] {
            let mut body = String::from(r#"{"jsonrpc":"2.0","id":1,"method":"ping""#);
            for index in 0..count {
                body.push_str(&format!(r#","k{index}":0"#));
            }
            assert!(
                parse(format!("{body}}}").as_bytes(), MAX_BATCH).is_ok(),
                "{count} keys"
            );
            // The first key again, and the last.
            for again in ["k0".to_owned(), format!("k{}", count - 1)] {
                let err = refused(&format!(r#"{body},"{again}":1}}"#));
                assert!(
                    err.message.contains("duplicate key"),
                    "{count} keys, {again}"
                );
            }
        }
    }

    #[test]
    fn escaped_tool_name_is_judged_decoded() {
        let message = call(
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get\u005fstock_aggregates"}}"#,
        );
        assert_eq!(message.tool(), Some("get_stock_aggregates"));
    }

    #[test]
    fn non_string_method_is_invalid() {
        for method in ["1", "[\"tools/call\"]", "null", "{}"] {
            let body = format!(r#"{{"jsonrpc":"2.0","id":1,"method":{method}}}"#);
            assert_eq!(refused(&body).code, code::INVALID_REQUEST, "{body}");
        }
    }

    #[test]
    fn tools_call_without_string_name_is_invalid() {
        for params in [
            r#""params":{}"#,
            r#""params":{"name":5}"#,
            r#""params":["x"]"#,
            r#""x":1"#,
        ] {
            let body = format!(r#"{{"jsonrpc":"2.0","id":3,"method":"tools/call",{params}}}"#);
            let err = refused(&body);
            assert_eq!(
                (err.code, err.id),
                (code::INVALID_REQUEST, Some(json!(3))),
                "{body}"
            );
        }
    }

    #[test]
    fn wrong_or_missing_jsonrpc_version_is_invalid() {
        assert_eq!(
            refused(r#"{"id":1,"method":"ping"}"#).code,
            code::INVALID_REQUEST
        );
        assert_eq!(
            refused(r#"{"jsonrpc":"1.0","id":1,"method":"ping"}"#).code,
            code::INVALID_REQUEST
        );
    }

    #[test]
    fn batch_with_one_bad_element_is_refused_whole() {
        let body = r#"[{"jsonrpc":"2.0","id":1,"method":"tools/list"},{"jsonrpc":"2.0","id":2,"method":7}]"#;
        assert_eq!(refused(body).code, code::INVALID_REQUEST);
        assert_eq!(
            refused(r#"[{"jsonrpc":"2.0","id":1,"method":"ping"}, 5]"#).code,
            code::INVALID_REQUEST
        );
        assert_eq!(
            refused(r#"[[{"jsonrpc":"2.0","id":1,"method":"ping"}]]"#).code,
            code::INVALID_REQUEST
        );
    }

    #[test]
    fn scalar_body_is_invalid() {
        assert_eq!(refused("42").code, code::INVALID_REQUEST);
        assert_eq!(refused("\"tools/call\"").code, code::INVALID_REQUEST);
    }

    #[test]
    fn deep_nesting_neither_overflows_the_stack_nor_hides_the_tool() {
        let depth = 100_000;
        let deep = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        let in_arguments = format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"t","arguments":{deep}}}}}"#
        );
        // Skipped values are walked without recursion: the tool is still read.
        assert_eq!(call(&in_arguments).tool(), Some("t"));
        // Values that are kept (the id) hit serde_json's recursion limit: a parse error.
        let in_id = format!(r#"{{"jsonrpc":"2.0","id":{deep},"method":"ping"}}"#);
        assert_eq!(refused(&in_id).code, code::PARSE_ERROR);
    }

    #[test]
    fn response_and_method_together_are_invalid() {
        assert_eq!(
            refused(r#"{"jsonrpc":"2.0","id":1,"method":"ping","result":{}}"#).code,
            code::INVALID_REQUEST
        );
        assert_eq!(
            refused(r#"{"jsonrpc":"2.0","result":{}}"#).code,
            code::INVALID_REQUEST
        );
    }

    #[test]
    fn a_batch_over_the_limit_is_refused_with_the_limit_named() {
        let message = r#"{"jsonrpc":"2.0","method":"ping"}"#;
        let batch = |count: usize| format!("[{}]", vec![message; count].join(","));
        assert!(parse(batch(3).as_bytes(), 3).is_ok());
        let err = parse(batch(4).as_bytes(), 3).expect_err("over the limit");
        assert_eq!(err.code, code::INVALID_REQUEST);
        assert!(
            err.message.contains("at most 3 messages"),
            "{}",
            err.message
        );
    }

    #[test]
    fn methods_and_tool_names_that_cannot_travel_in_a_header_are_refused() {
        let long_method = "m".repeat(MAX_METHOD_BYTES + 1);
        let long_tool = "t".repeat(MAX_TOOL_NAME_BYTES + 1);
        for body in [
            format!(r#"{{"jsonrpc":"2.0","id":1,"method":"{long_method}"}}"#),
            r#"{"jsonrpc":"2.0","id":1,"method":""}"#.to_owned(),
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/list\r\nx-user: admin"}"#.to_owned(),
            format!(
                r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"{long_tool}"}}}}"#
            ),
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a\u000db"}}"#
                .to_owned(),
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":""}}"#.to_owned(),
        ] {
            let err = refused(&body);
            assert_eq!(
                (err.code, err.id),
                (code::INVALID_REQUEST, Some(json!(1))),
                "{body}"
            );
        }
        let longest = format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"{}"}}}}"#,
            "t".repeat(MAX_TOOL_NAME_BYTES)
        );
        assert_eq!(
            call(&longest).tool().map(str::len),
            Some(MAX_TOOL_NAME_BYTES)
        );
    }
}
