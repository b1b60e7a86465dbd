//! Faults, with the real IdP (oidc-provider), the auth-server binary, nginx (deploy/nginx) and
//! the rmcp MCP servers on loopback: the IdP down at start, hanging or answering junk;
//! auth-server killed under load; the policy file broken or changed while serving; signing keys
//! rotated under load. In every case the gateway fails closed: a request is answered 5xx or
//! denied, and nothing reaches an MCP server without an allow.
//!
//! The pieces are started one by one (not with `GatewayStack`, which waits until auth-server is
//! ready), and the IdP's key set is reached through [`Relay`], a loopback TCP relay the test
//! switches between forwarding to the IdP, hanging and answering junk.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use integration_tests::mcp_client::{ClientError, ConnectOptions, McpClient};
use integration_tests::mcp_servers::{RunningServer, ServerKind, spawn_server};
use integration_tests::stack::{
    AuthServer, Idp, IdpOptions, Nginx, RawRequest, RawResponse, free_port, repo_root,
};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

// ---------------------------------------------------------------------------------------------
// A switchable relay in front of the IdP
// ---------------------------------------------------------------------------------------------

/// What the relay does with a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Mode {
    /// Pipes bytes both ways to the real IdP.
    Forward(SocketAddr),
    /// Accepts, reads, and never answers.
    Hang,
    /// Answers with these bytes and closes.
    Junk(&'static [u8]),
}

/// A loopback TCP relay whose behaviour the test switches. A switch also cuts every connection
/// made before it, so that no kept-alive connection carries on the old behaviour.
struct Relay {
    addr: SocketAddr,
    state: Arc<Mutex<(Mode, CancellationToken)>>,
    stop: CancellationToken,
}

impl Relay {
    /// Listens on `port` (0: any) and starts in `mode`.
    async fn start(port: u16, mode: Mode) -> Relay {
        let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new((mode, CancellationToken::new())));
        let stop = CancellationToken::new();
        let (accept_state, accept_stop) = (state.clone(), stop.clone());
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    accepted = listener.accept() => accepted,
                    () = accept_stop.cancelled() => return,
                };
                let Ok((socket, _)) = accepted else { continue };
                let (mode, cut) = accept_state.lock().unwrap().clone();
                tokio::spawn(async move {
                    tokio::select! {
                        () = serve(socket, mode) => {}
                        () = cut.cancelled() => {}
                    }
                });
            }
        });
        Relay { addr, state, stop }
    }

    fn set(&self, mode: Mode) {
        let mut state = self.state.lock().unwrap();
        state.1.cancel();
        *state = (mode, CancellationToken::new());
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.cancel();
        self.state.lock().unwrap().1.cancel();
    }
}

async fn serve(mut socket: TcpStream, mode: Mode) {
    match mode {
        Mode::Forward(target) => {
            if let Ok(mut upstream) = TcpStream::connect(target).await {
                let _ = tokio::io::copy_bidirectional(&mut socket, &mut upstream).await;
            }
        }
        Mode::Hang => {
            let _ = tokio::io::copy(&mut socket, &mut tokio::io::sink()).await;
        }
        Mode::Junk(bytes) => {
            let mut request = [0u8; 4096];
            let _ = socket.read(&mut request).await;
            let _ = socket.write_all(bytes).await;
            let _ = socket.shutdown().await;
        }
    }
}

/// An HTTP 200 whose body is not a key set.
const JUNK_HTTP: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 27\r\nconnection: close\r\n\r\n<html>not a key set</html>\n";
/// Bytes that are not HTTP at all.
const JUNK_BYTES: &[u8] = b"\x00\x01\x02 SSH-2.0-OpenSSH_9.2 \xff\xfe garbage\r\n\r\n";

// ---------------------------------------------------------------------------------------------
// The pieces of the gateway, started one by one
// ---------------------------------------------------------------------------------------------

