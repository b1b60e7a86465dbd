//! The real parts of the gateway, started on free loopback ports for one test: the identity
//! provider (node `oidc-provider`), the `auth-server` binary, nginx with the config from
//! deploy/nginx, and the in-process rmcp MCP servers. Every process is stopped when its handle
//! is dropped. A missing tool fails the test with a message saying how to install it: an
//! end-to-end test never turns green by skipping.

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

/// The repository root, found at run time (cargo sets `CARGO_MANIFEST_DIR` when it runs tests:
/// the tested package's directory, a child of the root): a test binary reused from a build
/// cache shared by several clones must use this clone's files, not those of the clone it was
/// built in.
pub fn repo_root() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// Fails with a clear message when a tool the end-to-end tests need is missing.
pub fn require(what: &str, present: bool, install: &str) {
    assert!(
        present,
        "end-to-end test needs {what}, which is missing on this machine: {install} \
         (scripts/setup.sh installs everything)"
    );
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free loopback port")
}

/// Waits until something accepts connections on `addr`.
pub async fn wait_for_port(addr: SocketAddr, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        assert!(
            Instant::now() < deadline,
            "{what} did not listen on {addr} within 20 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A child process stopped (SIGTERM, then SIGKILL) when dropped; its output goes to a log file.
#[derive(Debug)]
pub struct Process {
    name: String,
    child: Option<Child>,
    log: PathBuf,
}

impl Process {
    /// Starts `command` with stdout and stderr going to `log`.
    pub fn spawn(name: &str, command: &mut Command, log: PathBuf) -> Process {
        let out = std::fs::File::create(&log).expect("log file");
        let err = out.try_clone().expect("log file");
        let child = command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Process {
            name: name.to_owned(),
            child: Some(child),
            log,
        }
    }

    /// Everything the process wrote so far.
    pub fn output(&self) -> String {
        let mut text = String::new();
        if let Ok(mut file) = std::fs::File::open(&self.log) {
            let _ = file.read_to_string(&mut text);
        }
        text
    }

    /// Stops the process now (graceful first).
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!("{} did not stop on SIGTERM; killing it", self.name);
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|child| matches!(child.try_wait(), Ok(None)))
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The identity provider: node `oidc-provider` from integration-tests/idp.
#[derive(Debug)]
pub struct Idp {
    /// Loopback port.
    pub port: u16,
    /// The `iss` of its tokens.
    pub issuer: String,
    /// Loopback JWKS URL.
    pub jwks_uri: String,
    /// Loopback token endpoint.
    pub token_endpoint: String,
    /// The running node process.
    pub process: Process,
    client: reqwest::Client,
}

/// How to start an [`Idp`].
#[derive(Debug, Clone, Default)]
pub struct IdpOptions {
    /// `cognito` or `oidc` (default).
    pub cognito: bool,
    /// The issuer string; default `http://127.0.0.1:<port>`.
    pub issuer: Option<String>,
    /// A shared private key file (two IdPs with the same keys).
    pub keys_file: Option<PathBuf>,
}

impl Idp {
    /// Starts the IdP and waits for its ready line.
    pub async fn start(options: IdpOptions, workdir: &Path) -> Idp {
        Self::start_with(options, &[], workdir).await
    }

    /// Starts the IdP with extra command-line arguments (e.g. `--ui-origin`).
    pub async fn start_with(options: IdpOptions, extra_args: &[&str], workdir: &Path) -> Idp {
        let idp_dir = repo_root().join("integration-tests/idp");
        require(
            "node",
            Command::new("node").arg("--version").output().is_ok(),
            "apt-get install nodejs (20+)",
        );
        require(
            "the npm package oidc-provider",
            idp_dir.join("node_modules/oidc-provider").is_dir(),
            "run `npm ci` in integration-tests/idp",
        );
        let mut command = Command::new("node");
        command
            .arg(idp_dir.join("idp.mjs"))
            .args(["--port", "0", "--profile"]);
        command.arg(if options.cognito { "cognito" } else { "oidc" });
        if let Some(issuer) = &options.issuer {
            command.args(["--issuer", issuer]);
        }
        let keys_file = options
            .keys_file
            .clone()
            .unwrap_or_else(|| workdir.join("idp-keys.json"));
        command.arg("--keys").arg(&keys_file);
        command.args(extra_args);
        // The ready line arrives on stdout; the rest of the output goes to the log.
        let log = workdir.join(format!("idp-{}.log", free_port()));
        let err = std::fs::File::create(&log).expect("log file");
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(err)
            .spawn()
            .expect("node starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let reader = tokio::task::spawn_blocking(move || {
            let mut line = String::new();
            BufReader::new(stdout).read_line(&mut line).map(|_| line)
        });
        let ready = match tokio::time::timeout(Duration::from_secs(60), reader).await {
            Ok(read) => read.expect("reader thread").expect("IdP stdout"),
            Err(_) => {
                // Killing node closes its stdout: the reader thread ends, and so can the test's
                // runtime (it waits for blocking threads when it shuts down).
                let _ = child.kill();
                panic!("IdP not ready within 60 s; log: {}", log.display());
            }
        };
        let ready: Value = serde_json::from_str(&ready).unwrap_or_else(|_| {
            panic!(
                "IdP ready line is not JSON: {ready:?}; log: {}",
                log.display()
            )
        });
        let text = |key: &str| ready[key].as_str().unwrap_or_default().to_owned();
        Idp {
            port: ready["port"].as_u64().unwrap_or_default() as u16,
            issuer: text("issuer"),
            jwks_uri: text("jwks_uri"),
            token_endpoint: text("token_endpoint"),
            process: Process {
                name: "idp".into(),
                child: Some(child),
                log,
            },
            // No kept-alive connections: node closes idle ones after 5 s, and a request sent
            // as it closes one fails with a reset (seen once in `key_rotation_under_load`).
            client: reqwest::Client::builder()
                .pool_max_idle_per_host(0)
                .build()
                .expect("HTTP client"),
        }
    }

    /// A client-credentials access token for one of the IdP's clients (secret `<id>-secret`).
    pub async fn token(&self, client_id: &str) -> String {
        self.token_with(client_id, None).await
    }

    /// A token with a requested `scope`.
    pub async fn token_with(&self, client_id: &str, scope: Option<&str>) -> String {
        let mut form = format!(
            "grant_type=client_credentials&client_id={client_id}&client_secret={client_id}-secret"
        );
        if let Some(scope) = scope {
            form.push_str(&format!(
                "&scope={}",
                scope.replace('/', "%2F").replace(' ', "+")
            ));
        }
        let response = self
            .client
            .post(&self.token_endpoint)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form)
            .send()
            .await
            .expect("token endpoint answers");
        let status = response.status();
        let body: Value = response.json().await.expect("token response is JSON");
        assert!(
            status.is_success(),
            "token request for {client_id} failed: {status} {body}"
        );
        body["access_token"]
            .as_str()
            .expect("access_token")
            .to_owned()
    }

    /// Rotates the signing key; returns the new `kid`.
    pub async fn rotate(&self, drop_old: bool) -> String {
        let url = format!(
            "http://127.0.0.1:{}/__admin/rotate{}",
            self.port,
            if drop_old { "?drop_old=1" } else { "" }
        );
        let body: Value = self
            .client
            .post(url)
            .send()
            .await
            .expect("rotate")
            .json()
            .await
            .expect("JSON");
        body["kid"].as_str().expect("new kid").to_owned()
    }
}

