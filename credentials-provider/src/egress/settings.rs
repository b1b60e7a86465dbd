//! The numbered provider sets of the settings (`EGRESS_*_N`), checked.

use std::collections::{BTreeMap, BTreeSet};

use url::Url;

use super::callback;
use super::providers::{Catalogue, Provider};
use super::token::token_file_name;
use crate::oauth::{self, ClientAuth, TokenClient};
use crate::secret::Secret;
use crate::settings::{ConfigError, Settings};

/// The redirect URI when none is set (what the providers' app registrations usually name).
pub const DEFAULT_REDIRECT_URI: &str = "http://localhost:8080/callback";

/// One numbered provider set, checked.
#[derive(Debug, Clone)]
pub struct EgressSet {
    /// The `N` of its variables.
    pub index: u32,
    /// The provider, templates filled in.
    pub provider: Provider,
    /// The OAuth client id.
    pub client_id: String,
    /// The client secret (`None`: public client).
    pub client_secret: Option<Secret>,
    /// The redirect URI (loopback).
    pub redirect_uri: Url,
    /// The scopes to ask for.
    pub scopes: Vec<String>,
    /// The MCP server (gateway path) that gets the token.
    pub mcp_server: String,
    /// A chosen Atlassian cloud id.
    pub cloud_id: Option<String>,
}

impl EgressSet {
    /// The token file of this provider.
    pub fn file_name(&self) -> String {
        token_file_name(&self.provider.name)
    }

    pub(crate) fn setting(&self, stem: &str) -> String {
        format!("{stem}_{}", self.index)
    }

    pub(crate) fn token_client(&self) -> TokenClient {
        TokenClient {
            token_url: self.provider.token_url.clone(),
            client_id: self.client_id.clone(),
            auth: match self.client_secret {
                Some(_) => self.provider.token_auth,
                None => ClientAuth::None,
            },
            client_secret: self.client_secret.clone(),
        }
    }
}

/// Checks an MCP server name: it becomes a path segment of the gateway URL.
pub fn check_server_name(setting: &str, name: &str) -> Result<(), ConfigError> {
    let valid = !name.is_empty()
        && name != "."
        && name != ".."
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if valid {
        Ok(())
    } else {
        Err(ConfigError::invalid(
            setting,
            format!("{name:?} is not an MCP server name (letters, digits, '-', '_', '.')"),
        ))
    }
}

/// Every numbered provider set in the settings, in order of `N`.
pub fn sets_from_settings(
    settings: &Settings,
    catalogue: &Catalogue,
) -> Result<Vec<EgressSet>, ConfigError> {
    let mut indices = BTreeSet::new();
    for prefix in ["EGRESS_OAUTH_CLIENT_ID_", "EGRESS_PROVIDER_NAME_"] {
        for name in settings.names_with_prefix(prefix) {
            if settings.get(name).is_none() {
                continue;
            }
            let suffix = &name[prefix.len()..];
            let index: u32 = suffix
                .parse()
                .map_err(|_| ConfigError::invalid(name, "provider sets are numbered: _1, _2, …"))?;
            indices.insert(index);
        }
    }
    let mut sets = Vec::new();
    let mut seen: BTreeMap<String, u32> = BTreeMap::new();
    for index in indices {
        let set = set_from_settings(settings, catalogue, index)?;
        if let Some(previous) = seen.insert(set.provider.name.clone(), index) {
            return Err(ConfigError::invalid(
                format!("EGRESS_PROVIDER_NAME_{index}"),
                format!(
                    "provider {} is already set {previous}; one set per provider (they share a token file)",
                    set.provider.name
                ),
            ));
        }
        sets.push(set);
    }
    Ok(sets)
}

