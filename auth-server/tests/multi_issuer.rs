//! Several trusted issuers at once: a token is matched to its issuer by its exact `iss` before
//! any key is looked at, only that issuer's keys verify it, each issuer has its own key set and
//! readiness, and the answer names the issuer that vouched.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use auth_server::answer;
use auth_server::decision::{CognitoPool, Decision, DenyReason, Issuer, decide};
use auth_server::jwks::KeySet;
use auth_server::policy::CompiledPolicy;
use auth_server::token::{Provider, TokenError, TokenRules};
use common::*;
use serde_json::{Value, json};

const AGENTS_ISS: &str = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Agents";
const PEOPLE_ISS: &str = "https://keycloak.example.com/realms/mcp";

fn agents() -> Issuer {
    Issuer {
        name: "agents".into(),
        auth_method: "cognito:agents".into(),
        rules: TokenRules {
            provider: Provider::Cognito,
            issuer: AGENTS_ISS.into(),
            client_ids: None,
            audiences: None,
            groups_claim: "cognito:groups".into(),
            leeway_seconds: 60,
        },
        cognito_pool: Some(CognitoPool {
            region: "us-east-1".into(),
            user_pool_id: "us-east-1_Agents".into(),
        }),
    }
}

fn people() -> Issuer {
    Issuer {
        name: "people".into(),
        auth_method: "oidc:people".into(),
        rules: TokenRules {
            provider: Provider::Oidc,
            issuer: PEOPLE_ISS.into(),
            client_ids: None,
            audiences: None,
            groups_claim: "groups".into(),
            leeway_seconds: 60,
        },
        cognito_pool: None,
    }
}

/// Both issuers publish a key with the same `kid`: `agents` the RSA test key, `people` another
/// RSA key (re-labelled with that `kid`).
fn same_kid_keys() -> (KeySet, KeySet, TestKey) {
    let mut other = TestKey::rsa("rsa-1");
    other.kid = "rsa-1".into();
    let agents = KeySet::from_json(&jwks(&[rsa_key()])).unwrap();
    let people = KeySet::from_json(&jwks(&[&other])).unwrap();
    (agents, people, other)
}

fn core(agents_keys: Option<KeySet>, people_keys: Option<KeySet>) -> Core {
    Core::with_issuers(
        CompiledPolicy::load(&example_scopes()).unwrap(),
        vec![(agents(), agents_keys), (people(), people_keys)],
    )
}

fn agent_claims() -> Value {
    let mut claims = cognito_claims("agent-1", &["mcp-registry-operator"]);
    claims["iss"] = json!(AGENTS_ISS);
    claims
}

fn person_claims(patch: Value) -> Value {
    let mut claims = json!({
        "iss": PEOPLE_ISS,
        "sub": "alice",
        "azp": "ui",
        "preferred_username": "alice",
        "groups": ["mcp-registry-user"],
        "iat": NOW - 60,
        "exp": NOW + 600,
    });
    for (name, value) in patch.as_object().unwrap() {
        claims[name] = value.clone();
    }
    claims
}

fn list_tools(token: &str) -> TestCheck {
    TestCheck::post(
        "/fininfo/mcp",
        Some(token),
        json!({"jsonrpc":"2.0","id":1,"method":"tools/list"}).to_string(),
    )
}

fn decided(core: &Core, check: &TestCheck) -> Decision {
    decide(&check.facts(), &core.context(NOW))
}

fn refusal(decision: &Decision) -> &DenyReason {
    match decision {
        Decision::Deny { reason, .. } => reason,
        Decision::Allow(_) => panic!("allowed"),
    }
}

#[test]
fn each_issuer_vouches_for_its_own_tokens_and_the_answer_names_it() {
    let (agents_keys, people_keys, person_key) = same_kid_keys();
    let core = core(Some(agents_keys), Some(people_keys));
    for (token, auth_method, user) in [
        (
            rsa_key().sign(&agent_claims()),
            "cognito:agents",
            "sub-agent-1",
        ),
        (
            person_key.sign(&person_claims(json!({}))),
            "oidc:people",
            "alice",
        ),
    ] {
        let Decision::Allow(allowed) = decided(&core, &list_tools(&token)) else {
            panic!("{auth_method}: refused");
        };
        assert_eq!(allowed.headers.get("x-auth-method"), Some(auth_method));
        assert_eq!(allowed.headers.get("x-user"), Some(user));
    }
}

#[test]
fn a_key_of_one_issuer_never_verifies_a_token_that_claims_another() {
    let (agents_keys, people_keys, person_key) = same_kid_keys();
    let core = core(Some(agents_keys), Some(people_keys));
    // Same kid published by both; the token claims `people` but is signed by `agents`' key.
    let cross = rsa_key().sign(&person_claims(json!({})));
    assert_eq!(
        refusal(&decided(&core, &list_tools(&cross))),
        &DenyReason::Token(TokenError::BadSignature)
    );
    // And the other way round.
    let cross = person_key.sign(&agent_claims());
    assert_eq!(
        refusal(&decided(&core, &list_tools(&cross))),
        &DenyReason::Token(TokenError::BadSignature)
    );
}

