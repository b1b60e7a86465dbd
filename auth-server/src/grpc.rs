//! The gRPC shell for Envoy's ext_authz filter: `envoy.service.auth.v3.Authorization/Check`.
//!
//! It reads Envoy's `CheckRequest` into the same request facts as the HTTP shell
//! ([`crate::request`]), runs the same pipeline ([`Authorizer::answer`]), and transcribes the
//! [`Answer`] into Envoy's `OkHttpResponse` / `DeniedHttpResponse`. Nothing here decides
//! anything.
//!
//! Two things differ from `/validate`, both because Envoy describes the request itself:
//! - The target and method are Envoy's `path` and `method` attributes. Client-sent
//!   `X-Original-URI`, `X-Original-URL` and `X-Original-Method` are hidden from the reader:
//!   in gRPC mode Envoy forwards every client header, and a client must not pick the target
//!   its request is judged against.
//! - The body is complete only when Envoy says so: a body marked partial
//!   (`x-envoy-auth-partial-body: true`), shorter than its `Content-Length`, or longer than
//!   `AUTH_MAX_BODY_BYTES` is never inspected; it is answered like an oversized body (413).

use std::net::SocketAddr;
use std::sync::Arc;

use envoy_types::ext_authz::v3::pb::{
    Authorization, AuthorizationServer, CheckRequest, CheckResponse, DeniedHttpResponse,
    HeaderAppendAction, HeaderValue, HeaderValueOption, HttpResponse, HttpStatus, OkHttpResponse,
};
use envoy_types::pb::envoy::service::auth::v3::attribute_context::HttpRequest;
use envoy_types::pb::google::protobuf::{Struct, Value, value::Kind};
use envoy_types::pb::google::rpc;

use crate::answer::Answer;
use crate::authorizer::{Authorizer, CheckInput};
use crate::headers::{HeaderText, TOOLS_LIST_HEADER};
use crate::request::{self, Body, HeaderLookup};

/// Check inputs that only a trusted gateway may set; in gRPC mode Envoy gives them as
/// attributes, so client-sent copies are never read.
const GATEWAY_ONLY_HEADERS: [&str; 3] = ["x-original-uri", "x-original-url", "x-original-method"];

/// The header Envoy adds when it could buffer only part of the body.
const PARTIAL_BODY_HEADER: &str = "x-envoy-auth-partial-body";

/// Every (name, value) pair of the client request's headers as Envoy sent them: the raw list
/// (`encode_raw_headers: true`, repeated headers kept apart) or else the merged map. A raw value
/// that is not UTF-8 is `None`.
fn envoy_pairs(http: &HttpRequest) -> impl Iterator<Item = (&str, Option<&str>)> {
    let raw = http
        .header_map
        .as_ref()
        .map(|map| map.headers.as_slice())
        .unwrap_or_default();
    let merged = http
        .headers
        .iter()
        .filter(move |_| raw.is_empty())
        .map(|(name, value)| (name.as_str(), Some(value.as_str())));
    raw.iter().map(raw_pair).chain(merged)
}

/// A header of Envoy's raw list: its name, and its value unless it is not UTF-8.
pub(crate) fn raw_pair(header: &HeaderValue) -> (&str, Option<&str>) {
    let value = if header.raw_value.is_empty() {
        Some(header.value.as_str())
    } else {
        std::str::from_utf8(&header.raw_value).ok()
    };
    (header.key.as_str(), value)
}

impl HeaderLookup for HttpRequest {
    fn values<'s>(&'s self, name: &'static str) -> impl Iterator<Item = Option<&'s str>> {
        let hidden = GATEWAY_ONLY_HEADERS.contains(&name);
        envoy_pairs(self)
            .filter(move |(key, _)| !hidden && key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value)
    }
}

