//! Two real MCP servers for the end-to-end tests, built with rmcp's `#[tool]` macros and served
//! over its streamable HTTP transport (stateful: `Mcp-Session-Id`, SSE responses).
//!
//! - `currenttime`: `current_time_by_timezone`, and `countdown`, which streams progress
//!   notifications every 300 ms (to prove that the gateway does not buffer SSE).
//! - `fininfo`: `get_stock_aggregates`, `print_stock_data` (deterministic fake data) and
//!   `delete_all_portfolios`, the tool that the policy must never let through.
//!
//! Every server records the HTTP requests that reach it in an [`UpstreamLog`], so that a test
//! can check which headers the gateway forwarded upstream (and which it must have removed).

use std::{
    fmt,
    net::SocketAddr,
    str::FromStr,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use axum::{
    Router,
    body::Body,
    extract::{Request, State},
    middleware::{self, Next},
    response::{IntoResponse, Response},
};
use bytes::Bytes;
use chrono::{DateTime, FixedOffset, NaiveDate, Utc};
use http::{HeaderMap, Method, StatusCode};
use rmcp::{
    Peer, RoleServer, ServerHandler,
    handler::server::wrapper::Parameters,
    model::{
        CallToolResult, ContentBlock, Implementation, ProgressNotificationParam, RequestMetaObject,
        ServerCapabilities, ServerConfig,
    },
    schemars, tool, tool_handler, tool_router,
    transport::streamable_http_server::{
        StreamableHttpServerConfig, StreamableHttpService, session::local::LocalSessionManager,
    },
};
use serde::Deserialize;
use tokio::{net::TcpListener, task::JoinHandle};
use tokio_util::sync::CancellationToken;

/// The path at which every server serves MCP.
pub const MCP_PATH: &str = "/mcp";

/// Interval between two `countdown` progress notifications.
pub const COUNTDOWN_INTERVAL: Duration = Duration::from_millis(300);

/// Largest `steps` that `countdown` accepts.
pub const COUNTDOWN_MAX_STEPS: u32 = 10;

/// Largest request body the recording layer buffers (and the MCP service accepts).
const MAX_RECORDED_BODY: usize = 4 * 1024 * 1024;

// ---------------------------------------------------------------------------------------------
// Which server
// ---------------------------------------------------------------------------------------------

/// The two demo MCP servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServerKind {
    /// `currenttime`: `current_time_by_timezone`, `countdown`.
    CurrentTime,
    /// `fininfo`: `get_stock_aggregates`, `print_stock_data`, `delete_all_portfolios`.
    FinInfo,
}

impl ServerKind {
    /// Both kinds.
    pub const ALL: [ServerKind; 2] = [ServerKind::CurrentTime, ServerKind::FinInfo];

    /// The server's name: the first path segment under the gateway, and the `server` of a
    /// `scopes.yml` entry.
    pub fn name(self) -> &'static str {
        match self {
            ServerKind::CurrentTime => "currenttime",
            ServerKind::FinInfo => "fininfo",
        }
    }

    /// The names of the server's tools, in the order `tools/list` returns them (sorted).
    pub fn tool_names(self) -> &'static [&'static str] {
        match self {
            ServerKind::CurrentTime => &["countdown", "current_time_by_timezone"],
            ServerKind::FinInfo => &[
                "delete_all_portfolios",
                "get_stock_aggregates",
                "print_stock_data",
            ],
        }
    }
}

impl fmt::Display for ServerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for ServerKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "currenttime" => Ok(ServerKind::CurrentTime),
            "fininfo" => Ok(ServerKind::FinInfo),
            other => Err(format!(
                "unknown MCP server {other:?} (expected currenttime or fininfo)"
            )),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// What reached the upstream
// ---------------------------------------------------------------------------------------------

/// One HTTP request as it reached an MCP server.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    pub method: Method,
    /// Path and query, as received.
    pub path: String,
    pub headers: HeaderMap,
    pub body_len: usize,
    pub body: Bytes,
}

