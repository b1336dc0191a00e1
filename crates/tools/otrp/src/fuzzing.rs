//! Fuzz target bodies, shared by the `cargo fuzz` targets in `fuzz/` (long runs by hand)
//! and the smoke test that CI runs (`tests/fuzz_smoke.rs`). Each takes arbitrary bytes and
//! must return without panicking, whatever they are.

use std::sync::OnceLock;

use crate::inspect::{cbor, typed, view};
use otrp_crypto::{CryptoProvider, KeyKind, PrivateKey, PublicKey};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;

/// A fuzz target body.
pub type Target = fn(&[u8]);

/// Every fuzz target: its name and body.
pub const TARGETS: &[(&str, Target)] = &[
    ("teep_decode", teep_decode),
    ("teep_verify", teep_verify),
    ("suit_decode", suit_decode),
    ("suit_verify", suit_verify),
    ("eat_decode", eat_decode),
    ("cose_decode", cose_decode),
    ("otrp_json_decode", otrp_json_decode),
    ("inspect", inspect),
    ("agent_teep", agent_teep),
    ("agent_otrp", agent_otrp),
    ("delta_apply", delta_apply),
    ("coap", coap),
    ("suit_process", suit_process),
];

/// Seeds a target needs beyond the published examples of `testdata/` (inputs it could
/// not find on its own: patch headers with the base image's digest, CoAP exchanges,
/// OTrP TBS payloads in the framing of [`agent_otrp`]). `fuzz/seeds/<target>/` holds them
/// for `scripts/fuzz.sh`; the smoke test checks that they are current.
pub fn extra_seeds(target: &str) -> Vec<Vec<u8>> {
    match target {
        "delta_apply" => delta_seeds(),
        "coap" => coap_seeds(),
        "agent_otrp" => otrp_seeds(),
        _ => Vec::new(),
    }
}

/// TEEP message decoding and re-encoding.
pub fn teep_decode(data: &[u8]) {
    if let Ok(msg) = otrp_teep::decode_any(data) {
        let _ = msg.to_vec();
    }
}

fn test_key() -> otrp_crypto::PublicKey {
    // The SUIT examples' published key: any fixed key does for the decoder paths.
    const PEM: &str = "-----BEGIN PUBLIC KEY-----\n\
        MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEhJaBGq4LqqvSYVcYnuzaJr6qi/Eb\n\
        bz/m4rVlnIXbwK07HypLbAmBMcCjbazR14vTgdzfsJwFLbM5kdtzOLSolg==\n\
        -----END PUBLIC KEY-----\n";
    match otrp_crypto::PublicKey::from_pem(PEM) {
        Ok(k) => k,
        Err(e) => unreachable!("the embedded test key parses: {e}"),
    }
}

/// Signed TEEP message verification (COSE_Sign1 / COSE_Sign), as an Agent or TAM runs it.
pub fn teep_verify(data: &[u8]) {
    let _ = otrp_teep::signed::verify(otrp_crypto::rust_crypto_provider(), data, &[test_key()]);
}

/// SUIT envelope decoding, re-encoding and integrity checks.
pub fn suit_decode(data: &[u8]) {
    if let Ok(env) = otrp_suit::Envelope::decode(data) {
        let _ = env.encode();
        let _ = env.check_integrity();
    }
}

/// SUIT authentication verification.
pub fn suit_verify(data: &[u8]) {
    if let Ok(env) = otrp_suit::Envelope::decode(data) {
        let _ = env.verify(otrp_crypto::rust_crypto_provider(), &[test_key()]);
    }
}

/// EAT claims decoding and the signed-EAT path.
pub fn eat_decode(data: &[u8]) {
    if let Ok(c) = otrp_eat::EatClaims::decode(data) {
        let _ = c.to_vec();
        let _ = c.check_teep_profile();
    }
    let _ = otrp_eat::signed::verify(otrp_crypto::rust_crypto_provider(), data, &[test_key()]);
}

/// COSE classification and parsing of every structure kind.
pub fn cose_decode(data: &[u8]) {
    let _ = otrp_cose::peek(data);
    let _ = otrp_cose::parse_mac0(data);
    let _ = otrp_cose::cose_key_from_slice(data);
    let _ = otrp_cose::encrypt::parse_encryption_info(data);
}

