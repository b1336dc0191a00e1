//! Value types shared by the TEEP messages: cipher suites, SUIT COSE profiles, error codes,
//! data-item-requested bits, freshness mechanisms, component identifiers, tc-list entries.

use alloc::borrow::Cow;
use alloc::vec::Vec;
use core::ops::{BitOr, BitOrAssign};
use otrp_cbor::CborError;

use ciborium::value::Value;

use crate::cbor::{self, KeyOrder};
use crate::error::TeepError;
use crate::label;

/// TEEP message type numbers (ED §3, CDDL `TEEP-TYPE-*`).
///
/// Kept in one place on purpose: the published examples and the editor's copy use
/// success = 5 and error = 6, while the IANA registry created for RFC-to-be -26 lists
/// 4 and 5. Change these constants (only) when the RFC settles it.
pub mod msg_type {
    /// `TEEP-TYPE-query-request`.
    pub const QUERY_REQUEST: u64 = 1;
    /// `TEEP-TYPE-query-response`.
    pub const QUERY_RESPONSE: u64 = 2;
    /// `TEEP-TYPE-update`.
    pub const UPDATE: u64 = 3;
    /// `TEEP-TYPE-success` (5 in the draft's CDDL and examples).
    pub const SUCCESS: u64 = 5;
    /// `TEEP-TYPE-error` (6 in the draft's CDDL and examples).
    pub const ERROR: u64 = 6;
}

/// The `data-item-requested` bit set of a QueryRequest (`uint .bits data-item-requested`).
/// Unknown bits are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct DataItemRequested(pub u64);

impl DataItemRequested {
    /// No item requested.
    pub const NONE: DataItemRequested = DataItemRequested(0);
    /// Bit 0: attestation.
    pub const ATTESTATION: DataItemRequested = DataItemRequested(1);
    /// Bit 1: trusted-components.
    pub const TRUSTED_COMPONENTS: DataItemRequested = DataItemRequested(2);
    /// Bit 2: extensions.
    pub const EXTENSIONS: DataItemRequested = DataItemRequested(4);
    /// Bit 3: suit-reports.
    pub const SUIT_REPORTS: DataItemRequested = DataItemRequested(8);

    /// Raw bits.
    pub const fn bits(self) -> u64 {
        self.0
    }

    /// True when every bit of `other` is set in `self`.
    pub const fn contains(self, other: DataItemRequested) -> bool {
        self.0 & other.0 == other.0
    }

    /// True when no bit is set.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl BitOr for DataItemRequested {
    type Output = DataItemRequested;
    fn bitor(self, rhs: Self) -> Self {
        DataItemRequested(self.0 | rhs.0)
    }
}

impl BitOrAssign for DataItemRequested {
    fn bitor_assign(&mut self, rhs: Self) {
        self.0 |= rhs.0;
    }
}

/// A freshness mechanism (`$freshness-mechanism`, ED §9). Unknown values are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FreshnessMechanism(pub u64);

impl FreshnessMechanism {
    /// `FRESHNESS_NONCE` (mandatory to implement).
    pub const NONCE: FreshnessMechanism = FreshnessMechanism(0);
    /// `FRESHNESS_TIMESTAMP`.
    pub const TIMESTAMP: FreshnessMechanism = FreshnessMechanism(1);
}

/// `err-code-values` (ED §4.6). Value 0 is reserved and never decoded or encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrCode {
    /// 1 `ERR_PERMANENT_ERROR`.
    PermanentError,
    /// 2 `ERR_UNSUPPORTED_EXTENSION`.
    UnsupportedExtension,
    /// 3 `ERR_UNSUPPORTED_FRESHNESS_MECHANISMS`.
    UnsupportedFreshnessMechanisms,
    /// 4 `ERR_UNSUPPORTED_MSG_VERSION`.
    UnsupportedMsgVersion,
    /// 5 `ERR_UNSUPPORTED_CIPHER_SUITES`.
    UnsupportedCipherSuites,
    /// 6 `ERR_BAD_CERTIFICATE`.
    BadCertificate,
    /// 7 `ERR_ATTESTATION_REQUIRED`.
    AttestationRequired,
    /// 8 `ERR_UNSUPPORTED_SUIT_REPORT`.
    UnsupportedSuitReport,
    /// 9 `ERR_CERTIFICATE_EXPIRED`.
    CertificateExpired,
    /// 10 `ERR_TEMPORARY_ERROR`.
    TemporaryError,
    /// 17 `ERR_MANIFEST_PROCESSING_FAILED`.
    ManifestProcessingFailed,
    /// Any other non-zero code (handled gracefully, ED §4.6).
    Unknown(u64),
}

