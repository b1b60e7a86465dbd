//! One Envoy gRPC `Check`, in process: an allowed `tools/call` with a cached token through the
//! tonic service method (`Authorization::check`), i.e. reading Envoy's `CheckRequest`, the
//! decision, the answer and the `CheckResponse` with its header options; and the same with the
//! protobuf decoding of the request and encoding of the response around it. No socket, no
//! HTTP/2 framing: what auth-server adds per check over the pure decision (benches/decision.rs).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::hint::black_box;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use auth_server::authorizer::Authorizer;
use auth_server::config::Config;
use auth_server::grpc::CheckService;
use auth_server::jwks::KeySet;
use auth_server::jwks::fetch::KeyStore;
use auth_server::policy::CompiledPolicy;
use common::*;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use envoy_types::ext_authz::v3::pb::{Authorization, CheckRequest, CheckResponse, HttpResponse};
use envoy_types::pb::envoy::service::auth::v3::AttributeContext;
use envoy_types::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Request};
use futures_util::FutureExt as _;
use prost::Message as _;
use serde_json::json;

fn service() -> CheckService {
    let scopes = example_scopes();
    let config = Config::from_vars([
        ("AUTH_PROVIDER".to_owned(), "oidc".to_owned()),
        ("AUTH_ISSUER".to_owned(), ISSUER.to_owned()),
        ("AUTH_GROUPS_CLAIM".to_owned(), "cognito:groups".to_owned()),
        (
            "AUTH_JWKS_URL".to_owned(),
            "http://127.0.0.1:9/jwks".to_owned(),
        ),
        ("AUTH_SCOPES_FILE".to_owned(), scopes.display().to_string()),
    ])
    .unwrap();
    let policy = CompiledPolicy::load(&config.scopes_file).unwrap();
    let keys = KeySet::from_json(&jwks(&[rsa_key()])).unwrap();
    let store = Arc::new(KeyStore::with_keys(keys));
    CheckService::new(Arc::new(Authorizer::new(&config, policy, vec![store])))
}

/// The `CheckRequest` Envoy sends for an operator's `tools/call` (envoy-grpc.yaml: raw body,
/// the allowed headers only).
fn check_request() -> CheckRequest {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut claims = cognito_claims("agent-1", &["mcp-registry-operator"]);
    claims["iat"] = json!(now - 10);
    claims["exp"] = json!(now + 3600);
    let token = rsa_key().sign(&claims);
    let body = br#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"get_stock_aggregates","arguments":{"stock_ticker":"AAPL","multiplier":1,"timespan":"day","from_date":"2026-01-01","to_date":"2026-01-31"}}}"#;
    let headers = [
        (":authority", "gateway.example.com".to_owned()),
        (":method", "POST".to_owned()),
        (":path", "/fininfo/mcp".to_owned()),
        ("content-type", "application/json".to_owned()),
        ("content-length", body.len().to_string()),
        ("x-authorization", format!("Bearer {token}")),
        ("mcp-method", "tools/call".to_owned()),
        ("mcp-name", "get_stock_aggregates".to_owned()),
    ];
    CheckRequest {
        attributes: Some(AttributeContext {
            request: Some(Request {
                http: Some(HttpRequest {
                    method: "POST".into(),
                    path: "/fininfo/mcp".into(),
                    host: "gateway.example.com".into(),
                    scheme: "http".into(),
                    protocol: "HTTP/1.1".into(),
                    headers: headers
                        .into_iter()
                        .map(|(name, value)| (name.to_owned(), value))
                        .collect(),
                    size: body.len() as i64,
                    raw_body: body.to_vec(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
    }
}

/// The service method; a cached token never waits, so the future is ready at once.
fn check(service: &CheckService, request: CheckRequest) -> CheckResponse {
    service
        .check(tonic::Request::new(request))
        .now_or_never()
        .expect("a cached-token check does not wait")
        .expect("Check answers")
        .into_inner()
}

fn bench_grpc_check(c: &mut Criterion) {
    let service = service();
    let request = check_request();
    let first = check(&service, request.clone());
    assert!(
        matches!(first.http_response, Some(HttpResponse::OkResponse(_))),
        "{first:?}"
    );
    let wire = request.encode_to_vec();

    c.bench_function("grpc_check/service/cached_token/tools_call", |b| {
        // The request is cloned outside the timed part: Envoy's message arrives owned.
        b.iter_batched(
            || request.clone(),
            |request| check(&service, black_box(request)),
            BatchSize::SmallInput,
        )
    });
    c.bench_function(
        "grpc_check/protobuf_and_service/cached_token/tools_call",
        |b| {
            b.iter(|| {
                let request = CheckRequest::decode(black_box(wire.as_slice())).unwrap();
                check(&service, request).encode_to_vec()
            })
        },
    );
}

criterion_group!(benches, bench_grpc_check);
criterion_main!(benches);
