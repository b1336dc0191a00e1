//! JOSE-specific primitive compositions (RFC 7518) on top of RustCrypto crates.
//!
//! Only the RFC composition lives here (AES_CBC_HMAC_SHA2 §5.2, Concat KDF inputs
//! §4.6.2); the primitives themselves come from `cbc`/`aes`, `hmac`/`sha2`,
//! `concat-kdf` and `rsa`.

use alloc::vec::Vec;

use aes::{Aes128, Aes256};
use cbc::cipher::block_padding::Pkcs7;
use cbc::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use hmac::{Hmac, Mac};
use rand_core::CryptoRngCore;
use sha2::{Sha256, Sha512};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::ContentEnc;
use crate::Error;

/// AES_CBC_HMAC_SHA2 encryption (RFC 7518 §5.2.2.1): `cek` = MAC_KEY || ENC_KEY;
/// returns `(ciphertext, tag)` where tag = first half of
/// HMAC(MAC_KEY, AAD || IV || ciphertext || AL) and AL is the AAD bit length as a
/// 64-bit big-endian integer.
pub fn cbc_hmac_encrypt(
    enc: ContentEnc,
    cek: &[u8],
    iv: &[u8; 16],
    aad: &[u8],
    plaintext: &[u8],
) -> Result<(Vec<u8>, Vec<u8>), Error> {
    let (mac_key, enc_key) = split_cek(enc, cek)?;
    let ciphertext = match enc {
        ContentEnc::A128CbcHs256 => cbc::Encryptor::<Aes128>::new_from_slices(enc_key, iv)
            .map_err(Error::crypto)?
            .encrypt_padded_vec_mut::<Pkcs7>(plaintext),
        ContentEnc::A256CbcHs512 => cbc::Encryptor::<Aes256>::new_from_slices(enc_key, iv)
            .map_err(Error::crypto)?
            .encrypt_padded_vec_mut::<Pkcs7>(plaintext),
    };
    let tag = cbc_hmac_tag(enc, mac_key, aad, iv, &ciphertext)?;
    Ok((ciphertext, tag))
}

/// AES_CBC_HMAC_SHA2 decryption (RFC 7518 §5.2.2.2): the tag is checked in constant
/// time before any decryption; every failure is the same [`Error::Decrypt`].
pub fn cbc_hmac_decrypt(
    enc: ContentEnc,
    cek: &[u8],
    iv: &[u8],
    aad: &[u8],
    ciphertext: &[u8],
    tag: &[u8],
) -> Result<Vec<u8>, Error> {
    let (mac_key, enc_key) = split_cek(enc, cek).map_err(|_| Error::Decrypt)?;
    if iv.len() != 16 {
        return Err(Error::Decrypt);
    }
    let expected = cbc_hmac_tag(enc, mac_key, aad, iv, ciphertext).map_err(|_| Error::Decrypt)?;
    if expected.len() != tag.len() || !bool::from(expected.ct_eq(tag)) {
        return Err(Error::Decrypt);
    }
    let plain = match enc {
        ContentEnc::A128CbcHs256 => cbc::Decryptor::<Aes128>::new_from_slices(enc_key, iv)
            .map_err(|_| Error::Decrypt)?
            .decrypt_padded_vec_mut::<Pkcs7>(ciphertext),
        ContentEnc::A256CbcHs512 => cbc::Decryptor::<Aes256>::new_from_slices(enc_key, iv)
            .map_err(|_| Error::Decrypt)?
            .decrypt_padded_vec_mut::<Pkcs7>(ciphertext),
    };
    plain.map_err(|_| Error::Decrypt)
}

fn split_cek(enc: ContentEnc, cek: &[u8]) -> Result<(&[u8], &[u8]), Error> {
    if cek.len() != enc.cek_len() {
        return Err(Error::Crypto(alloc::format!(
            "{} needs a {}-byte CEK, got {}",
            enc.name(),
            enc.cek_len(),
            cek.len()
        )));
    }
    Ok(cek.split_at(enc.cek_len() / 2))
}