impl ErrCode {
    /// Maps a wire value to the code (known values never land in `Unknown`).
    pub const fn from_u64(v: u64) -> ErrCode {
        match v {
            1 => ErrCode::PermanentError,
            2 => ErrCode::UnsupportedExtension,
            3 => ErrCode::UnsupportedFreshnessMechanisms,
            4 => ErrCode::UnsupportedMsgVersion,
            5 => ErrCode::UnsupportedCipherSuites,
            6 => ErrCode::BadCertificate,
            7 => ErrCode::AttestationRequired,
            8 => ErrCode::UnsupportedSuitReport,
            9 => ErrCode::CertificateExpired,
            10 => ErrCode::TemporaryError,
            17 => ErrCode::ManifestProcessingFailed,
            other => ErrCode::Unknown(other),
        }
    }

    /// The wire value.
    pub const fn to_u64(self) -> u64 {
        match self {
            ErrCode::PermanentError => 1,
            ErrCode::UnsupportedExtension => 2,
            ErrCode::UnsupportedFreshnessMechanisms => 3,
            ErrCode::UnsupportedMsgVersion => 4,
            ErrCode::UnsupportedCipherSuites => 5,
            ErrCode::BadCertificate => 6,
            ErrCode::AttestationRequired => 7,
            ErrCode::UnsupportedSuitReport => 8,
            ErrCode::CertificateExpired => 9,
            ErrCode::TemporaryError => 10,
            ErrCode::ManifestProcessingFailed => 17,
            ErrCode::Unknown(v) => v,
        }
    }

    pub(crate) fn decode(v: &Value, path: &str) -> Result<ErrCode, TeepError> {
        match cbor::as_u64(v, path)? {
            0 => Err(TeepError::InvalidValue {
                path: path.into(),
                reason: "err-code 0 is reserved and MUST NOT be used",
            }),
            x => Ok(ErrCode::from_u64(x)),
        }
    }

    pub(crate) fn encode(self, path: &str) -> Result<Value, TeepError> {
        match self.to_u64() {
            0 => Err(TeepError::InvalidValue {
                path: path.into(),
                reason: "err-code 0 is reserved and MUST NOT be used",
            }),
            x => Ok(cbor::uint(x)),
        }
    }
}

/// COSE structure numbers used in cipher-suite operations (CoAP Content-Format / CBOR tag).
pub mod cose_type {
    /// `cose-sign1`.
    pub const SIGN1: u64 = 18;
    /// COSE_Sign.
    pub const SIGN: u64 = 98;
}

/// COSE algorithm identifiers of both generations.
pub mod cose_alg {
    /// ESP256 (ED and later).
    pub const ESP256: i64 = -9;
    /// Ed25519 (ED and later).
    pub const ED25519: i64 = -19;
    /// ES256 (draft -21 and earlier).
    pub const ES256: i64 = -7;
    /// EdDSA (draft -21 and earlier).
    pub const EDDSA: i64 = -8;
}

/// One operation of a cipher suite: `[cose-type, cose-alg]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CipherOperation {
    /// COSE structure (18 = COSE_Sign1).
    pub cose_type: u64,
    /// COSE algorithm id.
    pub alg: i64,
}

impl CipherOperation {
    /// `teep-operation-sign1-esp256` = `[18, -9]`.
    pub const SIGN1_ESP256: CipherOperation = CipherOperation {
        cose_type: cose_type::SIGN1,
        alg: cose_alg::ESP256,
    };
    /// `teep-operation-sign1-ed25519` = `[18, -19]`.
    pub const SIGN1_ED25519: CipherOperation = CipherOperation {
        cose_type: cose_type::SIGN1,
        alg: cose_alg::ED25519,
    };
    /// -21 `teep-operation-sign1-es256` = `[18, -7]`.
    pub const SIGN1_ES256: CipherOperation = CipherOperation {
        cose_type: cose_type::SIGN1,
        alg: cose_alg::ES256,
    };
    /// -21 `teep-operation-sign1-eddsa` = `[18, -8]`.
    pub const SIGN1_EDDSA: CipherOperation = CipherOperation {
        cose_type: cose_type::SIGN1,
        alg: cose_alg::EDDSA,
    };
}

/// A TEEP cipher suite (`$teep-cipher-suite`): an ordered list of operations.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TeepCipherSuite(pub Cow<'static, [CipherOperation]>);

