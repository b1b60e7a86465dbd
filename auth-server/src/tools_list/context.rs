//! What the check tells the answer filter about one allowed request that holds `tools/list`
//! calls: who the verified caller is, the server, the scopes the decision applied, and the
//! request's ids. The check writes it into its allow answer (an answer header for nginx and
//! Envoy's HTTP ext_authz, `CheckResponse.dynamic_metadata` for gRPC); the gateway hands it back
//! with the upstream's answer. A client never writes it: it travels only between auth-server
//! and the gateway (a client-sent header of that name is dropped before the check and never
//! read back).
//!
//! Wire form: `1.` followed by unpadded base64url of a JSON object, so that it is header-safe
//! whatever characters the subject, the scopes or the ids hold, and at most
//! [`MAX_ENCODED_BYTES`] long.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{IdKey, ListRequest, ReplyIds};

/// The version prefix of the wire form.
const PREFIX: &str = "1.";

/// Longest encoded context. It rides in the allow answer beside the identity headers
/// ([`crate::headers::MAX_IDENTITY_BYTES`]): together they stay within the 32 KiB that nginx
/// reads of the check's answer headers.
pub const MAX_ENCODED_BYTES: usize = 8 * 1024;

/// The filter's input from the check, for one request.
#[derive(Debug, Clone)]
pub struct FilterContext {
    /// The verified caller (`sub`), for the log.
    pub who: String,
    /// The MCP server the request went to.
    pub server: String,
    /// The scopes the decision applied (from the groups claim, or the token's scopes).
    pub scopes: Vec<String>,
    /// The request's calls.
    pub request: ListRequest,
}

/// Why a context cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the tools/list filter context is unreadable: {0}")]
pub struct ContextError(&'static str);

/// The JSON inside the wire form.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire {
    who: String,
    server: String,
    scopes: Vec<String>,
    /// Whether the request was a batch (a refusal then answers with an array).
    batch: bool,
    /// The ids a refusal answers: exactly one for a single call.
    ids: Vec<Value>,
    /// Ids of the calls that are not `tools/list`.
    other: Vec<Value>,
}

impl FilterContext {
    /// The wire form.
    pub fn encode(&self) -> String {
        let (batch, ids) = match &self.request.reply_ids {
            ReplyIds::Single(id) => (false, vec![id.clone()]),
            ReplyIds::Batch(ids) => (true, ids.clone()),
        };
        let mut other: Vec<Value> = self
            .request
            .other_calls
            .iter()
            .map(IdKey::to_value)
            .collect();
        // A stable order: the same request always gives the same text.
        other.sort_by_cached_key(Value::to_string);
        let wire = Wire {
            who: self.who.clone(),
            server: self.server.clone(),
            scopes: self.scopes.clone(),
            batch,
            ids,
            other,
        };
        // Serialising strings, booleans and JSON values cannot fail.
        let json = serde_json::to_vec(&wire).unwrap_or_default();
        let mut text = String::with_capacity(PREFIX.len() + json.len().div_ceil(3) * 4);
        text.push_str(PREFIX);
        URL_SAFE_NO_PAD.encode_string(json, &mut text);
        text
    }

    /// Reads the wire form; refuses anything [`FilterContext::encode`] would not write.
    pub fn decode(text: &str) -> Result<FilterContext, ContextError> {
        if text.len() > MAX_ENCODED_BYTES {
            return Err(ContextError("longer than the bound"));
        }
        let encoded = text
            .strip_prefix(PREFIX)
            .ok_or(ContextError("unknown version"))?;
        let json = URL_SAFE_NO_PAD
            .decode(encoded)
            .map_err(|_| ContextError("not base64url"))?;
        let wire: Wire =
            serde_json::from_slice(&json).map_err(|_| ContextError("not the expected JSON"))?;
        let key = |id: &Value| IdKey::of(id).ok_or(ContextError("an id is not a JSON-RPC id"));
        let other_calls = wire.other.iter().map(key).collect::<Result<_, _>>()?;
        for id in &wire.ids {
            key(id)?;
        }
        let reply_ids = match (wire.batch, <[Value; 1]>::try_from(wire.ids)) {
            (false, Ok([id])) => ReplyIds::Single(id),
            (false, Err(_)) => return Err(ContextError("a single call needs exactly one id")),
            (true, Ok(ids)) => ReplyIds::Batch(ids.into()),
            (true, Err(ids)) => ReplyIds::Batch(ids),
        };
        Ok(FilterContext {
            who: wire.who,
            server: wire.server,
            scopes: wire.scopes,
            request: ListRequest {
                other_calls,
                reply_ids,
            },
        })
    }
}