struct Rig {
    idp: Idp,
    auth: AuthServer,
    auth_env: Vec<(&'static str, String)>,
    nginx: Nginx,
    currenttime: RunningServer,
    fininfo: RunningServer,
    workdir: tempfile::TempDir,
}

/// How to start a [`Rig`].
#[derive(Default)]
struct RigOptions {
    /// `AUTH_JWKS_URL`; default: OIDC discovery at the IdP.
    jwks_url: Option<String>,
    /// The policy file; default: the shipped scopes.yml.
    scopes_file: Option<PathBuf>,
    /// More auth-server variables.
    env: Vec<(&'static str, String)>,
    /// Whether to wait until auth-server has a key set.
    wait_ready: bool,
}

impl Rig {
    /// Starts the IdP, auth-server, both MCP servers and nginx, in that order.
    async fn start(idp: Idp, workdir: tempfile::TempDir, options: RigOptions) -> Rig {
        let scopes = options
            .scopes_file
            .unwrap_or_else(|| repo_root().join("scopes.yml"));
        let mut env: Vec<(&'static str, String)> = vec![
            ("AUTH_PROVIDER", "oidc".into()),
            ("AUTH_ISSUER", idp.issuer.clone()),
            ("AUTH_AUDIENCES", "mcp-gateway".into()),
            ("AUTH_SCOPES_FILE", scopes.display().to_string()),
            ("AUTH_LOG_FORMAT", "json".into()),
            ("AUTH_LEEWAY_SECONDS", "0".into()),
        ];
        if let Some(url) = options.jwks_url {
            env.push(("AUTH_JWKS_URL", url));
        }
        env.extend(options.env);
        let auth = AuthServer::start(&env, workdir.path()).await;
        if options.wait_ready {
            auth.wait_ready().await;
        }
        let currenttime = spawn_server(ServerKind::CurrentTime, loopback_listener()).await;
        let fininfo = spawn_server(ServerKind::FinInfo, loopback_listener()).await;
        let nginx = Nginx::start(
            auth.addr,
            &[
                ("currenttime", currenttime.addr()),
                ("fininfo", fininfo.addr()),
            ],
            workdir.path(),
        )
        .await;
        Rig {
            idp,
            auth,
            auth_env: env,
            nginx,
            currenttime,
            fininfo,
            workdir,
        }
    }

    fn upstream_requests(&self) -> usize {
        self.currenttime.log().len() + self.fininfo.log().len()
    }

    /// The JSON lines auth-server logged so far.
    fn log_lines(&self) -> Vec<Value> {
        self.auth
            .process
            .output()
            .lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect()
    }

    async fn readyz(&self) -> u16 {
        RawRequest {
            method: "GET".into(),
            target: "/readyz".into(),
            headers: vec![],
            body: vec![],
        }
        .send(self.auth.addr)
        .await
        .status
    }

    async fn connect(&self, server: &str, token: &str) -> Result<McpClient, ClientError> {
        McpClient::connect_with(
            &self.nginx.url(server),
            ConnectOptions::default().ingress_token(token),
        )
        .await
    }
}

fn loopback_listener() -> TcpListener {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    TcpListener::from_std(listener).unwrap()
}

/// The path of the IdP's key set URL (`/jwks`).
fn jwks_path(idp: &Idp) -> String {
    let origin = format!("http://127.0.0.1:{}", idp.port);
    idp.jwks_uri.strip_prefix(&origin).unwrap().to_owned()
}

async fn start_idp(workdir: &Path) -> Idp {
    Idp::start(IdpOptions::default(), workdir).await
}

fn post(path: &str, token: &str, body: impl Into<Vec<u8>>) -> RawRequest {
    RawRequest::post(path, body).header("X-Authorization", &format!("Bearer {token}"))
}

/// A check sent straight to auth-server's `/validate`, as nginx would send it.
fn check(path: &str, token: &str, body: &Value) -> RawRequest {
    post("/validate", token, body.to_string()).header("X-Original-URI", path)
}

fn tools_list() -> Value {
    json!({"jsonrpc":"2.0","id":1,"method":"tools/list"})
}

fn tools_call(id: u64, tool: &str) -> Value {
    json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":{"name":tool,"arguments":{
        "stock_ticker":"AAPL","from_date":"2026-01-01","to_date":"2026-01-31"}}})
}

