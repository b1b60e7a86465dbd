//! Time as the token files store it: whole seconds since the Unix epoch.

use std::time::{SystemTime, UNIX_EPOCH};

/// A stored token is used again only while it has at least this many seconds left: a token
/// that expires in the middle of an agent's work is no better than none.
pub const FRESHNESS_MARGIN_SECONDS: u64 = 300;

/// Now, in seconds since the Unix epoch.
pub fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or(0)
}

/// Whether a token that expires at `expires_at` may still be used at `now`. A token without a
/// known expiry (the provider said nothing, e.g. GitHub OAuth app tokens) is used until the
/// provider refuses it or `--force` replaces it.
pub fn is_fresh(expires_at: Option<u64>, now: u64) -> bool {
    match expires_at {
        Some(expires_at) => now.saturating_add(FRESHNESS_MARGIN_SECONDS) < expires_at,
        None => true,
    }
}

/// An expiry as an RFC 3339 UTC time, for people reading the token files.
pub fn human(unix: u64) -> String {
    i64::try_from(unix)
        .ok()
        .and_then(|secs| chrono::DateTime::from_timestamp(secs, 0))
        .map(|time| time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_else(|| unix.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_reused_until_five_minutes_before_it_expires() {
        let now = 1_000_000;
        assert!(is_fresh(Some(now + 301), now));
        assert!(!is_fresh(Some(now + 300), now));
        assert!(!is_fresh(Some(now + 60), now));
        assert!(!is_fresh(Some(now - 1), now));
        assert!(is_fresh(None, now));
    }

    #[test]
    fn human_time_is_rfc3339_utc() {
        assert_eq!(human(0), "1970-01-01T00:00:00Z");
        assert_eq!(human(1_795_948_452), "2026-11-29T10:34:12Z");
    }
}
