//! A schema-aware view of a CBOR item: every label named, every `bstr .cbor` member opened,
//! rendered as annotated diagnostic notation (EDN) or JSON.

use super::cbor;
use super::names::{self, Ctx};
use ciborium::value::Value;
use std::fmt::Write as _;

/// One node of the annotated tree.
#[derive(Debug, Clone)]
pub struct Node {
    /// The value.
    pub kind: Kind,
    /// A human note (label or value name), printed as an EDN comment.
    pub note: Option<String>,
}

/// Node values.
#[derive(Debug, Clone)]
pub enum Kind {
    /// Any integer.
    Int(i128),
    /// Byte string.
    Bytes(Vec<u8>),
    /// Byte string holding one CBOR item (`bstr .cbor`), opened.
    Embedded(Box<Node>),
    /// Text string.
    Text(String),
    /// Boolean.
    Bool(bool),
    /// null.
    Null,
    /// Floating point.
    Float(f64),
    /// Other simple values, `undefined` included.
    Simple(String),
    /// Array.
    Array(Vec<Node>),
    /// Map in encoded order.
    Map(Vec<(Node, Node)>),
    /// Tagged item.
    Tag(u64, Box<Node>),
}

impl Node {
    fn new(kind: Kind) -> Self {
        Node { kind, note: None }
    }
    fn with_note(mut self, note: Option<impl Into<String>>) -> Self {
        self.note = note.map(Into::into);
        self
    }
}

/// What an item is, judged from its tag or shape.
pub fn classify(v: &Value) -> (&'static str, Ctx) {
    match v {
        Value::Tag(18, _) => ("COSE_Sign1", Ctx::Any),
        Value::Tag(98, _) => ("COSE_Sign", Ctx::Any),
        Value::Tag(96, _) => ("COSE_Encrypt", Ctx::Any),
        Value::Tag(16, _) => ("COSE_Encrypt0", Ctx::Any),
        Value::Tag(17, _) => ("COSE_Mac0", Ctx::Any),
        Value::Tag(107, _) => ("SUIT envelope", Ctx::SuitEnvelope),
        Value::Tag(1070, _) => ("SUIT manifest", Ctx::SuitManifest),
        Value::Tag(61, inner) => classify(inner),
        Value::Array(a) if cose_shape(a).is_some() => (cose_shape(a).unwrap_or("COSE"), Ctx::Any),
        Value::Array(a) => match (a.first().and_then(int), a.get(1)) {
            (Some(t), Some(Value::Map(_))) if names::teep_type(t as i64).is_some() => {
                ("TEEP message", Ctx::TeepMessage)
            }
            _ => ("CBOR array", Ctx::Any),
        },
        Value::Map(m) => {
            let has = |k: i128| m.iter().any(|(key, _)| int(key) == Some(k));
            if has(2) && has(3) && matches!(map_get(m, 3), Some(Value::Bytes(_))) {
                ("SUIT envelope", Ctx::SuitEnvelope)
            } else if has(99) {
                ("SUIT report", Ctx::SuitReport)
            } else if has(256) || has(10) || has(258) || has(259) {
                ("EAT claims", Ctx::EatClaims)
            } else if has(1) && (has(-1) || has(-2)) {
                ("COSE_Key", Ctx::CoseKey)
            } else if has(1) && has(2) && has(3) && matches!(map_get(m, 3), Some(Value::Bytes(_))) {
                ("SUIT manifest", Ctx::SuitManifest)
            } else {
                ("CBOR map", Ctx::Any)
            }
        }
        _ => ("CBOR item", Ctx::Any),
    }
}

/// Recognises untagged COSE structures by shape.
fn cose_shape(a: &[Value]) -> Option<&'static str> {
    let [Value::Bytes(_), Value::Map(_), payload, last] = a else {
        return None;
    };
    if !matches!(payload, Value::Bytes(_) | Value::Null) {
        return None;
    }
    match last {
        Value::Bytes(_) => Some("COSE_Sign1"),
        Value::Array(items) if !items.is_empty() => {
            let all_sigs = items.iter().all(|s| {
                matches!(s, Value::Array(x) if x.len() == 3 && matches!(x[..], [Value::Bytes(_), Value::Map(_), Value::Bytes(_)]))
            });
            if all_sigs {
                Some("COSE_Sign")
            } else {
                Some("COSE_Encrypt")
            }
        }
        _ => None,
    }
}

