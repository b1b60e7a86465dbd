//! The hostile-input catalogue at the decision level: one row per attack, each with the exact
//! status it must get. A row is an HTTP check request as the shell receives it (method, header
//! pairs, body), read by the real header reader (`request::read`), decided by the real core
//! (`decide`) over the shipped `scopes.yml`, with tokens really signed by test keys and checked
//! at a fixed `now`; the status comes from the one mapping in `answer`.
//!
//! This table holds the attacks that need forged tokens (keys only a test has) or a second
//! configuration. The same attacks that a client can mount through the gateway are replayed end
//! to end, through nginx with the real IdP, in integration-tests/tests/hostile_catalogue.rs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Instant;

use auth_server::answer;
use auth_server::decision::{CognitoPool, Decision, decide};
use auth_server::jwks::KeySet;
use auth_server::policy::CompiledPolicy;
use auth_server::token::{MAX_TOKEN_BYTES, Provider, TokenRules};
use common::*;
use serde_json::{Value, json};

const OIDC_ISSUER: &str = "https://idp.example/realms/mcp";
const AUDIENCE: &str = "mcp-gateway";
const ADMIN: &[&str] = &["mcp-registry-admin"];
const READER: &[&str] = &["mcp-registry-user"];
const OPERATOR: &[&str] = &["mcp-registry-operator"];

/// Which configuration a row is decided under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Setup {
    /// Cognito pool `us-east-1_Test`, `AUTH_CLIENT_IDS=agent`.
    Cognito,
    /// OIDC issuer [`OIDC_ISSUER`], `AUTH_AUDIENCES=mcp-gateway`.
    Oidc,
}

struct World {
    cognito: Core,
    oidc: Core,
}

impl World {
    fn new() -> World {
        let policy =
            || CompiledPolicy::load(&example_scopes()).expect("shipped scopes.yml compiles");
        let signing = &published_rsa_key().key;
        // The provider publishes a signing key, an EC key, and two encryption keys.
        let keys =
            || KeySet::from_json(&jwks(&[signing, ec_key(), enc_key(), oaep_key()])).unwrap();
        let cognito = TokenRules {
            provider: Provider::Cognito,
            issuer: ISSUER.into(),
            client_ids: Some(["agent".to_owned()].into()),
            audiences: None,
            groups_claim: "cognito:groups".into(),
            leeway_seconds: 60,
        };
        let oidc = TokenRules {
            provider: Provider::Oidc,
            issuer: OIDC_ISSUER.into(),
            client_ids: None,
            audiences: Some(vec![AUDIENCE.into()]),
            groups_claim: "groups".into(),
            leeway_seconds: 60,
        };
        let pool = CognitoPool {
            region: "us-east-1".into(),
            user_pool_id: "us-east-1_Test".into(),
        };
        World {
            cognito: Core::new(policy(), Some(keys()), cognito, Some(pool)),
            oidc: Core::new(policy(), Some(keys()), oidc, None),
        }
    }

    /// Decides `attack` with a fresh token cache (rows must not see each other's tokens).
    fn decide(&self, attack: &Attack) -> Decision {
        let core = match attack.setup {
            Setup::Cognito => &self.cognito,
            Setup::Oidc => &self.oidc,
        };
        let cache = auth_server::token::TokenCache::new(16);
        let context = auth_server::decision::Context {
            cache: &cache,
            ..core.context(NOW)
        };
        decide(&attack.check.facts(), &context)
    }
}

/// One check request as the shell receives it, and the configuration it is decided under.
struct Attack {
    setup: Setup,
    check: TestCheck,
}

impl Attack {
    /// A POST to `path` with `token` in `X-Authorization` (Cognito setup).
    fn post(path: &str, token: &str, body: impl Into<Vec<u8>>) -> Attack {
        Attack {
            setup: Setup::Cognito,
            check: TestCheck::post(path, Some(token), body),
        }
    }

    /// An allowed-looking request (admin lists fininfo's tools) carrying `token`.
    fn token(token: &str) -> Attack {
        Attack::post("/fininfo/mcp", token, method_body("tools/list"))
    }

