//! The process's shared state and the one pipeline every shell runs:
//! facts → snapshot → decide → record → answer; and the one pipeline of the `tools/list` answer
//! filter: context → visible tools → filter → record → answer.
//!
//! The shells (HTTP, gRPC) hand over a [`CheckInput`] and transcribe the [`Answer`]; everything
//! in between happens here, once. Two things are not pure and live here rather than in the core:
//! refreshing the key set when a token names an unknown `kid`, and deciding large bodies on the
//! blocking pool, a bounded number at a time, so that a large inspection never holds up the I/O
//! workers that decide everyone else's small checks.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::answer::{self, Answer, AnswerSettings, FilterAnswer};
use crate::config::Config;
use crate::decision::{self, Context, Decision, DenyReason, Issuer, Settings, Snapshot};
use crate::jwks::fetch::KeyStore;
use crate::metrics::{State, StateSource};
use crate::policy::{CompiledPolicy, PolicyError, VisibleTools};
use crate::record;
use crate::request::{Body, CheckRequest};
use crate::session::flow::SignInFlow;
use crate::token::{TokenCache, TokenError};
use crate::tools_list::context::{ContextError, FilterContext};
use crate::tools_list::{self, FilterError, Filtered, Limits, Reason, UpstreamAnswer};

/// Bodies up to this size are decided on the I/O worker that read them (a 64 KiB body takes
/// well under a millisecond); larger ones on the blocking pool.
pub(crate) const INLINE_BODY_BYTES: usize = 64 * 1024;

/// How long a large body waits for its turn before the check answers 503 with `Retry-After`.
const LARGE_CHECK_WAIT: Duration = Duration::from_secs(1);

/// A check request as a shell holds it: its facts can be read any number of times, and it can
/// be moved to another thread when its body is large.
pub(crate) trait CheckInput {
    /// The same input, owned and sendable (the HTTP shell copies its header map; a gRPC request
    /// already is one).
    type Sendable: CheckInput + Send + Sync + 'static;

    /// The request's facts.
    fn facts(&self) -> CheckRequest<'_>;

    /// The gateway's request id, for the log.
    fn request_id(&self) -> Option<&str>;

    /// Converts into the sendable form; only called for a large body.
    fn into_sendable(self) -> Self::Sendable;
}

/// Everything a check reads, shared by the HTTP and gRPC shells of one process.
#[derive(Debug)]
pub struct Authorizer {
    settings: Settings,
    answers: AnswerSettings,
    /// One key store per trusted issuer, in the order of `settings.issuers`.
    keys: Vec<Arc<KeyStore>>,
    policy: ArcSwap<CompiledPolicy>,
    policy_file: PathBuf,
    cache: TokenCache,
    max_body_bytes: usize,
    resource_url: Option<String>,
    large_checks: Arc<Semaphore>,
    reloads: ReloadStats,
    sign_in: Option<SignInFlow>,
    list_limits: Limits,
}

/// An MCP server's answer to a request holding `tools/list` calls, as a filter shell received
/// it: owned, so that a large one can be filtered on another thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamReply {
    /// HTTP status.
    pub status: u16,
    /// `Content-Type`, if any.
    pub content_type: Option<String>,
    /// `Content-Encoding`, if any.
    pub content_encoding: Option<String>,
    /// The body as it came (a shell that stops reading keeps the first bound + 1 bytes).
    pub body: Vec<u8>,
}

/// Policy reload outcomes since start, for metrics.
#[derive(Debug, Default)]
struct ReloadStats {
    /// Reloads that replaced the policy.
    succeeded: AtomicU64,
    /// Reloads refused (the previous policy stayed).
    failed: AtomicU64,
}

