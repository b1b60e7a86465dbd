//! The catalogue of egress OAuth providers: `providers.yml` (built in) plus an optional file of
//! the same shape, and the template variables (`{tenant}`, `{domain}`, …) in their URLs.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use url::Url;

use crate::oauth::{self, ClientAuth, ResponseShape};
use crate::settings::ConfigError;

/// The built-in catalogue.
pub const BUILT_IN: &str = include_str!("../../providers.yml");

/// One provider as the YAML file describes it (templates not yet filled in).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderDefinition {
    /// A name for people.
    #[serde(default)]
    pub display_name: Option<String>,
    /// The authorization endpoint (template).
    pub auth_url: String,
    /// The token endpoint (template).
    pub token_url: String,
    /// Default scopes.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// The authorization parameter for the scopes.
    #[serde(default = "default_scope_param")]
    pub scope_param: String,
    /// How scopes are joined.
    #[serde(default = "default_scope_separator")]
    pub scope_separator: String,
    /// Whether to send a PKCE S256 challenge.
    #[serde(default = "default_true")]
    pub requires_pkce: bool,
    /// Extra authorization parameters (values are templates).
    #[serde(default)]
    pub auth_params: BTreeMap<String, String>,
    /// `post` (default) or `basic`.
    #[serde(default)]
    pub token_auth: Option<String>,
    /// Member object of the token response holding the token.
    #[serde(default)]
    pub token_response_path: Option<String>,
    /// Look up the Atlassian cloud id after the grant.
    #[serde(default)]
    pub requires_cloud_id: bool,
    /// Where to look it up (template).
    #[serde(default)]
    pub cloud_id_url: Option<String>,
    /// Defaults of the template variables.
    #[serde(default)]
    pub variables: BTreeMap<String, String>,
}

fn default_scope_param() -> String {
    "scope".into()
}
fn default_scope_separator() -> String {
    " ".into()
}
fn default_true() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogueFile {
    providers: BTreeMap<String, ProviderDefinition>,
}

/// Atlassian's list of the sites a token may use.
pub const ATLASSIAN_ACCESSIBLE_RESOURCES: &str =
    "https://api.atlassian.com/oauth/token/accessible-resources";

/// The provider header that carries the Atlassian cloud id.
pub const CLOUD_ID_HEADER: &str = "X-Atlassian-Cloud-Id";

/// All known providers by name.
#[derive(Debug, Clone)]
pub struct Catalogue {
    providers: BTreeMap<String, ProviderDefinition>,
}

impl Catalogue {
    /// The built-in catalogue, plus `extra` (a file; its entries win) when given.
    pub fn load(extra: Option<&Path>) -> Result<Catalogue, ConfigError> {
        let mut catalogue = Catalogue::parse(BUILT_IN, "built-in providers.yml")?;
        if let Some(path) = extra {
            let text = std::fs::read_to_string(path).map_err(|err| {
                ConfigError::invalid("--providers-file", format!("{}: {err}", path.display()))
            })?;
            let more = Catalogue::parse(&text, &path.display().to_string())?;
            catalogue.providers.extend(more.providers);
        }
        Ok(catalogue)
    }

    /// Parses a catalogue file (`origin` names it in errors).
    pub fn parse(text: &str, origin: &str) -> Result<Catalogue, ConfigError> {
        let file: CatalogueFile = serde_norway::from_str(text).map_err(|err| {
            let at = err
                .location()
                .map(|at| format!(":{}:{}", at.line(), at.column()))
                .unwrap_or_default();
            ConfigError::invalid("--providers-file", format!("{origin}{at}: {err}"))
        })?;
        let mut providers = BTreeMap::new();
        for (name, definition) in file.providers {
            let name = name.to_ascii_lowercase();
            check_provider_name(&name).map_err(|reason| {
                ConfigError::invalid("--providers-file", format!("{origin}: {reason}"))
            })?;
            providers.insert(name, definition);
        }
        Ok(Catalogue { providers })
    }

    /// A provider's definition.
    pub fn get(&self, name: &str) -> Option<&ProviderDefinition> {
        self.providers.get(name)
    }

    /// The provider names, sorted.
    pub fn names(&self) -> Vec<&str> {
        self.providers.keys().map(String::as_str).collect()
    }
}

/// Provider names become file names (`<provider>-egress.json`): lower-case letters, digits,
/// `-` and `_`, at most 64, starting with a letter or digit.
pub fn check_provider_name(name: &str) -> Result<(), String> {
    let valid = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if valid {
        Ok(())
    } else {
        Err(format!(
            "provider name {name:?}: use lower-case letters, digits, '-' and '_' (at most 64)"
        ))
    }
}

