//! One JSON text (an `application/json` body, or the data of one event): its tools/list
//! results found and rewritten in place.
//!
//! Every value the rewriter does not change is held as a `&RawValue`, a slice of the text, so it
//! leaves as it came. The output is the text with a few splices: the run of tool objects in each
//! rewritten `tools` array, each `cacheScope` value, and a `cacheScope` member added before the
//! closing brace of a result that had none.

use std::borrow::Cow;
use std::fmt;
use std::ops::Range;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use super::{ListRequest, Reason, ToolCounts, ToolVisibility};

const PRIVATE: &str = r#""private""#;
const ADD_PRIVATE: &str = r#","cacheScope":"private""#;

/// The text with its tools/list results filtered; `None` when it holds none.
pub(super) fn rewrite(
    text: &str,
    request: &ListRequest,
    visible: &impl ToolVisibility,
) -> Result<Option<(String, ToolCounts)>, Reason> {
    let mut splices = Vec::new();
    let mut counts = ToolCounts::default();
    for message in read_messages(text)? {
        let Some(result) = message.result else {
            continue;
        };
        if request.answers_other_call(message.id.map(RawValue::get)) {
            continue;
        }
        let Some(list) = read_list_result(result)? else {
            continue;
        };
        counts.results += 1;
        filter_list(text, result, &list, visible, &mut counts, &mut splices)?;
    }
    Ok((counts.results > 0).then(|| (apply(text, splices), counts)))
}

/// Whether the text holds a response carrying `result.tools`, whatever its id.
pub(super) fn lists_tools(text: &str) -> Result<bool, Reason> {
    for message in read_messages(text)? {
        if let Some(result) = message.result
            && read_list_result(result)?.is_some()
        {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The members of one message the filter reads.
struct MessageFields<'a> {
    id: Option<&'a RawValue>,
    result: Option<&'a RawValue>,
    duplicate: Option<&'static str>,
}

/// The members of a `result` object that carries `tools`.
struct ListResult<'a> {
    tools: Vec<&'a RawValue>,
    cache_scope: Option<&'a RawValue>,
    /// `resultType: "input_required"` (MRTR): an interim result carries no caching hints.
    interim: bool,
}

/// The messages of a body: one object, or each element of a batch.
fn read_messages(text: &str) -> Result<Vec<MessageFields<'_>>, Reason> {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let messages = BodySeed
        .deserialize(&mut deserializer)
        .and_then(|messages| deserializer.end().map(|()| messages))
        .map_err(json_error)?;
    match messages.iter().find_map(|message| message.duplicate) {
        Some(key) => Err(Reason::DuplicateKey(key)),
        None => Ok(messages),
    }
}

/// The `result`'s list, when it is an object with a `tools` member.
fn read_list_result(result: &RawValue) -> Result<Option<ListResult<'_>>, Reason> {
    if !result.get().starts_with('{') {
        return Ok(None);
    }
    let fields = serde_json::from_str::<ResultFields<'_>>(result.get()).map_err(json_error)?;
    if let Some(key) = fields.duplicate {
        return Err(Reason::DuplicateKey(key));
    }
    let tools = match fields.tools {
        None => return Ok(None),
        Some(ToolsValue::NotArray) => return Err(Reason::ToolsNotArray),
        Some(ToolsValue::Array(tools)) => tools,
    };
    let interim = match fields.result_type {
        Some(raw) => serde_json::from_str::<Cow<'_, str>>(raw.get())
            .is_ok_and(|result_type| result_type == "input_required"),
        None => false,
    };
    Ok(Some(ListResult {
        tools,
        cache_scope: fields.cache_scope,
        interim,
    }))
}

/// Decides each tool of `list` and records the splices that rewrite it in `text`.
fn filter_list<'a>(
    text: &str,
    result: &RawValue,
    list: &ListResult<'a>,
    visible: &impl ToolVisibility,
    counts: &mut ToolCounts,
    splices: &mut Vec<Splice<'a>>,
) -> Result<(), Reason> {
    let mut kept = Vec::with_capacity(list.tools.len());
    for (index, tool) in list.tools.iter().enumerate() {
        if visible.is_visible(&tool_name(tool).ok_or(Reason::ToolWithoutName(index))?) {
            kept.push(tool.get());
        } else {
            counts.hidden += 1;
        }
    }
    counts.listed += kept.len();
    if let (Some(first), Some(last)) = (list.tools.first(), list.tools.last()) {
        let range = span(text, first.get()).start..span(text, last.get()).end;
        splices.push(Splice::Tools { range, kept });
    }
    match list.cache_scope {
        Some(cache_scope) => splices.push(Splice::Text {
            range: span(text, cache_scope.get()),
            with: PRIVATE,
        }),
        None if !list.interim => {
            // Before the result's closing brace: it has a member (`tools`), so a comma fits.
            let close = span(text, result.get()).end - 1;
            splices.push(Splice::Text {
                range: close..close,
                with: ADD_PRIVATE,
            });
        }
        None => {}
    }
    Ok(())
}

