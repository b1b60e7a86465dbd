//! The session cookie reader on arbitrary `Cookie` headers: never panics, opens nothing it did
//! not seal (an arbitrary value never becomes a session), and a return path it accepts stays on
//! the gateway (starts with one `/`, no backslash, no control character or space).
#![no_main]

use std::sync::OnceLock;

use auth_server::session::{self, SessionRules};

fn rules() -> &'static SessionRules {
    static RULES: OnceLock<SessionRules> = OnceLock::new();
    RULES.get_or_init(|| {
        SessionRules::new(
            "https://gw.example".into(),
            "auth-server-ui".into(),
            vec![cookie::Key::derive_from(&[7; 32])],
        )
    })
}

libfuzzer_sys::fuzz_target!(|header: &str| {
    let opened = session::open(header, rules(), 1_000);
    assert!(!matches!(opened, Ok(Some(_))), "{header:?} opened as a session");
    if let Some(path) = session::return_path(header) {
        assert!(path.starts_with('/') && !path.starts_with("//"), "{header:?}");
        assert!(!path.contains('\\'), "{header:?}");
        assert!(path.bytes().all(|b| b.is_ascii_graphic()), "{header:?}");
    }
});