/// A provider with every template filled in.
#[derive(Debug, Clone)]
pub struct Provider {
    /// Its catalogue name.
    pub name: String,
    /// A name for people.
    pub display_name: String,
    /// The authorization endpoint.
    pub auth_url: Url,
    /// The token endpoint.
    pub token_url: Url,
    /// Default scopes.
    pub scopes: Vec<String>,
    /// The authorization parameter for the scopes.
    pub scope_param: String,
    /// How scopes are joined.
    pub scope_separator: String,
    /// Whether to send a PKCE challenge.
    pub requires_pkce: bool,
    /// Extra authorization parameters.
    pub auth_params: Vec<(String, String)>,
    /// How a client secret is sent.
    pub token_auth: ClientAuth,
    /// Where the token response holds the token.
    pub token_response: ResponseShape,
    /// Where to look up the Atlassian cloud id, when required.
    pub cloud_id_url: Option<Url>,
}

impl ProviderDefinition {
    /// Fills the templates: `{name}` is replaced by `lookup(name)` (the set's
    /// `EGRESS_OAUTH_<NAME>_N`), else the definition's default. `var_setting` names the
    /// variable for an error message.
    pub fn resolve(
        &self,
        name: &str,
        lookup: &dyn Fn(&str) -> Option<String>,
        var_setting: &dyn Fn(&str) -> String,
    ) -> Result<Provider, ConfigError> {
        let fill = |template: &str, what: &str| -> Result<String, ConfigError> {
            fill_template(template, &|var| {
                lookup(var).or_else(|| self.variables.get(var).cloned())
            })
            .map_err(|problem| match problem {
                TemplateProblem::Unset(var) => ConfigError::Missing {
                    name: var_setting(&var),
                    why: format!("{{{var}}} in {what} of provider {name}"),
                },
                TemplateProblem::BadValue(var, value) => ConfigError::invalid(
                    var_setting(&var),
                    format!("{value:?} may only hold letters, digits, '-', '.', '_' and ':'"),
                ),
                TemplateProblem::Syntax(reason) => ConfigError::invalid(
                    "--providers-file",
                    format!("{what} of provider {name}: {reason}"),
                ),
            })
        };
        let url = |template: &str, what: &str| -> Result<Url, ConfigError> {
            let filled = fill(template, what)?;
            let url = oauth::parse_url(&format!("{what} of provider {name}"), &filled)?;
            oauth::require_secure_url(&format!("{what} of provider {name}"), &url)?;
            Ok(url)
        };
        let token_auth = match self.token_auth.as_deref() {
            None => ClientAuth::Post,
            Some(method) => ClientAuth::parse(&format!("token_auth of provider {name}"), method)?,
        };
        let cloud_id_url = if self.requires_cloud_id {
            Some(url(
                self.cloud_id_url
                    .as_deref()
                    .unwrap_or(ATLASSIAN_ACCESSIBLE_RESOURCES),
                "cloud_id_url",
            )?)
        } else {
            None
        };
        let mut auth_params = Vec::new();
        for (key, value) in &self.auth_params {
            auth_params.push((key.clone(), fill(value, &format!("auth_params.{key}"))?));
        }
        Ok(Provider {
            name: name.to_owned(),
            display_name: self.display_name.clone().unwrap_or_else(|| name.to_owned()),
            auth_url: url(&self.auth_url, "auth_url")?,
            token_url: url(&self.token_url, "token_url")?,
            scopes: self.scopes.clone(),
            scope_param: self.scope_param.clone(),
            scope_separator: self.scope_separator.clone(),
            requires_pkce: self.requires_pkce,
            auth_params,
            token_auth,
            token_response: ResponseShape::from_path(self.token_response_path.as_deref()).map_err(
                |reason| {
                    ConfigError::invalid("--providers-file", format!("provider {name}: {reason}"))
                },
            )?,
            cloud_id_url,
        })
    }
}

/// What went wrong filling a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateProblem {
    /// `{var}` has no value.
    Unset(String),
    /// `{var}`'s value would change the URL's structure.
    BadValue(String, String),
    /// An unclosed `{` or a bad variable name.
    Syntax(String),
}

