//! People's session cookie at the check, black-box: the real HTTP server on port 0, cookies
//! sealed by the test with the session key (as a sign-in would), and the sign-in endpoints'
//! refusals that need no IdP. The whole flow with the real IdP and a browser is
//! integration-tests/tests/browser.rs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::TcpListener;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use auth_server::authorizer::Authorizer;
use auth_server::config::Config;
use auth_server::jwks::fetch::KeyStore;
use auth_server::policy::CompiledPolicy;
use auth_server::session::{PendingSignIn, Session, SessionRules};
use common::*;
use cookie::Key;
use serde_json::{Value, json};

const ISSUER: &str = "https://idp.example.test";
const ORIGIN: &str = "http://127.0.0.1:8080";
/// base64 of 32 bytes each.
const KEY_A: &str = "c2Vzc2lvbi1rZXktYS0wMTIzNDU2Nzg5MDEyMzQ1Njc4OQ==";
const KEY_B: &str = "c2Vzc2lvbi1rZXktYi0wMTIzNDU2Nzg5MDEyMzQ1Njc4OQ==";

fn key(encoded: &str) -> Key {
    use base64::Engine as _;
    Key::derive_from(
        &base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .unwrap(),
    )
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

struct Server {
    base: String,
    client: reqwest::Client,
}

/// auth-server with browser sign-in configured (`keys`: the `AUTH_SESSION_KEYS` value). The
/// IdP is never reached: nothing here needs it.
async fn start(keys: Option<&str>) -> Server {
    let mut vars = vec![
        ("AUTH_PROVIDER", "oidc".to_owned()),
        ("AUTH_ISSUER", ISSUER.to_owned()),
        ("AUTH_GROUPS_CLAIM", "cognito:groups".to_owned()),
        ("AUTH_JWKS_URL", KeyServer::start(&[rsa_key()]).url),
        ("AUTH_SCOPES_FILE", example_scopes().display().to_string()),
    ];
    if let Some(keys) = keys {
        vars.extend([
            ("AUTH_SESSION_CLIENT_ID", "auth-server-ui".to_owned()),
            ("AUTH_SESSION_ISSUER", "http://127.0.0.1:9".to_owned()),
            ("AUTH_SESSION_PUBLIC_URL", ORIGIN.to_owned()),
            ("AUTH_SESSION_KEYS", keys.to_owned()),
        ]);
    }
    let config = Config::from_vars(vars.into_iter().map(|(k, v)| (k.to_owned(), v))).unwrap();
    let policy = CompiledPolicy::load(&config.scopes_file).unwrap();
    let keys = Arc::new(KeyStore::new(config.issuers[0].key_source.clone()));
    let authorizer = Arc::new(Authorizer::new(&config, policy, vec![keys.clone()]));
    keys.refresh().await.expect("the test key set");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    actix_web::rt::spawn(auth_server::http::server(authorizer, listener).unwrap());
    Server {
        base,
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
    }
}

fn rules(keys: &[&str]) -> SessionRules {
    SessionRules::new(
        ORIGIN.into(),
        "auth-server-ui".into(),
        keys.iter().map(|k| key(k)).collect(),
    )
}

fn session(groups: &[&str], valid_until: u64) -> Session {
    Session {
        subject: "alice-sub".into(),
        username: "alice".into(),
        groups: groups.iter().map(|g| g.to_string()).collect(),
        signed_in_at: now() - 60,
        ends_at: now() + 3600,
        valid_until,
        refresh_token: None,
    }
}

/// A `Cookie` header holding `session` sealed with the first of `keys`.
fn cookie(keys: &[&str], session: &Session) -> String {
    let rules = rules(keys);
    format!(
        "theme=dark; mcp_session={}",
        rules.seal(rules.cookie_name, session).unwrap()
    )
}

fn operator_cookie() -> String {
    cookie(&[KEY_A], &session(&["mcp-registry-operator"], now() + 300))
}

fn tools_call(tool: &str) -> String {
    json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":tool}}).to_string()
}

impl Server {
    /// A check of a cookie-carrying POST from the gateway's own page, unless `headers` say
    /// otherwise.
    fn check(&self, cookie: &str, tool: &str, headers: &[(&str, &str)]) -> reqwest::RequestBuilder {
        let mut request = self
            .client
            .post(format!("{}/validate", self.base))
            .header("x-original-uri", "/fininfo/mcp")
            .header("x-original-method", "POST")
            .header("content-type", "application/json")
            .header("cookie", cookie)
            .body(tools_call(tool));
        let same_origin = [("origin", ORIGIN), ("sec-fetch-site", "same-origin")];
        let headers: Vec<(&str, &str)> = if headers.is_empty() {
            same_origin.to_vec()
        } else {
            headers.to_vec()
        };
        for (name, value) in headers {
            if !value.is_empty() {
                request = request.header(name, value);
            }
        }
        request
    }
}

fn header<'r>(response: &'r reqwest::Response, name: &str) -> &'r str {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("<absent>")
}

