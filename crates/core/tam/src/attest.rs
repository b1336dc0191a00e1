//! Remote attestation on the TAM side (issue #3 item 4, `notes/attestation.md`): the
//! [`Verifier`] trait (so an external verifier can replace ours) and [`EatVerifier`].
//!
//! [`EatVerifier::verify`] checks, in this order, and refuses with a typed
//! [`AttestationError`]:
//! 1. the COSE_Sign1 parses; its signer is found either through the `x5chain` header
//!    (label 33: leaf first, then intermediates), validated with rustls-webpki (through
//!    `otrp_pki::TrustStore`, time passed in, CRLs when the store has them) to a TEE root,
//!    or through the `kid` among TEE attestation keys registered at provisioning;
//! 2. the signature ([`AttestationError::BadSignature`]);
//! 3. the device: the certificate's (or registration's) UEID must be the `ueid` claim
//!    ([`AttestationError::OtherDevice`]); revoked UEIDs are refused;
//! 4. freshness: `eat_nonce` must equal the expected challenge
//!    ([`AttestationError::NonceMismatch`]; one-time use of the challenge itself is the
//!    store's job, see `Tam`);
//! 5. reference values of the device model (`hwmodel`): allowed measurements and hardware
//!    versions;
//! 6. `cnf`: the Agent key (a `kid` thumbprint or a full COSE_Key) is bound into the result.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use ciborium::value::Value;
use otrp_crypto::thumbprint::cose_key_thumbprint;
use otrp_crypto::{CryptoProvider, PublicKey};
use otrp_eat::{Confirmation, EatClaims};
use otrp_pki::{ChainError, TrustStore, Usage};
pub use otrp_store::ArStatus;

/// EAT private claim carrying the TFW endorsement (see `notes/attestation.md`).
pub const TFW_ENDORSEMENT_CLAIM: i64 = -70001;

/// COSE header label of `x5chain` (RFC 9360).
pub const X5CHAIN: i64 = 33;

/// An EAR-shaped attestation result (what the TAM stores per device).
#[derive(Debug, Clone, PartialEq)]
pub struct AttestationResult {
    /// The device's UEID.
    pub ueid: Vec<u8>,
    /// Hardware model (EAT `hwmodel`, UTF-8).
    pub model: String,
    /// TEE / hardware version (EAT `hwversion`).
    pub tee_version: String,
    /// The TEE measurement that was checked.
    pub measurement: Vec<u8>,
    /// RFC 9679 thumbprint of the Agent's TEEP key (`cnf`).
    pub agent_key_kid: [u8; 32],
    /// The Agent key itself when `cnf` carried a COSE_Key.
    pub agent_key: Option<PublicKey>,
    /// When the result stops being reusable (Unix seconds).
    pub expires_at: u64,
    /// EAR status.
    pub status: ArStatus,
}

/// Why evidence was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AttestationError {
    /// Not a COSE_Sign1 / not an EAT claims set.
    #[error("malformed evidence: {0}")]
    Malformed(String),
    /// The `x5chain` does not lead to a trusted TEE root.
    #[error("evidence certificate chain does not lead to a trusted TEE root")]
    WrongRoot,
    /// A certificate of the chain has expired (or is not valid yet).
    #[error("evidence certificate expired or not yet valid: {0}")]
    CertExpired(String),
    /// A certificate of the chain is revoked, or the device is on the revoked list.
    #[error("revoked: {0}")]
    Revoked(String),
    /// The chain was refused for another reason.
    #[error("evidence certificate chain refused: {0}")]
    Chain(String),
    /// Neither an `x5chain` nor a registered key identifies the signer.
    #[error("unknown attester: no x5chain and no registered TEE key with kid {kid}")]
    UnknownAttester {
        /// Hex kid (empty when absent).
        kid: String,
    },
    /// The signature does not verify.
    #[error("evidence signature does not verify")]
    BadSignature,
    /// The evidence names another device than its signer's certificate/registration.
    #[error("evidence of another device: signer is {signer}, claims say {claimed}")]
    OtherDevice {
        /// Hex UEID of the signer.
        signer: String,
        /// Hex UEID in the claims.
        claimed: String,
    },
    /// The trusted firmware's endorsement of the TEE measurement (claim -70001) is absent,
    /// does not chain to a trusted TFW root, names another device or vouches for another
    /// measurement.
    #[error("TFW endorsement refused: {0}")]
    TfwEndorsement(String),
    /// `eat_nonce` is absent.
    #[error("evidence carries no eat_nonce")]
    MissingNonce,
    /// `eat_nonce` is not the challenge of this session (stale or replayed evidence).
    #[error("stale or replayed evidence: eat_nonce is not the challenge of this session")]
    NonceMismatch,
    /// A required claim is absent.
    #[error("evidence lacks claim {0}")]
    MissingClaim(&'static str),
    /// No reference values for the model.
    #[error("no reference values for model {0:?}")]
    UnknownModel(String),
    /// The measurement is not among the model's reference values.
    #[error("unknown measurement {measurement} for model {model:?}")]
    UnknownMeasurement {
        /// Model.
        model: String,
        /// Hex measurement.
        measurement: String,
    },
    /// The hardware version is not allowed for the model.
    #[error("hardware version {version:?} not allowed for model {model:?}")]
    UnknownHwVersion {
        /// Model.
        model: String,
        /// Version.
        version: String,
    },
    /// The Agent key that signed the message is not the one `cnf` binds.
    #[error("cnf mismatch: the message is signed by kid {signer}, the evidence binds {bound}")]
    CnfMismatch {
        /// Hex kid of the message signer.
        signer: String,
        /// Hex kid bound by cnf.
        bound: String,
    },
}

