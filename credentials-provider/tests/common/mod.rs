//! Shared by the black-box tests: the credentials-provider binary run in a private working
//! directory against the real IdP (node oidc-provider on loopback), and a "browser" — reqwest
//! with a cookie jar — that signs in and consents on the IdP's own pages.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use integration_tests::stack::{Idp, IdpOptions};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_credentials-provider");

/// Longest a CLI run may take in a test.
pub const RUN_LIMIT: Duration = Duration::from_secs(60);

/// A private working directory (also `$HOME`) and the environment of the runs.
#[derive(Debug)]
pub struct Workspace {
    pub dir: tempfile::TempDir,
    pub env: Vec<(String, String)>,
}

/// What a finished run left.
#[derive(Debug)]
pub struct Output {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn ok(&self) -> &Self {
        assert_eq!(
            self.code,
            Some(0),
            "credentials-provider failed:\nstdout:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
        self
    }
}

impl Workspace {
    pub fn new() -> Workspace {
        Workspace {
            dir: tempfile::tempdir().expect("temp dir"),
            env: Vec::new(),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn tokens(&self) -> PathBuf {
        self.path().join(".oauth-tokens")
    }

    pub fn set(&mut self, name: &str, value: impl Into<String>) -> &mut Self {
        self.env.retain(|(existing, _)| existing != name);
        self.env.push((name.to_owned(), value.into()));
        self
    }

    pub fn unset(&mut self, name: &str) -> &mut Self {
        self.env.retain(|(existing, _)| existing != name);
        self
    }

    /// The ingress settings of an IdP client, with discovery.
    pub fn ingress(&mut self, idp: &Idp, client: &str) -> &mut Self {
        self.set("INGRESS_OAUTH_PROVIDER", "oidc")
            .set("INGRESS_OAUTH_ISSUER", idp.issuer.clone())
            .set("INGRESS_OAUTH_CLIENT_ID", client)
            .set("INGRESS_OAUTH_CLIENT_SECRET", format!("{client}-secret"))
    }

    /// Egress set 1: provider `testidp` of a providers file pointing at the IdP, for `client`
    /// (secret `<client>-secret` unless `public`), callback on a free loopback port.
    pub fn egress(
        &mut self,
        idp: &Idp,
        client: &str,
        public: bool,
        requires_pkce: bool,
    ) -> &mut Self {
        let providers = self.path().join("providers.yml");
        std::fs::write(
            &providers,
            format!(
                "providers:\n  testidp:\n    display_name: Test IdP (oidc-provider)\n    \
                 auth_url: http://127.0.0.1:{port}/auth\n    token_url: {token}\n    \
                 scopes: [mcp-servers-restricted/read]\n    token_auth: basic\n    \
                 requires_pkce: {requires_pkce}\n",
                port = idp.port,
                token = idp.token_endpoint,
            ),
        )
        .unwrap();
        let callback_port = integration_tests::stack::free_port();
        self.set(
            "EGRESS_OAUTH_PROVIDERS_FILE",
            providers.display().to_string(),
        )
        .set("EGRESS_PROVIDER_NAME_1", "testidp")
        .set("EGRESS_OAUTH_CLIENT_ID_1", client)
        .set(
            "EGRESS_OAUTH_REDIRECT_URI_1",
            format!("http://127.0.0.1:{callback_port}/callback"),
        );
        if public {
            self.unset("EGRESS_OAUTH_CLIENT_SECRET_1")
        } else {
            self.set("EGRESS_OAUTH_CLIENT_SECRET_1", format!("{client}-secret"))
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(BIN);
        command
            .args(args)
            .current_dir(self.path())
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.path())
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .kill_on_drop(true);
        command
    }

    /// Runs to the end (bounded by [`RUN_LIMIT`]).
    pub async fn run(&self, args: &[&str]) -> Output {
        let output = tokio::time::timeout(RUN_LIMIT, self.command(args).output())
            .await
            .expect("credentials-provider finished in time")
            .expect("credentials-provider runs");
        Output {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Starts a run whose stderr is read line by line as it comes.
    pub fn spawn(&self, args: &[&str]) -> Running {
        let mut child = self
            .command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("credentials-provider starts");
        let stderr = child.stderr.take().unwrap();
        let (lines_tx, lines) = mpsc::unbounded_channel();
        let reader = tokio::spawn(async move {
            let mut all = String::new();
            let mut stream = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = stream.next_line().await {
                all.push_str(&line);
                all.push('\n');
                let _ = lines_tx.send(line);
            }
            all
        });
        Running {
            child,
            lines,
            reader,
        }
    }

    pub fn read_json(&self, name: &str) -> Value {
        let path = self.tokens().join(name);
        serde_json::from_str(
            &std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
        )
        .unwrap()
    }

    pub fn write_json(&self, name: &str, value: &Value) {
        std::fs::write(self.tokens().join(name), value.to_string()).unwrap();
    }
}

/// A run in progress.
#[derive(Debug)]
pub struct Running {
    child: Child,
    lines: mpsc::UnboundedReceiver<String>,
    reader: JoinHandle<String>,
}

impl Running {
    /// Waits (at most `limit`) for a stderr line for which `wanted` holds; returns it.
    pub async fn wait_for_line(
        &mut self,
        limit: Duration,
        wanted: impl Fn(&str) -> bool,
    ) -> String {
        let found = tokio::time::timeout(limit, async {
            while let Some(line) = self.lines.recv().await {
                if wanted(&line) {
                    return Some(line);
                }
            }
            None
        })
        .await
        .unwrap_or_else(|_| panic!("no such line within {limit:?}"));
        found.expect("credentials-provider ended before printing the line")
    }

    /// Sends a signal (a `kill` name such as `TERM`).
    pub fn signal(&self, signal: &str) {
        let pid = self.child.id().expect("the process runs");
        let status = std::process::Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{signal} {pid}");
    }

    /// Waits for the authorization URL the CLI prints.
    pub async fn authorization_url(&mut self) -> reqwest::Url {
        let found = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(line) = self.lines.recv().await {
                let line = line.trim();
                if line.starts_with("http") && line.contains("response_type=code") {
                    return Some(reqwest::Url::parse(line).expect("a URL"));
                }
            }
            None
        })
        .await
        .expect("the authorization URL within 30 s");
        found.expect("the CLI printed the authorization URL before it ended")
    }

    /// Waits for the end; returns the exit code and everything on stdout and stderr.
    pub async fn finish(mut self) -> Output {
        let status = tokio::time::timeout(RUN_LIMIT, self.child.wait())
            .await
            .expect("credentials-provider finished in time")
            .unwrap();
        let mut stdout = String::new();
        if let Some(mut out) = self.child.stdout.take() {
            use tokio::io::AsyncReadExt;
            let _ = out.read_to_string(&mut stdout).await;
        }
        // Lines not consumed by authorization_url are in the reader's copy too.
        while self.lines.try_recv().is_ok() {}
        let stderr = self.reader.await.unwrap_or_default();
        Output {
            code: status.code(),
            stdout,
            stderr,
        }
    }
}

/// The redirect URI of egress set 1.
pub fn callback_prefix(ws: &Workspace) -> String {
    ws.env
        .iter()
        .find(|(name, _)| name == "EGRESS_OAUTH_REDIRECT_URI_1")
        .map(|(_, value)| value.clone())
        .expect("egress set 1 is configured")
}

/// Runs `args` (an egress authorization) to the end, signing in as `login` in the "browser";
/// returns the CLI's output and the authorization URL.
pub async fn authorize_with(ws: &Workspace, args: &[&str], login: &str) -> (Output, reqwest::Url) {
    let mut cli = ws.spawn(args);
    let authorize = cli.authorization_url().await;
    let browser = browser();
    let callback = sign_in_and_consent(&browser, &authorize, login, &callback_prefix(ws)).await;
    let answer = browser
        .get(callback)
        .send()
        .await
        .expect("the callback server answers");
    assert_eq!(answer.status(), 200);
    let page = answer.text().await.unwrap();
    assert!(page.contains("Authorization received"), "{page}");
    (cli.finish().await, authorize)
}

/// Lists the tools of every server of a configuration's servers object (`servers`) with its
/// own URL and headers, through a real MCP client (rmcp); checks the transport type.
pub async fn list_tools_with(
    servers: &Value,
    kind: &str,
) -> std::collections::BTreeMap<String, Vec<String>> {
    use integration_tests::mcp_client::{ConnectOptions, McpClient};
    let mut found = std::collections::BTreeMap::new();
    for (name, server) in servers.as_object().expect("servers object") {
        assert_eq!(server["type"], kind, "{name}");
        let mut options = ConnectOptions::default();
        for (header, value) in server["headers"].as_object().expect("headers") {
            options = options.header(header, value.as_str().expect("string header"));
        }
        let url = server["url"].as_str().expect("url");
        let client = McpClient::connect_with(url, options)
            .await
            .unwrap_or_else(|e| panic!("{name} at {url}: {e}"));
        found.insert(name.clone(), client.tool_names().await.expect("tools/list"));
        client.close().await.expect("session ends");
    }
    found
}

/// The tools of each demo server an admin (group `mcp-registry-admin`) sees through the
/// gateway, by server name: every tool but `delete_all_portfolios`, which no entry of the
/// example scopes.yml names (tools/list shows a caller only what it may use).
pub fn expected_tools(
    servers: &[(&str, integration_tests::mcp_servers::ServerKind)],
) -> std::collections::BTreeMap<String, Vec<String>> {
    servers
        .iter()
        .map(|(name, kind)| ((*name).to_owned(), listed_to_admin(*kind)))
        .collect()
}

/// The tools of `kind` an admin sees in tools/list through the gateway (see [`expected_tools`]).
pub fn listed_to_admin(kind: integration_tests::mcp_servers::ServerKind) -> Vec<String> {
    kind.tool_names()
        .iter()
        .filter(|tool| **tool != "delete_all_portfolios")
        .map(|tool| (*tool).to_owned())
        .collect()
}

/// The gateway's base URL (servers are at `{base}/{server}/mcp`).
pub fn gateway_base(stack: &integration_tests::stack::GatewayStack) -> String {
    stack
        .url("x")
        .strip_suffix("/x/mcp")
        .expect("{base}/{server}/mcp")
        .to_owned()
}

/// Now, in seconds since the epoch.
pub fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
}

/// Starts the test IdP (oidc profile) in `dir`.
pub async fn start_idp(dir: &Path) -> Idp {
    Idp::start(IdpOptions::default(), dir).await
}

/// A browser: a cookie jar, no automatic redirects (each hop is checked).
pub fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

/// Signs in as `login` and consents on the IdP's development pages, following the redirects
/// from `authorize` until one leads to `redirect_prefix` (the CLI's callback). Returns that
/// callback URL without requesting it.
pub async fn sign_in_and_consent(
    browser: &reqwest::Client,
    authorize: &reqwest::Url,
    login: &str,
    redirect_prefix: &str,
) -> reqwest::Url {
    let mut url = authorize.clone();
    for _ in 0..12 {
        let response = browser.get(url.clone()).send().await.expect("IdP answers");
        let status = response.status().as_u16();
        if (300..400).contains(&status) {
            let location = response.headers()["location"].to_str().unwrap().to_owned();
            url = url.join(&location).unwrap();
            if url.as_str().starts_with(redirect_prefix) {
                return url;
            }
            continue;
        }
        let page = response.text().await.unwrap_or_default();
        assert_eq!(status, 200, "IdP page {url}: {page}");
        // The development login page has a `login` field; the consent page does not.
        let form: Vec<(&str, &str)> = if page.contains("name=\"login\"") {
            vec![("prompt", "login"), ("login", login), ("password", "any")]
        } else {
            vec![("prompt", "consent")]
        };
        let submitted = browser
            .post(url.clone())
            .form(&form)
            .send()
            .await
            .expect("IdP answers the form");
        assert!(
            submitted.status().is_redirection(),
            "form at {url}: {}",
            submitted.status()
        );
        let location = submitted.headers()["location"].to_str().unwrap().to_owned();
        url = url.join(&location).unwrap();
        if url.as_str().starts_with(redirect_prefix) {
            return url;
        }
    }
    panic!("no redirect to {redirect_prefix} after 12 steps (last {url})");
}

/// The claims of a JWT (not verified: the tests read what the IdP put in).
pub fn jwt_claims(token: &str) -> Value {
    use base64::Engine as _;
    let payload = token.split('.').nth(1).expect("a JWT");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url");
    serde_json::from_slice(&bytes).expect("JSON claims")
}

pub fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

/// Names of the temporary files left in a directory.
pub fn leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".tmp"))
        .collect()
}
