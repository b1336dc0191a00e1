//! In-memory OTrP sessions between the TAM core (SQLite store) and the real OTrP Agent
//! core: create SD, install, update, delete TA, delete SD; DSI evidence verified and
//! refused (wrong TEE root, bad TFW signature, replayed response); tampered requests and
//! responses refused with the state unchanged. Prints the size of every message.
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used, missing_docs)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use otrp_agent::otrp::{OtrpAgent, OtrpConfig, OtrpEvent, OtrpTam, TfwKey};
use otrp_agent::suit_processor::{ComponentStore, MemoryStore, ProcessorConfig};
use otrp_agent::Management;
use otrp_crypto::{CryptoProvider, KeyKind, PrivateKey};
use otrp_json::{ErrorCode, LegacyMode, OtrpMessage};
use otrp_pki::device::ProvisionRequest;
use otrp_pki::{CaLevel, CaRole, CertKind, InitOptions, Pki, TrustStore};
use otrp_store::{
    AccountKind, DeploymentAction, DeploymentState, ProgressState, Rollout, SqlStore, Store, Target,
};
use otrp_suit::ComponentId;
use otrp_tam::{
    Admin, Caller, OtrpError, OtrpSession, OtrpTamConfig, Outcome, Policy, OTRP_MEDIA_TYPE,
};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;

const NOW: u64 = 1_800_000_000;
static N: AtomicU32 = AtomicU32::new(0);

fn provider() -> &'static dyn CryptoProvider {
    otrp_crypto::default_provider()
}

fn rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

fn time(t: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(t)
}

fn pki(seed: u64) -> Pki {
    Pki::init(
        &InitOptions {
            organization: format!("OTrP test {seed}"),
            ..InitOptions::default()
        },
        &mut rng(seed),
        time(NOW - 3600),
    )
    .unwrap()
}

fn envelope(sp_key: &PrivateKey, seq: u64, body: &[u8]) -> Vec<u8> {
    otrp_suit::TaManifestBuilder::new(ComponentId::new([b"sd.bank".as_slice(), b"wallet"]), seq)
        .image_of(body)
        .integrated_payload("#tc", body.to_vec())
        .build_signed(provider(), sp_key, &Default::default())
        .unwrap()
        .encode()
        .unwrap()
}

struct Pair {
    store: Arc<dyn Store>,
    tam: OtrpSession,
    admin: Admin,
    sp: Caller,
    sp_key: PrivateKey,
    component: Vec<u8>,
    install: i64,
    agent: OtrpAgent,
    dev: MemoryStore,
    trng: ChaCha20Rng,
    arng: ChaCha20Rng,
    /// Bytes of each message kind seen (last one).
    sizes: BTreeMap<String, usize>,
}

struct Options {
    /// TEE roots the TAM trusts (None: the device's own PKI).
    tee_roots: Option<TrustStore>,
    /// Sign the tid with another key than the TFW certificate's.
    bad_tfw: bool,
}

