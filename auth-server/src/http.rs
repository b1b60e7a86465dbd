//! The HTTP shell (actix-web): `/validate` for nginx and Envoy's HTTP ext_authz, the
//! `tools/list` answer filter for nginx, health and readiness, and RFC 9728 metadata. Handlers
//! read the protocol, call the authorizer, and transcribe the [`Answer`](crate::answer::Answer)
//! or [`FilterAnswer`].

use actix_web::http::StatusCode;
use actix_web::http::header::{CONTENT_LENGTH, HeaderMap, HeaderName, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::StreamExt as _;

use crate::answer::{Answer, FilterAnswer};
use crate::authorizer::{Authorizer, CheckInput, UpstreamReply};
use crate::headers::{HEADERS_TO_REMOVE, TOOLS_LIST_HEADER, filter_endpoint};
use crate::request::{self, Body, CheckRequest, HeaderLookup};

impl HeaderLookup for HeaderMap {
    fn values<'s>(&'s self, name: &'static str) -> impl Iterator<Item = Option<&'s str>> {
        // From a literal: no parsing into an allocated custom name on every lookup.
        self.get_all(HeaderName::from_static(name))
            .map(|value| visible_ascii(value.as_bytes()))
    }
}

/// A `/validate` request as the handler holds it.
struct HttpCheck<'r> {
    request: &'r HttpRequest,
    body: Result<Vec<u8>, BodyError>,
}

impl HttpCheck<'_> {
    /// The original path Envoy's HTTP ext_authz appends: `/validate/<path>`.
    fn envoy_path(&self) -> Option<&str> {
        self.request
            .uri()
            .path_and_query()
            .and_then(|path| path.as_str().strip_prefix("/validate"))
            .filter(|tail| tail.starts_with('/'))
    }
}

impl CheckInput for HttpCheck<'_> {
    type Sendable = OwnedHttpCheck;

    fn facts(&self) -> CheckRequest<'_> {
        request::read(
            self.request.headers(),
            self.request.method().as_str(),
            self.envoy_path(),
            body(&self.body),
        )
    }

    fn request_id(&self) -> Option<&str> {
        request::request_id(self.request.headers())
    }

    fn into_sendable(self) -> OwnedHttpCheck {
        OwnedHttpCheck {
            headers: self.request.headers().clone(),
            method: self.request.method().as_str().to_owned(),
            envoy_path: self.envoy_path().map(str::to_owned),
            body: self.body,
        }
    }
}

/// A `/validate` request copied out of actix's request, to be decided on another thread.
struct OwnedHttpCheck {
    headers: HeaderMap,
    method: String,
    envoy_path: Option<String>,
    body: Result<Vec<u8>, BodyError>,
}

impl CheckInput for OwnedHttpCheck {
    type Sendable = OwnedHttpCheck;

    fn facts(&self) -> CheckRequest<'_> {
        request::read(
            &self.headers,
            &self.method,
            self.envoy_path.as_deref(),
            body(&self.body),
        )
    }

    fn request_id(&self) -> Option<&str> {
        request::request_id(&self.headers)
    }

    fn into_sendable(self) -> OwnedHttpCheck {
        self
    }
}

fn body(read: &Result<Vec<u8>, BodyError>) -> Body<'_> {
    match read {
        Ok(bytes) => Body::Complete(bytes),
        Err(_) => Body::TooLarge,
    }
}

/// `HeaderValue::to_str` (visible ASCII or tab), without an early exit so that the pass over
/// a ~1 KB bearer token compiles to SIMD.
fn visible_ascii(bytes: &[u8]) -> Option<&str> {
    let visible = bytes.iter().fold(true, |ok, &b| {
        ok & ((b' '..=b'~').contains(&b) | (b == b'\t'))
    });
    visible.then(|| std::str::from_utf8(bytes).ok()).flatten()
}

/// The HTTP server on a bound listener (port 0 in tests), sharing one [`Authorizer`].
pub fn server(
    authorizer: std::sync::Arc<Authorizer>,
    listener: std::net::TcpListener,
) -> std::io::Result<actix_web::dev::Server> {
    let state = web::Data::from(authorizer);
    Ok(actix_web::HttpServer::new(move || {
        actix_web::App::new()
            .app_data(state.clone())
            .configure(routes)
    })
    .listen(listener)?
    .run())
}

