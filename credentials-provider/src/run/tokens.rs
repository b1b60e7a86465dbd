//! `all`, `ingress`, `egress` and `agentcore`: get the tokens, then write the configs.

use std::sync::Arc;
use std::time::Duration;

use url::Url;

use super::configs::{ConfigOutput, agentcore_gateways, egress_sets};
use super::{Console, Failure, expiry_text, http_client, load_settings, open_store};
use crate::agentcore;
use crate::cli::{AllArgs, CommonArgs, TokenArgs};
use crate::egress::{self, EgressSet, FlowOptions};
use crate::ingress::{self, INGRESS_FILE, IngressConfig};
use crate::reuse;

/// Which tokens a run gets.
#[derive(Debug, Clone)]
pub(super) struct Mode {
    pub(super) ingress: bool,
    pub(super) egress: bool,
    pub(super) agentcore: bool,
    /// Only this egress provider.
    pub(super) provider: Option<String>,
}

impl Mode {
    pub(super) const INGRESS: Mode = Mode {
        ingress: true,
        egress: false,
        agentcore: false,
        provider: None,
    };
    pub(super) const EGRESS: Mode = Mode {
        ingress: false,
        egress: true,
        agentcore: false,
        provider: None,
    };
    pub(super) const AGENTCORE: Mode = Mode {
        ingress: false,
        egress: false,
        agentcore: true,
        provider: None,
    };

    pub(super) fn from_all(args: &AllArgs) -> Mode {
        let only = |ingress, egress, agentcore| Mode {
            ingress,
            egress,
            agentcore,
            provider: args.provider.clone(),
        };
        if args.ingress_only {
            only(true, false, false)
        } else if args.egress_only {
            only(false, true, false)
        } else if args.agentcore_only {
            only(false, false, true)
        } else if args.both {
            only(true, true, false)
        } else {
            only(true, true, true)
        }
    }

    /// Only this kind of token was asked for.
    fn only(&self) -> bool {
        [self.ingress, self.egress, self.agentcore]
            .iter()
            .filter(|wanted| **wanted)
            .count()
            == 1
    }
}

pub(super) async fn run(
    common: &CommonArgs,
    mode: Mode,
    args: &TokenArgs,
    console: &Console,
) -> Result<(), Failure> {
    let settings = load_settings(common)?;
    // Settings are checked before anything is asked of a provider.
    let ingress_config = if mode.ingress {
        Some(IngressConfig::from_settings(&settings)?)
    } else {
        None
    };
    let egress_sets = match egress_sets(&settings, &args.output) {
        Ok(sets) => sets,
        Err(err) if mode.egress => return Err(err.into()),
        Err(err) => {
            tracing::warn!("egress settings ignored for the configs: {err}");
            Vec::new()
        }
    };
    let selected: Vec<&EgressSet> = match &mode.provider {
        Some(name) => {
            let name = name.to_ascii_lowercase();
            let set = egress_sets
                .iter()
                .find(|set| set.provider.name == name)
                .ok_or_else(|| {
                    Failure::config(format!(
                        "--provider {name}: no EGRESS_PROVIDER_NAME_N={name} is configured{}",
                        configured_list(&egress_sets)
                    ))
                })?;
            vec![set]
        }
        None => egress_sets.iter().collect(),
    };
    if mode.egress && mode.only() && selected.is_empty() {
        return Err(Failure::config(
            "no egress provider is configured: set EGRESS_PROVIDER_NAME_1 and EGRESS_OAUTH_CLIENT_ID_1 (see docs/credentials.md)",
        ));
    }
    let gateways = match agentcore_gateways(&settings, &args.output) {
        Ok(gateways) => gateways,
        Err(err) if mode.agentcore => return Err(err.into()),
        Err(err) => {
            tracing::warn!("AgentCore settings ignored for the configs: {err}");
            Vec::new()
        }
    };
    if mode.agentcore && mode.only() && gateways.is_empty() {
        return Err(Failure::config(format!(
            "no AgentCore gateway is configured: set {} (or --agentcore-file) to a gateways file (see docs/credentials.md)",
            agentcore::FILE_SETTING
        )));
    }
    let output = ConfigOutput::new(&args.output, &settings)?;
    let store = open_store(common, &settings, console)?;
    let http = http_client()?;
    let mut shown_tokens: Vec<(String, String)> = Vec::new();
    let mut failures: Vec<String> = Vec::new();

    if let Some(config) = &ingress_config {
        match ingress::obtain(config, &store, &http, args.force).await {
            Ok((token, outcome)) => {
                console.say(format!(
                    "ingress ({}): {} for client {} ({}) in {}",
                    config.kind.name(),
                    reuse_text(outcome),
                    token.client_id,
                    expiry_text(token.grant.expires_at),
                    store.path(INGRESS_FILE).display()
                ));
                shown_tokens.push((
                    "ingress".into(),
                    token.grant.access_token.expose().to_owned(),
                ));
            }
            // The gateway is useless without it: nothing else is attempted.
            Err(err) => return Err(Failure::runtime(err)),
        }
    }

    if mode.egress {
        if selected.is_empty() {
            console.say("egress: no provider configured (EGRESS_PROVIDER_NAME_N)");
        }
        let options = flow_options(args, console);
        for set in selected {
            match egress::obtain(set, &store, &http, &options).await {
                Ok((token, outcome)) => {
                    let what = match outcome {
                        egress::Outcome::Reused => "reused the stored token",
                        egress::Outcome::Refreshed => "refreshed with the refresh token",
                        egress::Outcome::Authorized => "authorized",
                    };
                    console.say(format!(
                        "egress {}: {what} ({}) in {}",
                        set.provider.name,
                        expiry_text(token.grant.expires_at),
                        store.path(&set.file_name()).display()
                    ));
                    shown_tokens.push((
                        set.provider.name.clone(),
                        token.grant.access_token.expose().to_owned(),
                    ));
                }
                Err(err) => {
                    console.say(format!("egress {err}"));
                    failures.push(err.to_string());
                }
            }
        }
    }

    if mode.agentcore {
        for gateway in &gateways {
            match agentcore::obtain(gateway, &store, &http, args.force).await {
                Ok((token, outcome)) => {
                    console.say(format!(
                        "agentcore {}: {} for client {} ({}) in {}",
                        gateway.name,
                        reuse_text(outcome),
                        token.client_id,
                        expiry_text(token.grant.expires_at),
                        store.path(&gateway.file_name()).display()
                    ));
                    shown_tokens.push((
                        format!("agentcore-{}", gateway.name),
                        token.grant.access_token.expose().to_owned(),
                    ));
                }
                Err(err) => {
                    console.say(&err);
                    failures.push(err.to_string());
                }
            }
        }
    }

    // The configs are written with whatever fresh tokens the store has, even after a failure.
    output.write(&store, &egress_sets, &gateways, console)?;

    if args.show_tokens {
        for (name, token) in &shown_tokens {
            console.print(format!("{name}\t{token}"));
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(Failure {
            code: 1,
            lines: vec![format!("{} token(s) could not be had", failures.len())],
        })
    }
}

fn reuse_text(outcome: reuse::Outcome) -> &'static str {
    match outcome {
        reuse::Outcome::Reused => "reused the stored token",
        reuse::Outcome::New => "new token",
    }
}

