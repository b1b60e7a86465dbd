//! The tools/list filter behind both shells, in process over one `Authorizer`: the check marks
//! an allowed request that holds `tools/list` calls (an answer header over HTTP, dynamic
//! metadata over gRPC, the same value) and nothing else; nginx's filter endpoint and Envoy's
//! ext_proc (a real tonic server and client on loopback) filter the upstream's answer with that
//! mark and nothing a client could write, and refuse what they cannot follow.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use actix_web::{App, test, web};
use auth_server::authorizer::Authorizer;
use auth_server::grpc::CheckService;
use auth_server::headers::{TOOLS_LIST_HEADER, filter_endpoint};
use auth_server::tools_list::context::FilterContext;
use common::*;
use envoy_types::ext_authz::v3::pb::HttpResponse;
use envoy_types::pb::envoy::config::core::v3::{HeaderMap, HeaderValue, Metadata};
use envoy_types::pb::envoy::service::ext_proc::v3::external_processor_client::ExternalProcessorClient;
use envoy_types::pb::envoy::service::ext_proc::v3::{
    HttpBody, HttpHeaders, ProcessingRequest, ProcessingResponse, body_mutation,
    processing_request, processing_response,
};
use envoy_types::pb::google::protobuf::{Struct, Value as ProtoValue, value::Kind};
use serde_json::{Value, json};

/// A bound small enough to pass in a test.
const BOUND: usize = 4096;

fn authorizer() -> Arc<Authorizer> {
    offline_authorizer(
        &[rsa_key()],
        &[("AUTH_MAX_LIST_ANSWER_BYTES", &BOUND.to_string())],
    )
}

/// A token of the example policy's read-only role, valid now.
fn reader_token() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut claims = cognito_claims("reader-1", &["mcp-registry-user"]);
    claims["iat"] = json!(now - 10);
    claims["exp"] = json!(now + 600);
    rsa_key().sign(&claims)
}

const LIST: &str = r#"{"jsonrpc":"2.0","id":3,"method":"tools/list"}"#;
const PING: &str = r#"{"jsonrpc":"2.0","id":3,"method":"ping"}"#;

/// fininfo's whole list, as the MCP server sends it to request `id`.
fn fininfo_list(id: u64) -> String {
    let tools: Vec<Value> = [
        "delete_all_portfolios",
        "get_stock_aggregates",
        "print_stock_data",
    ]
    .iter()
    .map(|name| json!({"name": name, "inputSchema": {"type": "object"}}))
    .collect();
    json!({"jsonrpc":"2.0","id":id,"result":{"tools":tools}}).to_string()
}

/// The status and the mark of a `/validate` answer, and its `accept-encoding`.
async fn check_over_http(
    authorizer: &Arc<Authorizer>,
    body: &str,
) -> (u16, Option<String>, Option<String>) {
    let app = test::init_service(
        App::new()
            .app_data(web::Data::from(authorizer.clone()))
            .configure(auth_server::http::routes),
    )
    .await;
    let request = test::TestRequest::post()
        .uri("/validate/fininfo/mcp")
        .insert_header(("x-authorization", format!("Bearer {}", reader_token())))
        .set_payload(body.to_owned())
        .to_request();
    let response = test::call_service(&app, request).await;
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|value| value.to_str().unwrap().to_owned())
    };
    (
        response.status().as_u16(),
        header(TOOLS_LIST_HEADER),
        header("accept-encoding"),
    )
}

/// The mark in a gRPC `CheckResponse`'s dynamic metadata, and the upstream headers it sets.
async fn check_over_grpc(
    authorizer: &Arc<Authorizer>,
    body: &str,
) -> (Option<String>, Vec<(String, String)>) {
    let headers: HashMap<String, String> = [(
        "x-authorization".to_owned(),
        format!("Bearer {}", reader_token()),
    )]
    .into();
    let check = envoy_post("/fininfo/mcp", headers, body);
    let response = CheckService::new(authorizer.clone()).decide(check).await;
    let mark = response.dynamic_metadata.map(|metadata| {
        assert_eq!(metadata.fields.len(), 1, "only the mark");
        match &metadata.fields[TOOLS_LIST_HEADER].kind {
            Some(Kind::StringValue(text)) => text.clone(),
            other => panic!("not a string: {other:?}"),
        }
    });
    let Some(HttpResponse::OkResponse(ok)) = response.http_response else {
        panic!("not an allow");
    };
    let set = ok
        .headers
        .iter()
        .filter_map(|option| option.header.as_ref())
        .map(|header| (header.key.clone(), header.value.clone()))
        .collect();
    (mark, set)
}