/// A remote-attestation verifier (background-check model): appraises evidence against
/// the expected nonce at time `now` (Unix seconds).
pub trait Verifier: Send + Sync {
    /// Verifies `evidence` and returns the attestation result.
    fn verify(
        &self,
        evidence: &[u8],
        expected_nonce: &[u8],
        now: u64,
    ) -> Result<AttestationResult, AttestationError>;
}

/// Reference values of one device model.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReferenceValues {
    /// Allowed TEE measurements (SHA-256 of the TEE image). Empty: any.
    pub measurements: Vec<Vec<u8>>,
    /// Allowed hardware versions. Empty: any.
    pub hwversions: Vec<String>,
}

/// How many validated TEE certificate chains an [`EatVerifier`] remembers.
pub const CHAIN_CACHE_ENTRIES: usize = 8192;

/// A TEE certificate chain that validated to the verifier's roots: what the evidence
/// check needs from it, and while it holds without validating again.
#[derive(Clone)]
struct ValidatedChain {
    ueid: Vec<u8>,
    key: PublicKey,
    /// Unix seconds, inclusive: the latest notBefore of the leaf and intermediates.
    from: u64,
    /// Unix seconds, exclusive: the earliest of the leaf's and intermediates' notAfter + 1
    /// and the trust store's CRLs' nextUpdate.
    until: u64,
}

/// The built-in verifier for TEEP EAT evidence.
///
/// Validated TEE chains (`x5chain`) are remembered per SHA-256 of their certificates
/// (leaf and intermediates, in order) until the earliest of their certificates' expiry
/// and the next update of the trust store's CRLs; the roots and CRLs of a verifier never
/// change ([`EatVerifier::with_roots`] starts an empty cache). A remembered chain is only
/// the signer's key and UEID: the evidence's signature, nonce, claims, reference values
/// and the revoked list are checked on every call. The cache is per process and keyed by
/// immutable content, so TAM replicas sharing a store need no coordination.
pub struct EatVerifier {
    provider: &'static dyn CryptoProvider,
    roots: Option<TrustStore>,
    chains: Mutex<HashMap<[u8; 32], ValidatedChain>>,
    /// When set, the TFW endorsement (claim -70001) is required and must chain here.
    tfw_roots: Option<TrustStore>,
    /// kid (thumbprint) → (ueid, key).
    registered: HashMap<Vec<u8>, (Vec<u8>, PublicKey)>,
    reference: HashMap<String, ReferenceValues>,
    revoked: HashSet<Vec<u8>>,
    ttl: u64,
}

impl std::fmt::Debug for EatVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EatVerifier")
            .field("roots", &self.roots.as_ref().map(TrustStore::len))
            .field("registered", &self.registered.len())
            .field("models", &self.reference.keys().collect::<Vec<_>>())
            .field("revoked", &self.revoked.len())
            .field("ttl", &self.ttl)
            .finish()
    }
}

fn hexs(b: &[u8]) -> String {
    hex::encode(b)
}

