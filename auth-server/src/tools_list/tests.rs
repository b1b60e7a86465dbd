//! The filter's behaviour, one table or test per property. Outputs are re-read by readers
//! independent of the module (serde_json's `Value`, and a line splitter written here from the
//! WHATWG rules) to show that no hidden tool is left.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::{Value, json};

use super::*;
use crate::jsonrpc::{Message, Payload};

/// Visible: tools whose name starts with `get_`. Hidden: every other.
fn visible(name: &str) -> bool {
    name.starts_with("get_")
}

/// A request body as the JSON-RPC reader hands it on (built here, so that these tests do not
/// depend on the reader's own signature and limits).
fn payload(body: &str) -> Payload {
    let message = |value: &Value| match value.get("method") {
        Some(method) => Message::Call {
            id: value.get("id").cloned(),
            method: method.as_str().unwrap().to_owned(),
            name: value
                .pointer("/params/name")
                .and_then(Value::as_str)
                .map(str::to_owned),
        },
        None => Message::Response {
            id: value["id"].clone(),
        },
    };
    match serde_json::from_str::<Value>(body).unwrap() {
        Value::Array(messages) => Payload::Batch(messages.iter().map(message).collect()),
        single => Payload::Single(message(&single)),
    }
}

fn request(body: &str) -> ListRequest {
    ListRequest::of(&payload(body)).expect("a tools/list request")
}

fn list_request() -> ListRequest {
    request(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#)
}

fn answer<'a>(status: u16, content_type: &'a str, body: &'a str) -> UpstreamAnswer<'a> {
    UpstreamAnswer {
        status,
        content_type: Some(content_type),
        content_encoding: None,
        body: body.as_bytes(),
    }
}

fn run(answer: &UpstreamAnswer<'_>, request: &ListRequest) -> Result<Filtered, FilterError> {
    filter(answer, request, &visible, &Limits::default())
}

/// The rewritten body and counts of a 200 answer.
fn rewritten(content_type: &str, body: &str, request: &ListRequest) -> (String, ToolCounts) {
    match run(&answer(200, content_type, body), request) {
        Ok(Filtered::Rewritten {
            body,
            tools,
            media_type,
        }) => {
            assert_eq!(media_type.as_str(), content_type.split(';').next().unwrap());
            (String::from_utf8(body).unwrap(), tools)
        }
        other => panic!("expected a rewrite of {body:?}, got {other:?}"),
    }
}

fn json_rewrite(body: &str) -> String {
    rewritten("application/json", body, &list_request()).0
}

fn reason(answer: &UpstreamAnswer<'_>) -> Reason {
    run(answer, &list_request())
        .expect_err("the answer must be withheld")
        .reason
}

fn list_answer(id: Value, tools: Value) -> String {
    json!({"jsonrpc": "2.0", "id": id, "result": {"tools": tools}}).to_string()
}

/// Names of the tools listed by every response in a JSON value (a message or a batch).
fn listed_names(message: &Value) -> Vec<String> {
    let messages = match message {
        Value::Array(messages) => messages.clone(),
        other => vec![other.clone()],
    };
    messages
        .iter()
        .filter_map(|message| message.pointer("/result/tools")?.as_array().cloned())
        .flatten()
        .map(|tool| tool["name"].as_str().unwrap().to_owned())
        .collect()
}

/// A reference event-stream reader, independent of the module's: each event's data, the last
/// event included even without its blank line.
fn sse_data(stream: &str) -> Vec<String> {
    let stream = stream.strip_prefix('\u{feff}').unwrap_or(stream);
    let normalised = stream.replace("\r\n", "\n").replace('\r', "\n");
    let mut events = Vec::new();
    let mut data: Vec<&str> = Vec::new();
    for line in normalised.split('\n') {
        if line.is_empty() {
            if !data.is_empty() {
                events.push(data.join("\n"));
                data.clear();
            }
            continue;
        }
        let (name, value) = match line.split_once(':') {
            Some((name, value)) => (name, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        if name == "data" {
            data.push(value);
        }
    }
    if !data.is_empty() {
        events.push(data.join("\n"));
    }
    events
}

fn tool(name: &str) -> Value {
    json!({"name": name, "description": format!("the {name} tool")})
}

// ---- application/json ----

#[test]
fn hidden_tools_are_removed_and_kept_ones_stay_byte_for_byte() {
    let body = r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[ {"name":"get_a", "inputSchema":{"type":"object","x":1.50}} ,{"name":"delete_all"},{"description":"é\u00e9","name":"get_b"}],"ttlMs":300000}}"#;
    assert_eq!(
        json_rewrite(body),
        r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[ {"name":"get_a", "inputSchema":{"type":"object","x":1.50}},{"description":"é\u00e9","name":"get_b"}],"ttlMs":300000,"cacheScope":"private"}}"#
    );
}

