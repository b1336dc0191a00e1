//! JOSE for the OTrP JSON profile (DESIGN.md §2): JWS ES256/RS256 in flattened and
//! general JSON serialization; JWE general JSON serialization with A128CBC-HS256 or
//! A256CBC-HS512 content encryption and ECDH-ES+A128KW or RSA-OAEP key management;
//! RSA1_5 decryption only with [`LegacyMode::Allow`], never emitted.
//!
//! Header rules on input: `alg` must be in the protected header and on the allow-list,
//! JWE `enc` must be protected and on the allow-list, any `crit` is refused (no
//! extension is understood), `zip` is refused, a parameter may not appear in more than
//! one header (RFC 7515 §7.2.1 / RFC 7516 §7.2.1), and `kid`/`x5c` are passed through.

pub mod primitives;
mod types;

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

use otrp_crypto::{CryptoProvider, PrivateKey, PublicKey, SigAlg};
use p256::elliptic_curve::sec1::ToEncodedPoint;
use rand_core::CryptoRngCore;
use zeroize::Zeroizing;

pub use types::*;

use crate::json::{b64url_decode, b64url_encode, from_slice, to_vec};
use crate::Error;

/// JWE content-encryption algorithms of the profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ContentEnc {
    /// `A128CBC-HS256` (mandatory, §7.5.2).
    A128CbcHs256,
    /// `A256CBC-HS512` (optional).
    A256CbcHs512,
}

impl ContentEnc {
    /// The JOSE `enc` name.
    pub fn name(self) -> &'static str {
        match self {
            ContentEnc::A128CbcHs256 => "A128CBC-HS256",
            ContentEnc::A256CbcHs512 => "A256CBC-HS512",
        }
    }

    /// Parses an `enc` name on the allow-list.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "A128CBC-HS256" => Some(ContentEnc::A128CbcHs256),
            "A256CBC-HS512" => Some(ContentEnc::A256CbcHs512),
            _ => None,
        }
    }

    /// CEK length in bytes (MAC key + encryption key).
    pub fn cek_len(self) -> usize {
        match self {
            ContentEnc::A128CbcHs256 => 32,
            ContentEnc::A256CbcHs512 => 64,
        }
    }

    /// Authentication tag length in bytes.
    pub fn tag_len(self) -> usize {
        match self {
            ContentEnc::A128CbcHs256 => 16,
            ContentEnc::A256CbcHs512 => 32,
        }
    }
}

/// JWE key-management algorithms understood on input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyMgmt {
    /// `ECDH-ES+A128KW` (P-256 recipients).
    EcdhEsA128Kw,
    /// `RSA-OAEP` (RSA recipients; SHA-1/MGF1-SHA-1 per RFC 7518 §4.3).
    RsaOaep,
    /// `RSA1_5`: decrypt only with [`LegacyMode::Allow`]; never emitted.
    Rsa1_5,
}

impl KeyMgmt {
    /// The JOSE `alg` name.
    pub fn name(self) -> &'static str {
        match self {
            KeyMgmt::EcdhEsA128Kw => "ECDH-ES+A128KW",
            KeyMgmt::RsaOaep => "RSA-OAEP",
            KeyMgmt::Rsa1_5 => "RSA1_5",
        }
    }

    /// Parses an `alg` name on the allow-list.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "ECDH-ES+A128KW" => Some(KeyMgmt::EcdhEsA128Kw),
            "RSA-OAEP" => Some(KeyMgmt::RsaOaep),
            "RSA1_5" => Some(KeyMgmt::Rsa1_5),
            _ => None,
        }
    }
}

/// Whether RSA1_5 key transport may be decrypted (a padding-oracle risk; DESIGN.md §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum LegacyMode {
    /// Refuse RSA1_5 recipients (the default).
    #[default]
    Deny,
    /// Decrypt RSA1_5 recipients (a device explicitly configured for legacy peers).
    Allow,
}

/// The JWS algorithms of the OTrP profile: ES256 and RS256.
pub fn jws_alg_allowed(alg: SigAlg) -> bool {
    matches!(alg, SigAlg::P256Sha256 | SigAlg::Rs256)
}