/// The body Envoy sent (`raw_body` when non-empty, else `body`), unless it is incomplete or
/// too large to inspect.
fn body(http: &HttpRequest, limit: usize) -> Body<'_> {
    let bytes = if http.raw_body.is_empty() {
        http.body.as_bytes()
    } else {
        http.raw_body.as_slice()
    };
    let partial = http
        .fact(PARTIAL_BODY_HEADER)
        .once()
        .is_some_and(|value| value.trim().eq_ignore_ascii_case("true"));
    // `size` is the declared Content-Length, -1 when unknown (chunked).
    let declared_longer = u64::try_from(http.size).is_ok_and(|size| size > bytes.len() as u64);
    if partial || declared_longer || bytes.len() > limit {
        Body::TooLarge
    } else {
        Body::Complete(bytes)
    }
}

/// One Envoy check: the request's HTTP attributes and the body limit. Owned: a large body is
/// decided on another thread as it is.
#[derive(Debug)]
struct EnvoyCheck {
    http: HttpRequest,
    max_body_bytes: usize,
}

impl CheckInput for EnvoyCheck {
    type Sendable = EnvoyCheck;

    fn facts(&self) -> request::CheckRequest<'_> {
        let http = &self.http;
        request::read(
            http,
            &http.method,
            Some(&http.path),
            body(http, self.max_body_bytes),
        )
    }

    fn request_id(&self) -> Option<&str> {
        request::request_id(&self.http)
    }

    fn into_sendable(self) -> EnvoyCheck {
        self
    }
}

/// `envoy.service.auth.v3.Authorization` over a shared [`Authorizer`].
#[derive(Debug, Clone)]
pub struct CheckService {
    authorizer: Arc<Authorizer>,
}

impl CheckService {
    /// The service over the process's authorizer (the same one the HTTP shell uses).
    pub fn new(authorizer: Arc<Authorizer>) -> Self {
        CheckService { authorizer }
    }

    /// Decides one Envoy check and returns Envoy's response.
    pub async fn decide(&self, check: CheckRequest) -> CheckResponse {
        let http = check
            .attributes
            .and_then(|attributes| attributes.request)
            .and_then(|request| request.http)
            .unwrap_or_default();
        let input = EnvoyCheck {
            http,
            max_body_bytes: self.authorizer.max_body_bytes(),
        };
        check_response(self.authorizer.answer(input).await)
    }

    /// The tonic service, ready to be added to a server.
    pub fn into_server(self) -> AuthorizationServer<CheckService> {
        AuthorizationServer::new(self)
    }
}

#[tonic::async_trait]
impl Authorization for CheckService {
    async fn check(
        &self,
        request: tonic::Request<CheckRequest>,
    ) -> Result<tonic::Response<CheckResponse>, tonic::Status> {
        Ok(tonic::Response::new(
            self.decide(request.into_inner()).await,
        ))
    }
}

/// Transcribes an answer: an allow becomes `OkHttpResponse`, anything else
/// `DeniedHttpResponse`, with the answer's gRPC code. The `tools/list` filter's context goes
/// into the dynamic metadata (namespace `envoy.filters.http.ext_authz`, key
/// [`TOOLS_LIST_HEADER`]), where Envoy's composite filter and ext_proc read it.
pub(crate) fn check_response(mut answer: Answer) -> CheckResponse {
    let status = Some(rpc::Status {
        code: answer.status.rpc as i32,
        ..Default::default()
    });
    let dynamic_metadata = answer.tools_list.take().map(|context| Struct {
        fields: [(
            TOOLS_LIST_HEADER.to_owned(),
            Value {
                kind: Some(Kind::StringValue(context.into_string())),
            },
        )]
        .into(),
    });
    let http_response = if answer.allows() {
        allowed(answer)
    } else {
        denied(answer)
    };
    CheckResponse {
        status,
        http_response: Some(http_response),
        dynamic_metadata,
    }
}

fn overwrite(name: &str, value: HeaderText) -> HeaderValueOption {
    HeaderValueOption {
        header: Some(HeaderValue {
            key: name.to_owned(),
            value: value.into_string(),
            ..Default::default()
        }),
        append_action: HeaderAppendAction::OverwriteIfExistsOrAdd as i32,
        ..Default::default()
    }
}

