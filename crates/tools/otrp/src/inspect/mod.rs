//! `otrp inspect`: recognise, explain, round-trip and verify protocol messages.
//!
//! Exit codes: 0 success, 1 a round trip or a signature check failed, 2 the input is
//! malformed or unreadable (one line on stderr saying what and where).

pub mod cbor;
pub mod input;
pub mod keys;
pub mod names;
pub mod typed;
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
    let name = args.input.display().to_string();
    let kind = match typed::recognise(&bytes) {
        Ok(k) => k,
        Err(e) => {
            eprintln!("error: {name}: {e}");
            return ExitCode::from(2);
        }
    };
    let keys = match args
        .verify_keys
        .iter()
        .map(|p| keys::load(p))
        .collect::<Result<Vec<_>, _>>()
    {
        Ok(k) => k,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    print_view(args.format, &kind, &bytes);

    let mut failed = false;
    if args.roundtrip {
        match typed::roundtrip(&bytes) {
            Ok(()) => eprintln!(
                "round trip: OK, {} bytes re-encoded identically",
                bytes.len()
            ),
            Err(f) => {
                eprintln!("round trip: FAILED: {f}");
                failed = true;
            }
        }
    }
    if !keys.is_empty() {
        match typed::verify(otrp_crypto::default_provider(), &bytes, &keys) {
            Ok(found) => {
                for v in &found {
                    eprintln!("signature OK: {} ({})", v.path, v.what);
                }
            }
            Err(f) => {
                eprintln!("signature FAILED: {f}");
                failed = true;
            }
        }
    }
    if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// Prints to stdout, ignoring a closed pipe (`otrp inspect x | head`).
fn out(text: &str) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{text}");
}

fn print_view(format: Format, kind: &typed::Kind, bytes: &[u8]) {
    if typed::is_json(bytes) {
        let pretty = serde_json::from_slice::<serde_json::Value>(bytes)
            .ok()
            .and_then(|v| serde_json::to_string_pretty(&v).ok())
            .unwrap_or_default();
        match format {
            Format::Text => out(&format!("{kind}, {} bytes\n{pretty}", bytes.len())),
            Format::Diag | Format::Json => out(&pretty),
        }
        return;
    }
    let Ok(value) = cbor::parse(bytes) else {
        return;
    };
    let tree = view::build_root(&value);
    match format {
        Format::Text => {
            out(&format!("{kind}, {} bytes", bytes.len()));
            out(&view::to_edn(&tree));
        }
        Format::Diag => out(&view::to_edn(&tree)),
        Format::Json => out(&serde_json::to_string_pretty(&serde_json::json!({
            "kind": kind.to_string(),
            "bytes": bytes.len(),
            "value": view::to_json(&tree),
        }))
        .unwrap_or_default()),
    }
}
