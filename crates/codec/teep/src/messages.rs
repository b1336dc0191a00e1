//! The five TEEP messages (ED §4.2–§4.6) and [`TeepMessage`].

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use ciborium::value::Value;

use crate::cbor::{self, DecodeLimits, KeyOrder};
use crate::error::TeepError;
use crate::fields::{self as f, OptionsWriter};
use crate::label as l;
use crate::types::{
    msg_type, ComponentId, DataItemRequested, ErrCode, FreshnessMechanism, RequestedTcInfo,
    SuitCoseProfile, SystemPropertyClaims, TeepCipherSuite,
};

/// Encode/decode shared by every message type.
///
/// `decode` accepts whatever well-formed CBOR the decoder accepts (including
/// non-preferred integer encodings and indefinite lengths) as long as the message matches
/// the CDDL; re-encoding then gives preferred, definite-length CBOR in the decoded key order,
/// so `decode(x).to_vec() == x` holds exactly when `x` is in preferred serialization.
/// `decode_strict` additionally requires that (and so rejects every alternative encoding
/// of the same message).
pub trait TeepCodec: Sized {
    /// Converts a decoded CBOR value (the whole message array).
    fn from_value(value: &Value) -> Result<Self, TeepError>;
    /// Converts to a CBOR value, checking the CDDL constraints.
    fn to_value(&self) -> Result<Value, TeepError>;

    /// Decodes one message under the default [`DecodeLimits`].
    fn decode(bytes: &[u8]) -> Result<Self, TeepError> {
        Self::decode_with_limits(bytes, &DecodeLimits::DEFAULT)
    }
    /// Decodes one message under `limits`.
    fn decode_with_limits(bytes: &[u8], limits: &DecodeLimits) -> Result<Self, TeepError> {
        Self::from_value(&cbor::decode_value(bytes, limits)?)
    }
    /// Decodes and requires the input to be exactly our (preferred-serialization) encoding.
    fn decode_strict(bytes: &[u8]) -> Result<Self, TeepError> {
        let m = Self::decode(bytes)?;
        cbor::require_same(bytes, &m.to_vec()?)?;
        Ok(m)
    }
    /// Encodes to bytes.
    fn to_vec(&self) -> Result<Vec<u8>, TeepError> {
        Ok(cbor::encode_value(&self.to_value()?)?)
    }
}

macro_rules! inherent_codec {
    ($t:ty) => {
        impl $t {
            /// Decodes one message under the default limits (see [`TeepCodec`]).
            pub fn decode(bytes: &[u8]) -> Result<Self, TeepError> {
                <Self as TeepCodec>::decode(bytes)
            }
            /// Decodes one message under `limits`.
            pub fn decode_with_limits(
                bytes: &[u8],
                limits: &DecodeLimits,
            ) -> Result<Self, TeepError> {
                <Self as TeepCodec>::decode_with_limits(bytes, limits)
            }
            /// Decodes and requires preferred (deterministic) encoding of the input.
            pub fn decode_strict(bytes: &[u8]) -> Result<Self, TeepError> {
                <Self as TeepCodec>::decode_strict(bytes)
            }
            /// Encodes to CBOR bytes.
            pub fn to_vec(&self) -> Result<Vec<u8>, TeepError> {
                <Self as TeepCodec>::to_vec(self)
            }
        }
    };
}

/// Checks the framing `[type, options, *extra]` and returns the elements.
fn frame<'a>(
    value: &'a Value,
    expected: u64,
    name: &str,
    positional: usize,
) -> Result<&'a [Value], TeepError> {
    let items = cbor::as_array(value, name)?;
    let ty = match items.first() {
        Some(t) => cbor::as_u64(t, &cbor::member(name, "type"))?,
        None => {
            return Err(TeepError::MissingElement {
                path: cbor::member(name, "type"),
            })
        }
    };
    if ty != expected {
        return Err(TeepError::WrongMessageType {
            expected,
            found: ty,
        });
    }
    let want = 2 + positional;
    if items.len() < want {
        let missing = match items.len() {
            1 => "options",
            _ => positional_name(expected, items.len() - 2),
        };
        return Err(TeepError::MissingElement {
            path: cbor::member(name, missing),
        });
    }
    if items.len() > want {
        return Err(TeepError::ExtraElements {
            path: name.into(),
            count: items.len() - want,
        });
    }
    Ok(items)
}

