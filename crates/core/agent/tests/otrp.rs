//! The OTrP Agent driven by a scripted OTrP TAM (otrp-json requests, certificates from an
//! otrp-pki development PKI): the seven commands, every refusal with its §5.2 code and
//! the store unchanged, RSA1_5 legacy mode, and the three management configurations.
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used)]

use std::time::{Duration, SystemTime};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use otrp_agent::otrp::{dsi_hash, package, OtrpAgent, OtrpConfig, OtrpEvent, OtrpTam, TfwKey};
use otrp_agent::suit_processor::{ComponentStore, MemoryStore, ProcessorConfig};
use otrp_agent::{Management, OemAuthorization};
use otrp_cose::SignOptions;
use otrp_crypto::{rust_crypto_provider, CryptoProvider, KeyKind, PrivateKey, PublicKey};
use otrp_json::{
    CommandTbsResponse, Content, ContentEnc, Dsi, DsiDocument, ErrorCode, LegacyMode, MessageKind,
    OtrpMessage, Reason, RecipientKey, Signer, Status, TbsRequest, TbsResponse, OTRP_VERSION,
};
use otrp_pki::device::ProvisionRequest;
use otrp_pki::{CertKind, InitOptions, Pki};
use otrp_suit::{ComponentId, TaManifestBuilder};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;

const NOW: u64 = 1_800_000_000;
const TEE: &str = "OpenTrust-Sim";

fn provider() -> &'static dyn CryptoProvider {
    rust_crypto_provider()
}

fn rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(NOW)
}

/// A PKI, a provisioned device, the SP signer (key + BASE64 cert), the TAM key + tamid.
struct World {
    tee_key: PrivateKey,
    tee_cert: Vec<u8>,
    tee_ca: Vec<Vec<u8>>,
    tfw: TfwKey,
    sp_key: PrivateKey,
    spcert: String,
    tam_key: PrivateKey,
    tamid: String,
    oem: PrivateKey,
}

fn world() -> World {
    let mut r = rng(1);
    let mut pki = Pki::init(
        &InitOptions::default(),
        &mut r,
        now() - Duration::from_secs(3600),
    )
    .unwrap();
    let dev = otrp_pki::device::provision(
        &mut pki,
        &ProvisionRequest::new("door-lock"),
        provider(),
        &mut r,
        now() - Duration::from_secs(60),
    )
    .unwrap();
    let sp = pki.first_issued(CertKind::Sp).unwrap().clone();
    let tam = pki.first_issued(CertKind::Tam).unwrap().clone();
    World {
        tee_key: dev.identity.tee.key.clone(),
        tee_cert: dev.identity.tee.cert.clone(),
        tee_ca: dev.identity.tee.chain.clone(),
        tfw: TfwKey {
            key: dev.identity.tfw.key.clone(),
            cert: dev.identity.tfw.cert.clone(),
            chain: dev.identity.tfw.chain.clone(),
        },
        sp_key: pki.private_key(&sp.key).unwrap(),
        spcert: STANDARD.encode(pki.issued_cert_der(CertKind::Sp, &sp.name).unwrap()),
        tam_key: pki.private_key(&tam.key).unwrap(),
        tamid: tam.tamid.clone().unwrap(),
        oem: pki.oem_key().unwrap(),
    }
}

fn config(w: &World, tams: Vec<OtrpTam>, management: Management) -> OtrpConfig {
    OtrpConfig {
        tams,
        oem_keys: vec![w.oem.public_key()],
        management,
        tee_key: w.tee_key.clone(),
        tee_cert: w.tee_cert.clone(),
        tee_cacerts: w.tee_ca.clone(),
        tee_name: TEE.into(),
        tee_version: "1.0".into(),
        tfw: Some(w.tfw.clone()),
        legacy: LegacyMode::Deny,
        max_rids: 64,
        processor: ProcessorConfig::default(),
    }
}

/// A TAM that builds and signs OTrP requests.
struct Script {
    key: PrivateKey,
    tamid: String,
    tee: PublicKey,
    did: String,
    n: u64,
    tid: String,
    dsihash: String,
    /// Extra signers (dual control) added to every request.
    cosigners: Vec<PrivateKey>,
    /// `oemauth` header value.
    oemauth: Option<String>,
}