/// The `auth-server` binary of this workspace.
pub fn auth_server_binary() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            // Built here rather than assumed: `cargo test -p integration-tests` alone must work.
            let status = Command::new(env!("CARGO"))
                .args([
                    "build",
                    "--quiet",
                    "-p",
                    "auth-server",
                    "--bin",
                    "auth-server",
                ])
                .current_dir(repo_root())
                .status()
                .expect("cargo runs");
            assert!(status.success(), "building auth-server failed");
            let target = std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| repo_root().join("target"));
            target.join("debug/auth-server")
        })
        .clone()
}

/// A running auth-server.
#[derive(Debug)]
pub struct AuthServer {
    /// Its HTTP address.
    pub addr: SocketAddr,
    /// The process.
    pub process: Process,
}

impl AuthServer {
    /// Starts auth-server with `env` (plus `AUTH_LISTEN`) and waits until it listens.
    pub async fn start(env: &[(&str, String)], workdir: &Path) -> AuthServer {
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port())
            .parse()
            .expect("address");
        Self::start_at(addr, env, workdir).await
    }

    /// Starts auth-server on `addr`: again where nginx expects it, after it was killed. Each run
    /// gets its own log file.
    pub async fn start_at(addr: SocketAddr, env: &[(&str, String)], workdir: &Path) -> AuthServer {
        let mut command = Command::new(auth_server_binary());
        command
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default());
        command
            .env("AUTH_LISTEN", addr.to_string())
            .env("RUST_LOG", "info");
        for (name, value) in env {
            command.env(name, value);
        }
        let log = (0..)
            .map(|run| match run {
                0 => workdir.join(format!("auth-server-{}.log", addr.port())),
                run => workdir.join(format!("auth-server-{}-{run}.log", addr.port())),
            })
            .find(|log| !log.exists())
            .expect("a free log name");
        let process = Process::spawn("auth-server", &mut command, log);
        wait_for_port(addr, "auth-server").await;
        AuthServer { addr, process }
    }

    /// Waits until `/readyz` says ready (a key set was fetched).
    pub async fn wait_ready(&self) {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ready = client
                .get(format!("http://{}/readyz", self.addr))
                .send()
                .await;
            if ready.is_ok_and(|response| response.status() == 200) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "auth-server not ready in 20 s:\n{}",
                self.process.output()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The certificate and key (PEM files) a gateway's TLS variant serves.
#[derive(Debug, Clone)]
pub struct GatewayTls {
    /// The certificate chain, leaf first.
    pub cert: PathBuf,
    /// The leaf's private key.
    pub key: PathBuf,
}

/// nginx with the config from deploy/nginx.
#[derive(Debug)]
pub struct Nginx {
    /// The gateway's address.
    pub addr: SocketAddr,
    /// The HTTPS front server's address, when started with TLS.
    pub tls_addr: Option<SocketAddr>,
    /// The process.
    pub process: Process,
}

impl Nginx {
    /// Renders deploy/nginx into `workdir/nginx` and starts nginx in front of `auth` and `servers`.
    pub async fn start(auth: SocketAddr, servers: &[(&str, SocketAddr)], workdir: &Path) -> Nginx {
        Self::start_with_tls(auth, servers, workdir, None).await
    }

    /// As [`Nginx::start`], with the HTTPS front server (render.sh's `TLS_*`) when `tls` is given.
    pub async fn start_with_tls(
        auth: SocketAddr,
        servers: &[(&str, SocketAddr)],
        workdir: &Path,
        tls: Option<&GatewayTls>,
    ) -> Nginx {
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port())
            .parse()
            .expect("address");
        Self::start_at(addr, auth, servers, workdir, tls).await
    }

    /// Starts nginx listening on `addr` (a gateway whose address was given out before, e.g.
    /// to the IdP as a redirect URI); with `tls`, as [`Nginx::start_with_tls`].
    pub async fn start_at(
        addr: SocketAddr,
        auth: SocketAddr,
        servers: &[(&str, SocketAddr)],
        workdir: &Path,
        tls: Option<&GatewayTls>,
    ) -> Nginx {
        require(
            "nginx",
            Path::new("/usr/sbin/nginx").exists(),
            "apt-get install nginx-light libnginx-mod-http-lua",
        );
        require(
            "nginx's Lua module",
            Path::new("/usr/lib/nginx/modules/ngx_http_lua_module.so").exists(),
            "apt-get install libnginx-mod-http-lua",
        );
        let prefix = workdir.join(format!("nginx-{}", addr.port()));
        let servers_list: Vec<String> = servers
            .iter()
            .map(|(name, upstream)| format!("{name}={upstream}"))
            .collect();
        let mut render = Command::new(repo_root().join("deploy/nginx/render.sh"));
        render
            .arg(&prefix)
            .env("GATEWAY_LISTEN", addr.to_string())
            .env("AUTH_SERVER", auth.to_string())
            .env("MCP_SERVERS", servers_list.join(","));
        let tls_addr = tls.map(|tls| {
            let tls_addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
            render
                .env("TLS_LISTEN", tls_addr.to_string())
                .env("TLS_CERT", &tls.cert)
                .env("TLS_KEY", &tls.key);
            tls_addr
        });
        let render = render.output().expect("render.sh runs");
        assert!(
            render.status.success(),
            "render.sh failed: {}",
            String::from_utf8_lossy(&render.stderr)
        );
        let config = prefix.join("nginx.conf");
        let mut command = Command::new("/usr/sbin/nginx");
        command.arg("-p").arg(&prefix).arg("-c").arg(&config).args([
            "-e",
            "stderr",
            "-g",
            "daemon off;",
        ]);
        let process = Process::spawn("nginx", &mut command, prefix.join("nginx-stderr.log"));
        wait_for_port(addr, "nginx").await;
        if let Some(tls_addr) = tls_addr {
            wait_for_port(tls_addr, "nginx's HTTPS front server").await;
        }
        Nginx {
            addr,
            tls_addr,
            process,
        }
    }

    /// The gateway URL of an MCP server's endpoint.
    pub fn url(&self, server: &str) -> String {
        format!("http://{}/{server}/mcp", self.addr)
    }
}