/// The metrics server: `/metrics` only, on its own listener.
pub fn metrics_server(
    registry: prometheus_client::registry::Registry,
    listener: std::net::TcpListener,
) -> std::io::Result<actix_web::dev::Server> {
    let registry = web::Data::new(registry);
    Ok(actix_web::HttpServer::new(move || {
        actix_web::App::new()
            .app_data(registry.clone())
            .route("/metrics", web::get().to(metrics_page))
    })
    .workers(1)
    .listen(listener)?
    .run())
}

async fn metrics_page(registry: web::Data<prometheus_client::registry::Registry>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(crate::metrics::CONTENT_TYPE)
        .body(crate::metrics::render(&registry))
}

/// Registers the routes.
pub fn routes(config: &mut web::ServiceConfig) {
    config
        .route("/validate", web::to(validate))
        .route("/validate/{tail:.*}", web::to(validate))
        .route(filter_endpoint::PATH, web::post().to(filter_tools_list))
        .route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz))
        .route(
            "/.well-known/oauth-protected-resource",
            web::get().to(resource_metadata),
        )
        .route(
            "/.well-known/oauth-protected-resource/{tail:.*}",
            web::get().to(resource_metadata),
        )
        .configure(crate::signin::routes);
}

async fn validate(
    request: HttpRequest,
    payload: web::Payload,
    authorizer: web::Data<Authorizer>,
) -> HttpResponse {
    let body = read_body(&request, payload, authorizer.max_body_bytes()).await;
    if let Err(BodyError::Broken) = body {
        return HttpResponse::BadRequest().finish();
    }
    let check = HttpCheck {
        request: &request,
        body,
    };
    respond(authorizer.into_inner().answer(check).await)
}

enum BodyError {
    TooLarge,
    Broken,
}