impl EatVerifier {
    /// A verifier whose results stay reusable for `ttl` seconds.
    pub fn new(provider: &'static dyn CryptoProvider, ttl: u64) -> Self {
        EatVerifier {
            provider,
            roots: None,
            chains: Mutex::new(HashMap::new()),
            tfw_roots: None,
            registered: HashMap::new(),
            reference: HashMap::new(),
            revoked: HashSet::new(),
            ttl,
        }
    }

    /// Trust `x5chain`s that lead to these TEE roots (with the store's CRLs, if any).
    pub fn with_roots(mut self, roots: TrustStore) -> Self {
        self.roots = Some(roots);
        self.chains = Mutex::new(HashMap::new());
        self
    }

    /// How many validated TEE chains are remembered now.
    pub fn cached_chains(&self) -> usize {
        self.chains.lock().map(|c| c.len()).unwrap_or(0)
    }

    /// The signer (UEID, key) of a TEE chain at `now`: remembered, or validated with
    /// `roots` and then remembered for as long as the result cannot change.
    fn tee_signer(
        &self,
        roots: &TrustStore,
        leaf: &[u8],
        rest: &[Vec<u8>],
        now: u64,
    ) -> Result<(Vec<u8>, PublicKey), AttestationError> {
        let mut material = Vec::with_capacity(
            leaf.len() + rest.iter().map(Vec::len).sum::<usize>() + 8 * (rest.len() + 1),
        );
        for der in std::iter::once(leaf).chain(rest.iter().map(Vec::as_slice)) {
            material.extend_from_slice(&(der.len() as u64).to_be_bytes());
            material.extend_from_slice(der);
        }
        let digest = self.provider.sha256(&material);
        if let Ok(cache) = self.chains.lock() {
            if let Some(c) = cache
                .get(&digest)
                .filter(|c| c.from <= now && now < c.until)
            {
                return Ok((c.ueid.clone(), c.key.clone()));
            }
        }
        let when = SystemTime::UNIX_EPOCH + Duration::from_secs(now);
        let v = roots
            .verify(leaf, rest, Usage::TeeAttestation, when)
            .map_err(Self::chain_error)?;
        let ueid = v
            .info
            .ueid
            .clone()
            .ok_or_else(|| AttestationError::Chain("TEE certificate carries no ueid".into()))?;
        // While the result holds: every given certificate valid, every CRL current. An
        // intermediate that cannot be read here is not remembered at all.
        let mut window = Some((v.info.not_before, v.info.not_after.saturating_add(1)));
        for der in rest {
            window = match (window, otrp_pki::cert::CertInfo::from_der(der)) {
                (Some((from, until)), Ok(i)) => Some((
                    from.max(i.not_before),
                    until.min(i.not_after.saturating_add(1)),
                )),
                _ => None,
            };
        }
        if let (Some((from, until)), Some(crl)) = (window, roots.crls_current_until()) {
            window = Some((from, until.min(crl)));
        }
        if let (Some((from, until)), Ok(mut cache)) = (window, self.chains.lock()) {
            if from <= now && now < until {
                if cache.len() >= CHAIN_CACHE_ENTRIES {
                    cache.retain(|_, c| c.from <= now && now < c.until);
                    if cache.len() >= CHAIN_CACHE_ENTRIES {
                        cache.clear();
                    }
                }
                cache.insert(
                    digest,
                    ValidatedChain {
                        ueid: ueid.clone(),
                        key: v.public_key.clone(),
                        from,
                        until,
                    },
                );
            }
        }
        Ok((ueid, v.public_key))
    }

    /// Requires the trusted firmware's endorsement of the TEE measurement (EAT claim
    /// -70001: a COSE_Sign1 by the device's TFW key over `ueid || measurement`, its
    /// certificate chain in `x5chain`) and trusts TFW chains that lead to these roots.
    pub fn with_tfw_roots(mut self, roots: TrustStore) -> Self {
        self.tfw_roots = Some(roots);
        self
    }