#[test]
fn every_other_member_of_the_result_keeps_its_bytes() {
    // Numbers past f64 precision, unknown members, `_meta`, the cursor and the TTL, spacing.
    let body = r#"{"id":1,"jsonrpc":"2.0","result":{ "resultType" : "complete", "_meta":{"big":123456789012345678901234567890,"tiny":1e-400,"exact":0.1000000000000000055511151231257827},"tools":[{"name":"delete_all"}], "nextCursor":"c\u002f2", "ttlMs":300000, "x-unknown":[1.0,{"a":null}] , "cacheScope" : "public" }}"#;
    let expected = r#"{"id":1,"jsonrpc":"2.0","result":{ "resultType" : "complete", "_meta":{"big":123456789012345678901234567890,"tiny":1e-400,"exact":0.1000000000000000055511151231257827},"tools":[], "nextCursor":"c\u002f2", "ttlMs":300000, "x-unknown":[1.0,{"a":null}] , "cacheScope" : "private" }}"#;
    assert_eq!(json_rewrite(body), expected);
}

#[test]
fn cache_scope_becomes_private_whatever_it_was() {
    for (result, expected) in [
        // Public: replaced.
        (
            r#"{"tools":[],"cacheScope":"public"}"#,
            r#"{"tools":[],"cacheScope":"private"}"#,
        ),
        // Absent (servers before 2026-07-28): added.
        (
            r#"{"tools":[] }"#,
            r#"{"tools":[] ,"cacheScope":"private"}"#,
        ),
        // Not a string: replaced.
        (
            r#"{"cacheScope":{"odd":true},"tools":[]}"#,
            r#"{"cacheScope":"private","tools":[]}"#,
        ),
        // An interim MRTR result carries no caching hints: none added...
        (
            r#"{"resultType":"input_required","tools":[]}"#,
            r#"{"resultType":"input_required","tools":[]}"#,
        ),
        // ...but one it carries is never left public.
        (
            r#"{"resultType":"input_\u0072equired","tools":[],"cacheScope":"public"}"#,
            r#"{"resultType":"input_\u0072equired","tools":[],"cacheScope":"private"}"#,
        ),
    ] {
        let body = format!(r#"{{"jsonrpc":"2.0","id":1,"result":{result}}}"#);
        let expected = format!(r#"{{"jsonrpc":"2.0","id":1,"result":{expected}}}"#);
        assert_eq!(json_rewrite(&body), expected, "{result}");
    }
}

#[test]
fn counts_say_what_was_listed_and_hidden() {
    let body = list_answer(
        json!(1),
        json!([
            tool("get_a"),
            tool("drop"),
            tool("get_b"),
            tool("wipe"),
            tool("x")
        ]),
    );
    let (_, counts) = rewritten("application/json", &body, &list_request());
    assert_eq!(
        counts,
        ToolCounts {
            results: 1,
            listed: 2,
            hidden: 3
        }
    );
}

#[test]
fn escaped_names_are_judged_decoded() {
    // `delete\u005fall` is `delete_all` to every client: hidden. `get\u005fa` is `get_a`: kept,
    // with its escape.
    let body = r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"delete\u005fall"},{"name":"get\u005fa"},{"name":"\u0067et_b"}]}}"#;
    assert_eq!(
        json_rewrite(body),
        r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"get\u005fa"},{"name":"\u0067et_b"}],"cacheScope":"private"}}"#
    );
}