/// OTrP JSON decoding and re-encoding.
pub fn otrp_json_decode(data: &[u8]) {
    if let Ok(msg) = otrp_json::decode_any(data) {
        let _ = otrp_json::encode(&msg);
    }
}

/// The whole of `otrp inspect`: recognition, view, round trip, verification.
pub fn inspect(data: &[u8]) {
    let _ = typed::recognise(data);
    if let Ok(v) = cbor::parse(data) {
        let tree = view::build_root(&v);
        let _ = view::to_edn(&tree);
        let _ = view::to_json(&tree);
    }
    let _ = typed::roundtrip(data);
    let keys = [crate::inspect::keys::VerifyKey::Public(test_key())];
    let _ = typed::verify(otrp_crypto::rust_crypto_provider(), data, &keys);
}

fn provider() -> &'static dyn CryptoProvider {
    otrp_crypto::rust_crypto_provider()
}

/// The provider the harness signs its inputs with (ring, uninstrumented native code,
/// key pairs prepared once): the code under test still verifies with [`provider`], but
/// a fuzz build no longer spends most of an execution on the coverage-instrumented
/// pure-Rust signing of the harness. Ed25519 signatures are deterministic, so the bytes
/// are those `RustCryptoProvider` makes (`ring_ed25519_signatures_match_rust_crypto`);
/// ring's ES256 nonces are random, which the handling behind the signature check does
/// not depend on (a crash still reproduces from its input).
fn signing_provider() -> &'static dyn CryptoProvider {
    static RING: otrp_crypto::RingProvider = otrp_crypto::RingProvider;
    &RING
}

/// The provider of the Agents under test: the pure-Rust provider (the TEE's) for all
/// it does with its input (signature verification, ECDH, decryption, digests), but its
/// own signatures (answers, EATs: over bytes it built, no branch on them) by
/// [`signing_provider`]. Coverage-instrumented pure-Rust P-256 signing was most of an
/// `agent_otrp` execution (every request, refused or not, is answered TEE-signed).
#[derive(Debug)]
struct AgentProvider;

impl CryptoProvider for AgentProvider {
    fn sha256(&self, data: &[u8]) -> [u8; 32] {
        provider().sha256(data)
    }

    fn sign(
        &self,
        alg: otrp_crypto::SigAlg,
        key: &PrivateKey,
        msg: &[u8],
    ) -> Result<Vec<u8>, otrp_crypto::CryptoError> {
        signing_provider().sign(alg, key, msg)
    }

    fn verify(
        &self,
        alg: otrp_crypto::SigAlg,
        key: &PublicKey,
        msg: &[u8],
        sig: &[u8],
    ) -> Result<(), otrp_crypto::CryptoError> {
        provider().verify(alg, key, msg, sig)
    }

    fn ecdh_p256(
        &self,
        private: &otrp_crypto::p256::SecretKey,
        peer: &otrp_crypto::p256::PublicKey,
    ) -> Result<otrp_crypto::zeroize::Zeroizing<[u8; 32]>, otrp_crypto::CryptoError> {
        provider().ecdh_p256(private, peer)
    }

    fn hkdf_sha256(
        &self,
        salt: &[u8],
        ikm: &[u8],
        info: &[u8],
        out: &mut [u8],
    ) -> Result<(), otrp_crypto::CryptoError> {
        provider().hkdf_sha256(salt, ikm, info, out)
    }

    fn hmac_sha256(&self, key: &[u8], data: &[u8]) -> [u8; 32] {
        provider().hmac_sha256(key, data)
    }

    fn aes_kw_wrap(&self, kek: &[u8], key: &[u8]) -> Result<Vec<u8>, otrp_crypto::CryptoError> {
        provider().aes_kw_wrap(kek, key)
    }

    fn aes_kw_unwrap(
        &self,
        kek: &[u8],
        wrapped: &[u8],
    ) -> Result<Vec<u8>, otrp_crypto::CryptoError> {
        provider().aes_kw_unwrap(kek, wrapped)
    }

    fn aes_gcm_seal(
        &self,
        key: &[u8],
        nonce: &[u8],
        aad: &[u8],
        plaintext: &[u8],
    ) -> Result<Vec<u8>, otrp_crypto::CryptoError> {
        provider().aes_gcm_seal(key, nonce, aad, plaintext)
    }

