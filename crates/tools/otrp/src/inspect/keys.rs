//! Loading `--verify-key` files: PEM (public or private key), COSE_Key (binary or hex) or JWK.

use super::input;
use otrp_crypto::{PrivateKey, PublicKey};
use std::path::Path;

/// A key that signatures or MACs are checked with.
#[derive(Debug, Clone)]
pub enum VerifyKey {
    /// A public key (from a public or private key file).
    Public(PublicKey),
    /// A symmetric key (COSE_Key kty Symmetric, JWK kty "oct"), for COSE_Mac0.
    Secret(Vec<u8>),
}

/// Loads the key in `path`, or says why it cannot.
pub fn load(path: &Path) -> Result<VerifyKey, String> {
    let raw = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if let Some(secret) = symmetric(&raw) {
        return Ok(VerifyKey::Secret(secret));
    }
    load_public(path).map(VerifyKey::Public)
}

/// The `k` of a symmetric COSE_Key (binary or hex) or JWK, if `raw` is one.
fn symmetric(raw: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(raw).ok().map(str::trim_start);
    if let Some(t) = text.filter(|t| t.starts_with('{')) {
        let jwk: serde_json::Value = serde_json::from_str(t).ok()?;
        if jwk.get("kty")?.as_str()? != "oct" {
            return None;
        }
        let k = jwk.get("k")?.as_str()?;
        use base64::Engine as _;
        return base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(k)
            .ok();
    }
    let (bytes, _) = input::decode_text(raw.to_vec());
    let key = otrp_cose::cose_key_from_slice(&bytes).ok()?;
    (key.kty == otrp_cose::coset::KeyType::Assigned(otrp_cose::coset::iana::KeyType::Symmetric))
        .then(|| {
            key.params.iter().find_map(|(label, value)| {
                (*label == otrp_cose::coset::Label::Int(-1))
                    .then(|| value.as_bytes().cloned())
                    .flatten()
            })
        })
        .flatten()
}

fn load_public(path: &Path) -> Result<PublicKey, String> {
    let raw = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let name = path.display();
    if let Ok(text) = std::str::from_utf8(&raw) {
        let trimmed = text.trim_start();
        if trimmed.starts_with("-----BEGIN") {
            // OpenSSL may put an "EC PARAMETERS" block first: use the key block.
            let Some((label, block)) = pem_blocks(text).find(|(l, _)| l.ends_with("KEY")) else {
                return Err(format!("{name}: no key block in this PEM file"));
            };
            return if label.contains("PRIVATE") {
                PrivateKey::from_pem(block)
                    .map(|k| k.public_key())
                    .map_err(|e| format!("{name}: not a usable private key PEM: {e}"))
            } else {
                PublicKey::from_pem(block)
                    .map_err(|e| format!("{name}: not a usable public key PEM: {e}"))
            };
        }
        if trimmed.starts_with('{') {
            let jwk =
                otrp_crypto::jwk::parse(text).map_err(|e| format!("{name}: not a JWK: {e}"))?;
            return otrp_crypto::jwk::public_from_jwk(&jwk)
                .map_err(|e| format!("{name}: not a usable JWK: {e}"));
        }
    }
    let (bytes, _) = input::decode_text(raw);
    let key = otrp_cose::cose_key_from_slice(&bytes)
        .map_err(|e| format!("{name}: neither PEM, JWK nor COSE_Key: {e}"))?;
    otrp_cose::public_from_cose_key(&key).map_err(|e| format!("{name}: unusable COSE_Key: {e}"))
}

/// The `(label, whole block)` pairs of a PEM file, in order.
fn pem_blocks(text: &str) -> impl Iterator<Item = (&str, &str)> {
    let mut rest = text;
    std::iter::from_fn(move || {
        let start = rest.find("-----BEGIN ")?;
        let after = &rest[start + 11..];
        let label_end = after.find("-----")?;
        let label = &after[..label_end];
        let end_marker = format!("-----END {label}-----");
        let end = rest[start..].find(&end_marker)? + start + end_marker.len();
        let block = &rest[start..end];
        rest = &rest[end..];
        Some((label, block))
    })
}

#[cfg(test)]
mod tests {
    use super::pem_blocks;

    #[test]
    fn pem_blocks_skip_parameters() {
        let text = "-----BEGIN EC PARAMETERS-----\nAAA=\n-----END EC PARAMETERS-----\n\
                    -----BEGIN PRIVATE KEY-----\nBBB=\n-----END PRIVATE KEY-----\n";
        let blocks: Vec<_> = pem_blocks(text).collect();
        assert_eq!(blocks.len(), 2);
        assert_eq!(blocks[1].0, "PRIVATE KEY");
        assert!(blocks[1].1.ends_with("-----END PRIVATE KEY-----"));
    }
}