#[test]
fn a_batch_rewrites_only_the_answers_to_its_list_calls() {
    let request = request(
        r#"[{"jsonrpc":"2.0","id":1,"method":"tools/list"},{"jsonrpc":"2.0","id":"call","method":"tools/call","params":{"name":"get_a"}},{"jsonrpc":"2.0","id":7,"method":"tools/list","params":{"cursor":"p2"}}]"#,
    );
    // The tools/call result happens to carry `tools`: it is that call's output, left alone.
    let call_answer =
        r#"{"jsonrpc":"2.0","id":"call","result":{"tools":[{"name":"secret"}],"content":[]}}"#;
    let page_1 = r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"get_a"},{"name":"secret"}],"nextCursor":"p2"}}"#;
    let page_2 = r#"{"jsonrpc":"2.0","id":7,"result":{"tools":[{"name":"secret2"}]}}"#;
    let body = format!("[{page_1}, {call_answer} ,{page_2}]");
    let (out, counts) = rewritten("application/json", &body, &request);
    assert_eq!(
        out,
        format!(
            r#"[{{"jsonrpc":"2.0","id":1,"result":{{"tools":[{{"name":"get_a"}}],"nextCursor":"p2","cacheScope":"private"}}}}, {call_answer} ,{{"jsonrpc":"2.0","id":7,"result":{{"tools":[],"cacheScope":"private"}}}}]"#
        )
    );
    assert_eq!((counts.results, counts.listed, counts.hidden), (2, 1, 2));
}

#[test]
fn a_response_is_exempt_only_when_it_answers_another_call() {
    let request = request(
        r#"[{"jsonrpc":"2.0","id":1,"method":"tools/list"},{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"get_a"}}]"#,
    );
    let secret = json!([{"name": "secret"}]);
    for (id, filtered, why) in [
        (json!(2), false, "the tools/call's id"),
        (
            json!(2.0),
            false,
            "the tools/call's id as a re-serialising server may write it",
        ),
        (json!(1), true, "the tools/list call's id"),
        (json!(1.0), true, "the tools/list call's id, spelt 1.0"),
        (json!("1"), true, "an id that answers no call"),
        (json!(3), true, "an id that answers no call"),
        (Value::Null, true, "a null id"),
        (json!([2]), true, "an id that cannot be an id"),
    ] {
        let body = list_answer(id.clone(), secret.clone());
        let outcome = run(&answer(200, "application/json", &body), &request).unwrap();
        assert_eq!(
            matches!(outcome, Filtered::Rewritten { .. }),
            filtered,
            "{why}: {id}"
        );
    }
    // No id at all.
    let body = r#"{"jsonrpc":"2.0","result":{"tools":[{"name":"secret"}]}}"#;
    assert!(matches!(
        run(&answer(200, "application/json", body), &request).unwrap(),
        Filtered::Rewritten { .. }
    ));
}

#[test]
fn an_id_shared_by_a_list_call_and_another_call_is_filtered() {
    let request = request(
        r#"[{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"get_a"}},{"jsonrpc":"2.0","id":5,"method":"tools/list"}]"#,
    );
    let body = list_answer(json!(5), json!([{"name": "secret"}]));
    let (out, _) = rewritten("application/json", &body, &request);
    assert!(listed_names(&serde_json::from_str(&out).unwrap()).is_empty());
}

#[test]
fn answers_without_a_tools_result_pass_unchanged() {
    for body in [
        // The list call failed.
        r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32601,"message":"Method not found","data":{"tools":[{"name":"secret"}]}}}"#,
        // A result without `tools`, a result that is not an object.
        r#"{"jsonrpc":"2.0","id":1,"result":{"prompts":[]}}"#,
        r#"{"jsonrpc":"2.0","id":1,"result":[{"tools":[]}]}"#,
        r#"{"jsonrpc":"2.0","id":1,"result":null}"#,
        // A notification, a server request.
        r#"{"jsonrpc":"2.0","method":"notifications/message","params":{"tools":[{"name":"x"}]}}"#,
        r#"[{"jsonrpc":"2.0","id":"s1","method":"roots/list"}]"#,
    ] {
        assert_eq!(
            run(&answer(200, "application/json", body), &list_request()).unwrap(),
            Filtered::Unchanged,
            "{body}"
        );
    }
}

#[test]
fn content_type_parameters_and_case_are_accepted() {
    let body = list_answer(json!(1), json!([tool("secret")]));
    for content_type in [
        "application/json",
        "application/json; charset=utf-8",
        "Application/JSON ;charset=UTF-8",
    ] {
        let outcome = run(
            &UpstreamAnswer {
                content_type: Some(content_type),
                ..answer(200, "", &body)
            },
            &list_request(),
        );
        assert!(
            matches!(
                outcome,
                Ok(Filtered::Rewritten {
                    media_type: MediaType::Json,
                    ..
                })
            ),
            "{content_type}"
        );
    }
}

// ---- Fail closed ----

