//! Sealing: AES-256-GCM under a key derived from the device storage key, with the
//! object's name bound in as AAD.
//!
//! File format of one sealed object (all integers big-endian):
//!
//! ```text
//! magic "OTRPSEAL" (8) | version 1 (1) | name_len (2) | name (name_len) | nonce (12) | ciphertext || tag (16)
//! ```
//!
//! The name is stored in clear so that a listing can tell which object a file holds; it is
//! authenticated because the AAD is `"otrp-tee-sealed-object-v1\0" || name`, and a reader
//! asks for a name and checks the file carries that very name. An object copied over
//! another (a swap), edited, truncated or written by the rich OS without the device key
//! fails with [`PlatformError::Tampered`].

use otrp_crypto::{rust_crypto_provider, zeroize::Zeroizing};
use rand_core::CryptoRngCore;

use crate::PlatformError;

const MAGIC: &[u8; 8] = b"OTRPSEAL";
const VERSION: u8 = 1;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
const AAD_PREFIX: &[u8] = b"otrp-tee-sealed-object-v1\0";
const HKDF_SALT: &[u8] = b"otrp-tee-platform";
const HKDF_INFO: &[u8] = b"sealed-storage AES-256-GCM key v1";

/// Derives the storage key and seals / opens objects with it.
pub(crate) struct Sealer {
    key: Zeroizing<[u8; 32]>,
}

impl Sealer {
    /// Derives the sealing key: HKDF-SHA256(salt = "otrp-tee-platform", ikm = device key,
    /// info = "sealed-storage AES-256-GCM key v1").
    pub(crate) fn new(device_key: &[u8; 32]) -> Result<Self, PlatformError> {
        let mut key = Zeroizing::new([0u8; 32]);
        rust_crypto_provider()
            .hkdf_sha256(HKDF_SALT, device_key, HKDF_INFO, key.as_mut())
            .map_err(|e| PlatformError::crypto("HKDF storage key", e))?;
        Ok(Sealer { key })
    }

    fn aad(name: &str) -> Vec<u8> {
        let mut aad = Vec::with_capacity(AAD_PREFIX.len() + name.len());
        aad.extend_from_slice(AAD_PREFIX);
        aad.extend_from_slice(name.as_bytes());
        aad
    }

    /// Seals `plaintext` as object `name` with a fresh random nonce.
    pub(crate) fn seal(
        &self,
        name: &str,
        plaintext: &[u8],
        rng: &mut dyn CryptoRngCore,
    ) -> Result<Vec<u8>, PlatformError> {
        let name_len = u16::try_from(name.len()).map_err(|_| PlatformError::InvalidName {
            name: name.to_string(),
            reason: "longer than 65535 bytes",
        })?;
        let mut nonce = [0u8; NONCE_LEN];
        rng.fill_bytes(&mut nonce);
        let ct = rust_crypto_provider()
            .aes_gcm_seal(self.key.as_ref(), &nonce, &Self::aad(name), plaintext)
            .map_err(|e| PlatformError::crypto("AES-GCM seal", e))?;
        let mut out = Vec::with_capacity(MAGIC.len() + 3 + name.len() + NONCE_LEN + ct.len());
        out.extend_from_slice(MAGIC);
        out.push(VERSION);
        out.extend_from_slice(&name_len.to_be_bytes());
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        Ok(out)
    }

    /// Opens a sealed object that must be named `expected_name`.
    pub(crate) fn open(
        &self,
        expected_name: &str,
        sealed: &[u8],
    ) -> Result<Vec<u8>, PlatformError> {
        let (stored_name, nonce, ct) = parse(expected_name, sealed)?;
        if stored_name != expected_name.as_bytes() {
            return Err(PlatformError::tampered(
                expected_name,
                "file holds another object (swapped)",
            ));
        }
        rust_crypto_provider()
            .aes_gcm_open(self.key.as_ref(), nonce, &Self::aad(expected_name), ct)
            .map_err(|_| PlatformError::tampered(expected_name, "authentication tag mismatch"))
    }

    /// Opens a sealed object whose name is read from the file (for listings): returns the
    /// name and the plaintext. `label` names the file in errors.
    pub(crate) fn open_any(
        &self,
        label: &str,
        sealed: &[u8],
    ) -> Result<(String, Vec<u8>), PlatformError> {
        let (stored_name, _, _) = parse(label, sealed)?;
        let name = std::str::from_utf8(stored_name)
            .map_err(|_| PlatformError::tampered(label, "object name is not UTF-8"))?
            .to_string();
        let plain = self.open(&name, sealed)?;
        Ok((name, plain))
    }
}

/// Splits a sealed file into (name, nonce, ciphertext||tag), checking every length.
/// (name, nonce, ciphertext||tag) of a sealed file.
type Parts<'a> = (&'a [u8], &'a [u8], &'a [u8]);

fn parse<'a>(label: &str, sealed: &'a [u8]) -> Result<Parts<'a>, PlatformError> {
    let t = |reason| PlatformError::tampered(label, reason);
    let (magic, rest) = sealed
        .split_at_checked(MAGIC.len())
        .ok_or_else(|| t("truncated before the magic"))?;
    if magic != MAGIC {
        return Err(t("bad magic"));
    }
    let (version, rest) = rest
        .split_first()
        .ok_or_else(|| t("truncated before the version"))?;
    if *version != VERSION {
        return Err(t("unknown format version"));
    }
    let (len, rest) = rest
        .split_at_checked(2)
        .ok_or_else(|| t("truncated before the name length"))?;
    let name_len = usize::from(u16::from_be_bytes([
        len.first().copied().unwrap_or(0),
        len.get(1).copied().unwrap_or(0),
    ]));
    let (name, rest) = rest
        .split_at_checked(name_len)
        .ok_or_else(|| t("truncated inside the name"))?;
    let (nonce, ct) = rest
        .split_at_checked(NONCE_LEN)
        .ok_or_else(|| t("truncated inside the nonce"))?;
    if ct.len() < TAG_LEN {
        return Err(t("truncated inside the tag"));
    }
    Ok((name, nonce, ct))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::{rand_core::SeedableRng, ChaCha20Rng};

    #[test]
    fn seal_open_roundtrip_and_tamper_detection() -> Result<(), PlatformError> {
        let s = Sealer::new(&[7u8; 32])?;
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let sealed = s.seal("o/a", b"hello", &mut rng)?;
        assert_eq!(s.open("o/a", &sealed)?, b"hello");
        // swapped into another name
        assert!(
            matches!(s.open("o/b", &sealed), Err(PlatformError::Tampered { name, .. }) if name == "o/b")
        );
        // every single-bit flip is detected
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            if let Some(b) = bad.get_mut(i) {
                *b ^= 0x01;
            }
            assert!(s.open("o/a", &bad).is_err(), "flip at byte {i} undetected");
        }
        // every truncation is detected
        for n in 0..sealed.len() {
            assert!(s.open("o/a", sealed.get(..n).unwrap_or_default()).is_err());
        }
        // another device key cannot open it
        let other = Sealer::new(&[8u8; 32])?;
        assert!(matches!(
            other.open("o/a", &sealed),
            Err(PlatformError::Tampered { .. })
        ));
        let (name, plain) = s.open_any("file", &sealed)?;
        assert_eq!((name.as_str(), plain.as_slice()), ("o/a", &b"hello"[..]));
        Ok(())
    }
}
