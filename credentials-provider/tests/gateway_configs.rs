//! End to end through the real gateway (IdP, auth-server binary, nginx with deploy/nginx, rmcp
//! MCP servers): the MCP client configurations credentials-provider writes are parsed back and
//! used by a real MCP client (rmcp) to list tools, and the `mcp` command checks connections and
//! explains refusals.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{
    Workspace, authorize_with, expected_tools, gateway_base, jwt_claims, leftovers,
    list_tools_with, listed_to_admin, mode,
};
use integration_tests::mcp_client::{ConnectOptions, McpClient};
use integration_tests::mcp_servers::ServerKind;
use integration_tests::stack::{COGNITO_POOL, COGNITO_REGION, GatewayStack, Profile};
use serde_json::{Value, json};

#[tokio::test]
async fn generated_configs_list_tools_through_nginx_with_ingress_and_egress_tokens() {
    let stack = GatewayStack::start(Profile::Oidc, &[]).await;
    let mut ws = Workspace::new();
    ws.ingress(&stack.idp, "admin-agent");
    ws.egress(&stack.idp, "pkce-agent", false, true);
    ws.set("EGRESS_MCP_SERVER_NAME_1", "fininfo")
        .set("GATEWAY_URL", gateway_base(&stack))
        .set("GATEWAY_MCP_SERVERS", "currenttime,fininfo");
    // The user's own configs, with servers of their own.
    let vscode_user = ws.path().join(".vscode/mcp.json");
    std::fs::create_dir_all(vscode_user.parent().unwrap()).unwrap();
    std::fs::write(
        &vscode_user,
        r#"{"inputs": [{"id": "key", "type": "promptString"}], "servers": {"local-tool": {"type": "stdio", "command": "local-tool"}}}"#,
    )
    .unwrap();

    // `all` (the default): ingress, then the egress authorization in the "browser".
    let (run, _) = authorize_with(
        &ws,
        &[
            "--no-browser",
            "--callback-timeout",
            "30",
            "--update-user-configs",
        ],
        "alice",
    )
    .await;
    run.ok();
    assert!(
        run.stderr.contains("MCP client configs (2 server(s))"),
        "{}",
        run.stderr
    );

    for file in ["vscode_mcp.json", "mcp.json"] {
        assert_eq!(mode(&ws.tokens().join(file)), 0o600, "{file}");
    }
    let ingress = ws.read_json("ingress.json")["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let egress = ws.read_json("testidp-egress.json")["access_token"]
        .as_str()
        .unwrap()
        .to_owned();

    let vscode = ws.read_json("vscode_mcp.json");
    assert_eq!(
        vscode["servers"]["currenttime"],
        json!({"type": "http", "url": stack.url("currenttime"),
               "headers": {"X-Authorization": format!("Bearer {ingress}")}})
    );
    assert_eq!(
        vscode["servers"]["fininfo"]["headers"],
        json!({"X-Authorization": format!("Bearer {ingress}"), "Authorization": format!("Bearer {egress}")})
    );
    let all = [
        ("currenttime", ServerKind::CurrentTime),
        ("fininfo", ServerKind::FinInfo),
    ];
    assert_eq!(
        list_tools_with(&vscode["servers"], "http").await,
        expected_tools(&all)
    );
    let roocode = ws.read_json("mcp.json");
    assert_eq!(
        list_tools_with(&roocode["mcpServers"], "streamable-http").await,
        expected_tools(&all)
    );

    // fininfo got the egress token, never the ingress one; the identity is the ingress client.
    let requests = stack.fininfo.log().requests();
    assert!(!requests.is_empty());
    for request in &requests {
        assert_eq!(
            request.header("authorization"),
            Some(format!("Bearer {egress}"))
        );
        assert_eq!(request.header("x-authorization"), None);
        assert_eq!(request.header("x-user").as_deref(), Some("admin-agent"));
    }
    for request in stack.currenttime.log().requests() {
        assert_eq!(request.header("authorization"), None);
        assert_eq!(request.header("x-authorization"), None);
    }

    // The user's VS Code config kept its own server and inputs and gained the gateway's.
    let merged: Value =
        serde_json::from_str(&std::fs::read_to_string(&vscode_user).unwrap()).unwrap();
    assert_eq!(merged["inputs"][0]["id"], "key");
    assert_eq!(merged["servers"]["local-tool"]["command"], "local-tool");
    assert_eq!(merged["servers"]["fininfo"], vscode["servers"]["fininfo"]);
    assert_eq!(mode(&vscode_user), 0o600);
    let roocode_user = ws.path().join(".roocode/mcp_servers.json");
    let roocode_merged: Value =
        serde_json::from_str(&std::fs::read_to_string(&roocode_user).unwrap()).unwrap();
    assert_eq!(roocode_merged["mcpServers"], roocode["mcpServers"]);
    let mut user_servers = merged.clone();
    user_servers["servers"]
        .as_object_mut()
        .unwrap()
        .remove("local-tool");
    assert_eq!(
        list_tools_with(&user_servers["servers"], "http").await,
        expected_tools(&all)
    );

    // `mcp --provider` sends the stored egress token along.
    stack.fininfo.log().clear();
    let list = ws
        .run(&[
            "mcp",
            "--server",
            "fininfo",
            "--provider",
            "testidp",
            "list",
        ])
        .await;
    list.ok();
    assert_eq!(
        list.stdout.lines().count(),
        listed_to_admin(ServerKind::FinInfo).len(),
        "{}",
        list.stdout
    );
    let requests = stack.fininfo.log().requests();
    assert!(!requests.is_empty());
    for request in &requests {
        assert_eq!(
            request.header("authorization"),
            Some(format!("Bearer {egress}"))
        );
    }
}

#[tokio::test]
async fn cognito_configs_carry_the_pool_headers_the_gateway_checks() {
    let stack = GatewayStack::start(Profile::Cognito, &[]).await;
    let mut ws = Workspace::new();
    ws.set("INGRESS_OAUTH_USER_POOL_ID", COGNITO_POOL)
        .set("AWS_REGION", COGNITO_REGION)
        .set("INGRESS_OAUTH_CLIENT_ID", "operator-agent")
        .set("INGRESS_OAUTH_CLIENT_SECRET", "operator-agent-secret")
        .set("INGRESS_OAUTH_TOKEN_URL", stack.idp.token_endpoint.clone())
        .set("GATEWAY_URL", format!("{}/", gateway_base(&stack)))
        .set("GATEWAY_MCP_SERVERS", "currenttime fininfo");
    ws.run(&["--ingress-only"]).await.ok();
    let vscode = ws.read_json("vscode_mcp.json");
    let headers = &vscode["servers"]["currenttime"]["headers"];
    assert_eq!(headers["X-User-Pool-Id"], COGNITO_POOL);
    assert_eq!(headers["X-Region"], COGNITO_REGION);
    assert_eq!(headers["X-Client-Id"], "operator-agent");
    assert_eq!(
        list_tools_with(&vscode["servers"], "http").await,
        expected_tools(&[
            ("currenttime", ServerKind::CurrentTime),
            ("fininfo", ServerKind::FinInfo)
        ])
    );
    // The headers are checked by the gateway: a wrong pool is refused (so they are not decor).
    let mut options = ConnectOptions::default();
    for (header, value) in headers.as_object().unwrap() {
        options = options.header(header, value.as_str().unwrap());
    }
    let refused = McpClient::connect_with(
        &stack.url("currenttime"),
        options.header("X-User-Pool-Id", "us-east-1_OtherPool"),
    )
    .await
    .expect_err("a pool that is not the gateway's");
    assert_eq!(refused.status(), Some(401));
}

#[tokio::test]
async fn the_mcp_command_pings_lists_calls_and_explains_refusals() {
    let stack = GatewayStack::start(Profile::Oidc, &[]).await;
    let mut ws = Workspace::new();
    ws.ingress(&stack.idp, "admin-agent")
        .set("GATEWAY_URL", gateway_base(&stack));

    // `basic`: reachability without credentials, before any token exists.
    let basic = ws.run(&["mcp", "--server", "currenttime", "basic"]).await;
    basic.ok();
    assert!(
        basic
            .stdout
            .contains("answered HTTP 401 Unauthorized without credentials"),
        "{}",
        basic.stdout
    );
    assert!(
        basic.stdout.contains("WWW-Authenticate: Bearer"),
        "{}",
        basic.stdout
    );
    assert!(
        stack.currenttime.log().requests().is_empty(),
        "nothing reached the MCP server"
    );
    let unknown = ws
        .run(&["mcp", "--server", "no-such-server", "basic"])
        .await;
    assert_eq!(unknown.code, Some(1), "{}", unknown.stderr);
    assert!(
        unknown.stderr.contains("reachable, but"),
        "{}",
        unknown.stderr
    );
    let closed = format!(
        "http://127.0.0.1:{}/currenttime/mcp",
        integration_tests::stack::free_port()
    );
    let unreachable = ws.run(&["mcp", "--url", &closed, "basic"]).await;
    assert_eq!(unreachable.code, Some(1));
    assert!(
        unreachable.stderr.contains("not reachable:"),
        "{}",
        unreachable.stderr
    );

    ws.run(&["ingress"]).await.ok();

    let ping = ws.run(&["mcp", "--server", "currenttime", "ping"]).await;
    ping.ok();
    assert!(
        ping.stdout.starts_with("ok: currenttime "),
        "{}",
        ping.stdout
    );
    assert!(stack.currenttime.log().requests_with_method("ping").len() == 1);

    let list = ws
        .run(&["mcp", "--url", &stack.url("fininfo"), "list"])
        .await;
    list.ok();
    let names: Vec<&str> = list
        .stdout
        .lines()
        .map(|l| l.split('\t').next().unwrap())
        .collect();
    // The admin sees what it may use: not delete_all_portfolios.
    assert_eq!(names, listed_to_admin(ServerKind::FinInfo));
    let json_list = ws
        .run(&["mcp", "--server", "fininfo", "--json", "list"])
        .await;
    json_list.ok();
    let tools: Value = serde_json::from_str(json_list.stdout.trim()).unwrap();
    assert_eq!(tools.as_array().unwrap().len(), 2);

    // Progress notifications come first on the SSE stream; the answer is found after them.
    let call = ws
        .run(&[
            "mcp",
            "--server",
            "currenttime",
            "call",
            "countdown",
            r#"{"steps": 2}"#,
        ])
        .await;
    call.ok();
    assert_eq!(call.stdout.trim(), "countdown of 2 steps finished");

    // A tool nobody may call: 403, with the reason and the scopes that would do.
    let forbidden = ws
        .run(&[
            "mcp",
            "--server",
            "fininfo",
            "call",
            "delete_all_portfolios",
        ])
        .await;
    assert_eq!(forbidden.code, Some(1));
    assert!(
        forbidden.stderr.contains("refused: HTTP 403 Forbidden"),
        "{}",
        forbidden.stderr
    );
    assert!(
        forbidden.stderr.contains("reason: insufficient_scope"),
        "{}",
        forbidden.stderr
    );
    assert!(
        forbidden
            .stderr
            .contains("not allowed: server fininfo, method tools/call, tool delete_all_portfolios"),
        "{}",
        forbidden.stderr
    );

    // A read-only client may list but not call.
    ws.ingress(&stack.idp, "readonly-agent");
    ws.run(&["ingress"]).await.ok();
    let denied = ws
        .run(&[
            "mcp",
            "--server",
            "currenttime",
            "call",
            "current_time_by_timezone",
            r#"{"tz_name":"UTC"}"#,
        ])
        .await;
    assert_eq!(denied.code, Some(1));
    assert!(denied.stderr.contains("HTTP 403"), "{}", denied.stderr);
    assert!(
        denied
            .stderr
            .contains("scopes that would allow it: mcp-servers-restricted/execute"),
        "{}",
        denied.stderr
    );

    // A token the gateway does not accept: 401 with the WWW-Authenticate reason.
    let mut stored = ws.read_json("ingress.json");
    let token = stored["access_token"].as_str().unwrap().to_owned();
    let (rest, signature) = token.rsplit_once('.').unwrap();
    let flipped = if signature.starts_with('A') { "B" } else { "A" };
    stored["access_token"] = format!("{rest}.{flipped}{}", &signature[1..]).into();
    ws.write_json("ingress.json", &stored);
    let unauthorized = ws.run(&["mcp", "--server", "currenttime", "ping"]).await;
    assert_eq!(unauthorized.code, Some(1));
    assert!(
        unauthorized
            .stderr
            .contains("refused: HTTP 401 Unauthorized"),
        "{}",
        unauthorized.stderr
    );
    assert!(
        unauthorized.stderr.contains("reason: invalid_token"),
        "{}",
        unauthorized.stderr
    );
    assert!(
        unauthorized.stderr.contains("WWW-Authenticate: Bearer"),
        "{}",
        unauthorized.stderr
    );
    assert!(
        !unauthorized.stderr.contains(rest),
        "the token is not echoed"
    );

    // No token at all: the command says what to run.
    std::fs::remove_file(ws.tokens().join("ingress.json")).unwrap();
    let missing = ws.run(&["mcp", "--server", "currenttime", "ping"]).await;
    assert_eq!(missing.code, Some(1));
    assert!(
        missing
            .stderr
            .contains("run `credentials-provider ingress` first"),
        "{}",
        missing.stderr
    );
}

#[tokio::test]
async fn agentcore_tokens_and_the_guides_config_shapes_work_through_nginx() {
    let stack = GatewayStack::start(Profile::Oidc, &[]).await;
    let mut ws = Workspace::new();
    ws.ingress(&stack.idp, "admin-agent")
        .set("GATEWAY_URL", gateway_base(&stack))
        .set("GATEWAY_MCP_SERVERS", "currenttime")
        .set("GATEWAY_ENTRY_SERVER", "currenttime")
        .set("AGENTCORE_SECRET", "agentcore-agent-secret")
        .set("AGENTCORE_GATEWAYS_FILE", "agentcore.yml");
    // The IdP stands in for the AgentCore gateway's Cognito pool. "direct" is reached at its
    // own URL with its own token only (the stack's gateway validates it, as AgentCore's
    // authorizer would); "routed" goes through the gateway to fininfo.
    std::fs::write(
        ws.path().join("agentcore.yml"),
        format!(
            "gateways:\n  direct:\n    gateway_url: {direct}\n    token_url: {token}\n    client_id: agentcore-agent\n    client_secret_env: AGENTCORE_SECRET\n    scopes: [mcp-servers-restricted/read]\n  routed:\n    gateway_url: https://routed.gateway.example/mcp\n    token_url: {token}\n    client_id: agentcore-agent\n    client_secret_env: AGENTCORE_SECRET\n    server: fininfo\n",
            direct = stack.url("currenttime"),
            token = stack.idp.token_endpoint,
        ),
    )
    .unwrap();

    // `--all` (the default, as a flag), in the guide's VS Code settings shape, with the
    // single-gateway entry and one entry per server.
    let run = ws
        .run(&["--all", "--vscode-format", "settings", "--entries", "both"])
        .await;
    run.ok();
    for name in ["direct", "routed"] {
        assert!(
            run.stderr.contains(&format!(
                "agentcore {name}: new token for client agentcore-agent"
            )),
            "{}",
            run.stderr
        );
        assert_eq!(
            mode(&ws.tokens().join(format!("agentcore-{name}.json"))),
            0o600
        );
    }
    assert!(leftovers(&ws.tokens()).is_empty());
    let direct_token = ws.read_json("agentcore-direct.json")["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let routed_token = ws.read_json("agentcore-routed.json")["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        jwt_claims(&direct_token)["scope"],
        "mcp-servers-restricted/read"
    );
    let ingress = ws.read_json("ingress.json")["access_token"]
        .as_str()
        .unwrap()
        .to_owned();

    let vscode = ws.read_json("vscode_mcp.json");
    assert_eq!(vscode.as_object().unwrap().len(), 1, "only the mcp key");
    let servers = &vscode["mcp"]["servers"];
    assert_eq!(
        servers["direct"],
        json!({"type": "http", "url": stack.url("currenttime"),
               "headers": {"Authorization": format!("Bearer {direct_token}")}}),
        "the ingress token never goes to an AgentCore gateway directly"
    );
    assert_eq!(servers["routed"]["url"], stack.url("fininfo"));
    assert_eq!(
        servers["routed"]["headers"],
        json!({"X-Authorization": format!("Bearer {ingress}"), "Authorization": format!("Bearer {routed_token}")})
    );
    assert_eq!(servers["mcp_gateway"]["url"], stack.url("currenttime"));
    assert_eq!(
        servers["mcp_gateway"]["headers"],
        json!({"X-Authorization": format!("Bearer {ingress}")})
    );
    assert_eq!(
        list_tools_with(servers, "http").await,
        expected_tools(&[
            ("currenttime", ServerKind::CurrentTime),
            ("direct", ServerKind::CurrentTime),
            ("mcp_gateway", ServerKind::CurrentTime),
            ("routed", ServerKind::FinInfo),
        ])
    );
    let roocode = ws.read_json("mcp.json");
    assert_eq!(
        roocode["mcpServers"]["routed"]["headers"],
        servers["routed"]["headers"]
    );
    // The routed AgentCore token reached fininfo in Authorization; the ingress token did not.
    let requests = stack.fininfo.log().requests();
    assert!(!requests.is_empty());
    for request in &requests {
        assert_eq!(
            request.header("authorization"),
            Some(format!("Bearer {routed_token}"))
        );
        assert_eq!(request.header("x-authorization"), None);
    }

    // `--agentcore-only` reuses the fresh tokens; `agentcore --force` gets new ones.
    let again = ws.run(&["--agentcore-only"]).await;
    again.ok();
    assert!(
        again
            .stderr
            .contains("agentcore direct: reused the stored token"),
        "{}",
        again.stderr
    );
    assert!(!again.stderr.contains("ingress"), "{}", again.stderr);
    ws.run(&["agentcore", "--force"]).await.ok();
    assert_ne!(
        ws.read_json("agentcore-direct.json")["access_token"],
        direct_token.as_str()
    );
}
