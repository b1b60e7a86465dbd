//! The hostile-input catalogue end to end: one row per attack a client can mount, sent as raw
//! HTTP through nginx (deploy/nginx) to the auth-server binary, with tokens from the real IdP
//! (oidc-provider) and the real rmcp MCP servers upstream. Each row asserts the exact status the
//! client gets, whether the request reached an MCP server (never, for a denial), and that every
//! denial answers JSON.
//!
//! Requests are written byte for byte (`RawRequest`): a path with `..`, `//` or `%2f`, a
//! repeated header or a BOM reaches nginx exactly as an attacker would send it, where an HTTP
//! client library would have normalised it away.
//!
//! Forged tokens are made with the IdP's own private key (its key file in the stack's workdir),
//! by node's `crypto`: each changes one thing in a real token (a claim, the header, the
//! algorithm) and is verified by auth-server against the real, fetched key set. The attacks that
//! need keys no attacker has, or a second configuration, are in the decision-level table,
//! auth-server/tests/hostile_catalogue.rs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use integration_tests::stack::{
    COGNITO_POOL, COGNITO_REGION, GatewayStack, Idp, IdpOptions, Profile, RawRequest, RawResponse,
};
use serde_json::{Value, json};

/// Whether a row's request may reach an MCP server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reach {
    /// Denied: no MCP server sees a byte of it.
    Nowhere,
    /// Allowed: exactly this server gets it, once, with the body unchanged.
    Upstream(&'static str),
}

/// One attack: the request, the exact status, and where the request may go.
struct Row {
    attack: &'static str,
    request: RawRequest,
    status: u16,
    reach: Reach,
    /// For allowed rows: a header the upstream must see, with this value.
    upstream_header: Option<(&'static str, String)>,
}

impl Row {
    fn new(attack: &'static str, request: RawRequest, status: u16) -> Row {
        Row {
            attack,
            request,
            status,
            reach: Reach::Nowhere,
            upstream_header: None,
        }
    }

    fn reaches(mut self, server: &'static str) -> Row {
        self.reach = Reach::Upstream(server);
        self
    }

    fn upstream_sees(mut self, name: &'static str, value: &str) -> Row {
        self.upstream_header = Some((name, value.to_owned()));
        self
    }
}

/// A JSON-RPC POST to `target` with `token` as the ingress token.
fn post(target: &str, token: &str, body: impl Into<Vec<u8>>) -> RawRequest {
    RawRequest::post(target, body).header("X-Authorization", &format!("Bearer {token}"))
}

fn method(name: &str) -> String {
    json!({"jsonrpc":"2.0","id":1,"method":name}).to_string()
}

fn call(tool: &str) -> String {
    json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":tool,"arguments":{}}})
        .to_string()
}

/// `tools/call` with the tool name written into the JSON text as given (escapes stay escapes).
fn call_raw_name(name: &str) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"{name}","arguments":{{}}}}}}"#
    )
}

