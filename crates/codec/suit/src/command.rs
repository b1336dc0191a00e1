//! Command sequences (`SUIT_Command_Sequence`, `SUIT_Shared_Sequence`).

use alloc::vec::Vec;

use crate::cbor::{
    int, int_of, sort_canonical, to_array, uint, CborItem, Ctx, Path, Value, Wrapped,
};
use crate::error::Result;
use crate::labels::{condition as c, directive as d};
use crate::params::{int_list, uint_keyed, Parameters};

/// A reporting policy (`SUIT_Rep_Policy`, bits in [`crate::labels::reporting`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ReportingPolicy(pub u64);

impl ReportingPolicy {
    /// All four bits set (`15`), as in most published examples.
    pub const ALL: ReportingPolicy = ReportingPolicy(15);
}

/// Conditions: checks without side effects; all take a reporting policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Condition {
    /// 1: vendor identifier matches.
    VendorIdentifier,
    /// 2: class identifier matches.
    ClassIdentifier,
    /// 3: image digest matches.
    ImageMatch,
    /// 4: use-before (update-management).
    UseBefore,
    /// 5: component slot matches.
    ComponentSlot,
    /// 6: content matches.
    CheckContent,
    /// 7: dependency integrity (trust-domains).
    DependencyIntegrity,
    /// 8: current component is a dependency (trust-domains).
    IsDependency,
    /// 14: abort.
    Abort,
    /// 24: device identifier matches.
    DeviceIdentifier,
    /// 25: image does not match (update-management).
    ImageNotMatch,
    /// 26: minimum battery (update-management).
    MinimumBattery,
    /// 27: update authorized (update-management).
    UpdateAuthorized,
    /// 28: version (update-management).
    Version,
}

impl Condition {
    /// The command number.
    pub fn label(self) -> i64 {
        match self {
            Condition::VendorIdentifier => c::VENDOR_IDENTIFIER,
            Condition::ClassIdentifier => c::CLASS_IDENTIFIER,
            Condition::ImageMatch => c::IMAGE_MATCH,
            Condition::UseBefore => c::USE_BEFORE,
            Condition::ComponentSlot => c::COMPONENT_SLOT,
            Condition::CheckContent => c::CHECK_CONTENT,
            Condition::DependencyIntegrity => c::DEPENDENCY_INTEGRITY,
            Condition::IsDependency => c::IS_DEPENDENCY,
            Condition::Abort => c::ABORT,
            Condition::DeviceIdentifier => c::DEVICE_IDENTIFIER,
            Condition::ImageNotMatch => c::IMAGE_NOT_MATCH,
            Condition::MinimumBattery => c::MINIMUM_BATTERY,
            Condition::UpdateAuthorized => c::UPDATE_AUTHORIZED,
            Condition::Version => c::VERSION,
        }
    }
    /// The condition with command number `label`.
    pub fn from_label(label: i64) -> Option<Self> {
        Some(match label {
            c::VENDOR_IDENTIFIER => Condition::VendorIdentifier,
            c::CLASS_IDENTIFIER => Condition::ClassIdentifier,
            c::IMAGE_MATCH => Condition::ImageMatch,
            c::USE_BEFORE => Condition::UseBefore,
            c::COMPONENT_SLOT => Condition::ComponentSlot,
            c::CHECK_CONTENT => Condition::CheckContent,
            c::DEPENDENCY_INTEGRITY => Condition::DependencyIntegrity,
            c::IS_DEPENDENCY => Condition::IsDependency,
            c::ABORT => Condition::Abort,
            c::DEVICE_IDENTIFIER => Condition::DeviceIdentifier,
            c::IMAGE_NOT_MATCH => Condition::ImageNotMatch,
            c::MINIMUM_BATTERY => Condition::MinimumBattery,
            c::UPDATE_AUTHORIZED => Condition::UpdateAuthorized,
            c::VERSION => Condition::Version,
            _ => return None,
        })
    }
}

/// Directives whose argument is a reporting policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// 11: process dependency (trust-domains).
    ProcessDependency,
    /// 18: write `content` to the current component (decrypting with encryption-info).
    Write,
    /// 21: fetch from `uri`.
    Fetch,
    /// 22: copy from `source-component`.
    Copy,
    /// 23: invoke.
    Invoke,
    /// 29: wait (update-management).
    Wait,
    /// 31: swap with `source-component`.
    Swap,
    /// 33: unlink (trust-domains).
    Unlink,
}