fn int(v: &Value) -> Option<i128> {
    match v {
        Value::Integer(i) => Some(i128::from(*i)),
        _ => None,
    }
}

fn map_get(m: &[(Value, Value)], k: i128) -> Option<&Value> {
    m.iter()
        .find(|(key, _)| int(key) == Some(k))
        .map(|(_, v)| v)
}

/// Builds the annotated tree of `v`, starting from its classification.
pub fn build_root(v: &Value) -> Node {
    let (_, ctx) = classify(v);
    build(v, ctx)
}

fn embedded(bytes: &[u8], ctx: Ctx) -> Node {
    match cbor::parse_embedded(bytes) {
        Some(inner) => {
            let ctx = if ctx == Ctx::Any {
                classify(&inner).1
            } else {
                ctx
            };
            Node::new(Kind::Embedded(Box::new(build(&inner, ctx))))
        }
        None => Node::new(Kind::Bytes(bytes.to_vec())),
    }
}

/// Builds the tree for `v` found in context `ctx`.
pub fn build(v: &Value, ctx: Ctx) -> Node {
    match v {
        Value::Tag(tag, inner) => {
            let inner_node = match (tag, inner.as_ref()) {
                (18 | 98 | 96 | 16 | 17 | 97, Value::Array(a)) => cose(a, *tag),
                (107, _) => build(inner, Ctx::SuitEnvelope),
                (1070, _) => build(inner, Ctx::SuitManifest),
                _ => build(inner, classify(inner).1),
            };
            Node::new(Kind::Tag(*tag, Box::new(inner_node)))
        }
        Value::Array(a) if ctx == Ctx::Any && cose_shape(a).is_some() => {
            let tag = match cose_shape(a) {
                Some("COSE_Sign") => 98,
                Some("COSE_Encrypt") => 96,
                _ => 18,
            };
            cose(a, tag)
        }
        Value::Array(a) => match ctx {
            Ctx::TeepMessage => teep_message(a),
            Ctx::SuitSequence => suit_sequence(a),
            Ctx::SuitAuth => Node::new(Kind::Array(
                a.iter()
                    .enumerate()
                    .map(|(i, x)| match x {
                        Value::Bytes(b) if i == 0 => {
                            embedded(b, Ctx::Any).with_note(Some("digest"))
                        }
                        Value::Bytes(b) => embedded(b, Ctx::Any).with_note(Some("authentication")),
                        other => build(other, Ctx::Any),
                    })
                    .collect(),
            )),
            Ctx::SuitParameters | Ctx::RequestedTc | Ctx::SuitEnvelope | Ctx::SuitReport => {
                // lists of maps/envelopes (tc-list, requested-tc-list, manifest-list, reports)
                Node::new(Kind::Array(
                    a.iter()
                        .map(|x| match x {
                            Value::Bytes(b) => embedded(b, ctx),
                            other => build(other, ctx),
                        })
                        .collect(),
                ))
            }
            _ => Node::new(Kind::Array(
                a.iter().map(|x| build(x, ctx_of_items(ctx))).collect(),
            )),
        },
        Value::Map(m) => Node::new(Kind::Map(
            m.iter()
                .map(|(k, val)| {
                    let label = int(k).and_then(|i| i64::try_from(i).ok());
                    let key_note = label.and_then(|l| names::label(ctx, l));
                    let vctx = label.map(|l| names::value_ctx(ctx, l)).unwrap_or(Ctx::Any);
                    let key = build(k, Ctx::Any).with_note(key_note);
                    let value = map_value(ctx, label, val, vctx);
                    (key, value)
                })
                .collect(),
        )),
        Value::Bytes(b) if ctx != Ctx::Any => embedded_if_schema(b, ctx),
        other => scalar(other),
    }
}

