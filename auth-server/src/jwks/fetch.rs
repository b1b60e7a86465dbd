//! Getting the key set from the provider: the only network code of the check path.
//!
//! The set is fetched at start, refreshed in the background, and refreshed on demand when a token
//! names an unknown `kid` — at most once per [`ON_DEMAND_INTERVAL`], shared by all requests that
//! wait for it. When the provider is down, the last good set keeps serving.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use tokio::sync::Mutex;

use super::KeySet;

/// Smallest gap between two refreshes caused by unknown `kid`s.
pub const ON_DEMAND_INTERVAL: Duration = Duration::from_secs(5);
/// Largest key set or discovery document read.
const MAX_DOCUMENT_BYTES: usize = 1024 * 1024;
/// Longest wait for the provider on one fetch.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait between retries while no key set is available.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(30);

/// Where the key set comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// A fixed JWKS URL (Cognito's, or `AUTH_JWKS_URL`).
    Url(String),
    /// OIDC discovery: `{issuer}/.well-known/openid-configuration` names `jwks_uri`.
    Discovery {
        /// The configured issuer; the discovery document must name the same.
        issuer: String,
    },
}

/// Why a fetch failed. Messages name the URL and what to check; never a library `Debug`.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// Connection, timeout or HTTP status problem.
    #[error("cannot fetch {url}: {reason}")]
    Http {
        /// The URL tried.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// The discovery document is unusable.
    #[error("discovery document at {url} is unusable: {reason}")]
    Discovery {
        /// The URL tried.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// The key set document is unusable.
    #[error("key set at {url} is unusable: {source}")]
    KeySet {
        /// The URL tried.
        url: String,
        /// Why the set was refused.
        source: super::KeySetError,
    },
}

/// A key set and its generation, installed and read as one value: a verification is cached
/// under the generation of the very set that verified it.
#[derive(Debug)]
pub struct VersionedKeys {
    /// The verifying keys.
    pub keys: KeySet,
    /// Changes each time the set's content changes; verified-token cache entries carry it.
    pub generation: u64,
}

/// The current key set and how to refresh it.
#[derive(Debug)]
pub struct KeyStore {
    source: KeySource,
    client: reqwest::Client,
    current: ArcSwapOption<VersionedKeys>,
    last_document: Mutex<Vec<u8>>,
    last_on_demand: Mutex<Option<Instant>>,
    stats: RefreshStats,
}

/// Refresh outcomes since start, for metrics.
#[derive(Debug, Default)]
pub struct RefreshStats {
    /// Fetches that produced a usable set (changed or not).
    pub succeeded: AtomicU64,
    /// Fetches that failed (network, status, unusable document).
    pub failed: AtomicU64,
    /// Seconds since the epoch of the last success; 0 = never.
    pub last_success_unix: AtomicU64,
}

impl KeyStore {
    /// A store with no keys yet.
    pub fn new(source: KeySource) -> Self {
        let client = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .connect_timeout(FETCH_TIMEOUT)
            // Fetches are minutes apart: a kept-alive connection would mostly be one the IdP
            // is closing (its keep-alive timeout is seconds), and a request sent as it closes
            // fails with a reset. A fresh connection per fetch costs nothing that matters.
            .pool_max_idle_per_host(0)
            .user_agent(concat!("mcp-auth-server/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default();
        KeyStore {
            source,
            client,
            current: ArcSwapOption::empty(),
            last_document: Mutex::new(Vec::new()),
            last_on_demand: Mutex::new(None),
            stats: RefreshStats::default(),
        }
    }

    /// A store holding a fixed set, for tests and benchmarks; refreshes fail.
    pub fn with_keys(keys: KeySet) -> Self {
        let store = KeyStore::new(KeySource::Url("http://127.0.0.1:9/unreachable".to_owned()));
        store.install(keys);
        store
    }

    /// The current key set with its generation, if one was ever fetched: one load, so the
    /// pair always belongs together.
    pub fn current(&self) -> Option<Arc<VersionedKeys>> {
        self.current.load_full()
    }

    /// Replaces the set, with the next generation. Installs are serialised by the callers (one
    /// fetch at a time holds `last_document`), so the generation only grows.
    pub fn install(&self, keys: KeySet) {
        let generation = self
            .current
            .load()
            .as_ref()
            .map_or(1, |current| current.generation + 1);
        tracing::info!(kids = ?keys.kids(), generation, "key set installed");
        self.current
            .store(Some(Arc::new(VersionedKeys { keys, generation })));
    }

    /// Refresh outcomes since start.
    pub fn stats(&self) -> &RefreshStats {
        &self.stats
    }

    /// Fetches the set now and installs it if it is usable; the old set stays otherwise.
    pub async fn refresh(&self) -> Result<(), FetchError> {
        let outcome = self.fetch_and_install().await;
        match &outcome {
            Ok(()) => {
                self.stats.succeeded.fetch_add(1, Ordering::Relaxed);
                self.stats
                    .last_success_unix
                    .store(crate::unix_now(), Ordering::Relaxed);
            }
            Err(_) => {
                self.stats.failed.fetch_add(1, Ordering::Relaxed);
            }
        }
        outcome
    }

    async fn fetch_and_install(&self) -> Result<(), FetchError> {
        let url = self.jwks_url().await?;
        let document = self.get(&url).await?;
        let mut last_document = self.last_document.lock().await;
        if *last_document == document && self.current.load().is_some() {
            return Ok(());
        }
        let keys = KeySet::from_json(&document).map_err(|source| FetchError::KeySet {
            url: url.clone(),
            source,
        })?;
        tracing::info!(url = %url, "key set fetched");
        self.install(keys);
        *last_document = document;
        Ok(())
    }

    /// Refreshes because a token names `kid`, unless another request just did or the last such
    /// refresh is too recent. Returns whether the set now has `kid`.
    pub async fn refresh_for_unknown_kid(&self, kid: &str) -> bool {
        let mut last = self.last_on_demand.lock().await;
        if self.has_kid(kid) {
            return true;
        }
        if last.is_some_and(|at| at.elapsed() < ON_DEMAND_INTERVAL) {
            return false;
        }
        if let Err(err) = self.refresh().await {
            tracing::warn!(error = %err, "key set refresh for an unknown kid failed");
        }
        // The interval counts from the end of the refresh: requests that queued behind it share
        // its outcome. Counted from its start, a provider that hangs for the whole fetch timeout
        // would be asked again by each queued request in turn, one timeout after the other.
        *last = Some(Instant::now());
        self.has_kid(kid)
    }

    /// Keeps the set fresh: every `interval` while the provider answers, sooner while no set is
    /// available. Runs until the process ends.
    pub async fn run_refresh_loop(self: Arc<Self>, interval: Duration) {
        let mut retry_delay = Duration::from_secs(1);
        loop {
            let delay = match self.refresh().await {
                Ok(()) => {
                    retry_delay = Duration::from_secs(1);
                    interval
                }
                Err(err) => {
                    let serving = self.current().is_some();
                    tracing::warn!(error = %err, serving_cached_keys = serving, "key set refresh failed");
                    let delay = if serving {
                        retry_delay.min(interval)
                    } else {
                        retry_delay
                    };
                    retry_delay = (retry_delay * 2).min(MAX_RETRY_DELAY);
                    delay
                }
            };
            tokio::time::sleep(delay).await;
        }
    }

    fn has_kid(&self, kid: &str) -> bool {
        self.current
            .load()
            .as_ref()
            .is_some_and(|current| current.keys.get(kid).is_some())
    }

    async fn jwks_url(&self) -> Result<String, FetchError> {
        match &self.source {
            KeySource::Url(url) => Ok(url.clone()),
            KeySource::Discovery { issuer } => {
                let url = format!(
                    "{}/.well-known/openid-configuration",
                    issuer.trim_end_matches('/')
                );
                let document = self.get(&url).await?;
                discovered_jwks_uri(&document, issuer)
                    .map_err(|reason| FetchError::Discovery { url, reason })
            }
        }
    }

    async fn get(&self, url: &str) -> Result<Vec<u8>, FetchError> {
        let http_error = |reason: String| FetchError::Http {
            url: url.to_owned(),
            reason,
        };
        let mut response = self
            .client
            .get(url)
            .header("accept", "application/json")
            .send()
            .await
            .map_err(|err| http_error(describe(&err)))?;
        if !response.status().is_success() {
            return Err(http_error(format!("HTTP status {}", response.status())));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|err| http_error(describe(&err)))?
        {
            if body.len() + chunk.len() > MAX_DOCUMENT_BYTES {
                return Err(http_error(format!(
                    "document larger than {MAX_DOCUMENT_BYTES} bytes"
                )));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}

/// `jwks_uri` from a discovery document whose `issuer` matches the configured one.
fn discovered_jwks_uri(document: &[u8], issuer: &str) -> Result<String, String> {
    #[derive(serde::Deserialize)]
    struct Discovery {
        issuer: String,
        jwks_uri: String,
    }
    let discovery: Discovery = serde_json::from_slice(document)
        .map_err(|err| format!("not a discovery document ({err})"))?;
    if discovery.issuer != issuer {
        return Err(format!(
            "it names issuer `{}`, not the configured `{issuer}`",
            discovery.issuer
        ));
    }
    Ok(discovery.jwks_uri)
}

fn describe(err: &reqwest::Error) -> String {
    if err.is_timeout() {
        "timed out".to_owned()
    } else if err.is_connect() {
        "connection failed".to_owned()
    } else {
        err.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discovery_must_name_the_configured_issuer() {
        let doc = br#"{"issuer":"https://idp.example","jwks_uri":"https://idp.example/jwks"}"#;
        assert_eq!(
            discovered_jwks_uri(doc, "https://idp.example"),
            Ok("https://idp.example/jwks".into())
        );
        assert!(discovered_jwks_uri(doc, "https://idp.example/").is_err());
        assert!(discovered_jwks_uri(doc, "https://evil.example").is_err());
        assert!(discovered_jwks_uri(b"{}", "https://idp.example").is_err());
    }
}