impl Action {
    /// The command number.
    pub fn label(self) -> i64 {
        match self {
            Action::ProcessDependency => d::PROCESS_DEPENDENCY,
            Action::Write => d::WRITE,
            Action::Fetch => d::FETCH,
            Action::Copy => d::COPY,
            Action::Invoke => d::INVOKE,
            Action::Wait => d::WAIT,
            Action::Swap => d::SWAP,
            Action::Unlink => d::UNLINK,
        }
    }
    /// The directive with command number `label`.
    pub fn from_label(label: i64) -> Option<Self> {
        Some(match label {
            d::PROCESS_DEPENDENCY => Action::ProcessDependency,
            d::WRITE => Action::Write,
            d::FETCH => Action::Fetch,
            d::COPY => Action::Copy,
            d::INVOKE => Action::Invoke,
            d::WAIT => Action::Wait,
            d::SWAP => Action::Swap,
            d::UNLINK => Action::Unlink,
            _ => return None,
        })
    }
}

/// `IndexArg = uint / true / [+uint]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IndexArg {
    /// One component index.
    One(u64),
    /// All components (`true`).
    All,
    /// A list of indices.
    List(Vec<u64>),
}

/// Try-each argument: two or more sequences, optionally followed by `nil`.
#[derive(Debug, Clone, PartialEq)]
pub struct TryEach {
    /// The alternatives, each bstr-wrapped.
    pub sequences: Vec<Wrapped<CommandSequence>>,
    /// Whether a trailing `nil` (empty default) follows.
    pub nil_default: bool,
}

/// One command (condition or directive) with its argument.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Command {
    /// A condition with its reporting policy.
    Condition(Condition, ReportingPolicy),
    /// A directive with a reporting-policy argument.
    Action(Action, ReportingPolicy),
    /// 12: set-component-index.
    SetComponentIndex(IndexArg),
    /// 15: try-each.
    TryEach(TryEach),
    /// 19: set-parameters (set if unset).
    SetParameters(Parameters),
    /// 20: override-parameters.
    OverrideParameters(Parameters),
    /// 32: run-sequence.
    RunSequence(Wrapped<CommandSequence>),
    /// 34: override-multiple `{+ component-index => parameters}`.
    OverrideMultiple(Vec<(u64, Parameters)>),
    /// 35: copy-params `{+ source-component => [+ parameter label]}`.
    CopyParams(Vec<(u64, Vec<i64>)>),
    /// A custom (negative) or unknown command, kept as is.
    Other {
        /// Command number.
        label: i64,
        /// Its argument.
        arg: Value,
    },
}

impl Command {
    /// The command number.
    pub fn label(&self) -> i64 {
        match self {
            Command::Condition(cond, _) => cond.label(),
            Command::Action(a, _) => a.label(),
            Command::SetComponentIndex(_) => d::SET_COMPONENT_INDEX,
            Command::TryEach(_) => d::TRY_EACH,
            Command::SetParameters(_) => d::SET_PARAMETERS,
            Command::OverrideParameters(_) => d::OVERRIDE_PARAMETERS,
            Command::RunSequence(_) => d::RUN_SEQUENCE,
            Command::OverrideMultiple(_) => d::OVERRIDE_MULTIPLE,
            Command::CopyParams(_) => d::COPY_PARAMS,
            Command::Other { label, .. } => *label,
        }
    }

    fn decode(label: i64, arg: Value, path: &Path<'_>, ctx: &Ctx) -> Result<Self> {
        if let Some(cond) = Condition::from_label(label) {
            return Ok(Command::Condition(cond, policy(arg, path)?));
        }
        if let Some(a) = Action::from_label(label) {
            return Ok(Command::Action(a, policy(arg, path)?));
        }
        Ok(match label {
            d::SET_COMPONENT_INDEX => Command::SetComponentIndex(match arg {
                Value::Bool(true) => IndexArg::All,
                Value::Array(items) => {
                    if items.is_empty() {
                        return Err(path.invalid("empty component index list"));
                    }
                    let mut v = Vec::with_capacity(items.len());
                    for (i, it) in items.into_iter().enumerate() {
                        v.push(crate::cbor::to_uint(it, &path.index(i))?);
                    }
                    IndexArg::List(v)
                }
                Value::Integer(_) => IndexArg::One(crate::cbor::to_uint(arg, path)?),
                _ => return Err(path.ty("uint, true or [+uint]")),
            }),
            d::TRY_EACH => {
                let items = to_array(arg, path)?;
                let n = items.len();
                let mut sequences = Vec::with_capacity(n);
                let mut nil_default = false;
                for (i, it) in items.into_iter().enumerate() {
                    match it {
                        Value::Null if i + 1 == n && i > 0 => nil_default = true,
                        other => sequences.push(Wrapped::from_bstr(other, &path.index(i), ctx)?),
                    }
                }
                if sequences.is_empty() {
                    return Err(path.invalid("try-each needs at least one sequence"));
                }
                Command::TryEach(TryEach {
                    sequences,
                    nil_default,
                })
            }
            d::SET_PARAMETERS => Command::SetParameters(Parameters::from_value(arg, path, ctx)?),
            d::OVERRIDE_PARAMETERS => {
                Command::OverrideParameters(Parameters::from_value(arg, path, ctx)?)
            }
            d::RUN_SEQUENCE => Command::RunSequence(Wrapped::from_bstr(arg, path, ctx)?),
            d::OVERRIDE_MULTIPLE => Command::OverrideMultiple(uint_keyed(arg, path, |v, p| {
                Parameters::from_value(v, p, ctx)
            })?),
            d::COPY_PARAMS => Command::CopyParams(uint_keyed(arg, path, int_list)?),
            label => Command::Other { label, arg },
        })
    }

