//! Authentication (COSE blocks over the SUIT_Digest) and payload decryption, through
//! `otrp-cose` and the `otrp-crypto` provider.

use alloc::string::ToString;
use alloc::vec::Vec;

use otrp_cose::encrypt::Kek;
use otrp_cose::{CoseMessage, SignOptions, SignPolicy};
use otrp_crypto::{CryptoProvider, PrivateKey, PublicKey, SigAlg};

use crate::builder::TaManifestBuilder;
use crate::cbor::Wrapped;
use crate::envelope::{Authentication, Envelope};
use crate::error::{Result, SuitError};
use crate::manifest::Manifest;

/// One authentication block that verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedBlock {
    /// Index of the block in the authentication wrapper (0 = first COSE block).
    pub block_index: usize,
    /// Signature algorithm.
    pub alg: SigAlg,
    /// Index into the trusted keys of the key that verified it.
    pub key_index: usize,
    /// The `kid` of the block (or of its first verified signature), if any.
    pub kid: Option<Vec<u8>>,
}

impl Envelope {
    /// Verifies the envelope: manifest digest, severable members present, and the COSE
    /// authentication blocks against `trusted` keys. The detached COSE payload is the
    /// encoded SUIT_Digest (the contents of the wrapper's first bstr; the Sig_structure
    /// carries it as a bstr, hence "bstr-wrapped" in the draft), external_aad empty. Succeeds when at least one block verifies and
    /// returns every block that did; blocks of other kinds (MAC) or with unknown keys are
    /// skipped.
    pub fn verify(
        &self,
        provider: &dyn CryptoProvider,
        trusted: &[PublicKey],
    ) -> Result<Vec<VerifiedBlock>> {
        self.check_integrity()?;
        let auth = self.authentication.value();
        if auth.blocks.is_empty() {
            return Err(SuitError::Unsigned);
        }
        let payload = auth.digest.bytes().to_vec();
        let mut ok = Vec::new();
        let mut last_err: Option<alloc::string::String> = None;
        for (i, block) in auth.blocks.iter().enumerate() {
            let res: core::result::Result<VerifiedBlock, alloc::string::String> =
                match otrp_cose::peek(block) {
                    Ok(CoseMessage::Sign1(_)) => {
                        otrp_cose::verify_sign1(provider, block, Some(&payload), trusted)
                            .map(|v| VerifiedBlock {
                                block_index: i,
                                alg: v.alg,
                                key_index: v.key_index,
                                kid: v.kid,
                            })
                            .map_err(|e| e.to_string())
                    }
                    Ok(CoseMessage::Sign(_)) => otrp_cose::verify_sign(
                        provider,
                        block,
                        Some(&payload),
                        trusted,
                        SignPolicy::AnyOne,
                    )
                    .map_err(|e| e.to_string())
                    .and_then(|v| {
                        v.signers
                            .into_iter()
                            .next()
                            .map(|s| VerifiedBlock {
                                block_index: i,
                                alg: s.alg,
                                key_index: s.key_index,
                                kid: s.kid,
                            })
                            .ok_or_else(|| "COSE_Sign: no signature verified".to_string())
                    }),
                    Ok(_) => Err("authentication block is not COSE_Sign1 or COSE_Sign".to_string()),
                    Err(e) => Err(e.to_string()),
                };
            match res {
                Ok(v) => ok.push(v),
                Err(e) => last_err = Some(e),
            }
        }
        if ok.is_empty() {
            return Err(SuitError::Authentication {
                reason: last_err.unwrap_or_default(),
            });
        }
        Ok(ok)
    }

