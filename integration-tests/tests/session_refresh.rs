//! A person's session with the real IdP, after the sign-in: a session whose validity window
//! ended is refused by the check, refreshed with the IdP's refresh token by `/oauth2/userinfo`
//! (a new cookie the check accepts, the sign-in's end unchanged), and sign-out clears it and
//! sends the browser to the IdP's logout. The stale copy is made with the stack's test session
//! key, as only someone holding the key could.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{SystemTime, UNIX_EPOCH};

use auth_server::session::{Session, SessionRules};
use base64::Engine as _;
use integration_tests::mcp_client::{ConnectOptions, McpClient};
use integration_tests::people::{self, set_cookie};
use integration_tests::stack::{DEMO_PERSON, Front, GatewayStack, SESSION_KEY};
use serde_json::{Value, json};

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_whose_window_ended_is_refused_then_refreshed_with_the_idp() {
    let stack = GatewayStack::start_with_sign_in(Front::Nginx).await;
    let origin = stack.origin();
    let (user, password, _) = DEMO_PERSON;
    let cookie = people::sign_in(&origin, user, password).await.unwrap();
    let key = base64::engine::general_purpose::STANDARD
        .decode(SESSION_KEY)
        .unwrap();
    let rules = SessionRules::new(
        origin.clone(),
        "auth-server-ui".into(),
        vec![cookie::Key::derive_from(&key)],
    );
    let session: Session = rules.unseal(rules.cookie_name, &cookie).unwrap();
    assert!(
        session.refresh_token.is_some(),
        "the IdP gave a refresh token"
    );
    assert!(
        session.valid_until <= now() + 300,
        "the window is AUTH_SESSION_REFRESH_SECONDS"
    );
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let stale_copy = |session: &Session| {
        let mut stale = session.clone();
        stale.valid_until = now() - 1;
        rules.seal(rules.cookie_name, &stale).unwrap()
    };
    let call = |cookie: String| {
        http.post(stack.url("currenttime"))
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("cookie", format!("mcp_session={cookie}"))
            .header("origin", &origin)
            .header("sec-fetch-site", "same-origin")
            .body(json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}).to_string())
            .send()
    };
    let userinfo = |cookie: String| {
        http.get(format!("{origin}/oauth2/userinfo"))
            .header("cookie", format!("mcp_session={cookie}"))
            .send()
    };

    // Its window ended: the check refuses it, userinfo refreshes it with the IdP.
    let stale = stale_copy(&session);
    let refused = call(stale.clone()).await.unwrap();
    assert_eq!(refused.status(), 401);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"], "invalid_session");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("expired")
    );
    let refreshed = userinfo(stale).await.unwrap();
    assert_eq!(refreshed.status(), 200);
    let renewed = set_cookie(&refreshed, "mcp_session").expect("a renewed cookie");
    let renewed_session: Session = rules.unseal(rules.cookie_name, &renewed).unwrap();
    assert!(renewed_session.valid_until > now());
    assert_eq!(
        renewed_session.ends_at, session.ends_at,
        "a refresh never extends the sign-in"
    );
    assert_eq!(renewed_session.groups, session.groups);
    let options = ConnectOptions::default()
        .header("cookie", &format!("mcp_session={renewed}"))
        .header("origin", &origin)
        .header("sec-fetch-site", "same-origin");
    let client = McpClient::connect_with(&stack.url("currenttime"), options)
        .await
        .unwrap();
    client.close().await.unwrap();

    // auth-server's sign-out clears the cookie and sends the browser to the IdP's logout,
    // back to /ui/ (tests/browser.rs follows it, and shows that a copy then cannot be refreshed).
    let signed_out = http
        .get(format!("{origin}/oauth2/sign_out"))
        .header("cookie", format!("mcp_session={renewed}"))
        .send()
        .await
        .unwrap();
    assert_eq!(signed_out.status(), 302);
    let location = signed_out.headers()["location"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(location.starts_with(&stack.idp.issuer), "{location}");
    let back = format!(
        "post_logout_redirect_uri={}",
        urlencode(&format!("{origin}/ui/"))
    );
    assert!(location.contains(&back), "{location}");
    assert_eq!(set_cookie(&signed_out, "mcp_session").as_deref(), Some(""));
}

fn urlencode(text: &str) -> String {
    reqwest::Url::parse_with_params("http://x/", [("v", text)])
        .unwrap()
        .query()
        .unwrap()
        .trim_start_matches("v=")
        .to_owned()
}
