//! `mcp`: reachability without credentials (`basic`), and a connection through the gateway
//! with the stored tokens (`ping`, `list`, `call`), refusals explained.

use std::time::{Duration, Instant};

use serde_json::Value;
use url::Url;

use super::{Console, Failure, NAME, load_settings, open_store};
use crate::cli::{CommonArgs, McpAction, McpArgs};
use crate::configs;
use crate::egress::{self, EgressToken};
use crate::ingress::{INGRESS_FILE, IngressToken};
use crate::mcp::{self, McpError, McpSession};
use crate::oauth;
use crate::time;

pub(super) async fn run(
    common: &CommonArgs,
    args: &McpArgs,
    console: &Console,
) -> Result<(), Failure> {
    let settings = load_settings(common)?;
    let url = match (&args.url, &args.server) {
        (Some(url), _) => oauth::parse_url("--url", url)?,
        (None, Some(server)) => {
            egress::check_server_name("--server", server)?;
            let gateway = args
                .gateway_url
                .as_deref()
                .or_else(|| settings.get("GATEWAY_URL"))
                .ok_or_else(|| Failure::config("--server needs GATEWAY_URL (or --gateway-url)"))?;
            let gateway = oauth::parse_url("GATEWAY_URL", gateway)?;
            oauth::parse_url("--server", &configs::server_url(&gateway, server))?
        }
        (None, None) => return Err(Failure::config("give --url URL or --server NAME")),
    };
    let timeout = Duration::from_secs(args.timeout.max(1));
    if matches!(args.action, McpAction::Basic) {
        return basic(&url, timeout, console).await;
    }
    if url.scheme() == "http" && !oauth::is_loopback(&url) {
        console.say(format!(
            "warning: {url} is plain http: the tokens cross the network unencrypted"
        ));
    }
    let store = open_store(common, &settings, console)?;
    let now = time::now_unix();
    let ingress: IngressToken = store
        .read_json(INGRESS_FILE)
        .map_err(Failure::runtime)?
        .ok_or_else(|| {
            Failure::runtime(format!(
                "no ingress token in {}: run `{NAME} ingress` first",
                store.path(INGRESS_FILE).display()
            ))
        })?;
    if ingress.grant.has_expired(now) {
        return Err(Failure::runtime(format!(
            "the stored ingress token expired at {}: run `{NAME} ingress`",
            ingress
                .grant
                .expires_at
                .map(time::human)
                .unwrap_or_default()
        )));
    }
    let mut headers = ingress.gateway_headers();
    if let Some(provider) = &args.provider {
        let provider = provider.to_ascii_lowercase();
        egress::providers::check_provider_name(&provider).map_err(Failure::config)?;
        let file = egress::token_file_name(&provider);
        let token: EgressToken = store
            .read_json(&file)
            .map_err(Failure::runtime)?
            .ok_or_else(|| {
                Failure::runtime(format!(
                    "no {provider} token in {}: run `{NAME} egress --provider {provider}` first",
                    store.path(&file).display()
                ))
            })?;
        headers.extend(token.server_headers());
    }
    let arguments: Option<Value> = match &args.action {
        McpAction::Call { arguments, .. } => {
            let value: Value = serde_json::from_str(arguments)
                .map_err(|err| Failure::config(format!("tool arguments are not JSON: {err}")))?;
            if !value.is_object() {
                return Err(Failure::config("tool arguments must be a JSON object"));
            }
            Some(value)
        }
        _ => None,
    };
    let started = Instant::now();
    let mut session = McpSession::connect(&url, &headers, timeout)
        .await
        .map_err(|err| mcp_failure(&url, err))?;
    tracing::debug!(
        session = session.session_id().unwrap_or("none"),
        server = %session.server.get("serverInfo").cloned().unwrap_or_default(),
        "initialized"
    );
    let outcome = match &args.action {
        McpAction::Basic => Ok(()),
        McpAction::Ping => {
            session.ping().await.map_err(|err| mcp_failure(&url, err))?;
            let info = session.server.get("serverInfo");
            let name = info
                .and_then(|info| info.get("name"))
                .and_then(Value::as_str)
                .unwrap_or("?");
            let version = info
                .and_then(|info| info.get("version"))
                .and_then(Value::as_str)
                .unwrap_or("");
            console.print(format!(
                "ok: {name} {version} answered ping through {url} ({} ms)",
                started.elapsed().as_millis()
            ));
            Ok(())
        }
        McpAction::List => {
            let tools = session
                .list_tools()
                .await
                .map_err(|err| mcp_failure(&url, err))?;
            if args.json {
                console.print(Value::Array(tools));
            } else {
                for tool in &tools {
                    let name = tool.get("name").and_then(Value::as_str).unwrap_or("?");
                    let description = tool
                        .get("description")
                        .and_then(Value::as_str)
                        .and_then(|text| text.lines().next())
                        .unwrap_or("");
                    console.print(format!("{name}\t{description}"));
                }
            }
            Ok(())
        }
        McpAction::Call { tool, .. } => {
            let result = session
                .call_tool(tool, arguments.unwrap_or_default())
                .await
                .map_err(|err| mcp_failure(&url, err))?;
            if args.json {
                console.print(&result);
            } else {
                for block in result
                    .get("content")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    match block.get("text").and_then(Value::as_str) {
                        Some(text) => console.print(text),
                        None => console.print(block),
                    }
                }
            }
            if result.get("isError").and_then(Value::as_bool) == Some(true) {
                Err(Failure::runtime(format!(
                    "the tool {tool} reported an error"
                )))
            } else {
                Ok(())
            }
        }
    };
    session.close().await;
    outcome
}

