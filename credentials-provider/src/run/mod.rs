//! The commands, as the binary runs them: settings in, tokens and configs out, one line per
//! step on stderr. Exit codes: 0 done, 1 something failed (a refusal, a timeout), 2 the
//! settings are wrong.
//!
//! Every command writes through a [`Console`] and returns its exit code, so that it runs (and
//! is tested) without a terminal: [`execute`] with [`Console::capture`].

mod configs;
mod init;
mod mcp;
mod refresh;
mod tokens;

use std::fmt::Display;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex, PoisonError};

use crate::cli::{Cli, Command, CommonArgs, EgressArgs};
use crate::oauth;
use crate::settings::{ConfigError, Settings};
use crate::store::TokenStore;
use crate::time;

const NAME: &str = "credentials-provider";

/// Where the commands write: results on "stdout" (tokens with `--show-tokens`, `mcp` answers),
/// one line per step on "stderr", prefixed with the program's name.
#[derive(Clone)]
pub struct Console {
    out: Arc<Mutex<dyn Write + Send>>,
    err: Arc<Mutex<dyn Write + Send>>,
}

impl std::fmt::Debug for Console {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Console").finish_non_exhaustive()
    }
}

/// What a [`Console::capture`] console received.
#[derive(Debug, Clone, Default)]
pub struct Captured {
    out: Arc<Mutex<Vec<u8>>>,
    err: Arc<Mutex<Vec<u8>>>,
}

impl Captured {
    /// Everything written to "stdout".
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.out.lock().unwrap_or_else(PoisonError::into_inner)).into()
    }

    /// Everything written to "stderr".
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.err.lock().unwrap_or_else(PoisonError::into_inner)).into()
    }
}

struct SharedBuffer(Arc<Mutex<Vec<u8>>>);

impl Write for SharedBuffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Console {
    /// The process's stdout and stderr.
    pub fn stdio() -> Console {
        Console {
            out: Arc::new(Mutex::new(std::io::stdout())),
            err: Arc::new(Mutex::new(std::io::stderr())),
        }
    }

    /// A console that keeps what it is given, for tests.
    pub fn capture() -> (Console, Captured) {
        let captured = Captured::default();
        let console = Console {
            out: Arc::new(Mutex::new(SharedBuffer(Arc::clone(&captured.out)))),
            err: Arc::new(Mutex::new(SharedBuffer(Arc::clone(&captured.err)))),
        };
        (console, captured)
    }

    /// One line for people, on stderr: `credentials-provider: <text>`.
    pub(crate) fn say(&self, text: impl Display) {
        let mut err = self.err.lock().unwrap_or_else(PoisonError::into_inner);
        let _ = writeln!(err, "{NAME}: {text}");
        let _ = err.flush();
    }

    /// A line of a result, on stdout.
    pub(crate) fn print(&self, text: impl Display) {
        let mut out = self.out.lock().unwrap_or_else(PoisonError::into_inner);
        let _ = writeln!(out, "{text}");
        let _ = out.flush();
    }
}

/// A failure and its exit code.
#[derive(Debug)]
pub(crate) struct Failure {
    code: u8,
    lines: Vec<String>,
}

impl Failure {
    fn config(error: impl Display) -> Failure {
        Failure {
            code: 2,
            lines: vec![format!("configuration: {error}")],
        }
    }

    fn runtime(error: impl Display) -> Failure {
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

/// Runs the command line on the process's stdout and stderr.
pub async fn run(cli: Cli) -> ExitCode {
    ExitCode::from(execute(cli, &Console::stdio()).await)
}

/// Runs the command line on `console`; returns the exit code.
pub async fn execute(cli: Cli, console: &Console) -> u8 {
    let result = match cli.command {
        None => {
            tokens::run(
                &cli.common,
                tokens::Mode::from_all(&cli.all),
                &cli.all.token,
                console,
            )
            .await
        }
        Some(Command::All(args)) => {
            tokens::run(
                &cli.common,
                tokens::Mode::from_all(&args),
                &args.token,
                console,
            )
            .await
        }
        Some(Command::Ingress(args)) => {
            tokens::run(&cli.common, tokens::Mode::INGRESS, &args, console).await
        }
        Some(Command::Egress(EgressArgs { provider, token })) => {
            let mode = tokens::Mode {
                provider,
                ..tokens::Mode::EGRESS
            };
            tokens::run(&cli.common, mode, &token, console).await
        }
        Some(Command::Agentcore(args)) => {
            tokens::run(&cli.common, tokens::Mode::AGENTCORE, &args, console).await
        }
        Some(Command::Refresh(args)) => refresh::run(&cli.common, &args, console).await,
        Some(Command::Mcp(args)) => mcp::run(&cli.common, &args, console).await,
        Some(Command::Init(args)) => init::run(&args, console),
    };
    match result {
        Ok(()) => 0,
        Err(failure) => {
            for line in &failure.lines {
                console.say(line);
            }
            failure.code
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

fn open_store(
    common: &CommonArgs,
    settings: &Settings,
    console: &Console,
) -> Result<TokenStore, Failure> {
    let dir = common
        .tokens_dir
        .clone()
        .or_else(|| settings.get("OAUTH_TOKENS_DIR").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(".oauth-tokens"));
    let (store, note) = TokenStore::open(&dir).map_err(Failure::runtime)?;
    if let Some(note) = note {
        console.say(note);
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    async fn execute_args(args: &[&str]) -> (u8, Captured) {
        let cli = Cli::try_parse_checked(
            std::iter::once("credentials-provider").chain(args.iter().copied()),
        )
        .unwrap();
        let (console, captured) = Console::capture();
        (execute(cli, &console).await, captured)
    }

    #[tokio::test]
    async fn a_wrong_setting_is_exit_code_2_with_the_variable_named() {
        let dir = tempfile::tempdir().unwrap();
        let env = dir.path().join("settings.env");
        std::fs::write(&env, "INGRESS_OAUTH_CLIENT_ID=x\n").unwrap();
        let tokens = dir.path().join("tokens");
        let (code, captured) = execute_args(&[
            "--env-file",
            env.to_str().unwrap(),
            "--tokens-dir",
            tokens.to_str().unwrap(),
            "ingress",
        ])
        .await;
        assert_eq!(code, 2);
        assert!(
            captured.stderr().contains(
                "credentials-provider: configuration: INGRESS_OAUTH_CLIENT_SECRET is not set"
            ),
            "{}",
            captured.stderr()
        );
        assert!(
            !tokens.exists(),
            "nothing is done before the settings are checked"
        );
        let (code, captured) = execute_args(&[
            "--env-file",
            env.to_str().unwrap(),
            "refresh",
            "--agentcore-file",
            dir.path().join("missing.yml").to_str().unwrap(),
        ])
        .await;
        assert_eq!(code, 2, "{}", captured.stderr());
    }

    #[tokio::test]
    async fn mcp_basic_says_when_nothing_answers() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("http://127.0.0.1:{port}/currenttime/mcp");
        let (code, captured) =
            execute_args(&["mcp", "--url", &url, "--timeout", "5", "basic"]).await;
        assert_eq!(code, 1);
        assert!(
            captured.stderr().contains(&format!("not reachable: {url}")),
            "{}",
            captured.stderr()
        );
        assert!(captured.stdout().is_empty());
    }
}
