//! The end-to-end scenarios, one table for every gateway: each function starts a real stack
//! (IdP, auth-server binary, the gateway with its shipped config, rmcp MCP servers) behind the
//! given [`Front`] and checks one behaviour through real MCP clients; the `tools/list` filter's
//! rows share one stack per gateway (scenarios/tools_list.rs). `gateway_nginx.rs`,
//! `gateway_envoy_http.rs` and `gateway_envoy_grpc.rs` each run all of them with
//! [`gateway_scenarios!`].
//!
//! No scenario needs a per-gateway expectation: the three answer alike where a client can see
//! it. The answers that are the gateway's own rather than auth-server's are the same by
//! configuration: an oversized body is refused by the gateway before any check, with 413 and
//! JSON `{"error": "request_too_large"}` (nginx: `client_max_body_size` and its JSON error
//! page; Envoy: `with_request_body` without partial bodies, and a `local_reply_config`
//! mapper); an unknown server is a 404 JSON without a check; no answer from auth-server is a
//! 503 JSON `{"error": "auth_unavailable"}` (nginx: mcp_auth.lua; Envoy: `status_on_error`
//! and a mapper). Should a gateway have to differ, the scenario takes the expectation from
//! `stack.front` with a comment saying why.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod tools_list;

use std::time::Duration;

use serde_json::{Value, json};

use crate::mcp_client::{ClientError, ConnectOptions, McpClient, result_text};

use crate::stack::{
    Front, GatewayStack, Idp, IdpOptions, Profile, RawRequest, RawResponse, raw_http, repo_root,
    require,
};
pub use tools_list::tools_list_shows_each_caller_only_the_tools_it_may_use;

/// Runs every scenario of this module as a `#[tokio::test]` against one gateway.
#[macro_export]
macro_rules! gateway_scenarios {
    ($front:expr) => {
        #[tokio::test]
        async fn each_client_gets_exactly_what_the_policy_allows() {
            $crate::scenarios::each_client_gets_exactly_what_the_policy_allows($front).await;
        }
        #[tokio::test]
        async fn cognito_shaped_tokens_are_checked_like_cognito() {
            $crate::scenarios::cognito_shaped_tokens_are_checked_like_cognito($front).await;
        }
        #[tokio::test]
        async fn missing_expired_foreign_and_garbage_tokens_get_401_with_a_challenge() {
            $crate::scenarios::missing_expired_foreign_and_garbage_tokens_get_401_with_a_challenge($front).await;
        }
        #[tokio::test]
        async fn batch_hiding_a_denied_call_and_oversized_bodies_never_reach_the_upstream() {
            $crate::scenarios::batch_hiding_a_denied_call_and_oversized_bodies_never_reach_the_upstream($front).await;
        }
        #[tokio::test]
        async fn upstream_sees_identity_and_egress_token_never_ingress_or_forged_headers() {
            $crate::scenarios::upstream_sees_identity_and_egress_token_never_ingress_or_forged_headers($front).await;
        }
        #[tokio::test]
        async fn key_rotation_and_idp_outage_cause_no_false_denial() {
            $crate::scenarios::key_rotation_and_idp_outage_cause_no_false_denial($front).await;
        }
        #[tokio::test]
        async fn sse_progress_streams_through_the_gateway_without_buffering() {
            $crate::scenarios::sse_progress_streams_through_the_gateway_without_buffering($front).await;
        }
        #[tokio::test]
        async fn official_python_sdk_client_through_the_gateway() {
            $crate::scenarios::official_python_sdk_client_through_the_gateway($front).await;
        }
        #[tokio::test]
        async fn requests_at_the_edges_get_the_same_json_answer_on_every_gateway() {
            $crate::scenarios::requests_at_the_edges_get_the_same_json_answer_on_every_gateway($front).await;
        }
        #[tokio::test]
        async fn tools_list_shows_each_caller_only_the_tools_it_may_use() {
            $crate::scenarios::tools_list_shows_each_caller_only_the_tools_it_may_use($front).await;
        }
        #[tokio::test]
        async fn unknown_server_smuggled_target_and_unreachable_auth_server_never_reach_the_upstream() {
            $crate::scenarios::unknown_server_smuggled_target_and_unreachable_auth_server_never_reach_the_upstream($front).await;
        }
        #[tokio::test]
        async fn a_person_signed_in_is_checked_by_the_session_cookie_like_a_token() {
            $crate::scenarios::a_person_signed_in_is_checked_by_the_session_cookie_like_a_token($front).await;
        }
    };
}

fn stock_args() -> Value {
    json!({"stock_ticker": "AAPL", "from_date": "2026-01-01", "to_date": "2026-01-31"})
}

