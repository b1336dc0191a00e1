#![no_main]
//! `cargo fuzz run suit_verify`: see otrp::fuzzing::suit_verify.
libfuzzer_sys::fuzz_target!(|data: &[u8]| otrp::fuzzing::suit_verify(data));
