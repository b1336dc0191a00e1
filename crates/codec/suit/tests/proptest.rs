//! Property tests: built manifests and command sequences round-trip exactly.
#![allow(clippy::unwrap_used, clippy::panic)]

use otrp_suit::{
    Action, CborItem, Command, CommandSequence, ComponentId, Condition, Digest, Envelope, IndexArg,
    ManifestDependency, Parameter, Parameters, ReportingPolicy, TaManifestBuilder, TryEach, Value,
    Wrapped,
};
use proptest::prelude::*;

fn component() -> impl Strategy<Value = ComponentId> {
    prop::collection::vec(prop::collection::vec(any::<u8>(), 0..12), 0..5).prop_map(ComponentId)
}

fn param() -> impl Strategy<Value = Parameter> {
    prop_oneof![
        any::<[u8; 16]>().prop_map(Parameter::ClassId),
        any::<u64>().prop_map(Parameter::ImageSize),
        any::<bool>().prop_map(Parameter::SoftFailure),
        "[a-z:/#.]{0,30}".prop_map(Parameter::Uri),
        prop::collection::vec(any::<u8>(), 0..40).prop_map(Parameter::Content),
        prop::collection::vec(any::<u8>(), 0..40)
            .prop_map(|d| Parameter::ImageDigest(Wrapped::new(Digest::sha256(&d)).unwrap())),
        (-1000i64..-1, any::<i32>()).prop_map(|(label, v)| Parameter::Other {
            label,
            value: Value::from(v)
        }),
    ]
}

fn params() -> impl Strategy<Value = Parameters> {
    // unique labels: a map cannot hold a key twice
    prop::collection::vec(param(), 1..6).prop_map(|mut v| {
        let mut seen = std::collections::BTreeSet::new();
        v.retain(|p| seen.insert(p.label()));
        // decoding yields the deterministic (encoded-key) order the encoder writes
        v.sort_by_key(|p| {
            let mut k = Vec::new();
            ciborium::ser::into_writer(&Value::from(p.label()), &mut k).unwrap();
            k
        });
        Parameters(v)
    })
}

fn leaf_command() -> impl Strategy<Value = Command> {
    prop_oneof![
        (0usize..3, any::<u8>()).prop_map(|(i, p)| Command::Condition(
            [
                Condition::VendorIdentifier,
                Condition::ImageMatch,
                Condition::Version
            ][i],
            ReportingPolicy(u64::from(p))
        )),
        (0usize..4, any::<u8>()).prop_map(|(i, p)| Command::Action(
            [Action::Fetch, Action::Write, Action::Invoke, Action::Unlink][i],
            ReportingPolicy(u64::from(p))
        )),
        any::<u32>().prop_map(|i| Command::SetComponentIndex(IndexArg::One(u64::from(i)))),
        Just(Command::SetComponentIndex(IndexArg::All)),
        prop::collection::vec(any::<u8>().prop_map(u64::from), 1..4)
            .prop_map(|l| Command::SetComponentIndex(IndexArg::List(l))),
        params().prop_map(Command::OverrideParameters),
        params().prop_map(Command::SetParameters),
        (-50i64..-1, any::<i16>()).prop_map(|(label, v)| Command::Other {
            label,
            arg: Value::from(v)
        }),
    ]
}

fn sequence() -> impl Strategy<Value = CommandSequence> {
    let leaf = prop::collection::vec(leaf_command(), 1..6).prop_map(CommandSequence);
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop::collection::vec(
            prop_oneof![
                leaf_command(),
                inner
                    .clone()
                    .prop_map(|s| Command::RunSequence(Wrapped::new(s).unwrap())),
                (prop::collection::vec(inner, 2..4), any::<bool>()).prop_map(|(seqs, nil)| {
                    Command::TryEach(TryEach {
                        sequences: seqs.into_iter().map(|s| Wrapped::new(s).unwrap()).collect(),
                        nil_default: nil,
                    })
                }),
            ],
            1..5,
        )
        .prop_map(CommandSequence)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn command_sequences_round_trip(seq in sequence()) {
        let w = Wrapped::new(seq.clone()).unwrap();
        let back = Wrapped::<CommandSequence>::from_inner_bytes(w.bytes().to_vec()).unwrap();
        prop_assert_eq!(back.value(), &seq);
        prop_assert_eq!(back.value().to_cbor().unwrap(), w.bytes().to_vec());
    }

    #[test]
    fn built_envelopes_round_trip(
        cid in component(),
        seq_no in any::<u64>(),
        vendor in any::<[u8; 16]>(),
        class in prop::option::of(any::<[u8; 16]>()),
        image in prop::collection::vec(any::<u8>(), 0..64),
        kind in 0u8..3,
        uri in "https://[a-z]{1,10}\\.example/[a-z0-9]{0,10}",
        dep in prop::option::of((component(), any::<u32>())),
        uninstall in any::<bool>(),
        tagged in any::<bool>(),
        mcid in prop::option::of(component()),
    ) {
        let mut b = TaManifestBuilder::new(cid, seq_no).vendor_id(vendor).image_of(&image)
            .uninstall(uninstall).tagged(tagged);
        if let Some(c) = class { b = b.class_id(c); }
        if let Some(m) = mcid { b = b.manifest_component_id(m); }
        b = match kind {
            0 => b.uri(uri.clone()),
            1 => b.integrated_payload("#tc", image.clone()),
            _ => b.encrypted_content(image.clone(), vec![0xd8, 0x60, 0x80]),
        };
        if let Some((prefix, size)) = dep {
            b = b.dependency(ManifestDependency {
                prefix, digest: Digest::sha256(&image), size: u64::from(size), uri,
            });
        }
        let env = b.build_unsigned().unwrap();
        env.check_integrity().unwrap();
        let bytes = env.encode().unwrap();
        let back = Envelope::decode(&bytes).unwrap();
        prop_assert_eq!(back.tagged, tagged);
        prop_assert_eq!(back.manifest(), env.manifest());
        prop_assert_eq!(back.encode().unwrap(), bytes);
        back.check_integrity().unwrap();
        prop_assert!(back.install().unwrap().is_some());
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = Envelope::decode(&data);
        let _ = otrp_suit::SuitReport::from_cbor(&data);
        let _ = CommandSequence::from_cbor(&data);
    }
}
