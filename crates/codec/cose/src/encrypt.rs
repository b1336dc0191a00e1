//! SUIT payload encryption (draft-ietf-suit-firmware-encryption §5, §6).
//!
//! `SUIT_Encryption_Info = #6.96(COSE_Encrypt)` with a detached ciphertext; one layer
//! of recipients:
//! * A128KW (-3): the CEK wrapped (RFC 3394) with a pre-shared 16-byte KEK;
//! * ECDH-ES + A128KW (-29): ephemeral-static ECDH on P-256, the KEK derived with
//!   HKDF-SHA-256 over the COSE_KDF_Context
//!   `[-3, [nil,nil,nil], [nil,nil,nil], [128, recipient protected, "SUIT Payload Encryption"]]`.
//!
//! Content: A128GCM (1) with `Enc_structure ["Encrypt", protected, h'']` as AAD and a
//! 12-byte IV; A128CTR (-65534) with an empty protected header and a 16-byte IV (the
//! SUIT image digest protects integrity, §7).

use alloc::vec::Vec;

use coset::cbor::Value;
use coset::iana;
use coset::{
    AsCborValue, CborSerializable, CoseEncrypt, CoseKdfContextBuilder, CoseRecipient,
    EncryptionContext, Header, HeaderBuilder, ProtectedHeader, SuppPubInfo,
};
use otrp_crypto::{CryptoProvider, PublicKey};
use rand_core::CryptoRngCore;

use crate::cbor::{
    alg_id, alg_label, check_crit, precheck_crit, read_value, rest_param, write_value,
};
use crate::key::{cose_key_from_public, public_from_cose_key};
use crate::CoseError;

/// CBOR tag of COSE_Encrypt (`SUIT_Encryption_Info`).
pub const TAG_ENCRYPT: u64 = 96;
/// `SuppPubInfo.other` for SUIT payloads.
pub const SUIT_PAYLOAD_ENCRYPTION: &[u8] = b"SUIT Payload Encryption";
/// COSE id of A128CTR.
pub const ALG_A128CTR: i64 = -65534;
/// COSE id of A128GCM.
pub const ALG_A128GCM: i64 = 1;
/// COSE id of A128KW.
pub const ALG_A128KW: i64 = -3;
/// COSE id of ECDH-ES + A128KW.
pub const ALG_ECDH_ES_A128KW: i64 = -29;

const LABEL_EPHEMERAL_KEY: i64 = -1;

/// The key that opens a recipient.
#[derive(Debug, Clone, Copy)]
pub enum Kek<'a> {
    /// A pre-shared AES key (A128KW recipients; 16 bytes).
    Aes(&'a [u8]),
    /// The recipient's static P-256 private key (ECDH-ES + A128KW recipients).
    EcdhEs {
        /// The private key.
        recipient_private: &'a otrp_crypto::p256::SecretKey,
    },
}

/// Whom to encrypt to.
#[derive(Debug, Clone)]
pub enum Recipient<'a> {
    /// A128KW with a pre-shared 16-byte KEK.
    Aes {
        /// The KEK.
        kek: &'a [u8],
        /// Optional kid for the recipient's unprotected header.
        kid: Option<Vec<u8>>,
    },
    /// ECDH-ES + A128KW to a static P-256 public key.
    EcdhEs {
        /// The recipient's public key.
        recipient_public: &'a otrp_crypto::p256::PublicKey,
        /// Optional kid for the recipient's unprotected header.
        kid: Option<Vec<u8>>,
    },
}

/// Content encryption algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ContentAlg {
    /// AES-128-GCM (COSE 1).
    A128Gcm,
    /// AES-128-CTR (COSE -65534), no integrity of its own.
    A128Ctr,
}

impl ContentAlg {
    /// COSE algorithm id.
    pub fn cose_id(self) -> i64 {
        match self {
            ContentAlg::A128Gcm => ALG_A128GCM,
            ContentAlg::A128Ctr => ALG_A128CTR,
        }
    }
}

