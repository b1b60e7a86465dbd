//! The fine-grained access-control policy: `scopes.yml` in, [`CompiledPolicy`] out.
//!
//! The file format is mcp-gateway-registry's: `group_mappings` (IdP group → scope names), and one
//! top-level key per scope name holding entries `{server, methods, tools}`. `UI-Scopes` and
//! `agents` are accepted and ignored by the check; a group may map to a `UI-Scopes` key, which
//! grants no server. Everything is validated while the YAML is read, so that each error carries
//! the line and column of the node at fault, and the result is compiled into hash maps so that a
//! decision never scans the file's structure.

mod report;

pub use report::{Explanation, PolicySummary};

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::Path;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// Top-level keys that are part of the file format but grant nothing to MCP requests.
const IGNORED_SECTIONS: [&str; 2] = ["UI-Scopes", "agents"];
const GROUP_MAPPINGS: &str = "group_mappings";

/// Why a policy file was refused. The message names the file, line and column.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct PolicyError {
    /// The file that was read.
    pub path: String,
    /// What is wrong, with `at line L column C` where the YAML parser knows it.
    pub message: String,
}

/// What one JSON-RPC message asks of a server, as far as the policy is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access<'a> {
    /// A request or notification: its method, and for `tools/call` the tool.
    Method {
        /// The JSON-RPC method, e.g. `tools/list`.
        method: &'a str,
        /// The tool of a `tools/call`; `None` for every other method.
        tool: Option<&'a str>,
    },
    /// Any traffic to the server that names no method: a JSON-RPC response sent by the client, or
    /// a body-less GET (SSE listen stream) or DELETE (session end). Any entry for the server
    /// allows it.
    AnyEntry,
}

/// A set of names from the policy: a wildcard (`*` or `all`) or an exact list.
#[derive(Debug, Clone, PartialEq, Eq)]
enum NameSet {
    Any,
    Only(HashSet<String>),
}

impl NameSet {
    fn contains(&self, name: &str) -> bool {
        match self {
            NameSet::Any => true,
            NameSet::Only(names) => names.contains(name),
        }
    }
}

/// One entry's grant on a server: which methods, and which tools for `tools/call`.
#[derive(Debug, Clone)]
struct Grant {
    methods: NameSet,
    tools: NameSet,
    /// Where it comes from, for `explain`: `scope[index]`.
    origin: String,
}

impl Grant {
    fn allows(&self, access: Access<'_>) -> bool {
        match access {
            Access::AnyEntry => true,
            Access::Method { method, tool } => {
                // Method and tool must come from the same entry.
                self.methods.contains(method)
                    && match tool {
                        Some(tool) => self.tools.contains(tool),
                        None => true,
                    }
            }
        }
    }
}

/// A scope's entries, indexed by server.
#[derive(Debug, Default)]
struct CompiledScope {
    by_server: HashMap<String, Vec<Grant>>,
    any_server: Vec<Grant>,
}

impl CompiledScope {
    /// The grants that name `server`: its own entries, then the `*` entries.
    fn grants_for<'s>(&'s self, server: &str) -> impl Iterator<Item = &'s Grant> {
        let exact = self.by_server.get(server).map(Vec::as_slice).unwrap_or(&[]);
        exact.iter().chain(self.any_server.iter())
    }

    fn allows(&self, server: &str, access: Access<'_>) -> bool {
        self.grants_for(server).any(|grant| grant.allows(access))
    }
}

/// The tools of one server that a caller sees in a `tools/list` answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VisibleTools {
    /// Every tool (an entry names `all` or `*`).
    All,
    /// These tools only.
    Only(HashSet<String>),
}

impl VisibleTools {
    /// Whether `tool` is listed to the caller.
    pub fn contains(&self, tool: &str) -> bool {
        match self {
            VisibleTools::All => true,
            VisibleTools::Only(tools) => tools.contains(tool),
        }
    }
}

/// The policy, validated and indexed for decisions.
#[derive(Debug, Default)]
pub struct CompiledPolicy {
    /// Scope name → its grants. `UI-Scopes` names are present with no grants.
    scopes: HashMap<String, CompiledScope>,
    /// IdP group → scope names, in file order.
    group_mappings: HashMap<String, Vec<String>>,
}