fn batch(count: usize, last: Option<Value>) -> String {
    let mut elements: Vec<Value> = (0..count)
        .map(|id| json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":{"name":"print_stock_data"}}))
        .collect();
    elements.extend(last);
    Value::Array(elements).to_string()
}

/// A real MCP session on `server` (initialize + initialized), so that an allowed request gets
/// the MCP server's own 200 rather than its "session required" 400.
async fn session(gateway: SocketAddr, server: &str, token: &str) -> String {
    let initialize = json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{
        "protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"catalogue","version":"1"}}});
    let answer = post(&format!("/{server}/mcp"), token, initialize.to_string())
        .send(gateway)
        .await;
    assert_eq!(answer.status, 200, "initialize {server}: {}", answer.text());
    let id = answer
        .header("mcp-session-id")
        .expect("Mcp-Session-Id")
        .to_owned();
    let initialized = post(
        &format!("/{server}/mcp"),
        token,
        json!({"jsonrpc":"2.0","method":"notifications/initialized"}).to_string(),
    )
    .header("Mcp-Session-Id", &id)
    .send(gateway)
    .await;
    assert_eq!(
        initialized.status,
        202,
        "initialized: {}",
        initialized.text()
    );
    id
}

/// Sends every row in order and checks status, reach and JSON denials; reports all failures.
async fn run(stack: &GatewayStack, rows: Vec<Row>, sessions: &[(&str, String)]) {
    let gateway = stack.gateway.addr();
    let mut failures = Vec::new();
    for row in &rows {
        let before = (stack.currenttime.log().len(), stack.fininfo.log().len());
        let mut request = row.request.clone();
        if let Reach::Upstream(server) = row.reach {
            let (_, id) = sessions.iter().find(|(s, _)| *s == server).unwrap();
            request = request.header("Mcp-Session-Id", id);
        }
        let started = Instant::now();
        let answer: RawResponse = request.send(gateway).await;
        let took = started.elapsed();
        let after = (stack.currenttime.log().len(), stack.fininfo.log().len());
        let mut fail = |what: String| failures.push(format!("{}: {what}", row.attack));
        if answer.status != row.status {
            fail(format!(
                "expected {}, got {} {}",
                row.status,
                answer.status,
                answer.text().chars().take(300).collect::<String>()
            ));
        }
        if row.reach == Reach::Nowhere && answer.json().is_none() {
            fail(format!("denial is not JSON: {:?}", answer.text()));
        }
        if took > Duration::from_secs(5) {
            fail(format!("took {took:?}"));
        }
        match row.reach {
            Reach::Nowhere if after != before => {
                fail(format!("reached an MCP server: {before:?} -> {after:?}"));
            }
            Reach::Upstream(server) => {
                let (log, grown, other_grown) = if server == "fininfo" {
                    (stack.fininfo.log(), after.1 - before.1, after.0 - before.0)
                } else {
                    (
                        stack.currenttime.log(),
                        after.0 - before.0,
                        after.1 - before.1,
                    )
                };
                let reached = log.requests();
                match reached.last() {
                    Some(last) if grown == 1 && other_grown == 0 => {
                        if last.body.as_ref() != row.request.body.as_slice() {
                            fail("the upstream got another body than was judged".into());
                        }
                        if let Some((name, value)) = &row.upstream_header
                            && last.header_values(name) != [value.clone()]
                        {
                            fail(format!(
                                "upstream saw {name}: {:?}, expected {value}",
                                last.header_values(name)
                            ));
                        }
                    }
                    _ => fail(format!(
                        "expected exactly one request at {server}: {before:?} -> {after:?}"
                    )),
                }
            }
            Reach::Nowhere => {}
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} rows failed:\n{}",
        failures.len(),
        rows.len(),
        failures.join("\n")
    );
}

/// Re-signs a real token after changing its header and claims (`null` removes a member).
struct Forger {
    keys_file: std::path::PathBuf,
    base_token: String,
}

/// How a forged token is signed.
#[derive(Debug, Clone, Copy)]
enum Signature {
    /// RS256 by the IdP's own signing key: only the changed claims can be wrong.
    IdpKey,
    /// RS256 by a key nobody published.
    FreshKey,
    /// No signature (`alg: none`).
    Empty,
    /// HMAC-SHA-256 keyed with the IdP's public key as PEM, as a confused verifier would.
    HmacWithPublicPem,
    /// The base token's own signature, over the changed header and claims.
    Kept,
}

const FORGE_JS: &str = r#"
const crypto = require('crypto');
const fs = require('fs');
const input = JSON.parse(fs.readFileSync(0, 'utf8'));
const [rawHeader, rawClaims] = input.token.split('.');
const decode = (part) => JSON.parse(Buffer.from(part, 'base64url').toString());
const patch = (object, changes) => {
  for (const [name, value] of Object.entries(changes)) {
    if (value === null) delete object[name]; else object[name] = value;
  }
  return object;
};
const header = patch(decode(rawHeader), input.header);
const claims = patch(decode(rawClaims), input.claims);
const encode = (object) => Buffer.from(JSON.stringify(object)).toString('base64url');
const signingInput = `${encode(header)}.${encode(claims)}`;
const { kid, alg, use, ...privateJwk } = JSON.parse(fs.readFileSync(input.keys_file, 'utf8')).keys[0];
const idpKey = crypto.createPrivateKey({ key: privateJwk, format: 'jwk' });
let signature;
switch (input.signature) {
  case 'IdpKey':
    signature = crypto.sign('sha256', Buffer.from(signingInput), idpKey);
    break;
  case 'FreshKey':
    signature = crypto.sign('sha256', Buffer.from(signingInput),
      crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey);
    break;
  case 'Empty':
    signature = Buffer.alloc(0);
    break;
  case 'Kept':
    signature = Buffer.from(input.token.split('.')[2], 'base64url');
    break;
  case 'HmacWithPublicPem': {
    const pem = crypto.createPublicKey(idpKey).export({ type: 'spki', format: 'pem' });
    signature = crypto.createHmac('sha256', pem).update(signingInput).digest();
    break;
  }
  default:
    throw new Error(`unknown signature ${input.signature}`);
}
process.stdout.write(`${signingInput}.${signature.toString('base64url')}`);
"#;

impl Forger {
    async fn forge(&self, header: Value, claims: Value, signature: Signature) -> String {
        use tokio::io::AsyncWriteExt as _;
        let input = json!({
            "token": self.base_token,
            "header": header,
            "claims": claims,
            "signature": format!("{signature:?}"),
            "keys_file": self.keys_file,
        });
        let mut child = tokio::process::Command::new("node")
            .args(["-e", FORGE_JS])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("node runs (the IdP needs it too)");
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(input.to_string().as_bytes()).await.unwrap();
        drop(stdin);
        let output = child.wait_with_output().await.unwrap();
        assert!(
            output.status.success(),
            "forging failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A token from the IdP's token endpoint for another resource (RFC 8707 `resource`): its `aud`.
async fn token_for_resource(idp: &Idp, client_id: &str, resource: &str) -> String {
    let response = reqwest::Client::new()
        .post(&idp.token_endpoint)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "grant_type=client_credentials&client_id={client_id}&client_secret={client_id}-secret&resource={}",
            resource.replace(':', "%3A").replace('/', "%2F")
        ))
        .send()
        .await
        .unwrap();
    let body: Value = response.json().await.unwrap();
    body["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no token for {resource}: {body}"))
        .to_owned()
}

#[tokio::test]
async fn every_attack_through_nginx_gets_its_exact_status() {
    let stack = GatewayStack::start(
        Profile::Oidc,
        &[(
            "AUTH_CLIENT_IDS",
            "admin-agent,readonly-agent,operator-agent,shortlived-agent",
        )],
    )
    .await;
    let idp = &stack.idp;
    // The short-lived token (2 s) is fetched first and used last, when it has expired.
    let shortlived = idp.token("shortlived-agent").await;
    let expires = Instant::now() + Duration::from_secs(3);
    let admin = idp.token("admin-agent").await;
    let reader = idp.token("readonly-agent").await;
    let operator = idp.token("operator-agent").await;
    let not_allowed_client = idp.token("nogroup-agent").await;
    let other_audience = token_for_resource(idp, "admin-agent", "https://other.example/api").await;
    let forger = Forger {
        keys_file: stack.workdir.path().join("idp-keys.json"),
        base_token: admin.clone(),
    };
    let now = unix_now();
    let forged = |header: Value, claims: Value, signature| {
        let forger = &forger;
        async move { forger.forge(header, claims, signature).await }
    };
    let resigned = forged(json!({}), json!({}), Signature::IdpKey).await;
    let alg_none = forged(json!({"alg": "none"}), json!({}), Signature::Empty).await;
    let hs256 = forged(
        json!({"alg": "HS256"}),
        json!({}),
        Signature::HmacWithPublicPem,
    )
    .await;
    let no_kid = forged(json!({"kid": null}), json!({}), Signature::IdpKey).await;
    let unknown_kid = forged(json!({"kid": "unknown-kid"}), json!({}), Signature::IdpKey).await;
    let other_key = forged(json!({}), json!({}), Signature::FreshKey).await;
    let expired = forged(json!({}), json!({"exp": now - 10}), Signature::IdpKey).await;
    let not_yet = forged(json!({}), json!({"nbf": now + 600}), Signature::IdpKey).await;
    let future_iat = forged(
        json!({}),
        json!({"iat": now + 365 * 86_400}),
        Signature::IdpKey,
    )
    .await;
    let issuer_slash = forged(
        json!({}),
        json!({"iss": format!("{}/", idp.issuer)}),
        Signature::IdpKey,
    )
    .await;
    let issuer_case = forged(
        json!({}),
        json!({"iss": idp.issuer.to_uppercase()}),
        Signature::IdpKey,
    )
    .await;
    let promoted = Forger {
        keys_file: forger.keys_file.clone(),
        base_token: reader.clone(),
    }
    .forge(
        json!({}),
        json!({"groups": ["mcp-registry-admin"]}),
        Signature::Kept,
    )
    .await;
    let sessions = [
        (
            "fininfo",
            session(stack.gateway.addr(), "fininfo", &admin).await,
        ),
        (
            "currenttime",
            session(stack.gateway.addr(), "currenttime", &admin).await,
        ),
    ];
    tokio::time::sleep_until(expires.into()).await;

    let token_row = |attack, token: &str, status| {
        Row::new(
            attack,
            post("/fininfo/mcp", token, method("tools/list")),
            status,
        )
    };
    let rows = vec![
        // --- control rows: what the attacks try to become ---
        token_row("control: admin lists fininfo", &admin, 200).reaches("fininfo"),
        token_row(
            "control: the IdP's token re-signed by the test's forger",
            &resigned,
            200,
        )
        .reaches("fininfo"),
        Row::new(
            "control: operator calls its tool",
            post("/fininfo/mcp", &operator, call("get_stock_aggregates")),
            200,
        )
        .reaches("fininfo"),
        // --- tokens ---
        token_row("alg none", &alg_none, 401),
        token_row("HS256 keyed with the IdP's RSA public key", &hs256, 401),
        token_row("kid missing", &no_kid, 401),
        token_row("kid unknown (a refresh finds nothing)", &unknown_kid, 401),
        token_row("known kid, signed by another key", &other_key, 401),
        token_row(
            "read-only token with its groups raised to admin, its signature kept",
            &promoted,
            401,
        ),
        token_row("exp in the past", &expired, 401),
        token_row("expired IdP token (2 s lifetime)", &shortlived, 401),
        token_row("nbf in the future", &not_yet, 401),
        token_row("iat far in the future", &future_iat, 401),
        token_row("issuer with a trailing slash", &issuer_slash, 401),
        token_row("issuer in other case", &issuer_case, 401),
        token_row(
            "token for another audience (RFC 8707 resource)",
            &other_audience,
            401,
        ),
        token_row("client not in AUTH_CLIENT_IDS", &not_allowed_client, 401),
        token_row("garbage token, 12 KB", &"A".repeat(12 * 1024), 401),
        Row::new(
            "X-Authorization header of 20 KB (nginx's header limit): 431 JSON",
            post("/fininfo/mcp", &"A".repeat(20 * 1024), method("tools/list")),
            431,
        ),
        Row::new(
            "20 headers of 4 KB each, beyond nginx's buffers",
            (0..20).fold(
                post("/fininfo/mcp", &admin, method("tools/list")),
                |r, i| r.header(&format!("X-Pad-{i}"), &"p".repeat(4096)),
            ),
            431,
        ),
        Row::new(
            "120 small headers (beyond auth-server's header count: 431 from actix, relayed)",
            (0..120).fold(
                post("/fininfo/mcp", &admin, method("tools/list")),
                |r, i| r.header(&format!("X-Pad-{i}"), "p"),
            ),
            431,
        ),
        Row::new(
            "two X-Authorization headers",
            post("/fininfo/mcp", &admin, method("tools/list"))
                .header("X-Authorization", &format!("Bearer {reader}")),
            401,
        ),
        Row::new(
            "token in the query string only",
            RawRequest::post(
                &format!("/fininfo/mcp?access_token={admin}"),
                method("tools/list"),
            ),
            401,
        ),
        // --- bodies ---
        Row::new(
            "duplicate `method`",
            post(
                "/fininfo/mcp",
                &reader,
                r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","method":"tools/call","params":{"name":"get_stock_aggregates"}}"#,
            ),
            400,
        ),
        Row::new(
            "duplicate `params`",
            post(
                "/fininfo/mcp",
                &operator,
                r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get_stock_aggregates"},"params":{"name":"delete_all_portfolios"}}"#,
            ),
            400,
        ),
        Row::new(
            "duplicate `params.name`",
            post(
                "/fininfo/mcp",
                &operator,
                r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get_stock_aggregates","name":"delete_all_portfolios"}}"#,
            ),
            400,
        ),
        Row::new(
            "`method` as a number",
            post(
                "/fininfo/mcp",
                &admin,
                r#"{"jsonrpc":"2.0","id":1,"method":7}"#,
            ),
            400,
        ),
        Row::new(
            "`method` as an array",
            post(
                "/fininfo/mcp",
                &admin,
                r#"{"jsonrpc":"2.0","id":1,"method":["tools/list"]}"#,
            ),
            400,
        ),
        Row::new(
            "unicode-escaped allowed tool name: judged decoded, delivered as sent",
            post(
                "/fininfo/mcp",
                &operator,
                call_raw_name(r"get\u005fstock_aggregates"),
            ),
            200,
        )
        .reaches("fininfo"),
        Row::new(
            "unicode-escaped forbidden tool name is judged decoded",
            post(
                "/fininfo/mcp",
                &admin,
                call_raw_name(r"delete\u005fall_portfolios"),
            ),
            403,
        ),
        Row::new(
            "invalid UTF-8: overlong quotes smuggling a second `name` in a skipped string",
            post(
                "/fininfo/mcp",
                &admin,
                [
                    br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"print_stock_data","note":"a"#.as_slice(),
                    b"\xC0\xA2,\xC0\xA2name\xC0\xA2:\xC0\xA2delete_all_portfolios",
                    br#""}}"#,
                ]
                .concat(),
            ),
            400,
        ),
        Row::new(
            "UTF-8 byte order mark before the object",
            post(
                "/fininfo/mcp",
                &admin,
                [b"\xEF\xBB\xBF".as_slice(), method("tools/list").as_bytes()].concat(),
            ),
            400,
        ),
        Row::new(
            "trailing garbage after the object",
            post(
                "/fininfo/mcp",
                &admin,
                format!("{} garbage", method("tools/list")),
            ),
            400,
        ),
        Row::new(
            "a forbidden call appended after an allowed one",
            post(
                "/fininfo/mcp",
                &operator,
                format!(
                    "{}{}",
                    call("get_stock_aggregates"),
                    call("delete_all_portfolios")
                ),
            ),
            400,
        ),
        Row::new(
            "arrays nested 500 000 deep as the body (no stack overflow)",
            post("/fininfo/mcp", &admin, "[".repeat(500_000)),
            400,
        ),
        Row::new(
            "forbidden call with arguments nested 500 000 deep",
            post(
                "/fininfo/mcp",
                &admin,
                format!(
                    r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"delete_all_portfolios","arguments":{}1{}}}}}"#,
                    "[".repeat(500_000),
                    "]".repeat(500_000)
                ),
            ),
            403,
        ),
        Row::new(
            "batch of 100 calls (AUTH_MAX_BATCH) hiding one forbidden call at the end",
            post(
                "/fininfo/mcp",
                &admin,
                batch(
                    99,
                    Some(
                        json!({"jsonrpc":"2.0","id":"x","method":"tools/call","params":{"name":"delete_all_portfolios"}}),
                    ),
                ),
            ),
            403,
        ),
        Row::new(
            "batch of 100 allowed calls: delivered (this MCP server, 2025-06-18, refuses batches)",
            post("/fininfo/mcp", &admin, batch(100, None)),
            415,
        )
        .reaches("fininfo"),
        Row::new(
            "batch of 10 000 allowed calls: over AUTH_MAX_BATCH, 400",
            post("/fininfo/mcp", &admin, batch(10_000, None)),
            400,
        ),
        Row::new(
            // Allowed call by call, but X-Method and X-Tool-Name would take ~20 KB, more than
            // the identity headers may (headers::MAX_IDENTITY_BYTES): a 400 that says so,
            // where a gateway would have cut the answer off with a misleading 503.
            "batch of 40 calls with 500-byte tool names: too wide for the gateway's headers, 400",
            post("/currenttime/mcp", &admin, {
                let tool = "t".repeat(500);
                let calls: Vec<Value> = (0..40)
                    .map(|id| json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":{"name":tool}}))
                    .collect();
                Value::Array(calls).to_string()
            }),
            400,
        ),
        // --- paths: which server is judged ---
        Row::new(
            "server name in other case: no such upstream (nginx's map is exact)",
            post("/FinInfo/mcp", &admin, method("tools/list")),
            404,
        ),
        Row::new(
            "percent-encoded server name is judged decoded",
            post("/fin%69nfo/mcp", &reader, method("tools/list")),
            200,
        )
        .reaches("fininfo"),
        Row::new(
            "`..` to another server",
            post(
                "/currenttime/../fininfo/mcp",
                &operator,
                call("get_stock_aggregates"),
            ),
            400,
        ),
        Row::new(
            "encoded `..`",
            post(
                "/currenttime/%2e%2e/fininfo/mcp",
                &operator,
                call("get_stock_aggregates"),
            ),
            400,
        ),
        Row::new(
            "`//` before the server",
            post("//fininfo/mcp", &admin, method("tools/list")),
            400,
        ),
        Row::new(
            "encoded `/` between server and path",
            post("/fininfo%2fmcp", &admin, method("tools/list")),
            400,
        ),
        Row::new(
            "encoded `/` and `..` in the server segment",
            post(
                "/currenttime%2f..%2ffininfo/mcp",
                &operator,
                call("get_stock_aggregates"),
            ),
            400,
        ),
        Row::new(
            "query string naming another server",
            post(
                "/fininfo/mcp?server=currenttime&/currenttime/mcp",
                &operator,
                call("current_time_by_timezone"),
            ),
            403,
        ),
        // --- headers ---
        Row::new(
            "Mcp-Method disagreeing with the body",
            post("/fininfo/mcp", &operator, call("delete_all_portfolios"))
                .header("Mcp-Method", "tools/list"),
            400,
        ),
        Row::new(
            "Mcp-Name disagreeing with the body",
            post("/fininfo/mcp", &operator, call("delete_all_portfolios"))
                .header("Mcp-Method", "tools/call")
                .header("Mcp-Name", "get_stock_aggregates"),
            400,
        ),
        Row::new(
            "spoofed X-Scopes and X-User grant nothing",
            post("/fininfo/mcp", &reader, call("get_stock_aggregates"))
                .header("X-Scopes", "mcp-servers-unrestricted/execute")
                .header("X-User", "admin-agent"),
            403,
        ),
        Row::new(
            "spoofed X-User is replaced by the verified one",
            post("/fininfo/mcp", &operator, call("get_stock_aggregates"))
                .header("X-User", "admin-agent")
                .header("X-Scopes", "mcp-servers-unrestricted/execute"),
            200,
        )
        .reaches("fininfo")
        .upstream_sees("x-user", "operator-agent"),
        Row::new(
            "spoofed X-Original-URI naming another server",
            post("/fininfo/mcp", &operator, call("current_time_by_timezone"))
                .header("X-Original-URI", "/currenttime/mcp"),
            403,
        ),
        Row::new(
            "spoofed X-Original-Method",
            post("/fininfo/mcp", &operator, call("get_stock_aggregates"))
                .header("X-Original-Method", "GET"),
            200,
        )
        .reaches("fininfo"),
    ];
    run(&stack, rows, &sessions).await;
}