    fn arg_value(&self) -> Result<Value> {
        Ok(match self {
            Command::Condition(_, p) | Command::Action(_, p) => uint(p.0),
            Command::SetComponentIndex(IndexArg::One(i)) => uint(*i),
            Command::SetComponentIndex(IndexArg::All) => Value::Bool(true),
            Command::SetComponentIndex(IndexArg::List(l)) => {
                Value::Array(l.iter().map(|i| uint(*i)).collect())
            }
            Command::TryEach(t) => {
                let mut a: Vec<Value> = t.sequences.iter().map(Wrapped::to_bstr_value).collect();
                if t.nil_default {
                    a.push(Value::Null);
                }
                Value::Array(a)
            }
            Command::SetParameters(p) | Command::OverrideParameters(p) => p.to_value()?,
            Command::RunSequence(s) => s.to_bstr_value(),
            Command::OverrideMultiple(m) => {
                let mut e = Vec::with_capacity(m.len());
                for (k, p) in m {
                    e.push((uint(*k), p.to_value()?));
                }
                Value::Map(sort_canonical(e)?)
            }
            Command::CopyParams(m) => {
                let e = m
                    .iter()
                    .map(|(k, l)| (uint(*k), Value::Array(l.iter().map(|x| int(*x)).collect())))
                    .collect();
                Value::Map(sort_canonical(e)?)
            }
            Command::Other { arg, .. } => arg.clone(),
        })
    }
}

fn policy(arg: Value, path: &Path<'_>) -> Result<ReportingPolicy> {
    Ok(ReportingPolicy(crate::cbor::to_uint(arg, path)?))
}

/// A command sequence: the flat `[label, arg, label, arg, …]` list as typed commands.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CommandSequence(pub Vec<Command>);

impl CommandSequence {
    /// The commands.
    pub fn commands(&self) -> &[Command] {
        &self.0
    }
    /// Iterates over the parameters set by override/set-parameters commands at top level.
    pub fn parameters(&self) -> impl Iterator<Item = &crate::params::Parameter> {
        self.0.iter().flat_map(|c| match c {
            Command::OverrideParameters(p) | Command::SetParameters(p) => p.0.iter(),
            _ => [].iter(),
        })
    }
}

impl CborItem for CommandSequence {
    fn from_value(value: Value, path: &Path<'_>, ctx: &Ctx) -> Result<Self> {
        let items = to_array(value, path)?;
        if items.len() % 2 != 0 {
            return Err(path.invalid("command sequence must hold label/argument pairs"));
        }
        let mut cmds = Vec::with_capacity(items.len() / 2);
        let mut it = items.into_iter();
        let mut i = 0usize;
        while let (Some(l), Some(arg)) = (it.next(), it.next()) {
            let ipath = path.index(i);
            let label = int_of(&l).ok_or_else(|| ipath.ty("integer command label"))?;
            cmds.push(Command::decode(label, arg, &ipath.label(label), ctx)?);
            i += 2;
        }
        Ok(CommandSequence(cmds))
    }
    fn to_value(&self) -> Result<Value> {
        let mut a = Vec::with_capacity(self.0.len() * 2);
        for cmd in &self.0 {
            a.push(int(cmd.label()));
            a.push(cmd.arg_value()?);
        }
        Ok(Value::Array(a))
    }
}