/// Reads the body up to `limit` bytes; never buffers more.
async fn read_body(
    request: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<Vec<u8>, BodyError> {
    let declared = request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<usize>().ok());
    if declared.is_some_and(|length| length > limit) {
        return Err(BodyError::TooLarge);
    }
    let mut body = Vec::with_capacity(declared.unwrap_or(0));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|_| BodyError::Broken)?;
        if body.len() + chunk.len() > limit {
            return Err(BodyError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// nginx's call to the `tools/list` answer filter (headers::filter_endpoint): the upstream's
/// answer in, `204` (send it as it came) or `200` with the body, `Content-Type` and status
/// (`x-mcp-status`) to send instead. A request without the check's context or the upstream's
/// status is not the gateway's: `400`.
async fn filter_tools_list(
    request: HttpRequest,
    payload: web::Payload,
    authorizer: web::Data<Authorizer>,
) -> HttpResponse {
    let headers = request.headers();
    let text = |name: &'static str| headers.fact(name).once().filter(|value| !value.is_empty());
    let status = text(filter_endpoint::UPSTREAM_STATUS)
        .and_then(|status| status.parse::<u16>().ok())
        .filter(|status| (100..=999).contains(status));
    let (Some(context), Some(status)) = (text(filter_endpoint::CONTEXT), status) else {
        return bad_filter_request(
            "the filter needs the check's context and the upstream's status",
        );
    };
    // One byte over the bound is enough to know that the answer is over it.
    let Ok(body) = read_prefix(payload, authorizer.max_list_answer_bytes() + 1).await else {
        return HttpResponse::BadRequest().finish();
    };
    let reply = UpstreamReply {
        status,
        content_type: text(filter_endpoint::UPSTREAM_CONTENT_TYPE).map(str::to_owned),
        content_encoding: text(filter_endpoint::UPSTREAM_CONTENT_ENCODING).map(str::to_owned),
        body,
    };
    let request_id = request::request_id(headers);
    match authorizer
        .into_inner()
        .filter_tools_list(context, reply, request_id)
        .await
    {
        Ok(FilterAnswer::Unchanged) => HttpResponse::NoContent().finish(),
        Ok(FilterAnswer::Replaced {
            status,
            media_type,
            body,
        }) => HttpResponse::Ok()
            .insert_header((filter_endpoint::STATUS, status.to_string()))
            .content_type(media_type.as_str())
            .body(body),
        Err(err) => {
            tracing::warn!(error = %err, "tools/list filter call refused");
            bad_filter_request(&err.to_string())
        }
    }
}

fn bad_filter_request(description: &str) -> HttpResponse {
    let body = serde_json::json!({"error": "invalid_request", "error_description": description});
    HttpResponse::BadRequest()
        .content_type("application/json")
        .body(body.to_string())
}

/// Reads the body up to `limit` bytes and stops there: a longer body is cut to its first
/// `limit` bytes.
async fn read_prefix(mut payload: web::Payload, limit: usize) -> Result<Vec<u8>, BodyError> {
    let mut body = Vec::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|_| BodyError::Broken)?;
        let room = limit - body.len();
        if chunk.len() >= room {
            body.extend_from_slice(&chunk[..room]);
            break;
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Transcribes an answer. Removals travel in one comma-separated header, as Envoy's HTTP
/// ext_authz and deploy/nginx's Lua read them.
fn respond(answer: Answer) -> HttpResponse {
    let status =
        StatusCode::from_u16(answer.status.http).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = match answer.body {
        Some(body) => HttpResponse::with_body(status, body).map_into_boxed_body(),
        None => HttpResponse::new(status),
    };
    let headers = response.headers_mut();
    for (name, value) in answer.set_headers {
        // Names are literals; values are checked text moved in without a copy (the conversion
        // cannot fail for a `HeaderText`; should it, the check fails closed).
        match HeaderValue::try_from(value.into_string()) {
            Ok(value) => headers.append(HeaderName::from_static(name), value),
            Err(_) => return HttpResponse::InternalServerError().finish(),
        }
    }
    if !answer.remove_headers.is_empty() {
        let names = answer.remove_headers.join(",");
        match HeaderValue::try_from(names) {
            Ok(value) => headers.append(HeaderName::from_static(HEADERS_TO_REMOVE), value),
            Err(_) => return HttpResponse::InternalServerError().finish(),
        }
    }
    if let Some(context) = answer.tools_list {
        match HeaderValue::try_from(context.into_string()) {
            Ok(value) => headers.append(HeaderName::from_static(TOOLS_LIST_HEADER), value),
            Err(_) => return HttpResponse::InternalServerError().finish(),
        }
    }
    response
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(r#"{"status":"ok"}"#)
}

/// 200 while every trusted issuer has a key set; otherwise 503 naming those without one
/// (checks of the others' tokens go on meanwhile).
async fn readyz(authorizer: web::Data<Authorizer>) -> HttpResponse {
    let not_ready = authorizer.issuers_not_ready();
    if not_ready.is_empty() {
        HttpResponse::Ok()
            .content_type("application/json")
            .body(r#"{"status":"ready"}"#)
    } else {
        let document = serde_json::json!({
            "status": "not_ready",
            "reason": "no key set from these identity providers yet",
            "issuers_not_ready": not_ready,
        });
        HttpResponse::ServiceUnavailable()
            .content_type("application/json")
            .body(document.to_string())
    }
}

async fn resource_metadata(
    request: HttpRequest,
    authorizer: web::Data<Authorizer>,
) -> HttpResponse {
    let Some(resource) = authorizer.resource_url() else {
        return HttpResponse::NotFound().finish();
    };
    let tail = request
        .path()
        .trim_start_matches("/.well-known/oauth-protected-resource");
    let document = serde_json::json!({
        "resource": format!("{resource}{tail}"),
        "authorization_servers": authorizer.issuer_urls().collect::<Vec<_>>(),
        "bearer_methods_supported": ["header"],
    });
    HttpResponse::Ok()
        .content_type("application/json")
        .body(document.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn visible_ascii_accepts_exactly_what_header_to_str_accepts() {
        for byte in 0..=u8::MAX {
            let bytes = [b'a', byte, b'z'];
            if let Ok(value) = HeaderValue::from_bytes(&bytes) {
                assert_eq!(
                    visible_ascii(&bytes),
                    value.to_str().ok(),
                    "byte {byte:#04x}"
                );
            }
        }
    }
}
