//! The credentials-provider binary: parse the command line, set up logging, run.

use std::process::ExitCode;

use credentials_provider::cli::Cli;

fn main() -> ExitCode {
    let cli = Cli::parse_checked();
    // Messages for people go to stderr with eprintln; tracing carries warnings and, with
    // --verbose, the details (never a token: they are `Secret`s).
    let default_level = if cli.common.verbose { "debug" } else { "warn" };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!("warn,credentials_provider={default_level}"))
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .without_time()
        .with_target(false)
        .init();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("credentials-provider: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(credentials_provider::run::run(cli))
}
