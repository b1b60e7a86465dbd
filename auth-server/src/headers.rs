//! The header contract between auth-server and the gateways, in one place.
//!
//! - [`IDENTITY_HEADERS`]: what an allow sets on the upstream request. deploy/nginx (template and
//!   Lua) and both Envoy configs must set, strip and allow exactly these; a test compares them
//!   (auth-server/tests/header_contract.rs), so a header added here and forgotten there fails.
//! - [`INGRESS_HEADERS`]: the ingress credentials (the session cookie too) and Cognito
//!   selectors that never reach an upstream; an allow lists those the request carried in
//!   `x-envoy-auth-headers-to-remove`.
//! - [`BROWSER_HEADERS`]: what the check reads of a browser's request; the gateways send them.
//! - [`TOOLS_LIST_HEADER`]: the allow answer's mark of a request holding `tools/list` calls,
//!   and [`filter_endpoint`]: the names of nginx's call to the answer filter.
//! - [`HeaderText`]: a value that is safe to send as a header. Every value an answer carries is
//!   one, so no shell can be handed a value with a line break in it.

use std::fmt;

/// Identity headers set on allow, in the order of [`IdentityHeaders`]; the gateway drops any
/// client-sent copies.
pub const IDENTITY_HEADERS: [&str; 8] = [
    "x-user",
    "x-username",
    "x-client-id",
    "x-scopes",
    "x-auth-method",
    "x-server-name",
    "x-method",
    "x-tool-name",
];

/// Request headers that carry ingress credentials or choose the Cognito pool: never passed to
/// an upstream (`authorization` only when it held the ingress token; `cookie` always: it
/// carries people's session).
pub const INGRESS_HEADERS: [&str; 5] = [
    "x-authorization",
    "authorization",
    "x-user-pool-id",
    "x-region",
    "cookie",
];

/// Request headers the check reads for people in a browser: the session cookie, where a
/// request comes from (the same-origin rule) and whether it is a navigation (sign-in redirect).
pub const BROWSER_HEADERS: [&str; 4] = ["cookie", "origin", "sec-fetch-site", "accept"];

/// The response header naming the request headers to drop before the upstream (Envoy's HTTP
/// ext_authz reads it; deploy/nginx's Lua does too). The gRPC shell sends a list instead.
pub const HEADERS_TO_REMOVE: &str = "x-envoy-auth-headers-to-remove";

/// The allow answer's mark of a request that holds `tools/list` calls: its value is what the
/// answer filter needs ([`crate::tools_list::context::FilterContext`], encoded). HTTP: an answer
/// header, which nginx's Lua hands back to the filter endpoint and Envoy's HTTP ext_authz turns
/// into dynamic metadata (`dynamic_metadata_from_headers`); gRPC: the key of the same value in
/// `CheckResponse.dynamic_metadata`. It reaches neither the upstream nor the client, and the
/// gateways drop a client-sent header of this name before the check.
pub const TOOLS_LIST_HEADER: &str = "x-mcp-tools-list";

/// Headers an allow of a request holding `tools/list` calls sets on the upstream request, beside
/// the identity headers: the answer filter reads no compressed answer, so the upstream is asked
/// for an uncompressed one (one it compresses anyway is withheld). Envoy applies it from the
/// check's answer; deploy/nginx's capture location sets it itself.
pub const TOOLS_LIST_UPSTREAM_HEADERS: [(&str, &str); 1] = [("accept-encoding", "identity")];

/// The answer filter's HTTP endpoint on auth-server's listener, as deploy/nginx's Lua calls it
/// (Envoy uses ext_proc on the gRPC listener instead).
pub mod filter_endpoint {
    /// The path: `POST` the upstream's answer body, at most the answer bound plus one byte.
    pub const PATH: &str = "/tools-list/filter";
    /// Request header: the [`super::TOOLS_LIST_HEADER`] value of the check's allow answer.
    pub const CONTEXT: &str = super::TOOLS_LIST_HEADER;
    /// Request header: the upstream's HTTP status.
    pub const UPSTREAM_STATUS: &str = "x-mcp-upstream-status";
    /// Request header: the upstream's `Content-Type`, when it sent one.
    pub const UPSTREAM_CONTENT_TYPE: &str = "x-mcp-upstream-content-type";
    /// Request header: the upstream's `Content-Encoding`, when it sent one.
    pub const UPSTREAM_CONTENT_ENCODING: &str = "x-mcp-upstream-content-encoding";
    /// Answer header of a `200`: the status to send the client (the body and `Content-Type` of
    /// the `200` replace the upstream's). A `204` means: send the upstream's answer as it came.
    pub const STATUS: &str = "x-mcp-status";
}

/// Most bytes the identity headers of one allow may take together. nginx reads the check's
/// answer into a 32 KiB buffer (deploy/nginx: `proxy_buffer_size`), Envoy and most MCP servers
/// accept at least that per request header block; a larger answer would be cut off or refused
/// by a gateway with a misleading 502/503 instead of a reason.
pub const MAX_IDENTITY_BYTES: usize = 16 * 1024;

