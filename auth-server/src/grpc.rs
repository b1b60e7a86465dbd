//! The gRPC shell for Envoy's ext_authz filter: `envoy.service.auth.v3.Authorization/Check`.
//!
//! It reads Envoy's `CheckRequest` into the same [`CheckRequest`](crate::decision::CheckRequest)
//! as the HTTP shell, asks the same [`Authorizer::check`], and transcribes the one
//! [`Answer`] of [`answer::answer`] into Envoy's `OkHttpResponse` / `DeniedHttpResponse`.
//! Nothing here decides anything.
//!
//! Two things differ from `/validate`, both because Envoy describes the request itself:
//! - The target and method are Envoy's `path` and `method` attributes. Client-sent
//!   `X-Original-URI`, `X-Original-URL` and `X-Original-Method` are hidden from the reader:
//!   in gRPC mode Envoy forwards every client header, and a client must not pick the target
//!   its request is judged against.
//! - The body is complete only when Envoy says so: a body marked partial
//!   (`x-envoy-auth-partial-body: true`), shorter than its `Content-Length`, or longer than
//!   `AUTH_MAX_BODY_BYTES` is never inspected; it is answered like an oversized body (413).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use envoy_types::ext_authz::v3::pb::{
    Authorization, AuthorizationServer, CheckRequest, CheckResponse, DeniedHttpResponse,
    HeaderAppendAction, HeaderValue, HeaderValueOption, HttpResponse, HttpStatus, OkHttpResponse,
};
use envoy_types::pb::envoy::service::auth::v3::attribute_context::HttpRequest;
use envoy_types::pb::google::rpc;

use crate::answer::{self, Answer, HEADERS_TO_REMOVE};
use crate::authorizer::Authorizer;
use crate::decision::Body;
use crate::request::{self, HeaderLookup, UNREADABLE_HEADER};

/// Check inputs that only a trusted gateway may set; in gRPC mode Envoy gives them as
/// attributes, so client-sent copies are never read.
const GATEWAY_ONLY_HEADERS: [&str; 3] = ["x-original-uri", "x-original-url", "x-original-method"];

/// The header Envoy adds when it could buffer only part of the body.
const PARTIAL_BODY_HEADER: &str = "x-envoy-auth-partial-body";

/// `google.rpc.Code` values used in the `CheckResponse` status.
mod code {
    pub const OK: i32 = 0;
    pub const PERMISSION_DENIED: i32 = 7;
    pub const UNAVAILABLE: i32 = 14;
    pub const UNAUTHENTICATED: i32 = 16;
}

/// The client request's headers as Envoy sent them: the raw list (`encode_raw_headers: true`,
/// repeated headers kept apart) or else the merged map.
#[derive(Debug)]
pub struct EnvoyHeaders<'a> {
    pairs: Vec<(&'a str, &'a str)>,
}

impl<'a> EnvoyHeaders<'a> {
    /// Collects the headers of Envoy's HTTP request attributes.
    pub fn new(http: &'a HttpRequest) -> Self {
        let raw = http
            .header_map
            .as_ref()
            .map(|map| map.headers.as_slice())
            .unwrap_or_default();
        let pairs = if raw.is_empty() {
            http.headers
                .iter()
                .map(|(name, value)| (name.as_str(), value.as_str()))
                .collect()
        } else {
            raw.iter().map(raw_pair).collect()
        };
        EnvoyHeaders { pairs }
    }

    /// Builds the view from a merged map alone (tests).
    pub fn from_map(map: &'a HashMap<String, String>) -> Self {
        EnvoyHeaders {
            pairs: map
                .iter()
                .map(|(name, value)| (name.as_str(), value.as_str()))
                .collect(),
        }
    }

    fn first(&self, name: &str) -> Option<&'a str> {
        self.pairs
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| *value)
    }
}

fn raw_pair(header: &HeaderValue) -> (&str, &str) {
    let value = if header.raw_value.is_empty() {
        header.value.as_str()
    } else {
        std::str::from_utf8(&header.raw_value).unwrap_or(UNREADABLE_HEADER)
    };
    (header.key.as_str(), value)
}