#[actix_web::test]
async fn the_check_marks_a_tools_list_request_alike_on_both_shells_and_nothing_else() {
    let authorizer = authorizer();
    let (status, http_mark, encoding) = check_over_http(&authorizer, LIST).await;
    assert_eq!(status, 200);
    let http_mark = http_mark.expect("a tools/list allow is marked");
    assert_eq!(
        encoding.as_deref(),
        Some("identity"),
        "uncompressed answer asked"
    );
    let (grpc_mark, grpc_set) = check_over_grpc(&authorizer, LIST).await;
    assert_eq!(grpc_mark.as_deref(), Some(http_mark.as_str()));
    assert!(grpc_set.contains(&("accept-encoding".to_owned(), "identity".to_owned())));
    let context = FilterContext::decode(&http_mark).expect("the filter reads it");
    assert_eq!(context.who, "sub-reader-1");
    assert_eq!(context.server, "fininfo");
    assert_eq!(
        context.scopes,
        ["mcp-registry-user", "mcp-servers-restricted/read"]
    );

    let (status, mark, encoding) = check_over_http(&authorizer, PING).await;
    assert_eq!(
        (status, mark, encoding),
        (200, None, None),
        "ping is not marked"
    );
    let (mark, set) = check_over_grpc(&authorizer, PING).await;
    assert_eq!(mark, None);
    assert!(set.iter().all(|(name, _)| name != "accept-encoding"));
}

/// An answer of the filter endpoint: status, `x-mcp-status`, content type, body.
struct Filtered {
    status: u16,
    send_status: Option<u16>,
    content_type: Option<String>,
    body: String,
}

async fn filter_over_http(
    authorizer: &Arc<Authorizer>,
    headers: &[(&str, &str)],
    body: impl Into<Vec<u8>>,
) -> Filtered {
    let app = test::init_service(
        App::new()
            .app_data(web::Data::from(authorizer.clone()))
            .configure(auth_server::http::routes),
    )
    .await;
    let mut request = test::TestRequest::post().uri(filter_endpoint::PATH);
    for (name, value) in headers {
        request = request.insert_header((*name, *value));
    }
    let response = test::call_service(&app, request.set_payload(body.into()).to_request()).await;
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|value| value.to_str().unwrap().to_owned())
    };
    let status = response.status().as_u16();
    let send_status = header(filter_endpoint::STATUS).map(|status| status.parse().unwrap());
    let content_type = header("content-type");
    let body = test::read_body(response).await;
    Filtered {
        status,
        send_status,
        content_type,
        body: String::from_utf8(body.to_vec()).unwrap(),
    }
}