/// A tool's `name`, escapes decoded; `None` unless the tool is an object with exactly one
/// string `name`.
fn tool_name(tool: &RawValue) -> Option<Cow<'_, str>> {
    if !tool.get().starts_with('{') {
        return None;
    }
    match serde_json::from_str::<ToolFields<'_>>(tool.get()) {
        Ok(ToolFields {
            name: Some(Some(name)),
            duplicate: false,
        }) => Some(name),
        _ => None,
    }
}

/// A change to the text: `range` replaced.
enum Splice<'a> {
    /// The run of tool objects in a `tools` array, replaced by the kept ones, comma-separated.
    Tools {
        range: Range<usize>,
        kept: Vec<&'a str>,
    },
    /// A fixed text.
    Text {
        range: Range<usize>,
        with: &'static str,
    },
}

impl Splice<'_> {
    fn range(&self) -> &Range<usize> {
        match self {
            Splice::Tools { range, .. } | Splice::Text { range, .. } => range,
        }
    }
}

fn apply(text: &str, mut splices: Vec<Splice<'_>>) -> String {
    splices.sort_by_key(|splice| splice.range().start);
    let mut out = String::with_capacity(text.len() + ADD_PRIVATE.len() * splices.len());
    let mut copied = 0;
    for splice in &splices {
        let range = splice.range();
        out.push_str(&text[copied..range.start]);
        match splice {
            Splice::Tools { kept, .. } => {
                for (index, tool) in kept.iter().enumerate() {
                    if index > 0 {
                        out.push(',');
                    }
                    out.push_str(tool);
                }
            }
            Splice::Text { with, .. } => out.push_str(with),
        }
        copied = range.end;
    }
    out.push_str(&text[copied..]);
    out
}

/// Where `part`, a slice of `text` (every `&RawValue` here borrows from the text it was parsed
/// from, itself a slice of the body), lies in `text`.
fn span(text: &str, part: &str) -> Range<usize> {
    let start = (part.as_ptr() as usize).wrapping_sub(text.as_ptr() as usize);
    debug_assert!(
        start + part.len() <= text.len(),
        "a raw value outside the text it was read from"
    );
    start..start + part.len()
}

fn json_error(error: serde_json::Error) -> Reason {
    match error.classify() {
        // serde's text for a value of the wrong kind quotes it (`invalid type: string "..."`),
        // and the reason reaches the client: a hidden tool's name must not ride along.
        serde_json::error::Category::Data => Reason::NotJsonRpc(format!(
            "a value of the wrong kind at line {} column {}",
            error.line(),
            error.column()
        )),
        _ => Reason::NotJson(error.to_string()),
    }
}

/// The `Visitor` methods for objects and scalars, for a seed that reads any JSON value but wants
/// neither: the value is skipped and `$other` returned.
macro_rules! other_kinds_are {
    ($other:expr) => {
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            Ok($other)
        }
        fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
            Ok($other)
        }
        fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
            Ok($other)
        }
        fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
            Ok($other)
        }
        fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
            Ok($other)
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok($other)
        }
    };
}

/// A map key matched against known names without allocating: its index, `None` for others.
struct Key(&'static [&'static str]);

impl<'de> DeserializeSeed<'de> for Key {
    type Value = Option<usize>;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl Visitor<'_> for Key {
    type Value = Option<usize>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a member name")
    }
    fn visit_str<E>(self, key: &str) -> Result<Self::Value, E> {
        Ok(self.0.iter().position(|known| *known == key))
    }
}

/// Stores `value` in `slot`, or records `key` as repeated.
fn store<T>(
    slot: &mut Option<T>,
    value: T,
    duplicate: &mut Option<&'static str>,
    key: &'static str,
) {
    if slot.replace(value).is_some() {
        duplicate.get_or_insert(key);
    }
}

struct BodySeed;

