//! Development PKIs from `otrp-pki` (two of them make a rogue TAM: a valid certificate
//! under another root).

use std::time::{Duration, SystemTime};

use base64::Engine;
use otrp_pki::{CaLevel, CaRole, CertKind, InitOptions, IssueRequest, Issued, Pki, TrustStore};
use rand_chacha::rand_core::SeedableRng;

use crate::tam::NOW;

/// The tests' "now" as a `SystemTime`.
pub fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(NOW)
}

/// A fresh development PKI (P-256) made at [`now`], organization `org`.
pub fn pki(seed: u64, org: &str) -> Pki {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(seed);
    let opts = InitOptions {
        organization: org.into(),
        ..InitOptions::default()
    };
    Pki::init(&opts, &mut rng, now() - Duration::from_secs(3600)).expect("PKI init")
}

/// Issues a TAM signer certificate `name` with `tamid` in `pki`.
pub fn tam_signer(pki: &mut Pki, seed: u64, name: &str, tamid: &str) -> Issued {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(seed);
    let mut req = IssueRequest::new(CertKind::Tam, name);
    req.tamid = Some(tamid.into());
    pki.issue(&req, &mut rng, now() - Duration::from_secs(60))
        .expect("TAM certificate")
}

/// The TAM anchors a TEE provisioned by `pki` holds.
pub fn tam_anchors(pki: &Pki) -> TrustStore {
    TrustStore::without_revocation(vec![pki
        .ca_cert_der(CaRole::Tam, CaLevel::Root)
        .expect("TAM root")])
    .expect("trust store")
}

/// The chain a TAM presents: its certificate and the TAM issuing CA (DER).
pub fn tam_chain(pki: &Pki, leaf: &Issued) -> Vec<Vec<u8>> {
    vec![
        leaf.cert_der.clone(),
        pki.ca_cert_der(CaRole::Tam, CaLevel::Issuing)
            .expect("TAM issuing CA"),
    ]
}

/// A chain as JOSE `x5c` (standard base64).
pub fn x5c(chain: &[Vec<u8>]) -> Vec<String> {
    chain
        .iter()
        .map(|c| base64::engine::general_purpose::STANDARD.encode(c))
        .collect()
}
