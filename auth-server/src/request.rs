//! Request facts: what a check request says, read the same way by every shell (HTTP for nginx
//! and Envoy, gRPC for Envoy), before anything is judged. Only the way headers are looked up
//! differs between shells; what each fact means is decided by [`crate::decision`].

/// What a request says about one header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderFact<'a> {
    /// Not sent.
    Absent,
    /// Sent once, as readable text.
    Once(&'a str),
    /// Sent more than once: which copy counts is ambiguous, so none does.
    Repeated,
    /// Sent once, but not readable text (not visible ASCII over HTTP/1.1, not UTF-8 over gRPC).
    Unreadable,
}

impl<'a> HeaderFact<'a> {
    /// Whether the header was sent at all.
    pub fn is_present(self) -> bool {
        !matches!(self, HeaderFact::Absent)
    }

    /// The value when sent once and readable.
    pub fn once(self) -> Option<&'a str> {
        match self {
            HeaderFact::Once(value) => Some(value),
            _ => None,
        }
    }
}

/// Read access to a request's headers, by lower-case name.
pub trait HeaderLookup {
    /// Every value of the header `name` (lower-case), in order; `None` for a value that is not
    /// readable text. Names are literals: a shell may turn them into its own header-name type
    /// once, without parsing or allocating.
    fn values<'s>(&'s self, name: &'static str) -> impl Iterator<Item = Option<&'s str>>;

    /// What the request says about the header `name`.
    fn fact(&self, name: &'static str) -> HeaderFact<'_> {
        let mut values = self.values(name);
        match (values.next(), values.next()) {
            (None, _) => HeaderFact::Absent,
            (Some(_), Some(_)) => HeaderFact::Repeated,
            (Some(Some(value)), None) => HeaderFact::Once(value),
            (Some(None), None) => HeaderFact::Unreadable,
        }
    }
}

/// The request body as the shell read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body<'a> {
    /// The whole body (empty when there was none).
    Complete(&'a [u8]),
    /// Larger than the limit, or incomplete: never inspected.
    TooLarge,
}

/// Where the original request went, as the gateway describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TargetFacts<'a> {
    /// `X-Original-URI` (path and query), set by nginx.
    pub original_uri: HeaderFact<'a>,
    /// `X-Original-URL` (absolute URL).
    pub original_url: HeaderFact<'a>,
    /// The path Envoy's HTTP ext_authz appends after `/validate`, or the gRPC request's path.
    pub envoy_path: Option<&'a str>,
}

/// The ingress credential headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CredentialFacts<'a> {
    /// `X-Authorization`: the ingress token when present.
    pub x_authorization: HeaderFact<'a>,
    /// `Authorization`: the ingress token when `X-Authorization` is absent, else the egress token.
    pub authorization: HeaderFact<'a>,
}

/// Seed-compatible Cognito headers; each must agree with configuration and token when present.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CognitoFacts<'a> {
    /// `X-User-Pool-Id`.
    pub user_pool_id: HeaderFact<'a>,
    /// `X-Client-Id`.
    pub client_id: HeaderFact<'a>,
    /// `X-Region`.
    pub region: HeaderFact<'a>,
}

/// MCP request headers (spec 2026-07-28) that must agree with the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct McpFacts<'a> {
    /// `Mcp-Method`.
    pub method: HeaderFact<'a>,
    /// `Mcp-Name`.
    pub name: HeaderFact<'a>,
}

/// What a browser sends: the session cookie, where the request comes from, what it accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BrowserFacts<'a> {
    /// `Cookie` (one header: the gateways join HTTP/2 cookie crumbs into one).
    pub cookie: HeaderFact<'a>,
    /// `Origin`: the page's origin on a cross-origin or state-changing request.
    pub origin: HeaderFact<'a>,
    /// `Sec-Fetch-Site`: `same-origin`, `same-site`, `cross-site` or `none`.
    pub sec_fetch_site: HeaderFact<'a>,
    /// `Accept`: a browser navigation accepts `text/html`.
    pub accept: HeaderFact<'a>,
}

/// Everything a check needs from the request, borrowed from the shell's own types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckRequest<'a> {
    /// The check request's own method (the client's, for Envoy).
    pub own_method: &'a str,
    /// `X-Original-Method`: the client's method, as nginx forwards it.
    pub original_method: HeaderFact<'a>,
    /// The original target.
    pub target: TargetFacts<'a>,
    /// The JSON-RPC body.
    pub body: Body<'a>,
    /// Ingress (and egress) credentials.
    pub credentials: CredentialFacts<'a>,
    /// Cognito seed headers.
    pub cognito: CognitoFacts<'a>,
    /// MCP method headers.
    pub mcp: McpFacts<'a>,
    /// Browser headers: session cookie, origin, accepted types.
    pub browser: BrowserFacts<'a>,
}