impl Script {
    fn new(key: PrivateKey, tamid: &str, w: &World) -> Self {
        Script {
            key,
            tamid: tamid.into(),
            tee: w.tee_key.public_key(),
            did: STANDARD.encode(provider().sha256(&w.tee_cert)),
            n: 0,
            tid: String::new(),
            dsihash: String::new(),
            cosigners: Vec::new(),
            oemauth: None,
        }
    }
    fn rid(&mut self) -> String {
        self.n += 1;
        format!("rid-{}-{}", self.tamid, self.n)
    }
    fn sign(&self, tbs: &TbsRequest) -> Vec<u8> {
        let kid = otrp_crypto::jwk::thumbprint_b64(&self.key.public_key(), provider());
        let mut signers = vec![Signer::new(&self.key).with_kid(kid)];
        for c in &self.cosigners {
            signers.push(Signer::new(c));
        }
        let bytes = otrp_json::sign_request_multi(provider(), &signers, tbs).unwrap();
        match &self.oemauth {
            None => bytes,
            Some(a) => {
                let mut v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
                let jws = v.as_object_mut().unwrap().values_mut().next().unwrap();
                let header = match jws.get_mut("signatures") {
                    Some(sigs) => sigs.get_mut(0).unwrap(),
                    None => jws,
                };
                header
                    .as_object_mut()
                    .unwrap()
                    .insert("header".into(), serde_json::json!({ "oemauth": a }));
                serde_json::to_vec(&v).unwrap()
            }
        }
    }
    fn enc<T: serde::Serialize>(&self, c: &T, seed: u64) -> Content<T> {
        otrp_json::encrypt_content(
            provider(),
            &mut rng(seed),
            c,
            ContentEnc::A128CbcHs256,
            &[RecipientKey::new(&self.tee)],
        )
        .unwrap()
        .0
    }
    fn gds(&mut self) -> Vec<u8> {
        let rid = self.rid();
        self.tid = format!("tid-{}-{}", self.tamid, self.n);
        self.sign(&TbsRequest::GetDeviceState(
            otrp_json::GetDeviceStateTbsRequest {
                ver: OTRP_VERSION.into(),
                rid,
                tid: self.tid.clone(),
                ocspdat: vec![],
                supportedsigalgs: None,
            },
        ))
    }
    fn create_sd(&mut self, sdname: &str, spid: &str, spcert: &str, tamid: &str) -> Vec<u8> {
        let rid = self.rid();
        let content = self.enc(
            &otrp_json::CreateSdContent {
                spid: spid.into(),
                sdname: sdname.into(),
                spcert: spcert.into(),
                tamid: tamid.into(),
                did: self.did.clone(),
            },
            self.n,
        );
        self.sign(&TbsRequest::CreateSd(otrp_json::CreateSdTbsRequest {
            ver: OTRP_VERSION.into(),
            rid,
            tid: self.tid.clone(),
            tee: TEE.into(),
            nextdsi: true,
            dsihash: self.dsihash.clone(),
            content,
        }))
    }
    fn update_sd(&mut self, sdname: &str, spid: &str, changes: otrp_json::SdChanges) -> Vec<u8> {
        let rid = self.rid();
        let content = self.enc(
            &otrp_json::UpdateSdContent {
                tamid: self.tamid.clone(),
                spid: spid.into(),
                sdname: sdname.into(),
                changes,
            },
            self.n,
        );
        self.sign(&TbsRequest::UpdateSd(otrp_json::UpdateSdTbsRequest {
            ver: OTRP_VERSION.into(),
            rid,
            tid: self.tid.clone(),
            tee: TEE.into(),
            nextdsi: true,
            dsihash: self.dsihash.clone(),
            content,
        }))
    }
    fn delete_sd(&mut self, sdname: &str, deleteta: bool) -> Vec<u8> {
        let rid = self.rid();
        let content = self.enc(
            &otrp_json::DeleteSdContent {
                tamid: self.tamid.clone(),
                sdname: sdname.into(),
                deleteta,
            },
            self.n,
        );
        self.sign(&TbsRequest::DeleteSd(otrp_json::DeleteSdTbsRequest {
            ver: OTRP_VERSION.into(),
            rid,
            tid: self.tid.clone(),
            tee: TEE.into(),
            nextdsi: true,
            dsihash: self.dsihash.clone(),
            content,
        }))
    }
    fn ta_content(&self, sdname: &str, spid: &str, taid: &str) -> otrp_json::TaContent {
        otrp_json::TaContent {
            tamid: self.tamid.clone(),
            spid: spid.into(),
            sdname: sdname.into(),
            spcert: None,
            taid: taid.into(),
        }
    }
    fn install_ta(
        &mut self,
        sdname: &str,
        spid: &str,
        taid: &str,
        aik: &PublicKey,
        envelope: &[u8],
        pdata: Option<&[u8]>,
    ) -> Vec<u8> {
        let rid = self.rid();
        let content = self.enc(&self.ta_content(sdname, spid, taid), self.n);
        let sealed = package::seal(provider(), &mut rng(self.n), aik, Some(envelope), pdata)
            .unwrap()
            .into_install()
            .unwrap();
        self.sign(&TbsRequest::InstallTa(otrp_json::InstallTaTbsRequest {
            ver: OTRP_VERSION.into(),
            rid,
            tid: self.tid.clone(),
            tee: TEE.into(),
            nextdsi: true,
            dsihash: self.dsihash.clone(),
            content,
            encrypted_ta: sealed,
        }))
    }
    fn update_ta(
        &mut self,
        sdname: &str,
        spid: &str,
        taid: &str,
        aik: &PublicKey,
        envelope: Option<&[u8]>,
        pdata: Option<&[u8]>,
    ) -> Vec<u8> {
        let rid = self.rid();
        let content = self.enc(&self.ta_content(sdname, spid, taid), self.n);
        let sealed = package::seal(provider(), &mut rng(self.n), aik, envelope, pdata)
            .unwrap()
            .into_update()
            .unwrap();
        self.sign(&TbsRequest::UpdateTa(otrp_json::UpdateTaTbsRequest {
            ver: OTRP_VERSION.into(),
            rid,
            tid: self.tid.clone(),
            tee: TEE.into(),
            nextdsi: true,
            dsihash: self.dsihash.clone(),
            content,
            encrypted_ta: sealed,
        }))
    }
    fn delete_ta(&mut self, sdname: &str, taid: &str) -> Vec<u8> {
        let rid = self.rid();
        let content = self.enc(
            &otrp_json::DeleteTaContent {
                tamid: self.tamid.clone(),
                sdname: sdname.into(),
                taid: taid.into(),
            },
            self.n,
        );
        self.sign(&TbsRequest::DeleteTa(otrp_json::DeleteTaTbsRequest {
            ver: OTRP_VERSION.into(),
            rid,
            tid: self.tid.clone(),
            tee: TEE.into(),
            nextdsi: true,
            dsihash: self.dsihash.clone(),
            content,
        }))
    }
}

