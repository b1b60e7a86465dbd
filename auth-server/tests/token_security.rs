//! Token verification against real signatures: each security case of the contract, one test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use auth_server::jwks::KeySet;
use auth_server::token::{Provider, TokenError, TokenRules, verify};
use common::*;
use serde_json::json;

fn rules() -> TokenRules {
    cognito_rules()
}

fn keys() -> KeySet {
    KeySet::from_json(&jwks(&[rsa_key(), ec_key()])).unwrap()
}

fn check(token: &str) -> Result<auth_server::token::VerifiedToken, TokenError> {
    verify(token, &keys(), &rules(), NOW)
}

#[test]
fn valid_rsa_token_yields_the_identity() {
    let token = rsa_key().sign(&cognito_claims("agent-1", &["admins", "readers"]));
    let identity = check(&token).expect("valid");
    assert_eq!(identity.client_id, "agent-1");
    assert_eq!(identity.subject, "sub-agent-1");
    assert_eq!(identity.username, "agent-1");
    assert_eq!(identity.groups, ["admins", "readers"]);
    assert_eq!(identity.scopes, ["mcp-gateway/default"]);
}

#[test]
fn valid_ec_token_is_accepted() {
    let token = ec_key().sign(&cognito_claims("agent-1", &[]));
    assert!(check(&token).is_ok());
}

#[test]
fn expired_token_is_refused_after_the_leeway() {
    let mut claims = cognito_claims("a", &[]);
    claims["exp"] = json!(NOW - 61);
    assert_eq!(check(&rsa_key().sign(&claims)), Err(TokenError::Expired));
    claims["exp"] = json!(NOW - 59);
    assert!(check(&rsa_key().sign(&claims)).is_ok(), "within leeway");
}

#[test]
fn token_without_exp_is_refused() {
    let mut claims = cognito_claims("a", &[]);
    claims.as_object_mut().unwrap().remove("exp");
    assert!(matches!(check(&rsa_key().sign(&claims)), Err(TokenError::BadClaim(c)) if c == "exp"));
}

#[test]
fn not_yet_valid_and_future_issued_tokens_are_refused() {
    let mut claims = cognito_claims("a", &[]);
    claims["nbf"] = json!(NOW + 600);
    assert_eq!(
        check(&rsa_key().sign(&claims)),
        Err(TokenError::NotYetValid)
    );
    let mut claims = cognito_claims("a", &[]);
    claims["iat"] = json!(NOW + 86_400);
    assert_eq!(
        check(&rsa_key().sign(&claims)),
        Err(TokenError::IssuedInFuture)
    );
}

#[test]
fn wrong_issuer_is_refused_even_when_nearly_equal() {
    for issuer in [
        format!("{ISSUER}/"),
        ISSUER.to_uppercase(),
        "https://evil.example".to_owned(),
    ] {
        let mut claims = cognito_claims("a", &[]);
        claims["iss"] = json!(issuer);
        assert_eq!(
            check(&rsa_key().sign(&claims)),
            Err(TokenError::WrongIssuer),
            "{issuer}"
        );
    }
    let mut claims = cognito_claims("a", &[]);
    claims.as_object_mut().unwrap().remove("iss");
    assert!(matches!(
        check(&rsa_key().sign(&claims)),
        Err(TokenError::BadClaim(_))
    ));
}

#[test]
fn alg_none_is_refused() {
    let header = json!({"alg": "none", "kid": "rsa-1", "typ": "JWT"});
    let token = forge(&header, &cognito_claims("a", &[]), |_| Vec::new());
    assert!(matches!(check(&token), Err(TokenError::AlgorithmRefused(alg)) if alg == "none"));
    let token_with_junk = forge(&header, &cognito_claims("a", &[]), |_| b"sig".to_vec());
    assert!(check(&token_with_junk).is_err());
}

#[test]
fn hmac_signed_with_the_public_key_is_refused() {
    // The classic confusion: HS256 keyed with the RSA public key the attacker can download.
    let public_key = rsa_key().public_jwk_json();
    let header = json!({"alg": "HS256", "kid": "rsa-1", "typ": "JWT"});
    let token = forge(&header, &cognito_claims("a", &[]), |message| {
        let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, public_key.as_bytes());
        aws_lc_rs::hmac::sign(&key, message).as_ref().to_vec()
    });
    assert!(matches!(check(&token), Err(TokenError::AlgorithmRefused(alg)) if alg == "HS256"));
}

