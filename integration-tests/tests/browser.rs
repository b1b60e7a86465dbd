//! People in a browser, end to end: Debian's Chromium, headless, driven over WebDriver
//! (chromedriver) through nginx, against the real oidc-provider, auth-server and MCP servers.
//! One stack, one walk through the flow: `/ui/` sends the browser to the IdP's login page, the
//! demo user signs in with a password, lands back on `/ui/` and sees their name and their
//! tools, calls an allowed tool from the page, and signs out. Then, on the same stack, what a
//! browser must never get: a cross-site POST with the session cookie, an `rd` that leaves the
//! gateway, a callback whose `state` or `nonce` is not the sign-in's, the cookie upstream.
//!
//! Screenshots of each step are kept (the test prints the directory). Chromium or chromedriver
//! missing fails the test with how to install them (scripts/setup.sh does): never a skip.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use auth_server::session::{Session, SessionRules};
use base64::Engine as _;
use fantoccini::{Client, ClientBuilder, Locator};
use integration_tests::mcp_client::{ConnectOptions, McpClient};
use integration_tests::people::set_cookie;
use integration_tests::stack::{
    DEMO_PERSON, Front, GatewayStack, Process, SESSION_KEY, free_port, repo_root, require,
    wait_for_port,
};
use serde_json::{Value, json};

/// The tools scopes.yml lets the demo person's group call.
const CALLABLE: [(&str, &str); 3] = [
    ("currenttime", "current_time_by_timezone"),
    ("currenttime", "countdown"),
    ("fininfo", "get_stock_aggregates"),
];
const COOKIE: &str = "mcp_session";
const PENDING_COOKIE: &str = "mcp_signin";

/// Where the screenshots go: under the build directory, emptied first.
fn artifacts_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"));
    let dir = target.join("test-artifacts").join("browser");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("artifacts directory");
    dir
}

/// Headless Chromium under chromedriver, with the flags that keep it off the network (it
/// reaches only loopback) and a fresh profile.
struct Browser {
    client: Client,
    _driver: Process,
    shots: PathBuf,
    step: usize,
}

impl Browser {
    async fn start(workdir: &Path) -> Browser {
        require(
            "Chromium",
            Path::new("/usr/bin/chromium").exists(),
            "apt-get install chromium chromium-driver",
        );
        require(
            "chromedriver",
            Path::new("/usr/bin/chromedriver").exists(),
            "apt-get install chromium-driver",
        );
        let port = free_port();
        let mut command = Command::new("/usr/bin/chromedriver");
        command
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1");
        let driver = Process::spawn(
            "chromedriver",
            &mut command,
            workdir.join("chromedriver.log"),
        );
        wait_for_port(format!("127.0.0.1:{port}").parse().unwrap(), "chromedriver").await;
        let profile = workdir.join("chromium-profile");
        let args = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--disable-dev-shm-usage",
            "--window-size=1100,1400",
            &format!("--user-data-dir={}", profile.display()),
        ];
        let mut capabilities = serde_json::Map::new();
        capabilities.insert("browserName".into(), json!("chrome"));
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({"binary": "/usr/bin/chromium", "args": args}),
        );
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .unwrap_or_else(|err| {
                panic!(
                    "chromedriver did not start Chromium: {err}; log: {}",
                    workdir.join("chromedriver.log").display()
                )
            });
        let shots = artifacts_dir();
        eprintln!("browser test: screenshots in {}", shots.display());
        Browser {
            client,
            _driver: driver,
            shots,
            step: 0,
        }
    }

    async fn screenshot(&mut self, name: &str) {
        self.step += 1;
        let png = self.client.screenshot().await.expect("screenshot");
        let path = self.shots.join(format!("{:02}-{name}.png", self.step));
        std::fs::write(&path, png).expect("screenshot written");
    }

    async fn wait_for(&self, css: &str) -> fantoccini::elements::Element {
        self.client
            .wait()
            .at_most(Duration::from_secs(20))
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|err| {
                let url = futures_now(self.client.current_url());
                panic!("no `{css}` within 20 s (at {url:?}): {err}")
            })
    }

    /// Types a username and a password into the IdP's login form.
    async fn type_credentials(&self, username: &str, password: &str) {
        for (field, text) in [("#username", username), ("#password", password)] {
            let input = self.wait_for(field).await;
            input.clear().await.unwrap();
            input.send_keys(text).await.unwrap();
        }
    }

    async fn text(&self, css: &str) -> String {
        self.wait_for(css).await.text().await.expect("text")
    }

    async fn url(&self) -> String {
        self.client.current_url().await.expect("url").to_string()
    }

    async fn cookie(&self, name: &str) -> Option<String> {
        self.client
            .get_named_cookie(name)
            .await
            .ok()
            .map(|cookie| cookie.value().to_owned())
    }
}