/// Which token shape the stack's IdP issues and auth-server expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// Generic OIDC: issuer on loopback, discovery, `groups`, audience `mcp-gateway`.
    Oidc,
    /// Amazon Cognito shape: Cognito issuer URL, `client_id`, `token_use`, `cognito:groups`,
    /// key set from `AUTH_JWKS_URL` on loopback.
    Cognito,
}

/// The Cognito pool the Cognito-shaped stack pretends to be.
pub const COGNITO_REGION: &str = "us-east-1";
/// See [`COGNITO_REGION`].
pub const COGNITO_POOL: &str = "us-east-1_TestPool";

/// Which gateway fronts a [`GatewayStack`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Front {
    /// nginx with deploy/nginx.
    Nginx,
    /// Envoy with deploy/envoy/envoy.yaml (HTTP ext_authz to `/validate`).
    EnvoyHttp,
    /// Envoy with deploy/envoy/envoy-grpc.yaml (gRPC ext_authz, `AUTH_GRPC_LISTEN`).
    EnvoyGrpc,
}

/// The running gateway process.
#[derive(Debug)]
pub enum Gateway {
    /// nginx.
    Nginx(Nginx),
    /// Envoy, in either mode.
    Envoy(crate::envoy::Envoy),
}

impl Gateway {
    /// The gateway's address.
    pub fn addr(&self) -> SocketAddr {
        match self {
            Gateway::Nginx(nginx) => nginx.addr,
            Gateway::Envoy(envoy) => envoy.addr,
        }
    }

