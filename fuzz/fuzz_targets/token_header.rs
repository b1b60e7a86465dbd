//! The token header reader on arbitrary tokens: never panics, and never hands on an HMAC
//! algorithm (`none` and unknown names have no `Algorithm` at all) or a token without a `kid`.
#![no_main]

use auth_server::token::read_header;
use jsonwebtoken::Algorithm::{HS256, HS384, HS512};

libfuzzer_sys::fuzz_target!(|token: &str| {
    if let Ok((algorithm, _kid)) = read_header(token) {
        assert!(!matches!(algorithm, HS256 | HS384 | HS512), "{token:?}");
    }
});