    fn aes_gcm_open(
        &self,
        key: &[u8],
        nonce: &[u8],
        aad: &[u8],
        ciphertext: &[u8],
    ) -> Result<Vec<u8>, otrp_crypto::CryptoError> {
        provider().aes_gcm_open(key, nonce, aad, ciphertext)
    }

    fn aes_ctr_apply(
        &self,
        key: &[u8],
        iv: &[u8; 16],
        data: &mut [u8],
    ) -> Result<(), otrp_crypto::CryptoError> {
        provider().aes_ctr_apply(key, iv, data)
    }
}

fn agent_provider() -> &'static dyn CryptoProvider {
    static AGENT: AgentProvider = AgentProvider;
    &AGENT
}

/// A fixed key from a seeded generator: the same on every run, so every crash reproduces.
fn fixed_key(seed: u64, kind: KeyKind) -> PrivateKey {
    match PrivateKey::generate(kind, &mut ChaCha20Rng::seed_from_u64(seed)) {
        Ok(k) => k,
        Err(e) => unreachable!("generating a {kind:?} key from a seeded generator: {e}"),
    }
}

/// Keys built once per process (key generation is far slower than one execution).
struct Keys {
    /// The TAM the Agents trust (Ed25519: cheapest deterministic signature).
    tam: PrivateKey,
    /// The Agent's TEEP key.
    agent: PrivateKey,
    /// The Agent's attestation key.
    attestation: PrivateKey,
    /// The OTrP TAM (JWS: ES256, RFC 6979).
    otrp_tam: PrivateKey,
    /// The OTrP TEE key.
    tee: PrivateKey,
    /// The SUIT signer the processor trusts (Ed25519).
    suit_signer: PrivateKey,
}

fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| Keys {
        tam: fixed_key(1, KeyKind::Ed25519),
        agent: fixed_key(2, KeyKind::Ed25519),
        attestation: fixed_key(3, KeyKind::Ed25519),
        otrp_tam: fixed_key(4, KeyKind::P256),
        tee: fixed_key(5, KeyKind::P256),
        suit_signer: fixed_key(6, KeyKind::Ed25519),
    })
}

/// `payload` as the payload of a COSE_Sign1 signed by `key` (deterministic signature,
/// thumbprint kid): what a trusted peer would send, so the fuzz bytes reach past the
/// signature check.
fn signed_by(key: &PrivateKey, payload: &[u8]) -> Option<Vec<u8>> {
    otrp_cose::sign1(
        signing_provider(),
        key,
        payload,
        false,
        &otrp_cose::SignOptions::default(),
    )
    .ok()
}

fn device_identity() -> otrp_suit_processor::DeviceIdentity {
    otrp_suit_processor::DeviceIdentity {
        vendor_id: Some(otrp_suit::VendorId::Uuid([0xC0; 16])),
        class_ids: vec![[0xDB; 16]],
        device_id: None,
    }
}

fn teep_agent() -> otrp_agent::Agent<otrp_suit_processor::MemoryStore, otrp_agent::EatAttester> {
    let k = keys();
    let identity = otrp_agent::EatIdentity {
        ueid: vec![0x01; 33],
        oemid: otrp_eat::OemId::Pen(32473),
        hwmodel: b"opentrust-fuzz".to_vec(),
        hwversion: "1.0".into(),
        measurement: [0x42; 32],
        x5chain: vec![b"leaf-der".to_vec()],
        tfw_endorsement: None,
    };
    let attester = otrp_agent::EatAttester::new(
        agent_provider(),
        k.attestation.clone(),
        identity,
        &k.agent.public_key(),
    );
    let config = otrp_agent::AgentConfig {
        tams: vec![otrp_agent::TrustedTam {
            key: k.tam.public_key(),
            oem: true,
        }],
        oem_keys: Vec::new(),
        management: otrp_agent::Management::OemGated,
        agent_key: k.agent.clone(),
        alg_gen: otrp_crypto::AlgIdGeneration::New,
        processor: otrp_suit_processor::ProcessorConfig {
            device: device_identity(),
            ..Default::default()
        },
        max_tokens: 8,
    };
    otrp_agent::Agent::new(
        agent_provider(),
        config,
        otrp_suit_processor::MemoryStore::new(),
        attester,
    )
}