fn cbc_hmac_tag(
    enc: ContentEnc,
    mac_key: &[u8],
    aad: &[u8],
    iv: &[u8],
    ciphertext: &[u8],
) -> Result<Vec<u8>, Error> {
    let al = (aad.len() as u64).wrapping_mul(8).to_be_bytes();
    let full: Vec<u8> = match enc {
        ContentEnc::A128CbcHs256 => {
            let mut mac = Hmac::<Sha256>::new_from_slice(mac_key).map_err(Error::crypto)?;
            mac.update(aad);
            mac.update(iv);
            mac.update(ciphertext);
            mac.update(&al);
            mac.finalize().into_bytes().to_vec()
        }
        ContentEnc::A256CbcHs512 => {
            let mut mac = Hmac::<Sha512>::new_from_slice(mac_key).map_err(Error::crypto)?;
            mac.update(aad);
            mac.update(iv);
            mac.update(ciphertext);
            mac.update(&al);
            mac.finalize().into_bytes().to_vec()
        }
    };
    Ok(full
        .get(..enc.tag_len())
        .map(<[u8]>::to_vec)
        .unwrap_or_default())
}

/// Concat KDF (NIST SP 800-56A, single-step, SHA-256) with the JOSE OtherInfo of RFC
/// 7518 §4.6.2: AlgorithmID || PartyUInfo || PartyVInfo (each a 32-bit big-endian
/// length then the bytes) || SuppPubInfo (key length in bits, 32-bit big-endian);
/// SuppPrivInfo is empty.
pub fn concat_kdf_sha256(
    z: &[u8],
    algorithm_id: &str,
    apu: &[u8],
    apv: &[u8],
    out: &mut [u8],
) -> Result<(), Error> {
    let mut other_info = Vec::with_capacity(16 + algorithm_id.len() + apu.len() + apv.len());
    for part in [algorithm_id.as_bytes(), apu, apv] {
        let len = u32::try_from(part.len()).map_err(Error::crypto)?;
        other_info.extend_from_slice(&len.to_be_bytes());
        other_info.extend_from_slice(part);
    }
    let bits = u32::try_from(out.len() * 8).map_err(Error::crypto)?;
    other_info.extend_from_slice(&bits.to_be_bytes());
    concat_kdf::derive_key_into::<Sha256>(z, &other_info, out).map_err(Error::crypto)
}

/// RSAES-OAEP with SHA-1 and MGF1-SHA-1 (JOSE `RSA-OAEP`, RFC 7518 §4.3).
pub fn rsa_oaep_encrypt(
    rng: &mut impl CryptoRngCore,
    key: &rsa::RsaPublicKey,
    cek: &[u8],
) -> Result<Vec<u8>, Error> {
    key.encrypt(rng, rsa::Oaep::new::<sha1::Sha1>(), cek)
        .map_err(Error::crypto)
}

/// `RSA-OAEP` decryption (blinded); any failure is [`Error::Decrypt`].
pub fn rsa_oaep_decrypt(
    rng: &mut impl CryptoRngCore,
    key: &rsa::RsaPrivateKey,
    wrapped: &[u8],
) -> Result<Zeroizing<Vec<u8>>, Error> {
    key.decrypt_blinded(rng, rsa::Oaep::new::<sha1::Sha1>(), wrapped)
        .map(Zeroizing::new)
        .map_err(|_| Error::Decrypt)
}

/// `RSA1_5` (RSAES-PKCS1-v1_5) decryption with the RFC 7516 §11.5 countermeasure: on a
/// padding error or a wrong CEK length a random CEK of `cek_len` bytes is returned, so
/// that the failure shows only as the same tag mismatch as any other tampering.
/// Callers gate this behind [`LegacyMode::Allow`](crate::LegacyMode::Allow).
pub fn rsa1_5_decrypt(
    rng: &mut impl CryptoRngCore,
    key: &rsa::RsaPrivateKey,
    wrapped: &[u8],
    cek_len: usize,
) -> Zeroizing<Vec<u8>> {
    let mut fallback = Zeroizing::new(alloc::vec![0u8; cek_len]);
    rng.fill_bytes(&mut fallback);
    match key.decrypt_blinded(rng, rsa::Pkcs1v15Encrypt, wrapped) {
        Ok(cek) if cek.len() == cek_len => Zeroizing::new(cek),
        _ => fallback,
    }
}

/// `RSA1_5` encryption. Not used by this crate's encoders (RSA1_5 is never emitted);
/// exposed so that tests and legacy-interop tools can build such objects explicitly.
pub fn rsa1_5_encrypt(
    rng: &mut impl CryptoRngCore,
    key: &rsa::RsaPublicKey,
    cek: &[u8],
) -> Result<Vec<u8>, Error> {
    key.encrypt(rng, rsa::Pkcs1v15Encrypt, cek)
        .map_err(Error::crypto)
}
