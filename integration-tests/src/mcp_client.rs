//! A thin MCP client for the tests: rmcp's streamable HTTP client transport (sessions, SSE,
//! the JSON-RPC lifecycle), over an HTTP backend of ours on reqwest.
//!
//! Why our own backend: rmcp's built-in reqwest backend folds HTTP failures into several error
//! shapes — a 401/403 with `WWW-Authenticate` becomes `AuthRequired`/`InsufficientScope`
//! (no body), 429/5xx become `HttpStatus` (no body), other 4xx become a formatted string, and
//! a 4xx whose body is a JSON-RPC error is handed to the service as if the server had
//! answered it (the HTTP status is lost; with `id: null` the request would never complete).
//! Gateway tests need every refusal with its status, its `WWW-Authenticate` and its body, so
//! [`GatewayHttpClient`] answers any non-2xx with [`HttpFailure`], and [`ClientError::Http`]
//! carries it to the test.
//!
//! Extra headers (`X-Authorization: Bearer <ingress>`, `Authorization: Bearer <egress>`, …)
//! are reqwest default headers, so they go, exactly as given, on every request the transport
//! makes: POST, the GET listen stream, and the DELETE that ends the session. rmcp's own
//! `auth_header` option is not used (it would set `Authorization` itself).

use std::{
    collections::HashMap,
    error::Error as StdError,
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use futures::{StreamExt, stream::BoxStream};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use rmcp::{
    ClientHandler, RoleClient, ServiceExt,
    model::{
        CallToolRequest, CallToolRequestParams, CallToolResult, ClientCapabilities, ClientConfig,
        ClientJsonRpcMessage, ClientRequest, ErrorData, Implementation, JsonObject,
        ProgressNotificationParam, ProgressToken, ProtocolVersion, ServerJsonRpcMessage,
        ServerResult, Tool,
    },
    service::{
        ClientInitializeError, NotificationContext, PeerRequestOptions, RunningService,
        ServiceError,
    },
    transport::{
        StreamableHttpClientTransport,
        streamable_http_client::{
            StreamableHttpClient, StreamableHttpClientTransportConfig, StreamableHttpError,
            StreamableHttpPostResponse,
        },
    },
};
use sse_stream::{Sse, SseStream};

/// Bytes of an error response body kept in [`HttpFailure::body`].
const MAX_ERROR_BODY: usize = 64 * 1024;
/// Largest JSON (non-SSE) response body accepted.
const MAX_JSON_BODY: usize = 16 * 1024 * 1024;

const EVENT_STREAM: &str = "text/event-stream";
const JSON: &str = "application/json";
const SESSION_ID: &str = "mcp-session-id";
const LAST_EVENT_ID: &str = "last-event-id";

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// A non-2xx HTTP answer, as the client saw it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("HTTP {status}: {body}")]
pub struct HttpFailure {
    pub status: u16,
    /// All `WWW-Authenticate` values, joined with `, ` (usually just one).
    pub www_authenticate: Option<String>,
    pub content_type: Option<String>,
    /// The body (lossy UTF-8), at most 64 KiB.
    pub body: String,
}

impl HttpFailure {
    /// The body parsed as JSON, if it is JSON.
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_str(&self.body).ok()
    }
}

/// The error type of [`GatewayHttpClient`], inside rmcp's `StreamableHttpError::Client`.
#[derive(Debug, thiserror::Error)]
pub enum HttpBackendError {
    /// The request could not be made or its body not read (connection refused, reset, …).
    #[error("HTTP request failed: {0}")]
    Request(#[from] reqwest::Error),
    /// The server (or the gateway) answered with a non-2xx status.
    #[error(transparent)]
    Status(HttpFailure),
}

/// What a test gets when a call does not succeed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The HTTP answer was not 2xx: for a gateway, a refusal (400, 401, 403, 405, 413, 5xx).
    #[error("HTTP {status}: {body}")]
    Http {
        status: u16,
        www_authenticate: Option<String>,
        content_type: Option<String>,
        body: String,
    },
    /// The MCP server answered with a JSON-RPC error.
    #[error("JSON-RPC error {}: {}", .0.code.0, .0.message)]
    JsonRpc(ErrorData),
    /// No answer in time.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// Anything else (connection refused, transport closed, unexpected response, …).
    #[error("{0}")]
    Other(String),
}

