#![no_main]
//! `cargo fuzz run coap`: see otrp::fuzzing::coap.
libfuzzer_sys::fuzz_target!(|data: &[u8]| otrp::fuzzing::coap(data));
