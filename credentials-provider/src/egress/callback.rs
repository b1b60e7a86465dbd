//! The loopback callback server of the authorization-code flow.
//!
//! It listens on the redirect URI's loopback address and port before the authorization URL is
//! shown, answers the one request that arrives on the redirect URI's path (checking `state`),
//! and stops. Requests for other paths (a browser's `/favicon.ico`) get 404 and do not count.
//! Nothing from the request is echoed into the page.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{Method, StatusCode, Uri, header};
use axum::response::{Html, IntoResponse, Response};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use url::Url;

use crate::secret::Secret;

/// Why no authorization code came back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CallbackError {
    /// The redirect URI's address cannot be listened on.
    #[error(
        "cannot listen on {addr} for the OAuth callback ({setting}={uri}): {reason}. Stop what \
         uses that port, or register another loopback redirect URI with the provider and set {setting}"
    )]
    Bind {
        /// The address.
        addr: String,
        /// The redirect URI.
        uri: String,
        /// The setting that holds it.
        setting: String,
        /// What the operating system said.
        reason: String,
    },
    /// Nobody came back in time.
    #[error(
        "no authorization came back to {uri} within {waited:?}: open the URL shown above in a \
         browser on this machine, sign in and consent, then run again (--callback-timeout sets the wait)"
    )]
    Timeout {
        /// The redirect URI.
        uri: String,
        /// The wait.
        waited: Duration,
    },
    /// The callback's `state` is not the one sent: an answer to another request, or forged.
    #[error(
        "the callback's state does not match this authorization request: aborted (an answer to \
         another request, or a forged one); run again"
    )]
    StateMismatch,
    /// The provider (or the user) refused.
    #[error("the provider refused the authorization: {error}{}", description.as_deref().map(|d| format!(": {d}")).unwrap_or_default())]
    Denied {
        /// The OAuth `error`.
        error: String,
        /// `error_description`.
        description: Option<String>,
    },
    /// The callback had neither a code nor an error.
    #[error("the callback carried no authorization code")]
    NoCode,
    /// The server stopped before an answer (should not happen).
    #[error("the callback server stopped unexpectedly")]
    Stopped,
}

type Outcome = Result<Secret, CallbackError>;

#[derive(Debug)]
struct Shared {
    path: String,
    expected_state: String,
    sender: Mutex<Option<oneshot::Sender<Outcome>>>,
}

/// A listening callback server.
#[derive(Debug)]
pub struct CallbackServer {
    uri: Url,
    outcome: oneshot::Receiver<Outcome>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

/// The addresses a loopback redirect URI names: `localhost` is 127.0.0.1 and, when it can be
/// had, [::1] (browsers try both).
fn addresses(uri: &Url) -> Option<(Vec<SocketAddr>, bool)> {
    let port = uri.port_or_known_default()?;
    match uri.host()? {
        url::Host::Domain(domain) if domain.eq_ignore_ascii_case("localhost") => Some((
            vec![
                SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port),
                SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), port),
            ],
            true,
        )),
        url::Host::Ipv4(ip) if ip.is_loopback() => {
            Some((vec![SocketAddr::new(IpAddr::V4(ip), port)], false))
        }
        url::Host::Ipv6(ip) if ip.is_loopback() => {
            Some((vec![SocketAddr::new(IpAddr::V6(ip), port)], false))
        }
        _ => None,
    }
}

/// Whether a redirect URI can be served here: `http://` on a loopback host.
pub fn is_servable(uri: &Url) -> bool {
    uri.scheme() == "http" && addresses(uri).is_some()
}