fn initialize(id: &str) -> Value {
    json!({"jsonrpc":"2.0","id":id,"method":"initialize","params":{
        "protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"faults","version":"1"}}})
}

/// Whether `answer` is the gateway's own refusal (JSON `error`), not an MCP server's answer.
fn gateway_refusal(answer: &RawResponse) -> bool {
    answer.json().is_some_and(|body| body["error"].is_string())
}

/// Waits until `condition` holds, checking every 100 ms, at most `limit`.
async fn eventually<F, Fut>(limit: Duration, what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while !condition().await {
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// The IdP down, hanging, answering junk
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn idp_down_at_start_every_check_is_503_until_it_comes_back() {
    let workdir = tempfile::tempdir().unwrap();
    let idp = start_idp(workdir.path()).await;
    let admin = idp.token("admin-agent").await;
    // The key set URL names a port nobody listens on yet: connection refused.
    let relay_port = free_port();
    let jwks_path = jwks_path(&idp);
    let rig = Rig::start(
        idp,
        workdir,
        RigOptions {
            jwks_url: Some(format!("http://127.0.0.1:{relay_port}{jwks_path}")),
            ..Default::default()
        },
    )
    .await;

    let started = Instant::now();
    let mut statuses = BTreeMap::new();
    while started.elapsed() < Duration::from_secs(3) {
        assert_eq!(rig.readyz().await, 503, "not ready without a key set");
        for request in [
            post("/fininfo/mcp", &admin, tools_list().to_string()),
            post(
                "/fininfo/mcp",
                &admin,
                tools_call(2, "print_stock_data").to_string(),
            ),
            post("/currenttime/mcp", &admin, initialize("i").to_string()),
        ] {
            let answer = request.send(rig.nginx.addr).await;
            assert!(gateway_refusal(&answer), "{}", answer.text());
            *statuses.entry(answer.status).or_insert(0) += 1;
        }
        // A token that is not even a JWT names no issuer: it can never be valid, so it is a
        // 401 whatever the key sets, never an allow.
        let forged = post(
            "/fininfo/mcp",
            "forged.token.value",
            tools_list().to_string(),
        )
        .send(rig.nginx.addr)
        .await;
        assert_eq!(forged.status, 401, "{}", forged.text());
    }
    eprintln!("IdP down: statuses through nginx {statuses:?}");
    assert_eq!(statuses.keys().collect::<Vec<_>>(), [&503], "{statuses:?}");
    assert_eq!(rig.upstream_requests(), 0, "nothing reached an MCP server");
    let no_key_set = rig
        .log_lines()
        .into_iter()
        .filter(|line| line["reason"] == "no_key_set")
        .count();
    assert!(no_key_set > 0, "denials are logged with reason no_key_set");

    // The IdP becomes reachable: the retry loop picks the key set up, checks are answered.
    let _relay = Relay::start(
        relay_port,
        Mode::Forward(([127, 0, 0, 1], rig.idp.port).into()),
    )
    .await;
    eventually(
        Duration::from_secs(30),
        "ready once the IdP answers",
        || async { rig.readyz().await == 200 },
    )
    .await;
    let client = rig
        .connect("fininfo", &admin)
        .await
        .expect("admin initializes once the key set is there");
    client.close().await.unwrap();
}

#[tokio::test]
async fn idp_junk_or_hang_keeps_the_cached_keys_and_never_holds_other_checks() {
    let workdir = tempfile::tempdir().unwrap();
    let idp = start_idp(workdir.path()).await;
    let relay = Relay::start(0, Mode::Forward(([127, 0, 0, 1], idp.port).into())).await;
    let jwks_path = jwks_path(&idp);
    let rig = Rig::start(
        idp,
        workdir,
        RigOptions {
            jwks_url: Some(relay.url(&jwks_path)),
            wait_ready: true,
            ..Default::default()
        },
    )
    .await;
    let auth = rig.auth.addr;
    let known = rig.idp.token("admin-agent").await;
    // Signed with the current key but not yet seen: their first check needs the key set, not
    // the verified-token cache.
    let unseen: Vec<String> = futures::future::join_all(
        ["readonly-agent", "operator-agent", "admin-agent"].map(|client| rig.idp.token(client)),
    )
    .await;
    let path = "/fininfo/mcp";
    assert_eq!(
        check(path, &known, &tools_list()).send(auth).await.status,
        200
    );

    // A rotation the relay hides: tokens signed with the new key name an unknown kid.
    rig.idp.rotate(false).await;
    let rotated = rig.idp.token("admin-agent").await;

    for (junk, name) in [
        (JUNK_HTTP, "HTTP 200 with HTML"),
        (JUNK_BYTES, "bytes that are not HTTP"),
    ] {
        relay.set(Mode::Junk(junk));
        // Unknown-kid refreshes are at most one per 5 s.
        tokio::time::sleep(Duration::from_millis(5100)).await;
        let answer = check(path, &rotated, &tools_list()).send(auth).await;
        assert_eq!(answer.status, 401, "{name}: new kid, junk key set");
        assert_eq!(
            check(path, &known, &tools_list()).send(auth).await.status,
            200,
            "{name}: the cached key set still serves"
        );
        let first_sight = &unseen[usize::from(junk == JUNK_BYTES)];
        assert_eq!(
            check(path, first_sight, &tools_list())
                .send(auth)
                .await
                .status,
            200,
            "{name}: a token never seen before is verified with the cached key set"
        );
        assert_eq!(rig.readyz().await, 200, "{name}: still ready");
    }
    let refresh_failures: Vec<Value> = rig
        .log_lines()
        .into_iter()
        .filter(|line| {
            line["level"] == "WARN"
                && line["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("refresh for an unknown kid failed"))
        })
        .collect();
    assert!(
        refresh_failures.len() >= 2,
        "each junk answer is logged: {refresh_failures:?}"
    );

    // The IdP hangs: the refresh waits for the 10 s fetch timeout. Meanwhile, checks with known
    // keys are answered at once, and concurrent unknown-kid checks share that one refresh.
    relay.set(Mode::Hang);
    tokio::time::sleep(Duration::from_millis(5100)).await;
    let hung_started = Instant::now();
    let waiting: Vec<_> = (0..3)
        .map(|_| {
            let request = check(path, &rotated, &tools_list());
            tokio::spawn(async move {
                let answer = request.send(auth).await;
                (answer.status, hung_started.elapsed())
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        post(path, &unseen[2], tools_list().to_string())
            .send(rig.nginx.addr)
            .await
            .status,
        400, // allowed: the MCP server's own "session required"
        "a token never seen before, during the hang"
    );
    let mut slowest_known = Duration::ZERO;
    for round in 0..20 {
        let started = Instant::now();
        let answers = futures::future::join_all((0..10).map(|i| {
            let request = post(
                path,
                &known,
                tools_call(round * 10 + i, "print_stock_data").to_string(),
            );
            let gateway = rig.nginx.addr;
            async move { request.send(gateway).await }
        }))
        .await;
        slowest_known = slowest_known.max(started.elapsed());
        for answer in answers {
            // Allowed: the MCP server answers (its own "no session" 400), not the gateway.
            assert!(
                !gateway_refusal(&answer),
                "known key during the hang: {}",
                answer.text()
            );
        }
        assert_eq!(rig.readyz().await, 200, "ready during the hang");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!("IdP hanging: slowest round of 10 known-key checks through nginx {slowest_known:?}");
    assert!(slowest_known < Duration::from_secs(2), "{slowest_known:?}");
    for waiter in waiting {
        let (status, took) = waiter.await.unwrap();
        eprintln!("IdP hanging: unknown-kid check answered {status} after {took:?}");
        assert_eq!(status, 401);
        assert!(
            took < Duration::from_secs(14),
            "an unknown-kid check waited {took:?}: concurrent checks must share one refresh"
        );
    }

    // The IdP answers again: the next refresh finds the new key.
    relay.set(Mode::Forward(([127, 0, 0, 1], rig.idp.port).into()));
    tokio::time::sleep(Duration::from_millis(5100)).await;
    assert_eq!(
        check(path, &rotated, &tools_list()).send(auth).await.status,
        200,
        "new key picked up once the IdP answers"
    );
}

// ---------------------------------------------------------------------------------------------
// auth-server killed and restarted under load
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn auth_server_killed_under_load_gets_5xx_and_nothing_unchecked_reaches_upstream() {
    let workdir = tempfile::tempdir().unwrap();
    let idp = start_idp(workdir.path()).await;
    let mut rig = Rig::start(
        idp,
        workdir,
        RigOptions {
            wait_ready: true,
            ..Default::default()
        },
    )
    .await;
    let admin = rig.idp.token("admin-agent").await;
    let gateway = rig.nginx.addr;

    // Four clients send `initialize` (each answered 200 by the MCP server, with a session),
    // each request with its own id, until told to stop; at most 500 requests each.
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..4)
        .map(|worker| {
            let (stop, admin) = (stop.clone(), admin.clone());
            tokio::spawn(async move {
                let mut outcomes = Vec::new();
                for n in 0..500 {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let id = format!("load-{worker}-{n}");
                    let answer = post("/currenttime/mcp", &admin, initialize(&id).to_string())
                        .send(gateway)
                        .await;
                    outcomes.push((id, answer.status, gateway_refusal(&answer), Instant::now()));
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                outcomes
            })
        })
        .collect();

    tokio::time::sleep(Duration::from_millis(1500)).await;
    rig.auth.process.kill();
    let killed_at = Instant::now();
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let restarted = AuthServer::start_at(rig.auth.addr, &rig.auth_env, rig.workdir.path()).await;
    restarted.wait_ready().await;
    let ready_at = Instant::now();
    rig.auth = restarted;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, Ordering::Relaxed);

    let mut outcomes = Vec::new();
    for worker in workers {
        outcomes.extend(worker.await.unwrap());
    }
    let served: HashSet<&str> = outcomes
        .iter()
        .filter(|(_, status, refused, _)| *status == 200 && !refused)
        .map(|(id, ..)| id.as_str())
        .collect();
    let refused: Vec<_> = outcomes
        .iter()
        .filter(|(_, _, refused, _)| *refused)
        .collect();
    let by_status = outcomes
        .iter()
        .fold(BTreeMap::new(), |mut counts, (_, status, ..)| {
            *counts.entry(*status).or_insert(0) += 1;
            counts
        });
    eprintln!(
        "killed under load: {} requests, {} served, {} refused by the gateway, statuses {by_status:?}",
        outcomes.len(),
        served.len(),
        refused.len()
    );
    assert_eq!(
        served.len() + refused.len(),
        outcomes.len(),
        "every answer is the MCP server's 200 or the gateway's refusal"
    );
    assert!(!refused.is_empty(), "the gap was seen");
    for (id, status, _, at) in &refused {
        assert!((500..600).contains(status), "{id}: refused with {status}");
        assert!(
            *at >= killed_at && *at <= ready_at + Duration::from_millis(500),
            "{id}: refused outside the gap"
        );
    }
    assert!(
        outcomes
            .iter()
            .any(|(_, status, _, at)| *status == 200 && *at > ready_at),
        "served again after the restart"
    );
    // The upstream saw exactly the served requests: none that the gateway refused.
    let reached: HashSet<String> = rig
        .currenttime
        .log()
        .requests()
        .iter()
        .filter_map(|request| request.json())
        .filter_map(|body| body["id"].as_str().map(str::to_owned))
        .collect();
    let served: HashSet<String> = served.into_iter().map(str::to_owned).collect();
    assert_eq!(reached, served, "upstream requests = allowed requests");
}

// ---------------------------------------------------------------------------------------------
// The policy file, broken or changed while serving
// ---------------------------------------------------------------------------------------------

/// The shipped policy, with the operator's fininfo entry also listing `print_stock_data`.
fn widened_policy() -> String {
    let shipped = std::fs::read_to_string(repo_root().join("scopes.yml")).unwrap();
    let widened = shipped.replace(
        "    tools: get_stock_aggregates\n",
        "    tools: [get_stock_aggregates, print_stock_data]\n",
    );
    assert_ne!(
        widened, shipped,
        "scopes.yml changed: update widened_policy()"
    );
    widened
}

/// Replaces `path` the way a ConfigMap update or an editor's save does: write, then rename.
fn replace_file(path: &Path, text: &str) {
    let temporary = path.with_extension("tmp");
    std::fs::write(&temporary, text).unwrap();
    std::fs::rename(&temporary, path).unwrap();
}

async fn operator_may_print(rig: &Rig, operator: &str) -> bool {
    let client = rig
        .connect("fininfo", operator)
        .await
        .expect("operator initializes");
    let args = json!({"stock_ticker":"AAPL","from_date":"2026-01-01","to_date":"2026-01-31"});
    let allowed = match client.call_tool("print_stock_data", args).await {
        Ok(_) => true,
        Err(err) if err.status() == Some(403) => false,
        Err(err) => panic!("unexpected: {err:?}"),
    };
    client.close().await.unwrap();
    allowed
}

#[tokio::test]
async fn broken_policy_keeps_the_old_one_and_a_good_change_applies_without_restart() {
    let workdir = tempfile::tempdir().unwrap();
    let idp = start_idp(workdir.path()).await;
    let policy = workdir.path().join("scopes.yml");
    std::fs::copy(repo_root().join("scopes.yml"), &policy).unwrap();
    let rig = Rig::start(
        idp,
        workdir,
        RigOptions {
            scopes_file: Some(policy.clone()),
            env: vec![("AUTH_SCOPES_POLL_SECONDS", "1".into())],
            wait_ready: true,
            ..Default::default()
        },
    )
    .await;
    let operator = rig.idp.token("operator-agent").await;
    assert!(!operator_may_print(&rig, &operator).await, "shipped policy");

    // A broken file: the reload is refused, logged with the reason, and the old policy stays.
    replace_file(
        &policy,
        "group_mappings:\n  mcp-registry-operator: [mcp-servers-restricted/execute\n",
    );
    eventually(
        Duration::from_secs(10),
        "the refused reload is logged",
        || async {
            rig.log_lines().iter().any(|line| {
                line["level"] == "ERROR"
                    && line["message"]
                        .as_str()
                        .is_some_and(|m| m.contains("policy reload refused"))
            })
        },
    )
    .await;
    let refused = rig
        .log_lines()
        .into_iter()
        .find(|line| line["level"] == "ERROR")
        .unwrap();
    eprintln!("refused reload: {refused}");
    let error = refused["error"].as_str().unwrap_or_default();
    assert!(
        error.contains(&policy.display().to_string()) && error.contains("line"),
        "the error names the file and the line: {refused}"
    );
    assert_eq!(rig.readyz().await, 200, "still ready on the old policy");
    assert!(
        !operator_may_print(&rig, &operator).await,
        "old policy in force"
    );
    let client = rig.connect("fininfo", &operator).await.unwrap();
    let args = json!({"stock_ticker":"AAPL","from_date":"2026-01-01","to_date":"2026-01-31"});
    client
        .call_tool("get_stock_aggregates", args)
        .await
        .expect("old policy still allows the operator's tool");
    client.close().await.unwrap();

    // A good change: in force within the poll period, no restart.
    replace_file(&policy, &widened_policy());
    let changed_at = Instant::now();
    eventually(
        Duration::from_secs(10),
        "the new policy applies",
        || async { operator_may_print(&rig, &operator).await },
    )
    .await;
    eprintln!("policy change in force after {:?}", changed_at.elapsed());
    assert!(rig.auth.process.output().contains("policy reloaded"));
}

#[tokio::test]
async fn sighup_reloads_the_policy_without_restart() {
    let workdir = tempfile::tempdir().unwrap();
    let idp = start_idp(workdir.path()).await;
    let policy = workdir.path().join("scopes.yml");
    std::fs::copy(repo_root().join("scopes.yml"), &policy).unwrap();
    let rig = Rig::start(
        idp,
        workdir,
        RigOptions {
            scopes_file: Some(policy.clone()),
            // No polling: only the signal reloads.
            env: vec![("AUTH_SCOPES_POLL_SECONDS", "0".into())],
            wait_ready: true,
            ..Default::default()
        },
    )
    .await;
    let operator = rig.idp.token("operator-agent").await;
    let pid = rig.auth.process.id();
    replace_file(&policy, &widened_policy());
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        !operator_may_print(&rig, &operator).await,
        "no reload without the signal"
    );
    rig.auth.process.signal("HUP");
    eventually(
        Duration::from_secs(5),
        "SIGHUP applies the new policy",
        || async { operator_may_print(&rig, &operator).await },
    )
    .await;
    assert_eq!(rig.auth.process.id(), pid, "same process");
}

// ---------------------------------------------------------------------------------------------
// Key rotation under load
// ---------------------------------------------------------------------------------------------

/// What a request of the rotation load expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Expect {
    /// Admin calls an allowed tool: 200 from the MCP server.
    Allowed,
    /// Admin calls the tool nobody may call: 403.
    ForbiddenTool,
    /// Read-only client calls a tool: 403.
    ReaderCall,
    /// A real token's claims under another token's signature: 401.
    BadSignature,
}

impl Expect {
    fn status(self) -> u16 {
        match self {
            Expect::Allowed => 200,
            Expect::ForbiddenTool | Expect::ReaderCall => 403,
            Expect::BadSignature => 401,
        }
    }
}

/// A token whose claims are `claims_of`'s, under `signed`'s header and signature.
fn spliced(signed: &str, claims_of: &str) -> String {
    let parts: Vec<&str> = signed.split('.').collect();
    let claims = claims_of.split('.').nth(1).unwrap();
    format!("{}.{claims}.{}", parts[0], parts[2])
}

#[tokio::test]
async fn key_rotation_under_load_has_no_false_denial_and_no_false_allow() {
    let workdir = tempfile::tempdir().unwrap();
    let idp = start_idp(workdir.path()).await;
    let rig = Arc::new(
        Rig::start(
            idp,
            workdir,
            RigOptions {
                wait_ready: true,
                ..Default::default()
            },
        )
        .await,
    );
    let admin = rig.idp.token("admin-agent").await;
    let reader = rig.idp.token("readonly-agent").await;
    // One MCP session; the gateway checks every request on it with the token it carries.
    let answer = post("/fininfo/mcp", &admin, initialize("s").to_string())
        .send(rig.nginx.addr)
        .await;
    let session = answer.header("mcp-session-id").unwrap().to_owned();
    let initialized = json!({"jsonrpc":"2.0","method":"notifications/initialized"});
    let answer = post("/fininfo/mcp", &admin, initialized.to_string())
        .header("Mcp-Session-Id", &session)
        .send(rig.nginx.addr)
        .await;
    assert_eq!(answer.status, 202);

    // Tokens in use: every generation stays valid (the IdP keeps publishing old keys).
    let tokens = Arc::new(Mutex::new(vec![(admin.clone(), reader.clone())]));
    let stop = Arc::new(AtomicBool::new(false));
    let ids = Arc::new(AtomicU64::new(100));
    let workers: Vec<_> = (0..4)
        .map(|worker| {
            let (rig, tokens, stop, ids, session) = (
                rig.clone(),
                tokens.clone(),
                stop.clone(),
                ids.clone(),
                session.clone(),
            );
            tokio::spawn(async move {
                let mut outcomes: Vec<(Expect, u16)> = Vec::new();
                let mut turn = worker;
                while !stop.load(Ordering::Relaxed) && outcomes.len() < 2000 {
                    let (admin, reader) = {
                        let tokens = tokens.lock().unwrap();
                        tokens[turn % tokens.len()].clone()
                    };
                    turn += 1;
                    let expect = [
                        Expect::Allowed,
                        Expect::ForbiddenTool,
                        Expect::ReaderCall,
                        Expect::BadSignature,
                    ][turn % 4];
                    let id = ids.fetch_add(1, Ordering::Relaxed);
                    let (token, body) = match expect {
                        Expect::Allowed => (admin, tools_call(id, "print_stock_data")),
                        Expect::ForbiddenTool => (admin, tools_call(id, "delete_all_portfolios")),
                        Expect::ReaderCall => (reader, tools_call(id, "get_stock_aggregates")),
                        Expect::BadSignature => {
                            (spliced(&reader, &admin), tools_call(id, "print_stock_data"))
                        }
                    };
                    let answer = post("/fininfo/mcp", &token, body.to_string())
                        .header("Mcp-Session-Id", &session)
                        .send(rig.nginx.addr)
                        .await;
                    outcomes.push((expect, answer.status));
                }
                outcomes
            })
        })
        .collect();

    // Two rotations under load, 6 s apart (an unknown kid refreshes the key set at most once
    // per 5 s): the first request with a new kid fetches the set, concurrent ones share it.
    let mut kids = Vec::new();
    for _ in 0..2 {
        tokio::time::sleep(Duration::from_millis(1000)).await;
        kids.push(rig.idp.rotate(false).await);
        let admin = rig.idp.token("admin-agent").await;
        let reader = rig.idp.token("readonly-agent").await;
        tokens.lock().unwrap().push((admin, reader));
        tokio::time::sleep(Duration::from_millis(5000)).await;
    }
    tokio::time::sleep(Duration::from_millis(1000)).await;
    stop.store(true, Ordering::Relaxed);
    let mut outcomes = Vec::new();
    for worker in workers {
        outcomes.extend(worker.await.unwrap());
    }

    let mut tally: BTreeMap<(Expect, u16), usize> = BTreeMap::new();
    for outcome in &outcomes {
        *tally.entry(*outcome).or_insert(0) += 1;
    }
    eprintln!(
        "rotation under load: {} requests, (expected, got) -> count: {tally:?}",
        outcomes.len()
    );
    let wrong: Vec<_> = tally
        .iter()
        .filter(|((expect, status), _)| expect.status() != *status)
        .collect();
    assert!(wrong.is_empty(), "false denials or allows: {wrong:?}");
    for expect in [
        Expect::Allowed,
        Expect::ForbiddenTool,
        Expect::ReaderCall,
        Expect::BadSignature,
    ] {
        assert!(
            tally.keys().any(|(e, _)| *e == expect),
            "no {expect:?} request was made"
        );
    }
    let log = rig.auth.process.output();
    for kid in &kids {
        assert!(log.contains(kid.as_str()), "key {kid} was installed");
    }
    // Only allowed calls reached the MCP server.
    let reached_tools = rig.fininfo.log().called_names();
    let allowed = tally.get(&(Expect::Allowed, 200)).copied().unwrap_or(0);
    assert_eq!(reached_tools.len(), allowed);
    assert!(reached_tools.iter().all(|tool| tool == "print_stock_data"));
}