    /// A POST to `path` without any credentials.
    fn anonymous(path: &str, body: impl Into<Vec<u8>>) -> Attack {
        Attack {
            setup: Setup::Cognito,
            check: TestCheck::post(path, None, body),
        }
    }

    fn header(mut self, name: &str, value: &str) -> Attack {
        self.check = self.check.header(name, value);
        self
    }

    fn setup(mut self, setup: Setup) -> Attack {
        self.setup = setup;
        self
    }
}

fn method_body(method: &str) -> Vec<u8> {
    json!({"jsonrpc":"2.0","id":1,"method":method})
        .to_string()
        .into_bytes()
}

fn call_body(tool: &str) -> Vec<u8> {
    json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":tool,"arguments":{}}})
        .to_string()
        .into_bytes()
}

/// A Cognito access token for client `agent` with `groups`, signed by the published key.
fn cognito_token(groups: &[&str]) -> String {
    published_rsa_key()
        .key
        .sign(&cognito_claims("agent", groups))
}

/// The Cognito claims of an admin token with `patch` merged in (`null` removes a claim).
fn patched_claims(patch: Value) -> Value {
    let mut claims = cognito_claims("agent", ADMIN);
    for (name, value) in patch.as_object().unwrap() {
        match value {
            Value::Null => {
                claims.as_object_mut().unwrap().remove(name);
            }
            value => claims[name] = value.clone(),
        }
    }
    claims
}

/// An admin token with `patch` applied to its claims, really signed by the published key.
fn signed_with(patch: Value) -> String {
    published_rsa_key().key.sign(&patched_claims(patch))
}

/// A token with any header, signed over its bytes by `sign`.
fn forged(header: Value, sign: impl Fn(&[u8]) -> Vec<u8>) -> String {
    forge(&header, &cognito_claims("agent", ADMIN), sign)
}

/// An RS256 signature by `key` (its private half), whatever the header says.
fn rs256_by(key: &'static TestKey) -> impl Fn(&[u8]) -> Vec<u8> {
    move |message| {
        let signature =
            jsonwebtoken::crypto::sign(message, &key.encoding, jsonwebtoken::Algorithm::RS256)
                .unwrap();
        base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, signature)
            .unwrap()
    }
}

/// An OIDC access token (`azp` client, `aud`, `groups`) with `patch` merged in.
fn oidc_token(patch: Value) -> String {
    let mut claims = json!({
        "iss": OIDC_ISSUER,
        "sub": "agent",
        "azp": "agent",
        "aud": AUDIENCE,
        "groups": ADMIN,
        "iat": NOW - 60,
        "exp": NOW + 3600,
    });
    for (name, value) in patch.as_object().unwrap() {
        claims[name] = value.clone();
    }
    published_rsa_key().key.sign(&claims)
}

/// An admin-allowed `tools/call` whose `arguments` are nested `depth` levels deep.
fn nested_params(depth: usize) -> Vec<u8> {
    let mut body = String::from(
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"print_stock_data","arguments":"#,
    );
    body.push_str(&r#"{"a":"#.repeat(depth));
    body.push('1');
    body.push_str(&"}".repeat(depth));
    body.push_str("}}");
    body.into_bytes()
}

/// A batch of `count` admin-allowed `tools/call`s, then `last` (one more element) if given.
fn batch(count: usize, last: Option<Value>) -> Vec<u8> {
    let mut elements: Vec<Value> = (0..count)
        .map(|id| {
            json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":{"name":"print_stock_data"}})
        })
        .collect();
    elements.extend(last);
    serde_json::to_vec(&elements).unwrap()
}

fn status(decision: &Decision) -> u16 {
    answer::answer(decision.clone(), &answer_settings())
        .status
        .http
}

fn reason(decision: &Decision) -> &'static str {
    match decision {
        Decision::Allow(_) => "allowed",
        Decision::Deny { reason, .. } => answer::reason_code(reason),
    }
}

