//! The JSON-RPC reader on arbitrary bodies: never panics, never overflows the stack, accepts
//! only one UTF-8 JSON value (no BOM, no trailing data, no invalid UTF-8 in a skipped string)
//! that is not an empty batch, and does work linear in the body: an input that costs more than
//! the budget per KiB is a finding (a quadratic duplicate-key check once held a worker 16 s
//! per MiB). Run with larger inputs than libFuzzer's default (scripts/fuzz.sh: 64 KiB), where
//! superlinear work shows.
#![no_main]

use std::time::Duration;

use rustix::time::{ClockId, clock_gettime};
use serde::de::IgnoredAny;

/// The most thread CPU time a body may cost: generous for linear work under the sanitizer
/// (about 0.1 ms per KiB), far below quadratic work at 64 KiB (a second or more).
fn budget(bytes: usize) -> Duration {
    Duration::from_millis(50) + Duration::from_micros(2_000) * (bytes / 1024) as u32
}

/// CPU time of this thread: unlike the wall clock, not stretched by other processes.
fn thread_time() -> Duration {
    let now = clock_gettime(ClockId::ThreadCPUTime);
    Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
}

/// Parses `body`, and the thread CPU time it took.
fn timed_parse(
    body: &[u8],
) -> (
    Result<auth_server::jsonrpc::Payload, auth_server::jsonrpc::RpcError>,
    Duration,
) {
    let started = thread_time();
    let parsed = auth_server::jsonrpc::parse(body, 100);
    (parsed, thread_time().saturating_sub(started))
}

libfuzzer_sys::fuzz_target!(|body: &[u8]| {
    let (parsed, mut spent) = timed_parse(body);
    if spent > budget(body.len()) {
        // One run over budget can be the sanitizer's allocator at work; the input's own cost
        // shows again on a second run.
        spent = spent.min(timed_parse(body).1);
    }
    assert!(
        spent <= budget(body.len()),
        "{} bytes read in {spent:?}, over the budget of {:?}: more than linear work",
        body.len(),
        budget(body.len())
    );
    if let Ok(payload) = parsed {
        assert!(!payload.messages().is_empty(), "empty batch accepted");
        assert!(payload.messages().len() <= 100, "batch over the limit accepted");
        assert!(std::str::from_utf8(body).is_ok(), "accepted, not UTF-8");
        // IgnoredAny: a syntax check without serde_json's depth limit, which the reader does
        // not apply to the parts it skips either.
        assert!(
            serde_json::from_slice::<IgnoredAny>(body).is_ok(),
            "accepted, not JSON"
        );
    }
});
