//! The binary's command line: start-up refusals, `check` and `explain`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Output};

fn auth_server(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_auth-server"));
    command.args(args).env_clear();
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().expect("auth-server runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn scopes_file() -> String {
    // At run time: a binary reused from a build cache shared by several clones must read this
    // clone's file.
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into())
        .join("../scopes.yml")
        .display()
        .to_string()
}

const OIDC: [(&str, &str); 2] = [
    ("AUTH_PROVIDER", "oidc"),
    ("AUTH_ISSUER", "https://idp.example/realms/mcp"),
];

#[test]
fn bad_configuration_stops_the_start_with_one_line_naming_the_variable() {
    let output = auth_server(
        &[],
        &[
            ("AUTH_PROVIDER", "oidc"),
            ("AUTH_ISSUER", "https://x"),
            ("AUTH_MAX_BODY_BYTES", "lots"),
        ],
    );
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("AUTH_MAX_BODY_BYTES"), "{stderr}");
}

#[test]
fn policy_that_does_not_load_stops_the_start_with_file_line_and_column() {
    let dir = tempdir();
    let file = dir.join("scopes.yml");
    std::fs::write(&file, "group_mappings:\n  g: [missing/scope]\n").unwrap();
    let mut env = OIDC.to_vec();
    let path = file.display().to_string();
    env.push(("AUTH_SCOPES_FILE", &path));
    let output = auth_server(&[], &env);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&path) && stderr.contains("line 2 column"),
        "{stderr}"
    );
}

#[test]
fn check_summarises_a_valid_setup_and_fails_on_a_broken_one() {
    let ok = auth_server(&["check", "--scopes", &scopes_file()], &OIDC);
    assert!(ok.status.success(), "{}", stdout(&ok));
    let text = stdout(&ok);
    assert!(
        text.contains("configuration ok") && text.contains("issuer default (oidc)"),
        "{text}"
    );
    assert!(
        text.contains("3 groups") && text.contains("servers: *, currenttime, fininfo"),
        "{text}"
    );

    let dir = tempdir();
    let broken = dir.join("broken.yml");
    std::fs::write(
        &broken,
        "s:\n  - server: a\n    methods: [ping]\n    tools: [get_*]\n",
    )
    .unwrap();
    let failed = auth_server(&["check", "--scopes", &broken.display().to_string()], &OIDC);
    assert_eq!(failed.status.code(), Some(1));
    assert!(stdout(&failed).contains("line 4"), "{}", stdout(&failed));
}

#[test]
fn explain_prints_the_entry_that_allows_or_why_none_does() {
    let allow = auth_server(
        &[
            "explain",
            "--groups",
            "mcp-registry-operator",
            "--server",
            "fininfo",
            "--method",
            "tools/call",
            "--tool",
            "get_stock_aggregates",
            "--scopes",
            &scopes_file(),
        ],
        &[],
    );
    assert!(allow.status.success());
    assert!(
        stdout(&allow).contains("ALLOW by entry mcp-servers-restricted/execute[1]"),
        "{}",
        stdout(&allow)
    );

    let deny = auth_server(
        &[
            "explain",
            "--groups",
            "mcp-registry-user",
            "--server",
            "fininfo",
            "--method",
            "tools/call",
            "--tool",
            "get_stock_aggregates",
            "--scopes",
            &scopes_file(),
        ],
        &[],
    );
    assert_eq!(deny.status.code(), Some(1));
    let text = stdout(&deny);
    assert!(
        text.contains("does not allow method `tools/call`"),
        "{text}"
    );
    assert!(text.contains("scopes that would allow it: mcp-servers-restricted/execute mcp-servers-unrestricted/execute"), "{text}");
}

#[test]
fn version_and_help_work() {
    let version = auth_server(&["--version"], &[]);
    assert!(version.status.success());
    assert!(stdout(&version).starts_with("auth-server "));
    let help = auth_server(&["--help"], &[]);
    assert!(stdout(&help).contains("AUTH_SCOPES_FILE"));
}

#[test]
fn logs_written_to_a_pipe_carry_no_terminal_colour_codes() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let scopes = scopes_file();
    let mut server = Command::new(env!("CARGO_BIN_EXE_auth-server"))
        .env_clear()
        .envs(OIDC)
        .env("AUTH_LISTEN", &listen)
        .env("AUTH_SCOPES_FILE", &scopes)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("auth-server starts");
    // The "starting" line is written before the listener opens.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::net::TcpStream::connect(&listen).is_err() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    server.kill().unwrap();
    let output = server.wait_with_output().unwrap();
    let logs = stdout(&output);
    assert!(logs.contains("starting"), "no start line in: {logs}");
    assert!(
        !logs.contains('\u{1b}'),
        "escape codes in piped logs: {logs:?}"
    );
}

fn tempdir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "auth-server-cli-{}-{}",
        std::process::id(),
        rand_suffix()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}
