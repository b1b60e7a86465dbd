//! auth-server: the authorization sidecar of an MCP gateway.
//!
//! nginx or Envoy asks, for every client request, whether the caller may do it. The answer comes
//! from a pure core, [`decision::decide`], over data prepared once: the provider's key set
//! ([`jwks`]), the compiled policy ([`policy`]) and verified tokens ([`token`]). The shells
//! ([`http`], and the request reader [`request`]) only translate protocols; [`answer`] is the
//! one place where a decision becomes a status, headers, a body and a log line.

#![forbid(unsafe_code)]

pub mod answer;
pub mod authorizer;
pub mod config;
pub mod decision;
pub mod grpc;
pub mod http;
pub mod jsonrpc;
pub mod jwks;
pub mod logging;
pub mod metrics;
pub mod policy;
pub mod reload;
pub mod request;
pub mod target;
pub mod token;
pub mod tools_list;

/// Seconds since the Unix epoch: the clock of the shells (the core takes `now` as an argument).
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or(0)
}