impl HeaderLookup for EnvoyHeaders<'_> {
    fn values<'s>(&'s self, name: &'static str) -> impl Iterator<Item = &'s str> {
        let hidden = GATEWAY_ONLY_HEADERS.contains(&name);
        self.pairs
            .iter()
            .filter(move |(key, _)| !hidden && key.eq_ignore_ascii_case(name))
            .map(|(_, value)| *value)
    }
}

/// The body Envoy sent (`raw_body` when non-empty, else `body`), unless it is incomplete or
/// too large to inspect.
fn body<'a>(http: &'a HttpRequest, headers: &EnvoyHeaders<'_>, limit: usize) -> Body<'a> {
    let bytes = if http.raw_body.is_empty() {
        http.body.as_bytes()
    } else {
        http.raw_body.as_slice()
    };
    let partial = headers
        .first(PARTIAL_BODY_HEADER)
        .is_some_and(|value| value.trim().eq_ignore_ascii_case("true"));
    // `size` is the declared Content-Length, -1 when unknown (chunked).
    let declared_longer = u64::try_from(http.size).is_ok_and(|size| size > bytes.len() as u64);
    if partial || declared_longer || bytes.len() > limit {
        Body::TooLarge
    } else {
        Body::Complete(bytes)
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

    /// Decides one Envoy check, logs the decision and returns Envoy's response.
    pub async fn decide(&self, check: &CheckRequest) -> CheckResponse {
        let fallback = HttpRequest::default();
        let http = check
            .attributes
            .as_ref()
            .and_then(|attributes| attributes.request.as_ref())
            .and_then(|request| request.http.as_ref())
            .unwrap_or(&fallback);
        let headers = EnvoyHeaders::new(http);
        let body = body(http, &headers, self.authorizer.max_body_bytes());
        let request = request::read(&headers, &http.method, Some(&http.path), body);
        let started = Instant::now();
        let decision = self.authorizer.check(&request).await;
        answer::log(
            &decision,
            request::request_id(&headers),
            started.elapsed().as_micros(),
        );
        check_response(answer::answer(&decision, self.authorizer.settings()))
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
        Ok(tonic::Response::new(self.decide(request.get_ref()).await))
    }
}

/// Transcribes an answer: 200 becomes `OkHttpResponse`, anything else `DeniedHttpResponse`.
pub fn check_response(answer: Answer) -> CheckResponse {
    if answer.status == 200 {
        allowed(answer)
    } else {
        denied(answer)
    }
}

fn overwrite(name: &str, value: String) -> HeaderValueOption {
    HeaderValueOption {
        header: Some(HeaderValue {
            key: name.to_owned(),
            value,
            ..Default::default()
        }),
        append_action: HeaderAppendAction::OverwriteIfExistsOrAdd as i32,
        ..Default::default()
    }
}

fn allowed(answer: Answer) -> CheckResponse {
    let mut headers = Vec::new();
    let mut headers_to_remove = Vec::new();
    for (name, value) in answer.headers {
        if name == HEADERS_TO_REMOVE {
            headers_to_remove.extend(
                value
                    .split(',')
                    .map(str::trim)
                    .filter(|header| !header.is_empty())
                    .map(str::to_owned),
            );
        } else if value.is_empty() {
            // Like nginx: an empty identity value sends no header, and a client-sent copy of
            // it is dropped rather than kept.
            headers_to_remove.push(name.to_owned());
        } else {
            headers.push(overwrite(name, value));
        }
    }
    CheckResponse {
        status: Some(rpc::Status {
            code: code::OK,
            ..Default::default()
        }),
        http_response: Some(HttpResponse::OkResponse(OkHttpResponse {
            headers,
            headers_to_remove,
            ..Default::default()
        })),
        ..Default::default()
    }
}

fn denied(answer: Answer) -> CheckResponse {
    let code = match answer.status {
        401 => code::UNAUTHENTICATED,
        503 => code::UNAVAILABLE,
        _ => code::PERMISSION_DENIED,
    };
    CheckResponse {
        status: Some(rpc::Status {
            code,
            ..Default::default()
        }),
        http_response: Some(HttpResponse::DeniedResponse(DeniedHttpResponse {
            status: Some(HttpStatus {
                code: i32::from(answer.status),
            }),
            headers: answer
                .headers
                .into_iter()
                .map(|(name, value)| overwrite(name, value))
                .collect(),
            body: answer.body.unwrap_or_default(),
        })),
        ..Default::default()
    }
}

/// Serves `Check` on a bound listener until the process ends.
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
        .add_service(CheckService::new(authorizer).into_server())
        .serve_with_incoming(incoming)
        .await
        .map_err(|e| describe(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let headers = EnvoyHeaders::new(&request);
        let check = request::read(
            &headers,
            &request.method,
            Some(&request.path),
            Body::Complete(b"{}"),
        );
        assert_eq!(
            check.target,
            crate::decision::TargetSource::Path("/fininfo/mcp")
        );
        assert_eq!(check.method, "POST");
    }

    #[test]
    fn raw_headers_keep_repeats_apart() {
        let mut request = http(&[], "", -1);
        request.header_map = Some(envoy_types::pb::envoy::config::core::v3::HeaderMap {
            headers: vec![
                HeaderValue {
                    key: "x-authorization".into(),
                    raw_value: b"Bearer a".to_vec(),
                    ..Default::default()
                },
                HeaderValue {
                    key: "x-authorization".into(),
                    raw_value: b"Bearer b".to_vec(),
                    ..Default::default()
                },
            ],
        });
        let headers = EnvoyHeaders::new(&request);
        assert_eq!(
            headers.values("x-authorization").collect::<Vec<_>>(),
            ["Bearer a", "Bearer b"]
        );
    }

    #[test]
    fn raw_body_wins_and_incomplete_or_large_bodies_are_never_inspected() {
        let mut request = http(&[], "text body", 9);
        request.raw_body = b"raw body!".to_vec();
        let no_headers = HashMap::new();
        let headers = EnvoyHeaders::from_map(&no_headers);
        assert_eq!(body(&request, &headers, 100), Body::Complete(b"raw body!"));
        request.raw_body.clear();
        assert_eq!(body(&request, &headers, 100), Body::Complete(b"text body"));
        // Longer than the limit.
        assert_eq!(body(&request, &headers, 4), Body::TooLarge);
        // Content-Length says more than Envoy buffered.
        request.size = 100;
        assert_eq!(body(&request, &headers, 1000), Body::TooLarge);
        // Chunked (size unknown) and complete.
        request.size = -1;
        assert_eq!(body(&request, &headers, 1000), Body::Complete(b"text body"));
        // Envoy marked it partial.
        let request = http(&[(PARTIAL_BODY_HEADER, "true")], "text body", -1);
        let headers = EnvoyHeaders::new(&request);
        assert_eq!(body(&request, &headers, 1000), Body::TooLarge);
    }

    #[test]
    fn allow_overwrites_identity_and_removes_ingress_and_empty_headers() {
        let answer = Answer {
            status: 200,
            headers: vec![
                ("x-user", "agent".to_owned()),
                ("x-client-id", "agent".to_owned()),
                ("x-tool-name", String::new()),
                (HEADERS_TO_REMOVE, "x-authorization,x-region".to_owned()),
            ],
            body: None,
        };
        let response = check_response(answer);
        assert_eq!(response.status.expect("an rpc status").code, code::OK);
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
    fn deny_carries_status_challenge_and_json_body() {
        let answer = Answer {
            status: 401,
            headers: vec![
                ("content-type", "application/json".to_owned()),
                ("www-authenticate", "Bearer".to_owned()),
            ],
            body: Some(r#"{"error":"unauthorized"}"#.to_owned()),
        };
        let response = check_response(answer);
        assert_eq!(
            response.status.expect("an rpc status").code,
            code::UNAUTHENTICATED
        );
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