impl CallbackServer {
    /// Starts listening on the redirect URI; `expected_state` is the request's `state`.
    /// `setting` names the variable holding the URI, for error messages.
    pub async fn bind(
        uri: &Url,
        expected_state: &str,
        setting: &str,
    ) -> Result<CallbackServer, CallbackError> {
        let bind_error = |addr: String, reason: String| CallbackError::Bind {
            addr,
            uri: uri.to_string(),
            setting: setting.to_owned(),
            reason,
        };
        let Some((candidates, second_optional)) = addresses(uri).filter(|_| uri.scheme() == "http")
        else {
            return Err(bind_error(
                uri.to_string(),
                "not an http:// loopback URI (localhost, 127.0.0.1 or [::1])".into(),
            ));
        };
        let (sender, outcome) = oneshot::channel();
        let shared = Arc::new(Shared {
            path: uri.path().to_owned(),
            expected_state: expected_state.to_owned(),
            sender: Mutex::new(Some(sender)),
        });
        let router = Router::new().fallback(handle).with_state(shared);
        let (stop, stopped) = watch::channel(false);
        let mut tasks = Vec::new();
        for (index, addr) in candidates.into_iter().enumerate() {
            let listener = match tokio::net::TcpListener::bind(addr).await {
                Ok(listener) => listener,
                // [::1] for "localhost" is a bonus; 127.0.0.1 is not.
                Err(_) if index > 0 && second_optional => continue,
                Err(err) => {
                    for task in &tasks {
                        JoinHandle::abort(task);
                    }
                    return Err(bind_error(addr.to_string(), err.to_string()));
                }
            };
            tracing::debug!("the OAuth callback server listens on {addr}");
            let mut stopped = stopped.clone();
            let server = axum::serve(listener, router.clone()).with_graceful_shutdown(async move {
                let _ = stopped.wait_for(|stop| *stop).await;
            });
            tasks.push(tokio::spawn(async move {
                if let Err(err) = server.await {
                    tracing::debug!("callback server: {err}");
                }
            }));
        }
        Ok(CallbackServer {
            uri: uri.clone(),
            outcome,
            stop,
            tasks,
        })
    }

    /// Waits for the callback (at most `timeout`), then stops listening.
    pub async fn wait(self, timeout: Duration) -> Result<Secret, CallbackError> {
        let outcome = match tokio::time::timeout(timeout, self.outcome).await {
            Err(_) => Err(CallbackError::Timeout {
                uri: self.uri.to_string(),
                waited: timeout,
            }),
            Ok(Err(_)) => Err(CallbackError::Stopped),
            Ok(Ok(outcome)) => outcome,
        };
        // Let the answer page reach the browser, then close.
        let _ = self.stop.send(true);
        for mut task in self.tasks {
            if tokio::time::timeout(Duration::from_secs(2), &mut task)
                .await
                .is_err()
            {
                task.abort();
            }
        }
        outcome
    }
}

fn page(status: StatusCode, title: &str, message: &str) -> Response {
    let body = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{title}</title></head>\
         <body style=\"font-family:sans-serif;margin:3em\"><h1>{title}</h1><p>{message}</p></body></html>"
    );
    (
        status,
        [
            (header::CACHE_CONTROL, "no-store"),
            (header::CONNECTION, "close"),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        Html(body),
    )
        .into_response()
}

async fn handle(State(shared): State<Arc<Shared>>, method: Method, uri: Uri) -> Response {
    if uri.path() != shared.path {
        return page(StatusCode::NOT_FOUND, "Not found", "Nothing here.");
    }
    if method != Method::GET {
        return page(
            StatusCode::METHOD_NOT_ALLOWED,
            "Method not allowed",
            "The OAuth callback is a GET.",
        );
    }
    let Some(sender) = shared
        .sender
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take()
    else {
        return page(
            StatusCode::GONE,
            "Already answered",
            "This authorization was already answered. Return to the terminal.",
        );
    };
    let (outcome, response) = read_callback(uri.query().unwrap_or(""), &shared.expected_state);
    let _ = sender.send(outcome);
    response
}

/// Turns the callback's query into the outcome and the page for the browser.
fn read_callback(query: &str, expected_state: &str) -> (Outcome, Response) {
    let mut state = Vec::new();
    let mut code = Vec::new();
    let mut error = None;
    let mut description = None;
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        match name.as_ref() {
            "state" => state.push(value.into_owned()),
            "code" => code.push(value.into_owned()),
            "error" => error = Some(value.into_owned()),
            "error_description" => description = Some(value.into_owned()),
            _ => {}
        }
    }
    // Exactly one state, equal to ours; checked before anything else is believed.
    let state_ok = matches!(state.as_slice(), [only] if constant_time_eq(only, expected_state));
    if !state_ok {
        return (
            Err(CallbackError::StateMismatch),
            page(
                StatusCode::BAD_REQUEST,
                "Authorization aborted",
                "The answer does not belong to the request this program made (state mismatch). \
                 Nothing was stored. Return to the terminal.",
            ),
        );
    }
    if let Some(error) = error {
        return (
            Err(CallbackError::Denied { error, description }),
            page(
                StatusCode::BAD_REQUEST,
                "Authorization refused",
                "The provider did not authorize the request. Return to the terminal for details.",
            ),
        );
    }
    match code.as_slice() {
        [only] if !only.is_empty() => (
            Ok(Secret::new(only.clone())),
            page(
                StatusCode::OK,
                "Authorization received",
                "credentials-provider has the authorization. You can close this window.",
            ),
        ),
        _ => (
            Err(CallbackError::NoCode),
            page(
                StatusCode::BAD_REQUEST,
                "Authorization incomplete",
                "The answer carried no authorization code. Return to the terminal.",
            ),
        ),
    }
}