    /// Checks the TFW endorsement of `measurement` for device `ueid` (see
    /// [`EatVerifier::with_tfw_roots`]).
    fn check_tfw_endorsement(
        &self,
        roots: &TrustStore,
        claims: &EatClaims,
        ueid: &[u8],
        measurement: &[u8],
        now: u64,
    ) -> Result<(), AttestationError> {
        let refuse = |m: &str| AttestationError::TfwEndorsement(m.to_string());
        let endorsement = claims
            .other
            .iter()
            .find(|(k, _)| *k == otrp_eat::Value::Integer(TFW_ENDORSEMENT_CLAIM.into()))
            .and_then(|(_, v)| v.as_bytes())
            .ok_or_else(|| refuse("claim -70001 is absent"))?;
        let msg = otrp_cose::parse_sign1(endorsement).map_err(|e| refuse(&e.to_string()))?;
        let chain = Self::x5chain(&msg)?.ok_or_else(|| refuse("no x5chain"))?;
        let (leaf, rest) = chain.split_first().ok_or_else(|| refuse("empty x5chain"))?;
        let when = SystemTime::UNIX_EPOCH + Duration::from_secs(now);
        let v = roots
            .verify(leaf, rest, Usage::TfwAttestation, when)
            .map_err(|e| refuse(&format!("TFW certificate: {e}")))?;
        if v.info.ueid.as_deref() != Some(ueid) {
            return Err(refuse("the TFW certificate belongs to another device"));
        }
        let verified = otrp_cose::verify_sign1(self.provider, endorsement, None, &[v.public_key])
            .map_err(|e| refuse(&e.to_string()))?;
        let mut expected = ueid.to_vec();
        expected.extend_from_slice(measurement);
        if verified.payload != expected {
            return Err(refuse("it vouches for another device or TEE measurement"));
        }
        Ok(())
    }

    /// Registers a device's TEE attestation key (from provisioning).
    pub fn register_device(&mut self, ueid: &[u8], tee_key: PublicKey) {
        let kid = cose_key_thumbprint(&tee_key, self.provider).to_vec();
        self.registered.insert(kid, (ueid.to_vec(), tee_key));
    }

    /// Sets the reference values of a model.
    pub fn set_reference(&mut self, model: impl Into<String>, values: ReferenceValues) {
        self.reference.insert(model.into(), values);
    }

    /// Replaces the reference values of every model at once (a fresh copy from a store
    /// shared by several TAMs); models absent from `refs` become unknown.
    pub fn replace_references(&mut self, refs: HashMap<String, ReferenceValues>) {
        self.reference = refs;
    }

    /// The reference values of a model, if any.
    pub fn reference(&self, model: &str) -> Option<&ReferenceValues> {
        self.reference.get(model)
    }

    /// Removes the reference values of a model: its evidence is then refused as
    /// [`AttestationError::UnknownModel`]. Returns what was removed.
    pub fn remove_reference(&mut self, model: &str) -> Option<ReferenceValues> {
        self.reference.remove(model)
    }

    /// Puts a UEID on the revoked list.
    pub fn revoke(&mut self, ueid: &[u8]) {
        self.revoked.insert(ueid.to_vec());
    }

    fn chain_error(e: ChainError) -> AttestationError {
        match e {
            ChainError::UnknownIssuer => AttestationError::WrongRoot,
            ChainError::Expired { not_after, now } => {
                AttestationError::CertExpired(format!("notAfter {not_after}, now {now}"))
            }
            ChainError::NotYetValid { not_before, now } => {
                AttestationError::CertExpired(format!("notBefore {not_before}, now {now}"))
            }
            ChainError::Revoked => {
                AttestationError::Revoked("certificate on its issuer's CRL".into())
            }
            other => AttestationError::Chain(other.to_string()),
        }
    }

