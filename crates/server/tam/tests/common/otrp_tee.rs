//! A device for the OTrP tests (included with `#[path]`, beside `mod common`): provisioned
//! as `otrp device provision` does (otrp-pki), booted as the real simulated TEE
//! (`otrp-tee-daemon`) trusting the fixture's TAM, as `otrp tee run --tam-cert` does.
#![allow(clippy::unwrap_used, dead_code)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use otrp_broker::LocalTee;
use otrp_pki::device::{provision, ProvisionRequest};
use otrp_tee_daemon::{TamCert, Tee, TeeOptions};
use rand::RngCore;
use serde_json::Value;

use crate::common::{provider, rng, Fixture};

/// A provisioned device running the real simulated TEE.
pub struct OtrpDevice {
    pub tee: Arc<Mutex<Tee>>,
    /// The device's public record (`otrp device provision`'s `device.json`).
    pub public: Value,
    /// Its TEE certificate chain, leaf first, as PEM.
    pub tee_chain_pem: String,
}

/// Provisions device `seed` as `req` says and boots its TEE (state under the fixture's
/// directory), trusting the fixture's TAM as the OEM's TAM (`oem_tam`, `otrp tee run
/// --oem-tam-cert`) or as an SP's.
pub fn boot_otrp(f: &mut Fixture, seed: u64, req: &ProvisionRequest, oem_tam: bool) -> OtrpDevice {
    let p = provision(
        &mut f.pki,
        req,
        provider(),
        &mut rng(seed),
        SystemTime::now() - Duration::from_secs(60),
    )
    .unwrap();
    let mut key = [0u8; 32];
    rng(seed + 7).fill_bytes(&mut key);
    let mut chain = vec![p.identity.tee.cert.clone()];
    chain.extend(p.identity.tee.chain.iter().cloned());
    let tee_chain_pem = chain
        .iter()
        .map(|c| otrp_pki::cert::to_pem("CERTIFICATE", c).unwrap())
        .collect::<String>();
    let tee = Tee::boot(
        p.identity,
        key,
        &f.dir.join(format!("device-{seed}")),
        &TeeOptions {
            tams: vec![TamCert {
                chain: f.identity.tam_chain.clone(),
                oem: oem_tam,
            }],
            fsync: false,
            ..TeeOptions::default()
        },
    )
    .unwrap();
    OtrpDevice {
        tee: Arc::new(Mutex::new(tee)),
        public: serde_json::to_value(&p.public).unwrap(),
        tee_chain_pem,
    }
}

impl OtrpDevice {
    /// The TEE as a Broker reaches it in process.
    pub fn link(&self) -> LocalTee {
        LocalTee(self.tee.clone())
    }

    /// The Agent's public key, as the admin API registers it.
    pub fn agent_key_pem(&self) -> String {
        let t = self.tee.lock().unwrap();
        t.agent()
            .config()
            .agent_key
            .public_key()
            .to_spki_pem()
            .unwrap()
    }
}
