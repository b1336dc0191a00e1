//! `otrp`: the OpenTrust command line.
use clap::Parser;

/// OpenTrust: install, update and delete Trusted Applications in TEEs (OTrP and TEEP).
#[derive(Parser)]
#[command(version, about)]
struct Cli {}

fn main() {
    let _ = Cli::parse();
}