fn configured_list(sets: &[EgressSet]) -> String {
    if sets.is_empty() {
        return " (none is)".into();
    }
    format!(
        " (configured: {})",
        sets.iter()
            .map(|set| set.provider.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    )
}

fn flow_options(args: &TokenArgs, console: &Console) -> FlowOptions {
    let open_browser = !args.no_browser;
    let timeout = Duration::from_secs(args.callback_timeout.max(1));
    let console = console.clone();
    FlowOptions {
        force: args.force,
        callback_timeout: timeout,
        show_url: Arc::new(move |set: &EgressSet, url: &Url| {
            console.say(format!(
                "to authorize {} ({}), open this URL in a browser on this machine \
                 (waiting up to {} s for {}):\n\n    {url}\n",
                set.provider.name,
                set.provider.display_name,
                timeout.as_secs(),
                set.redirect_uri
            ));
            if open_browser {
                open_in_browser(url);
            }
        }),
    }
}

/// Opens the URL in the user's browser where there is one: `$BROWSER`, `open` on macOS, or
/// `xdg-open`/`wslview` on Linux with a display. Never under CI. Failure is fine: the URL was
/// printed.
fn open_in_browser(url: &Url) {
    let env = |name: &str| std::env::var(name).ok().filter(|value| !value.is_empty());
    if env("CI").is_some() {
        return;
    }
    let command = if let Some(browser) = env("BROWSER") {
        browser.split(':').next().map(str::to_owned)
    } else if cfg!(target_os = "macos") {
        Some("open".into())
    } else if env("WSL_DISTRO_NAME").is_some() {
        Some("wslview".into())
    } else if env("DISPLAY").is_some() || env("WAYLAND_DISPLAY").is_some() {
        Some("xdg-open".into())
    } else {
        None
    };
    let Some(command) = command else {
        return;
    };
    match std::process::Command::new(&command)
        .arg(url.as_str())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
    {
        Ok(mut child) => {
            // Reap it whenever it ends.
            std::thread::spawn(move || child.wait());
        }
        Err(err) => tracing::debug!("cannot start {command}: {err}"),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::cli::Cli;

    fn mode(args: &[&str]) -> (bool, bool, bool) {
        let cli = Cli::try_parse_checked(
            std::iter::once("credentials-provider").chain(args.iter().copied()),
        )
        .unwrap();
        let mode = Mode::from_all(&cli.all);
        (mode.ingress, mode.egress, mode.agentcore)
    }

    #[test]
    fn the_guides_flags_choose_the_flows() {
        assert_eq!(mode(&[]), (true, true, true));
        assert_eq!(mode(&["--all"]), (true, true, true));
        assert_eq!(mode(&["--ingress-only"]), (true, false, false));
        assert_eq!(mode(&["--egress-only"]), (false, true, false));
        assert_eq!(mode(&["--agentcore-only"]), (false, false, true));
        assert_eq!(mode(&["--both"]), (true, true, false));
        assert!(
            Mode::AGENTCORE.only()
                && Mode::INGRESS.only()
                && !Mode::from_all(&AllArgs::default()).only()
        );
    }
}