#[test]
fn every_attack_gets_its_exact_status() {
    let world = World::new();
    let published = published_rsa_key();
    let admin = cognito_token(ADMIN);
    let reader = cognito_token(READER);
    let operator = cognito_token(OPERATOR);
    let rs256 = |kid: &str| json!({"alg": "RS256", "typ": "JWT", "kid": kid});
    let hs = |alg: &str, secret: Vec<u8>| {
        forged(
            json!({"alg": alg, "kid": "published-rsa"}),
            move |message| hmac(alg, &secret, message),
        )
    };
    let oversized = {
        // A real, well-signed token whose claims make it longer than the limit.
        let token = signed_with(json!({"padding": "x".repeat(MAX_TOKEN_BYTES)}));
        assert!(token.len() > MAX_TOKEN_BYTES);
        token
    };
    let tools_call = |name: &str| {
        format!(r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"{name}"}}}}"#)
    };

    // (the attack, the request, the exact status, and why: the decision log's `reason`)
    let rows: Vec<(&str, Attack, u16, &str)> = vec![
        // --- the control rows: what the attacks below try to become ---
        (
            "control: admin lists fininfo",
            Attack::token(&admin),
            200,
            "allowed",
        ),
        (
            "control: operator calls its tool",
            Attack::post("/fininfo/mcp", &operator, call_body("get_stock_aggregates")),
            200,
            "allowed",
        ),
        // --- token: algorithm ---
        (
            "alg none, empty signature",
            Attack::token(&forged(
                json!({"alg": "none", "kid": "published-rsa"}),
                |_| Vec::new(),
            )),
            401,
            "token_algorithm_refused",
        ),
        (
            "alg nOnE (none in other case)",
            Attack::token(&forged(
                json!({"alg": "nOnE", "kid": "published-rsa"}),
                |_| Vec::new(),
            )),
            401,
            "token_algorithm_refused",
        ),
        (
            "HS256 keyed with the RSA public key (SPKI PEM)",
            Attack::token(&hs("HS256", published.spki_pem.clone().into_bytes())),
            401,
            "token_algorithm_refused",
        ),
        (
            "HS256 keyed with the RSA public key (PKCS#1 PEM)",
            Attack::token(&hs("HS256", published.pkcs1_pem.clone().into_bytes())),
            401,
            "token_algorithm_refused",
        ),
        (
            "HS256 keyed with the RSA public key (SPKI DER)",
            Attack::token(&hs("HS256", published.spki_der.clone())),
            401,
            "token_algorithm_refused",
        ),
        (
            "HS256 keyed with the published JWK text",
            Attack::token(&hs("HS256", published.key.public_jwk_json().into_bytes())),
            401,
            "token_algorithm_refused",
        ),
        (
            "HS384 keyed with the RSA public key",
            Attack::token(&hs("HS384", published.spki_pem.clone().into_bytes())),
            401,
            "token_algorithm_refused",
        ),
        (
            "HS512 keyed with the RSA public key",
            Attack::token(&hs("HS512", published.spki_pem.clone().into_bytes())),
            401,
            "token_algorithm_refused",
        ),
        (
            "ES256 header on the RSA key's kid",
            Attack::token(&forged(
                json!({"alg": "ES256", "kid": "published-rsa"}),
                |_| vec![0; 64],
            )),
            401,
            "token_algorithm_refused",
        ),
        // --- token: kid ---
        (
            "kid missing (signature by the right key)",
            Attack::token(&forged(json!({"alg": "RS256"}), rs256_by(&published.key))),
            401,
            "token_invalid",
        ),
        (
            "kid unknown (signature by a key nobody published)",
            Attack::token(&stranger_key().sign(&cognito_claims("agent", ADMIN))),
            401,
            "token_unknown_kid",
        ),
        (
            "kid of a key published with use=enc, signed by that key",
            Attack::token(&forged(rs256("enc-1"), rs256_by(enc_key()))),
            401,
            "token_unknown_kid",
        ),
        (
            "kid of a key published with alg=RSA-OAEP, signed by that key",
            Attack::token(&forged(rs256("oaep-1"), rs256_by(oaep_key()))),
            401,
            "token_unknown_kid",
        ),
        (
            "kid known, signature by another key",
            Attack::token(&forged(rs256("published-rsa"), rs256_by(stranger_key()))),
            401,
            "token_bad_signature",
        ),
        (
            "attacker's own key embedded in the header (jwk), signed by it",
            Attack::token(&forged(
                json!({"alg": "RS256", "kid": "published-rsa", "jwk": stranger_key().jwk}),
                rs256_by(stranger_key()),
            )),
            401,
            "token_bad_signature",
        ),
        (
            "attacker's key set URL in the header (jku), signed by its key",
            Attack::token(&forged(
                json!({"alg": "RS256", "kid": "published-rsa", "jku": "http://127.0.0.1:9/jwks"}),
                rs256_by(stranger_key()),
            )),
            401,
            "token_bad_signature",
        ),
        // --- token: time ---
        (
            "exp in the past, beyond the leeway",
            Attack::token(&signed_with(json!({"exp": NOW - 61}))),
            401,
            "token_expired",
        ),
        (
            "exp missing",
            Attack::token(&signed_with(json!({"exp": null}))),
            401,
            "token_invalid",
        ),
        (
            "exp as a string",
            Attack::token(&signed_with(json!({"exp": (NOW + 3600).to_string()}))),
            401,
            "token_invalid",
        ),
        (
            "nbf in the future, beyond the leeway",
            Attack::token(&signed_with(json!({"nbf": NOW + 61}))),
            401,
            "token_not_yet_valid",
        ),
        (
            "iat far in the future",
            Attack::token(&signed_with(json!({"iat": NOW + 86_400 * 365}))),
            401,
            "token_not_yet_valid",
        ),
        // --- token: issuer, audience, client, token type ---
        (
            "issuer with a trailing slash",
            Attack::token(&signed_with(json!({"iss": format!("{ISSUER}/")}))),
            401,
            "token_wrong_issuer",
        ),
        (
            "issuer in other case",
            Attack::token(&signed_with(json!({"iss": ISSUER.to_uppercase()}))),
            401,
            "token_wrong_issuer",
        ),
        (
            "issuer of another Cognito pool",
            Attack::token(&signed_with(json!({
                "iss": "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Other"
            }))),
            401,
            "token_wrong_issuer",
        ),
        (
            "issuer missing",
            Attack::token(&signed_with(json!({"iss": null}))),
            401,
            "token_invalid",
        ),
        (
            "Cognito id token used as access token",
            Attack::token(&signed_with(json!({"token_use": "id"}))),
            401,
            "token_not_access_token",
        ),
        (
            "Cognito token without token_use",
            Attack::token(&signed_with(json!({"token_use": null}))),
            401,
            "token_not_access_token",
        ),
        (
            "client not in AUTH_CLIENT_IDS",
            Attack::token(&signed_with(json!({"client_id": "other-client"}))),
            401,
            "token_client_not_allowed",
        ),
        (
            "X-User-Pool-Id naming another pool",
            Attack::token(&admin).header("x-user-pool-id", "us-east-1_Other"),
            401,
            "cognito_header_mismatch",
        ),
        (
            "X-Region naming another region",
            Attack::token(&admin).header("x-region", "eu-west-1"),
            401,
            "cognito_header_mismatch",
        ),
        (
            "X-Client-Id naming another client",
            Attack::token(&admin).header("x-client-id", "other-client"),
            401,
            "cognito_header_mismatch",
        ),
        (
            "X-User-Pool-Id sent twice (one right, one wrong)",
            Attack::token(&admin)
                .header("x-user-pool-id", "us-east-1_Test")
                .header("x-user-pool-id", "us-east-1_Other"),
            401,
            "cognito_header_mismatch",
        ),
        (
            "control (OIDC): token for the configured audience",
            Attack::token(&oidc_token(json!({}))).setup(Setup::Oidc),
            200,
            "allowed",
        ),
        (
            "OIDC token for another audience",
            Attack::token(&oidc_token(json!({"aud": "another-api"}))).setup(Setup::Oidc),
            401,
            "token_wrong_audience",
        ),
        (
            "OIDC token without aud",
            Attack::token(&oidc_token(json!({"aud": []}))).setup(Setup::Oidc),
            401,
            "token_wrong_audience",
        ),
        (
            "Cognito-pool token presented to the OIDC configuration",
            Attack::token(&admin).setup(Setup::Oidc),
            401,
            "token_wrong_issuer",
        ),
        // --- token: shape and size ---
        (
            "oversized token (a valid signature over huge claims)",
            Attack::token(&oversized),
            401,
            "token_invalid",
        ),
        (
            "garbage token",
            Attack::token("not-a-jwt"),
            401,
            "token_invalid",
        ),
        (
            "token with the signature cut off",
            Attack::token(admin.rsplit_once('.').unwrap().0),
            401,
            "token_invalid",
        ),
        (
            "two X-Authorization headers",
            Attack::token(&admin).header("x-authorization", &format!("Bearer {reader}")),
            401,
            "bad_credentials",
        ),
        (
            "Basic credentials instead of a bearer token",
            Attack::anonymous("/fininfo/mcp", method_body("tools/list"))
                .header("authorization", "Basic YWRtaW46YWRtaW4="),
            401,
            "bad_credentials",
        ),
        (
            "no credentials at all",
            Attack::anonymous("/fininfo/mcp", method_body("tools/list")),
            401,
            "no_token",
        ),
        // --- body: keys the policy and the MCP server could read differently ---
        (
            "duplicate `method`",
            Attack::post(
                "/fininfo/mcp",
                &reader,
                r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","method":"tools/call","params":{"name":"get_stock_aggregates"}}"#,
            ),
            400,
            "bad_jsonrpc",
        ),
        (
            "duplicate `params`",
            Attack::post(
                "/fininfo/mcp",
                &operator,
                r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get_stock_aggregates"},"params":{"name":"delete_all_portfolios"}}"#,
            ),
            400,
            "bad_jsonrpc",
        ),
        (
            "duplicate `params.name`",
            Attack::post(
                "/fininfo/mcp",
                &operator,
                r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get_stock_aggregates","name":"delete_all_portfolios"}}"#,
            ),
            400,
            "bad_jsonrpc",
        ),
        (
            "duplicate `params.name`, the second spelled with an escape",
            Attack::post(
                "/fininfo/mcp",
                &operator,
                r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get_stock_aggregates","n\u0061me":"delete_all_portfolios"}}"#,
            ),
            400,
            "bad_jsonrpc",
        ),
        (
            "`method` as a number",
            Attack::post(
                "/fininfo/mcp",
                &admin,
                r#"{"jsonrpc":"2.0","id":1,"method":42}"#,
            ),
            400,
            "bad_jsonrpc",
        ),
        (
            "`method` as an array",
            Attack::post(
                "/fininfo/mcp",
                &admin,
                r#"{"jsonrpc":"2.0","id":1,"method":["tools/list","tools/call"]}"#,
            ),
            400,
            "bad_jsonrpc",
        ),
        (
            "`params.name` as an array",
            Attack::post(
                "/fininfo/mcp",
                &operator,
                r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":["get_stock_aggregates"]}}"#,
            ),
            400,
            "bad_jsonrpc",
        ),
        (
            "unicode-escaped allowed tool name is judged decoded",
            Attack::post(
                "/fininfo/mcp",
                &operator,
                tools_call(r"get\u005fstock_aggregates"),
            ),
            200,
            "allowed",
        ),
        (
            "unicode-escaped forbidden tool name is judged decoded",
            Attack::post(
                "/fininfo/mcp",
                &admin,
                tools_call(r"delete\u005Fall\u005fportfolios"),
            ),
            403,
            "insufficient_scope",
        ),
        (
            "escaped `/` in the method is judged decoded",
            Attack::post(
                "/fininfo/mcp",
                &reader,
                r#"{"jsonrpc":"2.0","id":1,"method":"tools\/call","params":{"name":"get_stock_aggregates"}}"#,
            ),
            403,
            "insufficient_scope",
        ),
        (
            "allowed tool name with a trailing NUL (it could never travel in X-Tool-Name)",
            Attack::post(
                "/fininfo/mcp",
                &operator,
                tools_call(r"get_stock_aggregates\u0000"),
            ),
            400,
            "bad_jsonrpc",
        ),
        (
            "method with a line break that would split X-Method",
            Attack::post(
                "/fininfo/mcp",
                &admin,
                method_body("tools/list\r\nx-user: root"),
            ),
            400,
            "bad_jsonrpc",
        ),
        (
            "allowed tool name in other case",
            Attack::post(
                "/fininfo/mcp",
                &operator,
                tools_call("Get_Stock_Aggregates"),
            ),
            403,
            "insufficient_scope",
        ),
        (
            "tool name with a lone surrogate escape",
            Attack::post("/fininfo/mcp", &operator, tools_call(r"get_stock\ud800")),
            400,
            "bad_jsonrpc",
        ),
        (
            // Overlong `"` (C0 A2) in a skipped string: a decoder that accepts overlong UTF-8
            // reads `"note":"a", "name":"delete_all_portfolios"`, a second `name` that wins in
            // last-wins parsers. JSON is UTF-8 (RFC 8259 §8.1): such a body is not JSON.
            "invalid UTF-8: overlong quotes smuggling a second `name` in a skipped string",
            Attack::post(
                "/fininfo/mcp",
                &admin,
                [
                    br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"print_stock_data","note":"a"#.as_slice(),
                    b"\xC0\xA2,\xC0\xA2name\xC0\xA2:\xC0\xA2delete_all_portfolios",
                    br#""}}"#,
                ]
                .concat(),
            ),
            400,
            "bad_jsonrpc",
        ),
        (
            "invalid UTF-8 in an ignored key of a client's JSON-RPC response",
            Attack::post(
                "/fininfo/mcp",
                &admin,
                b"{\"jsonrpc\":\"2.0\",\"id\":2,\"error\":{\"code\xfe\xff\":1,\"message\":\"x\"}}".as_slice(),
            ),
            400,
            "bad_jsonrpc",
        ),
        (
            "UTF-8 byte order mark before the object",
            Attack::post(
                "/fininfo/mcp",
                &admin,
                [b"\xEF\xBB\xBF".as_slice(), &method_body("tools/list")].concat(),
            ),
            400,
            "bad_jsonrpc",
        ),
        (
            "trailing garbage after the object",
            Attack::post(
                "/fininfo/mcp",
                &admin,
                [method_body("tools/list"), b" x".to_vec()].concat(),
            ),
            400,
            "bad_jsonrpc",
        ),
        (
            "a second object after the first",
            Attack::post(
                "/fininfo/mcp",
                &operator,
                [
                    call_body("get_stock_aggregates"),
                    call_body("delete_all_portfolios"),
                ]
                .concat(),
            ),
            400,
            "bad_jsonrpc",
        ),
        (
            // Judged on method and tool; the arguments are skipped without recursion and never
            // built, so depth costs no stack. (The MCP server may refuse to parse it itself.)
            "arguments nested 100 000 deep (no stack overflow)",
            Attack::post("/fininfo/mcp", &admin, nested_params(100_000)),
            200,
            "allowed",
        ),
        (
            "arguments nested 100 000 deep in a forbidden call",
            Attack::post(
                "/fininfo/mcp",
                &operator,
                String::from_utf8(nested_params(100_000))
                    .unwrap()
                    .replace("print_stock_data", "delete_all_portfolios"),
            ),
            403,
            "insufficient_scope",
        ),
        (
            "`params.name` nested 100 000 deep",
            Attack::post(
                "/fininfo/mcp",
                &admin,
                format!(
                    r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":{}}}}}"#,
                    "[".repeat(100_000)
                ),
            ),
            400,
            "bad_jsonrpc",
        ),
        (
            "`id` nested 100 000 deep",
            Attack::post(
                "/fininfo/mcp",
                &admin,
                format!(
                    r#"{{"jsonrpc":"2.0","method":"tools/list","id":{}1{}}}"#,
                    "[".repeat(100_000),
                    "]".repeat(100_000)
                ),
            ),
            400,
            "bad_jsonrpc",
        ),
        (
            "arrays nested 100 000 deep as the body",
            Attack::post("/fininfo/mcp", &admin, "[".repeat(100_000)),
            400,
            "bad_jsonrpc",
        ),
        (
            "arguments nested 100 deep: an ordinary allowed call",
            Attack::post("/fininfo/mcp", &admin, nested_params(100)),
            200,
            "allowed",
        ),
        (
            "batch of 100 allowed calls (AUTH_MAX_BATCH)",
            Attack::post("/fininfo/mcp", &admin, batch(100, None)),
            200,
            "allowed",
        ),
        (
            "batch of 10 000 allowed calls, over AUTH_MAX_BATCH",
            Attack::post("/fininfo/mcp", &admin, batch(10_000, None)),
            400,
            "bad_jsonrpc",
        ),
        (
            "batch whose tool names would not fit in the gateway's headers",
            Attack::post("/currenttime/mcp", &admin, {
                let long_tool = "t".repeat(500);
                let calls: Vec<Value> = (0..40)
                    .map(|id| json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":{"name":long_tool}}))
                    .collect();
                serde_json::to_vec(&calls).unwrap()
            }),
            400,
            "bad_jsonrpc",
        ),
        (
            "batch of allowed calls hiding one forbidden call at the end",
            Attack::post(
                "/fininfo/mcp",
                &admin,
                batch(
                    99,
                    Some(
                        json!({"jsonrpc":"2.0","id":"x","method":"tools/call","params":{"name":"delete_all_portfolios"}}),
                    ),
                ),
            ),
            403,
            "insufficient_scope",
        ),
        (
            "empty batch",
            Attack::post("/fininfo/mcp", &admin, "[]"),
            400,
            "bad_jsonrpc",
        ),
        // --- path: which server ---
        (
            "server name in other case",
            Attack::post("/FinInfo/mcp", &reader, method_body("tools/list")),
            403,
            "insufficient_scope",
        ),
        (
            "percent-encoded server name is judged decoded",
            Attack::post("/fin%69nfo/mcp", &reader, method_body("tools/list")),
            200,
            "allowed",
        ),
        (
            "`..` segment",
            Attack::post(
                "/currenttime/../fininfo/mcp",
                &admin,
                method_body("tools/list"),
            ),
            400,
            "bad_target",
        ),
        (
            "encoded `..` segment",
            Attack::post(
                "/currenttime/%2e%2E/fininfo/mcp",
                &admin,
                method_body("tools/list"),
            ),
            400,
            "bad_target",
        ),
        (
            "`//` before the server",
            Attack::post("//fininfo/mcp", &admin, method_body("tools/list")),
            400,
            "bad_target",
        ),
        (
            "encoded `/` in the server name",
            Attack::post(
                "/currenttime%2f..%2ffininfo/mcp",
                &admin,
                method_body("tools/list"),
            ),
            400,
            "bad_target",
        ),
        (
            "encoded `\\` in the path",
            Attack::post("/fininfo%5cmcp", &admin, method_body("tools/list")),
            400,
            "bad_target",
        ),
        (
            "encoded control character in the server name",
            Attack::post("/fininfo%0d%0a/mcp", &admin, method_body("tools/list")),
            400,
            "bad_target",
        ),
        (
            "query string naming another server",
            Attack::post(
                "/fininfo/mcp?server=currenttime&/currenttime/mcp",
                &operator,
                call_body("current_time_by_timezone"),
            ),
            403,
            "insufficient_scope",
        ),
        (
            "two X-Original-URI headers",
            Attack::post("/fininfo/mcp", &admin, method_body("tools/list"))
                .header("x-original-uri", "/currenttime/mcp"),
            400,
            "bad_target",
        ),
        // --- headers: MCP method headers and spoofed identity ---
        (
            "Mcp-Method disagreeing with the body",
            Attack::post(
                "/fininfo/mcp",
                &operator,
                call_body("delete_all_portfolios"),
            )
            .header("mcp-method", "tools/list"),
            400,
            "mcp_header_mismatch",
        ),
        (
            "Mcp-Name disagreeing with the body",
            Attack::post(
                "/fininfo/mcp",
                &operator,
                call_body("delete_all_portfolios"),
            )
            .header("mcp-method", "tools/call")
            .header("mcp-name", "get_stock_aggregates"),
            400,
            "mcp_header_mismatch",
        ),
        (
            "Mcp-Method sent twice",
            Attack::post("/fininfo/mcp", &operator, call_body("get_stock_aggregates"))
                .header("mcp-method", "tools/call")
                .header("mcp-method", "tools/call"),
            400,
            "mcp_header_mismatch",
        ),
        (
            "spoofed X-Scopes grants nothing",
            Attack::post("/fininfo/mcp", &reader, call_body("get_stock_aggregates"))
                .header("x-scopes", "mcp-servers-unrestricted/execute")
                .header("x-user", "admin-agent"),
            403,
            "insufficient_scope",
        ),
        (
            "X-Original-Method spoofed to a method the gateway never sends",
            Attack::post("/fininfo/mcp", &admin, method_body("tools/list"))
                .header("x-original-method", "PUT"),
            405,
            "method_not_allowed",
        ),
        (
            "X-Original-Method repeated",
            Attack::post("/fininfo/mcp", &admin, method_body("tools/list"))
                .header("x-original-method", "POST")
                .header("x-original-method", "GET"),
            400,
            "bad_header",
        ),
        (
            "X-Original-URI repeated, naming two servers",
            Attack::post("/fininfo/mcp", &admin, method_body("tools/list"))
                .header("x-original-uri", "/currenttime/mcp"),
            400,
            "bad_target",
        ),
        (
            "the ingress token sent again as the egress token",
            Attack::post("/fininfo/mcp", &admin, method_body("tools/list"))
                .header("authorization", &format!("Bearer {admin}")),
            400,
            "ingress_token_as_egress",
        ),
        (
            "egress Authorization repeated",
            Attack::post("/fininfo/mcp", &admin, method_body("tools/list"))
                .header("authorization", "Bearer egress-a")
                .header("authorization", "Bearer egress-b"),
            400,
            "bad_header",
        ),
        (
            "X-Authorization repeated",
            Attack::post("/fininfo/mcp", &admin, method_body("tools/list"))
                .header("x-authorization", &format!("Bearer {admin}")),
            401,
            "bad_credentials",
        ),
    ];

    let mut failures = Vec::new();
    for (attack_name, attack, expected, expected_reason) in &rows {
        let started = Instant::now();
        let decision = world.decide(attack);
        let got = status(&decision);
        let got_reason = reason(&decision);
        if (got, got_reason) != (*expected, *expected_reason) {
            failures.push(format!(
                "{attack_name}: expected {expected} {expected_reason}, got {got} {got_reason}"
            ));
        }
        // However it is refused, an answer never carries the token back.
        let answered = format!("{:?}", answer::answer(decision, &answer_settings()));
        for (name, value) in &attack.check.headers.0 {
            let longest_part = value.split('.').max_by_key(|part| part.len()).unwrap();
            if name.ends_with("authorization") && longest_part.len() > 20 {
                assert!(
                    !answered.contains(longest_part),
                    "{attack_name}: answer echoes the token"
                );
            }
        }
        assert!(
            started.elapsed().as_secs() < 5,
            "{attack_name}: took {:?}",
            started.elapsed()
        );
    }
    assert!(
        failures.is_empty(),
        "{} of {} rows failed:\n{}",
        failures.len(),
        rows.len(),
        failures.join("\n")
    );
}