impl Authorizer {
    /// Builds the state from a validated configuration, a loaded policy and one key store per
    /// configured issuer (in the order of `config.issuers`).
    pub fn new(config: &Config, policy: CompiledPolicy, keys: Vec<Arc<KeyStore>>) -> Self {
        assert_eq!(
            keys.len(),
            config.issuers.len(),
            "one key store per trusted issuer"
        );
        let issuers = config
            .issuers
            .iter()
            .map(|issuer| Issuer {
                name: issuer.name.clone(),
                auth_method: issuer.auth_method.clone(),
                rules: issuer.rules.clone(),
                cognito_pool: issuer.cognito_pool.clone(),
            })
            .collect();
        Authorizer {
            settings: Settings {
                issuers,
                max_batch: config.max_batch,
                session: config.session.as_ref().map(|session| session.rules.clone()),
            },
            answers: AnswerSettings {
                resource_metadata: config.resource_url.as_deref().map(resource_metadata_url),
                max_body_bytes: config.max_body_bytes,
            },
            keys,
            policy: ArcSwap::from_pointee(policy),
            policy_file: config.scopes_file.clone(),
            cache: TokenCache::new(config.token_cache_size),
            max_body_bytes: config.max_body_bytes,
            resource_url: config.resource_url.clone(),
            large_checks: Arc::new(Semaphore::new(config.max_large_checks)),
            reloads: ReloadStats::default(),
            sign_in: config.session.clone().map(SignInFlow::new),
            list_limits: Limits {
                max_answer_bytes: config.max_list_answer_bytes,
            },
        }
    }

    /// The `tools/list` answer filter's pipeline: reads the check's `context`, asks the policy in
    /// force which tools the caller sees on the server, filters the upstream's answer (a large
    /// one on the blocking pool, holding one of the permits for large inspections), records the
    /// outcome and returns what the gateway sends. Fails only for a context the check did not
    /// write (a gateway misconfigured, or a caller that is not the gateway).
    pub async fn filter_tools_list(
        self: &Arc<Self>,
        context: &str,
        reply: UpstreamReply,
        request_id: Option<&str>,
    ) -> Result<FilterAnswer, ContextError> {
        let started = Instant::now();
        let context = FilterContext::decode(context)?;
        let scopes: Vec<&str> = context.scopes.iter().map(String::as_str).collect();
        let visible = self.policy.load().visible_tools(&scopes, &context.server);
        let status = reply.status;
        // An answer over the bound is refused at once (the filter looks at its length first).
        let large =
            (INLINE_BODY_BYTES + 1..=self.list_limits.max_answer_bytes).contains(&reply.body.len());
        let result = if large {
            self.filter_large(reply, context.request.clone(), visible)
                .await
        } else {
            filter(&reply, &context.request, &visible, &self.list_limits)
        };
        let outcome = record::ToolsListOutcome::of(&result);
        let answer = answer::filter_answer(result, status, &context.request);
        let client_status = match &answer {
            FilterAnswer::Unchanged => status,
            FilterAnswer::Replaced { status, .. } => *status,
        };
        record::tools_list(
            &context,
            outcome,
            status,
            client_status,
            request_id,
            started.elapsed(),
        );
        Ok(answer)
    }

    async fn filter_large(
        self: &Arc<Self>,
        reply: UpstreamReply,
        request: tools_list::ListRequest,
        visible: VisibleTools,
    ) -> Result<Filtered, FilterError> {
        let busy = FilterError {
            upstream_status: reply.status,
            reason: Reason::Busy,
        };
        let Some(permit) = self.large_check_permit().await else {
            return Err(busy);
        };
        let limits = self.list_limits;
        tokio::task::spawn_blocking(move || {
            let _permit: OwnedSemaphorePermit = permit;
            filter(&reply, &request, &visible, &limits)
        })
        .await
        .unwrap_or_else(|err| {
            tracing::error!(error = %err, "a large tools/list answer was not filtered");
            Err(busy)
        })
    }

    /// The pipeline: decides the check (refreshing the key set once on an unknown `kid`),
    /// records the decision and returns the answer.
    pub(crate) async fn answer<I: CheckInput>(self: &Arc<Self>, input: I) -> Answer {
        let started = Instant::now();
        let facts = input.facts();
        let large = matches!(facts.body, Body::Complete(body) if body.len() > INLINE_BODY_BYTES);
        let decision = if large {
            let input = Arc::new(input.into_sendable());
            let decision = self.check_large(&input).await;
            let issuer = self.issuer_name(&decision);
            record::decision(
                &decision,
                issuer,
                input.facts().body,
                input.request_id(),
                started.elapsed(),
            );
            decision
        } else {
            let decision = self.check(&facts).await;
            let issuer = self.issuer_name(&decision);
            record::decision(
                &decision,
                issuer,
                facts.body,
                input.request_id(),
                started.elapsed(),
            );
            decision
        };
        answer::answer(decision, &self.answers)
    }

