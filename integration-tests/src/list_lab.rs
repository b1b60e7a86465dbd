//! A stand-in MCP server for the `tools/list` filter's end-to-end rows: it answers `tools/list`
//! (and `ping`) with the answer shapes real servers send and with the ones a gateway must
//! refuse, chosen by the path (`/<shape>`, under the gateway `/<server>/<shape>`). No session:
//! the rows send raw JSON-RPC, one message or a batch.
//!
//! Its tools are fininfo's three, by name, plus `lab_internal_tool`; the tests' policy gives
//! the lab fininfo's entries, so a caller sees here what it sees on fininfo.

use std::io::Write as _;
use std::net::SocketAddr;

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::mcp_servers::UpstreamLog;

/// Every tool of the lab's lists (but `huge`, which adds thousands), in their order.
pub const TOOLS: [&str; 4] = [
    "delete_all_portfolios",
    "get_stock_aggregates",
    "lab_internal_tool",
    "print_stock_data",
];

/// How many generated tools the `huge` shape adds to [`TOOLS`].
pub const HUGE_EXTRA_TOOLS: usize = 5_000;

/// The size the `too-large` shape's answer exceeds: 16 MiB, the default bound
/// (`AUTH_MAX_LIST_ANSWER_BYTES`, nginx `MAX_LIST_ANSWER`), plus 512 KiB.
pub const TOO_LARGE_BYTES: usize = 16 * 1024 * 1024 + 512 * 1024;

/// The answer shapes, by path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// `application/json`: the message, or an array for a batch.
    Json,
    /// `text/event-stream`: a log notification (event id `ev-1`), then each response.
    Sse,
    /// Two pages: `nextCursor` `page-2` on the first.
    Paged,
    /// JSON, gzip-compressed when the request accepts gzip.
    Gzip,
    /// JSON, gzip-compressed whatever the request accepts.
    GzipAlways,
    /// `application/json` that is not JSON (and names a hidden tool).
    Garbage,
    /// A 500 whose body is a tools/list result.
    ErrorListing,
    /// [`TOOLS`] and [`HUGE_EXTRA_TOOLS`] generated ones.
    Huge,
    /// A list longer than [`TOO_LARGE_BYTES`].
    TooLarge,
}

impl Shape {
    /// The path that asks for this shape.
    pub fn path(self) -> &'static str {
        match self {
            Shape::Json => "/json",
            Shape::Sse => "/sse",
            Shape::Paged => "/paged",
            Shape::Gzip => "/gzip",
            Shape::GzipAlways => "/gzip-always",
            Shape::Garbage => "/garbage",
            Shape::ErrorListing => "/error-listing",
            Shape::Huge => "/huge",
            Shape::TooLarge => "/too-large",
        }
    }

    fn of(path: &str) -> Option<Shape> {
        [
            Shape::Json,
            Shape::Sse,
            Shape::Paged,
            Shape::Gzip,
            Shape::GzipAlways,
            Shape::Garbage,
            Shape::ErrorListing,
            Shape::Huge,
            Shape::TooLarge,
        ]
        .into_iter()
        .find(|shape| shape.path() == path)
    }
}

/// The lab, running on its own task until dropped.
#[derive(Debug)]
pub struct RunningLab {
    addr: SocketAddr,
    log: UpstreamLog,
    task: JoinHandle<()>,
}

impl RunningLab {
    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The requests that reached it.
    pub fn log(&self) -> &UpstreamLog {
        &self.log
    }
}

impl Drop for RunningLab {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves the lab on `listener`.
pub async fn spawn_lab(listener: TcpListener) -> RunningLab {
    let addr = listener
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)));
    let log = UpstreamLog::new();
    let app = Router::new()
        .fallback(answer)
        .layer(axum::middleware::from_fn_with_state(
            log.clone(),
            crate::mcp_servers::record_request,
        ));
    let task = tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, app).await {
            eprintln!("list lab stopped: {error}");
        }
    });
    RunningLab { addr, log, task }
}

fn tool(name: &str) -> Value {
    json!({
        "name": name,
        "description": "a tool of the list lab",
        "inputSchema": {"type": "object", "properties": {}},
    })
}

