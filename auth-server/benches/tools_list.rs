//! The tools/list filter: JSON and SSE answers of 10, 1,000 and 10,000 tools, half of them
//! visible, each tool shaped like a real one (title, description, an input schema).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;

use auth_server::jsonrpc::{Message, Payload};
use auth_server::tools_list::{Filtered, Limits, ListRequest, UpstreamAnswer, filter};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use serde_json::json;

fn tool(index: usize) -> serde_json::Value {
    json!({
        "name": format!("tool_{index}"),
        "title": format!("Tool number {index}"),
        "description": "Returns the aggregate bars of a stock over a range of dates, with volume.",
        "inputSchema": {
            "type": "object",
            "properties": {
                "ticker": {"type": "string", "description": "The ticker, e.g. AAPL"},
                "from": {"type": "string", "format": "date"},
                "to": {"type": "string", "format": "date"},
                "limit": {"type": "integer", "minimum": 1, "maximum": 50000}
            },
            "required": ["ticker", "from", "to"]
        },
        "annotations": {"readOnlyHint": true}
    })
}

fn answer(tools: usize) -> String {
    let tools: Vec<_> = (0..tools).map(tool).collect();
    json!({
        "jsonrpc": "2.0",
        "id": 1,
        "result": {"resultType": "complete", "tools": tools, "nextCursor": "page-2", "ttlMs": 300000, "cacheScope": "public"}
    })
    .to_string()
}

fn bench_filter(c: &mut Criterion) {
    let request = ListRequest::of(&Payload::Single(Message::Call {
        id: Some(json!(1)),
        method: "tools/list".into(),
        name: None,
    }))
    .unwrap();
    // Half visible: the even-numbered tools.
    let visible = |name: &str| {
        name.strip_prefix("tool_")
            .and_then(|n| n.parse::<usize>().ok())
            .is_some_and(|n| n % 2 == 0)
    };
    let limits = Limits::default();
    let mut group = c.benchmark_group("tools_list_filter");
    for tools in [10usize, 1_000, 10_000] {
        let json_body = answer(tools);
        let sse_body = format!(
            "event: message\nid: 1\ndata: {{\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{{\"progressToken\":1,\"progress\":1}}}}\n\nevent: message\nid: 2\ndata: {json_body}\n\n"
        );
        for (kind, content_type, body) in [
            ("json", "application/json", &json_body),
            ("sse", "text/event-stream", &sse_body),
        ] {
            let answer = UpstreamAnswer {
                status: 200,
                content_type: Some(content_type),
                content_encoding: None,
                body: body.as_bytes(),
            };
            let Ok(Filtered::Rewritten { tools: counts, .. }) =
                filter(&answer, &request, &visible, &limits)
            else {
                panic!("{kind} answer of {tools} tools not rewritten");
            };
            assert_eq!((counts.listed, counts.hidden), (tools / 2, tools / 2));
            group.throughput(Throughput::Bytes(body.len() as u64));
            group.bench_with_input(BenchmarkId::new(kind, tools), &answer, |b, answer| {
                b.iter(|| filter(black_box(answer), &request, &visible, &limits).unwrap())
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench_filter);
criterion_main!(benches);
