//! People in a browser: the session that a sign-in leaves in a cookie, and how it is opened.
//!
//! A person signs in at the IdP (OIDC authorization code + PKCE, [`flow`]); auth-server then
//! seals what it learnt — who, their groups, until when — into one cookie with an AEAD key from
//! the configuration ([`settings`]), and keeps nothing itself: any instance holding the key
//! opens it, so one instance or many need no session store. Opening is a pure function of the
//! cookie, the keys and `now` ([`open`]); the decision core calls it when no bearer token came.
//!
//! The cookie is sealed with the `cookie` crate's private jar: AES-256-GCM with a fresh nonce
//! per seal and the cookie's name as associated data (a value sealed for one cookie never opens
//! as another), under a key expanded with HKDF from a secret of at least 32 bytes. During a key
//! change two keys are configured: the first seals, every one of them opens.

pub mod flow;
pub mod settings;

use cookie::{Cookie, CookieJar, Key};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// What a signed-in person's cookie holds. Short field names: it travels with every request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// The IdP's subject (`sub`).
    #[serde(rename = "s")]
    pub subject: String,
    /// A name to show and to pass on in `X-Username`.
    #[serde(rename = "n")]
    pub username: String,
    /// The person's IdP groups, mapped through scopes.yml like a token's.
    #[serde(rename = "g")]
    pub groups: Vec<String>,
    /// When the person signed in (seconds since the epoch).
    #[serde(rename = "i")]
    pub signed_in_at: u64,
    /// The hard end: sign-in plus `AUTH_SESSION_LIFETIME_SECONDS`; a refresh never moves it.
    #[serde(rename = "e")]
    pub ends_at: u64,
    /// The check accepts the session until then: a refresh with the IdP moves it on (never
    /// past `ends_at`); without a refresh token it is the ID token's expiry.
    #[serde(rename = "v")]
    pub valid_until: u64,
    /// The IdP's refresh token, when it gave one.
    #[serde(rename = "r", default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
}

impl Session {
    /// Whether the session is due for a refresh with the IdP: it has a refresh token, and less
    /// than half of its validity window is left.
    pub fn wants_refresh(&self, now: u64, window: u64) -> bool {
        self.refresh_token.is_some()
            && self.valid_until < self.ends_at
            && self.valid_until.saturating_sub(now) < window / 2
    }
}

/// A sign-in on its way through the IdP: what the callback must find again. Sealed into its
/// own short-lived cookie, so that the callback needs no server-side state either.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingSignIn {
    /// The `state` sent to the IdP.
    #[serde(rename = "s")]
    pub state: String,
    /// The `nonce` the ID token must carry.
    #[serde(rename = "n")]
    pub nonce: String,
    /// The PKCE verifier of the challenge sent.
    #[serde(rename = "p")]
    pub pkce_verifier: String,
    /// Where to go after sign-in: a path on this gateway.
    #[serde(rename = "r")]
    pub return_to: String,
    /// When this sign-in attempt lapses.
    #[serde(rename = "e")]
    pub expires_at: u64,
}

/// The session cookie's name and the keys that open it: what the decision core needs.
#[derive(Clone)]
pub struct SessionRules {
    /// The session cookie's name (`__Host-` prefixed over HTTPS).
    pub cookie_name: &'static str,
    /// The name of the cookie of a sign-in in progress.
    pub pending_cookie_name: &'static str,
    /// The gateway's origin (`scheme://host[:port]`), for the same-origin rule.
    pub origin: String,
    /// auth-server's client id at the IdP: `X-Client-Id` of a session.
    pub client_id: String,
    /// The first seals; all open.
    keys: Vec<Key>,
}

impl std::fmt::Debug for SessionRules {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionRules")
            .field("cookie_name", &self.cookie_name)
            .field("origin", &self.origin)
            .field("client_id", &self.client_id)
            .field("keys", &format_args!("[{} keys]", self.keys.len()))
            .finish()
    }
}

/// Cookie names over plain HTTP (local development) and over HTTPS, where the `__Host-` prefix
/// makes the browser refuse a cookie that is not `Secure`, has a `Domain` or another `Path`.
const COOKIE_NAMES: [(&str, &str); 2] = [
    ("mcp_session", "mcp_signin"),
    ("__Host-mcp_session", "__Host-mcp_signin"),
];

/// Most bytes of a sealed session cookie: browsers keep 4096 bytes per cookie, name and
/// attributes included.
pub const MAX_COOKIE_BYTES: usize = 3800;