/// One JWS signer: key, algorithm and the identifiers to put in the headers.
#[derive(Debug, Clone)]
pub struct Signer<'a> {
    /// The private key.
    pub key: &'a PrivateKey,
    /// `ES256` or `RS256`.
    pub alg: SigAlg,
    /// `kid`, placed in the protected header.
    pub kid: Option<String>,
    /// `x5c` chain (standard base64 DER, leaf first), placed in the unprotected header
    /// as the draft's templates do.
    pub x5c: Option<Vec<String>>,
}

impl<'a> Signer<'a> {
    /// A signer with the key's default algorithm and no identifiers.
    pub fn new(key: &'a PrivateKey) -> Self {
        Signer {
            key,
            alg: key.default_alg(),
            kid: None,
            x5c: None,
        }
    }

    /// Sets `kid`.
    pub fn with_kid(mut self, kid: impl Into<String>) -> Self {
        self.kid = Some(kid.into());
        self
    }

    /// Sets the `x5c` chain.
    pub fn with_x5c(mut self, chain: Vec<String>) -> Self {
        self.x5c = Some(chain);
        self
    }
}

/// How many signatures a general JWS must carry from the trusted keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum VerifyPolicy {
    /// At least one signature verifies with one of the trusted keys.
    #[default]
    AnyOne,
    /// Every trusted key has a verifying signature (dual control: pass the OEM and
    /// the SP keys).
    AllKeys,
}

/// A signature that verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedSignature {
    /// Index of the signature in the JWS (0 for flattened).
    pub index: usize,
    /// Its algorithm.
    pub alg: SigAlg,
    /// Index of the trusted key that verified it.
    pub key_index: usize,
    /// The decoded protected header.
    pub protected: JoseHeader,
    /// The unprotected header, if any (`x5c`, `kid`, … passed through).
    pub header: Option<JoseHeader>,
}

/// The result of verifying a JWS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedJws {
    /// The decoded payload bytes.
    pub payload: Vec<u8>,
    /// The signatures that verified.
    pub signatures: Vec<VerifiedSignature>,
}

fn protected_header(signer: &Signer<'_>) -> Result<String, Error> {
    if !jws_alg_allowed(signer.alg) {
        return Err(Error::AlgorithmNotAllowed {
            member: String::from("protected"),
            param: "alg",
            value: signer.alg.jose_name().to_string(),
        });
    }
    let header = JoseHeader {
        alg: Some(signer.alg.jose_name().to_string()),
        kid: signer.kid.clone(),
        ..JoseHeader::default()
    };
    Ok(b64url_encode(&to_vec(&header)?))
}

fn unprotected_header(signer: &Signer<'_>) -> Option<JoseHeader> {
    signer.x5c.as_ref().map(|chain| JoseHeader {
        x5c: Some(chain.clone()),
        ..JoseHeader::default()
    })
}

fn sign_input(protected: &str, payload: &str) -> Vec<u8> {
    let mut input = Vec::with_capacity(protected.len() + payload.len() + 1);
    input.extend_from_slice(protected.as_bytes());
    input.push(b'.');
    input.extend_from_slice(payload.as_bytes());
    input
}

/// Signs `payload` as a flattened JWS.
pub fn sign_flattened(
    provider: &dyn CryptoProvider,
    signer: &Signer<'_>,
    payload: &[u8],
) -> Result<JwsFlattened, Error> {
    let payload = b64url_encode(payload);
    let protected = protected_header(signer)?;
    let sig = provider
        .sign(signer.alg, signer.key, &sign_input(&protected, &payload))
        .map_err(Error::crypto)?;
    Ok(JwsFlattened {
        payload,
        protected,
        header: unprotected_header(signer),
        signature: b64url_encode(&sig),
    })
}