async fn error_of(response: reqwest::Response) -> String {
    let body: Value = response.json().await.unwrap();
    body["error"].as_str().unwrap_or_default().to_owned()
}

#[actix_web::test]
async fn a_valid_session_cookie_is_an_identity_that_goes_through_scopes_yml() {
    let server = start(Some(KEY_A)).await;
    let cookie = operator_cookie();
    let allowed = server
        .check(&cookie, "get_stock_aggregates", &[])
        .send()
        .await
        .unwrap();
    assert_eq!(allowed.status(), 200);
    assert_eq!(header(&allowed, "x-auth-method"), "session");
    assert_eq!(header(&allowed, "x-user"), "alice-sub");
    assert_eq!(header(&allowed, "x-username"), "alice");
    assert_eq!(header(&allowed, "x-client-id"), "auth-server-ui");
    // The cookie never goes upstream.
    assert_eq!(header(&allowed, "x-envoy-auth-headers-to-remove"), "cookie");
    // The same policy: the operator group may not call print_stock_data.
    let denied = server
        .check(&cookie, "print_stock_data", &[])
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), 403);
    assert_eq!(error_of(denied).await, "insufficient_scope");
    // A GET (an SSE listen stream) needs no Origin.
    let listen = server
        .client
        .get(format!("{}/validate", server.base))
        .header("x-original-uri", "/fininfo/mcp")
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(listen.status(), 200);
}

#[actix_web::test]
async fn tampered_expired_and_wrongly_keyed_cookies_are_refused() {
    let server = start(Some(KEY_A)).await;
    let good = operator_cookie();
    let value = good.split("mcp_session=").nth(1).unwrap();
    let mut bytes = value.as_bytes().to_vec();
    bytes[10] = if bytes[10] == b'A' { b'B' } else { b'A' };
    let tampered = format!("mcp_session={}", String::from_utf8(bytes).unwrap());
    let expired = cookie(&[KEY_A], &session(&["mcp-registry-operator"], now() - 1));
    let wrong_key = cookie(&[KEY_B], &session(&["mcp-registry-operator"], now() + 300));
    let repeated = format!("{good}; mcp_session=x");
    for (name, cookie, reason) in [
        ("tampered", &tampered, "cannot be opened"),
        ("expired", &expired, "expired"),
        ("wrong key", &wrong_key, "cannot be opened"),
        ("repeated", &repeated, "more than once"),
    ] {
        let response = server
            .check(cookie, "get_stock_aggregates", &[])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401, "{name}");
        // No token came: the challenge names no token error.
        assert!(
            !header(&response, "www-authenticate").contains("invalid_token"),
            "{name}"
        );
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "invalid_session", "{name}");
        assert!(
            body["error_description"].as_str().unwrap().contains(reason),
            "{name}: {body}"
        );
    }
}

