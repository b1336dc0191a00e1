//! The EAT claims set (RFC 9711) with the claims the TEEP profile uses typed.

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use otrp_cbor::CborError;

use ciborium::value::Value;
use coset::AsCborValue;

use crate::cbor::{self, DecodeLimits, KeyOrder};
use crate::claim;
use crate::error::EatError;

/// `eat_nonce` (10): one nonce, or several (`[2* nonce]`), each `bstr .size (8..64)`.
/// The TEEP profile uses a single bstr.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EatNonce {
    /// A single nonce.
    Single(Vec<u8>),
    /// Two or more nonces.
    Multiple(Vec<Vec<u8>>),
}

/// `oemid` (258).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OemId {
    /// IANA Private Enterprise Number (`int`).
    Pen(i64),
    /// IEEE OUI/MA-L (`bstr .size 3`).
    Ieee([u8; 3]),
    /// Random OEM id (`bstr .size 16`).
    Random([u8; 16]),
}

/// `hwversion` (260): `[version: tstr, ? scheme: int]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HwVersion {
    /// Version text.
    pub version: String,
    /// CoSWID version scheme (1 = multipartnumeric, …).
    pub scheme: Option<i64>,
}

/// One entry of `manifests` (272) or `measurements` (273):
/// `[content-type: coap-content-format, content-format]`.
///
/// RFC 9711 wraps CBOR content in a bstr; the TEEP draft's example (ED App. D.2) puts a
/// SUIT_Reference map there directly, so the content is kept as a CBOR value.
#[derive(Debug, Clone, PartialEq)]
pub struct ContentFormat {
    /// CoAP Content-Format number.
    pub content_type: u16,
    /// The manifest or measurement (bstr in RFC 9711).
    pub content: Value,
}

/// `cnf` (8, RFC 8747): the proof-of-possession key.
#[derive(Debug, Clone, PartialEq)]
pub enum Confirmation {
    /// `COSE_Key` (1), kept as its CBOR map (see [`Confirmation::cose_key`]).
    CoseKey(Value),
    /// `Encrypted_COSE_Key` (2).
    EncryptedCoseKey(Value),
    /// `kid` (3): in TEEP, the RFC 9679 thumbprint of the key.
    Kid(Vec<u8>),
    /// Another confirmation method (key, value).
    Other(Value, Value),
}

impl Confirmation {
    /// The key of a `CoseKey` confirmation parsed by coset.
    pub fn cose_key(&self) -> Option<Result<coset::CoseKey, EatError>> {
        match self {
            Confirmation::CoseKey(v) => {
                Some(coset::CoseKey::from_cbor_value(v.clone()).map_err(|_| {
                    EatError::InvalidValue {
                        path: "eat.cnf.COSE_Key".into(),
                        reason: "not a valid COSE_Key",
                    }
                }))
            }
            _ => None,
        }
    }

    /// A `CoseKey` confirmation from a coset key.
    pub fn from_cose_key(key: coset::CoseKey) -> Result<Self, EatError> {
        key.to_cbor_value()
            .map(Confirmation::CoseKey)
            .map_err(|_| EatError::Cbor(CborError::Encode("COSE_Key".into())))
    }

    fn decode(v: &Value, path: &str) -> Result<Self, EatError> {
        let map = cbor::as_map(v, path)?;
        let [(k, val)] = map else {
            return Err(EatError::InvalidValue {
                path: path.into(),
                reason: "cnf holds exactly one confirmation method",
            });
        };
        let method = match k {
            Value::Integer(i) => i64::try_from(*i).ok(),
            _ => None,
        };
        Ok(match method {
            Some(1) => {
                cbor::as_map(val, &cbor::member(path, "COSE_Key"))?;
                Confirmation::CoseKey(val.clone())
            }
            Some(2) => Confirmation::EncryptedCoseKey(val.clone()),
            Some(3) => Confirmation::Kid(cbor::as_bytes(val, &cbor::member(path, "kid"))?.to_vec()),
            _ => Confirmation::Other(k.clone(), val.clone()),
        })
    }

    fn encode(&self) -> Value {
        let (k, v) = match self {
            Confirmation::CoseKey(v) => (cbor::int(1), v.clone()),
            Confirmation::EncryptedCoseKey(v) => (cbor::int(2), v.clone()),
            Confirmation::Kid(kid) => (cbor::int(3), cbor::bytes(kid)),
            Confirmation::Other(k, v) => (k.clone(), v.clone()),
        };
        Value::Map(vec![(k, v)])
    }
}