/// The TEE's answer, verified with the TEE key and decoded.
fn answer(w: &World, bytes: &Option<Vec<u8>>) -> TbsResponse {
    let bytes = bytes.as_ref().expect("the Agent sent nothing");
    otrp_json::verify_response(
        provider(),
        bytes,
        std::slice::from_ref(&w.tee_key.public_key()),
    )
    .unwrap()
}

fn code_of(r: &TbsResponse) -> Option<ErrorCode> {
    let reason = match r {
        TbsResponse::GetDeviceState(g) => g.reason.clone(),
        TbsResponse::CreateSd(c) => c.reason.clone(),
        TbsResponse::UpdateSd(c) => c.reason.clone(),
        TbsResponse::DeleteSd(c) => c.reason.clone(),
        TbsResponse::InstallTa(c) => c.reason.clone(),
        TbsResponse::UpdateTa(c) => c.reason.clone(),
        TbsResponse::DeleteTa(c) => c.reason.clone(),
    };
    match reason {
        Some(Reason::Coded(c)) => Some(c.error_code),
        _ => None,
    }
}

/// Opens a response's content with the TAM key and returns its DSI (updating the TAM's
/// `dsihash`).
fn content_dsi(tam: &mut Script, r: &TbsResponse) -> Dsi {
    fn open<C: serde::de::DeserializeOwned>(key: &PrivateKey, c: &CommandTbsResponse<C>) -> C {
        assert_eq!(c.status, Status::Pass, "reason: {:?}", c.reason);
        let jwe = c.content.as_ref().unwrap().jwe().unwrap();
        otrp_json::decrypt_content::<C>(provider(), &mut rng(0), jwe, key, LegacyMode::Deny)
            .unwrap()
            .0
    }
    let dsi = match r {
        TbsResponse::GetDeviceState(g) => {
            assert_eq!(g.status, Status::Pass, "reason: {:?}", g.reason);
            let jwe = g.edsi.as_ref().unwrap().jwe().unwrap();
            otrp_json::decrypt_content::<DsiDocument>(
                provider(),
                &mut rng(0),
                jwe,
                &tam.key,
                LegacyMode::Deny,
            )
            .unwrap()
            .0
            .dsi
        }
        TbsResponse::CreateSd(c) => open(&tam.key, c).dsi.unwrap(),
        TbsResponse::UpdateSd(c) => open(&tam.key, c).dsi.unwrap(),
        TbsResponse::DeleteSd(c) => open(&tam.key, c).dsi.unwrap(),
        TbsResponse::InstallTa(c) => open(&tam.key, c).dsi.unwrap(),
        TbsResponse::UpdateTa(c) => open(&tam.key, c).dsi.unwrap(),
        TbsResponse::DeleteTa(c) => open(&tam.key, c).dsi.unwrap(),
    };
    tam.dsihash = dsi_hash(provider(), &dsi);
    dsi
}

