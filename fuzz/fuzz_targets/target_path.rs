//! The path reader on arbitrary `X-Original-URI` / `X-Original-URL` values: never panics, and a
//! server name it accepts is one plain segment: not empty, not `.` or `..`, no `/` or `\`, no
//! control character.
#![no_main]

use auth_server::target::{server_from_path, server_from_url};

libfuzzer_sys::fuzz_target!(|raw: &str| {
    for server in [server_from_path(raw), server_from_url(raw)]
        .into_iter()
        .flatten()
    {
        assert!(
            !server.is_empty() && server != "." && server != "..",
            "{raw:?}"
        );
        assert!(!server.contains(['/', '\\']), "{raw:?} -> {server:?}");
        assert!(
            !server.bytes().any(|b| b < 0x20 || b == 0x7f),
            "{raw:?} -> {server:?}"
        );
    }
});
