//! Prints the sizes of a delta and of a compressed full image for two files:
//! `cargo run -p otrp-delta --release --example delta_files -- OLD NEW`.

use otrp_delta::{apply, compress_full, diff, digest, Expected, Limits};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(old), Some(new)) = (args.next(), args.next()) else {
        eprintln!("usage: delta_files OLD NEW");
        std::process::exit(2);
    };
    let (old, new) = (std::fs::read(old)?, std::fs::read(new)?);
    let started = std::time::Instant::now();
    let patch = diff(&old, &new);
    let diff_time = started.elapsed();
    let full = compress_full(&new, 0, 10);
    let mut out = Vec::new();
    let expected = Expected {
        old_digest: Some(digest(&old)),
        new_digest: digest(&new),
    };
    apply(
        patch.as_slice(),
        &mut &old[..],
        &mut out,
        &expected,
        &Limits::default(),
    )?;
    assert!(out == new, "round trip failed");
    println!(
        "new {} B, compressed full {} B ({:.1}%), delta {} B ({:.1}% of full, {:.1}% of compressed), diff took {:?}",
        new.len(),
        full.len(),
        100.0 * full.len() as f64 / new.len() as f64,
        patch.len(),
        100.0 * patch.len() as f64 / new.len() as f64,
        100.0 * patch.len() as f64 / full.len() as f64,
        diff_time
    );
    Ok(())
}