fn positional_name(ty: u64, i: usize) -> &'static str {
    match (ty, i) {
        (msg_type::QUERY_REQUEST, 0) => "supported-teep-cipher-suites",
        (msg_type::QUERY_REQUEST, 1) => "supported-suit-cose-profiles",
        (msg_type::QUERY_REQUEST, _) => "data-item-requested",
        (msg_type::ERROR, _) => "err-code",
        _ => "element",
    }
}

fn opt_path(name: &str) -> String {
    cbor::member(name, "options")
}

/// A message array after [`frame`]: the entries of its options map with their key order
/// and path, and the positional elements after the options.
struct Framed<'a> {
    entries: Vec<(u64, &'a Value)>,
    key_order: KeyOrder,
    op: String,
    positional: &'a [Value],
}

/// Checks the framing (see [`frame`]) and splits the options map into its entries.
fn open<'a>(
    value: &'a Value,
    expected: u64,
    name: &str,
    positional: usize,
) -> Result<Framed<'a>, TeepError> {
    let items = frame(value, expected, name, positional)?;
    let [_, options, positional @ ..] = items else {
        return Err(TeepError::MissingElement { path: name.into() });
    };
    let op = opt_path(name);
    let (entries, key_order) = f::option_entries(options, &op)?;
    Ok(Framed {
        entries,
        key_order,
        op,
        positional,
    })
}

/// One member of an options map: its CDDL name (the last part of its error path) and its
/// checked conversions from and to CBOR. Its label is the [`label`](crate::label) constant
/// of the same name (see `message_options!`).
struct Opt<T> {
    name: &'static str,
    decode: fn(&Value, &str) -> Result<T, TeepError>,
    encode: fn(&T, &str) -> Result<Value, TeepError>,
}

impl<T> Opt<T> {
    /// Decodes `v`, the value of this option in the options map at path `op`.
    fn read(&self, v: &Value, op: &str) -> Result<Option<T>, TeepError> {
        Ok(Some((self.decode)(v, &cbor::member(op, self.name))?))
    }

    /// Puts `value` into `w` under `label`, if it is set.
    fn write(&self, w: &mut OptionsWriter, label: u64, value: &Option<T>) -> Result<(), TeepError> {
        if let Some(x) = value {
            let v = (self.encode)(x, &w.path(self.name))?;
            w.put(label, v);
        }
        Ok(())
    }
}

/// The option members of the five messages, named as their labels in [`label`](crate::label).
mod opt {
    use super::*;