impl TeepCipherSuite {
    /// `teep-cipher-suite-sign1-esp256` = `[[18, -9]]`.
    pub const SIGN1_ESP256: TeepCipherSuite =
        TeepCipherSuite(Cow::Borrowed(&[CipherOperation::SIGN1_ESP256]));
    /// `teep-cipher-suite-sign1-ed25519` = `[[18, -19]]`.
    pub const SIGN1_ED25519: TeepCipherSuite =
        TeepCipherSuite(Cow::Borrowed(&[CipherOperation::SIGN1_ED25519]));
    /// -21 `teep-cipher-suite-sign1-es256` = `[[18, -7]]`.
    pub const SIGN1_ES256: TeepCipherSuite =
        TeepCipherSuite(Cow::Borrowed(&[CipherOperation::SIGN1_ES256]));
    /// -21 `teep-cipher-suite-sign1-eddsa` = `[[18, -8]]`.
    pub const SIGN1_EDDSA: TeepCipherSuite =
        TeepCipherSuite(Cow::Borrowed(&[CipherOperation::SIGN1_EDDSA]));

    /// A suite from a list of operations.
    pub fn from_ops(ops: Vec<CipherOperation>) -> Self {
        TeepCipherSuite(Cow::Owned(ops))
    }

    /// The operations.
    pub fn ops(&self) -> &[CipherOperation] {
        &self.0
    }

    /// The algorithm when the suite is a single COSE_Sign1 operation (all suites the draft
    /// defines are).
    pub fn sign1_alg(&self) -> Option<i64> {
        match self.ops() {
            [op] if op.cose_type == cose_type::SIGN1 => Some(op.alg),
            _ => None,
        }
    }

    pub(crate) fn decode(v: &Value, path: &str) -> Result<Self, TeepError> {
        let ops = cbor::as_nonempty_array(v, path)?;
        let mut out = Vec::with_capacity(ops.len());
        for (i, op) in ops.iter().enumerate() {
            let p = cbor::idx(path, i);
            let pair = cbor::as_array(op, &p)?;
            match pair {
                [t, a] => out.push(CipherOperation {
                    cose_type: cbor::as_u64(t, &cbor::idx(&p, 0))?,
                    alg: cbor::as_i64(a, &cbor::idx(&p, 1))?,
                }),
                _ => {
                    return Err(TeepError::Cbor(CborError::WrongType {
                        path: p,
                        expected: "[cose-type, cose-alg]",
                    }))
                }
            }
        }
        Ok(TeepCipherSuite(Cow::Owned(out)))
    }

    pub(crate) fn encode(&self, path: &str) -> Result<Value, TeepError> {
        if self.0.is_empty() {
            return Err(TeepError::Cbor(CborError::EmptyArray { path: path.into() }));
        }
        Ok(Value::Array(
            self.0
                .iter()
                .map(|op| Value::Array(alloc::vec![cbor::uint(op.cose_type), cbor::int(op.alg)]))
                .collect(),
        ))
    }
}

/// A SUIT COSE profile (`$suit-cose-profile`, draft-ietf-suit-mti):
/// `[digest, auth, key-exchange, encryption]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SuitCoseProfile {
    /// Digest algorithm (-16 = SHA-256).
    pub digest: i64,
    /// Authentication algorithm.
    pub auth: i64,
    /// Key exchange algorithm.
    pub key_exchange: i64,
    /// Content encryption algorithm.
    pub encryption: i64,
}

