//! Fuzz target: `chirp::__fuzz::ws_frames` (what it checks is documented there).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| chirp::__fuzz::ws_frames(data));
