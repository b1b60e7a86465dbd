//! The command line.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::configs::{Entries, VscodeFormat};

/// Gets the tokens an agent needs to reach MCP servers through the gateway, keeps them fresh,
/// and writes ready MCP client configurations.
///
/// The ingress token (for the gateway) comes from an OAuth2 client-credentials grant against
/// Cognito, Keycloak, Entra ID or any OIDC provider. Egress tokens (for servers that act on a
/// user's behalf) come from an authorization-code grant with PKCE through a browser. AgentCore
/// tokens (for Amazon Bedrock AgentCore gateways) come from their own client-credentials grant.
/// Tokens are stored in .oauth-tokens/ (0700, files 0600) and reused until shortly before they
/// expire (5 minutes, or half their lifetime when shorter).
///
/// Settings come from a .env file (or --env-file) and the environment (which wins):
/// INGRESS_OAUTH_*, EGRESS_OAUTH_*_N, EGRESS_PROVIDER_NAME_N, AGENTCORE_GATEWAYS_FILE,
/// GATEWAY_URL, GATEWAY_MCP_SERVERS. `credentials-provider init` writes documented templates.
/// See docs/credentials.md.
#[derive(Debug, Parser)]
#[command(name = "credentials-provider", version, about, long_about)]
pub struct Cli {
    /// What to do; without one, the same as `all`.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Options of `all`, when no command is given.
    #[command(flatten)]
    pub all: AllArgs,
    /// Options of every command.
    #[command(flatten)]
    pub common: CommonArgs,
}

impl Cli {
    /// Parses the command line and exits on a usage error (see [`Cli::try_parse_checked`]).
    pub fn parse_checked() -> Cli {
        Cli::try_parse_checked(std::env::args_os()).unwrap_or_else(|err| err.exit())
    }

    /// Parses `args`. Options of `all` given before a command are refused rather than
    /// ignored (clap's `args_conflicts_with_subcommands` would refuse the global options too).
    pub fn try_parse_checked<I, T>(args: I) -> Result<Cli, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        use clap::{CommandFactory, FromArgMatches};
        let matches = Cli::command().try_get_matches_from(args)?;
        let cli = Cli::from_arg_matches(&matches)?;
        if let Some((name, _)) = matches.subcommand() {
            let all_args = AllArgs::augment_args(clap::Command::new("all"));
            for arg in all_args.get_arguments() {
                if matches.value_source(arg.get_id().as_str())
                    == Some(clap::parser::ValueSource::CommandLine)
                {
                    let flag = arg.get_long().unwrap_or(arg.get_id().as_str());
                    return Err(Cli::command().error(
                        clap::error::ErrorKind::ArgumentConflict,
                        format!("--{flag} goes after `{name}`, not before it"),
                    ));
                }
            }
        }
        Ok(cli)
    }
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// The ingress token, every configured egress and AgentCore token, then the MCP client
    /// configs (the default).
    All(AllArgs),
    /// Only the ingress token (client credentials), then the configs.
    Ingress(TokenArgs),
    /// Only egress tokens (authorization code + PKCE in a browser), then the configs.
    Egress(EgressArgs),
    /// Only AgentCore gateway tokens (client credentials), then the configs.
    Agentcore(TokenArgs),
    /// Renews what is due without a browser (ingress, AgentCore, egress with a refresh token)
    /// and rewrites the configs; with --watch, keeps doing it until stopped (SIGTERM, Ctrl-C).
    Refresh(RefreshArgs),
    /// Checks the gateway: reachability without credentials (basic), or a connection with the
    /// stored tokens (ping, list, call).
    Mcp(McpArgs),
    /// Writes documented templates of the settings (.env.example, gateway.env.example,
    /// agentcore.example.yml); never overwrites a file.
    Init(InitArgs),
}

/// Options of `all`.
#[derive(Debug, Clone, Default, Args)]
#[group(id = "only", multiple = false)]
pub struct AllArgs {
    /// Ingress, egress and AgentCore tokens (the default).
    #[arg(long, group = "only")]
    pub all: bool,
    /// Only the ingress token.
    #[arg(long, group = "only")]
    pub ingress_only: bool,
    /// Only egress tokens.
    #[arg(long, group = "only")]
    pub egress_only: bool,
    /// Only AgentCore tokens.
    #[arg(long, group = "only")]
    pub agentcore_only: bool,
    /// Ingress and egress tokens, not AgentCore.
    #[arg(long, group = "only")]
    pub both: bool,
    /// Only this egress provider (a configured EGRESS_PROVIDER_NAME_N).
    #[arg(long, value_name = "NAME")]
    pub provider: Option<String>,
    /// Token options.
    #[command(flatten)]
    pub token: TokenArgs,
}