    pub(super) const TOKEN: Opt<Vec<u8>> = Opt {
        name: "token",
        decode: |v, p| f::sized_bytes(v, p, f::TOKEN_SIZE),
        encode: |x, p| f::enc_sized_bytes(x, p, f::TOKEN_SIZE),
    };
    pub(super) const CHALLENGE: Opt<Vec<u8>> = Opt {
        name: "challenge",
        decode: |v, p| f::sized_bytes(v, p, f::CHALLENGE_SIZE),
        encode: |x, p| f::enc_sized_bytes(x, p, f::CHALLENGE_SIZE),
    };
    pub(super) const SUPPORTED_FRESHNESS_MECHANISMS: Opt<Vec<FreshnessMechanism>> = Opt {
        name: "supported-freshness-mechanisms",
        decode: f::freshness_list,
        encode: |x, p| f::enc_freshness_list(x, p),
    };
    pub(super) const SUPPORTED_TEEP_CIPHER_SUITES: Opt<Vec<TeepCipherSuite>> = Opt {
        name: "supported-teep-cipher-suites",
        decode: f::suites,
        encode: |x, p| f::enc_suites(x, p),
    };
    pub(super) const SUPPORTED_SUIT_COSE_PROFILES: Opt<Vec<SuitCoseProfile>> = Opt {
        name: "supported-suit-cose-profiles",
        decode: f::profiles,
        encode: |x, p| f::enc_profiles(x, p),
    };
    pub(super) const VERSIONS: Opt<Vec<u32>> = Opt {
        name: "versions",
        decode: f::u32_list,
        encode: |x, p| f::enc_u32_list(x, p),
    };
    pub(super) const SELECTED_VERSION: Opt<u32> = Opt {
        name: "selected-version",
        decode: |v, p| Ok(cbor::as_u32(v, p)?),
        encode: |x, _| Ok(cbor::uint(u64::from(*x))),
    };
    pub(super) const ATTESTATION_PAYLOAD_FORMAT: Opt<String> = Opt {
        name: "attestation-payload-format",
        decode: f::text,
        encode: |x, _| Ok(Value::Text(x.clone())),
    };
    pub(super) const ATTESTATION_PAYLOAD: Opt<Vec<u8>> = Opt {
        name: "attestation-payload",
        decode: f::bytes,
        encode: |x, _| Ok(cbor::bytes(x)),
    };
    pub(super) const SUIT_REPORTS: Opt<Vec<Vec<u8>>> = Opt {
        name: "suit-reports",
        decode: f::bytes_list,
        encode: |x, p| f::enc_bytes_list(x, p),
    };
    pub(super) const MANIFEST_LIST: Opt<Vec<Vec<u8>>> = Opt {
        name: "manifest-list",
        decode: f::bytes_list,
        encode: |x, p| f::enc_bytes_list(x, p),
    };
    pub(super) const UNNEEDED_MANIFEST_LIST: Opt<Vec<ComponentId>> = Opt {
        name: "unneeded-manifest-list",
        decode: f::component_ids,
        encode: |x, p| f::enc_component_ids(x, p),
    };
    pub(super) const TC_LIST: Opt<Vec<SystemPropertyClaims>> = Opt {
        name: "tc-list",
        decode: f::tc_list,
        encode: |x, p| f::enc_tc_list(x, p),
    };
    pub(super) const REQUESTED_TC_LIST: Opt<Vec<RequestedTcInfo>> = Opt {
        name: "requested-tc-list",
        decode: f::requested_tc_list,
        encode: |x, p| f::enc_requested_tc_list(x, p),
    };
    pub(super) const EXT_LIST: Opt<Vec<u32>> = Opt {
        name: "ext-list",
        decode: f::u32_list,
        encode: |x, p| f::enc_u32_list(x, p),
    };
    pub(super) const ERR_CODE: Opt<ErrCode> = Opt {
        name: "err-code",
        decode: ErrCode::decode,
        encode: |x, p| x.encode(p),
    };
    pub(super) const MSG: Opt<String> = Opt {
        name: "msg",
        decode: |v, p| f::sized_text(v, p, f::MSG_SIZE),
        encode: |x, p| f::enc_sized_text(x, p, f::MSG_SIZE),
    };
    pub(super) const ERR_MSG: Opt<String> = Opt {
        name: "err-msg",
        decode: |v, p| f::sized_text(v, p, f::MSG_SIZE),
        encode: |x, p| f::enc_sized_text(x, p, f::MSG_SIZE),
    };
    pub(super) const ERR_LANG: Opt<String> = Opt {
        name: "err-lang",
        decode: |v, p| f::sized_text(v, p, f::LANG_SIZE),
        encode: |x, p| f::enc_sized_text(x, p, f::LANG_SIZE),
    };
}

/// The options map of a message, from its `field: OPTION` list in encoding order (the
/// option `OPTION` is `opt::OPTION` with label `label::OPTION`):
/// `read_options` decodes map entries into the fields (unknown labels into `extensions`,
/// in decoded order), `options_value` encodes the set fields and the extensions in the
/// decoded key order.
macro_rules! message_options {
    ($t:ty { $($field:ident: $opt:ident),* $(,)? }) => {
        impl $t {
            fn read_options(
                &mut self,
                entries: Vec<(u64, &Value)>,
                op: &str,
            ) -> Result<(), TeepError> {
                for (label, v) in entries {
                    match label {
                        $(l::$opt => self.$field = opt::$opt.read(v, op)?,)*
                        other => self.extensions.push((other, v.clone())),
                    }
                }
                Ok(())
            }

            fn options_value(&self) -> Result<Value, TeepError> {
                let mut w = OptionsWriter::new(opt_path(Self::NAME));
                $(opt::$opt.write(&mut w, l::$opt, &self.$field)?;)*
                w.finish(&self.extensions, &self.key_order)
            }
        }
    };
}

/// [`TeepCodec`] (and the inherent codec methods) of a message that is `[type, options]`.
macro_rules! options_only_codec {
    ($t:ident, $type:expr) => {
        impl TeepCodec for $t {
            fn from_value(value: &Value) -> Result<Self, TeepError> {
                let d = open(value, $type, Self::NAME, 0)?;
                let mut m = $t {
                    key_order: d.key_order,
                    ..Default::default()
                };
                m.read_options(d.entries, &d.op)?;
                Ok(m)
            }

            fn to_value(&self) -> Result<Value, TeepError> {
                Ok(Value::Array(vec![cbor::uint($type), self.options_value()?]))
            }
        }
        inherent_codec!($t);
    };
}