fn ctx_of_items(ctx: Ctx) -> Ctx {
    match ctx {
        Ctx::SuitParameters => Ctx::SuitParameters,
        _ => Ctx::Any,
    }
}

fn embedded_if_schema(b: &[u8], ctx: Ctx) -> Node {
    match ctx {
        Ctx::SuitEnvelope
        | Ctx::SuitAuth
        | Ctx::SuitManifest
        | Ctx::SuitCommon
        | Ctx::SuitSequence
        | Ctx::SuitReport
        | Ctx::EatClaims => embedded(b, ctx),
        _ => Node::new(Kind::Bytes(b.to_vec())),
    }
}

fn map_value(ctx: Ctx, label: Option<i64>, val: &Value, vctx: Ctx) -> Node {
    match (ctx, label, val) {
        (Ctx::CoseHeaders | Ctx::CoseKey, Some(1 | 3), Value::Integer(i))
            if ctx == Ctx::CoseHeaders || label == Some(3) =>
        {
            scalar(val).with_note(i64::try_from(i128::from(*i)).ok().and_then(names::cose_alg))
        }
        (Ctx::TeepOptions, Some(23), Value::Integer(i)) => {
            scalar(val).with_note(i64::try_from(i128::from(*i)).ok().and_then(names::teep_err))
        }
        (Ctx::TeepOptions, Some(7), Value::Bytes(b)) => embedded(b, Ctx::Any),
        (Ctx::SuitParameters, Some(3), Value::Bytes(b)) => embedded(b, Ctx::Any),
        (Ctx::SuitParameters, Some(19), Value::Bytes(b)) => embedded(b, Ctx::Any),
        (Ctx::SuitEnvelope, None, Value::Bytes(b)) => Node::new(Kind::Bytes(b.to_vec()))
            .with_note(Some(format!("integrated payload, {} bytes", b.len()))),
        _ => build(val, vctx),
    }
}

fn scalar(v: &Value) -> Node {
    Node::new(match v {
        Value::Integer(i) => Kind::Int(i128::from(*i)),
        Value::Bytes(b) => Kind::Bytes(b.clone()),
        Value::Text(t) => Kind::Text(t.clone()),
        Value::Bool(b) => Kind::Bool(*b),
        Value::Null => Kind::Null,
        Value::Float(f) => Kind::Float(*f),
        Value::Array(_) | Value::Map(_) | Value::Tag(..) => return build(v, Ctx::Any),
        other => Kind::Simple(format!("{other:?}")),
    })
}

fn cose(a: &[Value], tag: u64) -> Node {
    let headers = |v: &Value| match v {
        Value::Bytes(b) if b.is_empty() => Node::new(Kind::Bytes(Vec::new())),
        Value::Bytes(b) => match cbor::parse_embedded(b) {
            Some(h) => Node::new(Kind::Embedded(Box::new(build(&h, Ctx::CoseHeaders)))),
            None => Node::new(Kind::Bytes(b.clone())),
        },
        Value::Map(_) => build(v, Ctx::CoseHeaders),
        other => build(other, Ctx::Any),
    };
    let mut out = Vec::with_capacity(a.len());
    for (i, item) in a.iter().enumerate() {
        let node = match i {
            0 => headers(item).with_note(Some("protected")),
            1 => headers(item).with_note(Some("unprotected")),
            2 => match item {
                Value::Bytes(b) if matches!(tag, 18 | 98 | 17 | 97) => {
                    embedded(b, Ctx::Any).with_note(Some("payload"))
                }
                Value::Null => Node::new(Kind::Null).with_note(Some("detached")),
                other => build(other, Ctx::Any).with_note(Some(if matches!(tag, 96 | 16) {
                    "ciphertext"
                } else {
                    "payload"
                })),
            },
            3 => match (tag, item) {
                (98, Value::Array(sigs)) => Node::new(Kind::Array(
                    sigs.iter()
                        .map(|s| match s {
                            Value::Array(x) => cose(x, 0).with_note(Some("COSE_Signature")),
                            other => build(other, Ctx::Any),
                        })
                        .collect(),
                ))
                .with_note(Some("signatures")),
                (96, Value::Array(rs)) => Node::new(Kind::Array(
                    rs.iter()
                        .map(|r| match r {
                            Value::Array(x) => cose(x, 96).with_note(Some("COSE_recipient")),
                            other => build(other, Ctx::Any),
                        })
                        .collect(),
                ))
                .with_note(Some("recipients")),
                (0, other) => build(other, Ctx::Any).with_note(Some("signature")),
                (_, other) => build(other, Ctx::Any).with_note(Some("signature")),
            },
            _ => build(item, Ctx::Any),
        };
        out.push(node);
    }
    Node::new(Kind::Array(out))
}