fn header_alg(
    what: &'static str,
    protected: &Header,
    unprotected: &Header,
) -> Result<i64, CoseError> {
    let alg = protected
        .alg
        .as_ref()
        .or(unprotected.alg.as_ref())
        .ok_or(CoseError::MissingAlgorithm { what })?;
    alg_id(alg).map_err(|alg| CoseError::UnsupportedAlgorithm { what, alg })
}

/// The KEK for an ECDH-ES + A128KW recipient (RFC 9053 §6.4, suit-firmware-encryption §5.2).
fn ecdh_es_kek(
    provider: &dyn CryptoProvider,
    private: &otrp_crypto::p256::SecretKey,
    peer: &otrp_crypto::p256::PublicKey,
    recipient_protected: &ProtectedHeader,
) -> Result<zeroize::Zeroizing<[u8; 16]>, CoseError> {
    let z = provider
        .ecdh_p256(private, peer)
        .map_err(CoseError::crypto("ECDH-ES key agreement"))?;
    let context = CoseKdfContextBuilder::new()
        .algorithm(iana::Algorithm::A128KW)
        .supp_pub_info(SuppPubInfo {
            key_data_length: 128,
            protected: recipient_protected.clone(),
            other: Some(SUIT_PAYLOAD_ENCRYPTION.to_vec()),
        })
        .build()
        .to_vec()
        .map_err(|_| CoseError::Encode {
            what: "COSE_KDF_Context",
        })?;
    let mut kek = zeroize::Zeroizing::new([0u8; 16]);
    provider
        .hkdf_sha256(b"", z.as_slice(), &context, kek.as_mut_slice())
        .map_err(CoseError::crypto("HKDF-SHA-256 KEK derivation"))?;
    Ok(kek)
}

fn ephemeral_key(recipient: &CoseRecipient) -> Result<otrp_crypto::p256::PublicKey, CoseError> {
    const WHAT: &str = "COSE_Encrypt recipient ephemeral key (-1)";
    let value = rest_param(&recipient.unprotected, LABEL_EPHEMERAL_KEY)
        .or_else(|| rest_param(&recipient.protected.header, LABEL_EPHEMERAL_KEY))
        .ok_or_else(|| CoseError::structure(WHAT, "missing"))?;
    let key = coset::CoseKey::from_cbor_value(value.clone()).map_err(CoseError::coset(WHAT))?;
    match public_from_cose_key(&key)? {
        PublicKey::P256(k) => Ok(k),
        other => Err(CoseError::structure(
            WHAT,
            alloc::format!("{} key, expected EC2 P-256", other.key_type()),
        )),
    }
}

/// Parses `SUIT_Encryption_Info` (COSE_Encrypt, tag 96 optional), checking critical headers.
pub fn parse_encryption_info(bytes: &[u8]) -> Result<CoseEncrypt, CoseError> {
    const WHAT: &str = "COSE_Encrypt";
    let value = match read_value(WHAT, bytes)? {
        Value::Tag(TAG_ENCRYPT, inner) => *inner,
        Value::Tag(found, _) => {
            return Err(CoseError::UnexpectedTag {
                what: WHAT,
                expected: TAG_ENCRYPT,
                found,
            })
        }
        v => v,
    };
    if let Value::Array(items) = &value {
        if let Some(p) = items.first() {
            precheck_crit("COSE_Encrypt protected header", p)?;
        }
        if let Some(Value::Array(rs)) = items.get(3) {
            for r in rs {
                if let Some(p) = r.as_array().and_then(|a| a.first()) {
                    precheck_crit("COSE_recipient protected header", p)?;
                }
            }
        }
    }
    let msg = CoseEncrypt::from_cbor_value(value).map_err(CoseError::coset(WHAT))?;
    check_crit("COSE_Encrypt protected header", &msg.protected.header)?;
    check_crit("COSE_Encrypt unprotected header", &msg.unprotected)?;
    for r in &msg.recipients {
        check_crit("COSE_recipient protected header", &r.protected.header)?;
        check_crit("COSE_recipient unprotected header", &r.unprotected)?;
    }
    Ok(msg)
}

