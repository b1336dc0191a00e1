//! Evidence for the TAM (contract: `notes/attestation.md`): the [`Attester`] trait and
//! [`EatAttester`], which builds the TEEP-profile EAT with `otrp-eat` and signs it as an
//! untagged COSE_Sign1 carrying the `x5chain` header.

use alloc::string::{String, ToString};
use alloc::vec::Vec;

use ciborium::value::Value;
use coset::{CborSerializable, Label};
use otrp_cose::SignOptions;
use otrp_crypto::{CryptoProvider, PrivateKey, PublicKey};
use otrp_eat::signed::EatSignOptions;
use otrp_eat::{Confirmation, ContentFormat, EatClaims, OemId, Profile};
use otrp_suit::ComponentId;

use crate::error::AgentError;

/// COSE header label of `x5chain` (RFC 9360).
pub const X5CHAIN: i64 = 33;
/// Private claim key of the TFW endorsement.
pub const TFW_ENDORSEMENT_CLAIM: i64 = -70001;
/// CoAP content format `application/cbor` (entries of the `manifests` claim).
pub const CONTENT_FORMAT_CBOR: u16 = 60;
/// CoAP content format `application/octet-stream` (the `measurements` entry).
pub const CONTENT_FORMAT_OCTET_STREAM: u16 = 42;

/// One installed manifest, as the Attester reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstalledManifest {
    /// Manifest component id.
    pub manifest_id: ComponentId,
    /// Sequence number.
    pub sequence_number: u64,
    /// Encoded SUIT_Digest of the manifest.
    pub digest: Vec<u8>,
    /// `suit-reference-uri` of the manifest, if it has one.
    pub reference_uri: Option<String>,
}

/// Produces evidence about the device for a nonce.
pub trait Attester {
    /// Signed evidence (for [`EatAttester`]: an untagged COSE_Sign1 EAT) binding `nonce`.
    fn evidence(
        &mut self,
        nonce: &[u8],
        installed: &[InstalledManifest],
    ) -> Result<Vec<u8>, AgentError>;
}

/// The device identity and platform facts that go into the EAT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EatIdentity {
    /// `ueid`.
    pub ueid: Vec<u8>,
    /// `oemid`.
    pub oemid: OemId,
    /// `hwmodel`.
    pub hwmodel: Vec<u8>,
    /// `hwversion` text.
    pub hwversion: String,
    /// SHA-256 of the TEE image (the simulated TFW measurement).
    pub measurement: [u8; 32],
    /// DER certificates `[TEE attestation leaf, TEE intermediate CA]` for `x5chain`.
    pub x5chain: Vec<Vec<u8>>,
    /// The TFW endorsement ([`tfw_endorsement`]), if the platform provides one.
    pub tfw_endorsement: Option<Vec<u8>>,
}

/// Manifest id under which the TEE firmware itself is listed in the `manifests` claim.
pub const TEE_FIRMWARE_ID: &[u8] = b"tee-firmware";

/// The EAT attester of `notes/attestation.md`.
pub struct EatAttester {
    provider: &'static dyn CryptoProvider,
    attestation_key: PrivateKey,
    identity: EatIdentity,
    /// The Agent's TEEP signing key as a COSE_Key (CBOR value), carried whole in `cnf`:
    /// a thumbprint alone cannot authenticate the first QueryResponse (RFC 8747 §3.2).
    agent_cnf: Value,
}

impl EatAttester {
    /// An attester signing with `attestation_key`, binding `agent_key` (the key that signs
    /// the Agent's TEEP messages) through `cnf`.
    pub fn new(
        provider: &'static dyn CryptoProvider,
        attestation_key: PrivateKey,
        identity: EatIdentity,
        agent_key: &PublicKey,
    ) -> Self {
        EatAttester {
            provider,
            agent_cnf: {
                use coset::AsCborValue as _;
                otrp_cose::cose_key_from_public(agent_key)
                    .to_cbor_value()
                    .unwrap_or(Value::Null)
            },
            attestation_key,
            identity,
        }
    }