struct Dev {
    agent: OtrpAgent,
    store: MemoryStore,
    r: ChaCha20Rng,
}

impl Dev {
    fn send(&mut self, msg: &[u8]) -> otrp_agent::OtrpOutput {
        self.agent.handle(&mut self.store, msg, NOW, &mut self.r)
    }
    /// Sends and expects `pass`; returns the DSI.
    fn pass(&mut self, w: &World, tam: &mut Script, msg: &[u8]) -> Dsi {
        let out = self.send(msg);
        content_dsi(tam, &answer(w, &out.send))
    }
    /// Sends and expects `fail` with `code` and the store unchanged.
    fn fail(&mut self, w: &World, msg: &[u8], code: ErrorCode) {
        let before = self.store.clone();
        let out = self.send(msg);
        let r = answer(w, &out.send);
        assert_eq!(r.status(), Status::Fail);
        assert_eq!(code_of(&r), Some(code), "{:?}", out.events);
        assert_eq!(self.store, before, "a refusal changed the store");
    }
}

fn dev(cfg: OtrpConfig) -> Dev {
    Dev {
        agent: OtrpAgent::new(provider(), cfg),
        store: MemoryStore::new(),
        r: rng(77),
    }
}

fn ta(sd: &str, taid: &str, seq: u64, body: &[u8], signer: &PrivateKey) -> Vec<u8> {
    TaManifestBuilder::new(ComponentId::new([sd.as_bytes(), taid.as_bytes()]), seq)
        .image_of(body)
        .integrated_payload("#tc", body.to_vec())
        .build_signed(provider(), signer, &SignOptions::default())
        .unwrap()
        .encode()
        .unwrap()
}

fn aik_of(dsi: &Dsi, spid: &str) -> PublicKey {
    let a = dsi
        .tee
        .teeaiklist
        .as_ref()
        .unwrap()
        .iter()
        .find(|a| a.spid == spid)
        .unwrap();
    PublicKey::from_spki_der(&STANDARD.decode(&a.spaik).unwrap()).unwrap()
}

fn tam_of(w: &World, oem: bool) -> Vec<OtrpTam> {
    vec![OtrpTam {
        key: w.tam_key.public_key(),
        tamid: w.tamid.clone(),
        oem,
    }]
}

