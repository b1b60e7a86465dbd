//! The ingress token: the client-credentials grant against the real IdP (node oidc-provider on
//! loopback), stored privately and atomically, reused while fresh.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Workspace, jwt_claims, leftovers, mode, start_idp};
use integration_tests::stack::{COGNITO_POOL, COGNITO_REGION, Idp, IdpOptions};

#[tokio::test]
async fn client_credentials_token_is_stored_private_and_reused_until_forced() {
    let mut ws = Workspace::new();
    let idp = start_idp(ws.path()).await;
    ws.ingress(&idp, "admin-agent");

    let first = ws.run(&["ingress"]).await;
    first.ok();
    assert!(
        first
            .stderr
            .contains("ingress (oidc): new token for client admin-agent"),
        "{}",
        first.stderr
    );
    assert_eq!(mode(&ws.tokens()), 0o700);
    assert_eq!(mode(&ws.tokens().join("ingress.json")), 0o600);
    assert!(leftovers(&ws.tokens()).is_empty());
    let stored = ws.read_json("ingress.json");
    let token = stored["access_token"].as_str().unwrap().to_owned();
    let claims = jwt_claims(&token);
    assert_eq!(
        claims["iss"],
        idp.issuer.as_str(),
        "discovery found the IdP's token endpoint"
    );
    assert_eq!(claims["azp"], "admin-agent");
    assert_eq!(stored["token_url"], idp.token_endpoint.as_str());
    assert_eq!(stored["expires_at"], claims["exp"]);
    // The token is never printed unless asked.
    assert!(!first.stderr.contains(&token) && !first.stdout.contains(&token));

    let second = ws.run(&["ingress"]).await;
    second.ok();
    assert!(
        second.stderr.contains("reused the stored token"),
        "{}",
        second.stderr
    );
    assert_eq!(ws.read_json("ingress.json")["access_token"], token.as_str());

    let forced = ws.run(&["ingress", "--force", "--show-tokens"]).await;
    forced.ok();
    let renewed = ws.read_json("ingress.json")["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(renewed, token, "--force gets a new token");
    assert_eq!(
        forced.stdout.trim(),
        format!("ingress\t{renewed}"),
        "--show-tokens prints it"
    );
}

#[tokio::test]
async fn an_expiring_token_or_other_settings_get_a_new_token() {
    let mut ws = Workspace::new();
    let idp = start_idp(ws.path()).await;
    ws.ingress(&idp, "admin-agent");
    ws.run(&["ingress"]).await.ok();
    let mut stored = ws.read_json("ingress.json");
    let token = stored["access_token"].clone();

    // Four minutes left: inside the 5-minute margin.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    stored["expires_at"] = (now + 240).into();
    ws.write_json("ingress.json", &stored);
    let run = ws.run(&["ingress"]).await;
    run.ok();
    assert!(run.stderr.contains("new token"), "{}", run.stderr);
    let renewed = ws.read_json("ingress.json");
    assert_ne!(renewed["access_token"], token);
    assert_eq!(mode(&ws.tokens().join("ingress.json")), 0o600);

    // Another client: the stored token is not reused for it.
    ws.ingress(&idp, "readonly-agent");
    let run = ws.run(&["ingress"]).await;
    run.ok();
    assert!(
        run.stderr.contains("new token for client readonly-agent"),
        "{}",
        run.stderr
    );
    let claims = jwt_claims(
        ws.read_json("ingress.json")["access_token"]
            .as_str()
            .unwrap(),
    );
    assert_eq!(claims["azp"], "readonly-agent");
}

#[tokio::test]
async fn requested_scopes_reach_the_token() {
    let mut ws = Workspace::new();
    let idp = start_idp(ws.path()).await;
    ws.ingress(&idp, "scoped-agent").set(
        "INGRESS_OAUTH_SCOPES",
        "mcp-servers-restricted/read,mcp-servers-restricted/execute",
    );
    ws.run(&["ingress"]).await.ok();
    let claims = jwt_claims(
        ws.read_json("ingress.json")["access_token"]
            .as_str()
            .unwrap(),
    );
    assert_eq!(
        claims["scope"],
        "mcp-servers-restricted/read mcp-servers-restricted/execute"
    );
}

#[tokio::test]
async fn a_refused_grant_fails_clearly_and_stores_nothing() {
    let mut ws = Workspace::new();
    let idp = start_idp(ws.path()).await;
    ws.ingress(&idp, "admin-agent")
        .set("INGRESS_OAUTH_CLIENT_SECRET", "wrong-secret");
    let run = ws.run(&["ingress"]).await;
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(
        run.stderr.contains("refused (401): invalid_client"),
        "{}",
        run.stderr
    );
    assert!(
        !run.stderr.contains("wrong-secret"),
        "the secret is never echoed"
    );
    assert!(!ws.tokens().join("ingress.json").exists());
    assert!(leftovers(&ws.tokens()).is_empty());
}

#[tokio::test]
async fn bad_settings_stop_before_any_request_with_the_variable_named() {
    let mut ws = Workspace::new();
    ws.set("INGRESS_OAUTH_CLIENT_ID", "x");
    let run = ws.run(&["ingress"]).await;
    assert_eq!(run.code, Some(2));
    assert!(
        run.stderr
            .contains("INGRESS_OAUTH_CLIENT_SECRET is not set"),
        "{}",
        run.stderr
    );
    ws.set("INGRESS_OAUTH_CLIENT_SECRET", "s")
        .set("INGRESS_OAUTH_TOKEN_URL", "http://idp.example/token");
    let run = ws.run(&["ingress"]).await;
    assert_eq!(run.code, Some(2));
    assert!(run.stderr.contains("plain http"), "{}", run.stderr);
}

#[tokio::test]
async fn settings_come_from_the_env_file_and_the_environment_wins() {
    let mut ws = Workspace::new();
    let idp = start_idp(ws.path()).await;
    std::fs::write(
        ws.path().join(".env"),
        format!(
            "# ingress\nINGRESS_OAUTH_ISSUER={}\nexport INGRESS_OAUTH_CLIENT_ID=readonly-agent\n\
             INGRESS_OAUTH_CLIENT_SECRET=\"readonly-agent-secret\"\n",
            idp.issuer
        ),
    )
    .unwrap();
    ws.run(&["ingress"]).await.ok();
    let claims = jwt_claims(
        ws.read_json("ingress.json")["access_token"]
            .as_str()
            .unwrap(),
    );
    assert_eq!(claims["azp"], "readonly-agent");

    ws.set("INGRESS_OAUTH_CLIENT_ID", "admin-agent")
        .set("INGRESS_OAUTH_CLIENT_SECRET", "admin-agent-secret");
    ws.run(&["ingress"]).await.ok();
    let claims = jwt_claims(
        ws.read_json("ingress.json")["access_token"]
            .as_str()
            .unwrap(),
    );
    assert_eq!(
        claims["azp"], "admin-agent",
        "the environment wins over .env"
    );
}

#[tokio::test]
async fn cognito_settings_give_a_cognito_token_and_the_pool_headers() {
    let mut ws = Workspace::new();
    let idp = Idp::start(
        IdpOptions {
            cognito: true,
            issuer: Some(format!(
                "https://cognito-idp.{COGNITO_REGION}.amazonaws.com/{COGNITO_POOL}"
            )),
            keys_file: None,
        },
        ws.path(),
    )
    .await;
    ws.set("INGRESS_OAUTH_USER_POOL_ID", COGNITO_POOL)
        .set("AWS_REGION", COGNITO_REGION)
        .set("INGRESS_OAUTH_CLIENT_ID", "admin-agent")
        .set("INGRESS_OAUTH_CLIENT_SECRET", "admin-agent-secret")
        // The pool's real domain is not reachable from a test; the IdP stands in for it.
        .set("INGRESS_OAUTH_TOKEN_URL", idp.token_endpoint.clone())
        .set("GATEWAY_URL", "https://gateway.example")
        .set("GATEWAY_MCP_SERVERS", "currenttime");
    let run = ws.run(&[]).await;
    run.ok();
    assert!(
        run.stderr.contains("ingress (cognito): new token"),
        "{}",
        run.stderr
    );
    let stored = ws.read_json("ingress.json");
    assert_eq!(stored["provider"], "cognito");
    assert_eq!(stored["user_pool_id"], COGNITO_POOL);
    assert_eq!(stored["region"], COGNITO_REGION);
    let claims = jwt_claims(stored["access_token"].as_str().unwrap());
    assert_eq!(claims["token_use"], "access");
    let vscode = ws.read_json("vscode_mcp.json");
    let headers = &vscode["servers"]["currenttime"]["headers"];
    assert_eq!(headers["X-User-Pool-Id"], COGNITO_POOL);
    assert_eq!(headers["X-Client-Id"], "admin-agent");
    assert_eq!(headers["X-Region"], COGNITO_REGION);
}

#[tokio::test]
async fn discovery_refuses_a_document_that_names_another_issuer() {
    let mut ws = Workspace::new();
    let idp = start_idp(ws.path()).await;
    // The same IdP reached under another name: its discovery document names 127.0.0.1, not
    // localhost, so the token endpoint in it is not taken (OpenID Connect Discovery §4.3).
    let other_name = idp.issuer.replace("127.0.0.1", "localhost");
    ws.ingress(&idp, "admin-agent")
        .set("INGRESS_OAUTH_ISSUER", &other_name);
    let run = ws.run(&["ingress"]).await;
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(
        run.stderr.contains(".well-known/openid-configuration")
            && run.stderr.contains("unexpected issuer"),
        "{}",
        run.stderr
    );
    assert!(!ws.tokens().join("ingress.json").exists());
}
