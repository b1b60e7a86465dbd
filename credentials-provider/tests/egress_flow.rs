//! Egress tokens: the authorization-code grant with PKCE S256 and `state` against the real IdP
//! (node oidc-provider on loopback), driven by the test as a browser would: sign in and consent
//! on the IdP's pages, then follow the redirect to the CLI's one-shot callback server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;

use common::{
    Workspace, browser, callback_prefix, jwt_claims, leftovers, mode, sign_in_and_consent,
    start_idp,
};

const EGRESS_ARGS: &[&str] = &["egress", "--no-browser", "--callback-timeout", "30"];

fn query(url: &reqwest::Url) -> BTreeMap<String, String> {
    url.query_pairs().into_owned().collect()
}

/// Runs one full authorization as `login`; returns the CLI's output and the authorize URL.
async fn authorize(ws: &Workspace, login: &str) -> (common::Output, reqwest::Url) {
    common::authorize_with(ws, EGRESS_ARGS, login).await
}

#[tokio::test]
async fn authorization_code_with_pkce_gets_a_stored_user_token() {
    let mut ws = Workspace::new();
    let idp = start_idp(ws.path()).await;
    ws.egress(&idp, "pkce-agent", false, true);

    let (run, authorize) = authorize(&ws, "alice").await;
    run.ok();
    let params = query(&authorize);
    assert_eq!(params["response_type"], "code");
    assert_eq!(params["client_id"], "pkce-agent");
    assert_eq!(params["code_challenge_method"], "S256");
    assert_eq!(params["code_challenge"].len(), 43);
    assert_eq!(params["state"].len(), 43);
    assert_eq!(params["scope"], "mcp-servers-restricted/read");
    assert_eq!(params["redirect_uri"], callback_prefix(&ws));
    assert!(
        run.stderr.contains("egress testidp: authorized"),
        "{}",
        run.stderr
    );

    let path = ws.tokens().join("testidp-egress.json");
    assert_eq!(mode(&ws.tokens()), 0o700);
    assert_eq!(mode(&path), 0o600);
    assert!(leftovers(&ws.tokens()).is_empty());
    let stored = ws.read_json("testidp-egress.json");
    let token = stored["access_token"].as_str().unwrap();
    let claims = jwt_claims(token);
    assert_eq!(
        claims["sub"], "alice",
        "the token acts for the user who signed in"
    );
    assert_eq!(claims["client_id"], "pkce-agent");
    assert_eq!(claims["scope"], "mcp-servers-restricted/read");
    assert!(
        stored["refresh_token"]
            .as_str()
            .is_some_and(|rt| !rt.is_empty())
    );
    assert!(!run.stderr.contains(token) && !run.stdout.contains(token));

    // Fresh: the next run uses it without a browser.
    let again = ws.run(EGRESS_ARGS).await;
    again.ok();
    assert!(
        again.stderr.contains("reused the stored token"),
        "{}",
        again.stderr
    );
    assert!(!again.stderr.contains("response_type=code"));
}

#[tokio::test]
async fn a_public_client_authorizes_with_pkce_alone() {
    let mut ws = Workspace::new();
    let idp = start_idp(ws.path()).await;
    ws.egress(&idp, "pkce-public-agent", true, true);
    let (run, _) = authorize(&ws, "bob").await;
    run.ok();
    let claims = jwt_claims(
        ws.read_json("testidp-egress.json")["access_token"]
            .as_str()
            .unwrap(),
    );
    assert_eq!(claims["sub"], "bob");
    assert_eq!(claims["client_id"], "pkce-public-agent");
}

#[tokio::test]
async fn a_tampered_state_aborts_and_stores_nothing() {
    let mut ws = Workspace::new();
    let idp = start_idp(ws.path()).await;
    ws.egress(&idp, "pkce-agent", false, true);
    let mut cli = ws.spawn(EGRESS_ARGS);
    let authorize = cli.authorization_url().await;
    let browser = browser();
    let callback = sign_in_and_consent(&browser, &authorize, "alice", &callback_prefix(&ws)).await;
    // A valid code, with another request's state.
    let mut tampered = callback.clone();
    let pairs: Vec<(String, String)> = callback
        .query_pairs()
        .into_owned()
        .map(|(k, v)| {
            if k == "state" {
                (k, format!("{v}x"))
            } else {
                (k, v)
            }
        })
        .collect();
    tampered.query_pairs_mut().clear().extend_pairs(pairs);
    let answer = browser.get(tampered).send().await.unwrap();
    assert_eq!(answer.status(), 400);
    let run = cli.finish().await;
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("state does not match this authorization request: aborted"),
        "{}",
        run.stderr
    );
    assert!(!ws.tokens().join("testidp-egress.json").exists());
    // The callback server is gone: the genuine callback finds nobody.
    assert!(browser.get(callback).send().await.is_err());
}

