//! The `tools/list` filter's rows of the scenario table: one stack per gateway for all of them
//! (IdP, auth-server, the gateway, the rmcp demo servers, an MCP server on the official Python
//! SDK, and the list lab for the answer shapes), every row through real clients or raw
//! JSON-RPC.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

use crate::list_lab::{self, Shape};
use crate::mcp_client::{ConnectOptions, McpClient};
use crate::stack::{
    Front, GatewayStack, Process, Profile, free_port, repo_root, require, wait_for_port,
};

/// fininfo's tools every role of the example policy sees: all but `delete_all_portfolios`,
/// which no entry names.
const FININFO_LISTED: [&str; 2] = ["get_stock_aggregates", "print_stock_data"];
const CURRENTTIME_LISTED: [&str; 2] = ["countdown", "current_time_by_timezone"];

/// The servers the filter rows add: the lab and the Python SDK server get fininfo's entries.
const MIRRORS_OF_FININFO: [&str; 2] = ["lab", "pyfin"];

/// The shipped scopes.yml, with each fininfo entry repeated for the lab and the Python server:
/// a caller sees on them what it sees on fininfo. Written into `dir`.
fn policy_with_mirrors(dir: &Path) -> PathBuf {
    let shipped = std::fs::read_to_string(repo_root().join("scopes.yml")).expect("scopes.yml");
    let mut policy: serde_norway::Value = serde_norway::from_str(&shipped).expect("YAML");
    for (_, entries) in policy.as_mapping_mut().expect("a mapping").iter_mut() {
        let Some(entries) = entries.as_sequence_mut() else {
            continue;
        };
        let mirrors: Vec<serde_norway::Value> = entries
            .iter()
            .filter(|entry| entry.get("server").and_then(|s| s.as_str()) == Some("fininfo"))
            .flat_map(|entry| {
                MIRRORS_OF_FININFO.map(|server| {
                    let mut copy = entry.clone();
                    copy["server"] = server.into();
                    copy
                })
            })
            .collect();
        entries.extend(mirrors);
    }
    let path = dir.join("scopes-with-mirrors.yml");
    std::fs::write(&path, serde_norway::to_string(&policy).expect("YAML")).expect("policy");
    path
}

/// integration-tests/python/fininfo_fastmcp.py (FastMCP, event-stream answers) on a free port.
fn start_python_server(workdir: &Path) -> (Process, SocketAddr) {
    let python = repo_root().join(".venv/bin/python");
    require(
        "the Python MCP SDK in .venv",
        python.exists(),
        "python3 -m venv .venv && .venv/bin/pip install -r integration-tests/python/requirements.txt",
    );
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let mut command = Command::new(python);
    command
        .arg(repo_root().join("integration-tests/python/fininfo_fastmcp.py"))
        .args(["--port", &addr.port().to_string()]);
    let process = Process::spawn("pyfin", &mut command, workdir.join("pyfin.log"));
    (process, addr)
}

/// The sorted names of a tools/list result.
fn names(result: &Value) -> Vec<String> {
    let mut names: Vec<String> = result["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("no tools in {result}"))
        .iter()
        .map(|tool| tool["name"].as_str().expect("a name").to_owned())
        .collect();
    names.sort();
    names
}

fn strings(names: &[&str]) -> Vec<String> {
    names.iter().map(|name| (*name).to_owned()).collect()
}

fn list_call(id: Value) -> Value {
    json!({"jsonrpc":"2.0","id":id,"method":"tools/list"})
}

/// An answer as the client got it.
struct Answer {
    status: u16,
    content_type: String,
    content_encoding: Option<String>,
    text: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("{e}: not JSON: {}", self.text))
    }

    /// The data of each event, for an event stream.
    fn events(&self) -> Vec<(Option<String>, Value)> {
        self.text
            .split("\n\n")
            .filter(|event| !event.trim().is_empty())
            .map(|event| {
                let field = |name: &str| {
                    event
                        .lines()
                        .find_map(|line| line.strip_prefix(name))
                        .map(|value| value.trim_start().to_owned())
                };
                let data = field("data:").unwrap_or_else(|| panic!("no data in {event:?}"));
                (
                    field("id:"),
                    serde_json::from_str(&data).expect("JSON data"),
                )
            })
            .collect()
    }

    /// Fails when the answer names a tool the caller may not see.
    fn hides(&self, hidden: &[&str], what: &str) {
        for tool in hidden {
            assert!(
                !self.text.contains(tool),
                "{what}: hidden tool {tool} in {}",
                self.text
            );
        }
    }

    /// The reason of a refusal for the call `id`.
    fn refusal_reason(&self, id: Value, what: &str) -> String {
        let body = self.json();
        assert_eq!(body["id"], id, "{what}: {body}");
        assert_eq!(body["error"]["code"], -32603, "{what}: {body}");
        body["error"]["data"]["reason"]
            .as_str()
            .unwrap_or_else(|| panic!("{what}: no reason in {body}"))
            .to_owned()
    }
}

