//! Reuse of stored client-credentials tokens (ingress, AgentCore): a stored token is used
//! again while it is fresh and was asked for the same way; otherwise a new one is fetched.

use serde::de::DeserializeOwned;

use crate::grant::Grant;
use crate::store::TokenStore;

/// A stored token that records how it was asked for.
pub trait Reusable: DeserializeOwned {
    /// What was asked for (provider, client, endpoint, scopes…), as the settings give it.
    fn request_id(&self) -> &str;
    /// The token and its lifetime.
    fn grant(&self) -> &Grant;
}

/// Whether a token came from the store or the provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The stored token is still fresh.
    Reused,
    /// A new token was obtained and stored.
    New,
}

/// The token stored in `file` when it is fresh at `now` and was asked for as `request_id`.
/// A damaged file is not fatal: it is replaced by a new token.
pub fn fresh_stored<T: Reusable>(
    store: &TokenStore,
    file: &str,
    request_id: &str,
    now: u64,
) -> Option<T> {
    match store.read_json::<T>(file) {
        Ok(Some(stored)) if stored.request_id() == request_id && stored.grant().is_fresh(now) => {
            Some(stored)
        }
        Ok(Some(_)) => {
            tracing::debug!("{file}: expiring, or asked for with other settings");
            None
        }
        Ok(None) => None,
        Err(err) => {
            tracing::warn!("{err}; getting a new token");
            None
        }
    }
}