#[test]
fn unreadable_answers_are_withheld() {
    let list = list_answer(json!(1), json!([tool("secret")]));
    let huge_limit = Limits {
        max_answer_bytes: list.len() - 1,
    };
    for (answer, limits, expected, why) in [
        (
            UpstreamAnswer {
                content_encoding: Some("gzip"),
                ..answer(200, "application/json", &list)
            },
            Limits::default(),
            "content_encoding",
            "compressed",
        ),
        (
            UpstreamAnswer {
                content_encoding: Some("identity, gzip"),
                ..answer(200, "application/json", &list)
            },
            Limits::default(),
            "content_encoding",
            "compressed after identity",
        ),
        (
            UpstreamAnswer {
                content_encoding: Some(""),
                ..answer(200, "application/json", &list)
            },
            Limits::default(),
            "content_encoding",
            "an empty encoding",
        ),
        (
            answer(200, "application/json", &list),
            huge_limit,
            "too_large",
            "one byte over the limit",
        ),
        (
            answer(200, "text/html", &list),
            Limits::default(),
            "content_type",
            "HTML",
        ),
        (
            answer(200, "application/json-seq", &list),
            Limits::default(),
            "content_type",
            "another JSON type",
        ),
        (
            UpstreamAnswer {
                content_type: None,
                ..answer(200, "", &list)
            },
            Limits::default(),
            "content_type",
            "no content type",
        ),
        (
            answer(
                200,
                "application/json",
                "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"tools\":[{\"name\":\"get_a\"}]}",
            ),
            Limits::default(),
            "not_json",
            "truncated JSON",
        ),
        (
            answer(200, "application/json", &format!("{list} {{}}")),
            Limits::default(),
            "not_json",
            "trailing data",
        ),
        (
            answer(200, "application/json", &format!("\u{feff}{list}")),
            Limits::default(),
            "not_json",
            "a BOM before JSON",
        ),
        (
            answer(
                200,
                "application/json",
                r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":NaN}]}}"#,
            ),
            Limits::default(),
            "not_json",
            "NaN, which Python's json accepts",
        ),
        (
            answer(200, "application/json", r#""tools""#),
            Limits::default(),
            "not_jsonrpc",
            "a string",
        ),
        (
            answer(200, "application/json", &format!("[{list}, [{list}]]")),
            Limits::default(),
            "not_jsonrpc",
            "a nested batch",
        ),
    ] {
        let error = filter(&answer, &list_request(), &visible, &limits).expect_err(why);
        assert_eq!(error.reason.code(), expected, "{why}: {error}");
    }
}

#[test]
fn identity_encoding_is_read() {
    let body = list_answer(json!(1), json!([tool("secret")]));
    for encoding in ["identity", "IDENTITY", " identity "] {
        let outcome = run(
            &UpstreamAnswer {
                content_encoding: Some(encoding),
                ..answer(200, "application/json", &body)
            },
            &list_request(),
        );
        assert!(
            matches!(outcome, Ok(Filtered::Rewritten { .. })),
            "{encoding}"
        );
    }
}

#[test]
fn a_body_at_the_limit_is_read() {
    let body = list_answer(json!(1), json!([tool("secret")]));
    let limits = Limits {
        max_answer_bytes: body.len(),
    };
    let outcome = filter(
        &answer(200, "application/json", &body),
        &list_request(),
        &visible,
        &limits,
    );
    assert!(matches!(outcome, Ok(Filtered::Rewritten { .. })));
}

#[test]
fn invalid_utf8_is_withheld() {
    let mut body = list_answer(json!(1), json!([tool("get_a")])).into_bytes();
    // An overlong `"` (C0 A2) inside the name: a lenient decoder reads structure there.
    let at = body.windows(5).position(|w| w == b"get_a").unwrap();
    body.splice(at..at, [0xC0, 0xA2]);
    let answer = UpstreamAnswer {
        status: 200,
        content_type: Some("application/json"),
        content_encoding: None,
        body: &body,
    };
    assert_eq!(reason(&answer), Reason::NotUtf8);
}

#[test]
fn repeated_members_that_decide_the_filter_are_refused() {
    for (body, key) in [
        (
            r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"get_a"}],"tools":[{"name":"secret"}]}}"#,
            "tools",
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"get_a"}],"t\u006fols":[{"name":"secret"}]}}"#,
            "tools",
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[]},"result":{"tools":[{"name":"secret"}]}}"#,
            "result",
        ),
        (
            r#"{"jsonrpc":"2.0","id":"call","id":1,"result":{"tools":[{"name":"secret"}]}}"#,
            "id",
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"get_a","name":"secret"}]}}"#,
            "name",
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"get_a","n\u0061me":"secret"}]}}"#,
            "name",
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[],"cacheScope":"private","cacheScope":"public"}}"#,
            "cacheScope",
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[],"resultType":"input_required","resultType":"complete"}}"#,
            "resultType",
        ),
    ] {
        let reason = reason(&answer(200, "application/json", body));
        let expected = if key == "name" {
            Reason::ToolWithoutName(0)
        } else {
            Reason::DuplicateKey(key)
        };
        assert_eq!(reason, expected, "{body}");
    }
}