    /// Appends a COSE_Sign1 authentication block signed with `key` (detached payload =
    /// the encoded SUIT_Digest, as in [`Envelope::verify`]). The digest is recomputed if it does not match.
    pub fn add_signature(
        &mut self,
        provider: &dyn CryptoProvider,
        key: &PrivateKey,
        opts: &SignOptions,
    ) -> Result<()> {
        let mut auth = self.authentication.value().clone();
        let manifest_bytes = self.manifest.wrapped_bytes();
        if !auth.digest.value().matches(&manifest_bytes)? {
            auth.digest = Wrapped::new(crate::digest::Digest::compute(
                auth.digest.value().alg,
                &manifest_bytes,
            )?)?;
            auth.blocks.clear();
        }
        let block =
            otrp_cose::sign1(provider, key, auth.digest.bytes(), true, opts).map_err(|e| {
                SuitError::Signing {
                    reason: e.to_string(),
                }
            })?;
        auth.blocks.push(block);
        self.authentication = Wrapped::new(auth)?;
        Ok(())
    }

    /// A new envelope around `manifest`, signed with `key` (SHA-256 digest, one
    /// COSE_Sign1 block).
    pub fn sign(
        manifest: Wrapped<Manifest>,
        provider: &dyn CryptoProvider,
        key: &PrivateKey,
        opts: &SignOptions,
    ) -> Result<Envelope> {
        let mut env = Envelope::unsigned(manifest)?;
        env.add_signature(provider, key, opts)?;
        Ok(env)
    }
}

/// Signing options of the compact profile (docs/CONSTRAINED.md): a tagged COSE_Sign1
/// with no `kid`. The kid is optional in COSE and SUIT; the verifier's candidate keys are
/// already determined (the TAM keys and the signers of the device's Security Domains), so
/// [`Envelope::verify`] tries each key of the signature's algorithm, and an envelope no
/// trusted key verifies is refused as with a kid.
pub fn compact_sign_options() -> SignOptions {
    SignOptions {
        kid: otrp_cose::KidMode::None,
        ..SignOptions::default()
    }
}

impl Authentication {
    /// The number of COSE authentication blocks.
    pub fn block_count(&self) -> usize {
        self.blocks.len()
    }
}

impl TaManifestBuilder {
    /// Encrypts `plaintext` to `recipient` (draft-ietf-suit-firmware-encryption) and
    /// makes it the payload: image digest/size of the plaintext, `content` = ciphertext,
    /// `encryption-info` = the COSE_Encrypt, decrypted by the `write` directive.
    pub fn encrypt_payload(
        self,
        provider: &dyn CryptoProvider,
        rng: &mut impl rand_core::CryptoRngCore,
        plaintext: &[u8],
        recipient: otrp_cose::encrypt::Recipient<'_>,
        content: otrp_cose::encrypt::ContentAlg,
    ) -> Result<Self> {
        let (info, ciphertext) =
            otrp_cose::encrypt::encrypt_payload(provider, rng, plaintext, recipient, content)
                .map_err(|e| SuitError::Encryption {
                    reason: e.to_string(),
                })?;
        Ok(self.image_of(plaintext).encrypted_content(ciphertext, info))
    }

    /// Builds the envelope and signs it with `key`.
    pub fn build_signed(
        &self,
        provider: &dyn CryptoProvider,
        key: &PrivateKey,
        opts: &SignOptions,
    ) -> Result<Envelope> {
        let mut env = self.build_unsigned()?;
        env.add_signature(provider, key, opts)?;
        Ok(env)
    }
}

/// Decrypts a payload encrypted per draft-ietf-suit-firmware-encryption:
/// `encryption_info` is the `suit-parameter-encryption-info` bytes, `ciphertext` the
/// `suit-parameter-content` (or fetched) bytes.
pub fn decrypt_payload(
    provider: &dyn CryptoProvider,
    encryption_info: &[u8],
    ciphertext: &[u8],
    kek: Kek<'_>,
) -> Result<Vec<u8>> {
    otrp_cose::encrypt::decrypt_payload(provider, encryption_info, ciphertext, kek).map_err(|e| {
        SuitError::Encryption {
            reason: e.to_string(),
        }
    })
}
