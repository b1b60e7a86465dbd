//! auth-server: the authorization sidecar of an MCP gateway.
//!
//! nginx or Envoy asks, for every client request, whether the caller may do it. One pipeline
//! ([`authorizer::Authorizer::answer`]) answers: the shells ([`http`], [`grpc`]) read the
//! request's facts ([`request`]), the pure core ([`decision::decide`]) decides over one snapshot
//! of data prepared once — the provider's key set ([`jwks`]), the compiled policy ([`policy`])
//! and verified tokens ([`token`]) — the decision is logged and counted once, and [`answer`]
//! is the one place where it becomes a status, headers and a body. docs/architecture.md says
//! which module owns what.

#![forbid(unsafe_code)]

pub mod answer;
pub mod authorizer;
pub mod config;
pub mod decision;
pub mod extproc;
pub mod grpc;
pub mod headers;
pub mod http;
pub mod jsonrpc;
pub mod jwks;
pub mod logging;
pub mod metrics;
pub mod policy;
pub(crate) mod record;
pub mod reload;
pub mod request;
pub mod session;
pub mod signin;
pub mod target;
pub mod token;
pub mod tools_list;

/// Seconds since the Unix epoch: the clock of the shells (the core takes `now` as an argument).
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or(0)
}
