//! examples/agent.py — the guide's agent pattern (langchain-mcp-adapters' MultiServerMCPClient)
//! — run in its own venv against the local stack, from the configs credentials-provider wrote
//! and from the ingress token alone: tools listed and called through nginx and auth-server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Stdio;

use common::{Workspace, gateway_base, listed_to_admin};
use integration_tests::mcp_servers::ServerKind;
use integration_tests::stack::{GatewayStack, Profile, repo_root, require};
use serde_json::Value;

/// Runs the example with `args` from the workspace; returns the exit code, stdout, stderr.
async fn agent(ws: &Workspace, args: &[&str]) -> (Option<i32>, String, String) {
    let python = repo_root().join(".venv-agent/bin/python");
    require(
        "the agent example's venv (.venv-agent with langchain-mcp-adapters)",
        python.exists(),
        "run scripts/setup.sh",
    );
    let output = tokio::time::timeout(
        common::RUN_LIMIT,
        tokio::process::Command::new(python)
            .arg(repo_root().join("examples/agent.py"))
            .args(args)
            .current_dir(ws.path())
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("agent.py finished in time")
    .expect("agent.py runs");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn the_agent_example_lists_and_calls_tools_through_the_gateway() {
    let stack = GatewayStack::start(Profile::Oidc, &[]).await;
    let mut ws = Workspace::new();
    ws.ingress(&stack.idp, "admin-agent")
        .set("GATEWAY_URL", gateway_base(&stack))
        .set("GATEWAY_MCP_SERVERS", "currenttime,fininfo");
    ws.run(&["ingress", "--vscode-format", "settings"])
        .await
        .ok();

    // From the generated config (the guide's settings shape).
    let (code, stdout, stderr) = agent(
        &ws,
        &[
            "--config",
            ".oauth-tokens/vscode_mcp.json",
            "--call",
            "currenttime",
            "current_time_by_timezone",
            r#"{"tz_name": "UTC"}"#,
        ],
    )
    .await;
    assert_eq!(code, Some(0), "{stderr}");
    let report: Value =
        serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert_eq!(
        report["tools"]["currenttime"],
        serde_json::json!(listed_to_admin(ServerKind::CurrentTime))
    );
    assert_eq!(
        report["tools"]["fininfo"],
        serde_json::json!(listed_to_admin(ServerKind::FinInfo))
    );
    let result = report["calls"][0]["result"].as_str().unwrap();
    assert!(result.contains("UTC"), "{result}");
    assert_eq!(
        stack
            .currenttime
            .log()
            .requests_with_method("tools/call")
            .len(),
        1
    );

    // From the ingress token alone, as the guide's direct configuration.
    let (code, stdout, stderr) = agent(
        &ws,
        &[
            "--ingress",
            ".oauth-tokens/ingress.json",
            "--gateway-url",
            &gateway_base(&stack),
            "--server",
            "fininfo",
            "--call",
            "fininfo",
            "get_stock_aggregates",
            r#"{"stock_ticker": "AAPL", "from_date": "2026-01-05", "to_date": "2026-01-09"}"#,
        ],
    )
    .await;
    assert_eq!(code, Some(0), "{stderr}");
    let report: Value = serde_json::from_str(stdout.trim()).unwrap();
    let bars: Value = serde_json::from_str(report["calls"][0]["result"].as_str().unwrap()).unwrap();
    assert_eq!(bars["ticker"], "AAPL");
    assert_eq!(bars["status"], "OK");

    // The gateway's refusal reaches the agent: a read-only client may list, not call.
    ws.ingress(&stack.idp, "readonly-agent");
    ws.run(&["ingress"]).await.ok();
    let (code, _, stderr) = agent(
        &ws,
        &[
            "--call",
            "currenttime",
            "current_time_by_timezone",
            r#"{"tz_name": "UTC"}"#,
        ],
    )
    .await;
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("403"), "{stderr}");
}
