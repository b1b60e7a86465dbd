//! The path reader: which MCP server a request is for.
//!
//! The server is the first path segment, percent-decoded. The raw path is judged as the client
//! sent it, before any proxy normalises it, and anything that two parsers could read differently
//! is refused rather than guessed: `..` and `.` segments (also encoded), `//`, an encoded `/` or
//! `\`, a malformed escape, control characters, a `;` (servlet containers cut path parameters at
//! it, so `/a/..;/b` is `/a/../b` to them and one segment to nginx) and an encoded `%` (a
//! second decoding would turn `%252e%252e` into `..`). The query string never names the server.

/// Why a target path was refused (400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// No `X-Original-URI`, `X-Original-URL` or `/validate/<path>` was given.
    #[error(
        "the request names no target path (X-Original-URI, X-Original-URL or /validate/<path>)"
    )]
    Missing,
    /// A target header came more than once: which copy counts is ambiguous.
    #[error("{0} is repeated")]
    Repeated(&'static str),
    /// A target header is not readable text.
    #[error("{0} is not readable text")]
    Unreadable(&'static str),
    /// The path does not start with `/`, or the URL has no path.
    #[error("the target path must start with `/`")]
    NotAbsolute,
    /// The path has no first segment.
    #[error("the target path names no MCP server")]
    NoServer,
    /// `.` or `..` segment, raw or encoded.
    #[error("the target path has a `.` or `..` segment")]
    DotSegment,
    /// An empty segment (`//`).
    #[error("the target path has an empty segment (`//`)")]
    EmptySegment,
    /// `%2f`, `%5c` or a raw `\`.
    #[error("the target path has an encoded `/` or a `\\`")]
    EncodedSeparator,
    /// A `;`, raw or encoded: a path parameter to some servers, part of the segment to others.
    #[error("the target path has a `;` (path parameters are read differently by each server)")]
    PathParameter,
    /// `%25`: an encoded `%`, which a second decoding would turn into something else.
    #[error("the target path has an encoded `%` (%25): it would read differently decoded twice")]
    DoubleEncoding,
    /// A `%` not followed by two hex digits.
    #[error("the target path has a malformed percent-escape")]
    BadEscape,
    /// A control character, raw or encoded.
    #[error("the target path has a control character")]
    ControlCharacter,
    /// The decoded server name is not UTF-8.
    #[error("the server name is not valid UTF-8")]
    NotUtf8,
}

/// Reads the server name from a raw `path[?query]`, as found in `X-Original-URI`.
pub fn server_from_path(raw: &str) -> Result<String, TargetError> {
    let path = raw.split(['?', '#']).next().unwrap_or_default();
    if !path.starts_with('/') {
        return Err(TargetError::NotAbsolute);
    }
    let mut segments = path[1..].split('/');
    let first = segments.next().unwrap_or_default();
    let server = decode_segment(first)?;
    let trailing_slash = path.len() > 1 && path.ends_with('/');
    let rest: Vec<&str> = segments.collect();
    for (index, segment) in rest.iter().enumerate() {
        let is_last = index + 1 == rest.len();
        if segment.is_empty() && !(is_last && trailing_slash) {
            return Err(TargetError::EmptySegment);
        }
        decode_segment(segment)?;
    }
    if server.is_empty() {
        return Err(if rest.is_empty() {
            TargetError::NoServer
        } else {
            TargetError::EmptySegment
        });
    }
    String::from_utf8(server).map_err(|_| TargetError::NotUtf8)
}

/// Reads the server name from an absolute URL, as found in `X-Original-URL`.
pub fn server_from_url(url: &str) -> Result<String, TargetError> {
    let after_scheme = url
        .split_once("://")
        .map(|(_, rest)| rest)
        .ok_or(TargetError::NotAbsolute)?;
    let path_start = after_scheme
        .find(['/', '?', '#'])
        .ok_or(TargetError::NoServer)?;
    server_from_path(&after_scheme[path_start..])
}

/// Percent-decodes one segment, refusing what could be read two ways.
fn decode_segment(segment: &str) -> Result<Vec<u8>, TargetError> {
    let mut decoded = Vec::with_capacity(segment.len());
    let mut bytes = segment.bytes();
    while let Some(byte) = bytes.next() {
        let byte = match byte {
            b'%' => {
                let hi = bytes.next().and_then(hex_value);
                let lo = bytes.next().and_then(hex_value);
                match (hi, lo) {
                    (Some(hi), Some(lo)) => match hi << 4 | lo {
                        b'/' | b'\\' => return Err(TargetError::EncodedSeparator),
                        b'%' => return Err(TargetError::DoubleEncoding),
                        value => value,
                    },
                    _ => return Err(TargetError::BadEscape),
                }
            }
            b'\\' => return Err(TargetError::EncodedSeparator),
            other => other,
        };
        if byte == b';' {
            return Err(TargetError::PathParameter);
        }
        if byte < 0x20 || byte == 0x7f {
            return Err(TargetError::ControlCharacter);
        }
        decoded.push(byte);
    }
    if decoded == b"." || decoded == b".." {
        return Err(TargetError::DotSegment);
    }
    Ok(decoded)
}

fn hex_value(byte: u8) -> Option<u8> {
    (byte as char).to_digit(16).map(|digit| digit as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_is_the_first_segment() {
        assert_eq!(server_from_path("/fininfo/mcp"), Ok("fininfo".into()));
        assert_eq!(server_from_path("/fininfo/mcp/"), Ok("fininfo".into()));
        assert_eq!(server_from_path("/fininfo"), Ok("fininfo".into()));
        assert_eq!(server_from_path("/fininfo/"), Ok("fininfo".into()));
    }

    #[test]
    fn server_is_percent_decoded_and_case_kept() {
        assert_eq!(server_from_path("/fin%69nfo/mcp"), Ok("fininfo".into()));
        assert_eq!(server_from_path("/FinInfo/mcp"), Ok("FinInfo".into()));
    }

    #[test]
    fn query_cannot_change_the_server() {
        assert_eq!(
            server_from_path("/fininfo/mcp?server=admin&x=/admin/"),
            Ok("fininfo".into())
        );
        assert_eq!(
            server_from_path("/fininfo?/admin/mcp"),
            Ok("fininfo".into())
        );
    }

    #[test]
    fn path_tricks_are_refused() {
        let cases = [
            ("/../admin/mcp", TargetError::DotSegment),
            ("/fininfo/../admin/mcp", TargetError::DotSegment),
            ("/fininfo/%2e%2e/admin", TargetError::DotSegment),
            ("/%2E%2E/admin", TargetError::DotSegment),
            ("/./fininfo", TargetError::DotSegment),
            ("//fininfo/mcp", TargetError::EmptySegment),
            ("/fininfo//mcp", TargetError::EmptySegment),
            ("/fininfo%2fadmin/mcp", TargetError::EncodedSeparator),
            ("/fininfo%2Fadmin/mcp", TargetError::EncodedSeparator),
            ("/fininfo%5cadmin", TargetError::EncodedSeparator),
            ("/fin\\info", TargetError::EncodedSeparator),
            ("/fin%0ainfo/mcp", TargetError::ControlCharacter),
            ("/fin\tinfo", TargetError::ControlCharacter),
            ("/fin%zzinfo", TargetError::BadEscape),
            ("/fininfo%2", TargetError::BadEscape),
            ("fininfo/mcp", TargetError::NotAbsolute),
            ("/", TargetError::NoServer),
            ("/%ff/mcp", TargetError::NotUtf8),
            ("/currenttime/..;/fininfo/mcp", TargetError::PathParameter),
            ("/fininfo;jsessionid=1/mcp", TargetError::PathParameter),
            ("/fininfo/mcp;x", TargetError::PathParameter),
            ("/fininfo%3b/mcp", TargetError::PathParameter),
            (
                "/currenttime/%252e%252e/fininfo/mcp",
                TargetError::DoubleEncoding,
            ),
            ("/fininfo%252fadmin/mcp", TargetError::DoubleEncoding),
            ("/fininfo/%25", TargetError::DoubleEncoding),
        ];
        for (path, expected) in cases {
            assert_eq!(server_from_path(path), Err(expected), "{path}");
        }
    }

    #[test]
    fn absolute_url_is_read_by_its_path() {
        assert_eq!(
            server_from_url("https://gw.example.com/fininfo/mcp?x=1"),
            Ok("fininfo".into())
        );
        assert_eq!(
            server_from_url("http://gw:8080/a%2fb"),
            Err(TargetError::EncodedSeparator)
        );
        assert_eq!(
            server_from_url("https://gw.example.com"),
            Err(TargetError::NoServer)
        );
        assert_eq!(server_from_url("/fininfo"), Err(TargetError::NotAbsolute));
    }
}