/// Reads the facts of a check request.
///
/// `own_method` is the check request's own method; `envoy_path` the original path that Envoy's
/// HTTP ext_authz appends after `/validate` (or the gRPC `CheckRequest` path).
pub fn read<'a>(
    headers: &'a impl HeaderLookup,
    own_method: &'a str,
    envoy_path: Option<&'a str>,
    body: Body<'a>,
) -> CheckRequest<'a> {
    CheckRequest {
        own_method,
        original_method: headers.fact("x-original-method"),
        target: TargetFacts {
            original_uri: headers.fact("x-original-uri"),
            original_url: headers.fact("x-original-url"),
            envoy_path,
        },
        body,
        credentials: CredentialFacts {
            x_authorization: headers.fact("x-authorization"),
            authorization: headers.fact("authorization"),
        },
        cognito: CognitoFacts {
            user_pool_id: headers.fact("x-user-pool-id"),
            client_id: headers.fact("x-client-id"),
            region: headers.fact("x-region"),
        },
        mcp: McpFacts {
            method: headers.fact("mcp-method"),
            name: headers.fact("mcp-name"),
        },
        browser: BrowserFacts {
            cookie: headers.fact("cookie"),
            origin: headers.fact("origin"),
            sec_fetch_site: headers.fact("sec-fetch-site"),
            accept: headers.fact("accept"),
        },
    }
}

/// The gateway's request id (`X-Request-Id`, set by nginx from `$request_id` and by Envoy), for
/// the decision log; only a short, printable value is kept.
pub fn request_id(headers: &impl HeaderLookup) -> Option<&str> {
    headers
        .fact("x-request-id")
        .once()
        .filter(|id| id.len() <= 128 && id.bytes().all(|b| b.is_ascii_graphic()))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Pairs(Vec<(&'static str, Option<&'static str>)>);

    impl HeaderLookup for Pairs {
        fn values<'s>(&'s self, name: &'static str) -> impl Iterator<Item = Option<&'s str>> {
            self.0
                .iter()
                .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| *v)
        }
    }

    #[test]
    fn a_header_is_absent_once_repeated_or_unreadable() {
        let headers = Pairs(vec![
            ("x-once", Some("a")),
            ("x-twice", Some("a")),
            ("x-twice", Some("b")),
            ("x-binary", None),
            ("x-twice-binary", None),
            ("x-twice-binary", Some("a")),
        ]);
        assert_eq!(headers.fact("x-none"), HeaderFact::Absent);
        assert_eq!(headers.fact("x-once"), HeaderFact::Once("a"));
        assert_eq!(headers.fact("x-twice"), HeaderFact::Repeated);
        assert_eq!(headers.fact("x-binary"), HeaderFact::Unreadable);
        assert_eq!(headers.fact("x-twice-binary"), HeaderFact::Repeated);
    }

    #[test]
    fn facts_keep_each_header_apart() {
        let headers = Pairs(vec![
            ("x-authorization", Some("Bearer ingress")),
            ("authorization", Some("Bearer egress")),
            ("x-original-uri", Some("/a/mcp")),
            ("x-original-uri", Some("/b/mcp")),
            ("x-client-id", Some("a")),
            ("x-client-id", Some("b")),
        ]);
        let facts = read(&headers, "POST", Some("/c/mcp"), Body::TooLarge);
        assert_eq!(
            facts.credentials,
            CredentialFacts {
                x_authorization: HeaderFact::Once("Bearer ingress"),
                authorization: HeaderFact::Once("Bearer egress"),
            }
        );
        assert_eq!(facts.target.original_uri, HeaderFact::Repeated);
        assert_eq!(facts.target.envoy_path, Some("/c/mcp"));
        assert_eq!(facts.cognito.client_id, HeaderFact::Repeated);
        assert_eq!(facts.original_method, HeaderFact::Absent);
    }

    #[test]
    fn request_id_is_kept_only_when_short_and_printable() {
        let ok = Pairs(vec![("x-request-id", Some("abc123"))]);
        assert_eq!(request_id(&ok), Some("abc123"));
        let spaced = Pairs(vec![("x-request-id", Some("a b"))]);
        assert_eq!(request_id(&spaced), None);
        let twice = Pairs(vec![
            ("x-request-id", Some("a")),
            ("x-request-id", Some("b")),
        ]);
        assert_eq!(request_id(&twice), None);
    }
}
