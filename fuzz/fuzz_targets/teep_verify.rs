#![no_main]
//! `cargo fuzz run teep_verify`: see otrp::fuzzing::teep_verify.
libfuzzer_sys::fuzz_target!(|data: &[u8]| otrp::fuzzing::teep_verify(data));
