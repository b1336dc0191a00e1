//! The OTrP (JSON) verification path a TEE runs on an InstallTA request, put together
//! from the real pieces (the Agent core has no OTrP path yet): `otrp-json` decoding, the
//! TAM signer's `x5c` chain validated against the TEE's TAM anchors with `otrp-pki`
//! (usage TamSigner), `otrp_json::verify_request_with` with the key of that chain, then
//! `otrp_json::decrypt_content` of the JWE `content` with the TEE key.

use std::time::SystemTime;

use base64::Engine;
use otrp_crypto::{CryptoProvider, PrivateKey};
use otrp_json::{
    decode_any, decrypt_content, verify_request_with, Content, InstallTaTbsRequest, Jws,
    LegacyMode, OtrpMessage, TaContent, TbsRequest, VerifyPolicy,
};
use otrp_pki::{TrustStore, Usage};
use rand_chacha::rand_core::SeedableRng;

/// Why the OTrP path refused a request.
#[derive(Debug)]
pub enum OtrpRefusal {
    /// Not a well-formed OTrP message.
    Decode(otrp_json::Error),
    /// Not a signed request.
    NotARequest(&'static str),
    /// The JWS carries no usable `x5c` chain.
    NoChain(String),
    /// The chain does not validate to the TEE's TAM anchors.
    Chain(otrp_pki::ChainError),
    /// The JWS does not verify with the chain's key (or the payload is refused).
    Signature(otrp_json::Error),
    /// A signed request of another kind.
    WrongKind(&'static str),
    /// `content` is not encrypted.
    Plaintext,
    /// `content` does not decrypt (or does not decode) with the TEE key.
    Decrypt(otrp_json::Error),
}

/// What the path yields for an accepted InstallTA.
#[derive(Debug, Clone)]
pub struct AcceptedInstallTa {
    /// The verified request.
    pub request: InstallTaTbsRequest,
    /// Its decrypted content.
    pub content: TaContent,
    /// The TAM's tamid from its certificate.
    pub tamid: Option<String>,
}

/// Verifies and opens an InstallTA request as a TEE would.
pub fn verify_install_ta(
    provider: &dyn CryptoProvider,
    bytes: &[u8],
    tam_anchors: &TrustStore,
    tee_key: &PrivateKey,
    now: SystemTime,
) -> Result<AcceptedInstallTa, OtrpRefusal> {
    let signed = match decode_any(bytes).map_err(OtrpRefusal::Decode)? {
        OtrpMessage::Request(s) => s,
        _ => return Err(OtrpRefusal::NotARequest("expected a signed request")),
    };
    let header = match &signed.jws {
        Jws::Flattened(f) => f.header.clone(),
        Jws::General(g) => g.signatures.first().and_then(|s| s.header.clone()),
    };
    let chain = header
        .and_then(|h| h.x5c)
        .ok_or_else(|| OtrpRefusal::NoChain("no x5c in the unprotected header".into()))?;
    let mut ders = Vec::with_capacity(chain.len());
    for (i, c) in chain.iter().enumerate() {
        ders.push(
            base64::engine::general_purpose::STANDARD
                .decode(c)
                .map_err(|e| OtrpRefusal::NoChain(format!("x5c[{i}]: {e}")))?,
        );
    }
    let (leaf, rest) = ders
        .split_first()
        .ok_or_else(|| OtrpRefusal::NoChain("empty x5c".into()))?;
    let cert = tam_anchors
        .verify(leaf, rest, Usage::TamSigner, now)
        .map_err(OtrpRefusal::Chain)?;
    let verified = verify_request_with(
        provider,
        bytes,
        std::slice::from_ref(&cert.public_key),
        VerifyPolicy::AnyOne,
    )
    .map_err(OtrpRefusal::Signature)?;
    let request = match verified.message {
        TbsRequest::InstallTa(r) => r,
        _ => return Err(OtrpRefusal::WrongKind("expected InstallTA")),
    };
    let jwe = match &request.content {
        Content::Encrypted(j) => j.clone(),
        Content::Plain(_) => return Err(OtrpRefusal::Plaintext),
    };
    // RSA1_5 is not involved (EC keys); the RNG only feeds its countermeasure.
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(0);
    let (content, _cek) =
        decrypt_content::<TaContent>(provider, &mut rng, &jwe, tee_key, LegacyMode::Deny)
            .map_err(OtrpRefusal::Decrypt)?;
    Ok(AcceptedInstallTa {
        request,
        content,
        tamid: cert.info.tamid,
    })
}

/// Builds a signed InstallTA request as a TAM would: `content` (a [`TaContent`] for
/// `taid` in `sdname`) encrypted to `tee` (A128CBC-HS256, ECDH-ES+A128KW), signed by
/// `tam_key` (ES256) with `x5c` in the unprotected header.
pub fn install_ta_request(
    provider: &dyn CryptoProvider,
    tam_key: &PrivateKey,
    x5c: Vec<String>,
    tee: &otrp_crypto::PublicKey,
    sdname: &str,
    taid: &str,
    seed: u64,
) -> Vec<u8> {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(seed);
    let content = TaContent {
        tamid: "tam1.opentrust.test".into(),
        spid: "sp1".into(),
        sdname: sdname.into(),
        spcert: None,
        taid: taid.into(),
    };
    let (content, _) = otrp_json::encrypt_content(
        provider,
        &mut rng,
        &content,
        otrp_json::ContentEnc::A128CbcHs256,
        &[otrp_json::RecipientKey::new(tee)],
    )
    .expect("content encryption");
    let tbs = TbsRequest::InstallTa(InstallTaTbsRequest {
        ver: otrp_json::OTRP_VERSION.into(),
        rid: format!("rid-{seed}"),
        tid: format!("tid-{seed}"),
        tee: "OpenTrust-Sim".into(),
        nextdsi: false,
        dsihash: "AAEC".into(),
        content,
        encrypted_ta: otrp_json::EncryptedTa {
            key: "a2V5".into(),
            iv: "4F5472504973426F726E496E32303135".into(),
            alg: "AESCBC".into(),
            ciphertadata: "dGEtYnl0ZXMtLi4u".into(),
            cipherpdata: None,
        },
    });
    otrp_json::sign_request(
        provider,
        &otrp_json::Signer::new(tam_key).with_x5c(x5c),
        &tbs,
    )
    .expect("InstallTA signing")
}

/// The byte range of the string value of JSON member `name` (first occurrence; for an
/// array value, from `[` to `]`).
pub fn json_value_range(json: &[u8], name: &str) -> Option<std::ops::Range<usize>> {
    let key = format!("\"{name}\":");
    let at = crate::flips::find(json, key.as_bytes())? + key.len();
    let close = match json.get(at)? {
        b'"' => b'"',
        b'[' => b']',
        _ => return None,
    };
    let end = at + 1 + json.get(at + 1..)?.iter().position(|&b| b == close)?;
    Some(at + 1..end)
}
