//! `otrp inspect` as a user runs it: every published example round-trips and verifies,
//! tampering is caught, malformed input gives exit 2 and one clear line.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../..")
}

fn otrp(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_otrp"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("run otrp")
}

fn otrp_stdin(args: &[&str], input: &[u8]) -> Output {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_otrp"))
        .args(args)
        .current_dir(root())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn otrp");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input)
        .expect("write stdin");
    child.wait_with_output().expect("wait otrp")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn files(dir: &str, pred: impl Fn(&str) -> bool) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(root().join(dir))
        .expect("read dir")
        .filter_map(|e| e.ok())
        .map(|e| format!("{dir}/{}", e.file_name().to_string_lossy()))
        .filter(|p| pred(p))
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no files in {dir}");
    out
}

/// Raw binaries that are not CBOR at all (TA images, detached ciphertexts).
fn is_raw(p: &str) -> bool {
    p.ends_with(".ta.hex") || p.contains("encrypted-payload") || p.ends_with(".bin")
}

#[test]
fn every_cbor_example_round_trips() {
    let mut all = Vec::new();
    all.extend(files("testdata/vectors/teep", |p| {
        p.ends_with(".hex") && !is_raw(p)
    }));
    all.extend(files("testdata/vectors/suit", |p| p.ends_with(".hex")));
    all.extend(files("testdata/interop/libteep", |p| p.ends_with(".cbor")));
    all.extend(files("testdata/interop/libcsuit", |p| {
        p.ends_with(".suit") || p.ends_with(".cose")
    }));
    all.extend(files("testdata/interop/suit-encryption", |p| {
        (p.ends_with(".hex") || p.ends_with(".hex.signed")) && !is_raw(p)
    }));
    all.extend(files("testdata/interop/suit-trust-domains", |p| {
        p.ends_with(".hex")
    }));
    for f in &all {
        let o = otrp(&["inspect", "--roundtrip", f]);
        assert!(o.status.success(), "{f}: {}", stderr(&o));
        assert!(stderr(&o).contains("round trip: OK"), "{f}");
    }
    assert!(all.len() > 60, "only {} examples", all.len());
}

#[test]
fn otrp_json_samples_round_trip() {
    for f in files("crates/codec/otrp-json/tests/data", |p| {
        p.ends_with(".json")
    }) {
        let o = otrp(&["inspect", "--roundtrip", &f]);
        assert!(o.status.success(), "{f}: {}", stderr(&o));
    }
}

const SUIT_KEY: &str = "testdata/vectors/suit/keys/signer_p256_public.pem";

#[test]
fn every_signed_suit_example_verifies_with_its_published_key() {
    let mut signed = Vec::new();
    signed.extend(files("testdata/vectors/suit", |p| {
        p.ends_with(".hex") && !p.contains("unsigned")
    }));
    signed.extend(files("testdata/vectors/teep", |p| {
        p.contains("suit_") && p.ends_with(".hex") || p.ends_with("update.hex")
    }));
    signed.extend(files("testdata/interop/suit-trust-domains", |p| {
        p.ends_with(".hex")
    }));
    signed.extend(files("testdata/interop/libcsuit", |p| {
        // expAF/AFS/AW are MAC-authenticated, not signed
        p.ends_with(".suit") && !p.contains("expA")
    }));
    for f in &signed {
        let o = otrp(&["inspect", "--verify-key", SUIT_KEY, f]);
        assert!(o.status.success(), "{f}: {}", stderr(&o));
        assert!(stderr(&o).contains("signature OK"), "{f}");
    }
}

#[test]
fn libteep_cose_messages_verify_with_their_keys() {
    let keys = [
        "testdata/interop/libteep/key/tam_prime256v1_pub.pem",
        "testdata/interop/libteep/key/tam_ed25519_pub.pem",
        "testdata/interop/libteep/key/teep_agent_prime256v1_pub.pem",
        "testdata/interop/libteep/key/verifier_prime256v1.pem",
        SUIT_KEY,
    ];
    for f in [
        "query_request_cose.cbor",
        "query_response_cose.cbor",
        "update_cose.cbor",
        "teep_success_cose.cbor",
        "teep_error_cose.cbor",
        "evidence_cose.cbor",
        "attestation_results_cose.cbor",
    ] {
        let path = format!("testdata/interop/libteep/{f}");
        let mut args = vec!["inspect", "--roundtrip"];
        for k in &keys {
            args.extend(["--verify-key", k]);
        }
        args.push(&path);
        let o = otrp(&args);
        assert!(o.status.success(), "{f}: {}", stderr(&o));
    }
}