impl SessionRules {
    /// Rules for a gateway at `origin`; `keys` must not be empty (the settings make sure).
    pub fn new(origin: String, client_id: String, keys: Vec<Key>) -> Self {
        let (cookie_name, pending_cookie_name) =
            COOKIE_NAMES[usize::from(origin.starts_with("https://"))];
        SessionRules {
            cookie_name,
            pending_cookie_name,
            origin,
            client_id,
            keys,
        }
    }

    /// Whether the cookies get `Secure` (and the `__Host-` prefix): the gateway is HTTPS.
    pub fn secure(&self) -> bool {
        self.origin.starts_with("https://")
    }

    /// Seals `value` for the cookie `name` with the first key; the sealed text is cookie-safe
    /// (base64).
    pub fn seal<T: Serialize>(&self, name: &str, value: &T) -> Option<String> {
        let key = self.keys.first()?;
        let plain = serde_json::to_string(value).ok()?;
        let mut jar = CookieJar::new();
        jar.private_mut(key)
            .add(Cookie::new(name.to_owned(), plain));
        jar.get(name).map(|cookie| cookie.value().to_owned())
    }

    /// Opens the sealed `value` of the cookie `name` with any configured key.
    pub fn unseal<T: DeserializeOwned>(&self, name: &str, value: &str) -> Result<T, SessionError> {
        let plain = self
            .keys
            .iter()
            .find_map(|key| {
                CookieJar::new()
                    .private(key)
                    .decrypt(Cookie::new(name.to_owned(), value.to_owned()))
            })
            .ok_or(SessionError::Unsealable)?;
        serde_json::from_str(plain.value()).map_err(|_| SessionError::Unsealable)
    }
}

/// Why a session cookie is not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// The `Cookie` header names the session cookie more than once.
    #[error("the session cookie is sent more than once")]
    Repeated,
    /// Tampered with, sealed with a key no longer configured, or not ours.
    #[error("the session cookie cannot be opened: sign in again")]
    Unsealable,
    /// Its validity ended.
    #[error("the session has expired: sign in again")]
    Expired,
}

/// The value of the cookie `name` in a `Cookie` header: `Ok(None)` when it is not there.
pub fn cookie_value<'h>(header: &'h str, name: &str) -> Result<Option<&'h str>, SessionError> {
    let mut found = header
        .split(';')
        .filter_map(|pair| pair.split_once('='))
        .filter(|(key, _)| key.trim() == name)
        .map(|(_, value)| value.trim().trim_matches('"'));
    match (found.next(), found.next()) {
        (None, _) => Ok(None),
        (Some(value), None) => Ok(Some(value)),
        (Some(_), Some(_)) => Err(SessionError::Repeated),
    }
}

/// Opens the session in a `Cookie` header at `now`: `Ok(None)` when the header has no session
/// cookie. Pure: the keys come with `rules`, the time with `now`.
pub fn open(header: &str, rules: &SessionRules, now: u64) -> Result<Option<Session>, SessionError> {
    let Some(value) = cookie_value(header, rules.cookie_name)? else {
        return Ok(None);
    };
    let session: Session = rules.unseal(rules.cookie_name, value)?;
    if now >= session.valid_until || now >= session.ends_at {
        return Err(SessionError::Expired);
    }
    Ok(Some(session))
}

/// Opens the session in a `Cookie` header whatever its validity window says, for a refresh:
/// only its hard end (`ends_at`) is checked.
pub fn open_for_refresh(
    header: &str,
    rules: &SessionRules,
    now: u64,
) -> Result<Option<Session>, SessionError> {
    let Some(value) = cookie_value(header, rules.cookie_name)? else {
        return Ok(None);
    };
    let session: Session = rules.unseal(rules.cookie_name, value)?;
    if now >= session.ends_at {
        return Err(SessionError::Expired);
    }
    Ok(Some(session))
}

