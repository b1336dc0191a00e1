//! The OTrP TA package: what `encrypted_ta` carries (spec notes §2.6, §9 item 9), where
//! the draft is silent or loose. Used by the Agent to open it and by the TAM to build it.
//!
//! * `key`: standard BASE64 of the compact JSON of a **general JWE** (A128CBC-HS256,
//!   ECDH-ES+A128KW to the SD's TEE SP AIK, a P-256 key; RSA-OAEP for an RSA AIK) whose
//!   plaintext is the 32-byte AES-256 key ("JWE enveloped data of a 256-bit symmetric
//!   key by the recipient's TEEspaik public key", §9.3.1.1).
//! * `iv`: hex of 16 random bytes (§9.3.1.1); upper or lower case accepted.
//! * `alg`: `AESCBC` = AES-256-CBC with PKCS#7 padding, the only value accepted.
//! * `ciphertadata` / `ciphernewtadata`: BASE64 of AES-256-CBC(key, iv, TA). The TA is a
//!   **SUIT envelope** signed by the SP's TA signer (the draft leaves TA signing to the
//!   TEE: we reuse SUIT, so OTrP and TEEP install through the same processor, with the
//!   same signer and sequence-number (anti-rollback) checks). Its payload must be
//!   integrated: OTrP has no fetch step.
//! * `cipherpdata` / `ciphernewpdata`: BASE64 of `iv' ‖ AES-256-CBC(key, iv', data)`
//!   with its own random 16-byte IV `iv'`: the draft shares one key and IV between the
//!   two ciphertexts, which is a CBC misuse; the personalization data is opaque bytes.
//!
//! CBC gives no integrity on its own: the whole `encrypted_ta` sits inside the TAM's
//! JWS, and the TA inside is SUIT-signed by the SP.

use alloc::string::String;
use alloc::vec::Vec;

use aes::Aes256;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use cbc::cipher::block_padding::Pkcs7;
use cbc::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use otrp_crypto::{CryptoProvider, PrivateKey, PublicKey};
use otrp_json::{ContentEnc, JweJson, LegacyMode, RecipientKey};
use rand_core::CryptoRngCore;
use zeroize::Zeroizing;

/// The only `encrypted_ta.alg` value: AES-256-CBC, PKCS#7 padding.
pub const TA_ALG: &str = "AESCBC";

/// Why a TA package could not be built or opened (the Agent answers ERR_TA_INVALID).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PackageError {
    /// A member is not in the format above.
    #[error("encrypted_ta.{member}: {reason}")]
    Format {
        /// The member.
        member: &'static str,
        /// What was wrong.
        reason: String,
    },
    /// The key could not be unwrapped or a ciphertext did not decrypt.
    #[error("encrypted_ta: decryption failed")]
    Decrypt,
    /// The JWE layer refused (algorithm, legacy RSA1_5, encoding).
    #[error("encrypted_ta.key: {0}")]
    Jwe(otrp_json::Error),
}

/// The members of a sealed package (field names of InstallTA; UpdateTA uses
/// `ciphernewtadata` / `ciphernewpdata` for the same values).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedTa {
    /// `key`.
    pub key: String,
    /// `iv`.
    pub iv: String,
    /// `alg`.
    pub alg: String,
    /// `ciphertadata`.
    pub ta: Option<String>,
    /// `cipherpdata`.
    pub pdata: Option<String>,
}

/// What a package holds once opened.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OpenedTa {
    /// The SUIT envelope of the TA.
    pub ta: Option<Vec<u8>>,
    /// Personalization data.
    pub pdata: Option<Vec<u8>>,
}

fn format(member: &'static str, reason: impl Into<String>) -> PackageError {
    PackageError::Format {
        member,
        reason: reason.into(),
    }
}

fn cbc_encrypt(key: &[u8], iv: &[u8; 16], data: &[u8]) -> Result<Vec<u8>, PackageError> {
    cbc::Encryptor::<Aes256>::new_from_slices(key, iv)
        .map(|c| c.encrypt_padded_vec_mut::<Pkcs7>(data))
        .map_err(|_| format("key", "not a 256-bit key"))
}

fn cbc_decrypt(key: &[u8], iv: &[u8], data: &[u8]) -> Result<Vec<u8>, PackageError> {
    cbc::Decryptor::<Aes256>::new_from_slices(key, iv)
        .map_err(|_| PackageError::Decrypt)?
        .decrypt_padded_vec_mut::<Pkcs7>(data)
        .map_err(|_| PackageError::Decrypt)
}

