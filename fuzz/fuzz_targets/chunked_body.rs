//! Fuzz target: `chirp::__fuzz::chunked_body` (what it checks is documented there).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| chirp::__fuzz::chunked_body(data));