async fn connect(
    stack: &GatewayStack,
    server: &str,
    token: &str,
) -> Result<McpClient, ClientError> {
    McpClient::connect_with(
        &stack.url(server),
        ConnectOptions::default().ingress_token(token),
    )
    .await
}

fn assert_forbidden(result: Result<impl std::fmt::Debug, ClientError>, what: &str) {
    match result {
        Err(ClientError::Http {
            status: 403,
            www_authenticate,
            ..
        }) => {
            let challenge = www_authenticate.unwrap_or_default();
            assert!(
                challenge.contains(r#"error="insufficient_scope""#),
                "{what}: {challenge}"
            );
        }
        other => panic!("{what}: expected 403, got {other:?}"),
    }
}

/// A raw JSON-RPC POST through the gateway (no MCP session), for what a client library would
/// never send.
async fn post(
    stack: &GatewayStack,
    server: &str,
    token: Option<&str>,
    body: String,
) -> reqwest::Response {
    let mut request = reqwest::Client::new()
        .post(stack.url(server))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(body);
    if let Some(token) = token {
        request = request.header("x-authorization", format!("Bearer {token}"));
    }
    request.send().await.expect("gateway answers")
}

fn tools_call(tool: &str) -> Value {
    json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":tool,"arguments":{}}})
}

/// Every client of the IdP gets exactly the tools its groups or scopes allow, denials never
/// reach the MCP server, and the decision log names each call and never a token.
pub async fn each_client_gets_exactly_what_the_policy_allows(front: Front) {
    let stack = GatewayStack::start_behind(front, Profile::Oidc, &[]).await;
    let admin = stack.idp.token("admin-agent").await;
    let reader = stack.idp.token("readonly-agent").await;
    let operator = stack.idp.token("operator-agent").await;
    let nobody = stack.idp.token("nogroup-agent").await;
    let scoped = stack
        .idp
        .token_with("scoped-agent", Some("mcp-servers-restricted/read"))
        .await;

    // Admin: every server, every tool but the one nobody may call, which it does not see.
    let client = connect(&stack, "fininfo", &admin)
        .await
        .expect("admin initializes fininfo");
    assert_eq!(
        client.tool_names().await.unwrap(),
        ["get_stock_aggregates", "print_stock_data"]
    );
    let result = client
        .call_tool("print_stock_data", stock_args())
        .await
        .expect("admin calls print_stock_data");
    assert!(result_text(&result).contains("AAPL"));
    assert_forbidden(
        client.call_tool("delete_all_portfolios", json!({})).await,
        "admin deletes portfolios",
    );
    client.close().await.unwrap();
    let client = connect(&stack, "currenttime", &admin)
        .await
        .expect("admin initializes currenttime");
    client
        .call_tool("current_time_by_timezone", json!({"tz_name": "UTC"}))
        .await
        .expect("admin asks the time");
    client.close().await.unwrap();

    // Read-only: initialize and list (the tools its read entries name), never call.
    for server in ["fininfo", "currenttime"] {
        let client = connect(&stack, server, &reader)
            .await
            .expect("reader initializes");
        let listed = client.tool_names().await.expect("reader lists");
        assert_eq!(listed.len(), 2, "{server}: {listed:?}");
        let tool = if server == "fininfo" {
            "get_stock_aggregates"
        } else {
            "current_time_by_timezone"
        };
        assert_forbidden(
            client.call_tool(tool, json!({"tz_name": "UTC"})).await,
            "reader calls",
        );
        client.close().await.unwrap();
    }

    // Operator: the listed tools only.
    let client = connect(&stack, "fininfo", &operator)
        .await
        .expect("operator initializes");
    client
        .call_tool("get_stock_aggregates", stock_args())
        .await
        .expect("operator's tool");
    assert_forbidden(
        client.call_tool("print_stock_data", stock_args()).await,
        "operator, other tool",
    );
    client.close().await.unwrap();

    // No mapped group and no scope: not even initialize.
    assert_forbidden(
        connect(&stack, "fininfo", &nobody).await,
        "no group initializes",
    );

    // No groups claim: the token's `scope` claim applies.
    let client = connect(&stack, "fininfo", &scoped)
        .await
        .expect("scope-claim client initializes");
    client.tool_names().await.expect("scope-claim client lists");
    assert_forbidden(
        client.call_tool("get_stock_aggregates", stock_args()).await,
        "scope-claim client calls",
    );
    client.close().await.unwrap();

    // What was denied never reached an MCP server.
    let reached = stack.fininfo.log().called_names();
    assert!(reached.contains(&"print_stock_data".to_owned()));
    assert!(
        !reached.contains(&"delete_all_portfolios".to_owned()),
        "{reached:?}"
    );

    // One decision line per check, and never a token in the log.
    let log = stack.auth.process.output();
    for token in [&admin, &reader, &operator, &nobody, &scoped] {
        let signature = token.rsplit('.').next().unwrap();
        assert!(!log.contains(signature), "a token reached the log");
    }
    let decisions: Vec<Value> = log
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line["target"] == "decision")
        .collect();
    assert!(
        decisions
            .iter()
            .any(|d| d["result"] == "allow" && d["tool"] == "print_stock_data")
    );
    assert!(decisions.iter().any(|d| d["result"] == "deny"
        && d["tool"] == "delete_all_portfolios"
        && d["who"] == "admin-agent"
        && d["groups"] == "mcp-registry-admin"
        && d["reason"] == "insufficient_scope"));
    if front == Front::Nginx {
        // nginx passes its own $request_id: every decision line can be joined to its access log.
        assert!(
            decisions
                .iter()
                .all(|d| d["request_id"].as_str().is_some_and(|id| id.len() == 32)),
            "decision lines without nginx's request id"
        );
    }
}