    /// Decides a check on this thread, refreshing the key set once (rate-limited) on an
    /// unknown `kid`.
    pub async fn check(&self, request: &CheckRequest<'_>) -> Decision {
        let decision = self.decide_now(request);
        match unknown_kid(&decision) {
            Some((issuer, kid)) if self.keys[issuer].refresh_for_unknown_kid(kid).await => {
                self.decide_now(request)
            }
            _ => decision,
        }
    }

    /// [`Authorizer::check`] for a large body: each decision on the blocking pool, holding one
    /// of the bounded permits for large checks.
    async fn check_large<S: CheckInput + Send + Sync + 'static>(
        self: &Arc<Self>,
        input: &Arc<S>,
    ) -> Decision {
        let decision = self.decide_on_pool(input).await;
        match unknown_kid(&decision) {
            Some((issuer, kid)) if self.keys[issuer].refresh_for_unknown_kid(kid).await => {
                self.decide_on_pool(input).await
            }
            _ => decision,
        }
    }

    async fn decide_on_pool<S: CheckInput + Send + Sync + 'static>(
        self: &Arc<Self>,
        input: &Arc<S>,
    ) -> Decision {
        let Some(permit) = self.large_check_permit().await else {
            return Decision::Deny {
                identity: None,
                issuer: None,
                reason: DenyReason::Busy,
            };
        };
        let authorizer = self.clone();
        let input = input.clone();
        let decided = tokio::task::spawn_blocking(move || {
            let _permit: OwnedSemaphorePermit = permit;
            authorizer.decide_now(&input.facts())
        })
        .await;
        decided.unwrap_or_else(|err| {
            // Only a runtime shutting down (or a panic, which the core does not have) ends here:
            // no decision, so no allow.
            tracing::error!(error = %err, "a large check did not finish");
            Decision::Deny {
                identity: None,
                issuer: None,
                reason: DenyReason::Busy,
            }
        })
    }

    async fn large_check_permit(&self) -> Option<OwnedSemaphorePermit> {
        tokio::time::timeout(LARGE_CHECK_WAIT, self.large_checks.clone().acquire_owned())
            .await
            .ok()?
            .ok()
    }

    /// What a decision reads that can change while the process runs, loaded once.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            policy: self.policy.load_full(),
            keys: self.keys.iter().map(|store| store.current()).collect(),
        }
    }

    /// The name of the issuer a decision involved, for the log.
    fn issuer_name(&self, decision: &Decision) -> Option<&str> {
        let issuer = match decision {
            Decision::Allow(allowed) => allowed.issuer,
            Decision::Deny { issuer, .. } => *issuer,
        }?;
        Some(self.settings.issuers[issuer].name.as_str())
    }

    /// Decides with `snapshot` at `now`; never waits.
    pub fn decide_with(
        &self,
        request: &CheckRequest<'_>,
        snapshot: &Snapshot,
        now: u64,
    ) -> Decision {
        decision::decide(
            request,
            &Context {
                snapshot,
                settings: &self.settings,
                cache: &self.cache,
                now,
            },
        )
    }

    /// Decides with what is in memory now; never waits.
    pub fn decide_now(&self, request: &CheckRequest<'_>) -> Decision {
        self.decide_with(request, &self.snapshot(), crate::unix_now())
    }

    /// Reloads the policy file; on error the policy in force stays and the error is returned.
    pub fn reload_policy(&self) -> Result<(), PolicyError> {
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

    /// Whether checks can be answered for every issuer: each has a key set (the policy always
    /// is there).
    pub fn ready(&self) -> bool {
        self.keys.iter().all(|store| store.current().is_some())
    }

    /// The names of the issuers without a key set yet: checks of their tokens answer 503 while
    /// those of the others go on.
    pub fn issuers_not_ready(&self) -> Vec<&str> {
        self.settings
            .issuers
            .iter()
            .zip(&self.keys)
            .filter(|(_, store)| store.current().is_none())
            .map(|(issuer, _)| issuer.name.as_str())
            .collect()
    }

    /// The key stores, one per trusted issuer.
    pub fn keys(&self) -> &[Arc<KeyStore>] {
        &self.keys
    }

    /// The policy file path.
    pub fn policy_file(&self) -> &PathBuf {
        &self.policy_file
    }

    /// `AUTH_RESOURCE_URL`, when set.
    pub fn resource_url(&self) -> Option<&str> {
        self.resource_url.as_deref()
    }

    /// The `iss` of every trusted issuer (the authorization servers of RFC 9728 metadata).
    pub fn issuer_urls(&self) -> impl Iterator<Item = &str> {
        self.settings
            .issuers
            .iter()
            .map(|issuer| issuer.rules.issuer.as_str())
    }

    /// People's sign-in, when configured (`AUTH_SESSION_*`).
    pub fn sign_in(&self) -> Option<&SignInFlow> {
        self.sign_in.as_ref()
    }

    /// The policy in force now.
    pub fn policy(&self) -> Arc<CompiledPolicy> {
        self.policy.load_full()
    }

    /// `AUTH_MAX_BODY_BYTES`: the shells read no more.
    pub fn max_body_bytes(&self) -> usize {
        self.max_body_bytes
    }

    /// `AUTH_MAX_LIST_ANSWER_BYTES`: the filter shells read at most one byte more (enough to
    /// know that an answer is over it).
    pub fn max_list_answer_bytes(&self) -> usize {
        self.list_limits.max_answer_bytes
    }
}

