//! One decision, in process: a cached valid token and a `tools/call` body through the pure core;
//! the same from the request's header map to the answer (what the HTTP shell does between
//! actix's parsing and its response encoding); and, for comparison, the first sight of a token
//! (RS256 signature verification).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::hint::black_box;

use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use auth_server::answer::{AnswerSettings, answer};
use auth_server::decision::{CognitoPool, Decision, decide};
use auth_server::jwks::KeySet;
use auth_server::policy::CompiledPolicy;
use auth_server::request::{self, Body};
use auth_server::token::{TokenCache, verify};
use common::*;
use criterion::{Criterion, criterion_group, criterion_main};

fn bench_decision(c: &mut Criterion) {
    let path = example_scopes();
    let policy = CompiledPolicy::load(&path).unwrap();
    let keys = KeySet::from_json(&jwks(&[rsa_key()])).unwrap();
    let rules = cognito_rules();
    let pool = CognitoPool {
        region: "us-east-1".into(),
        user_pool_id: "us-east-1_Test".into(),
    };
    let mut core = Core::new(
        policy,
        Some(KeySet::from_json(&jwks(&[rsa_key()])).unwrap()),
        rules.clone(),
        Some(pool),
    );
    core.cache = TokenCache::new(10_000);
    let context = core.context(NOW);
    let token = rsa_key().sign(&cognito_claims("agent-1", &["mcp-registry-operator"]));
    let body = br#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"get_stock_aggregates","arguments":{"stock_ticker":"AAPL","multiplier":1,"timespan":"day","from_date":"2026-01-01","to_date":"2026-01-31"}}}"#;
    let check = TestCheck::post("/fininfo/mcp", Some(&token), &body[..]);
    let request = check.facts();
    assert!(matches!(decide(&request, &context), Decision::Allow(_)));

    c.bench_function("decide/cached_token/tools_call", |b| {
        b.iter(|| decide(black_box(&request), black_box(&context)))
    });
    let mut headers = HeaderMap::new();
    for (name, value) in [
        ("x-authorization", format!("Bearer {token}")),
        ("x-original-uri", "/fininfo/mcp".to_owned()),
        ("x-original-method", "POST".to_owned()),
        ("content-type", "application/json".to_owned()),
        ("accept", "application/json, text/event-stream".to_owned()),
        (
            "x-request-id",
            "0123456789abcdef0123456789abcdef".to_owned(),
        ),
    ] {
        headers.insert(
            HeaderName::from_static(name),
            HeaderValue::from_str(&value).unwrap(),
        );
    }
    let settings = AnswerSettings {
        resource_metadata: None,
        max_body_bytes: 1 << 20,
    };
    c.bench_function("check/headers_to_answer/tools_call", |b| {
        b.iter(|| {
            let check = request::read(black_box(&headers), "POST", None, Body::Complete(body));
            let answer = answer(decide(&check, black_box(&context)), &settings);
            assert_eq!(answer.status.http, 200);
            answer
        })
    });
    c.bench_function("verify/first_seen_token/rs256", |b| {
        b.iter(|| verify(black_box(&token), &keys, &rules, NOW).unwrap())
    });
}

criterion_group!(benches, bench_decision);
criterion_main!(benches);