/// Builder methods several messages share, each defined once here:
/// `shared_setters!(T { with_token, ... })` adds the listed ones to `T`.
macro_rules! shared_setters {
    (@ with_token) => {
        /// Sets `token`.
        pub fn with_token(mut self, token: impl Into<Vec<u8>>) -> Self {
            self.token = Some(token.into());
            self
        }
    };
    (@ with_freshness_mechanisms) => {
        /// Sets `supported-freshness-mechanisms`.
        pub fn with_freshness_mechanisms(mut self, m: Vec<FreshnessMechanism>) -> Self {
            self.supported_freshness_mechanisms = Some(m);
            self
        }
    };
    (@ with_challenge) => {
        /// Sets `challenge`.
        pub fn with_challenge(mut self, challenge: impl Into<Vec<u8>>) -> Self {
            self.challenge = Some(challenge.into());
            self
        }
    };
    (@ with_versions) => {
        /// Sets `versions`.
        pub fn with_versions(mut self, versions: Vec<u32>) -> Self {
            self.versions = Some(versions);
            self
        }
    };
    (@ with_attestation) => {
        /// Sets `attestation-payload-format` and `attestation-payload`.
        pub fn with_attestation(
            mut self,
            format: Option<String>,
            payload: impl Into<Vec<u8>>,
        ) -> Self {
            self.attestation_payload_format = format;
            self.attestation_payload = Some(payload.into());
            self
        }
    };
    (@ with_suit_reports) => {
        /// Sets `suit-reports`.
        pub fn with_suit_reports(mut self, reports: Vec<Vec<u8>>) -> Self {
            self.suit_reports = Some(reports);
            self
        }
    };
    (@ with_unneeded_manifest_list) => {
        /// Sets `unneeded-manifest-list`.
        pub fn with_unneeded_manifest_list(mut self, list: Vec<ComponentId>) -> Self {
            self.unneeded_manifest_list = Some(list);
            self
        }
    };
    (@ with_err_lang) => {
        /// Sets `err-lang`.
        pub fn with_err_lang(mut self, lang: impl Into<String>) -> Self {
            self.err_lang = Some(lang.into());
            self
        }
    };
    ($t:ty { $($setter:ident),* $(,)? }) => {
        impl $t {
            $(shared_setters!(@ $setter);)*
        }
    };
}

// ---------------------------------------------------------------------------------------

/// QueryRequest (type 1, ED §4.2), sent by the TAM.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct QueryRequest {
    /// `token` (20), 8..64 bytes.
    pub token: Option<Vec<u8>>,
    /// `supported-freshness-mechanisms` (21).
    pub supported_freshness_mechanisms: Option<Vec<FreshnessMechanism>>,
    /// `challenge` (2), 8..512 bytes.
    pub challenge: Option<Vec<u8>>,
    /// `versions` (3).
    pub versions: Option<Vec<u32>>,
    /// `attestation-payload-format` (13): media type.
    pub attestation_payload_format: Option<String>,
    /// `attestation-payload` (7).
    pub attestation_payload: Option<Vec<u8>>,
    /// `suit-reports` (19): each a bstr-wrapped SUIT report.
    pub suit_reports: Option<Vec<Vec<u8>>>,
    /// Options with labels this message does not define, in decoded order.
    pub extensions: Vec<(u64, Value)>,
    /// Decoded order of the options map.
    pub key_order: KeyOrder,
    /// Positional `supported-teep-cipher-suites`.
    pub supported_teep_cipher_suites: Vec<TeepCipherSuite>,
    /// Positional `supported-suit-cose-profiles`.
    pub supported_suit_cose_profiles: Vec<SuitCoseProfile>,
    /// Positional `data-item-requested`.
    pub data_item_requested: DataItemRequested,
}

impl QueryRequest {
    /// Forgets every decoded key order (also of nested maps) so that the next encoding is
    /// deterministic (RFC 8949 §4.2.1).
    pub fn make_deterministic(&mut self) {
        self.key_order.clear();
    }

    const NAME: &'static str = "query-request";