async fn post(stack: &GatewayStack, path: &str, token: &str, body: &Value) -> Answer {
    post_with(stack, path, token, body, &[]).await
}

async fn post_with(
    stack: &GatewayStack,
    path: &str,
    token: &str,
    body: &Value,
    headers: &[(&str, &str)],
) -> Answer {
    let mut request = reqwest::Client::new()
        .post(format!("http://{}{path}", stack.gateway.addr()))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("x-authorization", format!("Bearer {token}"))
        .body(body.to_string());
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("gateway answers");
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
    };
    let content_type = header("content-type").unwrap_or_default();
    let content_encoding = header("content-encoding");
    let status = response.status().as_u16();
    let bytes = response.bytes().await.expect("a body");
    Answer {
        status,
        content_type,
        content_encoding,
        text: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

fn lab_path(shape: Shape) -> String {
    format!("/lab{}", shape.path())
}

/// Every caller sees in `tools/list` only the tools it may use — each example role on both demo
/// servers and on a Python SDK server, JSON and event-stream answers, pages, a batch, a list of
/// thousands — with `cacheScope: "private"`; an answer the filter cannot read (compressed
/// against the gateway's request, not JSON, an error listing tools, over the bound) reaches
/// the client as a JSON-RPC error naming why, never with a hidden tool in it; a hidden tool is
/// still a 403 on `tools/call`; and the guide's client (langchain-mcp-adapters) lists a
/// reader's tools.
pub async fn tools_list_shows_each_caller_only_the_tools_it_may_use(front: Front) {
    let own = tempfile::tempdir().expect("temp dir");
    let policy = policy_with_mirrors(own.path());
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| {
            l.set_nonblocking(true)?;
            tokio::net::TcpListener::from_std(l)
        })
        .expect("listener");
    let lab = list_lab::spawn_lab(listener).await;
    let (_python, python_addr) = start_python_server(own.path());
    wait_for_port(python_addr, "the Python MCP server").await;
    let policy_path = policy.display().to_string();
    let stack = GatewayStack::start_with_servers(
        front,
        Profile::Oidc,
        &[("AUTH_SCOPES_FILE", policy_path.as_str())],
        &[("lab", lab.addr()), ("pyfin", python_addr)],
    )
    .await;

    roles_see_their_tools_on_every_server(&stack).await;
    let admin = stack.idp.token("admin-agent").await;
    answer_shapes_are_filtered(&stack, &admin, &lab).await;
    unreadable_answers_are_withheld(&stack, &admin).await;

    // Listed or not, a tool the caller may not call is a 403 that never reaches the server.
    let call = json!({"jsonrpc":"2.0","id":9,"method":"tools/call",
        "params":{"name":"delete_all_portfolios","arguments":{}}});
    let answer = post(&stack, &lab_path(Shape::Json), &admin, &call).await;
    assert_eq!(answer.status, 403, "{}", answer.text);
    assert!(
        lab.log().requests_with_method("tools/call").is_empty(),
        "a denied call reached the lab"
    );

    the_guides_client_lists_a_readers_tools(&stack).await;
    decision_log_has_a_line_per_answer(&stack, front);
}

