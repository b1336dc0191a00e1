#![no_main]
//! `cargo fuzz run agent_otrp`: see otrp::fuzzing::agent_otrp.
libfuzzer_sys::fuzz_target!(|data: &[u8]| otrp::fuzzing::agent_otrp(data));