    /// A QueryRequest with its three positional elements and no options.
    pub fn new(
        supported_teep_cipher_suites: Vec<TeepCipherSuite>,
        supported_suit_cose_profiles: Vec<SuitCoseProfile>,
        data_item_requested: DataItemRequested,
    ) -> Self {
        QueryRequest {
            supported_teep_cipher_suites,
            supported_suit_cose_profiles,
            data_item_requested,
            ..Default::default()
        }
    }
}

shared_setters!(QueryRequest {
    with_token,
    with_freshness_mechanisms,
    with_challenge,
    with_versions,
    with_attestation,
    with_suit_reports,
});

message_options!(QueryRequest {
    token: TOKEN,
    supported_freshness_mechanisms: SUPPORTED_FRESHNESS_MECHANISMS,
    challenge: CHALLENGE,
    versions: VERSIONS,
    attestation_payload_format: ATTESTATION_PAYLOAD_FORMAT,
    attestation_payload: ATTESTATION_PAYLOAD,
    suit_reports: SUIT_REPORTS,
});

impl TeepCodec for QueryRequest {
    fn from_value(value: &Value) -> Result<Self, TeepError> {
        let n = Self::NAME;
        let d = open(value, msg_type::QUERY_REQUEST, n, 3)?;
        let mut m = QueryRequest {
            key_order: d.key_order,
            ..Default::default()
        };
        m.read_options(d.entries, &d.op)?;
        let [suites, profiles, data_items] = d.positional else {
            return Err(TeepError::MissingElement { path: n.into() });
        };
        m.supported_teep_cipher_suites =
            f::suites(suites, &cbor::member(n, "supported-teep-cipher-suites"))?;
        m.supported_suit_cose_profiles =
            f::profiles(profiles, &cbor::member(n, "supported-suit-cose-profiles"))?;
        m.data_item_requested = DataItemRequested(cbor::as_u64(
            data_items,
            &cbor::member(n, "data-item-requested"),
        )?);
        Ok(m)
    }

    fn to_value(&self) -> Result<Value, TeepError> {
        let n = Self::NAME;
        Ok(Value::Array(vec![
            cbor::uint(msg_type::QUERY_REQUEST),
            self.options_value()?,
            f::enc_suites(
                &self.supported_teep_cipher_suites,
                &cbor::member(n, "supported-teep-cipher-suites"),
            )?,
            f::enc_profiles(
                &self.supported_suit_cose_profiles,
                &cbor::member(n, "supported-suit-cose-profiles"),
            )?,
            cbor::uint(self.data_item_requested.0),
        ]))
    }
}
inherent_codec!(QueryRequest);

// ---------------------------------------------------------------------------------------

/// QueryResponse (type 2, ED §4.3), sent by the TEEP Agent.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct QueryResponse {
    /// `token` (20).
    pub token: Option<Vec<u8>>,
    /// `selected-version` (6).
    pub selected_version: Option<u32>,
    /// `attestation-payload-format` (13).
    pub attestation_payload_format: Option<String>,
    /// `attestation-payload` (7): Evidence or Attestation Result.
    pub attestation_payload: Option<Vec<u8>>,
    /// `suit-reports` (19).
    pub suit_reports: Option<Vec<Vec<u8>>>,
    /// `tc-list` (8): installed Trusted Components.
    pub tc_list: Option<Vec<SystemPropertyClaims>>,
    /// `requested-tc-list` (14).
    pub requested_tc_list: Option<Vec<RequestedTcInfo>>,
    /// `unneeded-manifest-list` (15): SUIT manifest component ids.
    pub unneeded_manifest_list: Option<Vec<ComponentId>>,
    /// `ext-list` (9).
    pub ext_list: Option<Vec<u32>>,
    /// Options with labels this message does not define, in decoded order.
    pub extensions: Vec<(u64, Value)>,
    /// Decoded order of the options map.
    pub key_order: KeyOrder,
}

impl QueryResponse {
    /// Forgets every decoded key order (also of nested maps) so that the next encoding is
    /// deterministic (RFC 8949 §4.2.1).
    pub fn make_deterministic(&mut self) {
        self.key_order.clear();
        for c in self.tc_list.iter_mut().flatten() {
            c.key_order.clear();
        }
        for r in self.requested_tc_list.iter_mut().flatten() {
            r.key_order.clear();
        }
    }

    const NAME: &'static str = "query-response";

