//! A small, bounded gRPC load client for auth-server's Envoy ext_authz service
//! (`envoy.service.auth.v3.Authorization/Check`), standing in for ghz.
//!
//! It measures Check throughput and latency as Envoy drives it: `--connections` independent
//! HTTP/2 connections, each sending one `CheckRequest` at a time, back to back (like wrk's
//! `-c`), for `--duration` seconds. Every request is what Envoy's gRPC ext_authz sends for an
//! MCP `tools/call` of `get_stock_aggregates` on `/fininfo/mcp` (body as bytes, headers as the
//! merged map); tokens cycle through the lines of `--tokens-file` (one line = always the same
//! cached token). Latency is measured per request, from send to decoded response.
//!
//! A response counts as a success only when it allows (status `OK` with an `OkHttpResponse`);
//! a denial, a gRPC error or a transport error counts as an error. It prints one line on
//! stdout, in the format of `scripts/load/validate.lua`'s wrk reporter,
//!
//! `RESULT requests=… seconds=… rps=… p50_us=… p99_us=… p999_us=… errors=…`
//!
//! and, if any request failed, the errors by kind on stderr. It exits non-zero when every
//! request failed. Only loopback addresses are accepted.
//!
//! ```text
//! cargo run --release -p auth-server --example grpc_load -- \
//!     --addr 127.0.0.1:9002 --tokens-file /tmp/tokens.txt --connections 64 --duration 10
//! ```

use std::collections::{BTreeMap, HashMap};
use std::error::Error as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use envoy_types::ext_authz::v3::pb::{CheckRequest, CheckResponse, HttpResponse};
use envoy_types::pb::envoy::service::auth::v3::AttributeContext;
use envoy_types::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Request};
use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use tonic::transport::{Channel, Endpoint};

/// The JSON-RPC body of every request: an operator's allowed `tools/call`.
const BODY: &str = r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"get_stock_aggregates","arguments":{"stock_ticker":"AAPL","from_date":"2026-01-01","to_date":"2026-01-31"}}}"#;
/// The longest run accepted, in seconds: latencies are kept in memory.
const MAX_DURATION: u64 = 600;
/// The most connections accepted.
const MAX_CONNECTIONS: usize = 1024;
/// Per-request deadline, as Envoy's `grpc_service.timeout` in deploy/envoy/envoy-grpc.yaml.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Load auth-server's gRPC Check with Envoy-like tools/call requests.
#[derive(Debug, Parser)]
#[command(about)]
struct Args {
    /// auth-server's gRPC address (AUTH_GRPC_LISTEN); loopback only.
    #[arg(long)]
    addr: SocketAddr,
    /// Bearer tokens, one per line; requests cycle through them.
    #[arg(long)]
    tokens_file: PathBuf,
    /// HTTP/2 connections, each with one request in flight.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Seconds to run (at most 600).
    #[arg(long, default_value_t = 10)]
    duration: u64,
}

/// What one connection measured.
#[derive(Debug, Default)]
struct Stats {
    /// Latency of every completed request, in microseconds.
    latencies_us: Vec<u32>,
    /// Failed requests by kind.
    errors: BTreeMap<String, u64>,
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Args::parse()).await {
        Ok(code) => code,
        Err(message) => {
            eprintln!("grpc_load: {message}");
            ExitCode::from(2)
        }
    }
}

async fn run(args: Args) -> Result<ExitCode, String> {
    if !args.addr.ip().is_loopback() {
        return Err(format!("{} is not a loopback address", args.addr));
    }
    if args.duration == 0 || args.duration > MAX_DURATION {
        return Err(format!("--duration must be 1..={MAX_DURATION} seconds"));
    }
    if args.connections == 0 || args.connections > MAX_CONNECTIONS {
        return Err(format!("--connections must be 1..={MAX_CONNECTIONS}"));
    }
    let requests: Arc<[CheckRequest]> = read_tokens(&args.tokens_file)?
        .iter()
        .map(|token| check_request(token))
        .collect();

    let mut channels = Vec::with_capacity(args.connections);
    for _ in 0..args.connections {
        channels.push(connect(args.addr).await?);
    }

    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.duration);
    let workers: Vec<_> = channels
        .into_iter()
        .enumerate()
        .map(|(index, channel)| tokio::spawn(worker(channel, requests.clone(), index, deadline)))
        .collect();
    let mut total = Stats::default();
    for worker in workers {
        let stats = worker.await.map_err(|e| format!("a worker failed: {e}"))?;
        total.latencies_us.extend(stats.latencies_us);
        for (kind, count) in stats.errors {
            *total.errors.entry(kind).or_default() += count;
        }
    }
    Ok(report(total, started.elapsed()))
}