fn mcp_failure(url: &Url, error: McpError) -> Failure {
    match error {
        McpError::Refused(refusal) => {
            let mut lines = vec![format!("{url}:")];
            lines.extend(
                refusal
                    .explain()
                    .into_iter()
                    .map(|line| format!("  {line}")),
            );
            Failure { code: 1, lines }
        }
        other => Failure::runtime(format!("{url}: {other}")),
    }
}

/// What the endpoint answers a client without credentials. A protected MCP endpoint answers
/// 401 with a Bearer challenge (the gateway is up, auth-server answers); 2xx means anybody may
/// use it; anything else is a fault to look into.
async fn basic(url: &Url, timeout: Duration, console: &Console) -> Result<(), Failure> {
    let answer = mcp::reach_without_credentials(url, timeout)
        .await
        .map_err(|err| Failure::runtime(format!("not reachable: {url}: {err}")))?;
    let challenge = answer.www_authenticate.as_deref().unwrap_or("");
    let reason = reqwest::StatusCode::from_u16(answer.status)
        .ok()
        .and_then(|status| status.canonical_reason())
        .unwrap_or("");
    match answer.status {
        401 if challenge.to_ascii_lowercase().starts_with("bearer") => {
            console.print(format!(
                "reachable: {url} answered HTTP 401 {reason} without credentials, asking for a Bearer token (as a protected MCP endpoint does)"
            ));
            console.print(format!("WWW-Authenticate: {challenge}"));
            if let Some(metadata) = mcp::parse_www_authenticate(challenge).get("resource_metadata")
            {
                console.print(format!("resource metadata (RFC 9728): {metadata}"));
            }
            Ok(())
        }
        200..=299 => {
            console.print(format!(
                "reachable: {url} answered initialize without credentials (HTTP {}): it is not protected",
                answer.status
            ));
            console.say(format!(
                "warning: {url} serves MCP without credentials; behind the gateway it should answer 401"
            ));
            Ok(())
        }
        status => {
            let mut lines = vec![format!(
                "reachable, but {url} answered HTTP {status} {reason} without credentials"
            )];
            if !challenge.is_empty() {
                lines.push(format!("  WWW-Authenticate: {challenge}"));
            }
            let body: String = answer.body.trim().chars().take(300).collect();
            if !body.is_empty() {
                lines.push(format!("  body: {body}"));
            }
            lines.push(format!(
                "  hint: {}",
                match status {
                    401 => "a 401 without a Bearer challenge is not the gateway's answer: is something else at this address?",
                    404 => "nothing at this path: check the server name (the gateway serves {GATEWAY_URL}/{server}/mcp)",
                    500..=599 => "the gateway failed: is auth-server (or the MCP server behind it) running?",
                    _ => "not what an MCP endpoint behind the gateway answers",
                }
            ));
            Err(Failure { code: 1, lines })
        }
    }
}
