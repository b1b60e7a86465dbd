//! The parts of a decision, and how their cost grows: JSON-RPC parsing (small, 64 KiB, a batch of
//! 50), the whole decision of the worst 1 MiB body of each shape (tests/common/worst_case.rs),
//! policy lookup with 1, 100 and 10,000 servers and 100 groups, and first-sight token
//! verification for RS256 and ES256.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::fmt::Write as _;
use std::hint::black_box;

use auth_server::decision::{Decision, decide};
use auth_server::jsonrpc;
use auth_server::jwks::KeySet;
use auth_server::policy::{Access, CompiledPolicy};
use auth_server::token::verify;
use common::*;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use serde_json::json;

fn bench_jsonrpc(c: &mut Criterion) {
    let small = json!({"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"get_stock_aggregates","arguments":{"stock_ticker":"AAPL"}}}).to_string();
    let padding: Vec<String> = (0..2150)
        .map(|i| format!("row {i} of a large argument"))
        .collect();
    let large = json!({"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"get_stock_aggregates","arguments":{"rows": padding}}}).to_string();
    assert!(
        large.len() >= 48 * 1024 && large.len() <= 80 * 1024,
        "{}",
        large.len()
    );
    let batch: Vec<serde_json::Value> = (0..50)
        .map(|i| json!({"jsonrpc":"2.0","id":i,"method":"tools/call","params":{"name":"get_stock_aggregates","arguments":{"stock_ticker":"AAPL"}}}))
        .collect();
    let batch = serde_json::Value::Array(batch).to_string();
    let mut group = c.benchmark_group("jsonrpc_parse");
    for (name, body) in [
        ("small", &small),
        ("64KiB", &large),
        ("batch_of_50", &batch),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| jsonrpc::parse(black_box(body.as_bytes()), 100).unwrap())
        });
    }
    group.finish();
}

/// The whole decision (cached token, then the body) of the worst 1 MiB body of each shape, for a
/// caller whose token belongs to no group: the most work one check can cost.
fn bench_worst_case(c: &mut Criterion) {
    let core = Core::new(
        CompiledPolicy::load(&example_scopes()).unwrap(),
        Some(KeySet::from_json(&jwks(&[rsa_key()])).unwrap()),
        cognito_rules(),
        None,
    );
    let context = core.context(NOW);
    let token = rsa_key().sign(&cognito_claims("agent", &[]));
    let mut group = c.benchmark_group("worst_case_body_1MiB");
    group.sample_size(20);
    for (shape, body) in worst_case::shapes(worst_case::ONE_MIB) {
        let check = TestCheck::post("/fininfo/mcp", Some(&token), body);
        let facts = check.facts();
        assert!(matches!(decide(&facts, &context), Decision::Deny { .. }));
        group.bench_function(shape, |b| b.iter(|| decide(black_box(&facts), &context)));
    }
    group.finish();
}

/// A policy with `servers` servers: 100 groups, each mapped to one scope of `servers / 100`
/// (at least one) servers with 5 tools each.
fn policy_with(servers: usize) -> CompiledPolicy {
    let mut yaml = String::from("group_mappings:\n");
    for group in 0..100 {
        writeln!(yaml, "  group-{group}: [scope-{group}]").unwrap();
    }
    for group in 0..100 {
        writeln!(yaml, "scope-{group}:").unwrap();
        for index in 0..servers.div_ceil(100) {
            let server = (group * servers.div_ceil(100) + index) % servers;
            writeln!(yaml, "  - server: server-{server}\n    methods: [initialize, tools/list, tools/call]\n    tools: [t0, t1, t2, t3, t4]").unwrap();
        }
    }
    CompiledPolicy::from_yaml(&yaml).unwrap()
}

fn bench_policy(c: &mut Criterion) {
    let mut group = c.benchmark_group("policy_lookup");
    let groups: Vec<String> = (0..5).map(|g| format!("group-{g}")).collect();
    for servers in [1usize, 100, 10_000] {
        let policy = policy_with(servers);
        let access = Access::Method {
            method: "tools/call",
            tool: Some("t4"),
        };
        group.bench_with_input(BenchmarkId::new("5_groups", servers), &servers, |b, _| {
            b.iter(|| {
                let scopes = policy.scopes_for_groups(black_box(&groups));
                policy.allows(&scopes, black_box("server-0"), access)
            })
        });
    }
    group.finish();
}

fn bench_first_sight(c: &mut Criterion) {
    let keys = KeySet::from_json(&jwks(&[rsa_key(), ec_key()])).unwrap();
    let rules = cognito_rules();
    let claims = cognito_claims("agent-1", &["mcp-registry-operator"]);
    let mut group = c.benchmark_group("verify_first_sight");
    for (name, key) in [("rs256", rsa_key()), ("es256", ec_key())] {
        let token = key.sign(&claims);
        group.bench_function(name, |b| {
            b.iter(|| verify(black_box(&token), &keys, &rules, NOW).unwrap())
        });
    }
    group.finish();
}

criterion_group!(
    benches,
    bench_jsonrpc,
    bench_worst_case,
    bench_policy,
    bench_first_sight
);
criterion_main!(benches);
