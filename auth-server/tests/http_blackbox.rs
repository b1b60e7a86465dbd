//! The real HTTP server on port 0, driven over loopback: statuses, headers and key refresh as
//! nginx and Envoy see them. The key set is served by a second local server the test controls.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::TcpListener;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use auth_server::authorizer::Authorizer;
use auth_server::config::Config;
use auth_server::jwks::fetch::KeyStore;
use auth_server::policy::CompiledPolicy;
use common::*;
use serde_json::json;

struct Gateway {
    base: String,
    client: reqwest::Client,
    keys: Arc<KeyStore>,
    authorizer: Arc<Authorizer>,
}

async fn start(key_server: &KeyServer, extra: &[(&str, &str)]) -> Gateway {
    let scopes = example_scopes();
    let mut vars = vec![
        ("AUTH_PROVIDER".to_owned(), "oidc".to_owned()),
        ("AUTH_ISSUER".to_owned(), ISSUER.to_owned()),
        ("AUTH_GROUPS_CLAIM".to_owned(), "cognito:groups".to_owned()),
        ("AUTH_JWKS_URL".to_owned(), key_server.url.clone()),
        ("AUTH_SCOPES_FILE".to_owned(), scopes.display().to_string()),
    ];
    vars.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let config = Config::from_vars(vars).unwrap();
    let policy = CompiledPolicy::load(&config.scopes_file).unwrap();
    let keys = Arc::new(KeyStore::new(config.issuers[0].key_source.clone()));
    let authorizer = Arc::new(Authorizer::new(&config, policy, vec![keys.clone()]));
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    actix_web::rt::spawn(auth_server::http::server(authorizer.clone(), listener).unwrap());
    Gateway {
        base,
        client: reqwest::Client::new(),
        keys,
        authorizer,
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A Cognito-shaped token valid now, for an OIDC-configured server (client id from `client_id`).
fn live_token(key: &TestKey, groups: &[&str]) -> String {
    let mut claims = cognito_claims("agent-1", groups);
    claims["iat"] = json!(now() - 10);
    claims["exp"] = json!(now() + 600);
    key.sign(&claims)
}

fn tools_call(tool: &str) -> String {
    json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":tool}}).to_string()
}

impl Gateway {
    fn validate(&self, token: Option<&str>, uri: &str, body: String) -> reqwest::RequestBuilder {
        let mut request = self
            .client
            .post(format!("{}/validate", self.base))
            .header("x-original-uri", uri)
            .header("x-original-method", "POST")
            .header("content-type", "application/json")
            .body(body);
        if let Some(token) = token {
            request = request.header("x-authorization", format!("Bearer {token}"));
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

#[actix_web::test]
async fn allow_sets_identity_headers_and_ignores_spoofed_ones() {
    let keys = KeyServer::start(&[rsa_key()]);
    let gateway = start(&keys, &[]).await;
    gateway.keys.refresh().await.unwrap();
    let token = live_token(rsa_key(), &["mcp-registry-operator"]);
    let response = gateway
        .validate(
            Some(&token),
            "/fininfo/mcp",
            tools_call("get_stock_aggregates"),
        )
        .header("x-user", "admin")
        .header("x-scopes", "mcp-servers-unrestricted/execute")
        .header("authorization", "Bearer egress-token-for-atlassian")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-user"), "sub-agent-1");
    assert_eq!(header(&response, "x-client-id"), "agent-1");
    assert_eq!(
        header(&response, "x-scopes"),
        "mcp-servers-restricted/read mcp-servers-restricted/execute"
    );
    assert_eq!(header(&response, "x-server-name"), "fininfo");
    assert_eq!(header(&response, "x-method"), "tools/call");
    assert_eq!(header(&response, "x-tool-name"), "get_stock_aggregates");
    assert_eq!(header(&response, "x-auth-method"), "oidc");
    assert_eq!(
        header(&response, "x-envoy-auth-headers-to-remove"),
        "x-authorization"
    );
    let text = response.text().await.unwrap();
    assert!(text.is_empty(), "allow has no body");
}

#[actix_web::test]
async fn an_identity_that_cannot_be_a_header_value_fails_closed() {
    let keys = KeyServer::start(&[rsa_key()]);
    let gateway = start(&keys, &[]).await;
    gateway.keys.refresh().await.unwrap();
    let mut claims = cognito_claims("agent-1", &["mcp-registry-operator"]);
    claims["iat"] = json!(now() - 10);
    claims["exp"] = json!(now() + 600);
    claims["sub"] = json!("agent-1\r\nx-user: admin");
    let token = rsa_key().sign(&claims);
    let response = gateway
        .validate(
            Some(&token),
            "/fininfo/mcp",
            tools_call("get_stock_aggregates"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 500, "never an allow without its headers");
    assert_eq!(header(&response, "x-user"), "<absent>");
    assert_eq!(header(&response, "x-server-name"), "<absent>");
}

#[actix_web::test]
async fn ingress_token_in_authorization_is_marked_for_removal() {
    let keys = KeyServer::start(&[rsa_key()]);
    let gateway = start(&keys, &[]).await;
    gateway.keys.refresh().await.unwrap();
    let token = live_token(rsa_key(), &["mcp-registry-admin"]);
    let response = gateway
        .client
        .post(format!("{}/validate/currenttime/mcp", gateway.base))
        .header("authorization", format!("Bearer {token}"))
        .header("x-user-pool-id", "us-east-1_Test")
        .body(json!({"jsonrpc":"2.0","id":1,"method":"tools/list"}).to_string())
        .send()
        .await
        .unwrap();
    // OIDC provider: a pool header cannot agree with anything, so it is refused.
    assert_eq!(response.status(), 401);
    let response = gateway
        .client
        .post(format!("{}/validate/currenttime/mcp", gateway.base))
        .header("authorization", format!("Bearer {token}"))
        .body(json!({"jsonrpc":"2.0","id":1,"method":"tools/list"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "Envoy-style /validate/<path>");
    assert_eq!(
        header(&response, "x-envoy-auth-headers-to-remove"),
        "authorization"
    );
}

#[actix_web::test]
async fn missing_token_is_401_with_challenge_and_json() {
    let keys = KeyServer::start(&[rsa_key()]);
    let gateway = start(&keys, &[("AUTH_RESOURCE_URL", "https://gw.example.com")]).await;
    gateway.keys.refresh().await.unwrap();
    let response = gateway
        .validate(None, "/fininfo/mcp", tools_call("x"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(
        header(&response, "www-authenticate"),
        r#"Bearer resource_metadata="https://gw.example.com/.well-known/oauth-protected-resource""#
    );
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"], "unauthorized");
    let metadata: serde_json::Value = gateway
        .client
        .get(format!(
            "{}/.well-known/oauth-protected-resource/fininfo/mcp",
            gateway.base
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(metadata["resource"], "https://gw.example.com/fininfo/mcp");
    assert_eq!(metadata["authorization_servers"][0], ISSUER);
}

#[actix_web::test]
async fn oversized_body_is_413_by_length_and_by_stream() {
    let keys = KeyServer::start(&[rsa_key()]);
    let gateway = start(&keys, &[("AUTH_MAX_BODY_BYTES", "1024")]).await;
    gateway.keys.refresh().await.unwrap();
    let token = live_token(rsa_key(), &["mcp-registry-admin"]);
    let padding = "x".repeat(2000);
    let big =
        json!({"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"pad":padding}}).to_string();
    let response = gateway
        .validate(Some(&token), "/fininfo/mcp", big.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    // Chunked: no Content-Length to trust, the limit applies while reading.
    let stream = futures_util::stream::iter(
        big.into_bytes()
            .chunks(100)
            .map(|c| Ok::<_, std::io::Error>(c.to_vec()))
            .collect::<Vec<_>>(),
    );
    let response = gateway
        .client
        .post(format!("{}/validate", gateway.base))
        .header("x-original-uri", "/fininfo/mcp")
        .header("x-authorization", format!("Bearer {token}"))
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"], "request_too_large");
}

#[actix_web::test]
async fn readiness_follows_the_key_set_and_checks_answer_503_without_it() {
    let keys = KeyServer::start(&[rsa_key()]);
    let gateway = start(&keys, &[]).await;
    let readyz = || {
        gateway
            .client
            .get(format!("{}/readyz", gateway.base))
            .send()
    };
    assert_eq!(readyz().await.unwrap().status(), 503);
    let token = live_token(rsa_key(), &["mcp-registry-admin"]);
    let response = gateway
        .validate(Some(&token), "/fininfo/mcp", tools_call("print_stock_data"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    gateway.keys.refresh().await.unwrap();
    assert_eq!(readyz().await.unwrap().status(), 200);
    let healthz = gateway
        .client
        .get(format!("{}/healthz", gateway.base))
        .send()
        .await
        .unwrap();
    assert_eq!(healthz.status(), 200);
}

#[actix_web::test]
async fn unknown_kid_refreshes_the_key_set_once_per_interval() {
    let keys = KeyServer::start(&[rsa_key()]);
    let gateway = start(&keys, &[]).await;
    gateway.keys.refresh().await.unwrap();
    assert_eq!(keys.fetches(), 1);

    // The IdP rotates: a token signed with a new key is accepted after one refresh.
    let rotated = TestKey::rsa("rotated");
    keys.publish(&[&rotated, rsa_key()]);
    let token = live_token(&rotated, &["mcp-registry-admin"]);
    let response = gateway
        .validate(Some(&token), "/fininfo/mcp", tools_call("print_stock_data"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(keys.fetches(), 2);

    // Many tokens with unknown kids right after: no further fetch within the interval.
    let attacker = stranger_key();
    let bad = live_token(attacker, &["mcp-registry-admin"]);
    let mut answers = Vec::new();
    for _ in 0..20 {
        answers.push(
            gateway
                .validate(Some(&bad), "/fininfo/mcp", tools_call("print_stock_data"))
                .send(),
        );
    }
    for answer in answers {
        let response = answer.await.unwrap();
        assert_eq!(response.status(), 401);
        assert!(header(&response, "www-authenticate").contains("unknown key"));
    }
    assert_eq!(keys.fetches(), 2, "rate-limited: no fetch per bad token");

    // Old tokens keep working while the old key is published.
    let old = live_token(rsa_key(), &["mcp-registry-admin"]);
    let response = gateway
        .validate(Some(&old), "/fininfo/mcp", tools_call("print_stock_data"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[actix_web::test]
async fn bad_jsonrpc_is_400_with_a_jsonrpc_error() {
    let keys = KeyServer::start(&[rsa_key()]);
    let gateway = start(&keys, &[]).await;
    gateway.keys.refresh().await.unwrap();
    let token = live_token(rsa_key(), &["mcp-registry-admin"]);
    let body = r#"{"jsonrpc":"2.0","id":42,"method":"tools/call","params":{"name":"print_stock_data","name":"delete_all_portfolios"}}"#;
    let response = gateway
        .validate(Some(&token), "/fininfo/mcp", body.to_owned())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let answer: serde_json::Value = response.json().await.unwrap();
    assert_eq!(answer["error"]["code"], -32600);
    let response = gateway
        .validate(Some(&token), "/fininfo/../x/mcp", tools_call("a"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let answer: serde_json::Value = response.json().await.unwrap();
    assert_eq!(answer["error"], "invalid_request");
}

#[actix_web::test]
async fn metrics_count_decisions_cache_use_and_key_set_state_on_their_own_listener() {
    let keys = KeyServer::start(&[rsa_key()]);
    let gateway = start(&keys, &[]).await;
    gateway.keys.refresh().await.unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let metrics_url = format!("http://{}/metrics", listener.local_addr().unwrap());
    let registry = auth_server::metrics::registry(gateway.authorizer.clone());
    actix_web::rt::spawn(auth_server::http::metrics_server(registry, listener).unwrap());

    let token = live_token(rsa_key(), &["mcp-registry-operator"]);
    for tool in [
        "get_stock_aggregates",
        "get_stock_aggregates",
        "print_stock_data",
    ] {
        gateway
            .validate(Some(&token), "/fininfo/mcp", tools_call(tool))
            .send()
            .await
            .unwrap();
    }
    let page = gateway
        .client
        .get(&metrics_url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let value = |line_start: &str| {
        page.lines()
            .find(|line| line.starts_with(line_start))
            .and_then(|line| line.rsplit(' ').next())
            .and_then(|value| value.parse::<f64>().ok())
            .unwrap_or_else(|| panic!("no `{line_start}` in:\n{page}"))
    };
    // Decision counters are process-wide: other tests in this binary add to them.
    assert!(value(r#"auth_decisions_total{result="allow",reason="allowed"}"#) >= 2.0);
    assert!(value(r#"auth_decisions_total{result="deny",reason="insufficient_scope"}"#) >= 1.0);
    assert!(value("auth_decision_duration_seconds_count") >= 3.0);
    assert_eq!(
        value("auth_token_cache_misses_total"),
        1.0,
        "first sight only"
    );
    assert_eq!(value("auth_token_cache_hits_total"), 2.0);
    assert_eq!(value("auth_token_cache_entries"), 1.0);
    assert_eq!(value("auth_jwks_refresh_succeeded_total"), 1.0);
    assert_eq!(value("auth_jwks_keys"), 1.0);
    assert_eq!(value("auth_ready"), 1.0);
    assert!(value("auth_jwks_age_seconds") < 60.0);
    // The gateway's listener does not serve metrics.
    let on_gateway = gateway
        .client
        .get(format!("{}/metrics", gateway.base))
        .send()
        .await
        .unwrap();
    assert_eq!(on_gateway.status(), 404);
}