impl RecordedRequest {
    /// All values of a header, as strings (values that are not visible ASCII are skipped).
    pub fn header_values(&self, name: &str) -> Vec<String> {
        self.headers
            .get_all(name)
            .iter()
            .filter_map(|value| value.to_str().ok().map(str::to_owned))
            .collect()
    }

    /// The single value of a header, if present (the first one if repeated).
    pub fn header(&self, name: &str) -> Option<String> {
        self.header_values(name).into_iter().next()
    }

    /// The JSON-RPC body, parsed, if it is JSON.
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }

    /// The JSON-RPC `method` of the body, if it is a single request or notification.
    pub fn jsonrpc_method(&self) -> Option<String> {
        self.json()?.get("method")?.as_str().map(str::to_owned)
    }
}

/// A shared, cloneable record of the requests an MCP server received.
#[derive(Debug, Clone, Default)]
pub struct UpstreamLog {
    inner: Arc<Mutex<Vec<RecordedRequest>>>,
}

impl UpstreamLog {
    pub fn new() -> Self {
        Self::default()
    }

    /// A snapshot of the requests received so far, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The requests whose JSON-RPC `method` is `method`.
    pub fn requests_with_method(&self, method: &str) -> Vec<RecordedRequest> {
        self.requests()
            .into_iter()
            .filter(|request| request.jsonrpc_method().as_deref() == Some(method))
            .collect()
    }

    /// The `params.name` of every JSON request received, oldest first: the tool of each
    /// `tools/call` that reached the server.
    pub fn called_names(&self) -> Vec<String> {
        self.requests()
            .iter()
            .filter_map(RecordedRequest::json)
            .filter_map(|body| body["params"]["name"].as_str().map(str::to_owned))
            .collect()
    }

    pub fn len(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn clear(&self) {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    fn push(&self, request: RecordedRequest) {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(request);
    }
}

/// axum middleware: record the request (headers and buffered body), then pass it on.
pub async fn record_request(
    State(log): State<UpstreamLog>,
    request: Request,
    next: Next,
) -> Response {
    let (parts, body) = request.into_parts();
    let body = match axum::body::to_bytes(body, MAX_RECORDED_BODY).await {
        Ok(body) => body,
        Err(_) => return (StatusCode::PAYLOAD_TOO_LARGE, "request body too large").into_response(),
    };
    log.push(RecordedRequest {
        method: parts.method.clone(),
        path: parts
            .uri
            .path_and_query()
            .map_or_else(|| parts.uri.path().to_owned(), |pq| pq.as_str().to_owned()),
        headers: parts.headers.clone(),
        body_len: body.len(),
        body: body.clone(),
    });
    next.run(Request::from_parts(parts, Body::from(body))).await
}

// ---------------------------------------------------------------------------------------------
// Running a server
// ---------------------------------------------------------------------------------------------

/// A server running on its own task. Dropping it stops it (without waiting);
/// [`RunningServer::shutdown`] stops it and waits.
#[derive(Debug)]
pub struct RunningServer {
    kind: ServerKind,
    addr: SocketAddr,
    log: UpstreamLog,
    cancel: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl RunningServer {
    pub fn kind(&self) -> ServerKind {
        self.kind
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://{addr}/mcp`.
    pub fn url(&self) -> String {
        format!("http://{}{MCP_PATH}", self.addr)
    }

    /// The requests that reached this server.
    pub fn log(&self) -> &UpstreamLog {
        &self.log
    }

    /// Stop accepting, end the MCP sessions (closing their SSE streams) and wait for the
    /// server task, at most 5 s.
    pub async fn shutdown(mut self) {
        self.cancel.cancel();
        if let Some(mut task) = self.task.take()
            && tokio::time::timeout(Duration::from_secs(5), &mut task)
                .await
                .is_err()
        {
            task.abort();
        }
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        self.cancel.cancel();
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Builds the axum router of one server: the MCP service at [`MCP_PATH`], behind the
/// recording layer. `cancel` ends every MCP session when cancelled.
pub fn router(kind: ServerKind, log: UpstreamLog, cancel: CancellationToken) -> Router {
    // These servers only ever listen on loopback behind a test gateway, which may forward any
    // `Host`; rmcp's DNS-rebinding guard (loopback hosts only) is therefore switched off.
    let config = StreamableHttpServerConfig::default()
        .disable_allowed_hosts()
        .with_cancellation_token(cancel)
        .with_max_request_body_bytes(MAX_RECORDED_BODY);
    let sessions = Arc::new(LocalSessionManager::default());
    let mcp = match kind {
        ServerKind::CurrentTime => Router::new().nest_service(
            MCP_PATH,
            StreamableHttpService::new(|| Ok(CurrentTime), sessions, config),
        ),
        ServerKind::FinInfo => Router::new().nest_service(
            MCP_PATH,
            StreamableHttpService::new(|| Ok(FinInfo), sessions, config),
        ),
    };
    mcp.layer(middleware::from_fn_with_state(log, record_request))
}

/// Serves `kind` on `listener` at [`MCP_PATH`] until the returned handle is shut down or
/// dropped.
pub async fn spawn_server(kind: ServerKind, listener: TcpListener) -> RunningServer {
    let addr = listener
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)));
    let log = UpstreamLog::new();
    let cancel = CancellationToken::new();
    let app = router(kind, log.clone(), cancel.child_token());
    let shutdown = cancel.clone();
    let task = tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move { shutdown.cancelled_owned().await })
            .await;
        if let Err(error) = served {
            eprintln!("{kind} MCP server stopped: {error}");
        }
    });
    RunningServer {
        kind,
        addr,
        log,
        cancel,
        task: Some(task),
    }
}

