#![no_main]
//! `cargo fuzz run otrp_json_decode`: see otrp::fuzzing::otrp_json_decode.
libfuzzer_sys::fuzz_target!(|data: &[u8]| otrp::fuzzing::otrp_json_decode(data));