impl StateSource for Authorizer {
    fn state(&self) -> State {
        let (hits, misses) = self.cache.hits_and_misses();
        let stats = self.keys.iter().map(|store| store.stats());
        let succeeded = stats.clone().map(|s| s.succeeded.load(Relaxed)).sum();
        let failed = stats.clone().map(|s| s.failed.load(Relaxed)).sum();
        // The age of the stalest key set: 0 (never fetched) for any issuer means never.
        let oldest_fetch = stats
            .map(|s| s.last_success_unix.load(Relaxed))
            .min()
            .unwrap_or(0);
        State {
            token_cache_hits: hits,
            token_cache_misses: misses,
            token_cache_entries: self.cache.len() as u64,
            jwks_refresh_succeeded: succeeded,
            jwks_refresh_failed: failed,
            jwks_age_seconds: (oldest_fetch > 0)
                .then(|| crate::unix_now().saturating_sub(oldest_fetch)),
            jwks_keys: self
                .keys
                .iter()
                .filter_map(|store| store.current())
                .map(|current| current.keys.len() as u64)
                .sum(),
            policy_reloads_succeeded: self.reloads.succeeded.load(Relaxed),
            policy_reloads_failed: self.reloads.failed.load(Relaxed),
            ready: self.ready(),
        }
    }
}

/// [`tools_list::filter`] over an owned reply.
fn filter(
    reply: &UpstreamReply,
    request: &tools_list::ListRequest,
    visible: &VisibleTools,
    limits: &Limits,
) -> Result<Filtered, FilterError> {
    let answer = UpstreamAnswer {
        status: reply.status,
        content_type: reply.content_type.as_deref(),
        content_encoding: reply.content_encoding.as_deref(),
        body: &reply.body,
    };
    tools_list::filter(
        &answer,
        request,
        &|tool: &str| visible.contains(tool),
        limits,
    )
}

/// The issuer and `kid` of a token refused for naming a key its issuer's set does not hold.
fn unknown_kid(decision: &Decision) -> Option<(usize, &str)> {
    match decision {
        Decision::Deny {
            reason: DenyReason::Token(TokenError::UnknownKid(kid)),
            issuer: Some(issuer),
            ..
        } => Some((*issuer, kid)),
        _ => None,
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
