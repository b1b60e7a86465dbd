//! Prometheus metrics, served on their own listener (`AUTH_METRICS_LISTEN`) so that they are
//! never reachable through the gateway.
//!
//! A leaf: it imports nothing of the crate's. Decisions and body sizes are counted as they
//! happen ([`observe_decision`], [`observe_body`], fed by crate::record); the state of the caches,
//! the key set and the policy is asked of a [`StateSource`] at scrape time.

use std::sync::{Arc, LazyLock};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// The state figures of one process, read at scrape time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct State {
    /// Token lookups answered from the cache.
    pub token_cache_hits: u64,
    /// Token lookups that needed a verification.
    pub token_cache_misses: u64,
    /// Verified tokens in the cache.
    pub token_cache_entries: u64,
    /// Key set fetches that succeeded.
    pub jwks_refresh_succeeded: u64,
    /// Key set fetches that failed.
    pub jwks_refresh_failed: u64,
    /// Seconds since the key set was last fetched; `None`: never.
    pub jwks_age_seconds: Option<u64>,
    /// Usable keys in the key set.
    pub jwks_keys: u64,
    /// Policy reloads that took effect.
    pub policy_reloads_succeeded: u64,
    /// Policy reloads refused.
    pub policy_reloads_failed: u64,
    /// Whether checks can be answered.
    pub ready: bool,
}

/// What can report the process's [`State`] (the authorizer).
pub trait StateSource: Send + Sync + std::fmt::Debug {
    /// The figures now.
    fn state(&self) -> State;
}

/// Labels of `auth_decisions_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DecisionLabels {
    result: &'static str,
    reason: &'static str,
}

static DECISIONS: LazyLock<Family<DecisionLabels, Counter>> = LazyLock::new(Family::default);
// 1 µs .. ~1.5 s: a cached decision is microseconds, a key set refresh on an unknown kid is not.
static DECISION_SECONDS: LazyLock<Histogram> =
    LazyLock::new(|| Histogram::new(exponential_buckets(1e-6, 2.5, 16)));
// 64 B .. 4 MiB.
static BODY_BYTES: LazyLock<Histogram> =
    LazyLock::new(|| Histogram::new(exponential_buckets(64.0, 4.0, 9)));

/// Counts one decision.
pub(crate) fn observe_decision(result: &'static str, reason: &'static str, seconds: f64) {
    DECISIONS
        .get_or_create(&DecisionLabels { result, reason })
        .inc();
    DECISION_SECONDS.observe(seconds);
}

static TOOLS_LIST_ANSWERS: LazyLock<Family<DecisionLabels, Counter>> =
    LazyLock::new(Family::default);
// 10 µs .. ~3 s: a small list is filtered in microseconds, a 16 MiB one in tens of ms.
static TOOLS_LIST_SECONDS: LazyLock<Histogram> =
    LazyLock::new(|| Histogram::new(exponential_buckets(1e-5, 2.5, 14)));

/// Counts one upstream answer to a `tools/list` request that went through the filter.
pub(crate) fn observe_tools_list(result: &'static str, reason: &'static str, seconds: f64) {
    TOOLS_LIST_ANSWERS
        .get_or_create(&DecisionLabels { result, reason })
        .inc();
    TOOLS_LIST_SECONDS.observe(seconds);
}

/// Records the size of a request body that was read in full.
pub(crate) fn observe_body(bytes: usize) {
    BODY_BYTES.observe(bytes as f64);
}

/// The registry of one process: the counters above and the state of `source`.
pub fn registry(source: Arc<dyn StateSource>) -> Registry {
    let mut registry = Registry::default();
    registry.register(
        "auth_decisions",
        "Decisions by result and reason",
        DECISIONS.clone(),
    );
    registry.register(
        "auth_decision_duration_seconds",
        "Time to decide one check (token, body, policy), in seconds",
        DECISION_SECONDS.clone(),
    );
    registry.register(
        "auth_request_body_bytes",
        "Sizes of the JSON-RPC bodies inspected",
        BODY_BYTES.clone(),
    );
    registry.register(
        "auth_tools_list_answers",
        "tools/list answers by result (filtered, unchanged, withheld) and reason",
        TOOLS_LIST_ANSWERS.clone(),
    );
    registry.register(
        "auth_tools_list_filter_duration_seconds",
        "Time to filter one tools/list answer, in seconds",
        TOOLS_LIST_SECONDS.clone(),
    );
    registry.register_collector(Box::new(StateCollector(source)));
    registry
}

/// Renders the registry in the OpenMetrics text format.
pub fn render(registry: &Registry) -> String {
    let mut text = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut text, registry);
    text
}

/// The content type of [`render`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Debug)]
struct StateCollector(Arc<dyn StateSource>);

impl Collector for StateCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let state = self.0.state();
        let counters = [
            (
                "auth_token_cache_hits",
                "Token lookups answered from the cache",
                state.token_cache_hits,
            ),
            (
                "auth_token_cache_misses",
                "Token lookups that needed a verification",
                state.token_cache_misses,
            ),
            (
                "auth_jwks_refresh_succeeded",
                "Key set fetches that succeeded",
                state.jwks_refresh_succeeded,
            ),
            (
                "auth_jwks_refresh_failed",
                "Key set fetches that failed",
                state.jwks_refresh_failed,
            ),
            (
                "auth_policy_reloads_succeeded",
                "Policy reloads that took effect",
                state.policy_reloads_succeeded,
            ),
            (
                "auth_policy_reloads_failed",
                "Policy reloads refused (old policy kept)",
                state.policy_reloads_failed,
            ),
        ];
        for (name, help, value) in counters {
            counter(&mut encoder, name, help, value)?;
        }
        let gauges = [
            (
                "auth_token_cache_entries",
                "Verified tokens in the cache",
                state.token_cache_entries as i64,
            ),
            (
                "auth_jwks_age_seconds",
                "Seconds since the key set was last fetched (-1: never)",
                state.jwks_age_seconds.map_or(-1, |age| age as i64),
            ),
            (
                "auth_jwks_keys",
                "Usable keys in the key set",
                state.jwks_keys as i64,
            ),
            (
                "auth_ready",
                "1 when checks can be answered (key set available)",
                i64::from(state.ready),
            ),
        ];
        for (name, help, value) in gauges {
            gauge(&mut encoder, name, help, value)?;
        }
        Ok(())
    }
}

fn counter(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: u64,
) -> Result<(), std::fmt::Error> {
    let metric = ConstCounter::new(value);
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

fn gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: i64,
) -> Result<(), std::fmt::Error> {
    let metric = ConstGauge::new(value);
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}