impl<'de> DeserializeSeed<'de> for BodySeed {
    type Value = Vec<MessageFields<'de>>;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for BodySeed {
    type Value = Vec<MessageFields<'de>>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON-RPC message object or a batch array")
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        MessageSeed.visit_map(map).map(|message| vec![message])
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut messages = Vec::new();
        while let Some(message) = seq.next_element_seed(MessageSeed)? {
            messages.push(message);
        }
        Ok(messages)
    }
}

struct MessageSeed;

impl<'de> DeserializeSeed<'de> for MessageSeed {
    type Value = MessageFields<'de>;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for MessageSeed {
    type Value = MessageFields<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON-RPC message object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        const KEYS: &[&str] = &["id", "result"];
        let mut message = MessageFields {
            id: None,
            result: None,
            duplicate: None,
        };
        while let Some(key) = map.next_key_seed(Key(KEYS))? {
            match key {
                Some(0) => store(
                    &mut message.id,
                    map.next_value()?,
                    &mut message.duplicate,
                    "id",
                ),
                Some(1) => store(
                    &mut message.result,
                    map.next_value()?,
                    &mut message.duplicate,
                    "result",
                ),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(message)
    }
}

struct ResultFields<'a> {
    tools: Option<ToolsValue<'a>>,
    cache_scope: Option<&'a RawValue>,
    result_type: Option<&'a RawValue>,
    duplicate: Option<&'static str>,
}

impl<'de> serde::Deserialize<'de> for ResultFields<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(ResultVisitor)
    }
}

struct ResultVisitor;

impl<'de> Visitor<'de> for ResultVisitor {
    type Value = ResultFields<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a result object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        const KEYS: &[&str] = &["tools", "cacheScope", "resultType"];
        let mut fields = ResultFields {
            tools: None,
            cache_scope: None,
            result_type: None,
            duplicate: None,
        };
        while let Some(key) = map.next_key_seed(Key(KEYS))? {
            let duplicate = &mut fields.duplicate;
            match key {
                Some(0) => store(
                    &mut fields.tools,
                    map.next_value_seed(ToolsSeed)?,
                    duplicate,
                    "tools",
                ),
                Some(1) => store(
                    &mut fields.cache_scope,
                    map.next_value()?,
                    duplicate,
                    "cacheScope",
                ),
                Some(2) => store(
                    &mut fields.result_type,
                    map.next_value()?,
                    duplicate,
                    "resultType",
                ),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(fields)
    }
}

/// `result.tools`: each element raw, or the fact that it is not an array.
enum ToolsValue<'a> {
    Array(Vec<&'a RawValue>),
    NotArray,
}

struct ToolsSeed;

impl<'de> DeserializeSeed<'de> for ToolsSeed {
    type Value = ToolsValue<'de>;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ToolsSeed {
    type Value = ToolsValue<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut tools = Vec::new();
        while let Some(tool) = seq.next_element()? {
            tools.push(tool);
        }
        Ok(ToolsValue::Array(tools))
    }
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(ToolsValue::NotArray)
    }
    other_kinds_are!(ToolsValue::NotArray);
}

/// A tool object's `name`: `Some(None)` when present but not a string.
struct ToolFields<'a> {
    name: Option<Option<Cow<'a, str>>>,
    duplicate: bool,
}

impl<'de> serde::Deserialize<'de> for ToolFields<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(ToolVisitor)
    }
}

struct ToolVisitor;

impl<'de> Visitor<'de> for ToolVisitor {
    type Value = ToolFields<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a tool object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut fields = ToolFields {
            name: None,
            duplicate: false,
        };
        while let Some(key) = map.next_key_seed(Key(&["name"]))? {
            match key {
                Some(_) => {
                    let name = map.next_value_seed(NameSeed)?;
                    fields.duplicate |= fields.name.replace(name).is_some();
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(fields)
    }
}

/// A string, borrowed from the text when it has no escape; `None` for any other value.
struct NameSeed;

impl<'de> DeserializeSeed<'de> for NameSeed {
    type Value = Option<Cow<'de, str>>;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for NameSeed {
    type Value = Option<Cow<'de, str>>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_borrowed_str<E>(self, name: &'de str) -> Result<Self::Value, E> {
        Ok(Some(Cow::Borrowed(name)))
    }
    fn visit_str<E>(self, name: &str) -> Result<Self::Value, E> {
        Ok(Some(Cow::Owned(name.to_owned())))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }
    other_kinds_are!(None);
}