/// The TEEP Agent's message entry (`Agent::handle`), on a fresh Agent (in-memory store)
/// per execution: first the fuzz bytes as the payload of a COSE_Sign1 by the trusted TAM
/// (so they reach the message handling behind the signature check), then the raw bytes
/// to the same Agent (COSE parsing, rogue signers, replays of the first message's
/// token). A `NeedFetch` is answered with the fuzz bytes.
pub fn agent_teep(data: &[u8]) {
    let mut agent = teep_agent();
    if let Some(msg) = signed_by(&keys().tam, data) {
        let out = agent.handle(&msg, 1_800_000_000);
        for e in &out.events {
            if let otrp_agent::Event::NeedFetch { uri } = e {
                let _ = agent.provide_fetch(uri, data.to_vec(), 1_800_000_001);
            }
        }
    }
    let _ = agent.handle(data, 1_800_000_002);
}

/// The `agent_otrp` fixture, built once per process: the OTrP Agent (stateless itself,
/// its state lives in the store, which is fresh per execution) and the `kid` of the
/// trusted TAM (its JWK thumbprint: a public-key derivation, not redone per input).
struct OtrpFixture {
    agent: otrp_agent::OtrpAgent,
    kid: String,
}

fn otrp_fixture() -> &'static OtrpFixture {
    static FIXTURE: OnceLock<OtrpFixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let k = keys();
        let tam = k.otrp_tam.public_key();
        let config = otrp_agent::OtrpConfig {
            tams: vec![otrp_agent::OtrpTam {
                key: tam.clone(),
                tamid: "fuzz-tam".into(),
                oem: true,
            }],
            oem_keys: Vec::new(),
            management: otrp_agent::Management::OemGated,
            tee_key: k.tee.clone(),
            // Opaque to the Agent (hashed into `did`, echoed in the DSI).
            tee_cert: b"fuzz-tee-certificate".to_vec(),
            tee_cacerts: Vec::new(),
            tee_name: "OpenTrust-Fuzz".into(),
            tee_version: "1.0".into(),
            tfw: None,
            legacy: otrp_json::LegacyMode::Deny,
            max_rids: 8,
            processor: otrp_suit_processor::ProcessorConfig {
                device: device_identity(),
                ..Default::default()
            },
        };
        OtrpFixture {
            agent: otrp_agent::OtrpAgent::new(agent_provider(), config),
            kid: otrp_crypto::jwk::thumbprint_b64(&tam, provider()),
        }
    })
}

/// `payload` as the TBS of a `kind` request in a flattened JWS signed by the trusted
/// OTrP TAM (ES256, signed with [`signing_provider`]).
fn otrp_signed_request(kind: otrp_json::MessageKind, payload: &[u8]) -> Option<Vec<u8>> {
    let signer = otrp_json::Signer::new(&keys().otrp_tam).with_kid(otrp_fixture().kid.clone());
    let jws = otrp_json::jose::sign_flattened(signing_provider(), &signer, payload).ok()?;
    let request = otrp_json::SignedRequest {
        kind,
        jws: otrp_json::Jws::Flattened(jws),
    };
    otrp_json::json::to_vec(&request).ok()
}

/// The OTrP Agent's request entry (`OtrpAgent::handle`, JSON) on a fresh in-memory
/// store per execution. An input starting with `{` (a JSON object: every OTrP message,
/// and the published examples) goes to the Agent as it is (JSON decoding, rogue or
/// tampered signatures); any other is `[command, TBS payload…]`: the payload in a
/// flattened JWS signed by the trusted TAM (ES256), so it reaches the command handling
/// behind the signature check. Each execution takes one of the two paths: the Agent's
/// verification and TEE-signed answer are the cost of an execution, paid once.
pub fn agent_otrp(data: &[u8]) {
    let agent = &otrp_fixture().agent;
    let mut store = otrp_suit_processor::MemoryStore::new();
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    let request = match data.split_first() {
        Some((&first, payload)) if first != b'{' => {
            let kinds = otrp_json::MessageKind::ALL;
            let kind = kinds[usize::from(first) % kinds.len()];
            otrp_signed_request(kind, payload)
        }
        _ => None,
    };
    let message = request.as_deref().unwrap_or(data);
    let _ = agent.handle(&mut store, message, 1_800_000_001, &mut rng);
}