fn allowed(answer: Answer) -> HttpResponse {
    let mut headers = Vec::new();
    let mut headers_to_remove: Vec<String> = Vec::new();
    for (name, value) in answer.set_headers {
        if value.as_str().is_empty() {
            // Envoy would set an empty header; like nginx, send none, and drop a client-sent
            // copy rather than keep it.
            headers_to_remove.push(name.to_owned());
        } else {
            headers.push(overwrite(name, value));
        }
    }
    headers_to_remove.extend(answer.remove_headers.iter().map(|name| (*name).to_owned()));
    HttpResponse::OkResponse(OkHttpResponse {
        headers,
        headers_to_remove,
        ..Default::default()
    })
}

fn denied(answer: Answer) -> HttpResponse {
    HttpResponse::DeniedResponse(DeniedHttpResponse {
        status: Some(HttpStatus {
            code: i32::from(answer.status.http),
        }),
        headers: answer
            .set_headers
            .into_iter()
            .map(|(name, value)| overwrite(name, value))
            .collect(),
        body: answer.body.unwrap_or_default(),
    })
}

/// Serves `Check` and the `tools/list` answer filter (ext_proc, crate::extproc) on a bound
/// listener until the process ends.
pub async fn serve(
    authorizer: Arc<Authorizer>,
    listener: std::net::TcpListener,
) -> Result<(), String> {
    let addr: Option<SocketAddr> = listener.local_addr().ok();
    let describe = |err: &dyn std::fmt::Display| match addr {
        Some(addr) => format!("gRPC Check server on {addr}: {err}"),
        None => format!("gRPC Check server: {err}"),
    };
    listener.set_nonblocking(true).map_err(|e| describe(&e))?;
    let listener = tokio::net::TcpListener::from_std(listener).map_err(|e| describe(&e))?;
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    tonic::transport::Server::builder()
        .add_service(CheckService::new(authorizer.clone()).into_server())
        .add_service(crate::extproc::ToolsListProcessor::new(authorizer).into_server())
        .serve_with_incoming(incoming)
        .await
        .map_err(|e| describe(&e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::answer::{RpcCode, Status};
    use crate::request::HeaderFact;

    fn http(headers: &[(&str, &str)], body: &str, size: i64) -> HttpRequest {
        HttpRequest {
            method: "POST".into(),
            path: "/fininfo/mcp".into(),
            headers: headers
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            body: body.into(),
            size,
            ..Default::default()
        }
    }

    #[test]
    fn client_sent_target_and_method_headers_are_never_read() {
        let request = http(
            &[
                ("x-original-uri", "/currenttime/mcp"),
                ("x-original-method", "GET"),
            ],
            "{}",
            2,
        );
        let check = request::read(
            &request,
            &request.method,
            Some(&request.path),
            Body::Complete(b"{}"),
        );
        assert_eq!(check.target.original_uri, HeaderFact::Absent);
        assert_eq!(check.target.envoy_path, Some("/fininfo/mcp"));
        assert_eq!(check.original_method, HeaderFact::Absent);
        assert_eq!(check.own_method, "POST");
    }

    #[test]
    fn raw_headers_keep_repeats_apart_and_mark_non_utf8_values() {
        let mut request = http(&[("x-authorization", "merged")], "", -1);
        let raw = |key: &str, value: &[u8]| HeaderValue {
            key: key.into(),
            raw_value: value.to_vec(),
            ..Default::default()
        };
        request.header_map = Some(envoy_types::pb::envoy::config::core::v3::HeaderMap {
            headers: vec![
                raw("x-authorization", b"Bearer a"),
                raw("x-authorization", b"Bearer b"),
                raw("x-client-id", b"\xff\xfe"),
            ],
        });
        assert_eq!(
            request.values("x-authorization").collect::<Vec<_>>(),
            [Some("Bearer a"), Some("Bearer b")]
        );
        assert_eq!(request.fact("x-authorization"), HeaderFact::Repeated);
        assert_eq!(request.fact("x-client-id"), HeaderFact::Unreadable);
    }

    #[test]
    fn raw_body_wins_and_incomplete_or_large_bodies_are_never_inspected() {
        let mut request = http(&[], "text body", 9);
        request.raw_body = b"raw body!".to_vec();
        assert_eq!(body(&request, 100), Body::Complete(b"raw body!"));
        request.raw_body.clear();
        assert_eq!(body(&request, 100), Body::Complete(b"text body"));
        // Longer than the limit.
        assert_eq!(body(&request, 4), Body::TooLarge);
        // Content-Length says more than Envoy buffered.
        request.size = 100;
        assert_eq!(body(&request, 1000), Body::TooLarge);
        // Chunked (size unknown) and complete.
        request.size = -1;
        assert_eq!(body(&request, 1000), Body::Complete(b"text body"));
        // Envoy marked it partial.
        let request = http(&[(PARTIAL_BODY_HEADER, "true")], "text body", -1);
        assert_eq!(body(&request, 1000), Body::TooLarge);
    }

    fn text(value: &str) -> HeaderText {
        HeaderText::checked(value.to_owned()).expect("safe text")
    }

    #[test]
    fn allow_overwrites_identity_and_removes_ingress_and_empty_headers() {
        let answer = Answer {
            status: Status {
                http: 200,
                rpc: RpcCode::Ok,
            },
            set_headers: vec![
                ("x-user", text("agent")),
                ("x-client-id", text("agent")),
                ("x-tool-name", text("")),
            ],
            remove_headers: vec!["x-authorization", "x-region"],
            body: None,
            tools_list: None,
        };
        let response = check_response(answer);
        assert_eq!(response.status.expect("an rpc status").code, 0);
        let Some(HttpResponse::OkResponse(ok)) = response.http_response else {
            panic!("not an OkHttpResponse");
        };
        let set: Vec<(&str, &str, i32)> = ok
            .headers
            .iter()
            .map(|option| {
                let header = option.header.as_ref().expect("a header");
                (
                    header.key.as_str(),
                    header.value.as_str(),
                    option.append_action,
                )
            })
            .collect();
        let overwrite = HeaderAppendAction::OverwriteIfExistsOrAdd as i32;
        assert_eq!(
            set,
            [
                ("x-user", "agent", overwrite),
                ("x-client-id", "agent", overwrite)
            ]
        );
        // The deprecated `append` stays unset: `append_action` alone decides.
        #[allow(deprecated)]
        let append_unset = ok.headers.iter().all(|option| option.append.is_none());
        assert!(append_unset);
        assert_eq!(
            ok.headers_to_remove,
            ["x-tool-name", "x-authorization", "x-region"]
        );
    }

    #[test]
    fn deny_carries_status_code_challenge_and_json_body() {
        let answer = Answer {
            status: Status {
                http: 401,
                rpc: RpcCode::Unauthenticated,
            },
            set_headers: vec![
                ("content-type", text("application/json")),
                ("www-authenticate", text("Bearer")),
            ],
            remove_headers: vec![],
            body: Some(r#"{"error":"unauthorized"}"#.to_owned()),
            tools_list: None,
        };
        let response = check_response(answer);
        assert_eq!(response.status.expect("an rpc status").code, 16);
        let Some(HttpResponse::DeniedResponse(denied)) = response.http_response else {
            panic!("not a DeniedHttpResponse");
        };
        assert_eq!(denied.status.expect("an HTTP status").code, 401);
        assert_eq!(denied.body, r#"{"error":"unauthorized"}"#);
        let names: Vec<&str> = denied
            .headers
            .iter()
            .map(|option| option.header.as_ref().expect("a header").key.as_str())
            .collect();
        assert_eq!(names, ["content-type", "www-authenticate"]);
    }
}
