//! The sign-in endpoints (oauth2-proxy's paths) and the `/ui/` page, served by auth-server
//! through the gateway without a check: `/oauth2/start?rd=<path>` sends the browser to the IdP,
//! `/oauth2/callback` makes the session, `/oauth2/sign_out` ends it, `/oauth2/userinfo` says
//! who is signed in (refreshing the session with the IdP when it is due). Thin handlers: the
//! protocol is [`crate::session::flow`], the cookie [`crate::session`].

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use cookie::{Cookie, SameSite};
use serde::Deserialize;
use serde_json::json;

use crate::authorizer::Authorizer;
use crate::policy::Access;
use crate::session::flow::FlowError;
use crate::session::{self, MAX_COOKIE_BYTES, PendingSignIn, Session, SessionRules};

/// The page, its script and its style: plain files, no build step, no external assets.
const UI_INDEX: &str = include_str!("../ui/index.html");
const UI_SCRIPT: &str = include_str!("../ui/app.js");
const UI_STYLE: &str = include_str!("../ui/style.css");

/// The page may load its own files only, and no other site may frame it.
const UI_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    connect-src 'self'; img-src 'self'; frame-ancestors 'none'; \
    base-uri 'none'";

/// Registers the sign-in endpoints and the page.
pub fn routes(config: &mut web::ServiceConfig) {
    config
        .route("/oauth2/start", web::get().to(start))
        .route("/oauth2/callback", web::get().to(callback))
        .route("/oauth2/sign_out", web::get().to(sign_out))
        .route("/oauth2/sign_out", web::post().to(sign_out))
        .route("/oauth2/userinfo", web::get().to(userinfo))
        .route("/ui", web::get().to(ui_root))
        .route(
            "/ui/",
            web::get().to(|| ui_file(UI_INDEX, "text/html; charset=utf-8")),
        )
        .route(
            "/ui/app.js",
            web::get().to(|| ui_file(UI_SCRIPT, "text/javascript; charset=utf-8")),
        )
        .route(
            "/ui/style.css",
            web::get().to(|| ui_file(UI_STYLE, "text/css; charset=utf-8")),
        );
}

/// The answer of every sign-in endpoint when sign-in is not configured.
fn not_configured() -> HttpResponse {
    json_error(
        actix_web::http::StatusCode::NOT_FOUND,
        "not_found",
        "browser sign-in is not configured on this gateway (AUTH_SESSION_CLIENT_ID)",
    )
}

#[derive(Debug, Deserialize)]
struct StartQuery {
    rd: Option<String>,
}

/// `/oauth2/start?rd=<path>`: to the IdP, with a sealed note of the sign-in for the callback.
async fn start(query: web::Query<StartQuery>, authorizer: web::Data<Authorizer>) -> HttpResponse {
    let Some(flow) = authorizer.sign_in() else {
        return not_configured();
    };
    let rd = query.rd.as_deref().unwrap_or("/ui/");
    let Some(return_to) = session::return_path(rd) else {
        tracing::warn!(
            event = "sign_in_refused",
            reason = "open_redirect",
            "sign-in start refused"
        );
        return json_error(
            actix_web::http::StatusCode::BAD_REQUEST,
            "invalid_request",
            "rd must be a path on this gateway, such as /ui/",
        );
    };
    let now = crate::unix_now();
    let (url, pending) = match flow.start(return_to, now).await {
        Ok(started) => started,
        Err(err) => return flow_error(&err),
    };
    let rules = &flow.settings().rules;
    let Some(sealed) = rules.seal(rules.pending_cookie_name, &pending) else {
        return flow_error(&FlowError::NoPendingSignIn);
    };
    let pending_cookie = cookie(
        rules,
        rules.pending_cookie_name,
        sealed,
        crate::session::flow::SIGN_IN_SECONDS,
    );
    tracing::info!(event = "sign_in_started", "sign-in started");
    redirect(&url)
        .append_header(set_cookie(&pending_cookie))
        .finish()
}

