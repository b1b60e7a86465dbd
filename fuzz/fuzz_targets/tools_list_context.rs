//! The tools/list filter's context reader (what the check hands the filter, back from the
//! gateway) on arbitrary text: never panics, never reads past its bound, and what it accepts
//! it writes back the same way (the check's own output is the only form it takes).
#![no_main]

use auth_server::tools_list::context::{FilterContext, MAX_ENCODED_BYTES};

libfuzzer_sys::fuzz_target!(|text: &str| {
    if let Ok(context) = FilterContext::decode(text) {
        assert!(text.len() <= MAX_ENCODED_BYTES);
        let again = FilterContext::decode(&context.encode()).expect("its own output");
        assert_eq!(again.encode(), context.encode(), "{text:?}");
    }
});
