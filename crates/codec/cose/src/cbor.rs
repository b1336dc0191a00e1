//! Small CBOR helpers shared by the modules (all parsing is ciborium/coset).

use alloc::format;
use alloc::string::String;

use coset::cbor::Value;
use coset::iana::EnumI64;
use coset::{Algorithm, Header, Label, RegisteredLabelWithPrivate};

use crate::CoseError;

/// Decodes exactly one CBOR item from `bytes`.
pub(crate) fn read_value(what: &'static str, bytes: &[u8]) -> Result<Value, CoseError> {
    let mut rest = bytes;
    let value: Value = coset::cbor::de::from_reader(&mut rest).map_err(|e| CoseError::Cbor {
        what,
        detail: format!("{e}"),
    })?;
    if !rest.is_empty() {
        return Err(CoseError::TrailingData {
            what,
            offset: bytes.len() - rest.len(),
            extra: rest.len(),
        });
    }
    Ok(value)
}

/// Encodes a value.
pub(crate) fn write_value(
    what: &'static str,
    value: &Value,
) -> Result<alloc::vec::Vec<u8>, CoseError> {
    let mut out = alloc::vec::Vec::new();
    coset::cbor::ser::into_writer(value, &mut out).map_err(|_| CoseError::Encode { what })?;
    Ok(out)
}

/// The algorithm as an integer, if it is one.
pub(crate) fn alg_id(alg: &Algorithm) -> Result<i64, String> {
    match alg {
        RegisteredLabelWithPrivate::Assigned(a) => Ok(a.to_i64()),
        RegisteredLabelWithPrivate::PrivateUse(i) => Ok(*i),
        RegisteredLabelWithPrivate::Text(t) => Err(format!("\"{t}\"")),
    }
}

/// Builds an `Algorithm` label for an integer id.
pub(crate) fn alg_label(id: i64) -> Algorithm {
    match coset::iana::Algorithm::from_i64(id) {
        Some(a) => RegisteredLabelWithPrivate::Assigned(a),
        None => RegisteredLabelWithPrivate::PrivateUse(id),
    }
}

/// Header labels this crate understands; a `crit` entry outside this set is rejected.
/// 1 alg, 2 crit, 3 content type, 4 kid, 5 IV, 6 Partial IV, -1 ephemeral key.
const UNDERSTOOD: &[i64] = &[1, 2, 3, 4, 5, 6, -1];

/// RFC 9052 §3.1: rejects critical header parameters this crate does not process.
pub(crate) fn check_crit(what: &'static str, protected: &Header) -> Result<(), CoseError> {
    for label in &protected.crit {
        let known = match label {
            RegisteredLabelWithPrivate::Assigned(h) => UNDERSTOOD.contains(&h.to_i64()),
            _ => false,
        };
        if !known {
            let label = match label {
                RegisteredLabelWithPrivate::Assigned(h) => format!("{}", h.to_i64()),
                RegisteredLabelWithPrivate::PrivateUse(i) => format!("{i}"),
                RegisteredLabelWithPrivate::Text(t) => format!("\"{t}\""),
            };
            return Err(CoseError::UnknownCriticalHeader { what, label });
        }
    }
    Ok(())
}

/// A header parameter outside coset's typed fields.
pub(crate) fn rest_param(header: &Header, label: i64) -> Option<&Value> {
    header
        .rest
        .iter()
        .find(|(l, _)| *l == Label::Int(label))
        .map(|(_, v)| v)
}

/// Lower-case hex for error messages.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use core::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Checks the `crit` (2) parameter of a serialized protected header before coset parses
/// it, so that any unknown critical label (including unregistered ones coset itself
/// would refuse) yields [`CoseError::UnknownCriticalHeader`].
pub(crate) fn precheck_crit(what: &'static str, protected: &Value) -> Result<(), CoseError> {
    let Value::Bytes(bytes) = protected else {
        return Ok(()); // coset reports the type error
    };
    if bytes.is_empty() {
        return Ok(());
    }
    let Ok(Value::Map(entries)) = read_value(what, bytes) else {
        return Ok(()); // coset reports the structure error
    };
    for (k, v) in &entries {
        if k.as_integer() != Some(2.into()) {
            continue;
        }
        let Value::Array(labels) = v else {
            return Err(CoseError::structure(what, "crit (2) is not an array"));
        };
        if labels.is_empty() {
            return Err(CoseError::structure(what, "crit (2) is an empty array"));
        }
        for label in labels {
            let known = match label {
                Value::Integer(i) => i64::try_from(*i).is_ok_and(|i| UNDERSTOOD.contains(&i)),
                _ => false,
            };
            if !known {
                let label = match label {
                    Value::Integer(i) => format!("{}", i128::from(*i)),
                    Value::Text(t) => format!("\"{t}\""),
                    other => format!("{other:?}"),
                };
                return Err(CoseError::UnknownCriticalHeader { what, label });
            }
        }
    }
    Ok(())
}
