//! Peak heap of one Update, measured with a counting global allocator (the only test in
//! this binary, so no other thread allocates while it runs).
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::alloc::System;

use cap::Cap;
use common::*;
use otrp_agent::{Management, TrustedTam};

#[global_allocator]
static ALLOC: Cap<System> = Cap::new(System, usize::MAX);

/// Peak bytes allocated above the level at the start of `f`, and whether it is exact
/// (`cap` keeps a process-wide maximum: when `f` stays below an earlier peak, only an
/// upper bound is known).
fn peak_of(f: impl FnOnce()) -> (usize, bool) {
    let base = ALLOC.allocated();
    let max_before = ALLOC.max_allocated();
    f();
    let max_after = ALLOC.max_allocated();
    (max_after.saturating_sub(base), max_after > max_before)
}

fn provisioned() -> (Device, ScriptedTam) {
    let mut tam = ScriptedTam::new(1);
    let mut d = device(
        vec![TrustedTam {
            key: tam.public(),
            oem: true,
        }],
        vec![],
        Management::OemOwnedSds,
    );
    let desc = descriptor(b"TEEP-Device", "acme", vec![vector_signer().public_key()]);
    d.success(&tam.update(vec![tam.sd_manifest(&desc, 1)], vec![]), 1);
    (d, tam)
}

#[test]
fn peak_heap_per_update() {
    let (mut a, mut tam_a) = provisioned();
    let (mut b, mut tam_b) = provisioned();
    let integrated = tam_a.update(vec![vector("suit_integrated.hex")], vec![]);
    let perso = tam_b.update(vec![vector("suit_personalization.hex")], vec![]);
    let suit_uri = "https://example.org/8d82573a-926d-4754-9353-32dc29997f74.suit";
    let (dep, ta) = (
        vector("suit_uri.hex"),
        vector("tc_8d82573a-926d-4754-9353-32dc29997f74.ta.hex"),
    );
    let mut success_len = 0;
    let (peak_integrated, exact1) = peak_of(|| {
        let out = a.agent.handle(&integrated, 2);
        success_len = out.send.map_or(0, |s| s.len());
    });
    let (peak_perso, exact2) = peak_of(|| {
        let _ = b.agent.handle(&perso, 2);
        let _ = b.agent.provide_fetch(suit_uri, dep.clone(), 3);
        let out = b.agent.provide_fetch(TA_URI, ta.clone(), 4);
        assert!(out.send.is_some());
    });
    let bound = |exact: bool| if exact { "=" } else { "<=" };
    println!(
        "peak heap: Update with suit_integrated ({} B message) {} {peak_integrated} B; \
         Update with suit_personalization ({} B; dependency and TA fetched, ECDH-ES+A128CTR, \
         three passes) {} {peak_perso} B; Success = {success_len} B",
        integrated.len(),
        bound(exact1),
        perso.len(),
        bound(exact2),
    );
    assert!(success_len > 0);
    assert_eq!(
        b.agent.store().images.get(&config_id()).map(Vec::as_slice),
        Some(CONFIG_PLAINTEXT)
    );
    assert!(
        peak_integrated > 0 && peak_integrated < 256 * 1024,
        "{peak_integrated}"
    );
    assert!(peak_perso > 0 && peak_perso < 256 * 1024, "{peak_perso}");
}