#[actix_web::test]
async fn during_a_key_change_cookies_of_both_keys_open() {
    let server = start(Some(&format!("{KEY_B},{KEY_A}"))).await;
    for keys in [[KEY_A], [KEY_B]] {
        let cookie = cookie(&keys, &session(&["mcp-registry-operator"], now() + 300));
        let response = server
            .check(&cookie, "get_stock_aggregates", &[])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
}

#[actix_web::test]
async fn a_bearer_token_decides_alone_when_a_cookie_came_too() {
    let server = start(Some(KEY_A)).await;
    let cookie = operator_cookie();
    // An admin token with the operator's cookie: the token's identity and scopes.
    let mut claims = cognito_claims("agent-1", &["mcp-registry-admin"]);
    claims["iss"] = json!(ISSUER);
    claims["iat"] = json!(now() - 10);
    claims["exp"] = json!(now() + 600);
    let token = rsa_key().sign(&claims);
    let response = server
        .check(&cookie, "print_stock_data", &[])
        .header("x-authorization", format!("Bearer {token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-auth-method"), "oidc");
    assert_eq!(
        header(&response, "x-envoy-auth-headers-to-remove"),
        "x-authorization,cookie"
    );
    // A bad token with a good cookie: the token's 401, whatever the cookie says.
    let response = server
        .check(&cookie, "get_stock_aggregates", &[])
        .header("x-authorization", "Bearer not.a.token")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(error_of(response).await, "invalid_token");
}

#[actix_web::test]
async fn a_cookie_only_post_from_another_origin_is_refused() {
    let server = start(Some(KEY_A)).await;
    let cookie = operator_cookie();
    for headers in [
        [
            ("origin", "http://evil.example"),
            ("sec-fetch-site", "cross-site"),
        ],
        [("origin", "http://evil.example"), ("sec-fetch-site", "")],
        [("origin", ORIGIN), ("sec-fetch-site", "same-site")],
        [("origin", "null"), ("sec-fetch-site", "")],
        [("x-unrelated", "1"), ("sec-fetch-site", "")],
    ] {
        let response = server
            .check(&cookie, "get_stock_aggregates", &headers)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 403, "{headers:?}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "cross_site_request", "{headers:?}");
        assert!(
            body["error_description"]
                .as_str()
                .unwrap()
                .contains("gateway's own pages")
        );
    }
    // A browser that sends only Origin (no Fetch Metadata) from the gateway's page is fine.
    let response = server
        .check(
            &cookie,
            "get_stock_aggregates",
            &[("origin", ORIGIN), ("sec-fetch-site", "")],
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[actix_web::test]
async fn browsers_without_a_session_go_to_sign_in_and_api_clients_keep_the_401() {
    let server = start(Some(KEY_A)).await;
    let get = |accept: &str, cookie: Option<String>| {
        let mut request = server
            .client
            .get(format!("{}/validate", server.base))
            .header("x-original-uri", "/fininfo/mcp?x=1")
            .header("accept", accept);
        if let Some(cookie) = cookie {
            request = request.header("cookie", cookie);
        }
        request.send()
    };
    let browser = "text/html,application/xhtml+xml,*/*;q=0.8";
    let response = get(browser, None).await.unwrap();
    assert_eq!(response.status(), 302);
    assert_eq!(
        header(&response, "location"),
        "/oauth2/start?rd=%2Ffininfo%2Fmcp%3Fx%3D1"
    );
    let expired = cookie(&[KEY_A], &session(&["mcp-registry-operator"], now() - 1));
    let response = get(browser, Some(expired)).await.unwrap();
    assert_eq!(response.status(), 302, "an expired session signs in again");
    for api in [
        "application/json, text/event-stream",
        "*/*",
        "text/html;q=0",
    ] {
        let response = get(api, None).await.unwrap();
        assert_eq!(response.status(), 401, "{api}");
        assert!(header(&response, "www-authenticate").starts_with("Bearer"));
        assert_eq!(error_of(response).await, "unauthorized");
    }
}

#[actix_web::test]
async fn without_sign_in_configured_a_cookie_is_nothing() {
    let server = start(None).await;
    let response = server
        .check(&operator_cookie(), "get_stock_aggregates", &[])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(error_of(response).await, "unauthorized");
    let page = server
        .client
        .get(format!("{}/oauth2/start", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 404);
}

#[actix_web::test]
async fn rd_never_leads_off_the_gateway() {
    let server = start(Some(KEY_A)).await;
    for rd in [
        "https://evil.example/",
        "//evil.example/",
        "/\\evil.example",
        "evil.example",
        "javascript:alert(1)",
        "/a\r\nSet-Cookie: x=1",
    ] {
        let url =
            reqwest::Url::parse_with_params(&format!("{}/oauth2/start", server.base), [("rd", rd)])
                .unwrap();
        let response = server.client.get(url).send().await.unwrap();
        assert_eq!(response.status(), 400, "{rd:?}");
        assert!(response.headers().get("location").is_none(), "{rd:?}");
    }
}

#[actix_web::test]
async fn a_callback_without_this_browsers_sign_in_or_with_another_state_is_refused() {
    let server = start(Some(KEY_A)).await;
    let callback = |cookie: Option<String>| {
        let mut request = server.client.get(format!(
            "{}/oauth2/callback?code=abc&state=attacker-state",
            server.base
        ));
        if let Some(cookie) = cookie {
            request = request.header("cookie", cookie);
        }
        request.send()
    };
    let response = callback(None).await.unwrap();
    assert_eq!(response.status(), 400);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("no sign-in is in progress")
    );
    let rules = rules(&[KEY_A]);
    let pending = PendingSignIn {
        state: "the-real-state".into(),
        nonce: "n".into(),
        pkce_verifier: "v".repeat(43),
        return_to: "/ui/".into(),
        expires_at: now() + 600,
    };
    let sealed = rules.seal(rules.pending_cookie_name, &pending).unwrap();
    let response = callback(Some(format!("mcp_signin={sealed}")))
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let set_cookies: Vec<String> = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    assert!(
        set_cookies.iter().all(|c| !c.starts_with("mcp_session=")),
        "{set_cookies:?}"
    );
    assert!(response.text().await.unwrap().contains("state mismatch"));
    // A sign-in cookie moved into the session cookie's place opens as nothing.
    let response = server
        .check(
            &format!("mcp_session={sealed}"),
            "get_stock_aggregates",
            &[],
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
}

#[actix_web::test]
async fn userinfo_needs_a_session_and_says_who_and_which_servers() {
    let server = start(Some(KEY_A)).await;
    let response = server
        .client
        .get(format!("{}/oauth2/userinfo", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let response = server
        .client
        .get(format!("{}/oauth2/userinfo", server.base))
        .header("cookie", operator_cookie())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["preferredUsername"], "alice");
    assert_eq!(body["groups"], json!(["mcp-registry-operator"]));
    assert_eq!(body["servers"], json!(["currenttime", "fininfo"]));
    let page = server
        .client
        .get(format!("{}/ui/", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(header(&page, "content-security-policy").contains("default-src 'none'"));
    assert!(page.text().await.unwrap().contains("<html lang=\"en\">"));
}
