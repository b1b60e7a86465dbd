//! Reading a [`CheckRequest`] out of request headers, the same way for every shell (HTTP for
//! nginx and Envoy, gRPC for Envoy): only the way headers are looked up differs.

use crate::decision::{
    Body, CheckRequest, CognitoHeaders, Credentials, IngressHeader, McpHeaders, TargetSource,
};

/// What a [`HeaderLookup`] gives for a header value it cannot read as text (not UTF-8, or not
/// visible ASCII over HTTP/1.1): never a valid token, path or name, so the check refuses it.
pub const UNREADABLE_HEADER: &str = "\u{fffd}";

/// Read access to a request's headers, by lower-case name.
pub trait HeaderLookup {
    /// Every value of the header `name` (lower-case), in order. Names are literals: a shell
    /// may turn them into its own header-name type once, without parsing or allocating.
    fn values<'s>(&'s self, name: &'static str) -> impl Iterator<Item = &'s str>;
}

/// The one value of a header: `Ok(None)` when absent, `Err(())` when repeated.
fn single<'h>(headers: &'h impl HeaderLookup, name: &'static str) -> Result<Option<&'h str>, ()> {
    let mut values = headers.values(name);
    let first = values.next();
    match values.next() {
        Some(_) => Err(()),
        None => Ok(first),
    }
}

/// Builds the check request.
///
/// `own_method` is the check request's own method; `envoy_path` the original path that Envoy's
/// HTTP ext_authz appends after `/validate` (or the gRPC `CheckRequest` path).
pub fn read<'a>(
    headers: &'a impl HeaderLookup,
    own_method: &'a str,
    envoy_path: Option<&'a str>,
    body: Body<'a>,
) -> CheckRequest<'a> {
    let method = match single(headers, "x-original-method") {
        Ok(Some(method)) => method,
        Ok(None) => own_method,
        // Never a method name: a repeated header is answered 405.
        Err(()) => "<repeated X-Original-Method>",
    };
    let mcp_method = single(headers, "mcp-method");
    let mcp_name = single(headers, "mcp-name");
    CheckRequest {
        method,
        target: target(headers, envoy_path),
        body,
        credentials: credentials(headers),
        cognito: CognitoHeaders {
            user_pool_id: single(headers, "x-user-pool-id").unwrap_or(Some("")),
            client_id: single(headers, "x-client-id").unwrap_or(Some("")),
            region: single(headers, "x-region").unwrap_or(Some("")),
        },
        mcp: McpHeaders {
            method: mcp_method.ok().flatten(),
            name: mcp_name.ok().flatten(),
            repeated: mcp_method.is_err() || mcp_name.is_err(),
        },
        carried_pool_headers: (
            headers.values("x-user-pool-id").next().is_some(),
            headers.values("x-region").next().is_some(),
        ),
    }
}

/// The gateway's request id (`X-Request-Id`, set by nginx from `$request_id` and by Envoy), for
/// the decision log; only a short, printable value is kept.
pub fn request_id(headers: &impl HeaderLookup) -> Option<&str> {
    single(headers, "x-request-id")
        .ok()
        .flatten()
        .filter(|id| id.len() <= 128 && id.bytes().all(|b| b.is_ascii_graphic()))
}

fn target<'a>(headers: &'a impl HeaderLookup, envoy_path: Option<&'a str>) -> TargetSource<'a> {
    match (
        single(headers, "x-original-uri"),
        single(headers, "x-original-url"),
    ) {
        (Err(()), _) | (_, Err(())) => TargetSource::Ambiguous,
        (Ok(Some(uri)), _) => TargetSource::Path(uri),
        (Ok(None), Ok(Some(url))) => TargetSource::Url(url),
        (Ok(None), Ok(None)) => match envoy_path {
            Some(path) if !path.is_empty() && path != "/" => TargetSource::Path(path),
            _ => TargetSource::Missing,
        },
    }
}

/// `X-Authorization` is the ingress token when present; otherwise `Authorization` is.
fn credentials(headers: &impl HeaderLookup) -> Credentials<'_> {
    let (value, header) = match single(headers, "x-authorization") {
        Err(()) => return Credentials::Malformed("X-Authorization is repeated"),
        Ok(Some(value)) => (value, IngressHeader::XAuthorization),
        Ok(None) => match single(headers, "authorization") {
            Err(()) => return Credentials::Malformed("Authorization is repeated"),
            Ok(Some(value)) => (value, IngressHeader::Authorization),
            Ok(None) => return Credentials::Missing,
        },
    };
    match bearer_token(value) {
        Some(token) => Credentials::Bearer { token, header },
        None => Credentials::Malformed("the ingress header is not `Bearer <token>`"),
    }
}