/// A tools/list result: `names`, with the caching hints a 2026-07-28 server sends.
fn list(names: impl IntoIterator<Item = String>, next_cursor: Option<&str>) -> Value {
    let mut result = json!({
        "tools": names.into_iter().map(|name| tool(&name)).collect::<Vec<_>>(),
        "ttlMs": 60000,
        "cacheScope": "public",
    });
    if let Some(cursor) = next_cursor {
        result["nextCursor"] = json!(cursor);
    }
    result
}

fn list_result(shape: Shape, params: &Value) -> Value {
    let all = || TOOLS.iter().map(|name| (*name).to_owned());
    match shape {
        Shape::Paged => match params["cursor"].as_str() {
            Some("page-2") => list(TOOLS[2..].iter().map(|n| (*n).to_owned()), None),
            _ => list(TOOLS[..2].iter().map(|n| (*n).to_owned()), Some("page-2")),
        },
        Shape::Huge => list(
            all().chain((0..HUGE_EXTRA_TOOLS).map(|index| format!("generated_tool_{index:05}"))),
            None,
        ),
        Shape::TooLarge => {
            // Over 1,000 bytes per generated tool: the list passes TOO_LARGE_BYTES, and stays
            // well below twice the bound (what deploy/envoy buffers).
            let padding = "p".repeat(1000);
            let count = TOO_LARGE_BYTES / 1000;
            let names = all().chain((0..count).map(|index| format!("padded_{index}_{padding}")));
            list(names, None)
        }
        _ => list(all(), None),
    }
}

/// The response to one call; `None` for a notification.
fn respond(shape: Shape, message: &Value) -> Option<Value> {
    let id = message.get("id")?.clone();
    let result = match message["method"].as_str() {
        Some("tools/list") => list_result(shape, &message["params"]),
        Some("ping") => json!({}),
        _ => {
            return Some(json!({"jsonrpc": "2.0", "id": id, "error": {
                "code": -32601, "message": "the list lab answers tools/list and ping only"}}));
        }
    };
    Some(json!({"jsonrpc": "2.0", "id": id, "result": result}))
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    // Writing into a Vec cannot fail.
    let _ = encoder.write_all(bytes);
    encoder.finish().unwrap_or_default()
}

async fn answer(uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let Some(shape) = Shape::of(uri.path()) else {
        return (StatusCode::NOT_FOUND, "no such shape").into_response();
    };
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return (StatusCode::BAD_REQUEST, "not JSON").into_response();
    };
    let (body, batch) = match &request {
        Value::Array(messages) => {
            let answers: Vec<Value> = messages.iter().filter_map(|m| respond(shape, m)).collect();
            (Value::Array(answers), true)
        }
        single => (respond(shape, single).unwrap_or(Value::Null), false),
    };
    let json_type = [(header::CONTENT_TYPE, "application/json")];
    match shape {
        Shape::Sse => {
            let responses = match (body, batch) {
                (Value::Array(answers), true) => answers,
                (answer, _) => vec![answer],
            };
            let mut stream = String::from(
                "id: ev-1\nevent: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\
                 \"notifications/message\",\"params\":{\"level\":\"info\",\"data\":\"listing\"}}\n\n",
            );
            for (index, response) in responses.iter().enumerate() {
                stream.push_str(&format!(
                    "id: ev-{}\nevent: message\ndata: {response}\n\n",
                    index + 2
                ));
            }
            ([(header::CONTENT_TYPE, "text/event-stream")], stream).into_response()
        }
        Shape::Gzip | Shape::GzipAlways => {
            let accepts_gzip = headers
                .get_all(header::ACCEPT_ENCODING)
                .iter()
                .filter_map(|value| value.to_str().ok())
                .any(|value| value.contains("gzip"));
            let text = body.to_string();
            if shape == Shape::GzipAlways || accepts_gzip {
                let encoded = [
                    (header::CONTENT_TYPE, "application/json"),
                    (header::CONTENT_ENCODING, "gzip"),
                ];
                (encoded, gzip(text.as_bytes())).into_response()
            } else {
                (json_type, text).into_response()
            }
        }
        Shape::Garbage => (json_type, "<html>delete_all_portfolios</html>").into_response(),
        Shape::ErrorListing => (
            StatusCode::INTERNAL_SERVER_ERROR,
            json_type,
            body.to_string(),
        )
            .into_response(),
        _ => (json_type, body.to_string()).into_response(),
    }
}
