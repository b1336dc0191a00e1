#![no_main]
//! `cargo fuzz run teep_decode`: see otrp::fuzzing::teep_decode.
libfuzzer_sys::fuzz_target!(|data: &[u8]| otrp::fuzzing::teep_decode(data));
