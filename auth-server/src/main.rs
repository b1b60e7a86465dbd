//! The auth-server binary: configuration from the environment, then the HTTP shell.

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;

use auth_server::authorizer::Authorizer;
use auth_server::config::{Config, LogFormat};
use auth_server::jwks::fetch::KeyStore;
use auth_server::policy::CompiledPolicy;
use auth_server::{http, reload};

/// Authorization sidecar for MCP gateways (nginx auth subrequest, Envoy ext_authz).
///
/// Configuration comes from the environment: AUTH_LISTEN, AUTH_GRPC_LISTEN, AUTH_SCOPES_FILE,
/// AUTH_PROVIDER (cognito|oidc), AUTH_COGNITO_REGION, AUTH_COGNITO_USER_POOL_ID, AUTH_ISSUER,
/// AUTH_JWKS_URL, AUTH_CLIENT_IDS, AUTH_AUDIENCES, AUTH_GROUPS_CLAIM, AUTH_LEEWAY_SECONDS,
/// AUTH_MAX_BODY_BYTES, AUTH_RESOURCE_URL, AUTH_LOG_FORMAT (text|json), RUST_LOG. See README.md.
#[derive(Debug, Parser)]
#[command(version, about, long_about)]
struct Cli {}

fn main() -> ExitCode {
    Cli::parse();
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(err) => {
            eprintln!("auth-server: configuration error: {err}");
            return ExitCode::from(2);
        }
    };
    init_logging(config.log_format);
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
        issuer = %config.rules.issuer,
        key_source = ?config.key_source,
        policy = %config.scopes_file.display(),
        scopes = policy.scope_count(),
        groups = policy.group_count(),
        "starting"
    );
    let keys = Arc::new(KeyStore::new(config.key_source.clone()));
    let authorizer = Arc::new(Authorizer::new(&config, policy, keys.clone()));
    actix_web::rt::spawn(keys.run_refresh_loop(config.jwks_refresh));
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
    http::server(authorizer, listener)?.await
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stdout);
    match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .init(),
        LogFormat::Text => builder.init(),
    }
}