fn text_result(text: impl Into<String>) -> CallToolResult {
    CallToolResult::success(vec![ContentBlock::text(text)])
}

fn tool_error(text: impl Into<String>) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(text)])
}

// ---------------------------------------------------------------------------------------------
// currenttime
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct TimezoneArgs {
    /// An IANA-style zone name: `UTC`, `Etc/GMT+5` (POSIX sign: five hours behind UTC), a fixed
    /// offset such as `UTC+05:30` or `-03:00`, or one of a few zones without daylight saving
    /// time (e.g. `Asia/Tokyo`, `Asia/Kolkata`, `America/Phoenix`).
    pub tz_name: String,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct CountdownArgs {
    /// Number of steps (at most 10); one progress notification is sent every 300 ms.
    pub steps: u32,
}

/// Zones whose offset never changes (no daylight saving time), so a fixed offset is exact.
const FIXED_ZONES: &[(&str, i32)] = &[
    ("Africa/Lagos", 60),
    ("Africa/Nairobi", 180),
    ("America/Phoenix", -7 * 60),
    ("America/Bogota", -5 * 60),
    ("Asia/Dubai", 4 * 60),
    ("Asia/Kolkata", 5 * 60 + 30),
    ("Asia/Shanghai", 8 * 60),
    ("Asia/Singapore", 8 * 60),
    ("Asia/Tokyo", 9 * 60),
    ("Pacific/Honolulu", -10 * 60),
];

/// Resolves a zone name to a fixed offset, in minutes east of UTC.
pub fn resolve_timezone(tz_name: &str) -> Option<i32> {
    let name = tz_name.trim();
    if ["UTC", "GMT", "Z", "Etc/UTC", "Etc/GMT", "Etc/Zulu", "Zulu"]
        .iter()
        .any(|utc| name.eq_ignore_ascii_case(utc))
    {
        return Some(0);
    }
    if let Some(&(_, minutes)) = FIXED_ZONES
        .iter()
        .find(|(zone, _)| zone.eq_ignore_ascii_case(name))
    {
        return Some(minutes);
    }
    // `Etc/GMT+5` is five hours *behind* UTC (POSIX sign convention); whole hours, -14..=12.
    if let Some(rest) = strip_prefix_ignore_case(name, "Etc/GMT") {
        let (sign, digits) = split_sign(rest)?;
        if digits.is_empty() || digits.len() > 2 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let hours: i32 = digits.parse().ok()?;
        let east = -sign * hours;
        return (-12..=14).contains(&east).then_some(east * 60);
    }
    // `UTC+05:30`, `GMT-3`, `+09:00`: ISO sign convention (east of UTC is positive).
    let rest = strip_prefix_ignore_case(name, "UTC")
        .or_else(|| strip_prefix_ignore_case(name, "GMT"))
        .unwrap_or(name);
    let (sign, digits) = split_sign(rest)?;
    let (hours, minutes) = match digits.split_once(':') {
        Some((h, m)) => (h, m),
        None if digits.len() == 4 => digits.split_at(2),
        None => (digits, "0"),
    };
    if hours.is_empty()
        || hours.len() > 2
        || minutes.len() > 2
        || !hours
            .bytes()
            .chain(minutes.bytes())
            .all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let hours: i32 = hours.parse().ok()?;
    let minutes: i32 = minutes.parse().ok()?;
    let total = sign * (hours * 60 + minutes);
    (minutes < 60 && (-12 * 60..=14 * 60).contains(&total)).then_some(total)
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

fn split_sign(s: &str) -> Option<(i32, &str)> {
    if let Some(rest) = s.strip_prefix('+') {
        Some((1, rest))
    } else {
        s.strip_prefix('-').map(|rest| (-1, rest))
    }
}

/// Formats `now` in the zone `tz_name`, or `None` for an unknown zone.
pub fn format_time_in(tz_name: &str, now: DateTime<Utc>) -> Option<String> {
    let minutes = resolve_timezone(tz_name)?;
    let offset = FixedOffset::east_opt(minutes * 60)?;
    let local = now.with_timezone(&offset);
    Some(format!(
        "The current time in {} is {}",
        tz_name.trim(),
        local.format("%Y-%m-%d %H:%M:%S %:z")
    ))
}

/// The `currenttime` MCP server.
///
/// Stateless: `#[tool_handler]` routes through `Self::tool_router()`.
#[derive(Debug, Clone, Copy, Default)]
pub struct CurrentTime;

#[tool_router]
impl CurrentTime {
    #[tool(description = "Get the current date and time in a time zone \
        (UTC, Etc/GMT+N, fixed offsets such as UTC+05:30, or a few zones without DST)")]
    async fn current_time_by_timezone(
        &self,
        Parameters(TimezoneArgs { tz_name }): Parameters<TimezoneArgs>,
    ) -> CallToolResult {
        match format_time_in(&tz_name, Utc::now()) {
            Some(text) => text_result(text),
            None => tool_error(format!("unknown time zone: {tz_name:?}")),
        }
    }

    #[tool(
        description = "Count down `steps` steps (at most 10), sending a progress \
        notification every 300 ms, then return"
    )]
    async fn countdown(
        &self,
        Parameters(CountdownArgs { steps }): Parameters<CountdownArgs>,
        meta: RequestMetaObject,
        peer: Peer<RoleServer>,
    ) -> CallToolResult {
        if steps > COUNTDOWN_MAX_STEPS {
            return tool_error(format!(
                "steps must be at most {COUNTDOWN_MAX_STEPS}, got {steps}"
            ));
        }
        let token = meta.get_progress_token();
        for step in 1..=steps {
            if let Some(token) = &token {
                let progress = ProgressNotificationParam::new(token.clone(), f64::from(step))
                    .with_total(f64::from(steps))
                    .with_message(format!("step {step} of {steps}"));
                if peer.notify_progress(progress).await.is_err() {
                    return tool_error("the client went away");
                }
            }
            tokio::time::sleep(COUNTDOWN_INTERVAL).await;
        }
        text_result(format!("countdown of {steps} steps finished"))
    }
}

