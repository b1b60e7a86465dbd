//! PKCE (RFC 7636, S256 only) and the `state` value that ties a callback to its request.

use base64::Engine as _;
use sha2::{Digest, Sha256};

use crate::secret::Secret;

/// A PKCE pair: the verifier stays here, the challenge goes in the authorization URL.
#[derive(Debug, Clone)]
pub struct Pkce {
    /// `code_verifier`: 43 characters of base64url (32 random bytes).
    pub verifier: Secret,
    /// `code_challenge` = BASE64URL(SHA256(verifier)).
    pub challenge: String,
}

impl Pkce {
    /// A new random pair.
    pub fn generate() -> Result<Pkce, getrandom::Error> {
        let verifier = random_token()?;
        Ok(Pkce::from_verifier(verifier))
    }

    /// The pair for a given verifier.
    pub fn from_verifier(verifier: String) -> Pkce {
        let challenge = s256(&verifier);
        Pkce {
            verifier: Secret::new(verifier),
            challenge,
        }
    }
}

/// BASE64URL-ENCODE(SHA256(ASCII(verifier))), without padding.
pub fn s256(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// 32 random bytes as base64url (43 characters): a PKCE verifier or a `state`.
pub fn random_token() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// Compares two strings in time that depends only on their lengths.
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |diff, (x, y)| diff | (x ^ y))
            == 0
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn s256_matches_the_rfc_7636_example() {
        // RFC 7636, Appendix B.
        assert_eq!(
            s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn verifiers_are_43_unreserved_characters_and_differ() {
        let a = Pkce::generate().unwrap();
        let b = Pkce::generate().unwrap();
        assert_eq!(a.verifier.expose().len(), 43);
        assert!(
            a.verifier
                .expose()
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
        assert_ne!(a.verifier.expose(), b.verifier.expose());
        assert_eq!(a.challenge, s256(a.verifier.expose()));
    }

    #[test]
    fn state_comparison() {
        assert!(constant_time_eq("abc", "abc"));
        assert!(!constant_time_eq("abc", "abd"));
        assert!(!constant_time_eq("abc", "abcd"));
        assert!(!constant_time_eq("", "a"));
    }
}