impl SuitCoseProfile {
    const fn new(digest: i64, auth: i64, key_exchange: i64, encryption: i64) -> Self {
        SuitCoseProfile {
            digest,
            auth,
            key_exchange,
            encryption,
        }
    }
    /// `suit-sha256-esp256-ecdh-a128ctr` = `[-16, -9, -29, -65534]`.
    pub const SHA256_ESP256_ECDH_A128CTR: Self = Self::new(-16, -9, -29, -65534);
    /// `suit-sha256-ed25519-ecdh-a128ctr` = `[-16, -19, -29, -65534]`.
    pub const SHA256_ED25519_ECDH_A128CTR: Self = Self::new(-16, -19, -29, -65534);
    /// `suit-sha256-esp256-ecdh-a128gcm` = `[-16, -9, -29, 1]`.
    pub const SHA256_ESP256_ECDH_A128GCM: Self = Self::new(-16, -9, -29, 1);
    /// `suit-sha256-ed25519-ecdh-chacha-poly` = `[-16, -19, -29, 24]`.
    pub const SHA256_ED25519_ECDH_CHACHA_POLY: Self = Self::new(-16, -19, -29, 24);
    /// -21 `suit-sha256-es256-ecdh-a128ctr` = `[-16, -7, -29, -65534]`.
    pub const SHA256_ES256_ECDH_A128CTR: Self = Self::new(-16, -7, -29, -65534);
    /// -21 `suit-sha256-eddsa-ecdh-a128ctr` = `[-16, -8, -29, -65534]`.
    pub const SHA256_EDDSA_ECDH_A128CTR: Self = Self::new(-16, -8, -29, -65534);
    /// -21 `suit-sha256-es256-ecdh-a128gcm` = `[-16, -7, -29, 1]`.
    pub const SHA256_ES256_ECDH_A128GCM: Self = Self::new(-16, -7, -29, 1);
    /// -21 `suit-sha256-eddsa-ecdh-chacha-poly` = `[-16, -8, -29, 24]`.
    pub const SHA256_EDDSA_ECDH_CHACHA_POLY: Self = Self::new(-16, -8, -29, 24);
    /// suit-mti `suit-sha256-hmac-a128kw-a128ctr` = `[-16, 5, -3, -65534]`.
    pub const SHA256_HMAC_A128KW_A128CTR: Self = Self::new(-16, 5, -3, -65534);
    /// suit-mti `suit-sha256-hsslms-a256kw-a256ctr` = `[-16, -46, -5, -65532]`.
    pub const SHA256_HSSLMS_A256KW_A256CTR: Self = Self::new(-16, -46, -5, -65532);

    pub(crate) fn decode(v: &Value, path: &str) -> Result<Self, TeepError> {
        match cbor::as_array(v, path)? {
            [d, a, k, e] => Ok(SuitCoseProfile {
                digest: cbor::as_i64(d, &cbor::idx(path, 0))?,
                auth: cbor::as_i64(a, &cbor::idx(path, 1))?,
                key_exchange: cbor::as_i64(k, &cbor::idx(path, 2))?,
                encryption: cbor::as_i64(e, &cbor::idx(path, 3))?,
            }),
            _ => Err(TeepError::Cbor(CborError::WrongType {
                path: path.into(),
                expected: "[digest, auth, key-exchange, encryption]",
            })),
        }
    }

    pub(crate) fn encode(&self) -> Value {
        Value::Array(alloc::vec![
            cbor::int(self.digest),
            cbor::int(self.auth),
            cbor::int(self.key_exchange),
            cbor::int(self.encryption),
        ])
    }
}

/// `SUIT_Component_Identifier` = `[* bstr]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct ComponentId(pub Vec<Vec<u8>>);

impl ComponentId {
    /// From its byte-string parts.
    pub fn new<I: IntoIterator<Item = B>, B: Into<Vec<u8>>>(parts: I) -> Self {
        ComponentId(parts.into_iter().map(Into::into).collect())
    }

    pub(crate) fn decode(v: &Value, path: &str) -> Result<Self, TeepError> {
        let parts = cbor::as_array(v, path)?;
        let mut out = Vec::with_capacity(parts.len());
        for (i, p) in parts.iter().enumerate() {
            out.push(cbor::as_bytes(p, &cbor::idx(path, i))?.to_vec());
        }
        Ok(ComponentId(out))
    }

    pub(crate) fn encode(&self) -> Value {
        cbor::bytes_array(&self.0)
    }
}

/// `system-property-claims` (suit-report): a map holding `system-component-id` (0) and
/// SUIT parameters. Parameters are kept as CBOR values in their decoded order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SystemPropertyClaims {
    /// `system-component-id` (key 0).
    pub component_id: ComponentId,
    /// Other members (SUIT_Parameters such as image-digest 3), in order.
    pub parameters: Vec<(Value, Value)>,
    /// Decoded key order.
    pub key_order: KeyOrder,
}

impl SystemPropertyClaims {
    /// `suit-parameter-image-digest` key.
    pub const IMAGE_DIGEST: i64 = 3;
    /// `suit-parameter-image-size` key.
    pub const IMAGE_SIZE: i64 = 14;

    /// Claims for one component.
    pub fn new(component_id: ComponentId) -> Self {
        SystemPropertyClaims {
            component_id,
            ..Default::default()
        }
    }

    /// Adds a SUIT parameter.
    pub fn with_parameter(mut self, key: i64, value: Value) -> Self {
        self.parameters.push((cbor::int(key), value));
        self
    }

    /// The parameter with integer key `key`.
    pub fn parameter(&self, key: i64) -> Option<&Value> {
        let k = cbor::int(key);
        self.parameters
            .iter()
            .find(|(pk, _)| *pk == k)
            .map(|(_, v)| v)
    }