/// Options of `egress`.
#[derive(Debug, Clone, Default, Args)]
pub struct EgressArgs {
    /// Only this provider (a configured EGRESS_PROVIDER_NAME_N).
    #[arg(long, value_name = "NAME")]
    pub provider: Option<String>,
    /// Token options.
    #[command(flatten)]
    pub token: TokenArgs,
}

/// Options of the commands that get tokens.
#[derive(Debug, Clone, Default, Args)]
pub struct TokenArgs {
    /// Get new tokens even when the stored ones are fresh (egress: authorize again in the
    /// browser instead of using the refresh token).
    #[arg(long, short = 'f')]
    pub force: bool,
    /// Print the tokens on stdout (they are never printed otherwise).
    #[arg(long)]
    pub show_tokens: bool,
    /// Do not try to open a browser for egress authorization; only print the URL.
    #[arg(long)]
    pub no_browser: bool,
    /// How long to wait for the browser to come back to the redirect URI.
    #[arg(long, value_name = "SECONDS", default_value_t = 300)]
    pub callback_timeout: u64,
    /// Where the tokens and configs go.
    #[command(flatten)]
    pub output: OutputArgs,
}

/// Options of `refresh`.
#[derive(Debug, Clone, Default, Args)]
pub struct RefreshArgs {
    /// Keep running: renew each token shortly before it expires, back off on provider errors,
    /// stop cleanly on SIGTERM or Ctrl-C.
    #[arg(long)]
    pub watch: bool,
    /// Where the tokens and configs go.
    #[command(flatten)]
    pub output: OutputArgs,
}

/// Options of every command that writes the MCP client configs.
#[derive(Debug, Clone, Default, Args)]
pub struct OutputArgs {
    /// The gateway's base URL; servers are at {URL}/{server}/mcp [default: GATEWAY_URL].
    #[arg(long, value_name = "URL")]
    pub gateway_url: Option<String>,
    /// MCP servers that need only the ingress token, comma separated
    /// [default: GATEWAY_MCP_SERVERS].
    #[arg(long, value_name = "LIST")]
    pub servers: Option<String>,
    /// The shape of the VS Code config: mcp-json is VS Code's mcp.json ({"servers": …});
    /// settings is the "mcp" key of its settings.json ({"mcp": {"servers": …}}), as
    /// mcp-gateway-registry's scripts wrote it.
    #[arg(long, value_enum, value_name = "FORMAT", default_value_t = VscodeFormat::McpJson)]
    pub vscode_format: VscodeFormat,
    /// Which entries the configs list: one per server, one `mcp_gateway` entry for the
    /// gateway's server GATEWAY_ENTRY_SERVER (default mcpgw) in place of the ingress-only
    /// servers, or both.
    #[arg(long, value_enum, value_name = "WHICH", default_value_t = Entries::Servers)]
    pub entries: Entries,
    /// Also merge the servers into ~/.vscode/mcp.json and ~/.roocode/mcp_servers.json, keeping
    /// every other server there.
    #[arg(long)]
    pub update_user_configs: bool,
    /// More egress providers, or replacements of built-in ones (YAML)
    /// [default: EGRESS_OAUTH_PROVIDERS_FILE].
    #[arg(long, value_name = "FILE")]
    pub providers_file: Option<PathBuf>,
    /// The AgentCore gateways (YAML) [default: AGENTCORE_GATEWAYS_FILE].
    #[arg(long, value_name = "FILE")]
    pub agentcore_file: Option<PathBuf>,
}

/// Options of every command.
#[derive(Debug, Clone, Default, Args)]
pub struct CommonArgs {
    /// The settings file [default: .env in the current directory, when there is one].
    #[arg(long, value_name = "FILE", global = true)]
    pub env_file: Option<PathBuf>,
    /// The token directory [default: OAUTH_TOKENS_DIR, else .oauth-tokens].
    #[arg(long, value_name = "DIR", global = true)]
    pub tokens_dir: Option<PathBuf>,
    /// Say more about what happens (never the tokens).
    #[arg(long, short = 'v', global = true)]
    pub verbose: bool,
}

/// Options of `mcp`.
#[derive(Debug, Clone, Args)]
pub struct McpArgs {
    /// The MCP endpoint, e.g. https://gateway.example/fininfo/mcp.
    #[arg(long, value_name = "URL", conflicts_with = "server")]
    pub url: Option<String>,
    /// A server behind the gateway: {GATEWAY_URL}/{SERVER}/mcp.
    #[arg(long, value_name = "SERVER")]
    pub server: Option<String>,
    /// The gateway's base URL [default: GATEWAY_URL].
    #[arg(long, value_name = "URL")]
    pub gateway_url: Option<String>,
    /// Also send this provider's stored egress token (Authorization) and headers.
    #[arg(long, value_name = "NAME")]
    pub provider: Option<String>,
    /// Longest wait for one answer.
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    pub timeout: u64,
    /// Print the raw JSON results.
    #[arg(long)]
    pub json: bool,
    /// What to do.
    #[command(subcommand)]
    pub action: McpAction,
}

