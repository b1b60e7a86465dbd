//! Prometheus metrics, served on their own listener (`AUTH_METRICS_LISTEN`) so that they are
//! never reachable through the gateway.
//!
//! Decisions and body sizes are counted as they happen (by [`observe_decision`], called from
//! the one place that logs decisions); the state of the caches, the key set and the policy is
//! read from the [`Authorizer`] at scrape time.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, LazyLock};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::authorizer::Authorizer;

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
pub fn observe_decision(result: &'static str, reason: &'static str, seconds: f64) {
    DECISIONS
        .get_or_create(&DecisionLabels { result, reason })
        .inc();
    DECISION_SECONDS.observe(seconds);
}

/// Records the size of a request body that was read in full.
pub fn observe_body(bytes: usize) {
    BODY_BYTES.observe(bytes as f64);
}

/// The registry of one process: the counters above and the state of `authorizer`.
pub fn registry(authorizer: Arc<Authorizer>) -> Registry {
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
    registry.register_collector(Box::new(StateCollector(authorizer)));
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
struct StateCollector(Arc<Authorizer>);

impl Collector for StateCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let authorizer = &self.0;
        let (hits, misses) = authorizer.token_cache().hits_and_misses();
        counter(
            &mut encoder,
            "auth_token_cache_hits",
            "Token lookups answered from the cache",
            hits,
        )?;
        counter(
            &mut encoder,
            "auth_token_cache_misses",
            "Token lookups that needed a verification",
            misses,
        )?;
        gauge(
            &mut encoder,
            "auth_token_cache_entries",
            "Verified tokens in the cache",
            authorizer.token_cache().len() as i64,
        )?;

        let stats = authorizer.keys().stats();
        counter(
            &mut encoder,
            "auth_jwks_refresh_succeeded",
            "Key set fetches that succeeded",
            stats.succeeded.load(Relaxed),
        )?;
        counter(
            &mut encoder,
            "auth_jwks_refresh_failed",
            "Key set fetches that failed",
            stats.failed.load(Relaxed),
        )?;
        let last = stats.last_success_unix.load(Relaxed);
        let age = if last == 0 {
            -1
        } else {
            crate::unix_now().saturating_sub(last) as i64
        };
        gauge(
            &mut encoder,
            "auth_jwks_age_seconds",
            "Seconds since the key set was last fetched (-1: never)",
            age,
        )?;
        let keys = authorizer.keys().keys().map(|keys| keys.len()).unwrap_or(0);
        gauge(
            &mut encoder,
            "auth_jwks_keys",
            "Usable keys in the key set",
            keys as i64,
        )?;

        let reloads = authorizer.reload_stats();
        counter(
            &mut encoder,
            "auth_policy_reloads_succeeded",
            "Policy reloads that took effect",
            reloads.succeeded.load(Relaxed),
        )?;
        counter(
            &mut encoder,
            "auth_policy_reloads_failed",
            "Policy reloads refused (old policy kept)",
            reloads.failed.load(Relaxed),
        )?;
        gauge(
            &mut encoder,
            "auth_ready",
            "1 when checks can be answered (key set available)",
            i64::from(authorizer.ready()),
        )?;
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