#[tokio::test]
async fn cognito_attacks_through_nginx_get_their_exact_status() {
    let stack = GatewayStack::start(Profile::Cognito, &[]).await;
    let admin = stack.idp.token("admin-agent").await;
    let id_token = stack.idp.token("idtoken-agent").await;
    // Another pool of the same provider, signing with the same key: only `iss` differs.
    let other_pool = Idp::start(
        IdpOptions {
            cognito: true,
            issuer: Some(format!(
                "https://cognito-idp.{COGNITO_REGION}.amazonaws.com/{COGNITO_REGION}_OtherPool"
            )),
            keys_file: Some(stack.workdir.path().join("idp-keys.json")),
        },
        stack.workdir.path(),
    )
    .await;
    let other_pool_token = other_pool.token("admin-agent").await;
    let sessions = [(
        "fininfo",
        session(stack.gateway.addr(), "fininfo", &admin).await,
    )];
    let tools_list = |token: &str| post("/fininfo/mcp", token, method("tools/list"));
    let rows = vec![
        Row::new("control: Cognito admin", tools_list(&admin), 200).reaches("fininfo"),
        Row::new(
            "control: matching seed headers",
            tools_list(&admin)
                .header("X-User-Pool-Id", COGNITO_POOL)
                .header("X-Region", COGNITO_REGION)
                .header("X-Client-Id", "admin-agent"),
            200,
        )
        .reaches("fininfo")
        .upstream_sees("x-client-id", "admin-agent"),
        Row::new(
            "Cognito id token used as access token",
            tools_list(&id_token),
            401,
        ),
        Row::new(
            "token from another pool (same keys)",
            tools_list(&other_pool_token),
            401,
        ),
        Row::new(
            "X-User-Pool-Id naming another pool",
            tools_list(&admin).header("X-User-Pool-Id", "us-east-1_OtherPool"),
            401,
        ),
        Row::new(
            "X-Region naming another region",
            tools_list(&admin).header("X-Region", "eu-west-1"),
            401,
        ),
        Row::new(
            "X-Client-Id naming another client",
            tools_list(&admin).header("X-Client-Id", "readonly-agent"),
            401,
        ),
    ];
    run(&stack, rows, &sessions).await;
}

