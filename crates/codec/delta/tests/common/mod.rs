//! Test image generators shared by the integration tests.
#![allow(dead_code)]

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A deterministic RNG.
pub fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

fn leb(out: &mut Vec<u8>, mut v: u32) {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

/// A WebAssembly-like blob: a header, then function bodies of plausible opcodes with
/// LEB128 immediates and some data segments (compressible like real TA code).
pub fn wasm_like(r: &mut ChaCha8Rng, size: usize) -> Vec<u8> {
    let mut out = b"\0asm\x01\0\0\0".to_vec();
    while out.len() < size {
        if r.gen_ratio(1, 20) {
            // a data segment: text and tables
            let n = r.gen_range(16..256);
            for _ in 0..n {
                out.push(
                    *b"abcdefghijklmnopqrstuvwxyz _-ERROR:okfail0123456789"
                        .get(r.gen_range(0..50))
                        .unwrap_or(&b' '),
                );
            }
            continue;
        }
        // a function body
        let body = r.gen_range(20..400);
        leb(&mut out, body);
        out.push(r.gen_range(0..4)); // locals
        for _ in 0..body / 3 {
            match r.gen_range(0..10) {
                0..=2 => {
                    out.push(0x20); // local.get
                    leb(&mut out, r.gen_range(0..8));
                }
                3 => {
                    out.push(0x41); // i32.const
                    leb(&mut out, r.gen_range(0..100_000));
                }
                4 => {
                    out.push(0x10); // call
                    leb(&mut out, r.gen_range(0..300));
                }
                5 => {
                    out.push(0x28); // i32.load align offset
                    out.push(2);
                    leb(&mut out, r.gen_range(0..4096));
                }
                6 => out.push(0x6a), // i32.add
                7 => out.push(0x21), // local.set
                8 => out.push(0x0b), // end
                _ => out.push(
                    *[0x45u8, 0x46, 0x47, 0x6b, 0x71]
                        .get(r.gen_range(0..5))
                        .unwrap_or(&0x6a),
                ),
            }
        }
        out.push(0x0b);
    }
    out.truncate(size);
    out
}

/// `img` with `fraction` of its bytes replaced by random ones in `clusters` regions.
pub fn change_clustered(r: &mut ChaCha8Rng, img: &[u8], fraction: f64, clusters: usize) -> Vec<u8> {
    let mut out = img.to_vec();
    let total = (img.len() as f64 * fraction) as usize;
    let per = total / clusters;
    for c in 0..clusters {
        // spread clusters over the image, random offset inside each slot
        let slot = img.len() / clusters;
        let start = c * slot + r.gen_range(0..slot - per);
        for b in out.iter_mut().skip(start).take(per) {
            *b = r.gen();
        }
    }
    out
}

/// `img` with a random region inserted and another deleted.
pub fn insert_delete(r: &mut ChaCha8Rng, img: &[u8], ins: usize, del: usize) -> Vec<u8> {
    let mut out = img.to_vec();
    let at = r.gen_range(0..out.len());
    let new_code = wasm_like(r, ins);
    out.splice(at..at, new_code);
    let d = r.gen_range(0..out.len() - del);
    out.drain(d..d + del);
    out
}
