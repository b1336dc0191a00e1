#![no_main]
//! `cargo fuzz run suit_decode`: see otrp::fuzzing::suit_decode.
libfuzzer_sys::fuzz_target!(|data: &[u8]| otrp::fuzzing::suit_decode(data));
