//! The worst JSON-RPC bodies a caller can send within the body limit: one shape per way a
//! reader could spend more than linear time (many keys at any depth, keys spelt with escapes,
//! long escaped strings, deep nesting, wide batches). Used by the bounded-work test and the
//! criterion benchmarks, so that both measure the same bytes.
#![allow(dead_code)]

use std::fmt::Write as _;

/// The default `AUTH_MAX_BODY_BYTES`.
pub const ONE_MIB: usize = 1024 * 1024;

/// Appends `,"<prefix><n>":0` members while `body` stays within `size` bytes.
fn fill_members(body: &mut String, prefix: &str, size: usize) {
    let mut member = String::new();
    for index in 0usize.. {
        member.clear();
        write!(member, r#","{prefix}{index}":0"#).expect("writing to a String");
        if body.len() + member.len() > size {
            break;
        }
        body.push_str(&member);
    }
}

/// Every shape, named, each about `size` bytes.
pub fn shapes(size: usize) -> Vec<(&'static str, String)> {
    vec![
        ("keys_in_message", keys_in_message(size)),
        ("keys_in_params", keys_in_params(size)),
        ("keys_deep", keys_deep(size)),
        ("escaped_keys", escaped_keys(size)),
        ("escaped_string", escaped_string(size)),
        ("escaped_method", escaped_method(size)),
        ("deep_nesting", deep_nesting(size)),
        ("wide_batch", wide_batch(size)),
    ]
}

/// `{"jsonrpc":"2.0","id":1,"method":"ping","a0":0,"a1":0,…}`: distinct keys in the message.
pub fn keys_in_message(size: usize) -> String {
    let mut body = String::from(r#"{"jsonrpc":"2.0","id":1,"method":"ping""#);
    fill_members(&mut body, "a", size - 1);
    body.push('}');
    body
}

/// A `tools/call` whose `params` holds distinct keys besides `name`.
pub fn keys_in_params(size: usize) -> String {
    let mut body =
        String::from(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t""#);
    fill_members(&mut body, "p", size - 2);
    body.push_str("}}");
    body
}

/// Distinct keys in objects nested inside the arguments (skipped values), 64 levels deep.
pub fn keys_deep(size: usize) -> String {
    let depth = 64;
    let mut body = String::from(
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t","arguments":"#,
    );
    for level in 0..depth {
        write!(body, r#"{{"l{level}":0"#).expect("writing to a String");
        if level + 1 < depth {
            body.push_str(r#","next":"#);
        }
    }
    fill_members(&mut body, "k", size - depth - 2);
    body.push_str(&"}".repeat(depth));
    body.push_str("}}");
    body
}

/// Distinct keys in the message, each spelt with an escape (`"\u0061…"`): each one has to be
/// decoded into a new string before it can be compared.
pub fn escaped_keys(size: usize) -> String {
    let mut body = String::from(r#"{"jsonrpc":"2.0","id":1,"method":"ping""#);
    fill_members(&mut body, r"\u0061", size - 1);
    body.push('}');
    body
}

/// One argument string of `\u0041` escapes filling the body.
pub fn escaped_string(size: usize) -> String {
    let head =
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t","arguments":{"s":""#;
    let tail = r#""}}}"#;
    let repeats = (size - head.len() - tail.len()) / 6;
    format!("{head}{}{tail}", r"\u0041".repeat(repeats))
}

/// A `method` (a kept value) of `\u0041` escapes filling the body.
pub fn escaped_method(size: usize) -> String {
    let head = r#"{"jsonrpc":"2.0","id":1,"method":""#;
    let tail = r#""}"#;
    let repeats = (size - head.len() - tail.len()) / 6;
    format!("{head}{}{tail}", r"\u0041".repeat(repeats))
}

/// Arrays nested as deep as the body allows, inside the arguments.
pub fn deep_nesting(size: usize) -> String {
    let head = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t","arguments":"#;
    let tail = "}}";
    let depth = (size - head.len() - tail.len()) / 2;
    format!("{head}{}{}{tail}", "[".repeat(depth), "]".repeat(depth))
}

/// As many `ping` notifications in one batch as the body holds.
pub fn wide_batch(size: usize) -> String {
    let message = r#"{"jsonrpc":"2.0","method":"ping"}"#;
    let count = (size - 2) / (message.len() + 1);
    format!("[{}]", vec![message; count].join(","))
}