#[test]
fn otrp_lifecycle_create_install_update_delete() {
    let w = world();
    let mut d = dev(config(&w, tam_of(&w, true), Management::OemGated));
    let mut tam = Script::new(w.tam_key.clone(), &w.tamid, &w);
    // GetDeviceState: TFW signature over the tid, TEE cert inside edsi, no SD yet.
    let msg = tam.gds();
    let dsi = d.pass(&w, &mut tam, &msg);
    let tfw = dsi.tfwdata.as_ref().unwrap();
    assert_eq!(STANDARD.decode(&tfw.tbs).unwrap(), tam.tid.as_bytes());
    provider()
        .verify(
            otrp_crypto::SigAlg::P256Sha256,
            &w.tfw.key.public_key(),
            tam.tid.as_bytes(),
            &STANDARD.decode(&tfw.sig).unwrap(),
        )
        .unwrap();
    assert_eq!(STANDARD.decode(&dsi.tee.cert).unwrap(), w.tee_cert);
    assert_eq!(dsi.tee.sdlist.cnt, 0);
    // CreateSD: the SP's AIK is created and reported.
    let out = d.send(&tam.create_sd("sd.bank", "bank", &w.spcert, &w.tamid));
    assert!(out.events.contains(&OtrpEvent::AikCreated {
        spid: "bank".into()
    }));
    let dsi = content_dsi(&mut tam, &answer(&w, &out.send));
    assert_eq!(dsi.tee.sdlist.sd[0].name, "sd.bank");
    let aik = aik_of(&dsi, "bank");
    // InstallTA with personalization data.
    let v1 = ta("sd.bank", "wallet", 1, b"wasm v1", &w.sp_key);
    let out = d.send(&tam.install_ta("sd.bank", "bank", "wallet", &aik, &v1, Some(b"pin=1234")));
    let dsi = content_dsi(&mut tam, &answer(&w, &out.send));
    assert_eq!(dsi.tee.sdlist.sd[0].talist[0].taid, "wallet");
    let id = ComponentId::new([b"sd.bank".as_slice(), b"wallet"]);
    assert_eq!(d.store.image(&id).unwrap().unwrap(), b"wasm v1");
    let pdata = ComponentId::new([b"sd.bank".as_slice(), b"wallet", b"pdata"]);
    assert_eq!(d.store.image(&pdata).unwrap().unwrap(), b"pin=1234");
    // UpdateTA (new binary), then the data alone.
    let v2 = ta("sd.bank", "wallet", 2, b"wasm v2", &w.sp_key);
    let msg = tam.update_ta("sd.bank", "bank", "wallet", &aik, Some(&v2), None);
    d.pass(&w, &mut tam, &msg);
    assert_eq!(d.store.image(&id).unwrap().unwrap(), b"wasm v2");
    let msg = tam.update_ta("sd.bank", "bank", "wallet", &aik, None, Some(b"pin=9"));
    d.pass(&w, &mut tam, &msg);
    assert_eq!(d.store.image(&pdata).unwrap().unwrap(), b"pin=9");
    // A rollback to v1 through UpdateTA: refused by the SUIT sequence number.
    let v1_again = ta("sd.bank", "wallet", 1, b"wasm v1", &w.sp_key);
    d.fail(
        &w,
        &tam.update_ta("sd.bank", "bank", "wallet", &aik, Some(&v1_again), None),
        ErrorCode::TaInvalid,
    );
    // UpdateSD: renew the AIK (the old one no longer opens packages).
    let out = d.send(&tam.update_sd(
        "sd.bank",
        "bank",
        otrp_json::SdChanges {
            newsdname: None,
            newspid: None,
            spcert: None,
            deloldspcert: None,
            renewteespaik: true,
        },
    ));
    let dsi = content_dsi(&mut tam, &answer(&w, &out.send));
    let aik2 = aik_of(&dsi, "bank");
    assert_ne!(aik, aik2);
    let v3 = ta("sd.bank", "wallet", 3, b"wasm v3", &w.sp_key);
    d.fail(
        &w,
        &tam.update_ta("sd.bank", "bank", "wallet", &aik, Some(&v3), None),
        ErrorCode::TaInvalid,
    );
    let msg = tam.update_ta("sd.bank", "bank", "wallet", &aik2, Some(&v3), None);
    d.pass(&w, &mut tam, &msg);
    // DeleteSD while it holds a TA: refused; DeleteTA then DeleteSD (AIK deleted).
    d.fail(&w, &tam.delete_sd("sd.bank", false), ErrorCode::SdNotEmpty);
    let msg = tam.delete_ta("sd.bank", "wallet");
    d.pass(&w, &mut tam, &msg);
    assert!(d.store.image(&id).unwrap().is_none());
    assert!(d.store.image(&pdata).unwrap().is_none());
    let out = d.send(&tam.delete_sd("sd.bank", false));
    assert!(out.events.contains(&OtrpEvent::AikDeleted {
        spid: "bank".into()
    }));
    let dsi = content_dsi(&mut tam, &answer(&w, &out.send));
    assert_eq!(dsi.tee.sdlist.cnt, 0);
    assert!(dsi.tee.teeaiklist.unwrap().is_empty());
    assert!(d.agent.security_domains(&d.store).is_empty());
}