    /// The gateway's HTTPS address, when it was started with TLS.
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        match self {
            Gateway::Nginx(nginx) => nginx.tls_addr,
            Gateway::Envoy(envoy) => envoy.tls.then_some(envoy.addr),
        }
    }

    /// The gateway process.
    pub fn process(&self) -> &Process {
        match self {
            Gateway::Nginx(nginx) => &nginx.process,
            Gateway::Envoy(envoy) => &envoy.process,
        }
    }
}

/// IdP, auth-server, a gateway and both MCP servers, wired together on loopback.
#[derive(Debug)]
pub struct GatewayStack {
    /// Which gateway is in front.
    pub front: Front,
    /// The identity provider.
    pub idp: Idp,
    /// auth-server.
    pub auth: AuthServer,
    /// The gateway in front.
    pub gateway: Gateway,
    /// The `currenttime` MCP server.
    pub currenttime: crate::mcp_servers::RunningServer,
    /// The `fininfo` MCP server.
    pub fininfo: crate::mcp_servers::RunningServer,
    /// Logs, keys and the nginx prefix; removed on drop.
    pub workdir: tempfile::TempDir,
}

impl GatewayStack {
    /// Starts everything behind nginx for `profile`, with extra auth-server variables.
    pub async fn start(profile: Profile, extra_env: &[(&str, &str)]) -> GatewayStack {
        Self::start_behind(Front::Nginx, profile, extra_env).await
    }