#[test]
fn an_issuer_nobody_trusts_is_a_401_that_says_so() {
    let (agents_keys, people_keys, _) = same_kid_keys();
    let core = core(Some(agents_keys), Some(people_keys));
    let token = rsa_key().sign(&person_claims(json!({"iss": "https://evil.example/"})));
    let decision = decided(&core, &list_tools(&token));
    assert_eq!(
        refusal(&decision),
        &DenyReason::Token(TokenError::UnknownIssuer)
    );
    let answer = answer::answer(decision, &answer_settings());
    assert_eq!(answer.status.http, 401);
    assert!(
        answer.body.unwrap().contains("another issuer"),
        "the reason names the issuer problem"
    );
}

#[test]
fn one_issuer_without_keys_does_not_stop_the_other() {
    let (agents_keys, _, person_key) = same_kid_keys();
    let core = core(Some(agents_keys), None);
    let person = person_key.sign(&person_claims(json!({})));
    assert_eq!(
        refusal(&decided(&core, &list_tools(&person))),
        &DenyReason::NoKeySet {
            issuer: "people".into()
        }
    );
    let agent = rsa_key().sign(&agent_claims());
    assert!(matches!(
        decided(&core, &list_tools(&agent)),
        Decision::Allow(_)
    ));
}

#[test]
fn cognito_seed_headers_are_checked_against_the_issuer_that_vouched() {
    let (agents_keys, people_keys, person_key) = same_kid_keys();
    let core = core(Some(agents_keys), Some(people_keys));
    let agent = rsa_key().sign(&agent_claims());
    let matching = list_tools(&agent).header("x-user-pool-id", "us-east-1_Agents");
    assert!(matches!(decided(&core, &matching), Decision::Allow(_)));
    let other_pool = list_tools(&agent).header("x-user-pool-id", "us-east-1_Other");
    assert!(matches!(
        refusal(&decided(&core, &other_pool)),
        DenyReason::CognitoHeader { .. }
    ));
    // The OIDC issuer has no pool: a pool header agrees with nothing.
    let person = person_key.sign(&person_claims(json!({})));
    let person_with_pool = list_tools(&person).header("x-user-pool-id", "us-east-1_Agents");
    assert!(matches!(
        refusal(&decided(&core, &person_with_pool)),
        DenyReason::CognitoHeader { .. }
    ));
}

#[test]
fn a_token_that_signals_group_overage_is_refused_never_read_as_no_groups() {
    let (agents_keys, people_keys, person_key) = same_kid_keys();
    let core = core(Some(agents_keys), Some(people_keys));
    for patch in [
        json!({"groups": null, "_claim_names": {"groups": "src1"}, "_claim_sources": {"src1": {"endpoint": "https://graph.microsoft.com/v1.0/users/x/getMemberObjects"}}}),
        json!({"groups": null, "hasgroups": true}),
    ] {
        let token = person_key.sign(&person_claims(patch.clone()));
        let decision = decided(&core, &list_tools(&token));
        assert_eq!(
            refusal(&decision),
            &DenyReason::Token(TokenError::GroupOverage),
            "{patch}"
        );
        let answer = answer::answer(decision, &answer_settings());
        assert_eq!(answer.status.http, 401);
        assert!(answer.body.unwrap().contains("group overage"));
    }
}

#[test]
fn a_cached_token_is_dropped_when_its_own_issuer_rotates_keys() {
    let (agents_keys, people_keys, person_key) = same_kid_keys();
    let mut core = core(Some(agents_keys), Some(people_keys));
    let agent = rsa_key().sign(&agent_claims());
    let person = person_key.sign(&person_claims(json!({})));
    assert!(matches!(
        decided(&core, &list_tools(&agent)),
        Decision::Allow(_)
    ));
    assert!(matches!(
        decided(&core, &list_tools(&person)),
        Decision::Allow(_)
    ));
    // `people` rotates to a set without the key: its token goes, the agent's stays cached.
    core.snapshot.keys[1] = Some(std::sync::Arc::new(
        auth_server::jwks::fetch::VersionedKeys {
            keys: KeySet::from_json(&jwks(&[ec_key()])).unwrap(),
            generation: 2,
        },
    ));
    assert!(matches!(
        refusal(&decided(&core, &list_tools(&person))),
        DenyReason::Token(TokenError::UnknownKid(_))
    ));
    let (hits_before, _) = core.cache.hits_and_misses();
    assert!(matches!(
        decided(&core, &list_tools(&agent)),
        Decision::Allow(_)
    ));
    let (hits_after, _) = core.cache.hits_and_misses();
    assert_eq!(
        hits_after,
        hits_before + 1,
        "the agent's verification stayed cached"
    );
}