/// The token of `Bearer <token>` (scheme case-insensitive, RFC 6750 token68 characters).
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim_start_matches(' ');
    // No early exit: a branch-free pass over a ~1 KB token compiles to SIMD.
    let is_token68 = |b: u8| {
        b.is_ascii_alphanumeric() | matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/' | b'=')
    };
    let all_token68 = token.bytes().fold(true, |ok, b| ok & is_token68(b));
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty() && all_token68).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Pairs(Vec<(&'static str, &'static str)>);

    impl HeaderLookup for Pairs {
        fn values<'s>(&'s self, name: &'static str) -> impl Iterator<Item = &'s str> {
            self.0
                .iter()
                .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| *v)
        }
    }

    fn read_pairs(pairs: &Pairs) -> CheckRequest<'_> {
        read(pairs, "POST", None, Body::Complete(b""))
    }

    #[test]
    fn x_authorization_is_ingress_and_authorization_is_egress() {
        let headers = Pairs(vec![
            ("x-authorization", "Bearer ingress"),
            ("authorization", "Bearer egress"),
        ]);
        assert_eq!(
            read_pairs(&headers).credentials,
            Credentials::Bearer {
                token: "ingress",
                header: IngressHeader::XAuthorization
            }
        );
    }

    #[test]
    fn authorization_is_ingress_when_alone() {
        let headers = Pairs(vec![("authorization", "bearer abc.def.ghi")]);
        assert_eq!(
            read_pairs(&headers).credentials,
            Credentials::Bearer {
                token: "abc.def.ghi",
                header: IngressHeader::Authorization
            }
        );
    }

    #[test]
    fn repeated_or_non_bearer_credentials_are_malformed() {
        for headers in [
            vec![
                ("x-authorization", "Bearer a"),
                ("x-authorization", "Bearer b"),
            ],
            vec![("authorization", "Basic dXNlcjpwYXNz")],
            vec![("authorization", "Bearer")],
            vec![("authorization", "Bearer a b")],
        ] {
            assert!(matches!(
                read_pairs(&Pairs(headers)).credentials,
                Credentials::Malformed(_)
            ));
        }
        assert_eq!(read_pairs(&Pairs(vec![])).credentials, Credentials::Missing);
    }

    #[test]
    fn target_prefers_original_uri_then_url_then_envoy_path() {
        let headers = Pairs(vec![
            ("x-original-uri", "/a/mcp"),
            ("x-original-url", "http://h/b/mcp"),
        ]);
        assert_eq!(
            read(&headers, "POST", Some("/c/mcp"), Body::TooLarge).target,
            TargetSource::Path("/a/mcp")
        );
        let headers = Pairs(vec![("x-original-url", "http://h/b/mcp")]);
        assert_eq!(
            read(&headers, "POST", Some("/c/mcp"), Body::TooLarge).target,
            TargetSource::Url("http://h/b/mcp")
        );
        let headers = Pairs(vec![]);
        assert_eq!(
            read(&headers, "POST", Some("/c/mcp"), Body::TooLarge).target,
            TargetSource::Path("/c/mcp")
        );
        assert_eq!(
            read(&headers, "POST", None, Body::TooLarge).target,
            TargetSource::Missing
        );
        let headers = Pairs(vec![("x-original-uri", "/a"), ("x-original-uri", "/b")]);
        assert_eq!(read_pairs(&headers).target, TargetSource::Ambiguous);
    }

    #[test]
    fn repeated_cognito_header_never_matches() {
        let headers = Pairs(vec![("x-client-id", "a"), ("x-client-id", "b")]);
        assert_eq!(read_pairs(&headers).cognito.client_id, Some(""));
    }

    #[test]
    fn original_method_header_wins() {
        let headers = Pairs(vec![("x-original-method", "DELETE")]);
        assert_eq!(read_pairs(&headers).method, "DELETE");
        assert_eq!(read_pairs(&Pairs(vec![])).method, "POST");
    }
}