/// What `mcp` does.
#[derive(Debug, Clone, Subcommand)]
pub enum McpAction {
    /// Reachability without credentials: what the endpoint answers an MCP client that sends
    /// no token (a protected gateway: 401 with a Bearer challenge).
    Basic,
    /// `ping` the server.
    Ping,
    /// List the tools.
    List,
    /// Call a tool.
    Call {
        /// The tool's name.
        tool: String,
        /// Its arguments, a JSON object.
        #[arg(default_value = "{}")]
        arguments: String,
    },
}

/// Options of `init`.
#[derive(Debug, Clone, Args)]
pub struct InitArgs {
    /// Where to write the templates.
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub dir: PathBuf,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_checked(std::iter::once("credentials-provider").chain(args.iter().copied()))
    }

    #[test]
    fn without_a_command_the_flags_of_all_apply() {
        let cli = parse(&["--ingress-only", "--force", "-v"]).unwrap();
        assert!(cli.command.is_none());
        assert!(cli.all.ingress_only && cli.all.token.force && cli.common.verbose);
        assert_eq!(cli.all.token.output.vscode_format, VscodeFormat::McpJson);
        assert_eq!(cli.all.token.callback_timeout, 300);
        assert!(parse(&["--ingress-only", "--egress-only"]).is_err());
        assert!(parse(&["--all", "--agentcore-only"]).is_err());
        let cli = parse(&["--all", "--vscode-format", "settings", "--entries", "both"]).unwrap();
        assert!(cli.all.all);
        assert_eq!(cli.all.token.output.vscode_format, VscodeFormat::Settings);
        assert_eq!(cli.all.token.output.entries, Entries::Both);
        assert!(parse(&["--vscode-format", "yaml"]).is_err());
    }

    #[test]
    fn help_lists_every_command() {
        use clap::CommandFactory;
        let help = Cli::command().render_long_help().to_string();
        for command in [
            "all",
            "ingress",
            "egress",
            "agentcore",
            "refresh",
            "mcp",
            "init",
        ] {
            assert!(
                help.lines()
                    .any(|line| line.trim_start().starts_with(command)),
                "{command} missing from --help:\n{help}"
            );
        }
        let refresh = parse(&["refresh", "--watch", "--gateway-url", "http://x"]).unwrap();
        assert!(matches!(
            refresh.command,
            Some(Command::Refresh(RefreshArgs { watch: true, .. }))
        ));
        let basic = parse(&["mcp", "--server", "currenttime", "basic"]).unwrap();
        assert!(matches!(
            basic.command,
            Some(Command::Mcp(McpArgs {
                action: McpAction::Basic,
                ..
            }))
        ));
    }

    #[test]
    fn common_options_go_anywhere_and_token_options_after_their_command() {
        let cli = parse(&[
            "--verbose",
            "--tokens-dir",
            "/tmp/t",
            "egress",
            "--provider",
            "github",
        ])
        .unwrap();
        assert!(cli.common.verbose);
        match cli.command {
            Some(Command::Egress(args)) => assert_eq!(args.provider.as_deref(), Some("github")),
            other => panic!("{other:?}"),
        }
        let error = parse(&["--force", "ingress"]).unwrap_err().to_string();
        assert!(error.contains("--force goes after `ingress`"), "{error}");
        assert!(parse(&["ingress", "--ingress-only"]).is_err());
    }

    #[test]
    fn mcp_call_takes_a_tool_and_json_arguments() {
        let cli = parse(&[
            "mcp",
            "--server",
            "fininfo",
            "call",
            "get_stock_aggregates",
            "{\"stock_ticker\":\"AAPL\"}",
        ])
        .unwrap();
        let Some(Command::Mcp(args)) = cli.command else {
            panic!("mcp");
        };
        assert_eq!(args.server.as_deref(), Some("fininfo"));
        match args.action {
            McpAction::Call { tool, arguments } => {
                assert_eq!(tool, "get_stock_aggregates");
                assert!(arguments.contains("AAPL"));
            }
            other => panic!("{other:?}"),
        }
        assert!(parse(&["mcp", "--url", "http://x/y/mcp", "--server", "y", "ping"]).is_err());
    }
}
