#![no_main]
//! `cargo fuzz run agent_teep`: see otrp::fuzzing::agent_teep.
libfuzzer_sys::fuzz_target!(|data: &[u8]| otrp::fuzzing::agent_teep(data));
