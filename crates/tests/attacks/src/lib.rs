//! Shared harness of the attack suite (issue #8 item 2; threat model in
//! `docs/SECURITY.md`). The tests live in `tests/`; this library only builds the
//! parties they attack, from the real crates:
//!
//! * [`agent`]: a real `otrp-agent` (in-memory component store, EAT attester) and a
//!   scripted TAM signer for SD creation and hand-made Updates;
//! * [`tam`]: the real `otrp-tam` core and admin side over a SQLite `otrp-store`, a
//!   snapshot of every table, and [`tam::exchange`], which runs a whole TEEP exchange
//!   between the TAM core and an Agent;
//! * [`otrp`]: the OTrP InstallTA verification path (x5c chain to the TEE's TAM anchors
//!   with `otrp-pki`, JWS with `otrp-json`, JWE content decryption);
//! * [`flips`]: the choice of single-bit flips (every bit of headers and signatures, a
//!   stride over payloads).
//!
//! Test-support code: failures to build a fixture panic with a message (`expect`), as a
//! test would.
#![allow(clippy::panic)]

pub mod agent;
pub mod flips;
pub mod otrp;
pub mod pair;
pub mod pki;
pub mod tam;
