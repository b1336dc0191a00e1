#![no_main]
//! `cargo fuzz run cose_decode`: see otrp::fuzzing::cose_decode.
libfuzzer_sys::fuzz_target!(|data: &[u8]| otrp::fuzzing::cose_decode(data));