/// Cognito-shaped tokens: groups, seed headers that must agree, and no ID token as access.
pub async fn cognito_shaped_tokens_are_checked_like_cognito(front: Front) {
    let stack = GatewayStack::start_behind(front, Profile::Cognito, &[]).await;
    let admin = stack.idp.token("admin-agent").await;
    let reader = stack.idp.token("readonly-agent").await;

    let client = connect(&stack, "fininfo", &admin)
        .await
        .expect("Cognito admin initializes");
    client
        .call_tool("get_stock_aggregates", stock_args())
        .await
        .expect("Cognito admin calls");
    client.close().await.unwrap();
    let client = connect(&stack, "fininfo", &reader)
        .await
        .expect("Cognito reader initializes");
    assert_forbidden(
        client.call_tool("get_stock_aggregates", stock_args()).await,
        "Cognito reader calls",
    );
    client.close().await.unwrap();

    // Seed headers must agree with the configuration and the token.
    let with_headers = |pool: &str, client_id: &str| {
        ConnectOptions::default()
            .ingress_token(&admin)
            .header("x-user-pool-id", pool)
            .header("x-client-id", client_id)
            .header("x-region", "us-east-1")
    };
    let client = McpClient::connect_with(
        &stack.url("fininfo"),
        with_headers("us-east-1_TestPool", "admin-agent"),
    )
    .await
    .expect("matching seed headers");
    client.close().await.unwrap();
    for (pool, client_id) in [
        ("us-east-1_OtherPool", "admin-agent"),
        ("us-east-1_TestPool", "readonly-agent"),
    ] {
        let refused =
            McpClient::connect_with(&stack.url("fininfo"), with_headers(pool, client_id)).await;
        assert!(
            matches!(refused, Err(ClientError::Http { status: 401, .. })),
            "{pool} {client_id}: {refused:?}"
        );
    }
    // An ID token is not an access token.
    let id_token = stack.idp.token("idtoken-agent").await;
    let refused = connect(&stack, "fininfo", &id_token).await;
    assert!(
        matches!(refused, Err(ClientError::Http { status: 401, .. })),
        "{refused:?}"
    );
}

/// No, expired, foreign-issuer and unsigned tokens: 401 with `WWW-Authenticate`, nothing
/// upstream.
pub async fn missing_expired_foreign_and_garbage_tokens_get_401_with_a_challenge(front: Front) {
    let stack = GatewayStack::start_behind(front, Profile::Oidc, &[]).await;
    let initialize = json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{
        "protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}})
    .to_string();

    let response = post(&stack, "fininfo", None, initialize.clone()).await;
    assert_eq!(response.status(), 401);
    assert_eq!(response.headers()["www-authenticate"], "Bearer");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "unauthorized");

    let short = stack.idp.token("shortlived-agent").await;
    tokio::time::sleep(Duration::from_millis(3100)).await;
    let response = post(&stack, "fininfo", Some(&short), initialize.clone()).await;
    assert_eq!(response.status(), 401);
    let challenge = response.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        challenge.contains(r#"error="invalid_token""#) && challenge.contains("expired"),
        "{challenge}"
    );

    // Same signing key, another issuer: only `iss` differs.
    let keys = stack.workdir.path().join("idp-keys.json");
    let foreign = Idp::start(
        IdpOptions {
            issuer: Some("http://127.0.0.1:{port}/other".into()),
            keys_file: Some(keys),
            ..Default::default()
        },
        stack.workdir.path(),
    )
    .await;
    let foreign_token = foreign.token("admin-agent").await;
    let response = post(&stack, "fininfo", Some(&foreign_token), initialize.clone()).await;
    assert_eq!(response.status(), 401);
    assert!(
        response.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("another issuer")
    );

    let response = post(
        &stack,
        "fininfo",
        Some("eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."),
        initialize,
    )
    .await;
    assert_eq!(response.status(), 401);
    assert!(
        stack.fininfo.log().is_empty(),
        "no unauthenticated request reached the upstream"
    );
}