#[tool_handler]
impl ServerHandler for CurrentTime {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new(
                "currenttime",
                env!("CARGO_PKG_VERSION"),
            ))
            .with_instructions("Tells the current time in a time zone; counts down with progress.")
    }
}

// ---------------------------------------------------------------------------------------------
// fininfo
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
pub struct StockAggregatesArgs {
    /// Ticker symbol, e.g. `AAPL`.
    pub stock_ticker: String,
    /// Size of the time window, in `timespan` units (default 1).
    #[serde(default)]
    pub multiplier: Option<u32>,
    /// `minute`, `hour`, `day` (default), `week`, `month`, `quarter` or `year`.
    #[serde(default)]
    pub timespan: Option<String>,
    /// First day, `YYYY-MM-DD`.
    pub from_date: String,
    /// Last day (inclusive), `YYYY-MM-DD`.
    pub to_date: String,
    /// Whether prices are adjusted for splits (default true; the fake data ignores it).
    #[serde(default)]
    pub adjusted: Option<bool>,
    /// `asc` (default) or `desc`.
    #[serde(default)]
    pub sort: Option<String>,
    /// Most bars returned (default 120, at most 5000).
    #[serde(default)]
    pub limit: Option<u32>,
}

/// One fake OHLCV bar.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Bar {
    /// Start of the window, milliseconds since the epoch.
    pub t: i64,
    pub o: f64,
    pub h: f64,
    pub l: f64,
    pub c: f64,
    pub v: u64,
}