    /// The bstr-wrapped SUIT_Digest of `suit-parameter-image-digest`, if present.
    pub fn image_digest(&self) -> Option<&[u8]> {
        match self.parameter(Self::IMAGE_DIGEST) {
            Some(Value::Bytes(b)) => Some(b),
            _ => None,
        }
    }

    pub(crate) fn decode(v: &Value, path: &str) -> Result<Self, TeepError> {
        let map = cbor::as_map(v, path)?;
        let mut component_id = None;
        let mut parameters = Vec::new();
        for (k, val) in map {
            if *k == cbor::int(0) {
                component_id = Some(ComponentId::decode(
                    val,
                    &cbor::member(path, "system-component-id"),
                )?);
            } else {
                parameters.push((k.clone(), val.clone()));
            }
        }
        let component_id = component_id.ok_or_else(|| TeepError::MissingMember {
            path: cbor::member(path, "system-component-id"),
        })?;
        Ok(SystemPropertyClaims {
            component_id,
            parameters,
            key_order: KeyOrder::from_entries(map),
        })
    }

    pub(crate) fn encode(&self) -> Result<Value, TeepError> {
        let mut entries = Vec::with_capacity(self.parameters.len() + 1);
        entries.push((cbor::int(0), self.component_id.encode()));
        entries.extend(self.parameters.iter().cloned());
        Ok(cbor::build_map(entries, &self.key_order)?)
    }
}

/// `requested-tc-info` of a QueryResponse.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RequestedTcInfo {
    /// `component-id` (16).
    pub component_id: ComponentId,
    /// `tc-manifest-sequence-number` (17): minimum acceptable sequence number.
    pub tc_manifest_sequence_number: Option<u64>,
    /// `have-binary` (18).
    pub have_binary: Option<bool>,
    /// Members with other keys, kept in order (the draft defines none).
    pub extensions: Vec<(Value, Value)>,
    /// Decoded key order.
    pub key_order: KeyOrder,
}

impl RequestedTcInfo {
    /// Request for one component.
    pub fn new(component_id: ComponentId) -> Self {
        RequestedTcInfo {
            component_id,
            ..Default::default()
        }
    }

    /// Sets `tc-manifest-sequence-number`.
    pub fn with_sequence_number(mut self, n: u64) -> Self {
        self.tc_manifest_sequence_number = Some(n);
        self
    }

    /// Sets `have-binary`.
    pub fn with_have_binary(mut self, have: bool) -> Self {
        self.have_binary = Some(have);
        self
    }

    pub(crate) fn decode(v: &Value, path: &str) -> Result<Self, TeepError> {
        let map = cbor::as_map(v, path)?;
        let mut out = RequestedTcInfo {
            key_order: KeyOrder::from_entries(map),
            ..Default::default()
        };
        let mut component_id = None;
        for (k, val) in map {
            let known = match k {
                Value::Integer(i) => u64::try_from(*i).ok(),
                _ => None,
            };
            match known {
                Some(label::COMPONENT_ID) => {
                    component_id = Some(ComponentId::decode(
                        val,
                        &cbor::member(path, "component-id"),
                    )?);
                }
                Some(label::TC_MANIFEST_SEQUENCE_NUMBER) => {
                    out.tc_manifest_sequence_number = Some(cbor::as_u64(
                        val,
                        &cbor::member(path, "tc-manifest-sequence-number"),
                    )?);
                }
                Some(label::HAVE_BINARY) => {
                    out.have_binary = Some(cbor::as_bool(val, &cbor::member(path, "have-binary"))?);
                }
                _ => out.extensions.push((k.clone(), val.clone())),
            }
        }
        out.component_id = component_id.ok_or_else(|| TeepError::MissingMember {
            path: cbor::member(path, "component-id"),
        })?;
        Ok(out)
    }

    pub(crate) fn encode(&self) -> Result<Value, TeepError> {
        let mut entries = Vec::with_capacity(3 + self.extensions.len());
        entries.push((cbor::uint(label::COMPONENT_ID), self.component_id.encode()));
        if let Some(n) = self.tc_manifest_sequence_number {
            entries.push((
                cbor::uint(label::TC_MANIFEST_SEQUENCE_NUMBER),
                cbor::uint(n),
            ));
        }
        if let Some(b) = self.have_binary {
            entries.push((cbor::uint(label::HAVE_BINARY), Value::Bool(b)));
        }
        entries.extend(self.extensions.iter().cloned());
        Ok(cbor::build_map(entries, &self.key_order)?)
    }
}