/// `eat_profile` (265): `general-uri / general-oid`, untagged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Profile {
    /// A URI (text string), e.g. [`crate::TEEP_EAT_PROFILE`].
    Uri(String),
    /// An OID (byte string, BER contents).
    Oid(Vec<u8>),
}

/// An EAT claims set with the claims of the TEEP profile typed and every other claim kept
/// in `other`, in decoded order.
///
/// Encoding replays the decoded key order when the set of claims is unchanged (so
/// decoding and re-encoding preferred-serialization input gives the same bytes); built
/// values are encoded deterministically (RFC 8949 §4.2.1), as the TEEP profile requires.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EatClaims {
    /// `cnf` (8).
    pub cnf: Option<Confirmation>,
    /// `eat_nonce` (10).
    pub eat_nonce: Option<EatNonce>,
    /// `ueid` (256), `bstr .size (7..33)`.
    pub ueid: Option<Vec<u8>>,
    /// `oemid` (258).
    pub oemid: Option<OemId>,
    /// `hwmodel` (259), `bstr .size (1..32)`.
    pub hwmodel: Option<Vec<u8>>,
    /// `hwversion` (260).
    pub hwversion: Option<HwVersion>,
    /// `eat_profile` (265).
    pub eat_profile: Option<Profile>,
    /// `swname` (270): in TEEP, the URI of a TC's SUIT manifest.
    pub sw_name: Option<String>,
    /// `manifests` (272).
    pub manifests: Option<Vec<ContentFormat>>,
    /// `measurements` (273).
    pub measurements: Option<Vec<ContentFormat>>,
    /// `iat` (6), NumericDate (integer seconds).
    pub iat: Option<i64>,
    /// `exp` (4), NumericDate (integer seconds).
    pub exp: Option<i64>,
    /// Every other claim, in decoded order.
    pub other: Vec<(Value, Value)>,
    /// Decoded key order.
    pub key_order: KeyOrder,
}

const NONCE_SIZE: (usize, usize) = (8, 64);
const UEID_SIZE: (usize, usize) = (7, 33);
const HWMODEL_SIZE: (usize, usize) = (1, 32);

fn sized(v: &Value, path: &str, (min, max): (usize, usize)) -> Result<Vec<u8>, EatError> {
    let b = cbor::as_bytes(v, path)?;
    cbor::check_size(b.len(), min, max, path)?;
    Ok(b.to_vec())
}

fn enc_sized(b: &[u8], path: &str, (min, max): (usize, usize)) -> Result<Value, EatError> {
    cbor::check_size(b.len(), min, max, path)?;
    Ok(cbor::bytes(b))
}

fn formats(v: &Value, path: &str) -> Result<Vec<ContentFormat>, EatError> {
    let list = cbor::as_nonempty_array(v, path)?;
    let mut out = Vec::with_capacity(list.len());
    for (i, item) in list.iter().enumerate() {
        let p = cbor::idx(path, i);
        let [ct, content] = cbor::as_array(item, &p)? else {
            return Err(EatError::Cbor(CborError::WrongType {
                path: p,
                expected: "[content-type, content-format]",
            }));
        };
        let ct_path = cbor::idx(&p, 0);
        let content_type = u16::try_from(cbor::as_u64(ct, &ct_path)?).map_err(|_| {
            EatError::Cbor(CborError::IntegerOutOfRange {
                path: ct_path,
                reason: "coap-content-format is uint .le 65535",
            })
        })?;
        out.push(ContentFormat {
            content_type,
            content: content.clone(),
        });
    }
    Ok(out)
}

fn enc_formats(list: &[ContentFormat], path: &str) -> Result<Value, EatError> {
    if list.is_empty() {
        return Err(EatError::Cbor(CborError::EmptyArray { path: path.into() }));
    }
    Ok(Value::Array(
        list.iter()
            .map(|f| {
                Value::Array(vec![
                    cbor::uint(u64::from(f.content_type)),
                    f.content.clone(),
                ])
            })
            .collect(),
    ))
}

impl EatClaims {
    /// Forgets the decoded key order so that the next encoding is deterministic.
    /// (Claim values kept as CBOR values, e.g. a COSE_Key, are emitted as they are.)
    pub fn make_deterministic(&mut self) {
        self.key_order.clear();
    }