    /// The claims for `nonce` (before signing).
    pub fn claims(
        &self,
        nonce: &[u8],
        installed: &[InstalledManifest],
    ) -> Result<EatClaims, AgentError> {
        // The TEE's own firmware comes first (the TEEP EAT profile maps "TEE firmware type
        // and version" to `manifests`), so the claim is never empty, as RFC 9711 requires,
        // even on a device with no Trusted Component installed yet.
        let mut manifests = Vec::with_capacity(installed.len() + 1);
        let tee_entry = Value::Array(alloc::vec![
            Value::Text(String::new()),
            Value::Array(alloc::vec![
                Value::Integer((-16).into()),
                Value::Bytes(self.identity.measurement.to_vec()),
            ]),
            Value::Array(alloc::vec![Value::Bytes(TEE_FIRMWARE_ID.to_vec())]),
        ]);
        let mut tee_bytes = Vec::new();
        ciborium::ser::into_writer(&tee_entry, &mut tee_bytes)
            .map_err(|e| AgentError::Encode(e.to_string()))?;
        manifests.push(ContentFormat {
            content_type: CONTENT_FORMAT_CBOR,
            content: Value::Bytes(tee_bytes),
        });
        for m in installed {
            // [reference-uri or "", SUIT_Digest, manifest-component-id]
            let digest: Value = ciborium::de::from_reader(m.digest.as_slice()).map_err(|e| {
                AgentError::Invalid {
                    what: "installed manifest digest",
                    reason: e.to_string(),
                }
            })?;
            let id = Value::Array(
                m.manifest_id
                    .segments()
                    .iter()
                    .map(|s| Value::Bytes(s.clone()))
                    .collect(),
            );
            let entry = Value::Array(alloc::vec![
                Value::Text(m.reference_uri.clone().unwrap_or_default()),
                digest,
                id,
            ]);
            let mut bytes = Vec::new();
            ciborium::ser::into_writer(&entry, &mut bytes)
                .map_err(|e| AgentError::Encode(e.to_string()))?;
            manifests.push(ContentFormat {
                content_type: CONTENT_FORMAT_CBOR,
                content: Value::Bytes(bytes),
            });
        }
        let mut claims = EatClaims::new()
            .with_nonce(nonce.to_vec())
            .with_ueid(self.identity.ueid.clone())
            .with_oemid(self.identity.oemid)
            .with_hwmodel(self.identity.hwmodel.clone())
            .with_hwversion(self.identity.hwversion.clone(), None)
            .with_profile(Profile::Uri(otrp_eat::TEEP_EAT_PROFILE.into()))
            .with_manifests(manifests)
            .with_measurements(alloc::vec![ContentFormat {
                content_type: CONTENT_FORMAT_OCTET_STREAM,
                content: Value::Bytes(self.identity.measurement.to_vec()),
            }])
            .with_cnf(Confirmation::CoseKey(self.agent_cnf.clone()));
        if let Some(e) = &self.identity.tfw_endorsement {
            claims = claims.with_claim(
                Value::Integer(TFW_ENDORSEMENT_CLAIM.into()),
                Value::Bytes(e.clone()),
            );
        }
        Ok(claims)
    }
}

/// Adds an `x5chain` (array of DER certificates) to the unprotected header of an untagged
/// COSE_Sign1 (the header is not covered by the signature).
fn with_x5chain(sign1: &[u8], chain: &[Vec<u8>]) -> Result<Vec<u8>, AgentError> {
    if chain.is_empty() {
        return Ok(sign1.to_vec());
    }
    let mut msg = otrp_cose::parse_sign1(sign1).map_err(|e| AgentError::Encode(e.to_string()))?;
    msg.unprotected.rest.push((
        Label::Int(X5CHAIN),
        Value::Array(chain.iter().map(|c| Value::Bytes(c.clone())).collect()),
    ));
    msg.to_vec().map_err(|e| AgentError::Encode(e.to_string()))
}

impl Attester for EatAttester {
    fn evidence(
        &mut self,
        nonce: &[u8],
        installed: &[InstalledManifest],
    ) -> Result<Vec<u8>, AgentError> {
        let claims = self.claims(nonce, installed)?;
        let signed = otrp_eat::signed::sign(
            self.provider,
            &self.attestation_key,
            &claims,
            &EatSignOptions::default(),
        )
        .map_err(|e| AgentError::Encode(e.to_string()))?;
        with_x5chain(&signed, &self.identity.x5chain)
    }
}

/// The TFW endorsement: an untagged COSE_Sign1 by the TFW key over `ueid || measurement`,
/// with the TFW certificate chain in `x5chain`.
pub fn tfw_endorsement(
    provider: &dyn CryptoProvider,
    tfw_key: &PrivateKey,
    ueid: &[u8],
    measurement: &[u8; 32],
    chain: &[Vec<u8>],
) -> Result<Vec<u8>, AgentError> {
    let mut payload = ueid.to_vec();
    payload.extend_from_slice(measurement);
    let opts = SignOptions {
        tagged: false,
        ..SignOptions::default()
    };
    let signed = otrp_cose::sign1(provider, tfw_key, &payload, false, &opts)
        .map_err(|e| AgentError::Encode(e.to_string()))?;
    with_x5chain(&signed, chain)
}