#[test]
fn otrp_state_refusals_carry_their_codes_and_change_nothing() {
    let w = world();
    let mut d = dev(config(&w, tam_of(&w, true), Management::OemGated));
    let mut tam = Script::new(w.tam_key.clone(), &w.tamid, &w);
    // Out of order: a command before any GetDeviceState.
    d.fail(
        &w,
        &tam.create_sd("sd1", "sp", &w.spcert, &w.tamid),
        ErrorCode::DevStateMismatch,
    );
    let gds = tam.gds();
    d.pass(&w, &mut tam, &gds);
    // Replayed rid (the same GetDeviceState again).
    d.fail(&w, &gds, ErrorCode::RequestInvalid);
    // Stale dsihash.
    let good = tam.dsihash.clone();
    tam.dsihash = STANDARD.encode([0u8; 32]);
    d.fail(
        &w,
        &tam.create_sd("sd1", "sp", &w.spcert, &w.tamid),
        ErrorCode::DevStateMismatch,
    );
    tam.dsihash = good;
    let create = tam.create_sd("sd1", "sp", &w.spcert, &w.tamid);
    d.pass(&w, &mut tam, &create);
    // The same CreateSD replayed: refused (rid), and with a fresh rid: the state moved.
    d.fail(&w, &create, ErrorCode::RequestInvalid);
    d.fail(
        &w,
        &tam.create_sd("sd1", "sp", &w.spcert, &w.tamid),
        ErrorCode::SdAlreadyExists,
    );
    // A stale dsihash from before the CreateSD.
    let before_hash = tam.dsihash.clone();
    let dsi_now = d.agent.dsi_for(&d.store, &w.tamid).unwrap();
    assert_eq!(dsi_hash(provider(), &dsi_now), before_hash);
    // Stale tid: a second GetDeviceState opens a new transaction.
    let old_tid = tam.tid.clone();
    let msg = tam.gds();
    d.pass(&w, &mut tam, &msg);
    let new_tid = std::mem::replace(&mut tam.tid, old_tid);
    d.fail(
        &w,
        &tam.delete_sd("sd1", false),
        ErrorCode::DevStateMismatch,
    );
    tam.tid = new_tid;
    // Not found / wrong did / bad SP cert / wrong tee.
    d.fail(&w, &tam.delete_sd("nope", false), ErrorCode::SdNotFound);
    d.fail(&w, &tam.delete_ta("sd1", "nope"), ErrorCode::TaNotFound);
    tam.did = STANDARD.encode([1u8; 32]);
    d.fail(
        &w,
        &tam.create_sd("sd2", "sp", &w.spcert, &w.tamid),
        ErrorCode::RequestInvalid,
    );
    tam.did = STANDARD.encode(provider().sha256(&w.tee_cert));
    d.fail(
        &w,
        &tam.create_sd(
            "sd2",
            "sp",
            &STANDARD.encode(b"not a certificate"),
            &w.tamid,
        ),
        ErrorCode::SpCertInvalid,
    );
    // A TA signed by someone who is not the SD's SP signer.
    let aik = aik_of(&d.agent.dsi_for(&d.store, &w.tamid).unwrap(), "sp");
    let rogue = PrivateKey::generate(KeyKind::P256, &mut rng(5)).unwrap();
    d.fail(
        &w,
        &tam.install_ta(
            "sd1",
            "sp",
            "app",
            &aik,
            &ta("sd1", "app", 1, b"x", &rogue),
            None,
        ),
        ErrorCode::TaInvalid,
    );
    // A TA whose manifest lies in another SD.
    d.fail(
        &w,
        &tam.install_ta(
            "sd1",
            "sp",
            "app",
            &aik,
            &ta("sd9", "app", 1, b"x", &w.sp_key),
            None,
        ),
        ErrorCode::TaInvalid,
    );
    // Encrypted to another key.
    let other = PrivateKey::generate(KeyKind::P256, &mut rng(6))
        .unwrap()
        .public_key();
    d.fail(
        &w,
        &tam.install_ta(
            "sd1",
            "sp",
            "app",
            &other,
            &ta("sd1", "app", 1, b"x", &w.sp_key),
            None,
        ),
        ErrorCode::TaInvalid,
    );
    let env = ta("sd1", "app", 1, b"x", &w.sp_key);
    let msg = tam.install_ta("sd1", "sp", "app", &aik, &env, None);
    d.pass(&w, &mut tam, &msg);
    d.fail(
        &w,
        &tam.install_ta("sd1", "sp", "app", &aik, &env, None),
        ErrorCode::TaAlreadyInstalled,
    );
}

#[test]
fn otrp_rogue_tampered_and_unsupported_requests_are_refused() {
    let w = world();
    let mut d = dev(config(&w, tam_of(&w, true), Management::OemGated));
    // A TAM whose key the TEE does not trust.
    let rogue_key = PrivateKey::generate(KeyKind::P256, &mut rng(9)).unwrap();
    let mut rogue = Script::new(rogue_key, &w.tamid, &w);
    d.fail(&w, &rogue.gds(), ErrorCode::TamNotTrusted);
    // A tampered request from the trusted TAM (one payload character changed).
    let mut tam = Script::new(w.tam_key.clone(), &w.tamid, &w);
    let mut msg = tam.gds();
    let at = msg.windows(9).position(|x| x == b"payload\":").unwrap() + 12;
    msg[at] = if msg[at] == b'A' { b'B' } else { b'A' };
    d.fail(&w, &msg, ErrorCode::RequestInvalid);
    // An unsupported version.
    let rid = tam.rid();
    let v2 = tam.sign(&TbsRequest::GetDeviceState(
        otrp_json::GetDeviceStateTbsRequest {
            ver: "2.0".into(),
            rid,
            tid: "t".into(),
            ocspdat: vec![],
            supportedsigalgs: None,
        },
    ));
    d.fail(&w, &v2, ErrorCode::UnsupportedMsgVersion);
    // A signature algorithm the TEE does not have.
    let rid = tam.rid();
    let rs = tam.sign(&TbsRequest::GetDeviceState(
        otrp_json::GetDeviceStateTbsRequest {
            ver: OTRP_VERSION.into(),
            rid,
            tid: "t".into(),
            ocspdat: vec![],
            supportedsigalgs: Some(vec!["RS256".into()]),
        },
    ));
    d.fail(&w, &rs, ErrorCode::UnsupportedCryptoAlg);
    // Not a request at all: no answer.
    let out = d.send(b"{\"GetDeviceStateTBSRequest\":{}}");
    assert!(out.send.is_none());
    assert!(matches!(
        out.events[0],
        OtrpEvent::Refused {
            code: ErrorCode::RequestInvalid,
            ..
        }
    ));
    let _ = MessageKind::GetDeviceState;
    let _ = OtrpMessage::Dsi;
}

