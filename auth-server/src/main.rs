//! The auth-server binary: configuration from the environment, then the HTTP (and gRPC and
//! metrics) shells; or, as `check` and `explain`, the policy tooling.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};

use auth_server::authorizer::Authorizer;
use auth_server::config::Config;
use auth_server::jwks::fetch::KeyStore;
use auth_server::policy::{Access, CompiledPolicy, VisibleTools};
use auth_server::{grpc, http, metrics, reload};

/// Authorization sidecar for MCP gateways (nginx auth subrequest, Envoy ext_authz).
///
/// Configuration comes from the environment: AUTH_LISTEN, AUTH_GRPC_LISTEN, AUTH_METRICS_LISTEN,
/// AUTH_SCOPES_FILE, AUTH_SCOPES_POLL_SECONDS; the trusted issuers, either AUTH_ISSUERS_FILE or
/// one issuer's AUTH_PROVIDER (cognito|oidc), AUTH_COGNITO_REGION, AUTH_COGNITO_USER_POOL_ID,
/// AUTH_ISSUER, AUTH_JWKS_URL, AUTH_CLIENT_IDS, AUTH_AUDIENCES, AUTH_GROUPS_CLAIM,
/// AUTH_LEEWAY_SECONDS; AUTH_INSECURE_HTTP_HOSTS, AUTH_JWKS_REFRESH_SECONDS,
/// AUTH_TOKEN_CACHE_SIZE, AUTH_MAX_BODY_BYTES, AUTH_MAX_BATCH, AUTH_MAX_LARGE_CHECKS,
/// AUTH_RESOURCE_URL, AUTH_LOG_FORMAT (text|json), RUST_LOG, NO_COLOR;
/// people's browser sign-in: AUTH_SESSION_CLIENT_ID, AUTH_SESSION_CLIENT_SECRET(_FILE),
/// AUTH_SESSION_ISSUER, AUTH_SESSION_PUBLIC_URL, AUTH_SESSION_KEYS or AUTH_SESSION_KEY_FILE,
/// AUTH_SESSION_SCOPES, AUTH_SESSION_GROUPS_CLAIM, AUTH_SESSION_LIFETIME_SECONDS,
/// AUTH_SESSION_REFRESH_SECONDS. See README.md.
#[derive(Debug, Parser)]
#[command(version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Validate the configuration and the policy (like `nginx -t`) and print a summary.
    Check {
        /// Policy file; default AUTH_SCOPES_FILE, else scopes.yml.
        #[arg(long)]
        scopes: Option<PathBuf>,
    },
    /// Print the decision the policy makes for a caller and a request, and the entry behind it.
    Explain {
        /// The caller's IdP groups, comma-separated.
        #[arg(long, value_delimiter = ',')]
        groups: Vec<String>,
        /// The token's scope claim (space-separated), used when no groups are given.
        #[arg(long)]
        token_scopes: Option<String>,
        /// MCP server (first path segment).
        #[arg(long)]
        server: String,
        /// JSON-RPC method; omit for a body-less GET/DELETE or a client's response.
        #[arg(long)]
        method: Option<String>,
        /// Tool, for `tools/call`.
        #[arg(long)]
        tool: Option<String>,
        /// Policy file; default AUTH_SCOPES_FILE, else scopes.yml.
        #[arg(long)]
        scopes: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    match Cli::parse().command {
        None => run(),
        Some(Command::Check { scopes }) => check(scopes),
        Some(Command::Explain {
            groups,
            token_scopes,
            server,
            method,
            tool,
            scopes,
        }) => explain(
            &groups,
            token_scopes.as_deref(),
            &server,
            method.as_deref(),
            tool.as_deref(),
            scopes,
        ),
    }
}

fn policy_path(explicit: Option<PathBuf>) -> PathBuf {
    explicit
        .or_else(|| {
            std::env::var_os("AUTH_SCOPES_FILE")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        })
        .unwrap_or_else(|| PathBuf::from("scopes.yml"))
}

