//! The provider's key set: a JWKS document in, a [`KeySet`] of verifying keys out.
//!
//! Each key is pinned to the algorithms it may verify, so a token cannot pick an algorithm the
//! key was not made for (HMAC with an RSA public key as the secret, say). Symmetric keys and
//! encryption keys are never used; keys without `kid` are skipped (every token must name its
//! key); a `kid` that appears twice makes the whole set ambiguous, and it is refused.

pub mod fetch;

use std::collections::HashMap;

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};

const RSA_ALGORITHMS: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
];

/// A key that verifies signatures, with the algorithms it is allowed to verify.
pub struct VerifyingKey {
    key: DecodingKey,
    algorithms: Vec<Algorithm>,
}

impl std::fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyingKey")
            .field("algorithms", &self.algorithms)
            .finish_non_exhaustive()
    }
}

impl VerifyingKey {
    /// The key material.
    pub fn decoding_key(&self) -> &DecodingKey {
        &self.key
    }

    /// Whether a token signed with `algorithm` may be verified by this key.
    pub fn allows(&self, algorithm: Algorithm) -> bool {
        self.algorithms.contains(&algorithm)
    }
}

/// Why a JWKS document was refused as a whole.
#[derive(Debug, thiserror::Error)]
pub enum KeySetError {
    /// Not a JSON object with a `keys` array.
    #[error("the key set is not a JSON object with a `keys` array: {0}")]
    NotAKeySet(String),
    /// Two keys share a `kid`.
    #[error("the key set has two keys with kid `{0}`")]
    DuplicateKid(String),
    /// No key could be used.
    #[error("the key set has no usable signing key (skipped: {0})")]
    NoUsableKey(String),
}

/// The verifying keys of one JWKS document, by `kid`.
#[derive(Debug, Default)]
pub struct KeySet {
    keys: HashMap<String, VerifyingKey>,
}

impl KeySet {
    /// Parses a JWKS document. Unusable keys are skipped (and named in the error when none is
    /// left); duplicate `kid`s refuse the document.
    pub fn from_json(document: &[u8]) -> Result<Self, KeySetError> {
        #[derive(serde::Deserialize)]
        struct Document {
            keys: Vec<serde_json::Value>,
        }
        let document: Document = serde_json::from_slice(document)
            .map_err(|err| KeySetError::NotAKeySet(err.to_string()))?;
        let mut keys = HashMap::new();
        let mut skipped = Vec::new();
        for raw in document.keys {
            let (kid, key) = match usable_key(raw) {
                Ok(pair) => pair,
                Err(reason) => {
                    skipped.push(reason);
                    continue;
                }
            };
            if keys.insert(kid.clone(), key).is_some() {
                return Err(KeySetError::DuplicateKid(kid));
            }
        }
        if keys.is_empty() {
            return Err(KeySetError::NoUsableKey(skipped.join("; ")));
        }
        Ok(KeySet { keys })
    }

    /// The key with this `kid`.
    pub fn get(&self, kid: &str) -> Option<&VerifyingKey> {
        self.keys.get(kid)
    }

    /// The `kid`s in the set, sorted.
    pub fn kids(&self) -> Vec<&str> {
        let mut kids: Vec<&str> = self.keys.keys().map(String::as_str).collect();
        kids.sort_unstable();
        kids
    }