fn teep_message(a: &[Value]) -> Node {
    let ty = a.first().and_then(int).and_then(|t| i64::try_from(t).ok());
    let mut out = Vec::with_capacity(a.len());
    for (i, item) in a.iter().enumerate() {
        let node = match (i, ty) {
            (0, _) => scalar(item).with_note(ty.and_then(names::teep_type)),
            (1, _) => build(item, Ctx::TeepOptions).with_note(Some("options")),
            (2, Some(1)) => build(item, Ctx::Any).with_note(Some("supported-teep-cipher-suites")),
            (3, Some(1)) => build(item, Ctx::Any).with_note(Some("supported-suit-cose-profiles")),
            (4, Some(1)) => scalar(item).with_note(Some("data-item-requested")),
            (2, Some(6)) => scalar(item).with_note(
                int(item)
                    .and_then(|c| i64::try_from(c).ok())
                    .and_then(names::teep_err)
                    .or(Some("err-code")),
            ),
            _ => build(item, Ctx::Any),
        };
        out.push(node);
    }
    Node::new(Kind::Array(out))
}

fn suit_sequence(a: &[Value]) -> Node {
    let mut out = Vec::with_capacity(a.len());
    let mut iter = a.iter();
    while let Some(cmd) = iter.next() {
        let code = int(cmd).and_then(|c| i64::try_from(c).ok());
        out.push(scalar(cmd).with_note(code.and_then(names::suit_command)));
        let Some(arg) = iter.next() else { break };
        let node = match (code, arg) {
            (Some(19 | 20), Value::Map(_)) => build(arg, Ctx::SuitParameters),
            (Some(15), Value::Array(seqs)) => Node::new(Kind::Array(
                seqs.iter()
                    .map(|s| match s {
                        Value::Bytes(b) => embedded(b, Ctx::SuitSequence),
                        other => build(other, Ctx::Any),
                    })
                    .collect(),
            )),
            (Some(32), Value::Bytes(b)) => embedded(b, Ctx::SuitSequence),
            _ => build(arg, Ctx::Any),
        };
        out.push(node);
    }
    Node::new(Kind::Array(out))
}

/// Renders the tree as diagnostic notation, with notes as `/ comments /`.
pub fn to_edn(node: &Node) -> String {
    let mut s = String::new();
    edn(node, 0, &mut s);
    s
}

fn indent(level: usize, s: &mut String) {
    for _ in 0..level {
        s.push_str("  ");
    }
}

fn note(node: &Node, s: &mut String) {
    if let Some(n) = &node.note {
        let _ = write!(s, " / {} /", n.replace('/', "∕"));
    }
}