fn check(scopes: Option<PathBuf>) -> ExitCode {
    let mut ok = true;
    match Config::from_env() {
        Ok(config) => {
            println!("configuration ok: listen {}", config.listen);
            for issuer in &config.issuers {
                println!(
                    "  issuer {} ({}): {}, key set {:?}",
                    issuer.name, issuer.auth_method, issuer.rules.issuer, issuer.key_source
                );
            }
            match &config.session {
                Some(session) => println!(
                    "browser sign-in: on, issuer {}, gateway {}",
                    session.issuer, session.public_origin
                ),
                None => println!("browser sign-in: off"),
            }
        }
        Err(err) => {
            ok = false;
            println!("configuration error: {err}");
        }
    }
    let path = policy_path(scopes);
    match CompiledPolicy::load(&path) {
        Ok(policy) => {
            let summary = policy.summary();
            println!(
                "policy {} ok: {} groups, {} scopes, {} servers, {} tools",
                path.display(),
                summary.groups,
                summary.scopes,
                summary.servers.len(),
                summary.tools.len()
            );
            println!("  servers: {}", summary.servers.join(", "));
            println!("  tools: {}", summary.tools.join(", "));
            if !summary.scopes_no_group_maps_to.is_empty() {
                println!(
                    "  scopes no group maps to (reachable only through a token's scope claim): {}",
                    summary.scopes_no_group_maps_to.join(", ")
                );
            }
        }
        Err(err) => {
            ok = false;
            println!("policy error: {err}");
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn explain(
    groups: &[String],
    token_scopes: Option<&str>,
    server: &str,
    method: Option<&str>,
    tool: Option<&str>,
    scopes: Option<PathBuf>,
) -> ExitCode {
    let path = policy_path(scopes);
    let policy = match CompiledPolicy::load(&path) {
        Ok(policy) => policy,
        Err(err) => {
            println!("policy error: {err}");
            return ExitCode::from(2);
        }
    };
    let caller_scopes: Vec<&str> = if groups.is_empty() {
        token_scopes
            .unwrap_or_default()
            .split_whitespace()
            .collect()
    } else {
        policy.scopes_for_groups(groups)
    };
    if method == Some("tools/call") && tool.is_none() {
        println!("a tools/call needs --tool");
        return ExitCode::from(2);
    }
    let access = match method {
        Some(method) => Access::Method {
            method,
            tool: tool.filter(|_| method == "tools/call"),
        },
        None => Access::AnyEntry,
    };
    let explanation = policy.explain(&caller_scopes, server, access);
    println!("scopes: {}", caller_scopes.join(" "));
    for note in &explanation.notes {
        println!("  - {note}");
    }
    if method == Some("tools/list") {
        let listed = match policy.visible_tools(&caller_scopes, server) {
            VisibleTools::All => "every tool of the server".to_owned(),
            VisibleTools::Only(tools) if tools.is_empty() => "none".to_owned(),
            VisibleTools::Only(tools) => {
                let mut tools: Vec<String> = tools.into_iter().collect();
                tools.sort_unstable();
                tools.join(", ")
            }
        };
        println!("tools/list on {server} shows: {listed}");
    }
    match explanation.allowed_by {
        Some(entry) => {
            println!("ALLOW by entry {entry}");
            ExitCode::SUCCESS
        }
        None => {
            let would_allow = policy.scopes_allowing(server, access);
            println!(
                "DENY (403 insufficient_scope); scopes that would allow it: {}",
                would_allow.join(" ")
            );
            ExitCode::FAILURE
        }
    }
}

fn run() -> ExitCode {
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(err) => {
            eprintln!("auth-server: configuration error: {err}");
            return ExitCode::from(2);
        }
    };
    auth_server::logging::init(config.log_format);
    let policy = match CompiledPolicy::load(&config.scopes_file) {
        Ok(policy) => policy,
        Err(err) => {
            eprintln!("auth-server: policy error: {err}");
            return ExitCode::from(2);
        }
    };
    match actix_web::rt::System::new().block_on(serve(config, policy)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("auth-server: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: Config, policy: CompiledPolicy) -> std::io::Result<()> {
    tracing::info!(
        listen = %config.listen,
        issuers = config.issuers.len(),
        policy = %config.scopes_file.display(),
        scopes = policy.scope_count(),
        groups = policy.group_count(),
        browser_sign_in = config.session.is_some(),
        "starting"
    );
    let mut stores = Vec::with_capacity(config.issuers.len());
    for issuer in &config.issuers {
        tracing::info!(
            issuer = %issuer.name,
            iss = %issuer.rules.issuer,
            key_source = ?issuer.key_source,
            "trusting issuer"
        );
        // Each issuer has its own key set, refresh and readiness: one that is down does not
        // hold up the others.
        let store = Arc::new(KeyStore::new(issuer.key_source.clone()));
        actix_web::rt::spawn(store.clone().run_refresh_loop(config.jwks_refresh));
        stores.push(store);
    }
    let authorizer = Arc::new(Authorizer::new(&config, policy, stores));
    actix_web::rt::spawn(reload::on_sighup(authorizer.clone()));
    if let Some(period) = config.scopes_poll {
        actix_web::rt::spawn(reload::on_file_change(authorizer.clone(), period));
    }
    let listener = std::net::TcpListener::bind(config.listen).map_err(|err| {
        std::io::Error::new(
            err.kind(),
            format!("cannot listen on {}: {err}", config.listen),
        )
    })?;
    if let Some(metrics_listen) = config.metrics_listen {
        // Metrics on their own listener: never reachable through the gateway's /validate.
        let metrics_listener = std::net::TcpListener::bind(metrics_listen).map_err(|err| {
            std::io::Error::new(
                err.kind(),
                format!("cannot listen on {metrics_listen}: {err}"),
            )
        })?;
        let registry = metrics::registry(authorizer.clone());
        actix_web::rt::spawn(http::metrics_server(registry, metrics_listener)?);
    }
    if let Some(grpc_listen) = config.grpc_listen {
        // Envoy's gRPC ext_authz, next to the HTTP shell, over the same authorizer.
        let grpc_listener = std::net::TcpListener::bind(grpc_listen).map_err(|err| {
            std::io::Error::new(err.kind(), format!("cannot listen on {grpc_listen}: {err}"))
        })?;
        tracing::info!(grpc_listen = %grpc_listen, "serving Envoy gRPC Check");
        spawn_grpc(authorizer.clone(), grpc_listener)?;
    }
    http::server(authorizer, listener)?.await
}

/// The gRPC shell on its own multi-thread runtime. actix's System runs on one thread (the HTTP
/// shell has its own worker per core); Envoy's Checks must use every core too. A gRPC server
/// that fails stops the whole process.
fn spawn_grpc(authorizer: Arc<Authorizer>, listener: std::net::TcpListener) -> std::io::Result<()> {
    let system = actix_web::rt::System::current();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("grpc")
        .build()?;
    std::thread::Builder::new()
        .name("grpc".into())
        .spawn(move || {
            if let Err(err) = runtime.block_on(grpc::serve(authorizer, listener)) {
                tracing::error!("{err}");
                system.stop_with_code(1);
            }
        })?;
    Ok(())
}