impl CompiledPolicy {
    /// Reads and compiles a policy file.
    pub fn load(path: &Path) -> Result<Self, PolicyError> {
        let text = std::fs::read_to_string(path).map_err(|err| PolicyError {
            path: path.display().to_string(),
            message: format!("cannot read the policy file: {err}"),
        })?;
        Self::from_yaml(&text).map_err(|message| PolicyError {
            path: path.display().to_string(),
            message,
        })
    }

    /// Compiles a policy from YAML text. The error names line and column.
    pub fn from_yaml(text: &str) -> Result<Self, String> {
        // First pass: which scope names are defined, so that group mappings can be checked in the
        // second pass while the parser still knows where each name stands.
        let defined = DefinedScopes::collect(text)?;
        let deserializer = serde_norway::Deserializer::from_str(text);
        PolicySeed { defined: &defined }
            .deserialize(deserializer)
            .map_err(|err| err.to_string())
    }

    /// The scopes that IdP `groups` map to, de-duplicated, in the order of first appearance.
    pub fn scopes_for_groups<'p>(&'p self, groups: &[String]) -> Vec<&'p str> {
        let mut scopes: Vec<&str> = Vec::new();
        for group in groups {
            for scope in self.group_mappings.get(group).into_iter().flatten() {
                if !scopes.contains(&scope.as_str()) {
                    scopes.push(scope);
                }
            }
        }
        scopes
    }

    /// Whether one of `scopes` holds an entry for `server` that allows `access`.
    pub fn allows(&self, scopes: &[&str], server: &str, access: Access<'_>) -> bool {
        scopes
            .iter()
            .filter_map(|name| self.scopes.get(*name))
            .any(|scope| scope.allows(server, access))
    }

    /// The tools of `server` a caller with `scopes` sees in a `tools/list` answer: those it may
    /// call (an entry allowing `tools/call` lists them: exactly the `tools/call` decision), and
    /// those that an entry allowing `tools/list` names in its `tools`. An entry without `tools`
    /// names no tool.
    pub fn visible_tools(&self, scopes: &[&str], server: &str) -> VisibleTools {
        let mut visible = HashSet::new();
        let scopes = scopes.iter().filter_map(|name| self.scopes.get(*name));
        for grant in scopes.flat_map(|scope| scope.grants_for(server)) {
            if !(grant.methods.contains("tools/call") || grant.methods.contains("tools/list")) {
                continue;
            }
            match &grant.tools {
                NameSet::Any => return VisibleTools::All,
                NameSet::Only(tools) => visible.extend(tools.iter().cloned()),
            }
        }
        VisibleTools::Only(visible)
    }

    /// The names of every scope in the policy that would allow `access` on `server`, sorted:
    /// what a denied caller would need (`WWW-Authenticate: ... scope="..."`).
    pub fn scopes_allowing(&self, server: &str, access: Access<'_>) -> Vec<&str> {
        let mut names: Vec<&str> = self
            .scopes
            .iter()
            .filter(|(_, scope)| scope.allows(server, access))
            .map(|(name, _)| name.as_str())
            .collect();
        names.sort_unstable();
        names
    }

    /// Number of scope names defined (including `UI-Scopes` names).
    pub fn scope_count(&self) -> usize {
        self.scopes.len()
    }

    /// Number of groups mapped.
    pub fn group_count(&self) -> usize {
        self.group_mappings.len()
    }
}

/// The scope names a file defines: top-level keys and `UI-Scopes` keys.
struct DefinedScopes(HashSet<String>);

impl DefinedScopes {
    fn collect(text: &str) -> Result<Self, String> {
        #[derive(Deserialize)]
        struct Shallow {
            #[serde(rename = "UI-Scopes", default)]
            ui_scopes: Option<HashMap<String, IgnoredAny>>,
            #[serde(flatten)]
            top_level: HashMap<String, IgnoredAny>,
        }
        let shallow: Shallow = serde_norway::from_str(text).map_err(|err| err.to_string())?;
        let mut names: HashSet<String> = shallow
            .top_level
            .into_keys()
            .filter(|key| key != GROUP_MAPPINGS && !IGNORED_SECTIONS.contains(&key.as_str()))
            .collect();
        names.extend(shallow.ui_scopes.unwrap_or_default().into_keys());
        Ok(DefinedScopes(names))
    }
}

struct PolicySeed<'a> {
    defined: &'a DefinedScopes,
}

