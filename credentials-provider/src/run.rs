//! The commands, as the binary runs them: settings in, tokens and configs out, one line per
//! step on stderr. Exit codes: 0 done, 1 something failed (a refusal, a timeout), 2 the
//! settings are wrong.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use url::Url;

use crate::cli::{AllArgs, Cli, Command, CommonArgs, EgressArgs, McpAction, McpArgs, TokenArgs};
use crate::configs;
use crate::egress::{self, EgressSet, EgressToken, FlowOptions, providers::Catalogue};
use crate::ingress::{self, INGRESS_FILE, IngressConfig, IngressToken};
use crate::mcp::{McpError, McpSession};
use crate::oauth;
use crate::settings::{ConfigError, Settings};
use crate::store::TokenStore;
use crate::time;

const NAME: &str = "credentials-provider";

/// A failure and its exit code.
#[derive(Debug)]
struct Failure {
    code: u8,
    lines: Vec<String>,
}

impl Failure {
    fn config(error: impl std::fmt::Display) -> Failure {
        Failure {
            code: 2,
            lines: vec![format!("configuration: {error}")],
        }
    }

    fn runtime(error: impl std::fmt::Display) -> Failure {
        Failure {
            code: 1,
            lines: vec![error.to_string()],
        }
    }
}

impl From<ConfigError> for Failure {
    fn from(error: ConfigError) -> Failure {
        Failure::config(error)
    }
}

/// Runs the command line.
pub async fn run(cli: Cli) -> ExitCode {
    let result = match cli.command {
        None => run_tokens(&cli.common, Mode::from_all(&cli.all), &cli.all.token).await,
        Some(Command::All(args)) => {
            run_tokens(&cli.common, Mode::from_all(&args), &args.token).await
        }
        Some(Command::Ingress(args)) => {
            let mode = Mode {
                ingress: true,
                egress: false,
                provider: None,
            };
            run_tokens(&cli.common, mode, &args).await
        }
        Some(Command::Egress(EgressArgs { provider, token })) => {
            let mode = Mode {
                ingress: false,
                egress: true,
                provider,
            };
            run_tokens(&cli.common, mode, &token).await
        }
        Some(Command::Mcp(args)) => run_mcp(&cli.common, &args).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            for line in &failure.lines {
                eprintln!("{NAME}: {line}");
            }
            ExitCode::from(failure.code)
        }
    }
}

/// What `all`, `ingress` and `egress` get.
#[derive(Debug, Clone)]
struct Mode {
    ingress: bool,
    egress: bool,
    provider: Option<String>,
}

impl Mode {
    fn from_all(args: &AllArgs) -> Mode {
        Mode {
            ingress: !args.egress_only,
            egress: !args.ingress_only,
            provider: args.provider.clone(),
        }
    }
}

fn load_settings(common: &CommonArgs) -> Result<Settings, Failure> {
    let settings = Settings::load(common.env_file.as_deref()).map_err(Failure::config)?;
    if let Some(source) = settings.source() {
        tracing::debug!("settings from {} and the environment", source.display());
    }
    Ok(settings)
}

fn open_store(common: &CommonArgs, settings: &Settings) -> Result<TokenStore, Failure> {
    let dir = common
        .tokens_dir
        .clone()
        .or_else(|| settings.get("OAUTH_TOKENS_DIR").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(".oauth-tokens"));
    let (store, note) = TokenStore::open(&dir).map_err(Failure::runtime)?;
    if let Some(note) = note {
        eprintln!("{NAME}: {note}");
    }
    Ok(store)
}

fn http_client() -> Result<reqwest::Client, Failure> {
    oauth::http_client().map_err(|err| Failure::runtime(format!("HTTP client: {err}")))
}

fn expiry_text(expires_at: Option<u64>) -> String {
    match expires_at {
        Some(at) => format!("expires {}", time::human(at)),
        None => "no expiry given".to_owned(),
    }
}