fn set_from_settings(
    settings: &Settings,
    catalogue: &Catalogue,
    index: u32,
) -> Result<EgressSet, ConfigError> {
    let var = |stem: &str| format!("{stem}_{index}");
    let name_setting = var("EGRESS_PROVIDER_NAME");
    let provider_name = settings
        .require(
            &name_setting,
            "which provider this set is for, e.g. atlassian",
        )?
        .to_ascii_lowercase();
    let Some(definition) = catalogue.get(&provider_name) else {
        return Err(ConfigError::invalid(
            name_setting,
            format!(
                "unknown provider {provider_name:?}; known: {} (add others with --providers-file)",
                catalogue.names().join(", ")
            ),
        ));
    };
    let lookup = |template_var: &str| {
        settings
            .get(&var(&format!(
                "EGRESS_OAUTH_{}",
                template_var.to_ascii_uppercase()
            )))
            .map(str::to_owned)
    };
    let var_setting = |template_var: &str| {
        var(&format!(
            "EGRESS_OAUTH_{}",
            template_var.to_ascii_uppercase()
        ))
    };
    let provider = definition.resolve(&provider_name, &lookup, &var_setting)?;
    let client_id = settings
        .require(&var("EGRESS_OAUTH_CLIENT_ID"), "the OAuth app's client id")?
        .to_owned();
    let client_secret = settings
        .get(&var("EGRESS_OAUTH_CLIENT_SECRET"))
        .map(Secret::new);
    let redirect_setting = var("EGRESS_OAUTH_REDIRECT_URI");
    let redirect_uri = oauth::parse_url(
        &redirect_setting,
        settings
            .get(&redirect_setting)
            .unwrap_or(DEFAULT_REDIRECT_URI),
    )?;
    if !callback::is_servable(&redirect_uri) {
        return Err(ConfigError::invalid(
            redirect_setting,
            format!(
                "{redirect_uri} must be http:// on localhost, 127.0.0.1 or [::1] with a port: \
                 this program's callback server receives the answer there"
            ),
        ));
    }
    let scopes = match settings.get(&var("EGRESS_OAUTH_SCOPE")) {
        Some(scopes) => crate::settings::split_list(scopes),
        None => provider.scopes.clone(),
    };
    let server_setting = var("EGRESS_MCP_SERVER_NAME");
    let mcp_server = settings
        .get(&server_setting)
        .unwrap_or(&provider_name)
        .to_owned();
    check_server_name(&server_setting, &mcp_server)?;
    Ok(EgressSet {
        index,
        provider,
        client_id,
        client_secret,
        redirect_uri,
        scopes,
        mcp_server,
        cloud_id: settings
            .get(&var("EGRESS_OAUTH_CLOUD_ID"))
            .map(str::to_owned),
    })
}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::egress::providers::Catalogue;

    fn settings(pairs: &[(&str, &str)]) -> Settings {
        Settings::from_pairs(pairs.iter().copied())
    }

    fn catalogue() -> Catalogue {
        Catalogue::load(None).unwrap()
    }

    /// The sets of these settings, with the built-in catalogue.
    pub(crate) fn sets(pairs: &[(&str, &str)]) -> Vec<EgressSet> {
        sets_from_settings(&settings(pairs), &catalogue()).unwrap()
    }

    #[test]
    fn numbered_sets_are_read_in_order_with_defaults() {
        let sets = sets_from_settings(
            &settings(&[
                ("EGRESS_OAUTH_CLIENT_ID_2", "gh-client"),
                ("EGRESS_PROVIDER_NAME_2", "github"),
                ("EGRESS_OAUTH_CLIENT_ID_1", "atl-client"),
                ("EGRESS_OAUTH_CLIENT_SECRET_1", "atl-secret"),
                ("EGRESS_PROVIDER_NAME_1", "Atlassian"),
                ("EGRESS_OAUTH_REDIRECT_URI_1", "http://127.0.0.1:9000/cb"),
                ("EGRESS_OAUTH_SCOPE_1", "read:jira-work offline_access"),
                ("EGRESS_MCP_SERVER_NAME_1", "jira"),
            ]),
            &catalogue(),
        )
        .unwrap();
        assert_eq!(sets.len(), 2);
        let atlassian = &sets[0];
        assert_eq!(atlassian.index, 1);
        assert_eq!(atlassian.provider.name, "atlassian");
        assert_eq!(atlassian.scopes, ["read:jira-work", "offline_access"]);
        assert_eq!(atlassian.mcp_server, "jira");
        assert_eq!(atlassian.file_name(), "atlassian-egress.json");
        let github = &sets[1];
        assert_eq!(github.redirect_uri.as_str(), DEFAULT_REDIRECT_URI);
        assert!(github.client_secret.is_none());
        assert_eq!(github.mcp_server, "github");
        assert_eq!(github.scopes, ["read:user", "repo"]);
    }

    #[test]
    fn set_errors_name_the_variable() {
        let error = |pairs: &[(&str, &str)]| {
            sets_from_settings(&settings(pairs), &catalogue())
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            error(&[("EGRESS_OAUTH_CLIENT_ID_3", "x")]),
            "EGRESS_PROVIDER_NAME_3 is not set (which provider this set is for, e.g. atlassian)"
        );
        assert!(
            error(&[
                ("EGRESS_OAUTH_CLIENT_ID_1", "x"),
                ("EGRESS_PROVIDER_NAME_1", "nope")
            ])
            .starts_with("EGRESS_PROVIDER_NAME_1: unknown provider \"nope\"; known: ")
        );
        assert!(
            error(&[
                ("EGRESS_OAUTH_CLIENT_ID_1", "x"),
                ("EGRESS_PROVIDER_NAME_1", "google"),
                (
                    "EGRESS_OAUTH_REDIRECT_URI_1",
                    "https://app.example/callback"
                ),
            ])
            .starts_with(
                "EGRESS_OAUTH_REDIRECT_URI_1: https://app.example/callback must be http://"
            )
        );
        assert!(
            error(&[
                ("EGRESS_OAUTH_CLIENT_ID_1", "x"),
                ("EGRESS_PROVIDER_NAME_1", "google"),
                ("EGRESS_OAUTH_CLIENT_ID_2", "y"),
                ("EGRESS_PROVIDER_NAME_2", "google"),
            ])
            .contains("already set 1")
        );
        assert!(
            error(&[("EGRESS_OAUTH_CLIENT_ID_X", "x")])
                .starts_with("EGRESS_OAUTH_CLIENT_ID_X: provider sets are numbered")
        );
        assert!(
            error(&[
                ("EGRESS_OAUTH_CLIENT_ID_1", "x"),
                ("EGRESS_PROVIDER_NAME_1", "google"),
                ("EGRESS_MCP_SERVER_NAME_1", "../admin"),
            ])
            .starts_with("EGRESS_MCP_SERVER_NAME_1:")
        );
    }

    #[test]
    fn template_variables_per_set() {
        let sets = sets_from_settings(
            &settings(&[
                ("EGRESS_OAUTH_CLIENT_ID_1", "x"),
                ("EGRESS_PROVIDER_NAME_1", "microsoft"),
                ("EGRESS_OAUTH_TENANT_1", "contoso.onmicrosoft.com"),
            ]),
            &catalogue(),
        )
        .unwrap();
        assert_eq!(
            sets[0].provider.auth_url.as_str(),
            "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/authorize"
        );
    }
}