    /// An empty QueryResponse.
    pub fn new() -> Self {
        Self::default()
    }
    /// Sets `selected-version`.
    pub fn with_selected_version(mut self, v: u32) -> Self {
        self.selected_version = Some(v);
        self
    }
    /// Sets `tc-list`.
    pub fn with_tc_list(mut self, list: Vec<SystemPropertyClaims>) -> Self {
        self.tc_list = Some(list);
        self
    }
    /// Sets `requested-tc-list`.
    pub fn with_requested_tc_list(mut self, list: Vec<RequestedTcInfo>) -> Self {
        self.requested_tc_list = Some(list);
        self
    }
    /// Sets `ext-list`.
    pub fn with_ext_list(mut self, list: Vec<u32>) -> Self {
        self.ext_list = Some(list);
        self
    }
}

shared_setters!(QueryResponse {
    with_token,
    with_attestation,
    with_suit_reports,
    with_unneeded_manifest_list,
});

message_options!(QueryResponse {
    token: TOKEN,
    selected_version: SELECTED_VERSION,
    attestation_payload_format: ATTESTATION_PAYLOAD_FORMAT,
    attestation_payload: ATTESTATION_PAYLOAD,
    suit_reports: SUIT_REPORTS,
    tc_list: TC_LIST,
    requested_tc_list: REQUESTED_TC_LIST,
    unneeded_manifest_list: UNNEEDED_MANIFEST_LIST,
    ext_list: EXT_LIST,
});
options_only_codec!(QueryResponse, msg_type::QUERY_RESPONSE);

// ---------------------------------------------------------------------------------------

/// Update (type 3, ED §4.4), sent by the TAM: install, update and delete.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Update {
    /// `token` (20).
    pub token: Option<Vec<u8>>,
    /// `unneeded-manifest-list` (15).
    pub unneeded_manifest_list: Option<Vec<ComponentId>>,
    /// `manifest-list` (10): SUIT_Envelope bytes, kept as they are.
    pub manifest_list: Option<Vec<Vec<u8>>>,
    /// `attestation-payload-format` (13).
    pub attestation_payload_format: Option<String>,
    /// `attestation-payload` (7): Attestation Result for the Agent.
    pub attestation_payload: Option<Vec<u8>>,
    /// `err-code` (23).
    pub err_code: Option<ErrCode>,
    /// `err-msg` (12), 1..128 bytes.
    pub err_msg: Option<String>,
    /// `err-lang` (22), 1..35 bytes.
    pub err_lang: Option<String>,
    /// Options with labels this message does not define, in decoded order.
    pub extensions: Vec<(u64, Value)>,
    /// Decoded order of the options map.
    pub key_order: KeyOrder,
}

impl Update {
    /// Forgets every decoded key order (also of nested maps) so that the next encoding is
    /// deterministic (RFC 8949 §4.2.1).
    pub fn make_deterministic(&mut self) {
        self.key_order.clear();
    }

    const NAME: &'static str = "update";

    /// An empty Update.
    pub fn new() -> Self {
        Self::default()
    }
    /// Sets `manifest-list` (SUIT_Envelope bytes).
    pub fn with_manifests(mut self, envelopes: Vec<Vec<u8>>) -> Self {
        self.manifest_list = Some(envelopes);
        self
    }
    /// Sets `err-code` and optionally `err-msg`.
    pub fn with_error(mut self, code: ErrCode, msg: Option<String>) -> Self {
        self.err_code = Some(code);
        self.err_msg = msg;
        self
    }
}

shared_setters!(Update {
    with_token,
    with_unneeded_manifest_list,
    with_attestation,
    with_err_lang,
});

message_options!(Update {
    token: TOKEN,
    unneeded_manifest_list: UNNEEDED_MANIFEST_LIST,
    manifest_list: MANIFEST_LIST,
    attestation_payload_format: ATTESTATION_PAYLOAD_FORMAT,
    attestation_payload: ATTESTATION_PAYLOAD,
    err_code: ERR_CODE,
    err_msg: ERR_MSG,
    err_lang: ERR_LANG,
});
options_only_codec!(Update, msg_type::UPDATE);

// ---------------------------------------------------------------------------------------

/// Success (type 5 in the draft, ED §4.5), sent by the TEEP Agent.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Success {
    /// `token` (20).
    pub token: Option<Vec<u8>>,
    /// `msg` (11), 1..128 bytes.
    pub msg: Option<String>,
    /// `suit-reports` (19).
    pub suit_reports: Option<Vec<Vec<u8>>>,
    /// Options with labels this message does not define, in decoded order.
    pub extensions: Vec<(u64, Value)>,
    /// Decoded order of the options map.
    pub key_order: KeyOrder,
}

