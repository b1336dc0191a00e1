//! RFC 9679 COSE Key thumbprints.

use alloc::vec::Vec;

use ciborium::Value;

use crate::{CryptoProvider, PublicComponents, PublicKey};

/// The deterministic CBOR encoding (RFC 8949 §4.2.1) of the key's required
/// parameters, the input of the RFC 9679 thumbprint:
/// EC2 `{1: 2, -1: 1, -2: x, -3: y}`, OKP `{1: 1, -1: 6, -2: x}`, RSA `{1: 3, -1: n, -2: e}`.
///
/// Keys are emitted in deterministic order (1, -1, -2, -3: their encodings
/// 0x01, 0x20, 0x21, 0x22 sort bytewise), all integers in shortest form.
pub fn cose_key_thumbprint_input(key: &PublicKey) -> Vec<u8> {
    let int = |i: i64| Value::Integer(i.into());
    let entries: Vec<(Value, Value)> = match key.components() {
        PublicComponents::P256 { x, y } => alloc::vec![
            (int(1), int(2)),
            (int(-1), int(1)),
            (int(-2), Value::Bytes(x.to_vec())),
            (int(-3), Value::Bytes(y.to_vec())),
        ],
        PublicComponents::Ed25519 { x } => alloc::vec![
            (int(1), int(1)),
            (int(-1), int(6)),
            (int(-2), Value::Bytes(x.to_vec())),
        ],
        PublicComponents::Rsa { n, e } => alloc::vec![
            (int(1), int(3)),
            (int(-1), Value::Bytes(n)),
            (int(-2), Value::Bytes(e)),
        ],
    };
    let mut out = Vec::with_capacity(96);
    // Writing into a Vec cannot fail and a `Value` of integers and byte strings
    // never raises a serializer error, so this branch is unreachable in practice.
    if ciborium::into_writer(&Value::Map(entries), &mut out).is_err() {
        out.clear();
    }
    out
}

/// RFC 9679 COSE Key thumbprint: SHA-256 over [`cose_key_thumbprint_input`].
/// This is the `kid` OpenTrust puts in COSE headers.
pub fn cose_key_thumbprint(key: &PublicKey, provider: &dyn CryptoProvider) -> [u8; 32] {
    provider.sha256(&cose_key_thumbprint_input(key))
}
