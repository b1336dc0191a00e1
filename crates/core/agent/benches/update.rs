//! Criterion: the Agent's handling of one TEEP Update end to end, in memory (COSE_Sign1
//! verification of the TAM message, SUIT processing of a TA manifest with a 16 KiB
//! integrated image in the SD policy, one commit, the signed Success), next to its
//! bound measured in the same run: the signature work it must do — verify the TAM's
//! ESP256 signature, verify the SUIT manifest's ESP256 signature, sign the Success.
//! `cargo bench -p otrp-agent --bench update`.
#![allow(missing_docs, clippy::unwrap_used, clippy::panic)]

use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion};
use otrp_agent::suit_processor::{MemoryStore, ProcessorConfig};
use otrp_agent::{
    Agent, AgentConfig, EatAttester, EatIdentity, Management, SdDescriptor, TrustedTam,
};
use otrp_cose::SignOptions;
use otrp_crypto::{AlgIdGeneration, CryptoProvider, KeyKind, PrivateKey, SigAlg};
use otrp_suit::{ComponentId, Envelope, TaManifestBuilder};
use otrp_teep::{Success, TeepMessage, Update};
use rand_chacha::rand_core::SeedableRng;

fn key(seed: u64) -> PrivateKey {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(seed);
    PrivateKey::generate(KeyKind::P256, &mut rng).unwrap()
}

fn signed_update(p: &dyn CryptoProvider, tam: &PrivateKey, token: u64, env: Vec<u8>) -> Vec<u8> {
    let up = Update::new()
        .with_token(token.to_be_bytes().to_vec())
        .with_manifests(vec![env]);
    otrp_teep::signed::sign1(p, tam, &TeepMessage::Update(up), AlgIdGeneration::New).unwrap()
}

fn update(c: &mut Criterion) {
    let p = otrp_crypto::rust_crypto_provider();
    let tam = key(1);
    let agent_key = key(2);
    let signer = key(3);
    let config = AgentConfig {
        tams: vec![TrustedTam {
            key: tam.public_key(),
            oem: true,
        }],
        oem_keys: vec![],
        management: Management::OemGated,
        agent_key: agent_key.clone(),
        alg_gen: AlgIdGeneration::New,
        processor: ProcessorConfig::default(),
        max_tokens: 64,
    };
    let identity = EatIdentity {
        ueid: vec![1; 17],
        oemid: otrp_eat::OemId::Pen(32473),
        hwmodel: b"bench".to_vec(),
        hwversion: "1.0".into(),
        measurement: [0x42; 32],
        x5chain: vec![],
        tfw_endorsement: None,
    };
    let new_agent = |store: MemoryStore| {
        let attester = EatAttester::new(p, key(4), identity.clone(), &agent_key.public_key());
        Agent::new(p, config.clone(), store, attester)
    };
    // Provision the SD once; every iteration starts from that store.
    let mut agent = new_agent(MemoryStore::new());
    let desc = SdDescriptor {
        name: b"sd".to_vec(),
        sp_id: "sp".into(),
        signers: vec![signer.public_key()],
        authorization: None,
        tam: None,
    };
    let bytes = desc.to_cbor().unwrap();
    let sd = TaManifestBuilder::new(otrp_agent::sd::sd_component_id(b"sd"), 1)
        .image_of(&bytes)
        .integrated_payload("#sd", bytes)
        .build_signed(p, &tam, &SignOptions::default())
        .unwrap()
        .encode()
        .unwrap();
    agent.handle(&signed_update(p, &tam, 0, sd), 1);
    let provisioned = agent.store().clone();
    let image = vec![0x5a; 16 * 1024];
    let env = TaManifestBuilder::new(ComponentId::new([&b"sd"[..], b"app"]), 1)
        .image_of(&image)
        .integrated_payload("#tc", image.clone())
        .build_signed(p, &signer, &SignOptions::default())
        .unwrap()
        .encode()
        .unwrap();
    let msg = signed_update(p, &tam, 1, env.clone());
    let mut check = new_agent(provisioned.clone());
    let out = check.handle(&msg, 2);
    let answer = otrp_teep::signed::verify(p, &out.send.unwrap(), &[agent_key.public_key()]);
    assert!(matches!(answer.unwrap().message, TeepMessage::Success(_)));

    let mut g = c.benchmark_group("agent");
    g.bench_function("update/16KiB-TA", |b| {
        b.iter_batched(
            || new_agent(provisioned.clone()),
            |mut a| a.handle(black_box(&msg), 2),
            BatchSize::SmallInput,
        )
    });
    // The bound: the three signature operations the Update requires.
    let tam_keys = [tam.public_key()];
    let signers = [signer.public_key()];
    let parsed = Envelope::decode(&env).unwrap();
    let success = TeepMessage::Success(Success::new().with_token(vec![1; 8]));
    g.bench_function("bound/verify-TAM+verify-SUIT+sign-Success", |b| {
        b.iter(|| {
            otrp_teep::signed::verify(p, black_box(&msg), &tam_keys).unwrap();
            parsed.verify(p, &signers).unwrap();
            p.sign(SigAlg::P256Sha256, &agent_key, &success.to_vec().unwrap())
                .unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, update);
criterion_main!(benches);