/// The MCP authorization answers a client sees through nginx (docs/mcp-authorization.md):
/// RFC 9728 metadata at the well-known URLs, 401 with `resource_metadata` (and `invalid_token`
/// only when a token came), 403 `insufficient_scope` with `scope`, credentials never forwarded
/// to the metadata.
#[tokio::test]
async fn protected_resource_metadata_and_challenges_reach_the_client_through_nginx() {
    let stack = GatewayStack::start(
        Profile::Oidc,
        &[("AUTH_RESOURCE_URL", "https://gw.example.com")],
    )
    .await;
    let gateway = stack.gateway.addr();
    let metadata_url = "https://gw.example.com/.well-known/oauth-protected-resource";
    let get = |target: &str| RawRequest {
        method: "GET".into(),
        target: target.into(),
        headers: vec![],
        body: vec![],
    };

    for (target, resource) in [
        (
            "/.well-known/oauth-protected-resource",
            "https://gw.example.com",
        ),
        (
            "/.well-known/oauth-protected-resource/fininfo/mcp",
            "https://gw.example.com/fininfo/mcp",
        ),
    ] {
        let answer = get(target).send(gateway).await;
        assert_eq!(answer.status, 200, "{target}");
        let document = answer.json().expect("JSON metadata");
        assert_eq!(document["resource"], resource);
        assert_eq!(document["authorization_servers"], json!([stack.idp.issuer]));
        assert_eq!(document["bearer_methods_supported"], json!(["header"]));
    }
    let answer = RawRequest::post("/.well-known/oauth-protected-resource", "{}")
        .send(gateway)
        .await;
    assert_eq!(answer.status, 405, "metadata is read-only");

    let tools_list = method("tools/list");
    let anonymous = RawRequest::post("/fininfo/mcp", tools_list.clone())
        .send(gateway)
        .await;
    assert_eq!(anonymous.status, 401);
    assert_eq!(
        anonymous.header("www-authenticate"),
        Some(format!(r#"Bearer resource_metadata="{metadata_url}""#).as_str()),
        "no error code when no credentials came (RFC 6750 §3.1)"
    );
    let garbage = post("/fininfo/mcp", "not.a.token", tools_list.clone())
        .send(gateway)
        .await;
    assert_eq!(garbage.status, 401);
    let challenge = garbage.header("www-authenticate").unwrap();
    assert!(
        challenge.starts_with(&format!(
            r#"Bearer resource_metadata="{metadata_url}", error="invalid_token", error_description=""#
        )),
        "{challenge}"
    );
    assert_eq!(garbage.json().unwrap()["error"], "invalid_token");

    let reader = stack.idp.token("readonly-agent").await;
    let forbidden = post("/fininfo/mcp", &reader, call("get_stock_aggregates"))
        .send(gateway)
        .await;
    assert_eq!(forbidden.status, 403);
    assert_eq!(
        forbidden.header("www-authenticate"),
        Some(
            format!(
                r#"Bearer error="insufficient_scope", scope="mcp-servers-restricted/execute mcp-servers-unrestricted/execute", resource_metadata="{metadata_url}""#
            )
            .as_str()
        )
    );
    let body = forbidden.json().unwrap();
    assert_eq!(body["error"], "insufficient_scope");
    assert_eq!(body["tool"], "get_stock_aggregates");
    assert!(
        stack.fininfo.log().is_empty(),
        "no denial reached the server"
    );
}
