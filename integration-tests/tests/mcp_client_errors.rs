//! The client's error surface, which the gateway tests rely on: a refusal must reach the test
//! with its HTTP status, its `WWW-Authenticate` and its body, at `initialize` and mid-session,
//! and the session must go on working after a refused call.
//!
//! The upstream is the real `fininfo` server; in front of it, in the same axum app, a small
//! layer answers like auth-server's contract says the gateway does (401, 403, 400, 413).

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use axum::{
    body::Body,
    extract::Request,
    middleware::{self, Next},
    response::{IntoResponse, Response},
};
use http::{StatusCode, header};
use integration_tests::{
    mcp_client::{ClientError, ConnectOptions, McpClient, result_text},
    mcp_servers::{ServerKind, UpstreamLog, router},
};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

const LIMIT: usize = 64 * 1024;
const RESOURCE_METADATA: &str = r#"Bearer resource_metadata="http://127.0.0.1/.well-known/oauth-protected-resource/fininfo/mcp""#;

fn json_response(status: StatusCode, body: Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// Refuses like the gateway: size, then token, then shape, then policy.
async fn refuse(request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, LIMIT).await else {
        return json_response(
            StatusCode::PAYLOAD_TOO_LARGE,
            json!({"error": "payload_too_large", "error_description": "body too large"}),
        );
    };
    if !parts.headers.contains_key("x-authorization") {
        let mut response = json_response(
            StatusCode::UNAUTHORIZED,
            json!({"error": "invalid_request", "error_description": "no token"}),
        );
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, RESOURCE_METADATA.parse().unwrap());
        return response;
    }
    let message: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let method = message["method"].as_str().unwrap_or_default();
    let tool = message["params"]["name"].as_str().unwrap_or_default();
    if method == "tools/call" && tool == "malformed" {
        // A JSON-RPC error body with `id: null`, as auth-server answers a request it cannot read.
        return json_response(
            StatusCode::BAD_REQUEST,
            json!({"jsonrpc": "2.0", "id": null, "error": {"code": -32600, "message": "Invalid Request"}}),
        );
    }
    let refuse_initialized =
        parts.headers.contains_key("x-refuse-initialized") && method == "notifications/initialized";
    if refuse_initialized || (method == "tools/call" && tool == "delete_all_portfolios") {
        let mut response = json_response(
            StatusCode::FORBIDDEN,
            json!({"error": "insufficient_scope", "server": "fininfo", "method": method, "tool": tool}),
        );
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            r#"Bearer error="insufficient_scope", scope="mcp-servers-unrestricted/execute""#
                .parse()
                .unwrap(),
        );
        return response;
    }
    next.run(Request::from_parts(parts, Body::from(body))).await
}

struct Gateway {
    url: String,
    log: UpstreamLog,
    cancel: CancellationToken,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

async fn start_refusing_gateway() -> Gateway {
    let log = UpstreamLog::new();
    let cancel = CancellationToken::new();
    let app = router(ServerKind::FinInfo, log.clone(), cancel.child_token())
        .layer(middleware::from_fn(refuse));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    let stop = cancel.clone();
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(stop.cancelled_owned())
            .await
            .unwrap();
    });
    Gateway { url, log, cancel }
}

fn with_token() -> ConnectOptions {
    ConnectOptions::default().ingress_token("a.b.c")
}

fn expect_http(error: &ClientError) -> (u16, Option<String>, Value) {
    match error {
        ClientError::Http {
            status,
            www_authenticate,
            body,
            ..
        } => (
            *status,
            www_authenticate.clone(),
            serde_json::from_str(body).unwrap(),
        ),
        other => panic!("expected an HTTP error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_token_at_initialize_is_401_with_challenge_and_body() {
    let gateway = start_refusing_gateway().await;
    let error = McpClient::connect_with(&gateway.url, ConnectOptions::default())
        .await
        .unwrap_err();
    let (status, challenge, body) = expect_http(&error);
    assert_eq!(status, 401);
    assert_eq!(challenge.as_deref(), Some(RESOURCE_METADATA));
    assert_eq!(body["error"], "invalid_request");
    assert!(gateway.log.is_empty(), "the upstream was reached");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_initialized_notification_is_reported() {
    let gateway = start_refusing_gateway().await;
    let error = McpClient::connect_with(
        &gateway.url,
        with_token().header("x-refuse-initialized", "1"),
    )
    .await
    .unwrap_err();
    let (status, challenge, body) = expect_http(&error);
    assert_eq!(status, 403);
    assert!(challenge.unwrap().contains("insufficient_scope"));
    assert_eq!(body["method"], "notifications/initialized");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_mid_session_keep_status_and_the_session_goes_on() {
    let gateway = start_refusing_gateway().await;
    let client = McpClient::connect_with(&gateway.url, with_token())
        .await
        .unwrap();
    let args = json!({"stock_ticker": "MSFT", "from_date": "2024-03-01", "to_date": "2024-03-03"});

    // 403, with the scope that would allow it.
    let error = client
        .call_tool("delete_all_portfolios", json!({}))
        .await
        .unwrap_err();
    let (status, challenge, body) = expect_http(&error);
    assert_eq!(status, 403);
    assert_eq!(
        challenge.as_deref(),
        Some(r#"Bearer error="insufficient_scope", scope="mcp-servers-unrestricted/execute""#)
    );
    assert_eq!(body["error"], "insufficient_scope");
    assert_eq!(body["tool"], "delete_all_portfolios");
    assert!(gateway.log.requests_with_method("tools/call").is_empty());

    // 400 with a JSON-RPC error body whose id is null: still an HTTP error, no hang.
    let error = client.call_tool("malformed", json!({})).await.unwrap_err();
    let (status, _, body) = expect_http(&error);
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], -32600);

    // 413.
    let big = json!({"stock_ticker": "X".repeat(LIMIT), "from_date": "2024-03-01", "to_date": "2024-03-03"});
    let error = client.call_tool("print_stock_data", big).await.unwrap_err();
    assert_eq!(error.status(), Some(413), "{error}");
    assert_eq!(error.body_json().unwrap()["error"], "payload_too_large");
    assert_eq!(client.last_http_failure().unwrap().status, 413);

    // The same session still works.
    let printed = client.call_tool("print_stock_data", args).await.unwrap();
    assert!(result_text(&printed).starts_with("Stock data for MSFT (3 bars)"));
    assert_eq!(gateway.log.requests_with_method("tools/call").len(), 1);
    client.close().await.unwrap();
}