    /// Starts everything behind `front` for `profile`, with extra auth-server variables.
    pub async fn start_behind(
        front: Front,
        profile: Profile,
        extra_env: &[(&str, &str)],
    ) -> GatewayStack {
        Self::start_behind_with_tls(front, profile, extra_env, None).await
    }

    /// As [`GatewayStack::start_behind`], with the gateway's TLS variant serving `tls` when
    /// given (nginx: the HTTPS front server beside the plain listener; Envoy: its one listener
    /// on HTTPS). [`GatewayStack::https_url`] is its address.
    pub async fn start_behind_with_tls(
        front: Front,
        profile: Profile,
        extra_env: &[(&str, &str)],
        tls: Option<&GatewayTls>,
    ) -> GatewayStack {
        Self::start_full(front, profile, extra_env, false, tls, &[]).await
    }

    /// As [`GatewayStack::start_behind`], with more MCP servers behind the gateway (name and
    /// address; the policy, e.g. an `AUTH_SCOPES_FILE` in `extra_env`, must name them).
    pub async fn start_with_servers(
        front: Front,
        profile: Profile,
        extra_env: &[(&str, &str)],
        extra_servers: &[(&str, SocketAddr)],
    ) -> GatewayStack {
        Self::start_full(front, profile, extra_env, false, None, extra_servers).await
    }

    /// Starts everything behind `front` (OIDC profile) with people's browser sign-in on: the
    /// IdP's `auth-server-ui` client registers this gateway's callback, auth-server gets the
    /// `AUTH_SESSION_*` settings and a session key of its own. The demo person is
    /// [`DEMO_PERSON`].
    pub async fn start_with_sign_in(front: Front) -> GatewayStack {
        Self::start_full(front, Profile::Oidc, &[], true, None, &[]).await
    }