#[derive(Debug, Deserialize)]
struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// `/oauth2/callback`: the IdP's answer. `state` must be the one this browser's sign-in sent,
/// the code is exchanged with its PKCE verifier, the ID token must carry its `nonce`.
async fn callback(
    request: HttpRequest,
    query: web::Query<CallbackQuery>,
    authorizer: web::Data<Authorizer>,
) -> HttpResponse {
    let Some(flow) = authorizer.sign_in() else {
        return not_configured();
    };
    let rules = &flow.settings().rules;
    let now = crate::unix_now();
    let pending: Option<PendingSignIn> = cookie_header(&request)
        .and_then(|header| {
            session::cookie_value(header, rules.pending_cookie_name)
                .ok()
                .flatten()
        })
        .and_then(|value| rules.unseal(rules.pending_cookie_name, value).ok());
    let finished = match (&pending, &query.error, &query.code, &query.state) {
        (None, _, _, _) => Err(FlowError::NoPendingSignIn),
        (Some(_), Some(error), _, _) => Err(FlowError::Refused(match &query.error_description {
            Some(description) => format!("{error}: {description}"),
            None => error.clone(),
        })),
        (Some(_), None, None, _) => Err(FlowError::NoCode),
        (Some(pending), None, Some(code), state) => {
            flow.finish(pending, code, state.as_deref().unwrap_or_default(), now)
                .await
        }
    };
    let clear_pending = removal(rules, rules.pending_cookie_name);
    let session = match finished {
        Ok(session) => session,
        Err(err) => {
            tracing::warn!(event = "sign_in_refused", reason = %err, "sign-in refused");
            let mut response = flow_error(&err);
            append_cookie(&mut response, &clear_pending);
            return response;
        }
    };
    let session_cookie = match session_cookie(rules, &session, now) {
        Ok(cookie) => cookie,
        Err(err) => return flow_error(&err),
    };
    tracing::info!(
        event = "signed_in",
        user = %session.username,
        groups = session.groups.len(),
        refreshable = session.refresh_token.is_some(),
        "signed in"
    );
    let return_to = pending.map_or_else(|| "/ui/".to_owned(), |pending| pending.return_to);
    redirect(&return_to)
        .append_header(set_cookie(&session_cookie))
        .append_header(set_cookie(&clear_pending))
        .finish()
}

/// `/oauth2/sign_out`: the session cookie is cleared, the refresh token revoked where the IdP
/// can, and the browser sent to the IdP's logout (back to `/ui/`) where it has one.
async fn sign_out(request: HttpRequest, authorizer: web::Data<Authorizer>) -> HttpResponse {
    let Some(flow) = authorizer.sign_in() else {
        return not_configured();
    };
    let rules = &flow.settings().rules;
    let session = cookie_header(&request).and_then(|header| {
        session::open_for_refresh(header, rules, crate::unix_now())
            .ok()
            .flatten()
    });
    let back = format!("{}/ui/", flow.settings().public_origin);
    let location = flow
        .sign_out(session.as_ref(), &back)
        .await
        .unwrap_or_else(|| "/ui/".to_owned());
    tracing::info!(
        event = "signed_out",
        user = session
            .as_ref()
            .map_or("", |session| session.username.as_str()),
        "signed out"
    );
    redirect(&location)
        .append_header(set_cookie(&removal(rules, rules.cookie_name)))
        .finish()
}

/// `/oauth2/userinfo`: who is signed in, their groups and the MCP servers the policy names for
/// them, as JSON; 401 when nobody is. A session due for a refresh is refreshed here (the page
/// asks before it talks to the servers), so the check itself never waits for the IdP.
async fn userinfo(request: HttpRequest, authorizer: web::Data<Authorizer>) -> HttpResponse {
    let Some(flow) = authorizer.sign_in() else {
        return not_configured();
    };
    let rules = &flow.settings().rules;
    let now = crate::unix_now();
    let unauthorized = |why: &str| {
        let mut response = json_error(
            actix_web::http::StatusCode::UNAUTHORIZED,
            "unauthorized",
            why,
        );
        append_cookie(&mut response, &removal(rules, rules.cookie_name));
        response
    };
    let opened = cookie_header(&request)
        .map(|header| session::open_for_refresh(header, rules, now))
        .unwrap_or(Ok(None));
    let mut session = match opened {
        Ok(Some(session)) => session,
        Ok(None) => return unauthorized("not signed in"),
        Err(err) => return unauthorized(&err.to_string()),
    };
    let mut renewed = None;
    let window = flow.settings().refresh_seconds;
    if now >= session.valid_until || session.wants_refresh(now, window) {
        if session.refresh_token.is_none() {
            return unauthorized(&session::SessionError::Expired.to_string());
        }
        match flow.refresh(&session, now).await {
            Ok(refreshed) => {
                tracing::info!(event = "session_refreshed", user = %refreshed.username, "session refreshed");
                match session_cookie(rules, &refreshed, now) {
                    Ok(cookie) => renewed = Some(cookie),
                    Err(err) => return flow_error(&err),
                }
                session = refreshed;
            }
            Err(err) => {
                tracing::warn!(event = "session_refresh_failed", reason = %err, "session refresh failed");
                return unauthorized(&err.to_string());
            }
        }
    }
    let policy = authorizer.policy();
    let scopes = policy.scopes_for_groups(&session.groups);
    let servers: Vec<String> = policy
        .summary()
        .servers
        .into_iter()
        .filter(|server| server != "*" && policy.allows(&scopes, server, Access::AnyEntry))
        .collect();
    let mut response = HttpResponse::Ok();
    response
        .content_type("application/json")
        .insert_header((header::CACHE_CONTROL, "no-store"));
    if let Some(cookie) = renewed {
        response.append_header(set_cookie(&cookie));
    }
    response.body(
        json!({
            "user": session.subject,
            "preferredUsername": session.username,
            "groups": session.groups,
            "servers": servers,
            "validUntil": session.valid_until,
            "endsAt": session.ends_at,
        })
        .to_string(),
    )
}