/// 64-bit FNV-1a, so that the fake data never depends on the standard library's hasher.
fn fnv1a(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// A tiny deterministic generator (SplitMix64).
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Deterministic fake aggregates: the same arguments always give the same bars.
pub fn stock_aggregates(args: &StockAggregatesArgs) -> Result<Vec<Bar>, String> {
    let ticker = args.stock_ticker.trim().to_ascii_uppercase();
    if ticker.is_empty()
        || ticker.len() > 12
        || !ticker
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.')
    {
        return Err(format!("invalid stock ticker: {:?}", args.stock_ticker));
    }
    let multiplier = i64::from(args.multiplier.unwrap_or(1).max(1));
    let unit_seconds: i64 = match args.timespan.as_deref().unwrap_or("day") {
        "minute" => 60,
        "hour" => 3_600,
        "day" => 86_400,
        "week" => 7 * 86_400,
        "month" => 30 * 86_400,
        "quarter" => 91 * 86_400,
        "year" => 365 * 86_400,
        other => return Err(format!("invalid timespan: {other:?}")),
    };
    let parse = |what: &str, s: &str| {
        NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
            .map_err(|_| format!("invalid {what}: {s:?} (expected YYYY-MM-DD)"))
    };
    let from = parse("from_date", &args.from_date)?;
    let to = parse("to_date", &args.to_date)?;
    if to < from {
        return Err("to_date is before from_date".to_owned());
    }
    let limit = usize::try_from(args.limit.unwrap_or(120).clamp(1, 5000)).unwrap_or(5000);
    let start = from.and_hms_opt(0, 0, 0).map(|t| t.and_utc().timestamp());
    let end = to.and_hms_opt(23, 59, 59).map(|t| t.and_utc().timestamp());
    let (Some(start), Some(end)) = (start, end) else {
        return Err("dates out of range".to_owned());
    };
    let step = multiplier.saturating_mul(unit_seconds);

    let seed = fnv1a(ticker.as_bytes());
    let mut rng = SplitMix(seed ^ fnv1a(&start.to_le_bytes()) ^ (step as u64));
    let mut price = 20.0 + (seed % 48_000) as f64 / 100.0;
    let mut bars = Vec::new();
    let mut t = start;
    while t <= end && bars.len() < limit {
        let open = price;
        let close = (open * (1.0 + (rng.unit() - 0.5) * 0.04)).max(1.0);
        let high = open.max(close) * (1.0 + rng.unit() * 0.01);
        let low = open.min(close) * (1.0 - rng.unit() * 0.01);
        let volume = 100_000 + rng.next() % 9_900_000;
        bars.push(Bar {
            t: t * 1000,
            o: round2(open),
            h: round2(high),
            l: round2(low),
            c: round2(close),
            v: volume,
        });
        price = close;
        t = t.saturating_add(step);
    }
    if args.sort.as_deref() == Some("desc") {
        bars.reverse();
    }
    Ok(bars)
}

/// The `fininfo` MCP server.
///
/// Stateless: `#[tool_handler]` routes through `Self::tool_router()`.
#[derive(Debug, Clone, Copy, Default)]
pub struct FinInfo;

#[tool_router]
impl FinInfo {
    #[tool(
        description = "Get aggregate bars (OHLCV) for a stock over a date range \
        (deterministic demo data; no market data is fetched)"
    )]
    async fn get_stock_aggregates(
        &self,
        Parameters(args): Parameters<StockAggregatesArgs>,
    ) -> CallToolResult {
        match stock_aggregates(&args) {
            Ok(bars) => {
                let ticker = args.stock_ticker.trim().to_ascii_uppercase();
                let body = serde_json::json!({
                    "ticker": ticker,
                    "status": "OK",
                    "adjusted": args.adjusted.unwrap_or(true),
                    "queryCount": bars.len(),
                    "resultsCount": bars.len(),
                    "results": bars,
                });
                text_result(body.to_string())
            }
            Err(error) => tool_error(error),
        }
    }

    #[tool(description = "Print aggregate bars for a stock as a text table \
        (deterministic demo data)")]
    async fn print_stock_data(
        &self,
        Parameters(args): Parameters<StockAggregatesArgs>,
    ) -> CallToolResult {
        match stock_aggregates(&args) {
            Ok(bars) => {
                let ticker = args.stock_ticker.trim().to_ascii_uppercase();
                let mut text = format!("Stock data for {ticker} ({} bars)\n", bars.len());
                text.push_str(
                    "time (UTC)            open      high       low     close      volume\n",
                );
                for bar in &bars {
                    let when = DateTime::from_timestamp_millis(bar.t)
                        .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
                        .unwrap_or_default();
                    text.push_str(&format!(
                        "{when:<18} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>11}\n",
                        bar.o, bar.h, bar.l, bar.c, bar.v
                    ));
                }
                text_result(text)
            }
            Err(error) => tool_error(error),
        }
    }

    #[tool(
        description = "Delete every portfolio. Dangerous: no policy should allow it \
        (demo: nothing is stored, it only reports that it ran)"
    )]
    async fn delete_all_portfolios(&self) -> CallToolResult {
        text_result("delete_all_portfolios ran: all portfolios were deleted")
    }
}

