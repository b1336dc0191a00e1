//! The library behind the `otrp` command line: each subcommand's logic lives here so that
//! tests and fuzz targets can drive it without spawning the binary.

pub mod fuzzing;
pub mod inspect;
