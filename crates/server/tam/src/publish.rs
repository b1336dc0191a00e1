//! The SP side of publishing, shared by `otrp sp publish` and the tests: build and sign a
//! TA's SUIT manifest on the SP's machine (the SP key never leaves it) and wrap it for
//! `POST /api/v1/components`.

use base64::Engine;
use otrp_cose::SignOptions;
use otrp_crypto::{CryptoProvider, PrivateKey};
use otrp_suit::{ComponentId, TaManifestBuilder};

/// Where the device gets the TA image from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    /// Inside the envelope (integrated payload `#tc`).
    Integrated,
    /// Fetched by the device (through its Broker) from this URI.
    Uri(String),
}

/// The integrated-payload key of a TA image.
pub const TA_PAYLOAD_KEY: &str = "#tc";

/// Splits `SD/NAME[/...]` into component-id segments.
pub fn component_segments(id: &str) -> Result<Vec<Vec<u8>>, String> {
    let segs: Vec<Vec<u8>> = id.split('/').map(|s| s.as_bytes().to_vec()).collect();
    if segs.len() < 2 || segs.iter().any(Vec::is_empty) {
        return Err(format!(
            "component id {id:?} must be SD/NAME (the first segment names the Security Domain)"
        ));
    }
    Ok(segs)
}

/// Builds and signs the SUIT envelope of a TA image.
pub fn ta_envelope(
    provider: &dyn CryptoProvider,
    key: &PrivateKey,
    component: &str,
    seq: u64,
    image: &[u8],
    payload: &Payload,
) -> Result<Vec<u8>, String> {
    let id = ComponentId(component_segments(component)?);
    let b = TaManifestBuilder::new(id, seq).image_of(image);
    let b = match payload {
        Payload::Integrated => b.integrated_payload(TA_PAYLOAD_KEY, image.to_vec()),
        Payload::Uri(u) => b.uri(u.clone()),
    };
    b.build_signed(provider, key, &SignOptions::default())
        .and_then(|e| e.encode())
        .map_err(|e| format!("building the SUIT manifest: {e}"))
}

/// The JSON body of `POST /api/v1/components`.
pub fn upload_body(
    envelope: &[u8],
    signer_chain_pem: &str,
    name: Option<&str>,
) -> serde_json::Value {
    serde_json::json!({
        "envelope": base64::engine::general_purpose::STANDARD.encode(envelope),
        "signer_chain_pem": signer_chain_pem,
        "name": name,
    })
}

/// Builds and signs the SUIT envelope of a TA image for batch mode: the image is carried
/// in the envelope encrypted to the batch public key `batch_public_pem` (SPKI PEM, P-256,
/// `PKI_DIR/batch/<batch>.pub.pem`; ECDH-ES+A128KW, A128GCM), so only devices of batch
/// `batch_id` can install it ([`otrp_tam::batch::encrypt_for_batch`]).
pub fn ta_envelope_for_batch(
    provider: &dyn CryptoProvider,
    key: &PrivateKey,
    component: &str,
    seq: u64,
    image: &[u8],
    batch_id: &str,
    batch_public_pem: &str,
) -> Result<Vec<u8>, String> {
    let id = ComponentId(component_segments(component)?);
    let public = match otrp_crypto::PublicKey::from_pem(batch_public_pem)
        .map_err(|e| format!("batch public key: {e}"))?
    {
        otrp_crypto::PublicKey::P256(p) => p,
        _ => return Err("the batch public key must be P-256".into()),
    };
    let mut rng = rand::rngs::OsRng;
    otrp_tam::batch::encrypt_for_batch(
        TaManifestBuilder::new(id, seq),
        provider,
        &mut rng,
        image,
        batch_id,
        &public,
    )
    .map_err(|e| format!("encrypting the TA to batch {batch_id}: {e}"))?
    .build_signed(provider, key, &SignOptions::default())
    .and_then(|e| e.encode())
    .map_err(|e| format!("building the SUIT manifest: {e}"))
}

/// The component id (`SD/TA/perso`) of the data of TA `for_ta` (`SD/TA`), as the TEE
/// hands it to that TA as its personalization data.
pub fn data_component_name(for_ta: &str) -> Result<String, String> {
    component_segments(for_ta)?;
    let perso = String::from_utf8_lossy(otrp_suit::PERSO_SEGMENT);
    Ok(format!("{}/{perso}", for_ta.trim_end_matches('/')))
}

/// Builds and signs the SUIT envelope of data for TA `for_ta` (`SD/TA`) in batch mode:
/// component `SD/TA/perso` ([`data_component_name`]), manifest sequence number `seq`, the
/// data encrypted to the batch public key like [`ta_envelope_for_batch`] (the same bytes
/// for every device of the batch).
pub fn data_envelope_for_batch(
    provider: &dyn CryptoProvider,
    key: &PrivateKey,
    for_ta: &str,
    seq: u64,
    data: &[u8],
    batch_id: &str,
    batch_public_pem: &str,
) -> Result<Vec<u8>, String> {
    let component = data_component_name(for_ta)?;
    ta_envelope_for_batch(
        provider,
        key,
        &component,
        seq,
        data,
        batch_id,
        batch_public_pem,
    )
}