/// The fixed base image of `delta_apply` (and the image its seeds patch towards).
pub fn delta_base() -> &'static [u8] {
    static BASE: OnceLock<Vec<u8>> = OnceLock::new();
    BASE.get_or_init(|| {
        let mut rng = ChaCha20Rng::seed_from_u64(0xde17a);
        let mut base = Vec::with_capacity(4096);
        while base.len() < 4096 {
            // compressible, code-like: repeated runs with some noise
            let run = b"\x00\x48\x89\xe5\x41\x57\x41\x56\x53\x50\xc3\x90";
            base.extend_from_slice(run);
            base.push(rand::RngCore::next_u32(&mut rng) as u8);
        }
        base
    })
}

/// Valid patches against [`delta_base`] (a delta and a compressed full image), to seed
/// the `delta_apply` corpus: the header digests must match for the fuzzer to get past
/// them, which it cannot find on its own.
pub fn delta_seeds() -> Vec<Vec<u8>> {
    let base = delta_base();
    let mut new = base.to_vec();
    new[100..140].fill(0xAA);
    new.extend_from_slice(b"appended tail of the new image");
    vec![
        otrp_delta::diff(base, &new),
        otrp_delta::compress_full(&new, 512, 6),
        otrp_delta::compress_full(&new, 64, 1),
    ]
}

/// Delta patch and compressed full image decoding and application
/// (`otrp_delta::apply`) against a fixed base image, with the expected digests taken
/// from the patch's own header (so the fuzzer gets past the header checks), and
/// `apply_full` without a base.
pub fn delta_apply(data: &[u8]) {
    let limits = otrp_delta::Limits {
        max_new_size: 1 << 20,
        max_chunk_size: 4 << 10,
    };
    let Ok(header) = otrp_delta::read_header(data) else {
        return;
    };
    let expected = otrp_delta::Expected {
        old_digest: match header.kind {
            otrp_delta::PatchKind::Delta { old_digest, .. } => Some(old_digest),
            otrp_delta::PatchKind::Deflate { .. } => None,
        },
        new_digest: header.new_digest,
    };
    let mut old = delta_base();
    let mut sink = Vec::new();
    let _ = otrp_delta::apply(data, &mut old, &mut sink, &expected, &limits);
    let mut sink = Vec::new();
    let _ = otrp_delta::apply_full(data, &mut sink, &header.new_digest, &limits);
}

fn coap_instant() -> std::time::Instant {
    static START: OnceLock<std::time::Instant> = OnceLock::new();
    *START.get_or_init(std::time::Instant::now)
}

/// CoAP (RFC 7252 + block-wise RFC 7959) sans-IO cores: the input is a sequence of
/// datagrams `[control, length, bytes…]` fed to a fresh `ServerCore` (from one of four
/// peers) or to a fresh `ClientCore` with one POST in progress (the datagram then gets
/// the message id and token of the client's last transmission, so it is taken as an
/// answer), with the clock advancing by the control byte and timers run. Completed
/// requests are answered with bodies of input-chosen size (Block2 downloads).
pub fn coap(data: &[u8]) {
    use otrp_coap::{ClientCore, Config, Response, ServerCore, ServerEvent};
    use std::net::{IpAddr, Ipv4Addr, SocketAddr};
    use std::time::Duration;

    let peer = |i: u8| SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, i)), 5683);
    let mut now = coap_instant();
    let config = Config {
        block_szx: 1,
        max_body: 4096,
        max_uploads: 4,
        // Small enough for an input to reach it: the refusals are fuzzed too, and the
        // held-bytes count is checked against a recount at every sweep (debug builds).
        max_held_bytes: 12 << 10,
        ..Config::default()
    };
    let mut server = ServerCore::new(config.clone());
    let mut client = ClientCore::new(config, &mut ChaCha20Rng::seed_from_u64(1));
    let body: Vec<u8> = (0..300u16).map(|i| i as u8).collect();
    client.post(peer(9), otrp_coap::TEEP_PATH, body, now);
    let mut last_client_tx: Option<Vec<u8>> = None;
    let mut rest = data;
    while let [ctl, len, tail @ ..] = rest {
        let n = usize::from(*len).min(tail.len());
        let (dgram, after) = tail.split_at(n);
        rest = after;
        now += Duration::from_millis(u64::from(ctl >> 4) * 250);
        if ctl & 0x08 == 0 {
            server.handle_datagram(peer(ctl & 3), dgram, now);
            server.handle_timeout(now);
            while let Some(ServerEvent::Request { id, request }) = server.poll_event() {
                let size = request.body.len() * usize::from(ctl & 7) % 3000;
                server.respond(id, Response::changed(vec![0x5a; size]), now);
            }
            while server.poll_transmit().is_some() {}
        } else {
            let answer = match (&last_client_tx, dgram) {
                (Some(tx), [b0, b1, ..]) if tx.len() >= 4 => {
                    let tkl = usize::from(tx[0] & 0x0f).min(tx.len() - 4);
                    let skip = usize::from(b0 & 0x0f).min(dgram.len() - 2);
                    let mut a = vec![(b0 & 0xf0) | tx[0] & 0x0f, *b1, tx[2], tx[3]];
                    a.extend_from_slice(&tx[4..4 + tkl]);
                    a.extend_from_slice(dgram.get(2 + skip..).unwrap_or_default());
                    a
                }
                _ => dgram.to_vec(),
            };
            client.handle_datagram(peer(9), &answer, now);
            client.handle_timeout(now);
            while client.poll_event().is_some() {}
            while let Some(t) = client.poll_transmit() {
                last_client_tx = Some(t.data);
            }
        }
        if last_client_tx.is_none() {
            while let Some(t) = client.poll_transmit() {
                last_client_tx = Some(t.data);
            }
        }
    }
}