#[actix_web::test]
async fn the_filter_endpoint_shows_the_caller_its_tools_and_refuses_what_it_cannot_read() {
    let authorizer = authorizer();
    let (_, mark, _) = check_over_http(&authorizer, LIST).await;
    let mark = mark.unwrap();
    let inputs = |content_type: &'static str| {
        vec![
            (filter_endpoint::CONTEXT, mark.clone()),
            (filter_endpoint::UPSTREAM_STATUS, "200".to_owned()),
            (
                filter_endpoint::UPSTREAM_CONTENT_TYPE,
                content_type.to_owned(),
            ),
        ]
    };
    let send = |inputs: Vec<(&'static str, String)>, body: String| {
        let authorizer = authorizer.clone();
        async move {
            let headers: Vec<(&str, &str)> = inputs.iter().map(|(n, v)| (*n, v.as_str())).collect();
            filter_over_http(&authorizer, &headers, body).await
        }
    };

    // The reader sees the two tools its read entry names.
    let answer = send(inputs("application/json"), fininfo_list(3)).await;
    assert_eq!((answer.status, answer.send_status), (200, Some(200)));
    assert_eq!(answer.content_type.as_deref(), Some("application/json"));
    let body: Value = serde_json::from_str(&answer.body).unwrap();
    let names: Vec<&str> = body["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|tool| tool["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["get_stock_aggregates", "print_stock_data"]);
    assert_eq!(body["result"]["cacheScope"], "private");

    // Nothing to filter: send the upstream's answer as it came.
    let answer = send(
        inputs("application/json"),
        r#"{"jsonrpc":"2.0","id":3,"result":{}}"#.into(),
    )
    .await;
    assert_eq!(answer.status, 204);

    // Compressed, or over the bound: a JSON-RPC error for the request's id.
    let mut gzip = inputs("application/json");
    gzip.push((
        filter_endpoint::UPSTREAM_CONTENT_ENCODING,
        "gzip".to_owned(),
    ));
    let over = format!("{}{}", fininfo_list(3), " ".repeat(BOUND));
    for (inputs, body, reason) in [
        (gzip, fininfo_list(3), "content_encoding"),
        (inputs("application/json"), over, "too_large"),
        (inputs("text/html"), fininfo_list(3), "content_type"),
    ] {
        let answer = send(inputs, body).await;
        assert_eq!(
            (answer.status, answer.send_status),
            (200, Some(200)),
            "{reason}"
        );
        let error: Value = serde_json::from_str(&answer.body).unwrap();
        assert_eq!(error["id"], 3, "{reason}");
        assert_eq!(error["error"]["data"]["reason"], reason);
        assert!(!answer.body.contains("delete_all_portfolios"), "{reason}");
    }

    // A caller that is not the gateway: no mark, a forged one, no upstream status.
    // `{"who":"admin"}`: well encoded, but not what the check writes.
    let forged = "1.eyJ3aG8iOiJhZG1pbiJ9";
    for (headers, why) in [
        (vec![(filter_endpoint::UPSTREAM_STATUS, "200")], "no mark"),
        (
            vec![
                (filter_endpoint::CONTEXT, forged),
                (filter_endpoint::UPSTREAM_STATUS, "200"),
            ],
            "a forged mark",
        ),
        (vec![(filter_endpoint::CONTEXT, mark.as_str())], "no status"),
    ] {
        let answer = filter_over_http(&authorizer, &headers, fininfo_list(3)).await;
        assert_eq!(answer.status, 400, "{why}");
        assert!(!answer.body.contains("delete_all_portfolios"), "{why}");
    }
}