async fn ui_root() -> HttpResponse {
    redirect("/ui/").finish()
}

async fn ui_file(body: &'static str, content_type: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header((header::CONTENT_SECURITY_POLICY, UI_POLICY))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(body)
}

/// The session cookie for `session`, refused when it would not fit in a browser's cookie.
fn session_cookie(
    rules: &SessionRules,
    session: &Session,
    now: u64,
) -> Result<Cookie<'static>, FlowError> {
    let sealed = rules
        .seal(rules.cookie_name, session)
        .ok_or(FlowError::TooLarge(0))?;
    if sealed.len() > MAX_COOKIE_BYTES {
        return Err(FlowError::TooLarge(sealed.len()));
    }
    Ok(cookie(
        rules,
        rules.cookie_name,
        sealed,
        session.ends_at.saturating_sub(now),
    ))
}

/// A cookie as auth-server sets them: `HttpOnly`, `SameSite=Lax`, `Path=/`, `Secure` over
/// HTTPS (where the names carry the `__Host-` prefix), with a bounded lifetime.
fn cookie(
    rules: &SessionRules,
    name: &'static str,
    value: String,
    max_age: u64,
) -> Cookie<'static> {
    Cookie::build((name, value))
        .http_only(true)
        .same_site(SameSite::Lax)
        .path("/")
        .secure(rules.secure())
        .max_age(cookie::time::Duration::seconds(
            i64::try_from(max_age).unwrap_or(i64::MAX),
        ))
        .build()
}

/// The `Set-Cookie` header of `cookie`.
fn set_cookie(cookie: &Cookie<'_>) -> (header::HeaderName, String) {
    (header::SET_COOKIE, cookie.to_string())
}

fn append_cookie(response: &mut HttpResponse, cookie: &Cookie<'_>) {
    if let Ok(value) = HeaderValue::from_str(&cookie.to_string()) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
}

/// A cookie that clears `name`.
fn removal(rules: &SessionRules, name: &'static str) -> Cookie<'static> {
    cookie(rules, name, String::new(), 0)
}

fn cookie_header(request: &HttpRequest) -> Option<&str> {
    let mut values = request.headers().get_all(header::COOKIE);
    match (values.next(), values.next()) {
        (Some(value), None) => value.to_str().ok(),
        _ => None,
    }
}

fn redirect(location: &str) -> actix_web::HttpResponseBuilder {
    let mut response = HttpResponse::Found();
    if let Ok(value) = HeaderValue::from_str(location) {
        response.insert_header((header::LOCATION, value));
    }
    response.insert_header((header::CACHE_CONTROL, "no-store"));
    response
}

fn json_error(status: actix_web::http::StatusCode, error: &str, description: &str) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("application/json")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(json!({"error": error, "error_description": description}).to_string())
}

/// A failed sign-in step: a short page that says why and offers to start again.
fn flow_error(err: &FlowError) -> HttpResponse {
    use actix_web::http::StatusCode;
    let status = match err {
        FlowError::NoPendingSignIn
        | FlowError::PendingExpired
        | FlowError::StateMismatch
        | FlowError::NoCode => StatusCode::BAD_REQUEST,
        FlowError::Refused(_) => StatusCode::FORBIDDEN,
        FlowError::IdToken(_) => StatusCode::UNAUTHORIZED,
        FlowError::TooLarge(_) => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::BAD_GATEWAY,
    };
    let text = html_escape(&err.to_string());
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::CONTENT_SECURITY_POLICY, UI_POLICY))
        .body(format!(
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Sign-in failed</title></head>\
             <body><main><h1>Sign-in failed</h1><p id=\"reason\">{text}</p>\
             <p><a href=\"/oauth2/start?rd=%2Fui%2F\">Sign in again</a></p></main></body></html>\n"
        ))
}

fn html_escape(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '<' => "&lt;".to_owned(),
            '>' => "&gt;".to_owned(),
            '&' => "&amp;".to_owned(),
            '"' => "&quot;".to_owned(),
            '\'' => "&#39;".to_owned(),
            c => c.to_string(),
        })
        .collect()
}