/// The tokens of the file, one per non-empty line.
fn read_tokens(path: &PathBuf) -> Result<Vec<String>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let tokens: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(str::to_owned)
        .collect();
    if tokens.is_empty() {
        return Err(format!("{} holds no token", path.display()));
    }
    Ok(tokens)
}

/// The `CheckRequest` Envoy's gRPC ext_authz sends for a `tools/call` through the gateway
/// (`pack_as_bytes: true`: the body travels as `raw_body`; `size` is its Content-Length).
fn check_request(token: &str) -> CheckRequest {
    let headers = HashMap::from([
        ("authorization".to_owned(), format!("Bearer {token}")),
        ("content-type".to_owned(), "application/json".to_owned()),
        (
            "accept".to_owned(),
            "application/json, text/event-stream".to_owned(),
        ),
        ("content-length".to_owned(), BODY.len().to_string()),
    ]);
    let http = HttpRequest {
        method: "POST".to_owned(),
        path: "/fininfo/mcp".to_owned(),
        host: "127.0.0.1".to_owned(),
        headers,
        size: BODY.len() as i64,
        raw_body: BODY.as_bytes().to_vec(),
        ..Default::default()
    };
    CheckRequest {
        attributes: Some(AttributeContext {
            request: Some(Request {
                http: Some(http),
                ..Default::default()
            }),
            ..Default::default()
        }),
    }
}

/// One HTTP/2 connection of its own (`Endpoint::connect` never shares one).
async fn connect(addr: SocketAddr) -> Result<Channel, String> {
    Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|e| format!("bad address {addr}: {e}"))?
        .tcp_nodelay(true)
        .timeout(REQUEST_TIMEOUT)
        .connect()
        .await
        .map_err(|e| format!("cannot connect to {addr}: {e}"))
}

/// Sends Check requests back to back on one connection until the deadline.
async fn worker(
    channel: Channel,
    requests: Arc<[CheckRequest]>,
    first: usize,
    deadline: Instant,
) -> Stats {
    let mut client = AuthorizationClient::new(channel);
    let mut stats = Stats::default();
    let mut next = first;
    while Instant::now() < deadline {
        let request = requests[next % requests.len()].clone();
        next = next.wrapping_add(1);
        let sent = Instant::now();
        let result = client.check(request).await;
        let micros = u32::try_from(sent.elapsed().as_micros()).unwrap_or(u32::MAX);
        stats.latencies_us.push(micros);
        if let Err(kind) = classify(result) {
            let transport = kind.starts_with("transport");
            *stats.errors.entry(kind).or_default() += 1;
            if transport {
                // A broken connection fails at once: do not spin on it.
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    stats
}

/// `Ok` for an allow; otherwise the kind of failure.
fn classify(result: Result<tonic::Response<CheckResponse>, tonic::Status>) -> Result<(), String> {
    let response = match result {
        Ok(response) => response.into_inner(),
        // A status the client made itself (connection, timeout) carries its cause.
        Err(status) if status.source().is_some() => {
            return Err(format!("transport_{:?}", status.code()));
        }
        Err(status) => return Err(format!("grpc_{:?}", status.code())),
    };
    let code = response.status.as_ref().map(|status| status.code);
    match (code, response.http_response) {
        (Some(0), Some(HttpResponse::OkResponse(_))) => Ok(()),
        (_, Some(HttpResponse::DeniedResponse(denied))) => Err(format!(
            "denied_{}",
            denied.status.map_or(403, |status| status.code)
        )),
        (code, _) => Err(format!("unexpected_status_{}", code.unwrap_or(-1))),
    }
}

/// Prints the RESULT line (and the errors by kind); fails when nothing succeeded.
fn report(mut stats: Stats, elapsed: Duration) -> ExitCode {
    stats.latencies_us.sort_unstable();
    let requests = stats.latencies_us.len();
    let errors: u64 = stats.errors.values().sum();
    let seconds = elapsed.as_secs_f64();
    let percentile = |q: f64| percentile(&stats.latencies_us, q);
    println!(
        "RESULT requests={requests} seconds={seconds:.2} rps={:.0} p50_us={} p99_us={} p999_us={} errors={errors}",
        requests as f64 / seconds,
        percentile(0.50),
        percentile(0.99),
        percentile(0.999),
    );
    if !stats.errors.is_empty() {
        let kinds: Vec<String> = stats
            .errors
            .iter()
            .map(|(kind, count)| format!("{kind}={count}"))
            .collect();
        eprintln!("errors by kind: {}", kinds.join(" "));
    }
    if requests == 0 || errors >= requests as u64 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// Nearest-rank percentile of sorted values (0 when there are none).
fn percentile(sorted: &[u32], q: f64) -> u32 {
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted
        .get(rank.saturating_sub(1).min(sorted.len().saturating_sub(1)))
        .copied()
        .unwrap_or(0)
}