impl Pair {
    async fn new(o: Options) -> Pair {
        let mut p = pki(1);
        let dev = otrp_pki::device::provision(
            &mut p,
            &ProvisionRequest::new("door-lock"),
            provider(),
            &mut rng(2),
            time(NOW - 60),
        )
        .unwrap();
        let tam_rec = p.first_issued(CertKind::Tam).unwrap().clone();
        let tam_key = p.private_key(&tam_rec.key).unwrap();
        let tam_chain = vec![
            p.issued_cert_der(CertKind::Tam, &tam_rec.name).unwrap(),
            p.ca_cert_der(CaRole::Tam, CaLevel::Issuing).unwrap(),
        ];
        let tamid = tam_rec.tamid.clone().unwrap();
        let sp_rec = p.first_issued(CertKind::Sp).unwrap().clone();
        let sp_key = p.private_key(&sp_rec.key).unwrap();
        let sp_cert = p.issued_cert_der(CertKind::Sp, &sp_rec.name).unwrap();
        let tee_roots = o
            .tee_roots
            .unwrap_or_else(|| p.trust_store(CaRole::Tee).unwrap());
        // TAM side.
        let dir = std::env::temp_dir().join(format!(
            "otrp_tam_otrp_{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let store: Arc<dyn Store> =
            Arc::new(SqlStore::open_sqlite(&dir.join("tam.db")).await.unwrap());
        let tam = OtrpSession::new(
            store.clone(),
            OtrpTamConfig {
                key: tam_key.clone(),
                chain: tam_chain,
                tamid: tamid.clone(),
                tee_roots: Some(tee_roots),
                tfw_roots: Some(p.trust_store(CaRole::Tfw).unwrap()),
                require_tfw: true,
                request_ttl: 600,
                legacy: LegacyMode::Deny,
                // The OEM authorized this (SP) TAM for the bank once (OEM-gated device).
                oem_authorizations: vec![(
                    "bank".into(),
                    otrp_agent::OemAuthorization::sign(
                        provider(),
                        &p.oem_key().unwrap(),
                        "bank",
                        &tam_key.public_key(),
                    )
                    .unwrap(),
                )],
            },
            provider(),
        );
        let admin = Admin::new(store.clone(), provider(), Policy::OemGated);
        let mut r = rng(7);
        let oem_token = admin
            .create_account(None, "oem", AccountKind::Oem, NOW, &mut r)
            .await
            .unwrap();
        let oem = admin.authenticate(&oem_token).await.unwrap();
        let sp_token = admin
            .create_account(Some(&oem), "bank", AccountKind::Sp, NOW, &mut r)
            .await
            .unwrap();
        admin.approve_sp(&oem, "bank", true, NOW).await.unwrap();
        let sp = admin.authenticate(&sp_token).await.unwrap();
        admin.create_sd(&oem, "sd.bank", "bank", NOW).await.unwrap();
        tam.register_sp_cert("bank", &sp_cert, NOW).await.unwrap();
        let reg = admin
            .register_manifest(
                &sp,
                "sd.bank",
                "wallet",
                &envelope(&sp_key, 1, b"wasm v1"),
                &[sp_key.public_key()],
                NOW,
            )
            .await
            .unwrap();
        let install = admin
            .create_deployment(
                &sp,
                &reg.component,
                DeploymentAction::Install,
                Target::All,
                Rollout::Full,
                NOW,
            )
            .await
            .unwrap();
        // Agent side.
        let tfw_key = if o.bad_tfw {
            PrivateKey::generate(KeyKind::P256, &mut rng(66)).unwrap()
        } else {
            dev.identity.tfw.key.clone()
        };
        let agent = OtrpAgent::new(
            provider(),
            OtrpConfig {
                tams: vec![OtrpTam {
                    key: tam_key.public_key(),
                    tamid,
                    oem: false,
                }],
                oem_keys: vec![p.oem_public_key().unwrap()],
                management: Management::OemGated,
                tee_key: dev.identity.tee.key.clone(),
                tee_cert: dev.identity.tee.cert.clone(),
                tee_cacerts: dev.identity.tee.chain.clone(),
                tee_name: "OpenTrust-Sim".into(),
                tee_version: "1.0".into(),
                tfw: Some(TfwKey {
                    key: tfw_key,
                    cert: dev.identity.tfw.cert.clone(),
                    chain: dev.identity.tfw.chain.clone(),
                }),
                legacy: LegacyMode::Deny,
                max_rids: 64,
                processor: ProcessorConfig::default(),
            },
        );
        Pair {
            store,
            tam,
            admin,
            sp,
            sp_key,
            component: reg.component,
            install,
            agent,
            dev: MemoryStore::new(),
            trng: rng(100),
            arng: rng(200),
            sizes: BTreeMap::new(),
        }
    }

    fn name(bytes: &[u8]) -> String {
        match otrp_json::decode_any(bytes) {
            Ok(m) => m.name().to_string(),
            Err(_) => "?".into(),
        }
    }

    /// TAM step.
    async fn tam_step(&mut self, body: &[u8], now: u64) -> Result<Outcome, OtrpError> {
        self.tam.process_otrp(None, body, now, &mut self.trng).await
    }

    /// Agent step; GetDeviceState answers are wrapped by the "Broker" in the array.
    fn agent_step(&mut self, request: &[u8]) -> (Vec<u8>, Vec<OtrpEvent>) {
        let out = self
            .agent
            .handle(&mut self.dev, request, NOW, &mut self.arng);
        let send = out.send.expect("the Agent answered");
        let body = match otrp_json::decode_any(&send).unwrap() {
            OtrpMessage::Response(r) if r.kind == otrp_json::MessageKind::GetDeviceState => {
                otrp_json::device_state_responses(&[send]).unwrap()
            }
            _ => send,
        };
        (body, out.events)
    }

    /// A whole session; returns the command names the TAM sent after GetDeviceState.
    async fn session(&mut self, now: u64) -> (Vec<String>, Vec<OtrpEvent>) {
        let mut body = Vec::new();
        let mut sent = Vec::new();
        let mut events = Vec::new();
        for _ in 0..16 {
            match self.tam_step(&body, now).await.unwrap() {
                Outcome::Done => return (sent, events),
                Outcome::Reply(req) => {
                    let name = Self::name(&req);
                    self.sizes.insert(name.clone(), req.len());
                    sent.push(name);
                    let (resp, ev) = self.agent_step(&req);
                    self.sizes.insert(Self::name(&resp), resp.len());
                    events.extend(ev);
                    body = resp;
                }
            }
        }
        panic!("the session did not end")
    }

    fn image(&self, taid: &[u8]) -> Option<Vec<u8>> {
        self.dev
            .image(&ComponentId::new([b"sd.bank".as_slice(), taid]))
            .unwrap()
    }
}

fn opts() -> Options {
    Options {
        tee_roots: None,
        bad_tfw: false,
    }
}

#[tokio::test]
async fn otrp_session_creates_sd_installs_updates_and_deletes() {
    let mut p = Pair::new(opts()).await;
    assert_eq!(OTRP_MEDIA_TYPE, "application/otrp+json");
    // 1. CreateSD then InstallTA, then nothing more.
    let (sent, events) = p.session(NOW).await;
    assert_eq!(
        sent,
        [
            "GetDeviceStateRequest",
            "CreateSDRequest",
            "InstallTARequest"
        ]
    );
    assert!(events.contains(&OtrpEvent::AikCreated {
        spid: "bank".into()
    }));
    assert_eq!(p.image(b"wallet").unwrap(), b"wasm v1");
    let prog = p
        .store
        .progress(p.install, &hex_device(&p), &p.component)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(prog.state, ProgressState::Done);
    let (sent, _) = p.session(NOW + 10).await;
    assert_eq!(sent, ["GetDeviceStateRequest"], "nothing to do");
    // 2. A new version: UpdateTA.
    p.admin
        .register_manifest(
            &p.sp,
            "sd.bank",
            "wallet",
            &envelope(&p.sp_key, 2, b"wasm v2"),
            &[p.sp_key.public_key()],
            NOW + 20,
        )
        .await
        .unwrap();
    let (sent, _) = p.session(NOW + 30).await;
    assert_eq!(sent, ["GetDeviceStateRequest", "UpdateTARequest"]);
    assert_eq!(p.image(b"wallet").unwrap(), b"wasm v2");
    // 3. Removal: DeleteTA, then the SD nobody needs any more.
    p.admin
        .set_deployment_state(&p.sp, p.install, DeploymentState::Aborted, NOW + 40)
        .await
        .unwrap();
    p.admin
        .create_deployment(
            &p.sp,
            &p.component,
            DeploymentAction::Remove,
            Target::All,
            Rollout::Full,
            NOW + 40,
        )
        .await
        .unwrap();
    let (sent, events) = p.session(NOW + 50).await;
    assert_eq!(
        sent,
        [
            "GetDeviceStateRequest",
            "DeleteTARequest",
            "DeleteSDRequest"
        ]
    );
    assert!(events.contains(&OtrpEvent::AikDeleted {
        spid: "bank".into()
    }));
    assert!(p.image(b"wallet").is_none());
    assert!(p.agent.security_domains(&p.dev).is_empty());
    let dev = p.store.otrp_device(&hex_device(&p)).await.unwrap().unwrap();
    assert!(dev.dsi.contains("\"cnt\":\"0\""));
    println!("OTrP message sizes (bytes, as we encode them, P-256 keys):");
    for (name, size) in &p.sizes {
        println!("  {name:32} {size}");
    }
}

fn hex_device(p: &Pair) -> String {
    let dsi = p
        .agent
        .dsi_for(&p.dev, &p.agent.config().tams[0].tamid)
        .unwrap();
    let cert = base64_decode(&dsi.tee.cert);
    let info = otrp_pki::cert::CertInfo::from_der(&cert).unwrap();
    hex::encode(info.ueid.unwrap())
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(s).unwrap()
}

#[tokio::test]
async fn otrp_dsi_evidence_is_verified_and_refused() {
    // A TEE certificate from another PKI's TEE root.
    let other = pki(9);
    let mut p = Pair::new(Options {
        tee_roots: Some(other.trust_store(CaRole::Tee).unwrap()),
        bad_tfw: false,
    })
    .await;
    let Outcome::Reply(req) = p.tam_step(&[], NOW).await.unwrap() else {
        panic!()
    };
    let (resp, _) = p.agent_step(&req);
    assert!(matches!(
        p.tam_step(&resp, NOW).await,
        Err(OtrpError::TeeCert(_))
    ));
    // A TFW signature that does not verify with the TFW certificate.
    let mut p = Pair::new(Options {
        tee_roots: None,
        bad_tfw: true,
    })
    .await;
    let Outcome::Reply(req) = p.tam_step(&[], NOW).await.unwrap() else {
        panic!()
    };
    let (resp, _) = p.agent_step(&req);
    let e = p.tam_step(&resp, NOW).await.unwrap_err();
    assert!(matches!(e, OtrpError::Tfw(_)), "{e}");
    assert_eq!(e.http_status(), 400);
    // A replayed DSI: the same response delivered twice (its tid was one-time).
    let mut p = Pair::new(opts()).await;
    let Outcome::Reply(req) = p.tam_step(&[], NOW).await.unwrap() else {
        panic!()
    };
    let (resp, _) = p.agent_step(&req);
    assert!(matches!(
        p.tam_step(&resp, NOW).await.unwrap(),
        Outcome::Reply(_)
    ));
    assert!(matches!(
        p.tam_step(&resp, NOW + 1).await,
        Err(OtrpError::Replayed(_))
    ));
    // A DSI answering an expired GetDeviceState.
    let Outcome::Reply(req) = p.tam_step(&[], NOW).await.unwrap() else {
        panic!()
    };
    let (resp, _) = p.agent_step(&req);
    assert!(matches!(
        p.tam_step(&resp, NOW + 601).await,
        Err(OtrpError::Expired(_))
    ));
    // Something that is not a TEE response.
    assert!(matches!(
        p.tam_step(b"{\"nope\":1}", NOW).await,
        Err(OtrpError::Malformed(_))
    ));
}

fn flip_in_payload(msg: &[u8]) -> Vec<u8> {
    let mut m = msg.to_vec();
    let at = m.windows(10).position(|x| x == b"\"payload\":").unwrap() + 40;
    m[at] = if m[at] == b'A' { b'B' } else { b'A' };
    m
}

#[tokio::test]
async fn otrp_tampered_requests_and_responses_change_nothing() {
    let mut p = Pair::new(opts()).await;
    let Outcome::Reply(gds) = p.tam_step(&[], NOW).await.unwrap() else {
        panic!()
    };
    let (resp, _) = p.agent_step(&gds);
    let Outcome::Reply(create) = p.tam_step(&resp, NOW).await.unwrap() else {
        panic!()
    };
    // The Agent refuses a tampered CreateSD (ERR_REQUEST_INVALID), nothing stored.
    let before = p.dev.clone();
    let out = p
        .agent
        .handle(&mut p.dev, &flip_in_payload(&create), NOW, &mut p.arng);
    assert!(matches!(
        out.events[0],
        OtrpEvent::Refused {
            code: ErrorCode::RequestInvalid,
            ..
        }
    ));
    assert_eq!(p.dev, before);
    // The genuine one passes; the TAM refuses a tampered answer and keeps its state…
    let (answer, _) = p.agent_step(&create);
    let dev_id = hex_device(&p);
    let state = p.store.otrp_device(&dev_id).await.unwrap();
    let e = p
        .tam_step(&flip_in_payload(&answer), NOW)
        .await
        .unwrap_err();
    assert!(
        matches!(e, OtrpError::BadSignature(_) | OtrpError::Malformed(_)),
        "{e}"
    );
    assert_eq!(p.store.otrp_device(&dev_id).await.unwrap(), state);
    // …and still accepts the genuine answer (its rid was not consumed).
    let Outcome::Reply(install) = p.tam_step(&answer, NOW).await.unwrap() else {
        panic!()
    };
    assert_eq!(Pair::name(&install), "InstallTARequest");
    // A stale request replayed to the Agent (the CreateSD again): refused.
    let before = p.dev.clone();
    let out = p.agent.handle(&mut p.dev, &create, NOW, &mut p.arng);
    assert!(matches!(
        out.events[0],
        OtrpEvent::Refused {
            code: ErrorCode::RequestInvalid,
            ..
        }
    ));
    assert_eq!(p.dev, before);
}
