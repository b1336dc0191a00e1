//! `otrp inspect`: recognise, explain, round-trip and verify protocol messages.
//!
//! Exit codes: 0 success, 1 a round trip or a signature check failed, 2 the input is
//! malformed or unreadable (one line on stderr saying what and where).

pub mod cbor;
pub mod input;
pub mod names;
pub mod view;

use clap::{Args, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `otrp inspect`.
#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  \
    otrp inspect update.hex                      # readable view of a TEEP Update\n  \
    otrp inspect --format diag envelope.suit     # diagnostic notation\n  \
    otrp inspect --roundtrip --verify-key tam.pem msg.cbor\n  \
    xxd -p msg.cbor | otrp inspect -             # hex on standard input")]
pub struct InspectArgs {
    /// File to inspect, `-` for standard input. Binary or hex text, detected automatically.
    pub input: PathBuf,
    /// Output format: `text` (summary and annotated diagnostic notation), `diag`, `json`.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Exit 0 only if re-encoding the decoded value gives the input bytes exactly.
    #[arg(long)]
    pub roundtrip: bool,
    /// Public key (PEM or COSE_Key, binary or hex) that signatures must verify under;
    /// repeat for several. Every signature found, nested ones included, is checked.
    #[arg(long = "verify-key", value_name = "KEY")]
    pub verify_keys: Vec<PathBuf>,
}

/// Output formats.
#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum Format {
    /// Summary line, then annotated diagnostic notation.
    Text,
    /// Annotated diagnostic notation (EDN) only.
    Diag,
    /// JSON with labels named.
    Json,
}

/// Runs the command; see the module docs for exit codes.
pub fn run(args: &InspectArgs) -> ExitCode {
    let (bytes, _encoding) = match input::read(&args.input) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("error: cannot read {}: {e}", args.input.display());
            return ExitCode::from(2);
        }
    };
    let value = match cbor::parse(&bytes) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("error: {}: {e}", args.input.display());
            return ExitCode::from(2);
        }
    };
    let (kind, _) = view::classify(&value);
    let tree = view::build_root(&value);
    match args.format {
        Format::Text => {
            println!("{kind}, {} bytes", bytes.len());
            println!("{}", view::to_edn(&tree));
        }
        Format::Diag => println!("{}", view::to_edn(&tree)),
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "kind": kind,
                "bytes": bytes.len(),
                "value": view::to_json(&tree),
            }))
            .unwrap_or_default()
        ),
    }
    ExitCode::SUCCESS
}
