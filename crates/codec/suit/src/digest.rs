//! `SUIT_Digest` and `SUIT_Component_Identifier`.

use alloc::string::ToString;
use alloc::vec::Vec;

use sha2::Digest as _;

use crate::cbor::{int, to_array, to_bytes, to_int, CborItem, Ctx, Path, Value};
use crate::error::{Result, SuitError};
use crate::labels::digest_alg;

/// `SUIT_Digest = [algorithm-id, bytes, * extensions]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Digest {
    /// COSE hash algorithm id (SHA-256 = -16).
    pub alg: i64,
    /// Digest value.
    pub bytes: Vec<u8>,
    /// Extension items after the bytes (`$$SUIT_Digest-extensions`), kept as is.
    pub extensions: Vec<Value>,
}

impl Digest {
    /// SHA-256 digest of `data`.
    pub fn sha256(data: &[u8]) -> Digest {
        Digest {
            alg: digest_alg::SHA256,
            bytes: sha2::Sha256::digest(data).to_vec(),
            extensions: Vec::new(),
        }
    }

    /// Computes a digest of `data` with algorithm `alg` (SHA-256, SHA-384, SHA-512).
    pub fn compute(alg: i64, data: &[u8]) -> Result<Digest> {
        let bytes = match alg {
            digest_alg::SHA256 => sha2::Sha256::digest(data).to_vec(),
            digest_alg::SHA384 => sha2::Sha384::digest(data).to_vec(),
            digest_alg::SHA512 => sha2::Sha512::digest(data).to_vec(),
            _ => {
                return Err(SuitError::UnsupportedDigest {
                    path: "digest".to_string(),
                    alg,
                })
            }
        };
        Ok(Digest {
            alg,
            bytes,
            extensions: Vec::new(),
        })
    }

    /// Whether this digest matches `data` (constant-time comparison is not needed:
    /// both values are public).
    pub fn matches(&self, data: &[u8]) -> Result<bool> {
        Ok(Digest::compute(self.alg, data)?.bytes == self.bytes)
    }

    /// Checks the digest over `data`, naming `what` in the error.
    pub fn check(&self, data: &[u8], what: &str) -> Result<()> {
        if self.matches(data)? {
            Ok(())
        } else {
            Err(SuitError::DigestMismatch {
                what: what.to_string(),
            })
        }
    }
}

impl CborItem for Digest {
    fn from_value(value: Value, path: &Path<'_>, _ctx: &Ctx) -> Result<Self> {
        let mut items = to_array(value, path)?.into_iter();
        let alg = to_int(
            items
                .next()
                .ok_or_else(|| path.key("algorithm-id").missing())?,
            &path.key("algorithm-id"),
        )?;
        let bytes = to_bytes(
            items
                .next()
                .ok_or_else(|| path.key("digest-bytes").missing())?,
            &path.key("digest-bytes"),
        )?;
        Ok(Digest {
            alg,
            bytes,
            extensions: items.collect(),
        })
    }
    fn to_value(&self) -> Result<Value> {
        let mut a = Vec::with_capacity(2 + self.extensions.len());
        a.push(int(self.alg));
        a.push(Value::Bytes(self.bytes.clone()));
        a.extend(self.extensions.iter().cloned());
        Ok(Value::Array(a))
    }
}

/// Last segment of the component that holds a TA's personalization data (OpenTrust's
/// naming, shared by the TAM, the Agent and the TEE): `[..TA segments, "perso"]`.
pub const PERSO_SEGMENT: &[u8] = b"perso";

/// `SUIT_Component_Identifier = [* bstr]`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct ComponentId(pub Vec<Vec<u8>>);

impl ComponentId {
    /// Builds an identifier from its segments.
    pub fn new<I, S>(segments: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<[u8]>,
    {
        ComponentId(segments.into_iter().map(|s| s.as_ref().to_vec()).collect())
    }
    /// The segments.
    pub fn segments(&self) -> &[Vec<u8>] {
        &self.0
    }
    /// Whether `prefix` is a prefix of this identifier (trust-domains dependency-prefix).
    pub fn starts_with(&self, prefix: &ComponentId) -> bool {
        self.0.starts_with(&prefix.0)
    }
    /// The component holding this TA's personalization data: the TA's segments followed
    /// by [`PERSO_SEGMENT`].
    ///
    /// ```
    /// use otrp_suit::ComponentId;
    /// let ta = ComponentId::new(["drones", "geofence"]);
    /// assert_eq!(ta.perso(), ComponentId::new(["drones", "geofence", "perso"]));
    /// assert_eq!(ta.perso().perso_target(), Some(ta.clone()));
    /// assert_eq!(ta.perso_target(), None);
    /// assert_eq!(ComponentId::new(["perso"]).perso_target(), None);
    /// ```
    pub fn perso(&self) -> ComponentId {
        let mut segs = self.0.clone();
        segs.push(PERSO_SEGMENT.to_vec());
        ComponentId(segs)
    }
    /// The TA a personalization-data component belongs to; `None` for any other
    /// component (also for a bare `["perso"]`).
    pub fn perso_target(&self) -> Option<ComponentId> {
        let (last, rest) = self.0.split_last()?;
        (last.as_slice() == PERSO_SEGMENT && !rest.is_empty()).then(|| ComponentId(rest.to_vec()))
    }
}

impl CborItem for ComponentId {
    fn from_value(value: Value, path: &Path<'_>, _ctx: &Ctx) -> Result<Self> {
        let items = to_array(value, path)?;
        let mut segs = Vec::with_capacity(items.len());
        for (i, v) in items.into_iter().enumerate() {
            segs.push(to_bytes(v, &path.index(i))?);
        }
        Ok(ComponentId(segs))
    }
    fn to_value(&self) -> Result<Value> {
        Ok(Value::Array(
            self.0.iter().map(|s| Value::Bytes(s.clone())).collect(),
        ))
    }
}