/// A batch with one denied call is denied whole; a body over the limit is refused; a large
/// body under it arrives whole.
pub async fn batch_hiding_a_denied_call_and_oversized_bodies_never_reach_the_upstream(
    front: Front,
) {
    let stack = GatewayStack::start_behind(front, Profile::Oidc, &[]).await;
    let admin = stack.idp.token("admin-agent").await;

    let batch = json!([
        {"jsonrpc":"2.0","id":1,"method":"tools/list"},
        tools_call("print_stock_data"),
        {"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"delete_all_portfolios"}}
    ]);
    let response = post(&stack, "fininfo", Some(&admin), batch.to_string()).await;
    assert_eq!(response.status(), 403);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["tool"], "delete_all_portfolios");

    let padding = "x".repeat(1_100_000);
    let huge =
        json!({"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"pad": padding}}).to_string();
    let response = post(&stack, "fininfo", Some(&admin), huge).await;
    assert_eq!(response.status(), 413);
    let body: Value = response
        .json()
        .await
        .expect("413 is JSON, not nginx's HTML page");
    assert_eq!(body["error"], "request_too_large");
    // The gateway refused it itself, before any check: auth-server never held the body.
    assert!(
        !stack.auth.process.output().contains("body_too_large"),
        "the oversized body was sent to auth-server"
    );
    assert!(
        stack.fininfo.log().is_empty(),
        "denied bodies reached the upstream"
    );

    // A large body under the limit is inspected and delivered whole.
    let padding = "y".repeat(900_000);
    let large =
        json!({"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"pad": padding}}).to_string();
    let sent = large.len();
    let response = post(&stack, "fininfo", Some(&admin), large).await;
    assert_ne!(response.status(), 413);
    let received = stack.fininfo.log().requests();
    assert_eq!(received.len(), 1);
    assert_eq!(
        received[0].body_len, sent,
        "the upstream got the whole body"
    );
}

/// The upstream gets the verified identity and the egress token, never the ingress token,
/// the Cognito pool headers or client-forged identity headers.
pub async fn upstream_sees_identity_and_egress_token_never_ingress_or_forged_headers(front: Front) {
    let stack = GatewayStack::start_behind(front, Profile::Oidc, &[]).await;
    let operator = stack.idp.token("operator-agent").await;
    let options = ConnectOptions::default()
        .ingress_token(&operator)
        .bearer("egress-token-for-atlassian")
        .header("x-user", "forged-admin")
        .header("x-scopes", "mcp-servers-unrestricted/execute")
        .header("x-tool-name", "forged-tool")
        .header("x-method", "forged/method")
        .header("x-atlassian-cloud-id", "cloud-42");
    let client = McpClient::connect_with(&stack.url("fininfo"), options)
        .await
        .expect("operator initializes");
    client
        .call_tool("get_stock_aggregates", stock_args())
        .await
        .expect("allowed call");
    client.close().await.unwrap();

    let requests = stack.fininfo.log().requests();
    assert!(
        requests.len() >= 3,
        "initialize, initialized, call (and the listen stream / DELETE)"
    );
    for request in &requests {
        assert_eq!(
            request.header_values("x-user"),
            ["operator-agent"],
            "{} {}",
            request.method,
            request.path
        );
        assert_eq!(
            request.header("x-client-id").as_deref(),
            Some("operator-agent")
        );
        assert_eq!(
            request.header("x-scopes").as_deref(),
            Some("mcp-servers-restricted/read mcp-servers-restricted/execute")
        );
        assert_eq!(request.header("x-server-name").as_deref(), Some("fininfo"));
        assert_eq!(
            request.header_values("authorization"),
            ["Bearer egress-token-for-atlassian"]
        );
        assert_eq!(
            request.header("x-atlassian-cloud-id").as_deref(),
            Some("cloud-42")
        );
        assert!(
            request.header("x-authorization").is_none(),
            "ingress token leaked upstream"
        );
        // A client-sent identity header is replaced, or dropped where the answer has no
        // value (the tool of a non-call, the method of a GET): never passed on.
        for forged in ["x-tool-name", "x-method"] {
            let values = request.header_values(forged);
            assert!(
                values.len() <= 1 && values.iter().all(|value| !value.contains("forged")),
                "{forged}: {values:?} on {} {}",
                request.method,
                request.path
            );
        }
        assert!(
            !format!("{:?}", request.headers).contains(&operator),
            "ingress token leaked upstream"
        );
    }
    // The body-less DELETE that ends the session was checked as a DELETE (as a POST it
    // would be a 400) and reached the server with the same identity.
    assert!(
        requests.iter().any(|r| r.method == "DELETE"),
        "{:?}",
        requests
            .iter()
            .map(|r| r.method.as_str())
            .collect::<Vec<_>>()
    );
    let call = requests
        .iter()
        .find(|r| r.jsonrpc_method().as_deref() == Some("tools/call"))
        .expect("call reached");
    assert_eq!(
        call.header("x-tool-name").as_deref(),
        Some("get_stock_aggregates")
    );
    assert_eq!(call.header("x-method").as_deref(), Some("tools/call"));

    // Ingress token in `Authorization` (no X-Authorization): it must not reach the upstream.
    stack.fininfo.log().clear();
    let options = ConnectOptions::default().bearer(&operator);
    let client = McpClient::connect_with(&stack.url("fininfo"), options)
        .await
        .expect("Authorization as ingress");
    client.close().await.unwrap();
    for request in stack.fininfo.log().requests() {
        assert!(
            request.header("authorization").is_none(),
            "ingress Authorization leaked upstream"
        );
    }
}

/// A rotated signing key is fetched on first sight; with the IdP down, cached keys still
/// verify new tokens.
pub async fn key_rotation_and_idp_outage_cause_no_false_denial(front: Front) {
    let mut stack = GatewayStack::start_behind(front, Profile::Oidc, &[]).await;
    let before = stack.idp.token("admin-agent").await;
    let client = connect(&stack, "currenttime", &before)
        .await
        .expect("before rotation");

    let new_kid = stack.idp.rotate(false).await;
    let after = stack.idp.token("admin-agent").await;
    assert!(after.split('.').next().is_some());
    let client_after = connect(&stack, "currenttime", &after)
        .await
        .expect("token signed with the new key");
    client_after
        .call_tool("current_time_by_timezone", json!({"tz_name": "UTC"}))
        .await
        .expect("new key");
    client
        .call_tool("current_time_by_timezone", json!({"tz_name": "UTC"}))
        .await
        .expect("old key still published");
    assert!(
        stack.auth.process.output().contains(&new_kid),
        "the refresh installed the new key"
    );

    // The IdP goes away: cached keys keep serving, also for tokens not seen before.
    let unseen = stack.idp.token("operator-agent").await;
    stack.idp.process.stop();
    client
        .call_tool("current_time_by_timezone", json!({"tz_name": "UTC"}))
        .await
        .expect("IdP down, cached token");
    let fresh = connect(&stack, "fininfo", &unseen)
        .await
        .expect("IdP down, first sight of a token");
    fresh
        .call_tool("get_stock_aggregates", stock_args())
        .await
        .expect("IdP down, verified with cached keys");
    fresh.close().await.unwrap();
    client.close().await.unwrap();
    client_after.close().await.unwrap();
}

/// Progress notifications of a long tool call arrive as they are sent (SSE, no buffering).
pub async fn sse_progress_streams_through_the_gateway_without_buffering(front: Front) {
    let stack = GatewayStack::start_behind(front, Profile::Oidc, &[]).await;
    let admin = stack.idp.token("admin-agent").await;
    let client = connect(&stack, "currenttime", &admin)
        .await
        .expect("admin initializes");
    assert_countdown_streams(&client).await;
    client.close().await.unwrap();
}

/// A 4-step `countdown` on `client`'s currenttime session: its progress notifications arrive
/// as they are sent (at least 0.6 s from first to last), not in one burst from a buffer.
pub async fn assert_countdown_streams(client: &McpClient) {
    let (_, events) = client
        .call_tool_with_progress("countdown", json!({"steps": 4}))
        .await
        .expect("countdown");
    assert_eq!(events.len(), 4);
    let spread = events.last().unwrap().at.duration_since(events[0].at);
    assert!(
        spread >= Duration::from_millis(600),
        "events arrived together ({spread:?}): the gateway buffers"
    );
}

/// The official Python MCP SDK client works through the gateway, and sees a 403 as one.
pub async fn official_python_sdk_client_through_the_gateway(front: Front) {
    let python = repo_root().join(".venv/bin/python");
    require(
        "the Python MCP SDK in .venv",
        python.exists(),
        "python3 -m venv .venv && .venv/bin/pip install -r integration-tests/python/requirements.txt",
    );
    let stack = GatewayStack::start_behind(front, Profile::Oidc, &[]).await;
    let operator = stack.idp.token("operator-agent").await;
    let output = tokio::process::Command::new(python)
        .arg(repo_root().join("integration-tests/python/mcp_check.py"))
        .args(["--url", &stack.url("fininfo")])
        .args(["--header", &format!("X-Authorization=Bearer {operator}")])
        .args([
            "--call",
            "get_stock_aggregates",
            "--args",
            &stock_args().to_string(),
        ])
        .args([
            "--call",
            "print_stock_data",
            "--args",
            &stock_args().to_string(),
        ])
        .output()
        .await
        .expect("python runs");
    let report = python_report(&output);
    // The operator sees the tools its entries name, not delete_all_portfolios.
    assert_eq!(
        report["tools"],
        json!(["get_stock_aggregates", "print_stock_data"]),
        "{report}"
    );
    assert_eq!(report["calls"][0]["ok"], true, "{report}");
    assert_eq!(report["calls"][1]["ok"], false, "{report}");
    assert_eq!(report["calls"][1]["http_status"], 403, "{report}");
}

/// The JSON report of a successful integration-tests/python/mcp_check.py run whose session
/// initialized; fails with its stderr otherwise.
pub fn python_report(output: &std::process::Output) -> Value {
    assert!(
        output.status.success(),
        "mcp_check.py failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_slice(&output.stdout).expect("one JSON report");
    assert_eq!(report["initialized"], true, "{report}");
    report
}

/// Gateway-level refusals: a server the gateway does not know is 404 without a check; a
/// client-sent `X-Original-URI`/`-URL`/`-Method` cannot make auth-server judge another target
/// than the one the gateway routes to; with auth-server gone every request is a 503. None of
/// these reaches an upstream.
pub async fn unknown_server_smuggled_target_and_unreachable_auth_server_never_reach_the_upstream(
    front: Front,
) {
    let mut stack = GatewayStack::start_behind(front, Profile::Oidc, &[]).await;
    let admin = stack.idp.token("admin-agent").await;
    let list = json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{
        "protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}})
    .to_string();

    let response = post(&stack, "nosuchserver", Some(&admin), list.clone()).await;
    assert_eq!(response.status(), 404);
    let body: Value = response.json().await.expect("404 is JSON");
    assert_eq!(body["error"], "not_found");

    // Admin may call any tool on currenttime but not delete_all_portfolios on fininfo: a
    // client naming currenttime as the "original" target of a fininfo call must not win.
    let smuggled = reqwest::Client::new()
        .post(stack.url("fininfo"))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("x-authorization", format!("Bearer {admin}"))
        .header("x-original-uri", "/currenttime/mcp")
        .header("x-original-url", "http://gateway/currenttime/mcp")
        .header("x-original-method", "POST")
        .body(tools_call("delete_all_portfolios").to_string())
        .send()
        .await
        .expect("gateway answers");
    assert_eq!(smuggled.status(), 403);
    let body: Value = smuggled.json().await.expect("403 is JSON");
    assert_eq!(body["server"], "fininfo", "{body}");
    assert!(stack.fininfo.log().is_empty() && stack.currenttime.log().is_empty());

    // The same request is allowed while auth-server runs...
    let response = post(&stack, "fininfo", Some(&admin), list.clone()).await;
    assert_eq!(response.status(), 200);
    assert_eq!(stack.fininfo.log().len(), 1);

    // ...and refused once it is gone: no decision, no upstream call.
    stack.auth.process.stop();
    stack.fininfo.log().clear();
    for _ in 0..3 {
        let response = post(&stack, "fininfo", Some(&admin), list.clone()).await;
        assert_eq!(response.status(), 503);
        let body: Value = response.json().await.expect("503 is JSON");
        assert_eq!(body["error"], "auth_unavailable", "{body}");
    }
    assert!(
        stack.fininfo.log().is_empty(),
        "a request reached the upstream without a decision"
    );
}

/// A raw request at the edges of HTTP or of the contract, its expected status, and whether the
/// answer must be JSON with `error` (every refusal is; an allow is the MCP server's own answer).
struct Edge {
    what: &'static str,
    bytes: Vec<u8>,
    status: u16,
    /// A text the answer (a header or the body) must contain.
    says: Option<&'static str>,
}

impl Edge {
    fn new(what: &'static str, request: RawRequest, status: u16) -> Edge {
        Edge {
            what,
            bytes: request.to_bytes(),
            status,
            says: None,
        }
    }

    fn raw(what: &'static str, bytes: &[u8], status: u16) -> Edge {
        Edge {
            what,
            bytes: bytes.to_vec(),
            status,
            says: None,
        }
    }

    fn saying(mut self, text: &'static str) -> Edge {
        self.says = Some(text);
        self
    }
}

/// A body-less request with the given request line and ingress token, as raw bytes.
fn request_line(line: &str, bearer: &str) -> Vec<u8> {
    format!(
        "{line}\r\nHost: 127.0.0.1\r\nConnection: close\r\nX-Authorization: {bearer}\r\nContent-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

fn answer_text(response: &RawResponse) -> String {
    let headers: Vec<String> = response
        .headers
        .iter()
        .map(|(name, value)| format!("{name}: {value}"))
        .collect();
    format!("{}\n{}", headers.join("\n"), response.text())
}

/// Requests that a gateway's own parser refuses, that carry more headers than it reads, or that
/// test the contract's edges (the ingress token sent twice, a repeated egress token, path
/// parameters, double encoding, a client-sent removal list) get the same status and a JSON
/// answer behind every gateway, and none of them reaches an MCP server unchecked; an allowed
/// request's `Mcp-Param-*` headers reach it untouched.
pub async fn requests_at_the_edges_get_the_same_json_answer_on_every_gateway(front: Front) {
    let stack = GatewayStack::start_behind(front, Profile::Oidc, &[]).await;
    let admin = stack.idp.token("admin-agent").await;
    let bearer = format!("Bearer {admin}");
    let list = json!({"jsonrpc":"2.0","id":1,"method":"tools/list"}).to_string();
    let post =
        |target: &str| RawRequest::post(target, list.clone()).header("X-Authorization", &bearer);
    let huge = "x".repeat(64 * 1024);
    let edges = [
        Edge::raw(
            "lower-case method",
            &request_line("post /fininfo/mcp HTTP/1.1", &bearer),
            400,
        ),
        Edge::raw(
            "%00 in the path",
            &request_line("POST /fininfo/m%00cp HTTP/1.1", &bearer),
            400,
        ),
        Edge::raw(
            "a space in the path",
            &request_line("POST /fininfo/m cp HTTP/1.1", &bearer),
            400,
        ),
        Edge::new(
            "a 64 KiB header",
            post("/fininfo/mcp").header("X-Padding", &huge),
            431,
        ),
        Edge::new(
            "the ingress token sent again as the egress token",
            post("/fininfo/mcp").header("Authorization", &bearer),
            400,
        )
        .saying("ingress token is also in"),
        Edge::new(
            "repeated egress Authorization",
            post("/fininfo/mcp")
                .header("Authorization", "Bearer egress-a")
                .header("Authorization", "Bearer egress-b"),
            400,
        ),
        Edge::new(
            "repeated X-Authorization",
            post("/fininfo/mcp").header("X-Authorization", &bearer),
            401,
        )
        .saying("X-Authorization is repeated"),
        Edge::new(
            "`..;` path parameter",
            post("/currenttime/..;/fininfo/mcp"),
            400,
        ),
        Edge::new("`;` in a segment", post("/fininfo/mcp;jsessionid=1"), 400),
        Edge::new(
            "double-encoded dots",
            post("/currenttime/%252e%252e/fininfo/mcp"),
            400,
        ),
        Edge::new("double-encoded slash", post("/fininfo/a%252fb/mcp"), 400),
    ];
    let mut failures = Vec::new();
    for edge in &edges {
        let response = raw_http(stack.gateway.addr(), &edge.bytes).await;
        let text = answer_text(&response);
        let json_error = response
            .json()
            .is_some_and(|body| body.get("error").is_some());
        if response.status != edge.status || !json_error {
            failures.push(format!(
                "{}: expected {} with a JSON error, got {}:\n{text}",
                edge.what, edge.status, response.status
            ));
        } else if let Some(says) = edge.says
            && !text.contains(says)
        {
            failures.push(format!(
                "{}: the answer does not say {says:?}:\n{text}",
                edge.what
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{front:?}: {} of {} edges answered otherwise:\n{}",
        failures.len(),
        edges.len(),
        failures.join("\n")
    );
    assert!(
        stack.fininfo.log().is_empty() && stack.currenttime.log().is_empty(),
        "a refused request reached an MCP server"
    );

    // An allowed request carrying a client-made removal list: the list is the gateway's to
    // make, and the upstream never sees the client's.
    let response = post("/fininfo/mcp")
        .header("X-Envoy-Auth-Headers-To-Remove", "x-user,x-scopes")
        // MCP 2026-07-28: intermediaries forward Mcp-Param-* untouched.
        .header("Mcp-Param-Region", "us-west1")
        .header("Mcp-Param-Greeting", "=?base64?SGVsbG8sIOS4lueVjA==?=")
        .send(stack.gateway.addr())
        .await;
    assert_ne!(response.status, 401, "{}", answer_text(&response));
    let reached = stack.fininfo.log().requests();
    assert_eq!(reached.len(), 1, "{}", answer_text(&response));
    assert!(
        reached[0]
            .header("x-envoy-auth-headers-to-remove")
            .is_none(),
        "a client-sent x-envoy-auth-headers-to-remove reached the upstream"
    );
    assert_eq!(reached[0].header("x-user").as_deref(), Some("admin-agent"));
    assert_eq!(
        reached[0].header("mcp-param-region").as_deref(),
        Some("us-west1")
    );
    assert_eq!(
        reached[0].header("mcp-param-greeting").as_deref(),
        Some("=?base64?SGVsbG8sIOS4lueVjA==?=")
    );
}

/// People in a browser: a person signs in through the gateway at the real IdP (over HTTP, the
/// login form filled in), and the session cookie is then checked on the MCP routes like a
/// token: the same policy, `X-Auth-Method: session`, the cookie never upstream, a cross-site
/// POST refused, a token deciding alone when both come, and a browser without a session sent
/// to sign-in while an API client keeps its 401.
pub async fn a_person_signed_in_is_checked_by_the_session_cookie_like_a_token(front: Front) {
    let stack = GatewayStack::start_with_sign_in(front).await;
    let (user, password, _) = crate::stack::DEMO_PERSON;
    let cookie = crate::people::sign_in(&stack.origin(), user, password)
        .await
        .unwrap_or_else(|err| panic!("{front:?}: sign-in failed: {err}"));
    let cookie_header = format!("mcp_session={cookie}");

    // A real MCP client with the cookie, as the gateway's own page would send it.
    let options = ConnectOptions::default()
        .header("cookie", &cookie_header)
        .header("origin", &stack.origin())
        .header("sec-fetch-site", "same-origin");
    let client = McpClient::connect_with(&stack.url("fininfo"), options)
        .await
        .unwrap_or_else(|err| panic!("{front:?}: the session opens an MCP session: {err:?}"));
    let result = client
        .call_tool("get_stock_aggregates", stock_args())
        .await
        .expect("the operator group may call get_stock_aggregates");
    assert!(!result_text(&result).is_empty());
    assert_forbidden(
        client.call_tool("print_stock_data", stock_args()).await,
        "the operator group may not call print_stock_data",
    );
    client.close().await.unwrap();
    let calls = stack.fininfo.log().requests_with_method("tools/call");
    assert_eq!(
        calls.len(),
        1,
        "{front:?}: only the allowed call reached fininfo"
    );
    assert_eq!(calls[0].header("x-auth-method").as_deref(), Some("session"));
    assert_eq!(calls[0].header("x-username").as_deref(), Some(user));
    assert!(
        stack
            .fininfo
            .log()
            .requests()
            .iter()
            .all(|request| request.header("cookie").is_none()),
        "{front:?}: the session cookie reached the MCP server"
    );

    // A cross-site POST with the person's cookie.
    let call = tools_call("get_stock_aggregates").to_string();
    let response = reqwest::Client::new()
        .post(stack.url("fininfo"))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("cookie", &cookie_header)
        .header("origin", "http://evil.example")
        .header("sec-fetch-site", "cross-site")
        .body(call)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403, "{front:?}: cross-site POST");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "cross_site_request", "{front:?}: {body}");

    // A token and the cookie: the admin token decides (print_stock_data is the admin's).
    let admin = stack.idp.token("admin-agent").await;
    let options = ConnectOptions::default()
        .ingress_token(&admin)
        .header("cookie", &cookie_header);
    let client = McpClient::connect_with(&stack.url("fininfo"), options)
        .await
        .unwrap();
    client
        .call_tool("print_stock_data", stock_args())
        .await
        .expect("the token decides alone");
    client.close().await.unwrap();
    let last = stack.fininfo.log().requests_with_method("tools/call");
    assert_eq!(
        last.last()
            .and_then(|r| r.header("x-auth-method"))
            .as_deref(),
        Some("oidc")
    );

    // Without a session: a browser navigation is sent to sign-in, an API client gets the 401.
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = no_redirects
        .get(stack.url("fininfo"))
        .header("accept", "text/html,application/xhtml+xml,*/*;q=0.8")
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        302,
        "{front:?}: a browser goes to sign-in"
    );
    assert_eq!(
        response.headers()["location"],
        "/oauth2/start?rd=%2Ffininfo%2Fmcp",
        "{front:?}"
    );
    let response = no_redirects
        .get(stack.url("fininfo"))
        .header("accept", "application/json, text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        401,
        "{front:?}: an API client keeps the 401"
    );
    assert!(response.headers().contains_key("www-authenticate"));
}