impl Success {
    /// Forgets every decoded key order (also of nested maps) so that the next encoding is
    /// deterministic (RFC 8949 §4.2.1).
    pub fn make_deterministic(&mut self) {
        self.key_order.clear();
    }

    const NAME: &'static str = "success";

    /// An empty Success.
    pub fn new() -> Self {
        Self::default()
    }
    /// Sets `msg`.
    pub fn with_msg(mut self, msg: impl Into<String>) -> Self {
        self.msg = Some(msg.into());
        self
    }
}

shared_setters!(Success {
    with_token,
    with_suit_reports
});

message_options!(Success {
    token: TOKEN,
    msg: MSG,
    suit_reports: SUIT_REPORTS,
});
options_only_codec!(Success, msg_type::SUCCESS);

// ---------------------------------------------------------------------------------------

/// Error (type 6 in the draft, ED §4.6), sent by the TEEP Agent.
#[derive(Debug, Clone, PartialEq)]
pub struct Error {
    /// `token` (20).
    pub token: Option<Vec<u8>>,
    /// `err-msg` (12), 1..128 bytes.
    pub err_msg: Option<String>,
    /// `err-lang` (22), 1..35 bytes.
    pub err_lang: Option<String>,
    /// `supported-teep-cipher-suites` (1).
    pub supported_teep_cipher_suites: Option<Vec<TeepCipherSuite>>,
    /// `supported-freshness-mechanisms` (21).
    pub supported_freshness_mechanisms: Option<Vec<FreshnessMechanism>>,
    /// `supported-suit-cose-profiles` (4).
    pub supported_suit_cose_profiles: Option<Vec<SuitCoseProfile>>,
    /// `challenge` (2): nonce for the TAM's own attestation.
    pub challenge: Option<Vec<u8>>,
    /// `versions` (3).
    pub versions: Option<Vec<u32>>,
    /// `suit-reports` (19).
    pub suit_reports: Option<Vec<Vec<u8>>>,
    /// Options with labels this message does not define, in decoded order.
    pub extensions: Vec<(u64, Value)>,
    /// Decoded order of the options map.
    pub key_order: KeyOrder,
    /// Positional `err-code`.
    pub err_code: ErrCode,
}

impl Error {
    /// Forgets every decoded key order (also of nested maps) so that the next encoding is
    /// deterministic (RFC 8949 §4.2.1).
    pub fn make_deterministic(&mut self) {
        self.key_order.clear();
    }

    const NAME: &'static str = "error";

    /// An Error with only its code.
    pub fn new(err_code: ErrCode) -> Self {
        Error {
            token: None,
            err_msg: None,
            err_lang: None,
            supported_teep_cipher_suites: None,
            supported_freshness_mechanisms: None,
            supported_suit_cose_profiles: None,
            challenge: None,
            versions: None,
            suit_reports: None,
            extensions: Vec::new(),
            key_order: KeyOrder::default(),
            err_code,
        }
    }
    /// Sets `err-msg`.
    pub fn with_err_msg(mut self, msg: impl Into<String>) -> Self {
        self.err_msg = Some(msg.into());
        self
    }
    /// Sets `supported-teep-cipher-suites`.
    pub fn with_cipher_suites(mut self, s: Vec<TeepCipherSuite>) -> Self {
        self.supported_teep_cipher_suites = Some(s);
        self
    }
    /// Sets `supported-suit-cose-profiles`.
    pub fn with_suit_cose_profiles(mut self, p: Vec<SuitCoseProfile>) -> Self {
        self.supported_suit_cose_profiles = Some(p);
        self
    }
}

shared_setters!(Error {
    with_token,
    with_err_lang,
    with_freshness_mechanisms,
    with_challenge,
    with_versions,
    with_suit_reports,
});

message_options!(Error {
    token: TOKEN,
    err_msg: ERR_MSG,
    err_lang: ERR_LANG,
    supported_teep_cipher_suites: SUPPORTED_TEEP_CIPHER_SUITES,
    supported_freshness_mechanisms: SUPPORTED_FRESHNESS_MECHANISMS,
    supported_suit_cose_profiles: SUPPORTED_SUIT_COSE_PROFILES,
    challenge: CHALLENGE,
    versions: VERSIONS,
    suit_reports: SUIT_REPORTS,
});