    /// An empty claims set.
    pub fn new() -> Self {
        Self::default()
    }
    /// Sets `eat_nonce` to a single nonce.
    pub fn with_nonce(mut self, nonce: impl Into<Vec<u8>>) -> Self {
        self.eat_nonce = Some(EatNonce::Single(nonce.into()));
        self
    }
    /// Sets `ueid`.
    pub fn with_ueid(mut self, ueid: impl Into<Vec<u8>>) -> Self {
        self.ueid = Some(ueid.into());
        self
    }
    /// Sets `oemid`.
    pub fn with_oemid(mut self, oemid: OemId) -> Self {
        self.oemid = Some(oemid);
        self
    }
    /// Sets `hwmodel`.
    pub fn with_hwmodel(mut self, hwmodel: impl Into<Vec<u8>>) -> Self {
        self.hwmodel = Some(hwmodel.into());
        self
    }
    /// Sets `hwversion`.
    pub fn with_hwversion(mut self, version: impl Into<String>, scheme: Option<i64>) -> Self {
        self.hwversion = Some(HwVersion {
            version: version.into(),
            scheme,
        });
        self
    }
    /// Sets `manifests`.
    pub fn with_manifests(mut self, manifests: Vec<ContentFormat>) -> Self {
        self.manifests = Some(manifests);
        self
    }
    /// Sets `measurements`.
    pub fn with_measurements(mut self, measurements: Vec<ContentFormat>) -> Self {
        self.measurements = Some(measurements);
        self
    }
    /// Sets `cnf`.
    pub fn with_cnf(mut self, cnf: Confirmation) -> Self {
        self.cnf = Some(cnf);
        self
    }
    /// Sets `eat_profile`.
    pub fn with_profile(mut self, profile: Profile) -> Self {
        self.eat_profile = Some(profile);
        self
    }
    /// Sets `swname`.
    pub fn with_sw_name(mut self, name: impl Into<String>) -> Self {
        self.sw_name = Some(name.into());
        self
    }
    /// Sets `iat`.
    pub fn with_iat(mut self, iat: i64) -> Self {
        self.iat = Some(iat);
        self
    }
    /// Sets `exp`.
    pub fn with_exp(mut self, exp: i64) -> Self {
        self.exp = Some(exp);
        self
    }
    /// Adds another claim.
    pub fn with_claim(mut self, key: Value, value: Value) -> Self {
        self.other.push((key, value));
        self
    }

    /// The single nonce, if `eat_nonce` holds exactly one.
    pub fn nonce(&self) -> Option<&[u8]> {
        match &self.eat_nonce {
            Some(EatNonce::Single(n)) => Some(n),
            _ => None,
        }
    }

    /// Decodes a claims set under the default [`DecodeLimits`].
    pub fn decode(bytes: &[u8]) -> Result<Self, EatError> {
        Self::decode_with_limits(bytes, &DecodeLimits::DEFAULT)
    }

    /// Decodes a claims set under `limits`.
    pub fn decode_with_limits(bytes: &[u8], limits: &DecodeLimits) -> Result<Self, EatError> {
        Self::from_value(&cbor::decode_value(bytes, limits)?)
    }

    /// Decodes and requires preferred (deterministic, definite-length) encoding.
    pub fn decode_strict(bytes: &[u8]) -> Result<Self, EatError> {
        let c = Self::decode(bytes)?;
        cbor::require_same(bytes, &c.to_vec()?)?;
        Ok(c)
    }

    /// Decodes strictly and checks the TEEP EAT profile ([`EatClaims::check_teep_profile`]).
    pub fn decode_teep(bytes: &[u8]) -> Result<Self, EatError> {
        let c = Self::decode_strict(bytes)?;
        c.check_teep_profile()?;
        Ok(c)
    }

    /// Encodes to CBOR bytes.
    pub fn to_vec(&self) -> Result<Vec<u8>, EatError> {
        Ok(cbor::encode_value(&self.to_value()?)?)
    }