#[test]
fn repeated_members_elsewhere_pass() {
    // Inside a kept tool, or in members the filter does not read: the bytes stay as they came.
    let body = r#"{"jsonrpc":"2.0","jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"get_a","title":"a","title":"b"}],"ttlMs":1,"ttlMs":2}}"#;
    assert_eq!(
        json_rewrite(body),
        r#"{"jsonrpc":"2.0","jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"get_a","title":"a","title":"b"}],"ttlMs":1,"ttlMs":2,"cacheScope":"private"}}"#
    );
}

#[test]
fn tools_that_are_not_an_array_are_refused() {
    for tools in [r#"{"name":"secret"}"#, r#""secret""#, "null", "1", "true"] {
        let body = format!(r#"{{"jsonrpc":"2.0","id":1,"result":{{"tools":{tools}}}}}"#);
        assert_eq!(
            reason(&answer(200, "application/json", &body)),
            Reason::ToolsNotArray,
            "{tools}"
        );
    }
}

#[test]
fn a_tool_without_a_string_name_is_refused() {
    for (tools, index) in [
        (r#"[{"title":"no name"}]"#, 0),
        (r#"[{"name":"get_a"},{"name":5}]"#, 1),
        (r#"[{"name":null}]"#, 0),
        (r#"[{"name":["secret"]}]"#, 0),
        (r#"[{"name":{"secret":1}}]"#, 0),
        (r#"[{"name":"get_a"},"secret"]"#, 1),
        (r#"[["secret"]]"#, 0),
        // A lone surrogate decodes to no string at all.
        (r#"[{"name":"get_\ud800"}]"#, 0),
    ] {
        let body = format!(r#"{{"jsonrpc":"2.0","id":1,"result":{{"tools":{tools}}}}}"#);
        assert_eq!(
            reason(&answer(200, "application/json", &body)),
            Reason::ToolWithoutName(index),
            "{tools}"
        );
    }
}

#[test]
fn deep_nesting_neither_overflows_nor_hides_a_tool() {
    let depth = 100_000;
    let deep = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    let body = format!(
        r#"{{"jsonrpc":"2.0","id":1,"result":{{"tools":[{{"name":"get_a","inputSchema":{deep}}},{{"inputSchema":{deep},"name":"secret"}}],"_meta":{deep}}}}}"#
    );
    let out = json_rewrite(&body);
    assert_eq!(
        out,
        format!(
            r#"{{"jsonrpc":"2.0","id":1,"result":{{"tools":[{{"name":"get_a","inputSchema":{deep}}}],"_meta":{deep},"cacheScope":"private"}}}}"#
        )
    );
    // Deep in a tool's name: not a string name.
    let in_name = format!(r#"{{"jsonrpc":"2.0","id":1,"result":{{"tools":[{{"name":{deep}}}]}}}}"#);
    assert_eq!(
        reason(&answer(200, "application/json", &in_name)),
        Reason::ToolWithoutName(0)
    );
    // Deep in the id: answers no call, so filtered.
    let in_id =
        format!(r#"{{"jsonrpc":"2.0","id":{deep},"result":{{"tools":[{{"name":"secret"}}]}}}}"#);
    let (out, counts) = rewritten("application/json", &in_id, &list_request());
    assert_eq!(counts.hidden, 1);
    assert!(!out.contains("secret"));
}

#[test]
fn a_huge_list_is_filtered_whole() {
    let tools: Vec<Value> = (0..100_000)
        .map(|i| tool(&format!("{}{i}", if i % 2 == 0 { "get_" } else { "del_" })))
        .collect();
    let body = list_answer(json!(1), Value::Array(tools));
    let (out, counts) = rewritten("application/json", &body, &list_request());
    assert_eq!((counts.listed, counts.hidden), (50_000, 50_000));
    let names = listed_names(&serde_json::from_str(&out).unwrap());
    assert_eq!(names.len(), 50_000);
    assert!(names.iter().all(|name| visible(name)));
}

#[test]
fn an_empty_body_passes_whatever_its_type() {
    for (status, content_type, encoding) in [
        (202, None, None),
        (200, Some("text/html"), Some("gzip")),
        (404, Some("text/plain"), None),
    ] {
        let answer = UpstreamAnswer {
            status,
            content_type,
            content_encoding: encoding,
            body: b"",
        };
        assert_eq!(run(&answer, &list_request()), Ok(Filtered::Unchanged));
    }
}

// ---- Error statuses ----

#[test]
fn an_error_status_that_lists_no_tools_keeps_status_and_body() {
    for (status, content_type, body) in [
        (
            404,
            "application/json",
            r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32601,"message":"Method not found"}}"#,
        ),
        (
            400,
            "application/json",
            r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32000,"message":"Bad Request: No valid session ID provided"}}"#,
        ),
        (
            500,
            "text/event-stream",
            "data: {\"jsonrpc\":\"2.0\",\"id\":1,\"error\":{\"code\":-32603,\"message\":\"boom\"}}\n\n",
        ),
    ] {
        assert_eq!(
            run(&answer(status, content_type, body), &list_request()),
            Ok(Filtered::Unchanged),
            "{status} {body}"
        );
    }
}

#[test]
fn an_error_status_whose_body_lists_tools_is_refused_with_its_status() {
    for (content_type, body) in [
        (
            "application/json",
            list_answer(json!(1), json!([tool("get_a"), tool("secret")])),
        ),
        // Whatever the id: an error answer has no business listing tools.
        (
            "application/json",
            list_answer(json!("other"), json!([tool("secret")])),
        ),
        (
            "text/event-stream",
            format!(
                "data: {}\n\n",
                list_answer(json!(1), json!([tool("secret")]))
            ),
        ),
    ] {
        let error = run(&answer(500, content_type, &body), &list_request()).unwrap_err();
        assert_eq!(error.reason, Reason::ErrorStatusListsTools);
        assert_eq!(refusal(&error, &list_request()).status, 500);
    }
}

#[test]
fn an_unreadable_error_body_is_replaced_and_the_status_kept() {
    // A 404 for an unknown session must stay a 404 (the client then starts a new one), but a
    // body the filter cannot read is not passed on.
    for (content_type, encoding, body, expected) in [
        ("text/plain", None, "Session not found", "content_type"),
        (
            "text/html",
            None,
            "<h1>502 Bad Gateway</h1>",
            "content_type",
        ),
        (
            "application/json",
            Some("gzip"),
            "\u{1f}\u{8b}",
            "content_encoding",
        ),
        ("application/json", None, "Not Found", "not_json"),
    ] {
        let error = run(
            &UpstreamAnswer {
                content_encoding: encoding,
                ..answer(404, content_type, body)
            },
            &list_request(),
        )
        .unwrap_err();
        assert_eq!(error.reason.code(), expected);
        let refusal = refusal(&error, &list_request());
        assert_eq!(refusal.status, 404);
        let body: Value = serde_json::from_slice(&refusal.body).unwrap();
        assert_eq!(body["error"]["data"]["upstreamStatus"], 404);
    }
}

// ---- Refusals ----

#[test]
fn a_refusal_is_a_json_rpc_error_for_each_call() {
    let error = FilterError {
        upstream_status: 200,
        reason: Reason::ContentEncoding("br".into()),
    };
    for (request_body, expected_ids) in [
        (
            r#"{"jsonrpc":"2.0","id":"abc","method":"tools/list"}"#,
            json!("abc"),
        ),
        (r#"{"jsonrpc":"2.0","method":"tools/list"}"#, Value::Null),
        (
            r#"[{"jsonrpc":"2.0","id":1,"method":"tools/list"},{"jsonrpc":"2.0","method":"notifications/x"},{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"get_a"}}]"#,
            json!([1, 2]),
        ),
        (r#"[{"jsonrpc":"2.0","method":"tools/list"}]"#, Value::Null),
    ] {
        let refusal = refusal(&error, &request(request_body));
        assert_eq!(
            refusal.status, 200,
            "a 2xx answer is refused inside JSON-RPC"
        );
        let body: Value = serde_json::from_slice(&refusal.body).unwrap();
        let errors = match &body {
            Value::Array(errors) => errors.clone(),
            single => vec![single.clone()],
        };
        let ids: Vec<Value> = errors.iter().map(|e| e["id"].clone()).collect();
        match expected_ids {
            Value::Array(expected) => assert_eq!(ids, expected, "{request_body}"),
            single => assert_eq!(ids, vec![single], "{request_body}"),
        }
        for error in &errors {
            assert_eq!(error["jsonrpc"], "2.0");
            assert_eq!(error["error"]["code"], REFUSAL_CODE);
            assert_eq!(error["error"]["data"]["reason"], "content_encoding");
            let message = error["error"]["message"].as_str().unwrap();
            assert!(message.contains("Content-Encoding: br"), "{message}");
        }
    }
}

#[test]
fn a_refusal_never_quotes_the_answer_it_withheld() {
    // serde's messages quote a value of the wrong kind: a hidden tool's name must not reach
    // the client through the reason.
    for (content_type, body) in [
        ("application/json", r#""secret_tool""#),
        (
            "application/json",
            r#"{"jsonrpc":"2.0","id":1,"result":"secret_tool"}"#,
        ),
        (
            "application/json",
            r#"[{"jsonrpc":"2.0","id":1,"result":{"tools":[]}},"secret_tool"]"#,
        ),
        ("text/event-stream", "data: \"secret_tool\"\n\n"),
        ("application/json", "secret_tool"),
    ] {
        let Err(error) = run(&answer(200, content_type, body), &list_request()) else {
            continue;
        };
        let refused = refusal(&error, &list_request());
        let text = String::from_utf8(refused.body).unwrap();
        assert!(!text.contains("secret_tool"), "{body}: {text}");
    }
}

#[test]
fn upstream_header_values_are_shown_printable_and_short() {
    let long = "x".repeat(500);
    for (encoding, shown) in [
        ("gz\u{7}ip\nX", "gz?ip?X"),
        (long.as_str(), &format!("{}…", "x".repeat(64))),
    ] {
        let reason = reason(&UpstreamAnswer {
            content_encoding: Some(encoding),
            ..answer(200, "application/json", "{}")
        });
        assert_eq!(reason, Reason::ContentEncoding(shown.to_owned()));
    }
}

#[test]
fn a_request_without_a_list_call_needs_no_filter() {
    for body in [
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get_a"}}"#,
        r#"[{"jsonrpc":"2.0","id":1,"method":"prompts/list"},{"jsonrpc":"2.0","id":2,"result":{}}]"#,
    ] {
        assert!(ListRequest::of(&payload(body)).is_none());
    }
}

// ---- text/event-stream ----

fn sse_rewrite(stream: &str) -> (String, ToolCounts) {
    rewritten("text/event-stream", stream, &list_request())
}

#[test]
fn sse_events_around_the_answer_keep_their_bytes() {
    let progress = r#"{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":"t","progress":1}}"#;
    let list = r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"get_a"},{"name":"secret"}],"ttlMs":5}}"#;
    let stream = format!(
        ": keep-alive\r\nretry: 3000\r\n\r\nid: 0\r\ndata:\r\n\r\nevent: message\r\nid: 1\r\ndata: {progress}\r\n\r\n: before the answer\r\nid: 2\r\nevent: message\r\ndata: {list}\r\nunknown-field\r\n\r\n: trailing comment\r\n"
    );
    let (out, counts) = sse_rewrite(&stream);
    let expected = format!(
        ": keep-alive\r\nretry: 3000\r\n\r\nid: 0\r\ndata:\r\n\r\nevent: message\r\nid: 1\r\ndata: {progress}\r\n\r\n: before the answer\nid: 2\nevent: message\ndata: {}\nunknown-field\n\n: trailing comment\r\n",
        r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"get_a"}],"ttlMs":5,"cacheScope":"private"}}"#
    );
    assert_eq!(out, expected);
    assert_eq!((counts.results, counts.listed, counts.hidden), (1, 1, 1));
}

/// The same answer framed every way the standard allows: each is filtered.
#[test]
fn sse_framing_corner_cases_are_all_filtered() {
    let list =
        r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"get_a"},{"name":"secret"}]}}"#;
    // Split across data lines at a point where a newline is JSON whitespace.
    let (head, tail) = list.split_at(list.find("{\"name\":\"secret\"").unwrap());
    let cases = [
        ("LF", format!("data: {list}\n\n")),
        ("CRLF", format!("data: {list}\r\n\r\n")),
        ("CR", format!("data: {list}\r\r")),
        ("CR then LF blank line", format!("data: {list}\r\n\n")),
        ("no space after the colon", format!("data:{list}\n\n")),
        ("two spaces after the colon", format!("data:  {list}\n\n")),
        (
            "multi-line data, LF",
            format!("data: {head}\ndata: {tail}\n\n"),
        ),
        (
            "multi-line data, CR",
            format!("data: {head}\rdata: {tail}\r\r"),
        ),
        (
            "multi-line data, mixed",
            format!("data: {head}\r\ndata: {tail}\r\n"),
        ),
        (
            "data lines around an id",
            format!("data: {head}\nid: 9\rdata: {tail}\n\n"),
        ),
        ("last event without a blank line", format!("data: {list}\n")),
        ("last event without any line end", format!("data: {list}")),
        ("BOM", format!("\u{feff}data: {list}\n\n")),
        (
            "another event type",
            format!("event: other\ndata: {list}\n\n"),
        ),
        ("blank lines first", format!("\n\r\n\rdata: {list}\n\n")),
        (
            "after a notification",
            format!(
                "data: {{\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\",\"params\":{{}}}}\n\ndata: {list}\n\n"
            ),
        ),
    ];
    for (case, stream) in cases {
        let (out, counts) = sse_rewrite(&stream);
        assert_eq!((counts.listed, counts.hidden), (1, 1), "{case}");
        let events = sse_data(&out);
        let answers: Vec<Value> = events
            .iter()
            .filter(|data| !data.is_empty())
            .map(|data| {
                serde_json::from_str(data).unwrap_or_else(|e| panic!("{case}: {e}: {data:?}"))
            })
            .collect();
        let names: Vec<String> = answers.iter().flat_map(listed_names).collect();
        assert_eq!(names, ["get_a"], "{case}: {out:?}");
        assert_eq!(sse_data(&stream).len(), events.len(), "{case}: events kept");
    }
}