    fn x5chain(msg: &coset::CoseSign1) -> Result<Option<Vec<Vec<u8>>>, AttestationError> {
        let label = coset::Label::Int(X5CHAIN);
        let found = msg
            .unprotected
            .rest
            .iter()
            .chain(msg.protected.header.rest.iter())
            .find(|(l, _)| *l == label)
            .map(|(_, v)| v);
        match found {
            None => Ok(None),
            Some(Value::Bytes(b)) => Ok(Some(vec![b.clone()])),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| match v {
                    Value::Bytes(b) => Ok(b.clone()),
                    _ => Err(AttestationError::Malformed(
                        "x5chain entry is not a bstr".into(),
                    )),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(_) => Err(AttestationError::Malformed(
                "x5chain is neither a bstr nor an array".into(),
            )),
        }
    }

    fn first_content_bytes(list: &Option<Vec<otrp_eat::ContentFormat>>) -> Option<Vec<u8>> {
        list.as_ref()?.iter().find_map(|c| match &c.content {
            Value::Bytes(b) => Some(b.clone()),
            _ => None,
        })
    }
}

impl Verifier for EatVerifier {
    fn verify(
        &self,
        evidence: &[u8],
        expected_nonce: &[u8],
        now: u64,
    ) -> Result<AttestationResult, AttestationError> {
        let msg = otrp_cose::parse_sign1(evidence)
            .map_err(|e| AttestationError::Malformed(e.to_string()))?;
        let kid = if msg.unprotected.key_id.is_empty() {
            msg.protected.header.key_id.clone()
        } else {
            msg.unprotected.key_id.clone()
        };
        // 1. Who signed: x5chain to a TEE root, else a registered key.
        let (signer_ueid, key) = match (Self::x5chain(&msg)?, &self.roots) {
            (Some(chain), Some(roots)) => {
                let (leaf, rest) = chain
                    .split_first()
                    .ok_or_else(|| AttestationError::Malformed("empty x5chain".into()))?;
                self.tee_signer(roots, leaf, rest, now)?
            }
            _ => {
                let (ueid, key) = self
                    .registered
                    .get(&kid)
                    .ok_or_else(|| AttestationError::UnknownAttester { kid: hexs(&kid) })?;
                (ueid.clone(), key.clone())
            }
        };
        // 2. Signature.
        let verified =
            otrp_eat::signed::verify(self.provider, evidence, &[key]).map_err(|e| match e {
                otrp_eat::SignedEatError::Claims(c) => AttestationError::Malformed(c.to_string()),
                _ => AttestationError::BadSignature,
            })?;
        let claims: EatClaims = verified.claims;
        // 3. Device.
        let ueid = claims
            .ueid
            .clone()
            .ok_or(AttestationError::MissingClaim("ueid"))?;
        if ueid != signer_ueid {
            return Err(AttestationError::OtherDevice {
                signer: hexs(&signer_ueid),
                claimed: hexs(&ueid),
            });
        }
        if self.revoked.contains(&ueid) {
            return Err(AttestationError::Revoked(format!("device {}", hexs(&ueid))));
        }
        // 4. Freshness.
        let nonce = claims.nonce().ok_or(AttestationError::MissingNonce)?;
        if nonce != expected_nonce || expected_nonce.is_empty() {
            return Err(AttestationError::NonceMismatch);
        }
        // 5. Reference values.
        let model_bytes = claims
            .hwmodel
            .clone()
            .ok_or(AttestationError::MissingClaim("hwmodel"))?;
        let model = String::from_utf8_lossy(&model_bytes).into_owned();
        let version = claims
            .hwversion
            .as_ref()
            .map(|v| v.version.clone())
            .ok_or(AttestationError::MissingClaim("hwversion"))?;
        let measurement = Self::first_content_bytes(&claims.measurements).unwrap_or_default();
        let refs = self
            .reference
            .get(&model)
            .ok_or_else(|| AttestationError::UnknownModel(model.clone()))?;
        if !refs.measurements.is_empty() && !refs.measurements.contains(&measurement) {
            return Err(AttestationError::UnknownMeasurement {
                model,
                measurement: hexs(&measurement),
            });
        }
        if !refs.hwversions.is_empty() && !refs.hwversions.contains(&version) {
            return Err(AttestationError::UnknownHwVersion { model, version });
        }
        if let Some(tfw_roots) = &self.tfw_roots {
            self.check_tfw_endorsement(tfw_roots, &claims, &ueid, &measurement, now)?;
        }
        // 6. cnf.
        let (agent_key_kid, agent_key) = match &claims.cnf {
            Some(Confirmation::Kid(k)) => {
                let kid: [u8; 32] = k.as_slice().try_into().map_err(|_| {
                    AttestationError::Malformed("cnf kid is not a 32-byte thumbprint".into())
                })?;
                (kid, None)
            }
            Some(c @ Confirmation::CoseKey(_)) => {
                let ck = c
                    .cose_key()
                    .ok_or(AttestationError::MissingClaim("cnf"))?
                    .map_err(|e| AttestationError::Malformed(e.to_string()))?;
                let pk = otrp_cose::public_from_cose_key(&ck)
                    .map_err(|e| AttestationError::Malformed(e.to_string()))?;
                (cose_key_thumbprint(&pk, self.provider), Some(pk))
            }
            _ => return Err(AttestationError::MissingClaim("cnf")),
        };
        Ok(AttestationResult {
            ueid,
            model,
            tee_version: version,
            measurement,
            agent_key_kid,
            agent_key,
            expires_at: now.saturating_add(self.ttl),
            status: ArStatus::Affirming,
        })
    }
}
