#![no_main]
//! `cargo fuzz run inspect`: see otrp::fuzzing::inspect.
libfuzzer_sys::fuzz_target!(|data: &[u8]| otrp::fuzzing::inspect(data));
