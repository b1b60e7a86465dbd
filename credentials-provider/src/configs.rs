//! MCP client configurations built from the stored tokens.
//!
//! Servers behind the gateway are reached at `{gateway}/{server}/mcp`:
//! - with the ingress token: `X-Authorization: Bearer …` (plus, for Cognito, `X-User-Pool-Id`,
//!   `X-Client-Id`, `X-Region`);
//! - for a server that acts on a user's behalf, also the egress token:
//!   `Authorization: Bearer …` and the provider's headers (`X-Atlassian-Cloud-Id`);
//! - an AgentCore gateway routed through the gateway gets its token in `Authorization` the same
//!   way; one reached directly gets only its own token, never the ingress token.
//!
//! Shapes: VS Code `{"servers": {name: {"type": "http", "url", "headers"}}}` (its `mcp.json`),
//! or `{"mcp": {"servers": …}}` (the `mcp` key of its `settings.json`, as mcp-gateway-registry's
//! scripts wrote it); Roocode `{"mcpServers": {name: {"type": "streamable-http", "url",
//! "headers"}}}`.

use std::collections::BTreeMap;
use std::fs::DirBuilder;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};
use url::Url;

use crate::agentcore::{AgentCoreGateway, AgentCoreToken, Route};
use crate::egress::EgressToken;
use crate::ingress::IngressToken;
use crate::store::{self, StoreError, TokenStore};

/// The VS Code configuration in the token store.
pub const VSCODE_FILE: &str = "vscode_mcp.json";
/// The Roocode configuration in the token store.
pub const ROOCODE_FILE: &str = "mcp.json";
/// The user's VS Code configuration, relative to the home directory.
pub const USER_VSCODE: &str = ".vscode/mcp.json";
/// The user's Roocode configuration, relative to the home directory.
pub const USER_ROOCODE: &str = ".roocode/mcp_servers.json";
/// The name of the single-gateway entry (mcp-gateway-registry's `mcp_gateway`).
pub const GATEWAY_ENTRY: &str = "mcp_gateway";
/// The server the single-gateway entry points at when none is set (the registry's `mcpgw`).
pub const DEFAULT_GATEWAY_ENTRY_SERVER: &str = "mcpgw";

/// The shape of the VS Code configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum VscodeFormat {
    /// `{"servers": {…}}`: VS Code's `mcp.json` (workspace `.vscode/mcp.json`, or the user's).
    #[default]
    McpJson,
    /// `{"mcp": {"servers": {…}}}`: the `mcp` key of VS Code's `settings.json`, the shape
    /// mcp-gateway-registry's scripts wrote.
    Settings,
}

impl VscodeFormat {
    /// Where the servers object sits in the document.
    pub fn servers_path(self) -> &'static [&'static str] {
        match self {
            VscodeFormat::McpJson => &["servers"],
            VscodeFormat::Settings => &["mcp", "servers"],
        }
    }
}

/// Which entries the configurations list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Entries {
    /// One entry per server (`GATEWAY_MCP_SERVERS`, egress and AgentCore servers).
    #[default]
    Servers,
    /// One `mcp_gateway` entry for the gateway's server `GATEWAY_ENTRY_SERVER` (default
    /// `mcpgw`) in place of the ingress-only servers; servers that carry a token of their own
    /// (egress, AgentCore) keep their entries.
    Gateway,
    /// Both.
    Both,
}

/// How the configurations are laid out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// The VS Code shape.
    pub vscode: VscodeFormat,
    /// Which entries.
    pub entries: Entries,
    /// The server of the single-gateway entry.
    pub gateway_entry_server: String,
}

impl Default for Layout {
    fn default() -> Layout {
        Layout {
            vscode: VscodeFormat::default(),
            entries: Entries::default(),
            gateway_entry_server: DEFAULT_GATEWAY_ENTRY_SERVER.to_owned(),
        }
    }
}

/// One MCP server of a configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerEntry {
    /// The entry's name (for a server behind the gateway, its path segment).
    pub name: String,
    /// Its URL.
    pub url: String,
    /// The headers to send.
    pub headers: BTreeMap<String, String>,
}

/// An MCP server's URL through the gateway: `{gateway}/{server}/mcp`.
pub fn server_url(gateway: &Url, server: &str) -> String {
    format!("{}/{server}/mcp", gateway.as_str().trim_end_matches('/'))
}