/// Compares two strings in time that depends only on their lengths.
fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |diff, (x, y)| diff | (x ^ y))
            == 0
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn the_state_is_checked_before_the_code_is_believed() {
        let (outcome, response) = read_callback("code=abc&state=s1", "s1");
        assert_eq!(outcome.unwrap().expose(), "abc");
        assert_eq!(response.status(), StatusCode::OK);

        for query in [
            "code=abc&state=other",
            "code=abc",
            "code=abc&state=s1&state=s1",
            "error=access_denied&state=bad",
        ] {
            let (outcome, response) = read_callback(query, "s1");
            assert_eq!(
                outcome.unwrap_err(),
                CallbackError::StateMismatch,
                "{query}"
            );
            assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        }
        let (outcome, _) = read_callback(
            "error=access_denied&error_description=User+said+no&state=s1",
            "s1",
        );
        assert_eq!(
            outcome.unwrap_err().to_string(),
            "the provider refused the authorization: access_denied: User said no"
        );
        let (outcome, _) = read_callback("state=s1", "s1");
        assert_eq!(outcome.unwrap_err(), CallbackError::NoCode);
    }

    #[test]
    fn state_comparison() {
        assert!(constant_time_eq("abc", "abc"));
        assert!(!constant_time_eq("abc", "abd"));
        assert!(!constant_time_eq("abc", "abcd"));
        assert!(!constant_time_eq("", "a"));
    }

    #[test]
    fn only_http_loopback_redirect_uris_are_served() {
        let servable = |uri: &str| is_servable(&Url::parse(uri).unwrap());
        assert!(servable("http://localhost:8080/callback"));
        assert!(servable("http://127.0.0.1:9/cb"));
        assert!(servable("http://[::1]:9/cb"));
        assert!(!servable("https://localhost:8080/callback"));
        assert!(!servable("http://example.com:8080/callback"));
        assert!(!servable("http://10.0.0.1:8080/callback"));
    }

    async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(
                format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
            )
            .await
            .unwrap();
        let mut text = String::new();
        stream.read_to_string(&mut text).await.unwrap();
        let status = text[9..12].parse().unwrap();
        (status, text)
    }

    #[tokio::test]
    async fn the_server_answers_one_callback_and_stops() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let uri = Url::parse(&format!("http://127.0.0.1:{port}/callback")).unwrap();
        let server = CallbackServer::bind(&uri, "st", "EGRESS_OAUTH_REDIRECT_URI_1")
            .await
            .unwrap();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let waiter = tokio::spawn(server.wait(Duration::from_secs(10)));
        let (status, _) = get(addr, "/favicon.ico").await;
        assert_eq!(status, 404);
        let (status, page) = get(addr, "/callback?code=c0de&state=st").await;
        assert_eq!(status, 200);
        assert!(!page.contains("c0de"), "the page must not echo the code");
        assert_eq!(waiter.await.unwrap().unwrap().expose(), "c0de");
        // Stopped: nothing listens any more.
        assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    }

    #[tokio::test]
    async fn the_wait_times_out_with_a_clear_message() {
        let uri = Url::parse("http://127.0.0.1:0/callback").unwrap();
        let server = CallbackServer::bind(&uri, "st", "EGRESS_OAUTH_REDIRECT_URI_1")
            .await
            .unwrap();
        let error = server.wait(Duration::from_millis(200)).await.unwrap_err();
        assert!(matches!(error, CallbackError::Timeout { .. }));
        assert!(error.to_string().contains("within 200ms"), "{error}");
    }

    #[tokio::test]
    async fn a_busy_port_is_reported_with_the_setting() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = taken.local_addr().unwrap().port();
        let uri = Url::parse(&format!("http://127.0.0.1:{port}/callback")).unwrap();
        let error = CallbackServer::bind(&uri, "st", "EGRESS_OAUTH_REDIRECT_URI_2")
            .await
            .unwrap_err()
            .to_string();
        assert!(
            error.contains(&format!("cannot listen on 127.0.0.1:{port}")),
            "{error}"
        );
        assert!(error.contains("EGRESS_OAUTH_REDIRECT_URI_2"), "{error}");
    }
}