impl IdKey {
    /// The id as JSON: [`IdKey::of`] of it gives the same key back.
    fn to_value(&self) -> Value {
        match self {
            IdKey::Null => Value::Null,
            IdKey::String(text) => Value::String(text.clone()),
            IdKey::Integer(integer) => i64::try_from(*integer)
                .map(Value::from)
                .or_else(|_| u64::try_from(*integer).map(Value::from))
                // Larger than u64: it came from a whole f64, which holds it exactly.
                .unwrap_or_else(|_| Value::from(*integer as f64)),
            IdKey::Fraction(bits) => Value::from(f64::from_bits(*bits)),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use serde_json::json;

    use super::*;
    use crate::jsonrpc::{Message, Payload};

    fn call(id: Option<Value>, method: &str) -> Message {
        Message::Call {
            id,
            method: method.to_owned(),
            name: None,
        }
    }

    fn context(payload: &Payload) -> FilterContext {
        FilterContext {
            who: "agent é\u{1}".to_owned(),
            server: "fininfo".to_owned(),
            scopes: vec!["a/read".to_owned(), "b execute".to_owned()],
            request: ListRequest::of(payload).expect("a tools/list request"),
        }
    }

    /// What a context says, in a comparable form.
    fn said(context: &FilterContext) -> String {
        let mut other: Vec<String> = context
            .request
            .other_calls
            .iter()
            .map(|key| format!("{key:?}"))
            .collect();
        other.sort();
        format!(
            "{} {} {:?} {:?} {other:?}",
            context.who, context.server, context.scopes, context.request.reply_ids
        )
    }

    #[test]
    fn a_context_reads_back_as_it_was_written_and_is_header_safe() {
        let payloads = [
            Payload::Single(call(Some(json!(7)), "tools/list")),
            Payload::Single(call(None, "tools/list")),
            Payload::Single(call(Some(json!("x\u{2028}\"")), "tools/list")),
            Payload::Batch(vec![
                call(Some(json!(1)), "tools/list"),
                call(Some(json!("two")), "tools/call"),
                call(Some(json!(1.5)), "ping"),
                call(Some(json!(1e30)), "ping"),
                call(Some(json!(u64::MAX)), "ping"),
                call(Some(json!(-3)), "ping"),
                call(Some(Value::Null), "ping"),
                call(None, "notifications/initialized"),
            ]),
        ];
        for payload in &payloads {
            let written = context(payload);
            let text = written.encode();
            assert!(text.starts_with("1."), "{text}");
            assert!(
                text.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)),
                "{text}"
            );
            let read = FilterContext::decode(&text).expect("reads back");
            assert_eq!(said(&read), said(&written));
            assert_eq!(read.encode(), text, "one request, one text");
        }
    }

    #[test]
    fn anything_the_check_would_not_write_is_refused() {
        let encode = |json: &str| format!("1.{}", URL_SAFE_NO_PAD.encode(json));
        let good = r#"{"who":"a","server":"s","scopes":[],"batch":false,"ids":[1],"other":[]}"#;
        assert!(FilterContext::decode(&encode(good)).is_ok());
        for (text, why) in [
            (String::new(), "empty"),
            (good.to_owned(), "not encoded"),
            (format!("2.{}", &encode(good)[2..]), "another version"),
            (format!("{}=", encode(good)), "padding"),
            (
                encode(&good.replace("[1]", "[1,2]")),
                "two ids for one call",
            ),
            (encode(&good.replace("[1]", "[]")), "no id for one call"),
            (encode(&good.replace("[1]", "[[1]]")), "an array as id"),
            (
                encode(&good.replace(r#""other":[]"#, r#""other":[true]"#)),
                "a bool as id",
            ),
            (
                encode(&good.replace(r#""who":"a""#, r#""who":"a","who":"b""#)),
                "a repeated member",
            ),
            (
                encode(&good.replace(r#""who":"a""#, r#""who":"a","admin":true"#)),
                "an unknown member",
            ),
            (
                encode(&good.replace(r#","other":[]"#, "")),
                "a missing member",
            ),
            (format!("1.{}", "A".repeat(MAX_ENCODED_BYTES)), "too long"),
        ] {
            assert!(FilterContext::decode(&text).is_err(), "{why}: {text}");
        }
    }
}