/// Signs `payload` as a general JWS with one signature per signer (dual control).
pub fn sign_general(
    provider: &dyn CryptoProvider,
    signers: &[Signer<'_>],
    payload: &[u8],
) -> Result<JwsGeneral, Error> {
    if signers.is_empty() {
        return Err(Error::header(
            "signatures",
            "a general JWS needs at least one signer",
        ));
    }
    let payload = b64url_encode(payload);
    let mut signatures = Vec::with_capacity(signers.len());
    for signer in signers {
        let protected = protected_header(signer)?;
        let sig = provider
            .sign(signer.alg, signer.key, &sign_input(&protected, &payload))
            .map_err(Error::crypto)?;
        signatures.push(JwsSignature {
            protected,
            header: unprotected_header(signer),
            signature: b64url_encode(&sig),
        });
    }
    Ok(JwsGeneral {
        payload,
        signatures,
    })
}

fn check_disjoint(member: &str, a: &JoseHeader, b: Option<&JoseHeader>) -> Result<(), Error> {
    if let Some(b) = b {
        let names = a.names();
        if let Some(dup) = b.names().into_iter().find(|n| names.contains(n)) {
            return Err(Error::header(
                member,
                format!("parameter `{dup}` appears in more than one header"),
            ));
        }
    }
    Ok(())
}

fn check_crit(member: &str, h: &JoseHeader) -> Result<(), Error> {
    match &h.crit {
        Some(names) => Err(Error::CriticalHeader {
            member: member.to_string(),
            names: names.clone(),
        }),
        None => Ok(()),
    }
}

fn decode_protected(member: &str, b64: &str) -> Result<JoseHeader, Error> {
    let bytes = b64url_decode(b64, member)?;
    from_slice(&bytes).map_err(|e| Error::header(member, e.to_string()))
}

fn key_fits(alg: SigAlg, key: &PublicKey) -> bool {
    matches!(
        (alg, key),
        (SigAlg::P256Sha256, PublicKey::P256(_)) | (SigAlg::Rs256, PublicKey::Rsa(_))
    )
}

/// Verifies a JWS (either serialization) against `trusted` keys under `policy`.
///
/// Every signature's headers are checked (allow-list, `crit`, disjointness) even when
/// another signature already verified; a signature that verifies with no trusted key
/// is an error for a flattened JWS and is ignored otherwise, subject to `policy`.
pub fn verify(
    provider: &dyn CryptoProvider,
    jws: &Jws,
    trusted: &[PublicKey],
    policy: VerifyPolicy,
) -> Result<VerifiedJws, Error> {
    let payload_b64 = jws.payload_b64();
    let payload = b64url_decode(payload_b64, "payload")?;
    let sigs = jws.signatures();
    if sigs.is_empty() {
        return Err(Error::BadSignature(String::from(
            "the JWS has no signature",
        )));
    }
    let mut verified = Vec::new();
    for (index, (protected_b64, header, sig_b64)) in sigs.into_iter().enumerate() {
        let member = match jws {
            Jws::Flattened(_) => String::from("protected"),
            Jws::General(_) => format!("signatures[{index}].protected"),
        };
        let protected = decode_protected(&member, protected_b64)?;
        check_crit(&member, &protected)?;
        if let Some(h) = header {
            check_crit(&member.replace("protected", "header"), h)?;
        }
        check_disjoint(&member, &protected, header)?;
        let alg_name = protected
            .alg
            .as_deref()
            .ok_or_else(|| Error::header(&member, "missing `alg`"))?;
        let alg = SigAlg::from_jose(alg_name)
            .filter(|a| jws_alg_allowed(*a))
            .ok_or_else(|| Error::AlgorithmNotAllowed {
                member: member.clone(),
                param: "alg",
                value: alg_name.to_string(),
            })?;
        let sig = b64url_decode(sig_b64, &member.replace("protected", "signature"))?;
        let input = sign_input(protected_b64, payload_b64);
        let key_index = trusted
            .iter()
            .enumerate()
            .filter(|(_, k)| key_fits(alg, k))
            .find(|(_, k)| provider.verify(alg, k, &input, &sig).is_ok())
            .map(|(i, _)| i);
        if let Some(key_index) = key_index {
            verified.push(VerifiedSignature {
                index,
                alg,
                key_index,
                protected,
                header: header.cloned(),
            });
        } else if matches!(jws, Jws::Flattened(_)) {
            return Err(Error::BadSignature(format!(
                "the {alg_name} signature verifies with none of the {} trusted keys",
                trusted.len()
            )));
        }
    }
    match policy {
        VerifyPolicy::AnyOne if verified.is_empty() => Err(Error::BadSignature(String::from(
            "no signature verifies with a trusted key",
        ))),
        VerifyPolicy::AllKeys => {
            if let Some(missing) =
                (0..trusted.len()).find(|i| !verified.iter().any(|v| v.key_index == *i))
            {
                return Err(Error::BadSignature(format!(
                    "trusted key #{missing} has no verifying signature (policy: all keys)"
                )));
            }
            Ok(VerifiedJws {
                payload,
                signatures: verified,
            })
        }
        VerifyPolicy::AnyOne => Ok(VerifiedJws {
            payload,
            signatures: verified,
        }),
    }
}

/// A content-encryption key with its algorithm; zeroized on drop, never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Cek {
    enc: ContentEnc,
    key: Zeroizing<Vec<u8>>,
}

