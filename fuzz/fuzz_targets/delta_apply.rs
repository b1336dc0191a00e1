#![no_main]
//! `cargo fuzz run delta_apply`: see otrp::fuzzing::delta_apply.
libfuzzer_sys::fuzz_target!(|data: &[u8]| otrp::fuzzing::delta_apply(data));