/// auth-server's gRPC listener on a free loopback port, and an ext_proc client to it.
async fn ext_proc_client(
    authorizer: Arc<Authorizer>,
) -> ExternalProcessorClient<tonic::transport::Channel> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(auth_server::grpc::serve(authorizer, listener));
    let endpoint = format!("http://{addr}");
    for _ in 0..100 {
        if let Ok(client) = ExternalProcessorClient::connect(endpoint.clone()).await {
            return client;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("the gRPC listener did not come up");
}

/// ext_authz's metadata carrying `mark`, as Envoy forwards it.
fn metadata(mark: &str) -> Metadata {
    let fields = [(
        TOOLS_LIST_HEADER.to_owned(),
        ProtoValue {
            kind: Some(Kind::StringValue(mark.to_owned())),
        },
    )]
    .into();
    Metadata {
        filter_metadata: [("envoy.filters.http.ext_authz".to_owned(), Struct { fields })].into(),
        ..Default::default()
    }
}

fn response_headers(metadata: Option<Metadata>, headers: &[(&str, &str)]) -> ProcessingRequest {
    let headers = headers
        .iter()
        .map(|(key, value)| HeaderValue {
            key: (*key).to_owned(),
            raw_value: value.as_bytes().to_vec(),
            ..Default::default()
        })
        .collect();
    ProcessingRequest {
        metadata_context: metadata,
        request: Some(processing_request::Request::ResponseHeaders(HttpHeaders {
            headers: Some(HeaderMap { headers }),
            ..Default::default()
        })),
        ..Default::default()
    }
}

fn response_body(body: &str, end_of_stream: bool) -> ProcessingRequest {
    ProcessingRequest {
        request: Some(processing_request::Request::ResponseBody(HttpBody {
            body: body.as_bytes().to_vec(),
            end_of_stream,
            ..Default::default()
        })),
        ..Default::default()
    }
}

/// Sends `messages` on one stream; the answers until the stream ends, or its gRPC error.
async fn exchange(
    client: &mut ExternalProcessorClient<tonic::transport::Channel>,
    messages: Vec<ProcessingRequest>,
) -> Result<Vec<ProcessingResponse>, tonic::Status> {
    let mut answers = client
        .process(futures_util::stream::iter(messages))
        .await?
        .into_inner();
    let mut received = Vec::new();
    while let Some(answer) = answers.message().await? {
        received.push(answer);
    }
    Ok(received)
}

#[tokio::test]
async fn ext_proc_filters_the_buffered_body_with_the_checks_mark_only() {
    let authorizer = authorizer();
    let (mark, _) = check_over_grpc(&authorizer, LIST).await;
    let mark = mark.unwrap();
    let mut client = ext_proc_client(authorizer).await;
    let headers = [(":status", "200"), ("content-type", "application/json")];

    let answers = exchange(
        &mut client,
        vec![
            response_headers(Some(metadata(&mark)), &headers),
            response_body(&fininfo_list(3), true),
        ],
    )
    .await
    .expect("a filtered body");
    assert_eq!(answers.len(), 2);
    let Some(processing_response::Response::ResponseBody(body)) = &answers[1].response else {
        panic!("not a body response: {answers:?}");
    };
    let common = body.response.as_ref().unwrap();
    let Some(body_mutation::Mutation::Body(new_body)) =
        &common.body_mutation.as_ref().unwrap().mutation
    else {
        panic!("no new body");
    };
    let new_body = String::from_utf8(new_body.clone()).unwrap();
    assert!(new_body.contains("print_stock_data") && !new_body.contains("delete_all"));
    let mutation = common.header_mutation.as_ref().unwrap();
    let set: Vec<(&str, &[u8])> = mutation
        .set_headers
        .iter()
        .map(|option| {
            let header = option.header.as_ref().unwrap();
            (header.key.as_str(), header.raw_value.as_slice())
        })
        .collect();
    assert_eq!(
        set,
        [
            ("content-type", b"application/json".as_slice()),
            ("content-length", new_body.len().to_string().as_bytes()),
        ]
    );
    assert_eq!(mutation.remove_headers, ["content-encoding"]);

    // No list in the answer: nothing to change.
    let answers = exchange(
        &mut client,
        vec![
            response_headers(Some(metadata(&mark)), &headers),
            response_body(r#"{"jsonrpc":"2.0","id":3,"result":{}}"#, true),
        ],
    )
    .await
    .unwrap();
    let Some(processing_response::Response::ResponseBody(body)) = &answers[1].response else {
        panic!("not a body response");
    };
    assert_eq!(body.response, Some(Default::default()));

    // No mark, a forged one, a body in parts: the stream fails (Envoy then answers its
    // status_on_error), never with the list.
    for (messages, why) in [
        (
            vec![
                response_headers(None, &headers),
                response_body(&fininfo_list(3), true),
            ],
            "no mark",
        ),
        (
            vec![
                response_headers(Some(metadata("1.e30")), &headers),
                response_body(&fininfo_list(3), true),
            ],
            "a forged mark",
        ),
        (
            vec![
                response_headers(Some(metadata(&mark)), &headers),
                response_body(&fininfo_list(3), false),
            ],
            "a body in parts",
        ),
    ] {
        let outcome = exchange(&mut client, messages).await;
        let status = match outcome {
            Err(status) => status,
            Ok(answers) => panic!("{why}: answered {answers:?}"),
        };
        assert!(!status.message().contains("delete_all"), "{why}");
    }
}
