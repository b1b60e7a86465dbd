//! Key rotation against checks in flight, with the interleaving written out step by step (no
//! threads, no timing): a check reads the key set and its generation as one value, once, so a
//! verification is never cached under a generation whose set did not verify it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use auth_server::authorizer::Authorizer;
use auth_server::decision::{Decision, DenyReason};
use auth_server::jwks::KeySet;
use auth_server::token::TokenError;
use common::*;
use serde_json::json;

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn authorizer(keys: &[&TestKey]) -> Arc<Authorizer> {
    offline_authorizer(keys, &[])
}

fn token(key: &TestKey) -> String {
    let mut claims = cognito_claims("agent-1", &["mcp-registry-admin"]);
    claims["iat"] = json!(now() - 10);
    claims["exp"] = json!(now() + 600);
    key.sign(&claims)
}

#[test]
fn a_check_that_loaded_the_old_key_set_never_caches_under_the_new_generation() {
    let authorizer = authorizer(&[rsa_key(), ec_key()]);
    let withdrawn = token(rsa_key());
    let check = TestCheck::post(
        "/fininfo/mcp",
        Some(&withdrawn),
        json!({"jsonrpc":"2.0","id":1,"method":"tools/list"}).to_string(),
    );

    // 1. A check loads its snapshot: the set still holds the key its token names.
    let in_flight = authorizer.snapshot();
    // 2. The fetcher installs a rotated set that withdrew that key.
    authorizer.keys()[0].install(KeySet::from_json(&jwks(&[ec_key()])).unwrap());
    // 3. The check goes on with what it loaded, and is allowed: it was in flight.
    let decision = authorizer.decide_with(&check.facts(), &in_flight, now());
    assert!(matches!(decision, Decision::Allow(_)), "{decision:?}");
    // 4. The next check with that token must see the rotation, not a cached verification.
    let next = authorizer.decide_now(&check.facts());
    assert!(
        matches!(
            next,
            Decision::Deny {
                reason: DenyReason::Token(TokenError::UnknownKid(_)),
                ..
            }
        ),
        "a token signed by a withdrawn key stayed valid: {next:?}"
    );
    // A token of the key that stayed is still fine.
    let kept = TestCheck::post(
        "/fininfo/mcp",
        Some(&token(ec_key())),
        json!({"jsonrpc":"2.0","id":1,"method":"tools/list"}).to_string(),
    );
    assert!(matches!(
        authorizer.decide_now(&kept.facts()),
        Decision::Allow(_)
    ));
}

#[test]
fn one_snapshot_gives_a_key_set_and_the_generation_that_belongs_to_it() {
    let authorizer = authorizer(&[rsa_key()]);
    let before = authorizer.snapshot().keys[0].clone().unwrap();
    authorizer.keys()[0].install(KeySet::from_json(&jwks(&[ec_key()])).unwrap());
    let after = authorizer.snapshot().keys[0].clone().unwrap();
    assert!(before.keys.get("rsa-1").is_some() && before.keys.get("ec-1").is_none());
    assert!(after.keys.get("ec-1").is_some() && after.keys.get("rsa-1").is_none());
    assert!(after.generation > before.generation);
}