/// Text that can be sent as an HTTP header value: no control character but tab (CR or LF would
/// end the header and start another, NUL is refused by every HTTP stack).
#[derive(Clone, PartialEq, Eq)]
pub struct HeaderText(String);

/// Why a value cannot be a header value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnsafeValue {
    /// It holds a control character.
    ControlCharacter,
    /// Together with the others, longer than [`MAX_IDENTITY_BYTES`].
    TooLong,
}

impl HeaderText {
    /// Checks `text`; refuses it when it holds a control character other than tab.
    pub fn checked(text: String) -> Result<Self, UnsafeValue> {
        if is_header_safe(&text) {
            Ok(HeaderText(text))
        } else {
            Err(UnsafeValue::ControlCharacter)
        }
    }

    /// Our own text (a challenge, a reason): characters that cannot be in a header value
    /// become `?`.
    pub fn sanitized(text: &str) -> Self {
        HeaderText(
            text.chars()
                .map(|c| if c.is_control() && c != '\t' { '?' } else { c })
                .collect(),
        )
    }

    /// The value.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The value, without a copy.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Debug for HeaderText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

/// The values of [`IDENTITY_HEADERS`] for one allow, each checked, together within
/// [`MAX_IDENTITY_BYTES`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityHeaders([HeaderText; 8]);

/// An identity value that cannot be sent, and which header it was for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnsafeHeader {
    /// The header, one of [`IDENTITY_HEADERS`].
    pub header: &'static str,
    /// What is wrong with its value.
    pub problem: UnsafeValue,
}

impl IdentityHeaders {
    /// Checks the values, given in the order of [`IDENTITY_HEADERS`].
    pub fn new(values: [String; 8]) -> Result<Self, UnsafeHeader> {
        let total: usize = values.iter().map(String::len).sum();
        if total > MAX_IDENTITY_BYTES {
            let longest = values
                .iter()
                .enumerate()
                .max_by_key(|(_, value)| value.len())
                .map_or(0, |(index, _)| index);
            return Err(UnsafeHeader {
                header: IDENTITY_HEADERS[longest],
                problem: UnsafeValue::TooLong,
            });
        }
        if let Some((header, _)) = IDENTITY_HEADERS
            .into_iter()
            .zip(&values)
            .find(|(_, value)| !is_header_safe(value))
        {
            return Err(UnsafeHeader {
                header,
                problem: UnsafeValue::ControlCharacter,
            });
        }
        Ok(IdentityHeaders(values.map(HeaderText)))
    }

    /// The value of `header`, one of [`IDENTITY_HEADERS`].
    pub fn get(&self, header: &str) -> Option<&str> {
        IDENTITY_HEADERS
            .iter()
            .position(|name| *name == header)
            .map(|index| self.0[index].as_str())
    }

    /// Name and value of each header, in the order of [`IDENTITY_HEADERS`].
    pub fn into_pairs(self) -> impl Iterator<Item = (&'static str, HeaderText)> {
        IDENTITY_HEADERS.into_iter().zip(self.0)
    }
}

/// No control character but tab. No early exit: a branch-free pass compiles to SIMD on long
/// values.
fn is_header_safe(text: &str) -> bool {
    text.bytes().fold(true, |ok, b| {
        ok & (((b >= 0x20) & (b != 0x7f)) | (b == b'\t'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(user: &str) -> [String; 8] {
        [user, "u", "c", "s", "oidc", "fininfo", "tools/call", "t"].map(str::to_owned)
    }

    #[test]
    fn header_text_refuses_control_characters_but_tab() {
        assert!(HeaderText::checked("agent\tone José".to_owned()).is_ok());
        for bad in [
            "a\r\nx-user: admin",
            "a\nb",
            "a\0b",
            "a\u{7f}b",
            "a\u{1b}[31m",
        ] {
            assert_eq!(
                HeaderText::checked(bad.to_owned()),
                Err(UnsafeValue::ControlCharacter),
                "{bad:?}"
            );
        }
        assert_eq!(HeaderText::sanitized("a\r\nb").as_str(), "a??b");
    }

    #[test]
    fn identity_headers_name_the_header_at_fault() {
        let err = IdentityHeaders::new(values("agent\r\nx-user: admin")).expect_err("refused");
        assert_eq!(
            err,
            UnsafeHeader {
                header: "x-user",
                problem: UnsafeValue::ControlCharacter
            }
        );
        let mut long = values("agent");
        long[6] = "tools/call,".repeat(2000);
        let err = IdentityHeaders::new(long).expect_err("too long");
        assert_eq!(
            err,
            UnsafeHeader {
                header: "x-method",
                problem: UnsafeValue::TooLong
            }
        );
        let ok = IdentityHeaders::new(values("agent")).expect("safe");
        assert_eq!(ok.get("x-server-name"), Some("fininfo"));
    }
}