fn edn(node: &Node, level: usize, s: &mut String) {
    match &node.kind {
        Kind::Int(i) => {
            let _ = write!(s, "{i}");
        }
        Kind::Bytes(b) => {
            let _ = write!(s, "h'{}'", hex::encode_upper(b));
        }
        Kind::Embedded(inner) => {
            s.push_str("<< ");
            edn(inner, level, s);
            s.push_str(" >>");
        }
        Kind::Text(t) => {
            let _ = write!(s, "{t:?}");
        }
        Kind::Bool(b) => {
            let _ = write!(s, "{b}");
        }
        Kind::Null => s.push_str("null"),
        Kind::Float(f) => {
            let _ = write!(s, "{f:?}");
        }
        Kind::Simple(x) => s.push_str(x),
        Kind::Tag(t, inner) => {
            let _ = write!(s, "{t}(");
            edn(inner, level, s);
            s.push(')');
        }
        Kind::Array(items) => {
            if items.is_empty() {
                s.push_str("[]");
            } else if let Some(line) = inline(items) {
                s.push_str(&line);
            } else {
                s.push_str("[\n");
                for (i, item) in items.iter().enumerate() {
                    indent(level + 1, s);
                    edn(item, level + 1, s);
                    if i + 1 < items.len() {
                        s.push(',');
                    }
                    note(item, s);
                    s.push('\n');
                }
                indent(level, s);
                s.push(']');
            }
        }
        Kind::Map(entries) => {
            if entries.is_empty() {
                s.push_str("{}");
            } else {
                s.push_str("{\n");
                for (i, (k, v)) in entries.iter().enumerate() {
                    indent(level + 1, s);
                    if let Some(n) = &k.note {
                        let _ = write!(s, "/ {} / ", n.replace('/', "∕"));
                    }
                    edn(k, level + 1, s);
                    s.push_str(": ");
                    edn(v, level + 1, s);
                    if i + 1 < entries.len() {
                        s.push(',');
                    }
                    note(v, s);
                    s.push('\n');
                }
                indent(level, s);
                s.push('}');
            }
        }
    }
}

/// One-line rendering of short arrays of plain scalars (no notes, no nesting but arrays).
fn inline(items: &[Node]) -> Option<String> {
    let mut parts = Vec::with_capacity(items.len());
    for item in items {
        if item.note.is_some() {
            return None;
        }
        let part = match &item.kind {
            Kind::Int(_) | Kind::Bytes(_) | Kind::Text(_) | Kind::Bool(_) | Kind::Null => {
                to_edn(item)
            }
            Kind::Array(inner) => inline(inner)?,
            _ => return None,
        };
        parts.push(part);
    }
    let line = format!("[{}]", parts.join(", "));
    (line.len() <= 72).then_some(line)
}

/// Renders the tree as JSON: labels by name where known, bytes as hex.
pub fn to_json(node: &Node) -> serde_json::Value {
    use serde_json::{json, Map, Value as J};
    match &node.kind {
        Kind::Int(i) => i64::try_from(*i)
            .map(J::from)
            .or_else(|_| u64::try_from(*i).map(J::from))
            .unwrap_or_else(|_| J::String(i.to_string())),
        Kind::Bytes(b) => J::String(hex::encode(b)),
        Kind::Embedded(inner) => to_json(inner),
        Kind::Text(t) => J::String(t.clone()),
        Kind::Bool(b) => J::Bool(*b),
        Kind::Null => J::Null,
        Kind::Float(f) => json!(f),
        Kind::Simple(x) => J::String(x.clone()),
        Kind::Tag(t, inner) => json!({ "tag": t, "value": to_json(inner) }),
        Kind::Array(items) => J::Array(
            items
                .iter()
                .map(|item| match &item.note {
                    Some(n) => {
                        let mut m = Map::new();
                        m.insert(n.clone(), to_json(item));
                        J::Object(m)
                    }
                    None => to_json(item),
                })
                .collect(),
        ),
        Kind::Map(entries) => {
            let mut m = Map::new();
            for (k, v) in entries {
                let raw = match &k.kind {
                    Kind::Int(i) => i.to_string(),
                    Kind::Text(t) => t.clone(),
                    _ => to_edn(k),
                };
                let name = match &k.note {
                    Some(n) => format!("{n} ({raw})"),
                    None => raw,
                };
                let mut value = to_json(v);
                if let (Some(n), J::String(_) | J::Number(_)) = (&v.note, &value) {
                    value = json!({ "value": value, "name": n });
                }
                m.insert(name, value);
            }
            J::Object(m)
        }
    }
}
