#![no_main]
//! `cargo fuzz run suit_process`: see otrp::fuzzing::suit_process.
libfuzzer_sys::fuzz_target!(|data: &[u8]| otrp::fuzzing::suit_process(data));