/// Reads a future's value when it is ready at once (for a panic message).
fn futures_now<F: std::future::Future>(future: F) -> Option<F::Output> {
    use std::task::{Context, Poll, Waker};
    let mut future = std::pin::pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(value) => Some(value),
        Poll::Pending => None,
    }
}

/// An HTTP client that follows no redirect: each hop is checked.
fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// `/oauth2/userinfo` with a session cookie: status and body.
async fn refresh_copy(http: &reqwest::Client, origin: &str, cookie: &str) -> (u16, Value) {
    let response = http
        .get(format!("{origin}/oauth2/userinfo"))
        .header("cookie", format!("{COOKIE}={cookie}"))
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

/// The tools the page shows, per server, sorted.
async fn tools_on_page(browser: &Browser) -> Vec<(String, String)> {
    let mut shown = Vec::new();
    for section in browser
        .client
        .find_all(Locator::Css("section.server"))
        .await
        .unwrap()
    {
        let server = section.attr("data-server").await.unwrap().unwrap();
        for item in section.find_all(Locator::Css("li.tool")).await.unwrap() {
            shown.push((
                server.clone(),
                item.attr("data-tool").await.unwrap().unwrap(),
            ));
        }
    }
    shown.sort();
    shown
}

/// A real MCP client (rmcp) holding the session cookie, with the headers a page of the gateway
/// would send.
async fn mcp_with_cookie(stack: &GatewayStack, server: &str, cookie: &str) -> McpClient {
    let options = ConnectOptions::default()
        .header("cookie", &format!("{COOKIE}={cookie}"))
        .header("origin", &stack.origin())
        .header("sec-fetch-site", "same-origin");
    McpClient::connect_with(&stack.url(server), options)
        .await
        .expect("the session cookie opens an MCP session through nginx")
}

async fn wait_until<F: AsyncFnMut() -> bool>(what: &str, mut done: F) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done().await {
        assert!(Instant::now() < deadline, "{what} within 20 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_signs_in_sees_their_tools_calls_one_and_signs_out() {
    let stack = GatewayStack::start_with_sign_in(Front::Nginx).await;
    let origin = stack.origin();
    let (demo_user, demo_password, demo_group) = DEMO_PERSON;
    let browser_dir = tempfile::tempdir().unwrap();
    let mut browser = Browser::start(browser_dir.path()).await;
    let idp_base = format!("http://127.0.0.1:{}", stack.idp.port);

    // 1. The page sends a browser without a session to the IdP's login page.
    browser.client.goto(&format!("{origin}/ui/")).await.unwrap();
    browser.wait_for("#username").await;
    let login_url = browser.url().await;
    assert!(
        login_url.starts_with(&format!("{idp_base}/interaction/")),
        "{login_url}"
    );
    browser.screenshot("idp-login").await;

    // A wrong password is refused by the IdP.
    browser.type_credentials(demo_user, "wrong").await;
    browser.wait_for("#sign-in").await.click().await.unwrap();
    assert!(
        browser
            .text("[role=alert]")
            .await
            .contains("Wrong username or password")
    );

    // 2. The demo user signs in and lands back on /ui/, with their name and groups.
    browser.type_credentials(demo_user, demo_password).await;
    browser.screenshot("credentials-typed").await;
    browser.wait_for("#sign-in").await.click().await.unwrap();
    browser.wait_for("body[data-ready=true]").await;
    assert_eq!(browser.url().await, format!("{origin}/ui/"));
    assert_eq!(browser.text("#user-name").await, demo_user);
    assert_eq!(browser.text("#groups").await, demo_group);
    browser.screenshot("signed-in-with-tools").await;
    let cookie = browser
        .cookie(COOKIE)
        .await
        .expect("the session cookie is set");

    // 3. Exactly the tools the gateway lists to this person, asked with the same cookie by a
    //    real MCP client; among them every tool their group may call.
    let shown = tools_on_page(&browser).await;
    let mut listed = Vec::new();
    for server in ["currenttime", "fininfo"] {
        let client = mcp_with_cookie(&stack, server, &cookie).await;
        for tool in client.tool_names().await.unwrap() {
            listed.push((server.to_owned(), tool));
        }
        client.close().await.unwrap();
    }
    listed.sort();
    assert_eq!(
        shown, listed,
        "the page shows what tools/list answers through the gateway"
    );
    for (server, tool) in CALLABLE {
        assert!(
            shown.contains(&(server.to_owned(), tool.to_owned())),
            "{server}/{tool} shown"
        );
    }
    // tools/list answers are filtered per caller: no entry of this person's scopes names
    // fininfo's delete_all_portfolios, so neither the gateway nor the page lists it.
    assert!(
        !shown
            .iter()
            .any(|(_, tool)| tool == "delete_all_portfolios"),
        "a tool hidden from this person is on the page: {shown:?}"
    );

    // 4. One allowed tool, called from the page.
    stack.currenttime.log().clear();
    let field = browser
        .wait_for("#args-currenttime-current_time_by_timezone")
        .await;
    field.clear().await.unwrap();
    field.send_keys(r#"{"tz_name": "UTC"}"#).await.unwrap();
    browser
        .wait_for(r#"button[data-call="currenttime/current_time_by_timezone"]"#)
        .await
        .click()
        .await
        .unwrap();
    wait_until("the call's result on the page", async || {
        browser
            .text("#result")
            .await
            .starts_with("currenttime/current_time_by_timezone:")
    })
    .await;
    browser.screenshot("tool-called").await;
    let result = browser.text("#result").await;
    assert!(result.contains("UTC"), "{result}");
    let calls = stack.currenttime.log().requests_with_method("tools/call");
    assert_eq!(calls.len(), 1, "one call reached the server");
    assert_eq!(calls[0].header("x-auth-method").as_deref(), Some("session"));
    assert_eq!(calls[0].header("x-username").as_deref(), Some(demo_user));
    assert_eq!(
        calls[0].header("x-client-id").as_deref(),
        Some("auth-server-ui")
    );

    // 5. The cookie never reaches an MCP server, whatever came through.
    for server in [&stack.currenttime, &stack.fininfo] {
        let requests = server.log().requests();
        assert!(
            requests
                .iter()
                .all(|request| request.header("cookie").is_none()),
            "an MCP server saw a Cookie header"
        );
    }

    // 6. What a browser must never get, on the same stack.
    let http = http();
    let mcp = stack.url("currenttime");
    let call = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "current_time_by_timezone", "arguments": {"tz_name": "UTC"}}})
    .to_string();
    let post = |headers: &[(&str, &str)]| {
        let mut request = http
            .post(&mcp)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("cookie", format!("{COOKIE}={cookie}"))
            .body(call.clone());
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send()
    };
    // Cross-site POSTs with a valid cookie: 403 with a reason.
    for headers in [
        vec![
            ("origin", "http://evil.example"),
            ("sec-fetch-site", "cross-site"),
        ],
        vec![("origin", "http://evil.example")],
        vec![("sec-fetch-site", "same-site")],
        vec![],
    ] {
        let response = post(&headers).await.unwrap();
        assert_eq!(response.status(), 403, "{headers:?}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "cross_site_request", "{headers:?}: {body}");
    }
    // A tampered cookie: 401 JSON for an API client, a redirect to sign-in for a browser.
    let tampered = format!("{COOKIE}={}A", &cookie[..cookie.len() - 1]);
    let tampered = if tampered.ends_with(&cookie) {
        format!("{COOKIE}=B{cookie}")
    } else {
        tampered
    };
    let response = http
        .get(&mcp)
        .header("cookie", &tampered)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let response = http
        .get(&mcp)
        .header("cookie", &tampered)
        .header("accept", "text/html,application/xhtml+xml")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 302);
    assert_eq!(
        response.headers()["location"],
        "/oauth2/start?rd=%2Fcurrenttime%2Fmcp"
    );
    // `rd` never leads off the gateway.
    for rd in [
        "https://evil.example/",
        "//evil.example/x",
        "/\\evil.example",
        "evil.example",
    ] {
        let url = reqwest::Url::parse_with_params(&format!("{origin}/oauth2/start"), [("rd", rd)])
            .unwrap();
        let response = http.get(url).send().await.unwrap();
        assert_eq!(response.status(), 400, "rd={rd}");
    }
    // A callback whose state is not the sign-in's is refused (no session cookie set).
    let started = http
        .get(format!("{origin}/oauth2/start?rd=/ui/"))
        .send()
        .await
        .unwrap();
    assert_eq!(started.status(), 302);
    let authorize = started.headers()["location"].to_str().unwrap().to_owned();
    assert!(authorize.starts_with(&idp_base), "{authorize}");
    let pending = set_cookie(&started, PENDING_COOKIE)
        .filter(|value| !value.is_empty())
        .expect("the sign-in cookie");
    let response = http
        .get(format!(
            "{origin}/oauth2/callback?code=abc&state=not-the-state"
        ))
        .header("cookie", format!("{PENDING_COOKIE}={pending}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(
        set_cookie(&response, COOKIE),
        None,
        "no session from a refused sign-in"
    );
    assert!(response.text().await.unwrap().contains("state mismatch"));
    // A callback whose ID token carries another nonce is refused: the browser (still signed
    // in at the IdP) follows the authorization URL with the nonce swapped, holding the
    // sign-in cookie of that very attempt, so state and PKCE match and only the nonce differs.
    let url = reqwest::Url::parse(&authorize).unwrap();
    let swapped: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| {
            let v = if k == "nonce" {
                "someone-elses-nonce".to_owned()
            } else {
                v.into_owned()
            };
            (k.into_owned(), v)
        })
        .collect();
    let mut swapped_url = url.clone();
    swapped_url.query_pairs_mut().clear().extend_pairs(&swapped);
    // The session cookie's attributes (domain, path, SameSite=Lax), with the sign-in's name.
    let mut pending_cookie = browser.client.get_named_cookie(COOKIE).await.unwrap();
    pending_cookie.set_name(PENDING_COOKIE);
    pending_cookie.set_value(pending);
    browser.client.add_cookie(pending_cookie).await.unwrap();
    browser.client.goto(swapped_url.as_str()).await.unwrap();
    let reason = browser.text("#reason").await;
    assert!(
        reason.contains("nonce") || reason.contains("Nonce"),
        "{reason}"
    );
    browser.screenshot("nonce-mismatch-refused").await;
    assert_eq!(
        browser.cookie(COOKIE).await.as_deref(),
        Some(cookie.as_str()),
        "the session stays"
    );

    // A copy of the cookie whose window has ended (made here with the stack's key, as time
    // would) is refreshed with the IdP while the person is signed in.
    let rules = SessionRules::new(
        origin.clone(),
        "auth-server-ui".into(),
        vec![cookie::Key::derive_from(
            &base64::engine::general_purpose::STANDARD
                .decode(SESSION_KEY)
                .unwrap(),
        )],
    );
    let mut copy: Session = rules.unseal(rules.cookie_name, &cookie).unwrap();
    assert!(copy.refresh_token.is_some(), "the IdP gave a refresh token");
    copy.valid_until = 0;
    let stale_copy = rules.seal(rules.cookie_name, &copy).unwrap();
    let refreshed = refresh_copy(&http, &origin, &stale_copy).await;
    assert_eq!(refreshed.0, 200, "before sign-out: {}", refreshed.1);

    // 7. Sign out: the IdP asks, the session ends, and the page sends the browser to sign in.
    browser.client.goto(&format!("{origin}/ui/")).await.unwrap();
    browser.wait_for("body[data-ready=true]").await;
    browser.wait_for("#sign-out").await.click().await.unwrap();
    browser.wait_for("#logout-yes").await;
    browser.screenshot("idp-asks-to-sign-out").await;
    browser.wait_for("#logout-yes").await.click().await.unwrap();
    browser.wait_for("#username").await;
    // The IdP's logout revoked the session's refresh token: the copy taken before sign-out,
    // which refreshed then, is not refreshed any more.
    let refreshed = refresh_copy(&http, &origin, &stale_copy).await;
    assert_eq!(
        refreshed.0, 401,
        "a copied cookie is refreshed after sign-out: {}",
        refreshed.1
    );
    assert!(
        browser
            .url()
            .await
            .starts_with(&format!("{idp_base}/interaction/"))
    );
    assert_eq!(
        browser.cookie(COOKIE).await,
        None,
        "the session cookie is gone"
    );
    browser.screenshot("signed-out-back-to-sign-in").await;

    browser.client.close().await.unwrap();
    assert!(
        !stack.auth.process.output().contains(&cookie),
        "auth-server logged a session cookie"
    );
}