impl ClientError {
    /// The HTTP status of an [`ClientError::Http`].
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Http { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The `WWW-Authenticate` header of an [`ClientError::Http`].
    pub fn www_authenticate(&self) -> Option<&str> {
        match self {
            ClientError::Http {
                www_authenticate, ..
            } => www_authenticate.as_deref(),
            _ => None,
        }
    }

    /// The body of an [`ClientError::Http`], parsed as JSON.
    pub fn body_json(&self) -> Option<serde_json::Value> {
        match self {
            ClientError::Http { body, .. } => serde_json::from_str(body).ok(),
            _ => None,
        }
    }

    fn from_failure(failure: &HttpFailure) -> Self {
        ClientError::Http {
            status: failure.status,
            www_authenticate: failure.www_authenticate.clone(),
            content_type: failure.content_type.clone(),
            body: failure.body.clone(),
        }
    }

    fn from_service(error: ServiceError, timeout: Duration) -> Self {
        match error {
            ServiceError::McpError(data) => ClientError::JsonRpc(data),
            ServiceError::Timeout { .. } => ClientError::Timeout(timeout),
            ServiceError::TransportSend(ref transport) => {
                match find_http_failure(transport.error.as_ref()) {
                    Some(failure) => ClientError::from_failure(failure),
                    None => ClientError::Other(describe(&error)),
                }
            }
            other => ClientError::Other(describe(&other)),
        }
    }
}

/// Finds our [`HttpFailure`] in an error coming out of rmcp (it sits in
/// `StreamableHttpError::Client`, which is not a `source()`).
fn find_http_failure<'a>(error: &'a (dyn StdError + 'static)) -> Option<&'a HttpFailure> {
    let mut current = Some(error);
    while let Some(error) = current {
        if let Some(StreamableHttpError::Client(HttpBackendError::Status(failure))) =
            error.downcast_ref::<StreamableHttpError<HttpBackendError>>()
        {
            return Some(failure);
        }
        if let Some(HttpBackendError::Status(failure)) = error.downcast_ref::<HttpBackendError>() {
            return Some(failure);
        }
        if let Some(failure) = error.downcast_ref::<HttpFailure>() {
            return Some(failure);
        }
        current = error.source();
    }
    None
}

/// An error and its sources on one line.
fn describe(error: &(dyn StdError + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(error) = source {
        let more = error.to_string();
        // rmcp's messages often include their source's already.
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = error.source();
    }
    text
}

// ---------------------------------------------------------------------------------------------
// The HTTP backend
// ---------------------------------------------------------------------------------------------

/// rmcp's streamable HTTP client backend, on reqwest, that reports every non-2xx answer as
/// [`HttpBackendError::Status`] and remembers the latest one.
#[derive(Debug, Clone)]
pub struct GatewayHttpClient {
    http: reqwest::Client,
    last_failure: Arc<Mutex<Option<HttpFailure>>>,
}

type HttpResult<T> = Result<T, StreamableHttpError<HttpBackendError>>;

impl GatewayHttpClient {
    /// A backend that sends `headers` on every request.
    pub fn new(headers: HeaderMap) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .no_proxy()
            .build()?;
        Ok(Self {
            http,
            last_failure: Arc::default(),
        })
    }

    /// The latest non-2xx answer this backend saw, if any.
    pub fn last_failure(&self) -> Option<HttpFailure> {
        self.last_failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// A backend for `options`: its headers on every request, its TLS trust and HTTP versions.
    pub fn with_options(options: &ConnectOptions) -> Result<Self, reqwest::Error> {
        Ok(Self {
            http: options.http_client_builder()?.build()?,
            last_failure: Arc::default(),
        })
    }

    fn clear_last_failure(&self) {
        *self
            .last_failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = None;
    }

    fn request(
        &self,
        builder: reqwest::RequestBuilder,
        session_id: Option<&str>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> reqwest::RequestBuilder {
        let mut builder = builder;
        if let Some(session_id) = session_id {
            builder = builder.header(SESSION_ID, session_id);
        }
        if let Some(token) = auth_header {
            builder = builder.bearer_auth(token);
        }
        for (name, value) in custom_headers {
            builder = builder.header(name, value);
        }
        builder
    }

    /// Turns a non-2xx response into an error (and remembers it).
    async fn check_status(&self, response: reqwest::Response) -> HttpResult<reqwest::Response> {
        if response.status().is_success() {
            return Ok(response);
        }
        let headers = response.headers();
        let www_authenticate = {
            let values: Vec<_> = headers
                .get_all(header::WWW_AUTHENTICATE)
                .iter()
                .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
                .collect();
            (!values.is_empty()).then(|| values.join(", "))
        };
        let failure = HttpFailure {
            status: response.status().as_u16(),
            www_authenticate,
            content_type: content_type(headers),
            body: String::from_utf8_lossy(&read_body(response, MAX_ERROR_BODY, true).await?)
                .into_owned(),
        };
        *self
            .last_failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(failure.clone());
        Err(StreamableHttpError::Client(HttpBackendError::Status(
            failure,
        )))
    }
}

fn content_type(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::CONTENT_TYPE)
        .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
}

fn is_media_type(content_type: Option<&str>, expected: &str) -> bool {
    content_type
        .and_then(|ct| ct.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case(expected))
}

/// Reads at most `limit` bytes of a body; past that, truncates or fails.
async fn read_body(
    response: reqwest::Response,
    limit: usize,
    truncate: bool,
) -> HttpResult<Vec<u8>> {
    let mut body = Vec::new();
    let mut chunks = response.bytes_stream();
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(|e| StreamableHttpError::Client(HttpBackendError::from(e)))?;
        if body.len() + chunk.len() > limit {
            if truncate {
                body.extend_from_slice(&chunk[..limit - body.len()]);
                break;
            }
            return Err(StreamableHttpError::ResponseBodyTooLarge { max_size: limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn sse_stream(response: reqwest::Response) -> BoxStream<'static, Result<Sse, sse_stream::Error>> {
    SseStream::from_bytes_stream(response.bytes_stream()).boxed()
}

impl StreamableHttpClient for GatewayHttpClient {
    type Error = HttpBackendError;

    async fn post_message(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> HttpResult<StreamableHttpPostResponse> {
        let body = serde_json::to_vec(&message)?;
        let builder = self
            .http
            .post(uri.as_ref())
            .header(header::ACCEPT, format!("{EVENT_STREAM}, {JSON}"))
            .header(header::CONTENT_TYPE, JSON)
            .body(body);
        let builder = self.request(builder, session_id.as_deref(), auth_header, custom_headers);
        let response = builder
            .send()
            .await
            .map_err(|e| StreamableHttpError::Client(e.into()))?;
        let response = self.check_status(response).await?;
        if matches!(
            response.status(),
            StatusCode::ACCEPTED | StatusCode::NO_CONTENT
        ) {
            return Ok(StreamableHttpPostResponse::Accepted);
        }
        let awaits_no_response = !matches!(message, ClientJsonRpcMessage::Request(_));
        let new_session_id = response
            .headers()
            .get(SESSION_ID)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        let content_type = content_type(response.headers());
        if is_media_type(content_type.as_deref(), EVENT_STREAM) {
            return Ok(StreamableHttpPostResponse::Sse(
                sse_stream(response),
                new_session_id,
            ));
        }
        if is_media_type(content_type.as_deref(), JSON) {
            let body = read_body(response, MAX_JSON_BODY, false).await?;
            return match serde_json::from_slice::<ServerJsonRpcMessage>(&body) {
                Ok(message) => Ok(StreamableHttpPostResponse::Json(message, new_session_id)),
                Err(_) if awaits_no_response => Ok(StreamableHttpPostResponse::Accepted),
                Err(error) => Err(StreamableHttpError::UnexpectedServerResponse(
                    format!(
                        "not a JSON-RPC message ({error}): {}",
                        String::from_utf8_lossy(&body[..body.len().min(256)])
                    )
                    .into(),
                )),
            };
        }
        if awaits_no_response {
            return Ok(StreamableHttpPostResponse::Accepted);
        }
        Err(StreamableHttpError::UnexpectedContentType(content_type))
    }

    async fn delete_session(
        &self,
        uri: Arc<str>,
        session_id: Arc<str>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> HttpResult<()> {
        let builder = self.request(
            self.http.delete(uri.as_ref()),
            Some(&session_id),
            auth_header,
            custom_headers,
        );
        let response = builder
            .send()
            .await
            .map_err(|e| StreamableHttpError::Client(e.into()))?;
        if response.status() == StatusCode::METHOD_NOT_ALLOWED {
            return Ok(());
        }
        self.check_status(response).await?;
        Ok(())
    }

    async fn get_stream(
        &self,
        uri: Arc<str>,
        session_id: Option<Arc<str>>,
        last_event_id: Option<String>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> HttpResult<BoxStream<'static, Result<Sse, sse_stream::Error>>> {
        let mut builder = self
            .http
            .get(uri.as_ref())
            .header(header::ACCEPT, EVENT_STREAM);
        if let Some(last_event_id) = last_event_id {
            builder = builder.header(LAST_EVENT_ID, last_event_id);
        }
        let builder = self.request(builder, session_id.as_deref(), auth_header, custom_headers);
        let response = builder
            .send()
            .await
            .map_err(|e| StreamableHttpError::Client(e.into()))?;
        if response.status() == StatusCode::METHOD_NOT_ALLOWED {
            return Err(StreamableHttpError::ServerDoesNotSupportSse);
        }
        let response = self.check_status(response).await?;
        let content_type = content_type(response.headers());
        if !is_media_type(content_type.as_deref(), EVENT_STREAM) {
            return Err(StreamableHttpError::UnexpectedContentType(content_type));
        }
        Ok(sse_stream(response))
    }
}

// ---------------------------------------------------------------------------------------------
// The client handler: records progress notifications
// ---------------------------------------------------------------------------------------------

/// One `notifications/progress` as it reached the client.
#[derive(Debug, Clone)]
pub struct ProgressEvent {
    /// When the client handled it.
    pub at: Instant,
    pub token: ProgressToken,
    pub progress: f64,
    pub total: Option<f64>,
    pub message: Option<String>,
}

/// The rmcp client handler: announces the client and records progress notifications.
#[derive(Debug, Clone)]
pub struct RecordingHandler {
    info: ClientConfig,
    progress: Arc<Mutex<Vec<ProgressEvent>>>,
}

impl RecordingHandler {
    fn new(protocol_version: ProtocolVersion) -> Self {
        let mut info = ClientConfig::default();
        info.protocol_version = protocol_version;
        info.capabilities = ClientCapabilities::default();
        info.client_info = Implementation::new("integration-tests", env!("CARGO_PKG_VERSION"));
        Self {
            info,
            progress: Arc::default(),
        }
    }

    /// Every progress notification received so far.
    pub fn progress_events(&self) -> Vec<ProgressEvent> {
        self.progress
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl ClientHandler for RecordingHandler {
    fn get_info(&self) -> ClientConfig {
        self.info.clone()
    }

    async fn on_progress(
        &self,
        params: ProgressNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        let event = ProgressEvent {
            at: Instant::now(),
            token: params.progress_token,
            progress: params.progress,
            total: params.total,
            message: params.message,
        };
        self.progress
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(event);
    }
}

// ---------------------------------------------------------------------------------------------
// The client
// ---------------------------------------------------------------------------------------------

/// How to connect.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// Sent on every HTTP request, exactly as given.
    pub headers: HeaderMap,
    /// Offered in `initialize`. The default, 2025-11-25, is the newest revision with the
    /// `initialize` handshake and sessions (`Mcp-Session-Id`). Offering 2026-07-28 (sessionless,
    /// `Mcp-Method`/`Mcp-Name` headers) through `initialize` is answered with 2025-11-25 by
    /// rmcp's server; that revision needs rmcp's `server/discover` lifecycle, not used here.
    pub protocol_version: ProtocolVersion,
    /// Longest wait for one answer (initialize included).
    pub timeout: Duration,
    /// For HTTPS: the only CA certificates trusted (PEM); `None`: the system's roots.
    pub tls_roots_pem: Option<String>,
    /// Which HTTP versions the client offers.
    pub http_versions: HttpVersions,
}

/// Which HTTP versions a client offers (over TLS, in ALPN).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum HttpVersions {
    /// Over TLS, HTTP/2 when the server offers it, else HTTP/1.1; plain HTTP: HTTP/1.1.
    #[default]
    Negotiated,
    /// HTTP/1.1 only.
    Http1Only,
    /// HTTP/2 only: over TLS ALPN offers `h2` alone, so a server without it fails the
    /// handshake instead of falling back.
    Http2Only,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        Self {
            headers: HeaderMap::new(),
            protocol_version: ProtocolVersion::V_2025_11_25,
            timeout: Duration::from_secs(30),
            tls_roots_pem: None,
            http_versions: HttpVersions::Negotiated,
        }
    }
}

impl ConnectOptions {
    /// Adds a header (replacing one of the same name).
    ///
    /// # Panics
    /// On a name or value that is not a valid HTTP header: a bug in the test.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        let (name, value) = (
            HeaderName::from_bytes(name.as_bytes()).expect("valid header name"),
            HeaderValue::from_str(value).expect("valid header value"),
        );
        self.headers.insert(name, value);
        self
    }

    /// `X-Authorization: Bearer <token>` (the gateway's ingress token).
    pub fn ingress_token(self, token: &str) -> Self {
        self.header("x-authorization", &format!("Bearer {token}"))
    }

    /// `Authorization: Bearer <token>` (the egress token, or the ingress one when
    /// `X-Authorization` is absent).
    pub fn bearer(self, token: &str) -> Self {
        self.header("authorization", &format!("Bearer {token}"))
    }

    /// Trusts only the CA certificates in `pem` for HTTPS (a test's throwaway CA).
    pub fn trust_only(mut self, pem: &str) -> Self {
        self.tls_roots_pem = Some(pem.to_owned());
        self
    }

    /// Offers only these HTTP versions.
    pub fn http_versions(mut self, versions: HttpVersions) -> Self {
        self.http_versions = versions;
        self
    }

    /// A reqwest client builder with these headers, TLS roots and HTTP versions (no proxy):
    /// what the MCP client uses, for a test's raw requests next to it.
    pub fn http_client_builder(&self) -> Result<reqwest::ClientBuilder, reqwest::Error> {
        let mut builder = reqwest::Client::builder()
            .default_headers(self.headers.clone())
            .no_proxy();
        if let Some(pem) = &self.tls_roots_pem {
            builder =
                builder.tls_certs_only(reqwest::Certificate::from_pem_bundle(pem.as_bytes())?);
        }
        Ok(match self.http_versions {
            HttpVersions::Negotiated => builder,
            HttpVersions::Http1Only => builder.http1_only(),
            HttpVersions::Http2Only => builder.http2_prior_knowledge(),
        })
    }
}

/// An initialized MCP session over streamable HTTP.
#[derive(Debug)]
pub struct McpClient {
    service: RunningService<RoleClient, RecordingHandler>,
    http: GatewayHttpClient,
    timeout: Duration,
}

impl McpClient {
    /// Connects to `url` sending `headers` on every request, and runs `initialize`.
    pub async fn connect(url: &str, headers: HeaderMap) -> Result<Self, ClientError> {
        Self::connect_with(
            url,
            ConnectOptions {
                headers,
                ..ConnectOptions::default()
            },
        )
        .await
    }

    /// Connects with [`ConnectOptions`] and runs `initialize` (and `notifications/initialized`).
    pub async fn connect_with(url: &str, options: ConnectOptions) -> Result<Self, ClientError> {
        let http = GatewayHttpClient::with_options(&options)
            .map_err(|e| ClientError::Other(format!("cannot build the HTTP client: {e}")))?;
        http.clear_last_failure();
        let transport = StreamableHttpClientTransport::with_client(
            http.clone(),
            StreamableHttpClientTransportConfig::with_uri(url.to_owned()),
        );
        let handler = RecordingHandler::new(options.protocol_version);
        let served = tokio::time::timeout(options.timeout, handler.serve(transport)).await;
        let service = match served {
            Err(_) => return Err(ClientError::Timeout(options.timeout)),
            Ok(Ok(service)) => service,
            Ok(Err(error)) => return Err(Self::init_error(&error, &http)),
        };
        Ok(Self {
            service,
            http,
            timeout: options.timeout,
        })
    }

    fn init_error(error: &ClientInitializeError, http: &GatewayHttpClient) -> ClientError {
        match error {
            ClientInitializeError::JsonRpcError(data) => return ClientError::JsonRpc(data.clone()),
            ClientInitializeError::TransportError { error: inner, .. } => {
                if let Some(failure) = find_http_failure(inner.error.as_ref()) {
                    return ClientError::from_failure(failure);
                }
            }
            _ => {}
        }
        // A refused `notifications/initialized` ends rmcp's worker without passing the error
        // back; the backend still saw the answer. Initialization is sequential, so the latest
        // failure is this one.
        match http.last_failure() {
            Some(failure) => ClientError::from_failure(&failure),
            None => ClientError::Other(describe(error)),
        }
    }

    /// The server's `initialize` answer (name, version, capabilities, protocol version).
    pub fn server_info(&self) -> Option<rmcp::model::ServerPeerInfo> {
        self.service.peer_info().map(|info| (*info).clone())
    }

    /// The server's name from its `initialize` answer (`serverInfo.name`).
    pub fn server_name(&self) -> Option<String> {
        self.server_info()?
            .server_info
            .map(|implementation| implementation.name)
    }

    /// The rmcp service, for anything this helper does not cover.
    pub fn service(&self) -> &RunningService<RoleClient, RecordingHandler> {
        &self.service
    }

    /// The latest non-2xx answer the client saw (on any request, including the GET stream).
    pub fn last_http_failure(&self) -> Option<HttpFailure> {
        self.http.last_failure()
    }

    /// `tools/list` (every page).
    pub async fn list_tools(&self) -> Result<Vec<Tool>, ClientError> {
        match tokio::time::timeout(self.timeout, self.service.list_all_tools()).await {
            Err(_) => Err(ClientError::Timeout(self.timeout)),
            Ok(result) => result.map_err(|e| ClientError::from_service(e, self.timeout)),
        }
    }

    /// The names of the tools, sorted.
    pub async fn tool_names(&self) -> Result<Vec<String>, ClientError> {
        let mut names: Vec<String> = self
            .list_tools()
            .await?
            .into_iter()
            .map(|tool| tool.name.into_owned())
            .collect();
        names.sort();
        Ok(names)
    }

    /// `tools/call` with `args` (a JSON object, or `null` for none).
    pub async fn call_tool(
        &self,
        name: &str,
        args: serde_json::Value,
    ) -> Result<CallToolResult, ClientError> {
        Ok(self.call_tool_with_progress(name, args).await?.0)
    }

    /// `tools/call`, returning also the progress notifications that arrived for it, in order.
    /// (rmcp gives every request a progress token.)
    pub async fn call_tool_with_progress(
        &self,
        name: &str,
        args: serde_json::Value,
    ) -> Result<(CallToolResult, Vec<ProgressEvent>), ClientError> {
        let mut params = CallToolRequestParams::new(name.to_owned());
        match args {
            serde_json::Value::Null => {}
            serde_json::Value::Object(map) => params = params.with_arguments(JsonObject::from(map)),
            other => {
                return Err(ClientError::Other(format!(
                    "tool arguments must be a JSON object, got {other}"
                )));
            }
        }
        let request = ClientRequest::CallToolRequest(CallToolRequest::new(params));
        let handle = self
            .service
            .send_request_with_option(request, PeerRequestOptions::with_timeout(self.timeout))
            .await
            .map_err(|e| ClientError::from_service(e, self.timeout))?;
        let token = handle.progress_token.clone();
        let result = handle
            .await_response()
            .await
            .map_err(|e| ClientError::from_service(e, self.timeout))?;
        let progress = self
            .service
            .service()
            .progress_events()
            .into_iter()
            .filter(|event| event.token == token)
            .collect();
        match result {
            ServerResult::CallToolResult(result) => Ok((result, progress)),
            other => Err(ClientError::Other(format!(
                "unexpected answer to tools/call: {other:?}"
            ))),
        }
    }

    /// Every progress notification received so far, on any request.
    pub fn progress_events(&self) -> Vec<ProgressEvent> {
        self.service.service().progress_events()
    }

    /// Ends the session (the transport sends `DELETE` with the session id).
    pub async fn close(self) -> Result<(), ClientError> {
        self.service
            .cancel()
            .await
            .map(|_| ())
            .map_err(|e| ClientError::Other(describe(&e)))
    }
}

/// The text of a tool result's text blocks, joined with newlines.
pub fn result_text(result: &CallToolResult) -> String {
    result
        .content
        .iter()
        .filter_map(|block| block.as_text().map(|text| text.text.clone()))
        .collect::<Vec<_>>()
        .join("\n")
}
