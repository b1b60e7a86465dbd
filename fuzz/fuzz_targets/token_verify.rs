//! Full token verification against a fixed key set whose private keys were thrown away
//! (fuzz/keys/jwks.json): whatever the bytes, no token may verify. An `Ok` is a forged token.
#![no_main]

use std::collections::HashSet;
use std::sync::LazyLock;

use auth_server::jwks::KeySet;
use auth_server::token::{Provider, TokenRules, verify};

/// Inside the validity of the seed tokens, which only fail on their issuer.
const NOW: u64 = 1_899_999_050;

static KEYS: LazyLock<KeySet> = LazyLock::new(|| {
    KeySet::from_json(include_bytes!("../keys/jwks.json"))
        .expect("fuzz/keys/jwks.json is a key set")
});

static RULES: LazyLock<TokenRules> = LazyLock::new(|| TokenRules {
    provider: Provider::Oidc,
    issuer: "https://idp.example".to_owned(),
    client_ids: Some(HashSet::from(["agent".to_owned()])),
    audiences: Some(vec!["mcp-gateway".to_owned()]),
    groups_claim: "groups".to_owned(),
    leeway_seconds: 60,
});

libfuzzer_sys::fuzz_target!(|token: &str| {
    assert!(
        verify(token, &KEYS, &RULES, NOW).is_err(),
        "a token verified: {token:?}"
    );
});
