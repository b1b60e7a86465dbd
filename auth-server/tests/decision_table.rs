//! The decision core as a table: real tokens signed by test keys, the shipped `scopes.yml`, a
//! fixed `now`; each row names the behaviour it pins and the exact status.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use auth_server::answer::{self, AnswerSettings};
use auth_server::decision::{CognitoPool, Decision, decide};
use auth_server::jwks::KeySet;
use auth_server::policy::CompiledPolicy;
use common::*;
use serde_json::json;

struct World {
    core: Core,
}

impl World {
    fn new() -> World {
        World::with_keys(true)
    }

    /// The shipped policy, Cognito rules for [`ISSUER`] with pool `us-east-1_Test`, and the
    /// test key set, or no key set at all.
    fn with_keys(with_keys: bool) -> World {
        let policy = CompiledPolicy::load(&example_scopes()).expect("shipped scopes.yml compiles");
        let keys = with_keys.then(|| KeySet::from_json(&jwks(&[rsa_key()])).unwrap());
        let pool = CognitoPool {
            region: "us-east-1".into(),
            user_pool_id: "us-east-1_Test".into(),
        };
        World {
            core: Core::new(policy, keys, cognito_rules(), Some(pool)),
        }
    }

    fn decide(&self, check: &TestCheck) -> Decision {
        self.decide_at(check, NOW)
    }

    fn decide_at(&self, check: &TestCheck, now: u64) -> Decision {
        decide(&check.facts(), &self.core.context(now))
    }
}

fn token_for(groups: &[&str]) -> String {
    rsa_key().sign(&cognito_claims("agent", groups))
}

fn request(token: &str, path: &str, body: &[u8]) -> TestCheck {
    TestCheck::post(path, Some(token), body)
}

fn call(tool: &str) -> Vec<u8> {
    json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":tool,"arguments":{}}})
        .to_string()
        .into_bytes()
}

fn method(name: &str) -> Vec<u8> {
    json!({"jsonrpc":"2.0","id":1,"method":name})
        .to_string()
        .into_bytes()
}

fn status(decision: &Decision) -> u16 {
    answer::answer(decision.clone(), &settings()).status.http
}

fn settings() -> AnswerSettings {
    AnswerSettings {
        resource_metadata: None,
        max_body_bytes: 1024,
    }
}

/// The value of header `name` the answer sets.
fn set_header<'a>(answer: &'a answer::Answer, name: &str) -> Option<&'a str> {
    answer
        .set_headers
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.as_str())
}

const ADMIN: &[&str] = &["mcp-registry-admin"];
const READER: &[&str] = &["mcp-registry-user"];
const OPERATOR: &[&str] = &["mcp-registry-operator"];

#[test]
fn the_three_roles_of_the_example_policy() {
    let world = World::new();
    // (behaviour, groups, path, body, status)
    type Row<'a> = (&'a str, &'a [&'a str], &'a str, Vec<u8>, u16);
    let rows: &[Row] = &[
        (
            "admin lists fininfo",
            ADMIN,
            "/fininfo/mcp",
            method("tools/list"),
            200,
        ),
        (
            "admin calls a fininfo tool",
            ADMIN,
            "/fininfo/mcp",
            call("print_stock_data"),
            200,
        ),
        (
            "admin calls currenttime",
            ADMIN,
            "/currenttime/mcp",
            call("current_time_by_timezone"),
            200,
        ),
        (
            "nobody may delete portfolios",
            ADMIN,
            "/fininfo/mcp",
            call("delete_all_portfolios"),
            403,
        ),
        (
            "reader initializes",
            READER,
            "/fininfo/mcp",
            method("initialize"),
            200,
        ),
        (
            "reader lists",
            READER,
            "/currenttime/mcp",
            method("tools/list"),
            200,
        ),
        (
            "reader cannot call",
            READER,
            "/currenttime/mcp",
            call("current_time_by_timezone"),
            403,
        ),
        (
            "reader has no other server",
            READER,
            "/atlassian/mcp",
            method("tools/list"),
            403,
        ),
        (
            "operator calls its tool",
            OPERATOR,
            "/fininfo/mcp",
            call("get_stock_aggregates"),
            200,
        ),
        (
            "operator not another tool",
            OPERATOR,
            "/fininfo/mcp",
            call("print_stock_data"),
            403,
        ),
        (
            "unmapped group gets nothing",
            &["strangers"],
            "/fininfo/mcp",
            method("initialize"),
            403,
        ),
        (
            "no group, no scope, nothing",
            &[],
            "/fininfo/mcp",
            method("initialize"),
            403,
        ),
        (
            "method outside the entry",
            READER,
            "/fininfo/mcp",
            method("resources/list"),
            403,
        ),
    ];
    for (name, groups, path, body, expected) in rows {
        let token = token_for(groups);
        let decision = world.decide(&request(&token, path, body));
        assert_eq!(status(&decision), *expected, "{name}");
    }
}