#[tokio::test]
async fn a_stale_token_is_refreshed_without_the_browser() {
    let mut ws = Workspace::new();
    let idp = start_idp(ws.path()).await;
    ws.egress(&idp, "pkce-agent", false, true);
    authorize(&ws, "alice").await.0.ok();
    let mut stored = ws.read_json("testidp-egress.json");
    let first_token = stored["access_token"].as_str().unwrap().to_owned();
    let refresh_token = stored["refresh_token"].clone();

    // Two minutes left: inside the 5-minute margin, so not reused.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    stored["expires_at"] = (now + 120).into();
    ws.write_json("testidp-egress.json", &stored);

    // No browser this time: were the CLI to ask for one, it would time out in 2 s.
    let run = ws
        .run(&["egress", "--no-browser", "--callback-timeout", "2"])
        .await;
    run.ok();
    assert!(
        run.stderr.contains("refreshed with the refresh token"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("response_type=code"), "{}", run.stderr);
    let renewed = ws.read_json("testidp-egress.json");
    let new_token = renewed["access_token"].as_str().unwrap();
    assert_ne!(new_token, first_token);
    assert_eq!(jwt_claims(new_token)["sub"], "alice");
    assert!(renewed["expires_at"].as_u64().unwrap() > now + 3000);
    // The IdP keeps a confidential client's refresh token; it is kept, not lost.
    assert_eq!(renewed["refresh_token"], refresh_token);
    assert_eq!(mode(&ws.tokens().join("testidp-egress.json")), 0o600);

    // --force authorizes again instead.
    let mut cli = ws.spawn(&[
        "egress",
        "--force",
        "--no-browser",
        "--callback-timeout",
        "30",
    ]);
    let _ = cli.authorization_url().await;
    drop(cli); // killed: the stored token stays as it was
}

#[tokio::test]
async fn a_revoked_refresh_token_falls_back_to_the_browser() {
    let mut ws = Workspace::new();
    let idp = start_idp(ws.path()).await;
    ws.egress(&idp, "pkce-agent", false, true);
    authorize(&ws, "alice").await.0.ok();
    let mut stored = ws.read_json("testidp-egress.json");
    stored["expires_at"] = 1.into();
    stored["refresh_token"] = "not-a-refresh-token".into();
    ws.write_json("testidp-egress.json", &stored);
    let (run, _) = authorize(&ws, "carol").await;
    run.ok();
    assert!(run.stderr.contains("refresh failed"), "{}", run.stderr);
    assert!(run.stderr.contains("invalid_grant"), "{}", run.stderr);
    let claims = jwt_claims(
        ws.read_json("testidp-egress.json")["access_token"]
            .as_str()
            .unwrap(),
    );
    assert_eq!(claims["sub"], "carol");
}

#[tokio::test]
async fn nobody_coming_back_times_out_with_a_clear_message() {
    let mut ws = Workspace::new();
    let idp = start_idp(ws.path()).await;
    ws.egress(&idp, "pkce-agent", false, true);
    let started = std::time::Instant::now();
    let run = ws
        .run(&["egress", "--no-browser", "--callback-timeout", "1"])
        .await;
    assert_eq!(run.code, Some(1));
    assert!(started.elapsed() < std::time::Duration::from_secs(15));
    assert!(
        run.stderr.contains("no authorization came back to"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("open the URL shown above"),
        "{}",
        run.stderr
    );
    assert!(!ws.tokens().join("testidp-egress.json").exists());
}

#[tokio::test]
async fn the_providers_refusal_reaches_the_user() {
    let mut ws = Workspace::new();
    let idp = start_idp(ws.path()).await;
    // The IdP requires PKCE; this provider entry does not send it.
    ws.egress(&idp, "pkce-agent", false, false);
    let mut cli = ws.spawn(EGRESS_ARGS);
    let authorize = cli.authorization_url().await;
    assert!(!query(&authorize).contains_key("code_challenge"));
    let browser = browser();
    let callback = sign_in_and_consent(&browser, &authorize, "alice", &callback_prefix(&ws)).await;
    assert_eq!(query(&callback)["error"], "invalid_request");
    let answer = browser.get(callback).send().await.unwrap();
    assert_eq!(answer.status(), 400);
    let run = cli.finish().await;
    assert_eq!(run.code, Some(1));
    assert!(
        run.stderr
            .contains("the provider refused the authorization: invalid_request"),
        "{}",
        run.stderr
    );
}

#[tokio::test]
async fn egress_settings_are_checked_first() {
    let mut ws = Workspace::new();
    let run = ws.run(&["egress"]).await;
    assert_eq!(run.code, Some(2));
    assert!(
        run.stderr.contains("no egress provider is configured"),
        "{}",
        run.stderr
    );
    ws.set("EGRESS_OAUTH_CLIENT_ID_1", "x")
        .set("EGRESS_PROVIDER_NAME_1", "github");
    let run = ws.run(&["egress", "--provider", "google"]).await;
    assert_eq!(run.code, Some(2));
    assert!(
        run.stderr.contains(
            "--provider google: no EGRESS_PROVIDER_NAME_N=google is configured (configured: github)"
        ),
        "{}",
        run.stderr
    );
    ws.set("EGRESS_OAUTH_REDIRECT_URI_1", "https://example.com/cb");
    let run = ws.run(&["egress"]).await;
    assert_eq!(run.code, Some(2));
    assert!(
        run.stderr.contains("EGRESS_OAUTH_REDIRECT_URI_1"),
        "{}",
        run.stderr
    );
}
