//! People's browser sign-in driven over plain HTTP, without a browser: through the gateway's
//! `/oauth2/start`, the real IdP's login page (username and password typed into its form), and
//! back to `/oauth2/callback`. Every hop is checked and followed by hand, with one cookie jar
//! per host, as a browser keeps them. The browser test (tests/browser.rs) walks the same flow
//! in Chromium; this lets every gateway's scenario hold a real session cookie.

use std::collections::{BTreeMap, HashMap};

/// The cookies of each host (`host:port`), by name.
#[derive(Debug, Default)]
struct Jar(HashMap<String, BTreeMap<String, String>>);

impl Jar {
    fn header(&self, url: &reqwest::Url) -> Option<String> {
        let cookies = self.0.get(&host_of(url))?;
        (!cookies.is_empty()).then(|| {
            cookies
                .iter()
                .map(|(name, value)| format!("{name}={value}"))
                .collect::<Vec<_>>()
                .join("; ")
        })
    }

    fn store(&mut self, url: &reqwest::Url, response: &reqwest::Response) {
        let cookies = self.0.entry(host_of(url)).or_default();
        for set in response.headers().get_all("set-cookie") {
            let Ok(set) = set.to_str() else { continue };
            let mut parts = set.split(';');
            let Some((name, value)) = parts.next().and_then(|pair| pair.split_once('=')) else {
                continue;
            };
            let removed = value.is_empty()
                || parts.any(|attribute| {
                    let attribute = attribute.trim().to_ascii_lowercase();
                    attribute == "max-age=0" || attribute.contains("1970")
                });
            if removed {
                cookies.remove(name.trim());
            } else {
                cookies.insert(name.trim().to_owned(), value.trim().to_owned());
            }
        }
    }

    /// The value of cookie `name` of the host of `url`.
    fn get(&self, url: &reqwest::Url, name: &str) -> Option<String> {
        self.0.get(&host_of(url))?.get(name).cloned()
    }
}

fn host_of(url: &reqwest::Url) -> String {
    format!(
        "{}:{}",
        url.host_str().unwrap_or_default(),
        url.port_or_known_default().unwrap_or_default()
    )
}

/// Signs `username` in at the gateway `origin` (e.g. `http://127.0.0.1:8080`) and returns the
/// session cookie's value (`mcp_session`), or what went wrong at which hop.
pub async fn sign_in(origin: &str, username: &str, password: &str) -> Result<String, String> {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|err| err.to_string())?;
    let gateway = reqwest::Url::parse(origin).map_err(|err| err.to_string())?;
    let done = gateway.join("/ui/").map_err(|err| err.to_string())?;
    let mut url = gateway
        .join("/oauth2/start?rd=%2Fui%2F")
        .map_err(|err| err.to_string())?;
    let mut form: Option<Vec<(&str, &str)>> = None;
    let mut jar = Jar::default();
    for hop in 0..20 {
        let mut request = match form.take() {
            Some(fields) => client.post(url.clone()).form(&fields),
            None => client.get(url.clone()),
        };
        if let Some(cookies) = jar.header(&url) {
            request = request.header("cookie", cookies);
        }
        let response = request
            .send()
            .await
            .map_err(|err| format!("hop {hop} ({url}): {err}"))?;
        jar.store(&url, &response);
        let status = response.status();
        if status.is_redirection() {
            let location = response
                .headers()
                .get("location")
                .and_then(|value| value.to_str().ok())
                .ok_or_else(|| format!("hop {hop} ({url}): {status} without a Location"))?;
            url = url
                .join(location)
                .map_err(|err| format!("hop {hop}: bad Location {location}: {err}"))?;
            if url == done {
                return jar
                    .get(&gateway, "mcp_session")
                    .ok_or_else(|| "back on /ui/ without a session cookie".to_owned());
            }
            continue;
        }
        let page = response.text().await.unwrap_or_default();
        if status.is_success() && page.contains(r#"id="username""#) {
            // The IdP's login form: post the credentials to its action.
            let action = page
                .split(r#"action=""#)
                .nth(1)
                .and_then(|rest| rest.split('"').next())
                .ok_or_else(|| format!("hop {hop}: a login page without a form action"))?;
            url = url
                .join(action)
                .map_err(|err| format!("hop {hop}: bad form action {action}: {err}"))?;
            form = Some(vec![("username", username), ("password", password)]);
            continue;
        }
        let excerpt: String = page.chars().take(400).collect();
        return Err(format!("hop {hop} ({url}): {status}: {excerpt}"));
    }
    Err("no session after 20 hops".to_owned())
}

/// The value of the cookie `name` that `response` sets (empty when it clears it).
pub fn set_cookie(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .filter_map(|value| value.split(';').next()?.split_once('='))
        .find(|(cookie, _)| cookie.trim() == name)
        .map(|(_, value)| value.trim().to_owned())
}
