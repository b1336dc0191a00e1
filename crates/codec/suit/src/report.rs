//! SUIT Report (draft-ietf-suit-report, repo -18) and the system-property-claims TEEP
//! uses in its `tc-list`.

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use crate::cbor::{
    check_unique, int, int_of, sort_canonical, to_array, to_bytes, to_int, to_map, to_text,
    to_uint, uint, CborItem, Ctx, Path, Value,
};
use crate::digest::{ComponentId, Digest};
use crate::envelope::Envelope;
use crate::error::Result;
use crate::labels::report as r;
use crate::params::{Parameter, Parameters};

/// `SUIT_Report_Reasons`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReportReason {
    /// 0 ok.
    Ok,
    /// 1 cbor-parse.
    CborParse,
    /// 2 cose-unsupported.
    CoseUnsupported,
    /// 3 alg-unsupported.
    AlgUnsupported,
    /// 4 unauthorised.
    Unauthorised,
    /// 5 command-unsupported.
    CommandUnsupported,
    /// 6 component-unsupported.
    ComponentUnsupported,
    /// 7 component-unauthorised.
    ComponentUnauthorised,
    /// 8 parameter-unsupported.
    ParameterUnsupported,
    /// 9 severing-unsupported.
    SeveringUnsupported,
    /// 10 condition-failed.
    ConditionFailed,
    /// 11 operation-failed.
    OperationFailed,
    /// 12 invoke-pending.
    InvokePending,
    /// A value this crate does not know.
    Other(i64),
}

impl ReportReason {
    const TABLE: [ReportReason; 13] = [
        ReportReason::Ok,
        ReportReason::CborParse,
        ReportReason::CoseUnsupported,
        ReportReason::AlgUnsupported,
        ReportReason::Unauthorised,
        ReportReason::CommandUnsupported,
        ReportReason::ComponentUnsupported,
        ReportReason::ComponentUnauthorised,
        ReportReason::ParameterUnsupported,
        ReportReason::SeveringUnsupported,
        ReportReason::ConditionFailed,
        ReportReason::OperationFailed,
        ReportReason::InvokePending,
    ];
    /// The registered number.
    pub fn code(self) -> i64 {
        match self {
            ReportReason::Other(v) => v,
            known => Self::TABLE
                .iter()
                .position(|x| *x == known)
                .map_or(-1, |p| p as i64),
        }
    }
    /// The reason for a number.
    pub fn from_code(code: i64) -> Self {
        usize::try_from(code)
            .ok()
            .and_then(|i| Self::TABLE.get(i).copied())
            .unwrap_or(ReportReason::Other(code))
    }
}

/// `SUIT_Record`: where processing stopped and the parameters in force.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SuitRecord {
    /// Path of manifest indices (dependencies) down to the manifest concerned.
    pub manifest_id: Vec<u64>,
    /// Manifest section (member label, e.g. 20 install).
    pub manifest_section: i64,
    /// Byte offset of the command inside the section.
    pub section_offset: u64,
    /// Component index in force.
    pub component_index: u64,
    /// Parameters in force.
    pub properties: Parameters,
    /// Extension items after the properties, kept.
    pub extensions: Vec<Value>,
}

impl CborItem for SuitRecord {
    fn from_value(value: Value, path: &Path<'_>, ctx: &Ctx) -> Result<Self> {
        let mut it = to_array(value, path)?.into_iter();
        let mut next = |name: &'static str| it.next().ok_or_else(|| path.key(name).missing());
        let ids = next("manifest-id")?;
        let section = next("manifest-section")?;
        let offset = next("section-offset")?;
        let index = next("component-index")?;
        let props = next("properties")?;
        let mut manifest_id = Vec::new();
        let ipath = path.key("manifest-id");
        for (i, v) in to_array(ids, &ipath)?.into_iter().enumerate() {
            manifest_id.push(to_uint(v, &ipath.index(i))?);
        }
        Ok(SuitRecord {
            manifest_id,
            manifest_section: to_int(section, &path.key("manifest-section"))?,
            section_offset: to_uint(offset, &path.key("section-offset"))?,
            component_index: to_uint(index, &path.key("component-index"))?,
            properties: Parameters::from_value(props, &path.key("properties"), ctx)?,
            extensions: it.collect(),
        })
    }
    fn to_value(&self) -> Result<Value> {
        let mut a = vec![
            Value::Array(self.manifest_id.iter().map(|v| uint(*v)).collect()),
            int(self.manifest_section),
            uint(self.section_offset),
            uint(self.component_index),
            self.properties.to_value()?,
        ];
        a.extend(self.extensions.iter().cloned());
        Ok(Value::Array(a))
    }
}

