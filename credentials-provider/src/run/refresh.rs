//! `refresh [--watch]`: renew what is due without a browser — the ingress and AgentCore tokens
//! (client credentials), egress tokens that have a refresh token — and rewrite the configs.
//! With `--watch`, keep doing it: sleep until the next token is due, back off on provider
//! errors, stop cleanly on SIGTERM or Ctrl-C.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::configs::{ConfigOutput, agentcore_gateways, egress_sets};
use super::{Console, Failure, NAME, expiry_text, http_client, load_settings, open_store};
use crate::agentcore::{self, AgentCoreGateway, AgentCoreToken};
use crate::cli::{CommonArgs, RefreshArgs};
use crate::egress::{self, EgressSet, EgressToken};
use crate::ingress::{self, INGRESS_FILE, IngressConfig, IngressToken};
use crate::reuse::Reusable;
use crate::settings::Settings;
use crate::store::TokenStore;
use crate::time;

/// The first wait after a failed renewal; it doubles with each failure in a row.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// The longest wait after failures.
const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// The longest sleep: the token files are read again at least this often (another run may
/// have replaced a token).
const MAX_SLEEP: Duration = Duration::from_secs(600);

/// A token the watcher keeps fresh.
#[derive(Debug)]
enum Job {
    Ingress(Box<IngressConfig>),
    AgentCore(Box<AgentCoreGateway>),
    Egress(Box<EgressSet>),
}

/// When a job is next due.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Due {
    /// At this second (now or in the past: at once).
    At(u64),
    /// Not without the user (no token, or no refresh token): said once.
    Never(String),
}

impl Job {
    fn label(&self) -> String {
        match self {
            Job::Ingress(_) => "ingress token".into(),
            Job::AgentCore(gateway) => format!("AgentCore token {}", gateway.name),
            Job::Egress(set) => format!("egress token {}", set.provider.name),
        }
    }

    /// When the stored token should be renewed (a missing one, or one asked for otherwise:
    /// at once). A token without a known expiry is never due.
    fn due(&self, store: &TokenStore) -> Due {
        fn client_credentials<T: Reusable>(
            store: &TokenStore,
            file: &str,
            request_id: &str,
        ) -> Due {
            match store.read_json::<T>(file) {
                Ok(Some(token)) if token.request_id() == request_id => {
                    match token.grant().renew_at() {
                        Some(at) => Due::At(at),
                        None => Due::Never("it has no expiry".into()),
                    }
                }
                _ => Due::At(0),
            }
        }
        match self {
            Job::Ingress(config) => {
                client_credentials::<IngressToken>(store, INGRESS_FILE, &config.request_id())
            }
            Job::AgentCore(gateway) => client_credentials::<AgentCoreToken>(
                store,
                &gateway.file_name(),
                &gateway.request_id(),
            ),
            Job::Egress(set) => {
                let browser = format!(
                    "it needs the browser: run `{NAME} egress --provider {}`",
                    set.provider.name
                );
                match store.read_json::<EgressToken>(&set.file_name()) {
                    Ok(Some(token)) if token.client_id == set.client_id => {
                        match (token.refresh_token.is_some(), token.grant.renew_at()) {
                            (true, Some(at)) => Due::At(at),
                            (_, None) => Due::Never("it has no expiry".into()),
                            (false, Some(at)) => Due::Never(format!(
                                "no refresh token; it expires {} and then {browser}",
                                time::human(at)
                            )),
                        }
                    }
                    _ => Due::Never(format!("no token yet; {browser}")),
                }
            }
        }
    }

