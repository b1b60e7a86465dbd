//! Atlassian: after a grant, the site (cloud id) the token reaches, looked up at
//! accessible-resources and sent as `X-Atlassian-Cloud-Id`.

use serde::Deserialize;
use serde_json::Value;

use super::flow::EgressError;
use super::providers::CLOUD_ID_HEADER;
use super::settings::EgressSet;
use super::token::EgressToken;
use crate::oauth;

/// One site of Atlassian's accessible-resources answer.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct AccessibleResource {
    /// The cloud id.
    pub id: String,
    /// The site URL, e.g. `https://example.atlassian.net`.
    #[serde(default)]
    pub url: Option<String>,
    /// The site name.
    #[serde(default)]
    pub name: Option<String>,
}

/// Picks the site: the configured cloud id (which must be among them), else the only or first
/// one.
pub fn choose_cloud_id(
    resources: &[AccessibleResource],
    wanted: Option<&str>,
) -> Result<AccessibleResource, String> {
    match wanted {
        Some(wanted) => resources
            .iter()
            .find(|resource| resource.id == wanted)
            .cloned()
            .ok_or_else(|| {
                format!(
                    "the token does not reach cloud id {wanted}; it reaches: {}",
                    resources
                        .iter()
                        .map(|r| format!("{} ({})", r.id, r.url.as_deref().unwrap_or("?")))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }),
        None => resources.first().cloned().ok_or_else(|| {
            "the token reaches no Atlassian site (did the user pick one on the consent page?)"
                .to_owned()
        }),
    }
}

/// After a grant, for a provider that needs the site (`requires_cloud_id`): a refreshed token
/// reaches the sites the stored one did, so its headers are carried over; a new one is looked
/// up. Other providers: nothing to do.
pub(crate) async fn complete(
    set: &EgressSet,
    http: &reqwest::Client,
    token: &mut EgressToken,
    previous: Option<&EgressToken>,
) -> Result<(), EgressError> {
    let Some(url) = &set.provider.cloud_id_url else {
        return Ok(());
    };
    if let Some(previous) = previous.filter(|p| p.headers.contains_key(CLOUD_ID_HEADER)) {
        token.headers = previous.headers.clone();
        token.site_url = previous.site_url.clone();
        return Ok(());
    }
    lookup(set, http, url, token).await
}

async fn lookup(
    set: &EgressSet,
    http: &reqwest::Client,
    url: &url::Url,
    token: &mut EgressToken,
) -> Result<(), EgressError> {
    let failure = |reason: String| EgressError::CloudId {
        provider: set.provider.name.clone(),
        reason,
    };
    let response = http
        .get(url.clone())
        .bearer_auth(token.grant.access_token.expose())
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|err| failure(format!("{url}: {}", oauth::describe_http_error(&err))))?;
    let status = response.status();
    if !status.is_success() {
        return Err(failure(format!("{url} answered {status}")));
    }
    let resources: Vec<AccessibleResource> = response
        .json::<Value>()
        .await
        .ok()
        .and_then(|json| serde_json::from_value(json).ok())
        .ok_or_else(|| failure(format!("{url} did not answer a list of sites")))?;
    let chosen = choose_cloud_id(&resources, set.cloud_id.as_deref()).map_err(failure)?;
    if resources.len() > 1 && set.cloud_id.is_none() {
        tracing::warn!(
            "{}: the token reaches {} sites; using {} ({}); set {} to choose",
            set.provider.name,
            resources.len(),
            chosen.id,
            chosen.url.as_deref().unwrap_or("?"),
            set.setting("EGRESS_OAUTH_CLOUD_ID")
        );
    }
    token.headers.insert(CLOUD_ID_HEADER.to_owned(), chosen.id);
    token.site_url = chosen.url;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn atlassian_cloud_id_is_chosen_from_accessible_resources() {
        // The shape of https://api.atlassian.com/oauth/token/accessible-resources.
        let resources: Vec<AccessibleResource> = serde_json::from_str(
            r#"[{"id":"1324a887-45db-1bf4-1e99-ef0ff456d421","name":"Site one","url":"https://one.atlassian.net","scopes":["read:jira-work"],"avatarUrl":"https://x"},
                {"id":"2f0c8a1d-0000-4000-8000-000000000002","name":"Site two","url":"https://two.atlassian.net","scopes":[]}]"#,
        )
        .unwrap();
        let first = choose_cloud_id(&resources, None).unwrap();
        assert_eq!(first.id, "1324a887-45db-1bf4-1e99-ef0ff456d421");
        let second =
            choose_cloud_id(&resources, Some("2f0c8a1d-0000-4000-8000-000000000002")).unwrap();
        assert_eq!(second.url.as_deref(), Some("https://two.atlassian.net"));
        let error = choose_cloud_id(&resources, Some("nope")).unwrap_err();
        assert!(error.contains("does not reach cloud id nope"), "{error}");
        assert!(choose_cloud_id(&[], None).is_err());
    }
}
