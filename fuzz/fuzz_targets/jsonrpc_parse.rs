//! The JSON-RPC reader on arbitrary bodies: never panics, never overflows the stack, and accepts
//! only one UTF-8 JSON value (no BOM, no trailing data, no invalid UTF-8 in a skipped string)
//! that is not an empty batch.
#![no_main]

use serde::de::IgnoredAny;

libfuzzer_sys::fuzz_target!(|body: &[u8]| {
    if let Ok(payload) = auth_server::jsonrpc::parse(body) {
        assert!(!payload.messages().is_empty(), "empty batch accepted");
        assert!(std::str::from_utf8(body).is_ok(), "accepted, not UTF-8");
        // IgnoredAny: a syntax check without serde_json's depth limit, which the reader does
        // not apply to the parts it skips either.
        assert!(
            serde_json::from_slice::<IgnoredAny>(body).is_ok(),
            "accepted, not JSON"
        );
    }
});