/// The tokens a configuration is built from.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sources<'a> {
    /// The gateway's base URL; without it, only directly reached AgentCore gateways are listed.
    pub gateway: Option<&'a Url>,
    /// The ingress token, when fresh.
    pub ingress: Option<&'a IngressToken>,
    /// Fresh egress tokens and the server each is for.
    pub egress: &'a [(String, EgressToken)],
    /// Fresh AgentCore tokens and their gateways.
    pub agentcore: &'a [(AgentCoreGateway, AgentCoreToken)],
    /// Servers that need only the ingress token.
    pub servers: &'a [String],
}

/// The servers of a configuration: each egress server (ingress and egress headers), each
/// AgentCore gateway, then the single-gateway entry and the ingress-only servers not already
/// listed (ingress headers), as `layout` says. Without an ingress token, entries behind the
/// gateway carry only their own headers (the gateway refuses them until there is one).
pub fn build_entries(sources: &Sources<'_>, layout: &Layout) -> Vec<ServerEntry> {
    let ingress_headers = sources
        .ingress
        .map(IngressToken::gateway_headers)
        .unwrap_or_default();
    let mut entries: Vec<ServerEntry> = Vec::new();
    let mut push = |entry: ServerEntry| {
        if !entries.iter().any(|existing| existing.name == entry.name) {
            entries.push(entry);
        }
    };
    let behind_gateway = |server: &str, own: BTreeMap<String, String>| {
        sources.gateway.map(|gateway| {
            let mut headers = ingress_headers.clone();
            headers.extend(own);
            ServerEntry {
                name: server.to_owned(),
                url: server_url(gateway, server),
                headers,
            }
        })
    };
    for (server, token) in sources.egress {
        if let Some(entry) = behind_gateway(server, token.server_headers()) {
            push(entry);
        }
    }
    for (gateway, token) in sources.agentcore {
        let own = BTreeMap::from([("Authorization".to_owned(), token.grant.bearer())]);
        match &gateway.route {
            Route::Direct => push(ServerEntry {
                name: gateway.name.clone(),
                url: gateway.gateway_url.to_string(),
                headers: own,
            }),
            Route::ViaGateway(server) => {
                if let Some(mut entry) = behind_gateway(server, own) {
                    entry.name = gateway.name.clone();
                    push(entry);
                }
            }
        }
    }
    if matches!(layout.entries, Entries::Gateway | Entries::Both)
        && let Some(mut entry) = behind_gateway(&layout.gateway_entry_server, BTreeMap::new())
    {
        entry.name = GATEWAY_ENTRY.to_owned();
        push(entry);
    }
    if matches!(layout.entries, Entries::Servers | Entries::Both) {
        for server in sources.servers {
            if let Some(entry) = behind_gateway(server, BTreeMap::new()) {
                push(entry);
            }
        }
    }
    entries
}

fn servers(entries: &[ServerEntry], kind: &str) -> Map<String, Value> {
    entries
        .iter()
        .map(|entry| {
            (
                entry.name.clone(),
                json!({"type": kind, "url": entry.url, "headers": entry.headers}),
            )
        })
        .collect()
}

/// Wraps `servers` in objects along `path` (`["mcp", "servers"]` → `{"mcp": {"servers": …}}`).
fn nest(path: &[&str], servers: Map<String, Value>) -> Value {
    path.iter()
        .rev()
        .fold(Value::Object(servers), |inner, key| json!({ *key: inner }))
}

/// The VS Code configuration, in the given shape.
pub fn vscode(entries: &[ServerEntry], format: VscodeFormat) -> Value {
    nest(format.servers_path(), servers(entries, "http"))
}

/// Roocode's `mcp_servers.json` / `mcp.json`.
pub fn roocode(entries: &[ServerEntry]) -> Value {
    nest(ROOCODE_PATH, servers(entries, "streamable-http"))
}

const ROOCODE_PATH: &[&str] = &["mcpServers"];