/// A path on this gateway to return to after sign-in, or `None` when `rd` could lead anywhere
/// else: it must start with one `/` (not `//` or `/\`, which browsers read as another host),
/// hold no backslash, no control character and no scheme, and stay short.
pub fn return_path(rd: &str) -> Option<&str> {
    let safe = rd.starts_with('/')
        && !rd.starts_with("//")
        && !rd.contains('\\')
        && rd.len() <= 2048
        && rd.bytes().all(|b| b.is_ascii_graphic());
    safe.then_some(rd)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn key(byte: u8) -> Key {
        Key::derive_from(&[byte; 32])
    }

    fn rules(keys: Vec<Key>) -> SessionRules {
        SessionRules::new("http://127.0.0.1:8080".into(), "auth-server".into(), keys)
    }

    fn session(valid_until: u64) -> Session {
        Session {
            subject: "alice-sub".into(),
            username: "alice".into(),
            groups: vec!["mcp-registry-operator".into()],
            signed_in_at: 1000,
            ends_at: 5000,
            valid_until,
            refresh_token: Some("rt".into()),
        }
    }

    fn header(rules: &SessionRules, session: &Session) -> String {
        let sealed = rules.seal(rules.cookie_name, session).expect("sealed");
        format!("theme=dark; {}={sealed}; other=1", rules.cookie_name)
    }

    #[test]
    fn a_sealed_session_opens_until_it_expires() {
        let rules = rules(vec![key(1)]);
        let cookie = header(&rules, &session(2000));
        assert_eq!(open(&cookie, &rules, 1999), Ok(Some(session(2000))));
        assert_eq!(open(&cookie, &rules, 2000), Err(SessionError::Expired));
        assert_eq!(open("theme=dark", &rules, 1500), Ok(None));
    }

    #[test]
    fn tampered_or_wrongly_keyed_cookies_do_not_open() {
        let rules_a = rules(vec![key(1)]);
        let cookie = header(&rules_a, &session(2000));
        assert_eq!(
            open(&cookie, &rules(vec![key(2)]), 1500),
            Err(SessionError::Unsealable)
        );
        // Flip one character of the sealed value.
        let sealed = cookie_value(&cookie, rules_a.cookie_name).unwrap().unwrap();
        let mut bytes = sealed.as_bytes().to_vec();
        bytes[20] = if bytes[20] == b'A' { b'B' } else { b'A' };
        let tampered = format!("mcp_session={}", String::from_utf8(bytes).unwrap());
        assert_eq!(
            open(&tampered, &rules_a, 1500),
            Err(SessionError::Unsealable)
        );
        // A value sealed for the sign-in cookie is not a session.
        let moved = rules_a
            .seal(rules_a.pending_cookie_name, &session(2000))
            .unwrap();
        assert_eq!(
            open(&format!("mcp_session={moved}"), &rules_a, 1500),
            Err(SessionError::Unsealable)
        );
        assert_eq!(
            open("mcp_session=plain", &rules_a, 1500),
            Err(SessionError::Unsealable)
        );
    }

    #[test]
    fn during_a_key_change_the_new_key_seals_and_both_open() {
        let old = rules(vec![key(1)]);
        let changing = rules(vec![key(2), key(1)]);
        let new_only = rules(vec![key(2)]);
        let old_cookie = header(&old, &session(2000));
        let new_cookie = header(&changing, &session(2000));
        assert!(open(&old_cookie, &changing, 1500).is_ok());
        assert!(open(&new_cookie, &new_only, 1500).is_ok());
        assert_eq!(
            open(&old_cookie, &new_only, 1500),
            Err(SessionError::Unsealable)
        );
    }

    #[test]
    fn a_repeated_session_cookie_is_refused() {
        let rules = rules(vec![key(1)]);
        let cookie = header(&rules, &session(2000));
        let twice = format!("{cookie}; mcp_session=x");
        assert_eq!(open(&twice, &rules, 1500), Err(SessionError::Repeated));
    }

    #[test]
    fn https_gateways_get_host_prefixed_cookies() {
        let secure = SessionRules::new("https://gw.example".into(), "c".into(), vec![key(1)]);
        assert_eq!(secure.cookie_name, "__Host-mcp_session");
        assert!(secure.secure());
        assert_eq!(rules(vec![key(1)]).cookie_name, "mcp_session");
    }

    #[test]
    fn return_paths_stay_on_the_gateway() {
        for ok in ["/ui/", "/fininfo/mcp?x=1", "/"] {
            assert_eq!(return_path(ok), Some(ok));
        }
        for bad in [
            "https://evil.example/",
            "//evil.example/",
            "/\\evil.example",
            "evil.example",
            "",
            "/a b",
            "/a\r\nb",
            "javascript:alert(1)",
        ] {
            assert_eq!(return_path(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn only_refreshable_sessions_near_their_end_want_a_refresh() {
        let mut due = session(1100);
        assert!(due.wants_refresh(1000, 300));
        assert!(!due.wants_refresh(800, 300));
        due.refresh_token = None;
        assert!(!due.wants_refresh(1000, 300));
    }
}
