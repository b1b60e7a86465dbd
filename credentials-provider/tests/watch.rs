//! `refresh --watch`: tokens kept fresh without cron, against the real IdP and the nginx stack
//! — a token that lives 8 s renewed before it expires, an egress token refreshed, the configs
//! rewritten and used by a real MCP client; backing off while the IdP is down; a clean stop
//! on SIGTERM.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{
    Workspace, authorize_with, expected_tools, gateway_base, list_tools_with, mode, now_unix,
    start_idp,
};
use integration_tests::mcp_servers::ServerKind;
use integration_tests::stack::{GatewayStack, Profile};

const WAIT: Duration = Duration::from_secs(30);

#[tokio::test]
async fn the_watcher_renews_tokens_before_they_expire_and_stops_on_sigterm() {
    let stack = GatewayStack::start(Profile::Oidc, &[]).await;
    let mut ws = Workspace::new();
    ws.ingress(&stack.idp, "watch-agent");
    ws.egress(&stack.idp, "pkce-agent", false, true);
    ws.set("EGRESS_MCP_SERVER_NAME_1", "fininfo")
        .set("GATEWAY_URL", gateway_base(&stack))
        .set("GATEWAY_MCP_SERVERS", "currenttime");
    // The egress token is authorized once in the browser, then nearly expires.
    let egress_args = ["egress", "--no-browser", "--callback-timeout", "30"];
    authorize_with(&ws, &egress_args, "alice").await.0.ok();
    let mut egress = ws.read_json("testidp-egress.json");
    let first_egress = egress["access_token"].clone();
    egress["expires_at"] = (now_unix() + 2).into();
    ws.write_json("testidp-egress.json", &egress);

    let mut watcher = ws.spawn(&["refresh", "--watch"]);
    // First pass: no ingress token yet, and the egress token is due.
    watcher
        .wait_for_line(WAIT, |line| line.contains("renewed the ingress token"))
        .await;
    watcher
        .wait_for_line(WAIT, |line| {
            line.contains("renewed the egress token testidp")
        })
        .await;
    let first = ws.read_json("ingress.json");
    let first_expiry = first["expires_at"].as_u64().unwrap();
    assert_eq!(first["expires_in"], 8, "watch-agent's tokens live 8 s");
    let refreshed = ws.read_json("testidp-egress.json");
    assert_ne!(refreshed["access_token"], first_egress);
    assert!(refreshed["expires_at"].as_u64().unwrap() > now_unix() + 3000);

    // Renewed again before it expires (half its lifetime before), twice.
    for _ in 0..2 {
        let line = watcher
            .wait_for_line(WAIT, |line| line.contains("renewed the ingress token"))
            .await;
        assert!(now_unix() < first_expiry + 8, "{line}");
    }
    let renewed = ws.read_json("ingress.json");
    assert_ne!(renewed["access_token"], first["access_token"]);
    assert!(renewed["expires_at"].as_u64().unwrap() > first_expiry);
    assert_eq!(mode(&ws.tokens().join("ingress.json")), 0o600);

    // The configs follow (rewritten after the renewal): the latest tokens, usable by a real
    // MCP client through nginx.
    watcher
        .wait_for_line(WAIT, |line| {
            line.contains("MCP client configs (2 server(s))")
        })
        .await;
    let vscode = ws.read_json("vscode_mcp.json");
    let ingress_now = ws.read_json("ingress.json")["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        vscode["servers"]["currenttime"]["headers"]["X-Authorization"],
        format!("Bearer {ingress_now}")
    );
    assert_eq!(
        vscode["servers"]["fininfo"]["headers"]["Authorization"],
        format!("Bearer {}", refreshed["access_token"].as_str().unwrap())
    );
    assert_eq!(
        list_tools_with(&vscode["servers"], "http").await,
        expected_tools(&[
            ("currenttime", ServerKind::CurrentTime),
            ("fininfo", ServerKind::FinInfo),
        ])
    );

    watcher.signal("TERM");
    let run = watcher.finish().await;
    run.ok();
    assert!(run.stderr.contains("stopped (SIGTERM)"), "{}", run.stderr);
    // Each line of the long-running log has its time.
    let renewal = run
        .stderr
        .lines()
        .find(|line| line.contains("renewed the ingress token"))
        .unwrap();
    assert!(
        renewal.starts_with("credentials-provider: 20") && renewal.contains("Z renewed"),
        "{renewal}"
    );
    assert!(
        !run.stderr.contains(&ingress_now),
        "tokens are never logged"
    );
}

#[tokio::test]
async fn the_watcher_backs_off_while_the_idp_fails_and_stops_cleanly() {
    let mut ws = Workspace::new();
    let mut idp = start_idp(ws.path()).await;
    ws.ingress(&idp, "watch-agent");
    let mut watcher = ws.spawn(&["refresh", "--watch"]);
    watcher
        .wait_for_line(WAIT, |line| line.contains("renewed the ingress token"))
        .await;
    idp.process.stop();
    // Due 4 s later: each failure doubles the wait.
    for delay in [1, 2, 4] {
        let line = watcher
            .wait_for_line(WAIT, |line| {
                line.contains("renewing the ingress token failed")
            })
            .await;
        assert!(
            line.contains(&format!("retrying in {delay} s")),
            "{delay}: {line}"
        );
        assert!(line.contains("cannot reach"), "{line}");
    }
    watcher.signal("TERM");
    let started = std::time::Instant::now();
    let run = watcher.finish().await;
    run.ok();
    assert!(started.elapsed() < Duration::from_secs(5), "stops at once");
    assert!(run.stderr.contains("stopped (SIGTERM)"), "{}", run.stderr);
    // The last good token is still there, whole.
    assert!(ws.read_json("ingress.json")["access_token"].is_string());
}
