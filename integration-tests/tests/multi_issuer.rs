//! Several trusted issuers through nginx, with two real identity providers on loopback: a
//! Cognito-shaped one for agents and an OIDC one for people (oidc-provider), plus a third
//! issuer that is down. Each issuer's tokens are verified with its own keys; the upstream and
//! the decision log name the issuer that vouched; one issuer down stops only its own tokens,
//! and `/readyz` says which; RFC 9728 metadata lists every authorization server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use integration_tests::mcp_client::{ClientError, ConnectOptions, McpClient};
use integration_tests::mcp_servers::{ServerKind, spawn_server};
use integration_tests::stack::{AuthServer, Idp, IdpOptions, Nginx, free_port, repo_root};
use serde_json::{Value, json};

const AGENTS_ISS: &str = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Agents";

async fn listener() -> tokio::net::TcpListener {
    tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap()
}

#[tokio::test]
async fn each_issuer_vouches_for_its_own_callers_and_one_down_stops_only_its_own() {
    let workdir = tempfile::tempdir().unwrap();
    let agents = Idp::start(
        IdpOptions {
            cognito: true,
            issuer: Some(AGENTS_ISS.into()),
            keys_file: Some(workdir.path().join("agents-keys.json")),
        },
        workdir.path(),
    )
    .await;
    let people = Idp::start(
        IdpOptions {
            keys_file: Some(workdir.path().join("people-keys.json")),
            ..Default::default()
        },
        workdir.path(),
    )
    .await;
    // A third trusted issuer whose IdP is gone before auth-server starts: it never has keys.
    let mut gone = Idp::start(
        IdpOptions {
            keys_file: Some(workdir.path().join("gone-keys.json")),
            ..Default::default()
        },
        workdir.path(),
    )
    .await;
    let gone_token = gone.token("admin-agent").await;
    gone.process.stop();
    // And an IdP nobody trusts.
    let stranger = Idp::start(
        IdpOptions {
            keys_file: Some(workdir.path().join("stranger-keys.json")),
            ..Default::default()
        },
        workdir.path(),
    )
    .await;

    let issuers = workdir.path().join("issuers.yml");
    std::fs::write(
        &issuers,
        format!(
            "issuers:\n\
             \x20 - name: agents\n    provider: cognito\n    region: us-east-1\n    user_pool_id: us-east-1_Agents\n    jwks_url: {}\n    leeway_seconds: 0\n\
             \x20 - name: people\n    provider: oidc\n    issuer: {}\n    audiences: [mcp-gateway]\n    leeway_seconds: 0\n\
             \x20 - name: gone\n    provider: oidc\n    issuer: {}\n    jwks_url: http://127.0.0.1:{}/jwks\n",
            agents.jwks_uri,
            people.issuer,
            gone.issuer,
            free_port()
        ),
    )
    .unwrap();
    let env = [
        ("AUTH_ISSUERS_FILE", issuers.display().to_string()),
        (
            "AUTH_SCOPES_FILE",
            repo_root().join("scopes.yml").display().to_string(),
        ),
        ("AUTH_LOG_FORMAT", "json".to_owned()),
        (
            "AUTH_RESOURCE_URL",
            "https://gateway.example.com".to_owned(),
        ),
    ];
    let auth = AuthServer::start(&env, workdir.path()).await;
    let http = reqwest::Client::new();
    // Ready for two issuers, not for the third: /readyz names it.
    let readyz = format!("http://{}/readyz", auth.addr);
    let mut ready: Value = Value::Null;
    for _ in 0..100 {
        ready = http
            .get(&readyz)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if ready["issuers_not_ready"] == json!(["gone"]) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(ready["issuers_not_ready"], json!(["gone"]), "{ready}");

    let fininfo = spawn_server(ServerKind::FinInfo, listener().await).await;
    let currenttime = spawn_server(ServerKind::CurrentTime, listener().await).await;
    let nginx = Nginx::start(
        auth.addr,
        &[
            ("fininfo", fininfo.addr()),
            ("currenttime", currenttime.addr()),
        ],
        workdir.path(),
    )
    .await;

    // An agent with a Cognito-shaped token, and a person's OIDC token: both served, each
    // named by its issuer upstream.
    let agent = agents.token("operator-agent").await;
    let person = people.token("operator-agent").await;
    for (token, auth_method) in [(&agent, "cognito:agents"), (&person, "oidc:people")] {
        fininfo.log().clear();
        let client = McpClient::connect_with(
            &nginx.url("fininfo"),
            ConnectOptions::default().ingress_token(token),
        )
        .await
        .unwrap_or_else(|err| panic!("{auth_method}: {err:?}"));
        client
            .call_tool(
                "get_stock_aggregates",
                json!({"stock_ticker": "AAPL", "from_date": "2026-01-01", "to_date": "2026-01-31"}),
            )
            .await
            .unwrap_or_else(|err| panic!("{auth_method}: {err:?}"));
        client.close().await.unwrap();
        let requests = fininfo.log().requests();
        assert!(!requests.is_empty());
        for request in requests {
            assert_eq!(
                request.header("x-auth-method").as_deref(),
                Some(auth_method)
            );
        }
    }

    // A token from an issuer nobody trusts: 401 that says so.
    let foreign = stranger.token("admin-agent").await;
    let refused = McpClient::connect_with(
        &nginx.url("fininfo"),
        ConnectOptions::default().ingress_token(&foreign),
    )
    .await;
    match refused {
        Err(ClientError::Http {
            status: 401,
            www_authenticate,
            ..
        }) => assert!(
            www_authenticate
                .unwrap_or_default()
                .contains("another issuer"),
            "the challenge names the issuer problem"
        ),
        other => panic!("a stranger's token: {other:?}"),
    }

    // The issuer that is down: its tokens get 503 (no key set), the others' keep working.
    let refused = McpClient::connect_with(
        &nginx.url("currenttime"),
        ConnectOptions::default().ingress_token(&gone_token),
    )
    .await;
    assert!(
        matches!(refused, Err(ClientError::Http { status: 503, .. })),
        "{refused:?}"
    );
    let still = McpClient::connect_with(
        &nginx.url("currenttime"),
        ConnectOptions::default().ingress_token(&agent),
    )
    .await
    .expect("the agents' issuer keeps serving");
    still.close().await.unwrap();

    // RFC 9728: every issuer is an authorization server of the gateway.
    let metadata: Value = http
        .get(format!(
            "http://{}/.well-known/oauth-protected-resource",
            auth.addr
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        metadata["authorization_servers"],
        json!([AGENTS_ISS, people.issuer, gone.issuer]),
        "{metadata}"
    );

    // The decision log names the issuer that vouched, and never a token.
    let log = auth.process.output();
    let decisions: Vec<Value> = log
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line["target"] == "decision")
        .collect();
    for issuer in ["agents", "people"] {
        assert!(
            decisions
                .iter()
                .any(|d| d["result"] == "allow" && d["issuer"] == issuer),
            "no allow line names {issuer}"
        );
    }
    assert!(
        decisions
            .iter()
            .any(|d| d["reason"] == "no_key_set" && d["issuer"] == "gone")
    );
    for token in [&agent, &person, &foreign, &gone_token] {
        assert!(!log.contains(token.rsplit('.').next().unwrap()));
    }
}