    async fn start_full(
        front: Front,
        profile: Profile,
        extra_env: &[(&str, &str)],
        sign_in: bool,
        tls: Option<&GatewayTls>,
        extra_servers: &[(&str, SocketAddr)],
    ) -> GatewayStack {
        use crate::mcp_servers::{ServerKind, spawn_server};
        let workdir = tempfile::tempdir().expect("temp dir");
        let cognito_issuer =
            format!("https://cognito-idp.{COGNITO_REGION}.amazonaws.com/{COGNITO_POOL}");
        // The gateway's address comes first: the IdP registers the sign-in callback on it.
        let gateway_addr: SocketAddr = format!("127.0.0.1:{}", free_port())
            .parse()
            .expect("address");
        let origin = format!("http://{gateway_addr}");
        let idp = Idp::start_with(
            IdpOptions {
                cognito: profile == Profile::Cognito,
                issuer: (profile == Profile::Cognito).then(|| cognito_issuer.clone()),
                keys_file: None,
            },
            &["--ui-origin", &origin],
            workdir.path(),
        )
        .await;
        let scopes = repo_root().join("scopes.yml").display().to_string();
        let mut env: Vec<(&str, String)> = vec![
            ("AUTH_SCOPES_FILE", scopes),
            ("AUTH_LOG_FORMAT", "json".into()),
            // Tokens come from the same clock: no skew to allow, so expiry tests are quick.
            ("AUTH_LEEWAY_SECONDS", "0".into()),
        ];
        match profile {
            Profile::Oidc => env.extend([
                ("AUTH_PROVIDER", "oidc".into()),
                ("AUTH_ISSUER", idp.issuer.clone()),
                ("AUTH_AUDIENCES", "mcp-gateway".into()),
            ]),
            Profile::Cognito => env.extend([
                ("AUTH_PROVIDER", "cognito".into()),
                ("AUTH_COGNITO_REGION", COGNITO_REGION.into()),
                ("AUTH_COGNITO_USER_POOL_ID", COGNITO_POOL.into()),
                ("AUTH_JWKS_URL", idp.jwks_uri.clone()),
            ]),
        }
        if sign_in {
            let key_file = workdir.path().join("session.key");
            std::fs::write(&key_file, format!("{SESSION_KEY}\n")).expect("session key file");
            env.extend([
                ("AUTH_SESSION_CLIENT_ID", "auth-server-ui".into()),
                ("AUTH_SESSION_CLIENT_SECRET", "auth-server-ui-secret".into()),
                ("AUTH_SESSION_ISSUER", idp.issuer.clone()),
                ("AUTH_SESSION_PUBLIC_URL", origin.clone()),
                ("AUTH_SESSION_KEY_FILE", key_file.display().to_string()),
                // No offline_access: the refresh token stays bound to the IdP session, so the
                // IdP's logout revokes it.
                ("AUTH_SESSION_SCOPES", "openid profile email groups".into()),
            ]);
        }
        env.extend(
            extra_env
                .iter()
                .map(|(name, value)| (*name, (*value).to_owned())),
        );
        // Envoy's gRPC mode asks Check there; both Envoy modes filter tools/list answers with
        // ext_proc, which is served on the same listener.
        let grpc_addr: Option<SocketAddr> = (front != Front::Nginx).then(|| {
            format!("127.0.0.1:{}", free_port())
                .parse()
                .expect("address")
        });
        if let Some(addr) = grpc_addr {
            env.push(("AUTH_GRPC_LISTEN", addr.to_string()));
        }
        let auth = AuthServer::start(&env, workdir.path()).await;
        auth.wait_ready().await;
        if let Some(addr) = grpc_addr {
            wait_for_port(addr, "auth-server's gRPC listener").await;
        }
        let listen = || {
            std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| {
                l.set_nonblocking(true)?;
                tokio::net::TcpListener::from_std(l)
            })
        };
        let currenttime = spawn_server(ServerKind::CurrentTime, listen().expect("listener")).await;
        let fininfo = spawn_server(ServerKind::FinInfo, listen().expect("listener")).await;
        let mut servers = vec![
            ("currenttime", currenttime.addr()),
            ("fininfo", fininfo.addr()),
        ];
        servers.extend_from_slice(extra_servers);
        let gateway = match front {
            Front::Nginx => Gateway::Nginx(
                Nginx::start_at(gateway_addr, auth.addr, &servers, workdir.path(), tls).await,
            ),
            Front::EnvoyHttp | Front::EnvoyGrpc => {
                use crate::envoy::{AuthAddrs, Envoy, EnvoyMode};
                let mode = if front == Front::EnvoyGrpc {
                    EnvoyMode::Grpc
                } else {
                    EnvoyMode::Http
                };
                let auth_addrs = AuthAddrs {
                    http: auth.addr,
                    grpc: grpc_addr,
                };
                Gateway::Envoy(
                    Envoy::start_at(
                        gateway_addr,
                        mode,
                        auth_addrs,
                        &servers,
                        workdir.path(),
                        tls,
                    )
                    .await,
                )
            }
        };
        GatewayStack {
            front,
            idp,
            auth,
            gateway,
            currenttime,
            fininfo,
            workdir,
        }
    }

    /// The gateway URL of `server`'s MCP endpoint.
    pub fn url(&self, server: &str) -> String {
        format!("http://{}/{server}/mcp", self.gateway.addr())
    }

    /// The gateway's origin, as a browser sends it in `Origin`.
    pub fn origin(&self) -> String {
        format!("http://{}", self.gateway.addr())
    }

    /// The HTTPS URL of `server`'s MCP endpoint (a stack started with TLS; the certificate
    /// names 127.0.0.1).
    pub fn https_url(&self, server: &str) -> String {
        let addr = self.gateway.tls_addr().expect("a gateway started with TLS");
        format!("https://{addr}/{server}/mcp")
    }
}

/// The IdP's demo person (integration-tests/idp/idp.mjs, `PEOPLE`): username, password, group.
pub const DEMO_PERSON: (&str, &str, &str) =
    ("alice", "alice-demo-password", "mcp-registry-operator");

/// The session key of the stacks with sign-in (base64 of 32 bytes); a deployment makes its own.
pub const SESSION_KEY: &str = "YnJvd3Nlci10ZXN0LXNlc3Npb24ta2V5LTMyLWJ5dGVzIQ==";

