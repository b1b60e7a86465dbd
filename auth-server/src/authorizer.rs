//! The process's shared state and the one async step around the pure core: refreshing the key
//! set when a token names an unknown `kid`.

use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::answer::AnswerSettings;
use crate::config::Config;
use crate::decision::{self, CheckRequest, CognitoPool, Context, Decision, DenyReason};
use crate::jwks::fetch::KeyStore;
use crate::policy::{CompiledPolicy, PolicyError};
use crate::token::{TokenCache, TokenError, TokenRules};

/// Everything a check reads, shared by the HTTP and gRPC shells of one process.
#[derive(Debug)]
pub struct Authorizer {
    rules: TokenRules,
    cognito_pool: Option<CognitoPool>,
    keys: Arc<KeyStore>,
    policy: ArcSwap<CompiledPolicy>,
    policy_file: PathBuf,
    cache: TokenCache,
    settings: AnswerSettings,
    max_body_bytes: usize,
    resource_url: Option<String>,
    reloads: ReloadStats,
}

/// Policy reload outcomes since start, for metrics.
#[derive(Debug, Default)]
pub struct ReloadStats {
    /// Reloads that replaced the policy.
    pub succeeded: std::sync::atomic::AtomicU64,
    /// Reloads refused (the previous policy stayed).
    pub failed: std::sync::atomic::AtomicU64,
}

impl Authorizer {
    /// Builds the state from a validated configuration and a loaded policy.
    pub fn new(config: &Config, policy: CompiledPolicy, keys: Arc<KeyStore>) -> Self {
        Authorizer {
            rules: config.rules.clone(),
            cognito_pool: config.cognito_pool.clone(),
            keys,
            policy: ArcSwap::from_pointee(policy),
            policy_file: config.scopes_file.clone(),
            cache: TokenCache::new(config.token_cache_size),
            settings: AnswerSettings {
                auth_method: config.rules.provider.name(),
                resource_metadata: config.resource_url.as_deref().map(resource_metadata_url),
                max_body_bytes: config.max_body_bytes,
            },
            max_body_bytes: config.max_body_bytes,
            resource_url: config.resource_url.clone(),
            reloads: ReloadStats::default(),
        }
    }

    /// Decides a check, refreshing the key set once (rate-limited) on an unknown `kid`.
    pub async fn check(&self, request: &CheckRequest<'_>) -> Decision {
        // Counted here so that the HTTP and gRPC shells both count the bodies they inspect.
        if let crate::decision::Body::Complete(body) = request.body {
            crate::metrics::observe_body(body.len());
        }
        let decision = self.decide_now(request);
        if let Decision::Deny {
            reason: DenyReason::Token(TokenError::UnknownKid(kid)),
            ..
        } = &decision
            && self.keys.refresh_for_unknown_kid(kid).await
        {
            return self.decide_now(request);
        }
        decision
    }

    /// Decides with what is in memory now; never waits.
    pub fn decide_now(&self, request: &CheckRequest<'_>) -> Decision {
        let policy = self.policy.load();
        let keys = self.keys.keys();
        let context = Context {
            policy: &policy,
            keys: keys.as_deref(),
            key_generation: self.keys.generation(),
            rules: &self.rules,
            cognito_pool: self.cognito_pool.as_ref(),
            cache: &self.cache,
            now: crate::unix_now(),
        };
        decision::decide(request, &context)
    }

    /// Reloads the policy file; on error the policy in force stays and the error is returned.
    pub fn reload_policy(&self) -> Result<(), PolicyError> {
        use std::sync::atomic::Ordering::Relaxed;
        let policy = CompiledPolicy::load(&self.policy_file).inspect_err(|_| {
            self.reloads.failed.fetch_add(1, Relaxed);
        })?;
        self.reloads.succeeded.fetch_add(1, Relaxed);
        tracing::info!(
            file = %self.policy_file.display(),
            scopes = policy.scope_count(),
            groups = policy.group_count(),
            "policy reloaded"
        );
        self.policy.store(Arc::new(policy));
        Ok(())
    }

    /// Whether checks can be answered: a key set is available (the policy always is).
    pub fn ready(&self) -> bool {
        self.keys.keys().is_some()
    }

    /// Policy reload outcomes.
    pub fn reload_stats(&self) -> &ReloadStats {
        &self.reloads
    }

    /// The verified-token cache.
    pub fn token_cache(&self) -> &TokenCache {
        &self.cache
    }

    /// The key store.
    pub fn keys(&self) -> &Arc<KeyStore> {
        &self.keys
    }

    /// The policy file path.
    pub fn policy_file(&self) -> &PathBuf {
        &self.policy_file
    }

    /// Answer settings for the shells.
    pub fn settings(&self) -> &AnswerSettings {
        &self.settings
    }

    /// `AUTH_RESOURCE_URL`, when set.
    pub fn resource_url(&self) -> Option<&str> {
        self.resource_url.as_deref()
    }

    /// The configured issuer.
    pub fn issuer(&self) -> &str {
        &self.rules.issuer
    }

    /// `AUTH_MAX_BODY_BYTES`.
    pub fn max_body_bytes(&self) -> usize {
        self.max_body_bytes
    }
}

/// RFC 9728: the metadata URL is the resource URL with `/.well-known/oauth-protected-resource`
/// inserted between the origin and the path.
fn resource_metadata_url(resource: &str) -> String {
    let after_scheme = resource.find("://").map(|index| index + 3).unwrap_or(0);
    let path_start = resource[after_scheme..]
        .find('/')
        .map(|index| index + after_scheme)
        .unwrap_or(resource.len());
    let (origin, path) = resource.split_at(path_start);
    format!("{origin}/.well-known/oauth-protected-resource{path}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_url_inserts_the_well_known_segment() {
        assert_eq!(
            resource_metadata_url("https://gw.example.com"),
            "https://gw.example.com/.well-known/oauth-protected-resource"
        );
        assert_eq!(
            resource_metadata_url("https://gw.example.com/mcp"),
            "https://gw.example.com/.well-known/oauth-protected-resource/mcp"
        );
    }
}