/// A JWE whose CEK is wrapped with RSA1_5 (built by hand: otrp-json never emits it).
fn rsa1_5_content<T: serde::Serialize>(tee: &PublicKey, c: &T) -> Content<T> {
    let PublicKey::Rsa(pk) = tee else { panic!() };
    let mut r = rng(3);
    let cek = [7u8; 32];
    let wrapped = otrp_json::jose::primitives::rsa1_5_encrypt(&mut r, pk, &cek).unwrap();
    let protected = otrp_json::json::b64url_encode(br#"{"enc":"A128CBC-HS256"}"#);
    let iv = [9u8; 16];
    let (ct, tag) = otrp_json::jose::primitives::cbc_hmac_encrypt(
        ContentEnc::A128CbcHs256,
        &cek,
        &iv,
        protected.as_bytes(),
        &serde_json::to_vec(c).unwrap(),
    )
    .unwrap();
    let jwe = serde_json::json!({
        "protected": protected,
        "recipients": [{"header": {"alg": "RSA1_5"}, "encrypted_key": otrp_json::json::b64url_encode(&wrapped)}],
        "iv": otrp_json::json::b64url_encode(&iv),
        "ciphertext": otrp_json::json::b64url_encode(&ct),
        "tag": otrp_json::json::b64url_encode(&tag),
    });
    Content::Encrypted(serde_json::from_value(jwe).unwrap())
}

#[test]
fn otrp_rsa1_5_content_is_refused_unless_legacy_mode() {
    let w = world();
    let rsa = PrivateKey::generate(KeyKind::Rsa2048, &mut rng(11)).unwrap();
    for legacy in [LegacyMode::Deny, LegacyMode::Allow] {
        let mut cfg = config(&w, tam_of(&w, true), Management::OemGated);
        cfg.tee_key = rsa.clone();
        cfg.legacy = legacy;
        let mut d = dev(cfg);
        let mut tam = Script::new(w.tam_key.clone(), &w.tamid, &w);
        tam.tee = rsa.public_key();
        let out = d.send(&tam.gds());
        let r =
            otrp_json::verify_response(provider(), out.send.as_ref().unwrap(), &[rsa.public_key()])
                .unwrap();
        content_dsi(&mut tam, &r);
        let rid = tam.rid();
        let content = rsa1_5_content(
            &rsa.public_key(),
            &otrp_json::CreateSdContent {
                spid: "sp".into(),
                sdname: "legacy".into(),
                spcert: w.spcert.clone(),
                tamid: w.tamid.clone(),
                did: tam.did.clone(),
            },
        );
        let msg = tam.sign(&TbsRequest::CreateSd(otrp_json::CreateSdTbsRequest {
            ver: OTRP_VERSION.into(),
            rid,
            tid: tam.tid.clone(),
            tee: TEE.into(),
            nextdsi: false,
            dsihash: tam.dsihash.clone(),
            content,
        }));
        let before = d.store.clone();
        let out = d.send(&msg);
        let r =
            otrp_json::verify_response(provider(), out.send.as_ref().unwrap(), &[rsa.public_key()])
                .unwrap();
        match legacy {
            LegacyMode::Deny => {
                assert_eq!(code_of(&r), Some(ErrorCode::UnsupportedCryptoAlg));
                assert_eq!(d.store, before);
            }
            LegacyMode::Allow => {
                assert_eq!(r.status(), Status::Pass, "{:?}", code_of(&r));
                assert_eq!(d.agent.security_domains(&d.store).len(), 1);
            }
        }
    }
}

fn no_changes() -> otrp_json::SdChanges {
    otrp_json::SdChanges {
        newsdname: None,
        newspid: None,
        spcert: None,
        deloldspcert: None,
        renewteespaik: false,
    }
}

#[test]
fn otrp_management_configurations_are_enforced() {
    let w = world();
    let sp_tam_key = PrivateKey::generate(KeyKind::P256, &mut rng(21)).unwrap();
    let tams = vec![
        OtrpTam {
            key: w.tam_key.public_key(),
            tamid: w.tamid.clone(),
            oem: true,
        },
        OtrpTam {
            key: sp_tam_key.public_key(),
            tamid: "sp-tam".into(),
            oem: false,
        },
    ];
    // OEM-gated: the SP's TAM needs the OEM authorization once.
    let mut d = dev(config(&w, tams.clone(), Management::OemGated));
    let mut sp = Script::new(sp_tam_key.clone(), "sp-tam", &w);
    let msg = sp.gds();
    d.pass(&w, &mut sp, &msg);
    d.fail(
        &w,
        &sp.create_sd("a", "sp", &w.spcert, "sp-tam"),
        ErrorCode::TamNotAuthorized,
    );
    let auth = OemAuthorization::sign(provider(), &w.oem, "sp", &sp_tam_key.public_key()).unwrap();
    sp.oemauth = Some(STANDARD.encode(auth));
    let msg = sp.create_sd("a", "sp", &w.spcert, "sp-tam");
    d.pass(&w, &mut sp, &msg);
    sp.oemauth = None;
    let msg = sp.create_sd("b", "sp", &w.spcert, "sp-tam");
    d.pass(&w, &mut sp, &msg);
    // …but not for another SP.
    d.fail(
        &w,
        &sp.create_sd("c", "other", &w.spcert, "sp-tam"),
        ErrorCode::TamNotAuthorized,
    );

    // OEM-owned SDs: the SP's TAM may not create; the OEM's TAM grants one to it.
    let mut d = dev(config(&w, tams.clone(), Management::OemOwnedSds));
    let mut sp = Script::new(sp_tam_key.clone(), "sp-tam", &w);
    let mut oem = Script::new(w.tam_key.clone(), &w.tamid, &w);
    let msg = sp.gds();
    d.pass(&w, &mut sp, &msg);
    d.fail(
        &w,
        &sp.create_sd("g", "sp", &w.spcert, "sp-tam"),
        ErrorCode::TamNotAuthorized,
    );
    let msg = oem.gds();
    d.pass(&w, &mut oem, &msg);
    let msg = oem.create_sd("g", "sp", &w.spcert, "sp-tam");
    d.pass(&w, &mut oem, &msg);
    // The SP's TAM sees it (its DSI changed) and installs a TA into it…
    let msg = sp.gds();
    let dsi = d.pass(&w, &mut sp, &msg);
    assert_eq!(dsi.tee.sdlist.sd[0].name, "g");
    let aik = aik_of(&dsi, "sp");
    let msg = sp.install_ta(
        "g",
        "sp",
        "app",
        &aik,
        &ta("g", "app", 1, b"x", &w.sp_key),
        None,
    );
    d.pass(&w, &mut sp, &msg);
    // …but cannot delete the SD.
    d.fail(&w, &sp.delete_sd("g", true), ErrorCode::TamNotAuthorized);

    // Dual control.
    let mut d = dev(config(&w, tams, Management::DualControl));
    let mut sp = Script::new(sp_tam_key.clone(), "sp-tam", &w);
    let msg = sp.gds();
    d.pass(&w, &mut sp, &msg);
    // CreateSD signed by the SP's TAM alone: refused; with the OEM's co-signature
    // (general JWS): accepted.
    d.fail(
        &w,
        &sp.create_sd("d", "sp", &w.spcert, "sp-tam"),
        ErrorCode::TamNotAuthorized,
    );
    sp.cosigners = vec![w.oem.clone()];
    let msg = sp.create_sd("d", "sp", &w.spcert, "sp-tam");
    assert!(String::from_utf8_lossy(&msg).contains("\"signatures\""));
    let dsi = d.pass(&w, &mut sp, &msg);
    let aik = aik_of(&dsi, "sp");
    let msg = sp.update_sd("d", "sp", no_changes());
    d.pass(&w, &mut sp, &msg);
    sp.cosigners.clear();
    // A TA signed by the SP only, from the TAM alone: refused.
    let sp_only = ta("d", "app", 1, b"x", &w.sp_key);
    d.fail(
        &w,
        &sp.install_ta("d", "sp", "app", &aik, &sp_only, None),
        ErrorCode::TaInvalid,
    );
    d.fail(
        &w,
        &sp.update_sd("d", "sp", no_changes()),
        ErrorCode::TamNotAuthorized,
    );
    // SP + OEM co-signed envelope, from the TAM alone: accepted.
    let mut env = otrp_suit::Envelope::decode(&sp_only).unwrap();
    env.add_signature(provider(), &w.oem, &SignOptions::default())
        .unwrap();
    let cosigned = env.encode().unwrap();
    let msg = sp.install_ta("d", "sp", "app", &aik, &cosigned, None);
    d.pass(&w, &mut sp, &msg);
    // Deletions from the managing TAM alone.
    let msg = sp.delete_ta("d", "app");
    d.pass(&w, &mut sp, &msg);
    let msg = sp.delete_sd("d", false);
    d.pass(&w, &mut sp, &msg);
}