/// Each example role, and a token with one scope, lists exactly its tools on both demo servers
/// (rmcp, event-stream answers) and on the Python SDK server (FastMCP).
async fn roles_see_their_tools_on_every_server(stack: &GatewayStack) {
    let callers = [
        ("admin", stack.idp.token("admin-agent").await),
        ("read-only", stack.idp.token("readonly-agent").await),
        ("operator", stack.idp.token("operator-agent").await),
        (
            // Its entry allows tools/list on every server and names no tool.
            "unrestricted/read only",
            stack
                .idp
                .token_with("scoped-agent", Some("mcp-servers-unrestricted/read"))
                .await,
        ),
        (
            "restricted/execute only",
            stack
                .idp
                .token_with("scoped-agent", Some("mcp-servers-restricted/execute"))
                .await,
        ),
    ];
    for (role, token) in &callers {
        let (fininfo, currenttime): (&[&str], &[&str]) = match *role {
            "unrestricted/read only" => (&[], &[]),
            "restricted/execute only" => (&["get_stock_aggregates"], &CURRENTTIME_LISTED),
            _ => (&FININFO_LISTED, &CURRENTTIME_LISTED),
        };
        for (server, expected) in [
            ("fininfo", fininfo),
            ("currenttime", currenttime),
            ("pyfin", fininfo),
        ] {
            let client = McpClient::connect_with(
                &stack.url(server),
                ConnectOptions::default().ingress_token(token),
            )
            .await
            .unwrap_or_else(|e| panic!("{role} initializes {server}: {e}"));
            let listed = client
                .tool_names()
                .await
                .unwrap_or_else(|e| panic!("{role} lists {server}: {e}"));
            assert_eq!(listed, strings(expected), "{role} on {server}");
            client.close().await.unwrap();
        }
    }
}

/// JSON, event stream, pages, a batch, a compressed answer the gateway avoided, thousands of
/// tools: each list filtered, everything else kept.
async fn answer_shapes_are_filtered(stack: &GatewayStack, admin: &str, lab: &list_lab::RunningLab) {
    let hidden = ["delete_all_portfolios", "lab_internal_tool"];

    let answer = post(stack, &lab_path(Shape::Json), admin, &list_call(json!(1))).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert!(answer.content_type.starts_with("application/json"));
    let result = &answer.json()["result"];
    assert_eq!(names(result), strings(&FININFO_LISTED), "JSON");
    assert_eq!(result["cacheScope"], "private", "JSON: {result}");
    assert_eq!(result["ttlMs"], 60000, "JSON: {result}");
    answer.hides(&hidden, "JSON");

    let answer = post(stack, &lab_path(Shape::Sse), admin, &list_call(json!("s"))).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert!(answer.content_type.starts_with("text/event-stream"));
    let events = answer.events();
    assert_eq!(events.len(), 2, "{}", answer.text);
    assert_eq!(
        events[0].0.as_deref(),
        Some("ev-1"),
        "the notification first"
    );
    assert_eq!(events[0].1["method"], "notifications/message");
    assert_eq!(events[1].0.as_deref(), Some("ev-2"));
    assert_eq!(events[1].1["id"], "s");
    assert_eq!(
        names(&events[1].1["result"]),
        strings(&FININFO_LISTED),
        "SSE"
    );
    assert_eq!(events[1].1["result"]["cacheScope"], "private");
    answer.hides(&hidden, "SSE");

    let first = post(stack, &lab_path(Shape::Paged), admin, &list_call(json!(1))).await;
    let first = first.json();
    assert_eq!(names(&first["result"]), ["get_stock_aggregates"], "page 1");
    assert_eq!(
        first["result"]["nextCursor"], "page-2",
        "the cursor is kept"
    );
    assert_eq!(first["result"]["cacheScope"], "private");
    let next = json!({"jsonrpc":"2.0","id":2,"method":"tools/list","params":{"cursor":"page-2"}});
    let second = post(stack, &lab_path(Shape::Paged), admin, &next)
        .await
        .json();
    assert_eq!(names(&second["result"]), ["print_stock_data"], "page 2");
    assert!(second["result"].get("nextCursor").is_none(), "{second}");
    assert_eq!(second["result"]["cacheScope"], "private");

    let batch = json!([list_call(json!(1)), {"jsonrpc":"2.0","id":"two","method":"ping"}]);
    let answer = post(stack, &lab_path(Shape::Json), admin, &batch).await;
    let answers = answer.json();
    assert_eq!(answers[0]["id"], 1, "{answers}");
    assert_eq!(
        names(&answers[0]["result"]),
        strings(&FININFO_LISTED),
        "batch"
    );
    assert_eq!(answers[1], json!({"jsonrpc":"2.0","id":"two","result":{}}));
    answer.hides(&hidden, "batch");

    // The client accepts gzip; the gateway asks the server for an uncompressed list.
    lab.log().clear();
    let answer = post_with(
        stack,
        &lab_path(Shape::Gzip),
        admin,
        &list_call(json!(1)),
        &[("accept-encoding", "gzip")],
    )
    .await;
    assert_eq!(answer.content_encoding, None, "{}", answer.text);
    assert_eq!(names(&answer.json()["result"]), strings(&FININFO_LISTED));
    let asked = lab.log().requests();
    assert_eq!(
        asked
            .last()
            .and_then(|r| r.header("accept-encoding"))
            .as_deref(),
        Some("identity"),
        "the gateway asked for an uncompressed answer"
    );

    let answer = post(stack, &lab_path(Shape::Huge), admin, &list_call(json!(1))).await;
    assert_eq!(answer.status, 200);
    assert_eq!(
        names(&answer.json()["result"]),
        strings(&FININFO_LISTED),
        "{} tools",
        list_lab::HUGE_EXTRA_TOOLS + list_lab::TOOLS.len()
    );
    answer.hides(&["generated_tool_", "delete_all_portfolios"], "huge");
}