/// Decrypts a SUIT payload: `encryption_info` is the `SUIT_Encryption_Info` bytes (the
/// bstr content of `suit-parameter-encryption-info`), `ciphertext` the detached
/// ciphertext (e.g. `suit-parameter-content`). If the COSE_Encrypt carries its own
/// ciphertext, pass an empty `ciphertext` to use it.
///
/// Every recipient whose algorithm fits `kek` is tried in order; the first that unwraps
/// gives the CEK.
pub fn decrypt_payload(
    provider: &dyn CryptoProvider,
    encryption_info: &[u8],
    ciphertext: &[u8],
    kek: Kek<'_>,
) -> Result<Vec<u8>, CoseError> {
    let msg = parse_encryption_info(encryption_info)?;
    let ciphertext = match (&msg.ciphertext, ciphertext.is_empty()) {
        (Some(attached), true) => attached.as_slice(),
        (Some(_), false) => {
            return Err(CoseError::PayloadConflict {
                what: "COSE_Encrypt",
            })
        }
        (None, _) => ciphertext,
    };
    let content_alg = header_alg(
        "COSE_Encrypt headers",
        &msg.protected.header,
        &msg.unprotected,
    )?;

    let mut tried = 0usize;
    let mut last_error = None;
    let mut cek = None;
    for r in &msg.recipients {
        let alg = header_alg(
            "COSE_recipient headers",
            &r.protected.header,
            &r.unprotected,
        )?;
        let wrapped = r.ciphertext.as_deref().unwrap_or_default();
        let unwrapped = match (alg, kek) {
            (ALG_A128KW, Kek::Aes(k)) => {
                tried += 1;
                provider
                    .aes_kw_unwrap(k, wrapped)
                    .map_err(CoseError::crypto("A128KW key unwrap"))
            }
            (ALG_ECDH_ES_A128KW, Kek::EcdhEs { recipient_private }) => {
                tried += 1;
                ephemeral_key(r)
                    .and_then(|peer| ecdh_es_kek(provider, recipient_private, &peer, &r.protected))
                    .and_then(|derived| {
                        provider
                            .aes_kw_unwrap(derived.as_slice(), wrapped)
                            .map_err(CoseError::crypto("ECDH-ES+A128KW key unwrap"))
                    })
            }
            _ => continue,
        };
        match unwrapped {
            Ok(k) => {
                cek = Some(zeroize::Zeroizing::new(k));
                break;
            }
            Err(e) => last_error = Some(e),
        }
    }
    let cek = match (cek, last_error) {
        (Some(c), _) => c,
        (None, Some(e)) => return Err(e),
        (None, None) => return Err(CoseError::NoRecipient { tried }),
    };
    if cek.len() != 16 {
        return Err(CoseError::structure(
            "COSE_Encrypt CEK",
            alloc::format!("{} bytes, A128 content algorithms need 16", cek.len()),
        ));
    }

    let iv = if msg.unprotected.iv.is_empty() {
        msg.protected.header.iv.as_slice()
    } else {
        msg.unprotected.iv.as_slice()
    };
    match content_alg {
        ALG_A128GCM => {
            if iv.len() != 12 {
                return Err(CoseError::BadIv {
                    what: "A128GCM",
                    expected: 12,
                    found: iv.len(),
                });
            }
            let aad = coset::enc_structure_data(
                EncryptionContext::CoseEncrypt,
                msg.protected.clone(),
                b"",
            );
            provider
                .aes_gcm_open(&cek, iv, &aad, ciphertext)
                .map_err(CoseError::crypto("A128GCM content decryption"))
        }
        ALG_A128CTR => {
            if !msg.protected.is_empty() {
                return Err(CoseError::structure(
                    "COSE_Encrypt protected header",
                    "must be empty for A128CTR (suit-firmware-encryption §6.2)",
                ));
            }
            let iv: &[u8; 16] = iv.try_into().map_err(|_| CoseError::BadIv {
                what: "A128CTR",
                expected: 16,
                found: iv.len(),
            })?;
            let mut out = ciphertext.to_vec();
            provider
                .aes_ctr_apply(&cek, iv, &mut out)
                .map_err(CoseError::crypto("A128CTR content decryption"))?;
            Ok(out)
        }
        other => Err(CoseError::UnsupportedAlgorithm {
            what: "COSE_Encrypt content",
            alg: alloc::format!("{other}"),
        }),
    }
}