#[test]
fn sse_bom_and_untouched_events_stay_in_place() {
    let list = list_answer(json!(1), json!([tool("secret")]));
    let stream = format!("\u{feff}: hi\r\rdata: {list}\r\r");
    let (out, _) = sse_rewrite(&stream);
    assert!(out.starts_with("\u{feff}: hi\r\r"), "{out:?}");
}

#[test]
fn sse_a_rewritten_event_cannot_swallow_the_next_blank_line() {
    // `id: 1` ends with CR, then a data line this filter drops, then the blank line: writing
    // the CR back before the blank line's LF would make one CRLF and merge two events.
    let list = r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"secret"}]}}"#;
    let (head, tail) = list.split_at(list.find("\"result\"").unwrap());
    let stream = format!(
        "data: {head}\nid: 1\rdata: {tail}\n\ndata: {{\"jsonrpc\":\"2.0\",\"method\":\"n\"}}\n\n"
    );
    let (out, _) = sse_rewrite(&stream);
    assert_eq!(sse_data(&out).len(), 2, "{out:?}");
}

#[test]
fn sse_events_without_json_are_refused_unless_empty() {
    // The priming event of 2025-11-25 servers (an id and an empty data) passes.
    let list = list_answer(json!(1), json!([tool("secret")]));
    let primed = format!("id: 0\ndata:\n\ndata:   \n\ndata: {list}\n\n");
    assert_eq!(sse_rewrite(&primed).1.hidden, 1);
    for stream in [
        format!("data: not json\n\ndata: {list}\n\n"),
        format!("data: {list}\ndata: {list}\n\n"),
        // A JSON value split by a CR that a LF-only reader would keep inside one line.
        format!("data: {}\rx{}\n\n", &list[..10], &list[10..]),
    ] {
        let reason = reason(&answer(200, "text/event-stream", &stream));
        assert!(matches!(reason, Reason::NotJson(_)), "{stream:?}: {reason}");
    }
}

#[test]
fn sse_field_names_are_exact() {
    // `Data` and `data ` are other fields: the standard ignores them, and so does the filter.
    let list = list_answer(json!(1), json!([tool("secret")]));
    let stream = format!("Data: {list}\n\n");
    assert_eq!(
        run(&answer(200, "text/event-stream", &stream), &list_request()),
        Ok(Filtered::Unchanged)
    );
}

#[test]
fn sse_without_a_list_passes_unchanged() {
    let stream = "id: 1\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"error\":{\"code\":-1,\"message\":\"no\"}}\n\n";
    assert_eq!(
        run(&answer(200, "text/event-stream", stream), &list_request()),
        Ok(Filtered::Unchanged)
    );
}