impl<'de> DeserializeSeed<'de> for PolicySeed<'_> {
    type Value = CompiledPolicy;

    fn deserialize<D: Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<CompiledPolicy, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for PolicySeed<'_> {
    type Value = CompiledPolicy;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a mapping of `group_mappings` and scope names")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<CompiledPolicy, A::Error> {
        let mut policy = CompiledPolicy::default();
        for name in &self.defined.0 {
            policy.scopes.insert(name.clone(), CompiledScope::default());
        }
        let mut seen_group_mappings = false;
        while let Some(key) = map.next_key::<String>()? {
            if key == GROUP_MAPPINGS {
                if seen_group_mappings {
                    return Err(de::Error::custom("`group_mappings` appears twice"));
                }
                seen_group_mappings = true;
                policy.group_mappings = map.next_value_seed(GroupMappingsSeed {
                    defined: self.defined,
                })?;
            } else if IGNORED_SECTIONS.contains(&key.as_str()) {
                map.next_value::<IgnoredAny>()?;
            } else {
                let entries: Vec<EntryFile> = map.next_value()?;
                let scope = policy.scopes.entry(key.clone()).or_default();
                for (index, entry) in entries.into_iter().enumerate() {
                    let EntryFile::Server {
                        server,
                        methods,
                        tools,
                    } = entry
                    else {
                        continue;
                    };
                    let grant = Grant {
                        origin: format!("{key}[{index}]"),
                        methods: methods.0,
                        tools: tools
                            .map(|tools| tools.0)
                            .unwrap_or(NameSet::Only(HashSet::new())),
                    };
                    match server {
                        ServerName::Any => scope.any_server.push(grant),
                        ServerName::Exact(server) => {
                            scope.by_server.entry(server).or_default().push(grant)
                        }
                    }
                }
            }
        }
        Ok(policy)
    }
}

struct GroupMappingsSeed<'a> {
    defined: &'a DefinedScopes,
}

impl<'de> DeserializeSeed<'de> for GroupMappingsSeed<'_> {
    type Value = HashMap<String, Vec<String>>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for GroupMappingsSeed<'_> {
    type Value = HashMap<String, Vec<String>>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a mapping of group names to lists of scope names")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(HashMap::new())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut mappings = HashMap::new();
        while let Some(group) = map.next_key::<String>()? {
            let scopes = map.next_value_seed(ScopeListSeed {
                defined: self.defined,
                group: &group,
            })?;
            if mappings.insert(group.clone(), scopes).is_some() {
                return Err(de::Error::custom(format!(
                    "group `{group}` is mapped twice"
                )));
            }
        }
        Ok(mappings)
    }
}

struct ScopeListSeed<'a> {
    defined: &'a DefinedScopes,
    group: &'a str,
}

impl<'de> DeserializeSeed<'de> for ScopeListSeed<'_> {
    type Value = Vec<String>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for ScopeListSeed<'_> {
    type Value = Vec<String>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of scope names")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut scopes = Vec::new();
        while let Some(scope) = seq.next_element::<String>()? {
            if !self.defined.0.contains(&scope) {
                return Err(de::Error::custom(format!(
                    "group `{}` maps to scope `{scope}`, which is defined nowhere in the file",
                    self.group
                )));
            }
            scopes.push(scope);
        }
        Ok(scopes)
    }
}

/// One entry of a scope as written in the file: a server grant, or (in the registry's newer
/// files) agent actions, which are for the registry and grant nothing here.
#[derive(Deserialize)]
#[serde(try_from = "EntryFields")]
enum EntryFile {
    Server {
        server: ServerName,
        methods: NameList,
        tools: Option<NameList>,
    },
    AgentActions,
}

/// Every key an entry may hold; which combination makes an entry is decided in `try_from`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EntryFields {
    server: Option<ServerName>,
    methods: Option<NameList>,
    tools: Option<NameList>,
    agents: Option<IgnoredAny>,
}

impl TryFrom<EntryFields> for EntryFile {
    type Error = String;

    fn try_from(fields: EntryFields) -> Result<Self, String> {
        match fields {
            EntryFields {
                agents: Some(_),
                server: None,
                methods: None,
                tools: None,
            } => Ok(EntryFile::AgentActions),
            EntryFields {
                agents: Some(_), ..
            } => Err(
                "an entry holds either `agents` or `server`/`methods`/`tools`, not both".to_owned(),
            ),
            EntryFields { server: None, .. } => Err("missing field `server`".to_owned()),
            EntryFields { methods: None, .. } => Err("missing field `methods`".to_owned()),
            EntryFields {
                server: Some(server),
                methods: Some(methods),
                tools,
                agents: None,
            } => Ok(EntryFile::Server {
                server,
                methods,
                tools,
            }),
        }
    }
}

