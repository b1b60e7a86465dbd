//! What the token commands and the watcher share: the configured token sources, and the MCP
//! client configs written from whatever fresh tokens the store holds.

use std::path::PathBuf;

use url::Url;

use super::{Console, Failure, NAME};
use crate::agentcore::{self, AgentCoreGateway, AgentCoreToken};
use crate::cli::OutputArgs;
use crate::configs::{self, DEFAULT_GATEWAY_ENTRY_SERVER, Layout, Sources};
use crate::egress::{self, EgressSet, EgressToken, providers::Catalogue};
use crate::ingress::{INGRESS_FILE, IngressToken};
use crate::oauth;
use crate::settings::{ConfigError, Settings};
use crate::store::TokenStore;
use crate::time;

/// The configured egress provider sets (`EGRESS_*_N`).
pub(super) fn egress_sets(
    settings: &Settings,
    args: &OutputArgs,
) -> Result<Vec<EgressSet>, ConfigError> {
    let providers_file = args.providers_file.clone().or_else(|| {
        settings
            .get("EGRESS_OAUTH_PROVIDERS_FILE")
            .map(PathBuf::from)
    });
    let catalogue = Catalogue::load(providers_file.as_deref())?;
    egress::sets_from_settings(settings, &catalogue)
}

/// The configured AgentCore gateways; none when no file is configured.
pub(super) fn agentcore_gateways(
    settings: &Settings,
    args: &OutputArgs,
) -> Result<Vec<AgentCoreGateway>, ConfigError> {
    Ok(agentcore::load(args.agentcore_file.as_deref(), settings)?.unwrap_or_default())
}

/// Where and how the MCP client configs are written.
#[derive(Debug, Clone)]
pub(super) struct ConfigOutput {
    gateway: Option<Url>,
    servers: Vec<String>,
    layout: Layout,
    update_user_configs: bool,
}

impl ConfigOutput {
    /// From the options, the settings filling in what they leave out.
    pub(super) fn new(args: &OutputArgs, settings: &Settings) -> Result<ConfigOutput, ConfigError> {
        let gateway = args
            .gateway_url
            .as_deref()
            .or_else(|| settings.get("GATEWAY_URL"))
            .map(|url| oauth::parse_url("GATEWAY_URL", url))
            .transpose()?;
        let servers = args
            .servers
            .as_deref()
            .map(crate::settings::split_list)
            .unwrap_or_else(|| settings.list("GATEWAY_MCP_SERVERS"));
        for server in &servers {
            egress::check_server_name("GATEWAY_MCP_SERVERS", server)?;
        }
        let gateway_entry_server = settings
            .get("GATEWAY_ENTRY_SERVER")
            .unwrap_or(DEFAULT_GATEWAY_ENTRY_SERVER)
            .to_owned();
        egress::check_server_name("GATEWAY_ENTRY_SERVER", &gateway_entry_server)?;
        Ok(ConfigOutput {
            gateway,
            servers,
            layout: Layout {
                vscode: args.vscode_format,
                entries: args.entries,
                gateway_entry_server,
            },
            update_user_configs: args.update_user_configs,
        })
    }

    /// Writes the configs from the fresh tokens in the store (a stale one is left out, with
    /// the command that renews it), then merges them into the user's files when asked.
    pub(super) fn write(
        &self,
        store: &TokenStore,
        egress_sets: &[EgressSet],
        agentcore: &[AgentCoreGateway],
        console: &Console,
    ) -> Result<(), Failure> {
        let now = time::now_unix();
        let has_direct = agentcore
            .iter()
            .any(|gateway| gateway.route == agentcore::Route::Direct);
        if self.gateway.is_none() && !has_direct {
            console.say("MCP client configs not written: set GATEWAY_URL (or --gateway-url)");
            return Ok(());
        }
        let ingress = match store.read_json::<IngressToken>(INGRESS_FILE) {
            Ok(Some(token)) if token.is_fresh(now) => Some(token),
            Ok(Some(_)) => {
                console.say(format!(
                    "the stored ingress token expires soon or has expired: configs are written without it (run `{NAME} ingress`)"
                ));
                None
            }
            Ok(None) => None,
            Err(err) => {
                tracing::warn!("{err}");
                None
            }
        };
        let mut egress_tokens: Vec<(String, EgressToken)> = Vec::new();
        for set in egress_sets {
            match store.read_json::<EgressToken>(&set.file_name()) {
                Ok(Some(token)) if token.client_id == set.client_id && token.is_fresh(now) => {
                    egress_tokens.push((set.mcp_server.clone(), token));
                }
                Ok(Some(_)) => console.say(format!(
                    "the stored {} token is stale: server {} left out (run `{NAME} egress --provider {}`)",
                    set.provider.name, set.mcp_server, set.provider.name
                )),
                Ok(None) => {}
                Err(err) => tracing::warn!("{err}"),
            }
        }
        let mut agentcore_tokens: Vec<(AgentCoreGateway, AgentCoreToken)> = Vec::new();
        for gateway in agentcore {
            match store.read_json::<AgentCoreToken>(&gateway.file_name()) {
                Ok(Some(token)) if token.request_id == gateway.request_id() && token.grant.is_fresh(now) => {
                    agentcore_tokens.push((gateway.clone(), token));
                }
                Ok(Some(_)) => console.say(format!(
                    "the stored token of AgentCore gateway {} is stale: left out (run `{NAME} agentcore`)",
                    gateway.name
                )),
                Ok(None) => {}
                Err(err) => tracing::warn!("{err}"),
            }
        }
        let entries = configs::build_entries(
            &Sources {
                gateway: self.gateway.as_ref(),
                ingress: ingress.as_ref(),
                egress: &egress_tokens,
                agentcore: &agentcore_tokens,
                servers: &self.servers,
            },
            &self.layout,
        );
        if entries.is_empty() {
            console.say(
                "no MCP server to configure: list servers in GATEWAY_MCP_SERVERS (or --servers), or configure egress providers or AgentCore gateways",
            );
        }
        let written = configs::write_store_configs(store, &entries, self.layout.vscode)
            .map_err(Failure::runtime)?;
        console.say(format!(
            "MCP client configs ({} server(s)): {}",
            entries.len(),
            written
                .iter()
                .map(|path| path.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ));
        if self.update_user_configs {
            let home = std::env::var_os("HOME").map(PathBuf::from).ok_or_else(|| {
                Failure::config("HOME is not set: cannot find ~/.vscode and ~/.roocode")
            })?;
            let mut failed = Vec::new();
            for result in configs::update_user_configs(&home, &entries, self.layout.vscode) {
                match result {
                    Ok(path) => console.say(format!("merged the servers into {}", path.display())),
                    Err(err) => failed.push(err.to_string()),
                }
            }
            if !failed.is_empty() {
                return Err(Failure {
                    code: 1,
                    lines: failed,
                });
            }
        }
        Ok(())
    }
}