/// Why a user configuration was not updated.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigFileError {
    /// The existing file is not a JSON object with an object under the servers key. It is left
    /// untouched.
    #[error("{} was not changed: {reason}", path.display())]
    Unmergeable {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// Reading or writing failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Lays the generated servers (the object at `path`) over an existing configuration: servers
/// of the same name are replaced, every other server and every other key is kept.
pub fn merge(existing: Option<&str>, path: &[&str], generated: &Value) -> Result<Value, String> {
    let mut document = match existing.map(str::trim) {
        None | Some("") => Value::Object(Map::new()),
        Some(text) => serde_json::from_str::<Value>(text).map_err(|err| {
            format!("it is not plain JSON ({err}); comments and trailing commas are not supported, merge by hand")
        })?,
    };
    if !document.is_object() {
        return Err("it is not a JSON object".into());
    }
    let mut servers = &mut document;
    for (depth, key) in path.iter().enumerate() {
        let Some(object) = servers.as_object_mut() else {
            return Err(format!(
                "its {:?} is not an object",
                path[..depth].join(".")
            ));
        };
        servers = object
            .entry((*key).to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
    }
    let Some(servers) = servers.as_object_mut() else {
        return Err(format!("its {:?} is not an object", path.join(".")));
    };
    let generated = path
        .iter()
        .try_fold(generated, |value, key| value.get(*key))
        .and_then(Value::as_object);
    for (name, server) in generated.into_iter().flatten() {
        servers.insert(name.clone(), server.clone());
    }
    Ok(document)
}

fn to_bytes(value: &Value) -> Vec<u8> {
    let mut bytes = serde_json::to_vec_pretty(value).unwrap_or_default();
    bytes.push(b'\n');
    bytes
}

/// Writes `vscode_mcp.json` and `mcp.json` into the token store (0600, atomically).
pub fn write_store_configs(
    store: &TokenStore,
    entries: &[ServerEntry],
    format: VscodeFormat,
) -> Result<Vec<PathBuf>, StoreError> {
    Ok(vec![
        store.write_json(VSCODE_FILE, &vscode(entries, format))?,
        store.write_json(ROOCODE_FILE, &roocode(entries))?,
    ])
}

/// Merges the servers into `~/.vscode/mcp.json` (in the given shape) and
/// `~/.roocode/mcp_servers.json`. A file that cannot be merged is left as it was and reported;
/// the other is still updated.
pub fn update_user_configs(
    home: &Path,
    entries: &[ServerEntry],
    format: VscodeFormat,
) -> Vec<Result<PathBuf, ConfigFileError>> {
    [
        (USER_VSCODE, format.servers_path(), vscode(entries, format)),
        (USER_ROOCODE, ROOCODE_PATH, roocode(entries)),
    ]
    .into_iter()
    .map(|(relative, path, generated)| merge_file(&home.join(relative), path, &generated))
    .collect()
}

fn merge_file(
    path: &Path,
    servers_path: &[&str],
    generated: &Value,
) -> Result<PathBuf, ConfigFileError> {
    let io = |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    };
    let existing = match std::fs::read_to_string(path) {
        Ok(text) => Some(text),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => None,
        Err(err) => return Err(io(err).into()),
    };
    let merged = merge(existing.as_deref(), servers_path, generated).map_err(|reason| {
        ConfigFileError::Unmergeable {
            path: path.to_path_buf(),
            reason,
        }
    })?;
    if let Some(dir) = path.parent().filter(|dir| !dir.exists()) {
        // A new directory for a file holding tokens is private; an existing one is the user's.
        DirBuilder::new()
            .recursive(true)
            .mode(store::DIR_MODE)
            .create(dir)
            .map_err(|source| StoreError::Io {
                path: dir.to_path_buf(),
                source,
            })?;
    }
    store::write_atomic(path, &to_bytes(&merged))?;
    Ok(path.to_path_buf())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::ingress::ProviderKind;
    use crate::settings::Settings;
    use std::os::unix::fs::PermissionsExt;

    fn ingress() -> IngressToken {
        IngressToken {
            provider: ProviderKind::Cognito,
            grant: crate::grant::tests::grant("ING", None, None),
            client_id: "cid".into(),
            token_url: String::new(),
            user_pool_id: Some("us-east-1_P".into()),
            region: Some("us-east-1".into()),
            issuer: None,
            request_id: String::new(),
        }
    }

    fn egress() -> EgressToken {
        EgressToken {
            provider: "atlassian".into(),
            client_id: "c".into(),
            grant: crate::grant::tests::grant("EGR", None, None),
            refresh_token: None,
            token_url: String::new(),
            headers: BTreeMap::from([("X-Atlassian-Cloud-Id".to_owned(), "cloud".to_owned())]),
            site_url: None,
        }
    }

    fn gateway() -> Url {
        Url::parse("https://gw.example/").unwrap()
    }

    fn entries_with(
        layout: &Layout,
        agentcore: &[(AgentCoreGateway, AgentCoreToken)],
    ) -> Vec<ServerEntry> {
        let gateway = gateway();
        build_entries(
            &Sources {
                gateway: Some(&gateway),
                ingress: Some(&ingress()),
                egress: &[("atlassian".to_owned(), egress())],
                agentcore,
                servers: &["currenttime".to_owned(), "atlassian".to_owned()],
            },
            layout,
        )
    }

    fn entries() -> Vec<ServerEntry> {
        entries_with(&Layout::default(), &[])
    }

    fn agentcore(server: Option<&str>) -> (AgentCoreGateway, AgentCoreToken) {
        let text = format!(
            "gateways:\n  support:\n    gateway_url: https://abc.gateway.example/mcp\n    token_url: https://idp.example/token\n    client_id: c\n    client_secret: s\n{}",
            server
                .map(|s| format!("    server: {s}\n"))
                .unwrap_or_default()
        );
        let gateway = crate::agentcore::parse(&text, Path::new("a.yml"), &Settings::default())
            .unwrap()
            .remove(0);
        let token = AgentCoreToken {
            name: "support".into(),
            gateway_url: gateway.gateway_url.to_string(),
            client_id: "c".into(),
            grant: crate::grant::tests::grant("ACT", None, None),
            token_url: String::new(),
            request_id: String::new(),
        };
        (gateway, token)
    }

    #[test]
    fn vscode_and_roocode_shapes() {
        let vscode = vscode(&entries(), VscodeFormat::McpJson);
        assert_eq!(
            vscode,
            json!({"servers": {
                "atlassian": {"type": "http", "url": "https://gw.example/atlassian/mcp", "headers": {
                    "Authorization": "Bearer EGR", "X-Atlassian-Cloud-Id": "cloud",
                    "X-Authorization": "Bearer ING", "X-Client-Id": "cid",
                    "X-Region": "us-east-1", "X-User-Pool-Id": "us-east-1_P"}},
                "currenttime": {"type": "http", "url": "https://gw.example/currenttime/mcp", "headers": {
                    "X-Authorization": "Bearer ING", "X-Client-Id": "cid",
                    "X-Region": "us-east-1", "X-User-Pool-Id": "us-east-1_P"}}
            }})
        );
        let roocode = roocode(&entries());
        assert_eq!(
            roocode["mcpServers"]["currenttime"]["type"],
            "streamable-http"
        );
        assert_eq!(
            roocode["mcpServers"]["atlassian"]["url"],
            "https://gw.example/atlassian/mcp"
        );
    }

    #[test]
    fn a_gateway_path_prefix_is_kept() {
        let url = Url::parse("https://gw.example/mcp-gateway").unwrap();
        assert_eq!(
            server_url(&url, "fininfo"),
            "https://gw.example/mcp-gateway/fininfo/mcp"
        );
    }

    #[test]
    fn merging_keeps_other_servers_and_keys() {
        let existing = r#"{"inputs": [{"id": "x"}], "servers": {"mine": {"type": "stdio", "command": "x"}, "currenttime": {"old": true}}}"#;
        let merged = merge(
            Some(existing),
            &["servers"],
            &vscode(&entries(), VscodeFormat::McpJson),
        )
        .unwrap();
        assert_eq!(merged["inputs"], json!([{"id": "x"}]));
        assert_eq!(merged["servers"]["mine"]["command"], "x");
        assert_eq!(merged["servers"]["currenttime"]["type"], "http");
        assert!(merged["servers"]["currenttime"].get("old").is_none());
        assert!(merged["servers"]["atlassian"].is_object());
        let fresh = merge(None, &["mcpServers"], &roocode(&entries())).unwrap();
        assert_eq!(fresh["mcpServers"].as_object().unwrap().len(), 2);
        // The settings shape: the servers under "mcp", other settings kept.
        let settings = r#"{"editor.fontSize": 14, "mcp": {"servers": {"mine": {"command": "x"}}}}"#;
        let merged = merge(
            Some(settings),
            &["mcp", "servers"],
            &vscode(&entries(), VscodeFormat::Settings),
        )
        .unwrap();
        assert_eq!(merged["editor.fontSize"], 14);
        assert_eq!(merged["mcp"]["servers"]["mine"]["command"], "x");
        assert_eq!(merged["mcp"]["servers"]["currenttime"]["type"], "http");
        assert!(merge(Some(r#"{"mcp": []}"#), &["mcp", "servers"], &json!({})).is_err());
    }

    #[test]
    fn the_settings_shape_wraps_the_same_servers_in_mcp() {
        let settings = vscode(&entries(), VscodeFormat::Settings);
        assert_eq!(
            settings["mcp"]["servers"],
            vscode(&entries(), VscodeFormat::McpJson)["servers"]
        );
        assert_eq!(settings.as_object().unwrap().len(), 1);
    }

    #[test]
    fn the_single_gateway_entry_replaces_the_ingress_only_servers() {
        let layout = Layout {
            entries: Entries::Gateway,
            gateway_entry_server: "mcpgw".into(),
            ..Layout::default()
        };
        let names = |entries: Vec<ServerEntry>| -> Vec<String> {
            entries.into_iter().map(|entry| entry.name).collect()
        };
        let gateway_only = entries_with(&layout, &[]);
        assert_eq!(names(gateway_only.clone()), ["atlassian", "mcp_gateway"]);
        assert_eq!(gateway_only[1].url, "https://gw.example/mcpgw/mcp");
        assert_eq!(gateway_only[1].headers["X-Authorization"], "Bearer ING");
        assert!(!gateway_only[1].headers.contains_key("Authorization"));
        let both = Layout {
            entries: Entries::Both,
            ..layout
        };
        assert_eq!(
            names(entries_with(&both, &[])),
            ["atlassian", "mcp_gateway", "currenttime"]
        );
    }

    #[test]
    fn agentcore_gateways_get_their_own_token_and_never_the_ingress_token_directly() {
        let direct = entries_with(&Layout::default(), &[agentcore(None)]);
        let support = direct.iter().find(|e| e.name == "support").unwrap();
        assert_eq!(support.url, "https://abc.gateway.example/mcp");
        assert_eq!(
            support.headers,
            BTreeMap::from([("Authorization".to_owned(), "Bearer ACT".to_owned())])
        );
        let routed = entries_with(&Layout::default(), &[agentcore(Some("support-gw"))]);
        let support = routed.iter().find(|e| e.name == "support").unwrap();
        assert_eq!(support.url, "https://gw.example/support-gw/mcp");
        assert_eq!(support.headers["Authorization"], "Bearer ACT");
        assert_eq!(support.headers["X-Authorization"], "Bearer ING");
        // Without a gateway URL only the direct entry can be written.
        let none = build_entries(
            &Sources {
                ingress: Some(&ingress()),
                agentcore: &[agentcore(None), agentcore(Some("x"))],
                servers: &["currenttime".to_owned()],
                ..Sources::default()
            },
            &Layout::default(),
        );
        assert_eq!(none.len(), 1);
        assert_eq!(none[0].url, "https://abc.gateway.example/mcp");
    }

    #[test]
    fn an_unmergeable_user_file_is_left_alone() {
        let home = tempfile::tempdir().unwrap();
        let vscode_path = home.path().join(USER_VSCODE);
        std::fs::create_dir_all(vscode_path.parent().unwrap()).unwrap();
        let jsonc = "{\n  // my servers\n  \"servers\": {}\n}\n";
        std::fs::write(&vscode_path, jsonc).unwrap();
        let results = update_user_configs(home.path(), &entries(), VscodeFormat::McpJson);
        let error = results[0].as_ref().unwrap_err().to_string();
        assert!(error.contains("was not changed"), "{error}");
        assert_eq!(std::fs::read_to_string(&vscode_path).unwrap(), jsonc);
        // The other file is still written, private, in a private new directory.
        let roocode_path = results[1].as_ref().unwrap();
        let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(roocode_path), 0o600);
        assert_eq!(mode(roocode_path.parent().unwrap()), 0o700);
        let written: Value =
            serde_json::from_str(&std::fs::read_to_string(roocode_path).unwrap()).unwrap();
        assert_eq!(
            written["mcpServers"]["currenttime"]["type"],
            "streamable-http"
        );

        assert!(merge(Some("[1]"), &["servers"], &json!({})).is_err());
        assert!(merge(Some(r#"{"servers": []}"#), &["servers"], &json!({})).is_err());
    }
}