/// `system-property-claims = {0 => SUIT_Component_Identifier, + $$SUIT_Parameters}`:
/// what is installed for one component (TEEP `tc-list` entries).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SystemPropertyClaims {
    /// `system-component-id`.
    pub component_id: ComponentId,
    /// The component's properties (image digest, size, version …).
    pub properties: Parameters,
}

impl CborItem for SystemPropertyClaims {
    fn from_value(value: Value, path: &Path<'_>, ctx: &Ctx) -> Result<Self> {
        let entries = to_map(value, path)?;
        check_unique(&entries, path)?;
        let mut component_id = None;
        let mut props = Vec::new();
        for (k, v) in entries {
            let l = int_of(&k).ok_or_else(|| path.ty("integer key"))?;
            if l == r::SYSTEM_COMPONENT_ID {
                component_id = Some(ComponentId::from_value(
                    v,
                    &path.key("system-component-id"),
                    ctx,
                )?);
            } else {
                props.push(Parameter::from_label_value(l, v, &path.label(l), ctx)?);
            }
        }
        Ok(SystemPropertyClaims {
            component_id: component_id.ok_or_else(|| path.key("system-component-id").missing())?,
            properties: Parameters(props),
        })
    }
    fn to_value(&self) -> Result<Value> {
        let mut e = vec![(int(r::SYSTEM_COMPONENT_ID), self.component_id.to_value()?)];
        e.extend(
            self.properties
                .iter()
                .map(|p| (int(p.label()), p.value_cbor())),
        );
        Ok(Value::Map(sort_canonical(e)?))
    }
}

/// One entry of `suit-report-records`.
#[derive(Debug, Clone, PartialEq)]
pub enum ReportEntry {
    /// A `SUIT_Record` (array).
    Record(SuitRecord),
    /// A `system-property-claims` map.
    System(SystemPropertyClaims),
}

/// `suit-report-result`.
#[derive(Debug, Clone, PartialEq)]
pub enum ReportResult {
    /// `true`: processing succeeded.
    Success,
    /// Failure details.
    Failure {
        /// `suit-report-result-code`.
        code: i64,
        /// `suit-report-result-record`: where it failed.
        record: SuitRecord,
        /// `suit-report-result-reason`.
        reason: ReportReason,
    },
}

/// `SUIT_Report`.
#[derive(Debug, Clone, PartialEq)]
pub struct SuitReport {
    /// `suit-reference`: the manifest's reference URI.
    pub reference_uri: String,
    /// `suit-reference`: the manifest's authentication digest.
    pub reference_digest: Digest,
    /// `suit-report-nonce` (TEEP: the token of the message being answered).
    pub nonce: Option<Vec<u8>>,
    /// `suit-report-records`.
    pub records: Vec<ReportEntry>,
    /// `suit-report-result`.
    pub result: ReportResult,
    /// `suit-report-capability-report`, kept as a CBOR value.
    pub capability_report: Option<Value>,
    /// Unknown members, kept.
    pub extensions: Vec<(Value, Value)>,
}

impl SuitReport {
    /// A report about `envelope` (reference URI from the manifest, empty if it has none;
    /// digest from its authentication wrapper).
    pub fn for_envelope(envelope: &Envelope, nonce: Option<Vec<u8>>, result: ReportResult) -> Self {
        SuitReport {
            reference_uri: envelope
                .manifest()
                .reference_uri
                .clone()
                .unwrap_or_default(),
            reference_digest: envelope.authentication.value().digest.value().clone(),
            nonce,
            records: Vec::new(),
            result,
            capability_report: None,
            extensions: Vec::new(),
        }
    }
}