#[test]
fn algorithm_must_fit_the_key() {
    // An ES256 header pointing at the RSA key.
    let header = json!({"alg": "ES256", "kid": "rsa-1"});
    let token = forge(&header, &cognito_claims("a", &[]), |_| vec![0; 64]);
    assert_eq!(check(&token), Err(TokenError::AlgorithmMismatch));
}

#[test]
fn unknown_and_missing_kid_are_refused() {
    let token = stranger_key().sign(&cognito_claims("a", &[]));
    assert_eq!(
        check(&token),
        Err(TokenError::UnknownKid("stranger".into()))
    );
    let header = json!({"alg": "RS256"});
    let token = forge(&header, &cognito_claims("a", &[]), |_| vec![0; 256]);
    assert_eq!(check(&token), Err(TokenError::MissingKid));
}

#[test]
fn signature_by_another_key_with_a_known_kid_is_refused() {
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some("rsa-1".into());
    let token =
        jsonwebtoken::encode(&header, &cognito_claims("a", &[]), &stranger_key().encoding).unwrap();
    assert_eq!(check(&token), Err(TokenError::BadSignature));
}

#[test]
fn tampered_claims_break_the_signature() {
    let token = rsa_key().sign(&cognito_claims("a", &["readers"]));
    let parts: Vec<&str> = token.split('.').collect();
    let evil_claims = cognito_claims("a", &["admins"]);
    let evil = format!(
        "{}.{}.{}",
        parts[0],
        base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            evil_claims.to_string()
        ),
        parts[2]
    );
    assert_eq!(check(&evil), Err(TokenError::BadSignature));
}

#[test]
fn id_token_is_not_an_access_token() {
    let mut claims = cognito_claims("a", &[]);
    claims["token_use"] = json!("id");
    assert_eq!(
        check(&rsa_key().sign(&claims)),
        Err(TokenError::NotAccessToken)
    );
}

#[test]
fn client_and_audience_restrictions_apply() {
    let token = rsa_key().sign(&cognito_claims("other-client", &[]));
    let mut restricted = rules();
    restricted.client_ids = Some(["agent-1".to_owned()].into());
    assert_eq!(
        verify(&token, &keys(), &restricted, NOW),
        Err(TokenError::ClientNotAllowed)
    );

    let mut oidc = rules();
    oidc.provider = Provider::Oidc;
    oidc.audiences = Some(vec!["https://gw.example/mcp".into()]);
    let mut claims = cognito_claims("a", &[]);
    claims["aud"] = json!(["other", "https://gw.example/mcp"]);
    claims["azp"] = json!("keycloak-client");
    let identity = verify(&rsa_key().sign(&claims), &keys(), &oidc, NOW).expect("audience matches");
    assert_eq!(identity.client_id, "keycloak-client", "OIDC prefers azp");
    claims["aud"] = json!("other");
    assert_eq!(
        verify(&rsa_key().sign(&claims), &keys(), &oidc, NOW),
        Err(TokenError::WrongAudience)
    );
}

#[test]
fn garbage_and_oversized_tokens_are_refused() {
    for token in [
        "",
        "abc",
        "a.b",
        "a.b.c",
        "....",
        "eyJhbGciOiJSUzI1NiJ9.e30",
    ] {
        assert!(check(token).is_err(), "{token}");
    }
    let huge = format!("{}.{}.{}", "a".repeat(10_000), "b".repeat(10_000), "c");
    assert_eq!(check(&huge), Err(TokenError::TooLong));
}

#[test]
fn scp_array_and_entra_roles_claims_are_read() {
    let mut claims = cognito_claims("a", &[]);
    claims.as_object_mut().unwrap().remove("scope");
    claims["scp"] = json!(["s1", "s2"]);
    claims["roles"] = json!(["Role.Admin"]);
    let mut entra = rules();
    entra.groups_claim = "roles".into();
    let identity = verify(&rsa_key().sign(&claims), &keys(), &entra, NOW).unwrap();
    assert_eq!(identity.scopes, ["s1", "s2"]);
    assert_eq!(identity.groups, ["Role.Admin"]);
}