/// The SUIT envelope with authentication recomputed for the trusted signer: if `data`
/// is a CBOR map with a manifest (key 3, bstr), its authentication wrapper (key 2) is
/// replaced; otherwise `data` is taken as the manifest bytes of a new envelope.
fn suit_signed(data: &[u8], key: &PrivateKey) -> Option<Vec<u8>> {
    use ciborium::Value;
    let mut envelope = match ciborium::from_reader::<Value, _>(data) {
        Ok(Value::Tag(107, inner)) => match *inner {
            Value::Map(m) => m,
            _ => Vec::new(),
        },
        Ok(Value::Map(m)) => m,
        _ => Vec::new(),
    };
    let manifest_key = |k: &Value| *k == Value::Integer(3.into());
    let manifest = match envelope.iter().find(|(k, _)| manifest_key(k)) {
        Some((_, Value::Bytes(m))) => m.clone(),
        _ => {
            envelope = vec![(Value::Integer(3.into()), Value::Bytes(data.to_vec()))];
            data.to_vec()
        }
    };
    let mut wrapped = Vec::new();
    ciborium::into_writer(&Value::Bytes(manifest), &mut wrapped).ok()?;
    let digest = Value::Array(vec![
        Value::Integer((-16).into()),
        Value::Bytes(provider().sha256(&wrapped).to_vec()),
    ]);
    let mut digest_bytes = Vec::new();
    ciborium::into_writer(&digest, &mut digest_bytes).ok()?;
    let block = otrp_cose::sign1(
        signing_provider(),
        key,
        &digest_bytes,
        true,
        &otrp_cose::SignOptions::default(),
    )
    .ok()?;
    let auth = Value::Array(vec![Value::Bytes(digest_bytes), Value::Bytes(block)]);
    let mut auth_bytes = Vec::new();
    ciborium::into_writer(&auth, &mut auth_bytes).ok()?;
    envelope.retain(|(k, _)| *k != Value::Integer(2.into()));
    envelope.insert(0, (Value::Integer(2.into()), Value::Bytes(auth_bytes)));
    let mut out = Vec::new();
    ciborium::into_writer(&Value::Map(envelope), &mut out).ok()?;
    Some(out)
}