/// `server:` — a name (trimmed of `/`) or `*`.
enum ServerName {
    Any,
    Exact(String),
}

impl<'de> Deserialize<'de> for ServerName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        let trimmed = raw.trim_matches('/');
        if trimmed == "*" {
            return Ok(ServerName::Any);
        }
        validate_name("server", trimmed).map_err(de::Error::custom)?;
        if trimmed.contains('/') {
            return Err(de::Error::custom(format!(
                "server `{raw}` has a `/` inside: a server is the first path segment only"
            )));
        }
        Ok(ServerName::Exact(trimmed.to_owned()))
    }
}

/// `methods:` or `tools:` — a list of names or a single name; `*` and `all` are wildcards.
struct NameList(NameSet);

impl<'de> Deserialize<'de> for NameList {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Not `#[serde(untagged)]`: it would lose the parser's position on error. Names are
        // validated inside the visitor, while the parser still stands at the list.
        struct NameListVisitor;
        impl<'de> Visitor<'de> for NameListVisitor {
            type Value = NameSet;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a name or a list of names")
            }
            fn visit_str<E: de::Error>(self, name: &str) -> Result<NameSet, E> {
                name_set([name.to_owned()]).map_err(E::custom)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<NameSet, A::Error> {
                let mut names = Vec::new();
                while let Some(name) = seq.next_element::<String>()? {
                    names.push(name);
                }
                name_set(names).map_err(de::Error::custom)
            }
        }
        deserializer.deserialize_any(NameListVisitor).map(NameList)
    }
}

/// A wildcard when any name is `*` or `all`, else the exact names.
fn name_set(names: impl IntoIterator<Item = String>) -> Result<NameSet, String> {
    let mut set = HashSet::new();
    for name in names {
        if name == "*" || name == "all" {
            return Ok(NameSet::Any);
        }
        validate_name("name", &name)?;
        set.insert(name);
    }
    Ok(NameSet::Only(set))
}

/// Names match exactly; a `*` anywhere but alone would look like a pattern and is refused.
fn validate_name(what: &str, name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err(format!("empty {what}"));
    }
    if name.contains('*') {
        return Err(format!(
            "{what} `{name}`: `*` is only a wildcard on its own; patterns are not supported"
        ));
    }
    if name.chars().any(char::is_control) || name.trim() != name {
        return Err(format!(
            "{what} `{name}` has spaces or control characters at its edges"
        ));
    }
    Ok(())
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
UI-Scopes:
  mcp-registry-admin:
    list_service: [all]
group_mappings:
  admins: [mcp-registry-admin, unrestricted/execute]
  readers: [restricted/read]
  operators: [restricted/read, restricted/execute]
unrestricted/execute:
  - server: '*'
    methods: all
    tools: '*'
restricted/read:
  - server: /fininfo/
    methods: [initialize, notifications/initialized, ping, tools/list]
restricted/execute:
  - server: fininfo
    methods: [initialize, tools/list, tools/call]
    tools: [get_stock_aggregates, print_stock_data]
  - server: currenttime
    methods: tools/call
    tools: current_time_by_timezone
agents:
  anything: goes