impl Cek {
    /// A fresh random CEK for `enc`.
    pub fn generate(enc: ContentEnc, rng: &mut impl CryptoRngCore) -> Self {
        let mut key = Zeroizing::new(alloc::vec![0u8; enc.cek_len()]);
        rng.fill_bytes(&mut key);
        Cek { enc, key }
    }

    /// Wraps existing key bytes (must be `enc.cek_len()` long).
    pub fn from_bytes(enc: ContentEnc, key: &[u8]) -> Result<Self, Error> {
        if key.len() != enc.cek_len() {
            return Err(Error::Crypto(format!(
                "{} needs a {}-byte CEK, got {}",
                enc.name(),
                enc.cek_len(),
                key.len()
            )));
        }
        Ok(Cek {
            enc,
            key: Zeroizing::new(key.to_vec()),
        })
    }

    /// The content-encryption algorithm.
    pub fn enc(&self) -> ContentEnc {
        self.enc
    }

    /// The key bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.key
    }
}

impl fmt::Debug for Cek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cek")
            .field("enc", &self.enc)
            .finish_non_exhaustive()
    }
}

/// A JWE recipient: its public key (P-256 → ECDH-ES+A128KW, RSA → RSA-OAEP) and an
/// optional `kid` for its per-recipient header.
#[derive(Debug, Clone, Copy)]
pub struct RecipientKey<'a> {
    /// The recipient's public key.
    pub key: &'a PublicKey,
    /// `kid` to put in the recipient header.
    pub kid: Option<&'a str>,
}

impl<'a> RecipientKey<'a> {
    /// A recipient without `kid`.
    pub fn new(key: &'a PublicKey) -> Self {
        RecipientKey { key, kid: None }
    }
}

