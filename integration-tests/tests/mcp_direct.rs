//! The MCP parts on their own, with no gateway in front: both demo servers on loopback, the
//! rmcp client connecting directly. Proves that the servers, the client, the header recording
//! and the progress streaming work before auth-server and nginx are put in between.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::time::{Duration, Instant};

use integration_tests::{
    mcp_client::{ConnectOptions, McpClient, result_text},
    mcp_servers::{COUNTDOWN_INTERVAL, RunningServer, ServerKind, spawn_server},
};
use serde_json::json;
use tokio::net::TcpListener;

const INGRESS: &str = "Bearer ingress.jwt.for-the-gateway";
const EGRESS: &str = "Bearer egress-token-for-the-upstream";
const MARKER: &str = "mcp-direct-7d3f";

async fn start(kind: ServerKind) -> RunningServer {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    spawn_server(kind, listener).await
}

fn options() -> ConnectOptions {
    ConnectOptions::default()
        .header("x-authorization", INGRESS)
        .header("authorization", EGRESS)
        .header("x-test-marker", MARKER)
}

/// Every request that reached `server` carried the client's custom headers, once, unchanged.
fn assert_headers_reached(server: &RunningServer) {
    let requests = server.log().requests();
    assert!(!requests.is_empty(), "{} saw no request", server.kind());
    for request in &requests {
        assert_eq!(request.path, "/mcp");
        assert_eq!(request.header_values("x-authorization"), [INGRESS]);
        assert_eq!(request.header_values("authorization"), [EGRESS]);
        assert_eq!(request.header_values("x-test-marker"), [MARKER]);
    }
    // The session: `initialize` starts it, every later POST carries its id.
    let posts: Vec<_> = requests
        .iter()
        .filter(|r| r.method == http::Method::POST)
        .collect();
    assert_eq!(posts[0].jsonrpc_method().as_deref(), Some("initialize"));
    assert!(posts[0].header("mcp-session-id").is_none());
    let session = posts[1]
        .header("mcp-session-id")
        .expect("session id after initialize");
    for post in &posts[1..] {
        assert_eq!(
            post.header("mcp-session-id").as_deref(),
            Some(session.as_str())
        );
        assert!(post.body_len > 0);
    }
    let methods: Vec<_> = posts.iter().filter_map(|r| r.jsonrpc_method()).collect();
    for expected in [
        "initialize",
        "notifications/initialized",
        "tools/list",
        "tools/call",
    ] {
        assert!(
            methods.iter().any(|m| m == expected),
            "{expected} missing from {methods:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn currenttime_tools_and_streamed_progress() {
    let server = start(ServerKind::CurrentTime).await;
    let client = McpClient::connect_with(&server.url(), options())
        .await
        .unwrap();
    assert_eq!(client.server_name().as_deref(), Some("currenttime"));

    assert_eq!(
        client.tool_names().await.unwrap(),
        ServerKind::CurrentTime.tool_names()
    );

    let utc = client
        .call_tool("current_time_by_timezone", json!({"tz_name": "UTC"}))
        .await
        .unwrap();
    assert_ne!(utc.is_error, Some(true));
    let text = result_text(&utc);
    assert!(text.starts_with("The current time in UTC is "), "{text}");
    assert!(text.ends_with("+00:00"), "{text}");

    let behind = client
        .call_tool("current_time_by_timezone", json!({"tz_name": "Etc/GMT+5"}))
        .await
        .unwrap();
    assert!(
        result_text(&behind).ends_with("-05:00"),
        "{}",
        result_text(&behind)
    );

    let unknown = client
        .call_tool(
            "current_time_by_timezone",
            json!({"tz_name": "Mars/Olympus_Mons"}),
        )
        .await
        .unwrap();
    assert_eq!(unknown.is_error, Some(true));
    assert!(result_text(&unknown).contains("unknown time zone"));

    let too_many = client
        .call_tool("countdown", json!({"steps": 11}))
        .await
        .unwrap();
    assert_eq!(too_many.is_error, Some(true));

    // Progress notifications must arrive one by one while the call runs, not in one burst
    // at the end.
    let steps = 5;
    let started = Instant::now();
    let (result, progress) = client
        .call_tool_with_progress("countdown", json!({"steps": steps}))
        .await
        .unwrap();
    let finished = Instant::now();
    assert_eq!(result_text(&result), "countdown of 5 steps finished");
    let values: Vec<f64> = progress.iter().map(|event| event.progress).collect();
    assert_eq!(values, [1.0, 2.0, 3.0, 4.0, 5.0]);
    assert!(progress.iter().all(|event| event.total == Some(5.0)));
    assert_eq!(progress[0].message.as_deref(), Some("step 1 of 5"));
    let first = progress[0].at;
    let last = progress[progress.len() - 1].at;
    let spread = last - first;
    let expected = COUNTDOWN_INTERVAL * (steps - 1);
    assert!(
        spread >= expected.mul_f64(0.8),
        "progress arrived within {spread:?}, expected about {expected:?}"
    );
    for pair in progress.windows(2) {
        let gap = pair[1].at - pair[0].at;
        assert!(
            gap >= Duration::from_millis(150),
            "gap of {gap:?} between notifications"
        );
    }
    assert!(
        first - started < Duration::from_millis(250) + COUNTDOWN_INTERVAL,
        "first notification only after {:?}",
        first - started
    );
    assert!(finished - first >= expected.mul_f64(0.8));

    assert_headers_reached(&server);
    client.close().await.unwrap();
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fininfo_tools() {
    let server = start(ServerKind::FinInfo).await;
    let client = McpClient::connect_with(&server.url(), options())
        .await
        .unwrap();
    assert_eq!(client.server_name().as_deref(), Some("fininfo"));

    assert_eq!(
        client.tool_names().await.unwrap(),
        [
            "delete_all_portfolios",
            "get_stock_aggregates",
            "print_stock_data"
        ]
    );

    let args = json!({
        "stock_ticker": "AAPL",
        "multiplier": 1,
        "timespan": "day",
        "from_date": "2024-01-01",
        "to_date": "2024-01-05",
    });
    let aggregates = client
        .call_tool("get_stock_aggregates", args.clone())
        .await
        .unwrap();
    assert_ne!(aggregates.is_error, Some(true));
    let body: serde_json::Value = serde_json::from_str(&result_text(&aggregates)).unwrap();
    assert_eq!(body["ticker"], "AAPL");
    assert_eq!(body["status"], "OK");
    assert_eq!(body["resultsCount"], 5);
    assert_eq!(body["results"].as_array().unwrap().len(), 5);
    // Deterministic: the same question, the same answer.
    let again = client
        .call_tool("get_stock_aggregates", args.clone())
        .await
        .unwrap();
    assert_eq!(result_text(&again), result_text(&aggregates));

    let printed = client.call_tool("print_stock_data", args).await.unwrap();
    let text = result_text(&printed);
    assert!(text.starts_with("Stock data for AAPL (5 bars)"), "{text}");
    assert_eq!(text.lines().count(), 7, "{text}");

    let bad_dates = client
        .call_tool(
            "get_stock_aggregates",
            json!({"stock_ticker": "AAPL", "from_date": "2024-02-01", "to_date": "2024-01-01"}),
        )
        .await
        .unwrap();
    assert_eq!(bad_dates.is_error, Some(true));

    let deleted = client
        .call_tool("delete_all_portfolios", json!({}))
        .await
        .unwrap();
    assert_eq!(
        result_text(&deleted),
        "delete_all_portfolios ran: all portfolios were deleted"
    );

    // An unknown tool is a JSON-RPC error from the server, not an HTTP one.
    let unknown = client
        .call_tool("no_such_tool", json!({}))
        .await
        .unwrap_err();
    assert_eq!(unknown.status(), None, "{unknown}");

    assert_headers_reached(&server);
    let calls = server.log().requests_with_method("tools/call");
    assert_eq!(calls.len(), 6);
    assert_eq!(
        calls[4].json().unwrap()["params"]["name"],
        "delete_all_portfolios"
    );

    // Ending the session sends DELETE, with the same headers.
    server.log().clear();
    client.close().await.unwrap();
    let after = server.log().requests();
    assert!(
        after.iter().any(|r| r.method == http::Method::DELETE),
        "no DELETE after close: {:?}",
        after.iter().map(|r| &r.method).collect::<Vec<_>>()
    );
    for request in &after {
        assert_eq!(request.header_values("authorization"), [EGRESS]);
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_servers_side_by_side_and_a_wrong_path_is_an_http_error() {
    let currenttime = start(ServerKind::CurrentTime).await;
    let fininfo = start(ServerKind::FinInfo).await;
    assert_ne!(currenttime.addr(), fininfo.addr());

    let a = McpClient::connect_with(&currenttime.url(), options())
        .await
        .unwrap();
    let b = McpClient::connect_with(&fininfo.url(), options())
        .await
        .unwrap();
    let (ta, tb) = tokio::join!(a.tool_names(), b.tool_names());
    assert_eq!(ta.unwrap(), ServerKind::CurrentTime.tool_names());
    assert_eq!(tb.unwrap(), ServerKind::FinInfo.tool_names());
    assert!(fininfo.log().requests_with_method("tools/list").len() == 1);
    assert!(currenttime.log().requests_with_method("tools/list").len() == 1);

    // Nothing is served at /nope: the client reports the HTTP status.
    let url = format!("http://{}/nope", fininfo.addr());
    let error = McpClient::connect_with(&url, options()).await.unwrap_err();
    assert_eq!(error.status(), Some(404), "{error}");

    a.close().await.unwrap();
    b.close().await.unwrap();
    // Dropping stops the servers too.
    drop(currenttime);
    drop(fininfo);
}