/// The SUIT processor (`otrp_suit_processor::Processor::update`, then `invoke` and
/// `unlink` of what it installed) on a fresh in-memory store, the envelope's
/// authentication recomputed for a trusted signer ([`suit_signed`]) so every command
/// sequence runs; a `NeedFetch` is answered with the fuzz bytes. The raw bytes are
/// processed too (authentication failures).
pub fn suit_process(data: &[u8]) {
    use otrp_suit_processor::{AllowAll, ChangeSet, ComponentStore, Holder, Processor, Step};
    static CONFIG: OnceLock<(otrp_suit_processor::ProcessorConfig, Vec<PublicKey>)> =
        OnceLock::new();
    let (config, anchors) = CONFIG.get_or_init(|| {
        let config = otrp_suit_processor::ProcessorConfig {
            device: device_identity(),
            max_image_size: 64 << 10,
            ..Default::default()
        };
        (config, vec![keys().suit_signer.public_key()])
    });
    let mut processor = Processor::new(provider(), config, anchors, &AllowAll);
    let mut store = otrp_suit_processor::MemoryStore::new();
    let base = ChangeSet::default();
    let _ = processor.update(&store, &base, data, Some(b"nonce"));
    let Some(envelope) = suit_signed(data, &keys().suit_signer) else {
        return;
    };
    let mut step = processor.update(&store, &base, &envelope, Some(b"nonce"));
    if let Step::NeedFetch { uri } = &step {
        processor.provide(uri.clone(), data.to_vec());
        step = processor.update(&store, &base, &envelope, Some(b"nonce"));
    }
    if let Step::Done(applied) = step {
        let applied = *applied;
        if store.commit(applied.changes).is_ok() {
            let _ = processor.invoke(&store, &applied.manifest_id);
            let _ = processor.unlink(&store, &base, &applied.manifest_id, &Holder::Tam);
        }
    }
}

/// A CoAP exchange in the framing of [`coap`]: a client POSTs a 300-byte body in 32-byte
/// Block1 blocks to a server that answers with 100 bytes (Block2); every datagram either
/// way.
fn coap_seeds() -> Vec<Vec<u8>> {
    use otrp_coap::{ClientCore, Config, Response, ServerCore, ServerEvent};
    use std::net::{IpAddr, Ipv4Addr, SocketAddr};
    let peer = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 9)), 5683);
    let now = coap_instant();
    let config = Config {
        block_szx: 1,
        ..Config::default()
    };
    let mut server = ServerCore::new(config.clone());
    let mut client = ClientCore::new(config, &mut ChaCha20Rng::seed_from_u64(1));
    let body: Vec<u8> = (0..300u16).map(|i| i as u8).collect();
    client.post(peer, otrp_coap::TEEP_PATH, body, now);
    let mut framed = Vec::new();
    for _ in 0..64 {
        let mut moved = false;
        while let Some(t) = client.poll_transmit() {
            framed.extend_from_slice(&[0x00, t.data.len().min(255) as u8]);
            framed.extend_from_slice(&t.data);
            server.handle_datagram(peer, &t.data, now);
            moved = true;
        }
        while let Some(ServerEvent::Request { id, .. }) = server.poll_event() {
            server.respond(id, Response::changed(vec![0x5a; 100]), now);
        }
        while let Some(t) = server.poll_transmit() {
            framed.extend_from_slice(&[0x08, t.data.len().min(255) as u8]);
            framed.extend_from_slice(&t.data);
            client.handle_datagram(peer, &t.data, now);
            moved = true;
        }
        if !moved {
            break;
        }
    }
    vec![framed, coap_new_token_per_block_seed()]
}

/// A client that sends every block with a new token, as libcoap does: a 100-byte body
/// in 32-byte Block1 blocks with a Request-Tag, then Block2 requests for the rest of the
/// answer (the harness answers 3 × 100 bytes to peer 3). Control byte 0x03: peer 3.
fn coap_new_token_per_block_seed() -> Vec<u8> {
    use coap_lite::{CoapOption, MessageClass, MessageType, Packet, RequestType};
    let datagram = |mid: u16, token: [u8; 2], block: (CoapOption, u8), payload: &[u8]| {
        let mut p = Packet::new();
        p.header.set_type(MessageType::Confirmable);
        p.header.code = MessageClass::Request(RequestType::Post);
        p.header.message_id = mid;
        p.set_token(token.to_vec());
        p.add_option(CoapOption::UriPath, b"teep".to_vec());
        p.add_option(block.0, vec![block.1]);
        if block.0 == CoapOption::Block1 {
            p.add_option(CoapOption::Unknown(292), vec![0xab]);
        }
        p.payload = payload.to_vec();
        p.to_bytes().unwrap_or_default()
    };
    let body: Vec<u8> = (0..100u8).collect();
    let mut framed = Vec::new();
    let mut frame = |d: Vec<u8>| {
        framed.extend_from_slice(&[0x03, d.len().min(255) as u8]);
        framed.extend_from_slice(&d);
    };
    for (num, chunk) in body.chunks(32).enumerate() {
        let more = u8::from((num + 1) * 32 < body.len()) << 3;
        let block = ((num as u8) << 4) | more | 1;
        frame(datagram(
            0x100 + num as u16,
            [0x70, num as u8],
            (CoapOption::Block1, block),
            chunk,
        ));
    }
    for num in 1..10u8 {
        frame(datagram(
            0x200 + u16::from(num),
            [0x71, num],
            (CoapOption::Block2, (num << 4) | 1),
            &[],
        ));
    }
    framed
}

