//! The tools/list filter on arbitrary answers: never panics, and no tool the visibility refuses
//! survives in what it returns. The first byte chooses the answer's shape (bit 0: event stream,
//! else JSON; bit 1: status 500, else 200; bit 2: the request is a batch with a `tools/call` of
//! id 2, else a single `tools/list` of id 1); the rest is the body. Visible: names that start
//! with `get_`.
//!
//! Each output is re-read two ways: by the filter itself (a second pass finds nothing to hide
//! and changes nothing), and by readers independent of it (serde_json's `Value`; an event-stream
//! line splitter written here) that list every tool name a client could read.
#![no_main]

use auth_server::jsonrpc::{Message, Payload};
use auth_server::tools_list::{Filtered, Limits, ListRequest, UpstreamAnswer, filter, refusal};
use serde_json::{Value, json};

fn visible(name: &str) -> bool {
    name.starts_with("get_")
}

libfuzzer_sys::fuzz_target!(|input: &[u8]| {
    let Some((&shape, body)) = input.split_first() else {
        return;
    };
    let (event_stream, status, batch) = (
        shape & 1 != 0,
        if shape & 2 != 0 { 500 } else { 200 },
        shape & 4 != 0,
    );
    let list = Message::Call {
        id: Some(json!(1)),
        method: "tools/list".into(),
        name: None,
    };
    let request = ListRequest::of(&if batch {
        let call = Message::Call {
            id: Some(json!(2)),
            method: "tools/call".into(),
            name: Some("get_x".into()),
        };
        Payload::Batch(vec![list, call])
    } else {
        Payload::Single(list)
    })
    .unwrap();
    let content_type = if event_stream {
        "text/event-stream"
    } else {
        "application/json"
    };
    let answer = UpstreamAnswer {
        status,
        content_type: Some(content_type),
        content_encoding: None,
        body,
    };
    let limits = Limits::default();

    match filter(&answer, &request, &visible, &limits) {
        Ok(Filtered::Unchanged) => {
            // What passes unread by the rewriter holds no list a client could read.
            if let Ok(text) = std::str::from_utf8(body) {
                let lists = listed(text, event_stream, batch && status == 200);
                assert!(lists.is_empty(), "unchanged, yet lists {lists:?}");
            }
        }
        Ok(Filtered::Rewritten {
            body: out, tools, ..
        }) => {
            assert_eq!(status, 200, "an error answer rewritten");
            assert!(tools.results > 0);
            let text = std::str::from_utf8(&out).expect("rewritten to invalid UTF-8");
            for names in listed(text, event_stream, batch) {
                for name in names {
                    assert!(visible(&name), "hidden tool {name:?} in {text:?}");
                }
            }
            let again = UpstreamAnswer {
                body: &out,
                ..answer
            };
            match filter(&again, &request, &visible, &limits) {
                Ok(Filtered::Rewritten {
                    body: twice,
                    tools: counts,
                    ..
                }) => {
                    assert_eq!(counts.hidden, 0, "a second pass hides more: {text:?}");
                    assert_eq!(twice, out, "a second pass changes the answer");
                }
                other => panic!("a second pass gave {other:?} for {text:?}"),
            }
        }
        Err(error) => {
            let refused = refusal(&error, &request);
            assert!(
                serde_json::from_slice::<Value>(&refused.body).is_ok(),
                "refusal is not JSON"
            );
        }
    }
});

/// The tool names of each list a client reading `text` could see: responses carrying
/// `result.tools`, except, when `exempt_call`, answers to the `tools/call` of id 2. A text that a
/// JSON reader refuses lists nothing.
fn listed(text: &str, event_stream: bool, exempt_call: bool) -> Vec<Vec<String>> {
    let texts = if event_stream {
        event_data(text)
    } else {
        vec![text.to_owned()]
    };
    let mut lists = Vec::new();
    for text in texts {
        let Ok(value) = serde_json::from_str::<Value>(&text) else {
            continue;
        };
        let messages = match value {
            Value::Array(messages) => messages,
            message => vec![message],
        };
        for message in messages {
            let answers_call =
                exempt_call && message.get("id").and_then(Value::as_f64) == Some(2.0);
            let Some(tools) = message.pointer("/result/tools") else {
                continue;
            };
            if answers_call {
                continue;
            }
            let names = match tools {
                Value::Array(tools) => tools
                    .iter()
                    .map(|tool| {
                        tool.get("name")
                            .and_then(Value::as_str)
                            .unwrap_or("<no name>")
                            .to_owned()
                    })
                    .collect(),
                other => vec![format!("<not an array: {other}>")],
            };
            lists.push(names);
        }
    }
    lists
}

/// Each event's data, as the WHATWG rules read it, the last event kept without its blank line.
fn event_data(stream: &str) -> Vec<String> {
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