    /// Number of usable keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the set holds no key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// A JWK that can verify signatures, or why it cannot.
fn usable_key(raw: serde_json::Value) -> Result<(String, VerifyingKey), String> {
    let kid = raw
        .get("kid")
        .and_then(|kid| kid.as_str())
        .map(str::to_owned);
    let label = kid.clone().unwrap_or_else(|| "<no kid>".to_owned());
    let jwk: Jwk =
        serde_json::from_value(raw).map_err(|err| format!("{label}: not a JWK ({err})"))?;
    let kid = kid.ok_or_else(|| format!("{label}: no `kid`"))?;
    if let Some(key_use) = &jwk.common.public_key_use
        && *key_use != PublicKeyUse::Signature
    {
        return Err(format!("{kid}: `use` is not `sig`"));
    }
    let algorithms = pinned_algorithms(&jwk).map_err(|why| format!("{kid}: {why}"))?;
    let key =
        DecodingKey::from_jwk(&jwk).map_err(|err| format!("{kid}: bad key material ({err})"))?;
    Ok((kid, VerifyingKey { key, algorithms }))
}

/// The algorithms a key may verify: its `alg` when it names one, else those of its key type.
fn pinned_algorithms(jwk: &Jwk) -> Result<Vec<Algorithm>, String> {
    let by_type: Vec<Algorithm> = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => RSA_ALGORITHMS.to_vec(),
        AlgorithmParameters::EllipticCurve(params) => match params.curve {
            EllipticCurve::P256 => vec![Algorithm::ES256],
            EllipticCurve::P384 => vec![Algorithm::ES384],
            _ => return Err("unsupported elliptic curve".to_owned()),
        },
        AlgorithmParameters::OctetKeyPair(params) => match params.curve {
            EllipticCurve::Ed25519 => vec![Algorithm::EdDSA],
            _ => return Err("unsupported OKP curve".to_owned()),
        },
        AlgorithmParameters::OctetKey(_) => return Err("symmetric keys are never used".to_owned()),
        _ => return Err("unsupported key type".to_owned()),
    };
    let Some(declared) = jwk.common.key_algorithm else {
        return Ok(by_type);
    };
    let declared = signing_algorithm(declared)
        .ok_or_else(|| format!("`alg` {declared:?} is not a signature algorithm"))?;
    if !by_type.contains(&declared) {
        return Err(format!("`alg` {declared:?} does not fit the key type"));
    }
    Ok(vec![declared])
}

fn signing_algorithm(algorithm: KeyAlgorithm) -> Option<Algorithm> {
    Some(match algorithm {
        KeyAlgorithm::RS256 => Algorithm::RS256,
        KeyAlgorithm::RS384 => Algorithm::RS384,
        KeyAlgorithm::RS512 => Algorithm::RS512,
        KeyAlgorithm::PS256 => Algorithm::PS256,
        KeyAlgorithm::PS384 => Algorithm::PS384,
        KeyAlgorithm::PS512 => Algorithm::PS512,
        KeyAlgorithm::ES256 => Algorithm::ES256,
        KeyAlgorithm::ES384 => Algorithm::ES384,
        KeyAlgorithm::EdDSA => Algorithm::EdDSA,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    // A real RSA public key modulus is not needed to test selection rules; a syntactically valid
    // one is. This 512-bit-looking value is only parsed, never used to verify.
    const N: &str = "sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw";

    fn rsa(kid: &str, extra: serde_json::Value) -> serde_json::Value {
        let mut key = json!({"kty": "RSA", "kid": kid, "n": N, "e": "AQAB"});
        if let (Some(key), Some(extra)) = (key.as_object_mut(), extra.as_object()) {
            key.extend(extra.clone());
        }
        key
    }

    fn set(keys: Vec<serde_json::Value>) -> Result<KeySet, KeySetError> {
        KeySet::from_json(json!({ "keys": keys }).to_string().as_bytes())
    }

    #[test]
    fn rsa_key_without_alg_allows_the_rsa_family_only() {
        let keys = set(vec![rsa("a", json!({}))]).expect("usable");
        let key = keys.get("a").expect("present");
        assert!(key.allows(Algorithm::RS256) && key.allows(Algorithm::PS512));
        assert!(!key.allows(Algorithm::HS256) && !key.allows(Algorithm::ES256));
    }

    #[test]
    fn declared_alg_pins_the_key() {
        let keys = set(vec![rsa("a", json!({"alg": "RS256"}))]).expect("usable");
        let key = keys.get("a").expect("present");
        assert!(key.allows(Algorithm::RS256));
        assert!(!key.allows(Algorithm::RS512));
    }

    #[test]
    fn duplicate_kid_refuses_the_set() {
        let err = set(vec![rsa("a", json!({})), rsa("a", json!({}))]).expect_err("refused");
        assert!(matches!(err, KeySetError::DuplicateKid(kid) if kid == "a"));
    }

    #[test]
    fn unusable_keys_are_skipped() {
        let keys = set(vec![
            rsa("enc", json!({"use": "enc"})),
            json!({"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"}),
            json!({"kty": "RSA", "n": N, "e": "AQAB"}),
            rsa("hs-declared", json!({"alg": "HS256"})),
            rsa("good", json!({"use": "sig"})),
        ])
        .expect("one usable key");
        assert_eq!(keys.kids(), ["good"]);
    }

    #[test]
    fn set_with_no_usable_key_is_refused() {
        let err =
            set(vec![json!({"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"})]).expect_err("refused");
        assert!(err.to_string().contains("symmetric"), "{err}");
        assert!(KeySet::from_json(b"{}").is_err());
        assert!(KeySet::from_json(b"not json").is_err());
    }
}