/// The TBS payloads of the published OTrP requests (crates/codec/otrp-json/tests/data),
/// each behind the byte that selects its command in [`agent_otrp`].
fn otrp_seeds() -> Vec<Vec<u8>> {
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../codec/otrp-json/tests/data"
    );
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    let mut paths: Vec<_> = entries.flatten().map(|e| e.path()).collect();
    paths.sort();
    for p in paths {
        let Ok(bytes) = std::fs::read(&p) else {
            continue;
        };
        let (kind, payload) = match otrp_json::decode_any(&bytes) {
            Ok(otrp_json::OtrpMessage::Request(r)) => {
                match otrp_json::json::b64url_decode(r.jws.payload_b64(), "payload") {
                    Ok(p) => (r.kind, p),
                    Err(_) => continue,
                }
            }
            Ok(otrp_json::OtrpMessage::TbsRequest(t)) => (t.kind(), bytes),
            _ => continue,
        };
        let Some(index) = otrp_json::MessageKind::ALL.iter().position(|k| *k == kind) else {
            continue;
        };
        let mut seed = vec![index as u8];
        seed.extend_from_slice(&payload);
        out.push(seed);
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    /// `agent_otrp`'s signed path gets past the Agent's signature check (RustCrypto
    /// verifying ring's ES256): a GetDeviceState TBS (the published example, asking for
    /// the TEE's ES256) in the harness framing is answered, not refused.
    #[test]
    fn agent_otrp_signed_requests_reach_the_command_handling() {
        let kinds = otrp_json::MessageKind::ALL;
        let index = kinds
            .iter()
            .position(|k| *k == otrp_json::MessageKind::GetDeviceState)
            .unwrap();
        let tbs = br#"{"GetDeviceStateTBSRequest": {"ver": "1.0",
            "rid": "8C6F9DBB-FC39-435c-BC89-4D3614DA2F0B",
            "tid": "4F454A7F-002D-4157-884E-B0DD1A06A8AE",
            "ocspdat": ["c2FtcGxlIG9jc3BkYXQgQjY0IGVuY29kZWQgQVNOMQ=="],
            "supportedsigalgs": ["ES256"]}}"#;
        let mut input = vec![u8::try_from(index).unwrap()];
        input.extend_from_slice(tbs);
        assert_ne!(input[0], b'{', "the input takes the signed path");
        let request = otrp_signed_request(kinds[usize::from(input[0])], &input[1..]);
        let mut store = otrp_suit_processor::MemoryStore::new();
        let out = otrp_fixture().agent.handle(
            &mut store,
            &request.unwrap(),
            1_800_000_001,
            &mut ChaCha20Rng::seed_from_u64(7),
        );
        let refused: Vec<_> = out
            .events
            .iter()
            .filter(|e| matches!(e, otrp_agent::OtrpEvent::Refused { .. }))
            .collect();
        assert!(refused.is_empty(), "{refused:?}");
        let answer = otrp_json::decode_any(&out.send.unwrap()).unwrap();
        assert!(
            matches!(&answer, otrp_json::OtrpMessage::Response(r)
                if r.kind == otrp_json::MessageKind::GetDeviceState),
            "{}",
            answer.name()
        );
    }

    /// The harness's ring Ed25519 signatures are byte for byte those of the pure-Rust
    /// provider, so `agent_teep` and `suit_process` inputs stay deterministic.
    #[test]
    fn ring_ed25519_signatures_match_rust_crypto() {
        let opts = otrp_cose::SignOptions::default();
        for key in [&keys().tam, &keys().suit_signer] {
            let payload = b"fuzz input";
            let ring = otrp_cose::sign1(signing_provider(), key, payload, false, &opts).unwrap();
            let rust = otrp_cose::sign1(provider(), key, payload, false, &opts).unwrap();
            assert_eq!(ring, rust);
        }
    }
}