/// Seals a TA (SUIT envelope) and/or personalization data to the TEE SP AIK `aik`.
pub fn seal(
    provider: &dyn CryptoProvider,
    rng: &mut impl CryptoRngCore,
    aik: &PublicKey,
    ta: Option<&[u8]>,
    pdata: Option<&[u8]>,
) -> Result<SealedTa, PackageError> {
    let mut key = Zeroizing::new([0u8; 32]);
    rng.fill_bytes(key.as_mut());
    let mut iv = [0u8; 16];
    rng.fill_bytes(&mut iv);
    let (jwe, _) = otrp_json::jose::encrypt(
        provider,
        rng,
        key.as_ref(),
        ContentEnc::A128CbcHs256,
        &[RecipientKey::new(aik)],
    )
    .map_err(PackageError::Jwe)?;
    let jwe_json = otrp_json::json::to_vec(&jwe).map_err(PackageError::Jwe)?;
    let ta = match ta {
        Some(t) => Some(STANDARD.encode(cbc_encrypt(key.as_ref(), &iv, t)?)),
        None => None,
    };
    let pdata = match pdata {
        Some(p) => {
            let mut iv_p = [0u8; 16];
            rng.fill_bytes(&mut iv_p);
            let mut out = iv_p.to_vec();
            out.extend_from_slice(&cbc_encrypt(key.as_ref(), &iv_p, p)?);
            Some(STANDARD.encode(out))
        }
        None => None,
    };
    Ok(SealedTa {
        key: STANDARD.encode(jwe_json),
        iv: hex::encode(iv),
        alg: TA_ALG.into(),
        ta,
        pdata,
    })
}

/// Opens a package with the TEE SP AIK private key.
pub fn open(
    provider: &dyn CryptoProvider,
    rng: &mut impl CryptoRngCore,
    aik: &PrivateKey,
    sealed: &SealedTa,
    legacy: LegacyMode,
) -> Result<OpenedTa, PackageError> {
    if sealed.alg != TA_ALG {
        return Err(format(
            "alg",
            alloc::format!("`{}` is not AESCBC", sealed.alg),
        ));
    }
    let iv = hex::decode(&sealed.iv).map_err(|e| format("iv", alloc::format!("{e}")))?;
    if iv.len() != 16 {
        return Err(format("iv", "not 16 bytes"));
    }
    let jwe_json = STANDARD
        .decode(&sealed.key)
        .map_err(|e| format("key", alloc::format!("{e}")))?;
    let jwe: JweJson = otrp_json::json::from_slice(&jwe_json).map_err(PackageError::Jwe)?;
    let key = match otrp_json::jose::decrypt(provider, rng, &jwe, aik, legacy) {
        Ok(d) => Zeroizing::new(d.plaintext),
        Err(e @ otrp_json::Error::LegacyRsa15Refused { .. })
        | Err(e @ otrp_json::Error::AlgorithmNotAllowed { .. }) => {
            return Err(PackageError::Jwe(e))
        }
        Err(_) => return Err(PackageError::Decrypt),
    };
    if key.len() != 32 {
        return Err(PackageError::Decrypt);
    }
    let mut out = OpenedTa::default();
    if let Some(t) = &sealed.ta {
        let ct = STANDARD
            .decode(t)
            .map_err(|e| format("ciphertadata", alloc::format!("{e}")))?;
        out.ta = Some(cbc_decrypt(&key, &iv, &ct)?);
    }
    if let Some(p) = &sealed.pdata {
        let ct = STANDARD
            .decode(p)
            .map_err(|e| format("cipherpdata", alloc::format!("{e}")))?;
        let (iv_p, body) = ct
            .split_at_checked(16)
            .ok_or_else(|| format("cipherpdata", "shorter than its IV"))?;
        out.pdata = Some(cbc_decrypt(&key, iv_p, body)?);
    }
    Ok(out)
}

impl SealedTa {
    /// As InstallTA's `encrypted_ta`.
    pub fn into_install(self) -> Result<otrp_json::EncryptedTa, PackageError> {
        Ok(otrp_json::EncryptedTa {
            key: self.key,
            iv: self.iv,
            alg: self.alg,
            ciphertadata: self
                .ta
                .ok_or_else(|| format("ciphertadata", "InstallTA needs the TA"))?,
            cipherpdata: self.pdata,
        })
    }

    /// As UpdateTA's `encrypted_ta`.
    pub fn into_update(self) -> Result<otrp_json::EncryptedTaUpdate, PackageError> {
        if self.ta.is_none() && self.pdata.is_none() {
            return Err(format(
                "ciphernewtadata",
                "UpdateTA needs the TA or the data",
            ));
        }
        Ok(otrp_json::EncryptedTaUpdate {
            key: self.key,
            iv: self.iv,
            alg: self.alg,
            ciphernewtadata: self.ta,
            ciphernewpdata: self.pdata,
        })
    }

    /// From InstallTA's `encrypted_ta`.
    pub fn from_install(e: &otrp_json::EncryptedTa) -> Self {
        SealedTa {
            key: e.key.clone(),
            iv: e.iv.clone(),
            alg: e.alg.clone(),
            ta: Some(e.ciphertadata.clone()),
            pdata: e.cipherpdata.clone(),
        }
    }

    /// From UpdateTA's `encrypted_ta`.
    pub fn from_update(e: &otrp_json::EncryptedTaUpdate) -> Self {
        SealedTa {
            key: e.key.clone(),
            iv: e.iv.clone(),
            alg: e.alg.clone(),
            ta: e.ciphernewtadata.clone(),
            pdata: e.ciphernewpdata.clone(),
        }
    }
}