impl TeepCodec for Error {
    fn from_value(value: &Value) -> Result<Self, TeepError> {
        let n = Self::NAME;
        let d = open(value, msg_type::ERROR, n, 1)?;
        let [code] = d.positional else {
            return Err(TeepError::MissingElement { path: n.into() });
        };
        let mut m = Error::new(ErrCode::decode(code, &cbor::member(n, "err-code"))?);
        m.key_order = d.key_order;
        m.read_options(d.entries, &d.op)?;
        Ok(m)
    }

    fn to_value(&self) -> Result<Value, TeepError> {
        Ok(Value::Array(vec![
            cbor::uint(msg_type::ERROR),
            self.options_value()?,
            self.err_code
                .encode(&cbor::member(Self::NAME, "err-code"))?,
        ]))
    }
}
inherent_codec!(Error);

// ---------------------------------------------------------------------------------------

/// Any TEEP message.
#[derive(Debug, Clone, PartialEq)]
pub enum TeepMessage {
    /// QueryRequest (TAM → Agent).
    QueryRequest(QueryRequest),
    /// QueryResponse (Agent → TAM).
    QueryResponse(QueryResponse),
    /// Update (TAM → Agent).
    Update(Update),
    /// Success (Agent → TAM).
    Success(Success),
    /// Error (Agent → TAM).
    Error(Error),
}

/// Evaluates `$e` with `$m` bound to the message inside whichever variant `$msg` is.
macro_rules! each_variant {
    ($msg:expr, $m:ident => $e:expr) => {
        match $msg {
            TeepMessage::QueryRequest($m) => $e,
            TeepMessage::QueryResponse($m) => $e,
            TeepMessage::Update($m) => $e,
            TeepMessage::Success($m) => $e,
            TeepMessage::Error($m) => $e,
        }
    };
}

impl TeepMessage {
    /// Forgets every decoded key order so that the next encoding is deterministic.
    pub fn make_deterministic(&mut self) {
        each_variant!(self, m => m.make_deterministic())
    }

    /// The message type number ([`msg_type`]).
    pub fn message_type(&self) -> u64 {
        match self {
            TeepMessage::QueryRequest(_) => msg_type::QUERY_REQUEST,
            TeepMessage::QueryResponse(_) => msg_type::QUERY_RESPONSE,
            TeepMessage::Update(_) => msg_type::UPDATE,
            TeepMessage::Success(_) => msg_type::SUCCESS,
            TeepMessage::Error(_) => msg_type::ERROR,
        }
    }

    /// The `token` option, whatever the message.
    pub fn token(&self) -> Option<&[u8]> {
        each_variant!(self, m => m.token.as_deref())
    }
}

impl TeepCodec for TeepMessage {
    fn from_value(value: &Value) -> Result<Self, TeepError> {
        let items = cbor::as_array(value, "teep-message")?;
        let ty = match items.first() {
            Some(t) => cbor::as_u64(t, "teep-message.type")?,
            None => {
                return Err(TeepError::MissingElement {
                    path: "teep-message.type".into(),
                })
            }
        };
        Ok(match ty {
            msg_type::QUERY_REQUEST => TeepMessage::QueryRequest(QueryRequest::from_value(value)?),
            msg_type::QUERY_RESPONSE => {
                TeepMessage::QueryResponse(QueryResponse::from_value(value)?)
            }
            msg_type::UPDATE => TeepMessage::Update(Update::from_value(value)?),
            msg_type::SUCCESS => TeepMessage::Success(Success::from_value(value)?),
            msg_type::ERROR => TeepMessage::Error(Error::from_value(value)?),
            other => return Err(TeepError::UnknownMessageType(other)),
        })
    }

    fn to_value(&self) -> Result<Value, TeepError> {
        each_variant!(self, m => m.to_value())
    }
}
inherent_codec!(TeepMessage);

/// `From<T> for TeepMessage` for each message type `T` (its variant has the same name).
macro_rules! from_message {
    ($($t:ident),*) => {
        $(impl From<$t> for TeepMessage {
            fn from(m: $t) -> Self {
                TeepMessage::$t(m)
            }
        })*
    };
}
from_message!(QueryRequest, QueryResponse, Update, Success, Error);

/// Decodes any TEEP message under the default [`DecodeLimits`].
pub fn decode_any(bytes: &[u8]) -> Result<TeepMessage, TeepError> {
    TeepMessage::decode(bytes)
}