#[test]
fn allow_carries_identity_server_method_and_tool() {
    let world = World::new();
    let token = token_for(OPERATOR);
    let body = call("get_stock_aggregates");
    let Decision::Allow(allowed) = world.decide(&request(&token, "/fininfo/mcp", &body)) else {
        panic!("allowed expected")
    };
    assert_eq!(allowed.server, "fininfo");
    assert_eq!(allowed.identity.client_id, "agent");
    assert_eq!(
        allowed.scopes,
        [
            "mcp-servers-restricted/read",
            "mcp-servers-restricted/execute"
        ]
    );
    assert_eq!(
        allowed.calls[0].tool.as_deref(),
        Some("get_stock_aggregates")
    );
    assert_eq!(allowed.ingress_headers, ["x-authorization"]);
}

#[test]
fn scope_claim_applies_when_the_token_has_no_groups() {
    let world = World::new();
    let mut claims = cognito_claims("agent", &[]);
    claims["scope"] = json!("mcp-servers-restricted/read other/scope");
    let token = rsa_key().sign(&claims);
    assert_eq!(
        status(&world.decide(&request(&token, "/fininfo/mcp", &method("tools/list")))),
        200
    );
    assert_eq!(
        status(&world.decide(&request(
            &token,
            "/fininfo/mcp",
            &call("get_stock_aggregates")
        ))),
        403
    );
}

