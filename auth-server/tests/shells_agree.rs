//! The HTTP shell (`/validate`, for nginx and Envoy's HTTP ext_authz) and the gRPC shell
//! (Envoy's `Authorization/Check`) answer the same check the same way: same status, same
//! identity headers. Both run in process over one `Authorizer`, with a key set the test holds.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use actix_web::{App, test, web};
use auth_server::authorizer::Authorizer;
use auth_server::grpc::CheckService;
use common::*;
use envoy_types::ext_authz::v3::pb::HttpResponse;
use serde_json::{Value, json};

fn authorizer() -> Arc<Authorizer> {
    offline_authorizer(&[rsa_key()], &[])
}

/// An operator's token valid now, with `patch` merged into its claims.
fn token_with(patch: Value) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut claims = cognito_claims("agent-1", &["mcp-registry-operator"]);
    claims["iat"] = json!(now - 10);
    claims["exp"] = json!(now + 600);
    for (name, value) in patch.as_object().unwrap() {
        claims[name] = value.clone();
    }
    rsa_key().sign(&claims)
}

const CALL: &str =
    r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get_stock_aggregates"}}"#;

/// Status and identity headers of one check, as a shell answered it.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    status: u16,
    identity: Vec<(String, String)>,
}

async fn over_http(authorizer: &Arc<Authorizer>, token: &str) -> Outcome {
    let app = test::init_service(
        App::new()
            .app_data(web::Data::from(authorizer.clone()))
            .configure(auth_server::http::routes),
    )
    .await;
    let request = test::TestRequest::post()
        .uri("/validate/fininfo/mcp")
        .insert_header(("x-authorization", format!("Bearer {token}")))
        .set_payload(CALL)
        .to_request();
    let response = test::call_service(&app, request).await;
    let identity = response
        .headers()
        .iter()
        .filter(|(name, _)| {
            name.as_str().starts_with("x-") && name.as_str() != "x-envoy-auth-headers-to-remove"
        })
        .map(|(name, value)| {
            (
                name.as_str().to_owned(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect();
    Outcome {
        status: response.status().as_u16(),
        identity,
    }
}

async fn over_grpc(authorizer: &Arc<Authorizer>, token: &str) -> Outcome {
    let headers: HashMap<String, String> = [
        ("x-authorization".to_owned(), format!("Bearer {token}")),
        ("content-type".to_owned(), "application/json".to_owned()),
    ]
    .into();
    let check = envoy_post("/fininfo/mcp", headers, CALL);
    let response = CheckService::new(authorizer.clone()).decide(check).await;
    match response.http_response.expect("an HTTP response") {
        HttpResponse::OkResponse(ok) => Outcome {
            status: 200,
            identity: ok
                .headers
                .iter()
                .map(|option| {
                    let header = option.header.as_ref().unwrap();
                    (header.key.clone(), header.value.clone())
                })
                .collect(),
        },
        HttpResponse::DeniedResponse(denied) => Outcome {
            status: u16::try_from(denied.status.unwrap().code).unwrap(),
            identity: denied
                .headers
                .iter()
                .filter_map(|option| option.header.as_ref())
                .filter(|header| header.key.starts_with("x-"))
                .map(|header| (header.key.clone(), header.value.clone()))
                .collect(),
        },
        HttpResponse::ErrorResponse(_) => panic!("an error response"),
    }
}

#[actix_web::test]
async fn both_shells_pass_the_same_identity_for_an_allowed_call() {
    let authorizer = authorizer();
    let token = token_with(json!({}));
    let http = over_http(&authorizer, &token).await;
    let grpc = over_grpc(&authorizer, &token).await;
    assert_eq!(http.status, 200);
    let mut http_identity = http.identity;
    let mut grpc_identity = grpc.identity;
    http_identity.sort();
    grpc_identity.sort();
    assert_eq!(http_identity, grpc_identity);
}

#[actix_web::test]
async fn an_identity_that_cannot_be_a_header_value_fails_closed_on_both_shells() {
    let authorizer = authorizer();
    for patch in [
        json!({"sub": "agent-1\r\nx-user: admin"}),
        json!({"username": "agent\nx-scopes: mcp-servers-unrestricted/execute"}),
        json!({"sub": "agent\u{0}1"}),
    ] {
        let token = token_with(patch.clone());
        for (shell, outcome) in [
            ("http", over_http(&authorizer, &token).await),
            ("grpc", over_grpc(&authorizer, &token).await),
        ] {
            assert_eq!(
                outcome,
                Outcome {
                    status: 500,
                    identity: vec![]
                },
                "{shell}, claims {patch}"
            );
        }
    }
}