"#;

    pub(super) fn tools_call(tool: &str) -> Access<'_> {
        Access::Method {
            method: "tools/call",
            tool: Some(tool),
        }
    }

    pub(super) fn policy() -> CompiledPolicy {
        CompiledPolicy::from_yaml(EXAMPLE).expect("example policy compiles")
    }

    #[test]
    fn groups_map_to_scopes_in_order_without_duplicates() {
        let policy = policy();
        let groups = vec![
            "operators".to_owned(),
            "readers".to_owned(),
            "unknown".to_owned(),
        ];
        assert_eq!(
            policy.scopes_for_groups(&groups),
            ["restricted/read", "restricted/execute"]
        );
    }

    #[test]
    fn read_scope_lists_but_cannot_call() {
        let policy = policy();
        let read = ["restricted/read"];
        let list = Access::Method {
            method: "tools/list",
            tool: None,
        };
        assert!(policy.allows(&read, "fininfo", list));
        assert!(!policy.allows(&read, "fininfo", tools_call("get_stock_aggregates")));
        assert!(!policy.allows(&read, "currenttime", list));
    }

    #[test]
    fn tool_must_be_listed_by_the_entry_that_allows_the_method() {
        let policy = policy();
        let exec = ["restricted/execute"];
        assert!(policy.allows(&exec, "fininfo", tools_call("print_stock_data")));
        assert!(!policy.allows(&exec, "fininfo", tools_call("delete_all_portfolios")));
        // currenttime's entry allows tools/call but not tools/list.
        let list = Access::Method {
            method: "tools/list",
            tool: None,
        };
        assert!(!policy.allows(&exec, "currenttime", list));
        assert!(policy.allows(&exec, "currenttime", tools_call("current_time_by_timezone")));
    }

    #[test]
    fn method_and_tool_from_different_entries_do_not_combine() {
        let yaml = r#"
s:
  - server: a
    methods: [tools/call]
    tools: []
  - server: a
    methods: [tools/list]
    tools: [secret]
"#;
        let policy = CompiledPolicy::from_yaml(yaml).expect("compiles");
        assert!(!policy.allows(&["s"], "a", tools_call("secret")));
    }

    #[test]
    fn wildcards_match_any_server_method_and_tool() {
        let policy = policy();
        let admin = ["mcp-registry-admin", "unrestricted/execute"];
        assert!(policy.allows(&admin, "anything", tools_call("delete_all_portfolios")));
        assert!(policy.allows(&admin, "x", Access::AnyEntry));
    }

    #[test]
    fn ui_scope_grants_no_server() {
        let policy = policy();
        assert!(!policy.allows(&["mcp-registry-admin"], "fininfo", Access::AnyEntry));
    }

    #[test]
    fn names_match_exactly_never_by_substring_or_case() {
        let policy = policy();
        let exec = ["restricted/execute"];
        assert!(!policy.allows(&exec, "fininfo", tools_call("get_stock")));
        assert!(!policy.allows(&exec, "FININFO", tools_call("print_stock_data")));
        assert!(!policy.allows(&exec, "fin", tools_call("print_stock_data")));
    }

    #[test]
    fn single_string_is_a_one_element_list() {
        let yaml = "s:\n  - server: a\n    methods: tools/call\n    tools: get_stock_aggregates\n";
        let policy = CompiledPolicy::from_yaml(yaml).expect("compiles");
        assert!(policy.allows(&["s"], "a", tools_call("get_stock_aggregates")));
        assert!(!policy.allows(&["s"], "a", tools_call("get_stock")));
        assert!(!policy.allows(
            &["s"],
            "a",
            Access::Method {
                method: "tools",
                tool: None
            }
        ));
    }

    #[test]
    fn scopes_allowing_names_every_scope_that_would_allow() {
        let policy = policy();
        let call = tools_call("print_stock_data");
        assert_eq!(
            policy.scopes_allowing("fininfo", call),
            ["restricted/execute", "unrestricted/execute"]
        );
    }

    #[test]
    fn unknown_scope_in_group_mappings_names_line_and_column() {
        let yaml = "group_mappings:\n  g: [nope]\ns:\n  - server: a\n    methods: [ping]\n";
        let err = CompiledPolicy::from_yaml(yaml).expect_err("unknown scope refused");
        assert!(err.contains("`nope`"), "{err}");
        assert!(err.contains("line 2"), "{err}");
    }

    #[test]
    fn pattern_wildcard_is_refused_with_its_position() {
        let yaml = "s:\n  - server: a\n    methods: [ping]\n    tools: [get_*]\n";
        let err = CompiledPolicy::from_yaml(yaml).expect_err("pattern refused");
        assert!(err.contains("get_*") && err.contains("line 4"), "{err}");
    }

    #[test]
    fn type_errors_and_unknown_fields_are_refused_with_position() {
        let err = CompiledPolicy::from_yaml("s:\n  - server: a\n    methods: {x: 1}\n")
            .expect_err("mapping as methods refused");
        assert!(err.contains("line 3"), "{err}");
        let err =
            CompiledPolicy::from_yaml("s:\n  - server: a\n    methods: [ping]\n    tool: [x]\n")
                .expect_err("typo refused");
        assert!(err.contains("tool"), "{err}");
        let err = CompiledPolicy::from_yaml("s: [\n").expect_err("syntax error refused");
        assert!(err.contains("line"), "{err}");
    }

    #[test]
    fn entry_without_methods_is_refused() {
        let err = CompiledPolicy::from_yaml("s:\n  - server: a\n    tools: [x]\n")
            .expect_err("missing methods refused");
        assert!(err.contains("methods"), "{err}");
    }
}