    /// Renews the token and stores it; says what it got.
    async fn renew(&self, store: &TokenStore, http: &reqwest::Client) -> Result<String, String> {
        match self {
            Job::Ingress(config) => {
                let (token, _) = ingress::obtain(config, store, http, true)
                    .await
                    .map_err(|err| err.to_string())?;
                Ok(expiry_text(token.grant.expires_at))
            }
            Job::AgentCore(gateway) => {
                let (token, _) = agentcore::obtain(gateway, store, http, true)
                    .await
                    .map_err(|err| err.to_string())?;
                Ok(expiry_text(token.grant.expires_at))
            }
            Job::Egress(set) => {
                let stored = store
                    .read_json::<EgressToken>(&set.file_name())
                    .map_err(|err| err.to_string())?
                    .ok_or("the token file is gone")?;
                let refresh_token = stored.refresh_token.clone().ok_or("no refresh token")?;
                let token = egress::refresh(set, http, &stored, &refresh_token)
                    .await
                    .map_err(|err| err.to_string())?;
                store
                    .write_json(&set.file_name(), &token)
                    .map_err(|err| err.to_string())?;
                Ok(expiry_text(token.grant.expires_at))
            }
        }
    }
}

/// Failures in a row of one job, and when to try again.
#[derive(Debug, Clone, Copy)]
struct Backoff {
    failures: u32,
    retry_at: SystemTime,
}

impl Backoff {
    fn delay(failures: u32) -> Duration {
        FIRST_BACKOFF
            .saturating_mul(2u32.saturating_pow(failures.saturating_sub(1)))
            .min(MAX_BACKOFF)
    }
}

pub(super) async fn run(
    common: &CommonArgs,
    args: &RefreshArgs,
    console: &Console,
) -> Result<(), Failure> {
    let settings = load_settings(common)?;
    let jobs = jobs(&settings, args)?;
    if jobs.is_empty() {
        return Err(Failure::config(
            "nothing to keep fresh: configure the ingress token (INGRESS_OAUTH_CLIENT_ID…), AgentCore gateways, or egress providers",
        ));
    }
    let egress_sets: Vec<EgressSet> = jobs
        .iter()
        .filter_map(|job| match job {
            Job::Egress(set) => Some(EgressSet::clone(set)),
            _ => None,
        })
        .collect();
    let gateways: Vec<AgentCoreGateway> = jobs
        .iter()
        .filter_map(|job| match job {
            Job::AgentCore(gateway) => Some(AgentCoreGateway::clone(gateway)),
            _ => None,
        })
        .collect();
    let output = ConfigOutput::new(&args.output, &settings)?;
    let store = open_store(common, &settings, console)?;
    let http = http_client()?;
    let mut watcher = Watcher {
        jobs,
        backoff: BTreeMap::new(),
        told: BTreeMap::new(),
        stamp: args.watch,
    };
    let first = watcher.pass(&store, &http, console).await;
    output.write(&store, &egress_sets, &gateways, console)?;
    if !args.watch {
        return if first.failed == 0 {
            Ok(())
        } else {
            Err(Failure::runtime(format!(
                "{} renewal(s) failed",
                first.failed
            )))
        };
    }

    let mut terminate =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .map_err(|err| Failure::runtime(format!("cannot watch for SIGTERM: {err}")))?;
    watcher.say(
        console,
        "watching: tokens are renewed before they expire (SIGTERM or Ctrl-C stops)",
    );
    let signal = loop {
        let wake = watcher.next_wake(&store);
        let sleep = wake
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO);
        tracing::debug!("next check in {} ms", sleep.as_millis());
        let work = async {
            tokio::time::sleep(sleep).await;
            if watcher.pass(&store, &http, console).await.renewed > 0 {
                // Something may have changed: the configs follow the store.
                if let Err(failure) = output.write(&store, &egress_sets, &gateways, console) {
                    for line in failure.lines {
                        console.say(line);
                    }
                }
            }
        };
        tokio::select! {
            _ = terminate.recv() => break "SIGTERM",
            _ = tokio::signal::ctrl_c() => break "SIGINT",
            () = work => {}
        }
    };
    watcher.say(console, format!("stopped ({signal})"));
    Ok(())
}