/// Encrypts a SUIT payload to one recipient; returns the tagged `SUIT_Encryption_Info`
/// (COSE_Encrypt with a `nil` payload) and the detached ciphertext.
pub fn encrypt_payload(
    provider: &dyn CryptoProvider,
    rng: &mut impl CryptoRngCore,
    plaintext: &[u8],
    recipient: Recipient<'_>,
    content: ContentAlg,
) -> Result<(Vec<u8>, Vec<u8>), CoseError> {
    let mut cek = zeroize::Zeroizing::new([0u8; 16]);
    rng.fill_bytes(cek.as_mut_slice());

    // recipient layer
    let cose_recipient = match recipient {
        Recipient::Aes { kek, kid } => {
            let wrapped = provider
                .aes_kw_wrap(kek, cek.as_slice())
                .map_err(CoseError::crypto("A128KW key wrap"))?;
            let mut unprotected = HeaderBuilder::new().build();
            unprotected.alg = Some(alg_label(ALG_A128KW));
            if let Some(kid) = kid {
                unprotected.key_id = kid;
            }
            CoseRecipient {
                unprotected,
                ciphertext: Some(wrapped),
                ..Default::default()
            }
        }
        Recipient::EcdhEs {
            recipient_public,
            kid,
        } => {
            let ephemeral = otrp_crypto::p256::SecretKey::random(rng);
            let protected = ProtectedHeader {
                original_data: None,
                header: Header {
                    alg: Some(alg_label(ALG_ECDH_ES_A128KW)),
                    ..Default::default()
                },
            };
            let kek = ecdh_es_kek(provider, &ephemeral, recipient_public, &protected)?;
            let wrapped = provider
                .aes_kw_wrap(kek.as_slice(), cek.as_slice())
                .map_err(CoseError::crypto("ECDH-ES+A128KW key wrap"))?;
            let epk = cose_key_from_public(&PublicKey::P256(ephemeral.public_key()))
                .to_cbor_value()
                .map_err(CoseError::coset("ephemeral COSE_Key"))?;
            let mut builder = HeaderBuilder::new().value(LABEL_EPHEMERAL_KEY, epk);
            if let Some(kid) = kid {
                builder = builder.key_id(kid);
            }
            CoseRecipient {
                protected,
                unprotected: builder.build(),
                ciphertext: Some(wrapped),
                ..Default::default()
            }
        }
    };

    // content layer
    let (protected, unprotected, ciphertext) = match content {
        ContentAlg::A128Gcm => {
            let mut iv = [0u8; 12];
            rng.fill_bytes(&mut iv);
            let protected = ProtectedHeader {
                original_data: None,
                header: Header {
                    alg: Some(alg_label(ALG_A128GCM)),
                    ..Default::default()
                },
            };
            let aad =
                coset::enc_structure_data(EncryptionContext::CoseEncrypt, protected.clone(), b"");
            let ct = provider
                .aes_gcm_seal(cek.as_slice(), &iv, &aad, plaintext)
                .map_err(CoseError::crypto("A128GCM content encryption"))?;
            (protected, HeaderBuilder::new().iv(iv.to_vec()).build(), ct)
        }
        ContentAlg::A128Ctr => {
            let mut iv = [0u8; 16];
            rng.fill_bytes(&mut iv);
            let mut ct = plaintext.to_vec();
            provider
                .aes_ctr_apply(cek.as_slice(), &iv, &mut ct)
                .map_err(CoseError::crypto("A128CTR content encryption"))?;
            let mut unprotected = HeaderBuilder::new().iv(iv.to_vec()).build();
            unprotected.alg = Some(alg_label(ALG_A128CTR));
            (ProtectedHeader::default(), unprotected, ct)
        }
    };
    let msg = CoseEncrypt {
        protected,
        unprotected,
        ciphertext: None,
        recipients: alloc::vec![cose_recipient],
    };
    let value = msg
        .to_cbor_value()
        .map_err(CoseError::coset("COSE_Encrypt"))?;
    let info = write_value(
        "COSE_Encrypt",
        &Value::Tag(TAG_ENCRYPT, alloc::boxed::Box::new(value)),
    )?;
    Ok((info, ciphertext))
}
