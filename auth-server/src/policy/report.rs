//! What the policy says, for people: `auth-server explain` (which entry allows a request, or
//! why none does; which tools a caller sees) and `auth-server check` (counts and
//! cross-references). Never on the request path.

use std::collections::HashSet;

use super::{Access, CompiledPolicy, Grant, NameSet};

impl CompiledPolicy {
    /// Which entry allows `access` on `server` for `scopes`, or why none does: one line per
    /// scope considered. For `auth-server explain`; never on the request path.
    pub fn explain(&self, scopes: &[&str], server: &str, access: Access<'_>) -> Explanation {
        let mut notes = Vec::new();
        for name in scopes {
            let Some(scope) = self.scopes.get(*name) else {
                notes.push(format!("scope `{name}` is not defined in the policy"));
                continue;
            };
            let grants: Vec<&Grant> = scope.grants_for(server).collect();
            if grants.is_empty() {
                notes.push(format!("scope `{name}` has no entry for server `{server}`"));
            }
            for grant in grants {
                if grant.allows(access) {
                    return Explanation {
                        allowed_by: Some(grant.origin.clone()),
                        notes,
                    };
                }
                notes.push(match access {
                    Access::Method {
                        method,
                        tool: Some(tool),
                    } if grant.methods.contains(method) => {
                        format!(
                            "entry {} allows `{method}` but does not list tool `{tool}`",
                            grant.origin
                        )
                    }
                    Access::Method { method, .. } => {
                        format!("entry {} does not allow method `{method}`", grant.origin)
                    }
                    Access::AnyEntry => format!("entry {} does not apply", grant.origin),
                });
            }
        }
        if scopes.is_empty() {
            notes.push("the caller has no scope".to_owned());
        }
        Explanation {
            allowed_by: None,
            notes,
        }
    }

    /// Counts and cross-references for `auth-server check`.
    pub fn summary(&self) -> PolicySummary {
        let mapped: HashSet<&str> = self
            .group_mappings
            .values()
            .flatten()
            .map(String::as_str)
            .collect();
        let mut servers: Vec<String> = Vec::new();
        let mut tools: HashSet<String> = HashSet::new();
        let mut unreachable = Vec::new();
        for (name, scope) in &self.scopes {
            let grants = scope
                .by_server
                .values()
                .flatten()
                .chain(scope.any_server.iter());
            let mut has_grant = false;
            for grant in grants {
                has_grant = true;
                if let NameSet::Only(names) = &grant.tools {
                    tools.extend(names.iter().cloned());
                }
            }
            servers.extend(scope.by_server.keys().cloned());
            if !scope.any_server.is_empty() {
                servers.push("*".to_owned());
            }
            if has_grant && !mapped.contains(name.as_str()) {
                unreachable.push(name.clone());
            }
        }
        servers.sort_unstable();
        servers.dedup();
        unreachable.sort_unstable();
        let mut tools: Vec<String> = tools.into_iter().collect();
        tools.sort_unstable();
        PolicySummary {
            groups: self.group_mappings.len(),
            scopes: self.scopes.len(),
            servers,
            tools,
            scopes_no_group_maps_to: unreachable,
        }
    }
}

/// The outcome of [`CompiledPolicy::explain`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation {
    /// The entry that allows the request (`scope[index]`), if one does.
    pub allowed_by: Option<String>,
    /// Why the entries considered before (or instead) did not allow it.
    pub notes: Vec<String>,
}

/// What `auth-server check` prints about a policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicySummary {
    /// Groups mapped.
    pub groups: usize,
    /// Scope names defined, `UI-Scopes` included.
    pub scopes: usize,
    /// Servers named by some entry (`*` for a wildcard entry).
    pub servers: Vec<String>,
    /// Tools named by some entry.
    pub tools: Vec<String>,
    /// Scopes with entries that no group maps to: reachable only through a token's `scope`
    /// claim (when the token has no groups).
    pub scopes_no_group_maps_to: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::super::tests::{policy, tools_call};
    use super::*;

    #[test]
    fn explain_names_the_entry_or_why_none_allows() {
        let policy = policy();
        let call = tools_call("print_stock_data");
        let allowed = policy.explain(&["restricted/read", "restricted/execute"], "fininfo", call);
        assert_eq!(allowed.allowed_by.as_deref(), Some("restricted/execute[0]"));
        assert_eq!(
            allowed.notes,
            ["entry restricted/read[0] does not allow method `tools/call`"]
        );
        let denied = policy.explain(
            &["restricted/execute"],
            "fininfo",
            tools_call("delete_all_portfolios"),
        );
        assert_eq!(denied.allowed_by, None);
        assert_eq!(
            denied.notes,
            [
                "entry restricted/execute[0] allows `tools/call` but does not list tool `delete_all_portfolios`"
            ]
        );
        let nothing = policy.explain(&["restricted/read"], "atlassian", Access::AnyEntry);
        assert_eq!(
            nothing.notes,
            ["scope `restricted/read` has no entry for server `atlassian`"]
        );
    }

    #[test]
    fn summary_counts_and_finds_scopes_no_group_reaches() {
        let yaml = "group_mappings:\n  g: [a]\na:\n  - server: s1\n    methods: [tools/call]\n    tools: [t1]\nb:\n  - server: '*'\n    methods: all\n";
        let summary = CompiledPolicy::from_yaml(yaml).expect("compiles").summary();
        assert_eq!(summary.groups, 1);
        assert_eq!(summary.scopes, 2);
        assert_eq!(summary.servers, ["*", "s1"]);
        assert_eq!(summary.tools, ["t1"]);
        assert_eq!(summary.scopes_no_group_maps_to, ["b"]);
    }

    #[test]
    fn agent_action_entries_of_the_registry_are_accepted_and_grant_nothing() {
        let yaml = r#"
group_mappings:
  g: [s]
s:
  - server: fininfo
    methods: [tools/list]
  - agents:
      actions:
        - action: list_agents
          resources: [all]
"#;
        let policy = CompiledPolicy::from_yaml(yaml).expect("an agents entry is accepted");
        let list = Access::Method {
            method: "tools/list",
            tool: None,
        };
        assert!(policy.allows(&["s"], "fininfo", list));
        assert!(!policy.allows(&["s"], "agents", Access::AnyEntry));
        // Only `agents` is new: a misspelt key still stops the start, with its position.
        let typo = "s:\n  - agent: {actions: []}\n";
        let err = CompiledPolicy::from_yaml(typo).expect_err("typo refused");
        assert!(err.contains("agent") && err.contains("line 2"), "{err}");
        let mixed = "s:\n  - agents: {actions: []}\n    methods: [ping]\n";
        let err = CompiledPolicy::from_yaml(mixed).expect_err("half an entry refused");
        assert!(err.contains("line 2"), "{err}");
    }
}