/// Answers the filter cannot read reach the client as a JSON-RPC error that names why.
async fn unreadable_answers_are_withheld(stack: &GatewayStack, admin: &str) {
    let hidden = ["delete_all_portfolios", "lab_internal_tool"];
    for (shape, status, reason) in [
        (Shape::GzipAlways, 200, "content_encoding"),
        (Shape::Garbage, 200, "not_json"),
        (Shape::ErrorListing, 500, "error_status_lists_tools"),
        (Shape::TooLarge, 200, "too_large"),
    ] {
        let what = format!("{shape:?}");
        let answer = post(stack, &lab_path(shape), admin, &list_call(json!(7))).await;
        assert_eq!(answer.status, status, "{what}: {}", answer.text);
        assert_eq!(answer.content_encoding, None, "{what}");
        assert_eq!(answer.refusal_reason(json!(7), &what), reason, "{what}");
        answer.hides(&hidden, &what);
    }
}

/// examples/agent.py — langchain-mcp-adapters' MultiServerMCPClient, in its own venv — lists a
/// read-only caller's tools through the gateway.
async fn the_guides_client_lists_a_readers_tools(stack: &GatewayStack) {
    let python = repo_root().join(".venv-agent/bin/python");
    require(
        "the agent example's venv (.venv-agent with langchain-mcp-adapters)",
        python.exists(),
        "run scripts/setup.sh",
    );
    let reader = stack.idp.token("readonly-agent").await;
    let dir = tempfile::tempdir().expect("temp dir");
    let ingress = dir.path().join("ingress.json");
    std::fs::write(&ingress, json!({"access_token": reader}).to_string()).expect("ingress");
    let output = tokio::process::Command::new(python)
        .arg(repo_root().join("examples/agent.py"))
        .arg("--ingress")
        .arg(&ingress)
        .args(["--gateway-url", &format!("http://{}", stack.gateway.addr())])
        .args([
            "--server",
            "fininfo",
            "--server",
            "currenttime",
            "--server",
            "pyfin",
        ])
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(std::time::Duration::from_secs(120), output)
        .await
        .expect("agent.py finished in time")
        .expect("agent.py runs");
    assert!(
        output.status.success(),
        "agent.py: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_slice(&output.stdout).expect("one JSON report");
    assert_eq!(
        report["tools"]["fininfo"],
        json!(FININFO_LISTED),
        "{report}"
    );
    assert_eq!(report["tools"]["currenttime"], json!(CURRENTTIME_LISTED));
    assert_eq!(report["tools"]["pyfin"], json!(FININFO_LISTED));
}

/// One decision line per filtered answer: who, server, tools listed and hidden, result,
/// reason.
fn decision_log_has_a_line_per_answer(stack: &GatewayStack, front: Front) {
    let log = stack.auth.process.output();
    let lines: Vec<Value> = log
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line["target"] == "decision" && line["method"] == "tools/list")
        .filter(|line| line["result"] != "allow")
        .collect();
    let filtered = lines
        .iter()
        .find(|line| line["result"] == "filtered" && line["server"] == "lab")
        .unwrap_or_else(|| panic!("no filtered lab answer in the log:\n{log}"));
    assert_eq!(filtered["who"], "admin-agent");
    assert_eq!(filtered["listed"], 2, "{filtered}");
    assert_eq!(filtered["hidden"], 2, "{filtered}");
    assert_eq!(filtered["reason"], "tools_list_filtered");
    assert!(
        lines
            .iter()
            .any(|line| line["result"] == "withheld" && line["reason"] == "content_encoding"),
        "no withheld answer in the log"
    );
    if front == Front::Nginx {
        assert!(
            lines
                .iter()
                .all(|line| line["request_id"].as_str().is_some_and(|id| id.len() == 32)),
            "filter lines without nginx's request id"
        );
    }
}