/// Encrypts `plaintext` to `recipients` with a fresh CEK; returns the JWE and the CEK
/// (the TEE reuses the request's CEK for its response, §9.2.1.2).
pub fn encrypt(
    provider: &dyn CryptoProvider,
    rng: &mut impl CryptoRngCore,
    plaintext: &[u8],
    enc: ContentEnc,
    recipients: &[RecipientKey<'_>],
) -> Result<(JweJson, Cek), Error> {
    let cek = Cek::generate(enc, rng);
    let jwe = encrypt_with_cek(provider, rng, plaintext, &cek, recipients)?;
    Ok((jwe, cek))
}

/// Encrypts `plaintext` under an existing CEK (fresh IV), wrapping it to `recipients`.
pub fn encrypt_with_cek(
    provider: &dyn CryptoProvider,
    rng: &mut impl CryptoRngCore,
    plaintext: &[u8],
    cek: &Cek,
    recipients: &[RecipientKey<'_>],
) -> Result<JweJson, Error> {
    if recipients.is_empty() {
        return Err(Error::header(
            "recipients",
            "a JWE needs at least one recipient",
        ));
    }
    let mut out_recipients = Vec::with_capacity(recipients.len());
    for r in recipients {
        out_recipients.push(wrap_cek(provider, rng, cek, r)?);
    }
    let protected_header = JoseHeader {
        enc: Some(cek.enc.name().to_string()),
        ..JoseHeader::default()
    };
    let protected = b64url_encode(&to_vec(&protected_header)?);
    let mut iv = [0u8; 16];
    rng.fill_bytes(&mut iv);
    let (ciphertext, tag) = primitives::cbc_hmac_encrypt(
        cek.enc,
        cek.as_bytes(),
        &iv,
        protected.as_bytes(),
        plaintext,
    )?;
    Ok(JweJson {
        protected: Some(protected),
        unprotected: None,
        recipients: out_recipients,
        aad: None,
        iv: b64url_encode(&iv),
        ciphertext: b64url_encode(&ciphertext),
        tag: b64url_encode(&tag),
    })
}

fn wrap_cek(
    provider: &dyn CryptoProvider,
    rng: &mut impl CryptoRngCore,
    cek: &Cek,
    r: &RecipientKey<'_>,
) -> Result<JweRecipient, Error> {
    let mut header = JoseHeader {
        kid: r.kid.map(str::to_string),
        ..JoseHeader::default()
    };
    let wrapped = match r.key {
        PublicKey::P256(peer) => {
            let eph = p256::SecretKey::random(rng);
            let z = provider.ecdh_p256(&eph, peer).map_err(Error::crypto)?;
            let mut kek = Zeroizing::new([0u8; 16]);
            primitives::concat_kdf_sha256(
                z.as_ref(),
                KeyMgmt::EcdhEsA128Kw.name(),
                &[],
                &[],
                kek.as_mut(),
            )?;
            let point = eph.public_key().to_encoded_point(false);
            let (Some(x), Some(y)) = (point.x(), point.y()) else {
                return Err(Error::Crypto(String::from("ephemeral key is the identity")));
            };
            header.alg = Some(KeyMgmt::EcdhEsA128Kw.name().to_string());
            header.epk = Some(EcPublicJwk {
                kty: String::from("EC"),
                crv: String::from("P-256"),
                x: b64url_encode(x),
                y: b64url_encode(y),
                extra: Default::default(),
            });
            provider
                .aes_kw_wrap(kek.as_ref(), cek.as_bytes())
                .map_err(Error::crypto)?
        }
        PublicKey::Rsa(pk) => {
            header.alg = Some(KeyMgmt::RsaOaep.name().to_string());
            primitives::rsa_oaep_encrypt(rng, pk, cek.as_bytes())?
        }
        PublicKey::Ed25519(_) => return Err(Error::UnsupportedKey("JWE key management")),
    };
    Ok(JweRecipient {
        header: Some(header),
        encrypted_key: Some(b64url_encode(&wrapped)),
    })
}

/// A decrypted JWE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decrypted {
    /// The plaintext.
    pub plaintext: Vec<u8>,
    /// The CEK (to encrypt the response with, §9.2.1.2).
    pub cek: Cek,
    /// Index of the recipient that was opened.
    pub recipient: usize,
}

struct JweHeaders {
    protected_b64: String,
    enc: ContentEnc,
    aad: Vec<u8>,
}

fn check_jwe_headers(jwe: &JweJson) -> Result<JweHeaders, Error> {
    let protected_b64 = jwe
        .protected
        .clone()
        .ok_or_else(|| Error::header("protected", "a JWE needs a protected header with `enc`"))?;
    let protected = decode_protected("protected", &protected_b64)?;
    check_crit("protected", &protected)?;
    check_disjoint("unprotected", &protected, jwe.unprotected.as_ref())?;
    if let Some(u) = &jwe.unprotected {
        check_crit("unprotected", u)?;
    }
    for (i, r) in jwe.recipients.iter().enumerate() {
        if let Some(h) = &r.header {
            let member = format!("recipients[{i}].header");
            check_crit(&member, h)?;
            check_disjoint(&member, &protected, Some(h))?;
            if let Some(u) = &jwe.unprotected {
                check_disjoint(&member, u, Some(h))?;
            }
        }
    }
    if protected.extra.contains_key("zip") {
        return Err(Error::header(
            "protected",
            "`zip` compression is not supported",
        ));
    }
    let enc_name = protected
        .enc
        .as_deref()
        .ok_or_else(|| Error::header("protected", "missing `enc`"))?;
    let enc = ContentEnc::from_name(enc_name).ok_or_else(|| Error::AlgorithmNotAllowed {
        member: String::from("protected"),
        param: "enc",
        value: enc_name.to_string(),
    })?;
    let mut aad = protected_b64.as_bytes().to_vec();
    if let Some(extra) = &jwe.aad {
        aad.push(b'.');
        aad.extend_from_slice(extra.as_bytes());
    }
    Ok(JweHeaders {
        protected_b64,
        enc,
        aad,
    })
}

fn recipient_alg(jwe: &JweJson, protected: &JoseHeader, i: usize) -> Result<KeyMgmt, Error> {
    let member = format!("recipients[{i}].header");
    let name = jwe
        .recipients
        .get(i)
        .and_then(|r| r.header.as_ref())
        .and_then(|h| h.alg.as_deref())
        .or_else(|| jwe.unprotected.as_ref().and_then(|h| h.alg.as_deref()))
        .or(protected.alg.as_deref())
        .ok_or_else(|| Error::header(&member, "missing `alg`"))?;
    KeyMgmt::from_name(name).ok_or_else(|| Error::AlgorithmNotAllowed {
        member,
        param: "alg",
        value: name.to_string(),
    })
}

/// Decrypts a general JWE with `key` (P-256: ECDH-ES+A128KW recipients; RSA: RSA-OAEP,
/// and RSA1_5 only with [`LegacyMode::Allow`]). `rng` blinds RSA decryption.
pub fn decrypt(
    provider: &dyn CryptoProvider,
    rng: &mut impl CryptoRngCore,
    jwe: &JweJson,
    key: &PrivateKey,
    legacy: LegacyMode,
) -> Result<Decrypted, Error> {
    let headers = check_jwe_headers(jwe)?;
    let protected = decode_protected("protected", &headers.protected_b64)?;
    let mut candidates = Vec::new();
    for i in 0..jwe.recipients.len() {
        let alg = recipient_alg(jwe, &protected, i)?;
        // RSA1_5 matters only to an RSA key; other recipients' choices are theirs.
        if alg == KeyMgmt::Rsa1_5 && legacy == LegacyMode::Deny && matches!(key, PrivateKey::Rsa(_))
        {
            return Err(Error::LegacyRsa15Refused {
                member: format!("recipients[{i}]"),
            });
        }
        let fits = matches!(
            (alg, key),
            (KeyMgmt::EcdhEsA128Kw, PrivateKey::P256(_))
                | (KeyMgmt::RsaOaep | KeyMgmt::Rsa1_5, PrivateKey::Rsa(_))
        );
        if fits {
            candidates.push((i, alg));
        }
    }
    if candidates.is_empty() {
        return Err(Error::NoRecipient(match key {
            PrivateKey::P256(_) => "P-256",
            PrivateKey::Rsa(_) => "RSA",
            PrivateKey::Ed25519(_) => "Ed25519",
        }));
    }
    let iv = b64url_decode(&jwe.iv, "iv")?;
    let ciphertext = b64url_decode(&jwe.ciphertext, "ciphertext")?;
    let tag = b64url_decode(&jwe.tag, "tag")?;
    for (i, alg) in candidates {
        let Some(recipient) = jwe.recipients.get(i) else {
            continue;
        };
        let Ok(cek) = unwrap_cek(
            provider,
            rng,
            jwe,
            &protected,
            recipient,
            alg,
            key,
            headers.enc,
        ) else {
            continue;
        };
        if let Ok(plaintext) = primitives::cbc_hmac_decrypt(
            headers.enc,
            cek.as_bytes(),
            &iv,
            &headers.aad,
            &ciphertext,
            &tag,
        ) {
            return Ok(Decrypted {
                plaintext,
                cek,
                recipient: i,
            });
        }
    }
    Err(Error::Decrypt)
}

/// Decrypts a JWE with an already known CEK (e.g. a TEE response encrypted with the
/// request's CEK); headers are checked as in [`decrypt`].
pub fn decrypt_with_cek(jwe: &JweJson, cek: &Cek) -> Result<Vec<u8>, Error> {
    let headers = check_jwe_headers(jwe)?;
    if headers.enc != cek.enc {
        return Err(Error::AlgorithmNotAllowed {
            member: String::from("protected"),
            param: "enc",
            value: headers.enc.name().to_string(),
        });
    }
    let iv = b64url_decode(&jwe.iv, "iv")?;
    let ciphertext = b64url_decode(&jwe.ciphertext, "ciphertext")?;
    let tag = b64url_decode(&jwe.tag, "tag")?;
    primitives::cbc_hmac_decrypt(
        cek.enc,
        cek.as_bytes(),
        &iv,
        &headers.aad,
        &ciphertext,
        &tag,
    )
}

#[allow(clippy::too_many_arguments)]
fn unwrap_cek(
    provider: &dyn CryptoProvider,
    rng: &mut impl CryptoRngCore,
    jwe: &JweJson,
    protected: &JoseHeader,
    recipient: &JweRecipient,
    alg: KeyMgmt,
    key: &PrivateKey,
    enc: ContentEnc,
) -> Result<Cek, Error> {
    let wrapped = recipient
        .encrypted_key
        .as_deref()
        .map(|k| b64url_decode(k, "encrypted_key"))
        .transpose()?
        .ok_or(Error::Decrypt)?;
    let bytes = match (alg, key) {
        (KeyMgmt::EcdhEsA128Kw, PrivateKey::P256(sk)) => {
            let param = |f: fn(&JoseHeader) -> Option<&str>| {
                recipient
                    .header
                    .as_ref()
                    .and_then(f)
                    .or_else(|| jwe.unprotected.as_ref().and_then(f))
                    .or_else(|| f(protected))
            };
            let epk = recipient
                .header
                .as_ref()
                .and_then(|h| h.epk.as_ref())
                .or_else(|| jwe.unprotected.as_ref().and_then(|h| h.epk.as_ref()))
                .or(protected.epk.as_ref())
                .ok_or_else(|| Error::header("epk", "ECDH-ES needs an `epk`"))?;
            let peer = epk_to_public(epk)?;
            let apu = param(|h| h.apu.as_deref())
                .map(|s| b64url_decode(s, "apu"))
                .transpose()?
                .unwrap_or_default();
            let apv = param(|h| h.apv.as_deref())
                .map(|s| b64url_decode(s, "apv"))
                .transpose()?
                .unwrap_or_default();
            let z = provider.ecdh_p256(sk, &peer).map_err(Error::crypto)?;
            let mut kek = Zeroizing::new([0u8; 16]);
            primitives::concat_kdf_sha256(
                z.as_ref(),
                KeyMgmt::EcdhEsA128Kw.name(),
                &apu,
                &apv,
                kek.as_mut(),
            )?;
            Zeroizing::new(
                provider
                    .aes_kw_unwrap(kek.as_ref(), &wrapped)
                    .map_err(|_| Error::Decrypt)?,
            )
        }
        (KeyMgmt::RsaOaep, PrivateKey::Rsa(sk)) => primitives::rsa_oaep_decrypt(rng, sk, &wrapped)?,
        (KeyMgmt::Rsa1_5, PrivateKey::Rsa(sk)) => {
            primitives::rsa1_5_decrypt(rng, sk, &wrapped, enc.cek_len())
        }
        _ => return Err(Error::Decrypt),
    };
    Cek::from_bytes(enc, &bytes).map_err(|_| Error::Decrypt)
}

fn epk_to_public(epk: &EcPublicJwk) -> Result<p256::PublicKey, Error> {
    if epk.kty != "EC" || epk.crv != "P-256" {
        return Err(Error::header(
            "epk",
            format!(
                "expected an EC P-256 key, got kty `{}` crv `{}`",
                epk.kty, epk.crv
            ),
        ));
    }
    let x = b64url_decode(&epk.x, "epk.x")?;
    let y = b64url_decode(&epk.y, "epk.y")?;
    if x.len() != 32 || y.len() != 32 {
        return Err(Error::header("epk", "P-256 coordinates are 32 bytes"));
    }
    let mut sec1 = Vec::with_capacity(65);
    sec1.push(0x04);
    sec1.extend_from_slice(&x);
    sec1.extend_from_slice(&y);
    p256::PublicKey::from_sec1_bytes(&sec1)
        .map_err(|_| Error::header("epk", "not a point on P-256"))
}