async fn run_tokens(common: &CommonArgs, mode: Mode, args: &TokenArgs) -> Result<(), Failure> {
    let settings = load_settings(common)?;
    // Settings are checked before anything is asked of a provider.
    let ingress_config = if mode.ingress {
        Some(IngressConfig::from_settings(&settings)?)
    } else {
        None
    };
    let providers_file = args.providers_file.clone().or_else(|| {
        settings
            .get("EGRESS_OAUTH_PROVIDERS_FILE")
            .map(PathBuf::from)
    });
    let egress_sets = match egress_sets(&settings, providers_file.as_deref()) {
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
    if mode.egress && !mode.ingress && selected.is_empty() {
        return Err(Failure::config(
            "no egress provider is configured: set EGRESS_PROVIDER_NAME_1 and EGRESS_OAUTH_CLIENT_ID_1 (see docs/credentials.md)",
        ));
    }
    let gateway_url = args
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
    let store = open_store(common, &settings)?;
    let http = http_client()?;
    let mut shown_tokens: Vec<(String, String)> = Vec::new();
    let mut failures: Vec<String> = Vec::new();

    if let Some(config) = &ingress_config {
        match ingress::obtain(config, &store, &http, args.force).await {
            Ok((token, outcome)) => {
                let what = match outcome {
                    ingress::Outcome::Reused => "reused the stored token",
                    ingress::Outcome::New => "new token",
                };
                eprintln!(
                    "{NAME}: ingress ({}): {what} for client {} ({}) in {}",
                    config.kind.name(),
                    token.client_id,
                    expiry_text(token.grant.expires_at),
                    store.path(INGRESS_FILE).display()
                );
                shown_tokens.push((
                    "ingress".into(),
                    token.grant.access_token.expose().to_owned(),
                ));
            }
            // The gateway is useless without it: egress is not attempted.
            Err(err) => return Err(Failure::runtime(err)),
        }
    }

    if mode.egress {
        if selected.is_empty() {
            eprintln!("{NAME}: egress: no provider configured (EGRESS_PROVIDER_NAME_N)");
        }
        let options = flow_options(args);
        for set in selected {
            match egress::obtain(set, &store, &http, &options).await {
                Ok((token, outcome)) => {
                    let what = match outcome {
                        egress::Outcome::Reused => "reused the stored token",
                        egress::Outcome::Refreshed => "refreshed with the refresh token",
                        egress::Outcome::Authorized => "authorized",
                    };
                    eprintln!(
                        "{NAME}: egress {}: {what} ({}) in {}",
                        set.provider.name,
                        expiry_text(token.grant.expires_at),
                        store.path(&set.file_name()).display()
                    );
                    shown_tokens.push((
                        set.provider.name.clone(),
                        token.grant.access_token.expose().to_owned(),
                    ));
                }
                Err(err) => {
                    eprintln!("{NAME}: egress {err}");
                    failures.push(err.to_string());
                }
            }
        }
    }

    // The configs are written with whatever fresh tokens the store has, even after a failure.
    match &gateway_url {
        Some(gateway) => write_configs(&store, gateway, &egress_sets, &servers, args)?,
        None => {
            eprintln!("{NAME}: MCP client configs not written: set GATEWAY_URL (or --gateway-url)")
        }
    }

    if args.show_tokens {
        for (name, token) in &shown_tokens {
            println!("{name}\t{token}");
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(Failure {
            code: 1,
            lines: vec![format!("{} egress provider(s) failed", failures.len())],
        })
    }
}

fn egress_sets(
    settings: &Settings,
    providers_file: Option<&Path>,
) -> Result<Vec<EgressSet>, ConfigError> {
    let catalogue = Catalogue::load(providers_file)?;
    egress::sets_from_settings(settings, &catalogue)
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

fn flow_options(args: &TokenArgs) -> FlowOptions {
    let open_browser = !args.no_browser;
    let timeout = Duration::from_secs(args.callback_timeout.max(1));
    FlowOptions {
        force: args.force,
        callback_timeout: timeout,
        show_url: Arc::new(move |set: &EgressSet, url: &Url| {
            eprintln!(
                "\n{NAME}: to authorize {} ({}), open this URL in a browser on this machine \
                 (waiting up to {} s for {}):\n\n    {url}\n",
                set.provider.name,
                set.provider.display_name,
                timeout.as_secs(),
                set.redirect_uri
            );
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

fn write_configs(
    store: &TokenStore,
    gateway: &Url,
    sets: &[EgressSet],
    servers: &[String],
    args: &TokenArgs,
) -> Result<(), Failure> {
    let now = time::now_unix();
    let ingress = match store.read_json::<IngressToken>(INGRESS_FILE) {
        Ok(Some(token)) if token.is_fresh(now) => Some(token),
        Ok(Some(_)) => {
            eprintln!(
                "{NAME}: the stored ingress token expires soon or has expired: configs are written without it (run `{NAME} ingress`)"
            );
            None
        }
        Ok(None) => None,
        Err(err) => {
            tracing::warn!("{err}");
            None
        }
    };
    let mut egress_tokens: Vec<(String, EgressToken)> = Vec::new();
    for set in sets {
        match store.read_json::<EgressToken>(&set.file_name()) {
            Ok(Some(token)) if token.client_id == set.client_id && token.is_fresh(now) => {
                egress_tokens.push((set.mcp_server.clone(), token));
            }
            Ok(Some(_)) => eprintln!(
                "{NAME}: the stored {} token is stale: server {} left out (run `{NAME} egress --provider {}`)",
                set.provider.name, set.mcp_server, set.provider.name
            ),
            Ok(None) => {}
            Err(err) => tracing::warn!("{err}"),
        }
    }
    let entries = configs::build_entries(gateway, ingress.as_ref(), &egress_tokens, servers);
    if entries.is_empty() {
        eprintln!(
            "{NAME}: no MCP server to configure: list servers in GATEWAY_MCP_SERVERS (or --servers), or configure egress providers"
        );
    }
    let written = configs::write_store_configs(store, &entries).map_err(Failure::runtime)?;
    eprintln!(
        "{NAME}: MCP client configs ({} server(s)): {}",
        entries.len(),
        written
            .iter()
            .map(|path| path.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    if args.update_user_configs {
        let home = std::env::var_os("HOME").map(PathBuf::from).ok_or_else(|| {
            Failure::config("HOME is not set: cannot find ~/.vscode and ~/.roocode")
        })?;
        let mut failed = Vec::new();
        for result in configs::update_user_configs(&home, &entries) {
            match result {
                Ok(path) => eprintln!("{NAME}: merged the servers into {}", path.display()),
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

async fn run_mcp(common: &CommonArgs, args: &McpArgs) -> Result<(), Failure> {
    let settings = load_settings(common)?;
    let url = match (&args.url, &args.server) {
        (Some(url), _) => oauth::parse_url("--url", url)?,
        (None, Some(server)) => {
            egress::check_server_name("--server", server)?;
            let gateway = args
                .gateway_url
                .as_deref()
                .or_else(|| settings.get("GATEWAY_URL"))
                .ok_or_else(|| Failure::config("--server needs GATEWAY_URL (or --gateway-url)"))?;
            let gateway = oauth::parse_url("GATEWAY_URL", gateway)?;
            oauth::parse_url("--server", &configs::server_url(&gateway, server))?
        }
        (None, None) => return Err(Failure::config("give --url URL or --server NAME")),
    };
    if url.scheme() == "http" && !oauth::is_loopback(&url) {
        eprintln!("{NAME}: warning: {url} is plain http: the tokens cross the network unencrypted");
    }
    let store = open_store(common, &settings)?;
    let now = time::now_unix();
    let ingress: IngressToken = store
        .read_json(INGRESS_FILE)
        .map_err(Failure::runtime)?
        .ok_or_else(|| {
            Failure::runtime(format!(
                "no ingress token in {}: run `{NAME} ingress` first",
                store.path(INGRESS_FILE).display()
            ))
        })?;
    if ingress.grant.has_expired(now) {
        return Err(Failure::runtime(format!(
            "the stored ingress token expired at {}: run `{NAME} ingress`",
            ingress
                .grant
                .expires_at
                .map(time::human)
                .unwrap_or_default()
        )));
    }
    let mut headers = ingress.gateway_headers();
    if let Some(provider) = &args.provider {
        let provider = provider.to_ascii_lowercase();
        egress::providers::check_provider_name(&provider).map_err(Failure::config)?;
        let file = egress::token_file_name(&provider);
        let token: EgressToken = store
            .read_json(&file)
            .map_err(Failure::runtime)?
            .ok_or_else(|| {
                Failure::runtime(format!(
                    "no {provider} token in {}: run `{NAME} egress --provider {provider}` first",
                    store.path(&file).display()
                ))
            })?;
        headers.extend(token.server_headers());
    }
    let arguments: Option<Value> = match &args.action {
        McpAction::Call { arguments, .. } => {
            let value: Value = serde_json::from_str(arguments)
                .map_err(|err| Failure::config(format!("tool arguments are not JSON: {err}")))?;
            if !value.is_object() {
                return Err(Failure::config("tool arguments must be a JSON object"));
            }
            Some(value)
        }
        _ => None,
    };
    let timeout = Duration::from_secs(args.timeout.max(1));
    let started = Instant::now();
    let mut session = McpSession::connect(&url, &headers, timeout)
        .await
        .map_err(|err| mcp_failure(&url, err))?;
    tracing::debug!(
        session = session.session_id().unwrap_or("none"),
        server = %session.server.get("serverInfo").cloned().unwrap_or_default(),
        "initialized"
    );
    let outcome = match &args.action {
        McpAction::Ping => {
            session.ping().await.map_err(|err| mcp_failure(&url, err))?;
            let info = session.server.get("serverInfo");
            let name = info
                .and_then(|info| info.get("name"))
                .and_then(Value::as_str)
                .unwrap_or("?");
            let version = info
                .and_then(|info| info.get("version"))
                .and_then(Value::as_str)
                .unwrap_or("");
            println!(
                "ok: {name} {version} answered ping through {url} ({} ms)",
                started.elapsed().as_millis()
            );
            Ok(())
        }
        McpAction::List => {
            let tools = session
                .list_tools()
                .await
                .map_err(|err| mcp_failure(&url, err))?;
            if args.json {
                println!("{}", Value::Array(tools));
            } else {
                for tool in &tools {
                    let name = tool.get("name").and_then(Value::as_str).unwrap_or("?");
                    let description = tool
                        .get("description")
                        .and_then(Value::as_str)
                        .and_then(|text| text.lines().next())
                        .unwrap_or("");
                    println!("{name}\t{description}");
                }
            }
            Ok(())
        }
        McpAction::Call { tool, .. } => {
            let result = session
                .call_tool(tool, arguments.unwrap_or_default())
                .await
                .map_err(|err| mcp_failure(&url, err))?;
            if args.json {
                println!("{result}");
            } else {
                for block in result
                    .get("content")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    match block.get("text").and_then(Value::as_str) {
                        Some(text) => println!("{text}"),
                        None => println!("{block}"),
                    }
                }
            }
            if result.get("isError").and_then(Value::as_bool) == Some(true) {
                Err(Failure::runtime(format!(
                    "the tool {tool} reported an error"
                )))
            } else {
                Ok(())
            }
        }
    };
    session.close().await;
    outcome
}

fn mcp_failure(url: &Url, error: McpError) -> Failure {
    match error {
        McpError::Refused(refusal) => {
            let mut lines = vec![format!("{url}:")];
            lines.extend(
                refusal
                    .explain()
                    .into_iter()
                    .map(|line| format!("  {line}")),
            );
            Failure { code: 1, lines }
        }
        other => Failure::runtime(format!("{url}: {other}")),
    }
}
