//! Bounded work per check: the worst body a caller with a valid token can send within the body
//! limit is decided in bounded time, whatever its shape. A check that took seconds would let
//! any token holder occupy auth-server's workers and deny service to everyone else.
//!
//! The bound here is deliberately loose (this test build does not optimise auth-server's own
//! code): it separates linear from quadratic work, not fast from slow. How fast each shape is
//! decided is measured by the criterion benchmark `components/worst_case_body`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::mpsc;
use std::time::{Duration, Instant};

use auth_server::answer;
use auth_server::decision::{Decision, DenyReason, decide};
use auth_server::jwks::KeySet;
use auth_server::policy::CompiledPolicy;
use common::worst_case::{ONE_MIB, shapes};
use common::*;

/// Far above a linear decision of 1 MiB (milliseconds), far below a quadratic one (minutes).
const BOUND: Duration = Duration::from_secs(3);

/// Decides `body` for a caller whose valid token belongs to no group, on another thread;
/// `None` when no decision came within `bound` (the thread is left behind: the test fails).
fn decide_within(body: String, bound: Duration) -> Option<(Decision, Duration)> {
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        let core = Core::new(
            CompiledPolicy::load(&example_scopes()).unwrap(),
            Some(KeySet::from_json(&jwks(&[rsa_key()])).unwrap()),
            cognito_rules(),
            None,
        );
        let token = rsa_key().sign(&cognito_claims("agent", &[]));
        let check = TestCheck::post("/fininfo/mcp", Some(&token), body);
        let check = check.facts();
        let context = core.context(NOW);
        // Verify the token first, so that the time measured below is the body's.
        let _ = decide(&check, &context);
        let started = Instant::now();
        let decision = decide(&check, &context);
        let _ = sender.send((decision, started.elapsed()));
    });
    receiver.recv_timeout(bound).ok()
}

#[test]
fn a_mebibyte_body_of_any_shape_is_decided_in_bounded_time() {
    for (shape, body) in shapes(ONE_MIB) {
        assert!(body.len() <= ONE_MIB, "{shape}: {} bytes", body.len());
        let Some((decision, took)) = decide_within(body, BOUND) else {
            panic!("{shape}: no decision within {BOUND:?}: the work per check is unbounded");
        };
        // Decided, one way or the other, never allowed: the caller belongs to no group.
        let Decision::Deny { reason, .. } = &decision else {
            panic!("{shape}: allowed a caller with no group");
        };
        assert!(
            matches!(reason, DenyReason::Forbidden(_) | DenyReason::BadMessage(_)),
            "{shape}: {}",
            answer::reason_code(reason)
        );
        eprintln!(
            "{shape}: decided in {took:?} ({})",
            answer::reason_code(reason)
        );
    }
}
