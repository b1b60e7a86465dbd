//! Time as the token files store it: whole seconds since the Unix epoch.

use std::time::{SystemTime, UNIX_EPOCH};

/// A stored token is renewed at the latest this long before it expires: a token that expires
/// in the middle of an agent's work is no better than none.
pub const FRESHNESS_MARGIN_SECONDS: u64 = 300;

/// Now, in seconds since the Unix epoch.
pub fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or(0)
}

/// When a token that expires at `expires_at`, granted for `lifetime` seconds, is renewed: 5
/// minutes before it expires, or half its lifetime before when that is shorter (a Keycloak
/// token lives 5 minutes by default; a 5-minute margin would make it stale at birth). Without
/// a known lifetime, the 5-minute margin.
pub fn renew_at(expires_at: u64, lifetime: Option<u64>) -> u64 {
    let margin = lifetime.map_or(FRESHNESS_MARGIN_SECONDS, |lifetime| {
        (lifetime / 2).min(FRESHNESS_MARGIN_SECONDS)
    });
    expires_at.saturating_sub(margin)
}

/// Whether a token that expires at `expires_at` may still be used at `now`. A token without a
/// known expiry (the provider said nothing, e.g. GitHub OAuth app tokens) is used until the
/// provider refuses it or `--force` replaces it.
pub fn is_fresh(expires_at: Option<u64>, lifetime: Option<u64>, now: u64) -> bool {
    match expires_at {
        Some(expires_at) => now < renew_at(expires_at, lifetime),
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
        assert!(is_fresh(Some(now + 301), None, now));
        assert!(!is_fresh(Some(now + 300), None, now));
        assert!(!is_fresh(Some(now + 60), Some(3600), now));
        assert!(!is_fresh(Some(now - 1), None, now));
        assert!(is_fresh(None, None, now));
    }

    #[test]
    fn a_short_lived_token_is_renewed_at_half_its_lifetime() {
        // A 5-minute Keycloak token: fresh for 150 s, not stale at birth.
        assert_eq!(renew_at(1_300, Some(300)), 1_150);
        assert!(is_fresh(Some(1_300), Some(300), 1_000));
        // A token of a few seconds is renewed in the middle of its life.
        assert_eq!(renew_at(1_008, Some(8)), 1_004);
        // Long-lived tokens: 5 minutes before.
        assert_eq!(renew_at(10_000, Some(3600)), 9_700);
        assert_eq!(renew_at(100, Some(3600)), 0);
    }

    #[test]
    fn human_time_is_rfc3339_utc() {
        assert_eq!(human(0), "1970-01-01T00:00:00Z");
        assert_eq!(human(1_795_948_452), "2026-11-29T10:34:12Z");
    }
}