// ---------------------------------------------------------------------------------------------
// Fault injection and raw HTTP, for the hostile-input and fault suites
// ---------------------------------------------------------------------------------------------

impl Process {
    /// The OS process id, while it runs.
    pub fn id(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills the process at once (SIGKILL: no graceful shutdown) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends `signal` (a `kill` name such as `HUP`) to the running process.
    pub fn signal(&self, signal: &str) {
        let id = self.id().expect("the process runs");
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(id.to_string())
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{signal} {id} failed");
    }
}

/// An HTTP/1.1 response read off a raw connection.
#[derive(Debug, Clone)]
pub struct RawResponse {
    /// Status code.
    pub status: u16,
    /// Header fields in order, names in lower case.
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked.
    pub body: Vec<u8>,
}

impl RawResponse {
    /// The first value of header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON, if it is.
    pub fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }

    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Writes `request` to `addr` exactly as given (no path normalisation, repeated headers kept,
/// any bytes) and reads the response until the server closes the connection (the request should
/// say `Connection: close`). Panics when no complete response arrives within 30 s.
pub async fn raw_http(addr: SocketAddr, request: &[u8]) -> RawResponse {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        stream.write_all(request).await?;
        let mut received = Vec::new();
        // A server may answer and close before it read the whole request (an oversized header):
        // a reset after the answer is not an error here.
        let mut chunk = [0u8; 16 * 1024];
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) => break,
                Ok(n) => received.extend_from_slice(&chunk[..n]),
                Err(err) if !received.is_empty() => {
                    eprintln!("raw_http: {err} after {} bytes", received.len());
                    break;
                }
                Err(err) => return Err(err),
            }
        }
        Ok::<_, std::io::Error>(received)
    };
    let received = tokio::time::timeout(Duration::from_secs(30), exchange)
        .await
        .unwrap_or_else(|_| panic!("no complete answer from {addr} within 30 s"))
        .unwrap_or_else(|err| panic!("raw HTTP exchange with {addr} failed: {err}"));
    parse_raw_response(&received).unwrap_or_else(|| {
        panic!(
            "not an HTTP response: {:?}",
            String::from_utf8_lossy(&received)
        )
    })
}

fn parse_raw_response(received: &[u8]) -> Option<RawResponse> {
    let head_end = received.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&received[..head_end]).ok()?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    let rest = &received[head_end + 4..];
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    let body = if chunked {
        dechunk(rest)?
    } else {
        rest.to_vec()
    };
    Some(RawResponse {
        status,
        headers,
        body,
    })
}

fn dechunk(mut rest: &[u8]) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line_end = rest.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&rest[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Some(body);
        }
        body.extend_from_slice(rest.get(..size)?);
        rest = rest.get(size + 2..)?;
    }
}

/// A raw HTTP/1.1 request: the target is sent as written.
#[derive(Debug, Clone)]
pub struct RawRequest {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The request target, raw (`/fininfo/../x`, `//a`, `%2f` stay as they are).
    pub target: String,
    /// Header fields, in order; repeats allowed.
    pub headers: Vec<(String, String)>,
    /// The body; `Content-Length` is added for it.
    pub body: Vec<u8>,
}

impl RawRequest {
    /// A JSON POST to `target`.
    pub fn post(target: &str, body: impl Into<Vec<u8>>) -> RawRequest {
        RawRequest {
            method: "POST".into(),
            target: target.into(),
            headers: vec![
                ("Content-Type".into(), "application/json".into()),
                (
                    "Accept".into(),
                    "application/json, text/event-stream".into(),
                ),
            ],
            body: body.into(),
        }
    }

    /// Adds a header field (repeats allowed).
    pub fn header(mut self, name: &str, value: &str) -> RawRequest {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// The bytes on the wire, with `Host`, `Connection: close` and `Content-Length`.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut head = format!(
            "{} {} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: {}\r\n",
            self.method,
            self.target,
            self.body.len()
        );
        for (name, value) in &self.headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(&self.body);
        bytes
    }

    /// Sends it to `addr` on a new connection.
    pub async fn send(&self, addr: SocketAddr) -> RawResponse {
        raw_http(addr, &self.to_bytes()).await
    }
}