impl CborItem for SuitReport {
    fn from_value(value: Value, path: &Path<'_>, ctx: &Ctx) -> Result<Self> {
        let entries = to_map(value, path)?;
        check_unique(&entries, path)?;
        let mut reference = None;
        let mut nonce = None;
        let mut records = None;
        let mut result = None;
        let mut capability_report = None;
        let mut extensions = Vec::new();
        for (k, v) in entries {
            match int_of(&k) {
                Some(r::REFERENCE) => {
                    let p = path.key("suit-reference");
                    let a = to_array(v, &p)?;
                    let [uri, digest]: [Value; 2] = a
                        .try_into()
                        .map_err(|_| p.invalid("suit-reference must be [uri, digest]"))?;
                    reference = Some((
                        to_text(uri, &p.index(0))?,
                        Digest::from_value(digest, &p.index(1), ctx)?,
                    ));
                }
                Some(r::NONCE) => nonce = Some(to_bytes(v, &path.key("nonce"))?),
                Some(r::RECORDS) => {
                    let p = path.key("records");
                    let mut out = Vec::new();
                    for (i, item) in to_array(v, &p)?.into_iter().enumerate() {
                        let ip = p.index(i);
                        out.push(match item {
                            Value::Array(_) => {
                                ReportEntry::Record(SuitRecord::from_value(item, &ip, ctx)?)
                            }
                            Value::Map(_) => ReportEntry::System(SystemPropertyClaims::from_value(
                                item, &ip, ctx,
                            )?),
                            _ => return Err(ip.ty("SUIT_Record or system-property-claims")),
                        });
                    }
                    records = Some(out);
                }
                Some(r::RESULT) => {
                    let p = path.key("result");
                    result = Some(match v {
                        Value::Bool(true) => ReportResult::Success,
                        Value::Map(m) => {
                            check_unique(&m, &p)?;
                            let (mut code, mut record, mut reason) = (None, None, None);
                            for (rk, rv) in m {
                                match int_of(&rk) {
                                    Some(r::RESULT_CODE) => {
                                        code = Some(to_int(rv, &p.key("result-code"))?);
                                    }
                                    Some(r::RESULT_RECORD) => {
                                        record = Some(SuitRecord::from_value(
                                            rv,
                                            &p.key("result-record"),
                                            ctx,
                                        )?);
                                    }
                                    Some(r::RESULT_REASON) => {
                                        reason = Some(ReportReason::from_code(to_int(
                                            rv,
                                            &p.key("result-reason"),
                                        )?));
                                    }
                                    _ => return Err(p.invalid("unknown result member")),
                                }
                            }
                            ReportResult::Failure {
                                code: code.ok_or_else(|| p.key("result-code").missing())?,
                                record: record.ok_or_else(|| p.key("result-record").missing())?,
                                reason: reason.ok_or_else(|| p.key("result-reason").missing())?,
                            }
                        }
                        _ => return Err(p.ty("true or result map")),
                    });
                }
                Some(r::CAPABILITY_REPORT) => capability_report = Some(v),
                _ => extensions.push((k, v)),
            }
        }
        let (reference_uri, reference_digest) =
            reference.ok_or_else(|| path.key("suit-reference").missing())?;
        Ok(SuitReport {
            reference_uri,
            reference_digest,
            nonce,
            records: records.ok_or_else(|| path.key("records").missing())?,
            result: result.ok_or_else(|| path.key("result").missing())?,
            capability_report,
            extensions,
        })
    }

    fn to_value(&self) -> Result<Value> {
        let mut e = vec![(
            int(r::REFERENCE),
            Value::Array(vec![
                Value::Text(self.reference_uri.clone()),
                self.reference_digest.to_value()?,
            ]),
        )];
        if let Some(n) = &self.nonce {
            e.push((int(r::NONCE), Value::Bytes(n.clone())));
        }
        let mut recs = Vec::with_capacity(self.records.len());
        for rec in &self.records {
            recs.push(match rec {
                ReportEntry::Record(x) => x.to_value()?,
                ReportEntry::System(x) => x.to_value()?,
            });
        }
        e.push((int(r::RECORDS), Value::Array(recs)));
        e.push((
            int(r::RESULT),
            match &self.result {
                ReportResult::Success => Value::Bool(true),
                ReportResult::Failure {
                    code,
                    record,
                    reason,
                } => Value::Map(vec![
                    (int(r::RESULT_CODE), int(*code)),
                    (int(r::RESULT_RECORD), record.to_value()?),
                    (int(r::RESULT_REASON), int(reason.code())),
                ]),
            },
        ));
        if let Some(c) = &self.capability_report {
            e.push((int(r::CAPABILITY_REPORT), c.clone()));
        }
        e.extend(self.extensions.iter().cloned());
        Ok(Value::Map(sort_canonical(e)?))
    }
}
