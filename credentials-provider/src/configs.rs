//! MCP client configurations built from the stored tokens.
//!
//! Every server is reached through the gateway at `{gateway}/{server}/mcp`:
//! - with the ingress token: `X-Authorization: Bearer …` (plus, for Cognito, `X-User-Pool-Id`,
//!   `X-Client-Id`, `X-Region`);
//! - for a server that acts on a user's behalf, also the egress token:
//!   `Authorization: Bearer …` and the provider's headers (`X-Atlassian-Cloud-Id`).
//!
//! Shapes: VS Code `{"servers": {name: {"type": "http", "url", "headers"}}}`; Roocode
//! `{"mcpServers": {name: {"type": "streamable-http", "url", "headers"}}}`.

use std::collections::BTreeMap;
use std::fs::DirBuilder;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};
use url::Url;

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

/// One MCP server of a configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerEntry {
    /// The server's name (its gateway path segment).
    pub name: String,
    /// Its URL through the gateway.
    pub url: String,
    /// The headers to send.
    pub headers: BTreeMap<String, String>,
}

/// An MCP server's URL through the gateway: `{gateway}/{server}/mcp`.
pub fn server_url(gateway: &Url, server: &str) -> String {
    format!("{}/{server}/mcp", gateway.as_str().trim_end_matches('/'))
}

/// The servers of a configuration: each egress server (ingress and egress headers), then each
/// ingress-only server not already listed (ingress headers). Without an ingress token the
/// entries carry only the egress headers (the gateway will refuse them until there is one).
pub fn build_entries(
    gateway: &Url,
    ingress: Option<&IngressToken>,
    egress: &[(String, EgressToken)],
    ingress_only_servers: &[String],
) -> Vec<ServerEntry> {
    let ingress_headers = ingress
        .map(IngressToken::gateway_headers)
        .unwrap_or_default();
    let mut entries: Vec<ServerEntry> = Vec::new();
    for (server, token) in egress {
        let mut headers = ingress_headers.clone();
        headers.extend(token.server_headers());
        entries.push(ServerEntry {
            name: server.clone(),
            url: server_url(gateway, server),
            headers,
        });
    }
    for server in ingress_only_servers {
        if entries.iter().any(|entry| &entry.name == server) {
            continue;
        }
        entries.push(ServerEntry {
            name: server.clone(),
            url: server_url(gateway, server),
            headers: ingress_headers.clone(),
        });
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

/// VS Code's `mcp.json`.
pub fn vscode(entries: &[ServerEntry]) -> Value {
    json!({ "servers": servers(entries, "http") })
}

/// Roocode's `mcp_servers.json` / `mcp.json`.
pub fn roocode(entries: &[ServerEntry]) -> Value {
    json!({ "mcpServers": servers(entries, "streamable-http") })
}

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

/// Lays the generated servers (under `key`) over an existing configuration: servers of the same
/// name are replaced, every other server and every other key is kept.
pub fn merge(existing: Option<&str>, key: &str, generated: &Value) -> Result<Value, String> {
    let mut document = match existing.map(str::trim) {
        None | Some("") => Value::Object(Map::new()),
        Some(text) => serde_json::from_str::<Value>(text).map_err(|err| {
            format!("it is not plain JSON ({err}); comments and trailing commas are not supported, merge by hand")
        })?,
    };
    let Some(object) = document.as_object_mut() else {
        return Err("it is not a JSON object".into());
    };
    let servers = object
        .entry(key.to_owned())
        .or_insert_with(|| Value::Object(Map::new()));
    let Some(servers) = servers.as_object_mut() else {
        return Err(format!("its {key:?} is not an object"));
    };
    if let Some(generated) = generated.get(key).and_then(Value::as_object) {
        for (name, server) in generated {
            servers.insert(name.clone(), server.clone());
        }
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
) -> Result<Vec<PathBuf>, StoreError> {
    Ok(vec![
        store.write_json(VSCODE_FILE, &vscode(entries))?,
        store.write_json(ROOCODE_FILE, &roocode(entries))?,
    ])
}

/// Merges the servers into `~/.vscode/mcp.json` and `~/.roocode/mcp_servers.json`. A file that
/// cannot be merged is left as it was and reported; the other is still updated.
pub fn update_user_configs(
    home: &Path,
    entries: &[ServerEntry],
) -> Vec<Result<PathBuf, ConfigFileError>> {
    [
        (USER_VSCODE, "servers", vscode(entries)),
        (USER_ROOCODE, "mcpServers", roocode(entries)),
    ]
    .into_iter()
    .map(|(relative, key, generated)| merge_file(&home.join(relative), key, &generated))
    .collect()
}

fn merge_file(path: &Path, key: &str, generated: &Value) -> Result<PathBuf, ConfigFileError> {
    let io = |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    };
    let existing = match std::fs::read_to_string(path) {
        Ok(text) => Some(text),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => None,
        Err(err) => return Err(io(err).into()),
    };
    let merged = merge(existing.as_deref(), key, generated).map_err(|reason| {
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
    use crate::secret::Secret;
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

    fn entries() -> Vec<ServerEntry> {
        build_entries(
            &Url::parse("https://gw.example/").unwrap(),
            Some(&ingress()),
            &[("atlassian".to_owned(), egress())],
            &["currenttime".to_owned(), "atlassian".to_owned()],
        )
    }

    #[test]
    fn vscode_and_roocode_shapes() {
        let vscode = vscode(&entries());
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
        let merged = merge(Some(existing), "servers", &vscode(&entries())).unwrap();
        assert_eq!(merged["inputs"], json!([{"id": "x"}]));
        assert_eq!(merged["servers"]["mine"]["command"], "x");
        assert_eq!(merged["servers"]["currenttime"]["type"], "http");
        assert!(merged["servers"]["currenttime"].get("old").is_none());
        assert!(merged["servers"]["atlassian"].is_object());
        let fresh = merge(None, "mcpServers", &roocode(&entries())).unwrap();
        assert_eq!(fresh["mcpServers"].as_object().unwrap().len(), 2);
    }

    #[test]
    fn an_unmergeable_user_file_is_left_alone() {
        let home = tempfile::tempdir().unwrap();
        let vscode_path = home.path().join(USER_VSCODE);
        std::fs::create_dir_all(vscode_path.parent().unwrap()).unwrap();
        let jsonc = "{\n  // my servers\n  \"servers\": {}\n}\n";
        std::fs::write(&vscode_path, jsonc).unwrap();
        let results = update_user_configs(home.path(), &entries());
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

        assert!(merge(Some("[1]"), "servers", &json!({})).is_err());
        assert!(merge(Some(r#"{"servers": []}"#), "servers", &json!({})).is_err());
    }
}