/// Every token of the settings that can be renewed without the user.
fn jobs(settings: &Settings, args: &RefreshArgs) -> Result<Vec<Job>, Failure> {
    let mut jobs = Vec::new();
    if settings.get("INGRESS_OAUTH_CLIENT_ID").is_some() {
        jobs.push(Job::Ingress(Box::new(IngressConfig::from_settings(
            settings,
        )?)));
    }
    jobs.extend(
        agentcore_gateways(settings, &args.output)?
            .into_iter()
            .map(|gateway| Job::AgentCore(Box::new(gateway))),
    );
    jobs.extend(
        egress_sets(settings, &args.output)?
            .into_iter()
            .map(|set| Job::Egress(Box::new(set))),
    );
    Ok(jobs)
}

/// What a pass did.
#[derive(Debug, Clone, Copy, Default)]
struct Pass {
    renewed: usize,
    failed: usize,
}

struct Watcher {
    jobs: Vec<Job>,
    /// By job index.
    backoff: BTreeMap<usize, Backoff>,
    /// What was said about a job that cannot be renewed, so that it is said once.
    told: BTreeMap<usize, String>,
    /// Time-stamp the lines (a long-running watcher's log).
    stamp: bool,
}

impl Watcher {
    fn say(&self, console: &Console, text: impl std::fmt::Display) {
        if self.stamp {
            console.say(format!("{} {text}", time::human(time::now_unix())));
        } else {
            console.say(text);
        }
    }

    /// Renews every job that is due and not backing off.
    async fn pass(
        &mut self,
        store: &TokenStore,
        http: &reqwest::Client,
        console: &Console,
    ) -> Pass {
        let now = SystemTime::now();
        let mut pass = Pass::default();
        for index in 0..self.jobs.len() {
            let job = &self.jobs[index];
            if self.backoff.get(&index).is_some_and(|b| b.retry_at > now) {
                continue;
            }
            match job.due(store) {
                Due::Never(why) => {
                    if self.told.get(&index) != Some(&why) {
                        self.say(console, format!("{}: not renewed here: {why}", job.label()));
                        self.told.insert(index, why);
                    }
                }
                Due::At(at) if at > time::now_unix() => {}
                Due::At(_) => {
                    let label = job.label();
                    match job.renew(store, http).await {
                        Ok(expiry) => {
                            self.backoff.remove(&index);
                            self.told.remove(&index);
                            self.say(console, format!("renewed the {label} ({expiry})"));
                            pass.renewed += 1;
                        }
                        Err(reason) => {
                            let failures = self.backoff.get(&index).map_or(0, |b| b.failures) + 1;
                            let delay = Backoff::delay(failures);
                            self.backoff.insert(
                                index,
                                Backoff {
                                    failures,
                                    retry_at: SystemTime::now() + delay,
                                },
                            );
                            self.say(
                                console,
                                format!(
                                    "renewing the {label} failed ({reason}); retrying in {} s (failure {failures} in a row)",
                                    delay.as_secs()
                                ),
                            );
                            pass.failed += 1;
                        }
                    }
                }
            }
        }
        pass
    }

    /// When the next job is due (or may be retried), at most [`MAX_SLEEP`] from now.
    fn next_wake(&self, store: &TokenStore) -> SystemTime {
        let now = SystemTime::now();
        let mut wake = now + MAX_SLEEP;
        for (index, job) in self.jobs.iter().enumerate() {
            let due = match job.due(store) {
                Due::At(at) => UNIX_EPOCH + Duration::from_secs(at),
                Due::Never(_) => continue,
            };
            let at = match self.backoff.get(&index) {
                Some(backoff) => due.max(backoff.retry_at),
                None => due,
            };
            wake = wake.min(at);
        }
        wake.max(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backoff_doubles_up_to_five_minutes() {
        let delays: Vec<u64> = (1..=11).map(|n| Backoff::delay(n).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
        assert_eq!(Backoff::delay(u32::MAX).as_secs(), 300);
    }
}