#[tool_handler]
impl ServerHandler for FinInfo {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("fininfo", env!("CARGO_PKG_VERSION")))
            .with_instructions("Demo financial data (deterministic, fake).")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests: a panic is the failure report

    use super::*;

    #[test]
    fn zones() {
        assert_eq!(resolve_timezone("UTC"), Some(0));
        assert_eq!(resolve_timezone("etc/utc"), Some(0));
        assert_eq!(resolve_timezone("Etc/GMT+5"), Some(-300));
        assert_eq!(resolve_timezone("Etc/GMT-14"), Some(14 * 60));
        assert_eq!(resolve_timezone("Etc/GMT+13"), None);
        assert_eq!(resolve_timezone("UTC+05:30"), Some(330));
        assert_eq!(resolve_timezone("-03:00"), Some(-180));
        assert_eq!(resolve_timezone("+0945"), Some(585));
        assert_eq!(resolve_timezone("Asia/Tokyo"), Some(540));
        assert_eq!(resolve_timezone("Mars/Olympus"), None);
        assert_eq!(resolve_timezone("UTC+5:75"), None);
        assert_eq!(resolve_timezone(""), None);
    }

    #[test]
    fn formats_time() {
        let now = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        assert_eq!(
            format_time_in("Etc/GMT+5", now).unwrap(),
            "The current time in Etc/GMT+5 is 2023-11-14 17:13:20 -05:00"
        );
    }

    #[test]
    fn aggregates_are_deterministic() {
        let args = StockAggregatesArgs {
            stock_ticker: "aapl".into(),
            multiplier: None,
            timespan: None,
            from_date: "2024-01-01".into(),
            to_date: "2024-01-10".into(),
            adjusted: None,
            sort: None,
            limit: None,
        };
        let a = stock_aggregates(&args).unwrap();
        assert_eq!(a.len(), 10);
        assert_eq!(a, stock_aggregates(&args).unwrap());
        assert!(
            a.iter()
                .all(|bar| bar.l <= bar.o.min(bar.c) && bar.h >= bar.o.max(bar.c))
        );
        let bad = StockAggregatesArgs {
            to_date: "2023-12-31".into(),
            ..args
        };
        assert!(stock_aggregates(&bad).is_err());
    }
}
