//! `AUTH_ISSUERS_FILE`: several trusted token issuers in one YAML file (format in
//! docs/contract.md), for deployments that mix identity providers (Cognito for agents, Keycloak
//! or Entra ID for people).

use std::collections::HashSet;
use std::path::Path;

use serde::Deserialize;

use super::issuer::{HttpAllowance, IssuerConfig, IssuerFields};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IssuersFile {
    issuers: Vec<IssuerFields>,
}

/// Reads and validates the issuers file. The error names the file, and the line and column
/// (YAML errors) or the entry and field (validation errors).
pub(crate) fn load(path: &Path, http: &HttpAllowance) -> Result<Vec<IssuerConfig>, String> {
    let shown = path.display();
    let text = std::fs::read_to_string(path)
        .map_err(|err| format!("{shown}: cannot read the issuers file: {err}"))?;
    parse(&text, http).map_err(|message| format!("{shown}: {message}"))
}

fn parse(text: &str, http: &HttpAllowance) -> Result<Vec<IssuerConfig>, String> {
    let file: IssuersFile = serde_norway::from_str(text).map_err(|err| err.to_string())?;
    if file.issuers.is_empty() {
        return Err("`issuers` lists no issuer".to_owned());
    }
    let mut issuers = Vec::with_capacity(file.issuers.len());
    let mut names = HashSet::new();
    let mut urls = HashSet::new();
    for (index, mut fields) in file.issuers.into_iter().enumerate() {
        let name = fields.name.take().map(|name| name.trim().to_owned());
        let Some(name) = name.filter(|name| !name.is_empty()) else {
            return Err(format!("issuers[{index}]: `name` is required"));
        };
        if !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(format!(
                "issuers[{index}]: name `{name}` may hold letters, digits, `-`, `_` and `.` only"
            ));
        }
        let issuer = fields
            .validate(
                name.clone(),
                |provider| format!("{}:{name}", provider.name()),
                http,
            )
            .map_err(|(field, reason)| format!("issuers[{index}] ({name}): `{field}` {reason}"))?;
        if !names.insert(name.clone()) {
            return Err(format!("issuers[{index}]: name `{name}` is used twice"));
        }
        // A token is matched to its issuer by `iss`: one `iss` must name one issuer.
        if !urls.insert(issuer.rules.issuer.clone()) {
            return Err(format!(
                "issuers[{index}] ({name}): issuer `{}` is listed twice",
                issuer.rules.issuer
            ));
        }
        issuers.push(issuer);
    }
    Ok(issuers)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jwks::fetch::KeySource;

    const EXAMPLE: &str = r#"
issuers:
  - name: agents
    provider: cognito
    region: us-east-1
    user_pool_id: us-east-1_AbCdEf123
    client_ids: [agent-app-1]
  - name: people
    provider: oidc
    issuer: https://keycloak.example.com/realms/mcp
    jwks_url: https://keycloak.example.com/realms/mcp/protocol/openid-connect/certs
    audiences: [mcp-gateway]
    groups_claim: groups
    leeway_seconds: 30
"#;

    fn parsed(text: &str) -> Result<Vec<IssuerConfig>, String> {
        parse(text, &HttpAllowance::default())
    }

    #[test]
    fn the_contract_example_reads_as_two_issuers() {
        let issuers = parsed(EXAMPLE).expect("valid");
        assert_eq!(issuers.len(), 2);
        assert_eq!(issuers[0].auth_method, "cognito:agents");
        assert_eq!(
            issuers[0].rules.issuer,
            "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_AbCdEf123"
        );
        assert_eq!(issuers[0].rules.groups_claim, "cognito:groups");
        assert!(issuers[0].cognito_pool.is_some());
        assert_eq!(issuers[1].auth_method, "oidc:people");
        assert_eq!(issuers[1].rules.leeway_seconds, 30);
        assert_eq!(
            issuers[1].key_source,
            KeySource::Url(
                "https://keycloak.example.com/realms/mcp/protocol/openid-connect/certs".into()
            )
        );
        assert_eq!(
            issuers[1].rules.audiences.as_deref(),
            Some(&["mcp-gateway".to_owned()][..])
        );
    }

    #[test]
    fn mistakes_are_refused_with_where_and_why() {
        let cases = [
            ("issuers: []", "lists no issuer"),
            (
                "issuers:\n  - provider: oidc\n    issuer: https://a\n",
                "`name` is required",
            ),
            (
                "issuers:\n  - name: a\n    provider: oidc\n    isuer: https://a\n",
                "line 4",
            ),
            (
                "issuers:\n  - name: a\n    provider: oidc\n    issuer: https://a\n  - name: a\n    provider: oidc\n    issuer: https://b\n",
                "used twice",
            ),
            (
                "issuers:\n  - name: a\n    provider: oidc\n    issuer: https://a\n  - name: b\n    provider: oidc\n    issuer: https://a\n",
                "listed twice",
            ),
            (
                "issuers:\n  - name: a\n    provider: oidc\n    issuer: http://idp.example/r\n",
                "issuers[0] (a): `issuer`",
            ),
            (
                "issuers:\n  - name: 'a b'\n    provider: oidc\n    issuer: https://a\n",
                "may hold",
            ),
            (
                "issuers:\n  - name: a\n    provider: cognito\n",
                "`region` is required",
            ),
        ];
        for (text, expected) in cases {
            let err = parsed(text).expect_err(text);
            assert!(err.contains(expected), "{text}\n=> {err}");
        }
    }
}