/// Replaces each `{var}` in `template` with `value(var)`. Values may only hold letters, digits,
/// `-`, `.`, `_` and `:` (a tenant, a host name, a host:port), so that they cannot add a
/// path, a query or credentials to the URL.
pub fn fill_template(
    template: &str,
    value: &dyn Fn(&str) -> Option<String>,
) -> Result<String, TemplateProblem> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else {
            return Err(TemplateProblem::Syntax(format!(
                "unclosed {{ in {template:?}"
            )));
        };
        let var = &after[..close];
        if var.is_empty()
            || !var
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        {
            return Err(TemplateProblem::Syntax(format!(
                "{{{var}}} is not a variable (lower-case letters, digits, _)"
            )));
        }
        let filled = value(var).ok_or_else(|| TemplateProblem::Unset(var.to_owned()))?;
        if filled.is_empty()
            || !filled
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | ':'))
        {
            return Err(TemplateProblem::BadValue(var.to_owned(), filled));
        }
        out.push_str(&filled);
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn setting(var: &str) -> String {
        format!("EGRESS_OAUTH_{}_1", var.to_ascii_uppercase())
    }

    #[test]
    fn the_built_in_catalogue_resolves_with_its_defaults() {
        let catalogue = Catalogue::load(None).unwrap();
        for name in ["atlassian", "google", "github", "microsoft", "slack"] {
            assert!(catalogue.get(name).is_some(), "{name} missing");
        }
        let no_vars = |_: &str| None;
        let atlassian = catalogue
            .get("atlassian")
            .unwrap()
            .resolve("atlassian", &no_vars, &setting)
            .unwrap();
        assert_eq!(
            atlassian.cloud_id_url.unwrap().as_str(),
            ATLASSIAN_ACCESSIBLE_RESOURCES
        );
        assert!(
            atlassian
                .auth_params
                .contains(&("audience".into(), "api.atlassian.com".into()))
        );
        let microsoft = catalogue
            .get("microsoft")
            .unwrap()
            .resolve("microsoft", &no_vars, &setting)
            .unwrap();
        assert_eq!(
            microsoft.auth_url.as_str(),
            "https://login.microsoftonline.com/common/oauth2/v2.0/authorize"
        );
        let slack = catalogue
            .get("slack")
            .unwrap()
            .resolve("slack", &no_vars, &setting)
            .unwrap();
        assert_eq!(slack.scope_param, "user_scope");
        assert_eq!(slack.token_response, ResponseShape::SlackUser);
    }

    #[test]
    fn template_variables_come_from_the_provider_set() {
        let catalogue = Catalogue::load(None).unwrap();
        let tenant = |var: &str| (var == "tenant").then(|| "contoso.onmicrosoft.com".to_owned());
        let microsoft = catalogue
            .get("microsoft")
            .unwrap()
            .resolve("microsoft", &tenant, &setting)
            .unwrap();
        assert_eq!(
            microsoft.token_url.as_str(),
            "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token"
        );
        let error = catalogue
            .get("okta")
            .unwrap()
            .resolve("okta", &|_| None, &setting)
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "EGRESS_OAUTH_DOMAIN_1 is not set ({domain} in auth_url of provider okta)"
        );
        let evil = |_: &str| Some("evil.example/steal?x=".to_owned());
        let error = catalogue
            .get("okta")
            .unwrap()
            .resolve("okta", &evil, &setting)
            .unwrap_err();
        assert!(
            error.to_string().starts_with("EGRESS_OAUTH_DOMAIN_1:"),
            "{error}"
        );
    }

    #[test]
    fn a_providers_file_adds_and_replaces_entries() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("providers.yml");
        std::fs::write(
            &path,
            "providers:\n  Corp:\n    auth_url: https://sso.corp.example/authorize\n    token_url: https://sso.corp.example/token\n  github:\n    auth_url: https://github.corp.example/login/oauth/authorize\n    token_url: https://github.corp.example/login/oauth/access_token\n",
        )
        .unwrap();
        let catalogue = Catalogue::load(Some(&path)).unwrap();
        assert!(catalogue.get("corp").is_some());
        assert_eq!(
            catalogue.get("github").unwrap().auth_url,
            "https://github.corp.example/login/oauth/authorize"
        );
        assert!(catalogue.get("google").is_some());
    }

    #[test]
    fn a_bad_providers_file_is_refused_with_its_position() {
        let error = Catalogue::parse(
            "providers:\n  x:\n    auth_url: a\n    tokn_url: b\n",
            "p.yml",
        )
        .unwrap_err()
        .to_string();
        assert!(error.starts_with("--providers-file: p.yml:"), "{error}");
        assert!(error.contains("tokn_url"), "{error}");
        let error = Catalogue::parse(
            "providers:\n  ../etc:\n    auth_url: https://a\n    token_url: https://b\n",
            "p.yml",
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("provider name"), "{error}");
    }

    #[test]
    fn provider_urls_must_be_https_unless_loopback() {
        let catalogue = Catalogue::parse(
            "providers:\n  plain:\n    auth_url: http://sso.example/authorize\n    token_url: https://sso.example/token\n",
            "p.yml",
        )
        .unwrap();
        let error = catalogue
            .get("plain")
            .unwrap()
            .resolve("plain", &|_| None, &setting)
            .unwrap_err();
        assert!(error.to_string().contains("plain http"), "{error}");
    }
}
