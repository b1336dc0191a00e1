#![no_main]
//! `cargo fuzz run eat_decode`: see otrp::fuzzing::eat_decode.
libfuzzer_sys::fuzz_target!(|data: &[u8]| otrp::fuzzing::eat_decode(data));