    /// Converts a decoded CBOR map.
    pub fn from_value(value: &Value) -> Result<Self, EatError> {
        let map = cbor::as_map(value, "eat")?;
        let mut c = EatClaims {
            key_order: KeyOrder::from_entries(map),
            ..Default::default()
        };
        for (k, v) in map {
            let key = match k {
                Value::Integer(i) => i64::try_from(*i).ok(),
                _ => None,
            };
            match key {
                Some(claim::CNF) => c.cnf = Some(Confirmation::decode(v, "eat.cnf")?),
                Some(claim::EAT_NONCE) => {
                    c.eat_nonce = Some(match v {
                        Value::Array(list) => {
                            if list.len() < 2 {
                                return Err(EatError::InvalidValue {
                                    path: "eat.eat_nonce".into(),
                                    reason: "an array of nonces holds at least two",
                                });
                            }
                            let mut out = Vec::with_capacity(list.len());
                            for (i, n) in list.iter().enumerate() {
                                out.push(sized(n, &cbor::idx("eat.eat_nonce", i), NONCE_SIZE)?);
                            }
                            EatNonce::Multiple(out)
                        }
                        _ => EatNonce::Single(sized(v, "eat.eat_nonce", NONCE_SIZE)?),
                    })
                }
                Some(claim::UEID) => c.ueid = Some(sized(v, "eat.ueid", UEID_SIZE)?),
                Some(claim::OEMID) => {
                    c.oemid = Some(match v {
                        Value::Integer(_) => OemId::Pen(cbor::as_i64(v, "eat.oemid")?),
                        _ => {
                            let b = cbor::as_bytes(v, "eat.oemid")?;
                            if let Ok(a) = <[u8; 3]>::try_from(b) {
                                OemId::Ieee(a)
                            } else if let Ok(a) = <[u8; 16]>::try_from(b) {
                                OemId::Random(a)
                            } else {
                                return Err(EatError::InvalidValue {
                                    path: "eat.oemid".into(),
                                    reason: "byte-string oemid is 3 (IEEE) or 16 (random) bytes",
                                });
                            }
                        }
                    })
                }
                Some(claim::HWMODEL) => c.hwmodel = Some(sized(v, "eat.hwmodel", HWMODEL_SIZE)?),
                Some(claim::HWVERSION) => {
                    let p = "eat.hwversion";
                    c.hwversion = Some(match cbor::as_array(v, p)? {
                        [ver] => HwVersion {
                            version: cbor::as_text(ver, &cbor::idx(p, 0))?.into(),
                            scheme: None,
                        },
                        [ver, scheme] => HwVersion {
                            version: cbor::as_text(ver, &cbor::idx(p, 0))?.into(),
                            scheme: Some(cbor::as_i64(scheme, &cbor::idx(p, 1))?),
                        },
                        _ => {
                            return Err(EatError::Cbor(CborError::WrongType {
                                path: p.into(),
                                expected: "[version: tstr, ? scheme: int]",
                            }))
                        }
                    })
                }
                Some(claim::EAT_PROFILE) => {
                    c.eat_profile = Some(match v {
                        Value::Text(t) => Profile::Uri(t.clone()),
                        Value::Bytes(b) => Profile::Oid(b.clone()),
                        _ => {
                            return Err(EatError::Cbor(CborError::WrongType {
                                path: "eat.eat_profile".into(),
                                expected: "untagged URI text or OID bytes",
                            }))
                        }
                    })
                }
                Some(claim::SWNAME) => c.sw_name = Some(cbor::as_text(v, "eat.swname")?.into()),
                Some(claim::MANIFESTS) => c.manifests = Some(formats(v, "eat.manifests")?),
                Some(claim::MEASUREMENTS) => c.measurements = Some(formats(v, "eat.measurements")?),
                Some(claim::IAT) => c.iat = Some(cbor::as_i64(v, "eat.iat")?),
                Some(claim::EXP) => c.exp = Some(cbor::as_i64(v, "eat.exp")?),
                _ => c.other.push((k.clone(), v.clone())),
            }
        }
        Ok(c)
    }