#[test]
fn batch_with_one_denied_call_is_denied_whole() {
    let world = World::new();
    let token = token_for(OPERATOR);
    let body = json!([
        {"jsonrpc":"2.0","id":1,"method":"tools/list"},
        {"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"get_stock_aggregates"}},
        {"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"delete_all_portfolios"}}
    ])
    .to_string();
    let decision = world.decide(&request(&token, "/fininfo/mcp", body.as_bytes()));
    assert_eq!(status(&decision), 403);
    let answer = answer::answer(decision, &settings());
    let body: serde_json::Value = serde_json::from_str(answer.body.as_deref().unwrap()).unwrap();
    assert_eq!(body["tool"], "delete_all_portfolios");
}

#[test]
fn allowed_batch_lists_every_method_and_tool_in_order() {
    let world = World::new();
    let token = token_for(ADMIN);
    let body = json!([
        {"jsonrpc":"2.0","id":1,"method":"tools/list"},
        {"jsonrpc":"2.0","method":"notifications/initialized"},
        {"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"print_stock_data"}}
    ])
    .to_string();
    let decision = world.decide(&request(&token, "/fininfo/mcp", body.as_bytes()));
    let answer = answer::answer(decision, &settings());
    let header = |name: &str| set_header(&answer, name);
    assert_eq!(
        header("x-method"),
        Some("tools/list,notifications/initialized,tools/call")
    );
    assert_eq!(header("x-tool-name"), Some(",,print_stock_data"));
    assert_eq!(header("x-server-name"), Some("fininfo"));
}

#[test]
fn order_is_size_then_token_then_shape_then_policy() {
    let world = World::new();
    let reader = token_for(READER);
    // Too large beats a missing token.
    let mut too_large = TestCheck::post("/fininfo/mcp", None, b"");
    too_large.body = None;
    assert_eq!(status(&world.decide(&too_large)), 413);
    // A missing token beats a malformed body and a bad path.
    let anonymous = TestCheck::post("/../x", None, b"not json");
    assert_eq!(status(&world.decide(&anonymous)), 401);
    // A bad token beats a bad body.
    assert_eq!(
        status(&world.decide(&request("x.y.z", "/fininfo/mcp", b"not json"))),
        401
    );
    // Shape before policy: a reader's malformed call is 400, not 403.
    assert_eq!(
        status(&world.decide(&request(
            &reader,
            "/fininfo/mcp",
            b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\"}"
        ))),
        400
    );
}

#[test]
fn path_tricks_are_400() {
    let world = World::new();
    let token = token_for(ADMIN);
    for path in [
        "/fininfo/../admin/mcp",
        "//fininfo/mcp",
        "/fininfo%2fmcp",
        "/fin%00info/mcp",
        "/",
    ] {
        assert_eq!(
            status(&world.decide(&request(&token, path, &method("tools/list")))),
            400,
            "{path}"
        );
    }
    // The query string cannot change the server; case and encoding are judged decoded, exactly.
    let reader = token_for(READER);
    assert_eq!(
        status(&world.decide(&request(
            &reader,
            "/atlassian/mcp?server=fininfo",
            &method("tools/list")
        ))),
        403
    );
    assert_eq!(
        status(&world.decide(&request(&reader, "/FININFO/mcp", &method("tools/list")))),
        403
    );
    assert_eq!(
        status(&world.decide(&request(&reader, "/fin%69nfo/mcp", &method("tools/list")))),
        200
    );
}

#[test]
fn http_methods_other_than_get_post_delete_are_405_and_body_less_post_is_400() {
    let world = World::new();
    let token = token_for(ADMIN);
    for (http_method, body, expected) in [
        ("PUT", &b"{}"[..], 405),
        ("PATCH", b"", 405),
        ("POST", b"", 400),
        ("GET", b"", 200),
        ("DELETE", b"", 200),
        ("GET", b"{}", 400),
    ] {
        let check = request(&token, "/fininfo/mcp", body).method(http_method);
        assert_eq!(status(&world.decide(&check)), expected, "{http_method}");
    }
    let nobody = token_for(&[]);
    let listen = request(&nobody, "/fininfo/mcp", b"").method("GET");
    assert_eq!(
        status(&world.decide(&listen)),
        403,
        "listen stream needs an entry for the server"
    );
}

#[test]
fn client_responses_need_an_entry_for_the_server() {
    let world = World::new();
    let response = br#"{"jsonrpc":"2.0","id":"srv-1","result":{}}"#;
    assert_eq!(
        status(&world.decide(&request(&token_for(READER), "/fininfo/mcp", response))),
        200
    );
    assert_eq!(
        status(&world.decide(&request(&token_for(READER), "/atlassian/mcp", response))),
        403
    );
}

#[test]
fn mcp_headers_must_match_the_body() {
    let world = World::new();
    let token = token_for(ADMIN);
    let body = call("print_stock_data");
    let cases = [
        (Some("tools/call"), Some("print_stock_data"), 200),
        (Some("tools/list"), None, 400),
        (Some("tools/call"), Some("get_stock_aggregates"), 400),
        (None, Some("delete_all_portfolios"), 400),
    ];
    for (mcp_method, mcp_name, expected) in cases {
        let mut check = request(&token, "/fininfo/mcp", &body);
        if let Some(value) = mcp_method {
            check = check.header("mcp-method", value);
        }
        if let Some(value) = mcp_name {
            check = check.header("mcp-name", value);
        }
        let decision = world.decide(&check);
        assert_eq!(status(&decision), expected, "{mcp_method:?} {mcp_name:?}");
        if expected == 400 {
            let answer = answer::answer(decision, &settings());
            assert!(answer.body.unwrap().contains("-32020"));
        }
    }
}

#[test]
fn cognito_seed_headers_must_agree() {
    let world = World::new();
    let token = token_for(ADMIN);
    let body = method("tools/list");
    let cases: [(&[(&str, &str)], u16); 6] = [
        (
            &[
                ("x-user-pool-id", "us-east-1_Test"),
                ("x-client-id", "agent"),
                ("x-region", "us-east-1"),
            ],
            200,
        ),
        (&[("x-user-pool-id", "us-east-1_Other")], 401),
        (&[("x-region", "eu-west-1")], 401),
        (&[("x-client-id", "someone-else")], 401),
        // A repeated seed header agrees with nothing, even when each copy would.
        (&[("x-client-id", "agent"), ("x-client-id", "agent")], 401),
        (&[("x-region", "us-east-1"), ("x-region", "us-east-1")], 401),
    ];
    for (headers, expected) in cases {
        let mut check = request(&token, "/fininfo/mcp", &body);
        for (name, value) in headers {
            check = check.header(name, value);
        }
        assert_eq!(status(&world.decide(&check)), expected, "{headers:?}");
    }
}

#[test]
fn a_repeated_client_id_header_is_refused_even_for_a_token_without_a_client_id() {
    let world = World::new();
    let token = rsa_key().sign(&cognito_claims("", ADMIN));
    let body = method("tools/list");
    let plain = request(&token, "/fininfo/mcp", &body);
    assert_eq!(
        status(&world.decide(&plain)),
        200,
        "control: the token is valid"
    );
    let repeated = request(&token, "/fininfo/mcp", &body)
        .header("x-client-id", "a")
        .header("x-client-id", "b");
    let decision = world.decide(&repeated);
    assert_eq!(status(&decision), 401);
    let answer = answer::answer(decision, &settings());
    assert!(
        answer
            .body
            .as_deref()
            .unwrap()
            .contains("X-Client-Id is repeated"),
        "{answer:?}"
    );
}

#[test]
fn no_key_set_is_503_never_an_allow() {
    let token = token_for(ADMIN);
    let body = method("tools/list");
    let without_keys = World::with_keys(false);
    assert_eq!(
        status(&without_keys.decide(&request(&token, "/fininfo/mcp", &body))),
        503
    );
}

#[test]
fn cached_token_still_expires() {
    let world = World::new();
    let token = token_for(ADMIN);
    let body = method("tools/list");
    assert_eq!(
        status(&world.decide(&request(&token, "/fininfo/mcp", &body))),
        200
    );
    assert_eq!(
        status(&world.decide_at(&request(&token, "/fininfo/mcp", &body), NOW + 3600 + 61)),
        401
    );
}

#[test]
fn deny_answers_never_echo_the_token() {
    let world = World::new();
    let settings = answer_settings();
    let mut expired_claims = cognito_claims("agent", ADMIN);
    expired_claims["exp"] = json!(NOW - 3600);
    for token in [
        rsa_key().sign(&expired_claims),
        token_for(&[]),
        "Zm9vYmFyMQ.YmF6cXV4Mg.c2lnbmF0dXJl".to_owned(),
    ] {
        let decision = world.decide(&request(&token, "/fininfo/mcp", b"{}"));
        let answer = answer::answer(decision, &settings);
        let everything = format!("{:?}", answer);
        assert!(!everything.contains(&token), "token echoed: {everything}");
        assert!(
            !everything.contains(token.split('.').nth(1).unwrap()),
            "claims echoed"
        );
    }
}

#[test]
fn unauthenticated_answers_carry_the_challenge_of_rfc_6750() {
    let world = World::new();
    let settings = answer_settings();
    let anonymous = TestCheck::post("/fininfo/mcp", None, b"{}");
    let answer = answer::answer(world.decide(&anonymous), &settings);
    let challenge = set_header(&answer, "www-authenticate").unwrap();
    assert_eq!(
        challenge,
        r#"Bearer resource_metadata="https://gw.example/.well-known/oauth-protected-resource""#
    );
    let answer = answer::answer(
        world.decide(&request("a.b.c", "/fininfo/mcp", b"{}")),
        &settings,
    );
    let challenge = set_header(&answer, "www-authenticate").unwrap();
    assert!(
        challenge.contains(r#"error="invalid_token""#) && challenge.contains("error_description="),
        "{challenge}"
    );
    let reader = token_for(READER);
    let answer = answer::answer(
        world.decide(&request(
            &reader,
            "/fininfo/mcp",
            &call("get_stock_aggregates"),
        )),
        &settings,
    );
    let challenge = set_header(&answer, "www-authenticate").unwrap();
    assert!(challenge.starts_with(r#"Bearer error="insufficient_scope", scope="mcp-servers-restricted/execute mcp-servers-unrestricted/execute""#), "{challenge}");
}

#[test]
fn an_mcp_name_in_the_base64_sentinel_form_is_compared_decoded() {
    // A policy where one tool has a non-ASCII name (the spec's reason for the sentinel).
    let policy = CompiledPolicy::from_yaml(
        "group_mappings:\n  g: [s]\ns:\n  - server: intl\n    methods: [tools/call]\n    tools: [\"météo\"]\n",
    )
    .unwrap();
    let core = Core::new(
        policy,
        Some(KeySet::from_json(&jwks(&[rsa_key()])).unwrap()),
        cognito_rules(),
        None,
    );
    let token = token_for(&["g"]);
    let body = call("météo");
    let with_name = |value: &str| {
        request(&token, "/intl/mcp", &body)
            .header("mcp-method", "tools/call")
            .header("mcp-name", value)
    };
    let decided = |check: &TestCheck| decide(&check.facts(), &core.context(NOW));
    // base64("météo") = bcOpdMOpbw==
    assert!(matches!(
        decided(&with_name("=?base64?bcOpdMOpbw==?=")),
        Decision::Allow(_)
    ));
    for (value, why) in [
        ("=?base64?bWV0ZW8=?=", "a sentinel for another name"),
        ("=?base64?***?=", "a malformed sentinel"),
        (
            "=?BASE64?bcOpdMOpbw==?=",
            "markers in upper case are no sentinel",
        ),
    ] {
        let answer = answer::answer(decided(&with_name(value)), &settings());
        assert_eq!(answer.status.http, 400, "{why}");
        assert!(answer.body.unwrap().contains("-32020"), "{why}");
    }
}

#[test]
fn one_challenge_names_every_scope_a_batch_needs_and_never_offline_access() {
    let policy = CompiledPolicy::from_yaml(
        "group_mappings:\n  g: [read]\nread:\n  - server: fininfo\n    methods: [tools/list]\nfin/execute:\n  - server: fininfo\n    methods: [tools/call]\n    tools: [get_stock_aggregates]\nfin/print:\n  - server: fininfo\n    methods: [tools/call]\n    tools: [print_stock_data]\noffline_access:\n  - server: fininfo\n    methods: [tools/call]\n    tools: all\n",
    )
    .unwrap();
    let core = Core::new(
        policy,
        Some(KeySet::from_json(&jwks(&[rsa_key()])).unwrap()),
        cognito_rules(),
        None,
    );
    let token = token_for(&["g"]);
    let batch = json!([
        {"jsonrpc":"2.0","id":1,"method":"tools/list"},
        {"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"get_stock_aggregates"}},
        {"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"print_stock_data"}}
    ])
    .to_string();
    let decision = decide(
        &request(&token, "/fininfo/mcp", batch.as_bytes()).facts(),
        &core.context(NOW),
    );
    let answer = answer::answer(decision, &settings());
    assert_eq!(answer.status.http, 403);
    let challenge = set_header(&answer, "www-authenticate").unwrap();
    assert!(
        challenge.contains(r#"scope="fin/execute fin/print""#),
        "{challenge}"
    );
    assert!(!challenge.contains("offline_access"), "{challenge}");
    // The body still names the first denied call.
    let body: serde_json::Value = serde_json::from_str(answer.body.as_deref().unwrap()).unwrap();
    assert_eq!(body["tool"], "get_stock_aggregates");
}