#[test]
fn firmware_encryption_es_dh_examples_verify() {
    let o = otrp(&[
        "inspect",
        "--verify-key",
        "testdata/interop/libteep/key/tam_prime256v1_pub.pem",
        "--verify-key",
        SUIT_KEY,
        "testdata/interop/suit-encryption/suit-manifest-es-ecdh-dependency.hex.signed",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    // outer envelope and the integrated dependency: two signatures
    assert_eq!(stderr(&o).matches("signature OK").count(), 2);
}

#[test]
fn wrong_key_and_tampered_signature_fail_naming_the_signature() {
    let o = otrp(&[
        "inspect",
        "--verify-key",
        "testdata/interop/libteep/key/tam_prime256v1_pub.pem",
        "testdata/vectors/teep/suit_uri.hex",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("authentication[1]"), "{}", stderr(&o));

    let hex = std::fs::read_to_string(root().join("testdata/vectors/teep/suit_uri.hex")).unwrap();
    let mut bytes = hex::decode(hex.trim()).unwrap();
    // the ECDSA signature sits inside the authentication wrapper near byte 60
    bytes[60] ^= 0x01;
    let o = otrp_stdin(&["inspect", "--verify-key", SUIT_KEY, "-"], &bytes);
    assert_ne!(o.status.code(), Some(0), "{}", stderr(&o));
}

#[test]
fn unsigned_input_with_verify_key_fails() {
    let o = otrp(&[
        "inspect",
        "--verify-key",
        SUIT_KEY,
        "testdata/vectors/teep/query_request.hex",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("no signature"), "{}", stderr(&o));
}

fn assert_malformed(input: &[u8], what: &str) {
    let o = otrp_stdin(&["inspect", "--roundtrip", "-"], input);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{what}: {err}");
    assert!(!err.contains("panicked"), "{what}: {err}");
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "{what}: one line expected: {err}"
    );
    assert!(err.starts_with("error: "), "{what}: {err}");
}

#[test]
fn malformed_input_gives_exit_2_and_one_line() {
    assert_malformed(b"", "empty");
    assert_malformed(&[0x82, 0x01], "truncated");
    assert_malformed(&[0x5b, 0x80, 0, 0, 0, 0, 0, 0, 0, 1], "huge length");
    assert_malformed(&vec![0x81; 100_000], "deep nesting");
    assert_malformed(&[0xff, 0xff, 0xff], "garbage");
    assert_malformed(b"{\"GetDeviceStateRequest\": ", "truncated JSON");
    let update = hex::decode(
        std::fs::read_to_string(root().join("testdata/vectors/teep/update.hex"))
            .unwrap()
            .trim(),
    )
    .unwrap();
    for cut in [1, 10, 100, 200, 359] {
        assert_malformed(&update[..cut], "truncated update");
    }
    // trailing bytes
    let mut extra = update.clone();
    extra.push(0);
    assert_malformed(&extra, "trailing byte");
}

#[test]
fn malformed_errors_say_where() {
    let o = otrp_stdin(&["inspect", "-"], &[0x82, 0x01, 0x02, 0x03]);
    assert!(stderr(&o).contains("byte 3"), "{}", stderr(&o));
}

#[test]
fn random_and_bit_flipped_inputs_never_panic() {
    let update = hex::decode(
        std::fs::read_to_string(root().join("testdata/vectors/teep/update.hex"))
            .unwrap()
            .trim(),
    )
    .unwrap();
    // one process per input is slow: sample positions across the message
    for pos in (0..update.len()).step_by(23) {
        let mut b = update.clone();
        b[pos] ^= 0x40;
        let o = otrp_stdin(&["inspect", "--roundtrip", "-"], &b);
        assert!(
            !stderr(&o).contains("panicked"),
            "flip at {pos}: {}",
            stderr(&o)
        );
        assert!(matches!(o.status.code(), Some(0..=2)), "flip at {pos}");
    }
}

#[test]
fn hex_and_json_output_formats() {
    let o = otrp(&[
        "inspect",
        "--format",
        "json",
        "testdata/vectors/teep/error.hex",
    ]);
    assert!(o.status.success());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json output");
    assert_eq!(v["kind"], "TEEP Error");
    let o = otrp(&[
        "inspect",
        "--format",
        "diag",
        "testdata/vectors/teep/success.hex",
    ]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("/ token / 20: h'A0A1A2A3A4A5A6A7A8A9AAABACADAEAF'"),
        "{text}"
    );
}

#[test]
fn mac_authenticated_manifests_verify_with_the_symmetric_key() {
    let key = "testdata/interop/suit-encryption/keys/hmac256.cose_key.hex";
    let mut macd = files("testdata/interop/suit-encryption", |p| {
        p.contains("aes-kw") && p.ends_with(".hex.signed")
    });
    macd.extend(files("testdata/interop/libcsuit", |p| {
        p.contains("expA") && p.ends_with(".suit")
    }));
    assert_eq!(macd.len(), 6);
    for f in &macd {
        let o = otrp(&["inspect", "--verify-key", key, f]);
        assert!(o.status.success(), "{f}: {}", stderr(&o));
        assert!(stderr(&o).contains("COSE_Mac0 HMAC 256/256"), "{f}");
    }
    // the wrong symmetric key is refused
    let wrong = std::env::temp_dir().join(format!("otrp-wrong-hmac-{}.hex", std::process::id()));
    std::fs::write(&wrong, format!("a20104205820{}", "62".repeat(32))).unwrap();
    let o = otrp(&["inspect", "--verify-key", wrong.to_str().unwrap(), &macd[0]]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let _ = std::fs::remove_file(wrong);
}

/// A MAC'd batch report (COSE_Mac0 around a TEEP Success) is recognised, round-trips and
/// shows its parts.
#[test]
fn maced_batch_report_is_recognised_and_round_trips() {
    let msg = otrp_teep::TeepMessage::Success(otrp_teep::Success::new());
    let aad = otrp_teep::signed::batch_report_aad("lot-1", 3);
    let bytes = otrp_teep::signed::mac0(
        otrp_crypto::default_provider(),
        &[7; 32],
        b"\x01device-ueid-16by",
        &aad,
        &msg,
    )
    .expect("mac0");
    let o = otrp_stdin(&["inspect", "--roundtrip", "-"], &bytes);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = format!("{}{}", String::from_utf8_lossy(&o.stdout), stderr(&o));
    assert!(out.contains("COSE_Mac0 around TEEP Success"), "{out}");
    assert!(out.contains("round trip"), "{out}");
}