    /// Converts to a CBOR map, checking the claim constraints.
    pub fn to_value(&self) -> Result<Value, EatError> {
        let mut e: Vec<(Value, Value)> = Vec::new();
        let mut put = |k: i64, v: Value| e.push((cbor::int(k), v));
        if let Some(x) = &self.cnf {
            put(claim::CNF, x.encode());
        }
        if let Some(x) = &self.eat_nonce {
            put(
                claim::EAT_NONCE,
                match x {
                    EatNonce::Single(n) => enc_sized(n, "eat.eat_nonce", NONCE_SIZE)?,
                    EatNonce::Multiple(list) => {
                        if list.len() < 2 {
                            return Err(EatError::InvalidValue {
                                path: "eat.eat_nonce".into(),
                                reason: "an array of nonces holds at least two",
                            });
                        }
                        let mut out = Vec::with_capacity(list.len());
                        for (i, n) in list.iter().enumerate() {
                            out.push(enc_sized(n, &cbor::idx("eat.eat_nonce", i), NONCE_SIZE)?);
                        }
                        Value::Array(out)
                    }
                },
            );
        }
        if let Some(x) = &self.ueid {
            put(claim::UEID, enc_sized(x, "eat.ueid", UEID_SIZE)?);
        }
        if let Some(x) = &self.oemid {
            put(
                claim::OEMID,
                match x {
                    OemId::Pen(p) => cbor::int(*p),
                    OemId::Ieee(b) => cbor::bytes(b),
                    OemId::Random(b) => cbor::bytes(b),
                },
            );
        }
        if let Some(x) = &self.hwmodel {
            put(claim::HWMODEL, enc_sized(x, "eat.hwmodel", HWMODEL_SIZE)?);
        }
        if let Some(x) = &self.hwversion {
            let mut a = vec![Value::Text(x.version.clone())];
            if let Some(s) = x.scheme {
                a.push(cbor::int(s));
            }
            put(claim::HWVERSION, Value::Array(a));
        }
        if let Some(x) = &self.eat_profile {
            put(
                claim::EAT_PROFILE,
                match x {
                    Profile::Uri(u) => Value::Text(u.clone()),
                    Profile::Oid(o) => cbor::bytes(o),
                },
            );
        }
        if let Some(x) = &self.sw_name {
            put(claim::SWNAME, Value::Text(x.clone()));
        }
        if let Some(x) = &self.manifests {
            put(claim::MANIFESTS, enc_formats(x, "eat.manifests")?);
        }
        if let Some(x) = &self.measurements {
            put(claim::MEASUREMENTS, enc_formats(x, "eat.measurements")?);
        }
        if let Some(x) = self.iat {
            put(claim::IAT, cbor::int(x));
        }
        if let Some(x) = self.exp {
            put(claim::EXP, cbor::int(x));
        }
        e.extend(self.other.iter().cloned());
        cbor::check_no_duplicates(&e, "eat")?;
        Ok(cbor::build_map(e, &self.key_order)?)
    }

    /// Checks the TEEP EAT profile (ED §5): the required claims ueid, oemid, hwmodel,
    /// hwversion, manifests and cnf are present, `eat_nonce` (if any) is a single bstr,
    /// and no CBOR tag appears anywhere. (Definite lengths and preferred serialization are
    /// what [`EatClaims::decode_strict`] checks on the bytes.)
    pub fn check_teep_profile(&self) -> Result<(), EatError> {
        let required: [(&'static str, bool); 6] = [
            ("ueid", self.ueid.is_some()),
            ("oemid", self.oemid.is_some()),
            ("hwmodel", self.hwmodel.is_some()),
            ("hwversion", self.hwversion.is_some()),
            ("manifests", self.manifests.is_some()),
            ("cnf", self.cnf.is_some()),
        ];
        if let Some((claim, _)) = required.iter().find(|(_, present)| !present) {
            return Err(EatError::MissingClaim { claim });
        }
        if let Some(EatNonce::Multiple(_)) = self.eat_nonce {
            return Err(EatError::Profile {
                path: "eat.eat_nonce".into(),
                reason: "eat_nonce is a single bstr",
            });
        }
        if contains_tag(&self.to_value()?) {
            return Err(EatError::Profile {
                path: "eat".into(),
                reason: "CBOR tags are not used",
            });
        }
        Ok(())
    }
}

/// True when a tag appears anywhere in `v` (iterative: no recursion on input data).
fn contains_tag(v: &Value) -> bool {
    let mut stack = vec![v];
    while let Some(x) = stack.pop() {
        match x {
            Value::Tag(..) => return true,
            Value::Array(a) => stack.extend(a.iter()),
            Value::Map(m) => {
                for (k, val) in m {
                    stack.push(k);
                    stack.push(val);
                }
            }
            _ => {}
        }
    }
    false
}
